//! One feed: its operators and their stake, the open round, the last price, the TWAP
//! accumulator and the recent rounds. Every operation checks everything before it changes
//! anything, so a refused one leaves the state as it was.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::commit::commit_hash;
use crate::error::{CommitError, RevealError, StakeError};
use crate::median::{WeightedBand, weighted_band};
use crate::params::{FeedParams, OracleConfig, ParamError};
use crate::rewards::distribute;
use crate::round::{
    Commitment, OpenRound, Reveal, RoundOutcome, RoundReport, RoundSummary, Settlement, Verdict,
};
use crate::schedule::{Phase, RoundBounds, RoundSchedule};
use crate::stake::{OperatorRecord, OperatorState, Unbonding};
use crate::twap::{TwapError, TwapHistory};
use crate::types::{Amount, CommitHash, FeedId, Height, OperatorId, Price, RoundNumber, Salt};
use crate::{
    BPS_MAX, COMMITS_PER_ROUND_MAX, OPERATORS_PER_FEED_MAX, ROUND_HISTORY_MAX,
    UNBONDING_ENTRIES_MAX,
};

/// The feed's current price: set by the last round that reached quorum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastPrice {
    /// `band.median` is the price; `band.low ..= band.high` its confidence.
    pub band: WeightedBand,
    /// The round that set it.
    pub round: RoundNumber,
    /// That round's last height.
    pub height: Height,
}

/// Stake released at the end of a block: the ledger moves it from the operator's account
/// stake back to its balance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub feed: FeedId,
    pub operator: OperatorId,
    pub amount: Amount,
}

/// What the end of a block did to one feed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeedEndBlock {
    /// Rounds finalised, oldest first (one, when the round ended at this height).
    pub rounds: Vec<RoundReport>,
    pub releases: Vec<Release>,
}

/// The feed's price as a reader sees it at a height.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceView {
    pub feed: FeedId,
    pub decimals: u8,
    /// `None` until a round reaches quorum.
    pub last: Option<LastPrice>,
    /// Blocks since the price was set (`now − last.height`).
    pub age_blocks: Option<u64>,
    /// Rounds that have ended since without a price (0: the latest round set it).
    pub age_rounds: Option<u64>,
    /// The round open now.
    pub current_round: RoundNumber,
}

/// An operator's standing in a feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorStatus {
    pub operator: OperatorId,
    pub bonded: Amount,
    pub unbonding: Vec<Unbonding>,
    pub unbonding_total: Amount,
    /// Its weight cap in the open round; `None` if it may not commit in it.
    pub eligible_stake: Option<Amount>,
    pub committed: bool,
    pub revealed: Option<Price>,
    pub record: OperatorRecord,
}

/// The open round as a reader sees it at a height.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundStatus {
    pub bounds: RoundBounds,
    /// The phase at the height asked about, `None` if it is outside the open round.
    pub phase: Option<Phase>,
    pub eligible_operators: u32,
    pub eligible_stake: Amount,
    pub commits: u32,
    pub reveals: u32,
}

/// One feed's whole state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedState {
    params: FeedParams,
    schedule: RoundSchedule,
    /// At most [`OPERATORS_PER_FEED_MAX`].
    operators: BTreeMap<OperatorId, OperatorState>,
    round: OpenRound,
    last_price: Option<LastPrice>,
    twap: TwapHistory,
    /// Newest last; at most [`ROUND_HISTORY_MAX`].
    history: VecDeque<RoundSummary>,
}

impl FeedState {
    /// A feed whose round 0 starts at `start`. Round 0 has no eligible operators (nobody
    /// has stake in the feed yet), so operators who stake before it ends first report in
    /// round 1.
    pub fn new(
        params: FeedParams,
        start: Height,
        config: &OracleConfig,
    ) -> Result<FeedState, ParamError> {
        params.validate(config)?;
        let schedule = params.schedule(start);
        let bounds = schedule.bounds(RoundNumber(0)).ok_or(ParamError {
            feed: Some(params.id.clone()),
            field: "start",
            value: start.0,
            rule: "the first round would end past the largest height".into(),
        })?;
        Ok(FeedState {
            twap: TwapHistory::new(schedule.round_blocks()),
            params,
            schedule,
            operators: BTreeMap::new(),
            round: OpenRound {
                bounds,
                eligible: BTreeMap::new(),
                eligible_total: Amount::ZERO,
                commits: BTreeMap::new(),
            },
            last_price: None,
            history: VecDeque::new(),
        })
    }

    pub fn id(&self) -> &FeedId {
        &self.params.id
    }

    pub fn params(&self) -> &FeedParams {
        &self.params
    }

    pub fn schedule(&self) -> RoundSchedule {
        self.schedule
    }

    pub fn open_round(&self) -> &OpenRound {
        &self.round
    }

    pub fn operators(&self) -> &BTreeMap<OperatorId, OperatorState> {
        &self.operators
    }

    pub fn operator(&self, operator: &OperatorId) -> Option<&OperatorState> {
        self.operators.get(operator)
    }

    pub fn last_price(&self) -> Option<&LastPrice> {
        self.last_price.as_ref()
    }

    pub fn twap_history(&self) -> &TwapHistory {
        &self.twap
    }

    /// The kept round summaries, newest first.
    pub fn history(&self) -> impl Iterator<Item = &RoundSummary> {
        self.history.iter().rev()
    }

    /// Bonded plus unbonding stake of every operator.
    pub fn stake_total(&self) -> u128 {
        self.operators.values().map(OperatorState::at_risk).sum()
    }

    // -----------------------------------------------------------------------------------------
    // Transactions.

    /// Bonds `amount` more for `operator`, making it an operator of the feed if it was not.
    /// The bonded stake after must reach the minimum. The new stake counts from the next
    /// round that opens. Returns the bonded stake after.
    pub fn stake(
        &mut self,
        config: &OracleConfig,
        operator: OperatorId,
        amount: Amount,
        height: Height,
    ) -> Result<Amount, StakeError> {
        if amount.is_zero() {
            return Err(StakeError::ZeroAmount);
        }
        let existing = self.operators.get(&operator);
        if existing.is_none() && self.operators.len() >= OPERATORS_PER_FEED_MAX {
            return Err(StakeError::TooManyOperators {
                max: OPERATORS_PER_FEED_MAX,
            });
        }
        let bonded_before = existing.map_or(Amount::ZERO, |o| o.bonded);
        let bonded_after = bonded_before
            .checked_add(amount)
            .ok_or(StakeError::StakeOverflow)?;
        if bonded_after < config.min_operator_stake {
            return Err(StakeError::BelowMinimum {
                bonded_after,
                min: config.min_operator_stake,
            });
        }
        // Keeping the feed's total within a u64 keeps every sum over it (eligible stake,
        // revealed stake, penalties) within one too.
        if self.stake_total() + u128::from(amount.0) > u128::from(u64::MAX) {
            return Err(StakeError::StakeOverflow);
        }
        self.operators
            .entry(operator)
            .or_insert_with(|| OperatorState::new(height))
            .bonded = bonded_after;
        Ok(bonded_after)
    }

    /// Moves `amount` of `operator`'s bonded stake to the unbonding queue, released at the
    /// end of block `height + unbonding_blocks` and open to penalties until then. What stays
    /// bonded must be 0 or at least the minimum. Returns the new (or extended) entry.
    pub fn unstake(
        &mut self,
        config: &OracleConfig,
        operator: OperatorId,
        amount: Amount,
        height: Height,
    ) -> Result<Unbonding, StakeError> {
        if amount.is_zero() {
            return Err(StakeError::ZeroAmount);
        }
        let op = self
            .operators
            .get_mut(&operator)
            .ok_or(StakeError::NotOperator { operator })?;
        let remaining = op
            .bonded
            .checked_sub(amount)
            .ok_or(StakeError::InsufficientBonded {
                bonded: op.bonded,
                requested: amount,
            })?;
        if !remaining.is_zero() && remaining < config.min_operator_stake {
            return Err(StakeError::WouldLeaveDust {
                remaining,
                min: config.min_operator_stake,
            });
        }
        let release_height = height
            .checked_add(config.unbonding_blocks)
            .ok_or(StakeError::HeightOverflow)?;
        let merge = op
            .unbonding
            .back()
            .is_some_and(|u| u.release_height == release_height);
        if !merge && op.unbonding.len() >= UNBONDING_ENTRIES_MAX {
            return Err(StakeError::TooManyUnbonding {
                max: UNBONDING_ENTRIES_MAX,
            });
        }
        op.bonded = remaining;
        let entry = if merge {
            let last = op.unbonding.back_mut().expect("merge implies an entry");
            // Bonded plus unbonding is within the feed total, which fits a u64.
            last.amount = last.amount.saturating_add(amount);
            *last
        } else {
            let entry = Unbonding {
                amount,
                release_height,
            };
            op.unbonding.push_back(entry);
            entry
        };
        Ok(entry)
    }

    /// Accepts `operator`'s commitment for `round` at `height`. One per operator per round:
    /// a second is refused ([`CommitError::DuplicateCommit`]), never replaces the first.
    pub fn commit(
        &mut self,
        operator: OperatorId,
        round: RoundNumber,
        hash: CommitHash,
        height: Height,
    ) -> Result<(), CommitError> {
        let b = self.round.bounds;
        if round < b.round || (round == b.round && height >= b.reveal_start) {
            let commit_until = self
                .schedule
                .bounds(round)
                .map_or(b.reveal_start, |r| r.reveal_start);
            return Err(CommitError::Late {
                round,
                height,
                commit_until: Height(commit_until.0.saturating_sub(1)),
            });
        }
        if round > b.round || height < b.start {
            return Err(CommitError::Early {
                round,
                height,
                commit_from: self.schedule.bounds(round).map(|r| r.start),
            });
        }
        if !self.round.eligible.contains_key(&operator) {
            return Err(CommitError::NotEligible { operator, round });
        }
        if self.round.commits.contains_key(&operator) {
            return Err(CommitError::DuplicateCommit { operator, round });
        }
        // Only eligible operators (at most OPERATORS_PER_FEED_MAX) commit, once each.
        debug_assert!(self.round.commits.len() < COMMITS_PER_ROUND_MAX);
        self.round.commits.insert(
            operator,
            Commitment {
                hash,
                height,
                reveal: None,
            },
        );
        if let Some(op) = self.operators.get_mut(&operator) {
            op.record.commits = op.record.commits.saturating_add(1);
        }
        Ok(())
    }

    /// Accepts `operator`'s reveal of `value` and `salt` for `round` at `height` if they
    /// open its own commitment of that round, in the round's reveal window, once. A refused
    /// reveal changes nothing and may be retried within the window.
    ///
    /// When they do not open its own commitment, the commitments of the round's other
    /// committers are tried (at most [`OPERATORS_PER_FEED_MAX`] hashes), so that a reveal of
    /// someone else's commitment is refused as exactly that.
    pub fn reveal(
        &mut self,
        operator: OperatorId,
        round: RoundNumber,
        value: Price,
        salt: Salt,
        height: Height,
    ) -> Result<(), RevealError> {
        let b = self.round.bounds;
        if round < b.round || (round == b.round && height > b.end) {
            let reveal_until = self.schedule.bounds(round).map_or(b.end, |r| r.end);
            return Err(RevealError::Late {
                round,
                height,
                reveal_until,
            });
        }
        if round > b.round || height < b.reveal_start {
            return Err(RevealError::Early {
                round,
                height,
                reveal_from: self.schedule.bounds(round).map(|r| r.reveal_start),
            });
        }
        let own = self.round.commits.get(&operator).copied();
        if own.is_some_and(|c| c.reveal.is_some()) {
            return Err(RevealError::DuplicateReveal { operator, round });
        }
        let opened = commit_hash(&self.params.id, round, value, &salt, &operator);
        if let Some(own) = own.filter(|c| c.hash == opened) {
            self.round.commits.insert(
                operator,
                Commitment {
                    reveal: Some(Reveal { value, height }),
                    ..own
                },
            );
            if let Some(op) = self.operators.get_mut(&operator) {
                op.record.reveals = op.record.reveals.saturating_add(1);
            }
            return Ok(());
        }
        let owner = self.round.commits.iter().find(|&(other, c)| {
            *other != operator && commit_hash(&self.params.id, round, value, &salt, other) == c.hash
        });
        if let Some((&owner, _)) = owner {
            return Err(RevealError::AnotherOperatorsCommit {
                operator,
                owner,
                round,
            });
        }
        match own {
            Some(own) => Err(RevealError::Mismatch {
                operator,
                round,
                committed: own.hash,
                revealed: opened,
            }),
            None => Err(RevealError::NoCommit { operator, round }),
        }
    }

    // -----------------------------------------------------------------------------------------
    // End of block.

    /// Called once at the end of every block, after its transactions: finalises the open
    /// round if it ends at `height` (and any round skipped before it, as empty rounds if the
    /// caller ever misses heights), opens the next, then releases unbonding entries due at
    /// `height` and drops operators left with no stake at all.
    pub fn end_block(&mut self, config: &OracleConfig, height: Height) -> FeedEndBlock {
        let mut out = FeedEndBlock::default();
        while self.round.bounds.end <= height {
            out.rounds.push(self.finalise_round());
            if !self.open_next_round(config) {
                break;
            }
        }
        for (&operator, op) in &mut self.operators {
            let amount = op.release_due(height);
            if !amount.is_zero() {
                out.releases.push(Release {
                    feed: self.params.id.clone(),
                    operator,
                    amount,
                });
            }
        }
        let round = &self.round;
        self.operators.retain(|id, op| {
            !op.is_empty() || round.eligible.contains_key(id) || round.commits.contains_key(id)
        });
        out
    }

    fn finalise_round(&mut self) -> RoundReport {
        let round = &self.round;
        let params = &self.params;
        // Weight: stake when the round opened, capped by bonded stake now.
        let weight = |id: &OperatorId| -> Amount {
            let eligible = round.eligible.get(id).copied().unwrap_or(Amount::ZERO);
            let bonded = self.operators.get(id).map_or(Amount::ZERO, |o| o.bonded);
            eligible.min(bonded)
        };
        let mut samples = Vec::with_capacity(round.commits.len());
        let mut revealed_stake: u128 = 0;
        for (id, c) in &round.commits {
            if let Some(r) = c.reveal {
                let w = weight(id);
                revealed_stake += u128::from(w.0);
                samples.push((r.value, w.0));
            }
        }
        let quorum = revealed_stake > 0
            && revealed_stake >= u128::from(params.quorum_stake_min.0)
            && revealed_stake * u128::from(BPS_MAX)
                >= u128::from(round.eligible_total.0) * u128::from(params.quorum_bps);
        let band = if quorum {
            weighted_band(&mut samples)
        } else {
            None
        };

        // Verdicts, then the reward shares of the in-band reporters.
        let mut settlements: Vec<Settlement> = round
            .commits
            .iter()
            .map(|(&operator, c)| {
                let verdict = match (c.reveal, band) {
                    (None, _) => Verdict::NotRevealed,
                    (Some(r), None) => Verdict::RevealedWithoutQuorum { value: r.value },
                    (Some(r), Some(b)) if in_band(r.value, b.median, params.reward_band_bps) => {
                        Verdict::InBand { value: r.value }
                    }
                    (Some(r), Some(_)) => Verdict::OutOfBand { value: r.value },
                };
                Settlement {
                    operator,
                    weight: weight(&operator),
                    verdict,
                    reward: Amount::ZERO,
                    penalty: Amount::ZERO,
                }
            })
            .collect();
        if band.is_some() {
            let recipients: Vec<(OperatorId, u64)> = settlements
                .iter()
                .filter(|s| matches!(s.verdict, Verdict::InBand { .. }))
                .map(|s| (s.operator, s.weight.0))
                .collect();
            let shares = distribute(params.round_reward, &recipients);
            let mut shares = shares.into_iter();
            for s in &mut settlements {
                if matches!(s.verdict, Verdict::InBand { .. }) {
                    s.reward = shares.next().unwrap_or(Amount::ZERO);
                }
            }
        }

        // Apply: penalties come out of stake; records count everything.
        let mut rewards_paid = Amount::ZERO;
        let mut penalties = Amount::ZERO;
        for s in &mut settlements {
            let Some(op) = self.operators.get_mut(&s.operator) else {
                continue;
            };
            let r = &mut op.record;
            match s.verdict {
                Verdict::InBand { .. } => r.in_band = r.in_band.saturating_add(1),
                Verdict::OutOfBand { .. } => {
                    r.out_of_band = r.out_of_band.saturating_add(1);
                    s.penalty = op.penalise(params.out_of_band_penalty_bps);
                }
                Verdict::NotRevealed => {
                    r.misses = r.misses.saturating_add(1);
                    s.penalty = op.penalise(params.reveal_miss_penalty_bps);
                }
                Verdict::RevealedWithoutQuorum { .. } => {}
            }
            op.record.rewards_total = op.record.rewards_total.saturating_add(s.reward);
            // Both sums are bounded by the pool and by the feed's total stake (u64).
            rewards_paid = rewards_paid.saturating_add(s.reward);
            penalties = penalties.saturating_add(s.penalty);
        }

        let round = &self.round;
        let end = round.bounds.end;
        if let Some(band) = band {
            self.last_price = Some(LastPrice {
                band,
                round: round.bounds.round,
                height: end,
            });
        }
        if let Some(last) = self.last_price {
            self.twap.record(end, last.band.median);
        }
        let summary = RoundSummary {
            round: round.bounds.round,
            end_height: end,
            outcome: band.map_or(RoundOutcome::NoQuorum, RoundOutcome::Price),
            price_in_force: self.last_price.map(|l| l.band.median),
            eligible_stake: round.eligible_total,
            revealed_stake: Amount(u64::try_from(revealed_stake).unwrap_or(u64::MAX)),
            commits: count(round.commits.len()),
            reveals: count(round.reveals()),
            rewards_paid,
            penalties,
        };
        self.history.push_back(summary);
        while self.history.len() > ROUND_HISTORY_MAX {
            self.history.pop_front();
        }
        RoundReport {
            feed: self.params.id.clone(),
            summary,
            settlements,
        }
    }

    /// Opens the round after the open one, with the operators that have at least the
    /// minimum bonded stake now as its eligible set. `false` (and the feed stops) only if
    /// its heights would pass `u64::MAX`.
    fn open_next_round(&mut self, config: &OracleConfig) -> bool {
        let next = self
            .round
            .bounds
            .round
            .next()
            .and_then(|r| self.schedule.bounds(r));
        let Some(bounds) = next else {
            self.round.commits.clear();
            self.round.eligible.clear();
            self.round.eligible_total = Amount::ZERO;
            self.round.bounds.end = Height(u64::MAX);
            return false;
        };
        let eligible: BTreeMap<OperatorId, Amount> = self
            .operators
            .iter()
            .filter(|(_, o)| o.bonded >= config.min_operator_stake)
            .map(|(&id, o)| (id, o.bonded))
            .collect();
        // Within the feed's total stake, which fits a u64.
        let total: u128 = eligible.values().map(|a| u128::from(a.0)).sum();
        self.round = OpenRound {
            bounds,
            eligible_total: Amount(u64::try_from(total).unwrap_or(u64::MAX)),
            eligible,
            commits: BTreeMap::new(),
        };
        true
    }

    // -----------------------------------------------------------------------------------------
    // Queries.

    /// The price and its age at height `now`.
    pub fn price(&self, now: Height) -> PriceView {
        let last = self.last_price;
        let finished = self.round.bounds.round.0.checked_sub(1);
        PriceView {
            feed: self.params.id.clone(),
            decimals: self.params.decimals,
            last,
            age_blocks: last.map(|l| now.0.saturating_sub(l.height.0)),
            age_rounds: last.map(|l| finished.map_or(0, |f| f.saturating_sub(l.round.0))),
            current_round: self.round.bounds.round,
        }
    }

    /// The TWAP over the `window_blocks` heights ending at `now`; see [`crate::twap`].
    pub fn twap(&self, now: Height, window_blocks: u64) -> Result<Price, TwapError> {
        self.twap.twap(now, window_blocks)
    }

    pub fn operator_status(&self, operator: &OperatorId) -> Option<OperatorStatus> {
        let op = self.operators.get(operator)?;
        let commit = self.round.commits.get(operator);
        Some(OperatorStatus {
            operator: *operator,
            bonded: op.bonded,
            unbonding: op.unbonding.iter().copied().collect(),
            unbonding_total: Amount(u64::try_from(op.unbonding_total()).unwrap_or(u64::MAX)),
            eligible_stake: self.round.eligible.get(operator).copied(),
            committed: commit.is_some(),
            revealed: commit.and_then(|c| c.reveal).map(|r| r.value),
            record: op.record,
        })
    }

    pub fn round_status(&self, now: Height) -> RoundStatus {
        let r = &self.round;
        RoundStatus {
            bounds: r.bounds,
            phase: r.bounds.phase_at(now),
            eligible_operators: count(r.eligible.len()),
            eligible_stake: r.eligible_total,
            commits: count(r.commits.len()),
            reveals: count(r.reveals()),
        }
    }
}

/// `|value − median| ≤ median · band_bps / 10000`, exactly, in integers.
pub fn in_band(value: Price, median: Price, band_bps: u16) -> bool {
    let distance = u128::from(value.0.abs_diff(median.0));
    distance * u128::from(BPS_MAX) <= u128::from(median.0) * u128::from(band_bps)
}

/// Counts bounded by [`OPERATORS_PER_FEED_MAX`] fit a u32.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
