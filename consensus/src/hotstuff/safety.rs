//! Safety rules (Aptos `safety-rules`, 2-chain variant): the only code that signs votes,
//! timeouts and proposals, and the state that keeps a validator from ever equivocating.
//!
//! Rules:
//! - vote in round r only if r > last voted round (one vote per round, ever);
//! - vote for a block of round r only if its justify QC is from round r−1, or the proposal
//!   carries a TC for round r−1 and the justify QC's round is ≥ the highest QC round in that
//!   TC (the 2-chain rule: a committed block is never abandoned);
//! - time out round r only if r is justified by the highest QC (r−1) or TC (r−1) seen, and r
//!   is not below the last voted round; after timing out, never vote in r;
//! - propose at most once per round.
//!
//! Every signature changes [`SafetyState`]; the engine emits the new state as
//! `Effect::Persist` *before* the message carrying the signature, and a restarted validator
//! resumes from the last persisted state only.
//!
//! A persisted state can still be behind what the key signed: the key was moved, or the data
//! dir restored from a backup. So a restarted validator first raises its rounds to what its
//! store shows ([`SafetyState::raise_to`]), then may be held to observing for a few rounds
//! ([`SafetyRules::observe_for`]), and stops signing for good if it sees a valid signature
//! of its own key above the rounds it remembers meanwhile ([`SafetyRules::signed_elsewhere`]).
//!
//! Owns: `SafetyState` and every signature the engine makes. Never: talks to the network or
//! trusts a certificate it was handed without the engine having verified it.

use cairn_ledger::block::QuorumCert;
use cairn_ledger::codec::{self, CodecError};
use cairn_ledger::{Hash, Round, Signature};
use serde::{Deserialize, Serialize};

use super::messages::{
    TIMEOUT_BYTES_MAX, TimeoutCert, TimeoutMsg, VoteMsg, proposal_signing_bytes,
    timeout_signing_bytes, vote_signing_bytes,
};
use crate::bft::Signer;

/// Largest encoded safety state: two timeouts' worth of certificates is a generous bound.
pub const SAFETY_STATE_BYTES_MAX: usize = 3 * TIMEOUT_BYTES_MAX;

/// What a validator must remember across crashes so it never signs two conflicting things.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyState {
    /// Highest round voted or timed out in; no vote is ever signed at or below it again.
    pub last_voted_round: Round,
    /// Highest round a timeout was signed for.
    pub highest_timeout_round: Round,
    /// Highest round a proposal was signed for.
    pub last_proposed_round: Round,
    /// Highest verified QC seen: timeouts carry it, and after a restart the validator
    /// re-enters the round it justifies.
    pub highest_qc: QuorumCert,
    /// Highest verified TC seen, for the same reasons.
    pub highest_tc: Option<TimeoutCert>,
    /// The last vote signed; a repeated proposal gets this same vote back, never a new one.
    pub last_vote: Option<VoteMsg>,
    /// The last timeout signed (without its TC); re-broadcast unchanged.
    pub last_timeout: Option<TimeoutMsg>,
}

impl SafetyState {
    /// The state of a validator that has signed nothing: it starts after the genesis QC.
    pub fn initial(genesis_qc: QuorumCert) -> SafetyState {
        SafetyState {
            last_voted_round: Round(0),
            highest_timeout_round: Round(0),
            last_proposed_round: Round(0),
            highest_qc: genesis_qc,
            highest_tc: None,
            last_vote: None,
            last_timeout: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<SafetyState, CodecError> {
        codec::decode(bytes, SAFETY_STATE_BYTES_MAX, "safety state")
    }

    /// Raises the last voted and proposed rounds to at least `round`: a restarted validator
    /// may have signed anything up to the highest round its store holds. Returns whether
    /// anything changed (the state must then be persisted before anything is sent).
    pub fn raise_to(&mut self, round: Round) -> bool {
        let before = (self.last_voted_round, self.last_proposed_round);
        self.last_voted_round = self.last_voted_round.max(round);
        self.last_proposed_round = self.last_proposed_round.max(round);
        before != (self.last_voted_round, self.last_proposed_round)
    }

    fn tc_round(&self) -> Round {
        self.highest_tc.as_ref().map_or(Round(0), |tc| tc.round)
    }

    /// The round the highest certificates justify: one past the later of them.
    pub fn justified_round(&self) -> Round {
        Round(
            self.highest_qc
                .round
                .max(self.tc_round())
                .0
                .saturating_add(1),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SafetyError {
    #[error("already voted in round {last_voted_round}; refusing to vote in round {round}")]
    AlreadyVoted {
        round: Round,
        last_voted_round: Round,
    },
    #[error(
        "block of round {round} extends a QC of round {justify_round}; voting needs a QC of the \
         previous round, or a TC for it (TC round {tc_round:?}, its highest QC round {tc_high_qc_round:?})"
    )]
    NotSafeToVote {
        round: Round,
        justify_round: Round,
        tc_round: Option<Round>,
        tc_high_qc_round: Option<Round>,
    },
    #[error(
        "round {round} is not justified by the highest QC (round {qc_round}) or TC (round {tc_round})"
    )]
    NotSafeToTimeout {
        round: Round,
        qc_round: Round,
        tc_round: Round,
    },
    #[error("round {round} is below the last voted round {last_voted_round}; no timeout for it")]
    TimeoutBelowVote {
        round: Round,
        last_voted_round: Round,
    },
    #[error("already proposed in round {last_proposed_round}; refusing round {round}")]
    AlreadyProposed {
        round: Round,
        last_proposed_round: Round,
    },
    #[error(
        "observing for {rounds_left} more round(s) after start before signing anything, in case \
         this key is signing elsewhere"
    )]
    Observing { rounds_left: u64 },
    #[error(
        "this validator's key signed a {what} for round {round}, above the last round this node \
         remembers signing ({last_round}): the key is signing elsewhere (another machine runs \
         it) or this data dir is an old backup. Stopped signing so as never to sign twice for \
         one round; see README 'Moving a validator safely'"
    )]
    SignedElsewhere {
        what: &'static str,
        round: Round,
        last_round: Round,
    },
}

/// Whether the rules may sign at all right now.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Signing {
    Allowed,
    /// Right after start, for this many more rounds: see [`SafetyRules::observe_for`].
    Observing {
        rounds_left: u64,
    },
    /// A signature of this key was seen that this node did not make; never signs again.
    Halted(SafetyError),
}

fn next(round: Round) -> Round {
    Round(round.0.saturating_add(1))
}

pub struct SafetyRules {
    state: SafetyState,
    chain: Hash,
    signing: Signing,
    /// Test-only: lets the simulator prove its checkers catch a double vote.
    skip_voted_round_check: bool,
}

impl SafetyRules {
    pub fn new(state: SafetyState, chain: Hash, skip_voted_round_check: bool) -> SafetyRules {
        SafetyRules {
            state,
            chain,
            signing: Signing::Allowed,
            skip_voted_round_check,
        }
    }

    pub fn state(&self) -> &SafetyState {
        &self.state
    }

    /// Signs nothing for the next `rounds` rounds (0: sign at once). A persisted state behind
    /// what the key really signed cannot be told from a current one; watching the network
    /// first gives the key's other signatures a chance to show up before this node adds any.
    pub fn observe_for(&mut self, rounds: u64) {
        if self.signing == Signing::Allowed && rounds > 0 {
            self.signing = Signing::Observing {
                rounds_left: rounds,
            };
        }
    }

    /// One round of the observation window went by.
    pub fn round_passed(&mut self) {
        if let Signing::Observing { rounds_left } = &mut self.signing {
            *rounds_left = rounds_left.saturating_sub(1);
            if *rounds_left == 0 {
                self.signing = Signing::Allowed;
            }
        }
    }

    /// Whether a vote, timeout or proposal may be signed now (the other rules still apply).
    pub fn may_sign(&self) -> bool {
        self.signing == Signing::Allowed
    }

    /// Why nothing will ever be signed again, once [`Self::signed_elsewhere`] found out.
    pub fn halted(&self) -> Option<&SafetyError> {
        match &self.signing {
            Signing::Halted(e) => Some(e),
            Signing::Allowed | Signing::Observing { .. } => None,
        }
    }

    /// Whether signing waits for the observation window, during which this key's own
    /// signatures are looked for ([`Self::signed_elsewhere`]).
    pub fn observing(&self) -> bool {
        matches!(self.signing, Signing::Observing { .. })
    }

    /// During the observation window, this node's key made a verified signature on a
    /// `what` for `round`. Every signature this node makes is remembered first, so one
    /// above the remembered rounds was made by another holder of the key: from then on
    /// nothing is signed, and the error says why. A proposal (`is_proposal`) is compared
    /// with the last proposed round, anything else with the last voted round. Outside the
    /// window nothing is checked.
    pub fn signed_elsewhere(
        &mut self,
        what: &'static str,
        round: Round,
        is_proposal: bool,
    ) -> Option<SafetyError> {
        let last_round = if is_proposal {
            self.state.last_proposed_round
        } else {
            self.state.last_voted_round
        };
        if round <= last_round || !self.observing() {
            return None;
        }
        let error = SafetyError::SignedElsewhere {
            what,
            round,
            last_round,
        };
        self.signing = Signing::Halted(error.clone());
        Some(error)
    }

    fn check_signing(&self) -> Result<(), SafetyError> {
        match &self.signing {
            Signing::Allowed => Ok(()),
            Signing::Observing { rounds_left } => Err(SafetyError::Observing {
                rounds_left: *rounds_left,
            }),
            Signing::Halted(e) => Err(e.clone()),
        }
    }

    /// Remembers a verified QC if it is the highest yet.
    pub fn observe_qc(&mut self, qc: &QuorumCert) {
        if qc.round > self.state.highest_qc.round {
            self.state.highest_qc = qc.clone();
        }
    }

    /// Remembers a verified TC if it is the highest yet.
    pub fn observe_tc(&mut self, tc: &TimeoutCert) {
        if self
            .state
            .highest_tc
            .as_ref()
            .is_none_or(|t| tc.round > t.round)
        {
            self.state.highest_tc = Some(tc.clone());
        }
    }

    /// Signs a vote for `block` of `round`, whose justify QC has `justify_round`, proposed
    /// with `tc` (already verified). Returns the vote and whether the state changed (a
    /// repeated request for the same vote gets the stored one back, nothing to persist).
    pub fn vote(
        &mut self,
        signer: &dyn Signer,
        round: Round,
        block: Hash,
        justify_round: Round,
        tc: Option<&TimeoutCert>,
    ) -> Result<(VoteMsg, bool), SafetyError> {
        self.check_signing()?;
        if let Some(last) = &self.state.last_vote
            && last.round == round
            && last.block == block
        {
            return Ok((last.clone(), false));
        }
        if round <= self.state.last_voted_round && !self.skip_voted_round_check {
            return Err(SafetyError::AlreadyVoted {
                round,
                last_voted_round: self.state.last_voted_round,
            });
        }
        let extends_previous = round == next(justify_round);
        let after_timeout =
            tc.is_some_and(|tc| round == next(tc.round) && justify_round >= tc.high_qc.round);
        if !extends_previous && !after_timeout {
            return Err(SafetyError::NotSafeToVote {
                round,
                justify_round,
                tc_round: tc.map(|t| t.round),
                tc_high_qc_round: tc.map(|t| t.high_qc.round),
            });
        }
        let vote = VoteMsg {
            round,
            block,
            voter: signer.public_key(),
            signature: signer.sign(&vote_signing_bytes(&self.chain, round, &block)),
        };
        // The last voted round never decreases; with the rule on, every vote raises it.
        assert!(self.skip_voted_round_check || round > self.state.last_voted_round);
        self.state.last_voted_round = self.state.last_voted_round.max(round);
        self.state.last_vote = Some(vote.clone());
        Ok((vote, true))
    }

    /// Signs a timeout for `round` carrying the highest QC. Returns the timeout and whether
    /// the state changed (a second call for the same round returns the stored timeout).
    pub fn timeout(
        &mut self,
        signer: &dyn Signer,
        round: Round,
    ) -> Result<(TimeoutMsg, bool), SafetyError> {
        self.check_signing()?;
        if let Some(last) = &self.state.last_timeout
            && last.round == round
        {
            return Ok((last.clone(), false));
        }
        let qc_round = self.state.highest_qc.round;
        let tc_round = self.state.tc_round();
        if round != next(qc_round) && round != next(tc_round) {
            return Err(SafetyError::NotSafeToTimeout {
                round,
                qc_round,
                tc_round,
            });
        }
        if round < self.state.last_voted_round {
            return Err(SafetyError::TimeoutBelowVote {
                round,
                last_voted_round: self.state.last_voted_round,
            });
        }
        let timeout = TimeoutMsg {
            round,
            high_qc: self.state.highest_qc.clone(),
            tc: None,
            sender: signer.public_key(),
            signature: signer.sign(&timeout_signing_bytes(&self.chain, round, qc_round)),
        };
        // A timeout counts as a vote in its round: the last voted round never decreases.
        assert!(round >= self.state.last_voted_round);
        assert!(round >= self.state.highest_timeout_round);
        self.state.last_voted_round = round;
        self.state.highest_timeout_round = round;
        self.state.last_timeout = Some(timeout.clone());
        Ok((timeout, true))
    }

    /// Signs the proposal of `block` for `round`, once per round.
    pub fn propose(
        &mut self,
        signer: &dyn Signer,
        round: Round,
        block: Hash,
    ) -> Result<Signature, SafetyError> {
        self.check_signing()?;
        if round <= self.state.last_proposed_round {
            return Err(SafetyError::AlreadyProposed {
                round,
                last_proposed_round: self.state.last_proposed_round,
            });
        }
        assert!(round > self.state.last_proposed_round);
        self.state.last_proposed_round = round;
        Ok(signer.sign(&proposal_signing_bytes(&self.chain, round, &block)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bft::Ed25519Signer;
    use cairn_ledger::crypto::Keypair;

    fn qc(round: u64) -> QuorumCert {
        QuorumCert {
            round: Round(round),
            block: Hash([round as u8; 32]),
            votes: Vec::new(),
        }
    }

    fn tc(round: u64, high_qc_round: u64) -> TimeoutCert {
        TimeoutCert {
            round: Round(round),
            high_qc: qc(high_qc_round),
            signatures: Vec::new(),
        }
    }

    fn rules(skip: bool) -> (SafetyRules, Ed25519Signer) {
        let state = SafetyState::initial(qc(0));
        (
            SafetyRules::new(state, Hash([9; 32]), skip),
            Ed25519Signer::new(Keypair::from_secret(&[1; 32])),
        )
    }

    #[test]
    fn one_vote_per_round_and_a_repeat_gets_the_same_vote() {
        let (mut r, s) = rules(false);
        let (v1, fresh) = r.vote(&s, Round(1), Hash([1; 32]), Round(0), None).unwrap();
        assert!(fresh);
        let (again, fresh) = r.vote(&s, Round(1), Hash([1; 32]), Round(0), None).unwrap();
        assert_eq!((again, fresh), (v1, false));
        assert_eq!(
            r.vote(&s, Round(1), Hash([2; 32]), Round(0), None),
            Err(SafetyError::AlreadyVoted {
                round: Round(1),
                last_voted_round: Round(1)
            })
        );
    }

    #[test]
    fn the_test_switch_really_lets_a_second_vote_through() {
        let (mut r, s) = rules(true);
        r.vote(&s, Round(1), Hash([1; 32]), Round(0), None).unwrap();
        assert!(r.vote(&s, Round(1), Hash([2; 32]), Round(0), None).is_ok());
    }

    #[test]
    fn two_chain_rule_needs_the_previous_round_qc_or_a_tc_no_higher_than_the_justify() {
        let (mut r, s) = rules(false);
        let err = r
            .vote(&s, Round(3), Hash([3; 32]), Round(1), None)
            .unwrap_err();
        assert!(matches!(err, SafetyError::NotSafeToVote { .. }));
        // TC for round 2 whose highest QC is round 1: a round-3 block on QC(1) is safe.
        assert!(
            r.vote(&s, Round(3), Hash([3; 32]), Round(1), Some(&tc(2, 1)))
                .is_ok()
        );
        // TC for round 4 whose highest QC is round 3: a block on QC(1) would abandon it.
        let err = r
            .vote(&s, Round(5), Hash([5; 32]), Round(1), Some(&tc(4, 3)))
            .unwrap_err();
        assert!(matches!(
            err,
            SafetyError::NotSafeToVote {
                tc_high_qc_round: Some(Round(3)),
                ..
            }
        ));
        // A TC for a round other than r-1 does not help.
        let err = r
            .vote(&s, Round(6), Hash([6; 32]), Round(3), Some(&tc(4, 3)))
            .unwrap_err();
        assert!(matches!(err, SafetyError::NotSafeToVote { .. }));
    }

    #[test]
    fn timeouts_need_a_justified_round_and_end_voting_in_it() {
        let (mut r, s) = rules(false);
        assert!(matches!(
            r.timeout(&s, Round(5)),
            Err(SafetyError::NotSafeToTimeout { .. })
        ));
        r.vote(&s, Round(1), Hash([1; 32]), Round(0), None).unwrap();
        let (t, fresh) = r.timeout(&s, Round(1)).unwrap();
        assert!(fresh);
        assert_eq!((t.round, t.high_qc.round), (Round(1), Round(0)));
        assert_eq!(r.timeout(&s, Round(1)).unwrap(), (t, false));
        assert!(r.vote(&s, Round(1), Hash([7; 32]), Round(0), None).is_err());
        // A QC for round 3 makes round 4 justified; the vote there rules out timing out
        // round 3 even when a TC for round 2 would justify it.
        r.observe_qc(&qc(3));
        r.vote(&s, Round(4), Hash([4; 32]), Round(3), None).unwrap();
        r.observe_tc(&tc(2, 1));
        assert_eq!(r.state().justified_round(), Round(4));
        assert!(matches!(
            r.timeout(&s, Round(3)),
            Err(SafetyError::TimeoutBelowVote { .. })
        ));
        assert!(matches!(
            r.timeout(&s, Round(6)),
            Err(SafetyError::NotSafeToTimeout { .. })
        ));
    }

    #[test]
    fn one_proposal_per_round() {
        let (mut r, s) = rules(false);
        r.propose(&s, Round(2), Hash([1; 32])).unwrap();
        assert_eq!(
            r.propose(&s, Round(2), Hash([2; 32])),
            Err(SafetyError::AlreadyProposed {
                round: Round(2),
                last_proposed_round: Round(2)
            })
        );
    }

    #[test]
    fn state_round_trips_through_the_codec() {
        let (mut r, s) = rules(false);
        r.vote(&s, Round(1), Hash([1; 32]), Round(0), None).unwrap();
        r.timeout(&s, Round(1)).unwrap();
        r.observe_tc(&tc(1, 0));
        let bytes = r.state().encode();
        assert_eq!(&SafetyState::decode(&bytes).unwrap(), r.state());
        assert!(SafetyState::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
