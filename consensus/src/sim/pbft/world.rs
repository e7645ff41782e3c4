//! One PBFT simulation run: validators, the virtual network and clock, the fault plan drawn
//! from the seed, and the event loop that feeds engines and executes their effects the way
//! a node's driver would (a `Persist` is durable at once, before any later send leaves; a
//! block is judged at once by the HotStuff simulator's validity policy; a validator that
//! finds its key signing elsewhere stops for good).
//!
//! Owns: the run. Never: reads the wall clock or any randomness but the seed's generator.

use std::collections::{BTreeMap, HashMap, VecDeque};

use cairn_ledger::block::{Block, QuorumCert};
use cairn_ledger::{Hash, Height, PublicKey, Round, TimestampMs};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::PbftSimConfig;
use super::byzantine::{Attacker, PBFT_BEHAVIOURS};
use crate::bft::{Signer, ValidatorSet};
use crate::pbft::{
    CANDIDATES_MAX, COMMITTED_BLOCKS_KEPT, DropReason, Effect, Engine, EngineConfig, Input,
    Message, RestartState, SafetyError, SafetyState, empty_payload,
};
use crate::sim::hotstuff::checker::{LivenessTracker, SafetyChecker, StallChecker};
use crate::sim::hotstuff::crypto;
use crate::sim::hotstuff::network::{EVENTS_QUEUED_MAX, Event, NetworkModel};
use crate::sim::hotstuff::plan;
use crate::sim::hotstuff::world::{
    EVENTS_PER_RUN_MAX, SIM_ROUND_TIMEOUT_MS_BASE, SIM_ROUND_TIMEOUT_MS_MAX, STABLE_FROM_MS_MAX,
    STABLE_FROM_MS_MIN, invalid_marker, validity_of,
};
use crate::sim::hotstuff::{Behaviour, SimReport};
use crate::sim::kernel::{EventQueue, Judge, Trace, seed_rng};

/// Stored uncommitted blocks kept per node (a node keeps the current height's candidates).
const STORED_BLOCKS_MAX: usize = 4 * CANDIDATES_MAX;
/// Round changes a stale-round-change sender keeps to replay.
const OLD_ROUND_CHANGES_KEPT: usize = 16;

struct Node {
    engine: Option<Engine>,
    /// Bumped at every crash, so timers set before it are ignored.
    incarnation: u64,
    persisted: Option<SafetyState>,
    /// The last committed blocks (at most `COMMITTED_BLOCKS_KEPT`) and the certificate of
    /// the tip (both survive crashes).
    ledger: Vec<Block>,
    tip_qc: Option<QuorumCert>,
    stored: Vec<Block>,
    height: Height,
    /// Positions (height, round) entered: the simulator's measure of rounds spent, since
    /// PBFT's round numbers restart at every height.
    positions: u64,
    byzantine: Option<Behaviour>,
    dead: bool,
    /// A stale-round-change sender's own earlier round changes.
    old_round_changes: VecDeque<Message>,
}

pub struct World {
    cfg: PbftSimConfig,
    rng: ChaCha8Rng,
    now_ms: u64,
    queue: EventQueue<Event>,
    net: NetworkModel,
    nodes: Vec<Node>,
    keys: Vec<PublicKey>,
    index: HashMap<PublicKey, usize>,
    signers: Vec<Box<dyn Signer + Send>>,
    validators: ValidatorSet,
    genesis: Block,
    chain: Hash,
    stable_from_ms: u64,
    checker: SafetyChecker,
    liveness: LivenessTracker,
    stall: StallChecker,
    trace: Trace,
    events: u64,
    evidence: u64,
    drops: BTreeMap<&'static str, u64>,
    /// Blocks proposed per position, as seen on the wire (for equivocating voters).
    position_blocks: BTreeMap<(Height, Round), Vec<Hash>>,
}

impl World {
    pub fn new(cfg: &PbftSimConfig) -> World {
        let mut rng = seed_rng(cfg.seed);
        let n = cfg.validators;
        let keys: Vec<PublicKey> = (0..n)
            .map(|i| crypto::public_key(cfg.crypto, cfg.seed, i))
            .collect();
        // Half the seeds weigh validators unequally, so quorums are by power, not count.
        let powers: Vec<u64> = if rng.gen_bool(0.5) {
            vec![1; n]
        } else {
            (0..n).map(|_| rng.gen_range(1..=3)).collect()
        };
        let members: Vec<(PublicKey, u64)> = keys.iter().copied().zip(powers.clone()).collect();
        let validators = ValidatorSet::new(&members).expect("distinct keys, powers 1..=3");
        let genesis = crate::hotstuff::synthetic_genesis(Hash::tagged(
            b"cairn/sim/pbft-genesis",
            &[&cfg.seed.to_le_bytes()],
        ));
        let stable_from_ms = if cfg.faults == crate::sim::hotstuff::FaultSet::none() {
            0
        } else {
            rng.gen_range(STABLE_FROM_MS_MIN..=STABLE_FROM_MS_MAX)
        };
        // Positions a node may enter after stabilisation before liveness fails: a few
        // heights' worth of rounds for each proposer that may be down.
        let positions_max = 4 * validators.total_power() + 20;
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
            keys,
            chain: genesis.hash(),
            genesis,
            validators: validators.clone(),
            stable_from_ms,
            checker: SafetyChecker::new(n),
            liveness: LivenessTracker::new(positions_max),
            stall: StallChecker::new(stable_from_ms),
            trace: Trace::default(),
            events: 0,
            evidence: 0,
            drops: BTreeMap::new(),
            position_blocks: BTreeMap::new(),
            cfg: cfg.clone(),
        };
        let byzantine = plan::byzantine(
            &mut world.rng,
            cfg.faults,
            &validators,
            &powers,
            &PBFT_BEHAVIOURS,
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
                positions: 0,
                byzantine: byzantine.get(&i).copied(),
                dead: false,
                old_round_changes: VecDeque::new(),
            });
        }
        world.plan_crashes_and_partitions();
        for i in 0..n {
            world.boot(i);
        }
        world
    }

    fn plan_crashes_and_partitions(&mut self) {
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

    /// Starts (or restarts) node `i` from what its disk holds.
    fn boot(&mut self, i: usize) {
        if self.nodes[i].byzantine == Some(Behaviour::Silent) || self.nodes[i].dead {
            return;
        }
        let node = &self.nodes[i];
        let tip = node.ledger.last().cloned().zip(node.tip_qc.clone());
        let resumes = node.persisted.is_some() || tip.is_some() || !node.stored.is_empty();
        let restart = resumes.then(|| RestartState {
            safety: node.persisted.clone().unwrap_or_else(SafetyState::initial),
            committed: tip,
            history: node.ledger[..node.ledger.len().saturating_sub(1)].to_vec(),
            blocks: node.stored.clone(),
        });
        let config = EngineConfig {
            validators: self.validators.clone(),
            round_timeout_ms_base: SIM_ROUND_TIMEOUT_MS_BASE,
            round_timeout_ms_max: SIM_ROUND_TIMEOUT_MS_MAX,
            genesis: self.genesis.clone(),
            double_sign_check_rounds: 0,
            leader_election: self.cfg.leader_election,
            unsafe_skip_justification: self.cfg.unsafe_skip_justification,
        };
        let signer = crypto::signer(self.cfg.crypto, self.cfg.seed, i);
        match Engine::new(config, signer, crypto::verifier(self.cfg.crypto), restart) {
            Ok(mut engine) => {
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
        let time_budget_ms = self.stable_from_ms + 200 * SIM_ROUND_TIMEOUT_MS_MAX;
        while let Some((at_ms, event)) = self.queue.pop() {
            self.now_ms = at_ms;
            self.events += 1;
            if self.events > EVENTS_PER_RUN_MAX || at_ms > time_budget_ms {
                let why = format!("budget exhausted after {} events", self.events);
                self.liveness.give_up(at_ms, &why);
                break;
            }
            self.step(event);
            let (positions, heights) = self.honest_progress();
            if self.now_ms >= self.stable_from_ms {
                self.liveness
                    .stabilised(Round(positions), self.checker.best_height());
            }
            self.liveness
                .observe(self.now_ms, Round(positions), &heights);
            if let Some(why) = self.stall.observe(self.now_ms, &heights) {
                self.liveness.give_up(self.now_ms, &why);
            }
            if self.liveness.verdict().is_some() || self.checker.violation_count() > 0 {
                break;
            }
        }
        if self.liveness.verdict().is_none() && self.checker.violation_count() == 0 {
            self.liveness
                .give_up(self.now_ms, "the event queue ran dry");
        }
        self.report()
    }

    /// The most positions any live honest validator entered, and every one's height.
    fn honest_progress(&self) -> (u64, Vec<Height>) {
        let mut positions = 0;
        let mut heights = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if !self.honest(i) || node.dead {
                continue;
            }
            positions = positions.max(node.positions);
            heights.push(node.height);
        }
        (positions, heights)
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
                height,
                round,
                incarnation,
            } => {
                let current = self.nodes[node]
                    .engine
                    .as_ref()
                    .map(|e| (e.current_height(), e.current_round()));
                if self.nodes[node].incarnation == incarnation && current == Some((height, round)) {
                    let mut data = height.0.to_le_bytes().to_vec();
                    data.extend_from_slice(&round.0.to_le_bytes());
                    self.trace(1, node, &data);
                    self.handle(node, Input::Timeout { height, round });
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
            // The leader-crash scenario is HotStuff's.
            Event::CrashLeader => {}
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
        // Verdicts and payloads go back in after the whole batch, as a node's driver queues
        // them: what they release must not overtake the batch's own effects.
        let mut later = Vec::new();
        for effect in effects {
            match effect {
                Effect::Persist(state) => {
                    if self.honest(i) {
                        for (commit, vote) in
                            [(false, &state.last_prepare), (true, &state.last_commit)]
                        {
                            if let Some(v) = vote {
                                self.checker.on_position_vote(
                                    self.now_ms,
                                    i,
                                    commit,
                                    v.height,
                                    v.round,
                                    v.block,
                                );
                            }
                        }
                    }
                    self.nodes[i].persisted = Some(*state);
                }
                Effect::StoreBlock(block) => {
                    let stored = &mut self.nodes[i].stored;
                    if stored.len() >= STORED_BLOCKS_MAX {
                        stored.remove(0);
                    }
                    stored.push(block);
                }
                Effect::DiscardBlocks(ids) => {
                    self.nodes[i].stored.retain(|b| !ids.contains(&b.hash()));
                }
                Effect::Validate { block } => {
                    let found = self.nodes[i]
                        .stored
                        .iter()
                        .rev()
                        .find(|b| b.hash() == block);
                    if let Some(validity) = found.map(validity_of) {
                        later.push(Input::Validity { block, validity });
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
                Effect::ScheduleTimeout {
                    height,
                    round,
                    after_ms,
                } => {
                    self.nodes[i].positions += 1;
                    let incarnation = self.nodes[i].incarnation;
                    self.queue.push(
                        self.now_ms + after_ms,
                        Event::Timer {
                            node: i,
                            height,
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
                        later.push(Input::Payload(block));
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
                        && self.honest(accused)
                    {
                        self.checker
                            .on_evidence_against_honest(self.now_ms, accused);
                    }
                }
                Effect::Dropped {
                    reason: DropReason::Safety(SafetyError::SignedElsewhere { .. }),
                    ..
                } => {
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
        for input in later {
            self.handle(i, input);
        }
    }

    fn on_commit(&mut self, i: usize, blocks: Vec<Block>, qc: QuorumCert) {
        let Some(last) = blocks.last().cloned() else {
            return;
        };
        self.trace(5, i, &last.hash().0);
        if self.honest(i) {
            self.checker.on_commit(self.now_ms, i, &blocks);
        }
        let node = &mut self.nodes[i];
        node.height = last.header.height;
        node.stored.retain(|b| b.header.height > last.header.height);
        node.ledger.extend(blocks);
        let excess = node.ledger.len().saturating_sub(COMMITTED_BLOCKS_KEPT);
        node.ledger.drain(..excess);
        node.tip_qc = Some(qc);
        let floor = last.header.height;
        self.position_blocks.retain(|(h, _), _| *h > floor);
    }

    /// Sends `msg` from `i` to `recipients` through the network, after a Byzantine sender's
    /// behaviour had its way with it.
    fn send(&mut self, i: usize, recipients: &[usize], msg: Message) {
        if let Message::Proposal(p) = &msg {
            let ids = self.position_blocks.entry((p.height, p.round)).or_default();
            let id = p.block.hash();
            if ids.len() < 4 && !ids.contains(&id) {
                ids.push(id);
            }
        }
        let outgoing = match self.nodes[i].byzantine {
            None => vec![(recipients.to_vec(), msg.encode())],
            Some(behaviour) => {
                let position = match &msg {
                    Message::Prepare(v) | Message::Commit(v) => Some((v.height, v.round)),
                    _ => None,
                };
                let blocks = position
                    .and_then(|p| self.position_blocks.get(&p).cloned())
                    .unwrap_or_default();
                if behaviour == Behaviour::StaleRoundChanges
                    && let Message::RoundChange(_) = &msg
                {
                    let old = &mut self.nodes[i].old_round_changes;
                    if old.len() >= OLD_ROUND_CHANGES_KEPT {
                        old.pop_front();
                    }
                    old.push_back(msg.clone());
                }
                let old: Vec<Message> = self.nodes[i].old_round_changes.iter().cloned().collect();
                let attacker = Attacker {
                    behaviour,
                    signer: self.signers[i].as_ref(),
                    chain: self.chain,
                    position_blocks: &blocks,
                    old_round_changes: &old,
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

    fn report(self) -> SimReport {
        let (positions, _) = self.honest_progress();
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
            recovery_rounds,
            recovery_ms: None,
            trace_hash: self.trace.hash(),
            committed_height: self.checker.best_height(),
            max_round: Round(positions),
            events: self.events,
            virtual_ms: self.now_ms,
            evidence: self.evidence,
            drops: self.drops,
            byzantine,
            repro: self.cfg.repro(),
        }
    }
}
