//! The timed part of `bench tps`: worker threads submitting the pre-signed transfers in
//! batches on schedule, beside the follower, and the state they share. Owns pacing, the
//! in-flight bounds, retries and when a sender is given up. Never signs, never exceeds a
//! sender's or the pool's in-flight bound, and never retries a transaction without a bound.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use cairn_ledger::Hash;
use cairn_node::http::rpc::codes;
use indicatif::ProgressBar;
use serde_json::Value;

use super::follow::{FollowOutcome, follow};
use super::plan::{Plan, Signed};
use crate::client::{BATCH_REQUESTS_MAX, BatchError, Client, RpcFailure, RpcUrl};

/// Most of one sender's transactions in one batch, so a batch spreads over senders.
pub const SENDER_TXS_PER_BATCH_MAX: u32 = 10;
/// Most of one sender's transactions submitted and not yet seen committed; below the
/// mempool's 256 pending per sender, with room for the follower seeing commits late.
pub const SENDER_IN_FLIGHT_MAX: u32 = 200;
/// Most transactions submitted and not yet seen committed, over all senders; below the
/// mempool's 20,000 (gossip puts every transaction in every node's pool).
pub const IN_FLIGHT_MAX: u64 = 16_000;
/// Most consecutive refusals (pool full, sender full, transport failure) of one transaction
/// before its sender is given up for the rest of the run.
pub const RETRIES_MAX: u32 = 30;
/// Wait before the first retry of a refused transaction; doubles per retry.
pub const RETRY_BACKOFF_BASE: Duration = Duration::from_millis(20);
/// Longest wait between two retries of one transaction.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Longest a worker sleeps when nothing is due or nothing may be sent.
const IDLE_SLEEP_MAX: Duration = Duration::from_millis(5);
/// How often the progress line redraws (on a terminal only).
const PROGRESS_TICK: Duration = Duration::from_millis(200);
/// How many transactions a schedule of `rate` per second should have sent `elapsed` after
/// its start: the first at once, the k-th (from 0) at k / rate seconds.
fn due_by(elapsed: Duration, rate: u32) -> u64 {
    let sent = elapsed.as_nanos() * u128::from(rate) / 1_000_000_000;
    u64::try_from(sent).unwrap_or(u64::MAX).saturating_add(1)
}

/// When the k-th transaction (from 0) of a schedule of `rate` per second is due.
fn due_at(k: u64, rate: u32) -> Duration {
    debug_assert!(rate > 0);
    let nanos = (u128::from(k) * 1_000_000_000).div_ceil(u128::from(rate));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Wait before retry number `retries` (from 1) of a refused transaction.
fn backoff(retries: u32) -> Duration {
    let doublings = retries.saturating_sub(1).min(16);
    (RETRY_BACKOFF_BASE * (1 << doublings)).min(RETRY_BACKOFF_MAX)
}

/// A transaction's word in [`Shared::txs`]: flags, and the microseconds from `t0` to its
/// last submission plus 1 (0: never submitted).
const TX_ACCEPTED: u64 = 1 << 63;
pub(super) const TX_COMMITTED: u64 = 1 << 62;
pub(super) const TX_STAMP_MASK: u64 = TX_COMMITTED - 1;
/// What the workers and the follower share while the clock runs.
pub(super) struct Shared {
    pub(super) t0: Instant,
    /// Per transaction: see [`TX_ACCEPTED`].
    txs: Vec<AtomicU64>,
    /// Per sender: its transactions seen committed (they commit in nonce order).
    pub(super) committed_per_sender: Vec<AtomicU32>,
    /// Transactions a node accepted, or seen committed when the answer to their submission
    /// was lost: each counted once.
    pub(super) submitted: AtomicU64,
    pub(super) committed: AtomicU64,
    pub(super) height: AtomicU64,
    pub(super) workers_done: AtomicBool,
}

impl Shared {
    fn in_flight(&self) -> u64 {
        let committed = self.committed.load(Ordering::Relaxed);
        self.submitted
            .load(Ordering::Relaxed)
            .saturating_sub(committed)
    }

    /// Records that transaction `tx` is being submitted `at` (again).
    fn stamp(&self, tx: usize, at: Instant) {
        let us = u64::try_from(at.saturating_duration_since(self.t0).as_micros())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
            .min(TX_STAMP_MASK);
        let _ = self.txs[tx].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
            Some(word & !TX_STAMP_MASK | us)
        });
    }

    /// Sets `flag` on transaction `tx`; counts it submitted if it is its first flag. Returns
    /// the word before.
    pub(super) fn mark(&self, tx: usize, flag: u64) -> u64 {
        let before = self.txs[tx].fetch_or(flag, Ordering::Relaxed);
        if before & (TX_ACCEPTED | TX_COMMITTED) == 0 {
            self.submitted.fetch_add(1, Ordering::Relaxed);
        }
        before
    }
}

/// What one worker did.
#[derive(Default)]
pub(super) struct WorkerOutcome {
    pub(super) accepted: u64,
    pub(super) rejected: BTreeMap<String, u64>,
    /// The first message seen for each reason of a refusal, retried or not.
    pub(super) messages: BTreeMap<String, String>,
    pub(super) retries: u64,
    pub(super) transport_errors: u64,
    pub(super) first_send: Option<Instant>,
    pub(super) last_accept: Option<Instant>,
}

pub(super) struct LoadOutcome {
    pub(super) workers: Vec<WorkerOutcome>,
    pub(super) follow: FollowOutcome,
    /// See [`Shared::submitted`].
    pub(super) submitted: u64,
}

/// Runs the workers and the follower until the duration and the drain are over.
pub(super) fn load(
    plan: &Plan,
    urls: &[RpcUrl],
    signed: &[Vec<Signed>],
    index: &HashMap<Hash, u32>,
    start_height: u64,
    progress: &ProgressBar,
) -> Result<LoadOutcome> {
    let shared = Shared {
        t0: Instant::now(),
        txs: (0..plan.total_txs()).map(|_| AtomicU64::new(0)).collect(),
        committed_per_sender: (0..plan.accounts).map(|_| AtomicU32::new(0)).collect(),
        submitted: AtomicU64::new(0),
        committed: AtomicU64::new(0),
        height: AtomicU64::new(start_height),
        workers_done: AtomicBool::new(false),
    };
    let shared = &shared;
    thread::scope(|scope| {
        let workers: Vec<_> = (0..plan.workers)
            .map(|w| scope.spawn(move || worker(w, plan, urls, signed, shared)))
            .collect();
        let follower = scope.spawn(move || follow(&urls[0], start_height, plan, index, shared));
        while !follower.is_finished() {
            if !shared.workers_done.load(Ordering::Relaxed)
                && workers.iter().all(|w| w.is_finished())
            {
                shared.workers_done.store(true, Ordering::Relaxed);
            }
            let submitted = shared.submitted.load(Ordering::Relaxed);
            let committed = shared.committed.load(Ordering::Relaxed);
            let elapsed = shared.t0.elapsed().as_secs();
            let phase = if shared.workers_done.load(Ordering::Relaxed) {
                "draining"
            } else {
                "loading"
            };
            progress.set_message(format!(
                "{phase} {elapsed}/{} s: submitted {submitted}, committed {committed}, height {}",
                plan.duration.as_secs(),
                shared.height.load(Ordering::Relaxed)
            ));
            thread::sleep(PROGRESS_TICK);
        }
        // The follower only ends early on an error; the workers stop by the clock.
        shared.workers_done.store(true, Ordering::Relaxed);
        let workers: Vec<WorkerOutcome> = workers
            .into_iter()
            .map(|w| w.join().expect("a worker thread panicked"))
            .collect();
        let follow = follower.join().expect("the follower thread panicked")?;
        Ok(LoadOutcome {
            workers,
            follow,
            submitted: shared.submitted.load(Ordering::Relaxed),
        })
    })
}

/// One sender as a worker sees it.
struct SenderState {
    /// Global sender index.
    index: usize,
    url: usize,
    /// The next of its transactions to submit (all before it were accepted).
    next: u32,
    /// Consecutive refusals of `next`.
    retries: u32,
    retry_at: Instant,
    /// A transport failure left its last submission's fate unknown: a `duplicate` or
    /// `stale_nonce` answer then means the earlier one got in.
    uncertain: bool,
    given_up: bool,
}

/// What an answer to one `submit_tx` means for the run.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Accepted,
    /// Refused for now (pool or sender full): retry the same transaction later.
    Retry(String),
    /// Refused for good: the sender's later nonces can no longer be used.
    Fatal(String),
}

fn verdict(answer: &Result<Value, RpcFailure>, uncertain: bool) -> Verdict {
    let Err(e) = answer else {
        return Verdict::Accepted;
    };
    match e.code {
        codes::TX_DUPLICATE => Verdict::Accepted,
        codes::TX_STALE_NONCE if uncertain => Verdict::Accepted,
        codes::TX_POOL_FULL | codes::TX_SENDER_FULL | codes::TX_STATE_ERROR => {
            Verdict::Retry(e.reason())
        }
        _ => Verdict::Fatal(e.reason()),
    }
}

/// Submits worker `w`'s senders' transactions on schedule until the duration is over or
/// every one of them is submitted or given up.
fn worker(
    w: u32,
    plan: &Plan,
    urls: &[RpcUrl],
    signed: &[Vec<Signed>],
    shared: &Shared,
) -> WorkerOutcome {
    let conns: Vec<Client> = urls.iter().cloned().map(Client::for_url).collect();
    let end = shared.t0 + plan.duration;
    let rate = plan.worker_rate(w);
    let mut senders: Vec<SenderState> = (w as usize..plan.accounts as usize)
        .step_by(plan.workers as usize)
        .map(|s| SenderState {
            index: s,
            url: s % urls.len(),
            next: 0,
            retries: 0,
            retry_at: shared.t0,
            uncertain: false,
            given_up: false,
        })
        .collect();
    let mut out = WorkerOutcome::default();
    let mut cursor = 0;
    let mut batch: Vec<(usize, u32)> = Vec::with_capacity(BATCH_REQUESTS_MAX);
    loop {
        let now = Instant::now();
        if now >= end
            || senders
                .iter()
                .all(|s| s.given_up || s.next == plan.txs_per_sender)
        {
            return out;
        }
        let quota = match rate {
            0 => u64::MAX,
            r => due_by(now - shared.t0, r).saturating_sub(out.accepted),
        };
        let room = IN_FLIGHT_MAX.saturating_sub(shared.in_flight());
        let limit = quota.min(room).min(BATCH_REQUESTS_MAX as u64) as usize;
        batch.clear();
        if limit > 0 {
            cursor = fill_batch(&senders, cursor, limit, plan, shared, now, &mut batch);
        }
        if batch.is_empty() {
            let next_due = match rate {
                0 => IDLE_SLEEP_MAX,
                r => (shared.t0 + due_at(out.accepted, r)).saturating_duration_since(now),
            };
            thread::sleep(next_due.clamp(Duration::from_micros(200), IDLE_SLEEP_MAX));
            continue;
        }
        let url = senders[batch[0].0].url;
        let body = batch_body(&batch, &senders, plan, signed, shared, now);
        out.first_send.get_or_insert(now);
        let answers = conns[url].batch_body(body, batch.len());
        let now = Instant::now();
        match answers {
            Ok(answers) => settle(&batch, &answers, &mut senders, plan, shared, now, &mut out),
            Err(e) => batch_failed(&batch, &e, &mut senders, now, &mut out),
        }
    }
}

/// The JSON-RPC batch submitting `batch`, stamping each transaction as submitted `now`.
fn batch_body(
    batch: &[(usize, u32)],
    senders: &[SenderState],
    plan: &Plan,
    signed: &[Vec<Signed>],
    shared: &Shared,
    now: Instant,
) -> String {
    let mut body = String::with_capacity(batch.len() * 480);
    body.push('[');
    for (id, &(l, seq)) in batch.iter().enumerate() {
        let s = senders[l].index;
        shared.stamp(tx_index(plan, s, seq), now);
        if id > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"submit_tx","params":{{"tx":"{}","mode":"mempool"}}}}"#,
            signed[s][seq as usize].hex
        ));
    }
    body.push(']');
    body
}

/// Applies the node's answers to a batch: accepted transactions move their sender on; a
/// refused one is retried later or gives its sender up. Once one of a sender's transactions
/// is refused, its later ones in the batch were refused for the nonce gap: they go again
/// with it.
fn settle(
    batch: &[(usize, u32)],
    answers: &[Result<Value, RpcFailure>],
    senders: &mut [SenderState],
    plan: &Plan,
    shared: &Shared,
    now: Instant,
    out: &mut WorkerOutcome,
) {
    let mut failed: Vec<usize> = Vec::new();
    for (&(l, seq), answer) in batch.iter().zip(answers) {
        if failed.contains(&l) {
            continue;
        }
        let sender = &mut senders[l];
        debug_assert_eq!(sender.next, seq);
        let verdict = verdict(answer, sender.uncertain);
        if let (Verdict::Retry(reason) | Verdict::Fatal(reason), Err(e)) = (&verdict, answer) {
            out.messages
                .entry(reason.clone())
                .or_insert_with(|| e.message.clone());
        }
        match verdict {
            Verdict::Accepted => {
                shared.mark(tx_index(plan, sender.index, seq), TX_ACCEPTED);
                sender.next = seq + 1;
                sender.retries = 0;
                sender.uncertain = false;
                out.accepted += 1;
                out.last_accept = Some(now);
            }
            Verdict::Retry(reason) => {
                failed.push(l);
                refused(sender, &reason, now, out);
            }
            Verdict::Fatal(reason) => {
                failed.push(l);
                sender.given_up = true;
                *out.rejected.entry(reason).or_default() += 1;
            }
        }
    }
}

/// A batch that got no per-transaction answers: each of its senders retries later, not
/// knowing whether the node admitted what it sent.
fn batch_failed(
    batch: &[(usize, u32)],
    error: &BatchError,
    senders: &mut [SenderState],
    now: Instant,
    out: &mut WorkerOutcome,
) {
    out.transport_errors += 1;
    let reason = match error {
        BatchError::Transport { .. } => "transport".to_owned(),
        BatchError::Refused { code, .. } => format!("rpc_error_{}", -code),
        BatchError::NotJsonRpc { .. } => "not_json_rpc".to_owned(),
    };
    out.messages
        .entry(reason.clone())
        .or_insert_with(|| error.to_string());
    let mut seen = Vec::new();
    for &(l, _) in batch {
        if !seen.contains(&l) {
            seen.push(l);
            senders[l].uncertain = true;
            refused(&mut senders[l], &reason, now, out);
        }
    }
}

/// Schedules a retry of `sender`'s next transaction, or gives the sender up (counting the
/// transaction as rejected for `reason`) once it has been refused too often.
fn refused(sender: &mut SenderState, reason: &str, now: Instant, out: &mut WorkerOutcome) {
    sender.retries += 1;
    out.retries += 1;
    if sender.retries > RETRIES_MAX {
        sender.given_up = true;
        *out.rejected.entry(reason.to_owned()).or_default() += 1;
    } else {
        sender.retry_at = now + backoff(sender.retries);
    }
}

/// Puts up to `limit` ready transactions into `batch`, all for one node, taking senders
/// round-robin from `cursor`; returns the cursor for the next batch.
fn fill_batch(
    senders: &[SenderState],
    cursor: usize,
    limit: usize,
    plan: &Plan,
    shared: &Shared,
    now: Instant,
    batch: &mut Vec<(usize, u32)>,
) -> usize {
    let mut url = None;
    let n = senders.len();
    for step in 0..n {
        let l = (cursor + step) % n;
        let s = &senders[l];
        if s.given_up || s.retry_at > now || url.is_some_and(|u| u != s.url) {
            continue;
        }
        let committed = shared.committed_per_sender[s.index].load(Ordering::Relaxed);
        let in_flight = s.next.saturating_sub(committed);
        let take = (plan.txs_per_sender - s.next)
            .min(SENDER_IN_FLIGHT_MAX.saturating_sub(in_flight))
            .min(SENDER_TXS_PER_BATCH_MAX)
            .min(u32::try_from(limit - batch.len()).unwrap_or(u32::MAX));
        if take == 0 {
            continue;
        }
        url = Some(s.url);
        batch.extend((s.next..s.next + take).map(|seq| (l, seq)));
        if batch.len() == limit {
            return (l + 1) % n;
        }
    }
    (cursor + 1) % n.max(1)
}

fn tx_index(plan: &Plan, sender: usize, seq: u32) -> usize {
    sender * plan.txs_per_sender as usize + seq as usize
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::bench::RATE_MAX;

    #[test]
    fn pacing_sends_the_first_at_once_and_the_kth_at_k_over_rate() {
        assert_eq!(due_by(Duration::ZERO, 100), 1);
        assert_eq!(due_by(Duration::from_millis(9), 100), 1);
        assert_eq!(due_by(Duration::from_millis(10), 100), 2);
        assert_eq!(due_by(Duration::from_secs(1), 100), 101);
        assert_eq!(due_by(Duration::from_secs(30), 500), 15_001);
        assert_eq!(due_at(0, 100), Duration::ZERO);
        assert_eq!(due_at(1, 100), Duration::from_millis(10));
        assert_eq!(due_at(1, 3), Duration::from_nanos(333_333_334));
        for rate in [1, 3, 7, 500, 99_999, RATE_MAX] {
            for k in [0, 1, 2, 10, 1_000, 123_456] {
                let at = due_at(k, rate);
                assert_eq!(due_by(at, rate), k + 1, "rate {rate} k {k}");
                if !at.is_zero() {
                    assert_eq!(due_by(at - Duration::from_nanos(1), rate), k);
                }
            }
        }
    }

    #[test]
    fn refusals_for_a_full_pool_are_retried_and_others_give_the_sender_up() {
        let refusal = |code: i64, reason: &str| -> Result<Value, RpcFailure> {
            Err(RpcFailure {
                code,
                message: "refused".into(),
                data: Some(json!({ "reason": reason })),
            })
        };
        assert_eq!(verdict(&Ok(json!({})), false), Verdict::Accepted);
        assert_eq!(
            verdict(&refusal(codes::TX_POOL_FULL, "pool_full"), false),
            Verdict::Retry("pool_full".into())
        );
        assert_eq!(
            verdict(&refusal(codes::TX_SENDER_FULL, "sender_full"), false),
            Verdict::Retry("sender_full".into())
        );
        assert_eq!(
            verdict(&refusal(codes::TX_DUPLICATE, "duplicate"), false),
            Verdict::Accepted
        );
        assert_eq!(
            verdict(&refusal(codes::TX_STALE_NONCE, "stale_nonce"), false),
            Verdict::Fatal("stale_nonce".into())
        );
        assert_eq!(
            verdict(&refusal(codes::TX_STALE_NONCE, "stale_nonce"), true),
            Verdict::Accepted
        );
        let internal = Err(RpcFailure {
            code: codes::INTERNAL_ERROR,
            message: "boom".into(),
            data: None,
        });
        assert_eq!(
            verdict(&internal, false),
            Verdict::Fatal("rpc_error_32603".into())
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        assert_eq!(backoff(1), RETRY_BACKOFF_BASE);
        assert_eq!(backoff(2), RETRY_BACKOFF_BASE * 2);
        assert_eq!(backoff(3), RETRY_BACKOFF_BASE * 4);
        assert_eq!(backoff(RETRIES_MAX), RETRY_BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), RETRY_BACKOFF_MAX);
    }
}
