//! PBFT safety rules: the only code that signs proposals, prepares, commits and round
//! changes, and the state that keeps a validator from ever equivocating.
//!
//! Rules, for a position (height, round) ordered height first:
//! - propose at most once per position, never below the last one proposed;
//! - prepare at most one block per position, never below the last position prepared, and
//!   never in a round this validator already left by a round change (its round change told
//!   the next proposer it had prepared nothing newer);
//! - commit only the block of a prepare certificate this validator holds for that very
//!   position, one block per position, never in a round it left;
//! - a round change carries the highest prepare certificate held for its height, so a block
//!   a quorum may have committed is offered again.
//!
//! Every signature changes [`SafetyState`]; the engine emits the new state as
//! `Effect::Persist` *before* the message carrying the signature, and a restarted validator
//! resumes from the last persisted state only. A persisted state can still be behind what
//! the key signed (the key was moved, the data dir restored from a backup): a restarted
//! validator may be held to observing for a few rounds, and stops signing for good when it
//! sees a valid signature of its own key that its state does not account for.
//!
//! Owns: `SafetyState` and every signature the engine makes. Never: talks to the network or
//! trusts a certificate the engine has not verified.

use cairn_ledger::block::QuorumCert;
use cairn_ledger::codec::{self, CodecError};
use cairn_ledger::{Hash, Height, Round};
use serde::{Deserialize, Serialize};

use super::messages::{
    PreparedClaim, QC_BYTES_MAX, VOTE_BYTES_MAX, VoteMsg, commit_signing_bytes,
    prepare_signing_bytes, proposal_signing_bytes, round_change_signing_bytes,
};
use crate::bft::Signer;

/// Largest encoded safety state: positions, two votes and one prepare certificate.
pub const SAFETY_STATE_BYTES_MAX: usize = 256 + 2 * VOTE_BYTES_MAX + QC_BYTES_MAX;

/// Where a validator is, or what it signed last: height first, then round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    pub height: Height,
    pub round: Round,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "height {} round {}", self.height, self.round)
    }
}

/// What a validator must remember across crashes so it never signs two conflicting things.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyState {
    /// The position this validator is in; it never goes back, and a restart resumes there.
    pub position: Position,
    /// The last proposal signed: position and block.
    pub last_proposal: Option<(Position, Hash)>,
    /// The last prepare signed; a repeated proposal gets this same prepare back.
    pub last_prepare: Option<VoteMsg>,
    /// The last commit signed.
    pub last_commit: Option<VoteMsg>,
    /// The highest round a round change was signed for, at `position.height`.
    pub left_for: Option<Position>,
    /// The highest prepare certificate held, and its height.
    pub prepared: Option<(Height, QuorumCert)>,
}

impl SafetyState {
    pub fn initial() -> SafetyState {
        SafetyState {
            position: Position {
                height: Height(1),
                round: Round(0),
            },
            last_proposal: None,
            last_prepare: None,
            last_commit: None,
            left_for: None,
            prepared: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<SafetyState, CodecError> {
        codec::decode(bytes, SAFETY_STATE_BYTES_MAX, "pbft safety state")
    }

    /// The prepare certificate held for `height`, as a round change claims it.
    pub fn prepared_at(&self, height: Height) -> Option<&QuorumCert> {
        self.prepared
            .as_ref()
            .filter(|(h, _)| *h == height)
            .map(|(_, qc)| qc)
    }

    /// The highest position this state shows anything signed at.
    pub fn signed_max(&self) -> Option<Position> {
        let vote = |v: &VoteMsg| Position {
            height: v.height,
            round: v.round,
        };
        [
            self.last_proposal.map(|(p, _)| p),
            self.last_prepare.as_ref().map(vote),
            self.last_commit.as_ref().map(vote),
            self.left_for,
        ]
        .into_iter()
        .flatten()
        .max()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SafetyError {
    #[error("already proposed at {last}; refusing to propose at {at}")]
    ProposedAlready { at: Position, last: Position },
    #[error("already prepared block {block} at {last}; refusing {at}")]
    PreparedAlready {
        at: Position,
        last: Position,
        block: Hash,
    },
    #[error("already committed block {block} at {last}; refusing {at}")]
    CommittedAlready {
        at: Position,
        last: Position,
        block: Hash,
    },
    #[error("left {at} for round {left_for}; nothing more is signed there")]
    LeftRound { at: Position, left_for: Round },
    #[error("no prepare certificate for block {block} at {at}; refusing to commit it")]
    NotPrepared { at: Position, block: Hash },
    #[error("round change to {at} is not above the last one, to {last}")]
    RoundChangeBehind { at: Position, last: Position },
    #[error("observing for {rounds} more rounds after a restart before signing anything")]
    Observing { rounds: u64 },
    #[error(
        "a valid {what} signed by this validator's key at {at} is not in its safety state: \
         the key is in use on another machine or the data directory was restored from a \
         backup; signing stopped for good (stop the other signer, then restart)"
    )]
    SignedElsewhere { what: &'static str, at: Position },
}

pub struct SafetyRules {
    state: SafetyState,
    chain: Hash,
    observing_rounds: u64,
    halted: Option<SafetyError>,
}

impl SafetyRules {
    pub fn new(state: SafetyState, chain: Hash) -> SafetyRules {
        SafetyRules {
            state,
            chain,
            observing_rounds: 0,
            halted: None,
        }
    }

    pub fn state(&self) -> &SafetyState {
        &self.state
    }

    /// Sign nothing for the next `rounds` rounds; only watch for this key's signatures.
    pub fn observe_for(&mut self, rounds: u64) {
        self.observing_rounds = rounds;
    }

    /// A round went by (the validator moved on, or its round timer fired).
    pub fn round_passed(&mut self) {
        self.observing_rounds = self.observing_rounds.saturating_sub(1);
    }

    pub fn observing(&self) -> bool {
        self.observing_rounds > 0
    }

    pub fn halted(&self) -> Option<&SafetyError> {
        self.halted.as_ref()
    }

    fn may_sign(&self) -> Result<(), SafetyError> {
        if let Some(e) = &self.halted {
            return Err(e.clone());
        }
        if self.observing_rounds > 0 {
            return Err(SafetyError::Observing {
                rounds: self.observing_rounds,
            });
        }
        Ok(())
    }

    /// A verified message signed by this validator's own key, at `at`, for `block`: if the
    /// state does not account for it, someone else signs with this key. Returns the error
    /// once, when signing stops.
    pub fn signed_elsewhere(
        &mut self,
        what: &'static str,
        at: Position,
        block: Option<Hash>,
    ) -> Option<SafetyError> {
        if self.halted.is_some() {
            return None;
        }
        let vote_at = |v: &VoteMsg| {
            (
                Position {
                    height: v.height,
                    round: v.round,
                },
                Some(v.block),
            )
        };
        let last = match what {
            "proposal" => self.state.last_proposal.map(|(p, b)| (p, Some(b))),
            "prepare" => self.state.last_prepare.as_ref().map(vote_at),
            "commit" => self.state.last_commit.as_ref().map(vote_at),
            _ => self.state.left_for.map(|p| (p, None)),
        };
        let ours = match last {
            Some((p, b)) if p == at => what == "round change" || b == block,
            // Below the last of its kind: it may be one of ours the state no longer lists.
            Some((p, _)) => at < p,
            None => false,
        };
        if ours {
            return None;
        }
        let e = SafetyError::SignedElsewhere { what, at };
        self.halted = Some(e.clone());
        Some(e)
    }

    /// Moves the validator to `at` (never back). Returns whether the state changed.
    pub fn enter(&mut self, at: Position) -> bool {
        if at <= self.state.position {
            return false;
        }
        self.state.position = at;
        if self.state.left_for.is_some_and(|l| l.height < at.height) {
            self.state.left_for = None;
        }
        true
    }

    /// Keeps `qc` (verified, at `height`) if it is higher than the prepare certificate held.
    /// Returns whether the state changed.
    pub fn record_prepared(&mut self, height: Height, qc: &QuorumCert) -> bool {
        let higher = match &self.state.prepared {
            Some((h, held)) => (height, qc.round) > (*h, held.round),
            None => true,
        };
        if higher {
            self.state.prepared = Some((height, qc.clone()));
        }
        higher
    }

    fn check_not_left(&self, at: Position) -> Result<(), SafetyError> {
        match self.state.left_for {
            Some(l) if l.height == at.height && l.round > at.round => Err(SafetyError::LeftRound {
                at,
                left_for: l.round,
            }),
            _ => Ok(()),
        }
    }

    pub fn propose(
        &mut self,
        signer: &dyn Signer,
        at: Position,
        block: Hash,
    ) -> Result<cairn_ledger::Signature, SafetyError> {
        self.may_sign()?;
        if let Some((last, _)) = self.state.last_proposal
            && last >= at
        {
            return Err(SafetyError::ProposedAlready { at, last });
        }
        self.check_not_left(at)?;
        self.state.last_proposal = Some((at, block));
        self.enter(at);
        Ok(signer.sign(&proposal_signing_bytes(
            &self.chain,
            at.height,
            at.round,
            &block,
        )))
    }

    /// Signs a prepare for `block` at `at`; the same prepare again for the same block.
    pub fn prepare(
        &mut self,
        signer: &dyn Signer,
        at: Position,
        block: Hash,
    ) -> Result<VoteMsg, SafetyError> {
        self.may_sign()?;
        self.vote(signer, at, block, false)
    }

    /// Signs a commit for `block` at `at`, which the held prepare certificate must name.
    pub fn commit(
        &mut self,
        signer: &dyn Signer,
        at: Position,
        block: Hash,
    ) -> Result<VoteMsg, SafetyError> {
        self.may_sign()?;
        let prepared = self
            .state
            .prepared_at(at.height)
            .is_some_and(|qc| qc.round == at.round && qc.block == block);
        if !prepared {
            return Err(SafetyError::NotPrepared { at, block });
        }
        self.vote(signer, at, block, true)
    }

    /// One prepare (or commit) per position, none below the last, none in a round left.
    fn vote(
        &mut self,
        signer: &dyn Signer,
        at: Position,
        block: Hash,
        commit: bool,
    ) -> Result<VoteMsg, SafetyError> {
        let last = if commit {
            &self.state.last_commit
        } else {
            &self.state.last_prepare
        };
        if let Some(last) = last {
            let last_at = Position {
                height: last.height,
                round: last.round,
            };
            if last_at == at && last.block == block {
                return Ok(last.clone());
            }
            if last_at >= at {
                let block = last.block;
                return Err(if commit {
                    SafetyError::CommittedAlready {
                        at,
                        last: last_at,
                        block,
                    }
                } else {
                    SafetyError::PreparedAlready {
                        at,
                        last: last_at,
                        block,
                    }
                });
            }
        }
        self.check_not_left(at)?;
        let bytes = if commit {
            commit_signing_bytes(&self.chain, at.height, at.round, &block)
        } else {
            prepare_signing_bytes(&self.chain, at.height, at.round, &block)
        };
        let vote = VoteMsg {
            height: at.height,
            round: at.round,
            block,
            voter: signer.public_key(),
            signature: signer.sign(&bytes),
        };
        let slot = if commit {
            &mut self.state.last_commit
        } else {
            &mut self.state.last_prepare
        };
        *slot = Some(vote.clone());
        self.enter(at);
        Ok(vote)
    }

    /// Signs a round change to `at` with the held prepare certificate's claim for its
    /// height; returns the claim's certificate and the signature.
    pub fn round_change(
        &mut self,
        signer: &dyn Signer,
        at: Position,
    ) -> Result<(Option<QuorumCert>, cairn_ledger::Signature), SafetyError> {
        self.may_sign()?;
        if let Some(last) = self.state.left_for
            && last > at
        {
            return Err(SafetyError::RoundChangeBehind { at, last });
        }
        let prepared = self.state.prepared_at(at.height).cloned();
        // A round change may only claim a round below the one it moves to; the engine
        // never asks for one in a round it prepared in.
        assert!(
            prepared.as_ref().is_none_or(|qc| qc.round < at.round),
            "round change to {at} would claim a prepare certificate of its own round"
        );
        let claim = prepared.as_ref().map(|qc| PreparedClaim {
            round: qc.round,
            block: qc.block,
        });
        let signature = signer.sign(&round_change_signing_bytes(
            &self.chain,
            at.height,
            at.round,
            &claim,
        ));
        self.state.left_for = Some(at);
        self.enter(at);
        Ok((prepared, signature))
    }
}

#[cfg(test)]
mod tests {
    use cairn_ledger::crypto::Keypair;

    use super::*;
    use crate::bft::Ed25519Signer;

    fn at(h: u64, r: u64) -> Position {
        Position {
            height: Height(h),
            round: Round(r),
        }
    }

    fn rules() -> (SafetyRules, Ed25519Signer) {
        (
            SafetyRules::new(SafetyState::initial(), Hash([7; 32])),
            Ed25519Signer::new(Keypair::from_secret(&[1; 32])),
        )
    }

    fn qc(round: u64, block: Hash) -> QuorumCert {
        QuorumCert {
            round: Round(round),
            block,
            votes: Vec::new(),
        }
    }

    #[test]
    fn one_prepare_per_position_and_none_below_the_last() {
        let (mut s, k) = rules();
        let (a, b) = (Hash([1; 32]), Hash([2; 32]));
        let first = s.prepare(&k, at(1, 1), a).unwrap();
        assert_eq!(s.prepare(&k, at(1, 1), a).unwrap(), first);
        assert!(matches!(
            s.prepare(&k, at(1, 1), b),
            Err(SafetyError::PreparedAlready { .. })
        ));
        assert!(matches!(
            s.prepare(&k, at(1, 0), b),
            Err(SafetyError::PreparedAlready { .. })
        ));
        s.prepare(&k, at(1, 2), b).unwrap();
        assert_eq!(s.state().position, at(1, 2));
    }

    #[test]
    fn a_round_left_by_a_round_change_gets_no_prepare_or_commit() {
        let (mut s, k) = rules();
        let a = Hash([1; 32]);
        s.record_prepared(Height(1), &qc(0, a));
        let (carried, _) = s.round_change(&k, at(1, 1)).unwrap();
        assert_eq!(carried, Some(qc(0, a)));
        assert!(matches!(
            s.prepare(&k, at(1, 0), a),
            Err(SafetyError::LeftRound { .. })
        ));
        assert!(matches!(
            s.commit(&k, at(1, 0), a),
            Err(SafetyError::LeftRound { .. })
        ));
        // The next height starts afresh.
        s.enter(at(2, 0));
        assert_eq!(s.state().left_for, None);
        s.prepare(&k, at(2, 0), a).unwrap();
    }

    #[test]
    fn commits_need_the_matching_prepare_certificate() {
        let (mut s, k) = rules();
        let (a, b) = (Hash([1; 32]), Hash([2; 32]));
        assert!(matches!(
            s.commit(&k, at(1, 0), a),
            Err(SafetyError::NotPrepared { .. })
        ));
        assert!(s.record_prepared(Height(1), &qc(0, a)));
        assert!(!s.record_prepared(Height(1), &qc(0, b)));
        assert!(matches!(
            s.commit(&k, at(1, 0), b),
            Err(SafetyError::NotPrepared { .. })
        ));
        let c = s.commit(&k, at(1, 0), a).unwrap();
        assert_eq!(s.commit(&k, at(1, 0), a).unwrap(), c);
    }

    #[test]
    fn proposals_once_per_position_and_rounds_never_go_back() {
        let (mut s, k) = rules();
        s.propose(&k, at(3, 0), Hash([1; 32])).unwrap();
        assert!(matches!(
            s.propose(&k, at(3, 0), Hash([1; 32])),
            Err(SafetyError::ProposedAlready { .. })
        ));
        assert!(!s.enter(at(2, 9)));
        assert!(s.enter(at(3, 1)));
        assert!(matches!(
            s.round_change(&k, at(3, 2))
                .and_then(|_| s.round_change(&k, at(3, 1))),
            Err(SafetyError::RoundChangeBehind { .. })
        ));
    }

    #[test]
    fn an_unknown_own_signature_halts_signing_and_observing_holds_it_back() {
        let (mut s, k) = rules();
        let a = Hash([1; 32]);
        s.prepare(&k, at(1, 0), a).unwrap();
        assert_eq!(s.signed_elsewhere("prepare", at(1, 0), Some(a)), None);
        s.observe_for(1);
        assert!(matches!(
            s.prepare(&k, at(1, 1), a),
            Err(SafetyError::Observing { rounds: 1 })
        ));
        s.round_passed();
        assert!(matches!(
            s.signed_elsewhere("prepare", at(1, 0), Some(Hash([2; 32]))),
            Some(SafetyError::SignedElsewhere { .. })
        ));
        assert!(matches!(
            s.prepare(&k, at(1, 1), a),
            Err(SafetyError::SignedElsewhere { .. })
        ));
    }

    #[test]
    fn the_state_round_trips_within_its_bound() {
        let (mut s, k) = rules();
        s.record_prepared(Height(1), &qc(0, Hash([1; 32])));
        s.commit(&k, at(1, 0), Hash([1; 32])).unwrap();
        let bytes = s.state().encode();
        assert!(bytes.len() <= SAFETY_STATE_BYTES_MAX);
        assert_eq!(&SafetyState::decode(&bytes).unwrap(), s.state());
    }
}
