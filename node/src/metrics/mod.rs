//! The node's Prometheus metrics: one `Metrics` value owns the registry and every metric,
//! all named `cairn_…`. Whoever observes an event (RPC, mempool admission, the driver) updates
//! the matching field; `/metrics` renders them.
//!
//! Never creates a label value from unbounded input: every label comes from a fixed set
//! (rejection reasons, RPC method names, drop reasons chosen in code), so a client cannot grow
//! the registry without limit.

pub mod oracle;

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

/// A label naming an RPC method; unknown methods share one value (see `rpc`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    pub method: &'static str,
}

/// The node's metrics. Cheap to update from any thread (atomics); share it in an `Arc`.
pub struct Metrics {
    registry: Registry,
    /// Height of the committed tip.
    pub height: Gauge,
    /// Current consensus round.
    pub round: Gauge,
    /// Rounds since the last commit; a growing value means the network is stuck.
    pub rounds_without_commit: Gauge,
    pub timeouts: Counter,
    /// Timeout certificates formed.
    pub tcs: Counter,
    pub leader_changes: Counter,
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
    /// Proof of work: nonces tried per second by this node's miner threads, all together.
    pub pow_hashrate: Gauge<f64, AtomicU64>,
    /// Proof of work: blocks this node mined and connected.
    pub pow_blocks_mined: Counter,
    /// Proof of work: reorganisations followed (the tip moved to another branch).
    pub pow_reorgs: Counter,
    /// Proof of work: blocks undone by the deepest reorganisation followed so far.
    pub pow_reorg_depth_max: Gauge,
    /// Proof of work: reorganisations refused because they were deeper than
    /// `[pow] reorg_depth_max`.
    pub pow_reorgs_refused: Counter,
    /// Proof of work: blocks or headers refused as invalid, by reason.
    pub pow_invalid: Family<ReasonLabel, Counter>,
    /// Proof of work: height of the best header known (bodies may still be on their way).
    pub pow_best_header_height: Gauge,
    pub oracle: oracle::OracleMetrics,
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
            round: Gauge::default(),
            rounds_without_commit: Gauge::default(),
            timeouts: Counter::default(),
            tcs: Counter::default(),
            leader_changes: Counter::default(),
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
            pow_hashrate: Gauge::default(),
            pow_blocks_mined: Counter::default(),
            pow_reorgs: Counter::default(),
            pow_reorg_depth_max: Gauge::default(),
            pow_reorgs_refused: Counter::default(),
            pow_invalid: Family::default(),
            pow_best_header_height: Gauge::default(),
            oracle: Default::default(),
        };
        // Metrics are handles onto shared atomics: registering clones keeps the fields live.
        // Counters are registered without `_total`; the encoder appends it.
        registry.register("height", "Height of the committed tip", m.height.clone());
        registry.register("round", "Current consensus round", m.round.clone());
        registry.register(
            "rounds_without_commit",
            "Rounds since the last committed block",
            m.rounds_without_commit.clone(),
        );
        registry.register("timeouts", "Round timeouts", m.timeouts.clone());
        registry.register("tcs", "Timeout certificates formed", m.tcs.clone());
        registry.register(
            "leader_changes",
            "Changes of round leader",
            m.leader_changes.clone(),
        );
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
        registry.register(
            "pow_hashrate",
            "Nonces tried per second by this node's miner threads",
            m.pow_hashrate.clone(),
        );
        registry.register(
            "pow_blocks_mined",
            "Blocks this node mined and connected",
            m.pow_blocks_mined.clone(),
        );
        registry.register(
            "pow_reorgs",
            "Reorganisations to another branch",
            m.pow_reorgs.clone(),
        );
        registry.register(
            "pow_reorg_depth_max",
            "Blocks undone by the deepest reorganisation followed",
            m.pow_reorg_depth_max.clone(),
        );
        registry.register(
            "pow_reorgs_refused",
            "Reorganisations refused as deeper than [pow] reorg_depth_max",
            m.pow_reorgs_refused.clone(),
        );
        registry.register(
            "pow_invalid",
            "Blocks or headers refused as invalid, by reason",
            m.pow_invalid.clone(),
        );
        registry.register(
            "pow_best_header_height",
            "Height of the best header known",
            m.pow_best_header_height.clone(),
        );
        m.oracle.register(&mut registry);
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
            "cairn_round ",
            "cairn_rounds_without_commit ",
            "cairn_timeouts_total ",
            "cairn_tcs_total ",
            "cairn_leader_changes_total ",
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
