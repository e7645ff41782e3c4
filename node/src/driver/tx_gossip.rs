//! Admission of gossiped transactions, off the consensus thread.
//!
//! Under load a node receives thousands of transactions a second by gossip, and each costs a
//! signature verification. Done on the driver's thread, that work queued votes and proposals
//! behind it; here it runs on the node's runtime and its blocking pool, and the driver only
//! forwards the bytes (dropping them, counted, when this worker's queue is full) and hears
//! back that the pool grew.

use std::sync::{Arc, Mutex};

use cairn_ledger::store::Store;
use cairn_ledger::tx::Transaction;
use libp2p::PeerId;
use tokio::sync::{Notify, mpsc};

use crate::mempool::{Mempool, Rejection};
use crate::metrics::Metrics;
use crate::p2p::{Command, GossipId, P2pHandle, Verdict};

/// Gossiped transactions waiting for admission; beyond it they are dropped and counted.
pub const TX_GOSSIP_QUEUE_MAX: usize = 16_384;
/// Transactions admitted per trip to the blocking pool.
const ADMIT_BATCH_MAX: usize = 256;

/// One gossiped transaction as the network delivered it.
pub struct GossipedTx {
    pub from: PeerId,
    pub id: GossipId,
    pub bytes: Vec<u8>,
}

/// What the worker reads and where it reports.
pub struct TxGossipWorker {
    pub store: Arc<Store>,
    pub mempool: Arc<Mutex<Mempool>>,
    pub metrics: Arc<Metrics>,
    pub p2p: P2pHandle,
    /// Woken after admissions, so a leader holding back an empty block can fill it.
    pub admitted: Arc<Notify>,
}

impl TxGossipWorker {
    /// Runs until every sender of `queue` is gone or the network stops.
    pub async fn run(self, mut queue: mpsc::Receiver<GossipedTx>) {
        let mut batch = Vec::with_capacity(ADMIT_BATCH_MAX);
        loop {
            batch.clear();
            if queue.recv_many(&mut batch, ADMIT_BATCH_MAX).await == 0 {
                return;
            }
            let work = std::mem::take(&mut batch);
            let (store, mempool, metrics) = (
                Arc::clone(&self.store),
                Arc::clone(&self.mempool),
                Arc::clone(&self.metrics),
            );
            let Ok((outcomes, any)) =
                tokio::task::spawn_blocking(move || admit(&store, &mempool, &metrics, work)).await
            else {
                tracing::error!("gossiped-transaction admission panicked");
                continue;
            };
            if any {
                self.admitted.notify_one();
            }
            for (from, id, verdict, complaint) in outcomes {
                if let Some(reason) = complaint {
                    tracing::warn!(peer = %from, %reason, "invalid data from peer");
                    if self
                        .p2p
                        .send(Command::ReportInvalid { peer: from, reason })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                if self
                    .p2p
                    .send(Command::GossipVerdict { id, verdict })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

type Outcome = (PeerId, GossipId, Verdict, Option<String>);

/// Admits a batch; returns each one's verdict (and complaint) and whether any got in.
fn admit(
    store: &Store,
    mempool: &Mutex<Mempool>,
    metrics: &Metrics,
    batch: Vec<GossipedTx>,
) -> (Vec<Outcome>, bool) {
    let mut any = false;
    let outcomes = batch
        .into_iter()
        .map(|g| {
            let tx = match Transaction::decode(&g.bytes) {
                Ok(tx) => tx,
                Err(e) => {
                    metrics.reject("malformed");
                    let reason = format!("gossiped transaction is malformed: {e}");
                    return (g.from, g.id, Verdict::Reject, Some(reason));
                }
            };
            // One lock per transaction: RPC admissions interleave instead of waiting for the
            // whole batch.
            let result = mempool
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(tx, store);
            match result {
                Ok(_) => {
                    any = true;
                    (g.from, g.id, Verdict::Accept, None)
                }
                Err(r) => {
                    metrics.reject(r.reason());
                    match r {
                        Rejection::BadSignature(_)
                        | Rejection::WrongChain { .. }
                        | Rejection::TooLarge { .. } => {
                            let reason = format!("gossiped transaction refused: {r}");
                            (g.from, g.id, Verdict::Reject, Some(reason))
                        }
                        _ => (g.from, g.id, Verdict::Ignore, None),
                    }
                }
            }
        })
        .collect();
    (outcomes, any)
}
