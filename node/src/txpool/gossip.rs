//! Gossip of transactions, and their admission off the consensus thread.
//!
//! Under load a node receives thousands of transactions a second by gossip, and each costs a
//! signature verification. Done on the driver's thread, that work queued votes and proposals
//! behind it; here it runs on the node's runtime and its blocking pool. The network task
//! hands the bytes straight to this worker's queue ([`crate::p2p::TxRoute`]; dropped, counted,
//! when it is full), so the driver's thread is not even woken for them, and the driver only
//! hears back that the pool grew.
//!
//! A gossip message carries a batch of transactions: what the RPC admitted since the
//! publisher ([`publish_rpc_admitted`], a task on the node's runtime) last looked. A quiet node still sends each transaction at once, alone; a loaded one sends
//! a few large messages instead of thousands of small ones, each of which cost a gossip
//! envelope, a noise and a yamux frame, a syscall and a wake-up on every peer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cairn_ledger::codec;
use cairn_ledger::store::Store;
use cairn_ledger::tx::{TX_BYTES_MAX, Transaction, verify_signatures};
use libp2p::PeerId;
use tokio::sync::{Notify, mpsc};

use crate::metrics::Metrics;
pub use crate::p2p::GossipedTx;
use crate::p2p::{Command, GossipId, P2pHandle, Topic, Verdict};
use crate::txpool::mempool::{Identified, Mempool, Rejection};

/// Gossip messages waiting for admission; beyond it they are dropped and counted. Each is at
/// most `message_bytes_max`; the network's byte budgets hold the queue to
/// [`crate::p2p::QUEUE_BYTES_MAX`] in total, and it holds 2,048 transactions at the least.
pub const TX_GOSSIP_QUEUE_MAX: usize = 2_048;
/// Transactions in one gossip message at most.
pub const TX_BATCH_MAX: usize = 256;
/// Bytes of one gossip message's batch at most: [`TX_BATCH_MAX`] of the largest
/// transactions and the length. Also capped by the node's `p2p.message_bytes_max`.
pub const TX_BATCH_BYTES_MAX: usize = TX_BATCH_MAX * TX_BYTES_MAX + 8;
/// Gossip messages admitted per trip to the blocking pool.
const ADMIT_MESSAGES_MAX: usize = 64;
/// Bytes of gossip messages admitted per trip (one larger message goes alone). Once taken
/// from the queue a message is outside the network's byte budgets, so by count alone the
/// worker held [`ADMIT_MESSAGES_MAX`] messages of `message_bytes_max` (256 MiB by default).
/// Now it holds at most this plus the one message that did not fit, which waits for the
/// next trip: 12 MiB by default. A loaded node's messages are batches of a few tens of KiB,
/// so the count still binds first for them.
pub const ADMIT_BYTES_MAX: usize = 8 << 20;

/// Encodes `txs` as gossip messages: in order, at most [`TX_BATCH_MAX`] transactions and
/// `bytes_max` bytes each (a transaction is never split; one larger than `bytes_max` goes
/// alone and the network refuses it, as it would have before batching).
pub fn encode_batches(txs: &[Transaction], bytes_max: usize) -> Vec<Vec<u8>> {
    let bytes_max = bytes_max.min(TX_BATCH_BYTES_MAX);
    let mut messages = Vec::new();
    let mut current: Vec<Vec<u8>> = Vec::new();
    let mut current_bytes = 8;
    for tx in txs {
        let encoded = tx.encode();
        if !current.is_empty()
            && (current.len() == TX_BATCH_MAX || current_bytes + encoded.len() > bytes_max)
        {
            messages.push(codec::encode_seq_of_encoded(&current));
            current.clear();
            current_bytes = 8;
        }
        current_bytes += encoded.len();
        current.push(encoded);
    }
    if !current.is_empty() {
        messages.push(codec::encode_seq_of_encoded(&current));
    }
    messages
}

/// Decodes one gossip message: a non-empty batch of at most [`TX_BATCH_MAX`] transactions,
/// in canonical form, each with its id taken from its own bytes in the message.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<Identified>, String> {
    let txs: Vec<(Transaction, &[u8])> = codec::decode_seq_with_encodings(
        bytes,
        TX_BATCH_BYTES_MAX,
        TX_BATCH_MAX,
        "transaction batch",
    )
    .map_err(|e| e.to_string())?;
    if txs.is_empty() {
        return Err(format!(
            "a transaction batch holds 0 transactions; 1 to {TX_BATCH_MAX} are allowed"
        ));
    }
    // The bounds of a transaction from anywhere, which the batch's own bounds do not imply.
    for (i, (tx, own)) in txs.iter().enumerate() {
        tx.check_bounds(own.len())
            .map_err(|e| format!("transaction {i} of the batch: {e}"))?;
    }
    Ok(txs
        .into_iter()
        .map(|(tx, own)| Identified::decoded_from(tx, own))
        .collect())
}

/// Gossip messages whose transactions together are at most this many bytes are admitted on
/// the runtime's own thread: a few signature checks cost less than handing them to the
/// blocking pool and back (two thread wake-ups, each a futex call and context switches on
/// both sides), which at a transaction every few milliseconds was most of the cost.
const INLINE_ADMIT_BYTES_MAX: usize = 1_024;

/// Tells a driver that the mempool grew, but only while it listens: a BFT leader holding back
/// an empty block until there is something to include, or a miner (always). Waking the
/// driver's thread for every admission when it had no use for it cost a futex call and two
/// context switches per transaction message on every node.
pub struct PoolGrowth {
    notify: Notify,
    wanted: AtomicBool,
}

impl PoolGrowth {
    pub fn new(wanted: bool) -> PoolGrowth {
        PoolGrowth {
            notify: Notify::new(),
            wanted: AtomicBool::new(wanted),
        }
    }

    /// Called after transactions entered the pool.
    pub fn grew(&self) {
        // SeqCst with `listen`: either the admission sees the driver listening, or the
        // driver's look at the pool, made after it started listening, sees the admission.
        if self.wanted.load(Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }

    /// Starts or stops listening. Start before looking at the pool, so that nothing
    /// admitted after the look goes unheard.
    pub fn listen(&self, wanted: bool) {
        self.wanted.store(wanted, Ordering::SeqCst);
    }

    pub async fn notified(&self) {
        self.notify.notified().await
    }
}

/// Gossips what the RPC admits, from the node's runtime rather than the driver's thread (so
/// no transaction wakes that thread): each message is what was admitted since the last one,
/// up to a batch. Runs until every sender of `admitted` is gone or the network stops.
pub async fn publish_rpc_admitted(
    mut admitted: mpsc::Receiver<Transaction>,
    p2p: P2pHandle,
    bytes_max: usize,
    growth: Arc<PoolGrowth>,
) {
    let mut txs = Vec::with_capacity(TX_BATCH_MAX);
    loop {
        txs.clear();
        if admitted.recv_many(&mut txs, TX_BATCH_MAX).await == 0 {
            return;
        }
        growth.grew();
        if publish_batches(&p2p, &txs, bytes_max).await.is_err() {
            return;
        }
    }
}

/// Publishes `txs` as transaction gossip, in as few messages as their sizes allow; fails only
/// when the network task has stopped.
pub async fn publish_batches(
    p2p: &P2pHandle,
    txs: &[Transaction],
    bytes_max: usize,
) -> Result<(), crate::host::DriverError> {
    for bytes in encode_batches(txs, bytes_max) {
        p2p.send(Command::Publish {
            topic: Topic::Transactions,
            bytes,
        })
        .await
        .map_err(|_| crate::host::DriverError::NetworkStopped)?;
    }
    Ok(())
}

/// What the worker reads and where it reports.
pub struct TxGossipWorker {
    pub store: Arc<Store>,
    pub mempool: Arc<Mutex<Mempool>>,
    pub metrics: Arc<Metrics>,
    pub p2p: P2pHandle,
    /// Told of admissions, so a leader holding back an empty block can fill it.
    pub growth: Arc<PoolGrowth>,
}

impl TxGossipWorker {
    /// Runs until every sender of `queue` is gone or the network stops.
    pub async fn run(self, mut queue: mpsc::Receiver<GossipedTx>) {
        let mut intake = Intake::default();
        loop {
            let Some(work) = intake.next_trip(&mut queue).await else {
                return;
            };
            let bytes: usize = work.iter().map(|g| g.bytes.len()).sum();
            let (outcomes, any) = if bytes <= INLINE_ADMIT_BYTES_MAX {
                admit(&self.store, &self.mempool, &self.metrics, work)
            } else {
                let (store, mempool, metrics) = (
                    Arc::clone(&self.store),
                    Arc::clone(&self.mempool),
                    Arc::clone(&self.metrics),
                );
                let admitted =
                    tokio::task::spawn_blocking(move || admit(&store, &mempool, &metrics, work));
                let Ok(done) = admitted.await else {
                    tracing::error!("gossiped-transaction admission panicked");
                    continue;
                };
                done
            };
            if any {
                self.growth.grew();
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

/// What the worker has taken from its queue and not yet admitted, beyond the trip under way.
#[derive(Default)]
struct Intake {
    /// The message that did not fit in the last trip: the first of the next.
    carried: Option<GossipedTx>,
}

impl Intake {
    /// The next trip's messages, in the order they arrived: at most [`ADMIT_MESSAGES_MAX`]
    /// of them and [`ADMIT_BYTES_MAX`] bytes, or one larger message alone. Waits for the
    /// first; `None` once the queue is closed and empty.
    async fn next_trip(
        &mut self,
        queue: &mut mpsc::Receiver<GossipedTx>,
    ) -> Option<Vec<GossipedTx>> {
        let first = match self.carried.take() {
            Some(message) => message,
            None => queue.recv().await?,
        };
        let mut bytes = first.bytes.len();
        let mut trip = Vec::with_capacity(ADMIT_MESSAGES_MAX);
        trip.push(first);
        while trip.len() < ADMIT_MESSAGES_MAX {
            let Ok(next) = queue.try_recv() else {
                break;
            };
            if bytes + next.bytes.len() > ADMIT_BYTES_MAX {
                self.carried = Some(next);
                break;
            }
            bytes += next.bytes.len();
            trip.push(next);
        }
        debug_assert!(trip.len() == 1 || bytes <= ADMIT_BYTES_MAX);
        Some(trip)
    }
}

type Outcome = (PeerId, GossipId, Verdict, Option<String>);

/// Admits the transactions of several gossip messages; returns each message's verdict (and
/// complaint) and whether any transaction got in.
///
/// Signatures are checked in one batch first (a third of the cost of checking each); only
/// when the batch fails is each transaction checked on its own, to find the bad ones. A
/// message is accepted (and passed on, if it is to be relayed) when it brought something new
/// and nothing invalid; one invalid transaction rejects the message and blames its sender,
/// though the valid ones in it are still admitted.
fn admit(
    store: &Store,
    mempool: &Mutex<Mempool>,
    metrics: &Metrics,
    messages: Vec<GossipedTx>,
) -> (Vec<Outcome>, bool) {
    // Ids before taking the lock: RPC admissions wait on it, and hashing need not.
    let decoded: Vec<(GossipedTx, Result<Vec<Identified>, String>)> = messages
        .into_iter()
        .map(|g| {
            let txs = decode_batch(&g.bytes);
            (g, txs)
        })
        .collect();
    let fresh: Vec<&Transaction> = {
        let pool = mempool.lock().unwrap_or_else(|e| e.into_inner());
        decoded
            .iter()
            .filter_map(|(_, txs)| txs.as_ref().ok())
            .flatten()
            .filter(|tx| !pool.contains(&tx.id()))
            .map(Identified::tx)
            .collect()
    };
    let batch_verified = !fresh.is_empty() && verify_signatures(fresh).is_ok();
    let mut any = false;
    let outcomes = decoded
        .into_iter()
        .map(|(g, txs)| {
            let txs = match txs {
                Ok(txs) => txs,
                Err(e) => {
                    metrics.reject("malformed");
                    let reason = format!("gossiped transactions are malformed: {e}");
                    return (g.from, g.id, Verdict::Reject, Some(reason));
                }
            };
            let mut verdict = Verdict::Ignore;
            let mut complaint = None;
            for tx in txs {
                // One lock per transaction: RPC admissions interleave instead of waiting for
                // the whole batch.
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
                        // Ignoring is how gossipsub is told to keep a good message to itself.
                        if verdict == Verdict::Ignore && g.relay {
                            verdict = Verdict::Accept;
                        }
                    }
                    Err(r) => {
                        metrics.reject(r.reason());
                        if matches!(
                            r,
                            Rejection::BadSignature(_)
                                | Rejection::WrongChain { .. }
                                | Rejection::TooLarge { .. }
                        ) {
                            verdict = Verdict::Reject;
                            complaint.get_or_insert_with(|| {
                                format!("gossiped transaction refused: {r}")
                            });
                        }
                    }
                }
            }
            (g.from, g.id, verdict, complaint)
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

    /// Each of `messages` as one gossip message.
    fn gossiped(messages: &[&[Transaction]]) -> Vec<GossipedTx> {
        messages
            .iter()
            .enumerate()
            .map(|(i, txs)| GossipedTx {
                from: PeerId::random(),
                id: GossipId::for_test(i as u64),
                bytes: codec::encode(&txs.to_vec()),
                relay: true,
            })
            .collect()
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        chain: String,
        user: Keypair,
        pool: Mutex<Mempool>,
        metrics: Metrics,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let user = Keypair::from_secret(&[3; 32]);
        let validator = Keypair::from_secret(&[4; 32]);
        let genesis = Genesis::local(
            EngineKind::HotStuff,
            &[validator.public()],
            &[(user.public().address(), Amount(1_000_000))],
            TimestampMs(1_700_000_000_000),
        );
        let store = Store::open(dir.path(), &genesis).unwrap();
        let chain = store.chain_id().to_owned();
        let pool = Mutex::new(Mempool::new(&chain, MempoolSection::default()));
        Fixture {
            _dir: dir,
            store,
            chain,
            user,
            pool,
            metrics: Metrics::new(),
        }
    }

    /// Whether `growth` has a wake-up waiting (without waiting for one).
    fn woken(growth: &PoolGrowth) -> bool {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_millis(20), growth.notified())
                .await
                .is_ok()
        })
    }

    #[test]
    fn pool_growth_wakes_the_driver_only_while_it_listens() {
        let growth = PoolGrowth::new(false);
        growth.grew();
        assert!(!woken(&growth), "nobody listened, nobody is woken");

        growth.listen(true);
        growth.grew();
        assert!(
            woken(&growth),
            "growth while listening is kept until the driver looks"
        );
        assert!(!woken(&growth), "one wake-up per growth seen");

        growth.listen(false);
        growth.grew();
        assert!(!woken(&growth));
        assert!(
            !woken(&PoolGrowth::new(true)),
            "no growth, no wake-up, even for a listener"
        );
    }

    #[test]
    fn new_transactions_not_to_be_relayed_are_admitted_and_kept_from_forwarding() {
        let f = fixture();
        let txs: Vec<Transaction> = (0..3).map(|n| transfer(&f.chain, &f.user, n)).collect();
        let mut messages = gossiped(&[&txs[..2], &txs[2..]]);
        messages[0].relay = false;
        let (outcomes, any) = admit(&f.store, &f.pool, &f.metrics, messages);
        assert!(any);
        let verdicts: Vec<Verdict> = outcomes.iter().map(|o| o.2).collect();
        assert_eq!(verdicts, vec![Verdict::Ignore, Verdict::Accept]);
        assert_eq!(f.pool.lock().unwrap().len(), 3);

        // Not relaying does not spare an invalid message the blame.
        let mut forged = transfer(&f.chain, &f.user, 3);
        forged.fee = Amount(2);
        let mut messages = gossiped(&[&[forged]]);
        messages[0].relay = false;
        let (outcomes, _) = admit(&f.store, &f.pool, &f.metrics, messages);
        assert_eq!(outcomes[0].2, Verdict::Reject);
        assert!(outcomes[0].3.as_ref().unwrap().contains("signature"));
    }

    #[test]
    fn a_message_with_one_forged_signature_is_rejected_and_its_valid_transactions_admitted() {
        let f = fixture();
        let txs: Vec<Transaction> = (0..5).map(|n| transfer(&f.chain, &f.user, n)).collect();
        let (outcomes, any) = admit(
            &f.store,
            &f.pool,
            &f.metrics,
            gossiped(&[&txs[..2], &txs[2..]]),
        );
        assert!(any);
        assert!(
            outcomes
                .iter()
                .all(|o| o.2 == Verdict::Accept && o.3.is_none())
        );
        assert_eq!(f.pool.lock().unwrap().len(), 5);

        let mut forged = transfer(&f.chain, &f.user, 6);
        forged.fee = Amount(2);
        let honest = [transfer(&f.chain, &f.user, 5)];
        let mixed = [forged, transfer(&f.chain, &f.user, 6)];
        let (outcomes, _) = admit(&f.store, &f.pool, &f.metrics, gossiped(&[&honest, &mixed]));
        let verdicts: Vec<Verdict> = outcomes.iter().map(|o| o.2).collect();
        assert_eq!(verdicts, vec![Verdict::Accept, Verdict::Reject]);
        assert!(outcomes[1].3.as_ref().unwrap().contains("signature"));
        // The honest nonce 6 in the rejected message still got in.
        assert_eq!(f.pool.lock().unwrap().len(), 7);

        // Only what is already pending: nothing to forward, nobody to blame.
        let (outcomes, any) = admit(&f.store, &f.pool, &f.metrics, gossiped(&[&honest]));
        assert!(!any);
        assert_eq!(
            (outcomes[0].2, outcomes[0].3.as_ref()),
            (Verdict::Ignore, None)
        );

        // Bytes that are not a batch are refused with a complaint, the rest admitted.
        let next = [transfer(&f.chain, &f.user, 7)];
        let mut messages = gossiped(&[&next]);
        messages.push(GossipedTx {
            from: PeerId::random(),
            id: GossipId::for_test(99),
            bytes: vec![0xee; 40],
            relay: true,
        });
        let (outcomes, _) = admit(&f.store, &f.pool, &f.metrics, messages);
        assert_eq!(outcomes[0].2, Verdict::Accept);
        assert_eq!(outcomes[1].2, Verdict::Reject);
        assert!(outcomes[1].3.as_ref().unwrap().contains("malformed"));
    }

    #[test]
    fn batches_split_by_count_and_by_bytes_and_decode_to_the_same_transactions() {
        let f = fixture();
        let txs: Vec<Transaction> = (0..(TX_BATCH_MAX as u64 * 2 + 3))
            .map(|n| transfer(&f.chain, &f.user, n))
            .collect();
        let messages = encode_batches(&txs, usize::MAX);
        let sizes: Vec<usize> = messages
            .iter()
            .map(|m| decode_batch(m).unwrap().len())
            .collect();
        assert_eq!(sizes, vec![TX_BATCH_MAX, TX_BATCH_MAX, 3]);
        let back: Vec<Identified> = messages
            .iter()
            .flat_map(|m| decode_batch(m).unwrap())
            .collect();
        assert_eq!(back.len(), txs.len());
        for (got, tx) in back.iter().zip(&txs) {
            assert_eq!(got.tx(), tx);
            assert_eq!(got.id(), tx.hash());
        }

        let one = txs[0].encode().len();
        let messages = encode_batches(&txs[..10], 8 + 3 * one);
        assert_eq!(messages.len(), 4);
        assert!(messages.iter().all(|m| m.len() <= 8 + 3 * one));
        assert_eq!(encode_batches(&txs[..1], 1).len(), 1);
        assert!(encode_batches(&[], 1_000).is_empty());
    }

    #[tokio::test]
    async fn the_worker_holds_at_most_its_byte_budget_and_one_message_and_keeps_the_order() {
        let mib = 1 << 20;
        let (tx, mut queue) = mpsc::channel(TX_GOSSIP_QUEUE_MAX);
        let message = |n: usize, len: usize, from: PeerId| GossipedTx {
            from,
            id: GossipId::for_test(n as u64),
            bytes: vec![0; len],
            relay: true,
        };
        // Twenty of 1 MiB, one larger than a trip's bytes, then small ones over the count.
        let mut sizes = vec![mib; 20];
        sizes.push(ADMIT_BYTES_MAX + 1);
        sizes.extend(vec![100; ADMIT_MESSAGES_MAX + 5]);
        let senders: Vec<PeerId> = sizes.iter().map(|_| PeerId::random()).collect();
        for (n, &len) in sizes.iter().enumerate() {
            tx.try_send(message(n, len, senders[n])).unwrap();
        }
        drop(tx);
        let mut intake = Intake::default();
        let mut trips = Vec::new();
        let mut seen = 0;
        while let Some(trip) = intake.next_trip(&mut queue).await {
            let bytes: usize = trip.iter().map(|m| m.bytes.len()).sum();
            let carried = intake.carried.as_ref().map_or(0, |m| m.bytes.len());
            assert!(trip.len() <= ADMIT_MESSAGES_MAX);
            assert!(
                trip.len() == 1 || bytes <= ADMIT_BYTES_MAX,
                "{bytes} in a trip"
            );
            assert!(
                bytes + carried <= 2 * (ADMIT_BYTES_MAX + 1),
                "{bytes} + {carried} held"
            );
            for m in &trip {
                assert_eq!(m.from, senders[seen], "out of order");
                seen += 1;
            }
            trips.push(trip.len());
        }
        assert_eq!(seen, sizes.len());
        assert_eq!(trips, vec![8, 8, 4, 1, ADMIT_MESSAGES_MAX, 5]);
    }

    #[test]
    fn an_empty_or_oversized_batch_is_refused_with_its_count() {
        let f = fixture();
        let none: Vec<Transaction> = Vec::new();
        let e = decode_batch(&codec::encode(&none)).unwrap_err();
        assert!(e.contains("holds 0 transactions"), "{e}");
        let tx = transfer(&f.chain, &f.user, 0);
        let too_many = vec![tx; TX_BATCH_MAX + 1];
        let e = decode_batch(&codec::encode(&too_many)).unwrap_err();
        assert!(
            e.contains(&format!("claims {} elements", TX_BATCH_MAX + 1)),
            "{e}"
        );
    }
}
