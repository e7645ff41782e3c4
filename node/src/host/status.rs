//! What a driver knows and the store does not, as the HTTP server reads it: the status a
//! driver posts on a [`StatusBoard`], whether the node is ready, and how far it is behind
//! ([`SyncProgress`], one rule for every engine).
//!
//! Owns: the shapes of that status and the rules that derive `syncing` and readiness from
//! it. Never: reads the store or the network (the driver passes what it saw) or serves it.

use std::sync::{Arc, RwLock};

use cairn_ledger::{Address, Height, Round, TimestampMs};

use super::upgrade::NotScheduledHere;
use crate::p2p::PeerInfo;

/// A node whose best known block is more than this many heights above its tip reports
/// itself as syncing (and a miner does not mine).
pub const SYNC_LAG_BLOCKS: u64 = 4;

/// What the driver knows and the store does not. The driver fills it; until it exists,
/// callers pass a fixed one in a [`StatusBoard`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStatus {
    pub peers: u32,
    /// The connected peers and the versions they announced (RPC `peers`, `cairn peers`).
    pub peer_list: Arc<[PeerStatus]>,
    /// The last peer refused because it has activated an upgrade this node never scheduled.
    pub other_schedule: Option<OtherSchedule>,
    pub syncing: bool,
    /// Whether this node takes part in making blocks: a validator in the genesis set, or a
    /// node that mines.
    pub validator: bool,
    /// Why the chain stopped here (an upgrade this binary lacks, or schedules that differ),
    /// when it has.
    pub halted: Option<String>,
    /// Set when it stopped because the network committed a block under another protocol
    /// version than this node's schedule gives it.
    pub not_scheduled_here: Option<NotScheduledHere>,
    /// What only the running engine has.
    pub engine: EngineStatus,
}

/// A connected peer as its handshake described it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PeerStatus {
    pub peer_id: String,
    #[serde(flatten)]
    pub info: PeerInfo,
}

/// A peer refused at the handshake because it has activated `upgrade` at `height`, which this
/// node's schedule lacks: what a node left out of a rollout sees. Unauthenticated (any peer
/// can claim it), so `status` shows it and nothing acts on it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OtherSchedule {
    pub peer_id: String,
    pub upgrade: String,
    pub height: Height,
}

impl OtherSchedule {
    /// What the operator of a node left out of a rollout should do.
    pub fn hint(&self) -> String {
        let Self {
            upgrade, height, ..
        } = self;
        format!(
            "a peer has activated upgrade {upgrade:?} at height {height}, which this node has \
             not scheduled: if the network scheduled it, read its version from `cairn upgrades` \
             on a node that follows the chain, stop this node and run `cairn upgrade schedule \
             --late --name {upgrade} --height {height} --version <version>`"
        )
    }
}

/// The part of [`NodeStatus`] that depends on the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineStatus {
    HotStuff {
        round: Round,
        /// The current round's leader, when known.
        leader: Option<Address>,
        /// The genesis rule for choosing leaders, and whom it passes over now.
        election: LeaderElectionStatus,
    },
    Pbft {
        /// The height being decided (one above the committed tip).
        height: Height,
        /// Its round (rounds restart at every height).
        round: Round,
        /// The round's proposer.
        proposer: Option<Address>,
        /// The genesis rule for choosing proposers, and whom it passes over now.
        election: LeaderElectionStatus,
    },
    Pow {
        /// The height of the best header known (bodies may still be coming).
        best_header_height: Height,
    },
}

impl Default for EngineStatus {
    fn default() -> EngineStatus {
        EngineStatus::HotStuff {
            round: Round(0),
            leader: None,
            election: LeaderElectionStatus::default(),
        }
    }
}

impl EngineStatus {
    /// The engine's name as `status` reports it.
    pub fn name(&self) -> &'static str {
        match self {
            EngineStatus::HotStuff { .. } => "hotstuff",
            EngineStatus::Pbft { .. } => "pbft",
            EngineStatus::Pow { .. } => "pow",
        }
    }
}

/// The leader-election rule at work: `round_robin` or `reputation`, and under reputation the
/// validators it passes over.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderElectionStatus {
    pub rule: &'static str,
    pub passed_over: Vec<PassedOverStatus>,
}

/// A validator the reputation rule passes over: its turn as leader of `failed_round` produced
/// no block (HotStuff's round; under PBFT the turn, counted along the chain), the
/// `failed_turns`-th in a row, and it gets a turn again at chain time `until`
/// at the latest (sooner once it signs a certificate again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassedOverStatus {
    pub validator: Address,
    pub failed_round: Round,
    pub failed_turns: u32,
    pub until: TimestampMs,
}

/// How far the committed (or connected) tip is from the best height this node has seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncProgress {
    pub tip: Height,
    pub best: Height,
}

impl SyncProgress {
    pub fn syncing(&self) -> bool {
        self.best.0 > self.tip.0.saturating_add(SYNC_LAG_BLOCKS)
    }

    /// The tip's share of the best height, 0.0 to 1.0 (1.0 with nothing seen).
    pub fn fraction(&self) -> f64 {
        if self.best.0 == 0 {
            1.0
        } else {
            (self.tip.0 as f64 / self.best.0 as f64).min(1.0)
        }
    }
}

impl NodeStatus {
    /// Whether `/ready` answers 200 for this status: not halted, not syncing, peered.
    pub fn readiness(&self, sync: SyncProgress) -> Readiness {
        if let Some(why) = &self.halted {
            Readiness::NotReady(why.clone())
        } else if self.syncing {
            let best = match self.engine {
                EngineStatus::HotStuff { .. } | EngineStatus::Pbft { .. } => {
                    format!("the network is at {} or more", sync.best)
                }
                EngineStatus::Pow { .. } => format!("the best header is at {}", sync.best),
            };
            Readiness::NotReady(format!("syncing: at height {}, {best}", sync.tip))
        } else if self.peers == 0 {
            Readiness::NotReady("no peers connected".into())
        } else {
            Readiness::Ready
        }
    }
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
