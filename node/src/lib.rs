//! The running node: its home directory and configuration, the mempool, networking, the
//! metrics and the HTTP server (JSON-RPC, health, readiness, metrics), and the driver that
//! runs consensus over them (`run`): [`driver`] for BFT networks, [`pow`] for proof of work.

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
