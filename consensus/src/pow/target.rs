//! Checking a block's proof of work: its bits decode to a usable target no easier than the
//! network's limit, and its header hash meets that target.
//!
//! The numbers themselves (compact `bits`, [`Target`], [`Work`] and their 256-bit
//! arithmetic) are `cairn_ledger::work`'s, the one copy genesis validation uses too; they
//! are re-exported here so engine code names them from one place.
//!
//! Owns: the proof-of-work check. Never: looks at a header beyond its hash and bits, or
//! knows about the chain.

use cairn_ledger::Hash;

pub use cairn_ledger::work::{CompactError, CompactTarget, Target, Work};
pub(crate) use cairn_ledger::work::{U256, U512};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PowError {
    #[error(transparent)]
    Compact(#[from] CompactError),
    #[error("target {target} (bits {bits}) is easier than the network's limit {limit}")]
    AboveLimit {
        bits: CompactTarget,
        target: Target,
        limit: Target,
    },
    #[error("hash {hash} does not meet target {target} (bits {bits})")]
    InsufficientWork {
        hash: Hash,
        bits: CompactTarget,
        target: Target,
    },
}

/// Bitcoin's `CheckProofOfWork`: the bits decode to a usable target no easier than the
/// network's limit, and the hash meets it. Returns the block's work.
///
/// This checks the proof, not that `bits` is the difficulty the chain asks for at this height;
/// that is [`super::difficulty::next_bits`]'s job.
pub fn check_proof_of_work(
    hash: &Hash,
    bits: CompactTarget,
    limit: Target,
) -> Result<Work, PowError> {
    let target = bits.to_target()?;
    if target > limit {
        return Err(PowError::AboveLimit {
            bits,
            target,
            limit,
        });
    }
    if !target.is_met_by(hash) {
        return Err(PowError::InsufficientWork {
            hash: *hash,
            bits,
            target,
        });
    }
    Ok(target.to_work())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(bits: u32) -> Target {
        CompactTarget(bits).to_target().unwrap()
    }

    #[test]
    fn printed_bitcoin_block_hashes_meet_their_targets() {
        let genesis: Hash = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
            .parse()
            .unwrap();
        let limit = target(0x1d00ffff);
        assert_eq!(
            check_proof_of_work(&genesis, CompactTarget(0x1d00ffff), limit),
            Ok(limit.to_work())
        );
        // The same bytes read the other way round are a huge number.
        let mut reversed = genesis;
        reversed.0.reverse();
        assert!(matches!(
            check_proof_of_work(&reversed, CompactTarget(0x1d00ffff), limit),
            Err(PowError::InsufficientWork { .. })
        ));
    }

    #[test]
    fn proof_of_work_refuses_targets_easier_than_the_limit() {
        let limit = target(0x1d00ffff);
        assert_eq!(
            check_proof_of_work(&Hash::ZERO, CompactTarget(0x1e00ffff), limit),
            Err(PowError::AboveLimit {
                bits: CompactTarget(0x1e00ffff),
                target: target(0x1e00ffff),
                limit
            })
        );
        assert!(matches!(
            check_proof_of_work(&Hash::ZERO, CompactTarget(0x1d80ffff), limit),
            Err(PowError::Compact(CompactError::Negative { .. }))
        ));
    }
}
