//! What every BFT engine shares, whatever its rounds and certificates look like: the
//! validator set and its quorum arithmetic by voting power (f, N − f, f + 1), counting the
//! power behind a list of signers, the signing seam, the leader schedule, and leader
//! reputation over the chain's blocks.
//!
//! HotStuff (`crate::hotstuff`) and PBFT (`crate::pbft`) build on these.
//!
//! Owns: membership, power, signer tallies, leader selection, the `Signer`/`Verifier`
//! traits and their ed25519 implementation. Never: knows a message format or a round rule
//! of any one engine (it reads only what block seals carry), and never does I/O, reads a
//! clock or draws randomness.

mod crypto;
mod election;
mod leader;
mod quorum;
mod reputation;
mod validators;

pub use crypto::{Ed25519Signer, Ed25519Verifier, SignedBytes, Signer, Verifier};
pub(crate) use election::Leaders;
pub use leader::LeaderSchedule;
pub use quorum::{TallyError, tally};
pub use reputation::{BlockFacts, Failure, PassedOver, Reputation, ReputationConfig};
pub use validators::{Member, ValidatorSet, ValidatorSetError};
