//! The ledger side of proof of work: the block index over the store, bodies of blocks not on
//! the connected chain, and the reorganisations that keep the store on the most-work chain.
//!
//! - Every header, heard of or mined here, passes [`check_header`] against its ancestors from
//!   the [`BlockIndex`] before it is indexed (headers first); a header whose parent is unknown
//!   is answered with a headers request by the caller, never kept in an orphan pool.
//! - A body is kept only for an indexed header, only if it hashes to the header's `tx_root`,
//!   and it is on disk (`SIDE_BLOCK_PREFIX` in the consensus column) before the caller relays
//!   it. Blocks disconnected by a reorg are put there before the store undoes them, so a
//!   crash mid-reorg reopens with both branches and reconnects to the most-work one.
//! - [`PowChain::follow_best`] moves the store to the index's best tip: `revert_tip` back to
//!   the fork point, then prepare and commit each block of the new branch (each step one
//!   synced batch). A block that does not execute is marked invalid in the index (with its
//!   descendants) and never chosen again. A branch is switched to only once every one of its
//!   bodies is here, and never deeper than the local `reorg_depth_max`.
//!
//! Owns: the index, the side bodies and the `pow/` keys of the consensus column. Never: talks
//! to peers or reads the clock (the driver passes `now`), and never mines.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_consensus::pow::difficulty::{self, median_time_past};
use cairn_consensus::pow::{
    BlockIndex, BlockStatus, CompactTarget, HeaderError, HeaderSummary, IndexLimits, Inserted,
    PowRules, Rejection, check_header,
};
use cairn_ledger::block::{
    BLOCK_BYTES_MAX, Block, BlockHeader, EncodedBody, HEADER_BYTES_MAX, Seal,
};
use cairn_ledger::codec;
use cairn_ledger::state::SigCheck;
use cairn_ledger::store::{ApplyError, ConsensusWrites, PreparedBlock, Store, StoreError};
use cairn_ledger::tx::Transaction;
use cairn_ledger::{Address, Hash, Height, Nonce, ProtocolVersion, TimestampMs};

use crate::mempool::Mempool;

/// Bodies of blocks not on the connected chain, keyed by this prefix and the block hash.
pub const SIDE_BLOCK_PREFIX: &[u8] = b"pow/block/";
/// Most side bodies kept. Past half of it, those too deep to ever be reconnected (below the
/// tip by more than the reorg depth) are deleted; a full store refuses new side bodies.
pub const SIDE_BLOCKS_MAX: usize = 4096;
/// Times [`PowChain::follow_best`] re-picks the tip in one call after a block failed to
/// execute; each pass marks a block invalid, so this bounds one call's work.
pub const FOLLOW_PASSES_MAX: usize = 16;
/// Most bodies [`PowChain::follow_best`] reports missing at once (the driver fetches them).
pub const MISSING_BODIES_MAX: usize = 512;
/// Room left in a block for its header and encoding overhead when filling it from the pool.
const BLOCK_OVERHEAD_BYTES: usize = HEADER_BYTES_MAX;

/// Why a header or a block was not taken, and what that means for whoever sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Its parent is unknown: ask the sender for headers (no orphan pool).
    UnknownParent { parent: Hash },
    /// Its time has not come (ahead of our clock by more than genesis allows): retry
    /// `after_ms` later, punish nobody.
    HoldBack { after_ms: u64, reason: String },
    /// It breaks a consensus rule: the sender is scored. `label` is the metrics reason.
    Invalid { label: &'static str, reason: String },
    /// Not the sender's fault, and not worth scoring (a bound of ours was reached).
    Dropped { label: &'static str, reason: String },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::UnknownParent { parent } => write!(f, "unknown parent {parent}"),
            Refused::HoldBack { reason, .. }
            | Refused::Invalid { reason, .. }
            | Refused::Dropped { reason, .. } => f.write_str(reason),
        }
    }
}

/// What happened to an accepted header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    New { best_changed: bool },
    Known,
}

/// The node cannot go on (the disk failed, the store is corrupt, an upgrade is missing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(pub String);

impl From<StoreError> for Fatal {
    fn from(e: StoreError) -> Fatal {
        Fatal(e.to_string())
    }
}

/// What [`PowChain::follow_best`] did.
#[derive(Debug, Default)]
pub struct Followed {
    /// Blocks undone, newest first.
    pub disconnected: Vec<Block>,
    /// Blocks connected, oldest first.
    pub connected: Vec<Block>,
    /// Blocks that did not execute, with why; now marked invalid.
    pub invalid: Vec<(Hash, String)>,
    /// The best branch is deeper than `reorg_depth_max` from the connected tip: not followed.
    pub refused_depth: Option<usize>,
    /// Bodies of the best branch still to fetch, oldest first.
    pub missing: Vec<Hash>,
    /// Set when the best branch needs an upgrade this binary lacks: the chain stops here.
    pub halted: Option<String>,
}

/// The index, the side bodies and the store, kept in step.
pub struct PowChain {
    store: Arc<Store>,
    rules: PowRules,
    index: BlockIndex,
    /// Headers of indexed blocks that are not on the connected chain (the store has those).
    headers: HashMap<Hash, BlockHeader>,
    /// Side bodies on disk, with their heights.
    bodies: HashMap<Hash, Height>,
    block_txs_max: usize,
    block_bytes_max: usize,
    reorg_depth_max: u64,
    /// The best tip whose reorganisation was last refused for its depth (warned once per tip).
    refused_tip: Option<Hash>,
}

fn side_key(hash: &Hash) -> Vec<u8> {
    let mut key = SIDE_BLOCK_PREFIX.to_vec();
    key.extend_from_slice(&hash.0);
    key
}

fn summary_of(header: &BlockHeader) -> Result<HeaderSummary, String> {
    match header.seal {
        Seal::Pow { bits, .. } => Ok(HeaderSummary {
            hash: header.hash(),
            height: header.height,
            timestamp: header.timestamp,
            bits: CompactTarget(bits),
        }),
        _ => Err(format!(
            "block {} at height {} is not sealed with proof of work",
            header.hash(),
            header.height
        )),
    }
}

impl PowChain {
    /// Rebuilds the index from the store's chain and the side bodies on disk, then moves the
    /// store to the most-work chain they make (finishing a reorg a crash interrupted).
    pub fn open(
        store: Arc<Store>,
        rules: PowRules,
        block_txs_max: u32,
        block_bytes_max: u32,
        reorg_depth_max: u64,
    ) -> Result<(PowChain, Followed), Fatal> {
        let genesis = store
            .header_at(Height(0))?
            .ok_or_else(|| Fatal("block 0 is missing from the store".into()))?;
        let mut index = BlockIndex::new(
            HeaderSummary::genesis(&genesis, &rules),
            IndexLimits::default(),
        )
        .map_err(|e| Fatal(format!("the genesis bits are unusable: {e}")))?;
        let tip = store.tip();
        for h in 1..=tip.height.0 {
            let header = store
                .header_at(Height(h))?
                .ok_or_else(|| Fatal(format!("block {h} of the stored chain is missing")))?;
            let summary = summary_of(&header).map_err(Fatal)?;
            index
                .insert(header.parent, summary)
                .map_err(|e| Fatal(format!("the stored chain does not index: {e}")))?;
        }
        let mut chain = PowChain {
            store: Arc::clone(&store),
            rules,
            index,
            headers: HashMap::new(),
            bodies: HashMap::new(),
            block_txs_max: block_txs_max as usize,
            block_bytes_max: (block_bytes_max as usize).min(BLOCK_BYTES_MAX),
            reorg_depth_max,
            refused_tip: None,
        };
        let mut side = Vec::new();
        let mut unreadable = Vec::new();
        for (key, bytes) in store.consensus_entries(SIDE_BLOCK_PREFIX, SIDE_BLOCKS_MAX)? {
            match Block::decode(&bytes) {
                Ok(block) => side.push((key, block)),
                Err(e) => {
                    tracing::warn!(error = %e, "an unreadable side block is dropped");
                    unreadable.push(key);
                }
            }
        }
        side.sort_by_key(|(_, b)| b.header.height);
        for (key, block) in side {
            let hash = block.hash();
            if store.header(&hash)?.is_some() {
                // Connected since it was put aside (the delete shares the connect's batch,
                // so this is only a leftover of an older layout): drop the copy.
                unreadable.push(key);
                continue;
            }
            let inserted = summary_of(&block.header).and_then(|s| {
                chain
                    .index
                    .insert(block.header.parent, s)
                    .map_err(|e| e.to_string())
            });
            match inserted {
                Ok(_) => {
                    chain.bodies.insert(hash, block.header.height);
                    chain.headers.insert(hash, block.header);
                }
                Err(e) => {
                    tracing::debug!(%hash, reason = %e, "a side block no longer fits the index");
                    unreadable.push(key);
                }
            }
        }
        store.delete_consensus(&unreadable)?;
        let followed = chain.follow_best()?;
        Ok((chain, followed))
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn rules(&self) -> &PowRules {
        &self.rules
    }

    pub fn index(&self) -> &BlockIndex {
        &self.index
    }

    pub fn reorg_depth_max(&self) -> u64 {
        self.reorg_depth_max
    }

    pub fn block_txs_max(&self) -> usize {
        self.block_txs_max
    }

    /// The header of an indexed block, connected or not.
    pub fn header(&self, hash: &Hash) -> Result<Option<BlockHeader>, Fatal> {
        if let Some(h) = self.headers.get(hash) {
            return Ok(Some(h.clone()));
        }
        Ok(self.store.header(hash)?)
    }

    /// Whether the body of `hash` is here (connected, or put aside).
    pub fn has_body(&self, hash: &Hash) -> Result<bool, Fatal> {
        Ok(self.bodies.contains_key(hash) || self.store.header(hash)?.is_some())
    }

    /// Checks `header` against its indexed ancestors at the clock `now` and indexes it.
    pub fn accept_header(
        &mut self,
        header: &BlockHeader,
        now: TimestampMs,
    ) -> Result<Accepted, Refused> {
        let hash = header.hash();
        if self.index.contains(&hash) {
            return Ok(Accepted::Known);
        }
        let Some(parent) = self.index.get(&header.parent) else {
            return Err(Refused::UnknownParent {
                parent: header.parent,
            });
        };
        if parent.status != BlockStatus::Viable {
            return Err(Refused::Invalid {
                label: "invalid_parent",
                reason: format!(
                    "block {hash} builds on {}, which is invalid or descends from an invalid block",
                    header.parent
                ),
            });
        }
        let needed = self.rules.ancestors_needed(parent.summary.height.next());
        let ancestors =
            self.index
                .ancestry(&header.parent, needed)
                .map_err(|e| Refused::Dropped {
                    label: "ancestry",
                    reason: format!("block {hash}: {e}"),
                })?;
        let checked = check_header(&self.rules, header, &ancestors, now).map_err(|e| {
            match (e.rejection(), &e) {
                (
                    Rejection::HoldBack,
                    HeaderError::FromTheFuture {
                        time,
                        latest_allowed,
                        ..
                    },
                ) => Refused::HoldBack {
                    after_ms: time.0.saturating_sub(latest_allowed.0),
                    reason: e.to_string(),
                },
                (Rejection::Invalid, _) => Refused::Invalid {
                    label: header_label(&e),
                    reason: e.to_string(),
                },
                _ => Refused::Dropped {
                    label: "ancestry",
                    reason: e.to_string(),
                },
            }
        })?;
        match self.index.insert_checked(&checked) {
            Ok(Inserted::AlreadyKnown) => Ok(Accepted::Known),
            Ok(Inserted::Added { best_changed }) => {
                self.headers.insert(hash, header.clone());
                Ok(Accepted::New { best_changed })
            }
            Err(e) => Err(Refused::Dropped {
                label: "index",
                reason: e.to_string(),
            }),
        }
    }

    /// Keeps the body of an indexed block on disk. `Ok(true)` when it is new here. A body
    /// that does not hash to its header's `tx_root` is the sender's fault (the header stays
    /// good); a body that does but breaks the genesis block limits makes the block invalid.
    pub fn add_body(&mut self, block: &Block) -> Result<bool, Refused> {
        let hash = block.hash();
        let Some(indexed) = self.index.get(&hash) else {
            return Err(Refused::Dropped {
                label: "unindexed",
                reason: format!("block {hash}'s header is not indexed"),
            });
        };
        if indexed.status != BlockStatus::Viable {
            return Err(Refused::Invalid {
                label: "known_invalid",
                reason: format!("block {hash} is known to be invalid"),
            });
        }
        let fatal = |e: Fatal| Refused::Dropped {
            label: "store",
            reason: e.0,
        };
        if self.has_body(&hash).map_err(fatal)? {
            return Ok(false);
        }
        let body = EncodedBody::new(&block.transactions)
            .map_err(|e| self.invalid_block(hash, "oversized", e.to_string()))?;
        let computed = body.tx_root();
        if computed != block.header.tx_root {
            return Err(Refused::Invalid {
                label: "bad_tx_root",
                reason: format!(
                    "block {hash}: its header's tx_root is {} but the body sent hashes to {computed}",
                    block.header.tx_root
                ),
            });
        }
        if block.transactions.len() > self.block_txs_max {
            return Err(self.invalid_block(
                hash,
                "oversized",
                format!(
                    "block {hash} has {} transactions, over the genesis limit of {}",
                    block.transactions.len(),
                    self.block_txs_max
                ),
            ));
        }
        let encoded = codec::encode(block);
        if encoded.len() > self.block_bytes_max {
            return Err(self.invalid_block(
                hash,
                "oversized",
                format!(
                    "block {hash} is {} bytes, over the genesis limit of {}",
                    encoded.len(),
                    self.block_bytes_max
                ),
            ));
        }
        if self.bodies.len() >= SIDE_BLOCKS_MAX / 2 {
            self.prune_side().map_err(fatal)?;
        }
        if self.bodies.len() >= SIDE_BLOCKS_MAX {
            return Err(Refused::Dropped {
                label: "side_full",
                reason: format!("{SIDE_BLOCKS_MAX} side blocks are kept already"),
            });
        }
        self.store
            .put_consensus(&side_key(&hash), &encoded)
            .map_err(|e| fatal(e.into()))?;
        self.bodies.insert(hash, block.header.height);
        Ok(true)
    }

    fn invalid_block(&mut self, hash: Hash, label: &'static str, reason: String) -> Refused {
        if let Err(e) = self.index.mark_invalid(hash) {
            tracing::debug!(%hash, error = %e, "could not mark a block invalid");
        }
        Refused::Invalid { label, reason }
    }

    /// Deletes side bodies too deep below the tip to be reconnected under the reorg policy,
    /// and those of invalid blocks.
    fn prune_side(&mut self) -> Result<(), Fatal> {
        let floor = self
            .store
            .tip()
            .height
            .0
            .saturating_sub(self.reorg_depth_max.saturating_add(1));
        let doomed: Vec<Hash> = self
            .bodies
            .iter()
            .filter(|(hash, height)| {
                height.0 < floor
                    || self
                        .index
                        .get(hash)
                        .is_none_or(|b| b.status != BlockStatus::Viable)
            })
            .map(|(h, _)| *h)
            .collect();
        if doomed.is_empty() {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = doomed.iter().map(side_key).collect();
        self.store.delete_consensus(&keys)?;
        for h in doomed {
            self.bodies.remove(&h);
        }
        Ok(())
    }

    fn side_body(&self, hash: &Hash) -> Result<Option<Block>, Fatal> {
        let Some(bytes) = self.store.get_consensus(&side_key(hash))? else {
            return Ok(None);
        };
        Block::decode(&bytes)
            .map(Some)
            .map_err(|e| Fatal(format!("stored side block {hash} is unreadable: {e}")))
    }

    /// A block by hash, connected or put aside.
    pub fn block(&self, hash: &Hash) -> Result<Option<Block>, Fatal> {
        if let Some(b) = self.store.block(hash)? {
            return Ok(Some(b));
        }
        if self.bodies.contains_key(hash) {
            return self.side_body(hash);
        }
        Ok(None)
    }

    /// Moves the store to the index's best tip as far as the bodies here allow; see the
    /// module documentation.
    pub fn follow_best(&mut self) -> Result<Followed, Fatal> {
        let mut out = Followed::default();
        for _ in 0..FOLLOW_PASSES_MAX {
            let target = self.index.best_tip();
            let tip = self.store.tip().hash;
            if target == tip {
                self.refused_tip = None;
                break;
            }
            let path = self
                .index
                .reorg_path(&tip, &target)
                .map_err(|e| Fatal(format!("no path from the tip to the best block: {e}")))?;
            let mut available = 0;
            for hash in &path.connect {
                if !self.bodies.contains_key(hash) {
                    break;
                }
                available += 1;
            }
            if available < path.connect.len() {
                out.missing = path.connect[available..]
                    .iter()
                    .take(MISSING_BODIES_MAX)
                    .copied()
                    .collect();
            }
            // Switch branches only with the whole new branch at hand: its prefix alone may
            // have less work than what would be undone.
            if available == 0 || (!path.disconnect.is_empty() && available < path.connect.len()) {
                break;
            }
            if path.depth() as u64 > self.reorg_depth_max {
                if self.refused_tip != Some(target) {
                    self.refused_tip = Some(target);
                    out.refused_depth = Some(path.depth());
                }
                out.missing.clear();
                break;
            }
            for hash in &path.disconnect {
                self.disconnect_tip(hash, &mut out)?;
            }
            if self.connect(&path.connect[..available], &mut out)? {
                break;
            }
        }
        Ok(out)
    }

    fn disconnect_tip(&mut self, hash: &Hash, out: &mut Followed) -> Result<(), Fatal> {
        let block = self
            .store
            .block(hash)?
            .ok_or_else(|| Fatal(format!("block {hash} to disconnect is not in the store")))?;
        // On disk before the store forgets it: a crash between the two leaves both copies,
        // never neither.
        self.store
            .put_consensus(&side_key(hash), &codec::encode(&block))?;
        let reverted = self.store.revert_tip()?;
        if reverted.hash() != *hash {
            return Err(Fatal(format!(
                "reverted {} while disconnecting {hash}",
                reverted.hash()
            )));
        }
        self.bodies.insert(*hash, block.header.height);
        self.headers.insert(*hash, block.header.clone());
        out.disconnected.push(block);
        Ok(())
    }

    /// Connects `blocks` (oldest first) on the tip. Returns whether it stopped (an invalid
    /// block, now marked, or a missing upgrade).
    fn connect(&mut self, blocks: &[Hash], out: &mut Followed) -> Result<bool, Fatal> {
        for hash in blocks {
            let block = self
                .side_body(hash)?
                .ok_or_else(|| Fatal(format!("side block {hash} is missing from the store")))?;
            let reward = self.rules.reward.subsidy(block.header.height);
            match self.store.prepare(block, reward, SigCheck::Batch) {
                Ok(prepared) => {
                    let writes = ConsensusWrites {
                        puts: Vec::new(),
                        deletes: vec![side_key(hash)],
                    };
                    self.store.commit_with(&prepared, &writes)?;
                    self.bodies.remove(hash);
                    self.headers.remove(hash);
                    out.connected.push(prepared.block);
                }
                Err(ApplyError::Store(e)) => return Err(e.into()),
                Err(e @ ApplyError::UpgradeMissing { .. }) => {
                    out.halted = Some(e.to_string());
                    return Ok(true);
                }
                Err(e) => {
                    self.store.delete_consensus(&[side_key(hash)])?;
                    self.bodies.remove(hash);
                    if let Err(err) = self.index.mark_invalid(*hash) {
                        tracing::debug!(%hash, error = %err, "could not mark a block invalid");
                    }
                    out.invalid.push((*hash, e.to_string()));
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// A block of ours, sealed: checked as any header, committed on the tip it was built on,
    /// then indexed. `Err` when it no longer extends the tip or fails its own check (a bug).
    pub fn connect_mined(
        &mut self,
        prepared: &PreparedBlock,
        now: TimestampMs,
    ) -> Result<Hash, Refused> {
        let header = &prepared.block.header;
        let hash = prepared.hash;
        if header.parent != self.store.tip().hash {
            return Err(Refused::Dropped {
                label: "stale_template",
                reason: format!("mined block {hash} no longer extends the tip"),
            });
        }
        let parent = self
            .index
            .get(&header.parent)
            .copied()
            .ok_or(Refused::Dropped {
                label: "ancestry",
                reason: format!("the tip {} is not indexed", header.parent),
            })?;
        let needed = self.rules.ancestors_needed(parent.summary.height.next());
        let ancestors =
            self.index
                .ancestry(&header.parent, needed)
                .map_err(|e| Refused::Dropped {
                    label: "ancestry",
                    reason: e.to_string(),
                })?;
        let checked =
            check_header(&self.rules, header, &ancestors, now).map_err(|e| Refused::Dropped {
                label: "own_block",
                reason: format!("our own block fails its check: {e}"),
            })?;
        self.store.commit(prepared).map_err(|e| Refused::Dropped {
            label: "store",
            reason: e.to_string(),
        })?;
        if let Err(e) = self.index.insert_checked(&checked) {
            return Err(Refused::Dropped {
                label: "index",
                reason: e.to_string(),
            });
        }
        Ok(hash)
    }

    /// An unsealed block on the connected tip: transactions from the pool that execute in
    /// order, within the genesis limits; bits the chain asks for; a timestamp of `now` or
    /// just past the median time past; roots filled in. Its reward goes to `reward_to`.
    pub fn template(
        &self,
        pool: &Mempool,
        reward_to: Address,
        now: TimestampMs,
    ) -> Result<PreparedBlock, String> {
        let tip = self.store.tip();
        let height = tip.height.next();
        let ancestors = self
            .index
            .ancestry(&tip.hash, self.rules.ancestors_needed(height))
            .map_err(|e| e.to_string())?;
        let bits = difficulty::next_bits(&self.rules.retarget, height, &ancestors)
            .map_err(|e| e.to_string())?;
        let after_median = median_time_past(&ancestors).map_or(0, |t| t.0.saturating_add(1));
        let candidates = pool.reap(
            self.block_txs_max,
            self.block_bytes_max.saturating_sub(BLOCK_OVERHEAD_BYTES),
        );
        let transactions = self.executable(candidates)?;
        let block = Block {
            header: BlockHeader {
                height,
                parent: tip.hash,
                timestamp: TimestampMs(now.0.max(after_median)),
                tx_root: Hash::ZERO,
                state_root: Hash::ZERO,
                proposer: reward_to,
                protocol_version: ProtocolVersion(0),
                seal: Seal::Pow {
                    bits: bits.0,
                    nonce: 0,
                },
            },
            transactions,
        };
        // Signatures were checked when the mempool admitted each transaction.
        self.store
            .complete_block(block, self.rules.reward.subsidy(height), SigCheck::Skip)
            .map_err(|e| e.to_string())
    }

    /// Keeps, in order, the candidates whose nonce and cost fit the sender's state.
    fn executable(&self, candidates: Vec<Transaction>) -> Result<Vec<Transaction>, String> {
        let mut senders: HashMap<Address, (Nonce, u128)> = HashMap::new();
        let mut out = Vec::with_capacity(candidates.len());
        for tx in candidates {
            let sender = tx.sender_address();
            let (next, left) = match senders.get(&sender) {
                Some(s) => *s,
                None => {
                    let account = self
                        .store
                        .account(&sender)
                        .map_err(|e| e.to_string())?
                        .unwrap_or_default();
                    (account.nonce, account.balance.0 as u128)
                }
            };
            let cost = tx.amount().0 as u128 + tx.fee.0 as u128;
            if tx.nonce != next || cost > left {
                continue;
            }
            senders.insert(sender, (Nonce(next.0 + 1), left - cost));
            out.push(tx);
        }
        Ok(out)
    }

    /// A block locator for the best header: what to send in a headers request.
    pub fn locator(&self) -> Vec<Hash> {
        self.index
            .locator(&self.index.best_tip())
            .unwrap_or_else(|_| vec![self.index.genesis()])
    }

    /// Up to `max` headers of the connected chain after the first locator entry on it.
    pub fn headers_after(&self, locator: &[Hash], max: usize) -> Result<Vec<BlockHeader>, Fatal> {
        let mut start = None;
        for hash in locator {
            if let Some(h) = self.store.header(hash)? {
                start = Some(h.height.next());
                break;
            }
        }
        let Some(start) = start else {
            return Ok(Vec::new());
        };
        let tip = self.store.tip().height;
        let mut out = Vec::new();
        let mut h = start;
        while h <= tip && out.len() < max {
            match self.store.header_at(h)? {
                Some(header) => out.push(header),
                None => break,
            }
            h = h.next();
        }
        Ok(out)
    }

    /// Whether the header of `hash` names a block we hold as invalid.
    pub fn is_invalid(&self, hash: &Hash) -> bool {
        self.index
            .get(hash)
            .is_some_and(|b| b.status != BlockStatus::Viable)
    }

    /// Side bodies kept (for tests and status).
    pub fn side_len(&self) -> usize {
        self.bodies.len()
    }
}

/// The metrics label of a header rule broken.
fn header_label(e: &HeaderError) -> &'static str {
    match e {
        HeaderError::NotPow { .. } => "not_pow",
        HeaderError::HeightMismatch { .. } => "bad_height",
        HeaderError::WrongBits { .. } => "wrong_bits",
        HeaderError::Pow(_) => "insufficient_work",
        HeaderError::TooOld { .. } => "time_too_old",
        HeaderError::WindowStart { .. } => "window_start",
        HeaderError::FromTheFuture { .. } => "future_time",
        HeaderError::NoParent { .. }
        | HeaderError::ParentMismatch { .. }
        | HeaderError::Ancestry { .. } => "ancestry",
    }
}
