//! The node's Prometheus metrics: one `Metrics` value owns the registry and every metric.
//! Whoever observes an event (RPC, mempool admission, a driver) updates the matching field;
//! `/metrics` renders them.
//!
//! One prefix scheme, so a dashboard knows from a name which nodes have it:
//! - `cairn_<name>`: what every engine has (height, peers, messages_dropped, sync_progress,
//!   mempool_*, txs_rejected, rpc_requests, block_interval_seconds, commit_latency_seconds),
//!   fields of [`Metrics`] itself;
//! - `cairn_bft_<name>`: what every BFT engine has (round, rounds_without_commit, timeouts,
//!   leader_changes), in [`bft`];
//! - `cairn_hotstuff_<name>`: HotStuff only (tcs), in [`hotstuff`];
//! - `cairn_pbft_<name>`: PBFT only (commit_round, failed_rounds), in [`pbft`];
//! - `cairn_pow_<name>`: proof of work only, in [`pow`];
//! - `cairn_oracle_<name>`: the oracle's feeds, in [`oracle`];
//! - `cairn_upgrade_<name>`: the upgrade schedule against the tip, in [`upgrade`].
//!
//! Never creates a label value from unbounded input: every label comes from a fixed set
//! (rejection reasons, RPC method names, drop reasons chosen in code), so a client cannot grow
//! the registry without limit.

pub mod bft;
pub mod hotstuff;
pub mod oracle;
pub mod pbft;
pub mod pow;
pub mod upgrade;

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Every metric name starts with this and an underscore.
pub const METRICS_PREFIX: &str = "cairn";

/// Commit latency buckets: 10 ms doubling to about 41 s (13 buckets) spans a fast local BFT
/// commit to a commit after several round timeouts.
const LATENCY_BUCKET_START_SECONDS: f64 = 0.01;
const LATENCY_BUCKET_FACTOR: f64 = 2.0;
const LATENCY_BUCKETS: u16 = 13;
/// Block interval buckets: 50 ms doubling to about 205 s (13 buckets) spans BFT blocks
/// (sub-second) to proof-of-work blocks (seconds to minutes).
const INTERVAL_BUCKET_START_SECONDS: f64 = 0.05;
const INTERVAL_BUCKET_FACTOR: f64 = 2.0;
const INTERVAL_BUCKETS: u16 = 13;

/// A label naming why something happened; values are `&'static str` so they come from code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// A label naming an RPC method; unknown methods share one value (see
/// `crate::http::rpc`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    pub method: &'static str,
}

/// The node's metrics. Cheap to update from any thread (atomics); share it in an `Arc`.
pub struct Metrics {
    registry: Registry,
    /// Height of the committed tip.
    pub height: Gauge,
    /// From proposal to commit of our own blocks.
    pub commit_latency_seconds: Histogram,
    /// Between consecutive committed blocks.
    pub block_interval_seconds: Histogram,
    pub peers: Gauge,
    pub messages_dropped: Family<ReasonLabel, Counter>,
    /// Fraction of the way to the best known height while syncing, 0.0 to 1.0.
    pub sync_progress: Gauge<f64, AtomicU64>,
    pub mempool_size: Gauge,
    pub mempool_bytes: Gauge,
    pub txs_rejected: Family<ReasonLabel, Counter>,
    pub rpc_requests: Family<MethodLabel, Counter>,
    pub bft: bft::BftMetrics,
    pub hotstuff: hotstuff::HotStuffMetrics,
    pub pbft: pbft::PbftMetrics,
    pub pow: pow::PowMetrics,
    pub oracle: oracle::OracleMetrics,
    pub upgrade: upgrade::UpgradeMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix(METRICS_PREFIX);
        let m = Metrics {
            registry: Registry::default(),
            height: Gauge::default(),
            commit_latency_seconds: Histogram::new(exponential_buckets(
                LATENCY_BUCKET_START_SECONDS,
                LATENCY_BUCKET_FACTOR,
                LATENCY_BUCKETS,
            )),
            block_interval_seconds: Histogram::new(exponential_buckets(
                INTERVAL_BUCKET_START_SECONDS,
                INTERVAL_BUCKET_FACTOR,
                INTERVAL_BUCKETS,
            )),
            peers: Gauge::default(),
            messages_dropped: Family::default(),
            sync_progress: Gauge::default(),
            mempool_size: Gauge::default(),
            mempool_bytes: Gauge::default(),
            txs_rejected: Family::default(),
            rpc_requests: Family::default(),
            bft: Default::default(),
            hotstuff: Default::default(),
            pbft: Default::default(),
            pow: Default::default(),
            oracle: Default::default(),
            upgrade: Default::default(),
        };
        // Metrics are handles onto shared atomics: registering clones keeps the fields live.
        // Counters are registered without `_total`; the encoder appends it.
        registry.register("height", "Height of the committed tip", m.height.clone());
        registry.register(
            "commit_latency_seconds",
            "Seconds from proposing a block to committing it",
            m.commit_latency_seconds.clone(),
        );
        registry.register(
            "block_interval_seconds",
            "Seconds between consecutive committed blocks",
            m.block_interval_seconds.clone(),
        );
        registry.register("peers", "Connected peers", m.peers.clone());
        registry.register(
            "messages_dropped",
            "Peer messages dropped, by reason",
            m.messages_dropped.clone(),
        );
        registry.register(
            "sync_progress",
            "Sync progress towards the best known height, 0 to 1",
            m.sync_progress.clone(),
        );
        registry.register(
            "mempool_size",
            "Pending transactions",
            m.mempool_size.clone(),
        );
        registry.register(
            "mempool_bytes",
            "Bytes of pending transactions",
            m.mempool_bytes.clone(),
        );
        registry.register(
            "txs_rejected",
            "Transactions refused by the mempool, by reason",
            m.txs_rejected.clone(),
        );
        registry.register(
            "rpc_requests",
            "JSON-RPC calls, by method",
            m.rpc_requests.clone(),
        );
        m.bft.register(&mut registry);
        m.hotstuff.register(&mut registry);
        m.pbft.register(&mut registry);
        m.pow.register(&mut registry);
        m.oracle.register(&mut registry);
        m.upgrade.register(&mut registry);
        Metrics { registry, ..m }
    }

    /// Counts a mempool rejection under its stable reason.
    pub fn reject(&self, reason: &'static str) {
        self.txs_rejected
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// The registry in the Prometheus/OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a metric,
        // and a partial page is still more useful to an operator than none.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// A count as a gauge value, saturating.
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Content type of [`Metrics::render`]'s output.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_registered_with_the_prefix() {
        let m = Metrics::new();
        m.reject("duplicate");
        m.messages_dropped
            .get_or_create(&ReasonLabel {
                reason: "too_large",
            })
            .inc();
        m.rpc_requests
            .get_or_create(&MethodLabel { method: "status" })
            .inc();
        m.commit_latency_seconds.observe(0.2);
        let text = m.render();
        for name in [
            "cairn_height ",
            "cairn_bft_round ",
            "cairn_bft_rounds_without_commit ",
            "cairn_bft_timeouts_total ",
            "cairn_hotstuff_tcs_total ",
            "cairn_pbft_commit_round ",
            "cairn_pbft_failed_rounds_total ",
            "cairn_bft_leader_changes_total ",
            "cairn_commit_latency_seconds_bucket",
            "cairn_block_interval_seconds_bucket",
            "cairn_peers ",
            "cairn_messages_dropped_total{reason=\"too_large\"} 1",
            "cairn_sync_progress ",
            "cairn_mempool_size ",
            "cairn_mempool_bytes ",
            "cairn_txs_rejected_total{reason=\"duplicate\"} 1",
            "cairn_rpc_requests_total{method=\"status\"} 1",
            "cairn_pow_hashrate ",
            "cairn_pow_blocks_mined_total ",
            "cairn_pow_reorgs_total ",
            "cairn_pow_reorg_depth_max ",
            "cairn_pow_reorgs_refused_total ",
            "cairn_pow_best_header_height ",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
