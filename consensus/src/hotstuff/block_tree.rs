//! The tree of blocks above the last committed one, which of them are certified, and the
//! 2-chain commit rule: when block B (round r) and its direct child B′ (round r+1) are both
//! certified, B and every uncommitted ancestor commit, in order, exactly once.
//!
//! Every block here descends from the root (the highest committed block): a block is only
//! inserted once its parent is present, and a commit prunes every branch that does not
//! extend the new root. The last [`COMMITTED_BLOCKS_KEPT`] committed blocks stay in memory to
//! serve lagging peers.
//!
//! Owns: blocks, their QCs, the root. Never: verifies signatures (callers pass verified
//! QCs) or looks inside transactions.

use std::collections::{HashMap, HashSet, VecDeque};

use cairn_ledger::block::{Block, QuorumCert, Seal};
use cairn_ledger::codec;
use cairn_ledger::{Hash, Height, Round};

/// Most uncommitted blocks held. When full, an uncertified block off the highest certified
/// chain (the oldest round first, with its descendants) makes room; only a tree of nothing
/// but certified blocks and the new block's ancestors refuses a block until a commit prunes.
pub const TREE_BLOCKS_MAX: usize = 4096;
/// Committed blocks kept in memory (the root included) to answer sync requests.
pub const COMMITTED_BLOCKS_KEPT: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("block {block} is not a HotStuff block")]
    NotHotStuff { block: Hash },
    #[error("block {block} names parent {parent} but its QC certifies {justified}")]
    JustifyMismatch {
        block: Hash,
        parent: Hash,
        justified: Hash,
    },
    #[error("block {block}'s parent {parent} is not known")]
    UnknownParent { block: Hash, parent: Hash },
    #[error("block {block} has height {height}, expected {expected}")]
    HeightMismatch {
        block: Hash,
        height: Height,
        expected: Height,
    },
    #[error("block {block} of round {round} does not follow its parent's round {parent_round}")]
    RoundNotAfterParent {
        block: Hash,
        round: Round,
        parent_round: Round,
    },
    #[error("block {block}'s QC is of round {qc_round}, but its parent is of round {parent_round}")]
    JustifyRoundMismatch {
        block: Hash,
        qc_round: Round,
        parent_round: Round,
    },
    #[error("block tree holds {TREE_BLOCKS_MAX} uncommitted blocks; block {block} refused")]
    Full { block: Hash },
}

struct Node {
    block: Block,
    round: Round,
}

/// Blocks that just committed, lowest first, and the QC certifying the last of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub blocks: Vec<Block>,
    pub qc: QuorumCert,
}

pub struct BlockTree {
    root: Hash,
    blocks: HashMap<Hash, Node>,
    certified: HashMap<Hash, QuorumCert>,
    highest_certified: QuorumCert,
    committed: VecDeque<Block>,
    /// Test-only: refuse blocks when full instead of evicting (the old behaviour).
    no_eviction: bool,
}

/// The round of a block: 0 for genesis, the seal's round for HotStuff.
pub fn block_round(block: &Block) -> Option<Round> {
    match &block.header.seal {
        Seal::Genesis => Some(Round(0)),
        Seal::HotStuff { round, .. } => Some(*round),
        Seal::Pow { .. } | Seal::Pbft { .. } => None,
    }
}

impl BlockTree {
    /// A tree rooted at a committed block (genesis, or the tip a restarted node's ledger
    /// holds) with the QC that certifies it.
    #[cfg(test)]
    pub fn new(root: Block, root_qc: QuorumCert) -> BlockTree {
        BlockTree::with_history(Vec::new(), root, root_qc)
    }

    /// As [`BlockTree::new`], also keeping `history` (committed blocks below the root, lowest
    /// first) to serve lagging peers. Only the part that links up to the root is kept.
    pub fn with_history(history: Vec<Block>, root: Block, root_qc: QuorumCert) -> BlockTree {
        let mut kept: VecDeque<Block> = VecDeque::new();
        let mut expected_parent = root.header.parent;
        for block in history.into_iter().rev() {
            if kept.len() + 1 >= COMMITTED_BLOCKS_KEPT || block.hash() != expected_parent {
                break;
            }
            expected_parent = block.header.parent;
            kept.push_front(block);
        }
        let mut tree = BlockTree::bare(root, root_qc);
        kept.extend(tree.committed.drain(..));
        tree.committed = kept;
        tree
    }

    fn bare(root: Block, root_qc: QuorumCert) -> BlockTree {
        let id = root.hash();
        let round = block_round(&root).unwrap_or(Round(0));
        let mut blocks = HashMap::new();
        blocks.insert(
            id,
            Node {
                block: root.clone(),
                round,
            },
        );
        let mut certified = HashMap::new();
        certified.insert(id, root_qc.clone());
        BlockTree {
            root: id,
            blocks,
            certified,
            highest_certified: root_qc,
            committed: VecDeque::from([root]),
            no_eviction: false,
        }
    }

    pub fn contains(&self, id: &Hash) -> bool {
        self.blocks.contains_key(id)
    }

    pub fn get(&self, id: &Hash) -> Option<&Block> {
        self.blocks.get(id).map(|n| &n.block)
    }

    fn root_node(&self) -> &Node {
        // The root is inserted at construction and replaced only by a block in the map.
        &self.blocks[&self.root]
    }

    pub fn root_id(&self) -> Hash {
        self.root
    }

    pub fn root_height(&self) -> Height {
        self.root_node().block.header.height
    }

    pub fn root_round(&self) -> Round {
        self.root_node().round
    }

    /// The highest QC whose block is in the tree: what a leader extends.
    pub fn highest_certified(&self) -> &QuorumCert {
        &self.highest_certified
    }

    pub fn uncommitted_len(&self) -> usize {
        self.blocks.len() - 1
    }

    /// Adds a block whose parent is in the tree. Adding a block already present is a no-op.
    pub fn insert(&mut self, block: Block) -> Result<Hash, TreeError> {
        let id = block.hash();
        if self.blocks.contains_key(&id) {
            return Ok(id);
        }
        let Seal::HotStuff { round, justify } = &block.header.seal else {
            return Err(TreeError::NotHotStuff { block: id });
        };
        let parent = block.header.parent;
        if justify.block != parent {
            return Err(TreeError::JustifyMismatch {
                block: id,
                parent,
                justified: justify.block,
            });
        }
        let Some(parent_node) = self.blocks.get(&parent) else {
            return Err(TreeError::UnknownParent { block: id, parent });
        };
        let expected = parent_node.block.header.height.next();
        if block.header.height != expected {
            return Err(TreeError::HeightMismatch {
                block: id,
                height: block.header.height,
                expected,
            });
        }
        if *round <= parent_node.round {
            return Err(TreeError::RoundNotAfterParent {
                block: id,
                round: *round,
                parent_round: parent_node.round,
            });
        }
        if justify.round != parent_node.round {
            return Err(TreeError::JustifyRoundMismatch {
                block: id,
                qc_round: justify.round,
                parent_round: parent_node.round,
            });
        }
        if self.blocks.len() > TREE_BLOCKS_MAX && (self.no_eviction || !self.evict_for(parent)) {
            return Err(TreeError::Full { block: id });
        }
        let round = *round;
        self.blocks.insert(id, Node { block, round });
        debug_assert!(self.uncommitted_len() <= TREE_BLOCKS_MAX);
        Ok(id)
    }

    /// Test-only: a full tree refuses new blocks instead of evicting uncertified ones.
    pub fn set_unsafe_no_eviction(&mut self) {
        self.no_eviction = true;
    }

    /// The blocks from `id` down to the root, both included.
    fn ancestors(&self, mut id: Hash) -> HashSet<Hash> {
        let mut out = HashSet::from([self.root]);
        while let Some(node) = self.blocks.get(&id) {
            if !out.insert(id) {
                break;
            }
            id = node.block.header.parent;
        }
        out
    }

    /// Makes room for a child of `parent`: drops the uncertified block of the lowest round
    /// that is neither on the highest certified chain nor an ancestor of `parent`, with
    /// every block that descends from it. A block no quorum voted for is what a faulty
    /// leader or peer can make in bulk; the certified chain is what commits next. Returns
    /// whether anything was dropped.
    fn evict_for(&mut self, parent: Hash) -> bool {
        let mut keep = self.ancestors(self.highest_certified.block);
        keep.extend(self.ancestors(parent));
        let victim = self
            .blocks
            .iter()
            .filter(|(id, _)| !keep.contains(*id) && !self.certified.contains_key(*id))
            .map(|(id, n)| (n.round, *id))
            .min();
        let Some((_, victim)) = victim else {
            return false;
        };
        let dropped = self.subtree(victim);
        // Nothing certified descends from an uncertified block: a certified child's
        // justify certified its parent before the child went in.
        debug_assert!(dropped.iter().all(|id| !keep.contains(id)));
        self.remove(&dropped);
        true
    }

    /// Drops `id` and its descendants, which the engine's driver refused, unless a QC
    /// certifies any of them (a quorum then judged them valid, and the chain may commit
    /// them). Returns whether anything was dropped.
    pub fn discard_uncertified(&mut self, id: &Hash) -> bool {
        if *id == self.root || !self.blocks.contains_key(id) {
            return false;
        }
        let dropped = self.subtree(*id);
        if dropped.iter().any(|id| self.certified.contains_key(id)) {
            return false;
        }
        self.remove(&dropped);
        true
    }

    fn remove(&mut self, dropped: &HashSet<Hash>) {
        self.blocks.retain(|id, _| !dropped.contains(id));
        self.certified.retain(|id, _| !dropped.contains(id));
    }

    /// Records a verified QC for a block in the tree and applies the 2-chain rule. Returns
    /// what committed, if anything. A QC for a block not in the tree is ignored.
    pub fn certify(&mut self, qc: &QuorumCert) -> Option<Committed> {
        let node = self.blocks.get(&qc.block)?;
        if qc.round != node.round {
            return None;
        }
        self.certified.entry(qc.block).or_insert_with(|| qc.clone());
        if qc.round > self.highest_certified.round {
            self.highest_certified = qc.clone();
        }
        if qc.block == self.root {
            return None;
        }
        let Seal::HotStuff { justify, .. } = &node.block.header.seal else {
            return None;
        };
        let parent = self.blocks.get(&justify.block)?;
        let direct_child = parent.round.0.checked_add(1) == Some(node.round.0);
        if !direct_child || parent.block.header.height <= self.root_height() {
            return None;
        }
        let parent_qc = justify.clone();
        self.certified
            .entry(parent_qc.block)
            .or_insert_with(|| parent_qc.clone());
        let blocks = self.commit(parent_qc.block)?;
        Some(Committed {
            blocks,
            qc: parent_qc,
        })
    }

    /// Makes `target` the root: returns the blocks from the old root (exclusive) to it.
    fn commit(&mut self, target: Hash) -> Option<Vec<Block>> {
        let mut path = Vec::new();
        let mut id = target;
        while id != self.root {
            let node = self.blocks.get(&id)?;
            path.push(id);
            id = node.block.header.parent;
        }
        path.reverse();
        let blocks: Vec<Block> = path
            .iter()
            .filter_map(|id| self.blocks.get(id).map(|n| n.block.clone()))
            .collect();
        // Commits are contiguous and lowest first: each block extends the one before it,
        // the first extends the old root, and heights rise by one.
        assert_eq!(blocks.len(), path.len());
        let (mut parent, mut height) = (self.root, self.root_height());
        for (block, id) in blocks.iter().zip(&path) {
            height = height.next();
            assert_eq!(block.header.parent, parent);
            assert_eq!(block.header.height, height);
            parent = *id;
        }
        for block in &blocks {
            if self.committed.len() >= COMMITTED_BLOCKS_KEPT {
                self.committed.pop_front();
            }
            self.committed.push_back(block.clone());
        }
        self.root = target;
        self.prune();
        assert!(self.committed.len() <= COMMITTED_BLOCKS_KEPT);
        Some(blocks)
    }

    /// `top` and every block in the tree that descends from it.
    fn subtree(&self, top: Hash) -> HashSet<Hash> {
        let mut order: Vec<(Height, Hash)> = self
            .blocks
            .iter()
            .map(|(id, n)| (n.block.header.height, *id))
            .collect();
        order.sort();
        let mut out = HashSet::from([top]);
        for (_, id) in order {
            if out.contains(&self.blocks[&id].block.header.parent) {
                out.insert(id);
            }
        }
        out
    }

    /// Drops every block that does not descend from the root.
    fn prune(&mut self) {
        let keep = self.subtree(self.root);
        self.blocks.retain(|id, _| keep.contains(id));
        self.certified.retain(|id, _| keep.contains(id));
        if !self.blocks.contains_key(&self.highest_certified.block)
            && let Some(qc) = self.certified.get(&self.root)
        {
            self.highest_certified = qc.clone();
        }
    }

    /// The certified chain from `from_height` up to the highest certified block: at most
    /// `blocks_max` blocks and `bytes_max` encoded bytes (at least one block), lowest first,
    /// with the QC that certifies the last one. `None` when there is nothing at that height
    /// or it is older than the committed blocks kept.
    pub fn certified_chain(
        &self,
        from_height: Height,
        blocks_max: usize,
        bytes_max: usize,
    ) -> Option<(Vec<Block>, QuorumCert)> {
        let mut upper = Vec::new();
        let mut id = self.highest_certified.block;
        while id != self.root {
            let node = self.blocks.get(&id)?;
            upper.push(&node.block);
            id = node.block.header.parent;
        }
        upper.reverse();
        let root_height = self.root_height();
        let front_height = root_height.0 + 1 - self.committed.len() as u64;
        let lower: Vec<&Block> = if from_height <= root_height {
            if from_height.0 < front_height {
                return None;
            }
            self.committed
                .iter()
                .skip((from_height.0 - front_height) as usize)
                .collect()
        } else {
            Vec::new()
        };
        let skip_upper = from_height.0.saturating_sub(root_height.0 + 1) as usize;
        let chain: Vec<&Block> = lower
            .into_iter()
            .chain(upper.into_iter().skip(skip_upper))
            .collect();
        let mut taken = Vec::new();
        let mut bytes = 0usize;
        for block in chain.iter().take(blocks_max) {
            bytes += codec::encode(*block).len();
            if !taken.is_empty() && bytes > bytes_max {
                break;
            }
            taken.push((*block).clone());
        }
        let tip_qc = match chain.get(taken.len()) {
            None => self.highest_certified.clone(),
            Some(next) => match &next.header.seal {
                Seal::HotStuff { justify, .. } => justify.clone(),
                _ => return None,
            },
        };
        if taken.is_empty() {
            return None;
        }
        Some((taken, tip_qc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_ledger::block::BlockHeader;
    use cairn_ledger::{Address, ProtocolVersion, TimestampMs};

    fn genesis() -> Block {
        Block {
            header: BlockHeader {
                height: Height(0),
                parent: Hash::ZERO,
                timestamp: TimestampMs(0),
                tx_root: Hash::ZERO,
                state_root: Hash::ZERO,
                proposer: Address([0; 20]),
                protocol_version: ProtocolVersion(1),
                seal: Seal::Genesis,
            },
            transactions: Vec::new(),
        }
    }

    fn qc(block: &Block) -> QuorumCert {
        QuorumCert {
            round: block_round(block).unwrap(),
            block: block.hash(),
            votes: Vec::new(),
        }
    }

    fn child(parent: &Block, round: u64, salt: u64) -> Block {
        let mut b = parent.clone();
        b.header.height = parent.header.height.next();
        b.header.parent = parent.hash();
        b.header.timestamp = TimestampMs(salt);
        b.header.seal = Seal::HotStuff {
            round: Round(round),
            justify: qc(parent),
        };
        b
    }

    fn tree_with_chain(rounds: &[u64]) -> (BlockTree, Vec<Block>) {
        let g = genesis();
        let mut tree = BlockTree::new(g.clone(), qc(&g));
        let mut chain = vec![g];
        for &r in rounds {
            let b = child(chain.last().unwrap(), r, 0);
            tree.insert(b.clone()).unwrap();
            chain.push(b);
        }
        (tree, chain)
    }

    #[test]
    fn commits_need_a_certified_direct_child_and_happen_once() {
        let (mut tree, chain) = tree_with_chain(&[1, 2, 4, 5]);
        assert_eq!(tree.certify(&qc(&chain[1])), None);
        // QC(2) certifies b2 whose parent b1 is of round 1: b1 commits.
        let c = tree.certify(&qc(&chain[2])).unwrap();
        assert_eq!(c.blocks, vec![chain[1].clone()]);
        assert_eq!(c.qc, qc(&chain[1]));
        assert_eq!(tree.certify(&qc(&chain[2])), None);
        // QC(4): b4's parent is of round 2, not 3: nothing commits.
        assert_eq!(tree.certify(&qc(&chain[3])), None);
        // QC(5): b5's parent b4 is of round 4: b2 and b4 commit together.
        let c = tree.certify(&qc(&chain[4])).unwrap();
        assert_eq!(c.blocks, vec![chain[2].clone(), chain[3].clone()]);
        assert_eq!(tree.root_height(), Height(3));
    }

    #[test]
    fn a_commit_prunes_branches_that_do_not_extend_it() {
        let (mut tree, chain) = tree_with_chain(&[1, 2, 3]);
        let fork = child(&chain[1], 4, 99);
        tree.insert(fork.clone()).unwrap();
        assert_eq!(tree.uncommitted_len(), 4);
        tree.certify(&qc(&chain[3])).unwrap();
        assert!(!tree.contains(&fork.hash()));
        assert_eq!(tree.uncommitted_len(), 1);
        // A block on the pruned branch can no longer attach.
        let late = child(&fork, 5, 0);
        assert!(matches!(
            tree.insert(late),
            Err(TreeError::UnknownParent { .. })
        ));
    }

    #[test]
    fn inserts_check_links_heights_and_rounds() {
        let (mut tree, chain) = tree_with_chain(&[3]);
        let mut bad = child(&chain[1], 4, 0);
        bad.header.height = Height(9);
        assert!(matches!(
            tree.insert(bad),
            Err(TreeError::HeightMismatch { .. })
        ));
        let same_round = child(&chain[1], 3, 0);
        assert!(matches!(
            tree.insert(same_round),
            Err(TreeError::RoundNotAfterParent { .. })
        ));
        let mut wrong_qc = child(&chain[1], 4, 0);
        wrong_qc.header.parent = Hash([5; 32]);
        assert!(matches!(
            tree.insert(wrong_qc),
            Err(TreeError::JustifyMismatch { .. })
        ));
    }

    #[test]
    fn a_full_tree_evicts_uncertified_blocks_off_the_certified_chain_first() {
        let (mut tree, chain) = tree_with_chain(&[1, 2]);
        tree.certify(&qc(&chain[2]));
        // Uncertified children of the certified tip fill the tree, one with a child.
        let mut junk = Vec::new();
        for salt in 1.. {
            if tree.uncommitted_len() + 1 >= TREE_BLOCKS_MAX {
                break;
            }
            let b = child(&chain[2], 3, salt);
            tree.insert(b.clone()).unwrap();
            junk.push(b);
        }
        let grandchild = child(&junk[0], 4, 0);
        tree.insert(grandchild.clone()).unwrap();
        assert_eq!(tree.uncommitted_len(), TREE_BLOCKS_MAX);
        // An honest block on the certified chain still goes in: the oldest-round junk
        // block (the lowest id among round 3), with any child, makes room.
        let honest = child(&chain[2], 5, 0);
        tree.insert(honest.clone()).unwrap();
        assert!(tree.contains(&honest.hash()));
        assert!(tree.uncommitted_len() <= TREE_BLOCKS_MAX);
        assert!(tree.contains(&chain[1].hash()) && tree.contains(&chain[2].hash()));
        // Without eviction (the old behaviour) the same block is refused.
        let (mut old, chain) = tree_with_chain(&[1, 2]);
        old.set_unsafe_no_eviction();
        old.certify(&qc(&chain[2]));
        for salt in 1.. {
            if old.uncommitted_len() >= TREE_BLOCKS_MAX {
                break;
            }
            old.insert(child(&chain[2], 3, salt)).unwrap();
        }
        assert!(matches!(
            old.insert(child(&chain[2], 5, 0)),
            Err(TreeError::Full { .. })
        ));
    }

    #[test]
    fn a_refused_block_leaves_with_its_descendants_unless_a_quorum_certified_one() {
        let (mut tree, chain) = tree_with_chain(&[1, 2]);
        tree.certify(&qc(&chain[1]));
        let refused = child(&chain[2], 3, 0);
        let grandchild = child(&refused, 4, 0);
        tree.insert(refused.clone()).unwrap();
        tree.insert(grandchild.clone()).unwrap();
        assert!(tree.discard_uncertified(&refused.hash()));
        assert!(!tree.contains(&refused.hash()) && !tree.contains(&grandchild.hash()));
        assert!(tree.contains(&chain[2].hash()));
        // Block 1 is certified: a quorum judged it valid, so it stays.
        assert!(!tree.discard_uncertified(&chain[1].hash()));
        // So does block 2 once a certified block descends from it.
        let certified_child = child(&chain[2], 5, 0);
        tree.insert(certified_child.clone()).unwrap();
        tree.certify(&qc(&certified_child));
        assert!(!tree.discard_uncertified(&chain[2].hash()));
        assert!(tree.contains(&certified_child.hash()));
    }

    #[test]
    fn the_served_chain_is_bounded_and_ends_with_its_certificate() {
        let rounds: Vec<u64> = (1..=20).collect();
        let (mut tree, chain) = tree_with_chain(&rounds);
        tree.certify(&qc(&chain[20]));
        assert_eq!(tree.root_height(), Height(19));
        let (blocks, tip) = tree.certified_chain(Height(1), 5, usize::MAX).unwrap();
        assert_eq!(blocks, chain[1..=5].to_vec());
        assert_eq!(tip, qc(&chain[5]));
        let (blocks, tip) = tree.certified_chain(Height(18), 50, usize::MAX).unwrap();
        assert_eq!(blocks, chain[18..=20].to_vec());
        assert_eq!(tip, qc(&chain[20]));
        // A byte budget smaller than one block still yields one block.
        let (blocks, _) = tree.certified_chain(Height(1), 50, 1).unwrap();
        assert_eq!(blocks.len(), 1);
        assert_eq!(tree.certified_chain(Height(21), 5, usize::MAX), None);
    }
}
