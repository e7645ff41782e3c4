//! One simulation run: validators, the virtual network and clock, the fault plan drawn from
//! the seed, and the event loop that feeds engines and executes their effects the way a
//! node's driver would (a `Persist` is durable at once, before any later send leaves; a
//! block is judged at once by the validity policy, [`validity_of`]; a validator that finds its
//! key signing elsewhere stops for good).
//!
//! Owns: the run. Never: reads the wall clock or any randomness but the seed's generator.

use std::collections::{BTreeMap, HashMap, VecDeque};

use cairn_ledger::block::{Block, QuorumCert, Seal};
use cairn_ledger::genesis::HotStuffParams;
use cairn_ledger::{Hash, Height, PublicKey, Round, TimestampMs};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::byzantine::Attacker;
use super::checker::{LivenessTracker, SafetyChecker, StallChecker};
use super::crypto;
use super::faults::{BEHAVIOURS, Behaviour};
use super::network::{EVENTS_QUEUED_MAX, Event, NetworkModel};
use super::plan;
use super::{Scenario, SimConfig, SimReport};
use crate::hotstuff::{
    COMMITTED_BLOCKS_KEPT, DropReason, Effect, Engine, EngineConfig, Input, LeaderSchedule,
    Message, RestartState, SafetyError, SafetyState, Signer, TREE_BLOCKS_MAX, ValidatorSet,
    Validity, block_round, empty_payload, genesis_qc,
};
use crate::sim::kernel::{EventQueue, Judge, Trace, seed_rng};

/// Round timers of the simulated network: a happy round takes 10–120 ms of virtual time.
pub const SIM_ROUND_TIMEOUT_MS_BASE: u64 = 200;
pub const SIM_ROUND_TIMEOUT_MS_MAX: u64 = 1600;
/// Faults stop (the network stabilises) at a time drawn from this range.
pub const STABLE_FROM_MS_MIN: u64 = 3000;
pub const STABLE_FROM_MS_MAX: u64 = 10_000;
/// Events processed per run at most; beyond it the run counts as a liveness failure.
pub const EVENTS_PER_RUN_MAX: u64 = 2_000_000;
/// Rounds whose proposed block ids are remembered for equivocating voters.
const ROUND_BLOCKS_KEPT: usize = 64;
/// When the scripted leader crash of the recovery scenario happens.
const LEADER_CRASH_AT_MS: u64 = 1500;
/// Proposed blocks remembered (a sync flooder needs the certified block its QC names).
const RECENT_BLOCKS_KEPT: usize = 64;
/// Floods per sync flooder and run, and the rounds between two of them (each flood is
/// thousands of blocks to encode and decode: the simulator's costliest behaviour).
const FLOODS_MAX: u32 = 2;
const FLOOD_ROUNDS_APART: u64 = 8;
/// Stale restarts per stale-restart validator and run, and the persisted safety states it
/// keeps as "backups" to restart from.
const STALE_RESTARTS_MAX: u32 = 3;
const BACKUPS_KEPT: usize = 8;
/// The stale-restart validator's double-sign window (the node's default).
const STALE_WINDOW_ROUNDS: u64 = 5;
/// How long a stale restart takes, at most.
const STALE_RESTART_MS_MAX: u64 = 40;

/// What a Byzantine invalid-block leader puts in its blocks' state root, and what the
/// validity policy refuses.
pub(crate) fn invalid_marker() -> Hash {
    Hash::tagged(b"cairn/sim/invalid-block", &[])
}

/// The simulated drivers' validity policy: every block is valid but one carrying the
/// invalid-block marker, which only a Byzantine leader builds.
pub fn validity_of(block: &Block) -> Validity {
    if block.header.state_root == invalid_marker() {
        Validity::Invalid {
            reason: "the state root is the invalid-block marker".to_string(),
        }
    } else {
        Validity::Valid
    }
}

struct Node {
    engine: Option<Engine>,
    /// Bumped at every crash, so timers set before it are ignored.
    incarnation: u64,
    persisted: Option<SafetyState>,
    /// The node's ledger: its last committed blocks (at most `COMMITTED_BLOCKS_KEPT`) and
    /// the QC certifying the tip (both survive crashes).
    ledger: Vec<Block>,
    tip_qc: Option<QuorumCert>,
    /// Uncommitted blocks stored through `Effect::StoreBlock` (survive crashes).
    stored: Vec<Block>,
    height: Height,
    byzantine: Option<Behaviour>,
    /// Crashed for good (the recovery scenario): not expected to make progress.
    dead: bool,
    /// Sync flooders: floods sent, and the lowest QC round of the next one.
    floods: (u32, u64),
    /// Stale-restart validators: earlier persisted safety states, oldest first, the stale
    /// restarts done, and the state the next boot uses instead of the last persisted one
    /// (`Some(None)`: none at all).
    backups: VecDeque<SafetyState>,
    stale_restarts: u32,
    stale_boot: Option<Option<SafetyState>>,
}

pub struct World {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    now_ms: u64,
    queue: EventQueue<Event>,
    net: NetworkModel,
    nodes: Vec<Node>,
    keys: Vec<PublicKey>,
    index: HashMap<PublicKey, usize>,
    signers: Vec<Box<dyn Signer + Send>>,
    leaders: LeaderSchedule,
    engine_config: EngineConfig,
    chain: Hash,
    stable_from_ms: u64,
    checker: SafetyChecker,
    liveness: LivenessTracker,
    trace: Trace,
    events: u64,
    evidence: u64,
    drops: BTreeMap<&'static str, u64>,
    round_blocks: BTreeMap<Round, Vec<Hash>>,
    recent_blocks: std::collections::VecDeque<Block>,
    stall: StallChecker,
    /// Recovery scenario: (round, time) of the leader crash.
    crashed_leader_at: Option<(Round, u64)>,
    recovery: Option<(u64, u64)>,
}

impl World {
    pub fn new(cfg: &SimConfig) -> World {
        let mut rng = seed_rng(cfg.seed);
        let n = cfg.validators;
        let keys: Vec<PublicKey> = (0..n)
            .map(|i| crypto::public_key(cfg.crypto, cfg.seed, i))
            .collect();
        // Half the fault seeds weigh validators unequally, so quorums are by power, not count
        // (the leader-crash benchmark keeps equal powers: any single crash is within f).
        let weighted = cfg.scenario == Scenario::Faults && rng.gen_bool(0.5);
        let powers: Vec<u64> = if !weighted {
            vec![1; n]
        } else {
            (0..n).map(|_| rng.gen_range(1..=3)).collect()
        };
        let members: Vec<(PublicKey, u64)> = keys.iter().copied().zip(powers.clone()).collect();
        let validators = ValidatorSet::new(&members).expect("distinct keys, powers 1..=3");
        let genesis = crate::hotstuff::synthetic_genesis(Hash::tagged(
            b"cairn/sim/genesis",
            &[&cfg.seed.to_le_bytes()],
        ));
        let chain = genesis.hash();
        let stable_from_ms = match cfg.scenario {
            Scenario::Faults if cfg.faults != super::FaultSet::none() => {
                rng.gen_range(STABLE_FROM_MS_MIN..=STABLE_FROM_MS_MAX)
            }
            _ => 0,
        };
        let rounds_max = 4 * validators.total_power() + 20;
        let engine_config = EngineConfig {
            validators: validators.clone(),
            params: HotStuffParams {
                round_timeout_ms_base: SIM_ROUND_TIMEOUT_MS_BASE,
                round_timeout_ms_max: SIM_ROUND_TIMEOUT_MS_MAX,
                leader_election: cfg.leader_election,
            },
            genesis,
            // Only the stale-restart validator observes after start (see `boot`).
            double_sign_check_rounds: 0,
            unsafe_no_double_sign_guard: false,
            unsafe_skip_voted_round_check: cfg.unsafe_skip_voted_round_check,
        };
        let net = NetworkModel::new(&mut rng, cfg.faults, n, stable_from_ms);
        let mut world = World {
            rng,
            now_ms: 0,
            queue: EventQueue::new(EVENTS_QUEUED_MAX),
            net,
            nodes: Vec::new(),
            index: keys.iter().enumerate().map(|(i, k)| (*k, i)).collect(),
            signers: (0..n)
                .map(|i| crypto::signer(cfg.crypto, cfg.seed, i))
                .collect(),
            leaders: LeaderSchedule::new(&validators),
            keys,
            engine_config,
            chain,
            stable_from_ms,
            checker: SafetyChecker::new(n),
            liveness: LivenessTracker::new(rounds_max),
            trace: Trace::default(),
            events: 0,
            evidence: 0,
            drops: BTreeMap::new(),
            round_blocks: BTreeMap::new(),
            recent_blocks: std::collections::VecDeque::new(),
            stall: StallChecker::new(stable_from_ms),
            crashed_leader_at: None,
            recovery: None,
            cfg: cfg.clone(),
        };
        let byzantine = plan::byzantine(
            &mut world.rng,
            cfg.faults,
            &validators,
            &powers,
            &BEHAVIOURS,
        );
        for i in 0..n {
            world.nodes.push(Node {
                engine: None,
                incarnation: 0,
                persisted: None,
                ledger: Vec::new(),
                tip_qc: None,
                stored: Vec::new(),
                height: Height(0),
                byzantine: byzantine.get(&i).copied(),
                dead: false,
                floods: (0, 1),
                backups: VecDeque::new(),
                stale_restarts: 0,
                stale_boot: None,
            });
        }
        world.plan_crashes_and_partitions();
        for i in 0..n {
            world.boot(i);
        }
        world
    }

    fn plan_crashes_and_partitions(&mut self) {
        if self.cfg.scenario == Scenario::LeaderCrash {
            self.queue.push(LEADER_CRASH_AT_MS, Event::CrashLeader);
        }
        let n = self.cfg.validators;
        let honest: Vec<usize> = (0..n).filter(|&i| self.honest(i)).collect();
        plan::crashes_and_partitions(
            &mut self.rng,
            self.cfg.faults,
            n,
            &honest,
            self.stable_from_ms,
            &mut self.queue,
        );
    }

    fn honest(&self, i: usize) -> bool {
        self.nodes[i].byzantine.is_none()
    }

    /// Whether the safety checker holds `i` to the rules for honest signers.
    fn signs_honestly(&self, i: usize) -> bool {
        self.nodes[i]
            .byzantine
            .is_none_or(Behaviour::checked_as_honest)
    }

    /// Starts (or restarts) node `i` from what its disk holds (a stale-restart validator
    /// restarting stale: with an older safety state, or none).
    fn boot(&mut self, i: usize) {
        if self.nodes[i].byzantine == Some(Behaviour::Silent) || self.nodes[i].dead {
            return;
        }
        let stale = self.nodes[i].byzantine == Some(Behaviour::StaleRestart);
        let node = &mut self.nodes[i];
        let persisted = match node.stale_boot.take() {
            Some(state) => state,
            None => node.persisted.clone(),
        };
        let tip = node.ledger.last().cloned().zip(node.tip_qc.clone());
        // As a node does: a store with anything in it is a restart.
        let resumes = persisted.is_some() || tip.is_some() || !node.stored.is_empty();
        let restart = resumes.then(|| RestartState {
            safety: persisted.unwrap_or_else(|| SafetyState::initial(genesis_qc(self.chain))),
            committed: tip,
            history: node.ledger[..node.ledger.len().saturating_sub(1)].to_vec(),
            blocks: node.stored.clone(),
        });
        let mut config = self.engine_config.clone();
        if stale {
            if self.cfg.unsafe_no_double_sign_guard {
                config.unsafe_no_double_sign_guard = true;
            } else {
                config.double_sign_check_rounds = STALE_WINDOW_ROUNDS;
            }
        }
        let signer = crypto::signer(self.cfg.crypto, self.cfg.seed, i);
        match Engine::new(config, signer, crypto::verifier(self.cfg.crypto), restart) {
            Ok(mut engine) => {
                if self.cfg.unsafe_accept_any_sync {
                    engine.unsafe_accept_any_sync();
                }
                let effects = engine.start();
                self.nodes[i].engine = Some(engine);
                self.apply(i, effects);
            }
            Err(e) => {
                let why = format!("node {i} could not restart: {e}");
                self.liveness.give_up(self.now_ms, &why);
            }
        }
    }

    /// Runs until a verdict, a safety violation, or a budget runs out.
    pub fn run(mut self) -> SimReport {
        let time_budget_ms =
            self.stable_from_ms.max(LEADER_CRASH_AT_MS) + 200 * SIM_ROUND_TIMEOUT_MS_MAX;
        while let Some((at_ms, event)) = self.queue.pop() {
            self.now_ms = at_ms;
            self.events += 1;
            if self.events > EVENTS_PER_RUN_MAX || at_ms > time_budget_ms {
                let why = format!("budget exhausted after {} events", self.events);
                self.liveness.give_up(at_ms, &why);
                break;
            }
            self.step(event);
            if self.now_ms >= self.stable_from_ms && self.cfg.scenario == Scenario::Faults {
                let (round, _) = self.honest_progress();
                self.liveness.stabilised(round, self.checker.best_height());
            }
            let (round, heights) = self.honest_progress();
            self.liveness.observe(self.now_ms, round, &heights);
            if let Some(why) = self.stall.observe(self.now_ms, &heights) {
                self.liveness.give_up(self.now_ms, &why);
            }
            let done = match self.liveness.verdict() {
                // The recovery scenario also waits for a block proposed after the crash.
                Some(Ok(_)) => {
                    self.cfg.scenario != Scenario::LeaderCrash || self.recovery.is_some()
                }
                Some(Err(_)) => true,
                None => false,
            };
            if done || self.checker.violation_count() > 0 {
                break;
            }
        }
        // Liveness is judged only on runs that stayed safe.
        if self.liveness.verdict().is_none() && self.checker.violation_count() == 0 {
            self.liveness
                .give_up(self.now_ms, "the event queue ran dry");
        }
        self.report()
    }

    /// The highest round and every height among live honest validators.
    /// The leader of `round` as the first running honest node sees it (with leader
    /// reputation it depends on the chain, which every honest node shares once stable).
    fn leader_seen(&self, round: Round) -> usize {
        self.nodes
            .iter()
            .enumerate()
            .filter(|&(i, n)| self.honest(i) && !n.dead)
            .find_map(|(_, n)| n.engine.as_ref())
            .and_then(|e| self.index.get(&e.leader_of(round)).copied())
            .unwrap_or_else(|| self.leaders.leader(round))
    }

    fn honest_progress(&self) -> (Round, Vec<Height>) {
        let mut round = Round(0);
        let mut heights = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if !self.honest(i) || node.dead {
                continue;
            }
            if let Some(e) = &node.engine {
                round = round.max(e.current_round());
            }
            heights.push(node.height);
        }
        (round, heights)
    }

    fn trace(&mut self, tag: u8, node: usize, data: &[u8]) {
        self.trace.record(self.now_ms, tag, node, data);
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Deliver { from, to, bytes } => {
                if self.nodes[to].engine.is_some() {
                    self.trace(0, to, &bytes);
                    let input = Input::Bytes(self.keys[from], bytes);
                    self.handle(to, input);
                }
            }
            Event::Timer {
                node,
                round,
                incarnation,
                ..
            } => {
                let current = self.nodes[node].engine.as_ref().map(Engine::current_round);
                if self.nodes[node].incarnation == incarnation && current == Some(round) {
                    self.trace(1, node, &round.0.to_le_bytes());
                    self.handle(node, Input::Timeout(round));
                }
            }
            Event::Crash { node } => self.crash(node),
            Event::Restart { node } => {
                if self.nodes[node].engine.is_none() {
                    self.trace(3, node, &[]);
                    self.boot(node);
                }
            }
            Event::Partition { groups } => {
                self.trace(4, 0, groups.as_deref().unwrap_or(&[]));
                self.net.set_partition(groups);
            }
            Event::CrashLeader => {
                // The leader of the next round: it has not proposed yet and is about to
                // collect this round's votes, so its crash costs the most.
                let (round, heights) = self.honest_progress();
                let node = self.leader_seen(Round(round.0 + 1));
                {
                    self.crash(node);
                    self.nodes[node].dead = true;
                    self.crashed_leader_at = Some((round, self.now_ms));
                    let best = heights.iter().copied().max().unwrap_or(Height(0));
                    self.liveness.stabilised(round, best);
                }
            }
        }
    }

    fn crash(&mut self, node: usize) {
        if self.nodes[node].engine.take().is_some() {
            self.trace(2, node, &[]);
            self.nodes[node].incarnation += 1;
        }
    }

    fn handle(&mut self, i: usize, input: Input) {
        let Some(engine) = self.nodes[i].engine.as_mut() else {
            return;
        };
        let effects = engine.handle(input);
        self.apply(i, effects);
    }

    fn apply(&mut self, i: usize, effects: Vec<Effect>) {
        // Verdicts go back in after the whole batch, as a node's driver queues them: what
        // they release must not overtake the batch's own effects (commits above all).
        let mut verdicts = Vec::new();
        for effect in effects {
            match effect {
                Effect::Persist(state) => {
                    if let (true, Some(v)) = (self.signs_honestly(i), &state.last_vote) {
                        self.checker.on_vote(self.now_ms, i, v.round, v.block);
                    }
                    self.maybe_crash_stale(i, &state);
                    self.nodes[i].persisted = Some(*state);
                }
                Effect::StoreBlock(block) => {
                    let stored = &mut self.nodes[i].stored;
                    if stored.len() >= TREE_BLOCKS_MAX {
                        stored.remove(0);
                    }
                    stored.push(block);
                }
                Effect::DiscardBlocks(ids) => {
                    self.nodes[i].stored.retain(|b| !ids.contains(&b.hash()));
                }
                Effect::Validate { block } => {
                    let engine = self.nodes[i].engine.as_ref();
                    if let Some(validity) = engine.and_then(|e| e.block(&block)).map(validity_of) {
                        verdicts.push(Input::Validity { block, validity });
                    }
                }
                Effect::Send { to, msg } => {
                    if let Some(&j) = self.index.get(&to) {
                        self.send(i, &[j], msg);
                    }
                }
                Effect::Broadcast(msg) => {
                    let all: Vec<usize> = (0..self.nodes.len()).filter(|&j| j != i).collect();
                    self.send(i, &all, msg);
                }
                Effect::ScheduleTimeout { round, after_ms } => {
                    let incarnation = self.nodes[i].incarnation;
                    let node = i;
                    self.queue.push(
                        self.now_ms + after_ms,
                        Event::Timer {
                            node,
                            height: Height(0),
                            round,
                            incarnation,
                        },
                    );
                }
                request @ Effect::RequestPayload { .. } => {
                    let now = TimestampMs(self.now_ms);
                    if let Some(mut block) = empty_payload(request, self.keys[i].address(), now) {
                        if self.nodes[i].byzantine == Some(Behaviour::InvalidBlocks) {
                            block.header.state_root = invalid_marker();
                            self.checker.on_invalid_proposed(block.hash());
                        }
                        self.handle(i, Input::Payload(block));
                    }
                }
                Effect::Commit { blocks, qc } => self.on_commit(i, blocks, qc),
                Effect::FetchBlocks { from, request } => {
                    if let Some(&j) = self.index.get(&from) {
                        self.send(i, &[j], Message::SyncRequest(request));
                    }
                }
                Effect::Evidence(e) => {
                    self.evidence += 1;
                    if let Some(&accused) = self.index.get(&e.offender())
                        && self.signs_honestly(accused)
                    {
                        self.checker
                            .on_evidence_against_honest(self.now_ms, accused);
                    }
                }
                Effect::Dropped {
                    reason: DropReason::Safety(SafetyError::SignedElsewhere { .. }),
                    ..
                } => {
                    // As a node's driver does: stop, so an operator looks.
                    *self.drops.entry("signed_elsewhere").or_default() += 1;
                    self.crash(i);
                    self.nodes[i].dead = true;
                    return;
                }
                Effect::Dropped { reason, .. } => {
                    *self.drops.entry(reason.label()).or_default() += 1;
                }
            }
        }
        for verdict in verdicts {
            self.handle(i, verdict);
        }
    }

    /// A stale-restart validator that just signed a proposal (`state` raises its last
    /// proposed round) crashes now, before the network stabilises and a few times a run,
    /// and comes back within `STALE_RESTART_MS_MAX` with an older safety state, or none.
    /// Otherwise its persisted states are kept as the backups to restore.
    fn maybe_crash_stale(&mut self, i: usize, state: &SafetyState) {
        let node = &self.nodes[i];
        if node.byzantine != Some(Behaviour::StaleRestart) {
            return;
        }
        let proposed = node
            .persisted
            .as_ref()
            .is_none_or(|p| state.last_proposed_round > p.last_proposed_round);
        let crash = proposed
            && node.stale_restarts < STALE_RESTARTS_MAX
            && self.now_ms < self.stable_from_ms
            && node.engine.is_some();
        if !crash {
            let backups = &mut self.nodes[i].backups;
            if backups.len() >= BACKUPS_KEPT {
                backups.pop_front();
            }
            backups.push_back(state.clone());
            return;
        }
        let backups = &self.nodes[i].backups;
        let restore = match self.rng.gen_range(0..=backups.len()) {
            0 => None,
            k => backups.get(k - 1).cloned(),
        };
        let back = self.now_ms + self.rng.gen_range(1..=STALE_RESTART_MS_MAX);
        let node = &mut self.nodes[i];
        node.stale_restarts += 1;
        node.stale_boot = Some(restore);
        self.queue.push(self.now_ms, Event::Crash { node: i });
        self.queue.push(back, Event::Restart { node: i });
    }

    fn on_commit(&mut self, i: usize, blocks: Vec<Block>, qc: QuorumCert) {
        let Some(last) = blocks.last().cloned() else {
            return;
        };
        self.trace(5, i, &last.hash().0);
        if self.signs_honestly(i) {
            self.checker.on_commit(self.now_ms, i, &blocks);
            if let Some((crash_round, crash_ms)) = self.crashed_leader_at
                && self.recovery.is_none()
                && blocks
                    .iter()
                    .any(|b| block_round(b).is_some_and(|r| r > crash_round))
            {
                let (round, _) = self.honest_progress();
                self.recovery = Some((round.0 - crash_round.0, self.now_ms - crash_ms));
            }
        }
        let node = &mut self.nodes[i];
        node.height = last.header.height;
        node.stored.retain(|b| b.header.height > last.header.height);
        node.ledger.extend(blocks);
        let excess = node.ledger.len().saturating_sub(COMMITTED_BLOCKS_KEPT);
        node.ledger.drain(..excess);
        node.tip_qc = Some(qc);
    }

    /// Sends `msg` from `i` to `recipients` through the network, after a Byzantine sender's
    /// behaviour had its way with it.
    fn send(&mut self, i: usize, recipients: &[usize], msg: Message) {
        if let Message::Proposal(p) = &msg
            && let Some((round, _)) = p.round_and_justify()
        {
            let ids = self.round_blocks.entry(round).or_default();
            if ids.len() < 4 {
                ids.push(p.block.hash());
            }
            while self.round_blocks.len() > ROUND_BLOCKS_KEPT {
                self.round_blocks.pop_first();
            }
            if !self
                .recent_blocks
                .iter()
                .any(|b| b.hash() == p.block.hash())
            {
                if self.recent_blocks.len() >= RECENT_BLOCKS_KEPT {
                    self.recent_blocks.pop_front();
                }
                self.recent_blocks.push_back(p.block.clone());
            }
        }
        let outgoing = match self.nodes[i].byzantine {
            None => vec![(recipients.to_vec(), msg.encode())],
            Some(behaviour) => {
                let flood = self.flood_target(i, behaviour);
                let everyone: Vec<usize> = (0..self.nodes.len()).filter(|&j| j != i).collect();
                let round = match &msg {
                    Message::Vote(v) => v.round,
                    _ => Round(0),
                };
                let blocks = self.round_blocks.get(&round).cloned().unwrap_or_default();
                let leaders = &self.leaders;
                let leader_of = |r: Round| leaders.leader(r);
                let attacker = Attacker {
                    behaviour,
                    signer: self.signers[i].as_ref(),
                    chain: self.chain,
                    round_blocks: &blocks,
                    leader_of: &leader_of,
                    flood: flood.as_ref().map(|(b, qc)| (b, qc)),
                    everyone: &everyone,
                };
                attacker
                    .mangle(&mut self.rng, recipients, msg)
                    .into_iter()
                    .map(|(to, m)| (vec![to], m))
                    .collect()
            }
        };
        for (to, bytes) in outgoing {
            for j in to {
                if j == i {
                    continue;
                }
                for at in self.net.fates(&mut self.rng, self.now_ms, i, j) {
                    let event = Event::Deliver {
                        from: i,
                        to: j,
                        bytes: bytes.clone(),
                    };
                    if !self.queue.push(at, event) {
                        self.liveness.give_up(self.now_ms, "event queue full");
                    }
                }
            }
        }
    }

    /// For a sync flooder, when it is time for its next flood: the newest certified block
    /// seen on the wire (the parent of the newest proposal) and the QC for it, which the
    /// proposal carries.
    fn flood_target(&mut self, i: usize, behaviour: Behaviour) -> Option<(Block, QuorumCert)> {
        let (done, next_round) = self.nodes[i].floods;
        if behaviour != Behaviour::SyncFlood || done >= FLOODS_MAX {
            return None;
        }
        let newest = self.recent_blocks.back()?;
        let Seal::HotStuff { justify, .. } = &newest.header.seal else {
            return None;
        };
        if justify.round.0 < next_round {
            return None;
        }
        let qc = justify.clone();
        let block = self
            .recent_blocks
            .iter()
            .find(|b| b.hash() == qc.block)?
            .clone();
        self.nodes[i].floods = (done + 1, qc.round.0 + FLOOD_ROUNDS_APART);
        Some((block, qc))
    }

    fn report(self) -> SimReport {
        let (max_round, _) = self.honest_progress();
        let (liveness_failure, recovery_rounds) = match self.liveness.verdict() {
            Some(Ok(rounds)) => (None, Some(*rounds)),
            Some(Err(why)) => (Some(why.clone()), None),
            None => (None, None),
        };
        let byzantine = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.byzantine.map(|b| (i, b)))
            .collect();
        SimReport {
            seed: self.cfg.seed,
            validators: self.cfg.validators,
            faults: self.cfg.faults,
            safety_violations: self.checker.violations().to_vec(),
            violation_count: self.checker.violation_count(),
            liveness_failure,
            recovery_rounds: match self.cfg.scenario {
                Scenario::LeaderCrash => self.recovery.map(|(r, _)| r),
                Scenario::Faults => recovery_rounds,
            },
            recovery_ms: self.recovery.map(|(_, ms)| ms),
            trace_hash: self.trace.hash(),
            committed_height: self.checker.best_height(),
            max_round,
            events: self.events,
            virtual_ms: self.now_ms,
            evidence: self.evidence,
            drops: self.drops,
            byzantine,
            repro: self.cfg.repro(),
        }
    }
}
