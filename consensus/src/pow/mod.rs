//! Nakamoto consensus, the pure part: proof of work over the header hash, difficulty that
//! follows the genesis block time, timestamp rules, fork choice by accumulated work, and the
//! block subsidy.
//!
//! Everything here is a function of its arguments: no I/O, no clock (the caller passes
//! `now`), no randomness, no threads. The node owns mining, the store (bodies, undo records,
//! the reorgs themselves), the network and sync; it asks this module which header is
//! acceptable, which tip is best, and which blocks a reorg disconnects and connects.
//!
//! - [`target`]: `CompactTarget`, `Target`, `Work`, and the proof-of-work check.
//! - [`difficulty`]: the bits a height must carry, median time past, timestamp checks.
//! - [`header`]: one call that checks a header against its ancestors.
//! - [`fork_choice`]: the block index: best tip, reorg paths, locators.
//! - [`reward`]: subsidy with halvings, coinbase maturity.

pub mod difficulty;
pub mod fork_choice;
pub mod header;
pub mod mine;
pub mod reward;
pub mod target;

pub use difficulty::{RetargetParams, TimestampCheck};
pub use fork_choice::{
    BlockIndex, BlockStatus, IndexError, IndexLimits, IndexedBlock, Inserted, Invalidated,
    ReorgPath,
};
pub use header::{CheckedHeader, HeaderError, HeaderSummary, Rejection, check_header};
pub use mine::NonceSearch;
pub use reward::RewardSchedule;
pub use target::{CompactError, CompactTarget, PowError, Target, Work, check_proof_of_work};

use cairn_ledger::Height;
use cairn_ledger::genesis::PowParams;

/// A genesis's proof-of-work parameters, checked once and typed: the engine never divides by
/// a zero interval or decodes the limit twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowRules {
    pub retarget: RetargetParams,
    pub reward: RewardSchedule,
    /// How far past the caller's clock a header's timestamp may be before it is held back.
    pub future_block_time_ms_max: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("consensus.pow.initial_bits: {0}")]
    InitialBits(CompactError),
    #[error("consensus.pow.{field} is 0; it must be above 0")]
    Zero { field: &'static str },
}

impl PowRules {
    pub fn new(params: &PowParams) -> Result<PowRules, ParamsError> {
        if params.future_block_time_ms_max == 0 {
            return Err(ParamsError::Zero {
                field: "future_block_time_ms_max",
            });
        }
        Ok(PowRules {
            retarget: RetargetParams::new(
                CompactTarget(params.initial_bits),
                params.target_block_time_ms,
                params.retarget_interval_blocks,
            )?,
            reward: RewardSchedule::new(
                params.block_reward,
                params.halving_interval_blocks,
                params.coinbase_maturity_blocks,
            )?,
            future_block_time_ms_max: params.future_block_time_ms_max,
        })
    }

    /// How many of its latest ancestors (the parent last) [`check_header`] needs to check
    /// the header at `height`: enough for the median time past and, at a retarget, the whole
    /// window.
    pub fn ancestors_needed(&self, height: Height) -> u64 {
        let for_median = height.0.min(difficulty::MEDIAN_TIME_SPAN_BLOCKS as u64);
        for_median.max(self.retarget.ancestors_needed(height))
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use cairn_ledger::block::{BlockHeader, Seal};
    use cairn_ledger::genesis::PowParams;
    use cairn_ledger::{Address, Amount, Hash, Height, ProtocolVersion, TimestampMs};

    use super::{CompactTarget, HeaderSummary, PowRules};

    /// Regtest's limit: about one hash in two meets it, so tests mine in a few tries.
    pub const EASY_BITS: u32 = 0x207f_ffff;

    pub fn params() -> PowParams {
        PowParams {
            initial_bits: EASY_BITS,
            target_block_time_ms: 2000,
            retarget_interval_blocks: 10,
            block_reward: Amount(50_0000_0000),
            halving_interval_blocks: 100,
            coinbase_maturity_blocks: 10,
            future_block_time_ms_max: 7_200_000,
        }
    }

    /// A distinct, deterministic hash per label.
    pub fn hash_of(label: u64) -> Hash {
        Hash::digest(&label.to_le_bytes())
    }

    pub fn genesis(rules: &PowRules) -> (BlockHeader, HeaderSummary) {
        let header = BlockHeader {
            height: Height(0),
            parent: Hash::digest(b"genesis file"),
            timestamp: TimestampMs(1_000_000),
            tx_root: Hash::ZERO,
            state_root: Hash::ZERO,
            proposer: Address([0; 20]),
            protocol_version: ProtocolVersion(1),
            seal: Seal::Genesis,
        };
        let summary = HeaderSummary::genesis(&header, rules);
        (header, summary)
    }

    /// A header on `parent` sealed with `bits`, with the first nonce that meets (or, with
    /// `meet = false`, misses) the target.
    pub fn mine(parent: &HeaderSummary, time: u64, bits: u32, meet: bool) -> BlockHeader {
        let target = CompactTarget(bits).to_target().unwrap();
        let mut header = BlockHeader {
            height: parent.height.next(),
            parent: parent.hash,
            timestamp: TimestampMs(time),
            tx_root: Hash::ZERO,
            state_root: Hash::ZERO,
            proposer: Address([1; 20]),
            protocol_version: ProtocolVersion(1),
            seal: Seal::Pow { bits, nonce: 0 },
        };
        // A target as hard as 1/2^16 per hash is met within this many tries almost surely.
        for nonce in 0..2_000_000 {
            header.seal = Seal::Pow { bits, nonce };
            if target.is_met_by(&header.hash()) == meet {
                return header;
            }
        }
        panic!("no nonce found for bits {bits:#010x}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_ledger::{Hash, TimestampMs};

    #[test]
    fn rules_refuse_zero_parameters_and_bad_limits() {
        let mut p = test_support::params();
        assert!(PowRules::new(&p).is_ok());
        p.future_block_time_ms_max = 0;
        assert_eq!(
            PowRules::new(&p),
            Err(ParamsError::Zero {
                field: "future_block_time_ms_max"
            })
        );
        let mut p = test_support::params();
        p.retarget_interval_blocks = 0;
        assert_eq!(
            PowRules::new(&p),
            Err(ParamsError::Zero {
                field: "retarget_interval_blocks"
            })
        );
        let mut p = test_support::params();
        p.initial_bits = 0x01003456;
        assert!(matches!(
            PowRules::new(&p),
            Err(ParamsError::InitialBits(CompactError::Zero { .. }))
        ));
    }

    /// The node's loop in miniature: ancestors from the index, the header checked against
    /// them, inserted, and the best tip followed, across retargets and a competing branch.
    #[test]
    fn headers_checked_against_index_ancestry_build_the_best_chain() {
        use test_support::{genesis, mine};
        let rules = PowRules::new(&test_support::params()).unwrap();
        let (_, g) = genesis(&rules);
        let mut index = BlockIndex::new(g, IndexLimits::default()).unwrap();
        let now = TimestampMs(u64::MAX / 2);
        let extend = |index: &mut BlockIndex, parent: Hash, gap_ms: u64| -> Hash {
            let p = *index.get(&parent).unwrap();
            let height = p.summary.height.next();
            let ancestors = index
                .ancestry(&parent, rules.ancestors_needed(height))
                .unwrap();
            let bits = difficulty::next_bits(&rules.retarget, height, &ancestors).unwrap();
            let header = mine(&p.summary, p.summary.timestamp.0 + gap_ms, bits.0, true);
            let checked = check_header(&rules, &header, &ancestors, now).unwrap();
            index.insert_checked(&checked).unwrap();
            checked.summary.hash
        };
        // Blocks ten times faster than the target: difficulty rises at heights 10 and 20.
        let mut tip = g.hash;
        for _ in 0..25 {
            tip = extend(&mut index, tip, 200);
        }
        assert_eq!(index.best_tip(), tip);
        let bits_at = |index: &BlockIndex, h: u64| {
            let hash = index.best_chain_at(Height(h)).unwrap();
            index.get(&hash).unwrap().summary.bits
        };
        assert_eq!(bits_at(&index, 9), CompactTarget(test_support::EASY_BITS));
        assert!(bits_at(&index, 10).to_target().unwrap() < rules.retarget.pow_limit());
        assert!(
            bits_at(&index, 20).to_target().unwrap() < bits_at(&index, 10).to_target().unwrap()
        );
        // A branch from height 18, one block longer at the same difficulty (its stamps a
        // millisecond apart from the main chain's, so its headers differ), takes over.
        let fork = index.best_chain_at(Height(18)).unwrap();
        let mut side = fork;
        for _ in 0..8 {
            side = extend(&mut index, side, 201);
        }
        assert_eq!(index.best_tip(), side);
        let path = index.reorg_path(&tip, &side).unwrap();
        assert_eq!(path.fork_point, fork);
        assert_eq!(path.depth(), 7);
        assert_eq!(path.connect.len(), 8);
    }

    #[test]
    fn ancestors_needed_covers_the_median_and_the_window() {
        let rules = PowRules::new(&test_support::params()).unwrap();
        assert_eq!(rules.ancestors_needed(Height(1)), 1);
        assert_eq!(rules.ancestors_needed(Height(5)), 5);
        assert_eq!(rules.ancestors_needed(Height(15)), 11);
        // First retarget (interval 10): heights 0..=9, measured from genesis.
        assert_eq!(rules.ancestors_needed(Height(10)), 10);
        // Later ones: the previous window's last block (19) back to the one before (9).
        assert_eq!(rules.ancestors_needed(Height(20)), 11);
    }
}
