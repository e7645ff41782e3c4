//! What `bench tps` prints: the figures of a run (rates, counts, latency percentiles) as
//! rows or JSON, and a warning on stderr when the run did less than asked. Presentation
//! only: never talks to a node.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::follow::DRAIN_MAX;
use super::load::LoadOutcome;
use super::plan::Plan;
use crate::client::RpcUrl;
use crate::output::{self, Output};

/// The nearest-rank percentile `p` (0 < p ≤ 100) of ascending `sorted` values.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    debug_assert!(p > 0.0 && p <= 100.0);
    debug_assert!(sorted.is_sorted());
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// One line on stderr when the run did less than asked, so a script reading the figures
/// (or a person skimming them) does not take them for a clean run.
pub(super) fn warn_if_partial(r: &Report) {
    if r.rejected > 0 {
        eprintln!(
            "warning: {} sender accounts stopped early after a refusal ({}); the figures cover \
             less load than asked",
            r.rejected,
            r.rejected_by_reason
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !r.drained {
        eprintln!(
            "warning: {} submitted transactions were not seen committed within {} s after the \
             load stopped",
            r.not_committed,
            DRAIN_MAX.as_secs()
        );
    }
}

#[derive(Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

/// What `bench tps` prints. Rates are per second, times in seconds unless named `_ms`.
#[derive(Serialize)]
pub(super) struct Report {
    rpc: Vec<String>,
    chain_id: String,
    seed: u64,
    accounts: u32,
    workers: u32,
    duration_s: u64,
    /// 0: as fast as the nodes accept.
    rate_target: u32,
    presigned: u64,
    submitted: u64,
    committed: u64,
    rejected: u64,
    rejected_by_reason: BTreeMap<String, u64>,
    /// The first message the nodes (or the transport) gave for each reason of a refusal,
    /// retried or final.
    error_messages: BTreeMap<String, String>,
    /// Submitted but not seen committed by the end of the drain.
    not_committed: u64,
    retries: u64,
    transport_errors: u64,
    /// From the first submission to the last accepted one.
    submit_window_s: f64,
    submitted_tps: f64,
    /// From the first submission to the last commit seen.
    commit_window_s: f64,
    committed_tps: f64,
    /// Submission to the follower reading the block (it waits on the node for each next
    /// block, so within an HTTP round trip of its commit there).
    latency_ms: Option<Latency>,
    start_height: u64,
    end_height: u64,
    blocks: u64,
    block_txs_max: usize,
    /// Every submitted transaction committed within the drain period.
    drained: bool,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn per_second(count: u64, window: Duration) -> f64 {
    if window.is_zero() {
        return 0.0;
    }
    round1(count as f64 / window.as_secs_f64())
}

impl Report {
    pub(super) fn new(
        plan: &Plan,
        urls: &[RpcUrl],
        chain_id: &str,
        seed: u64,
        start_height: u64,
        outcome: &LoadOutcome,
    ) -> Report {
        let workers = &outcome.workers;
        let follow = &outcome.follow;
        let submitted = outcome.submitted;
        let mut rejected_by_reason: BTreeMap<String, u64> = BTreeMap::new();
        let mut error_messages: BTreeMap<String, String> = BTreeMap::new();
        for w in workers {
            for (reason, count) in &w.rejected {
                *rejected_by_reason.entry(reason.clone()).or_default() += count;
            }
            for (reason, message) in &w.messages {
                error_messages
                    .entry(reason.clone())
                    .or_insert_with(|| message.clone());
            }
        }
        let first_send = workers.iter().filter_map(|w| w.first_send).min();
        let last_accept = workers.iter().filter_map(|w| w.last_accept).max();
        let window = |end: Option<Instant>| match (first_send, end) {
            (Some(start), Some(end)) => end.saturating_duration_since(start),
            _ => Duration::ZERO,
        };
        let submit_window = window(last_accept);
        let commit_window = window(follow.last_commit);
        let mut latencies = follow.latencies_us.clone();
        latencies.sort_unstable();
        let ms = |p: f64| round1(percentile(&latencies, p).unwrap_or(0) as f64 / 1000.0);
        let latency_ms = (!latencies.is_empty()).then(|| Latency {
            p50: ms(50.0),
            p90: ms(90.0),
            p99: ms(99.0),
            max: ms(100.0),
        });
        Report {
            rpc: urls.iter().map(ToString::to_string).collect(),
            chain_id: chain_id.to_owned(),
            seed,
            accounts: plan.accounts,
            workers: plan.workers,
            duration_s: plan.duration.as_secs(),
            rate_target: plan.rate,
            presigned: plan.total_txs(),
            submitted,
            committed: follow.committed,
            rejected: rejected_by_reason.values().sum(),
            rejected_by_reason,
            error_messages,
            not_committed: submitted.saturating_sub(follow.committed),
            retries: workers.iter().map(|w| w.retries).sum(),
            transport_errors: workers.iter().map(|w| w.transport_errors).sum(),
            submit_window_s: round1(submit_window.as_secs_f64()),
            submitted_tps: per_second(submitted, submit_window),
            commit_window_s: round1(commit_window.as_secs_f64()),
            committed_tps: per_second(follow.committed, commit_window),
            latency_ms,
            start_height,
            end_height: follow.end_height,
            blocks: follow.blocks,
            block_txs_max: follow.block_txs_max,
            drained: follow.drained,
        }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
            self.p50, self.p90, self.p99, self.max
        )
    }
}

pub(super) fn print_report(r: &Report, out: Output) {
    let rate = match r.rate_target {
        0 => "unlimited".to_owned(),
        n => format!("{n} tx/s"),
    };
    let rejected = if r.rejected_by_reason.is_empty() {
        "0".to_owned()
    } else {
        let reasons: Vec<String> = r
            .rejected_by_reason
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        format!("{} ({})", r.rejected, reasons.join(", "))
    };
    let rows = vec![
        ("rpc", r.rpc.join(",")),
        ("chain_id", r.chain_id.clone()),
        ("seed", r.seed.to_string()),
        ("accounts", r.accounts.to_string()),
        ("workers", r.workers.to_string()),
        ("duration_s", r.duration_s.to_string()),
        ("rate_target", rate),
        ("presigned", r.presigned.to_string()),
        ("submitted", r.submitted.to_string()),
        ("committed", r.committed.to_string()),
        ("rejected", rejected),
        ("not_committed", r.not_committed.to_string()),
        ("retries", r.retries.to_string()),
        ("transport_errors", r.transport_errors.to_string()),
        (
            "submitted_tps",
            format!("{} (over {} s)", r.submitted_tps, r.submit_window_s),
        ),
        (
            "committed_tps",
            format!("{} (over {} s)", r.committed_tps, r.commit_window_s),
        ),
        (
            "latency_ms",
            r.latency_ms
                .as_ref()
                .map_or_else(|| "none".to_owned(), ToString::to_string),
        ),
        (
            "blocks",
            format!(
                "{} (heights {}..{}, at most {} txs)",
                r.blocks,
                r.start_height + 1,
                r.end_height,
                r.block_txs_max
            ),
        ),
        ("drained", r.drained.to_string()),
    ];
    let mut rows: Vec<(String, String)> =
        rows.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    for (reason, message) in &r.error_messages {
        rows.push((format!("error.{reason}"), message.clone()));
    }
    output::print(out, r, &rows);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 50.0), Some(7));
        assert_eq!(percentile(&[7], 100.0), Some(7));
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&hundred, 50.0), Some(50));
        assert_eq!(percentile(&hundred, 90.0), Some(90));
        assert_eq!(percentile(&hundred, 99.0), Some(99));
        assert_eq!(percentile(&hundred, 100.0), Some(100));
        assert_eq!(percentile(&hundred, 0.1), Some(1));
        let ten: Vec<u64> = (1..=10).map(|x| x * 10).collect();
        assert_eq!(percentile(&ten, 50.0), Some(50));
        assert_eq!(percentile(&ten, 99.0), Some(100));
        assert_eq!(percentile(&[1, 2, 3], 50.0), Some(2));
    }
}
