//! What only proof of work reports (`cairn_pow_…`): the miner, reorganisations, invalid
//! blocks and the best header.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::ReasonLabel;

#[derive(Default)]
pub struct PowMetrics {
    /// Nonces tried per second by this node's miner threads, all together.
    pub hashrate: Gauge<f64, AtomicU64>,
    /// Blocks this node mined and connected.
    pub blocks_mined: Counter,
    /// Reorganisations followed (the tip moved to another branch).
    pub reorgs: Counter,
    /// Blocks undone by the deepest reorganisation followed so far.
    pub reorg_depth_max: Gauge,
    /// Reorganisations refused because they were deeper than `[pow] reorg_depth_max`.
    pub reorgs_refused: Counter,
    /// Blocks or headers refused as invalid, by reason.
    pub invalid: Family<ReasonLabel, Counter>,
    /// Height of the best header known (bodies may still be on their way).
    pub best_header_height: Gauge,
}

impl PowMetrics {
    /// Registers every metric under `pow_` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("pow");
        registry.register(
            "hashrate",
            "Nonces tried per second by this node's miner threads",
            self.hashrate.clone(),
        );
        registry.register(
            "blocks_mined",
            "Blocks this node mined and connected",
            self.blocks_mined.clone(),
        );
        registry.register(
            "reorgs",
            "Reorganisations to another branch",
            self.reorgs.clone(),
        );
        registry.register(
            "reorg_depth_max",
            "Blocks undone by the deepest reorganisation followed",
            self.reorg_depth_max.clone(),
        );
        registry.register(
            "reorgs_refused",
            "Reorganisations refused as deeper than [pow] reorg_depth_max",
            self.reorgs_refused.clone(),
        );
        registry.register(
            "invalid",
            "Blocks or headers refused as invalid, by reason",
            self.invalid.clone(),
        );
        registry.register(
            "best_header_height",
            "Height of the best header known",
            self.best_header_height.clone(),
        );
    }
}
