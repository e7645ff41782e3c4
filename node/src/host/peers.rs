//! The peers a driver is connected to, as the network reports them: counted for `status`,
//! taken in turn when the driver asks the network for something, and logged as they come and
//! go, the same way for every driver.
//!
//! Owns: the connected set. Never: decides whom to connect to or ban (the network does).

use std::sync::Arc;

use libp2p::PeerId;

use super::status::{OtherSchedule, PeerStatus};
use crate::p2p::PeerInfo;

/// Connected peers, in the order they connected, with what each said of itself.
#[derive(Debug, Default)]
pub struct Peers {
    connected: Vec<(PeerId, PeerInfo)>,
    next: usize,
    /// `connected` as `status` shows it, rebuilt only when it changes: the driver posts its
    /// status far more often than peers come and go.
    listed: Arc<[PeerStatus]>,
    other_schedule: Option<OtherSchedule>,
}

impl Peers {
    pub fn connected(&mut self, peer: PeerId, info: PeerInfo) {
        match self.connected.iter_mut().find(|(p, _)| *p == peer) {
            Some((_, known)) => *known = info,
            None => self.connected.push((peer, info)),
        }
        self.relist();
        tracing::info!(%peer, peers = self.connected.len(), "peer connected");
    }

    pub fn disconnected(&mut self, peer: &PeerId) {
        self.connected.retain(|(p, _)| p != peer);
        self.relist();
        tracing::info!(%peer, peers = self.connected.len(), "peer disconnected");
    }

    /// `peer` was refused for having activated an upgrade this node never scheduled.
    pub fn on_other_schedule(
        &mut self,
        peer: PeerId,
        upgrade: &str,
        height: cairn_ledger::Height,
    ) -> &OtherSchedule {
        self.other_schedule.insert(OtherSchedule {
            peer_id: peer.to_string(),
            upgrade: upgrade.to_owned(),
            height,
        })
    }

    pub fn other_schedule(&self) -> Option<OtherSchedule> {
        self.other_schedule.clone()
    }

    /// Each connected peer with its software and protocol version, for `status`.
    pub fn list(&self) -> Arc<[PeerStatus]> {
        Arc::clone(&self.listed)
    }

    fn relist(&mut self) {
        self.listed = self
            .connected
            .iter()
            .map(|(peer, info)| PeerStatus {
                peer_id: peer.to_string(),
                info: info.clone(),
            })
            .collect();
    }

    pub fn len(&self) -> usize {
        self.connected.len()
    }

    pub fn is_empty(&self) -> bool {
        self.connected.is_empty()
    }

    /// The count `status` reports.
    pub fn count(&self) -> u32 {
        u32::try_from(self.connected.len()).unwrap_or(u32::MAX)
    }

    /// The next peer in turn, so requests spread over all of them; `None` with no peers.
    pub fn next_in_turn(&mut self) -> Option<PeerId> {
        if self.connected.is_empty() {
            return None;
        }
        let (peer, _) = self.connected[self.next % self.connected.len()];
        self.next = self.next.wrapping_add(1);
        Some(peer)
    }
}
