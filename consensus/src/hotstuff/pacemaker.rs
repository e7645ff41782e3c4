//! The pacemaker: which round this node is in, how long it waits before giving up on it,
//! and the timeouts collected for it.
//!
//! A node enters round r+1 when it learns a QC or a TC for round r (the engine tells it).
//! The wait for round r is `round_timeout_ms_base · 2^k`, capped at `round_timeout_ms_max`,
//! where k counts the rounds since the last commit beyond the two a commit always trails
//! the current round by (a block of round r commits when round r+2 starts). k therefore
//! grows by one per failed round and drops back to 0 with the next commit, with no state
//! of its own that a crash could lose.
//!
//! Owns: the current round and its timeout collector. Never: reads a clock; the driver
//! owns time and reports it back as `Input::Timeout`.

use cairn_ledger::Round;
use cairn_ledger::genesis::HotStuffParams;

use super::aggregator::TimeoutCollector;

/// Doublings before the cap; keeps the shift in range whatever the base.
pub const BACKOFF_EXPONENT_MAX: u64 = 32;
/// Rounds past the committed block's round that still get the base timeout.
pub const BACKOFF_FREE_ROUNDS: u64 = 3;
/// A trial round waits the base timeout divided by this.
pub const TRIAL_TIMEOUT_DIVISOR: u64 = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacemakerError {
    #[error("round_timeout_ms_base is 0; a round needs time for a proposal and votes")]
    ZeroBase,
    #[error("round_timeout_ms_max ({max}) is below round_timeout_ms_base ({base})")]
    MaxBelowBase { base: u64, max: u64 },
}

pub struct Pacemaker {
    round_timeout_ms_base: u64,
    round_timeout_ms_max: u64,
    current_round: Round,
    timeouts: TimeoutCollector,
}

impl Pacemaker {
    pub fn new(params: &HotStuffParams) -> Result<Pacemaker, PacemakerError> {
        let (base, max) = (params.round_timeout_ms_base, params.round_timeout_ms_max);
        if base == 0 {
            return Err(PacemakerError::ZeroBase);
        }
        if max < base {
            return Err(PacemakerError::MaxBelowBase { base, max });
        }
        Ok(Pacemaker {
            round_timeout_ms_base: base,
            round_timeout_ms_max: max,
            current_round: Round(0),
            timeouts: TimeoutCollector::new(Round(0)),
        })
    }

    pub fn current_round(&self) -> Round {
        self.current_round
    }

    /// Moves to `round` if it is later; returns whether it moved.
    pub fn advance_to(&mut self, round: Round) -> bool {
        if round <= self.current_round {
            return false;
        }
        self.current_round = round;
        self.timeouts = TimeoutCollector::new(round);
        true
    }

    pub fn timeouts(&mut self) -> &mut TimeoutCollector {
        &mut self.timeouts
    }

    /// How long to wait instead of `normal_ms` in a round led by a validator on trial (or
    /// whose votes go to one): a quarter of the base timeout. A retried leader that is still
    /// down then costs two short waits; one that is back but slow fails its trial and is
    /// back anyway at its next vote in a certificate. Timeouts decide liveness only, so a
    /// node using a shorter one than others risks nothing but its own round's votes.
    pub fn trial_timeout_ms(&self, normal_ms: u64) -> u64 {
        normal_ms.min((self.round_timeout_ms_base / TRIAL_TIMEOUT_DIVISOR).max(1))
    }

    /// How long to wait in `round` when the highest committed block is of `committed_round`.
    ///
    /// On a healthy chain the committed block trails the current round by two (the 2-chain
    /// rule). One crashed leader in the rotation leaves the next round three behind, and
    /// must cost only the base timeout, or a network with one validator down runs at half
    /// speed: backoff starts from the fourth round without a commit.
    pub fn round_timeout_ms(&self, round: Round, committed_round: Round) -> u64 {
        let exponent = round
            .0
            .saturating_sub(committed_round.0.saturating_add(BACKOFF_FREE_ROUNDS))
            .min(BACKOFF_EXPONENT_MAX);
        self.round_timeout_ms_base
            .saturating_mul(1u64 << exponent)
            .min(self.round_timeout_ms_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_ledger::genesis::LeaderElection;

    fn pacemaker(base: u64, max: u64) -> Pacemaker {
        Pacemaker::new(&HotStuffParams {
            round_timeout_ms_base: base,
            round_timeout_ms_max: max,
            leader_election: LeaderElection::RoundRobin,
        })
        .unwrap()
    }

    #[test]
    fn backoff_doubles_per_failed_round_and_is_capped() {
        let p = pacemaker(1000, 30_000);
        let waits: Vec<u64> = (11..18)
            .map(|r| p.round_timeout_ms(Round(r), Round(8)))
            .collect();
        assert_eq!(waits, vec![1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
        // Far past the last commit: still capped, no overflow.
        assert_eq!(p.round_timeout_ms(Round(u64::MAX), Round(0)), 30_000);
    }

    #[test]
    fn backoff_resets_when_a_commit_catches_up() {
        let p = pacemaker(500, 8000);
        assert_eq!(p.round_timeout_ms(Round(20), Round(10)), 8000);
        assert_eq!(p.round_timeout_ms(Round(20), Round(17)), 500);
        assert_eq!(p.round_timeout_ms(Round(21), Round(17)), 1000);
        assert_eq!(p.round_timeout_ms(Round(1), Round(0)), 500);
    }

    #[test]
    fn bad_parameters_are_refused() {
        let zero = HotStuffParams {
            round_timeout_ms_base: 0,
            round_timeout_ms_max: 5,
            leader_election: LeaderElection::RoundRobin,
        };
        assert_eq!(Pacemaker::new(&zero).err(), Some(PacemakerError::ZeroBase));
        let inverted = HotStuffParams {
            round_timeout_ms_base: 10,
            round_timeout_ms_max: 5,
            leader_election: LeaderElection::RoundRobin,
        };
        assert_eq!(
            Pacemaker::new(&inverted).err(),
            Some(PacemakerError::MaxBelowBase { base: 10, max: 5 })
        );
    }

    #[test]
    fn advancing_resets_the_timeout_collector() {
        let mut p = pacemaker(1, 1);
        assert!(p.advance_to(Round(3)));
        assert!(!p.advance_to(Round(2)));
        assert_eq!(p.timeouts().round(), Round(3));
    }

    #[test]
    fn a_trial_round_waits_a_quarter_of_the_base_and_never_longer_than_usual() {
        let p = pacemaker(1000, 30_000);
        assert_eq!(p.trial_timeout_ms(1000), 250);
        assert_eq!(p.trial_timeout_ms(8000), 250);
        assert_eq!(p.trial_timeout_ms(100), 100);
        assert_eq!(pacemaker(2, 30_000).trial_timeout_ms(2), 1);
    }
}
