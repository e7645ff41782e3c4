//! Leader reputation: the round-robin schedule, except that a validator whose last turn as
//! leader produced no block is passed over until it shows it is back.
//!
//! A hung or crashed leader costs every round it leads a full timeout, and in chained
//! HotStuff the commit rule breaks around it as well, so one dead validator of four costs
//! most of the chain's throughput for as long as it is down. Passing it over turns that into
//! one failed try now and then: after [`ReputationConfig::retry_after_ms`] of chain time,
//! then twice, four times that, and so on, since each try of a validator still down costs
//! two round timeouts (the votes for the block before its turn go to it and are lost, then
//! its own round passes) and a long outage must not cost them every few seconds.
//!
//! The state is a pure function of the chain: [`Reputation::after_block`] folds one block
//! (its round, proposer, timestamp and the signers of the QC it carries) into its parent's
//! state, and [`Reputation::leader`] answers "who leads round r on top of this block". An
//! engine keys the state by block, so every node that has the block a proposal extends
//! computes the same leader for it: disagreement can come only from nodes extending
//! different blocks, which the round's timeout settles as it does today. Leader choice is
//! liveness only: no safety rule reads it.
//!
//! Rules, each bounded:
//! - a round with no block between a parent and its child is a failure of the leader that
//!   round had (computed by these same rules, so it is deterministic); only the last
//!   [`ReputationConfig::gap_rounds_max`] rounds of a gap are examined;
//! - a failure is forgiven when the validator leads a block, signs a QC for a round after
//!   the failure (it votes again), or its retry wait of chain time (block timestamps) passes:
//!   `retry_after_ms` after the first failure, doubled for each further failed turn with no
//!   sign of life in between, at most [`ReputationConfig::retry_doublings_max`] times. A
//!   returned validator is normally back at its first vote in a QC; the wait bounds the case
//!   of one whose votes never make it into a QC;
//! - at most f voting power is passed over at a time (the most recent failures first), so
//!   at least N − f remain candidates: as many as a quorum, and never a set that only the
//!   faulty could fill;
//! - once as many rounds as there are validators have gone by after a block without a
//!   child, the schedule alone picks leaders on top of it. Nodes can disagree about a
//!   block's state (one restarted with less history than the failures it remembers), and
//!   their disagreement would otherwise last as long as the chain stands still, since
//!   failures expire in chain time; with passed-over leaders agreed on, a gap is at most one
//!   round per failed validator, so this never cuts short a rule that works.
//!
//! Owns: this rule. Never: reads a clock (time is the blocks' timestamps), does I/O, or
//! knows a message format of one engine.

use cairn_ledger::{Round, TimestampMs};

use super::leader::LeaderSchedule;
use super::validators::ValidatorSet;

/// Knobs of the rule; both are consensus parameters (every validator must use the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReputationConfig {
    /// Chain time after which a failed leader gets a turn again even if nothing showed it
    /// is back.
    pub retry_after_ms: u64,
    /// Rounds of a gap (missed turns between a block and its parent) examined at most;
    /// older missed turns of a longer gap are not held against anyone.
    pub gap_rounds_max: u64,
    /// How many times the retry wait doubles for failed turns in a row.
    pub retry_doublings_max: u32,
}

impl ReputationConfig {
    /// Chain time a failure waits before the validator gets a turn again, for its
    /// `strikes`-th failed turn in a row.
    pub fn retry_wait_ms(&self, strikes: u32) -> u64 {
        let doublings = strikes
            .saturating_sub(1)
            .min(self.retry_doublings_max)
            .min(63);
        self.retry_after_ms.saturating_mul(1u64 << doublings)
    }
}

impl Default for ReputationConfig {
    fn default() -> Self {
        ReputationConfig {
            // Long against a round under load (a hung validator then costs one timeout in
            // ten seconds), short against the thirty seconds in which a returned validator
            // must be leading again.
            retry_after_ms: 10_000,
            gap_rounds_max: 64,
            // 10 s up to 320 s: a validator down for long costs two timeouts in five
            // minutes (under 1% of the time on a 1 s timeout), while its first vote brings it
            // back whenever it returns.
            retry_doublings_max: 5,
        }
    }
}

/// One validator's unforgiven failure as leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The round it led and no block came of.
    pub round: Round,
    /// Chain time when the failure was recorded: the timestamp of the last block before it.
    pub at: TimestampMs,
    /// Failed turns in a row, this one included, with no block led and no QC signed in
    /// between.
    pub strikes: u32,
}

/// Why a validator is not leading for now, as shown to operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassedOver {
    /// Position in the validator set.
    pub validator: usize,
    pub failure: Failure,
    /// Chain time from which it gets a turn again whatever else happens.
    pub until: TimestampMs,
}

/// What one block tells the rule.
#[derive(Clone, Copy, Debug)]
pub struct BlockFacts<'a> {
    pub round: Round,
    pub timestamp: TimestampMs,
    /// Position of the block's proposer in the validator set.
    pub proposer: usize,
    /// The round of the QC the block carries (its parent's round) and the positions of its
    /// signers.
    pub qc_round: Round,
    pub qc_signers: &'a [usize],
}

/// The reputation after some block: keep one per block, derive a child's with
/// [`Reputation::after_block`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reputation {
    /// Per validator (set order): the failure it is passed over for.
    failed: Vec<Option<Failure>>,
    /// Per validator: its last failure, kept after the retry wait passed, so that a retry
    /// that fails again counts one strike more. Cleared by a sign of life.
    last_failure: Vec<Option<Failure>>,
    /// The round and timestamp of the block this state follows.
    round: Round,
    time: TimestampMs,
}

impl Reputation {
    /// The state at a block nothing is known before (the genesis block, or a committed tip
    /// restored without its history): nobody passed over.
    pub fn start(validators: &ValidatorSet, round: Round, time: TimestampMs) -> Reputation {
        Reputation {
            failed: vec![None; validators.len()],
            last_failure: vec![None; validators.len()],
            round,
            time,
        }
    }

    pub fn round(&self) -> Round {
        self.round
    }

    /// The state after `block`, a child of the block this state follows. A block whose
    /// round is not above this state's (which a certified child never has) changes nothing
    /// but the time.
    pub fn after_block(
        &self,
        validators: &ValidatorSet,
        schedule: &LeaderSchedule,
        config: &ReputationConfig,
        block: &BlockFacts<'_>,
    ) -> Reputation {
        let mut next = self.clone();
        next.record_gap(validators, schedule, config, block.round);
        for &signer in block.qc_signers {
            if next
                .last_failure
                .get(signer)
                .is_some_and(|f| f.is_some_and(|f| f.round < block.qc_round))
            {
                next.failed[signer] = None;
                next.last_failure[signer] = None;
            }
        }
        if block.proposer < next.failed.len() {
            next.failed[block.proposer] = None;
            next.last_failure[block.proposer] = None;
        }
        next.round = next.round.max(block.round);
        next.time = next.time.max(block.timestamp);
        next.forgive_expired(config);
        next
    }

    /// The leader of `round` for a proposal extending the block this state follows. Rounds
    /// between that block and `round` count as failures of their leaders first, so a dead
    /// leader is passed over from the round after its turn, before any block says so.
    pub fn leader(
        &self,
        validators: &ValidatorSet,
        schedule: &LeaderSchedule,
        config: &ReputationConfig,
        round: Round,
    ) -> usize {
        self.leader_on_trial(validators, schedule, config, round).0
    }

    /// [`Reputation::leader`], and whether that leader is on trial: it failed a turn and has
    /// shown no sign of life since (its retry wait passed, or the cap of f let it lead). A
    /// node may wait less for such a leader's round, since a retry is the likeliest round to
    /// fail and every honest node would otherwise wait it out in full.
    pub fn leader_on_trial(
        &self,
        validators: &ValidatorSet,
        schedule: &LeaderSchedule,
        config: &ReputationConfig,
        round: Round,
    ) -> (usize, bool) {
        let on_trial =
            |state: &Reputation, leader: usize| (leader, state.last_failure[leader].is_some());
        if round.0 <= self.round.0.saturating_add(1) {
            return on_trial(self, self.candidate(validators, schedule, round));
        }
        if self.schedule_only(validators, round) {
            return on_trial(self, schedule.leader(round));
        }
        let mut ahead = self.clone();
        ahead.record_gap(validators, schedule, config, round);
        let leader = ahead.candidate(validators, schedule, round);
        on_trial(&ahead, leader)
    }

    /// Whether `round` is so far past this state's block that the schedule alone decides.
    fn schedule_only(&self, validators: &ValidatorSet, round: Round) -> bool {
        round.0 > self.round.0.saturating_add(validators.len() as u64)
    }

    /// Who is passed over now (after the cap of f power), for status and metrics.
    pub fn passed_over(
        &self,
        validators: &ValidatorSet,
        config: &ReputationConfig,
    ) -> Vec<PassedOver> {
        let excluded = self.excluded(validators);
        self.failed
            .iter()
            .enumerate()
            .filter(|&(i, _)| excluded[i])
            .filter_map(|(i, f)| {
                f.map(|failure| PassedOver {
                    validator: i,
                    failure,
                    until: TimestampMs(
                        failure
                            .at
                            .0
                            .saturating_add(config.retry_wait_ms(failure.strikes)),
                    ),
                })
            })
            .collect()
    }

    /// Records the leaders of the rounds after this state's and before `round` as failed,
    /// each leader chosen by the state as it stands after the failures before it.
    fn record_gap(
        &mut self,
        validators: &ValidatorSet,
        schedule: &LeaderSchedule,
        config: &ReputationConfig,
        round: Round,
    ) {
        let start = self.clone();
        let first = self
            .round
            .0
            .saturating_add(1)
            .max(round.0.saturating_sub(config.gap_rounds_max));
        for r in first..round.0 {
            let leader = if start.schedule_only(validators, Round(r)) {
                schedule.leader(Round(r))
            } else {
                self.candidate(validators, schedule, Round(r))
            };
            let strikes = self.last_failure[leader].map_or(0, |f| f.strikes);
            let failure = Failure {
                round: Round(r),
                at: self.time,
                // Bounded: beyond the last doubling more strikes change nothing.
                strikes: strikes
                    .saturating_add(1)
                    .min(config.retry_doublings_max.saturating_add(1)),
            };
            self.failed[leader] = Some(failure);
            self.last_failure[leader] = Some(failure);
        }
    }

    fn forgive_expired(&mut self, config: &ReputationConfig) {
        let now = self.time.0;
        for slot in &mut self.failed {
            if slot.is_some_and(|f| f.at.0.saturating_add(config.retry_wait_ms(f.strikes)) <= now) {
                *slot = None;
            }
        }
    }

    /// Which validators are passed over: the most recent failures first, while their power
    /// together stays within f.
    fn excluded(&self, validators: &ValidatorSet) -> Vec<bool> {
        let mut failed: Vec<(usize, Round)> = self
            .failed
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.map(|f| (i, f.round)))
            .collect();
        // Most recent first; equal rounds (impossible within one chain, but cheap to make
        // deterministic) by set order.
        failed.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut excluded = vec![false; self.failed.len()];
        let mut power = 0u64;
        for (i, _) in failed {
            let p = validators.member(i).power;
            if power + p > validators.faulty_power_max() {
                continue;
            }
            power += p;
            excluded[i] = true;
        }
        excluded
    }

    /// The schedule's leader of `round`, or when it is passed over, the leader of the next
    /// round of the schedule that is not; after as many tries as there are validators (only
    /// when powers are uneven), the next candidate in set order.
    fn candidate(
        &self,
        validators: &ValidatorSet,
        schedule: &LeaderSchedule,
        round: Round,
    ) -> usize {
        let excluded = self.excluded(validators);
        let base = schedule.leader(round);
        if !excluded[base] {
            return base;
        }
        for step in 1..=validators.len() as u64 {
            let other = schedule.leader(Round(round.0.wrapping_add(step)));
            if !excluded[other] {
                return other;
            }
        }
        let n = validators.len();
        (1..n)
            .map(|k| (base + k) % n)
            .find(|&i| !excluded[i])
            .expect("at most f power is passed over, so someone is not")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(powers: &[u64]) -> ValidatorSet {
        ValidatorSet::with_powers(powers)
    }

    struct Chain {
        vs: ValidatorSet,
        schedule: LeaderSchedule,
        config: ReputationConfig,
        state: Reputation,
    }

    impl Chain {
        fn new(powers: &[u64]) -> Chain {
            let vs = set(powers);
            let schedule = LeaderSchedule::new(&vs);
            let state = Reputation::start(&vs, Round(0), TimestampMs(0));
            Chain {
                vs,
                schedule,
                config: ReputationConfig::default(),
                state,
            }
        }

        fn leader(&self, round: u64) -> usize {
            self.state
                .leader(&self.vs, &self.schedule, &self.config, Round(round))
        }

        /// A block at `round` by the leader the rule names, at `time`, whose QC (for the
        /// parent) `signers` signed.
        fn block(&mut self, round: u64, time: u64, signers: &[usize]) -> usize {
            let proposer = self.leader(round);
            let facts = BlockFacts {
                round: Round(round),
                timestamp: TimestampMs(time),
                proposer,
                qc_round: self.state.round,
                qc_signers: signers,
            };
            self.state = self
                .state
                .after_block(&self.vs, &self.schedule, &self.config, &facts);
            proposer
        }

        fn passed_over(&self) -> Vec<usize> {
            self.state
                .passed_over(&self.vs, &self.config)
                .iter()
                .map(|p| p.validator)
                .collect()
        }
    }

    #[test]
    fn with_no_failure_it_is_the_schedule() {
        let mut c = Chain::new(&[1, 1, 1, 1]);
        for r in 1..=12u64 {
            assert_eq!(c.leader(r), c.schedule.leader(Round(r)));
            c.block(r, r * 10, &[0, 1, 2, 3]);
        }
        assert!(c.passed_over().is_empty());
    }

    #[test]
    fn a_leader_whose_turn_produced_no_block_is_passed_over_from_the_next_round() {
        let mut c = Chain::new(&[1, 1, 1, 1]);
        for r in 1..=2 {
            c.block(r, r * 10, &[0, 1, 2, 3]);
        }
        // Round 3 is validator 3's; it is hung, so the state after round 2 leads round 4
        // with round 3 counted as its failure already.
        assert_eq!(c.schedule.leader(Round(3)), 3);
        assert_eq!(c.leader(4), 0);
        c.block(4, 1_040, &[0, 1, 2]);
        assert_eq!(c.passed_over(), vec![3]);
        // Its turns in the next cycles go to the schedule's next leader.
        for r in 5..=11 {
            assert_ne!(c.leader(r), 3, "round {r}");
            c.block(r, 1_040 + r, &[0, 1, 2]);
        }
    }

    #[test]
    fn a_returned_validator_is_forgiven_when_it_signs_a_qc_again() {
        let mut c = Chain::new(&[1, 1, 1, 1]);
        c.block(1, 10, &[0, 1, 2, 3]);
        c.block(2, 20, &[0, 1, 2, 3]);
        c.block(4, 1_020, &[0, 1, 2]);
        assert_eq!(c.passed_over(), vec![3]);
        // A QC signed at round 4 or later shows it voting again.
        c.block(5, 1_030, &[0, 1, 2]);
        assert_eq!(c.passed_over(), vec![3]);
        c.block(6, 1_040, &[0, 1, 3]);
        assert!(c.passed_over().is_empty());
        assert_eq!(c.leader(7), c.schedule.leader(Round(7)));
    }

    #[test]
    fn a_signature_from_before_the_failure_forgives_nothing() {
        let mut c = Chain::new(&[1, 1, 1, 1]);
        c.block(1, 10, &[0, 1, 2, 3]);
        c.block(2, 20, &[0, 1, 2, 3]);
        // The block after the gap carries the QC for round 2, which 3 signed before its
        // failed turn at round 3.
        c.block(4, 1_020, &[0, 1, 2, 3]);
        assert_eq!(c.passed_over(), vec![3]);
    }

    #[test]
    fn a_failure_expires_after_the_retry_time_of_chain_time() {
        let mut c = Chain::new(&[1, 1, 1, 1]);
        c.block(1, 10, &[0, 1, 2, 3]);
        c.block(2, 20, &[0, 1, 2, 3]);
        c.block(4, 1_020, &[0, 1, 2]);
        let retry = c.config.retry_after_ms;
        // Recorded at the time of the block before the gap (20).
        c.block(5, 20 + retry - 1, &[0, 1, 2]);
        assert_eq!(c.passed_over(), vec![3]);
        c.block(6, 20 + retry, &[0, 1, 2]);
        assert!(c.passed_over().is_empty());
        assert_eq!(c.leader(7), 3);
    }

    #[test]
    fn each_failed_retry_doubles_the_wait_up_to_the_cap_and_a_vote_resets_it() {
        let mut c = Chain::new(&[1, 1, 1, 1]);
        c.block(1, 10, &[0, 1, 2, 3]);
        c.block(2, 20, &[0, 1, 2, 3]);
        // Validator 3 fails its turn at round 3 and every retry after.
        c.block(4, 1_000, &[0, 1, 2]);
        let mut time = 1_000;
        let mut round = 4;
        let mut waits = Vec::new();
        for _ in 0..(c.config.retry_doublings_max + 3) {
            let p = c.state.passed_over(&c.vs, &c.config);
            assert_eq!(p.len(), 1);
            assert_eq!(p[0].validator, 3);
            waits.push(p[0].until.0 - p[0].failure.at.0);
            // Blocks without 3 until its wait is over; then its turn comes, on trial, and
            // fails.
            time = p[0].until.0;
            loop {
                round += 1;
                let (leader, on_trial) =
                    c.state
                        .leader_on_trial(&c.vs, &c.schedule, &c.config, Round(round));
                assert_eq!(on_trial, leader == 3, "round {round}");
                if leader == 3 {
                    round += 1;
                    c.block(round, time + 1_000, &[0, 1, 2]);
                    time += 1_000;
                    break;
                }
                c.block(round, time, &[0, 1, 2]);
            }
        }
        let base = c.config.retry_after_ms;
        let expected: Vec<u64> = (0..waits.len() as u32)
            .map(|k| base << k.min(c.config.retry_doublings_max))
            .collect();
        assert_eq!(waits, expected);
        // It votes again: forgiven, no longer on trial, and its next failure starts from the
        // first wait.
        round += 1;
        c.block(round, time + 1, &[0, 1, 3]);
        assert!(c.passed_over().is_empty());
        for r in round + 1..round + 5 {
            let (_, on_trial) = c
                .state
                .leader_on_trial(&c.vs, &c.schedule, &c.config, Round(r));
            assert!(!on_trial, "round {r}");
        }
        while c.leader(round + 1) != 3 {
            round += 1;
            c.block(round, time + 2, &[0, 1, 3]);
        }
        c.block(round + 2, time + 3, &[0, 1, 2]);
        let p = c.state.passed_over(&c.vs, &c.config);
        assert_eq!(p[0].failure.strikes, 1);
        assert_eq!(p[0].until.0 - p[0].failure.at.0, base);
    }

    #[test]
    fn no_more_than_f_power_is_passed_over_and_the_latest_failures_win() {
        // Seven validators: f = 2.
        let mut c = Chain::new(&[1; 7]);
        c.block(1, 10, &[0, 1, 2, 3, 4, 5, 6]);
        // Rounds 2..=5 fail: their four leaders all failed, but only the last two are out.
        let failed: Vec<usize> = (2..=5).map(|r| c.schedule.leader(Round(r))).collect();
        c.block(6, 5_000, &[0, 1, 2, 3, 4, 5, 6]);
        let mut out = c.passed_over();
        out.sort();
        let mut want = failed[2..].to_vec();
        want.sort();
        assert_eq!(out, want);
        let weights: u64 = out.iter().map(|&i| c.vs.member(i).power).sum();
        assert!(weights <= c.vs.faulty_power_max());
    }

    #[test]
    fn uneven_powers_never_pass_over_more_than_f() {
        let mut c = Chain::new(&[5, 1, 3, 2]);
        let f = c.vs.faulty_power_max();
        let mut time = 0;
        for r in 1..200u64 {
            time += 7;
            if r.is_multiple_of(3) {
                continue;
            }
            c.block(r, time, &[0, 2]);
            let power: u64 = c.passed_over().iter().map(|&i| c.vs.member(i).power).sum();
            assert!(power <= f, "round {r}: {power} > {f}");
            assert!(!c.passed_over().contains(&c.leader(r + 1)), "round {r}");
        }
    }

    #[test]
    fn far_past_a_block_the_schedule_alone_decides_whatever_the_state() {
        let mut c = Chain::new(&[1, 1, 1, 1]);
        c.block(1, 10, &[0, 1, 2, 3]);
        c.block(2, 20, &[0, 1, 2, 3]);
        for r in 4..=6 {
            c.block(r, 1_000 + r, &[0, 1, 2]);
        }
        assert_eq!(c.passed_over(), vec![3]);
        // Validator 3 leads rounds 7 and 11 by the schedule; it is passed over right after
        // the block of round 6, and leads again four rounds past it.
        assert_eq!(c.schedule.leader(Round(7)), 3);
        assert_ne!(c.leader(7), 3);
        assert_eq!(c.schedule.leader(Round(11)), 3);
        assert_eq!(c.leader(11), 3);
        // A node that restarted without the failure agrees from there on.
        let fresh = Reputation::start(&c.vs, Round(6), TimestampMs(1_006));
        for r in 11..40 {
            assert_eq!(
                fresh.leader(&c.vs, &c.schedule, &c.config, Round(r)),
                c.leader(r),
                "round {r}"
            );
        }
    }

    #[test]
    fn a_long_gap_examines_only_its_last_rounds() {
        let mut c = Chain::new(&[1, 1, 1, 1]);
        c.block(1, 10, &[0, 1, 2, 3]);
        let last = u64::MAX - 1;
        let window: Vec<usize> = (last - c.config.gap_rounds_max..last)
            .map(|r| c.schedule.leader(Round(r)))
            .collect();
        c.block(last, 20, &[0, 1, 2, 3]);
        let out = c.passed_over();
        assert_eq!(out.len(), 1);
        assert!(window.contains(&out[0]));
        let failed_round = c.state.passed_over(&c.vs, &c.config)[0].failure.round;
        assert!(failed_round.0 >= last - c.config.gap_rounds_max);
    }

    #[test]
    fn the_leader_of_a_round_is_the_same_whichever_way_the_state_was_reached() {
        // Two nodes: one folds each block as it comes, the other rebuilds from the start
        // state with the same blocks.
        let mut a = Chain::new(&[1, 1, 1, 1, 1, 1, 1]);
        let mut blocks = Vec::new();
        let mut time = 0;
        for r in 1..300u64 {
            time += 3;
            if r % 7 == 2 || r.is_multiple_of(11) {
                continue;
            }
            let signers: Vec<usize> = (0..7)
                .filter(|&i| !(r + i as u64).is_multiple_of(5))
                .collect();
            let qc_round = a.state.round;
            let proposer = a.block(r, time, &signers);
            blocks.push((r, time, proposer, qc_round, signers));
        }
        let mut b = Chain::new(&[1, 1, 1, 1, 1, 1, 1]);
        for (r, time, proposer, qc_round, signers) in &blocks {
            let facts = BlockFacts {
                round: Round(*r),
                timestamp: TimestampMs(*time),
                proposer: *proposer,
                qc_round: *qc_round,
                qc_signers: signers,
            };
            b.state = b.state.after_block(&b.vs, &b.schedule, &b.config, &facts);
        }
        assert_eq!(a.state, b.state);
        for r in 300..320 {
            assert_eq!(a.leader(r), b.leader(r));
        }
    }
}
