//! Oracle gauges (`cairn_oracle_…`), per feed: the price in force, its age, the open round, operators and
//! stake. Feed labels come from genesis (at most `cairn_oracle::FEEDS_MAX`), never from
//! requests, so the registry stays bounded.

use std::sync::atomic::AtomicU64;

use cairn_ledger::Height;
use cairn_ledger::oracle::OracleState;
use cairn_ledger::oracle::rules::FEEDS_MAX;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FeedLabel {
    pub feed: String,
}

#[derive(Default)]
pub struct OracleMetrics {
    price: Family<FeedLabel, Gauge<f64, AtomicU64>>,
    price_age_blocks: Family<FeedLabel, Gauge>,
    round: Family<FeedLabel, Gauge>,
    operators: Family<FeedLabel, Gauge>,
    stake: Family<FeedLabel, Gauge<f64, AtomicU64>>,
}

impl OracleMetrics {
    /// Registers every metric under `oracle_` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("oracle");
        registry.register(
            "price",
            "Price in force per feed, in units of the quote (absent until a round has quorum)",
            self.price.clone(),
        );
        registry.register(
            "price_age_blocks",
            "Blocks since the feed's price was set",
            self.price_age_blocks.clone(),
        );
        registry.register("round", "The feed's open round", self.round.clone());
        registry.register(
            "operators",
            "Operators with stake in the feed",
            self.operators.clone(),
        );
        registry.register("stake", "Bonded stake in the feed", self.stake.clone());
    }

    /// Sets every gauge from the oracle after block `height`.
    pub fn observe(&self, height: Height, oracle: &OracleState) {
        let now = cairn_ledger::oracle::height_to_rules(height);
        for feed in oracle.feeds().take(FEEDS_MAX) {
            let label = FeedLabel {
                feed: feed.id().to_string(),
            };
            let view = feed.price(now);
            if let Some(last) = view.last {
                let scale = 10f64.powi(i32::from(view.decimals));
                self.price
                    .get_or_create(&label)
                    .set(last.band.median.0 as f64 / scale);
            }
            if let Some(age) = view.age_blocks {
                self.price_age_blocks
                    .get_or_create(&label)
                    .set(i64::try_from(age).unwrap_or(i64::MAX));
            }
            self.round
                .get_or_create(&label)
                .set(i64::try_from(view.current_round.0).unwrap_or(i64::MAX));
            self.operators
                .get_or_create(&label)
                .set(feed.operators().len() as i64);
            self.stake
                .get_or_create(&label)
                .set(feed.stake_total() as f64);
        }
    }
}
