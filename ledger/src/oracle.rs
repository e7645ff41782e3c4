//! The oracle inside the ledger: where its state lives, how it enters the state root, and
//! how its rules (the pure `cairn-oracle` crate) meet accounts.
//!
//! - Each feed's whole state is one leaf of the state tree (key: the feed id, value: the
//!   hash of its canonical encoding) and one row of the store's `oracle` column family. A
//!   block rewrites only the feeds it changed: those its transactions touched, and those
//!   whose round ended or whose unbonding entries came due at its height.
//! - An operator's bonded and unbonding stake, over all feeds, sits in its account's `stake`
//!   (not spendable). Staking moves balance to stake; a release at the end of the unbonding
//!   period moves stake back to balance; a penalty removes stake and burns it; a round reward
//!   is minted to the operator's balance. Supply changes only by rewards minted and penalties
//!   burnt, and each block reports both.
//! - Transactions whose oracle action is refused (a late reveal, a commit by an operator not
//!   eligible, …) are still included: the sender pays the fee, its nonce advances, and the
//!   receipt says what was refused and why. Only what a transaction signs for can be
//!   checked before it lands (signature, nonce, balance); the oracle's answer depends on the
//!   height it lands at.
//! - Feeds come from genesis; their round 0 starts at [`FEED_START_HEIGHT`].

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_oracle::{FeedId, FeedParams, FeedState, OracleConfig, ParamError};

use crate::genesis::params::OracleParams;
use crate::types::{Address, Amount, Hash, Height};

pub use cairn_oracle as rules;

/// The height of every genesis feed's first round. Block 0 is genesis itself and runs no
/// end-of-block step.
pub const FEED_START_HEIGHT: Height = Height(1);

/// The oracle at one block: the oracle-wide rules from genesis and every feed's state.
/// Feeds are shared between the states of consecutive blocks; a block replaces only the
/// feeds it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OracleState {
    config: OracleConfig,
    feeds: BTreeMap<FeedId, Arc<FeedState>>,
}

impl OracleState {
    /// The oracle genesis describes, before any block: `None` when genesis has no oracle
    /// section. Every feed's parameters are checked against the oracle's rules.
    pub fn from_genesis(params: &OracleParams) -> Result<Option<OracleState>, ParamError> {
        if *params == OracleParams::default() {
            return Ok(None);
        }
        let config = OracleConfig {
            unbonding_blocks: params.unbonding_blocks,
            min_operator_stake: amount_to_rules(params.min_operator_stake),
        };
        config.validate()?;
        let mut feeds = BTreeMap::new();
        for f in &params.feeds {
            let id = FeedId::new(&f.id).map_err(|e| ParamError {
                feed: None,
                field: "id",
                value: 0,
                rule: e.to_string(),
            })?;
            let rule_params = FeedParams {
                id: id.clone(),
                decimals: f.decimals,
                commit_window_blocks: f.commit_window_blocks,
                reveal_window_blocks: f.reveal_window_blocks,
                quorum_bps: f.quorum_bps,
                // Genesis sets quorum as a share of stake only.
                quorum_stake_min: cairn_oracle::Amount::ZERO,
                reward_band_bps: f.reward_band_bps,
                reveal_miss_penalty_bps: f.reveal_miss_penalty_bps,
                out_of_band_penalty_bps: f.out_of_band_penalty_bps,
                round_reward: amount_to_rules(params.round_reward),
            };
            let feed = FeedState::new(rule_params, height_to_rules(FEED_START_HEIGHT), &config)?;
            feeds.insert(id, Arc::new(feed));
        }
        Ok(Some(OracleState { config, feeds }))
    }

    /// Reassembles the state from stored feeds.
    pub fn from_parts(config: OracleConfig, feeds: Vec<FeedState>) -> OracleState {
        OracleState {
            config,
            feeds: feeds
                .into_iter()
                .map(|f| (f.id().clone(), Arc::new(f)))
                .collect(),
        }
    }

    pub fn config(&self) -> &OracleConfig {
        &self.config
    }

    pub fn feed(&self, id: &FeedId) -> Option<&FeedState> {
        self.feeds.get(id).map(|f| &**f)
    }

    pub(crate) fn feed_arc(&self, id: &FeedId) -> Option<&Arc<FeedState>> {
        self.feeds.get(id)
    }

    /// Every feed, in id order.
    pub fn feeds(&self) -> impl Iterator<Item = &FeedState> {
        self.feeds.values().map(|f| &**f)
    }

    /// Why `id` is not a feed here, naming the feeds that are.
    pub fn unknown_feed(&self, id: &FeedId) -> String {
        let known: Vec<&str> = self.feeds.keys().map(FeedId::as_str).collect();
        let known = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        format!("there is no feed {id}; feeds on this network: {known}")
    }

    /// This state with `changed` feeds replaced.
    pub fn with_changes(&self, changed: &BTreeMap<FeedId, Arc<FeedState>>) -> OracleState {
        let mut next = self.clone();
        for (id, feed) in changed {
            next.feeds.insert(id.clone(), Arc::clone(feed));
        }
        next
    }
}

/// The state tree key of a feed.
pub fn feed_key(id: &FeedId) -> Hash {
    Hash::tagged(b"cairn/state-key/oracle-feed/v1", &[id.as_str().as_bytes()])
}

/// The state tree value of a feed: its canonical encoding, hashed.
pub fn feed_value(feed: &FeedState) -> Hash {
    Hash::tagged(
        b"cairn/state-value/oracle-feed/v1",
        &[&crate::codec::encode(feed)],
    )
}

/// Whether the end of block `height` can change `feed`: its open round ends, an unbonding
/// entry comes due, or an operator with nothing left may be dropped. Otherwise
/// `FeedState::end_block` would leave it as it is, and the feed is not copied at all.
pub(crate) fn end_block_due(feed: &FeedState, height: Height) -> bool {
    let h = height_to_rules(height);
    feed.open_round().bounds.end <= h
        || feed
            .operators()
            .values()
            .any(|op| op.is_empty() || op.unbonding.iter().any(|u| u.release_height <= h))
}

pub fn operator_id(address: &Address) -> cairn_oracle::OperatorId {
    cairn_oracle::OperatorId(address.0)
}

pub fn operator_address(id: &cairn_oracle::OperatorId) -> Address {
    Address(id.0)
}

pub fn amount_to_rules(a: Amount) -> cairn_oracle::Amount {
    cairn_oracle::Amount(a.0)
}

pub fn amount_from_rules(a: cairn_oracle::Amount) -> Amount {
    Amount(a.0)
}

pub fn height_to_rules(h: Height) -> cairn_oracle::Height {
    cairn_oracle::Height(h.0)
}

pub fn height_from_rules(h: cairn_oracle::Height) -> Height {
    Height(h.0)
}
