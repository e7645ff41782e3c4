//! The proof-of-work simulator's judges. They keep their own record of every block mined and
//! its accumulated work, computed from the headers' bits and nothing the nodes say, and
//! check:
//!
//! - fork choice, after every step of every node: the tip a node follows has as much
//!   accumulated work as the heaviest block it holds;
//! - difficulty, for every block mined: its target is no easier than the genesis limit, equal
//!   to its parent's between retargets, and within the ×4 / ÷4 clamp of it at a retarget;
//! - honesty: no node refuses a block (every simulated miner is honest, so a refusal is a
//!   bug in the node or the rules);
//! - reorg depth, at every reorg: what a partition allows a reorg to undo is what was mined
//!   while the network was split (from a partition's start until [`HEAL_SETTLE_MS`] after its
//!   heal, while the sides are still swapping headers); of blocks mined while the network was
//!   whole, a reorg may undo at most [`REORG_SLACK_BLOCKS`] (natural forks). Charging each
//!   reorg with the blocks it undoes, rather than comparing its depth with the longest branch
//!   a side mined, keeps the bound tight in both directions: a node that learns the other
//!   branch a reply at a time may rightly switch to part of it, back to its own side's heavier
//!   tip, then to the whole other branch (undoing the other side's blocks on the way back),
//!   and a side whose difficulty fell mines several blocks in the second it takes to hear
//!   of the other branch after the heal;
//! - state, at the end: every node's ledger equals a replay of its chain from genesis, and
//!   every header on that chain carries the state root the replay computes;
//! - convergence, the liveness verdict: once the network has been whole for a quiet period,
//!   all nodes follow the same tip, and it has the most work of any block mined.
//!
//! Owns: the verdicts. Never: influences the run it judges.

use std::collections::HashMap;

use cairn_ledger::block::{BlockHeader, Seal};
use cairn_ledger::{Hash, Height};

use super::PartitionRecord;
use super::node::{Ledger, SimNode};
use crate::pow::target::U512;
use crate::pow::{CompactTarget, PowRules, Target, Work};
use crate::sim::kernel::{Judge, Violations};

/// Blocks mined while the network was whole that one reorg may undo: natural forks, when two
/// miners find blocks within a message's latency (or a header's hold-back) of each other and
/// the tie lasts a few heights, and a block mined just before a partition that one side never
/// heard of. Over 100,000 seeds one reorg undid at most 4 such blocks (3 in 0.4% of seeds,
/// 4 in 0.01%: each further height of a tie race is some 25 times rarer), so 6 keeps false
/// alarms out of any batch we run while still catching a node that abandons settled history.
pub const REORG_SLACK_BLOCKS: u64 = 6;

/// After a heal, blocks still count as the partition's for this long: each side keeps mining
/// on its branch until the other's headers arrive, a few round trips of
/// `HEADERS_PER_MESSAGE_MAX` headers each.
pub const HEAL_SETTLE_MS: u64 = 3000;

/// How much below a quarter of its parent's target a retargeted target may be and still be
/// within the clamp: the compact encoding keeps at least the top 16 significant bits (a
/// relative loss under 2^-15) and the clamp's integer division of the expected timespan loses
/// under 1/10,000; 2^-8 of the parent's target covers both with room.
const CLAMP_ROUNDING_SLACK_SHIFT: u32 = 8;

/// The checker's own record of a mined block.
struct Known {
    header: BlockHeader,
    chain_work: Work,
    mined_ms: u64,
}

pub struct Checker {
    rules: PowRules,
    genesis: Hash,
    blocks: HashMap<Hash, Known>,
    /// The block with the most accumulated work of all mined (the first mined among equals).
    best: (Work, Hash),
    /// Per node: the heaviest block it has indexed.
    held_best: Vec<(Work, Hash)>,
    /// (start ms, end ms) of each stretch of time the network was split, the settling time
    /// after the heal included.
    split_windows: Vec<(u64, u64)>,
    deepest_reorg: u64,
    /// The most blocks mined on a whole network that one reorg undid.
    reorg_whole_blocks_max: u64,
    reorgs: u64,
    /// The hardest target any block carried, as a difficulty (1.0 at the genesis limit).
    difficulty_max: f64,
    violations: Violations,
}

impl Judge for Checker {
    fn record(&self) -> &Violations {
        &self.violations
    }

    fn record_mut(&mut self) -> &mut Violations {
        &mut self.violations
    }
}

impl Checker {
    /// `partitions`: (start ms, heal ms) of each scheduled partition.
    pub fn new(
        rules: PowRules,
        genesis: &BlockHeader,
        nodes: usize,
        partitions: Vec<(u64, u64)>,
    ) -> Checker {
        let hash = genesis.hash();
        let work = rules.retarget.pow_limit().to_work();
        Checker {
            rules,
            genesis: hash,
            blocks: HashMap::from([(
                hash,
                Known {
                    header: genesis.clone(),
                    chain_work: work,
                    mined_ms: 0,
                },
            )]),
            best: (work, hash),
            held_best: vec![(work, hash); nodes],
            split_windows: partitions
                .into_iter()
                .map(|(start, heal)| (start, heal + HEAL_SETTLE_MS))
                .collect(),
            deepest_reorg: 0,
            reorg_whole_blocks_max: 0,
            reorgs: 0,
            difficulty_max: 1.0,
            violations: Violations::default(),
        }
    }

    pub fn reorgs(&self) -> u64 {
        self.reorgs
    }

    pub fn deepest_reorg(&self) -> u64 {
        self.deepest_reorg
    }

    pub fn reorg_whole_blocks_max(&self) -> u64 {
        self.reorg_whole_blocks_max
    }

    pub fn difficulty_max(&self) -> f64 {
        self.difficulty_max
    }

    /// The most-work block of all mined.
    pub fn best(&self) -> Hash {
        self.best.1
    }

    pub fn chain_work(&self, hash: &Hash) -> Option<Work> {
        self.blocks.get(hash).map(|k| k.chain_work)
    }

    pub fn height(&self, hash: &Hash) -> Option<Height> {
        self.blocks.get(hash).map(|k| k.header.height)
    }

    /// Records a block a miner sealed, and checks its difficulty against its parent's.
    pub fn on_mined(&mut self, now_ms: u64, miner: usize, header: &BlockHeader) {
        let hash = header.hash();
        let Some(parent) = self.blocks.get(&header.parent) else {
            self.violation(format!(
                "t={now_ms}ms: miner {miner} built block {hash} on {}, which nobody mined",
                header.parent
            ));
            return;
        };
        let (parent_bits, parent_work) = (bits_of(&parent.header, &self.rules), parent.chain_work);
        let Seal::Pow { bits, .. } = header.seal else {
            self.violation(format!(
                "t={now_ms}ms: miner {miner} sealed block {hash} without proof of work"
            ));
            return;
        };
        let bits = CompactTarget(bits);
        let limit = self.rules.retarget.pow_limit();
        let target = match bits.to_target() {
            Ok(t) => t,
            Err(e) => {
                self.violation(format!("t={now_ms}ms: block {hash}: {e}"));
                return;
            }
        };
        if let Some(why) = self.difficulty_fault(header.height, bits, target, parent_bits) {
            self.violation(format!(
                "t={now_ms}ms: block {hash} at height {} by miner {miner}: {why}",
                header.height
            ));
        }
        self.difficulty_max = self.difficulty_max.max(target.difficulty(limit));
        let chain_work = parent_work.saturating_add(target.to_work());
        if chain_work > self.best.0 {
            self.best = (chain_work, hash);
        }
        self.blocks.insert(
            hash,
            Known {
                header: header.clone(),
                chain_work,
                mined_ms: now_ms,
            },
        );
    }

    /// Why `bits` at `height` breaks the difficulty rules, given the parent's bits.
    fn difficulty_fault(
        &self,
        height: Height,
        bits: CompactTarget,
        target: Target,
        parent_bits: CompactTarget,
    ) -> Option<String> {
        let limit = self.rules.retarget.pow_limit();
        if target > limit {
            return Some(format!("target {target} is easier than the limit {limit}"));
        }
        if !self.rules.retarget.is_window_start(height) {
            return (bits != parent_bits)
                .then(|| format!("bits {bits} changed from {parent_bits} between retargets"));
        }
        let old = parent_bits.to_target().ok()?.as_u256().widen();
        let new = target.as_u256().widen();
        let factor = U512::from(crate::pow::difficulty::RETARGET_STEP_FACTOR_MAX);
        let too_hard = new * factor < old - (old >> CLAMP_ROUNDING_SLACK_SHIFT);
        let too_easy = new > old * factor;
        (too_hard || too_easy)
            .then(|| format!("retarget from {parent_bits} to {bits} is outside the ×4 / ÷4 clamp"))
    }

    pub fn on_accepted(&mut self, node: usize, hash: &Hash) {
        if let Some(work) = self.chain_work(hash)
            && work > self.held_best[node].0
        {
            self.held_best[node] = (work, *hash);
        }
    }

    /// Reorg depth: of the blocks a reorg undoes, at most [`REORG_SLACK_BLOCKS`] were mined
    /// while the network was whole.
    pub fn on_tip_changed(&mut self, now_ms: u64, node: usize, disconnected: &[Hash]) {
        if disconnected.is_empty() {
            return;
        }
        self.reorgs += 1;
        let depth = disconnected.len() as u64;
        self.deepest_reorg = self.deepest_reorg.max(depth);
        // A block the checker never saw mined counts against the node.
        let whole = disconnected
            .iter()
            .filter(|h| {
                self.blocks
                    .get(h)
                    .is_none_or(|k| !self.network_was_split(k.mined_ms))
            })
            .count() as u64;
        self.reorg_whole_blocks_max = self.reorg_whole_blocks_max.max(whole);
        if whole > REORG_SLACK_BLOCKS {
            self.violation(format!(
                "t={now_ms}ms: node {node} reorganised {depth} blocks deep, undoing {whole} \
                 blocks mined while the network was whole; at most {REORG_SLACK_BLOCKS} may be"
            ));
        }
    }

    fn network_was_split(&self, at_ms: u64) -> bool {
        self.split_windows
            .iter()
            .any(|(start, end)| (*start..*end).contains(&at_ms))
    }

    pub fn on_rejected(&mut self, now_ms: u64, node: usize, hash: &Hash, reason: &str) {
        self.violation(format!(
            "t={now_ms}ms: node {node} refused block {hash} mined by an honest miner: {reason}"
        ));
    }

    /// Fork choice: the node's tip has the most work of the blocks it holds.
    pub fn check_tip(&mut self, now_ms: u64, node: usize, tip: &Hash) {
        let (held_work, held) = self.held_best[node];
        let tip_work = self.chain_work(tip).unwrap_or(Work::ZERO);
        if tip_work < held_work {
            let height = |h: &Hash| self.height(h).map_or(0, |h| h.0);
            self.violation(format!(
                "t={now_ms}ms: node {node} follows {tip} (height {}, chain work {:.0}) though it \
                 holds {held} (height {}) with more work ({:.0})",
                height(tip),
                tip_work.to_f64(),
                height(&held),
                held_work.to_f64()
            ));
        }
    }

    /// All nodes follow one tip, and no block mined has more work.
    pub fn converged(&self, nodes: &[SimNode]) -> bool {
        let Some(first) = nodes.first() else {
            return true;
        };
        let tip = first.tip();
        nodes.iter().all(|n| n.tip() == tip) && self.chain_work(&tip) == Some(self.best.0)
    }

    /// State: the node's ledger is a replay of its chain from genesis, and every header on
    /// the chain carries the root the replay computes.
    pub fn check_state(&mut self, node_id: usize, node: &SimNode) {
        let mut chain = Vec::new();
        let mut cur = node.tip();
        while cur != self.genesis {
            let Some(known) = self.blocks.get(&cur) else {
                self.violation(format!(
                    "node {node_id}'s chain reaches {cur}, which nobody mined"
                ));
                return;
            };
            chain.push(&known.header);
            cur = known.header.parent;
        }
        let mut replay = Ledger::default();
        let mut faults = Vec::new();
        for header in chain.iter().rev() {
            if let Err(e) = replay.apply(&self.rules, header) {
                faults.push(format!("replaying block {}: {e}", header.hash()));
                break;
            }
            if replay.root() != header.state_root {
                faults.push(format!(
                    "block {} at height {} carries state root {}; the replay gives {}",
                    header.hash(),
                    header.height,
                    header.state_root,
                    replay.root()
                ));
                break;
            }
        }
        if faults.is_empty() && replay != *node.ledger() {
            faults.push(format!(
                "its ledger (height {}, root {}) differs from the replay of its chain (height \
                 {}, root {})",
                node.ledger().height(),
                node.ledger().root(),
                replay.height(),
                replay.root()
            ));
        }
        for fault in faults {
            self.violation(format!("node {node_id}: {fault}"));
        }
    }
}

/// The most blocks one side of any partition mined while it lasted.
pub fn longest_branch(partitions: &[PartitionRecord]) -> u64 {
    partitions.iter().flat_map(|p| p.mined).max().unwrap_or(0)
}

/// A header's bits; genesis's are the genesis limit's.
fn bits_of(header: &BlockHeader, rules: &PowRules) -> CompactTarget {
    match header.seal {
        Seal::Pow { bits, .. } => CompactTarget(bits),
        _ => rules.retarget.initial_bits(),
    }
}
