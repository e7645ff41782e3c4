//! The running node. So far: its home directory layout and configuration file, the mempool,
//! the metrics and the HTTP server (JSON-RPC, health, readiness, metrics); networking and the
//! driver loop build on these.

pub mod config;
pub mod home;
pub mod mempool;
pub mod metrics;
pub mod p2p;
pub mod rpc;
