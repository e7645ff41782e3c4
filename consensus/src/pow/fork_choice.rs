//! Fork choice: the index of accepted headers, each with its accumulated work, and the best
//! tip, which is the viable block with the most accumulated work, the first seen among equals.
//!
//! Blocks marked invalid, and everything built on them, are never chosen again; a reorg is
//! described as the path between two tips (what to disconnect, newest first, and what to
//! connect, oldest first); block locators and `find_fork` let two nodes find where their
//! chains part, as Bitcoin's headers-first sync does.
//!
//! The index holds the recent part of history only: when it reaches its bound it moves its
//! root up the best chain to [`IndexLimits::prune_depth_blocks`] below the best tip and drops
//! every block that does not descend from the new root. A branch that forks deeper than that
//! can no longer be followed; the depth is meant to be far beyond any reorg the node would
//! take anyway (the node's maximum reorg depth is a separate, smaller, local policy).
//!
//! Owns: headers' place in the tree, their work, their validity as reported, the best tip.
//! Never: checks proof of work or timestamps (callers insert headers that passed
//! [`super::check_header`]), or touches bodies, state or the store.

use std::collections::HashMap;

use cairn_ledger::{Hash, Height};

use super::header::{CheckedHeader, HeaderSummary};
use super::target::{CompactError, Work};

/// Default bound on indexed blocks. At about 300 bytes each (the map entry, two hashes, two
/// works, the child list), 200,000 blocks are about 60 MB: within a node's budget, and far
/// more than [`PRUNE_DEPTH_BLOCKS`] plus any honest set of competing branches.
pub const INDEX_BLOCKS_MAX: usize = 200_000;

/// Default depth below the best tip that pruning keeps. 10,000 blocks is about 5.5 hours at
/// a 2-second block time and 70 days at Bitcoin's 10 minutes: deeper than any reorg a node
/// should follow, and more than the ancestors a retarget window or the median time past read.
pub const PRUNE_DEPTH_BLOCKS: u64 = 10_000;

/// Entries a locator lists one by one before its steps start doubling (Bitcoin's rule: the
/// doubling starts once more than this many are listed), so that a peer only a few blocks
/// off finds the exact fork point.
pub const LOCATOR_DENSE_HASHES: usize = 10;

/// Longest locator `find_fork` accepts (Bitcoin's `MAX_LOCATOR_SZ`). A locator built here
/// has at most 11 dense entries, 64 doubling steps and genesis; a longer one is not honest
/// and would only make us hash-look-up more.
pub const LOCATOR_HASHES_MAX: usize = 101;

/// The index's bounds; see [`INDEX_BLOCKS_MAX`] and [`PRUNE_DEPTH_BLOCKS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexLimits {
    blocks_max: usize,
    prune_depth_blocks: u64,
}

impl IndexLimits {
    /// `blocks_max` must be at least twice `prune_depth_blocks + 1` (the best chain a prune
    /// keeps), so that a prune frees at least half the index and pruning stays rare.
    pub fn new(blocks_max: usize, prune_depth_blocks: u64) -> Result<IndexLimits, IndexError> {
        let kept_twice = prune_depth_blocks
            .checked_add(1)
            .and_then(|kept| kept.checked_mul(2));
        let fits = kept_twice.is_some_and(|k| k <= blocks_max as u64);
        if prune_depth_blocks == 0 || !fits {
            return Err(IndexError::BadLimits {
                blocks_max,
                prune_depth_blocks,
            });
        }
        Ok(IndexLimits {
            blocks_max,
            prune_depth_blocks,
        })
    }

    pub fn blocks_max(&self) -> usize {
        self.blocks_max
    }

    pub fn prune_depth_blocks(&self) -> u64 {
        self.prune_depth_blocks
    }
}

impl Default for IndexLimits {
    fn default() -> IndexLimits {
        IndexLimits {
            blocks_max: INDEX_BLOCKS_MAX,
            prune_depth_blocks: PRUNE_DEPTH_BLOCKS,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockStatus {
    /// Not known to be invalid: a candidate for the best tip.
    Viable,
    /// Reported invalid itself (a bad body, state root, …).
    Invalid,
    /// Built on the invalid block `ancestor`.
    DescendsFromInvalid { ancestor: Hash },
}

/// One indexed block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexedBlock {
    pub summary: HeaderSummary,
    /// Not in the index for the root (`Hash::ZERO` for a root the index started from).
    pub parent: Hash,
    pub work: Work,
    /// The work of this block and all its ancestors, the root's accumulated work included.
    pub chain_work: Work,
    /// Arrival order, lower first: breaks ties in chain work.
    pub seen: u64,
    pub status: BlockStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("block {block}'s parent {parent} is not known; request headers to fill the gap")]
    UnknownParent { block: Hash, parent: Hash },
    #[error("block {block} builds on {parent}, which is invalid or descends from an invalid block")]
    InvalidParent { block: Hash, parent: Hash },
    #[error("block {block} has height {height}, but its parent's child is at {expected}")]
    HeightMismatch {
        block: Hash,
        height: Height,
        expected: Height,
    },
    #[error("block {block} carries unusable bits: {source}")]
    BadBits {
        block: Hash,
        #[source]
        source: CompactError,
    },
    #[error("block {block} forks off below the index's root (parent {parent} was pruned)")]
    ForksBelowRoot { block: Hash, parent: Hash },
    #[error(
        "block index is full ({blocks_max} blocks within the kept depth) and block {block} has \
         no more work than any side branch it could replace; refused"
    )]
    Full { block: Hash, blocks_max: usize },
    #[error("block {block} is not in the index")]
    UnknownBlock { block: Hash },
    #[error("block {block} is the index's root, which is settled and cannot be invalidated")]
    CannotInvalidateRoot { block: Hash },
    #[error(
        "{needed} ancestors of {tip} requested, but only {available} are above the index's root"
    )]
    AncestryBelowRoot {
        tip: Hash,
        needed: u64,
        available: u64,
    },
    #[error("locator of {len} hashes is over the limit of {LOCATOR_HASHES_MAX}")]
    LocatorTooLong { len: usize },
    #[error(
        "index limits of {blocks_max} blocks and prune depth {prune_depth_blocks}: the depth must \
         be at least 1 and the bound at least 2 × (depth + 1)"
    )]
    BadLimits {
        blocks_max: usize,
        prune_depth_blocks: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    AlreadyKnown,
    Added {
        /// The new block is the best tip now: the node should reorg to it.
        best_changed: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invalidated {
    /// Blocks newly marked: the reported one and its descendants.
    pub marked: usize,
    /// The best tip was among them: the node should reorg to the new one.
    pub best_changed: bool,
}

/// How to move from one tip to another: disconnect `disconnect` (newest first) back to
/// `fork_point`, then connect `connect` (oldest first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReorgPath {
    pub fork_point: Hash,
    pub disconnect: Vec<Hash>,
    pub connect: Vec<Hash>,
}

impl ReorgPath {
    /// Blocks undone: what a maximum-reorg-depth policy compares against.
    pub fn depth(&self) -> usize {
        self.disconnect.len()
    }
}

#[derive(Clone, Debug)]
struct Entry {
    block: IndexedBlock,
    children: Vec<Hash>,
}

/// The index of headers; see the module documentation.
#[derive(Clone, Debug)]
pub struct BlockIndex {
    limits: IndexLimits,
    genesis: Hash,
    /// The oldest block kept; every other block descends from it.
    root: Hash,
    blocks: HashMap<Hash, Entry>,
    best: Hash,
    /// The best chain from the root: `best_chain[i]` is at the root's height plus `i`.
    best_chain: Vec<Hash>,
    next_seen: u64,
}

impl BlockIndex {
    /// An index holding genesis alone. Its summary carries the genesis `initial_bits`, and its
    /// work counts towards every chain (as in Bitcoin, where block 1's chain work is twice a
    /// block's).
    pub fn new(genesis: HeaderSummary, limits: IndexLimits) -> Result<BlockIndex, IndexError> {
        let work = genesis
            .bits
            .to_target()
            .map_err(|source| IndexError::BadBits {
                block: genesis.hash,
                source,
            })?
            .to_work();
        Ok(BlockIndex::with_root(genesis.hash, genesis, work, limits))
    }

    /// An index starting at `root`, a block of the best chain whose accumulated work is known
    /// (a node restarting from its store, without reading all of history back).
    pub fn with_root(
        genesis: Hash,
        root: HeaderSummary,
        root_chain_work: Work,
        limits: IndexLimits,
    ) -> BlockIndex {
        let block = IndexedBlock {
            summary: root,
            parent: Hash::ZERO,
            // Informational only: chain work from here on adds to `root_chain_work`.
            work: root.bits.to_target().map_or(Work::ZERO, |t| t.to_work()),
            chain_work: root_chain_work,
            seen: 0,
            status: BlockStatus::Viable,
        };
        BlockIndex {
            limits,
            genesis,
            root: root.hash,
            blocks: HashMap::from([(
                root.hash,
                Entry {
                    block,
                    children: Vec::new(),
                },
            )]),
            best: root.hash,
            best_chain: vec![root.hash],
            next_seen: 1,
        }
    }

    pub fn limits(&self) -> IndexLimits {
        self.limits
    }

    pub fn genesis(&self) -> Hash {
        self.genesis
    }

    pub fn root(&self) -> Hash {
        self.root
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Never true: the root is always there.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn contains(&self, hash: &Hash) -> bool {
        self.blocks.contains_key(hash)
    }

    pub fn get(&self, hash: &Hash) -> Option<&IndexedBlock> {
        self.blocks.get(hash).map(|e| &e.block)
    }

    pub fn best_tip(&self) -> Hash {
        self.best
    }

    pub fn best(&self) -> &IndexedBlock {
        &self.entry(&self.best).block
    }

    pub fn best_height(&self) -> Height {
        self.best().summary.height
    }

    fn root_height(&self) -> Height {
        self.entry(&self.root).block.summary.height
    }

    /// Present by the index's invariants: every hash stored in it (root, best, best chain,
    /// parents of non-root blocks, children) names a block in `blocks`.
    fn entry(&self, hash: &Hash) -> &Entry {
        &self.blocks[hash]
    }

    fn lookup(&self, hash: &Hash) -> Result<&IndexedBlock, IndexError> {
        self.get(hash)
            .ok_or(IndexError::UnknownBlock { block: *hash })
    }

    /// The best chain's block at `height`, if the index holds it.
    pub fn best_chain_at(&self, height: Height) -> Option<Hash> {
        let offset = height.0.checked_sub(self.root_height().0)?;
        self.best_chain.get(usize::try_from(offset).ok()?).copied()
    }

    pub fn is_on_best_chain(&self, hash: &Hash) -> bool {
        self.get(hash)
            .is_some_and(|b| self.best_chain_at(b.summary.height) == Some(*hash))
    }

    /// Up to `count_max` best-chain hashes from `from` upwards: the headers to serve a peer
    /// after `find_fork`.
    pub fn best_chain_from(&self, from: Height, count_max: usize) -> &[Hash] {
        let Some(start) = from
            .0
            .checked_sub(self.root_height().0)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|s| *s < self.best_chain.len())
        else {
            return &[];
        };
        let end = start.saturating_add(count_max).min(self.best_chain.len());
        &self.best_chain[start..end]
    }

    /// Confirmations of a best-chain block (1 for the tip); `None` off the best chain.
    pub fn confirmations(&self, hash: &Hash) -> Option<u64> {
        let height = self.get(hash)?.summary.height;
        self.is_on_best_chain(hash)
            .then(|| self.best_height().0 - height.0 + 1)
    }

    /// Blocks with no children, the tips of all branches, in the order they were first seen
    /// (for status and fork monitoring; a fixed order keeps simulator runs reproducible).
    pub fn leaves(&self) -> Vec<&IndexedBlock> {
        let mut leaves: Vec<&IndexedBlock> = self
            .blocks
            .values()
            .filter(|e| e.children.is_empty())
            .map(|e| &e.block)
            .collect();
        leaves.sort_by_key(|b| b.seen);
        leaves
    }

    /// Adds a header that passed [`super::check_header`].
    pub fn insert_checked(&mut self, header: &CheckedHeader) -> Result<Inserted, IndexError> {
        self.insert(header.parent, header.summary)
    }

    /// Adds a header under its parent. Its work comes from its bits; its chain work adds to
    /// the parent's. It becomes the best tip only with strictly more chain work than the
    /// current one: among equals, the first seen stays.
    pub fn insert(&mut self, parent: Hash, summary: HeaderSummary) -> Result<Inserted, IndexError> {
        let block = summary.hash;
        if self.blocks.contains_key(&block) {
            return Ok(Inserted::AlreadyKnown);
        }
        let work = summary
            .bits
            .to_target()
            .map_err(|source| IndexError::BadBits { block, source })?
            .to_work();
        self.check_parent(block, parent, summary.height)?;
        let chain_work = self.entry(&parent).block.chain_work.saturating_add(work);
        if self.blocks.len() >= self.limits.blocks_max {
            self.prune();
            if !self.blocks.contains_key(&parent) {
                return Err(IndexError::ForksBelowRoot { block, parent });
            }
            if self.blocks.len() >= self.limits.blocks_max && !self.evict_for(parent, chain_work) {
                return Err(IndexError::Full {
                    block,
                    blocks_max: self.limits.blocks_max,
                });
            }
        }
        let indexed = IndexedBlock {
            summary,
            parent,
            work,
            chain_work,
            seen: self.next_seen,
            status: BlockStatus::Viable,
        };
        self.next_seen += 1;
        self.blocks.insert(
            block,
            Entry {
                block: indexed,
                children: Vec::new(),
            },
        );
        if let Some(p) = self.blocks.get_mut(&parent) {
            p.children.push(block);
        }
        let best_changed = chain_work > self.best().chain_work;
        if best_changed {
            self.set_best(block);
        }
        Ok(Inserted::Added { best_changed })
    }

    fn check_parent(&self, block: Hash, parent: Hash, height: Height) -> Result<(), IndexError> {
        let Some(p) = self.get(&parent) else {
            return Err(IndexError::UnknownParent { block, parent });
        };
        if p.status != BlockStatus::Viable {
            return Err(IndexError::InvalidParent { block, parent });
        }
        let expected = p.summary.height.next();
        if height != expected {
            return Err(IndexError::HeightMismatch {
                block,
                height,
                expected,
            });
        }
        Ok(())
    }

    /// Makes `tip` the best tip and rewrites the best chain above the fork with it.
    fn set_best(&mut self, tip: Hash) {
        let mut branch = Vec::new();
        let mut cur = tip;
        // The root is on the best chain, so the walk stops at or before it.
        while !self.is_on_best_chain(&cur) {
            branch.push(cur);
            cur = self.entry(&cur).block.parent;
        }
        let fork_height = self.entry(&cur).block.summary.height;
        let keep = (fork_height.0 - self.root_height().0 + 1) as usize;
        self.best_chain.truncate(keep);
        self.best_chain.extend(branch.into_iter().rev());
        self.best = tip;
    }

    /// Marks `hash` invalid and everything built on it as descending from an invalid block;
    /// none of them is chosen again, and none gets children. If the best tip was among them,
    /// the best tip becomes the viable block with the most work (the first seen among equals).
    pub fn mark_invalid(&mut self, hash: Hash) -> Result<Invalidated, IndexError> {
        if hash == self.root {
            return Err(IndexError::CannotInvalidateRoot { block: hash });
        }
        let entry = self
            .blocks
            .get_mut(&hash)
            .ok_or(IndexError::UnknownBlock { block: hash })?;
        let mut marked = 0;
        let was_viable = entry.block.status == BlockStatus::Viable;
        if entry.block.status != BlockStatus::Invalid {
            entry.block.status = BlockStatus::Invalid;
            marked += 1;
        }
        // Below a block that was already not viable, everything already is not.
        let mut stack = if was_viable {
            entry.children.clone()
        } else {
            Vec::new()
        };
        while let Some(child) = stack.pop() {
            let Some(e) = self.blocks.get_mut(&child) else {
                continue;
            };
            if e.block.status == BlockStatus::Viable {
                e.block.status = BlockStatus::DescendsFromInvalid { ancestor: hash };
                marked += 1;
                stack.extend(e.children.iter().copied());
            }
        }
        let best_changed = self.best().status != BlockStatus::Viable;
        if best_changed {
            let best = self
                .blocks
                .values()
                .map(|e| &e.block)
                .filter(|b| b.status == BlockStatus::Viable)
                .max_by(|a, b| a.chain_work.cmp(&b.chain_work).then(b.seen.cmp(&a.seen)))
                .map_or(self.root, |b| b.summary.hash);
            self.set_best(best);
        }
        Ok(Invalidated {
            marked,
            best_changed,
        })
    }

    /// The ancestor of `hash` at `height` (itself at its own height); `None` if `hash` is
    /// unknown, or `height` is above it or below the root.
    pub fn ancestor(&self, hash: &Hash, height: Height) -> Option<Hash> {
        let mut block = self.get(hash)?;
        if height > block.summary.height || height < self.root_height() {
            return None;
        }
        loop {
            if block.summary.height == height {
                return Some(block.summary.hash);
            }
            // Once on the best chain, jump straight to the height.
            if self.is_on_best_chain(&block.summary.hash) {
                return self.best_chain_at(height);
            }
            block = self.get(&block.parent)?;
        }
    }

    /// The last `count` blocks up to and including `tip`, oldest first: the ancestors
    /// [`super::check_header`] and [`super::difficulty::next_bits`] read for `tip`'s child.
    pub fn ancestry(&self, tip: &Hash, count: u64) -> Result<Vec<HeaderSummary>, IndexError> {
        let mut block = self.lookup(tip)?;
        let available = block.summary.height.0 - self.root_height().0 + 1;
        if count > available {
            return Err(IndexError::AncestryBelowRoot {
                tip: *tip,
                needed: count,
                available,
            });
        }
        let mut out = Vec::with_capacity(count as usize);
        for _ in 0..count {
            out.push(block.summary);
            if block.summary.hash == self.root {
                break;
            }
            block = &self.entry(&block.parent).block;
        }
        out.reverse();
        Ok(out)
    }

    /// The path from tip `from` to tip `to` through their last common ancestor.
    pub fn reorg_path(&self, from: &Hash, to: &Hash) -> Result<ReorgPath, IndexError> {
        let mut a = self.lookup(from)?;
        let mut b = self.lookup(to)?;
        let mut disconnect = Vec::new();
        let mut connect = Vec::new();
        while a.summary.height > b.summary.height {
            disconnect.push(a.summary.hash);
            a = &self.entry(&a.parent).block;
        }
        while b.summary.height > a.summary.height {
            connect.push(b.summary.hash);
            b = &self.entry(&b.parent).block;
        }
        // Both descend from the root, so they meet at the root at the latest.
        while a.summary.hash != b.summary.hash {
            disconnect.push(a.summary.hash);
            connect.push(b.summary.hash);
            a = &self.entry(&a.parent).block;
            b = &self.entry(&b.parent).block;
        }
        connect.reverse();
        Ok(ReorgPath {
            fork_point: a.summary.hash,
            disconnect,
            connect,
        })
    }

    /// A block locator for `tip`, as Bitcoin builds one: `tip` and its ancestors one by one
    /// until more than [`LOCATOR_DENSE_HASHES`] are listed, then steps doubling each time,
    /// ending with genesis.
    pub fn locator(&self, tip: &Hash) -> Result<Vec<Hash>, IndexError> {
        let root_height = self.root_height();
        let mut cur = self.lookup(tip)?.summary;
        let mut out = Vec::new();
        let mut step = 1u64;
        loop {
            out.push(cur.hash);
            if cur.height == root_height {
                break;
            }
            let next = Height(cur.height.0.saturating_sub(step).max(root_height.0));
            let Some(next) = self.ancestor(&cur.hash, next).and_then(|h| self.get(&h)) else {
                break;
            };
            cur = next.summary;
            if out.len() > LOCATOR_DENSE_HASHES {
                step = step.saturating_mul(2);
            }
        }
        if self.root != self.genesis {
            out.push(self.genesis);
        }
        Ok(out)
    }

    /// Where a peer's chain (described by its `locator`) leaves our best chain: the first
    /// locator entry on our best chain, or our best tip if the entry builds on it (the peer
    /// is ahead). `None` when nothing matches: another network, or a fork below our root (the
    /// caller may look the hashes up in its store of older blocks).
    pub fn find_fork(&self, locator: &[Hash]) -> Result<Option<(Hash, Height)>, IndexError> {
        if locator.len() > LOCATOR_HASHES_MAX {
            return Err(IndexError::LocatorTooLong { len: locator.len() });
        }
        let best_height = self.best_height();
        for hash in locator {
            let Some(block) = self.get(hash) else {
                if *hash == self.genesis {
                    return Ok(Some((self.genesis, Height(0))));
                }
                continue;
            };
            if self.is_on_best_chain(hash) {
                return Ok(Some((*hash, block.summary.height)));
            }
            if self.ancestor(hash, best_height) == Some(self.best) {
                return Ok(Some((self.best, best_height)));
            }
        }
        Ok(None)
    }

    /// Makes room for a block with `chain_work` under `parent` in a full index by dropping
    /// the weakest side-branch tip: an invalid one first, else the one with the least chain
    /// work (the last seen among equals), if the newcomer has more. A block extending the best
    /// tip always has more, so a flood of side blocks can fill the index but never keep the
    /// best chain out.
    fn evict_for(&mut self, parent: Hash, chain_work: Work) -> bool {
        let viable = |b: &IndexedBlock| b.status == BlockStatus::Viable;
        let victim = self
            .blocks
            .values()
            .filter(|e| e.children.is_empty())
            .map(|e| &e.block)
            .filter(|b| b.summary.hash != parent && !self.is_on_best_chain(&b.summary.hash))
            .min_by(|a, b| {
                viable(a)
                    .cmp(&viable(b))
                    .then(a.chain_work.cmp(&b.chain_work))
                    .then(b.seen.cmp(&a.seen))
            })
            .filter(|v| !viable(v) || v.chain_work < chain_work)
            .map(|v| (v.summary.hash, v.parent));
        let Some((victim, victim_parent)) = victim else {
            return false;
        };
        self.blocks.remove(&victim);
        if let Some(p) = self.blocks.get_mut(&victim_parent) {
            p.children.retain(|c| *c != victim);
        }
        true
    }

    /// Moves the root up the best chain to the prune depth below the best tip and drops
    /// every block that does not descend from it.
    fn prune(&mut self) {
        let root_height = self.root_height();
        let cutoff = self
            .best_height()
            .0
            .saturating_sub(self.limits.prune_depth_blocks);
        if cutoff <= root_height.0 {
            return;
        }
        let Some(new_root) = self.best_chain_at(Height(cutoff)) else {
            return;
        };
        let mut kept = HashMap::new();
        let mut stack = vec![new_root];
        while let Some(hash) = stack.pop() {
            if let Some(entry) = self.blocks.remove(&hash) {
                stack.extend(entry.children.iter().copied());
                kept.insert(hash, entry);
            }
        }
        self.blocks = kept;
        self.best_chain.drain(..(cutoff - root_height.0) as usize);
        self.root = new_root;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pow::target::CompactTarget;
    use crate::pow::test_support::{EASY_BITS, hash_of};
    use cairn_ledger::TimestampMs;
    use proptest::prelude::*;

    /// Work 2 (regtest's limit), about 256 and about 65,536.
    const BITS: [u32; 3] = [EASY_BITS, 0x2000_ffff, 0x1f00_ffff];

    fn summary(label: u64, height: u64, bits: u32) -> HeaderSummary {
        HeaderSummary {
            hash: hash_of(label),
            height: Height(height),
            timestamp: TimestampMs(label),
            bits: CompactTarget(bits),
        }
    }

    fn work(bits: u32) -> Work {
        CompactTarget(bits).to_target().unwrap().to_work()
    }

    /// A tree grown block by block, with an independent record of it to check against.
    struct Tree {
        index: BlockIndex,
        parent: Vec<usize>,
        height: Vec<u64>,
        bits: Vec<u32>,
        invalid: Vec<bool>,
    }

    impl Tree {
        fn new(limits: IndexLimits) -> Tree {
            Tree {
                index: BlockIndex::new(summary(0, 0, EASY_BITS), limits).unwrap(),
                parent: vec![0],
                height: vec![0],
                bits: vec![EASY_BITS],
                invalid: vec![false],
            }
        }

        fn add(&mut self, parent: usize, bits: u32) -> Result<Inserted, IndexError> {
            let label = self.parent.len();
            let height = self.height[parent] + 1;
            let r = self
                .index
                .insert(hash_of(parent as u64), summary(label as u64, height, bits));
            if r.is_ok() {
                self.parent.push(parent);
                self.height.push(height);
                self.bits.push(bits);
                self.invalid.push(false);
            }
            r
        }

        fn chain(&mut self, from: usize, blocks: usize, bits: u32) -> usize {
            let mut tip = from;
            for _ in 0..blocks {
                self.add(tip, bits).unwrap();
                tip = self.parent.len() - 1;
            }
            tip
        }

        fn path_to_root(&self, mut i: usize) -> Vec<usize> {
            let mut path = vec![i];
            while i != 0 {
                i = self.parent[i];
                path.push(i);
            }
            path
        }

        fn chain_work(&self, i: usize) -> Work {
            self.path_to_root(i)
                .iter()
                .fold(Work::ZERO, |w, j| w.saturating_add(work(self.bits[*j])))
        }

        fn viable(&self, i: usize) -> bool {
            self.path_to_root(i).iter().all(|j| !self.invalid[*j])
        }

        /// Most chain work among viable blocks, the lowest label (first inserted) on ties.
        fn brute_best(&self) -> usize {
            (0..self.parent.len())
                .filter(|i| self.viable(*i))
                .max_by(|a, b| self.chain_work(*a).cmp(&self.chain_work(*b)).then(b.cmp(a)))
                .unwrap()
        }

        fn check_invariants(&self) {
            let best = self.brute_best();
            assert_eq!(self.index.best_tip(), hash_of(best as u64));
            for (i, hash) in self.index.best_chain.iter().enumerate() {
                assert_eq!(
                    self.index.ancestor(&self.index.best, Height(i as u64)),
                    Some(*hash)
                );
            }
            assert_eq!(self.index.best_chain.len() as u64, self.height[best] + 1);
            for i in 0..self.parent.len() {
                let b = self.index.get(&hash_of(i as u64)).unwrap();
                assert_eq!(b.chain_work, self.chain_work(i));
                if i != 0 {
                    assert!(b.chain_work > self.index.get(&b.parent).unwrap().chain_work);
                }
            }
        }
    }

    #[test]
    fn chain_work_accumulates_like_bitcoins() {
        let mut index = BlockIndex::new(summary(0, 0, 0x1d00ffff), IndexLimits::default()).unwrap();
        for h in 1..=12345u64 {
            index
                .insert(hash_of(h - 1), summary(h, h, 0x1d00ffff))
                .unwrap();
        }
        assert_eq!(index.best_height(), Height(12345));
        // Bitcoin mainnet block 12345's chainwork.
        assert_eq!(
            index.best().chain_work.to_string(),
            format!("0x{:0>64}", "303a303a303a")
        );
        assert_eq!(
            index.get(&hash_of(1)).unwrap().chain_work.to_string(),
            format!("0x{:0>64}", "200020002")
        );
        assert_eq!(index.confirmations(&hash_of(12345)), Some(1));
        assert_eq!(index.confirmations(&hash_of(12000)), Some(346));
    }

    #[test]
    fn most_work_wins_over_most_blocks() {
        let mut t = Tree::new(IndexLimits::default());
        let long = t.chain(0, 10, EASY_BITS);
        assert_eq!(t.index.best_tip(), hash_of(long as u64));
        // One block of ~256 beats ten of 2.
        assert_eq!(
            t.add(0, 0x2000_ffff),
            Ok(Inserted::Added { best_changed: true })
        );
        assert_eq!(t.index.best_height(), Height(1));
        t.check_invariants();
        let path = t
            .index
            .reorg_path(&hash_of(long as u64), &t.index.best_tip())
            .unwrap();
        assert_eq!(path.depth(), 10);
        assert_eq!(path.connect, vec![t.index.best_tip()]);
        assert_eq!(path.fork_point, hash_of(0));
    }

    #[test]
    fn equal_work_goes_to_the_first_seen() {
        let mut t = Tree::new(IndexLimits::default());
        let a = t.chain(0, 3, EASY_BITS);
        let b = t.chain(0, 3, EASY_BITS);
        assert_eq!(t.index.best_tip(), hash_of(a as u64));
        assert_eq!(
            t.add(b, EASY_BITS),
            Ok(Inserted::Added { best_changed: true })
        );
        t.check_invariants();
        assert_eq!(
            t.add(a, EASY_BITS),
            Ok(Inserted::Added {
                best_changed: false
            })
        );
        t.check_invariants();
        let leaves: Vec<Hash> = t.index.leaves().iter().map(|b| b.summary.hash).collect();
        assert_eq!(leaves, vec![hash_of(7), hash_of(8)]);
        assert_eq!(
            t.index.insert(hash_of(a as u64), summary(8, 4, EASY_BITS)),
            Ok(Inserted::AlreadyKnown)
        );
    }

    #[test]
    fn invalid_blocks_and_their_descendants_are_never_chosen() {
        let mut t = Tree::new(IndexLimits::default());
        let a = t.chain(0, 5, EASY_BITS);
        let b = t.chain(2, 2, EASY_BITS);
        assert_eq!(t.index.best_tip(), hash_of(a as u64));
        // Block 3 is a's first block above the fork at 2.
        let out = t.index.mark_invalid(hash_of(3)).unwrap();
        for i in 3..=a {
            t.invalid[i] = i == 3;
        }
        assert_eq!(
            out,
            Invalidated {
                marked: 3,
                best_changed: true
            }
        );
        assert_eq!(t.index.best_tip(), hash_of(b as u64));
        t.check_invariants();
        assert_eq!(
            t.index.get(&hash_of(a as u64)).unwrap().status,
            BlockStatus::DescendsFromInvalid {
                ancestor: hash_of(3)
            }
        );
        // Nothing more can be built on the invalid branch, however much work it would add.
        assert_eq!(
            t.add(a, 0x1f00_ffff),
            Err(IndexError::InvalidParent {
                block: hash_of(8),
                parent: hash_of(a as u64)
            })
        );
        assert_eq!(
            t.index.mark_invalid(hash_of(0)),
            Err(IndexError::CannotInvalidateRoot { block: hash_of(0) })
        );
        // Invalidating the tip falls back to its parent when nothing else has more work.
        let out = t.index.mark_invalid(hash_of(b as u64)).unwrap();
        t.invalid[b] = true;
        assert_eq!(
            out,
            Invalidated {
                marked: 1,
                best_changed: true
            }
        );
        t.check_invariants();
    }

    #[test]
    fn inserts_are_checked_against_the_parent() {
        let mut t = Tree::new(IndexLimits::default());
        assert_eq!(
            t.index.insert(hash_of(99), summary(1, 1, EASY_BITS)),
            Err(IndexError::UnknownParent {
                block: hash_of(1),
                parent: hash_of(99)
            })
        );
        assert_eq!(
            t.index.insert(hash_of(0), summary(1, 2, EASY_BITS)),
            Err(IndexError::HeightMismatch {
                block: hash_of(1),
                height: Height(2),
                expected: Height(1)
            })
        );
        assert!(matches!(
            t.index.insert(hash_of(0), summary(1, 1, 0x04923456)),
            Err(IndexError::BadBits { .. })
        ));
        assert_eq!(t.index.len(), 1);
    }

    #[test]
    fn locator_is_dense_then_exponential_and_ends_at_genesis() {
        let mut t = Tree::new(IndexLimits::default());
        let tip = t.chain(0, 100, EASY_BITS);
        let locator = t.index.locator(&hash_of(tip as u64)).unwrap();
        let heights: Vec<u64> = locator
            .iter()
            .map(|h| t.index.get(h).unwrap().summary.height.0)
            .collect();
        assert_eq!(
            heights,
            vec![
                100, 99, 98, 97, 96, 95, 94, 93, 92, 91, 90, 89, 87, 83, 75, 59, 27, 0
            ]
        );
        assert_eq!(t.index.locator(&hash_of(0)).unwrap(), vec![hash_of(0)]);
    }

    #[test]
    fn a_peer_on_another_branch_finds_the_exact_fork_point() {
        let mut ours = Tree::new(IndexLimits::default());
        let common = ours.chain(0, 30, EASY_BITS);
        ours.chain(common, 5, EASY_BITS);
        // Their index: the same 30 blocks, then 8 of their own (labels apart from ours).
        let mut theirs = Tree::new(IndexLimits::default());
        theirs.chain(0, 30, EASY_BITS);
        for label in 1000..1008u64 {
            let parent = if label == 1000 {
                hash_of(30)
            } else {
                hash_of(label - 1)
            };
            let height = 31 + (label - 1000);
            theirs
                .index
                .insert(parent, summary(label, height, EASY_BITS))
                .unwrap();
        }
        let locator = theirs.index.locator(&hash_of(1007)).unwrap();
        assert_eq!(
            ours.index.find_fork(&locator),
            Ok(Some((hash_of(30), Height(30))))
        );
        // A peer ahead of us on our own chain: the highest of its locator's (sparse) entries
        // that we have, as in Bitcoin; we already hold 16..=20 of the headers it then sends.
        let mut ahead = Tree::new(IndexLimits::default());
        ahead.chain(0, 40, EASY_BITS);
        let mut behind = Tree::new(IndexLimits::default());
        behind.chain(0, 20, EASY_BITS);
        let locator = ahead.index.locator(&hash_of(40)).unwrap();
        assert_eq!(
            behind.index.find_fork(&locator),
            Ok(Some((hash_of(15), Height(15))))
        );
        // A locator entry we hold off our best chain but built on our best tip (here a block
        // we found invalid, on top of our tip): our tip.
        behind
            .index
            .insert(hash_of(20), summary(2000, 21, EASY_BITS))
            .unwrap();
        behind
            .index
            .insert(hash_of(2000), summary(2001, 22, EASY_BITS))
            .unwrap();
        behind.index.mark_invalid(hash_of(2001)).unwrap();
        assert_eq!(
            behind.index.find_fork(&[hash_of(2001), hash_of(5)]),
            Ok(Some((hash_of(2000), Height(21))))
        );
        // Our own best-chain block in their locator (they are behind): that block.
        assert_eq!(
            ahead
                .index
                .find_fork(&behind.index.locator(&hash_of(20)).unwrap()),
            Ok(Some((hash_of(20), Height(20))))
        );
        assert_eq!(
            ahead.index.best_chain_from(Height(21), 5),
            &[
                hash_of(21),
                hash_of(22),
                hash_of(23),
                hash_of(24),
                hash_of(25)
            ]
        );
        assert_eq!(
            ahead.index.best_chain_from(Height(39), 5),
            &[hash_of(39), hash_of(40)]
        );
        assert!(ahead.index.best_chain_from(Height(41), 5).is_empty());
        // Nothing in common (another network), and an oversized locator.
        assert_eq!(ours.index.find_fork(&[hash_of(5000)]), Ok(None));
        assert_eq!(
            ours.index
                .find_fork(&vec![hash_of(1); LOCATOR_HASHES_MAX + 1]),
            Err(IndexError::LocatorTooLong {
                len: LOCATOR_HASHES_MAX + 1
            })
        );
    }

    #[test]
    fn limits_refuse_a_bound_too_small_for_the_depth() {
        assert!(IndexLimits::new(22, 10).is_ok());
        assert_eq!(
            IndexLimits::new(21, 10),
            Err(IndexError::BadLimits {
                blocks_max: 21,
                prune_depth_blocks: 10
            })
        );
        assert!(IndexLimits::new(100, 0).is_err());
        assert!(IndexLimits::new(usize::MAX, u64::MAX).is_err());
        assert!(IndexLimits::new(INDEX_BLOCKS_MAX, PRUNE_DEPTH_BLOCKS).is_ok());
    }

    #[test]
    fn pruning_keeps_the_index_bounded_and_the_recent_chain_whole() {
        let limits = IndexLimits::new(40, 10).unwrap();
        let mut t = Tree::new(limits);
        let mut tip = 0;
        let mut stale_side = None;
        for round in 0..40 {
            tip = t.chain(tip, 4, EASY_BITS);
            // A losing side block: a sibling of the tip, seen later, no more work.
            let side = t.chain(t.parent[tip], 1, EASY_BITS);
            if round == 5 {
                stale_side = Some(side);
            }
            assert!(t.index.len() <= 40, "{} blocks", t.index.len());
        }
        assert_eq!(t.index.best_tip(), hash_of(tip as u64));
        assert_eq!(t.index.best_height(), Height(160));
        let root_height = t.index.get(&t.index.root()).unwrap().summary.height;
        // The whole best chain from the root is indexed, so the root is within the bound.
        assert!(
            root_height.0 > 160 - 40 && root_height.0 <= 150,
            "{root_height}"
        );
        assert!(t.index.ancestry(&t.index.best_tip(), 11).is_ok());
        // Every kept block descends from the root, and every block in the kept depth is kept.
        for h in root_height.0..=160 {
            assert!(t.index.best_chain_at(Height(h)).is_some());
        }
        let locator = t.index.locator(&t.index.best_tip()).unwrap();
        assert_eq!(locator.last(), Some(&hash_of(0)));
        assert_eq!(
            t.index
                .get(locator.iter().rev().nth(1).unwrap())
                .unwrap()
                .summary
                .height,
            root_height
        );
        // A peer whose locator only shares genesis finds it even though it was pruned.
        assert_eq!(
            t.index.find_fork(&[hash_of(0)]),
            Ok(Some((hash_of(0), Height(0))))
        );
        // Old side branches are gone; building on them is refused.
        let stale = stale_side.unwrap();
        assert!(!t.index.contains(&hash_of(stale as u64)));
        assert!(matches!(
            t.add(stale, 0x1f00_ffff),
            Err(IndexError::UnknownParent { .. })
        ));
        assert!(matches!(
            t.index.ancestry(&t.index.best_tip(), 200),
            Err(IndexError::AncestryBelowRoot { .. })
        ));
    }

    #[test]
    fn a_flood_of_side_blocks_fills_the_index_but_never_keeps_the_best_chain_out() {
        let limits = IndexLimits::new(20, 5).unwrap();
        let mut t = Tree::new(limits);
        let tip = t.chain(0, 6, EASY_BITS);
        let mut refused = None;
        for _ in 0..30 {
            if let Err(e) = t.add(t.parent[tip], EASY_BITS) {
                refused = Some(e);
                break;
            }
        }
        assert!(
            matches!(refused, Some(IndexError::Full { blocks_max: 20, .. })),
            "{refused:?}"
        );
        assert_eq!(t.index.best_tip(), hash_of(tip as u64));
        assert_eq!(t.index.len(), 20);
        // A heavier side block takes the place of the weakest one.
        assert_eq!(
            t.add(t.parent[tip], 0x2000_ffff),
            Ok(Inserted::Added { best_changed: true })
        );
        assert_eq!(t.index.len(), 20);
        // The best chain keeps growing, each block evicting a flood block, then pruning.
        let mut tip = t.parent.len() - 1;
        for _ in 0..30 {
            tip = t.chain(tip, 1, EASY_BITS);
            assert!(t.index.len() <= 20);
        }
        assert_eq!(t.index.best_tip(), hash_of(tip as u64));
        assert!(t.index.ancestry(&t.index.best_tip(), 6).is_ok());
    }

    fn random_tree(choices: &[(prop::sample::Index, usize)]) -> Tree {
        let mut t = Tree::new(IndexLimits::default());
        for (parent, bits) in choices {
            let parent = parent.index(t.parent.len());
            t.add(parent, BITS[*bits]).unwrap();
        }
        t
    }

    fn tree_choices() -> impl Strategy<Value = Vec<(prop::sample::Index, usize)>> {
        // Mostly the easiest bits, so that equal chain work (ties) is common.
        let bits = prop_oneof![6 => Just(0usize), 2 => Just(1usize), 1 => Just(2usize)];
        proptest::collection::vec((any::<prop::sample::Index>(), bits), 1..60)
    }

    proptest! {
        #[test]
        fn best_tip_is_the_most_work_first_seen(choices in tree_choices()) {
            let mut t = Tree::new(IndexLimits::default());
            for (parent, bits) in &choices {
                let parent = parent.index(t.parent.len());
                t.add(parent, BITS[*bits]).unwrap();
                t.check_invariants();
            }
        }

        #[test]
        fn invalidation_matches_brute_force(
            choices in tree_choices(),
            victims in proptest::collection::vec(any::<prop::sample::Index>(), 1..4),
        ) {
            let mut t = random_tree(&choices);
            for v in victims {
                let victim = 1 + v.index(t.parent.len() - 1);
                if victim >= t.parent.len() {
                    continue;
                }
                t.index.mark_invalid(hash_of(victim as u64)).unwrap();
                t.invalid[victim] = true;
                t.check_invariants();
                for i in 0..t.parent.len() {
                    let status = t.index.get(&hash_of(i as u64)).unwrap().status;
                    prop_assert_eq!(status == BlockStatus::Viable, t.viable(i));
                }
            }
        }

        #[test]
        fn reorg_path_matches_brute_force(
            choices in tree_choices(),
            from in any::<prop::sample::Index>(),
            to in any::<prop::sample::Index>(),
        ) {
            let t = random_tree(&choices);
            let (from, to) = (from.index(t.parent.len()), to.index(t.parent.len()));
            let up_from = t.path_to_root(from);
            let up_to = t.path_to_root(to);
            let fork = *up_from.iter().find(|i| up_to.contains(i)).unwrap();
            let disconnect: Vec<Hash> = up_from
                .iter()
                .take_while(|i| **i != fork)
                .map(|i| hash_of(*i as u64))
                .collect();
            let mut connect: Vec<Hash> = up_to
                .iter()
                .take_while(|i| **i != fork)
                .map(|i| hash_of(*i as u64))
                .collect();
            connect.reverse();
            let path = t.index.reorg_path(&hash_of(from as u64), &hash_of(to as u64)).unwrap();
            prop_assert_eq!(path, ReorgPath { fork_point: hash_of(fork as u64), disconnect, connect });
        }

        #[test]
        fn locator_finds_the_fork(
            choices in tree_choices(),
            tip in any::<prop::sample::Index>(),
        ) {
            let t = random_tree(&choices);
            let tip = tip.index(t.parent.len());
            let locator = t.index.locator(&hash_of(tip as u64)).unwrap();
            let up = t.path_to_root(tip);
            // Starts at the tip, ends at genesis, only ancestors, heights falling, dense first.
            prop_assert_eq!(locator[0], hash_of(tip as u64));
            prop_assert_eq!(*locator.last().unwrap(), hash_of(0));
            prop_assert!(locator.len() <= LOCATOR_HASHES_MAX);
            let heights: Vec<u64> = locator
                .iter()
                .map(|h| t.index.get(h).unwrap().summary.height.0)
                .collect();
            for (i, h) in locator.iter().enumerate() {
                prop_assert!(up.iter().any(|j| hash_of(*j as u64) == *h));
                if i > 0 {
                    prop_assert!(heights[i] < heights[i - 1]);
                }
                if i > 0 && i <= LOCATOR_DENSE_HASHES {
                    prop_assert_eq!(heights[i] + 1, heights[i - 1]);
                }
            }
            // The fork point found is the highest locator entry on the best chain (or the best
            // tip, if the locator's tip builds on it), and so a common ancestor.
            let best = t.brute_best();
            let best_line = t.path_to_root(best);
            let expected = if up.contains(&best) {
                best
            } else {
                *up.iter()
                    .find(|i| best_line.contains(i) && locator.contains(&hash_of(**i as u64)))
                    .unwrap()
            };
            let found = t.index.find_fork(&locator).unwrap();
            prop_assert_eq!(found, Some((hash_of(expected as u64), Height(t.height[expected]))));
            // A fork within the dense part of the locator is found exactly.
            let true_fork = *up.iter().find(|i| best_line.contains(i)).unwrap();
            if t.height[tip] - t.height[true_fork] <= LOCATOR_DENSE_HASHES as u64 {
                prop_assert_eq!(expected, true_fork);
            }
        }
    }
}
