//! What every BFT engine shares, whatever its rounds and certificates look like: the
//! validator set and its quorum arithmetic by voting power (f, N − f, f + 1), counting the
//! power behind a list of signers, the signing seam, and the leader schedule.
//!
//! HotStuff (`crate::hotstuff`) builds on these; another BFT engine (PBFT) would sit beside
//! it on the same ones.
//!
//! Owns: membership, power, signer tallies, leader selection, the `Signer`/`Verifier`
//! traits and their ed25519 implementation. Never: knows a message format, a round rule or
//! a certificate layout of any one engine, and never does I/O, reads a clock or draws
//! randomness.

mod crypto;
mod leader;
mod quorum;
mod reputation;
mod validators;

pub use crypto::{Ed25519Signer, Ed25519Verifier, SignedBytes, Signer, Verifier};
pub use leader::LeaderSchedule;
pub use quorum::{TallyError, tally};
pub use reputation::{BlockFacts, Failure, PassedOver, Reputation, ReputationConfig};
pub use validators::{Member, ValidatorSet, ValidatorSetError};
