//! The state tree: a sparse 16-ary Merkle tree over 256-bit keys (one level per 4-bit nibble)
//! in which a subtree holding a single leaf is replaced by that leaf, so depth grows with
//! log₁₆ of the number of entries, not 64. Sixteen children per node rather than two means
//! about a quarter of the nodes to read and write per update, which is what a block's commit
//! pays for (each stored node is a RocksDB read and write).
//!
//! The root depends only on the set of (key, value) entries, never on the order they were
//! written, so applying a block and then undoing it gives back the exact previous root and
//! the exact previous set of stored nodes. An update of k entries reads and rewrites only the
//! O(k·log n) nodes on their paths.
//!
//! Pure: nodes are read through [`NodeSource`] and the update returns the node writes for the
//! caller to put in its own atomic batch.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::Hash;

/// A child pointer inside an internal node (and the root).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Child {
    Empty,
    Leaf { key: Hash, value: Hash },
    Node { hash: Hash },
}

impl Child {
    pub fn hash(&self) -> Hash {
        match self {
            Child::Empty => Hash::ZERO,
            Child::Leaf { key, value } => leaf_hash(key, value),
            Child::Node { hash } => *hash,
        }
    }
}

/// Children per internal node.
pub const ARITY: usize = 16;
/// Deepest level an internal node can sit at (keys are 64 nibbles).
const DEPTH_MAX: u8 = 63;

/// An internal node: its sixteen children, stored at its position.
pub type Node = [Child; ARITY];

/// Where an internal node sits: its depth in nibbles (0 = root) and the key nibbles above it
/// (nibbles at and below `depth` are zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub depth: u8,
    pub prefix: Hash,
}

impl Position {
    pub const ROOT: Position = Position {
        depth: 0,
        prefix: Hash::ZERO,
    };

    pub fn to_bytes(self) -> [u8; 33] {
        let mut out = [0u8; 33];
        out[0] = self.depth;
        out[1..].copy_from_slice(&self.prefix.0);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Position> {
        let (&depth, prefix) = bytes.split_first()?;
        Some(Position {
            depth,
            prefix: Hash(prefix.try_into().ok()?),
        })
    }

    fn child(self, nibble: u8) -> Position {
        debug_assert!(self.depth <= DEPTH_MAX);
        let mut prefix = self.prefix;
        set_nibble(&mut prefix, self.depth as usize, nibble);
        Position {
            depth: self.depth + 1,
            prefix,
        }
    }
}

fn leaf_hash(key: &Hash, value: &Hash) -> Hash {
    Hash::tagged(b"cairn/smt-leaf/v1", &[&key.0, &value.0])
}

fn hash_children(children: &[Hash; ARITY]) -> Hash {
    let mut bytes = [0u8; 32 * ARITY];
    for (chunk, h) in bytes.chunks_exact_mut(32).zip(children) {
        chunk.copy_from_slice(&h.0);
    }
    Hash::tagged(b"cairn/smt-node16/v1", &[&bytes])
}

fn node_hash(node: &Node) -> Hash {
    hash_children(&node.map(|c| c.hash()))
}

fn nibble(key: &Hash, index: usize) -> u8 {
    let byte = key.0[index / 2];
    if index.is_multiple_of(2) {
        byte >> 4
    } else {
        byte & 0x0f
    }
}

fn set_nibble(key: &mut Hash, index: usize, value: u8) {
    let byte = &mut key.0[index / 2];
    if index.is_multiple_of(2) {
        *byte = (*byte & 0x0f) | (value << 4);
    } else {
        *byte = (*byte & 0xf0) | value;
    }
}

/// Splits key-sorted `items` into the sixteen runs that share nibble `depth`.
fn split_by_nibble<T>(items: &[T], depth: u8, key: impl Fn(&T) -> &Hash) -> [&[T]; ARITY] {
    let mut runs: [&[T]; ARITY] = [&[]; ARITY];
    let mut rest = items;
    for (n, run) in runs.iter_mut().enumerate() {
        let end = rest.partition_point(|item| nibble(key(item), depth as usize) as usize <= n);
        (*run, rest) = rest.split_at(end);
    }
    runs
}

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("state tree node at depth {depth} is missing from storage (store corrupted)")]
    MissingNode { depth: u8 },
    #[error("reading the state tree failed: {0}")]
    Read(String),
}

/// Where the tree's nodes live (RocksDB in the node, a map in tests).
pub trait NodeSource {
    fn node(&self, at: Position) -> Result<Option<Node>, TreeError>;
}

impl NodeSource for BTreeMap<Position, Node> {
    fn node(&self, at: Position) -> Result<Option<Node>, TreeError> {
        Ok(self.get(&at).copied())
    }
}

/// The outcome of an update: the new root and the node writes (`None` deletes).
#[derive(Debug, Default)]
pub struct TreeUpdate {
    pub root: Option<Child>,
    pub writes: Vec<(Position, Option<Node>)>,
}

impl TreeUpdate {
    pub fn root_hash(&self) -> Hash {
        self.root.unwrap_or(Child::Empty).hash()
    }

    /// Applies the writes to an in-memory node map (for tests and tools).
    pub fn apply_to(&self, nodes: &mut BTreeMap<Position, Node>) {
        for (at, node) in &self.writes {
            match node {
                Some(n) => nodes.insert(*at, *n),
                None => nodes.remove(at),
            };
        }
    }
}

/// Sets each key to its value (`None` removes it), starting from `root`. `changes` must be
/// sorted by key with no key twice.
pub fn update(
    source: &dyn NodeSource,
    root: Child,
    changes: &[(Hash, Option<Hash>)],
) -> Result<TreeUpdate, TreeError> {
    debug_assert!(changes.windows(2).all(|w| w[0].0 < w[1].0));
    // About one node is rewritten per changed entry while the tree is much larger than the
    // change; reserving that avoids regrowing a vector of kilobyte-sized nodes.
    let mut writes = Vec::with_capacity(changes.len());
    let new_root = Updater {
        source,
        writes: &mut writes,
    }
    .update(Position::ROOT, root, changes)?;
    Ok(TreeUpdate {
        root: Some(new_root),
        writes,
    })
}

struct Updater<'a> {
    source: &'a dyn NodeSource,
    writes: &'a mut Vec<(Position, Option<Node>)>,
}

impl Updater<'_> {
    fn update(
        &mut self,
        at: Position,
        current: Child,
        changes: &[(Hash, Option<Hash>)],
    ) -> Result<Child, TreeError> {
        if changes.is_empty() {
            return Ok(current);
        }
        match current {
            Child::Node { .. } => {
                let node = self
                    .source
                    .node(at)?
                    .ok_or(TreeError::MissingNode { depth: at.depth })?;
                let runs = split_by_nibble(changes, at.depth, |(k, _)| k);
                let mut children = node;
                for (n, run) in runs.iter().enumerate() {
                    children[n] = self.update(at.child(n as u8), node[n], run)?;
                }
                Ok(self.join(at, children, true))
            }
            Child::Empty | Child::Leaf { .. } => {
                // Below a leaf or an empty slot nothing is stored: rebuild this subtree from
                // the surviving entries.
                let mut entries: Vec<(Hash, Hash)> = changes
                    .iter()
                    .filter_map(|(k, v)| v.map(|v| (*k, v)))
                    .collect();
                if let Child::Leaf { key, value } = current
                    && changes.binary_search_by(|(k, _)| k.cmp(&key)).is_err()
                {
                    let i = entries.partition_point(|(k, _)| *k < key);
                    entries.insert(i, (key, value));
                }
                Ok(self.build(at, &entries))
            }
        }
    }

    fn build(&mut self, at: Position, entries: &[(Hash, Hash)]) -> Child {
        match entries {
            [] => Child::Empty,
            [(key, value)] => Child::Leaf {
                key: *key,
                value: *value,
            },
            _ => {
                let runs = split_by_nibble(entries, at.depth, |(k, _)| k);
                let mut node = [Child::Empty; ARITY];
                for (n, run) in runs.iter().enumerate() {
                    node[n] = self.build(at.child(n as u8), run);
                }
                self.join(at, node, false)
            }
        }
    }

    /// The child that stands at `at` given its subtrees; a lone leaf moves up.
    fn join(&mut self, at: Position, node: Node, was_stored: bool) -> Child {
        let mut occupied = node.iter().filter(|c| !matches!(c, Child::Empty));
        let collapsed = match (occupied.next(), occupied.next()) {
            (None, _) => Some(Child::Empty),
            (Some(leaf @ Child::Leaf { .. }), None) => Some(*leaf),
            _ => None,
        };
        match collapsed {
            Some(child) => {
                if was_stored {
                    self.writes.push((at, None));
                }
                child
            }
            None => {
                self.writes.push((at, Some(node)));
                Child::Node {
                    hash: node_hash(&node),
                }
            }
        }
    }
}

/// Evidence of an entry's value (or its absence) against a root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// For each level from the root down, the hashes of all sixteen children (the one on the
    /// key's path is recomputed by the verifier, whatever is here).
    pub levels: Vec<[Hash; ARITY]>,
    /// What the path ends in: the entry itself, another key's leaf, or nothing.
    pub terminal: Child,
}

pub fn prove(source: &dyn NodeSource, root: Child, key: &Hash) -> Result<Proof, TreeError> {
    let mut levels = Vec::new();
    let mut at = Position::ROOT;
    let mut current = root;
    while let Child::Node { .. } = current {
        let node = source
            .node(at)?
            .ok_or(TreeError::MissingNode { depth: at.depth })?;
        let n = nibble(key, at.depth as usize);
        levels.push(node.map(|c| c.hash()));
        current = node[n as usize];
        at = at.child(n);
    }
    Ok(Proof {
        levels,
        terminal: current,
    })
}

impl Proof {
    /// The value `key` has under `root` according to this proof (`None`: absent), or an
    /// error if the proof does not hash up to `root`.
    pub fn verify(&self, root: &Hash, key: &Hash) -> Result<Option<Hash>, &'static str> {
        if self.levels.len() > DEPTH_MAX as usize + 1 {
            return Err("proof is deeper than the key length");
        }
        let value = match self.terminal {
            Child::Empty => None,
            Child::Leaf { key: k, value } if k == *key => Some(value),
            Child::Leaf { key: k, .. } => {
                // Another key's leaf proves absence only if it sits on our key's path.
                if (0..self.levels.len()).any(|i| nibble(&k, i) != nibble(key, i)) {
                    return Err("terminal leaf is not on the key's path");
                }
                None
            }
            Child::Node { .. } => return Err("proof ends in an internal node"),
        };
        let mut hash = self.terminal.hash();
        for (depth, level) in self.levels.iter().enumerate().rev() {
            let mut children = *level;
            children[nibble(key, depth) as usize] = hash;
            hash = hash_children(&children);
        }
        if hash == *root {
            Ok(value)
        } else {
            Err("proof does not hash to the root")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn k(i: u32) -> Hash {
        Hash::digest(&i.to_le_bytes())
    }

    fn apply(
        nodes: &mut BTreeMap<Position, Node>,
        root: Child,
        changes: BTreeMap<Hash, Option<Hash>>,
    ) -> Child {
        let changes: Vec<_> = changes.into_iter().collect();
        let up = update(nodes, root, &changes).unwrap();
        up.apply_to(nodes);
        up.root.unwrap()
    }

    /// The root computed from scratch for a set of entries.
    fn fresh_root(entries: &BTreeMap<Hash, Hash>) -> (Child, BTreeMap<Position, Node>) {
        let mut nodes = BTreeMap::new();
        let root = apply(
            &mut nodes,
            Child::Empty,
            entries.iter().map(|(k, v)| (*k, Some(*v))).collect(),
        );
        (root, nodes)
    }

    proptest! {
        #[test]
        fn root_and_nodes_depend_only_on_contents(
            initial in prop::collection::btree_map(0u32..200, any::<u8>(), 0..60),
            ops in prop::collection::vec(
                prop::collection::btree_map(0u32..200, prop::option::of(any::<u8>()), 0..20), 1..6),
        ) {
            let mut entries: BTreeMap<Hash, Hash> = initial
                .iter().map(|(i, v)| (k(*i), Hash([*v; 32]))).collect();
            let (mut root, mut nodes) = fresh_root(&entries);
            for op in ops {
                let changes: BTreeMap<Hash, Option<Hash>> =
                    op.iter().map(|(i, v)| (k(*i), v.map(|v| Hash([v; 32])))).collect();
                for (key, v) in &changes {
                    match v {
                        Some(v) => entries.insert(*key, *v),
                        None => entries.remove(key),
                    };
                }
                root = apply(&mut nodes, root, changes);
                let (expected_root, expected_nodes) = fresh_root(&entries);
                prop_assert_eq!(root.hash(), expected_root.hash());
                prop_assert_eq!(&nodes, &expected_nodes);
            }
        }

        #[test]
        fn proofs_verify_presence_and_absence(
            present in prop::collection::btree_set(0u32..100, 0..40),
            probe in 0u32..120,
        ) {
            let entries: BTreeMap<Hash, Hash> =
                present.iter().map(|i| (k(*i), Hash([*i as u8; 32]))).collect();
            let (root, nodes) = fresh_root(&entries);
            let proof = prove(&nodes, root, &k(probe)).unwrap();
            let got = proof.verify(&root.hash(), &k(probe)).unwrap();
            prop_assert_eq!(got, entries.get(&k(probe)).copied());
        }
    }

    #[test]
    fn tampered_proof_is_rejected() {
        let entries: BTreeMap<Hash, Hash> = (0..10).map(|i| (k(i), Hash([i as u8; 32]))).collect();
        let (root, nodes) = fresh_root(&entries);
        let mut proof = prove(&nodes, root, &k(3)).unwrap();
        assert_eq!(proof.verify(&root.hash(), &k(3)), Ok(Some(Hash([3; 32]))));
        proof.terminal = Child::Leaf {
            key: k(3),
            value: Hash([9; 32]),
        };
        assert!(proof.verify(&root.hash(), &k(3)).is_err());
    }

    #[test]
    fn missing_node_is_an_error_not_a_panic() {
        let entries: BTreeMap<Hash, Hash> = (0..10).map(|i| (k(i), Hash([1; 32]))).collect();
        let (root, _) = fresh_root(&entries);
        let empty: BTreeMap<Position, Node> = BTreeMap::new();
        let err = update(&empty, root, &[(k(1), None)]).unwrap_err();
        assert!(matches!(err, TreeError::MissingNode { depth: 0 }));
    }
}
