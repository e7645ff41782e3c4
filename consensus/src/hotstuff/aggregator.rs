//! Collecting signatures into certificates: votes into QCs (at the next leader) and timeouts
//! into TCs (at every node). Callers hand in messages whose signatures they have verified.
//!
//! Owns: per-round collections, bounded by [`VOTES_ROUNDS_MAX`] rounds and one entry per
//! validator per round. Never: verifies signatures or decides rounds.

use std::collections::{BTreeMap, HashMap, HashSet};

use cairn_ledger::block::QuorumCert;
use cairn_ledger::{Hash, PublicKey, Round, Signature};

use super::messages::{TimeoutCert, TimeoutMsg, TimeoutSignature, VoteMsg};

/// Rounds for which votes are kept at once; the oldest round is forgotten first.
pub const VOTES_ROUNDS_MAX: usize = 8;

/// What adding a vote did.
#[derive(Debug, PartialEq, Eq)]
pub enum VoteOutcome {
    /// Counted; no quorum yet (or the quorum was already reached for this round).
    Counted,
    /// The same vote again.
    Duplicate,
    /// The voter already voted for a different block in this round: the first vote.
    Equivocation(Box<VoteMsg>),
    /// This vote completed a QC.
    Formed(QuorumCert),
}

/// What is already known of a voter in a round, before its new vote is verified.
#[derive(Debug, PartialEq, Eq)]
pub enum Earlier {
    /// Its vote for this same block was counted.
    Same,
    /// Its vote for another block was counted, and its equivocation was already reported.
    Reported,
    /// Its vote for another block was counted; the new one, if it verifies, is evidence.
    Other,
}

#[derive(Default)]
struct RoundVotes {
    by_voter: HashMap<PublicKey, VoteMsg>,
    by_block: HashMap<Hash, (u64, Vec<(PublicKey, Signature)>)>,
    /// Voters already reported as equivocating: evidence once per voter and round.
    reported: HashSet<PublicKey>,
    formed: bool,
}

#[derive(Default)]
pub struct VoteAggregator {
    rounds: BTreeMap<Round, RoundVotes>,
}

impl VoteAggregator {
    pub fn add(&mut self, vote: VoteMsg, power: u64, quorum: u64) -> VoteOutcome {
        if !self.rounds.contains_key(&vote.round) && self.rounds.len() >= VOTES_ROUNDS_MAX {
            self.rounds.pop_first();
        }
        let round = self.rounds.entry(vote.round).or_default();
        if let Some(first) = round.by_voter.get(&vote.voter) {
            return if first.block == vote.block || !round.reported.insert(vote.voter) {
                VoteOutcome::Duplicate
            } else {
                VoteOutcome::Equivocation(Box::new(first.clone()))
            };
        }
        round.by_voter.insert(vote.voter, vote.clone());
        let (sum, votes) = round.by_block.entry(vote.block).or_default();
        *sum += power;
        votes.push((vote.voter, vote.signature));
        if round.formed || *sum < quorum {
            return VoteOutcome::Counted;
        }
        round.formed = true;
        // Canonical order, so every aggregator builds the same bytes from the same votes.
        let mut votes = votes.clone();
        votes.sort_by_key(|(k, _)| *k);
        VoteOutcome::Formed(QuorumCert {
            round: vote.round,
            block: vote.block,
            votes,
        })
    }

    /// What was counted from `vote`'s voter in its round, so a repeat is refused without
    /// verifying its signature: a flood of copies costs a lookup each.
    pub fn earlier(&self, vote: &VoteMsg) -> Option<Earlier> {
        let round = self.rounds.get(&vote.round)?;
        let first = round.by_voter.get(&vote.voter)?;
        Some(if first.block == vote.block {
            Earlier::Same
        } else if round.reported.contains(&vote.voter) {
            Earlier::Reported
        } else {
            Earlier::Other
        })
    }

    /// Whether a QC for `round` was already assembled here.
    #[cfg(test)]
    pub fn formed(&self, round: Round) -> bool {
        self.rounds.get(&round).is_some_and(|r| r.formed)
    }

    /// Forgets rounds below `round`.
    pub fn prune_below(&mut self, round: Round) {
        self.rounds = self.rounds.split_off(&round);
    }
}

/// What adding a timeout did.
#[derive(Debug, PartialEq, Eq)]
pub enum TimeoutOutcome {
    Counted { power: u64 },
    Duplicate,
    Formed(TimeoutCert),
}

/// Timeouts for the current round only: a timeout for a later round is only counted once
/// its sender's certificates have moved this node to that round.
pub struct TimeoutCollector {
    round: Round,
    signatures: Vec<TimeoutSignature>,
    power: u64,
    high_qc: Option<QuorumCert>,
    formed: bool,
}

impl TimeoutCollector {
    pub fn new(round: Round) -> TimeoutCollector {
        TimeoutCollector {
            round,
            signatures: Vec::new(),
            power: 0,
            high_qc: None,
            formed: false,
        }
    }

    #[cfg(test)]
    pub fn round(&self) -> Round {
        self.round
    }

    pub fn add(&mut self, timeout: &TimeoutMsg, power: u64, quorum: u64) -> TimeoutOutcome {
        debug_assert_eq!(timeout.round, self.round);
        if self.signatures.iter().any(|s| s.signer == timeout.sender) {
            return TimeoutOutcome::Duplicate;
        }
        self.signatures.push(TimeoutSignature {
            signer: timeout.sender,
            high_qc_round: timeout.high_qc.round,
            signature: timeout.signature,
        });
        self.power += power;
        if self
            .high_qc
            .as_ref()
            .is_none_or(|q| timeout.high_qc.round > q.round)
        {
            self.high_qc = Some(timeout.high_qc.clone());
        }
        if self.formed || self.power < quorum {
            return TimeoutOutcome::Counted { power: self.power };
        }
        self.formed = true;
        let mut signatures = self.signatures.clone();
        signatures.sort_by_key(|s| s.signer);
        TimeoutOutcome::Formed(TimeoutCert {
            round: self.round,
            high_qc: self
                .high_qc
                .clone()
                .unwrap_or_else(|| timeout.high_qc.clone()),
            signatures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(round: u64, block: u8, voter: u8) -> VoteMsg {
        VoteMsg {
            round: Round(round),
            block: Hash([block; 32]),
            voter: PublicKey([voter; 32]),
            signature: Signature([voter; 64]),
        }
    }

    #[test]
    fn quorum_of_power_forms_exactly_one_qc() {
        let mut a = VoteAggregator::default();
        assert_eq!(a.add(vote(1, 7, 1), 1, 3), VoteOutcome::Counted);
        assert_eq!(a.add(vote(1, 7, 1), 1, 3), VoteOutcome::Duplicate);
        assert_eq!(a.add(vote(1, 8, 2), 1, 3), VoteOutcome::Counted);
        assert_eq!(a.add(vote(1, 7, 3), 1, 3), VoteOutcome::Counted);
        let VoteOutcome::Formed(qc) = a.add(vote(1, 7, 4), 1, 3) else {
            panic!("no QC")
        };
        assert_eq!(
            (qc.round, qc.block, qc.votes.len()),
            (Round(1), Hash([7; 32]), 3)
        );
        assert!(qc.votes.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(a.formed(Round(1)));
        assert_eq!(a.add(vote(1, 7, 5), 1, 3), VoteOutcome::Counted);
    }

    #[test]
    fn a_second_block_from_one_voter_is_equivocation() {
        let mut a = VoteAggregator::default();
        a.add(vote(2, 1, 9), 1, 3);
        assert_eq!(
            a.add(vote(2, 2, 9), 1, 3),
            VoteOutcome::Equivocation(Box::new(vote(2, 1, 9)))
        );
        // Reported once: a third block from the same voter is not new evidence.
        assert_eq!(a.add(vote(2, 3, 9), 1, 3), VoteOutcome::Duplicate);
    }

    #[test]
    fn earlier_votes_are_known_before_verification() {
        let mut a = VoteAggregator::default();
        assert_eq!(a.earlier(&vote(2, 1, 9)), None);
        a.add(vote(2, 1, 9), 1, 3);
        assert_eq!(a.earlier(&vote(2, 1, 9)), Some(Earlier::Same));
        assert_eq!(a.earlier(&vote(2, 2, 9)), Some(Earlier::Other));
        assert_eq!(a.earlier(&vote(3, 1, 9)), None);
        a.add(vote(2, 2, 9), 1, 3);
        assert_eq!(a.earlier(&vote(2, 3, 9)), Some(Earlier::Reported));
    }

    #[test]
    fn rounds_kept_are_bounded() {
        let mut a = VoteAggregator::default();
        for r in 0..(VOTES_ROUNDS_MAX as u64 * 3) {
            a.add(vote(r, 1, 1), 1, 3);
        }
        assert_eq!(a.rounds.len(), VOTES_ROUNDS_MAX);
        a.prune_below(Round(VOTES_ROUNDS_MAX as u64 * 3 - 1));
        assert_eq!(a.rounds.len(), 1);
    }
}
