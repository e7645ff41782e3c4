//! What every BFT engine reports (`cairn_bft_…`): rounds, timeouts, leaders. HotStuff's own
//! metrics are in [`super::hotstuff`].

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Default)]
pub struct BftMetrics {
    /// Current consensus round.
    pub round: Gauge,
    /// Rounds since the last commit; a growing value means the network is stuck.
    pub rounds_without_commit: Gauge,
    pub timeouts: Counter,
    pub leader_changes: Counter,
}

impl BftMetrics {
    /// Registers every metric under `bft_` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("bft");
        registry.register("round", "Current consensus round", self.round.clone());
        registry.register(
            "rounds_without_commit",
            "Rounds since the last committed block",
            self.rounds_without_commit.clone(),
        );
        registry.register("timeouts", "Round timeouts", self.timeouts.clone());
        registry.register(
            "leader_changes",
            "Changes of round leader",
            self.leader_changes.clone(),
        );
    }
}
