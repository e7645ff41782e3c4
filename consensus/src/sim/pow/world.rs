//! One proof-of-work simulation run: the plan drawn from the seed (hash-power shares, clock
//! skews, partitions), the miners' Poisson clocks, the virtual network, and the event loop
//! that feeds the nodes and executes their effects.
//!
//! A run lasts until every node follows the most-work tip after the last partition healed
//! and the network stayed whole for [`QUIET_MS`], or until [`CONVERGENCE_MS_MAX`] after that
//! (a liveness failure), or until a checker finds a violation. Miners keep mining throughout:
//! without new blocks two equally heavy tips, each first seen by half the nodes, would never
//! be told apart (exactly as in Bitcoin, where the next block settles a tie).
//!
//! Owns: the run. Never: reads the wall clock or any randomness but the seed's generator.

use std::collections::BTreeMap;

use cairn_ledger::block::{BlockHeader, Seal};
use cairn_ledger::genesis::PowParams;
use cairn_ledger::{Address, Amount, Hash, Height, ProtocolVersion, TimestampMs};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::checker::{Checker, longest_branch};
use super::mining::{self, HashPower};
use super::network::{EVENTS_QUEUED_MAX, Network};
use super::node::{Effect, ForkChoice, Input, Ledger, Message, SIM_EPOCH_MS, SimNode};
use super::{PartitionRecord, PowSimConfig, PowSimReport};
use crate::pow::{CompactTarget, PowRules};
use crate::sim::kernel::{EventQueue, Judge, Trace, seed_rng};

/// The genesis of every simulated network. The limit is regtest's (about two hashes per
/// block), so sealing a block for real takes a few tries; a block a second against network
/// delays of 5–150 ms gives a natural fork every few dozen blocks; a retarget every 10 blocks
/// and a halving every 50 make both happen many times in a run.
pub const SIM_POW_PARAMS: PowParams = PowParams {
    initial_bits: 0x207f_ffff,
    target_block_time_ms: 1000,
    retarget_interval_blocks: 10,
    block_reward: Amount(50_0000_0000),
    halving_interval_blocks: 50,
    coinbase_maturity_blocks: 10,
    // A little smaller than the widest gap between two nodes' clocks (2 × CLOCK_SKEW_MS_MAX),
    // so that between the two nodes whose clocks are furthest apart some blocks arrive "from
    // the future" and the held-back path runs, for at most 200 ms less the latency. A wider
    // gap would let a node whose clock lags hold back every block of one whose clock leads,
    // cutting them apart like a partition nobody scheduled.
    future_block_time_ms_max: 1800,
};

/// Each node's clock is off the world's by up to this much, either way.
pub const CLOCK_SKEW_MS_MAX: i64 = 1000;

/// Random hash-power weights per miner (unless `--shares` gives them): up to ten to one.
pub const SHARE_WEIGHT_RANDOM_MIN: u64 = 1;
pub const SHARE_WEIGHT_RANDOM_MAX: u64 = 10;

/// How much faster than the target block time the whole network mines at the genesis limit,
/// in thousandths, drawn per seed: at 3,000 the first window comes three times too fast and
/// the retarget has to raise the difficulty (never by more than ×4 per window).
pub const SPEED_PER_MILLE_MIN: u64 = 1000;
pub const SPEED_PER_MILLE_MAX: u64 = 3000;

/// Partitions per run (with two miners or more), one after the other.
pub const PARTITIONS_MAX: usize = 3;
/// When the first partition starts: after some blocks exist to fork from.
pub const FIRST_PARTITION_MS_MIN: u64 = 2000;
pub const FIRST_PARTITION_MS_MAX: u64 = 15_000;
/// How long a partition lasts: from a couple of blocks to a few retarget windows a side.
pub const PARTITION_MS_MIN: u64 = 2000;
pub const PARTITION_MS_MAX: u64 = 40_000;
/// The whole network between two partitions: many round trips, so each partition's
/// branches are settled before the next one starts and each reorg is charged to one partition.
pub const PARTITION_GAP_MS_MIN: u64 = 5000;
pub const PARTITION_GAP_MS_MAX: u64 = 15_000;

/// After the last heal, the network stays whole this long before convergence is judged.
pub const QUIET_MS: u64 = 5000;
/// After the quiet period, all nodes must follow the most-work tip within this long. Two
/// equally heavy tips wait for the next block to be told apart, and a difficulty that a
/// partition's short windows pushed up can make that block slow: the slowest of 100,000
/// seeds converged 17.7 s after its last heal (12.7 s after the quiet period).
pub const CONVERGENCE_MS_MAX: u64 = 60_000;

/// Events processed per run at most; beyond it the run counts as a liveness failure. A run
/// takes a few thousand.
pub const EVENTS_PER_RUN_MAX: u64 = 1_000_000;

/// What one seed does, drawn before the run starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub weights: Vec<u64>,
    pub speed_per_mille: u64,
    pub clock_skews_ms: Vec<i64>,
    /// (start ms, duration ms, group of each node), in time order, not overlapping.
    pub partitions: Vec<(u64, u64, Vec<u8>)>,
}

impl Plan {
    pub fn draw(rng: &mut ChaCha8Rng, cfg: &PowSimConfig) -> Plan {
        let n = cfg.miners;
        let weights = cfg.shares.clone().unwrap_or_else(|| {
            (0..n)
                .map(|_| rng.gen_range(SHARE_WEIGHT_RANDOM_MIN..=SHARE_WEIGHT_RANDOM_MAX))
                .collect()
        });
        let speed_per_mille = rng.gen_range(SPEED_PER_MILLE_MIN..=SPEED_PER_MILLE_MAX);
        let clock_skews_ms = (0..n)
            .map(|_| rng.gen_range(-CLOCK_SKEW_MS_MAX..=CLOCK_SKEW_MS_MAX))
            .collect();
        let mut partitions = Vec::new();
        if n >= 2 {
            let mut at = rng.gen_range(FIRST_PARTITION_MS_MIN..=FIRST_PARTITION_MS_MAX);
            for _ in 0..rng.gen_range(1..=PARTITIONS_MAX) {
                let duration = rng.gen_range(PARTITION_MS_MIN..=PARTITION_MS_MAX);
                // Two non-empty groups.
                let mut groups: Vec<u8> = (0..n).map(|_| rng.gen_range(0..2)).collect();
                groups[0] = 0;
                groups[n - 1] = 1;
                groups.shuffle(rng);
                partitions.push((at, duration, groups));
                at += duration + rng.gen_range(PARTITION_GAP_MS_MIN..=PARTITION_GAP_MS_MAX);
            }
        }
        Plan {
            weights,
            speed_per_mille,
            clock_skews_ms,
            partitions,
        }
    }
}

#[derive(Clone, Debug)]
enum Event {
    Deliver {
        from: usize,
        to: usize,
        msg: Message,
    },
    /// `miner` finds a block, unless its tip changed since (`epoch` is then stale).
    Mine {
        miner: usize,
        epoch: u64,
    },
    Retry {
        node: usize,
        from: usize,
        headers: Vec<BlockHeader>,
    },
    PartitionStart {
        index: usize,
    },
    Heal {
        index: usize,
    },
}

pub struct World {
    cfg: PowSimConfig,
    plan: Plan,
    rules: PowRules,
    rng: ChaCha8Rng,
    now_ms: u64,
    queue: EventQueue<Event>,
    net: Network,
    pub(super) nodes: Vec<SimNode>,
    power: HashPower,
    /// Per miner: bumped whenever its tip changes, which makes its pending find stale.
    epochs: Vec<u64>,
    pub(super) partitions: Vec<PartitionRecord>,
    active_partition: Option<usize>,
    quiet_from_ms: u64,
    deadline_ms: u64,
    pub(super) checker: Checker,
    liveness_failure: Option<String>,
    converged_ms: Option<u64>,
    trace: Trace,
    events: u64,
    blocks_mined: u64,
    nonce_tries: u64,
    held_back: u64,
    drops: BTreeMap<&'static str, u64>,
}

impl World {
    pub fn new(cfg: &PowSimConfig) -> World {
        let mut rng = seed_rng(cfg.seed);
        let plan = Plan::draw(&mut rng, cfg);
        World::with_plan(cfg, plan, rng)
    }

    pub fn with_plan(cfg: &PowSimConfig, plan: Plan, rng: ChaCha8Rng) -> World {
        let n = cfg.miners;
        // The parameters are constants that pass `PowRules::new`; a test pins that.
        let rules = PowRules::new(&SIM_POW_PARAMS).expect("the simulator's PoW parameters");
        let genesis = BlockHeader {
            height: Height(0),
            parent: Hash::tagged(b"cairn/sim/pow/genesis", &[&cfg.seed.to_le_bytes()]),
            timestamp: TimestampMs(SIM_EPOCH_MS),
            tx_root: Hash::ZERO,
            state_root: Ledger::default().root(),
            proposer: Address([0; 20]),
            protocol_version: ProtocolVersion(1),
            seal: Seal::Genesis,
        };
        let nodes = (0..n)
            .map(|i| {
                let fork_choice = if cfg.unsafe_longest_chain_node && i == 0 {
                    ForkChoice::LongestByHeight
                } else {
                    ForkChoice::MostWork
                };
                let address = Hash::tagged(b"cairn/sim/pow/miner", &[&(i as u64).to_le_bytes()]);
                let mut a = [0u8; 20];
                a.copy_from_slice(&address.0[..20]);
                SimNode::new(
                    i,
                    n,
                    rules,
                    &genesis,
                    fork_choice,
                    plan.clock_skews_ms[i],
                    Address(a),
                )
                .expect("genesis bits are the limit, which decodes")
            })
            .collect();
        let power = HashPower {
            speed_per_mille: plan.speed_per_mille,
            weights: plan.weights.clone(),
            limit_work: rules.retarget.pow_limit().to_work(),
            target_block_time_ms: rules.retarget.target_block_time_ms(),
        };
        let last_heal_ms = plan.partitions.last().map_or(0, |(at, d, _)| at + d);
        let quiet_from_ms = last_heal_ms + QUIET_MS;
        let split_windows = plan
            .partitions
            .iter()
            .map(|(at, duration, _)| (*at, at + duration))
            .collect();
        let mut world = World {
            checker: Checker::new(rules, &genesis, n, split_windows),
            partitions: Vec::new(),
            active_partition: None,
            quiet_from_ms,
            deadline_ms: quiet_from_ms + CONVERGENCE_MS_MAX,
            cfg: cfg.clone(),
            rules,
            rng,
            now_ms: 0,
            queue: EventQueue::new(EVENTS_QUEUED_MAX),
            net: Network::new(n),
            nodes,
            power,
            epochs: vec![0; n],
            liveness_failure: None,
            converged_ms: None,
            trace: Trace::default(),
            events: 0,
            blocks_mined: 0,
            nonce_tries: 0,
            held_back: 0,
            drops: BTreeMap::new(),
            plan,
        };
        for (index, (at, duration, groups)) in world.plan.partitions.clone().into_iter().enumerate()
        {
            world.partitions.push(PartitionRecord {
                start_ms: at,
                heal_ms: at + duration,
                groups,
                mined: [0, 0],
                tips_at_heal: Vec::new(),
            });
            world.push(at, Event::PartitionStart { index });
            world.push(at + duration, Event::Heal { index });
        }
        for miner in 0..n {
            world.schedule_mining(miner);
        }
        world
    }

    fn push(&mut self, at_ms: u64, event: Event) {
        if !self.queue.push(at_ms, event) {
            self.give_up("the event queue is full");
        }
    }

    fn give_up(&mut self, why: &str) {
        if self.liveness_failure.is_none() {
            self.liveness_failure = Some(format!("t={}ms: {why}", self.now_ms));
        }
    }

    /// Draws when `miner` finds its next block on its current tip, and makes any earlier draw
    /// stale (mining is memoryless: starting over on a new tip loses nothing but changes the
    /// target, which changes the rate).
    fn schedule_mining(&mut self, miner: usize) {
        self.epochs[miner] += 1;
        let work = match self.nodes[miner].next_bits() {
            Ok(bits) => match bits.to_target() {
                Ok(t) => t.to_work(),
                Err(e) => {
                    self.checker
                        .violation(format!("miner {miner}: its next bits are unusable: {e}"));
                    return;
                }
            },
            Err(e) => {
                self.checker
                    .violation(format!("miner {miner}: no next bits on its tip: {e}"));
                return;
            }
        };
        if let Some(delay) = self.power.draw_delay_ms(&mut self.rng, miner, work) {
            let epoch = self.epochs[miner];
            self.push(self.now_ms + delay, Event::Mine { miner, epoch });
        }
    }

    /// Runs until convergence, a violation, or the deadline, then judges.
    pub fn run(mut self) -> PowSimReport {
        self.run_loop();
        self.finish();
        self.report()
    }

    pub(super) fn run_loop(&mut self) {
        while let Some((at_ms, event)) = self.queue.pop() {
            if at_ms > self.deadline_ms {
                self.now_ms = self.deadline_ms;
                let tips = self.describe_tips();
                self.give_up(&format!(
                    "no convergence {CONVERGENCE_MS_MAX} ms after the quiet period that \
                     followed the last heal; tips: {tips}"
                ));
                return;
            }
            self.now_ms = at_ms;
            self.events += 1;
            if self.events > EVENTS_PER_RUN_MAX {
                self.give_up(&format!("budget of {EVENTS_PER_RUN_MAX} events exhausted"));
                return;
            }
            self.step(event);
            if self.checker.violation_count() > 0 || self.liveness_failure.is_some() {
                return;
            }
            if self.now_ms >= self.quiet_from_ms && self.checker.converged(&self.nodes) {
                self.converged_ms = Some(self.now_ms);
                return;
            }
        }
        self.give_up("the event queue ran dry");
    }

    /// The end-of-run check: every node's state against a replay of its chain.
    pub(super) fn finish(&mut self) {
        for (i, node) in self.nodes.iter().enumerate() {
            self.checker.check_state(i, node);
        }
    }

    fn describe_tips(&self) -> String {
        let tips: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("node{i}@{}:{}", n.ledger().height(), n.tip()))
            .collect();
        format!("{} (most work: {})", tips.join(" "), self.checker.best())
    }

    fn trace(&mut self, tag: u8, node: usize, data: &[u8]) {
        self.trace.record(self.now_ms, tag, node, data);
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Deliver { from, to, msg } => {
                let digest = message_digest(&msg);
                self.trace(0, to, &digest);
                self.handle(to, Input::Message { from, msg });
            }
            Event::Mine { miner, epoch } => {
                if self.epochs[miner] == epoch {
                    self.mine(miner);
                }
            }
            Event::Retry {
                node,
                from,
                headers,
            } => {
                self.trace(2, node, &(headers.len() as u64).to_le_bytes());
                self.handle(node, Input::Retry { from, headers });
            }
            Event::PartitionStart { index } => {
                let groups = self.partitions[index].groups.clone();
                self.trace(3, index, &groups);
                self.net.set_partition(Some(groups));
                self.active_partition = Some(index);
            }
            Event::Heal { index } => {
                self.trace(4, index, &[]);
                self.net.set_partition(None);
                self.active_partition = None;
                self.partitions[index].tips_at_heal = self.nodes.iter().map(|n| n.tip()).collect();
                // Links come back: each side asks the other for headers, as on connecting.
                let groups = self.partitions[index].groups.clone();
                for i in 0..self.nodes.len() {
                    for peer in 0..self.nodes.len() {
                        if groups[i] != groups[peer] {
                            self.handle(i, Input::Reconnected { peer });
                        }
                    }
                }
            }
        }
    }

    fn mine(&mut self, miner: usize) {
        let mut header = match self.nodes[miner].template(self.now_ms) {
            Ok(h) => h,
            Err(e) => {
                self.checker
                    .violation(format!("t={}ms: miner {miner}: {e}", self.now_ms));
                return;
            }
        };
        let Some(tries) = mining::seal(&mut header) else {
            let bits = match header.seal {
                Seal::Pow { bits, .. } => CompactTarget(bits),
                _ => self.rules.retarget.initial_bits(),
            };
            self.give_up(&format!(
                "miner {miner} found no nonce in {} tries at bits {bits}",
                mining::NONCE_TRIES_MAX
            ));
            return;
        };
        self.nonce_tries += tries;
        self.blocks_mined += 1;
        if let Some(p) = self.active_partition {
            let side = usize::from(self.partitions[p].groups[miner]);
            self.partitions[p].mined[side] += 1;
        }
        self.checker.on_mined(self.now_ms, miner, &header);
        self.trace(1, miner, &header.hash().0);
        self.handle(miner, Input::Mined(header));
    }

    fn handle(&mut self, i: usize, input: Input) {
        let before = self.nodes[i].tip();
        let effects = self.nodes[i].handle(self.now_ms, input);
        self.apply(i, effects);
        let tip = self.nodes[i].tip();
        if tip != before {
            self.trace(5, i, &tip.0);
            self.schedule_mining(i);
        }
        self.checker.check_tip(self.now_ms, i, &tip);
    }

    fn apply(&mut self, i: usize, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => self.send(i, to, msg),
                Effect::Broadcast(msg) => {
                    for to in 0..self.nodes.len() {
                        if to != i {
                            self.send(i, to, msg.clone());
                        }
                    }
                }
                Effect::Accepted { hash } => self.checker.on_accepted(i, &hash),
                Effect::TipChanged { disconnected, .. } => {
                    self.checker.on_tip_changed(self.now_ms, i, &disconnected);
                }
                Effect::HoldBack {
                    from,
                    after_ms,
                    headers,
                } => {
                    self.held_back += 1;
                    self.push(
                        self.now_ms + after_ms,
                        Event::Retry {
                            node: i,
                            from,
                            headers,
                        },
                    );
                }
                Effect::Rejected { hash, reason } => {
                    self.checker.on_rejected(self.now_ms, i, &hash, &reason);
                }
                Effect::Dropped { reason } => *self.drops.entry(reason).or_default() += 1,
            }
        }
    }

    fn send(&mut self, from: usize, to: usize, msg: Message) {
        if let Some(at) = self.net.arrival(&mut self.rng, self.now_ms, from, to) {
            self.push(at, Event::Deliver { from, to, msg });
        }
    }

    pub(super) fn report(&self) -> PowSimReport {
        let final_tip = self.nodes.first().map_or(Hash::ZERO, SimNode::tip);
        let height = self.nodes.iter().map(|n| n.ledger().height()).max();
        let height = height.unwrap_or(Height(0));
        let last_heal_ms = self.partitions.last().map_or(0, |p| p.heal_ms);
        PowSimReport {
            seed: self.cfg.seed,
            miners: self.cfg.miners,
            weights: self.plan.weights.clone(),
            speed_per_mille: self.plan.speed_per_mille,
            safety_violations: self.checker.violations().to_vec(),
            violation_count: self.checker.violation_count(),
            liveness_failure: self.liveness_failure.clone(),
            trace_hash: self.trace.hash(),
            final_tip,
            height,
            blocks_mined: self.blocks_mined,
            stale_blocks: self.blocks_mined.saturating_sub(height.0),
            reorgs: self.checker.reorgs(),
            deepest_reorg: self.checker.deepest_reorg(),
            longest_branch: longest_branch(&self.partitions),
            reorg_whole_blocks_max: self.checker.reorg_whole_blocks_max(),
            difficulty_max: self.checker.difficulty_max(),
            nonce_tries: self.nonce_tries,
            held_back: self.held_back,
            partitions: self.partitions.clone(),
            converged_after_heal_ms: self.converged_ms.map(|t| t - last_heal_ms),
            events: self.events,
            virtual_ms: self.now_ms,
            drops: self.drops.clone(),
            repro: self.cfg.repro(),
        }
    }
}

/// What the trace records of a delivered message: its kind and the blocks it names.
fn message_digest(msg: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(41);
    match msg {
        Message::Block(h) => {
            out.push(0);
            out.extend_from_slice(&h.hash().0);
        }
        Message::GetHeaders { locator } => {
            out.push(1);
            out.extend_from_slice(&(locator.len() as u64).to_le_bytes());
            out.extend_from_slice(&locator.first().copied().unwrap_or(Hash::ZERO).0);
        }
        Message::Headers(headers) => {
            out.push(2);
            out.extend_from_slice(&(headers.len() as u64).to_le_bytes());
            if let Some(last) = headers.last() {
                out.extend_from_slice(&last.hash().0);
            }
        }
    }
    out
}
