//! A round's state while it is open, and what is reported when it ends.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::median::WeightedBand;
use crate::schedule::RoundBounds;
use crate::types::{Amount, CommitHash, FeedId, Height, OperatorId, Price, RoundNumber};

/// An accepted reveal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reveal {
    pub value: Price,
    pub height: Height,
}

/// An operator's commitment in the open round, and its reveal once accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
    pub hash: CommitHash,
    pub height: Height,
    pub reveal: Option<Reveal>,
}

/// The round currently taking commitments or reveals. Both maps are bounded by the
/// operators of the feed ([`OPERATORS_PER_FEED_MAX`](crate::OPERATORS_PER_FEED_MAX)), since
/// only an eligible operator may commit, once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRound {
    pub bounds: RoundBounds,
    /// Bonded stake, when the round opened, of each operator that had at least the minimum:
    /// the operators that may commit, and the cap on their weight.
    pub eligible: BTreeMap<OperatorId, Amount>,
    /// Sum of `eligible`: the quorum's denominator.
    pub eligible_total: Amount,
    pub commits: BTreeMap<OperatorId, Commitment>,
}

impl OpenRound {
    pub fn number(&self) -> RoundNumber {
        self.bounds.round
    }

    pub fn reveals(&self) -> usize {
        self.commits.values().filter(|c| c.reveal.is_some()).count()
    }
}

/// How a round ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoundOutcome {
    /// Revealed stake reached the quorum: the median is the feed's new price, the band its
    /// confidence.
    Price(WeightedBand),
    /// Too little stake revealed: the feed keeps its previous price (if any).
    NoQuorum,
}

/// How one committed operator fared in a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Revealed within the reward band of the median: shares the reward.
    InBand { value: Price },
    /// Revealed outside the band: penalised at `out_of_band_penalty_bps`.
    OutOfBand { value: Price },
    /// Committed but made no valid reveal: penalised at `reveal_miss_penalty_bps`.
    NotRevealed,
    /// Revealed, but the round had no quorum: neither rewarded nor penalised.
    RevealedWithoutQuorum { value: Price },
}

/// One committed operator's result, in the round's report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    pub operator: OperatorId,
    /// Its weight in the median: its eligible stake, capped by its bonded stake at the end
    /// of the round (before this round's penalties).
    pub weight: Amount,
    pub verdict: Verdict,
    /// Tokens the ledger credits to the operator.
    pub reward: Amount,
    /// Tokens taken from the operator's stake (bonded and unbonding), already deducted here;
    /// the ledger removes them from the operator's account stake.
    pub penalty: Amount,
}

/// A finished round, as kept in the feed's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundSummary {
    pub round: RoundNumber,
    /// Last height of the round: the block at whose end it was finalised.
    pub end_height: Height,
    pub outcome: RoundOutcome,
    /// The feed's price after this round: the new one, or the one kept.
    pub price_in_force: Option<Price>,
    pub eligible_stake: Amount,
    pub revealed_stake: Amount,
    pub commits: u32,
    pub reveals: u32,
    pub rewards_paid: Amount,
    pub penalties: Amount,
}

/// A finished round with every committed operator's result: what `end_block` returns for
/// the ledger to apply (rewards to credit, penalties to remove from account stake).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundReport {
    pub feed: FeedId,
    pub summary: RoundSummary,
    /// One per committed operator, in operator id order.
    pub settlements: Vec<Settlement>,
}
