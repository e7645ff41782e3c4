//! The oracle's rules: price feeds reported by staked operators in commit-reveal rounds,
//! settled by a stake-weighted median, with a TWAP, rewards and penalties.
//!
//! This crate owns the rules and the state they act on. It does no I/O, reads no clock and
//! draws no randomness: the ledger passes heights in, stores the state (plain serde
//! structs, [`Oracle`] at the top), and applies what [`Oracle::end_block`] reports (rewards
//! to credit, penalties and releases to apply to account stake). It never depends on the
//! ledger; the ledger maps its types onto these ([`OperatorId`] is an account address).
//!
//! This documentation is the specification operators read.
//!
//! # Feeds
//!
//! A feed is named `BASE/QUOTE` ([`FeedId`], e.g. `BTC/USD`: each symbol 1 to 12 characters
//! of `A-Z 0-9`). Its prices are integers in units of `10^-decimals` of the quote. Its
//! parameters ([`FeedParams`]) are fixed when it is added; validation names the bad field.
//! The oracle-wide [`OracleConfig`] sets the unbonding period and the minimum stake.
//!
//! # Rounds
//!
//! Time is counted in blocks. A feed's rounds tile the chain from its start height `s`, each
//! `L = commit_window_blocks + reveal_window_blocks` long ([`RoundSchedule`]): round `n` is
//! the heights `s + n·L ..= s + (n+1)·L − 1`, its first `commit_window_blocks` heights the
//! **commit phase**, the rest the **reveal phase**. A round is finalised at the end of its
//! last block.
//!
//! **Eligibility and weight.** When a round opens (at the end of the previous round), every
//! operator with at least `min_operator_stake` bonded in the feed becomes eligible for it,
//! with its bonded stake then as its *eligible stake*. Only eligible operators may commit.
//! Stake bonded during a round counts from the next one, so stake cannot be added after
//! seeing the reveals. An operator's **weight** in the round is its eligible stake, capped
//! by its bonded stake when the round ends (an unstake during the round lowers it; this
//! round's penalties do not). Round 0 of a new feed has nobody eligible.
//!
//! # Commit and reveal
//!
//! In the commit phase an eligible operator commits once to [`commit_hash`]`(feed, round,
//! value, salt, operator)`: SHA-256 over a domain tag and the fields in a fixed layout
//! (documented on [`commit_hash`]), with a 32-byte secret salt. Because the operator's own
//! address is inside, a copied commitment can never be opened by the copier. **A second
//! commitment in the same round is refused** ([`CommitError::DuplicateCommit`]); it never
//! replaces the first. Commitments outside the commit phase are refused as `Early` or `Late`.
//!
//! In the reveal phase the operator reveals `value` and `salt`. The reveal is accepted only
//! if they open the operator's own commitment of that round; otherwise it is refused with
//! the reason ([`RevealError`]): `Early` (before the reveal phase), `Late` (after it),
//! `NoCommit`, `AnotherOperatorsCommit` (the value and salt open someone else's commitment),
//! `Mismatch` (they open nothing; the committed and computed hashes are given), or
//! `DuplicateReveal` (already revealed). A refused reveal may be retried within the window.
//!
//! # The price
//!
//! The round reaches **quorum** when the revealed weight `R` is positive, at least
//! `quorum_stake_min`, and at least `quorum_bps` of the round's total eligible stake `E`
//! (`R · 10000 ≥ E · quorum_bps`). Then the round's price is the **stake-weighted median**
//! of the reveals, and its **confidence band** the weighted 25th to 75th percentiles:
//!
//! > the weighted `q`-percentile is the smallest revealed value `v` such that the weight of
//! > the reveals at or below `v` is at least `q` of the revealed weight.
//!
//! The median is `q = 50%`, so it is the *lower* weighted median: if exactly half the weight
//! is at or below some value, that value is the median (never an average of two values).
//! It is always a value somebody revealed, and operators holding less than half of the
//! revealed weight cannot move it outside the range of the others' values.
//!
//! Without quorum the round has **no price** ([`RoundOutcome::NoQuorum`]): the feed keeps
//! its last price, and [`PriceView`] reports its age in blocks and in rounds without a price.
//!
//! # Rewards and penalties
//!
//! At the end of a round with a price, a reveal is **in band** when
//! `|value − median| · 10000 ≤ median · reward_band_bps`. Then, for each operator that
//! committed in the round:
//!
//! | what it did | consequence |
//! |---|---|
//! | revealed, in band | shares `round_reward` pro rata to weight |
//! | revealed, out of band | penalty at `out_of_band_penalty_bps` |
//! | committed, no valid reveal | penalty at `reveal_miss_penalty_bps` (a *miss*) |
//!
//! In a round **without** quorum nobody is rewarded and nobody is penalised for being out of
//! band (there is no median), but a commitment without a valid reveal is still a miss and
//! penalised. An eligible operator that does not commit is neither penalised nor rewarded.
//!
//! **Penalty.** A penalty of `bps` takes `⌊amount · bps / 10000⌋` from the operator's bonded
//! stake in the feed and, separately, from each of its unbonding entries: unbonding stake is
//! penalised at the same rate as bonded stake, so unstaking does not dodge a penalty.
//! Penalties come out of stake here and are reported to the ledger, which removes them from
//! the operator's account (it decides whether they are burnt or pooled).
//!
//! **Reward.** With in-band weights `wᵢ` summing to `W` and pool `R = round_reward`, each
//! gets `⌊R · wᵢ / W⌋`, and the tokens left over (fewer than the recipients) go one each to
//! the largest remainders `R · wᵢ mod W`, ties to the smaller operator id: the shares sum to
//! exactly `R`. Rewards are reported for the ledger to credit; they do not add to stake.
//!
//! All amounts are integers; products are taken in `u128`, and a feed's total stake is kept
//! within a `u64`, so nothing overflows.
//!
//! # Staking
//!
//! An operator stakes into a feed; its bonded stake there must reach `min_operator_stake`.
//! Unstaking moves an amount to the unbonding queue, released at the end of block
//! `height + unbonding_blocks`, after that block's round finalisation, so it is penalised
//! for any round it was committed in. What stays bonded must be 0 or at least the minimum.
//! `unbonding_blocks` must be at least the round length of every feed. An operator with no
//! stake left (nothing bonded, nothing unbonding) leaves the feed, and its record with it.
//!
//! # TWAP
//!
//! The price in force at height `t` is the price set by the last round that ended at or
//! before `t`. The TWAP over a window of `W` blocks ending at height `H` is the average of
//! the price in force over heights `H − W + 1 ..= H`, rounded down, from a cumulative
//! price×blocks accumulator recorded at the end of every round; any window within the kept
//! history costs O(1). See [`twap`].
//!
//! # Order within a block
//!
//! The ledger applies the block's transactions (stake, unstake, commit, reveal) at its
//! height, then calls [`Oracle::end_block`] once, which for each feed in id order:
//! finalises the round that ends at this height (penalties, rewards, price, TWAP
//! observation), opens the next round (eligibility from bonded stake now), releases
//! unbonding entries due at this height, and drops operators with no stake left.
//!
//! # Limits
//!
//! Every collection has a named bound: [`FEEDS_MAX`], [`OPERATORS_PER_FEED_MAX`],
//! [`COMMITS_PER_ROUND_MAX`] (one per eligible operator, so the same number),
//! [`UNBONDING_ENTRIES_MAX`], [`TWAP_OBSERVATIONS_MAX`] and [`ROUND_HISTORY_MAX`]. A round's
//! report has one settlement per commitment.

mod commit;
mod error;
mod feed;
pub mod median;
mod oracle;
mod params;
mod rewards;
mod round;
mod schedule;
mod stake;
pub mod twap;
mod types;

pub use commit::{COMMIT_DOMAIN_TAG, commit_hash};
pub use error::{AddFeedError, CommitError, EndBlockError, QueryError, RevealError, StakeError};
pub use feed::{
    FeedEndBlock, FeedState, LastPrice, OperatorStatus, PriceView, Release, RoundStatus, in_band,
};
pub use median::{WeightedBand, weighted_band, weighted_median, weighted_percentile};
pub use oracle::{EndBlock, Oracle};
pub use params::{FeedParams, OracleConfig, ParamError};
pub use rewards::distribute;
pub use round::{
    Commitment, OpenRound, Reveal, RoundOutcome, RoundReport, RoundSummary, Settlement, Verdict,
};
pub use schedule::{Phase, RoundBounds, RoundPosition, RoundSchedule};
pub use stake::{OperatorRecord, OperatorState, Unbonding, share};
pub use twap::{Observation, TwapError, TwapHistory};
#[doc(hidden)]
pub use types::hex_encode;
pub use types::{
    Amount, CommitHash, FEED_ID_RULE, FeedId, FeedIdError, FeedIdFault, Height, OperatorId, Price,
    RoundNumber, Salt, parse_hex,
};

/// Most feeds the oracle holds.
pub const FEEDS_MAX: usize = 64;
/// Most operators (staked or unbonding) in one feed; also bounds a round's commitments and
/// reveals, since only eligible operators commit, once each.
pub const OPERATORS_PER_FEED_MAX: usize = 128;
/// Most commitments (and so reveals) in one round: one per eligible operator.
pub const COMMITS_PER_ROUND_MAX: usize = OPERATORS_PER_FEED_MAX;
/// Most unbonding entries one operator has in one feed (unstakes at the same height merge).
pub const UNBONDING_ENTRIES_MAX: usize = 16;
/// TWAP observations kept per feed, one per round: the longest TWAP window is about this
/// many rounds.
pub const TWAP_OBSERVATIONS_MAX: usize = 1024;
/// Finished-round summaries kept per feed.
pub const ROUND_HISTORY_MAX: usize = 128;
/// Longest commit or reveal window.
pub const WINDOW_BLOCKS_MAX: u64 = 100_000;
/// Longest unbonding period.
pub const UNBONDING_BLOCKS_MAX: u64 = 10_000_000;
/// Longest base or quote symbol of a feed id.
pub const FEED_SYMBOL_CHARS_MAX: usize = 12;
/// Longest feed id: two symbols and the `/`.
pub const FEED_ID_BYTES_MAX: usize = 2 * FEED_SYMBOL_CHARS_MAX + 1;
/// Most decimals a feed's prices may have.
pub const FEED_DECIMALS_MAX: u32 = 18;
/// 100% in basis points.
pub const BPS_MAX: u32 = 10_000;
