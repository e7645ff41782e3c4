//! What a driver knows and the store does not, as the HTTP server and the metrics read it:
//! the status a driver posts on a [`StatusBoard`] and whether the node is ready.
//!
//! Owns: the shapes of that status. Never: computes it (each driver does) or serves it.

use std::sync::RwLock;

use cairn_ledger::{Address, Height, Round};
use serde::Serialize;

/// What the consensus driver knows and the store does not. The driver fills it; until it
/// exists, callers pass a fixed one in a [`StatusBoard`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    pub round: Round,
    /// The current round's leader, when known (BFT mode).
    pub leader: Option<Address>,
    pub peers: u32,
    pub syncing: bool,
    /// Whether this node's key is in the validator set.
    pub validator: bool,
    /// Why the chain stopped here (an upgrade this binary lacks), when it has.
    pub halted: Option<String>,
    /// Proof of work: the height of the best header known (bodies may still be coming).
    /// `None` in BFT mode, which has rounds and leaders instead.
    pub best_header_height: Option<Height>,
}

/// Whether `/ready` answers 200. The caller decides (synced and peered); the reason says why
/// not, for whoever is looking at a load balancer's health checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NotReady(String),
}

/// The driver's side of the server: read often (every `status` call and `/ready` probe), so
/// implementations must be cheap and must not block on consensus work.
pub trait NodeView: Send + Sync {
    fn status(&self) -> NodeStatus;
    fn readiness(&self) -> Readiness;
}

/// A [`NodeView`] that holds the last values it was given: the driver sets them as they
/// change, tests set them directly.
pub struct StatusBoard {
    inner: RwLock<(NodeStatus, Readiness)>,
}

impl StatusBoard {
    pub fn new(status: NodeStatus, readiness: Readiness) -> StatusBoard {
        StatusBoard {
            inner: RwLock::new((status, readiness)),
        }
    }

    pub fn set_status(&self, status: NodeStatus) {
        // A poisoned lock still holds a whole value (writers only assign), so keep going.
        self.inner.write().unwrap_or_else(|e| e.into_inner()).0 = status;
    }

    pub fn set_readiness(&self, readiness: Readiness) {
        self.inner.write().unwrap_or_else(|e| e.into_inner()).1 = readiness;
    }
}

impl NodeView for StatusBoard {
    fn status(&self) -> NodeStatus {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }
    fn readiness(&self) -> Readiness {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }
}
