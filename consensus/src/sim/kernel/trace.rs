//! The fingerprint of a run: SHA-256 over every event that changed something, with its
//! time. Equal seeds give equal hashes; a hash that changes means the run did.
//!
//! Owns: the encoding of a trace record. Never: decides what is worth recording.

use cairn_ledger::Hash;
use sha2::{Digest, Sha256};

#[derive(Clone, Default)]
pub struct Trace(Sha256);

impl Trace {
    /// Adds one record: the time, a tag naming the kind of event, the node it concerns and
    /// its data (length-prefixed, so records never run into each other).
    pub fn record(&mut self, at_ms: u64, tag: u8, node: usize, data: &[u8]) {
        self.0.update(at_ms.to_le_bytes());
        self.0.update([tag]);
        self.0.update((node as u64).to_le_bytes());
        self.0.update((data.len() as u64).to_le_bytes());
        self.0.update(data);
    }

    /// The hash of everything recorded so far.
    pub fn hash(&self) -> Hash {
        Hash(self.0.clone().finalize().into())
    }
}
