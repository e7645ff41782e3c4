//! The HotStuff engine: a pure state machine, `handle(input) -> effects`.
//!
//! Round r's leader proposes a block extending the highest certified block it has; each
//! validator whose driver judges the block valid (`Effect::Validate`, answered by
//! `Input::Validity`) and whose safety rules allow it votes, sending the vote to the leader
//! of r+1; the votes form a QC there, which moves that leader to r+1 and rides in its
//! proposal. A node that hears nothing times out, broadcasting its highest QC; a quorum of
//! timeouts forms a TC that moves everyone to r+1. Blocks commit by the 2-chain rule
//! (`block_tree.rs`).
//!
//! Owns: protocol decisions for proposals, votes and timeouts (catch-up is `sync.rs`).
//! Never: does I/O, reads a clock, draws randomness or spawns threads; never panics on
//! any input; never signs anything except through `SafetyRules`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use cairn_ledger::block::{Block, QuorumCert, Seal};
use cairn_ledger::genesis::{HotStuffParams, LeaderElection};
use cairn_ledger::{Address, Hash, Height, PublicKey, Round};

use super::aggregator::VoteAggregator;
use super::block_tree::{BlockTree, TREE_BLOCKS_MAX, block_round};
use super::certs::{CertChecker, CertError};
use super::effects::{DropReason, Effect, Evidence, Input, Validity};
use super::messages::{
    Message, ProposalMsg, SignedProposal, TimeoutCert, proposal_signing_bytes,
    timeout_signing_bytes, vote_signing_bytes,
};
use super::pacemaker::{Pacemaker, PacemakerError};
use super::safety::{SafetyError, SafetyRules, SafetyState};
use super::sync::PENDING_PROPOSALS_MAX;
use crate::bft::Leaders;
use crate::bft::{Signer, ValidatorSet, Verifier};

/// Proposals remembered for equivocation checks (the first per round and proposer; about
/// one per round), and how many rounds back a proposal is still read.
pub const PROPOSALS_SEEN_ROUNDS_MAX: usize = 64;
/// How far ahead of the current round a vote may be and still be counted.
pub const VOTE_ROUNDS_AHEAD_MAX: u64 = 4;
/// Proposed blocks waiting for the driver's verdict (`Effect::Validate`); the oldest is
/// forgotten first. A driver answers at once, and only blocks of the current round wait,
/// so more than one or two means a driver that does not answer.
pub const VALIDATIONS_PENDING_MAX: usize = 8;

/// What the engine is built from: the validators, parameters and block 0 come from genesis,
/// the rest from the node's configuration.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub validators: ValidatorSet,
    pub params: HotStuffParams,
    /// Block 0, with `Seal::Genesis`; its id names the chain in every signature.
    pub genesis: Block,
    /// After `start`, sign nothing for this many rounds, only watch for this key's
    /// signatures made elsewhere (`[consensus] double_sign_check_rounds`; 0: sign at once).
    /// A round goes by when the node moves to a later round or its timer for the round
    /// fires, so a network that waits for this node still gets it after that many timeouts.
    pub double_sign_check_rounds: u64,
    /// Test-only: turns the double-sign guard off (no raise of the signed rounds from the
    /// store at start; the simulator also sets `double_sign_check_rounds` to 0) so the
    /// simulator can prove its checker catches a validator restarted with a stale safety
    /// state. Always false in a node.
    #[doc(hidden)]
    pub unsafe_no_double_sign_guard: bool,
    /// Test-only: disables the one-vote-per-round rule (in the safety rules, and the refusal
    /// to process a second proposal for a round) so the simulator can prove its checkers
    /// catch the double votes and forks that follow. Always false in a node.
    #[doc(hidden)]
    pub unsafe_skip_voted_round_check: bool,
}

/// What survives a crash: the last persisted safety state (raised at start to the highest
/// round anywhere in this restart state, see `stored_round_max`), the ledger's committed tip with
/// the QC that certifies it (`None`: the ledger holds only genesis), the committed blocks
/// just below the tip (lowest first; up to `COMMITTED_BLOCKS_KEPT` are used to serve lagging
/// peers, so a restarted node is as useful a sync source as one that never stopped), and the
/// uncommitted blocks stored through `Effect::StoreBlock` (in any order; which of them are
/// restored, and which are handed back for deletion, is [`restorable`]'s rule).
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
    pub(super) leaders: Leaders,
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
    /// First proposal seen per round and proposer, and whether equivocation was already
    /// reported for it. Keyed by proposer too: with leader reputation two validators can
    /// each be the rightful leader of one round, on top of different parents.
    pub(super) proposals_seen: BTreeMap<(Round, PublicKey), (SignedProposal, bool)>,
    pub(super) pending: Vec<(PublicKey, ProposalMsg)>,
    /// The open payload request: (round, justify, height).
    pub(super) payload_request: Option<(Round, QuorumCert, Height)>,
    pub(super) sync_requested_round: Option<Round>,
    /// Sync requests since the last useful answer; each retry asks the next validator.
    pub(super) sync_attempts: usize,
    /// Sync requests in flight: (peer asked, from_height), oldest first; only these peers'
    /// answers are read (`sync.rs`).
    pub(super) sync_asked: std::collections::VecDeque<(PublicKey, Height)>,
    /// Recent forgers not to ask first, and this round's retries (`sync.rs`).
    pub(super) sync_peers: super::sync::SyncPeers,
    /// Test-only: reads any sync answer the old way (see `Engine::unsafe_accept_any_sync`).
    pub(super) unsafe_accept_any_sync: bool,
    /// Blocks from `RestartState`, re-inserted by `start`.
    pub(super) restored: Vec<Block>,
    /// Stored blocks `restorable` refused, handed to the driver by `start` for deletion.
    discarded: Vec<Hash>,
    /// Proposed blocks of the current round this node would vote for once the driver says
    /// they are valid (`Effect::Validate`), oldest first.
    pub(super) validations: VecDeque<AwaitingValidity>,
    /// Set when the round changed during this `handle`; the new timer is scheduled once,
    /// at the end, for the round the node ends up in.
    pub(super) round_changed: bool,
    pub(super) effects: Vec<Effect>,
    /// The safety state was raised from the store in `new`: `start` persists it first.
    persist_at_start: bool,
    /// `EngineConfig::double_sign_check_rounds`, applied at the end of `start`.
    double_sign_check_rounds: u64,
    unsafe_skip_voted_round_check: bool,
}

/// A proposal that passed every check but the driver's: what its vote needs.
#[derive(Clone, Debug)]
pub(super) struct AwaitingValidity {
    block: Hash,
    round: Round,
    justify_round: Round,
    tc: Option<TimeoutCert>,
    proposer: PublicKey,
}

/// The highest round a restarted validator's own records show: its stored blocks (their
/// rounds and their QCs'), the committed tip and its QC, and the safety state's highest QC
/// and TC. The key may have signed up to it, whatever the safety state says.
fn stored_round_max(restart: &RestartState) -> Round {
    let blocks = restart
        .blocks
        .iter()
        .chain(&restart.history)
        .chain(restart.committed.iter().map(|(block, _)| block));
    let block_rounds = blocks.flat_map(|b| {
        let justify = match &b.header.seal {
            Seal::HotStuff { justify, .. } => Some(justify.round),
            Seal::Genesis | Seal::Pow { .. } | Seal::Pbft { .. } => None,
        };
        block_round(b).into_iter().chain(justify)
    });
    let safety = &restart.safety;
    block_rounds
        .chain(restart.committed.iter().map(|(_, qc)| qc.round))
        .chain([safety.highest_qc.round])
        .chain(safety.highest_tc.iter().map(|tc| tc.round))
        .max()
        .unwrap_or(Round(0))
}

/// Which stored blocks a restart re-inserts (the rest the driver deletes): a stored block
/// is restored when it is an ancestor-or-self of
/// (a) a block certified by a QC this node holds: the committed tip's, the safety state's
///     highest QC and its highest TC's QC, and every stored block's justify;
/// (b) the block of the last vote the safety state records;
/// (c) a block this node may have voted for whose QC has not reached it: a round above
///     every QC it holds (a), at or below its last voted round, and other than the last
///     vote's round (in that round it voted for (b) only). When the safety state is behind
///     the store (`stale`: missing, or restored from a backup), it is no record of which
///     blocks this key voted for, and every block above the QCs held is kept.
///
/// Why: persist-before-vote (`Effect::StoreBlock` before the vote leaves) makes every
/// certified block survive on its honest voters, and (b) and (c) keep that promise for
/// votes whose QC may still form elsewhere. A block at or below the round of a QC this
/// node holds is never needed again for a vote it made: any later timeout certificate can
/// be extended through that higher certified chain, which (a) keeps. What is left is what
/// no quorum certified and this node did not vote for, such as siblings a Byzantine peer
/// once got stored: reloading them would only fill the tree again.
///
/// `safety` is the persisted state before `SafetyState::raise_to`: its rounds are what this
/// node signed, not what the store shows. Returns (restored, discarded ids).
fn restorable(
    blocks: Vec<Block>,
    committed_qc: Option<&QuorumCert>,
    safety: &SafetyState,
    stale: bool,
) -> (Vec<Block>, Vec<Hash>) {
    let ids: Vec<Hash> = blocks.iter().map(Block::hash).collect();
    let parent: HashMap<Hash, Hash> = ids
        .iter()
        .zip(&blocks)
        .map(|(id, b)| (*id, b.header.parent))
        .collect();
    let justifies = blocks.iter().filter_map(|b| match &b.header.seal {
        Seal::HotStuff { justify, .. } => Some(justify),
        Seal::Genesis | Seal::Pow { .. } | Seal::Pbft { .. } => None,
    });
    let known_qcs: Vec<&QuorumCert> = justifies
        .chain(committed_qc)
        .chain([&safety.highest_qc])
        .chain(safety.highest_tc.iter().map(|tc| &tc.high_qc))
        .collect();
    let qc_round_max = known_qcs
        .iter()
        .map(|qc| qc.round)
        .max()
        .unwrap_or(Round(0));
    let last_vote = safety.last_vote.as_ref().map(|v| (v.round, v.block));
    let may_have_voted = |b: &Block| {
        block_round(b).is_some_and(|r| {
            r > qc_round_max
                && (stale
                    || (r <= safety.last_voted_round
                        && last_vote.is_none_or(|(round, _)| round != r)))
        })
    };
    let tips = known_qcs
        .iter()
        .map(|qc| qc.block)
        .chain(last_vote.map(|(_, block)| block))
        .chain(
            ids.iter()
                .zip(&blocks)
                .filter(|(_, b)| may_have_voted(b))
                .map(|(id, _)| *id),
        );
    let mut keep: HashSet<Hash> = HashSet::new();
    for tip in tips {
        let mut id = tip;
        while parent.contains_key(&id) && keep.insert(id) {
            id = parent[&id];
        }
    }
    let mut restored = Vec::with_capacity(keep.len());
    let mut discarded = Vec::new();
    for (id, block) in ids.into_iter().zip(blocks) {
        if keep.contains(&id) {
            restored.push(block);
        } else {
            discarded.push(id);
        }
    }
    (restored, discarded)
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
        let stored_round = stored_round_max(&restart);
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
        let stale = restart.safety.clone().raise_to(stored_round);
        let (restored, discarded) =
            restorable(restart.blocks, Some(&root_qc), &restart.safety, stale);
        let (mut state, history) = (restart.safety, restart.history);
        let persist_at_start = !config.unsafe_no_double_sign_guard && state.raise_to(stored_round);
        let me = signer.public_key();
        let leaders = Leaders::new(
            &config.validators,
            config.params.leader_election,
            &history,
            &root,
        );
        let mut tree = BlockTree::with_history(history, root, root_qc);
        tree.certify(&state.highest_qc);
        Ok(Engine {
            leaders,
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
            sync_peers: Default::default(),
            unsafe_accept_any_sync: false,
            restored,
            discarded,
            validations: VecDeque::new(),
            round_changed: false,
            effects: Vec::new(),
            persist_at_start,
            double_sign_check_rounds: config.double_sign_check_rounds,
            unsafe_skip_voted_round_check: config.unsafe_skip_voted_round_check,
        })
    }

    /// Why this node will never sign again, once a signature of its key that it did not
    /// make has been seen (also yielded once as `Effect::Dropped` with
    /// `DropReason::Safety(SafetyError::SignedElsewhere { .. })`: the driver stops on it).
    pub fn signing_halted(&self) -> Option<&SafetyError> {
        self.safety.halted()
    }

    /// Whether the node is still in its observation window after start.
    pub fn observing(&self) -> bool {
        self.safety.observing()
    }

    /// Enters the round the (persisted) certificates justify: schedules its timer and, if
    /// this node leads it, asks for a payload.
    pub fn start(&mut self) -> Vec<Effect> {
        if std::mem::take(&mut self.persist_at_start) {
            self.persist();
        }
        let discarded = std::mem::take(&mut self.discarded);
        if !discarded.is_empty() {
            self.effects.push(Effect::DiscardBlocks(discarded));
        }
        let mut restored = std::mem::take(&mut self.restored);
        restored.sort_by_key(|b| b.header.height);
        for block in restored {
            let result = self.restore_block(block);
            self.record(None, result);
        }
        self.advance_round();
        // Armed after the rounds the store alone justifies: only rounds seen live count.
        if self.is_validator {
            self.safety.observe_for(self.double_sign_check_rounds);
        }
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
        self.leaders.on_insert(&self.validators, &block, id);
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
        self.leaders.on_insert(&self.validators, &block, id);
        // A full tree evicts blocks as it inserts: their states go with them.
        if self.leaders.len() > TREE_BLOCKS_MAX {
            let tree = &self.tree;
            self.leaders.retain(|h| tree.contains(h));
        }
        self.effects.push(Effect::StoreBlock(block));
        self.after_insert(id);
        Ok(id)
    }

    pub fn handle(&mut self, input: Input) -> Vec<Effect> {
        if matches!(input, Input::Timeout(r) if r == self.current_round()) {
            self.safety.round_passed();
        }
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
            Input::Validity { block, validity } => self.on_validity(block, validity),
        }
        self.finish()
    }

    pub fn public_key(&self) -> PublicKey {
        self.me
    }

    /// Whether this node's key is in the validator set (otherwise it signs nothing).
    pub fn is_validator(&self) -> bool {
        self.is_validator
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

    /// A block of the tree: the committed root, or an uncommitted block (for drivers that
    /// keep no copy of what they store, such as the simulator judging `Effect::Validate`).
    pub fn block(&self, id: &Hash) -> Option<&Block> {
        self.tree.get(id)
    }

    /// Uncommitted blocks held and proposals waiting for ancestors (for metrics and tests).
    pub fn buffered(&self) -> (usize, usize) {
        (self.tree.uncommitted_len(), self.pending.len())
    }

    /// The leader of `round` for a proposal extending the highest certified block: the one
    /// this node would extend, and what `status` shows.
    pub fn leader_of(&self, round: Round) -> PublicKey {
        self.leader_after(&self.tree.highest_certified().block, round)
            .unwrap_or_else(|| self.validators.member(0).key)
    }

    /// The leader of `round` for a proposal extending `parent`, once the rule can tell (with
    /// leader reputation, when `parent` is in the tree).
    pub(super) fn leader_after(&self, parent: &Hash, round: Round) -> Option<PublicKey> {
        self.leaders
            .leader_after(&self.validators, parent, round)
            .map(|i| self.validators.member(i).key)
    }

    /// Whether the leader of `round` for a proposal extending `parent` is on trial (a failed
    /// leader given its turn again): its round, and the round whose votes go to it, wait only
    /// the pacemaker's trial timeout.
    fn leader_on_trial(&self, parent: &Hash, round: Round) -> bool {
        self.leaders
            .leader_on_trial(&self.validators, parent, round)
            .is_some_and(|(_, trial)| trial)
    }

    /// The genesis's leader-election rule, by its genesis-file name.
    pub fn leader_election(&self) -> &'static str {
        if self.leaders.is_reputation() {
            LeaderElection::REPUTATION
        } else {
            LeaderElection::ROUND_ROBIN
        }
    }

    /// The validators passed over for proposals extending the highest certified block, with
    /// why (empty under round robin).
    pub fn passed_over(&self) -> Vec<(PublicKey, crate::bft::PassedOver)> {
        self.leaders
            .passed_over(&self.validators, &self.tree.highest_certified().block)
            .into_iter()
            .map(|p| (self.validators.member(p.validator).key, p))
            .collect()
    }

    fn finish(&mut self) -> Vec<Effect> {
        debug_assert!(self.pending.len() <= PENDING_PROPOSALS_MAX);
        debug_assert!(self.proposals_seen.len() <= PROPOSALS_SEEN_ROUNDS_MAX);
        debug_assert!(self.tree.uncommitted_len() <= TREE_BLOCKS_MAX);
        debug_assert!(self.leaders.len() <= TREE_BLOCKS_MAX + 1);
        if std::mem::take(&mut self.round_changed) {
            let round = self.current_round();
            let mut after_ms = self
                .pacemaker
                .round_timeout_ms(round, self.tree.root_round());
            if self.leader_on_trial(&self.tree.highest_certified().block, round) {
                after_ms = self.pacemaker.trial_timeout_ms(after_ms);
            }
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
        if let Err(e) = self.check_own_signature(&msg) {
            return self.record(Some(from), Err(e));
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

    /// During the observation window, a vote, timeout or proposal signed with this node's
    /// key that this node did not sign (its round is above what the safety state remembers)
    /// stops all signing. The signature is verified first: a forgery must not be able to
    /// stop a validator.
    fn check_own_signature(&mut self, msg: &Message) -> Result<(), DropReason> {
        if !self.safety.observing() {
            return Ok(());
        }
        let is_proposal = matches!(msg, Message::Proposal(_));
        let (what, round, bytes, signature) = match msg {
            Message::Vote(v) if v.voter == self.me => (
                "vote",
                v.round,
                vote_signing_bytes(&self.chain, v.round, &v.block),
                &v.signature,
            ),
            Message::Timeout(t) if t.sender == self.me => (
                "timeout",
                t.round,
                timeout_signing_bytes(&self.chain, t.round, t.high_qc.round),
                &t.signature,
            ),
            Message::Proposal(p) if p.block.header.proposer == self.my_address => {
                let Some((round, _)) = p.round_and_justify() else {
                    return Ok(());
                };
                let bytes = proposal_signing_bytes(&self.chain, round, &p.block.hash());
                ("proposal", round, bytes, &p.signature)
            }
            _ => return Ok(()),
        };
        if !self.verifier.verify(&bytes, &self.me, signature) {
            return Ok(());
        }
        self.own_signature_seen(what, round, is_proposal)
    }

    /// Some verified signature of this node's key on a `what` for `round` was seen.
    fn own_signature_seen(
        &mut self,
        what: &'static str,
        round: Round,
        is_proposal: bool,
    ) -> Result<(), DropReason> {
        match self.safety.signed_elsewhere(what, round, is_proposal) {
            Some(e) => Err(DropReason::Safety(e)),
            None => Ok(()),
        }
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
        if self.safety.observing() && qc.votes.iter().any(|(key, _)| *key == self.me) {
            self.own_signature_seen("vote (in a QC)", qc.round, false)?;
        }
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
        if self.safety.observing() && tc.signatures.iter().any(|s| s.signer == self.me) {
            self.own_signature_seen("timeout (in a TC)", tc.round, false)?;
        }
        self.safety.observe_tc(tc);
        self.process_qc(&tc.high_qc, from)
    }

    fn advance_round(&mut self) {
        let round = self.safety.state().justified_round();
        if self.pacemaker.advance_to(round) {
            self.safety.round_passed();
            self.validations.retain(|v| v.round >= round);
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
            || !self.safety.may_sign()
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
        // With leader reputation the leader depends on the parent: when the parent is not
        // here yet, the claimed proposer's signature is checked now and its right to lead
        // when the parent arrives (`check_released_leader`).
        let leader = self.leader_after(&justify.block, round);
        let signer = match leader {
            Some(key) => {
                self.check_proposer(key, &p, round)?;
                key
            }
            None => self
                .validators
                .members()
                .iter()
                .find(|m| m.address == p.block.header.proposer)
                .map(|m| m.key)
                .ok_or(DropReason::UnknownProposer {
                    round,
                    proposer: p.block.header.proposer,
                })?,
        };
        let bytes = proposal_signing_bytes(&self.chain, round, &block_id);
        if !self.verifier.verify(&bytes, &signer, &p.signature) {
            return Err(DropReason::BadSignature {
                what: "proposal",
                key: signer,
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
        if leader.is_some() {
            self.check_proposal_equivocation(SignedProposal {
                round,
                block: block_id,
                proposer: signer,
                signature: p.signature,
            })?;
        }
        self.accept_proposal(from, p)
    }

    /// The proposal must name `leader` as its proposer.
    fn check_proposer(
        &self,
        leader: PublicKey,
        p: &ProposalMsg,
        round: Round,
    ) -> Result<(), DropReason> {
        let expected = leader.address();
        if p.block.header.proposer != expected {
            return Err(DropReason::WrongLeader {
                round,
                expected,
                got: p.block.header.proposer,
            });
        }
        Ok(())
    }

    /// A proposal that waited for its parent, under leader reputation: now that the parent's
    /// state is known, the proposer must be the leader it names, and the proposal is
    /// checked for equivocation as any other (`on_proposal` could do neither).
    fn check_released_leader(&mut self, p: &ProposalMsg, round: Round) -> Result<(), DropReason> {
        let block = p.block.hash();
        let Some(key) = self.leader_after(&p.block.header.parent, round) else {
            return Ok(());
        };
        if self
            .proposals_seen
            .get(&(round, key))
            .is_some_and(|(first, _)| first.block == block)
        {
            return Ok(());
        }
        self.check_proposer(key, p, round)?;
        self.check_proposal_equivocation(SignedProposal {
            round,
            block,
            proposer: key,
            signature: p.signature,
        })
    }

    fn check_proposal_equivocation(&mut self, signed: SignedProposal) -> Result<(), DropReason> {
        let (round, key) = (signed.round, signed.proposer);
        match self.proposals_seen.get_mut(&(round, key)) {
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
                self.proposals_seen.insert((round, key), (signed, false));
                Ok(())
            }
        }
    }

    /// A peer's proposal whose signature, round and certificates check out: insert its block
    /// (or wait for its ancestors) and, if it is for the current round, ask the driver
    /// whether it is valid; the vote waits for the answer (`on_validity`).
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
        if self.leaders.is_reputation() {
            self.check_released_leader(&p, round)?;
        }
        let id = self.insert_block(p.block.clone())?;
        self.await_validity(AwaitingValidity {
            block: id,
            round,
            justify_round,
            tc: p.tc,
            proposer: self
                .leader_after(&p.block.header.parent, round)
                .unwrap_or_else(|| self.leader_of(round)),
        });
        Ok(())
    }

    /// Asks the driver to judge a block this node could vote for now. Nothing is asked when
    /// no vote could follow (not a validator, observing or halted, another round).
    fn await_validity(&mut self, awaiting: AwaitingValidity) {
        if !self.is_validator
            || !self.safety.may_sign()
            || awaiting.round != self.current_round()
            || self.validations.iter().any(|v| v.block == awaiting.block)
        {
            return;
        }
        if self.validations.len() >= VALIDATIONS_PENDING_MAX {
            self.validations.pop_front();
        }
        self.effects.push(Effect::Validate {
            block: awaiting.block,
        });
        self.validations.push_back(awaiting);
        assert!(self.validations.len() <= VALIDATIONS_PENDING_MAX);
    }

    /// The driver's verdict on a block asked about: vote for a valid one (the safety rules
    /// and the round are checked again, as for any vote); an invalid one gets no vote and
    /// leaves the tree unless a quorum certified it, and is the proposer's fault; one ahead
    /// of this node's clock gets no vote, stays, and is nobody's fault.
    fn on_validity(&mut self, block: Hash, validity: Validity) {
        let Some(i) = self.validations.iter().position(|v| v.block == block) else {
            return;
        };
        let Some(awaiting) = self.validations.remove(i) else {
            return;
        };
        let result = match validity {
            Validity::Valid => self.maybe_vote(
                awaiting.round,
                block,
                awaiting.justify_round,
                awaiting.tc.as_ref(),
            ),
            Validity::Invalid { reason } => {
                self.tree.discard_uncertified(&block);
                Err(DropReason::InvalidBlock {
                    block,
                    round: awaiting.round,
                    proposer: awaiting.proposer,
                    reason,
                })
            }
            // Kept in the tree: if the others' clocks allow it, their QC makes it certified.
            Validity::AheadOfClock { reason } => Err(DropReason::AheadOfClock {
                block,
                round: awaiting.round,
                proposer: awaiting.proposer,
                reason,
            }),
        };
        self.record(Some(awaiting.proposer), result);
    }

    fn maybe_vote(
        &mut self,
        round: Round,
        block: Hash,
        justify_round: Round,
        tc: Option<&super::messages::TimeoutCert>,
    ) -> Result<(), DropReason> {
        if !self.is_validator || !self.safety.may_sign() || round != self.current_round() {
            return Ok(());
        }
        // Known before signing: a block evicted from a full tree since it was proposed has
        // no state to name the next leader, and gets no vote.
        let next = Round(round.0.saturating_add(1));
        // One look at the rule for both answers: it may fold a gap of rounds to find them.
        let Some((next_leader, on_trial)) = self
            .leaders
            .leader_on_trial(&self.validators, &block, next)
            .map(|(i, trial)| (self.validators.member(i).key, trial))
        else {
            return Ok(());
        };
        // The vote goes to a leader on trial: if it is still down the vote is lost and this
        // round cannot end but by timeout, so it waits only the trial timeout from here. The
        // round's first timer fires later, harmlessly: once timed out, a round only
        // re-broadcasts its timeout.
        if next_leader != self.me && on_trial {
            let after_ms = self.pacemaker.trial_timeout_ms(
                self.pacemaker
                    .round_timeout_ms(round, self.tree.root_round()),
            );
            self.effects
                .push(Effect::ScheduleTimeout { round, after_ms });
        }
        let (vote, fresh) = self
            .safety
            .vote(self.signer.as_ref(), round, block, justify_round, tc)
            .map_err(DropReason::Safety)?;
        if fresh {
            self.persist();
        }
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
        // Its own payload is valid by construction: the driver built it on its ancestors.
        let id = self.insert_block(proposal.block)?;
        self.maybe_vote(round, id, justify.round, proposal.tc.as_ref())
    }

    // ---- commits -------------------------------------------------------------------------

    pub(super) fn on_commit(&mut self, committed: super::block_tree::Committed) {
        // The tree moved its root to the last block committed, which the QC certifies.
        let last = committed.blocks.last().map(|b| b.header.height);
        assert_eq!(last, Some(self.tree.root_height()));
        assert_eq!(committed.qc.block, self.tree.root_id());
        let root_round = self.tree.root_round();
        let tree = &self.tree;
        self.leaders.retain(|h| tree.contains(h));
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

#[cfg(test)]
mod double_sign_tests {
    use cairn_ledger::crypto::Keypair;

    use super::super::tests::{HandleValid, Kit, drops, times_out, votes_sent};
    use super::*;
    use crate::bft::{Ed25519Signer, Ed25519Verifier};

    /// Validator `i` restarted from `restart`, observing for `rounds` rounds, started.
    fn started(
        kit: &Kit,
        i: usize,
        restart: Option<RestartState>,
        rounds: u64,
    ) -> (Engine, Vec<Effect>) {
        let signer = Ed25519Signer::new(Keypair::from_secret(&kit.keys[i].secret_bytes()));
        let config = EngineConfig {
            double_sign_check_rounds: rounds,
            ..kit.config()
        };
        let mut e =
            Engine::new(config, Box::new(signer), Box::new(Ed25519Verifier), restart).unwrap();
        let effects = e.start();
        (e, effects)
    }

    fn signed_elsewhere(effects: &[Effect]) -> bool {
        drops(effects)
            .iter()
            .any(|r| matches!(r, DropReason::Safety(SafetyError::SignedElsewhere { .. })))
    }

    fn round_one_proposal(kit: &Kit) -> (PublicKey, Message) {
        let b1 = kit.chain_of(1)[1].clone();
        (kit.key(kit.leader(1)), kit.msg(kit.proposal(b1, None)))
    }

    #[test]
    fn a_restart_raises_the_signed_rounds_to_the_store_and_persists_that_first() {
        let kit = Kit::new(4);
        let me = kit.bystander(3);
        let chain = kit.chain_of(3);
        let restart = RestartState {
            safety: SafetyState::initial(kit.genesis_qc()),
            committed: None,
            history: Vec::new(),
            blocks: chain[1..].to_vec(),
        };
        let (e, effects) = started(&kit, me, Some(restart), 0);
        let state = e.safety_state();
        assert_eq!(
            (state.last_voted_round, state.last_proposed_round),
            (Round(3), Round(3))
        );
        assert!(
            matches!(&effects[0], Effect::Persist(s) if s.last_voted_round == Round(3)),
            "{effects:?}"
        );
        // A second proposal for round 3 gets no vote: the store says one may have been signed.
        let other = kit.block(3, &chain[2], &kit.qc_for(&chain[2]), 9);
        let mut e = e;
        let effects = e.handle(Input::Message(
            kit.key(kit.leader(3)),
            kit.msg(kit.proposal(other, None)),
        ));
        assert!(votes_sent(&effects).is_empty());
    }

    #[test]
    fn the_test_switch_turns_the_raise_from_the_store_off() {
        let kit = Kit::new(4);
        let me = kit.bystander(3);
        let restart = RestartState {
            safety: SafetyState::initial(kit.genesis_qc()),
            committed: None,
            history: Vec::new(),
            blocks: kit.chain_of(3)[1..].to_vec(),
        };
        let config = EngineConfig {
            unsafe_no_double_sign_guard: true,
            ..kit.config()
        };
        let signer = Ed25519Signer::new(Keypair::from_secret(&kit.keys[me].secret_bytes()));
        let mut e = Engine::new(
            config,
            Box::new(signer),
            Box::new(Ed25519Verifier),
            Some(restart),
        )
        .unwrap();
        let effects = e.start();
        assert!(!effects.iter().any(|e| matches!(e, Effect::Persist(_))));
        assert_eq!(e.safety_state().last_voted_round, Round(0));
    }

    #[test]
    fn a_current_safety_state_is_not_raised_and_not_persisted_again() {
        let kit = Kit::new(4);
        let (_, effects) = started(&kit, 0, None, 0);
        assert!(!effects.iter().any(|e| matches!(e, Effect::Persist(_))));
    }

    #[test]
    fn an_observing_validator_signs_nothing_until_its_rounds_have_passed() {
        let kit = Kit::new(4);
        let me = kit.bystander(1);
        let (mut e, effects) = started(&kit, me, None, 2);
        assert!(e.observing());
        assert!(
            !effects
                .iter()
                .any(|e| matches!(e, Effect::RequestPayload { .. }))
        );
        let (from, proposal) = round_one_proposal(&kit);
        let effects = e.handle(Input::Message(from, proposal));
        assert!(votes_sent(&effects).is_empty());
        assert!(!effects.iter().any(|e| matches!(e, Effect::Persist(_))));
        // Its timer fires: one round has gone by, one to go, so no timeout is signed.
        let effects = e.handle(Input::Timeout(Round(1)));
        assert!(!effects.iter().any(|e| matches!(e, Effect::Broadcast(_))));
        assert!(e.observing());
        // The second round goes by: the window is over and it times out with the others.
        let effects = e.handle(Input::Timeout(Round(1)));
        assert!(!e.observing());
        assert!(times_out(&effects), "{effects:?}");
    }

    #[test]
    fn the_window_ends_with_rounds_that_move_on_and_then_it_votes() {
        let kit = Kit::new(4);
        let me = (0..4)
            .find(|&i| (1..=3).all(|r| kit.leader(r) != i))
            .unwrap();
        let others: Vec<usize> = (0..4).filter(|&i| i != me).collect();
        // Rounds 1..=3, each certified by the other three validators.
        let mut blocks = vec![kit.genesis.clone()];
        let mut justify = kit.genesis_qc();
        for round in 1..=3 {
            let b = kit.block(round, blocks.last().unwrap(), &justify, 0);
            justify = kit.qc(round, b.hash(), &others);
            blocks.push(b);
        }
        let (mut e, _) = started(&kit, me, None, 2);
        // Round 1 is where it starts; round 2 is the first to go by.
        for round in 1..=2u64 {
            let block = blocks[round as usize].clone();
            let from = kit.key(kit.leader(round));
            let effects = e.handle_valid(Input::Message(from, kit.msg(kit.proposal(block, None))));
            assert!(votes_sent(&effects).is_empty(), "round {round}");
            assert!(e.observing(), "round {round}: {effects:?}");
        }
        // Entering round 3 is the second: it votes there.
        let effects = e.handle_valid(Input::Message(
            kit.key(kit.leader(3)),
            kit.msg(kit.proposal(blocks[3].clone(), None)),
        ));
        assert!(
            effects
                .iter()
                .any(|e| matches!(e, Effect::Persist(s) if s.last_voted_round == Round(3))),
            "{effects:?}"
        );
    }

    #[test]
    fn its_own_vote_in_a_qc_above_its_last_voted_round_halts_it_for_good() {
        let kit = Kit::new(4);
        let me = kit.bystander(2);
        let (mut e, _) = started(&kit, me, None, 3);
        let chain = kit.chain_of(2);
        // Block 2 carries a QC for round 1 that this key signed, but this node never did.
        let qc1 = kit.qc(1, chain[1].hash(), &[0, 1, 2, 3]);
        let b2 = kit.block(2, &chain[1], &qc1, 0);
        let effects = e.handle_valid(Input::Message(
            kit.key(kit.leader(2)),
            kit.msg(kit.proposal(b2, None)),
        ));
        assert!(signed_elsewhere(&effects), "{effects:?}");
        assert!(matches!(
            e.signing_halted(),
            Some(SafetyError::SignedElsewhere {
                round: Round(1),
                last_round: Round(0),
                ..
            })
        ));
        assert!(!e.observing());
        // Rounds pass, the window would be over, and still nothing is signed.
        for _ in 0..5 {
            let round = e.current_round();
            let effects = e.handle_valid(Input::Timeout(round));
            assert!(!effects.iter().any(|e| matches!(e, Effect::Broadcast(_))));
        }
    }

    #[test]
    fn its_own_signatures_at_or_below_its_last_voted_round_are_its_own() {
        let kit = Kit::new(4);
        let me = kit.bystander(2);
        let mut safety = SafetyState::initial(kit.genesis_qc());
        safety.last_voted_round = Round(1);
        let restart = RestartState {
            safety,
            committed: None,
            history: Vec::new(),
            blocks: Vec::new(),
        };
        let (mut e, _) = started(&kit, me, Some(restart), 3);
        let chain = kit.chain_of(2);
        let qc1 = kit.qc(1, chain[1].hash(), &[0, 1, 2, 3]);
        let tc1 = kit.tc(1, &kit.genesis_qc(), &[0, 1, 2, 3]);
        let b2 = kit.block(2, &chain[1], &qc1, 0);
        let effects = e.handle_valid(Input::Message(
            kit.key(kit.leader(2)),
            kit.msg(kit.proposal(b2, Some(tc1))),
        ));
        assert!(!signed_elsewhere(&effects), "{effects:?}");
        assert!(e.signing_halted().is_none());
    }

    #[test]
    fn its_own_vote_or_timeout_from_a_peer_halts_it_but_a_forgery_does_not() {
        let kit = Kit::new(4);
        let me = 1;
        let peer = kit.key(0);
        let b1 = kit.chain_of(1)[1].hash();
        // A forged vote in this key's name: ignored by the check (the vote path drops it).
        let (mut e, _) = started(&kit, me, None, 3);
        let mut forged = kit.vote(me, 5, b1);
        forged.signature = kit.vote(0, 5, b1).signature;
        let effects = e.handle_valid(Input::Message(peer, Message::Vote(forged)));
        assert!(!signed_elsewhere(&effects));
        assert!(e.signing_halted().is_none());
        // A real one for a round it never voted in.
        let effects = e.handle_valid(Input::Message(peer, Message::Vote(kit.vote(me, 5, b1))));
        assert!(signed_elsewhere(&effects), "{effects:?}");
        // A timeout of its own for a round above its last voted round.
        let (mut e, _) = started(&kit, me, None, 3);
        let t = kit.timeout(me, 4, &kit.genesis_qc());
        let effects = e.handle_valid(Input::Message(peer, Message::Timeout(Box::new(t))));
        assert!(signed_elsewhere(&effects), "{effects:?}");
    }

    #[test]
    fn its_own_proposal_above_its_last_proposed_round_halts_it() {
        let kit = Kit::new(4);
        let me = kit.leader(1);
        let (mut e, _) = started(&kit, me, None, 3);
        let (_, proposal) = round_one_proposal(&kit);
        let effects = e.handle_valid(Input::Message(kit.key((me + 1) % 4), proposal));
        assert!(signed_elsewhere(&effects), "{effects:?}");
    }
}
