//! The HotStuff engine: a pure state machine, `handle(input) -> effects`.
//!
//! Round r's leader proposes a block extending the highest certified block it has; each
//! validator that the safety rules allow votes, sending the vote to the leader of r+1; the
//! votes form a QC there, which moves that leader to r+1 and rides in its proposal. A node
//! that hears nothing times out, broadcasting its highest QC; a quorum of timeouts forms a
//! TC that moves everyone to r+1. Blocks commit by the 2-chain rule (`block_tree.rs`).
//!
//! Owns: protocol decisions for proposals, votes and timeouts (catch-up is `sync.rs`).
//! Never: does I/O, reads a clock, draws randomness or spawns threads; never panics on
//! any input; never signs anything except through `SafetyRules`.

use std::collections::BTreeMap;

use cairn_ledger::block::{Block, QuorumCert, Seal};
use cairn_ledger::genesis::HotStuffParams;
use cairn_ledger::{Address, Hash, Height, PublicKey, Round};

use super::aggregator::VoteAggregator;
use super::block_tree::{BlockTree, TREE_BLOCKS_MAX};
use super::certs::{CertChecker, CertError};
use super::effects::{DropReason, Effect, Evidence, Input};
use super::messages::{Message, ProposalMsg, SignedProposal, proposal_signing_bytes};
use super::pacemaker::{Pacemaker, PacemakerError};
use super::safety::{SafetyRules, SafetyState};
use super::sync::PENDING_PROPOSALS_MAX;
use crate::bft::{LeaderSchedule, Signer, ValidatorSet, Verifier};

/// Rounds whose first proposal is remembered for equivocation checks.
pub const PROPOSALS_SEEN_ROUNDS_MAX: usize = 64;
/// How far ahead of the current round a vote may be and still be counted.
pub const VOTE_ROUNDS_AHEAD_MAX: u64 = 4;

/// What the engine is built from: all of it comes from genesis.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub validators: ValidatorSet,
    pub params: HotStuffParams,
    /// Block 0, with `Seal::Genesis`; its id names the chain in every signature.
    pub genesis: Block,
    /// Test-only: disables the one-vote-per-round rule (in the safety rules, and the refusal
    /// to process a second proposal for a round) so the simulator can prove its checkers
    /// catch the double votes and forks that follow. Always false in a node.
    #[doc(hidden)]
    pub unsafe_skip_voted_round_check: bool,
}

/// What survives a crash: the last persisted safety state, the ledger's committed tip with
/// the QC that certifies it (`None`: the ledger holds only genesis), the committed blocks
/// just below the tip (lowest first; up to `COMMITTED_BLOCKS_KEPT` are used to serve lagging
/// peers, so a restarted node is as useful a sync source as one that never stopped), and the
/// uncommitted blocks stored through `Effect::StoreBlock` (in any order; ones that no
/// longer attach are ignored).
#[derive(Clone, Debug)]
pub struct RestartState {
    pub safety: SafetyState,
    pub committed: Option<(Block, QuorumCert)>,
    pub history: Vec<Block>,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("the genesis block {block} does not carry Seal::Genesis")]
    NotGenesis { block: Hash },
    #[error(transparent)]
    Pacemaker(#[from] PacemakerError),
    #[error("the committed tip {block} is not certified by the QC given (it certifies {qc_block})")]
    TipQcMismatch { block: Hash, qc_block: Hash },
    #[error("the committed tip's QC is invalid: {0}")]
    TipQc(CertError),
}

pub struct Engine {
    pub(super) validators: ValidatorSet,
    pub(super) leaders: LeaderSchedule,
    pub(super) signer: Box<dyn Signer + Send>,
    pub(super) verifier: Box<dyn Verifier + Send>,
    pub(super) me: PublicKey,
    pub(super) my_address: Address,
    pub(super) is_validator: bool,
    pub(super) chain: Hash,
    pub(super) safety: SafetyRules,
    pub(super) pacemaker: Pacemaker,
    pub(super) tree: BlockTree,
    pub(super) certs: CertChecker,
    pub(super) votes: VoteAggregator,
    /// First proposal seen per round (its leader is fixed by the round), and whether
    /// equivocation was already reported for it.
    pub(super) proposals_seen: BTreeMap<Round, (SignedProposal, bool)>,
    pub(super) pending: Vec<(PublicKey, ProposalMsg)>,
    /// The open payload request: (round, justify, height).
    pub(super) payload_request: Option<(Round, QuorumCert, Height)>,
    pub(super) sync_requested_round: Option<Round>,
    /// Sync requests since the last useful answer; each retry asks the next validator.
    pub(super) sync_attempts: usize,
    /// Sync requests in flight: (peer asked, from_height), oldest first; only these peers'
    /// answers are read (`sync.rs`).
    pub(super) sync_asked: std::collections::VecDeque<(PublicKey, Height)>,
    /// Test-only: reads any sync answer the old way (see `Engine::unsafe_accept_any_sync`).
    pub(super) unsafe_accept_any_sync: bool,
    /// Blocks from `RestartState`, re-inserted by `start`.
    pub(super) restored: Vec<Block>,
    /// Set when the round changed during this `handle`; the new timer is scheduled once,
    /// at the end, for the round the node ends up in.
    pub(super) round_changed: bool,
    pub(super) effects: Vec<Effect>,
    unsafe_skip_voted_round_check: bool,
}

impl Engine {
    /// A fresh validator (`restart: None`) or one resuming after a crash.
    pub fn new(
        config: EngineConfig,
        signer: Box<dyn Signer + Send>,
        verifier: Box<dyn Verifier + Send>,
        restart: Option<RestartState>,
    ) -> Result<Engine, EngineError> {
        let chain = config.genesis.hash();
        if config.genesis.header.seal != Seal::Genesis {
            return Err(EngineError::NotGenesis { block: chain });
        }
        let pacemaker = Pacemaker::new(&config.params)?;
        let mut certs = CertChecker::new(chain);
        let genesis_qc = certs.genesis_qc().clone();
        let restart = restart.unwrap_or_else(|| RestartState {
            safety: SafetyState::initial(genesis_qc.clone()),
            committed: None,
            history: Vec::new(),
            blocks: Vec::new(),
        });
        let (root, root_qc) = match restart.committed {
            None => (config.genesis.clone(), genesis_qc),
            Some((root, qc)) => {
                if qc.block != root.hash() {
                    return Err(EngineError::TipQcMismatch {
                        block: root.hash(),
                        qc_block: qc.block,
                    });
                }
                certs
                    .verify_qc(&qc, &config.validators, verifier.as_ref())
                    .map_err(EngineError::TipQc)?;
                (root, qc)
            }
        };
        let (state, history, restored) = (restart.safety, restart.history, restart.blocks);
        let me = signer.public_key();
        let mut tree = BlockTree::with_history(history, root, root_qc);
        tree.certify(&state.highest_qc);
        Ok(Engine {
            leaders: LeaderSchedule::new(&config.validators),
            is_validator: config.validators.position(&me).is_some(),
            validators: config.validators,
            signer,
            verifier,
            me,
            my_address: me.address(),
            chain,
            safety: SafetyRules::new(state, chain, config.unsafe_skip_voted_round_check),
            pacemaker,
            tree,
            certs,
            votes: VoteAggregator::default(),
            proposals_seen: BTreeMap::new(),
            pending: Vec::new(),
            payload_request: None,
            sync_requested_round: None,
            sync_attempts: 0,
            sync_asked: std::collections::VecDeque::new(),
            unsafe_accept_any_sync: false,
            restored,
            round_changed: false,
            effects: Vec::new(),
            unsafe_skip_voted_round_check: config.unsafe_skip_voted_round_check,
        })
    }

    /// Enters the round the (persisted) certificates justify: schedules its timer and, if
    /// this node leads it, asks for a payload.
    pub fn start(&mut self) -> Vec<Effect> {
        let mut restored = std::mem::take(&mut self.restored);
        restored.sort_by_key(|b| b.header.height);
        for block in restored {
            let result = self.restore_block(block);
            self.record(None, result);
        }
        self.advance_round();
        self.finish()
    }

    /// Re-inserts a block stored before a crash (its QC is checked like any other).
    fn restore_block(&mut self, block: Block) -> Result<(), DropReason> {
        let id = block.hash();
        if self.tree.contains(&id) || !self.tree.contains(&block.header.parent) {
            return Ok(());
        }
        let Seal::HotStuff { justify, .. } = &block.header.seal else {
            return Err(DropReason::NotHotStuff { block: id });
        };
        self.process_qc(&justify.clone(), self.me)?;
        self.tree.insert(block).map_err(DropReason::Tree)?;
        self.after_insert(id);
        Ok(())
    }

    /// Inserts a block into the tree and, if it is new, asks the driver to store it.
    pub(super) fn insert_block(&mut self, block: Block) -> Result<Hash, DropReason> {
        let id = block.hash();
        if self.tree.contains(&id) {
            return Ok(id);
        }
        self.tree.insert(block.clone()).map_err(DropReason::Tree)?;
        self.effects.push(Effect::StoreBlock(block));
        self.after_insert(id);
        Ok(id)
    }

    pub fn handle(&mut self, input: Input) -> Vec<Effect> {
        match input {
            Input::Bytes(from, bytes) => match Message::decode(&bytes) {
                Ok(msg) => self.on_message(from, msg),
                Err(e) => self.record(
                    Some(from),
                    Err(DropReason::Malformed {
                        reason: e.to_string(),
                    }),
                ),
            },
            Input::Message(from, msg) => self.on_message(from, msg),
            Input::Timeout(round) => {
                let result = self.on_local_timeout(round);
                self.record(None, result);
            }
            Input::Payload(block) => {
                let result = self.on_payload(block);
                self.record(None, result);
            }
        }
        self.finish()
    }

    pub fn public_key(&self) -> PublicKey {
        self.me
    }

    pub fn current_round(&self) -> Round {
        self.pacemaker.current_round()
    }

    pub fn committed_height(&self) -> Height {
        self.tree.root_height()
    }

    /// The id of the highest committed block.
    pub fn committed_id(&self) -> Hash {
        self.tree.root_id()
    }

    pub fn committed_round(&self) -> Round {
        self.tree.root_round()
    }

    pub fn highest_certified(&self) -> &QuorumCert {
        self.tree.highest_certified()
    }

    pub fn safety_state(&self) -> &SafetyState {
        self.safety.state()
    }

    /// The id of the genesis block, which names the chain in every signature.
    pub fn chain(&self) -> Hash {
        self.chain
    }

    /// Uncommitted blocks held and proposals waiting for ancestors (for metrics and tests).
    pub fn buffered(&self) -> (usize, usize) {
        (self.tree.uncommitted_len(), self.pending.len())
    }

    pub fn leader_of(&self, round: Round) -> PublicKey {
        self.validators.member(self.leaders.leader(round)).key
    }

    fn finish(&mut self) -> Vec<Effect> {
        debug_assert!(self.pending.len() <= PENDING_PROPOSALS_MAX);
        debug_assert!(self.proposals_seen.len() <= PROPOSALS_SEEN_ROUNDS_MAX);
        debug_assert!(self.tree.uncommitted_len() <= TREE_BLOCKS_MAX);
        if std::mem::take(&mut self.round_changed) {
            let round = self.current_round();
            let after_ms = self
                .pacemaker
                .round_timeout_ms(round, self.tree.root_round());
            self.effects
                .push(Effect::ScheduleTimeout { round, after_ms });
        }
        self.maybe_propose();
        std::mem::take(&mut self.effects)
    }

    pub(super) fn record(&mut self, from: Option<PublicKey>, result: Result<(), DropReason>) {
        if let Err(reason) = result {
            self.effects.push(Effect::Dropped { from, reason });
        }
    }

    pub(super) fn persist(&mut self) {
        self.effects
            .push(Effect::Persist(Box::new(self.safety.state().clone())));
    }

    fn on_message(&mut self, from: PublicKey, msg: Message) {
        if let Err(e) = msg.check_bounds(self.validators.len()) {
            return self.record(Some(from), Err(DropReason::OutOfBounds(e)));
        }
        let result = match msg {
            Message::Proposal(p) => self.on_proposal(from, *p),
            Message::Vote(v) => self.on_vote(v),
            Message::Timeout(t) => self.on_timeout_msg(from, *t),
            Message::SyncRequest(r) => self.on_sync_request(from, r),
            Message::SyncResponse(r) => self.on_sync_response(from, *r),
        };
        self.record(Some(from), result);
    }

    // ---- certificates and rounds -------------------------------------------------------

    /// Verifies a QC and learns from it: highest QC, certification (and so commits), round.
    pub(super) fn process_qc(
        &mut self,
        qc: &QuorumCert,
        from: PublicKey,
    ) -> Result<(), DropReason> {
        self.certs
            .verify_qc(qc, &self.validators, self.verifier.as_ref())
            .map_err(DropReason::InvalidCert)?;
        self.safety.observe_qc(qc);
        if self.tree.contains(&qc.block) {
            if let Some(committed) = self.tree.certify(qc) {
                self.on_commit(committed);
            }
        } else if qc.round > self.tree.root_round() {
            self.request_sync(from);
        }
        self.advance_round();
        Ok(())
    }

    pub(super) fn process_tc(
        &mut self,
        tc: &super::messages::TimeoutCert,
        from: PublicKey,
    ) -> Result<(), DropReason> {
        self.certs
            .verify_tc(tc, &self.validators, self.verifier.as_ref())
            .map_err(DropReason::InvalidCert)?;
        self.safety.observe_tc(tc);
        self.process_qc(&tc.high_qc, from)
    }

    fn advance_round(&mut self) {
        let round = self.safety.state().justified_round();
        if self.pacemaker.advance_to(round) {
            self.votes.prune_below(Round(round.0.saturating_sub(1)));
            self.payload_request = None;
            self.round_changed = true;
        }
    }

    /// Leads the current round if this node is its leader and can extend a QC the other
    /// validators will accept: one from the previous round, or any QC at least as high as
    /// the TC for the previous round allows.
    fn maybe_propose(&mut self) {
        let round = self.current_round();
        if !self.is_validator
            || self.leader_of(round) != self.me
            || self.safety.state().last_proposed_round >= round
            || self
                .payload_request
                .as_ref()
                .is_some_and(|(r, ..)| *r == round)
        {
            return;
        }
        let justify = self.tree.highest_certified().clone();
        let follows_qc = justify.round.0.checked_add(1) == Some(round.0);
        let follows_tc = self.safety.state().highest_tc.as_ref().is_some_and(|tc| {
            tc.round.0.checked_add(1) == Some(round.0) && justify.round >= tc.high_qc.round
        });
        if !follows_qc && !follows_tc {
            return;
        }
        let Some(parent) = self.tree.get(&justify.block) else {
            return;
        };
        let height = parent.header.height.next();
        self.payload_request = Some((round, justify.clone(), height));
        self.effects.push(Effect::RequestPayload {
            round,
            height,
            parent: justify.block,
            justify,
        });
    }

    // ---- proposals -----------------------------------------------------------------------

    fn on_proposal(&mut self, from: PublicKey, p: ProposalMsg) -> Result<(), DropReason> {
        let block_id = p.block.hash();
        let (round, justify) = match p.round_and_justify() {
            Some((round, justify)) => (round, justify.clone()),
            None => return Err(DropReason::NotHotStuff { block: block_id }),
        };
        let leader = self.validators.member(self.leaders.leader(round)).clone();
        if p.block.header.proposer != leader.address {
            return Err(DropReason::WrongLeader {
                round,
                expected: leader.address,
                got: p.block.header.proposer,
            });
        }
        let bytes = proposal_signing_bytes(&self.chain, round, &block_id);
        if !self.verifier.verify(&bytes, &leader.key, &p.signature) {
            return Err(DropReason::BadSignature {
                what: "proposal",
                key: leader.key,
            });
        }
        // Certificates first: even a stale proposal teaches rounds and QCs.
        if let Some(tc) = &p.tc {
            self.process_tc(tc, from)?;
        }
        self.process_qc(&justify, from)?;
        let after_qc = justify.round.0.checked_add(1) == Some(round.0);
        let after_tc =
            p.tc.as_ref()
                .is_some_and(|tc| tc.round.0.checked_add(1) == Some(round.0));
        if !after_qc && !after_tc {
            return Err(DropReason::UnjustifiedRound {
                round,
                qc_round: justify.round,
                tc_round: p.tc.as_ref().map(|tc| tc.round),
            });
        }
        let current = self.current_round();
        if round.0 + (PROPOSALS_SEEN_ROUNDS_MAX as u64) <= current.0 {
            return Err(DropReason::StaleRound {
                what: "proposal",
                round,
                current,
            });
        }
        self.check_proposal_equivocation(SignedProposal {
            round,
            block: block_id,
            proposer: leader.key,
            signature: p.signature,
        })?;
        self.accept_proposal(from, p)
    }

    fn check_proposal_equivocation(&mut self, signed: SignedProposal) -> Result<(), DropReason> {
        let (round, key) = (signed.round, signed.proposer);
        match self.proposals_seen.get_mut(&round) {
            Some((first, _)) if first.block == signed.block => Err(DropReason::Duplicate {
                what: "proposal",
                key,
                round,
            }),
            Some((first, reported)) => {
                if !*reported {
                    *reported = true;
                    let first = first.clone();
                    self.effects
                        .push(Effect::Evidence(Evidence::ConflictingProposals {
                            first,
                            second: signed,
                        }));
                }
                if self.unsafe_skip_voted_round_check {
                    return Ok(());
                }
                Err(DropReason::Equivocation {
                    what: "proposal",
                    key,
                    round,
                })
            }
            None => {
                if self.proposals_seen.len() >= PROPOSALS_SEEN_ROUNDS_MAX {
                    self.proposals_seen.pop_first();
                }
                self.proposals_seen.insert(round, (signed, false));
                Ok(())
            }
        }
    }

    /// A proposal whose signature, round and certificates check out: insert its block (or
    /// wait for its ancestors) and vote for it if it is for the current round.
    pub(super) fn accept_proposal(
        &mut self,
        from: PublicKey,
        p: ProposalMsg,
    ) -> Result<(), DropReason> {
        let Some((round, justify)) = p.round_and_justify() else {
            return Err(DropReason::NotHotStuff {
                block: p.block.hash(),
            });
        };
        let justify_round = justify.round;
        let parent = p.block.header.parent;
        if !self.tree.contains(&parent) {
            if justify_round <= self.tree.root_round() {
                return Err(DropReason::ConflictsWithCommitted {
                    block: p.block.hash(),
                    parent,
                });
            }
            self.request_sync(from);
            return self.buffer_pending(from, p);
        }
        let id = self.insert_block(p.block.clone())?;
        self.maybe_vote(round, id, justify_round, p.tc.as_ref())
    }

    fn maybe_vote(
        &mut self,
        round: Round,
        block: Hash,
        justify_round: Round,
        tc: Option<&super::messages::TimeoutCert>,
    ) -> Result<(), DropReason> {
        if !self.is_validator || round != self.current_round() {
            return Ok(());
        }
        let (vote, fresh) = self
            .safety
            .vote(self.signer.as_ref(), round, block, justify_round, tc)
            .map_err(DropReason::Safety)?;
        if fresh {
            self.persist();
        }
        let next_leader = self.leader_of(Round(round.0.saturating_add(1)));
        if next_leader == self.me {
            let power = self.validators.power(&self.me).unwrap_or(0);
            self.add_vote(vote, power)
        } else {
            self.effects.push(Effect::Send {
                to: next_leader,
                msg: Message::Vote(vote),
            });
            Ok(())
        }
    }

    fn on_payload(&mut self, block: Block) -> Result<(), DropReason> {
        let current = self.current_round();
        let Some((round, justify, height)) = self.payload_request.clone() else {
            return Err(DropReason::PayloadMismatch {
                round: current,
                reason: "no payload is requested",
            });
        };
        let header = &block.header;
        let expected_seal = Seal::HotStuff {
            round,
            justify: justify.clone(),
        };
        let reason = if round != current {
            Some("the round is over")
        } else if header.seal != expected_seal {
            Some("the seal is not the requested round and QC")
        } else if header.parent != justify.block || header.height != height {
            Some("the parent or height is not the requested one")
        } else if header.proposer != self.my_address {
            Some("the proposer is not this node")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(DropReason::PayloadMismatch { round, reason });
        }
        self.payload_request = None;
        let id = block.hash();
        let signature = self
            .safety
            .propose(self.signer.as_ref(), round, id)
            .map_err(DropReason::Safety)?;
        self.persist();
        let tc = if justify.round.0.checked_add(1) == Some(round.0) {
            None
        } else {
            self.safety.state().highest_tc.clone()
        };
        let proposal = ProposalMsg {
            block,
            tc,
            signature,
        };
        self.check_proposal_equivocation(SignedProposal {
            round,
            block: id,
            proposer: self.me,
            signature,
        })?;
        self.effects
            .push(Effect::Broadcast(Message::Proposal(Box::new(
                proposal.clone(),
            ))));
        self.accept_proposal(self.me, proposal)
    }

    // ---- commits -------------------------------------------------------------------------

    pub(super) fn on_commit(&mut self, committed: super::block_tree::Committed) {
        // The tree moved its root to the last block committed, which the QC certifies.
        let last = committed.blocks.last().map(|b| b.header.height);
        assert_eq!(last, Some(self.tree.root_height()));
        assert_eq!(committed.qc.block, self.tree.root_id());
        let root_round = self.tree.root_round();
        self.pending.retain(|(_, p)| {
            p.round_and_justify()
                .is_some_and(|(round, _)| round > root_round)
        });
        self.effects.push(Effect::Commit {
            blocks: committed.blocks,
            qc: committed.qc,
        });
    }
}
