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
//! - Coinbase maturity: a block that spends a reward earned fewer than the genesis
//!   `coinbase_maturity_blocks` blocks before it is invalid, and templates leave such spends
//!   out (the ledger credits rewards at once; this node keeps them locked until mature).
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
use cairn_ledger::block::{Block, BlockHeader, EncodedBody, Seal};
use cairn_ledger::codec;
use cairn_ledger::state::SigCheck;
use cairn_ledger::store::{ApplyError, ConsensusWrites, PreparedBlock, Store};
use cairn_ledger::tx::Transaction;
use cairn_ledger::{Address, Hash, Height, TimestampMs};

use crate::host::DriverError;
use crate::host::payload::{self, BlockLimits};
use crate::txpool::mempool::{Identified, Mempool};

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
    /// This node cannot go on (its store failed): the driver stops with it.
    Halt(DriverError),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::UnknownParent { parent } => write!(f, "unknown parent {parent}"),
            Refused::HoldBack { reason, .. }
            | Refused::Invalid { reason, .. }
            | Refused::Dropped { reason, .. } => f.write_str(reason),
            Refused::Halt(e) => write!(f, "{e}"),
        }
    }
}

/// What happened to an accepted header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    New { best_changed: bool },
    Known,
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
    limits: BlockLimits,
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
    ) -> Result<(PowChain, Followed), DriverError> {
        let genesis = store
            .header_at(Height(0))?
            .ok_or_else(|| DriverError::Halt("block 0 is missing from the store".into()))?;
        let mut index = BlockIndex::new(
            HeaderSummary::genesis(&genesis, &rules),
            IndexLimits::default(),
        )
        .map_err(|e| DriverError::Halt(format!("the genesis bits are unusable: {e}")))?;
        let tip = store.tip();
        for h in 1..=tip.height.0 {
            let header = store.header_at(Height(h))?.ok_or_else(|| {
                DriverError::Halt(format!("block {h} of the stored chain is missing"))
            })?;
            let summary = summary_of(&header).map_err(DriverError::Halt)?;
            index
                .insert(header.parent, summary)
                .map_err(|e| DriverError::Halt(format!("the stored chain does not index: {e}")))?;
        }
        let mut chain = PowChain {
            store: Arc::clone(&store),
            rules,
            index,
            headers: HashMap::new(),
            bodies: HashMap::new(),
            limits: BlockLimits::new(block_txs_max, block_bytes_max),
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
        self.limits.txs_max
    }

    /// The header of an indexed block, connected or not.
    pub fn header(&self, hash: &Hash) -> Result<Option<BlockHeader>, DriverError> {
        if let Some(h) = self.headers.get(hash) {
            return Ok(Some(h.clone()));
        }
        Ok(self.store.header(hash)?)
    }

    /// Whether the body of `hash` is here (connected, or put aside).
    pub fn has_body(&self, hash: &Hash) -> Result<bool, DriverError> {
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
                // Every kept header is indexed; more headers than index entries means the
                // index pruned old branches: forget their headers too.
                if self.headers.len() > self.index.len() {
                    let index = &self.index;
                    self.headers.retain(|h, _| index.contains(h));
                }
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
        let fatal = Refused::Halt;
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
        if block.transactions.len() > self.limits.txs_max {
            return Err(self.invalid_block(
                hash,
                "oversized",
                format!(
                    "block {hash} has {} transactions, over the genesis limit of {}",
                    block.transactions.len(),
                    self.limits.txs_max
                ),
            ));
        }
        let encoded = codec::encode(block);
        if encoded.len() > self.limits.bytes_max {
            return Err(self.invalid_block(
                hash,
                "oversized",
                format!(
                    "block {hash} is {} bytes, over the genesis limit of {}",
                    encoded.len(),
                    self.limits.bytes_max
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
    fn prune_side(&mut self) -> Result<(), DriverError> {
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

    fn side_body(&self, hash: &Hash) -> Result<Option<Block>, DriverError> {
        let Some(bytes) = self.store.get_consensus(&side_key(hash))? else {
            return Ok(None);
        };
        Block::decode(&bytes)
            .map(Some)
            .map_err(|e| DriverError::Halt(format!("stored side block {hash} is unreadable: {e}")))
    }

    /// A block by hash, connected or put aside.
    pub fn block(&self, hash: &Hash) -> Result<Option<Block>, DriverError> {
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
    pub fn follow_best(&mut self) -> Result<Followed, DriverError> {
        let before = self.store.tip().height;
        let out = self.follow_best_from()?;
        // The tip moves only by connect and revert, one height each.
        assert_eq!(
            self.store.tip().height.0 + out.disconnected.len() as u64,
            before.0 + out.connected.len() as u64,
            "the tip moved by more than this call connected and reverted"
        );
        Ok(out)
    }

    fn follow_best_from(&mut self) -> Result<Followed, DriverError> {
        let mut out = Followed::default();
        for _ in 0..FOLLOW_PASSES_MAX {
            let best = self.index.best_tip();
            let tip = self.store.tip().hash;
            if best == tip {
                self.refused_tip = None;
                break;
            }
            let no_path =
                |e| DriverError::Halt(format!("no path from the tip to the best block: {e}"));
            let best_path = self.index.reorg_path(&tip, &best).map_err(no_path)?;
            let available = best_path
                .connect
                .iter()
                .take_while(|h| self.bodies.contains_key(*h))
                .count();
            if available < best_path.connect.len()
                && best_path.depth() as u64 <= self.reorg_depth_max
            {
                out.missing = best_path.connect[available..]
                    .iter()
                    .take(MISSING_BODIES_MAX)
                    .copied()
                    .collect();
            }
            // Only a tip whose bodies are all here is followed (a branch's prefix alone may
            // have less work than what would be undone), so a peer announcing more work and
            // withholding a body cannot keep the node off a branch it can connect.
            let (target, path) = if available == best_path.connect.len() {
                (best, best_path)
            } else {
                let target = self.best_with_bodies(tip);
                if target == tip {
                    break;
                }
                let path = self.index.reorg_path(&tip, &target).map_err(no_path)?;
                (target, path)
            };
            if path.depth() as u64 > self.reorg_depth_max {
                if self.refused_tip != Some(target) {
                    self.refused_tip = Some(target);
                    out.refused_depth = Some(path.depth());
                }
                break;
            }
            for hash in &path.disconnect {
                self.disconnect_tip(hash, &mut out)?;
            }
            if self.connect(&path.connect, &mut out)? {
                break;
            }
        }
        Ok(out)
    }

    /// The viable block with the most chain work, the first seen among equals, whose bodies
    /// from the connected chain up are all here; `tip` unless one has more work than it.
    fn best_with_bodies(&self, tip: Hash) -> Hash {
        let Some(mut chosen) = self.index.get(&tip) else {
            return tip;
        };
        // Whether each block's bodies down to the connected chain are here, shared across
        // the walks so that each side block is looked at once.
        let mut complete: HashMap<Hash, bool> = HashMap::new();
        for hash in self.bodies.keys() {
            let Some(block) = self.index.get(hash) else {
                continue;
            };
            let better = block.chain_work > chosen.chain_work
                || (block.chain_work == chosen.chain_work
                    && block.seen < chosen.seen
                    && chosen.summary.hash != tip);
            if block.status == BlockStatus::Viable
                && better
                && self.all_bodies(*hash, &mut complete)
            {
                chosen = block;
            }
        }
        chosen.summary.hash
    }

    /// Whether `hash` and its ancestors off the connected chain all have their bodies here.
    fn all_bodies(&self, hash: Hash, complete: &mut HashMap<Hash, bool>) -> bool {
        let mut walked = Vec::new();
        let mut cur = hash;
        let answer = loop {
            if let Some(&known) = complete.get(&cur) {
                break known;
            }
            if !self.headers.contains_key(&cur) {
                // Indexed and not put aside: on the connected chain.
                break self.index.contains(&cur);
            }
            walked.push(cur);
            match self.index.get(&cur) {
                Some(b) if self.bodies.contains_key(&cur) => cur = b.parent,
                _ => break false,
            }
        };
        for h in walked {
            complete.insert(h, answer);
        }
        answer
    }

    fn disconnect_tip(&mut self, hash: &Hash, out: &mut Followed) -> Result<(), DriverError> {
        let block = self.store.block(hash)?.ok_or_else(|| {
            DriverError::Halt(format!("block {hash} to disconnect is not in the store"))
        })?;
        // On disk before the store forgets it: a crash between the two leaves both copies,
        // never neither.
        self.store
            .put_consensus(&side_key(hash), &codec::encode(&block))?;
        let reverted = self.store.revert_tip()?;
        if reverted.hash() != *hash {
            return Err(DriverError::Halt(format!(
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
    fn connect(&mut self, blocks: &[Hash], out: &mut Followed) -> Result<bool, DriverError> {
        for hash in blocks {
            let block = self.side_body(hash)?.ok_or_else(|| {
                DriverError::Halt(format!("side block {hash} is missing from the store"))
            })?;
            let reward = self.rules.reward.subsidy(block.header.height);
            if let Err(reason) = self.check_maturity(&block) {
                self.store.delete_consensus(&[side_key(hash)])?;
                self.bodies.remove(hash);
                if let Err(err) = self.index.mark_invalid(*hash) {
                    tracing::debug!(%hash, error = %err, "could not mark a block invalid");
                }
                out.invalid.push((*hash, reason));
                return Ok(true);
            }
            match self.store.prepare(block, reward, SigCheck::Batch) {
                Ok(prepared) => {
                    let writes = ConsensusWrites {
                        puts: Vec::new(),
                        deletes: vec![side_key(hash)],
                        ..ConsensusWrites::default()
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
        self.store
            .commit(prepared)
            .map_err(|e| Refused::Halt(e.into()))?;
        assert_eq!(
            self.store.tip().hash,
            hash,
            "a mined block connects on the tip"
        );
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
        let candidates = self.limits.reap(pool);
        let transactions =
            self.executable(candidates.into_iter().map(Identified::into_tx).collect())?;
        let block = payload::template(
            height,
            tip.hash,
            TimestampMs(now.0.max(after_median)),
            reward_to,
            Seal::Pow {
                bits: bits.0,
                nonce: 0,
            },
            transactions,
        );
        // Signatures were checked when the mempool admitted each transaction.
        self.store
            .complete_block(block, self.rules.reward.subsidy(height), SigCheck::Skip)
            .map_err(|e| e.to_string())
    }

    /// What each recent producer on the connected chain earned in blocks whose rewards are
    /// not yet spendable in the block at `height`: rewards (subsidy and fees) of the blocks
    /// less than `coinbase_maturity_blocks` below it.
    fn immature_rewards(&self, height: Height) -> Result<HashMap<Address, u128>, String> {
        let maturity = self.rules.reward.coinbase_maturity_blocks();
        let mut out: HashMap<Address, u128> = HashMap::new();
        let from = height.0.saturating_sub(maturity.saturating_sub(1)).max(1);
        for h in from..height.0 {
            let at = Height(h);
            let header = self
                .store
                .header_at(at)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("block {h} is missing from the store"))?;
            let fees: u128 = self
                .store
                .receipts(at)
                .map_err(|e| e.to_string())?
                .unwrap_or_default()
                .iter()
                .map(|r| r.fee.0 as u128)
                .sum();
            let reward = self.rules.reward.subsidy(at).0 as u128 + fees;
            *out.entry(header.proposer).or_default() += reward;
        }
        Ok(out)
    }

    /// The coinbase maturity rule, on the block's parent state (the connected tip): a
    /// sender that produced one of the last `coinbase_maturity_blocks` − 1 blocks may not
    /// spend, in this block, more than its balance less those blocks' rewards. Conservative:
    /// what it receives within the block does not count.
    fn check_maturity(&self, block: &Block) -> Result<(), String> {
        let immature = self.immature_rewards(block.header.height)?;
        if immature.is_empty() {
            return Ok(());
        }
        let mut spent: HashMap<Address, u128> = HashMap::new();
        for tx in &block.transactions {
            let sender = tx.sender_address();
            if immature.contains_key(&sender) {
                *spent.entry(sender).or_default() += tx.amount().0 as u128 + tx.fee.0 as u128;
            }
        }
        for (sender, spent) in spent {
            let balance = self
                .store
                .account(&sender)
                .map_err(|e| e.to_string())?
                .unwrap_or_default()
                .balance
                .0 as u128;
            let locked = immature[&sender];
            if spent > balance.saturating_sub(locked) {
                return Err(format!(
                    "block {} at height {}: {sender} spends {spent} but {locked} of its balance \
                     {balance} is block rewards not yet mature ({} blocks)",
                    block.hash(),
                    block.header.height,
                    self.rules.reward.coinbase_maturity_blocks()
                ));
            }
        }
        Ok(())
    }

    /// Keeps, in order, the candidates that execute on the tip ([`payload::executable`]),
    /// each sender's immature block rewards left unspendable.
    fn executable(&self, candidates: Vec<Transaction>) -> Result<Vec<Transaction>, String> {
        let height = self.store.tip().height.next();
        let immature = self.immature_rewards(height)?;
        let rules = self.store.schedule().rules_at(height);
        payload::executable(candidates, rules, |sender| {
            let account = self
                .store
                .account(sender)
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            let locked = immature.get(sender).copied().unwrap_or(0);
            Ok((
                account.nonce,
                (account.balance.0 as u128).saturating_sub(locked),
            ))
        })
    }

    /// A block locator for the best header: what to send in a headers request.
    pub fn locator(&self) -> Vec<Hash> {
        self.index
            .locator(&self.index.best_tip())
            .unwrap_or_else(|_| vec![self.index.genesis()])
    }

    /// Up to `max` headers of the connected chain after the first locator entry on it.
    pub fn headers_after(
        &self,
        locator: &[Hash],
        max: usize,
    ) -> Result<Vec<BlockHeader>, DriverError> {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use cairn_consensus::pow::Target;
    use cairn_ledger::crypto::Keypair;
    use cairn_ledger::genesis::{EngineKind, EngineParams, Genesis};
    use cairn_ledger::tx::Payload;
    use cairn_ledger::{Amount, Nonce};

    use crate::config::MempoolSection;

    /// Regtest's limit: about one hash in two meets it.
    pub(crate) const EASY_BITS: u32 = 0x207f_ffff;
    pub(crate) const GENESIS_MS: u64 = 1_700_000_000_000;

    pub(crate) struct Net {
        pub(crate) genesis: Genesis,
        pub(crate) faucet: Keypair,
        pub(crate) miner: Address,
    }

    pub(crate) fn net(block_txs_max: u32) -> Net {
        let faucet = Keypair::from_secret(&[7; 32]);
        let node = Keypair::from_secret(&[8; 32]);
        let mut genesis = Genesis::local(
            EngineKind::Pow,
            &[node.public()],
            &[(faucet.public().address(), Amount(1_000_000_000))],
            TimestampMs(GENESIS_MS),
        );
        genesis.consensus.block_txs_max = block_txs_max;
        if let EngineParams::Pow(p) = &mut genesis.consensus.engine {
            p.initial_bits = EASY_BITS;
        }
        Net {
            genesis,
            faucet,
            miner: node.public().address(),
        }
    }

    pub(crate) fn open(
        net: &Net,
        dir: &std::path::Path,
        reorg_depth_max: u64,
    ) -> (PowChain, Followed) {
        let store = Arc::new(Store::open(dir, &net.genesis).unwrap());
        let EngineParams::Pow(p) = &net.genesis.consensus.engine else {
            unreachable!()
        };
        PowChain::open(
            store,
            PowRules::new(p).unwrap(),
            net.genesis.consensus.block_txs_max,
            net.genesis.consensus.block_bytes_max,
            reorg_depth_max,
        )
        .unwrap()
    }

    pub(crate) fn transfers(net: &Net, chain: &PowChain, count: u64) -> Vec<Transaction> {
        let from = net.faucet.public().address();
        let nonce = chain
            .store()
            .account(&from)
            .unwrap()
            .unwrap_or_default()
            .nonce;
        (0..count)
            .map(|i| {
                Transaction::new_signed(
                    &net.genesis.chain_id,
                    &net.faucet,
                    Nonce(nonce.0 + i),
                    Amount(1),
                    Payload::Transfer {
                        to: Address([9; 20]),
                        amount: Amount(5),
                    },
                )
            })
            .collect()
    }

    /// A template on the tip with `txs` at `ms` after genesis, unsealed.
    pub(crate) fn template(
        net: &Net,
        chain: &PowChain,
        txs: Vec<Transaction>,
        ms: u64,
    ) -> PreparedBlock {
        let mut pool = Mempool::new(&net.genesis.chain_id, MempoolSection::default());
        for tx in txs {
            pool.insert(tx, &**chain.store()).unwrap();
        }
        chain
            .template(&pool, net.miner, TimestampMs(GENESIS_MS + ms))
            .unwrap()
    }

    /// The first nonce whose hash meets (or, with `meet = false`, misses) the header's bits.
    pub(crate) fn seal(block: &mut Block, meet: bool) {
        let Seal::Pow { bits, .. } = block.header.seal else {
            unreachable!()
        };
        let target: Target = CompactTarget(bits).to_target().unwrap();
        for nonce in 0.. {
            block.header.seal = Seal::Pow { bits, nonce };
            if target.is_met_by(&block.header.hash()) == meet {
                return;
            }
        }
    }

    pub(crate) fn mine(net: &Net, chain: &mut PowChain, txs: Vec<Transaction>, ms: u64) -> Block {
        let mut p = template(net, chain, txs, ms);
        seal(&mut p.block, true);
        p.hash = p.block.hash();
        chain.connect_mined(&p, now(ms)).unwrap();
        p.block
    }

    pub(crate) fn now(ms: u64) -> TimestampMs {
        TimestampMs(GENESIS_MS + ms + 1000)
    }

    fn label(r: Result<Accepted, Refused>) -> &'static str {
        match r {
            Err(Refused::Invalid { label, .. }) => label,
            other => panic!("expected an invalid header, got {other:?}"),
        }
    }

    #[test]
    fn headers_breaking_a_rule_are_refused_with_a_reason() {
        let net = net(100);
        let dir = tempfile::tempdir().unwrap();
        let (mut chain, _) = open(&net, dir.path(), 100);
        for i in 1..=3 {
            mine(&net, &mut chain, Vec::new(), i * 1000);
        }
        let good = template(&net, &chain, Vec::new(), 4000).block;

        let mut wrong_bits = good.clone();
        wrong_bits.header.seal = Seal::Pow {
            bits: 0x1f00_ffff,
            nonce: 0,
        };
        seal(&mut wrong_bits, true);
        assert_eq!(
            label(chain.accept_header(&wrong_bits.header, now(4000))),
            "wrong_bits"
        );

        let mut no_work = good.clone();
        seal(&mut no_work, false);
        let refused = chain.accept_header(&no_work.header, now(4000));
        assert!(
            format!("{:?}", refused).contains("does not meet target"),
            "{refused:?}"
        );
        assert_eq!(label(refused), "insufficient_work");

        let mut too_old = good.clone();
        too_old.header.timestamp = TimestampMs(GENESIS_MS + 1000);
        seal(&mut too_old, true);
        assert_eq!(
            label(chain.accept_header(&too_old.header, now(4000))),
            "time_too_old"
        );

        let mut future = good.clone();
        future.header.timestamp = TimestampMs(now(4000).0 + 7_200_000 + 5000);
        seal(&mut future, true);
        assert!(matches!(
            chain.accept_header(&future.header, now(4000)),
            Err(Refused::HoldBack { after_ms, .. }) if after_ms >= 5000
        ));

        let mut orphan = good.clone();
        orphan.header.parent = Hash([3; 32]);
        seal(&mut orphan, true);
        assert_eq!(
            chain.accept_header(&orphan.header, now(4000)),
            Err(Refused::UnknownParent {
                parent: Hash([3; 32])
            })
        );

        let mut sealed = good;
        seal(&mut sealed, true);
        assert_eq!(
            chain.accept_header(&sealed.header, now(4000)),
            Ok(Accepted::New { best_changed: true })
        );
        assert_eq!(chain.add_body(&sealed), Ok(true));
        let f = chain.follow_best().unwrap();
        assert_eq!(f.connected.len(), 1);
        assert_eq!(chain.store().tip().hash, sealed.hash());
        // Held back, not branded: fine once the clock gets there.
        assert!(
            chain
                .accept_header(&future.header, TimestampMs(future.header.timestamp.0))
                .is_ok()
        );
    }

    #[test]
    fn bodies_that_do_not_match_oversize_or_fail_to_execute_are_refused() {
        let net = net(2);
        let dir = tempfile::tempdir().unwrap();
        let (mut chain, _) = open(&net, dir.path(), 100);
        mine(&net, &mut chain, Vec::new(), 1000);
        let tip = chain.store().tip();

        // A state root that executing the block does not give: marked invalid, never chosen.
        let mut bad_root = template(&net, &chain, transfers(&net, &chain, 1), 2100).block;
        bad_root.header.state_root = Hash([1; 32]);
        seal(&mut bad_root, true);
        chain.accept_header(&bad_root.header, now(2100)).unwrap();
        assert_eq!(chain.add_body(&bad_root), Ok(true));
        let f = chain.follow_best().unwrap();
        assert!(f.connected.is_empty());
        let (hash, reason) = &f.invalid[0];
        assert_eq!(*hash, bad_root.hash());
        assert!(reason.contains("state_root"), "{reason}");
        assert!(chain.is_invalid(&bad_root.hash()));
        assert_eq!(chain.store().tip(), tip);

        // A body that is not the one the header commits to: the sender's fault, the header
        // stays good.
        let mut block = template(&net, &chain, transfers(&net, &chain, 2), 2000).block;
        seal(&mut block, true);
        chain.accept_header(&block.header, now(2000)).unwrap();
        let mut other_body = block.clone();
        other_body.transactions.pop();
        assert!(matches!(
            chain.add_body(&other_body),
            Err(Refused::Invalid {
                label: "bad_tx_root",
                ..
            })
        ));
        assert!(!chain.is_invalid(&block.hash()));

        // Three transactions where genesis allows two: the header commits to it, so the block
        // is invalid.
        let mut p = template(&net, &chain, Vec::new(), 2200);
        p.block.transactions = transfers(&net, &chain, 3);
        let prepared = chain
            .store()
            .complete_block(p.block, Amount(0), SigCheck::Skip)
            .unwrap();
        let mut big = prepared.block;
        seal(&mut big, true);
        chain.accept_header(&big.header, now(2200)).unwrap();
        assert!(matches!(
            chain.add_body(&big),
            Err(Refused::Invalid {
                label: "oversized",
                ..
            })
        ));
        assert!(chain.is_invalid(&big.hash()));
        // Its children are refused at the header.
        let mut child = big.clone();
        child.header.parent = big.hash();
        child.header.height = big.header.height.next();
        seal(&mut child, true);
        assert_eq!(
            label(chain.accept_header(&child.header, now(2300))),
            "invalid_parent"
        );

        // The good block still connects.
        assert_eq!(chain.add_body(&block), Ok(true));
        chain.follow_best().unwrap();
        assert_eq!(chain.store().tip().hash, block.hash());
    }

    #[test]
    fn block_rewards_are_spent_only_once_mature() {
        let net = net(100);
        let dir = tempfile::tempdir().unwrap();
        let (mut chain, _) = open(&net, dir.path(), 100);
        // The miner earns the reward of block 1; maturity is 10 blocks.
        mine(&net, &mut chain, Vec::new(), 1000);
        let miner = Keypair::from_secret(&[8; 32]);
        assert_eq!(miner.public().address(), net.miner);
        let spend = Transaction::new_signed(
            &net.genesis.chain_id,
            &miner,
            Nonce(0),
            Amount(1),
            Payload::Transfer {
                to: Address([9; 20]),
                amount: Amount(10),
            },
        );
        // The template leaves the spend out...
        let t = template(&net, &chain, vec![spend.clone()], 2000);
        assert!(t.block.transactions.is_empty());
        // ...and a block that includes it is invalid.
        let mut p = template(&net, &chain, Vec::new(), 2000);
        p.block.transactions = vec![spend.clone()];
        let mut early = chain
            .store()
            .complete_block(
                p.block,
                chain.rules().reward.subsidy(Height(2)),
                SigCheck::Skip,
            )
            .unwrap()
            .block;
        seal(&mut early, true);
        chain.accept_header(&early.header, now(2000)).unwrap();
        chain.add_body(&early).unwrap();
        let f = chain.follow_best().unwrap();
        assert!(f.invalid[0].1.contains("not yet mature"), "{:?}", f.invalid);
        assert!(chain.is_invalid(&early.hash()));
        // Once block 1 is 10 deep, the spend goes in.
        for i in 2..=10 {
            mine(&net, &mut chain, Vec::new(), i * 1000);
        }
        let later = mine(&net, &mut chain, vec![spend.clone()], 11_000);
        assert_eq!(later.header.height, Height(11));
        assert_eq!(later.transactions, vec![spend]);
    }

    #[test]
    fn a_heavier_branch_is_followed_within_the_depth_limit_and_a_crash_mid_reorg_recovers() {
        let net = net(100);
        let dir_a = tempfile::tempdir().unwrap();
        let dir_b = tempfile::tempdir().unwrap();
        let (mut a, _) = open(&net, dir_a.path(), 100);
        let (mut b, _) = open(&net, dir_b.path(), 100);
        let txs = transfers(&net, &a, 1);
        let a_blocks: Vec<Block> = (1..=2)
            .map(|i| {
                mine(
                    &net,
                    &mut a,
                    if i == 1 { txs.clone() } else { Vec::new() },
                    i * 1000,
                )
            })
            .collect();
        let b_blocks: Vec<Block> = (1..=3)
            .map(|i| mine(&net, &mut b, Vec::new(), i * 1000 + 7))
            .collect();

        // A node refusing reorgs deeper than one stays where it is, once warned.
        let dir_c = tempfile::tempdir().unwrap();
        let (mut c, _) = open(&net, dir_c.path(), 1);
        for blk in &a_blocks {
            c.accept_header(&blk.header, now(5000)).unwrap();
            c.add_body(blk).unwrap();
            c.follow_best().unwrap();
        }
        let mut refused = None;
        for blk in &b_blocks {
            c.accept_header(&blk.header, now(5000)).unwrap();
            c.add_body(blk).unwrap();
            let f = c.follow_best().unwrap();
            refused = refused.or(f.refused_depth);
        }
        assert_eq!(refused, Some(2));
        assert_eq!(c.store().tip().hash, a_blocks[1].hash());

        // Headers first: the branch is known, but nothing moves without its bodies.
        for blk in &b_blocks {
            a.accept_header(&blk.header, now(5000)).unwrap();
        }
        let f = a.follow_best().unwrap();
        assert_eq!(
            f.missing,
            b_blocks.iter().map(Block::hash).collect::<Vec<_>>()
        );
        assert_eq!(a.store().tip().hash, a_blocks[1].hash());
        for blk in &b_blocks[..2] {
            a.add_body(blk).unwrap();
        }
        assert!(
            a.follow_best().unwrap().connected.is_empty(),
            "a lighter prefix was taken"
        );
        a.add_body(&b_blocks[2]).unwrap();
        let f = a.follow_best().unwrap();
        assert_eq!(f.disconnected.len(), 2);
        assert_eq!(f.disconnected[1].transactions, txs);
        assert_eq!(f.connected.len(), 3);
        assert_eq!(a.store().tip().hash, b_blocks[2].hash());
        assert_eq!(a.store().state_root(), b.store().state_root());

        // A crash halfway through the next reorg (one block put aside and undone): reopening
        // finds the most-work chain again.
        let store = Arc::clone(a.store());
        store
            .put_consensus(&side_key(&b_blocks[2].hash()), &codec::encode(&b_blocks[2]))
            .unwrap();
        store.revert_tip().unwrap();
        drop(a);
        drop(store);
        let (a, reopened) = open(&net, dir_a.path(), 100);
        assert_eq!(reopened.connected.len(), 1);
        assert_eq!(a.store().tip().hash, b_blocks[2].hash());
        assert_eq!(a.side_len(), 2, "the old branch is kept aside");
        assert_eq!(a.store().state_root(), b.store().state_root());
    }

    #[test]
    fn a_branch_whose_bodies_are_here_is_followed_past_a_heavier_one_withheld() {
        let net = net(100);
        let (dir_a, dir_w, dir_h) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let (mut a, _) = open(&net, dir_a.path(), 100);
        let (mut w, _) = open(&net, dir_w.path(), 100);
        let (mut h, _) = open(&net, dir_h.path(), 100);
        // A peer announces three blocks of work and never sends their bodies.
        let withheld: Vec<Block> = (1..=3)
            .map(|i| mine(&net, &mut w, Vec::new(), i * 1000))
            .collect();
        for blk in &withheld {
            a.accept_header(&blk.header, now(5000)).unwrap();
        }
        let honest = mine(&net, &mut h, Vec::new(), 1500);
        a.accept_header(&honest.header, now(5000)).unwrap();
        a.add_body(&honest).unwrap();
        assert_eq!(a.index().best_tip(), withheld[2].hash());

        let f = a.follow_best().unwrap();
        assert_eq!(
            a.store().tip().hash,
            honest.hash(),
            "stalled on a withheld body"
        );
        assert_eq!(f.connected.len(), 1);
        // The heavier branch's bodies are still asked for.
        assert_eq!(
            f.missing,
            withheld.iter().map(Block::hash).collect::<Vec<_>>()
        );

        // The honest branch goes on growing while the other stays without bodies.
        let next = mine(&net, &mut h, Vec::new(), 2500);
        a.accept_header(&next.header, now(5000)).unwrap();
        a.add_body(&next).unwrap();
        a.follow_best().unwrap();
        assert_eq!(a.store().tip().hash, next.hash());

        // Once its bodies arrive, the heavier branch is taken as before.
        for blk in &withheld {
            a.add_body(blk).unwrap();
        }
        let f = a.follow_best().unwrap();
        assert_eq!(f.disconnected.len(), 2);
        assert_eq!(a.store().tip().hash, withheld[2].hash());
    }
}
