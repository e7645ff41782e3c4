//! What every BFT engine reports (`cairn_bft_…`): rounds, timeouts, leaders. HotStuff's own
//! metrics are in [`super::hotstuff`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ValidatorLabel {
    pub validator: String,
}

#[derive(Default)]
pub struct BftMetrics {
    /// Current consensus round.
    pub round: Gauge,
    /// Rounds since the last commit; a growing value means the network is stuck.
    pub rounds_without_commit: Gauge,
    pub timeouts: Counter,
    pub leader_changes: Counter,
    /// Per validator: the round of its failed turn as leader while leader reputation passes
    /// it over, 0 otherwise.
    pub passed_over: Family<ValidatorLabel, Gauge>,
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
        registry.register(
            "passed_over",
            "Round of the failed turn for which leader reputation passes this validator over \
             (0: not passed over)",
            self.passed_over.clone(),
        );
    }
}
