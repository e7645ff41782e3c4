//! What only PBFT reports (`cairn_pbft_…`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Default)]
pub struct PbftMetrics {
    /// The round in which the last committed height was decided (its commit certificate's).
    pub commit_round: Gauge,
    /// Rounds that ended without a block, summed over the heights this node committed in
    /// consensus (a batch caught up by sync counts its last height only: the one certificate
    /// it comes with).
    pub failed_rounds: Counter,
}

impl PbftMetrics {
    /// Registers every metric under `pbft_` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("pbft");
        registry.register(
            "commit_round",
            "Round in which the last committed height was decided (0: its first proposer's block)",
            self.commit_round.clone(),
        );
        registry.register(
            "failed_rounds",
            "Rounds that ended without a block, over the heights this node committed (a synced batch: its last height)",
            self.failed_rounds.clone(),
        );
    }
}
