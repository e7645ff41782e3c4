//! Admission of gossiped transactions, off the consensus thread.
//!
//! Under load a node receives thousands of transactions a second by gossip, and each costs a
//! signature verification. Done on the driver's thread, that work queued votes and proposals
//! behind it; here it runs on the node's runtime and its blocking pool, and the driver only
//! forwards the bytes (dropping them, counted, when this worker's queue is full) and hears
//! back that the pool grew.

use std::sync::{Arc, Mutex};

use cairn_ledger::store::Store;
use cairn_ledger::tx::{Transaction, verify_signatures};
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
///
/// Signatures are checked in one batch first (a third of the cost of checking each); only
/// when the batch fails is each transaction checked on its own, to find the bad ones.
fn admit(
    store: &Store,
    mempool: &Mutex<Mempool>,
    metrics: &Metrics,
    batch: Vec<GossipedTx>,
) -> (Vec<Outcome>, bool) {
    let decoded: Vec<(GossipedTx, Result<Transaction, String>)> = batch
        .into_iter()
        .map(|g| {
            let tx = Transaction::decode(&g.bytes).map_err(|e| e.to_string());
            (g, tx)
        })
        .collect();
    let fresh: Vec<Transaction> = {
        let pool = mempool.lock().unwrap_or_else(|e| e.into_inner());
        decoded
            .iter()
            .filter_map(|(_, tx)| tx.as_ref().ok())
            .filter(|tx| !pool.contains(&tx.hash()))
            .cloned()
            .collect()
    };
    let batch_verified = !fresh.is_empty() && verify_signatures(&fresh).is_ok();
    let mut any = false;
    let outcomes = decoded
        .into_iter()
        .map(|(g, tx)| {
            let tx = match tx {
                Ok(tx) => tx,
                Err(e) => {
                    metrics.reject("malformed");
                    let reason = format!("gossiped transaction is malformed: {e}");
                    return (g.from, g.id, Verdict::Reject, Some(reason));
                }
            };
            // One lock per transaction: RPC admissions interleave instead of waiting for the
            // whole batch.
            let mut pool = mempool.lock().unwrap_or_else(|e| e.into_inner());
            let result = if batch_verified {
                pool.insert_verified(tx, store)
            } else {
                pool.insert(tx, store)
            };
            drop(pool);
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

#[cfg(test)]
mod tests {
    use cairn_ledger::crypto::Keypair;
    use cairn_ledger::genesis::{EngineKind, Genesis};
    use cairn_ledger::tx::Payload;
    use cairn_ledger::{Address, Amount, Nonce, TimestampMs};

    use super::*;
    use crate::config::MempoolSection;

    fn transfer(chain: &str, key: &Keypair, nonce: u64) -> Transaction {
        Transaction::new_signed(
            chain,
            key,
            Nonce(nonce),
            Amount(1),
            Payload::Transfer {
                to: Address([7; 20]),
                amount: Amount(10),
            },
        )
    }

    fn gossiped(txs: &[Transaction]) -> Vec<GossipedTx> {
        txs.iter()
            .enumerate()
            .map(|(i, tx)| GossipedTx {
                from: PeerId::random(),
                id: GossipId::for_test(i as u64),
                bytes: tx.encode(),
            })
            .collect()
    }

    #[test]
    fn a_batch_with_one_forged_signature_admits_the_rest_and_rejects_only_it() {
        let dir = tempfile::tempdir().unwrap();
        let user = Keypair::from_secret(&[3; 32]);
        let validator = Keypair::from_secret(&[4; 32]);
        let genesis = Genesis::local(
            EngineKind::Bft,
            &[validator.public()],
            &[(user.public().address(), Amount(1_000_000))],
            TimestampMs(1_700_000_000_000),
        );
        let store = Store::open(dir.path(), &genesis).unwrap();
        let chain = store.chain_id().to_owned();
        let pool = Mutex::new(Mempool::new(&chain, MempoolSection::default()));
        let metrics = Metrics::new();

        let mut txs: Vec<Transaction> = (0..5).map(|n| transfer(&chain, &user, n)).collect();
        let (outcomes, any) = admit(&store, &pool, &metrics, gossiped(&txs));
        assert!(any);
        assert!(
            outcomes
                .iter()
                .all(|o| o.2 == Verdict::Accept && o.3.is_none())
        );
        assert_eq!(pool.lock().unwrap().len(), 5);

        let mut forged = transfer(&chain, &user, 6);
        forged.fee = Amount(2);
        txs = vec![
            transfer(&chain, &user, 5),
            forged,
            transfer(&chain, &user, 6),
        ];
        let (outcomes, _) = admit(&store, &pool, &metrics, gossiped(&txs));
        let verdicts: Vec<Verdict> = outcomes.iter().map(|o| o.2).collect();
        assert_eq!(
            verdicts,
            vec![Verdict::Accept, Verdict::Reject, Verdict::Accept]
        );
        assert!(outcomes[1].3.as_ref().unwrap().contains("signature"));
        assert_eq!(pool.lock().unwrap().len(), 7);

        // Bytes that are not a transaction are refused with a complaint, the rest admitted.
        let mut batch = gossiped(&[transfer(&chain, &user, 7)]);
        batch.push(GossipedTx {
            from: PeerId::random(),
            id: GossipId::for_test(99),
            bytes: vec![0xee; 40],
        });
        let (outcomes, _) = admit(&store, &pool, &metrics, batch);
        assert_eq!(outcomes[0].2, Verdict::Accept);
        assert_eq!(outcomes[1].2, Verdict::Reject);
        assert!(outcomes[1].3.as_ref().unwrap().contains("malformed"));
    }
}
