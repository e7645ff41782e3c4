//! The peers a driver is connected to, as the network reports them: counted for `status`,
//! taken in turn when the driver asks the network for something, and logged as they come and
//! go, the same way for every driver.
//!
//! Owns: the connected set. Never: decides whom to connect to or ban (the network does).

use libp2p::PeerId;

/// Connected peers, in the order they connected.
#[derive(Debug, Default)]
pub struct Peers {
    connected: Vec<PeerId>,
    next: usize,
}

impl Peers {
    pub fn connected(&mut self, peer: PeerId) {
        if !self.connected.contains(&peer) {
            self.connected.push(peer);
        }
        tracing::info!(%peer, peers = self.connected.len(), "peer connected");
    }

    pub fn disconnected(&mut self, peer: &PeerId) {
        self.connected.retain(|p| p != peer);
        tracing::info!(%peer, peers = self.connected.len(), "peer disconnected");
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
        let peer = self.connected[self.next % self.connected.len()];
        self.next = self.next.wrapping_add(1);
        Some(peer)
    }
}
