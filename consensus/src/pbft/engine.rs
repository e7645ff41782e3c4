//! The PBFT engine (IBFT 2.0 / QBFT family): per height, the round's proposer offers a
//! block, validators prepare it, and a quorum of commits makes it final at once. A round
//! that fails is changed by round-change messages carrying each validator's highest prepare
//! certificate; the next proposer must offer the highest prepared block again.
//!
//! Owns: the height and round, the messages of the current height, candidate blocks, the
//! committed tip and recent history, and the order of effects. Never: signs outside the
//! safety rules, does I/O, reads a clock, or keeps anything unbounded.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use cairn_ledger::block::{Block, QuorumCert, Seal};
use cairn_ledger::genesis::LeaderElection;
use cairn_ledger::{Address, Hash, Height, PublicKey, Round};

use super::certs::{CertChecker, CertError, genesis_commit};
use super::effects::{DropReason, Effect, Evidence, Input, Validity};
use super::messages::{
    Message, ProposalMsg, RoundChangeCert, RoundChangeMsg, RoundChangeSig, SYNC_BLOCKS_MAX,
    SyncRequest, SyncResponse, VoteMsg, proposal_signing_bytes, round_change_signing_bytes,
};
use super::safety::{Position, SafetyError, SafetyRules, SafetyState};
use crate::bft::{Leaders, PassedOver, Signer, ValidatorSet, Verifier};

/// Messages for rounds further than this ahead of the current one are dropped (a round
/// change's round is still noted for the catch-up rule, one per validator).
pub const ROUNDS_AHEAD_MAX: u64 = 8;
/// Rounds of the current height whose messages are kept; the lowest go first.
pub const ROUNDS_KEPT_MAX: usize = 16;
/// Candidate blocks kept for the current height (proposals and prepared blocks).
pub const CANDIDATES_MAX: usize = 16;
/// Committed blocks kept to serve lagging peers.
pub const COMMITTED_BLOCKS_KEPT: usize = SYNC_BLOCKS_MAX;
/// Sync requests in flight; only the peers asked are read.
pub const SYNC_REQUESTS_KEPT: usize = 4;
/// Answers to validators behind, per round timer.
pub const STALE_ANSWERS_MAX: usize = 256;
/// The round timer doubles per round up to this many times (then `round_timeout_ms_max`).
pub const BACKOFF_EXPONENT_MAX: u64 = 16;

pub struct EngineConfig {
    pub validators: ValidatorSet,
    /// The first round's timer; each later round of a height doubles it.
    pub round_timeout_ms_base: u64,
    pub round_timeout_ms_max: u64,
    /// Block 0, with `Seal::Genesis`; its id names the chain in every signature.
    pub genesis: Block,
    /// After `start`, sign nothing for this many rounds, only watch for this key's
    /// signatures made elsewhere (0: sign at once).
    pub double_sign_check_rounds: u64,
    /// Who proposes each round: the schedule over turns, or the schedule with leader
    /// reputation read from the committed blocks.
    pub leader_election: LeaderElection,
    /// Test-only: proposers ignore the prepared blocks their round changes name and
    /// validators accept any quorum of round changes, so the simulator can prove its checker
    /// catches the forks that follow. Always false in a node.
    #[doc(hidden)]
    pub unsafe_skip_justification: bool,
}

/// What survives a crash: the last persisted safety state, the committed tip with its commit
/// certificate (`None`: only genesis), the committed blocks just below the tip (lowest
/// first, to serve lagging peers), and the uncommitted blocks stored by `StoreBlock`.
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
    #[error("round timeouts: base {base} ms must be at least 1 and at most the max {max} ms")]
    Timeouts { base: u64, max: u64 },
    #[error("the committed tip {block} does not match its commit certificate's block {qc_block}")]
    TipCertMismatch { block: Hash, qc_block: Hash },
    #[error("the committed tip's commit certificate is invalid: {0}")]
    TipCert(CertError),
}

/// Messages of one round of the current height.
#[derive(Default)]
struct RoundState {
    proposal: Option<Box<ProposalMsg>>,
    prepares: BTreeMap<PublicKey, VoteMsg>,
    commits: BTreeMap<PublicKey, VoteMsg>,
    round_changes: BTreeMap<PublicKey, RoundChangeMsg>,
    /// This node holds a prepare certificate of this round.
    prepared: bool,
    /// This node proposed here, or asked its driver for the block to.
    proposing: bool,
    /// A quorum is known to have moved to this round (a quorum of round changes, or a
    /// justified proposal): its timer may end it.
    synchronized: bool,
}

pub struct Engine {
    validators: ValidatorSet,
    /// The reputation state after the committed tip only: committed blocks are final, so
    /// every node that has the tip agrees on it.
    leaders: Leaders,
    signer: Box<dyn Signer + Send>,
    verifier: Box<dyn Verifier + Send>,
    me: PublicKey,
    my_address: Address,
    is_validator: bool,
    chain: Hash,
    timeout_base_ms: u64,
    timeout_max_ms: u64,
    unsafe_skip_justification: bool,
    safety: SafetyRules,
    certs: CertChecker,
    tip: Block,
    tip_cert: QuorumCert,
    /// Committed blocks, lowest first, ending with `tip`.
    history: VecDeque<Block>,
    height: Height,
    round: Round,
    rounds: BTreeMap<Round, RoundState>,
    /// Blocks offered for the current height, in arrival order.
    candidates: HashMap<Hash, Block>,
    candidate_order: VecDeque<Hash>,
    /// The driver's verdicts: true for valid.
    judged: HashMap<Hash, bool>,
    awaiting: HashSet<Hash>,
    /// Each validator's highest verified round change at this height.
    rc_highest: BTreeMap<PublicKey, Round>,
    /// (validator, round) pairs answered since this node's last round timer.
    stale_answered: HashSet<(PublicKey, Round)>,
    /// The payload asked for: its round and the justification it goes out with.
    payload_request: Option<(Round, Option<RoundChangeCert>)>,
    sync_asked: VecDeque<(PublicKey, Height)>,
    /// The position at which sync was last asked for: each peer once per position, and
    /// again after each round timer.
    sync_asked_at: Option<Position>,
    /// The peers asked at `sync_asked_at`, at most `SYNC_REQUESTS_KEPT`.
    sync_asked_here: Vec<PublicKey>,
    restored: Vec<Block>,
    discarded: Vec<Hash>,
    effects: Vec<Effect>,
    persist_pending: bool,
    timer_pending: bool,
    /// Timers armed for the current position; only the last one to fire counts.
    timers_armed: u32,
    persist_at_start: bool,
    double_sign_check_rounds: u64,
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
        if config.round_timeout_ms_base == 0
            || config.round_timeout_ms_base > config.round_timeout_ms_max
        {
            return Err(EngineError::Timeouts {
                base: config.round_timeout_ms_base,
                max: config.round_timeout_ms_max,
            });
        }
        let mut certs = CertChecker::new(chain);
        let restart = restart.unwrap_or_else(|| RestartState {
            safety: SafetyState::initial(),
            committed: None,
            history: Vec::new(),
            blocks: Vec::new(),
        });
        let (tip, tip_cert) = match restart.committed {
            None => (config.genesis.clone(), genesis_commit(chain)),
            Some((tip, qc)) => {
                if qc.block != tip.hash() {
                    return Err(EngineError::TipCertMismatch {
                        block: tip.hash(),
                        qc_block: qc.block,
                    });
                }
                certs
                    .verify_commit(
                        tip.header.height,
                        &qc,
                        &config.validators,
                        verifier.as_ref(),
                    )
                    .map_err(EngineError::TipCert)?;
                (tip, qc)
            }
        };
        let height = tip.header.height.next();
        let mut history: VecDeque<Block> = restart
            .history
            .into_iter()
            .filter(|b| b.header.height < tip.header.height)
            .collect();
        history.push_back(tip.clone());
        while history.len() > COMMITTED_BLOCKS_KEPT {
            history.pop_front();
        }
        let mut safety_state = restart.safety;
        let here = Position {
            height,
            round: Round(0),
        };
        // A ledger ahead of the safety state (a lost state file) must not send the
        // validator back to a height it already left.
        let persist_at_start = safety_state.position < here;
        if persist_at_start {
            safety_state.position = here;
            safety_state.left_for = None;
        }
        let round = if safety_state.position.height == height {
            safety_state.position.round
        } else {
            // Ahead of the ledger (commits not yet applied when it stopped): catch up first.
            Round(0)
        };
        let tip_id = tip.hash();
        let (restored, discarded): (Vec<Block>, Vec<Block>) = restart
            .blocks
            .into_iter()
            .partition(|b| b.header.height == height && b.header.parent == tip_id);
        let me = signer.public_key();
        // Reputation is folded over what is kept of the chain, from block 0 when all of it
        // is (a failed first turn is then remembered across a restart).
        let starts_at_one = history
            .front()
            .is_some_and(|b| b.header.height == Height(1));
        let below_tip: Vec<Block> = starts_at_one
            .then(|| config.genesis.clone())
            .into_iter()
            .chain(history.iter().take(history.len() - 1).cloned())
            .collect();
        Ok(Engine {
            leaders: Leaders::new(&config.validators, config.leader_election, &below_tip, &tip),
            is_validator: config.validators.power(&me).is_some(),
            validators: config.validators,
            me,
            my_address: me.address(),
            signer,
            verifier,
            chain,
            timeout_base_ms: config.round_timeout_ms_base,
            timeout_max_ms: config.round_timeout_ms_max,
            unsafe_skip_justification: config.unsafe_skip_justification,
            safety: SafetyRules::new(safety_state, chain),
            certs,
            tip,
            tip_cert,
            history,
            height,
            round,
            rounds: BTreeMap::new(),
            candidates: HashMap::new(),
            candidate_order: VecDeque::new(),
            judged: HashMap::new(),
            awaiting: HashSet::new(),
            rc_highest: BTreeMap::new(),
            stale_answered: HashSet::new(),
            payload_request: None,
            sync_asked: VecDeque::new(),
            sync_asked_at: None,
            sync_asked_here: Vec::new(),
            restored,
            discarded: discarded.iter().map(Block::hash).collect(),
            effects: Vec::new(),
            persist_pending: false,
            timer_pending: false,
            timers_armed: 0,
            persist_at_start,
            double_sign_check_rounds: config.double_sign_check_rounds,
        })
    }

    /// The first effects: persist a raised state, discard stale blocks, restore candidates,
    /// arm the round timer and, for the proposer, ask for a block.
    pub fn start(&mut self) -> Vec<Effect> {
        if std::mem::take(&mut self.persist_at_start) {
            self.persist_pending = true;
        }
        let discarded = std::mem::take(&mut self.discarded);
        if !discarded.is_empty() {
            self.effects.push(Effect::DiscardBlocks(discarded));
        }
        for block in std::mem::take(&mut self.restored) {
            let id = block.hash();
            if self.candidates.len() < CANDIDATES_MAX && !self.candidates.contains_key(&id) {
                self.candidate_order.push_back(id);
                self.candidates.insert(id, block);
            }
        }
        if self.is_validator {
            self.safety.observe_for(self.double_sign_check_rounds);
        }
        self.enter_round(self.round);
        self.finish()
    }

    pub fn handle(&mut self, input: Input) -> Vec<Effect> {
        match input {
            Input::Bytes(from, bytes) => match Message::decode(&bytes) {
                Ok(msg) => self.on_message(from, msg),
                Err(e) => self.drop_input(
                    Some(from),
                    DropReason::Malformed {
                        reason: e.to_string(),
                    },
                ),
            },
            Input::Message(from, msg) => self.on_message(from, msg),
            Input::Timeout { height, round } => {
                let result = self.on_timeout(height, round);
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

    // ---- accessors ----

    pub fn public_key(&self) -> PublicKey {
        self.me
    }

    pub fn is_validator(&self) -> bool {
        self.is_validator
    }

    /// The height being decided (one above the committed tip).
    pub fn current_height(&self) -> Height {
        self.height
    }

    pub fn current_round(&self) -> Round {
        self.round
    }

    pub fn committed_height(&self) -> Height {
        self.tip.header.height
    }

    pub fn committed_id(&self) -> Hash {
        self.tip.hash()
    }

    pub fn safety_state(&self) -> &SafetyState {
        self.safety.state()
    }

    /// The genesis block id, which names the chain in every signature.
    pub fn chain(&self) -> Hash {
        self.chain
    }

    /// Why this validator signs nothing any more, if it does not.
    pub fn signing_halted(&self) -> Option<&SafetyError> {
        self.safety.halted()
    }

    pub fn observing(&self) -> bool {
        self.safety.observing()
    }

    /// (rounds, candidate blocks) held for the current height.
    pub fn buffered(&self) -> (usize, usize) {
        (self.rounds.len(), self.candidates.len())
    }

    /// The proposer of `round` at the current height: the leader of turn `tip's turn + 1 +
    /// round`, by the schedule or by reputation after the committed tip. Counting turns
    /// along the chain gives the first round of each height to the schedule's next leader,
    /// and lets reputation see which turns produced no block.
    pub fn proposer_of(&self, round: Round) -> PublicKey {
        let turn = self.turn_of(round);
        let leader = self
            .leaders
            .leader_after(&self.validators, &self.tip.hash(), turn)
            .expect("the reputation state of the committed tip is always kept");
        self.validators.member(leader).key
    }

    /// The turn of `round` at the current height.
    fn turn_of(&self, round: Round) -> Round {
        Round(turn(&self.tip).0.saturating_add(1).saturating_add(round.0))
    }

    pub fn leader_election(&self) -> &'static str {
        if self.leaders.is_reputation() {
            LeaderElection::REPUTATION
        } else {
            LeaderElection::ROUND_ROBIN
        }
    }

    /// The validators passed over as proposers after the committed tip, with why (empty
    /// under round robin).
    pub fn passed_over(&self) -> Vec<(PublicKey, PassedOver)> {
        self.leaders
            .passed_over(&self.validators, &self.tip.hash())
            .into_iter()
            .map(|p| (self.validators.member(p.validator).key, p))
            .collect()
    }

    // ---- plumbing ----

    fn here(&self) -> Position {
        Position {
            height: self.height,
            round: self.round,
        }
    }

    fn finish(&mut self) -> Vec<Effect> {
        if std::mem::take(&mut self.persist_pending) {
            self.persist_now();
        }
        if std::mem::take(&mut self.timer_pending) {
            self.timers_armed += 1;
            self.effects.push(Effect::ScheduleTimeout {
                height: self.height,
                round: self.round,
                after_ms: self.timeout_ms(self.round),
            });
        }
        assert!(self.rounds.len() <= ROUNDS_KEPT_MAX);
        assert!(self.candidates.len() <= CANDIDATES_MAX);
        assert!(self.sync_asked.len() <= SYNC_REQUESTS_KEPT);
        assert!(self.sync_asked_here.len() <= SYNC_REQUESTS_KEPT);
        assert!(self.history.len() <= COMMITTED_BLOCKS_KEPT);
        assert!(self.stale_answered.len() <= STALE_ANSWERS_MAX);
        std::mem::take(&mut self.effects)
    }

    /// Emits the safety state now: a send follows that it must precede.
    fn persist_now(&mut self) {
        self.persist_pending = false;
        self.effects
            .push(Effect::Persist(Box::new(self.safety.state().clone())));
    }

    fn timeout_ms(&self, round: Round) -> u64 {
        let shift = round.0.min(BACKOFF_EXPONENT_MAX);
        self.timeout_base_ms
            .saturating_mul(1u64 << shift)
            .min(self.timeout_max_ms)
    }

    fn drop_input(&mut self, from: Option<PublicKey>, reason: DropReason) {
        self.effects.push(Effect::Dropped { from, reason });
    }

    fn record(&mut self, from: Option<PublicKey>, result: Result<(), DropReason>) {
        if let Err(reason) = result {
            self.drop_input(from, reason);
        }
    }

    fn halt_if_elsewhere(&mut self, what: &'static str, at: Position, block: Option<Hash>) {
        if let Some(e) = self.safety.signed_elsewhere(what, at, block) {
            self.drop_input(None, DropReason::Safety(e));
        }
    }

    fn round_state(&mut self, round: Round) -> &mut RoundState {
        if !self.rounds.contains_key(&round) && self.rounds.len() >= ROUNDS_KEPT_MAX {
            let current = self.round;
            if let Some(lowest) = self.rounds.keys().copied().find(|r| *r != current) {
                self.rounds.remove(&lowest);
            }
        }
        self.rounds.entry(round).or_default()
    }

    fn add_candidate(&mut self, block: Block) -> Result<Hash, DropReason> {
        let id = block.hash();
        if self.candidates.contains_key(&id) {
            return Ok(id);
        }
        if self.candidates.len() >= CANDIDATES_MAX {
            // Keep the blocks the current round and this node's prepare certificate need.
            let keep: HashSet<Hash> = self
                .rounds
                .get(&self.round)
                .and_then(|r| r.proposal.as_ref().map(|p| p.block.hash()))
                .into_iter()
                .chain(
                    self.safety
                        .state()
                        .prepared_at(self.height)
                        .map(|qc| qc.block),
                )
                .collect();
            let Some(pos) = self.candidate_order.iter().position(|h| !keep.contains(h)) else {
                return Err(DropReason::CandidatesFull { block: id });
            };
            if let Some(old) = self.candidate_order.remove(pos) {
                self.candidates.remove(&old);
                self.judged.remove(&old);
                self.awaiting.remove(&old);
            }
        }
        self.effects.push(Effect::StoreBlock(block.clone()));
        self.candidates.insert(id, block);
        self.candidate_order.push_back(id);
        Ok(id)
    }

    /// Checks `block` offered in `round` of the current height: a PBFT block on the committed
    /// tip, its parent's commit certificate valid, its turn that of `round` when `fresh`, or
    /// of an earlier round of this height when offered again (its prepare quorum checked it
    /// then). Signed messages' own checks come first.
    fn check_block(&mut self, block: &Block, round: Round, fresh: bool) -> Result<(), DropReason> {
        let id = block.hash();
        if block.header.height != self.height {
            return Err(DropReason::WrongHeight {
                block: id,
                expected: self.height,
                got: block.header.height,
            });
        }
        let Seal::Pbft {
            turn: got,
            parent_commit,
        } = &block.header.seal
        else {
            return Err(DropReason::NotPbft { block: id });
        };
        let expected = self.turn_of(round);
        let turn_ok = if fresh {
            *got == expected
        } else {
            turn(&self.tip) < *got && *got <= expected
        };
        if !turn_ok {
            return Err(DropReason::WrongTurn {
                block: id,
                round,
                got: *got,
                expected,
            });
        }
        let tip = self.tip.hash();
        if block.header.parent != tip {
            return Err(DropReason::WrongParent {
                block: id,
                parent: block.header.parent,
                tip,
            });
        }
        if *parent_commit != self.tip_cert {
            if parent_commit.block != tip {
                return Err(DropReason::InvalidCert(CertError::WrongBlock {
                    what: "parent commit certificate",
                    expected: tip,
                    got: parent_commit.block,
                }));
            }
            let parent_commit = parent_commit.clone();
            self.certs
                .verify_commit(
                    self.tip.header.height,
                    &parent_commit,
                    &self.validators,
                    self.verifier.as_ref(),
                )
                .map_err(DropReason::InvalidCert)?;
        }
        Ok(())
    }

    // ---- rounds ----

    /// Moves to `round` of the current height (or re-arms it): timer, and the proposer's
    /// part.
    fn enter_round(&mut self, round: Round) {
        if round > self.round {
            self.safety.round_passed();
        }
        self.round = round;
        // Where a restart resumes; it guards nothing by itself, so it rides with the next
        // signature's write.
        self.safety.enter(self.here());
        self.timers_armed = 0;
        self.timer_pending = true;
        if self.proposer_of(round) == self.me && self.is_validator {
            if round == Round(0) {
                self.request_payload(round, None);
            } else {
                self.try_propose_after_round_changes(round);
            }
        }
        self.try_prepare(round);
    }

    fn on_timeout(&mut self, height: Height, round: Round) -> Result<(), DropReason> {
        if (height, round) != (self.height, self.round) {
            return Err(DropReason::StaleTimer {
                height,
                round,
                current_height: self.height,
                current_round: self.round,
            });
        }
        // The round timer is also the retry clock of an unanswered sync request, and of
        // answers to validators behind (lost, they would never be given again).
        self.sync_asked_at = None;
        self.stale_answered.clear();
        self.timers_armed = self.timers_armed.saturating_sub(1);
        if self.timers_armed > 0 {
            // Re-armed since: the newer timer ends the round.
            return Err(DropReason::StaleTimer {
                height,
                round,
                current_height: self.height,
                current_round: self.round,
            });
        }
        let lowest_ahead = self
            .rc_highest
            .values()
            .filter(|r| **r > round)
            .min()
            .copied();
        if self.synchronized(round) {
            self.change_round(Round(round.0 + 1));
        } else if let Some(ahead) = lowest_ahead {
            // Nobody else is known to be here, but someone is further on and waiting there
            // (it cannot come back): join it. A Byzantine sender gains nothing by this; a
            // timer that fires moves this node on anyway.
            self.change_round(ahead);
        } else {
            // A round gone by for the double-sign watch, though this node stays in it.
            self.safety.round_passed();
            // Nobody else is known to be here yet: leaving now would keep this node a
            // round ahead of the rest forever (equal capped timers never catch up). Say
            // again where it is, and wait for a quorum or for f + 1 ahead.
            self.timer_pending = true;
            self.broadcast_round_change();
        }
        Ok(())
    }

    /// Round 0 is where every height starts; a later round once a quorum is known to have
    /// reached it (its round changes, a justified proposal, or a prepare certificate of it
    /// or a later round, which survives a restart).
    fn synchronized(&self, round: Round) -> bool {
        round == Round(0)
            || self.rounds.get(&round).is_some_and(|s| s.synchronized)
            || self
                .safety
                .state()
                .prepared_at(self.height)
                .is_some_and(|qc| qc.round >= round)
    }

    /// Leaves the current round for `round`: enter it, and tell everyone with a round change
    /// carrying this node's highest prepare certificate (and its block, so the proposer can
    /// offer it again).
    fn change_round(&mut self, round: Round) {
        debug_assert!(round > self.round);
        // Past any round this node holds a prepare certificate of (a quorum was there): a
        // round change may claim only a round below its own.
        let past_prepared = self
            .safety
            .state()
            .prepared_at(self.height)
            .map_or(Round(0), |qc| Round(qc.round.0 + 1));
        self.enter_round(round.max(past_prepared));
        self.broadcast_round_change();
    }

    fn broadcast_round_change(&mut self) {
        if !self.is_validator {
            return;
        }
        let at = self.here();
        // Said again: the same message. A new signature could only claim a prepare
        // certificate of this very round, which no round change to it may carry.
        let sent = self
            .rounds
            .get(&at.round)
            .and_then(|s| s.round_changes.get(&self.me))
            .cloned();
        if let Some(rc) = sent {
            self.effects
                .push(Effect::Broadcast(Message::RoundChange(Box::new(rc))));
            return;
        }
        if self
            .safety
            .state()
            .prepared_at(at.height)
            .is_some_and(|qc| qc.round >= at.round)
        {
            // Entered by a proposal and prepared here: the round is live, nothing to say.
            return;
        }
        let (prepared, signature) = match self.safety.round_change(self.signer.as_ref(), at) {
            Ok(signed) => signed,
            Err(e) => return self.drop_input(None, DropReason::Safety(e)),
        };
        let block = prepared
            .as_ref()
            .and_then(|qc| self.candidates.get(&qc.block).cloned());
        let rc = RoundChangeMsg {
            height: at.height,
            round: at.round,
            prepared,
            block,
            sender: self.me,
            signature,
        };
        self.persist_now();
        self.effects
            .push(Effect::Broadcast(Message::RoundChange(Box::new(
                rc.clone(),
            ))));
        self.accept_round_change(rc);
    }

    fn request_payload(&mut self, round: Round, justification: Option<RoundChangeCert>) {
        let state = self.round_state(round);
        if state.proposing {
            return;
        }
        state.proposing = true;
        self.payload_request = Some((round, justification));
        self.effects.push(Effect::RequestPayload {
            height: self.height,
            round,
            parent: self.tip.hash(),
            turn: self.turn_of(round),
            parent_commit: self.tip_cert.clone(),
        });
    }

    fn on_payload(&mut self, block: Block) -> Result<(), DropReason> {
        let (height, current) = (block.header.height, self.round);
        let mismatch = |reason| DropReason::PayloadMismatch {
            height,
            round: current,
            reason,
        };
        let Some((round, _)) = &self.payload_request else {
            return Err(mismatch("no payload was asked for"));
        };
        if *round != current {
            return Err(mismatch("the round it was asked for has passed"));
        }
        if block.header.proposer != self.my_address {
            return Err(mismatch("the block names another proposer"));
        }
        self.check_block(&block, current, true)
            .map_err(|_| mismatch("not a PBFT block of this round on the committed tip"))?;
        let Some((round, justification)) = self.payload_request.take() else {
            return Ok(());
        };
        self.propose(round, block, justification)
    }

    fn propose(
        &mut self,
        round: Round,
        block: Block,
        justification: Option<RoundChangeCert>,
    ) -> Result<(), DropReason> {
        let at = self.here();
        debug_assert_eq!(at.round, round);
        let id = block.hash();
        let signature = self
            .safety
            .propose(self.signer.as_ref(), at, id)
            .map_err(DropReason::Safety)?;
        self.add_candidate(block.clone())?;
        self.judged.insert(id, true);
        let proposal = ProposalMsg {
            height: at.height,
            round,
            block,
            justification,
            proposer: self.me,
            signature,
        };
        self.persist_now();
        self.effects
            .push(Effect::Broadcast(Message::Proposal(Box::new(
                proposal.clone(),
            ))));
        let state = self.round_state(round);
        state.proposing = true;
        state.proposal = Some(Box::new(proposal));
        self.try_prepare(round);
        Ok(())
    }

    /// The proposer of `round`, holding a quorum of round changes to it, proposes: the
    /// highest prepared block they name, or a new block from its driver.
    fn try_propose_after_round_changes(&mut self, round: Round) {
        if round != self.round || round == Round(0) || self.proposer_of(round) != self.me {
            return;
        }
        let Some(state) = self.rounds.get(&round) else {
            return;
        };
        if state.proposing {
            return;
        }
        let signers: Vec<&PublicKey> = state.round_changes.keys().collect();
        let power = crate::bft::tally(&signers, &self.validators).unwrap_or(0);
        if power < self.validators.quorum_power() {
            return;
        }
        let highest = state
            .round_changes
            .values()
            .filter_map(|rc| rc.prepared.as_ref())
            .max_by_key(|qc| qc.round)
            .cloned();
        let cert = RoundChangeCert {
            round,
            signatures: state
                .round_changes
                .values()
                .map(|rc| RoundChangeSig {
                    signer: rc.sender,
                    prepared: rc.claim(),
                    signature: rc.signature,
                })
                .collect(),
            prepared: if self.unsafe_skip_justification {
                None
            } else {
                highest.clone()
            },
        };
        match highest {
            Some(qc) if !self.unsafe_skip_justification => {
                // The block comes with a round change, or this node saw it proposed; without
                // it, wait for another round change that carries it.
                let Some(block) = self.candidates.get(&qc.block).cloned() else {
                    return;
                };
                let result = self.propose(round, block, Some(cert));
                self.record(None, result);
            }
            _ => self.request_payload(round, Some(cert)),
        }
    }

    // ---- messages ----

    fn on_message(&mut self, from: PublicKey, msg: Message) {
        if let Err(e) = msg.check_bounds(self.validators.len()) {
            return self.drop_input(Some(from), DropReason::OutOfBounds(e));
        }
        let result = match msg {
            Message::Proposal(p) => self.on_proposal(from, *p),
            Message::Prepare(v) => self.on_vote(from, v, false),
            Message::Commit(v) => self.on_vote(from, v, true),
            Message::RoundChange(rc) => self.on_round_change(from, *rc),
            Message::SyncRequest(r) => self.on_sync_request(from, r),
            Message::SyncResponse(r) => self.on_sync_response(from, *r),
        };
        self.record(Some(from), result);
    }

    fn verify_one(
        &self,
        what: &'static str,
        key: &PublicKey,
        bytes: &[u8],
        signature: &cairn_ledger::Signature,
    ) -> Result<(), DropReason> {
        if self.validators.power(key).is_none() {
            return Err(DropReason::NotAValidator { what, key: *key });
        }
        if !self.verifier.verify(bytes, key, signature) {
            return Err(DropReason::BadSignature { what, key: *key });
        }
        Ok(())
    }

    fn check_round_window(&self, what: &'static str, round: Round) -> Result<(), DropReason> {
        if round.0 > self.round.0.saturating_add(ROUNDS_AHEAD_MAX) {
            return Err(DropReason::FutureRound {
                what,
                round,
                current: self.round,
            });
        }
        Ok(())
    }

    fn on_proposal(&mut self, from: PublicKey, p: ProposalMsg) -> Result<(), DropReason> {
        const WHAT: &str = "proposal";
        if p.height < self.height {
            return Err(DropReason::StaleHeight {
                what: WHAT,
                height: p.height,
                current: self.height,
            });
        }
        let id = p.block.hash();
        let bytes = proposal_signing_bytes(&self.chain, p.height, p.round, &id);
        self.verify_one(WHAT, &p.proposer, &bytes, &p.signature)?;
        let at = Position {
            height: p.height,
            round: p.round,
        };
        if p.proposer == self.me {
            self.halt_if_elsewhere(WHAT, at, Some(id));
        }
        if p.block.header.height != p.height {
            return Err(DropReason::WrongHeight {
                block: id,
                expected: p.height,
                got: p.block.header.height,
            });
        }
        if p.height > self.height {
            // The block of the next height carries the commit certificate of this one.
            if p.height == self.height.next() && self.commit_from_child(&p.block) {
                return self.on_proposal(from, p);
            }
            self.ask_sync(from);
            return Err(DropReason::FutureHeight {
                what: WHAT,
                height: p.height,
                current: self.height,
            });
        }
        // Who proposes depends on the committed tip, so it is known only at the current
        // height (a proposal of the next one was handled above, once its parent committed).
        let expected = self.proposer_of(p.round);
        if p.proposer != expected {
            return Err(DropReason::WrongProposer {
                height: p.height,
                round: p.round,
                expected,
                got: p.proposer,
            });
        }
        if p.round < self.round {
            return Err(DropReason::StaleRound {
                what: WHAT,
                round: p.round,
                current: self.round,
            });
        }
        self.check_round_window(WHAT, p.round)?;
        let required = match (&p.justification, p.round) {
            (Some(_), Round(0)) => return Err(DropReason::JustifiedRoundZero),
            (None, Round(0)) => None,
            (None, round) => return Err(DropReason::Unjustified { round }),
            (Some(_), _) if self.unsafe_skip_justification => None,
            (Some(j), round) => {
                let required = self
                    .certs
                    .verify_justification(
                        p.height,
                        round,
                        j,
                        &self.validators,
                        self.verifier.as_ref(),
                    )
                    .map_err(DropReason::InvalidCert)?;
                if let Some(required) = required
                    && required != id
                {
                    return Err(DropReason::NotThePreparedBlock {
                        round,
                        required,
                        got: id,
                    });
                }
                required
            }
        };
        // A block offered again keeps the proposer of the round it was first offered in.
        if required.is_none() && p.block.header.proposer != p.proposer.address() {
            return Err(DropReason::ProposerMismatch {
                key: p.proposer,
                named: p.block.header.proposer,
            });
        }
        self.check_block(&p.block, p.round, required.is_none())?;
        if let Some(first) = self.rounds.get(&p.round).and_then(|s| s.proposal.as_ref()) {
            if first.block.hash() == id {
                return Err(DropReason::Duplicate {
                    what: WHAT,
                    key: p.proposer,
                    round: p.round,
                });
            }
            self.effects
                .push(Effect::Evidence(Evidence::ConflictingProposals {
                    first: first.signed(),
                    second: p.signed(),
                }));
            return Err(DropReason::Equivocation {
                what: WHAT,
                key: p.proposer,
                round: p.round,
            });
        }
        let round = p.round;
        if round > self.round {
            // A justified proposal proves a quorum moved to its round.
            self.enter_round(round);
        }
        self.add_candidate(p.block.clone())?;
        let state = self.round_state(round);
        state.proposal = Some(Box::new(p));
        state.synchronized = true;
        self.try_prepare(round);
        Ok(())
    }

    /// Prepares the current round's proposal once the driver judged it valid.
    fn try_prepare(&mut self, round: Round) {
        if round != self.round || !self.is_validator {
            return;
        }
        let Some(id) = self
            .rounds
            .get(&round)
            .and_then(|s| s.proposal.as_ref())
            .map(|p| p.block.hash())
        else {
            return;
        };
        match self.judged.get(&id) {
            Some(true) => {}
            Some(false) => return,
            None => {
                if self.awaiting.insert(id) {
                    self.effects.push(Effect::Validate { block: id });
                }
                return;
            }
        }
        let at = self.here();
        if self
            .rounds
            .get(&round)
            .and_then(|s| s.prepares.get(&self.me))
            .is_some()
        {
            return;
        }
        let vote = match self.safety.prepare(self.signer.as_ref(), at, id) {
            Ok(v) => v,
            Err(e) => return self.drop_input(None, DropReason::Safety(e)),
        };
        self.persist_now();
        self.effects
            .push(Effect::Broadcast(Message::Prepare(vote.clone())));
        self.accept_vote(vote, false);
    }

    fn on_validity(&mut self, id: Hash, validity: Validity) {
        if !self.awaiting.remove(&id) {
            return;
        }
        let proposer = self
            .rounds
            .values()
            .filter_map(|s| s.proposal.as_ref())
            .find(|p| p.block.hash() == id)
            .map(|p| (p.proposer, p.round));
        let (proposer, round) = proposer.unwrap_or((self.me, self.round));
        match validity {
            Validity::Valid => {
                self.judged.insert(id, true);
                self.try_prepare(self.round);
            }
            Validity::Invalid { reason } => {
                self.judged.insert(id, false);
                self.drop_input(
                    Some(proposer),
                    DropReason::InvalidBlock {
                        block: id,
                        round,
                        proposer,
                        reason,
                    },
                );
            }
            // Not remembered: the clock may catch up by the block's next offer.
            Validity::AheadOfClock { reason } => self.drop_input(
                None,
                DropReason::AheadOfClock {
                    block: id,
                    round,
                    proposer,
                    reason,
                },
            ),
        }
    }

    fn on_vote(&mut self, from: PublicKey, v: VoteMsg, commit: bool) -> Result<(), DropReason> {
        let what = if commit { "commit" } else { "prepare" };
        if v.height < self.height {
            return Err(DropReason::StaleHeight {
                what,
                height: v.height,
                current: self.height,
            });
        }
        let bytes = if commit {
            super::messages::commit_signing_bytes(&self.chain, v.height, v.round, &v.block)
        } else {
            super::messages::prepare_signing_bytes(&self.chain, v.height, v.round, &v.block)
        };
        self.verify_one(what, &v.voter, &bytes, &v.signature)?;
        let at = Position {
            height: v.height,
            round: v.round,
        };
        if v.voter == self.me {
            self.halt_if_elsewhere(what, at, Some(v.block));
        }
        if v.height > self.height {
            self.ask_sync(from);
            return Err(DropReason::FutureHeight {
                what,
                height: v.height,
                current: self.height,
            });
        }
        self.check_round_window(what, v.round)?;
        let state = self.round_state(v.round);
        let votes = if commit {
            &state.commits
        } else {
            &state.prepares
        };
        if let Some(first) = votes.get(&v.voter) {
            if first.block == v.block {
                return Err(DropReason::Duplicate {
                    what,
                    key: v.voter,
                    round: v.round,
                });
            }
            let (first, voter, round) = (first.clone(), v.voter, v.round);
            self.effects
                .push(Effect::Evidence(Evidence::ConflictingVotes {
                    commit,
                    first,
                    second: v,
                }));
            return Err(DropReason::Equivocation {
                what,
                key: voter,
                round,
            });
        }
        self.accept_vote(v, commit);
        Ok(())
    }

    /// Counts a verified vote and acts on a quorum.
    fn accept_vote(&mut self, v: VoteMsg, commit: bool) {
        let (round, block) = (v.round, v.block);
        let state = self.round_state(round);
        let votes = if commit {
            &mut state.commits
        } else {
            &mut state.prepares
        };
        votes.insert(v.voter, v);
        let cert = QuorumCert {
            round,
            block,
            votes: votes
                .values()
                .filter(|x| x.block == block)
                .map(|x| (x.voter, x.signature))
                .collect(),
        };
        let signers: Vec<&PublicKey> = cert.votes.iter().map(|(k, _)| k).collect();
        let power = crate::bft::tally(&signers, &self.validators).unwrap_or(0);
        if power < self.validators.quorum_power() {
            return;
        }
        if commit {
            self.on_commit_quorum(cert);
        } else {
            self.on_prepared(cert);
        }
    }

    /// A quorum prepared `qc.block` in `qc.round`: keep the certificate (a later round
    /// change must show it) and, in the current round, commit the proposal.
    fn on_prepared(&mut self, qc: QuorumCert) {
        let round = qc.round;
        if self.rounds.get(&round).is_some_and(|s| s.prepared) {
            return;
        }
        let state = self.round_state(round);
        state.prepared = true;
        // A quorum prepared here: it is in this round.
        state.synchronized = true;
        if self.safety.record_prepared(self.height, &qc) {
            self.persist_pending = true;
        }
        let proposed = self
            .rounds
            .get(&round)
            .and_then(|s| s.proposal.as_ref())
            .is_some_and(|p| p.block.hash() == qc.block);
        if round != self.round || !proposed || !self.is_validator {
            return;
        }
        let vote = match self
            .safety
            .commit(self.signer.as_ref(), self.here(), qc.block)
        {
            Ok(v) => v,
            Err(e) => return self.drop_input(None, DropReason::Safety(e)),
        };
        self.persist_now();
        self.effects
            .push(Effect::Broadcast(Message::Commit(vote.clone())));
        self.accept_vote(vote, true);
    }

    /// A quorum committed `qc.block`: it is final. Without the block, fetch it.
    fn on_commit_quorum(&mut self, qc: QuorumCert) {
        self.certs.trust_commit(self.height, &qc);
        match self.candidates.get(&qc.block).cloned() {
            Some(block) => self.finalize(vec![block], qc),
            None => {
                let from = qc.votes.iter().map(|(k, _)| *k).find(|k| *k != self.me);
                if let Some(from) = from {
                    self.ask_sync(from);
                }
            }
        }
    }

    /// Commits the current height's candidate that `child` (a block of the next height)
    /// certifies, if its parent commit certificate verifies. Returns whether it did.
    fn commit_from_child(&mut self, child: &Block) -> bool {
        let Seal::Pbft { parent_commit, .. } = &child.header.seal else {
            return false;
        };
        if parent_commit.block != child.header.parent {
            return false;
        }
        let Some(block) = self.candidates.get(&child.header.parent).cloned() else {
            return false;
        };
        let qc = parent_commit.clone();
        if self
            .certs
            .verify_commit(self.height, &qc, &self.validators, self.verifier.as_ref())
            .is_err()
        {
            return false;
        }
        self.finalize(vec![block], qc);
        true
    }

    /// `blocks` (consecutive from the current height) are final, `qc` committing the last.
    fn finalize(&mut self, blocks: Vec<Block>, qc: QuorumCert) {
        let Some(last) = blocks.last() else {
            return;
        };
        // Commits are contiguous: each block extends the tip, one height up.
        let mut parent = self.tip.hash();
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(
                b.header.height.0,
                self.height.0 + i as u64,
                "commit skips a height"
            );
            assert_eq!(b.header.parent, parent, "commit does not extend the tip");
            parent = b.hash();
        }
        assert_eq!(qc.block, parent, "commit certificate for another block");
        self.tip = last.clone();
        self.tip_cert = qc.clone();
        self.height = self.tip.header.height.next();
        for b in &blocks {
            self.leaders.on_insert(&self.validators, b, b.hash());
            self.history.push_back(b.clone());
            if self.history.len() > COMMITTED_BLOCKS_KEPT {
                self.history.pop_front();
            }
        }
        let tip_id = self.tip.hash();
        self.leaders.retain(|h| *h == tip_id);
        self.effects.push(Effect::Commit { blocks, qc });
        self.rounds.clear();
        self.candidates.clear();
        self.candidate_order.clear();
        self.judged.clear();
        self.awaiting.clear();
        self.rc_highest.clear();
        self.stale_answered.clear();
        self.payload_request = None;
        self.round = Round(0);
        self.enter_round(Round(0));
    }

    fn on_round_change(&mut self, from: PublicKey, rc: RoundChangeMsg) -> Result<(), DropReason> {
        const WHAT: &str = "round change";
        if rc.height < self.height {
            return Err(DropReason::StaleHeight {
                what: WHAT,
                height: rc.height,
                current: self.height,
            });
        }
        let bytes = round_change_signing_bytes(&self.chain, rc.height, rc.round, &rc.claim());
        self.verify_one(WHAT, &rc.sender, &bytes, &rc.signature)?;
        let at = Position {
            height: rc.height,
            round: rc.round,
        };
        if rc.sender == self.me {
            self.halt_if_elsewhere(WHAT, at, None);
        }
        if rc.height > self.height {
            self.ask_sync(from);
            return Err(DropReason::FutureHeight {
                what: WHAT,
                height: rc.height,
                current: self.height,
            });
        }
        if rc.round == Round(0) {
            return Err(DropReason::InvalidCert(CertError::RoundZero));
        }
        match (&rc.prepared, &rc.block) {
            (None, None) => {}
            (None, Some(b)) => {
                return Err(DropReason::PreparedBlockMismatch {
                    expected: None,
                    got: Some(b.hash()),
                });
            }
            (Some(qc), block) => {
                if qc.round >= rc.round {
                    return Err(DropReason::InvalidCert(CertError::PreparedNotBelow {
                        prepared: qc.round,
                        round: rc.round,
                    }));
                }
                let qc = qc.clone();
                self.certs
                    .verify_prepare(self.height, &qc, &self.validators, self.verifier.as_ref())
                    .map_err(DropReason::InvalidCert)?;
                if let Some(b) = block {
                    if b.hash() != qc.block {
                        return Err(DropReason::PreparedBlockMismatch {
                            expected: Some(qc.block),
                            got: Some(b.hash()),
                        });
                    }
                    self.check_block(b, qc.round, false)?;
                }
                // A prepare certificate seen is as good as one assembled: a later round
                // change of this node shows the highest it knows of.
                if self.safety.record_prepared(self.height, &qc) {
                    self.persist_pending = true;
                }
            }
        }
        if rc.round < self.round {
            // The sender is behind, waiting for a quorum to show up in its round; this node
            // saw that round pass, so hand over what showed it: the round's proposal and its
            // round changes (each verifies alone), once per validator, round and timer.
            if self.stale_answered.len() < STALE_ANSWERS_MAX
                && self.stale_answered.insert((rc.sender, rc.round))
                && let Some(state) = self.rounds.get(&rc.round)
            {
                let proposal = state.proposal.iter().map(|p| Message::Proposal(p.clone()));
                let changes = state
                    .round_changes
                    .values()
                    .filter(|c| c.sender != rc.sender)
                    .map(|c| Message::RoundChange(Box::new(c.clone())));
                let to = rc.sender;
                let answers: Vec<Effect> = proposal
                    .chain(changes)
                    .map(|msg| Effect::Send { to, msg })
                    .collect();
                self.effects.extend(answers);
            }
            return Err(DropReason::StaleRound {
                what: WHAT,
                round: rc.round,
                current: self.round,
            });
        }
        let highest = self.rc_highest.entry(rc.sender).or_insert(rc.round);
        *highest = (*highest).max(rc.round);
        // f + 1 validators moved past this round: at least one honest one did, so follow
        // them to the lowest of their rounds rather than wait out this round's timer.
        let ahead: Vec<(&PublicKey, &Round)> = self
            .rc_highest
            .iter()
            .filter(|(_, r)| **r > self.round)
            .collect();
        let ahead_keys: Vec<&PublicKey> = ahead.iter().map(|(k, _)| *k).collect();
        let ahead_power = crate::bft::tally(&ahead_keys, &self.validators).unwrap_or(0);
        let lowest_ahead = ahead.iter().map(|(_, r)| **r).min();
        // Counted above however far ahead it is; kept only within the window.
        let kept = self.keep_round_change(rc);
        if ahead_power >= self.validators.honest_witness_power()
            && let Some(target) = lowest_ahead
            && target > self.round
        {
            self.change_round(target);
        }
        kept
    }

    fn keep_round_change(&mut self, rc: RoundChangeMsg) -> Result<(), DropReason> {
        const WHAT: &str = "round change";
        self.check_round_window(WHAT, rc.round)?;
        if let Some(state) = self.rounds.get(&rc.round)
            && state.round_changes.contains_key(&rc.sender)
        {
            return Err(DropReason::Duplicate {
                what: WHAT,
                key: rc.sender,
                round: rc.round,
            });
        }
        if let Some(b) = rc.block.clone() {
            self.add_candidate(b)?;
        }
        self.accept_round_change(rc);
        Ok(())
    }

    fn accept_round_change(&mut self, rc: RoundChangeMsg) {
        let round = rc.round;
        self.round_state(round).round_changes.insert(rc.sender, rc);
        let state = &self.rounds[&round];
        if !state.synchronized {
            let signers: Vec<&PublicKey> = state.round_changes.keys().collect();
            let power = crate::bft::tally(&signers, &self.validators).unwrap_or(0);
            if power >= self.validators.quorum_power() {
                self.round_state(round).synchronized = true;
                if round == self.round {
                    // The round starts for everyone about now: its timer starts afresh.
                    self.timer_pending = true;
                }
            }
        }
        self.try_propose_after_round_changes(round);
    }

    // ---- sync ----

    /// Asks `peer` for the committed blocks from the current height, once per position.
    fn ask_sync(&mut self, peer: PublicKey) {
        if peer == self.me {
            return;
        }
        if self.sync_asked_at != Some(self.here()) {
            self.sync_asked_at = Some(self.here());
            self.sync_asked_here.clear();
        }
        // Each peer once per position, a few peers at most: an answer lost, or never given,
        // is then made up by the next peer showing it is ahead rather than by the round
        // timer, which backs off as the rounds of a stuck height go by.
        if self.sync_asked_here.contains(&peer) || self.sync_asked_here.len() >= SYNC_REQUESTS_KEPT
        {
            return;
        }
        self.sync_asked_here.push(peer);
        if self.sync_asked.len() >= SYNC_REQUESTS_KEPT {
            self.sync_asked.pop_front();
        }
        self.sync_asked.push_back((peer, self.height));
        self.effects.push(Effect::FetchBlocks {
            from: peer,
            request: SyncRequest {
                from_height: self.height,
                blocks_max: SYNC_BLOCKS_MAX as u32,
            },
        });
    }

    fn on_sync_request(&mut self, from: PublicKey, request: SyncRequest) -> Result<(), DropReason> {
        let nothing = DropReason::NothingToServe {
            from_height: request.from_height,
        };
        let Some(first) = self.history.front() else {
            return Err(nothing);
        };
        let lowest = first.header.height;
        if request.from_height < lowest
            || request.from_height > self.tip.header.height
            || request.blocks_max == 0
        {
            return Err(nothing);
        }
        let skip = (request.from_height.0 - lowest.0) as usize;
        let count = (request.blocks_max as usize).min(SYNC_BLOCKS_MAX);
        let blocks: Vec<Block> = self
            .history
            .iter()
            .skip(skip)
            .take(count)
            .cloned()
            .collect();
        let Some(last) = blocks.last() else {
            return Err(nothing);
        };
        // The last block's commit certificate: the tip's, or the one its child carries.
        let tip_qc = if last.header.height == self.tip.header.height {
            self.tip_cert.clone()
        } else {
            let child = &self.history[skip + blocks.len()];
            match child.header.seal.parent_cert() {
                Some(qc) => qc.clone(),
                None => return Err(nothing),
            }
        };
        self.effects.push(Effect::Send {
            to: from,
            msg: Message::SyncResponse(Box::new(SyncResponse { blocks, tip_qc })),
        });
        Ok(())
    }

    fn on_sync_response(&mut self, from: PublicKey, r: SyncResponse) -> Result<(), DropReason> {
        let Some(i) = self.sync_asked.iter().position(|(peer, _)| *peer == from) else {
            return Err(DropReason::UnsolicitedSync { from });
        };
        let Some(first) = r.blocks.first() else {
            return Err(DropReason::BadSync {
                reason: "no blocks",
            });
        };
        if first.header.height != self.height {
            // Answers a request from an earlier height, or races a commit: not a fault.
            return Err(DropReason::BadSync {
                reason: "not from the current height",
            });
        }
        let forged = |reason| DropReason::ForgedSync { reason };
        let mut parent = self.tip.hash();
        for (i, b) in r.blocks.iter().enumerate() {
            if b.header.height.0 != self.height.0 + i as u64 {
                return Err(forged("heights are not consecutive"));
            }
            if b.header.parent != parent {
                return Err(forged("a block does not extend the one before it"));
            }
            let Seal::Pbft { parent_commit, .. } = &b.header.seal else {
                return Err(forged("a block is not a PBFT block"));
            };
            if i > 0 {
                if parent_commit.block != parent {
                    return Err(forged("a certificate names another block"));
                }
                self.certs
                    .verify_commit(
                        Height(b.header.height.0 - 1),
                        parent_commit,
                        &self.validators,
                        self.verifier.as_ref(),
                    )
                    .map_err(|_| forged("a block's commit certificate is invalid"))?;
            }
            parent = b.hash();
        }
        let last_height = Height(self.height.0 + r.blocks.len() as u64 - 1);
        if r.tip_qc.block != parent {
            return Err(forged("the tip certificate names another block"));
        }
        self.certs
            .verify_commit(
                last_height,
                &r.tip_qc,
                &self.validators,
                self.verifier.as_ref(),
            )
            .map_err(|_| forged("the tip certificate is invalid"))?;
        self.sync_asked.remove(i);
        self.sync_asked_at = None;
        self.finalize(r.blocks, r.tip_qc);
        Ok(())
    }
}

/// A block's turn: its PBFT seal's, 0 for block 0 (and for any other seal, which no PBFT
/// chain carries above block 0).
fn turn(block: &Block) -> Round {
    match &block.header.seal {
        Seal::Pbft { turn, .. } => *turn,
        Seal::Genesis | Seal::HotStuff { .. } | Seal::Pow { .. } => Round(0),
    }
}
