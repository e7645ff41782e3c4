//! Why an operation was refused. One enum per operation, each variant carrying the offending
//! values; the ledger turns them into transaction errors and the CLI into sentences. A
//! refused operation changes nothing.

use crate::params::ParamError;
use crate::twap::TwapError;
use crate::types::{Amount, CommitHash, FeedId, Height, OperatorId, RoundNumber};

/// Adding a feed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddFeedError {
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error("feed {feed} already exists")]
    Duplicate { feed: FeedId },
    #[error("the oracle already has the most feeds it may have, {max}")]
    TooManyFeeds { max: usize },
}

/// A stake or an unstake.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StakeError {
    #[error("no feed {feed}")]
    UnknownFeed { feed: FeedId },
    #[error("the amount must be more than 0")]
    ZeroAmount,
    #[error("bonded stake would be {bonded_after}, below the minimum operator stake of {min}")]
    BelowMinimum { bonded_after: Amount, min: Amount },
    #[error("the feed already has the most operators it may have, {max}")]
    TooManyOperators { max: usize },
    #[error("the feed's total stake would pass the largest amount, {}", u64::MAX)]
    StakeOverflow,
    #[error("{operator} is not an operator of this feed")]
    NotOperator { operator: OperatorId },
    #[error("cannot unstake {requested}: only {bonded} is bonded")]
    InsufficientBonded { bonded: Amount, requested: Amount },
    #[error(
        "unstaking would leave {remaining} bonded, below the minimum of {min}; unstake everything or leave at least the minimum"
    )]
    WouldLeaveDust { remaining: Amount, min: Amount },
    #[error(
        "{max} unstakes are already waiting out the unbonding period; wait for the first to be released"
    )]
    TooManyUnbonding { max: usize },
    #[error("the release height would pass the largest height")]
    HeightOverflow,
}

/// A commitment.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error("no feed {feed}")]
    UnknownFeed { feed: FeedId },
    #[error(
        "round {round} is not open for commitments at height {height}{}",
        commit_from.map(|h| format!("; its commit window opens at height {h}")).unwrap_or_default()
    )]
    Early {
        round: RoundNumber,
        height: Height,
        commit_from: Option<Height>,
    },
    #[error(
        "the commit window of round {round} closed at height {commit_until}; this is height {height}"
    )]
    Late {
        round: RoundNumber,
        height: Height,
        commit_until: Height,
    },
    #[error(
        "{operator} may not commit in round {round}: it did not have the minimum bonded stake when the round opened (stake counts from the round after it is bonded)"
    )]
    NotEligible {
        operator: OperatorId,
        round: RoundNumber,
    },
    #[error("{operator} already committed in round {round}; a commitment cannot be replaced")]
    DuplicateCommit {
        operator: OperatorId,
        round: RoundNumber,
    },
}

/// A reveal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RevealError {
    #[error("no feed {feed}")]
    UnknownFeed { feed: FeedId },
    #[error(
        "round {round} is not in its reveal window at height {height}{}",
        reveal_from.map(|h| format!("; it opens at height {h}")).unwrap_or_default()
    )]
    Early {
        round: RoundNumber,
        height: Height,
        reveal_from: Option<Height>,
    },
    #[error(
        "the reveal window of round {round} closed at height {reveal_until}; this is height {height}"
    )]
    Late {
        round: RoundNumber,
        height: Height,
        reveal_until: Height,
    },
    #[error("{operator} made no commitment in round {round}")]
    NoCommit {
        operator: OperatorId,
        round: RoundNumber,
    },
    #[error(
        "the value and salt open the commitment of {owner}, not of {operator}: an operator can reveal only its own commitment"
    )]
    AnotherOperatorsCommit {
        operator: OperatorId,
        owner: OperatorId,
        round: RoundNumber,
    },
    #[error(
        "the value and salt give {revealed}, not {committed}, the commitment of {operator} in round {round}"
    )]
    Mismatch {
        operator: OperatorId,
        round: RoundNumber,
        committed: CommitHash,
        revealed: CommitHash,
    },
    #[error("{operator} already revealed in round {round}")]
    DuplicateReveal {
        operator: OperatorId,
        round: RoundNumber,
    },
}

/// Ending a block.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndBlockError {
    #[error("end of block {height} after the end of block {last}: heights must increase")]
    NotIncreasing { height: Height, last: Height },
}

/// A query.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("no feed {feed}")]
    UnknownFeed { feed: FeedId },
    #[error("{operator} is not an operator of feed {feed}")]
    NotOperator { feed: FeedId, operator: OperatorId },
    #[error("feed {feed}: {source}")]
    Twap { feed: FeedId, source: TwapError },
}
