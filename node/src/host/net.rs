//! How every driver talks to the network task and counts the peer messages it drops.

use cairn_ledger::tx::Transaction;
use libp2p::PeerId;

use super::{DriverError, NodeIo};
use crate::metrics::ReasonLabel;
use crate::p2p::{Command, GossipId, Topic, Verdict};
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
