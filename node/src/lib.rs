//! The running node. So far: its home directory layout and configuration file; networking,
//! the mempool, the driver loop and the RPC server build on these.

pub mod config;
pub mod home;
pub mod mempool;
