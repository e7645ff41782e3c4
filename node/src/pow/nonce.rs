//! A stand-in for `cairn_consensus::pow::mine::NonceSearch` (same shape) until that lands:
//! it hashes the whole header for every nonce, without a midstate, so it is several times
//! slower, but it finds the same nonces.

use cairn_consensus::pow::Target;
use cairn_ledger::block::{BlockHeader, Seal};

pub struct NonceSearch {
    header: BlockHeader,
    bits: u32,
}

impl NonceSearch {
    pub fn new(header: &BlockHeader) -> NonceSearch {
        let bits = match header.seal {
            Seal::Pow { bits, .. } => bits,
            _ => 0,
        };
        NonceSearch {
            header: header.clone(),
            bits,
        }
    }

    /// The first nonce in `start..start + count` whose header hash meets `target`.
    pub fn search(&self, target: &Target, start: u64, count: u64) -> Option<u64> {
        let mut header = self.header.clone();
        let end = start.saturating_add(count);
        (start..end).find(|&nonce| {
            header.seal = Seal::Pow {
                bits: self.bits,
                nonce,
            };
            target.is_met_by(&header.hash())
        })
    }
}
