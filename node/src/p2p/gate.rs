//! The door: which peers may hold a connection to this node at all.
//!
//! This behaviour owns the allow-list, the bans of peers scored out, and the `peers_max`
//! count of distinct peers. It decides at connection time, before any protocol runs, and
//! logs every refusal with the peer id. It must never let a connection through for a peer
//! outside the allow-list, whichever side dialled.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// Why the gate refused a connection; carried inside libp2p's `ConnectionDenied`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("peer is not in the allow-list (genesis validators and [p2p] allowed_peers)")]
    NotAllowed,
    #[error("peer is banned for another {remaining_s} s after repeated invalid messages")]
    Banned { remaining_s: u64 },
    #[error("already connected to the most peers allowed ([p2p] peers_max = {peers_max})")]
    TooManyPeers { peers_max: usize },
}

pub struct Gate {
    allowed: HashSet<PeerId>,
    banned_until: HashMap<PeerId, Instant>,
    /// Open connections per peer, as the swarm reports them.
    connections: HashMap<PeerId, usize>,
    peers_max: usize,
}

impl Gate {
    pub fn new(allowed: HashSet<PeerId>, peers_max: usize) -> Gate {
        Gate {
            allowed,
            banned_until: HashMap::new(),
            connections: HashMap::new(),
            peers_max,
        }
    }

    /// Refuse `peer` until `until`; its open connections are the caller's to close.
    pub fn ban(&mut self, peer: PeerId, until: Instant) {
        self.banned_until.insert(peer, until);
    }

    pub fn is_banned(&mut self, peer: &PeerId, now: Instant) -> bool {
        self.ban_remaining(peer, now).is_some()
    }

    fn ban_remaining(&mut self, peer: &PeerId, now: Instant) -> Option<Duration> {
        let until = *self.banned_until.get(peer)?;
        if until <= now {
            // Expired bans are dropped here, so the map holds only live ones.
            self.banned_until.remove(peer);
            return None;
        }
        Some(until - now)
    }

    fn admit(&mut self, peer: PeerId, direction: &str) -> Result<(), ConnectionDenied> {
        let verdict = if !self.allowed.contains(&peer) {
            Err(Denied::NotAllowed)
        } else if let Some(remaining) = self.ban_remaining(&peer, Instant::now()) {
            Err(Denied::Banned {
                remaining_s: remaining.as_secs().max(1),
            })
        } else if !self.connections.contains_key(&peer) && self.connections.len() >= self.peers_max
        {
            Err(Denied::TooManyPeers {
                peers_max: self.peers_max,
            })
        } else {
            Ok(())
        };
        verdict.map_err(|reason| {
            tracing::warn!(%peer, direction, %reason, "p2p: connection refused");
            ConnectionDenied::new(reason)
        })
    }
}

impl NetworkBehaviour for Gate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.admit(peer, "inbound")?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        maybe_peer: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        // Refuse early when the peer is known, so a dial to an outsider never leaves.
        if let Some(peer) = maybe_peer {
            self.admit(peer, "outbound")?;
        }
        Ok(Vec::new())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.admit(peer, "outbound")?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                *self.connections.entry(e.peer_id).or_default() += 1;
            }
            FromSwarm::ConnectionClosed(e) => {
                if let Some(n) = self.connections.get_mut(&e.peer_id) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.connections.remove(&e.peer_id);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}
