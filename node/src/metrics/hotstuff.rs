//! What only HotStuff reports (`cairn_hotstuff_…`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

#[derive(Default)]
pub struct HotStuffMetrics {
    /// Timeout certificates formed.
    pub tcs: Counter,
}

impl HotStuffMetrics {
    /// Registers every metric under `hotstuff_` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("hotstuff");
        registry.register("tcs", "Timeout certificates formed", self.tcs.clone());
    }
}
