//! What every driver is wired to and shares, whatever its engine: the network, mempool,
//! metrics and status board ([`NodeIo`]), the one error a driver stops with, the clock, the
//! status it reports ([`status`]), the fork id and halt at upgrades ([`upgrade`]), and what
//! goes into a block this node makes ([`payload`]).
//!
//! Owns: nothing of any engine. Never: imports an engine's driver or the HTTP layer; the
//! drivers and the server import this.

pub mod clock;
pub mod net;
pub mod payload;
pub mod peers;
pub mod status;
pub mod upgrade;

use std::sync::{Arc, Mutex};

use cairn_ledger::store::StoreError;
use tokio::sync::mpsc;

use crate::metrics::{Metrics, to_i64};
use crate::p2p::{Event, P2pHandle};
use crate::txpool::mempool::Mempool;
use status::{NodeStatus, StatusBoard, SyncProgress};

/// Why a driver stopped on its own: the one error vocabulary of the drivers and of the
/// chains under them. A block or message refused is not an error here (each chain says why
/// it refused); this is only what the node cannot go on with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The node cannot go on: the disk failed, the store is corrupt, a block the network
    /// made final does not execute here.
    #[error("{0}")]
    Halt(String),
    #[error("the network service stopped")]
    NetworkStopped,
}

impl From<StoreError> for DriverError {
    fn from(e: StoreError) -> DriverError {
        DriverError::Halt(e.to_string())
    }
}

/// What every driver (HotStuff's in `crate::hotstuff`, proof of work's in `crate::pow`) is
/// wired to.
pub struct NodeIo {
    pub mempool: Arc<Mutex<Mempool>>,
    pub metrics: Arc<Metrics>,
    pub board: Arc<StatusBoard>,
    pub p2p: P2pHandle,
    pub events: mpsc::Receiver<Event>,
    /// Tells the driver the pool grew (RPC or gossip admission), while it listens.
    pub pool_growth: Arc<crate::txpool::gossip::PoolGrowth>,
    /// For the fork id peers see, which changes as the chain passes upgrade heights.
    pub genesis: cairn_ledger::genesis::Genesis,
    pub message_bytes_max: usize,
}

impl NodeIo {
    /// Posts what the driver knows: its status and the readiness that follows from it on the
    /// board, and the gauges every engine has.
    pub(crate) fn post_status(&self, status: NodeStatus, sync: SyncProgress) {
        let readiness = status.readiness(sync);
        self.metrics.peers.set(i64::from(status.peers));
        self.metrics.height.set(to_i64(sync.tip.0));
        self.metrics.sync_progress.set(sync.fraction());
        self.board.set_status(status);
        self.board.set_readiness(readiness);
    }
}
