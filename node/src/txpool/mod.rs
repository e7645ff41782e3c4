//! Pending transactions: the mempool and their gossip between nodes, with admission off the
//! drivers' threads.

pub mod gossip;
pub mod mempool;
