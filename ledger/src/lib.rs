//! The ledger: what a Cairn chain is (types, canonical encoding, signatures), how a block
//! changes account state, and how blocks and state are kept on disk.
//!
//! This crate owns the disk (the `store` feature, RocksDB). It never touches the network,
//! a clock or a runtime: callers pass in timestamps and blocks.
//!
//! # Layers
//!
//! Modules use only modules of their own layer or below (`use crate::` lines say which),
//! so there is no import circle:
//!
//! 1. `types`, `codec`, `crypto`, `keys`, `smt`, `work`: values, encoding, signatures, the
//!    state tree's shape and the proof-of-work numbers.
//! 2. `tx`, `block`: what a chain carries.
//! 3. `genesis::params` (and `genesis::file`, its TOML shape): the typed network
//!    parameters, which every layer above reads.
//! 4. `rules`, `upgrades`, `oracle`: each protocol version's rules, the upgrade schedule
//!    and the oracle's state, built from those parameters.
//! 5. `state`: the state machine (accounts and the oracle, one block at a time).
//! 6. `genesis::{validate, block_zero, local}`: checking a genesis file against the rules
//!    of the layers below, and block 0 with its initial state.
//! 7. `store`: blocks and state on disk.

pub mod block;
mod bytes;
pub mod codec;
pub mod crypto;
pub mod genesis;
pub mod keys;
pub mod oracle;
pub mod rules;
pub mod smt;
pub mod state;
#[cfg(feature = "store")]
pub mod store;
pub mod tx;
pub mod types;
pub mod upgrades;
pub mod work;

pub use types::{
    Address, Amount, Hash, Height, Nonce, ProtocolVersion, PublicKey, Round, Signature, TimestampMs,
};
