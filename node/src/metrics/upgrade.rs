//! Where the chain stands against its upgrade schedule (`cairn_upgrade_…`), the same for
//! every engine.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// An upgrade's name, from the genesis schedule: at most as many values as it schedules.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpgradeLabel {
    pub upgrade: String,
}

#[derive(Default)]
pub struct UpgradeMetrics {
    /// Blocks from the committed tip to the next scheduled upgrade's height; -1 when none is
    /// scheduled above the tip.
    pub blocks_until: Gauge,
    /// 1 while the chain is stopped before this upgrade because this binary lacks it.
    pub halted: Family<UpgradeLabel, Gauge>,
}

impl UpgradeMetrics {
    /// Registers every metric under `upgrade_` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("upgrade");
        registry.register(
            "blocks_until",
            "Blocks from the tip to the next scheduled upgrade (-1: none scheduled)",
            self.blocks_until.clone(),
        );
        registry.register(
            "halted",
            "1 while the chain is stopped before this upgrade, which this binary lacks",
            self.halted.clone(),
        );
    }
}
