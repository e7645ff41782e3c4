//! Serving committed blocks from the store to peers that are catching up, off the driver's
//! thread.
//!
//! An answer reads, decodes and re-encodes up to [`SYNC_BLOCKS_MAX`] blocks (several
//! megabytes under load); on the driver's thread that held up every round while a peer
//! caught up. Here it runs on tokio's blocking pool, bounded: one request in flight per
//! peer and [`SYNC_SERVES_MAX`] in all, of which nodes outside the committee hold at most
//! [`FULL_NODE_SERVES_MAX`], so a lagging validator never waits behind full nodes. Requests
//! beyond that are dropped and counted (`cairn_messages_dropped_total{reason="sync_busy"}`);
//! the requester asks again next round.
//!
//! Owns: which requests the store answers, and the answers. Never: writes to the store,
//! or answers what the engine answers (certified blocks not yet committed here).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cairn_consensus::hotstuff::{QC_BYTES_MAX, SYNC_BLOCKS_MAX, SyncRequest, SyncResponse};
use cairn_ledger::block::{Block, QuorumCert};
use cairn_ledger::codec;
use cairn_ledger::store::{Store, StoreError};
use cairn_ledger::{Height, PublicKey};
use libp2p::PeerId;

use super::chain::TIP_QC_KEY;
use crate::p2p::P2pHandle;

/// Sync answers being prepared at once, across all peers.
pub const SYNC_SERVES_MAX: usize = 2;
/// Of those, answers to peers that are not genesis validators at once: the rest are kept
/// for validators, whose catching up the committee's liveness needs.
pub const FULL_NODE_SERVES_MAX: usize = 1;
const _: () = assert!(FULL_NODE_SERVES_MAX < SYNC_SERVES_MAX);
/// Whether the store, rather than the engine, answers `request` at committed tip `tip`.
///
/// For a validator, only requests the engine can no longer serve: the whole answer and the
/// block after it committed here (the engine answers the rest with its certified,
/// uncommitted blocks too). A node outside the committee (`up_to_tip`) is never answered
/// by the engine, which serves validators only: it gets what is committed, up to the tip,
/// and follows the rest from proposals.
pub fn store_answers(tip: Height, request: &SyncRequest, up_to_tip: bool) -> bool {
    let from = request.from_height.0;
    let too_recent = if up_to_tip {
        from > tip.0
    } else {
        from.saturating_add(SYNC_BLOCKS_MAX as u64) > tip.0
    };
    from != 0 && !too_recent
}

/// Committed blocks from `request.from_height`, at most `bytes_max` of them encoded (at
/// least one), with the next block's justify (or, for the tip, its stored certificate) as
/// the certificate of the last one. `None` when the store cannot answer after all (the tip
/// moved past the certificate read); the requester asks again.
pub fn committed_blocks(
    store: &Store,
    request: &SyncRequest,
    bytes_max: usize,
) -> Result<Option<SyncResponse>, StoreError> {
    let tip = store.tip();
    let from = request.from_height.0;
    let count = (request.blocks_max as usize).clamp(1, SYNC_BLOCKS_MAX) as u64;
    let mut blocks = Vec::new();
    let mut bytes = 0usize;
    for h in from..from.saturating_add(count).min(tip.height.0 + 1) {
        let Some(block) = store.block_at(Height(h))? else {
            return Ok(None);
        };
        bytes += codec::encode(&block).len();
        if !blocks.is_empty() && bytes > bytes_max {
            break;
        }
        blocks.push(block);
    }
    if blocks.is_empty() {
        return Ok(None);
    }
    let next = from + blocks.len() as u64;
    let tip_qc = match store.header_at(Height(next))? {
        Some(child) => match child.seal.parent_cert() {
            Some(cert) => cert.clone(),
            None => return Ok(None),
        },
        None => {
            // The last block is the tip: its certificate is stored with it. If the tip
            // moved since, the certificate is for another block; the requester asks again.
            let Some(bytes) = store.get_consensus(TIP_QC_KEY)? else {
                return Ok(None);
            };
            let Ok(qc) = codec::decode::<QuorumCert>(&bytes, QC_BYTES_MAX, "tip QC") else {
                return Ok(None);
            };
            if blocks.last().map(Block::hash) != Some(qc.block) {
                return Ok(None);
            }
            qc
        }
    };
    Ok(Some(SyncResponse { blocks, tip_qc }))
}

/// Answers sync requests from the store in the background, within the bounds above.
pub struct SyncServer {
    store: Arc<Store>,
    p2p: P2pHandle,
    /// The engine's wire form of an answer.
    encode: fn(SyncResponse) -> Vec<u8>,
    /// Peers with an answer being prepared, and whether each is a validator; at most
    /// [`SYNC_SERVES_MAX`], at most [`FULL_NODE_SERVES_MAX`] of them not validators.
    serving: Arc<Mutex<HashMap<PeerId, bool>>>,
}

/// Why a request was not taken on.
#[derive(Debug, PartialEq, Eq)]
pub enum Busy {
    /// An answer to this peer is still being prepared.
    Peer,
    /// [`SYNC_SERVES_MAX`] answers are being prepared.
    Full,
    /// A peer outside the committee, and [`FULL_NODE_SERVES_MAX`] such are being served.
    FullNodes,
}

impl SyncServer {
    pub fn new(
        store: Arc<Store>,
        p2p: P2pHandle,
        encode: fn(SyncResponse) -> Vec<u8>,
    ) -> SyncServer {
        SyncServer {
            store,
            p2p,
            encode,
            serving: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Starts answering `request` from `peer` (validator key `key`) with at most
    /// `bytes_max` of blocks. Must run on a tokio runtime.
    pub fn start(
        &self,
        peer: PeerId,
        key: PublicKey,
        request: SyncRequest,
        bytes_max: usize,
    ) -> Result<(), Busy> {
        {
            let validator = self.p2p.is_validator(&peer);
            let mut serving = self.serving.lock().unwrap_or_else(|e| e.into_inner());
            if serving.contains_key(&peer) {
                return Err(Busy::Peer);
            }
            if serving.len() >= SYNC_SERVES_MAX {
                return Err(Busy::Full);
            }
            let full_nodes = serving.values().filter(|v| !**v).count();
            if !validator && full_nodes >= FULL_NODE_SERVES_MAX {
                return Err(Busy::FullNodes);
            }
            serving.insert(peer, validator);
            assert!(serving.len() <= SYNC_SERVES_MAX);
            assert!(serving.values().filter(|v| !**v).count() <= FULL_NODE_SERVES_MAX);
        }
        let slot = Slot {
            serving: Arc::clone(&self.serving),
            peer,
        };
        let store = Arc::clone(&self.store);
        let p2p = self.p2p.clone();
        let encode = self.encode;
        tokio::spawn(async move {
            let answer = tokio::task::spawn_blocking(move || {
                committed_blocks(&store, &request, bytes_max).map(|r| r.map(encode))
            })
            .await;
            match answer {
                Ok(Ok(Some(bytes))) => {
                    // A stopped network means the node is stopping: nothing to do.
                    let _ = p2p.send_direct(peer, bytes).await;
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(%key, error = %e, "serving committed blocks failed")
                }
                Err(e) => tracing::error!(%key, error = %e, "serving committed blocks panicked"),
            }
            drop(slot);
        });
        Ok(())
    }
}

/// A peer's place among those being served, given back when dropped (also on a panic).
struct Slot {
    serving: Arc<Mutex<HashMap<PeerId, bool>>>,
    peer: PeerId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.serving
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.peer);
    }
}

#[cfg(test)]
mod tests {
    use cairn_ledger::block::BlockHeader;
    use cairn_ledger::crypto::Keypair;
    use cairn_ledger::genesis::{EngineKind, Genesis};
    use cairn_ledger::state::SigCheck;
    use cairn_ledger::{Amount, Hash, ProtocolVersion, Round, TimestampMs};
    use tokio::sync::mpsc;

    use super::*;
    use crate::hotstuff::seam::BftEngine;
    use cairn_ledger::block::Seal;

    fn hotstuff_answer(r: SyncResponse) -> Vec<u8> {
        <cairn_consensus::hotstuff::Engine as BftEngine>::encode_sync_response(r)
    }
    use crate::p2p::Command;

    /// A store with `n` committed blocks over genesis, each certified by its child's justify,
    /// and the tip's certificate where the driver keeps it.
    fn store_with(n: u64) -> (tempfile::TempDir, Arc<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let validator = Keypair::from_secret(&[1; 32]);
        let genesis = Genesis::local(
            EngineKind::HotStuff,
            &[validator.public()],
            &[],
            TimestampMs(1_700_000_000_000),
        );
        let store = Arc::new(Store::open(dir.path(), &genesis).unwrap());
        for _ in 0..n {
            let tip = store.tip();
            let block = Block {
                header: BlockHeader {
                    height: Height(0),
                    parent: Hash::ZERO,
                    timestamp: TimestampMs(1_700_000_001_000 + tip.height.0 * 1000),
                    tx_root: Hash::ZERO,
                    state_root: Hash::ZERO,
                    proposer: validator.public().address(),
                    protocol_version: ProtocolVersion(0),
                    seal: Seal::HotStuff {
                        round: Round(tip.height.0 + 1),
                        justify: qc_for(tip.height.0, tip.hash),
                    },
                },
                transactions: Vec::new(),
            };
            let prepared = store
                .complete_block(block, Amount::ZERO, SigCheck::EachAlone)
                .unwrap();
            store.commit(&prepared).unwrap();
        }
        let tip = store.tip();
        let tip_qc = qc_for(tip.height.0 + 1, tip.hash);
        store
            .put_consensus(TIP_QC_KEY, &codec::encode(&tip_qc))
            .unwrap();
        (dir, store)
    }

    fn qc_for(round: u64, block: Hash) -> QuorumCert {
        QuorumCert {
            round: Round(round),
            block,
            votes: Vec::new(),
        }
    }

    fn request(from: u64, blocks_max: u32) -> SyncRequest {
        SyncRequest {
            from_height: Height(from),
            blocks_max,
        }
    }

    fn heights(answer: &SyncResponse) -> Vec<u64> {
        answer.blocks.iter().map(|b| b.header.height.0).collect()
    }

    #[test]
    fn the_store_answers_committed_ranges_and_leaves_recent_ones_to_the_engine() {
        let tip = Height(100);
        let window = SYNC_BLOCKS_MAX as u64;
        // A validator: only when the whole answer and the block after it are committed.
        assert!(store_answers(tip, &request(1, 64), false));
        assert!(store_answers(tip, &request(100 - window, 64), false));
        assert!(!store_answers(tip, &request(101 - window, 64), false));
        // A full node: anything committed.
        assert!(store_answers(tip, &request(100, 64), true));
        assert!(!store_answers(tip, &request(101, 64), true));
        // Height 0 is genesis, which everyone has.
        assert!(!store_answers(tip, &request(0, 64), true));
    }

    #[test]
    fn committed_blocks_come_with_the_certificate_of_the_last_one() {
        let (_dir, store) = store_with(10);
        let answer = committed_blocks(&store, &request(3, 4), usize::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(heights(&answer), [3, 4, 5, 6]);
        let Seal::HotStuff { justify, .. } = store.header_at(Height(7)).unwrap().unwrap().seal
        else {
            panic!("block 7 is a HotStuff block");
        };
        assert_eq!(answer.tip_qc, justify);
        assert_eq!(answer.tip_qc.block, answer.blocks[3].hash());

        // Up to the tip, whose certificate is the stored one.
        let answer = committed_blocks(&store, &request(8, 64), usize::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(heights(&answer), [8, 9, 10]);
        assert_eq!(answer.tip_qc.block, store.tip().hash);

        // The byte bound cuts the answer, but never to nothing.
        let answer = committed_blocks(&store, &request(3, 4), 1)
            .unwrap()
            .unwrap();
        assert_eq!(heights(&answer), [3]);

        // A stored certificate for another block (the tip moved meanwhile): no answer.
        store
            .put_consensus(TIP_QC_KEY, &codec::encode(&qc_for(99, Hash([7; 32]))))
            .unwrap();
        assert!(
            committed_blocks(&store, &request(8, 64), usize::MAX)
                .unwrap()
                .is_none()
        );
        // Nothing above the tip.
        assert!(
            committed_blocks(&store, &request(11, 64), usize::MAX)
                .unwrap()
                .is_none()
        );
    }

    /// The peer the next `SendDirect` goes to, and the heights it carries.
    async fn next_answer(commands: &mut mpsc::Receiver<Command>) -> (PeerId, Vec<u64>) {
        let command = tokio::time::timeout(std::time::Duration::from_secs(10), commands.recv())
            .await
            .expect("an answer within 10 s")
            .expect("the handle is alive");
        let Command::SendDirect { peer, bytes } = command else {
            panic!("expected a direct message, got {command:?}");
        };
        let Ok(cairn_consensus::hotstuff::Message::SyncResponse(answer)) =
            cairn_consensus::hotstuff::Message::decode(&bytes)
        else {
            panic!("expected a sync answer");
        };
        (peer, heights(&answer))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn one_answer_in_flight_per_peer_and_at_most_sync_serves_max_in_all() {
        let (_dir, store) = store_with(5);
        let peers: Vec<PeerId> = (0..=SYNC_SERVES_MAX).map(|_| PeerId::random()).collect();
        let (p2p, mut commands) =
            P2pHandle::for_test_with_validators(peers.iter().copied().collect());
        let server = SyncServer::new(store, p2p, hotstuff_answer);
        let key = Keypair::from_secret(&[2; 32]).public();
        // Nothing spawned runs before this test awaits, so every answer is still in flight.
        for peer in &peers[..SYNC_SERVES_MAX] {
            assert_eq!(server.start(*peer, key, request(1, 2), usize::MAX), Ok(()));
        }
        assert_eq!(
            server.start(peers[0], key, request(3, 2), usize::MAX),
            Err(Busy::Peer)
        );
        let last = peers[SYNC_SERVES_MAX];
        assert_eq!(
            server.start(last, key, request(1, 2), usize::MAX),
            Err(Busy::Full)
        );
        let mut answered = Vec::new();
        for _ in 0..SYNC_SERVES_MAX {
            let (peer, heights) = next_answer(&mut commands).await;
            assert_eq!(heights, [1, 2]);
            answered.push(peer);
        }
        answered.sort();
        let mut expected = peers[..SYNC_SERVES_MAX].to_vec();
        expected.sort();
        assert_eq!(answered, expected);
        // Answered peers give their places back once their answer is queued.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while server.start(last, key, request(4, 2), usize::MAX).is_err() {
            assert!(tokio::time::Instant::now() < deadline, "no place freed");
            tokio::task::yield_now().await;
        }
        assert_eq!(next_answer(&mut commands).await, (last, vec![4, 5]));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn full_nodes_hold_at_most_their_share_and_validators_find_the_rest() {
        let (_dir, store) = store_with(5);
        let validators: Vec<PeerId> = (0..SYNC_SERVES_MAX).map(|_| PeerId::random()).collect();
        let full_nodes: Vec<PeerId> = (0..SYNC_SERVES_MAX).map(|_| PeerId::random()).collect();
        let (p2p, mut commands) =
            P2pHandle::for_test_with_validators(validators.iter().copied().collect());
        let server = SyncServer::new(store, p2p, hotstuff_answer);
        let key = Keypair::from_secret(&[2; 32]).public();
        // Full nodes ask first and take only their share.
        for peer in &full_nodes[..FULL_NODE_SERVES_MAX] {
            assert_eq!(server.start(*peer, key, request(1, 2), usize::MAX), Ok(()));
        }
        for peer in &full_nodes[FULL_NODE_SERVES_MAX..] {
            assert_eq!(
                server.start(*peer, key, request(1, 2), usize::MAX),
                Err(Busy::FullNodes)
            );
        }
        // Every place left is a validator's.
        let left = SYNC_SERVES_MAX - FULL_NODE_SERVES_MAX;
        for peer in &validators[..left] {
            assert_eq!(server.start(*peer, key, request(1, 2), usize::MAX), Ok(()));
        }
        let mut answered = Vec::new();
        for _ in 0..SYNC_SERVES_MAX {
            answered.push(next_answer(&mut commands).await.0);
        }
        answered.sort();
        let mut expected = [&full_nodes[..FULL_NODE_SERVES_MAX], &validators[..left]].concat();
        expected.sort();
        assert_eq!(answered, expected);
    }
}
