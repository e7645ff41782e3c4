//! The deterministic proof-of-work simulator: miners with hash-power shares on a virtual
//! network with random delays and scheduled partitions, each node running the pure PoW core
//! (`check_header`, `next_bits`, the median-time-past and future-time rules, `BlockIndex` with
//! its reorg paths and locators), all randomness from one seed.
//!
//! Mining is simulated, not done: a miner finds a block after an exponentially distributed
//! time whose mean is the block's expected hashes over the miner's hash power (see
//! `mining.rs`). The block is still sealed for real: the genesis limit is regtest's, so a nonce
//! search of a few tries meets the target, and every node checks every header in full, hash
//! against target included. Nothing is bypassed.
//!
//! After each seed the checkers (see `checker.rs`) have verified that every node always
//! followed the most-work tip it knew, that difficulty stayed within its clamp, that no reorg
//! went deeper than the partitions allow (it may undo what was mined while the network was
//! split, and at most [`REORG_SLACK_BLOCKS`] blocks mined while it was whole), that every
//! node's state equals a replay of its chain from genesis, and that after the last partition
//! healed all nodes converged on the most-work tip.
//!
//! The kernel's `run(&PowSimConfig)` runs one seed and returns a [`PowSimReport`] whose
//! `repro` line re-runs exactly that seed from the command line; its `run_many` spreads seeds
//! over threads (each seed stays single-threaded and deterministic) and reports them in seed
//! order. Both are re-exported here.
//!
//! Owns: simulation. Never: reads the wall clock, or any randomness except the seed's
//! `ChaCha8Rng`; a seed's outcome does not depend on the thread that runs it.

mod checker;
mod mining;
mod network;
mod node;
mod world;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use cairn_ledger::{Hash, Height};

use super::kernel::Simulation;

pub use super::kernel::{VIOLATIONS_KEPT_MAX, run, run_many};
pub use checker::{HEAL_SETTLE_MS, REORG_SLACK_BLOCKS};
pub use mining::{MINING_DELAY_MS_MAX, NONCE_TRIES_MAX};
pub use network::{EVENTS_QUEUED_MAX, LATENCY_MS_MAX, LATENCY_MS_MIN};
pub use node::{HEADERS_PER_MESSAGE_MAX, HELD_BACK_MAX};
pub use world::{CONVERGENCE_MS_MAX, EVENTS_PER_RUN_MAX, QUIET_MS, SIM_POW_PARAMS};

/// Most miners a simulation runs: every node talks to every other, so messages per block
/// grow with the square of this.
pub const POW_SIM_MINERS_MAX: usize = 32;

/// Largest hash-power weight `--shares` accepts for one miner; the sum of at most
/// [`POW_SIM_MINERS_MAX`] of them stays far from overflowing anything.
pub const SHARE_WEIGHT_MAX: u64 = 1_000_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PowSimConfig {
    pub seed: u64,
    pub miners: usize,
    /// Hash-power weights, one per miner (0: a full node that does not mine); `None`: drawn
    /// from the seed.
    pub shares: Option<Vec<u64>>,
    /// Test-only: node 0 follows the longest chain by height instead of the most work.
    #[doc(hidden)]
    pub unsafe_longest_chain_node: bool,
}

impl PowSimConfig {
    pub fn new(seed: u64, miners: usize) -> PowSimConfig {
        PowSimConfig {
            seed,
            miners,
            shares: None,
            unsafe_longest_chain_node: false,
        }
    }

    /// The command that re-runs exactly this seed.
    pub fn repro(&self) -> String {
        let mut line = format!(
            "cairn sim pow --seed {} --miners {}",
            self.seed, self.miners
        );
        if let Some(shares) = &self.shares {
            let list: Vec<String> = shares.iter().map(u64::to_string).collect();
            line.push_str(&format!(" --shares {}", list.join(",")));
        }
        if self.unsafe_longest_chain_node {
            line.push_str(" --unsafe-longest-chain-node");
        }
        line
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PowSimError {
    #[error("--miners {0}: a simulation needs between 1 and {POW_SIM_MINERS_MAX}")]
    Miners(usize),
    #[error("--shares lists {shares} weights for {miners} miners; give one per miner")]
    SharesCount { shares: usize, miners: usize },
    #[error("--shares weight {0} is over the limit of {SHARE_WEIGHT_MAX}")]
    ShareTooLarge(u64),
    #[error("--shares are all 0: nobody would mine")]
    NoHashPower,
}

/// One scheduled partition and what happened during it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionRecord {
    pub start_ms: u64,
    pub heal_ms: u64,
    /// The side (0 or 1) of each node.
    pub groups: Vec<u8>,
    /// Blocks mined by each side while the partition lasted.
    pub mined: [u64; 2],
    /// Each node's tip the moment the partition healed.
    pub tips_at_heal: Vec<Hash>,
}

/// The outcome of one seed.
#[derive(Clone, Debug)]
pub struct PowSimReport {
    pub seed: u64,
    pub miners: usize,
    /// The hash-power weights the seed ran with.
    pub weights: Vec<u64>,
    pub speed_per_mille: u64,
    /// The first violations found (at most [`VIOLATIONS_KEPT_MAX`]).
    pub safety_violations: Vec<String>,
    pub violation_count: usize,
    pub liveness_failure: Option<String>,
    /// SHA-256 over the ordered event log: equal seeds give equal hashes.
    pub trace_hash: Hash,
    /// Node 0's tip at the end (every node's, if the run converged).
    pub final_tip: Hash,
    /// The highest chain any node follows at the end.
    pub height: Height,
    pub blocks_mined: u64,
    /// Mined blocks that are not on the final chain.
    pub stale_blocks: u64,
    /// Tip changes that disconnected at least one block, over all nodes.
    pub reorgs: u64,
    pub deepest_reorg: u64,
    /// The most blocks one side of a partition mined while it lasted.
    pub longest_branch: u64,
    /// The most blocks mined on a whole network that one reorg undid (natural forks); at
    /// most [`REORG_SLACK_BLOCKS`] in a passing run.
    pub reorg_whole_blocks_max: u64,
    /// The hardest target any block carried, as a multiple of the genesis limit's difficulty.
    pub difficulty_max: f64,
    /// Nonces hashed to seal every block.
    pub nonce_tries: u64,
    /// Header batches held back because they came from a node's future.
    pub held_back: u64,
    pub partitions: Vec<PartitionRecord>,
    /// Virtual ms from the last heal until all nodes followed the most-work tip.
    pub converged_after_heal_ms: Option<u64>,
    pub events: u64,
    pub virtual_ms: u64,
    pub drops: BTreeMap<&'static str, u64>,
    pub repro: String,
}

impl PowSimReport {
    pub fn passed(&self) -> bool {
        self.violation_count == 0 && self.liveness_failure.is_none()
    }
}

/// Totals over many seeds.
#[derive(Clone, Debug, Default)]
pub struct PowBatchSummary {
    pub seeds: u64,
    /// Seeds with at least one safety violation.
    pub safety_violations: u64,
    /// Seeds that did not converge in time.
    pub liveness_failures: u64,
    pub blocks_mined: u64,
    pub stale_blocks: u64,
    pub reorgs: u64,
    pub deepest_reorg: u64,
    /// The longest branch one side of a partition mined, over all seeds.
    pub longest_branch: u64,
    /// The most blocks mined on a whole network that one reorg undid: how much of
    /// [`REORG_SLACK_BLOCKS`] the batch used.
    pub reorg_whole_blocks_max: u64,
    pub partitions: u64,
    pub held_back: u64,
    pub events: u64,
    pub difficulty_max: f64,
    /// The slowest convergence after a last heal, in virtual ms.
    pub converged_after_heal_ms_max: u64,
}

impl Simulation for PowSimConfig {
    type Report = PowSimReport;
    type Summary = PowBatchSummary;
    type Error = PowSimError;

    fn validate(&self) -> Result<(), PowSimError> {
        if self.miners == 0 || self.miners > POW_SIM_MINERS_MAX {
            return Err(PowSimError::Miners(self.miners));
        }
        if let Some(shares) = &self.shares {
            if shares.len() != self.miners {
                return Err(PowSimError::SharesCount {
                    shares: shares.len(),
                    miners: self.miners,
                });
            }
            if let Some(&weight) = shares.iter().find(|w| **w > SHARE_WEIGHT_MAX) {
                return Err(PowSimError::ShareTooLarge(weight));
            }
            if shares.iter().all(|w| *w == 0) {
                return Err(PowSimError::NoHashPower);
            }
        }
        Ok(())
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn with_seed(&self, seed: u64) -> PowSimConfig {
        PowSimConfig {
            seed,
            ..self.clone()
        }
    }

    fn run_seed(&self) -> PowSimReport {
        world::World::new(self).run()
    }

    fn add(s: &mut PowBatchSummary, r: &PowSimReport) {
        s.seeds += 1;
        s.safety_violations += u64::from(r.violation_count > 0);
        s.liveness_failures += u64::from(r.liveness_failure.is_some());
        s.blocks_mined += r.blocks_mined;
        s.stale_blocks += r.stale_blocks;
        s.reorgs += r.reorgs;
        s.deepest_reorg = s.deepest_reorg.max(r.deepest_reorg);
        s.longest_branch = s.longest_branch.max(r.longest_branch);
        s.reorg_whole_blocks_max = s.reorg_whole_blocks_max.max(r.reorg_whole_blocks_max);
        s.partitions += r.partitions.len() as u64;
        s.held_back += r.held_back;
        s.events += r.events;
        s.difficulty_max = s.difficulty_max.max(r.difficulty_max);
        if let Some(ms) = r.converged_after_heal_ms {
            s.converged_after_heal_ms_max = s.converged_after_heal_ms_max.max(ms);
        }
    }
}
