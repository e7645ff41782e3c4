//! How every driver talks to the network task, hears from it (and from the stop request),
//! and counts the peer messages it drops.

use cairn_ledger::tx::Transaction;
use libp2p::PeerId;
use tokio::sync::{mpsc, watch};

use super::peers::Peers;
use super::{DriverError, NodeIo};
use crate::metrics::ReasonLabel;
use crate::p2p::{Command, Event, GossipId, Mismatch, Refusal, RequestId, Topic, Verdict};
use crate::txpool::gossip::publish_batches;

impl NodeIo {
    /// Queues a command for the network task; waits for room rather than growing memory.
    pub(crate) async fn command(&self, command: Command) -> Result<(), DriverError> {
        self.p2p
            .send(command)
            .await
            .map_err(|_| DriverError::NetworkStopped)
    }

    pub(crate) async fn publish(&self, topic: Topic, bytes: Vec<u8>) -> Result<(), DriverError> {
        self.command(Command::Publish { topic, bytes }).await
    }

    pub(crate) async fn publish_txs(&self, txs: &[Transaction]) -> Result<(), DriverError> {
        publish_batches(&self.p2p, txs, self.message_bytes_max).await
    }

    /// Transaction gossip reaching a driver: the node's network hands it to the admission
    /// worker itself ([`crate::p2p::TxRoute`]), so only a network started without that route
    /// delivers it here, and nobody admits it. Ignored, so gossipsub neither waits for a
    /// verdict nor forwards it.
    pub(crate) async fn unrouted_txs(&self, id: GossipId) -> Result<(), DriverError> {
        self.command(Command::GossipVerdict {
            id,
            verdict: Verdict::Ignore,
        })
        .await
    }

    /// Logs and reports a peer that sent invalid data, for scoring.
    pub(crate) async fn report(&self, peer: PeerId, reason: String) -> Result<(), DriverError> {
        tracing::warn!(%peer, %reason, "invalid data from peer");
        self.command(Command::ReportInvalid { peer, reason }).await
    }

    /// Counts a peer message dropped, by reason.
    pub(crate) fn drop_reason(&self, label: &'static str) {
        self.metrics
            .messages_dropped
            .get_or_create(&ReasonLabel { reason: label })
            .inc();
    }
}

/// What a driver's loop hears from outside itself, before anything of its own: the next
/// network event, or `None` when the node is stopping (return at once). A change of the stop
/// flag that does not ask to stop is not an answer. Cancel-safe, for `select!`.
pub(crate) async fn outside(
    events: &mut mpsc::Receiver<Event>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<Event>, DriverError> {
    loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return Ok(None);
                }
            }
            event = events.recv() => {
                return event.map(Some).ok_or(DriverError::NetworkStopped);
            }
        }
    }
}

/// A network event as a driver sees it, once [`NodeIo::hear`] has done what every driver
/// does with it: counting and logging peers, logging refusals, ignoring transaction gossip
/// that reached the driver.
pub(crate) enum Heard {
    /// Nothing left for the driver.
    Done,
    Connected(PeerId),
    Disconnected(PeerId),
    /// A consensus gossip message; answer with [`NodeIo::verdict`].
    Consensus {
        from: PeerId,
        id: GossipId,
        bytes: Vec<u8>,
    },
    Direct {
        from: PeerId,
        bytes: Vec<u8>,
    },
    /// A request; answer with [`NodeIo::respond`].
    Request {
        from: PeerId,
        id: RequestId,
        bytes: Vec<u8>,
    },
}

impl NodeIo {
    /// Does with `event` what every driver does, and hands over the rest.
    pub(crate) async fn hear(&self, peers: &mut Peers, event: Event) -> Result<Heard, DriverError> {
        Ok(match event {
            Event::PeerConnected { peer, info } => {
                peers.connected(peer, info);
                Heard::Connected(peer)
            }
            Event::PeerDisconnected { peer } => {
                peers.disconnected(&peer);
                Heard::Disconnected(peer)
            }
            Event::PeerRefused { peer, reason } => {
                if let Refusal::Handshake(Mismatch::Fork { ours, theirs }) = &reason
                    && let Some(u) = theirs.activated_unknown_to(ours)
                {
                    let other = peers.on_other_schedule(peer, &u.name, u.height);
                    tracing::warn!(%peer, "{}", other.hint());
                }
                tracing::warn!(%peer, %reason, "peer refused");
                Heard::Done
            }
            Event::Gossip {
                topic: Topic::Transactions,
                id,
                ..
            } => {
                self.unrouted_txs(id).await?;
                Heard::Done
            }
            Event::Gossip {
                from,
                topic: Topic::Consensus,
                id,
                bytes,
                ..
            } => Heard::Consensus { from, id, bytes },
            Event::Direct { from, bytes } => Heard::Direct { from, bytes },
            Event::InboundRequest { from, id, bytes } => Heard::Request { from, id, bytes },
        })
    }

    /// Tells gossip whether to relay a message it delivered.
    pub(crate) async fn verdict(&self, id: GossipId, verdict: Verdict) -> Result<(), DriverError> {
        self.command(Command::GossipVerdict { id, verdict }).await
    }

    /// Answers a peer's request.
    pub(crate) async fn respond(&self, id: RequestId, bytes: Vec<u8>) -> Result<(), DriverError> {
        self.command(Command::Respond { id, bytes }).await
    }
}
