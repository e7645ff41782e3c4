//! The running node: its home directory and configuration, networking, and one driver per
//! engine that runs consensus over what every driver shares.
//!
//! - [`host`]: what every driver is wired to and shares (network and mempool handles, the
//!   status it posts, errors, clock, upgrades, block payloads); imports no driver.
//! - [`hotstuff`], [`pow`]: one driver per engine, each on [`host`]; never each other.
//! - [`txpool`]: the mempool and transaction gossip. [`p2p`]: libp2p.
//! - [`http`]: the RPC server (JSON-RPC, health, readiness, metrics); reads [`host`]'s
//!   status, never a driver. [`metrics`]: every Prometheus metric, one prefix scheme.
//! - [`run`]: wiring only, with one match on the engine.

pub mod config;
pub mod home;
pub mod host;
pub mod hotstuff;
pub mod http;
pub mod metrics;
pub mod p2p;
pub mod pow;
pub mod run;
pub mod txpool;

/// This binary's release, as peers (handshake, identify), `status` and `upgrades` show it.
pub const BINARY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How this binary names itself to peers: `cairn/<release>`.
pub fn software() -> String {
    format!("cairn/{BINARY_VERSION}")
}
