//! Every feed together: the state the ledger stores, and the calls its transactions and
//! its end-of-block step make. Feeds are kept and visited in feed id order, so the results
//! (and the serialized state) are the same on every node.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{AddFeedError, CommitError, EndBlockError, QueryError, RevealError, StakeError};
use crate::feed::{FeedState, OperatorStatus, PriceView, Release, RoundStatus};
use crate::params::{FeedParams, OracleConfig, ParamError};
use crate::round::{RoundReport, RoundSummary};
use crate::stake::Unbonding;
use crate::types::{Amount, CommitHash, FeedId, Height, OperatorId, Price, RoundNumber, Salt};
use crate::{FEEDS_MAX, ROUND_HISTORY_MAX};

/// What the end of a block did, over all feeds in feed id order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndBlock {
    pub rounds: Vec<RoundReport>,
    pub releases: Vec<Release>,
}

/// The oracle's whole state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Oracle {
    config: OracleConfig,
    /// At most [`FEEDS_MAX`].
    feeds: BTreeMap<FeedId, FeedState>,
    /// The height of the last [`Oracle::end_block`].
    last_end_block: Option<Height>,
}

impl Oracle {
    pub fn new(config: OracleConfig) -> Result<Oracle, ParamError> {
        config.validate()?;
        Ok(Oracle {
            config,
            feeds: BTreeMap::new(),
            last_end_block: None,
        })
    }

    /// Reassembles an oracle from parts stored separately (the ledger may keep each feed
    /// under its own key, so a block rewrites only the feeds it changed). Checks the config,
    /// the number of feeds and that ids are distinct.
    pub fn from_parts(
        config: OracleConfig,
        feeds: Vec<FeedState>,
        last_end_block: Option<Height>,
    ) -> Result<Oracle, AddFeedError> {
        config.validate()?;
        let mut oracle = Oracle {
            config,
            feeds: BTreeMap::new(),
            last_end_block,
        };
        for feed in feeds {
            if oracle.feeds.len() >= FEEDS_MAX {
                return Err(AddFeedError::TooManyFeeds { max: FEEDS_MAX });
            }
            if oracle.feeds.contains_key(feed.id()) {
                return Err(AddFeedError::Duplicate {
                    feed: feed.id().clone(),
                });
            }
            oracle.feeds.insert(feed.id().clone(), feed);
        }
        Ok(oracle)
    }

    /// The parts [`Oracle::from_parts`] takes, feeds in id order.
    pub fn into_parts(self) -> (OracleConfig, Vec<FeedState>, Option<Height>) {
        (
            self.config,
            self.feeds.into_values().collect(),
            self.last_end_block,
        )
    }

    pub fn config(&self) -> &OracleConfig {
        &self.config
    }

    /// Adds a feed whose round 0 starts at `start` (see [`FeedState::new`]).
    pub fn add_feed(&mut self, params: FeedParams, start: Height) -> Result<(), AddFeedError> {
        if self.feeds.contains_key(&params.id) {
            return Err(AddFeedError::Duplicate { feed: params.id });
        }
        if self.feeds.len() >= FEEDS_MAX {
            return Err(AddFeedError::TooManyFeeds { max: FEEDS_MAX });
        }
        let feed = FeedState::new(params, start, &self.config)?;
        self.feeds.insert(feed.id().clone(), feed);
        Ok(())
    }

    pub fn feed(&self, id: &FeedId) -> Option<&FeedState> {
        self.feeds.get(id)
    }

    /// Every feed, in id order.
    pub fn feeds(&self) -> impl Iterator<Item = &FeedState> {
        self.feeds.values()
    }

    pub fn last_end_block(&self) -> Option<Height> {
        self.last_end_block
    }

    /// See [`FeedState::stake`].
    pub fn stake(
        &mut self,
        feed: &FeedId,
        operator: OperatorId,
        amount: Amount,
        height: Height,
    ) -> Result<Amount, StakeError> {
        let config = &self.config;
        let f = self
            .feeds
            .get_mut(feed)
            .ok_or_else(|| StakeError::UnknownFeed { feed: feed.clone() })?;
        f.stake(config, operator, amount, height)
    }

    /// See [`FeedState::unstake`].
    pub fn unstake(
        &mut self,
        feed: &FeedId,
        operator: OperatorId,
        amount: Amount,
        height: Height,
    ) -> Result<Unbonding, StakeError> {
        let config = &self.config;
        let f = self
            .feeds
            .get_mut(feed)
            .ok_or_else(|| StakeError::UnknownFeed { feed: feed.clone() })?;
        f.unstake(config, operator, amount, height)
    }

    /// See [`FeedState::commit`].
    pub fn commit(
        &mut self,
        feed: &FeedId,
        operator: OperatorId,
        round: RoundNumber,
        hash: CommitHash,
        height: Height,
    ) -> Result<(), CommitError> {
        self.feeds
            .get_mut(feed)
            .ok_or_else(|| CommitError::UnknownFeed { feed: feed.clone() })?
            .commit(operator, round, hash, height)
    }

    /// See [`FeedState::reveal`].
    pub fn reveal(
        &mut self,
        feed: &FeedId,
        operator: OperatorId,
        round: RoundNumber,
        value: Price,
        salt: Salt,
        height: Height,
    ) -> Result<(), RevealError> {
        self.feeds
            .get_mut(feed)
            .ok_or_else(|| RevealError::UnknownFeed { feed: feed.clone() })?
            .reveal(operator, round, value, salt, height)
    }

    /// The end of block `height`, after its transactions: [`FeedState::end_block`] for every
    /// feed. Call it for every height, in order; a height not above the last one is refused.
    pub fn end_block(&mut self, height: Height) -> Result<EndBlock, EndBlockError> {
        if let Some(last) = self.last_end_block.filter(|&last| height <= last) {
            return Err(EndBlockError::NotIncreasing { height, last });
        }
        self.last_end_block = Some(height);
        let mut out = EndBlock::default();
        for feed in self.feeds.values_mut() {
            let done = feed.end_block(&self.config, height);
            out.rounds.extend(done.rounds);
            out.releases.extend(done.releases);
        }
        Ok(out)
    }

    // -----------------------------------------------------------------------------------------
    // Queries.

    fn get(&self, feed: &FeedId) -> Result<&FeedState, QueryError> {
        self.feeds
            .get(feed)
            .ok_or_else(|| QueryError::UnknownFeed { feed: feed.clone() })
    }

    pub fn price(&self, feed: &FeedId, now: Height) -> Result<PriceView, QueryError> {
        Ok(self.get(feed)?.price(now))
    }

    pub fn twap(
        &self,
        feed: &FeedId,
        now: Height,
        window_blocks: u64,
    ) -> Result<Price, QueryError> {
        self.get(feed)?
            .twap(now, window_blocks)
            .map_err(|source| QueryError::Twap {
                feed: feed.clone(),
                source,
            })
    }

    pub fn operator_status(
        &self,
        feed: &FeedId,
        operator: &OperatorId,
    ) -> Result<OperatorStatus, QueryError> {
        self.get(feed)?
            .operator_status(operator)
            .ok_or_else(|| QueryError::NotOperator {
                feed: feed.clone(),
                operator: *operator,
            })
    }

    pub fn round_status(&self, feed: &FeedId, now: Height) -> Result<RoundStatus, QueryError> {
        Ok(self.get(feed)?.round_status(now))
    }

    /// Up to `n` (at most [`ROUND_HISTORY_MAX`]) of the feed's latest rounds, newest first.
    pub fn history(&self, feed: &FeedId, n: usize) -> Result<Vec<RoundSummary>, QueryError> {
        Ok(self
            .get(feed)?
            .history()
            .take(n.min(ROUND_HISTORY_MAX))
            .copied()
            .collect())
    }
}
