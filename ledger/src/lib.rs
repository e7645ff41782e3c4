//! The ledger: what a Cairn chain is (types, canonical encoding, signatures), how a block
//! changes account state, and how blocks and state are kept on disk.
//!
//! This crate owns the disk (the `store` feature, RocksDB). It never touches the network,
//! a clock or a runtime: callers pass in timestamps and blocks.

pub mod block;
mod bytes;
pub mod codec;
pub mod crypto;
pub mod genesis;
pub mod keys;
pub mod oracle;
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
