//! The RocksDB store: blocks, indexes, receipts, account state, the state tree, undo records
//! and consensus metadata, each in a column family with one typed accessor here.
//!
//! Invariants:
//! - A block, its state changes, its state tree nodes, its undo record, its receipts, its
//!   indexes and the new tip are written in ONE synced `WriteBatch`; after a crash the store
//!   is at the last whole block, never between two.
//! - Reverting the tip with its undo record restores the previous state, tree and indexes
//!   exactly (PoW reorgs depend on it).
//! - The on-disk format version is checked at open; a newer format is refused, never
//!   guessed at.
//! - Once a write fails (a full disk, a failing one), this store writes nothing more until
//!   it is opened again ([`Store::write_failure`]): what that write guarded must not be
//!   followed by anything that assumes it landed.
//!
//! Writers are serialised by a lock; readers may run concurrently with a writer and see each
//! value as it was before or after a block, never torn. The state and state tree columns are
//! updated in place in RocksDB's memtable (see [`open_db`]), so while a block is being written
//! one account may already read as after it and another as before; whatever needs a whole,
//! consistent tree (proofs) holds the write lock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use cairn_oracle::{FeedId, FeedState};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, Options,
    WriteBatch, WriteOptions,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::block::{self, Block, BlockHeader, EncodedBody, Receipt};
use crate::codec::{self, CodecError};
use crate::genesis::{Genesis, Upgrade};
use crate::oracle::OracleState;
use crate::rules::IMPLEMENTED;
use crate::smt::{self, Child, Node, NodeSource, Position, Proof, TreeError, TreeUpdate};
use crate::state::{
    self, Account, BlockContext, ExecError, ReadError, SigCheck, StateChanges, StateReader,
};
use crate::types::{Address, Amount, Hash, Height, ProtocolVersion};
use crate::upgrades::{Schedule, ScheduleError};

/// Version of the on-disk layout this binary reads and writes. 2: oracle feeds in the state
/// tree and their own column family. 3: the genesis hash leaves out the upgrade schedule,
/// which is stored on its own (`upgrade_schedule` in the meta column family).
pub const FORMAT_VERSION: u32 = 3;
/// Shared RocksDB block cache.
pub const BLOCK_CACHE_BYTES: usize = 128 * 1024 * 1024;
/// State tree levels kept in memory whole, so updates read them without RocksDB: at most
/// 16⁰ + 16¹ + 16² + 16³ = 4,369 nodes (about 4.5 MiB). Deeper nodes are read from disk.
pub const TREE_CACHED_DEPTHS: u8 = 4;
/// Accounts kept in memory after being written (about 100 bytes each with the map's
/// overhead); when full the cache is emptied and refills from the next blocks' writes.
pub const ACCOUNT_CACHE_ENTRIES_MAX: usize = 262_144;
/// Most bytes reserved up front for a block's write batch (a typical block of 1,000
/// transfers needs about 1 MiB); a batch that needs more grows.
pub const BATCH_RESERVE_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Lock stripes guarding in-place memtable updates. They only order one writer against
/// readers of the same stripe, briefly; RocksDB's default of 10,000 spreads them over half a
/// megabyte, so nearly every update missed the cache on its lock (2% of a block's time).
const INPLACE_UPDATE_LOCKS: usize = 16;
/// Bound on any single stored value we decode (bodies are the largest).
const STORED_VALUE_BYTES_MAX: usize = block::BLOCK_BYTES_MAX;

const CF_HEADERS: &str = "headers";
const CF_BODIES: &str = "bodies";
const CF_HEIGHTS: &str = "heights";
const CF_TX_INDEX: &str = "tx_index";
const CF_RECEIPTS: &str = "receipts";
const CF_STATE: &str = "state";
const CF_STATE_TREE: &str = "state_tree";
const CF_UNDO: &str = "undo";
const CF_CONSENSUS: &str = "consensus";
const CF_META: &str = "meta";
const CF_ORACLE: &str = "oracle";
const COLUMN_FAMILIES: [&str; 11] = [
    CF_HEADERS,
    CF_BODIES,
    CF_HEIGHTS,
    CF_TX_INDEX,
    CF_RECEIPTS,
    CF_STATE,
    CF_STATE_TREE,
    CF_UNDO,
    CF_CONSENSUS,
    CF_META,
    CF_ORACLE,
];

const META_FORMAT: &[u8] = b"format_version";
const META_GENESIS: &[u8] = b"genesis_hash";
const META_TIP: &[u8] = b"tip";
const META_SCHEDULE: &[u8] = b"upgrade_schedule";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the data directory {path} was written by a newer Cairn (store format {found}; this \
         binary reads format {supported}). Upgrade cairn, or point --home at another directory"
    )]
    NewerFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(
        "the data directory {path} uses store format {found}, which this binary cannot migrate \
         (it reads format {supported}). Re-sync into an empty directory"
    )]
    OlderFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(
        "the data directory {path} belongs to another network (genesis {stored}); the genesis \
         file given has hash {given}. Use the matching genesis or an empty directory"
    )]
    GenesisMismatch {
        path: PathBuf,
        stored: Hash,
        given: Hash,
    },
    #[error(
        "the genesis file schedules upgrade {name:?} at height {height} (protocol version \
         {version}), but the data directory {path} follows another schedule ({stored}). \
         Upgrades are added to a running chain with `cairn upgrade schedule`, not by editing \
         genesis; restore the genesis file's [[upgrades]] or use an empty directory"
    )]
    ScheduleConflict {
        path: PathBuf,
        name: String,
        height: Height,
        version: ProtocolVersion,
        stored: String,
    },
    #[error("the data directory {path} is in use by another process (is a node already running?)")]
    Locked { path: PathBuf },
    #[error("RocksDB error in {path}: {message}")]
    Db { path: PathBuf, message: String },
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("block {height} is not the next block: the tip is {tip_height} ({tip_hash})")]
    NotNext {
        height: Height,
        tip_height: Height,
        tip_hash: Hash,
    },
    #[error("the genesis block cannot be reverted")]
    RevertGenesis,
    #[error(
        "the data directory {} takes no more writes in this process: an earlier write failed \
         ({})",
        .0.path.display(),
        .0.message
    )]
    WritesStopped(WriteFailure),
}

/// Why `Store::append_upgrade` appended nothing.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("upgrade not scheduled: {0}")]
    Refused(ScheduleError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What RocksDB says when the disk is full (`ENOSPC`, or `EDQUOT` for a quota): its errors
/// carry the cause only as text.
const NO_SPACE_MESSAGES: [&str; 2] = ["No space left on device", "Disk quota exceeded"];

impl StoreError {
    /// Whether this failed because the disk under the data directory is full.
    pub fn no_space(&self) -> bool {
        match self {
            StoreError::Db { message, .. } => is_no_space(message),
            StoreError::WritesStopped(first) => first.no_space,
            _ => false,
        }
    }
}

fn is_no_space(message: &str) -> bool {
    NO_SPACE_MESSAGES.iter().any(|m| message.contains(m))
}

/// The first write a [`Store`] could not make; it refuses every write after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteFailure {
    /// The data directory.
    pub path: PathBuf,
    /// RocksDB's message.
    pub message: String,
    /// The disk is full: freeing space is the cure.
    pub no_space: bool,
}

/// Why a block was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "block extends {parent} at height {height}, but the tip is {tip_hash} at height {tip_height}"
    )]
    NotOnTip {
        height: Height,
        parent: Hash,
        tip_height: Height,
        tip_hash: Hash,
    },
    #[error(
        "block {height} follows upgrade {name:?} (protocol version {version}, active from \
         height {activation}), which this binary does not implement: upgrade cairn to a \
         release that has it; until then this node stops at height {last}"
    )]
    UpgradeMissing {
        height: Height,
        name: String,
        version: ProtocolVersion,
        activation: Height,
        last: Height,
    },
    #[error(
        "block {height} says protocol version {found}, but this node's upgrade schedule says {expected}"
    )]
    WrongProtocolVersion {
        height: Height,
        expected: ProtocolVersion,
        found: ProtocolVersion,
    },
    #[error("block's tx_root is {header} but its transactions hash to {computed}")]
    TxRootMismatch { header: Hash, computed: Hash },
    #[error("block's state_root is {header} but executing it gives {computed}")]
    StateRootMismatch { header: Hash, computed: Hash },
    #[error(transparent)]
    Body(#[from] CodecError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The head of the stored chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tip {
    pub height: Height,
    pub hash: Hash,
    pub state_root: Child,
}

/// Where a transaction landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxLocation {
    pub height: Height,
    pub block: Hash,
    pub index: u32,
}

/// Everything needed to reverse one block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct UndoRecord {
    previous_tip: Tip,
    accounts: Vec<(Address, Option<Account>)>,
    /// Oracle feeds the block changed, as they were before it.
    feeds: Vec<FeedState>,
}

/// A raw key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Consensus metadata to write in the same batch as a block (see [`Store::commit_with`]),
/// and how durable that batch must be when the call returns.
#[derive(Clone, Debug, Default)]
pub struct ConsensusWrites {
    pub puts: Vec<KeyValue>,
    pub deletes: Vec<Vec<u8>>,
    pub durability: Durability,
}

/// When a block's write batch reaches the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Synced before the call returns.
    #[default]
    Synced,
    /// Written to the log (so a crash of the process loses nothing) and synced by the next
    /// synced write of this store. A power loss before that can drop it, and only it with
    /// the batches after it: the log is replayed as a prefix. For callers that can redo the
    /// batch after a restart, e.g. a BFT commit whose block and certificate are already on
    /// disk.
    WithNextSync,
}

/// A block that has been executed against the current tip and can be committed.
#[derive(Debug)]
pub struct PreparedBlock {
    pub block: Block,
    pub hash: Hash,
    body: EncodedBody,
    pub changes: StateChanges,
    tree: TreeUpdate,
    /// Where each tree write is in `tree.writes`, for blocks executed on top of this one;
    /// built on first use, since most blocks are committed without any.
    tree_index: OnceLock<HashMap<Position, usize>>,
    parent_tip: Tip,
}

impl PreparedBlock {
    fn new(
        block: Block,
        body: EncodedBody,
        changes: StateChanges,
        tree: TreeUpdate,
        parent_tip: Tip,
    ) -> PreparedBlock {
        PreparedBlock {
            hash: block.hash(),
            block,
            body,
            changes,
            tree,
            tree_index: OnceLock::new(),
            parent_tip,
        }
    }

    /// The node this block writes at `at`: `Some(None)` if it deletes it, `None` if it
    /// leaves it alone.
    fn tree_write(&self, at: &Position) -> Option<Option<Node>> {
        let index = self.tree_index.get_or_init(|| {
            self.tree
                .writes
                .iter()
                .enumerate()
                .map(|(i, (at, _))| (*at, i))
                .collect()
        });
        index.get(at).map(|&i| self.tree.writes[i].1)
    }

    /// The ids of the block's transactions, in order (computed once, when it was prepared).
    pub fn tx_ids(&self) -> &[Hash] {
        &self.body.tx_ids
    }

    /// The tip the store will have once this block is committed.
    pub fn resulting_tip(&self) -> Tip {
        Tip {
            height: self.block.header.height,
            hash: self.hash,
            state_root: self.tree.root.unwrap_or(Child::Empty),
        }
    }
}

/// The store's state seen through blocks executed but not yet committed (newest last): what
/// a BFT leader needs to build on a certified, uncommitted parent.
struct Layered<'a> {
    store: &'a Store,
    layers: &'a [&'a PreparedBlock],
}

impl StateReader for Layered<'_> {
    fn account(&self, address: &Address) -> Result<Option<Account>, ReadError> {
        for layer in self.layers.iter().rev() {
            if let Some(a) = layer.changes.updated.get(address) {
                return Ok(Some(*a));
            }
        }
        StateReader::account(self.store, address)
    }

    fn oracle(&self) -> Option<Arc<OracleState>> {
        match self.layers.last() {
            Some(layer) => layer.changes.oracle_after.clone(),
            None => self.store.oracle(),
        }
    }
}

impl NodeSource for Layered<'_> {
    fn node(&self, at: Position) -> Result<Option<Node>, TreeError> {
        for layer in self.layers.iter().rev() {
            if let Some(written) = layer.tree_write(&at) {
                return Ok(written);
            }
        }
        self.store.node(at)
    }
}

/// The state tree's levels above [`TREE_CACHED_DEPTHS`], one slot per position: every block
/// reads and rewrites most of them, so they are found by index rather than by hashing keys.
#[derive(Clone, PartialEq)]
struct UpperTree(Vec<Option<Node>>);

const _: () = assert!(
    TREE_CACHED_DEPTHS <= 4,
    "UpperTree::slot reads two prefix bytes"
);

impl UpperTree {
    /// 16⁰ + 16¹ + … + 16^(TREE_CACHED_DEPTHS−1) positions.
    const SLOTS: usize = (16usize.pow(TREE_CACHED_DEPTHS as u32) - 1) / 15;

    fn new() -> UpperTree {
        UpperTree(vec![None; Self::SLOTS])
    }

    /// The slot of an upper-level position; `None` below the upper levels, or for a prefix
    /// with nibbles set at or below its depth (which no position made by the tree has).
    fn slot(at: &Position) -> Option<usize> {
        if at.depth >= TREE_CACHED_DEPTHS {
            return None;
        }
        let depth = at.depth as usize;
        let high = u16::from_be_bytes([at.prefix.0[0], at.prefix.0[1]]) as usize;
        let nibbles = high >> (16 - 4 * depth);
        let rest_is_zero =
            high & (0xffff >> (4 * depth)) == 0 && at.prefix.0[2..].iter().all(|&b| b == 0);
        rest_is_zero.then(|| (16usize.pow(depth as u32) - 1) / 15 + nibbles)
    }

    fn get(&self, at: &Position) -> Option<Node> {
        Self::slot(at).and_then(|i| self.0[i])
    }

    fn set(&mut self, at: &Position, node: Option<Node>) {
        if let Some(i) = Self::slot(at) {
            self.0[i] = node;
        }
    }
}

pub struct Store {
    db: DB,
    path: PathBuf,
    chain_id: String,
    genesis_hash: Hash,
    schedule: Schedule,
    tip: RwLock<Tip>,
    /// Notified after every change of `tip`, for readers waiting on one. Its mutex guards
    /// nothing but the wait: a writer takes it after changing the tip, so a reader that
    /// checked the tip under it cannot miss the notification.
    tip_changed: (Mutex<()>, Condvar),
    /// Every stored tree node above depth [`TREE_CACHED_DEPTHS`]; changed only after the
    /// batch that changes them on disk has been written.
    upper_tree: RwLock<UpperTree>,
    /// Accounts as last written to disk. Filled only by writers after their batch is on
    /// disk, never by readers, so it cannot hold a value older than the disk's.
    accounts: RwLock<HashMap<Address, Account>>,
    /// The oracle at the tip (`None` on a network without one); replaced only after the
    /// batch that changes it on disk has been written.
    /// With the height it is the state after, so readers see a matching pair.
    oracle: RwLock<Option<(Height, Arc<OracleState>)>>,
    write_lock: Mutex<()>,
    /// Size of the last block's write batch, to allocate the next one at once.
    batch_bytes_hint: AtomicUsize,
    /// Set by the first write that fails; from then on every write is refused.
    write_failure: OnceLock<WriteFailure>,
}

fn be(height: Height) -> [u8; 8] {
    height.0.to_be_bytes()
}

impl Store {
    /// Opens (or creates, writing block 0) the store in `path` for the network `genesis`
    /// describes.
    pub fn open(path: &Path, genesis: &Genesis) -> Result<Store, StoreError> {
        let db = open_db(path)?;
        let mut store = Store {
            db,
            path: path.to_owned(),
            chain_id: genesis.chain_id.clone(),
            genesis_hash: genesis.hash(),
            schedule: Schedule::for_this_binary(genesis),
            tip: RwLock::new(Tip {
                height: Height(0),
                hash: Hash::ZERO,
                state_root: Child::Empty,
            }),
            tip_changed: (Mutex::new(()), Condvar::new()),
            upper_tree: RwLock::new(UpperTree::new()),
            accounts: RwLock::new(HashMap::new()),
            oracle: RwLock::new(None),
            write_lock: Mutex::new(()),
            batch_bytes_hint: AtomicUsize::new(0),
            write_failure: OnceLock::new(),
        };
        match store.get_meta::<u32>(META_FORMAT)? {
            Some(found) if found > FORMAT_VERSION => {
                return Err(StoreError::NewerFormat {
                    path: path.to_owned(),
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            Some(found) if found < FORMAT_VERSION => {
                return Err(StoreError::OlderFormat {
                    path: path.to_owned(),
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            _ => {}
        }
        match store.get_meta::<Hash>(META_GENESIS)? {
            Some(stored) if stored != store.genesis_hash => {
                return Err(StoreError::GenesisMismatch {
                    path: path.to_owned(),
                    stored,
                    given: store.genesis_hash,
                });
            }
            _ => {}
        }
        match store.get_meta::<Tip>(META_TIP)? {
            Some(tip) => {
                *store.tip.get_mut().expect("tip lock") = tip;
                store.load_upper_tree()?;
                store.load_oracle(genesis)?;
                store.load_schedule(genesis)?;
            }
            None => store.write_genesis(genesis)?,
        }
        Ok(store)
    }

    /// The schedule in force is the stored one: genesis's entries first, then any appended
    /// since. A genesis file listing an entry the store lacks (or another at its place) is
    /// refused rather than followed, since only `cairn upgrade schedule` checks an entry
    /// against the tip.
    fn load_schedule(&mut self, genesis: &Genesis) -> Result<(), StoreError> {
        let stored: Vec<Upgrade> =
            self.get_meta(META_SCHEDULE)?
                .ok_or_else(|| StoreError::Corrupt {
                    what: CF_META,
                    detail: "the upgrade schedule is missing".into(),
                })?;
        if let Some((i, u)) = genesis
            .upgrades
            .iter()
            .enumerate()
            .find(|(i, u)| stored.get(*i) != Some(u))
        {
            let listed = stored
                .iter()
                .map(|s| format!("{} at {} (v{})", s.name, s.height, s.protocol_version))
                .collect::<Vec<_>>();
            return Err(StoreError::ScheduleConflict {
                path: self.path.clone(),
                name: u.name.clone(),
                height: u.height,
                version: u.protocol_version,
                stored: if listed.is_empty() {
                    "no upgrades".into()
                } else {
                    format!("upgrade {} of: {}", i + 1, listed.join(", "))
                },
            });
        }
        self.schedule = Schedule::from_upgrades(genesis.protocol_version, &stored, IMPLEMENTED);
        Ok(())
    }

    /// Appends `upgrade` to the schedule in force, on disk (synced) and here, if
    /// [`Schedule::check_append`] allows it at the current tip with `margin` blocks.
    /// Only for a store no node is running on: a running node reads its schedule at start.
    pub fn append_upgrade(&mut self, upgrade: Upgrade, margin: u64) -> Result<(), AppendError> {
        let tip = self.tip().height;
        self.schedule
            .check_append(&upgrade, tip, margin, IMPLEMENTED)
            .map_err(AppendError::Refused)?;
        let mut upgrades = self.schedule.upgrades().to_vec();
        upgrades.push(upgrade);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), META_SCHEDULE, codec::encode(&upgrades));
        self.write_synced(batch).map_err(AppendError::Store)?;
        self.schedule = Schedule::from_upgrades(self.schedule.base(), &upgrades, IMPLEMENTED);
        Ok(())
    }

    /// The oracle's rules come from genesis; its feeds from the column family.
    fn load_oracle(&mut self, genesis: &Genesis) -> Result<(), StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            what: CF_ORACLE,
            detail,
        };
        let Some(initial) = OracleState::from_genesis(&genesis.oracle)
            .map_err(|e| corrupt(format!("genesis oracle parameters: {e}")))?
        else {
            return Ok(());
        };
        let mut feeds = Vec::new();
        for entry in self
            .db
            .iterator_cf(self.cf(CF_ORACLE), rocksdb::IteratorMode::Start)
        {
            let (_, value) = entry.map_err(|e| self.db_error(e))?;
            let feed: FeedState = codec::decode(&value, STORED_VALUE_BYTES_MAX, CF_ORACLE)
                .map_err(|e| corrupt(e.to_string()))?;
            feeds.push(feed);
        }
        if feeds.len() != initial.feeds().count() {
            return Err(corrupt(format!(
                "{} feeds stored but genesis has {}",
                feeds.len(),
                initial.feeds().count()
            )));
        }
        let height = self.tip.get_mut().expect("tip lock").height;
        *self.oracle.get_mut().expect("oracle lock") = Some((
            height,
            Arc::new(OracleState::from_parts(initial.config().clone(), feeds)),
        ));
        Ok(())
    }

    /// The oracle at the tip; `None` on a network without one.
    pub fn oracle(&self) -> Option<Arc<OracleState>> {
        self.oracle_at().map(|(_, o)| o)
    }

    /// The oracle with the height of the block it is the state after: queries that depend
    /// on the height (ages, TWAP windows) use this pair, never the tip read separately.
    pub fn oracle_at(&self) -> Option<(Height, Arc<OracleState>)> {
        self.oracle.read().expect("oracle lock").clone()
    }

    fn load_upper_tree(&mut self) -> Result<(), StoreError> {
        let mut upper = UpperTree::new();
        // Keys start with the depth byte, so the upper levels are a prefix of the column.
        for entry in self
            .db
            .iterator_cf(self.cf(CF_STATE_TREE), rocksdb::IteratorMode::Start)
        {
            let (key, value) = entry.map_err(|e| self.db_error(e))?;
            if key[0] >= TREE_CACHED_DEPTHS {
                break;
            }
            let position = Position::from_bytes(&key)
                .filter(|at| UpperTree::slot(at).is_some())
                .ok_or_else(|| StoreError::Corrupt {
                    what: CF_STATE_TREE,
                    detail: format!("key {} is not a tree position", hex::encode(&key)),
                })?;
            let node: Node =
                codec::decode(&value, STORED_VALUE_BYTES_MAX, CF_STATE_TREE).map_err(|e| {
                    StoreError::Corrupt {
                        what: CF_STATE_TREE,
                        detail: e.to_string(),
                    }
                })?;
            upper.set(&position, Some(node));
        }
        *self.upper_tree.get_mut().expect("tree cache lock") = upper;
        Ok(())
    }

    /// Mirrors account writes that have reached disk into the account cache.
    fn cache_accounts<'a>(
        &self,
        written: impl Iterator<Item = (&'a Address, Option<&'a Account>)>,
    ) {
        let mut cache = self.accounts.write().expect("account cache lock");
        for (address, account) in written {
            match account {
                Some(a) => {
                    if cache.len() >= ACCOUNT_CACHE_ENTRIES_MAX {
                        cache.clear();
                    }
                    cache.insert(*address, *a);
                }
                None => {
                    cache.remove(address);
                }
            }
        }
    }

    /// Mirrors tree writes that have reached disk into the in-memory upper levels.
    fn cache_tree_writes(&self, tree: &TreeUpdate) {
        let mut upper = self.upper_tree.write().expect("tree cache lock");
        for (at, node) in tree
            .writes
            .iter()
            .filter(|(at, _)| at.depth < TREE_CACHED_DEPTHS)
        {
            upper.set(at, *node);
        }
    }

    fn write_genesis(&mut self, genesis: &Genesis) -> Result<(), StoreError> {
        let (block, changes, tree) = genesis.block_zero();
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_META),
            META_FORMAT,
            codec::encode(&FORMAT_VERSION),
        );
        batch.put_cf(
            self.cf(CF_META),
            META_GENESIS,
            codec::encode(&self.genesis_hash),
        );
        batch.put_cf(
            self.cf(CF_META),
            META_SCHEDULE,
            codec::encode(&genesis.upgrades),
        );
        let empty_tip = Tip {
            height: Height(0),
            hash: genesis.hash(),
            state_root: Child::Empty,
        };
        let body = EncodedBody::new(&[]).map_err(|e| StoreError::Corrupt {
            what: "genesis block",
            detail: e.to_string(),
        })?;
        let prepared = PreparedBlock::new(block, body, changes, tree, empty_tip);
        let tip = self.write_block(batch, &prepared, Durability::Synced)?;
        *self.tip.get_mut().expect("tip lock") = tip;
        Ok(())
    }

    fn cf(&self, name: &str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("every column family is created at open")
    }

    fn db_error(&self, e: rocksdb::Error) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            message: e.into_string(),
        }
    }

    fn get_raw(
        &self,
        cf: &str,
        key: &[u8],
    ) -> Result<Option<rocksdb::DBPinnableSlice<'_>>, StoreError> {
        self.db
            .get_pinned_cf(self.cf(cf), key)
            .map_err(|e| self.db_error(e))
    }

    fn get<T: Serialize + DeserializeOwned>(
        &self,
        cf: &'static str,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        match self.get_raw(cf, key)? {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes, STORED_VALUE_BYTES_MAX, cf)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    what: cf,
                    detail: e.to_string(),
                }),
        }
    }

    fn get_meta<T: Serialize + DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        self.get(CF_META, key)
    }

    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    /// Waits until the tip is no longer `seen` or `timeout` has passed; returns the tip.
    pub fn wait_for_new_tip(&self, seen: &Tip, timeout: Duration) -> Tip {
        let deadline = Instant::now() + timeout;
        let (lock, changed) = &self.tip_changed;
        let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let tip = self.tip();
            let now = Instant::now();
            if tip != *seen || now >= deadline {
                return tip;
            }
            guard = changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn notify_tip(&self) {
        let (lock, changed) = &self.tip_changed;
        drop(lock.lock().unwrap_or_else(|e| e.into_inner()));
        changed.notify_all();
    }

    pub fn tip(&self) -> Tip {
        *self.tip.read().expect("tip lock")
    }

    pub fn state_root(&self) -> Hash {
        self.tip().state_root.hash()
    }

    pub fn header(&self, hash: &Hash) -> Result<Option<BlockHeader>, StoreError> {
        match self.get_raw(CF_HEADERS, &hash.0)? {
            None => Ok(None),
            Some(bytes) => BlockHeader::decode(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    what: "header",
                    detail: e.to_string(),
                }),
        }
    }

    pub fn hash_at(&self, height: Height) -> Result<Option<Hash>, StoreError> {
        self.get(CF_HEIGHTS, &be(height))
    }

    pub fn header_at(&self, height: Height) -> Result<Option<BlockHeader>, StoreError> {
        match self.hash_at(height)? {
            Some(hash) => self.header(&hash),
            None => Ok(None),
        }
    }

    pub fn block(&self, hash: &Hash) -> Result<Option<Block>, StoreError> {
        let Some(header) = self.header(hash)? else {
            return Ok(None);
        };
        let transactions = match self.get_raw(CF_BODIES, &hash.0)? {
            Some(bytes) => block::decode_body(&bytes).map_err(|e| StoreError::Corrupt {
                what: "body",
                detail: e.to_string(),
            })?,
            None => {
                return Err(StoreError::Corrupt {
                    what: "body",
                    detail: format!("block {hash} has a header but no body"),
                });
            }
        };
        Ok(Some(Block {
            header,
            transactions,
        }))
    }

    pub fn block_at(&self, height: Height) -> Result<Option<Block>, StoreError> {
        match self.hash_at(height)? {
            Some(hash) => self.block(&hash),
            None => Ok(None),
        }
    }

    pub fn tx_location(&self, tx: &Hash) -> Result<Option<TxLocation>, StoreError> {
        self.get(CF_TX_INDEX, &tx.0)
    }

    pub fn receipts(&self, height: Height) -> Result<Option<Vec<Receipt>>, StoreError> {
        self.get(CF_RECEIPTS, &be(height))
    }

    pub fn account(&self, address: &Address) -> Result<Option<Account>, StoreError> {
        if let Some(a) = self
            .accounts
            .read()
            .expect("account cache lock")
            .get(address)
        {
            return Ok(Some(*a));
        }
        self.get(CF_STATE, &address.0)
    }

    /// Proof of an account's state (or absence) against the tip's state root.
    pub fn account_proof(&self, address: &Address) -> Result<(Option<Account>, Proof), StoreError> {
        let _writer = self.write_lock.lock().expect("write lock");
        let tip = self.tip();
        let proof =
            smt::prove(self, tip.state_root, &state::account_key(address)).map_err(tree_error)?;
        Ok((self.account(address)?, proof))
    }

    /// Durable consensus metadata (e.g. HotStuff safety state): written synced, so it is on
    /// disk before this returns.
    pub fn put_consensus(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_CONSENSUS), key, value);
        self.write_synced(batch)
    }

    /// Several consensus metadata entries in one synced batch: one fsync for all of them.
    pub fn put_consensus_all(&self, entries: &[KeyValue]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (key, value) in entries {
            batch.put_cf(self.cf(CF_CONSENSUS), key, value);
        }
        self.write_synced(batch)
    }

    pub fn get_consensus(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get_raw(CF_CONSENSUS, key)?.map(|s| s.to_vec()))
    }

    /// Consensus metadata under `prefix`, in key order, at most `entries_max` of them.
    pub fn consensus_entries(
        &self,
        prefix: &[u8],
        entries_max: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(CF_CONSENSUS),
            rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(|e| self.db_error(e))?;
            if !key.starts_with(prefix) || out.len() >= entries_max {
                break;
            }
            out.push((key.to_vec(), value.to_vec()));
        }
        Ok(out)
    }

    /// Removes consensus metadata in one batch (synced: what is gone stays gone).
    pub fn delete_consensus(&self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for key in keys {
            batch.delete_cf(self.cf(CF_CONSENSUS), key);
        }
        self.write_synced(batch)
    }

    /// An account as seen through executed, uncommitted `ancestors` (oldest first): what a
    /// block producer needs to pick transactions that will execute on top of them.
    pub fn account_on(
        &self,
        ancestors: &[&PreparedBlock],
        address: &Address,
    ) -> Result<Option<Account>, ReadError> {
        Layered {
            store: self,
            layers: ancestors,
        }
        .account(address)
    }

    /// Executes `block` on the tip's state and checks its roots, without writing anything.
    pub fn prepare(
        &self,
        block: Block,
        reward: Amount,
        sig_check: SigCheck,
    ) -> Result<PreparedBlock, ApplyError> {
        self.prepare_on(&[], block, reward, sig_check)
    }

    /// Like [`Store::prepare`], on top of `ancestors`: executed, uncommitted blocks that
    /// extend the tip in order (oldest first). The result can be committed once they are.
    pub fn prepare_on(
        &self,
        ancestors: &[&PreparedBlock],
        block: Block,
        reward: Amount,
        sig_check: SigCheck,
    ) -> Result<PreparedBlock, ApplyError> {
        let base = self.base_tip(ancestors)?;
        let header = &block.header;
        if header.height != base.height.next() || header.parent != base.hash {
            return Err(ApplyError::NotOnTip {
                height: header.height,
                parent: header.parent,
                tip_height: base.height,
                tip_hash: base.hash,
            });
        }
        self.check_rules_version(header)?;
        let body = EncodedBody::new(&block.transactions)?;
        let computed = body.tx_root();
        if computed != header.tx_root {
            return Err(ApplyError::TxRootMismatch {
                header: header.tx_root,
                computed,
            });
        }
        let (changes, tree) = self.execute_on(ancestors, &base, &block, reward, sig_check)?;
        if tree.root_hash() != header.state_root {
            return Err(ApplyError::StateRootMismatch {
                header: header.state_root,
                computed: tree.root_hash(),
            });
        }
        Ok(PreparedBlock::new(block, body, changes, tree, base))
    }

    /// The tip `ancestors` lead to, checking that they chain from the store's tip.
    fn base_tip(&self, ancestors: &[&PreparedBlock]) -> Result<Tip, ApplyError> {
        let mut base = self.tip();
        for a in ancestors {
            if a.parent_tip != base {
                return Err(ApplyError::NotOnTip {
                    height: a.block.header.height,
                    parent: a.block.header.parent,
                    tip_height: base.height,
                    tip_hash: base.hash,
                });
            }
            base = a.resulting_tip();
        }
        Ok(base)
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// A block must follow the protocol version genesis schedules for its height, and this
    /// binary must implement it.
    fn check_rules_version(&self, header: &BlockHeader) -> Result<(), ApplyError> {
        if let Some(u) = self.schedule.missing_at(header.height) {
            return Err(ApplyError::UpgradeMissing {
                height: header.height,
                name: u.name.clone(),
                version: u.protocol_version,
                activation: u.height,
                last: Height(u.height.0.saturating_sub(1)),
            });
        }
        let expected = self.schedule.version_at(header.height);
        if header.protocol_version != expected {
            return Err(ApplyError::WrongProtocolVersion {
                height: header.height,
                expected,
                found: header.protocol_version,
            });
        }
        Ok(())
    }

    fn execute_on(
        &self,
        ancestors: &[&PreparedBlock],
        base: &Tip,
        block: &Block,
        reward: Amount,
        sig_check: SigCheck,
    ) -> Result<(StateChanges, TreeUpdate), ExecError> {
        let ctx = BlockContext {
            chain_id: &self.chain_id,
            height: block.header.height,
            producer: block.header.proposer,
            reward,
            rules: self.schedule.rules_at(block.header.height),
        };
        let view = Layered {
            store: self,
            layers: ancestors,
        };
        let changes = state::execute_block(&view, &ctx, &block.transactions, sig_check)?;
        let tree = state::tree_update_with(
            &view,
            base.state_root,
            changes.updated.iter().map(|(a, acc)| (a, Some(acc))),
            state::feed_entries(&changes.feeds_updated),
        )?;
        Ok((changes, tree))
    }

    /// Fills in `tx_root` and `state_root` of a block a producer is building on the tip.
    /// `header.height`, `header.parent` and `header.protocol_version` are set from the tip.
    pub fn complete_block(
        &self,
        block: Block,
        reward: Amount,
        sig_check: SigCheck,
    ) -> Result<PreparedBlock, ApplyError> {
        self.complete_block_on(&[], block, reward, sig_check)
    }

    /// Like [`Store::complete_block`], on top of executed, uncommitted `ancestors`.
    pub fn complete_block_on(
        &self,
        ancestors: &[&PreparedBlock],
        mut block: Block,
        reward: Amount,
        sig_check: SigCheck,
    ) -> Result<PreparedBlock, ApplyError> {
        let base = self.base_tip(ancestors)?;
        block.header.height = base.height.next();
        block.header.parent = base.hash;
        block.header.protocol_version = self.schedule.version_at(block.header.height);
        self.check_rules_version(&block.header)?;
        let body = EncodedBody::new(&block.transactions)?;
        block.header.tx_root = body.tx_root();
        let (changes, tree) = self.execute_on(ancestors, &base, &block, reward, sig_check)?;
        block.header.state_root = tree.root_hash();
        Ok(PreparedBlock::new(block, body, changes, tree, base))
    }

    /// Writes a prepared block as the new tip, atomically and durably.
    pub fn commit(&self, prepared: &PreparedBlock) -> Result<Tip, StoreError> {
        self.commit_with(prepared, &ConsensusWrites::default())
    }

    /// Like [`Store::commit`], with consensus metadata written in the same batch: the
    /// certificate of the new tip lands with the tip itself, so a crash can never leave a
    /// tip without the proof a restarted engine needs.
    pub fn commit_with(
        &self,
        prepared: &PreparedBlock,
        consensus: &ConsensusWrites,
    ) -> Result<Tip, StoreError> {
        let _writer = self.write_lock.lock().expect("write lock");
        let tip = self.tip();
        if tip != prepared.parent_tip {
            return Err(StoreError::NotNext {
                height: prepared.block.header.height,
                tip_height: tip.height,
                tip_hash: tip.hash,
            });
        }
        // `prepare_on` checked the block against `parent_tip`, now known to be the tip: a
        // commit only ever appends the tip's child.
        let header = &prepared.block.header;
        assert_eq!(
            header.height,
            tip.height.next(),
            "committing a block that is not tip+1"
        );
        assert_eq!(
            header.parent, tip.hash,
            "committing a block not built on the tip"
        );
        debug_assert_eq!(prepared.hash, prepared.block.hash());
        let reserve = self
            .batch_bytes_hint
            .load(Ordering::Relaxed)
            .min(BATCH_RESERVE_BYTES_MAX);
        let mut batch = WriteBatch::with_capacity_bytes(reserve);
        for (key, value) in &consensus.puts {
            batch.put_cf(self.cf(CF_CONSENSUS), key, value);
        }
        for key in &consensus.deletes {
            batch.delete_cf(self.cf(CF_CONSENSUS), key);
        }
        let new_tip = self.write_block(batch, prepared, consensus.durability)?;
        assert_eq!(new_tip.height, tip.height.next());
        assert_eq!(new_tip.hash, prepared.hash);
        *self.tip.write().expect("tip lock") = new_tip;
        self.notify_tip();
        Ok(new_tip)
    }

    /// Prepare and commit in one step.
    pub fn apply(
        &self,
        block: Block,
        reward: Amount,
        sig_check: SigCheck,
    ) -> Result<Tip, ApplyError> {
        let prepared = self.prepare(block, reward, sig_check)?;
        Ok(self.commit(&prepared)?)
    }

    fn write_block(
        &self,
        mut batch: WriteBatch,
        p: &PreparedBlock,
        durability: Durability,
    ) -> Result<Tip, StoreError> {
        let header = &p.block.header;
        let height = be(header.height);
        batch.put_cf(self.cf(CF_HEADERS), p.hash.0, codec::encode(header));
        batch.put_cf(self.cf(CF_BODIES), p.hash.0, &p.body.bytes);
        batch.put_cf(self.cf(CF_HEIGHTS), height, codec::encode(&p.hash));
        let mut value = Vec::new();
        let tx_index = self.cf(CF_TX_INDEX);
        for (index, tx_hash) in p.body.tx_ids.iter().enumerate() {
            let location = TxLocation {
                height: header.height,
                block: p.hash,
                index: index as u32,
            };
            codec::encode_into(&location, &mut value);
            batch.put_cf(tx_index, tx_hash.0, &value);
        }
        batch.put_cf(
            self.cf(CF_RECEIPTS),
            height,
            codec::encode(&p.changes.receipts),
        );
        let state = self.cf(CF_STATE);
        for (address, account) in &p.changes.updated {
            codec::encode_into(account, &mut value);
            batch.put_cf(state, address.0, &value);
        }
        for (id, feed) in &p.changes.feeds_updated {
            batch.put_cf(
                self.cf(CF_ORACLE),
                id.as_str().as_bytes(),
                codec::encode(&**feed),
            );
        }
        self.put_tree_writes(&mut batch, &p.tree);
        let undo = UndoRecord {
            previous_tip: p.parent_tip,
            accounts: p
                .changes
                .previous
                .iter()
                .map(|(a, acc)| (*a, *acc))
                .collect(),
            feeds: p
                .changes
                .feeds_previous
                .values()
                .map(|f| (**f).clone())
                .collect(),
        };
        batch.put_cf(self.cf(CF_UNDO), height, codec::encode(&undo));
        let tip = p.resulting_tip();
        batch.put_cf(self.cf(CF_META), META_TIP, codec::encode(&tip));
        // Blocks are alike in size: sizing the next batch like this one saves growing it
        // (and copying what it holds) a dozen times on the way to a megabyte.
        self.batch_bytes_hint
            .store(batch.size_in_bytes(), Ordering::Relaxed);
        match durability {
            Durability::Synced => self.write_synced(batch)?,
            Durability::WithNextSync => self.write(batch, false)?,
        }
        self.cache_tree_writes(&p.tree);
        self.cache_accounts(p.changes.updated.iter().map(|(a, acc)| (a, Some(acc))));
        if let Some(after) = &p.changes.oracle_after {
            *self.oracle.write().expect("oracle lock") = Some((header.height, Arc::clone(after)));
        }
        Ok(tip)
    }

    fn put_tree_writes(&self, batch: &mut WriteBatch, tree: &TreeUpdate) {
        let cf = self.cf(CF_STATE_TREE);
        let mut value = Vec::new();
        for (at, node) in &tree.writes {
            match node {
                Some(n) => {
                    codec::encode_into(n, &mut value);
                    batch.put_cf(cf, at.to_bytes(), &value);
                }
                None => batch.delete_cf(cf, at.to_bytes()),
            }
        }
    }

    fn write_synced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.write(batch, true)
    }

    /// Every write goes through here. After a failed write RocksDB itself refuses writes
    /// (`paranoid_checks`), but it may resume on its own once space is freed; this store
    /// does not, so nothing written after the failure can land without what it followed.
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StoreError> {
        if let Some(first) = self.write_failure.get() {
            return Err(StoreError::WritesStopped(first.clone()));
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(batch, &opts).map_err(|e| {
            let message = e.into_string();
            let _ = self.write_failure.set(WriteFailure {
                path: self.path.clone(),
                no_space: is_no_space(&message),
                message: message.clone(),
            });
            StoreError::Db {
                path: self.path.clone(),
                message,
            }
        })
    }

    /// The first write this store could not make, if one failed: it has written nothing
    /// since, and the process should stop (see the module's invariants).
    pub fn write_failure(&self) -> Option<&WriteFailure> {
        self.write_failure.get()
    }

    /// Removes the tip block and restores the state before it, atomically. Returns the removed
    /// block so its transactions can go back to the mempool.
    pub fn revert_tip(&self) -> Result<Block, StoreError> {
        let _writer = self.write_lock.lock().expect("write lock");
        let tip = self.tip();
        if tip.height == Height(0) {
            return Err(StoreError::RevertGenesis);
        }
        let corrupt = |detail: String| StoreError::Corrupt {
            what: "undo record",
            detail,
        };
        let block = self
            .block(&tip.hash)?
            .ok_or_else(|| corrupt(format!("tip block {} is missing", tip.hash)))?;
        let undo: UndoRecord = self
            .get(CF_UNDO, &be(tip.height))?
            .ok_or_else(|| corrupt(format!("no undo record for height {}", tip.height)))?;
        // Block, undo record and tip were written in one batch by `write_block`, so they can
        // only disagree if the disk changed under us: refuse to undo anything but the tip.
        if block.header.height != tip.height
            || undo.previous_tip.height.next() != tip.height
            || block.header.parent != undo.previous_tip.hash
        {
            return Err(corrupt(format!(
                "the block and undo record stored for the tip (height {}) do not lead back to its parent",
                tip.height
            )));
        }
        let restored: std::collections::BTreeMap<FeedId, Arc<FeedState>> = undo
            .feeds
            .iter()
            .map(|f| (f.id().clone(), Arc::new(f.clone())))
            .collect();
        let tree = state::tree_update_with(
            self,
            tip.state_root,
            undo.accounts.iter().map(|(a, acc)| (a, acc.as_ref())),
            state::feed_entries(&restored),
        )
        .map_err(tree_error)?;
        if tree.root_hash() != undo.previous_tip.state_root.hash() {
            return Err(corrupt(format!(
                "undoing height {} gives state root {} but the parent's is {}",
                tip.height,
                tree.root_hash(),
                undo.previous_tip.state_root.hash()
            )));
        }
        let mut batch = WriteBatch::default();
        for (address, account) in &undo.accounts {
            match account {
                Some(acc) => batch.put_cf(self.cf(CF_STATE), address.0, codec::encode(acc)),
                None => batch.delete_cf(self.cf(CF_STATE), address.0),
            }
        }
        for feed in &undo.feeds {
            batch.put_cf(
                self.cf(CF_ORACLE),
                feed.id().as_str().as_bytes(),
                codec::encode(feed),
            );
        }
        self.put_tree_writes(&mut batch, &tree);
        let height = be(tip.height);
        batch.delete_cf(self.cf(CF_HEADERS), tip.hash.0);
        batch.delete_cf(self.cf(CF_BODIES), tip.hash.0);
        batch.delete_cf(self.cf(CF_HEIGHTS), height);
        for tx in &block.transactions {
            batch.delete_cf(self.cf(CF_TX_INDEX), tx.hash().0);
        }
        batch.delete_cf(self.cf(CF_RECEIPTS), height);
        batch.delete_cf(self.cf(CF_UNDO), height);
        batch.put_cf(
            self.cf(CF_META),
            META_TIP,
            codec::encode(&undo.previous_tip),
        );
        self.write_synced(batch)?;
        self.cache_tree_writes(&tree);
        self.cache_accounts(undo.accounts.iter().map(|(a, acc)| (a, acc.as_ref())));
        {
            let mut oracle = self.oracle.write().expect("oracle lock");
            if let Some((_, current)) = oracle.as_ref() {
                *oracle = Some((
                    undo.previous_tip.height,
                    Arc::new(current.with_changes(&restored)),
                ));
            }
        }
        *self.tip.write().expect("tip lock") = undo.previous_tip;
        self.notify_tip();
        Ok(block)
    }
}

fn tree_error(e: TreeError) -> StoreError {
    StoreError::Corrupt {
        what: "state tree",
        detail: e.to_string(),
    }
}

impl StateReader for Store {
    fn account(&self, address: &Address) -> Result<Option<Account>, ReadError> {
        Store::account(self, address).map_err(|e| ReadError(e.to_string()))
    }

    fn oracle(&self) -> Option<Arc<OracleState>> {
        Store::oracle(self)
    }
}

impl NodeSource for Store {
    fn node(&self, at: Position) -> Result<Option<Node>, TreeError> {
        if at.depth < TREE_CACHED_DEPTHS {
            return Ok(self.upper_tree.read().expect("tree cache lock").get(&at));
        }
        self.get::<Node>(CF_STATE_TREE, &at.to_bytes())
            .map_err(|e| TreeError::Read(e.to_string()))
    }
}

fn open_db(path: &Path) -> Result<DB, StoreError> {
    let db_error = |e: rocksdb::Error| {
        let message = e.into_string();
        if message.contains("lock") || message.contains("LOCK") {
            StoreError::Locked {
                path: path.to_owned(),
            }
        } else {
            StoreError::Db {
                path: path.to_owned(),
                message,
            }
        }
    };
    let mut opts = Options::default();
    // Required by the in-place updates below; the store has one writer at a time anyway.
    opts.set_allow_concurrent_memtable_write(false);
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // RocksDB's default, relied on: a failed write or flush stops all later writes (a
    // "background error") instead of letting the database go on without it.
    opts.set_paranoid_checks(true);
    opts.set_max_background_jobs(2);
    opts.set_compression_type(DBCompressionType::Lz4);
    let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&cache);
    table.set_bloom_filter(10.0, false);
    let cf_opts = {
        let mut o = Options::default();
        o.set_compression_type(DBCompressionType::Lz4);
        o.set_block_based_table_factory(&table);
        o
    };
    // A store written by a newer binary may carry column families we do not know; open them
    // all so the format check below can say what is wrong instead of RocksDB refusing.
    let mut names: Vec<String> = COLUMN_FAMILIES.iter().map(|s| s.to_string()).collect();
    if let Ok(existing) = DB::list_cf(&opts, path) {
        for name in existing {
            if !names.contains(&name) && name != "default" {
                names.push(name);
            }
        }
    }
    let descriptors = names.into_iter().map(|name| {
        let mut o = cf_opts.clone();
        // Every block rewrites about two thousand accounts and tree nodes, mostly the same
        // keys as the blocks before. Appended as new versions, they fill these memtables
        // with stale entries that every later insert has to search past (the skiplist search
        // was the largest cost of a commit) and every flush writes out. In place, a new
        // value no longer than the one in the memtable overwrites it; durability still comes
        // from the write-ahead log, which gets the whole batch as before.
        if name == CF_STATE || name == CF_STATE_TREE {
            o.set_inplace_update_support(true);
            o.set_inplace_update_locks(INPLACE_UPDATE_LOCKS);
        }
        ColumnFamilyDescriptor::new(name, o)
    });
    DB::open_cf_descriptors(&opts, path, descriptors).map_err(db_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Seal;
    use crate::crypto::Keypair;
    use crate::genesis::EngineKind;
    use crate::rules::RuleError;
    use crate::state::{ExecError, TxError};
    use crate::tx::{Payload, Transaction};
    use crate::types::{Nonce, ProtocolVersion, TimestampMs};
    use crate::upgrades::SCHEDULE_MARGIN_BLOCKS_MIN;

    fn genesis() -> (Genesis, Keypair) {
        let key = Keypair::from_secret(&[9; 32]);
        let g = Genesis::local(
            EngineKind::HotStuff,
            &[key.public()],
            &[(key.public().address(), Amount(1_000))],
            TimestampMs(1),
        );
        (g, key)
    }

    fn transfer_block(store: &Store, key: &Keypair, amount: u64) -> Block {
        let template = transfer_block_template(store, key, amount);
        store
            .complete_block(template, Amount(0), SigCheck::Batch)
            .unwrap()
            .block
    }

    fn transfer_block_template(store: &Store, key: &Keypair, amount: u64) -> Block {
        let nonce = store
            .account(&key.public().address())
            .unwrap()
            .map_or(Nonce(0), |a| a.nonce);
        let tx = Transaction::new_signed(
            store.chain_id(),
            key,
            nonce,
            Amount(1),
            Payload::Transfer {
                to: Address([5; 20]),
                amount: Amount(amount),
            },
        );
        Block {
            header: BlockHeader {
                height: Height(0),
                parent: Hash::ZERO,
                timestamp: TimestampMs(2),
                tx_root: Hash::ZERO,
                state_root: Hash::ZERO,
                proposer: Address([7; 20]),
                protocol_version: ProtocolVersion(1),
                seal: Seal::Pow { bits: 0, nonce: 0 },
            },
            transactions: vec![tx],
        }
    }

    #[test]
    fn fresh_store_holds_genesis_and_reopens_at_the_same_tip() {
        let dir = tempfile::tempdir().unwrap();
        let (g, key) = genesis();
        let store = Store::open(dir.path(), &g).unwrap();
        let tip = store.tip();
        assert_eq!(tip.height, Height(0));
        let block0 = store.block_at(Height(0)).unwrap().unwrap();
        assert_eq!(block0.header.parent, g.hash());
        assert_eq!(
            store
                .account(&key.public().address())
                .unwrap()
                .unwrap()
                .balance,
            Amount(1_000)
        );
        let block = transfer_block(&store, &key, 10);
        store.apply(block, Amount(0), SigCheck::Batch).unwrap();
        reopens_with_recipient_balance(store, dir.path(), &g, Amount(10));
    }

    #[test]
    fn a_reader_waiting_for_a_new_tip_wakes_on_the_commit_or_gives_up_at_its_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let (g, key) = genesis();
        let store = Store::open(dir.path(), &g).unwrap();
        let genesis_tip = store.tip();
        let quiet = store.wait_for_new_tip(&genesis_tip, Duration::from_millis(20));
        assert_eq!(quiet, genesis_tip);

        let block = transfer_block(&store, &key, 10);
        let prepared = store.prepare(block, Amount(0), SigCheck::Batch).unwrap();
        let new_tip = std::thread::scope(|s| {
            let waiter = s.spawn(|| store.wait_for_new_tip(&genesis_tip, Duration::from_secs(60)));
            // Most likely the waiter is asleep by now; had it come later, it would have seen
            // the new tip at once.
            std::thread::sleep(Duration::from_millis(20));
            let committed = store
                .commit_with(
                    &prepared,
                    &ConsensusWrites {
                        durability: Durability::WithNextSync,
                        ..ConsensusWrites::default()
                    },
                )
                .unwrap();
            assert_eq!(waiter.join().unwrap(), committed);
            committed
        });
        assert_eq!(new_tip.height, Height(1));
        // A batch left to the next sync is still on disk after a clean close.
        reopens_with_recipient_balance(store, dir.path(), &g, Amount(10));
    }

    /// Closes `store`, reopens it, and checks it is at the same tip with the transfer
    /// recipient of [`transfer_block`] holding `balance`.
    fn reopens_with_recipient_balance(store: Store, dir: &Path, g: &Genesis, balance: Amount) {
        let tip = store.tip();
        drop(store);
        let store = Store::open(dir, g).unwrap();
        assert_eq!(store.tip(), tip);
        assert_eq!(
            store.account(&Address([5; 20])).unwrap().unwrap().balance,
            balance
        );
    }

    #[test]
    fn accounts_rewritten_block_after_block_are_updated_in_place_in_the_memtable() {
        let dir = tempfile::tempdir().unwrap();
        let (g, key) = genesis();
        let store = Store::open(dir.path(), &g).unwrap();
        let entries = |store: &Store| {
            store
                .db
                .property_int_value_cf(store.cf(CF_STATE), "rocksdb.num-entries-active-mem-table")
                .unwrap()
                .unwrap()
        };
        let block = transfer_block(&store, &key, 10);
        store.apply(block, Amount(0), SigCheck::Batch).unwrap();
        let after_first = entries(&store);
        for _ in 0..5 {
            let block = transfer_block(&store, &key, 10);
            store.apply(block, Amount(0), SigCheck::Batch).unwrap();
        }
        // The same three accounts (sender, recipient, producer) were written six times.
        assert_eq!(entries(&store), after_first);
        assert_eq!(
            store.account(&Address([5; 20])).unwrap().unwrap().balance,
            Amount(60)
        );
        reopens_with_recipient_balance(store, dir.path(), &g, Amount(60));
    }

    #[test]
    fn newer_format_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let (g, _) = genesis();
        let store = Store::open(dir.path(), &g).unwrap();
        store
            .db
            .put_cf(
                store.cf(CF_META),
                META_FORMAT,
                codec::encode(&(FORMAT_VERSION + 1)),
            )
            .unwrap();
        drop(store);
        let err = Store::open(dir.path(), &g)
            .err()
            .expect("newer format refused");
        assert!(
            matches!(err, StoreError::NewerFormat { found, .. } if found == FORMAT_VERSION + 1)
        );
        assert!(err.to_string().contains("newer Cairn"), "{err}");
    }

    #[test]
    fn other_networks_genesis_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (g, _) = genesis();
        drop(Store::open(dir.path(), &g).unwrap());
        let mut other = g.clone();
        other.chain_id = "another-chain".into();
        let err = Store::open(dir.path(), &other).err().expect("refused");
        assert!(matches!(err, StoreError::GenesisMismatch { .. }), "{err}");
    }

    fn upgrade(name: &str, height: u64, version: u32) -> Upgrade {
        Upgrade {
            name: name.into(),
            height: Height(height),
            protocol_version: ProtocolVersion(version),
        }
    }

    #[test]
    fn an_appended_upgrade_is_kept_across_reopening_and_changes_the_rules_at_its_height() {
        let dir = tempfile::tempdir().unwrap();
        let (g, _) = genesis();
        assert!(g.upgrades.is_empty());
        let mut store = Store::open(dir.path(), &g).unwrap();
        let before = store.schedule().hash();
        store
            .append_upgrade(upgrade("fee-floor", 500, 2), 0)
            .unwrap();
        assert_ne!(store.schedule().hash(), before);
        drop(store);
        let store = Store::open(dir.path(), &g).unwrap();
        assert_eq!(store.genesis_hash(), g.hash());
        assert_eq!(store.schedule().upgrades(), &[upgrade("fee-floor", 500, 2)]);
        assert_eq!(store.schedule().version_at(Height(499)), ProtocolVersion(1));
        assert_eq!(store.schedule().version_at(Height(500)), ProtocolVersion(2));
        assert_eq!(store.schedule().rules_at(Height(500)).fee_min, Amount(1));
    }

    #[test]
    fn appending_refuses_what_would_rewrite_the_schedule_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (g, _) = genesis();
        let mut store = Store::open(dir.path(), &g).unwrap();
        store
            .append_upgrade(upgrade("fee-floor", 500, 2), 0)
            .unwrap();
        let hash = store.schedule().hash();
        let refused = |store: &mut Store, u: Upgrade| match store.append_upgrade(u, 0) {
            Err(AppendError::Refused(e)) => e,
            other => panic!("not refused: {other:?}"),
        };
        assert!(matches!(
            refused(&mut store, upgrade("fee-floor", 900, 2)),
            ScheduleError::AlreadyScheduled { .. }
        ));
        assert!(matches!(
            refused(&mut store, upgrade("memo", 400, 3)),
            ScheduleError::NotAfterLast { .. }
        ));
        assert!(matches!(
            refused(&mut store, upgrade("memo", 900, 4)),
            ScheduleError::WrongVersion { .. }
        ));
        assert!(matches!(
            refused(&mut store, upgrade("from-the-future", 900, 9)),
            ScheduleError::NotImplemented { .. }
        ));
        assert!(matches!(
            refused(&mut store, upgrade("Memo!", 900, 3)),
            ScheduleError::BadName(_)
        ));
        drop(store);
        let store = Store::open(dir.path(), &g).unwrap();
        assert_eq!(store.schedule().hash(), hash);
    }

    #[test]
    fn an_upgrade_too_close_to_the_tip_is_refused_with_the_lowest_height_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let (g, _) = genesis();
        let mut store = Store::open(dir.path(), &g).unwrap();
        let margin = SCHEDULE_MARGIN_BLOCKS_MIN;
        let err = store
            .append_upgrade(upgrade("fee-floor", margin - 1, 2), margin)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("height {margin} or more")),
            "{err}"
        );
        // Never at the tip, whatever the margin (a node that missed a rollout gives 1).
        assert!(matches!(
            store.append_upgrade(upgrade("fee-floor", 0, 2), 0),
            Err(AppendError::Refused(ScheduleError::TooClose { .. }))
        ));
        store
            .append_upgrade(upgrade("fee-floor", margin, 2), margin)
            .unwrap();
    }

    #[test]
    fn a_genesis_file_listing_an_upgrade_the_store_lacks_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (g, _) = genesis();
        drop(Store::open(dir.path(), &g).unwrap());
        let mut edited = g.clone();
        edited.upgrades.push(upgrade("fee-floor", 5, 2));
        // Same network (the hash leaves the schedule out), but not the same schedule.
        assert_eq!(edited.hash(), g.hash());
        let err = Store::open(dir.path(), &edited).err().expect("refused");
        assert!(matches!(err, StoreError::ScheduleConflict { .. }), "{err}");
        assert!(err.to_string().contains("cairn upgrade schedule"), "{err}");
        // The genesis entries are the stored schedule's first ones: a store that has them
        // and one appended later opens with either genesis file.
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), &edited).unwrap();
        store.append_upgrade(upgrade("memo", 500, 3), 0).unwrap();
        drop(store);
        let store = Store::open(dir.path(), &edited).unwrap();
        assert_eq!(store.schedule().upgrades().len(), 2);
    }

    #[test]
    fn second_opener_of_a_data_dir_is_told_it_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let (g, _) = genesis();
        let _first = Store::open(dir.path(), &g).unwrap();
        let err = Store::open(dir.path(), &g)
            .err()
            .expect("second open refused");
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    }

    #[test]
    fn block_with_wrong_state_root_is_rejected_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let (g, key) = genesis();
        let store = Store::open(dir.path(), &g).unwrap();
        let mut block = transfer_block(&store, &key, 10);
        block.header.state_root = Hash([1; 32]);
        let before = store.tip();
        let err = store
            .apply(block.clone(), Amount(0), SigCheck::Batch)
            .unwrap_err();
        assert!(matches!(err, ApplyError::StateRootMismatch { .. }), "{err}");
        assert_eq!(store.tip(), before);
        assert_eq!(
            store.tx_location(&block.transactions[0].hash()).unwrap(),
            None
        );
        let mut block = transfer_block(&store, &key, 10);
        block.header.parent = Hash([2; 32]);
        assert!(matches!(
            store.apply(block, Amount(0), SigCheck::Batch),
            Err(ApplyError::NotOnTip { .. })
        ));
    }

    #[test]
    fn tx_index_finds_transactions_in_the_memtable_on_disk_and_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (g, key) = genesis();
        let mut ids = Vec::new();
        {
            let store = Store::open(dir.path(), &g).unwrap();
            for amount in 1..=6 {
                let block = transfer_block(&store, &key, amount);
                ids.push((block.transactions[0].hash(), block.header.height));
                store.apply(block, Amount(0), SigCheck::Batch).unwrap();
                // Half the entries go to a table file, half stay in the memtable.
                if amount == 3 {
                    store.db.flush_cf(store.cf(CF_TX_INDEX)).unwrap();
                }
            }
            for (id, height) in &ids {
                let at = store.tx_location(id).unwrap().expect("indexed");
                assert_eq!((at.height, at.index), (*height, 0));
            }
            assert_eq!(store.tx_location(&Hash([0xab; 32])).unwrap(), None);
        }
        let store = Store::open(dir.path(), &g).unwrap();
        for (id, height) in &ids {
            assert_eq!(store.tx_location(id).unwrap().unwrap().height, *height);
        }
        assert_eq!(store.tx_location(&Hash([0xab; 32])).unwrap(), None);
    }

    #[test]
    fn revert_restores_the_previous_tip_state_and_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let (g, key) = genesis();
        let store = Store::open(dir.path(), &g).unwrap();
        let before = store.tip();
        let block = transfer_block(&store, &key, 10);
        let tx = block.transactions[0].hash();
        store
            .apply(block.clone(), Amount(0), SigCheck::Batch)
            .unwrap();
        assert!(store.tx_location(&tx).unwrap().is_some());
        let reverted = store.revert_tip().unwrap();
        assert_eq!(reverted, block);
        assert_eq!(store.tip(), before);
        assert_eq!(store.account(&Address([5; 20])).unwrap(), None);
        assert_eq!(store.tx_location(&tx).unwrap(), None);
        assert_eq!(store.hash_at(Height(1)).unwrap(), None);
        assert!(matches!(store.revert_tip(), Err(StoreError::RevertGenesis)));
    }

    #[test]
    fn account_proofs_verify_against_the_state_root() {
        let dir = tempfile::tempdir().unwrap();
        let (g, key) = genesis();
        let store = Store::open(dir.path(), &g).unwrap();
        let (account, proof) = store.account_proof(&key.public().address()).unwrap();
        let value = proof
            .verify(
                &store.state_root(),
                &state::account_key(&key.public().address()),
            )
            .unwrap();
        assert_eq!(value, account.as_ref().map(state::account_value));
        let (absent, proof) = store.account_proof(&Address([3; 20])).unwrap();
        assert_eq!(absent, None);
        assert_eq!(
            proof.verify(&store.state_root(), &state::account_key(&Address([3; 20]))),
            Ok(None)
        );
    }

    #[test]
    fn in_memory_tree_levels_match_disk_after_commit_and_revert() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<Keypair> = (0..40u8).map(|i| Keypair::from_secret(&[i; 32])).collect();
        let funded: Vec<_> = keys
            .iter()
            .map(|k| (k.public().address(), Amount(1_000)))
            .collect();
        let g = Genesis::local(
            EngineKind::HotStuff,
            &[keys[0].public()],
            &funded,
            TimestampMs(1),
        );
        let mut store = Store::open(dir.path(), &g).unwrap();
        let assert_cache_is_disk = |store: &mut Store, after: &str| {
            let cached = store.upper_tree.read().unwrap().clone();
            store.load_upper_tree().unwrap();
            let disk = store.upper_tree.read().unwrap().clone();
            assert!(disk.0.iter().any(Option::is_some));
            assert!(
                cached == disk,
                "cached tree levels differ from disk after {after}"
            );
        };
        assert_cache_is_disk(&mut store, "genesis");
        let txs: Vec<_> = keys[..30]
            .iter()
            .enumerate()
            .map(|(i, k)| {
                Transaction::new_signed(
                    store.chain_id(),
                    k,
                    Nonce(0),
                    Amount(1),
                    Payload::Transfer {
                        to: Address([i as u8; 20]),
                        amount: Amount(5),
                    },
                )
            })
            .collect();
        let mut template = transfer_block(&store, &keys[0], 1);
        template.transactions = txs;
        let prepared = store
            .complete_block(template, Amount(0), SigCheck::Batch)
            .unwrap();
        store.commit(&prepared).unwrap();
        assert_cache_is_disk(&mut store, "commit");
        store.revert_tip().unwrap();
        assert_cache_is_disk(&mut store, "revert");
    }

    #[test]
    fn every_upper_tree_position_has_its_own_slot() {
        let mut seen = vec![false; UpperTree::SLOTS];
        for depth in 0..TREE_CACHED_DEPTHS {
            for nibbles in 0..16u32.pow(depth as u32) {
                let mut prefix = [0u8; 32];
                let high = (nibbles << (16 - 4 * depth as u32)) as u16;
                prefix[..2].copy_from_slice(&high.to_be_bytes());
                let at = Position {
                    depth,
                    prefix: Hash(prefix),
                };
                let slot = UpperTree::slot(&at).expect("upper position");
                assert!(!seen[slot], "slot {slot} given twice");
                seen[slot] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
        let below = Position {
            depth: TREE_CACHED_DEPTHS,
            prefix: Hash::ZERO,
        };
        assert_eq!(UpperTree::slot(&below), None);
        let stray_nibble = Position {
            depth: 1,
            prefix: Hash([0x11; 32]),
        };
        assert_eq!(UpperTree::slot(&stray_nibble), None);
    }

    #[test]
    fn blocks_past_an_upgrade_this_binary_lacks_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let (mut g, key) = genesis();
        g.upgrades = vec![crate::genesis::Upgrade {
            name: "from-the-future".into(),
            height: Height(2),
            protocol_version: ProtocolVersion(2),
        }];
        let store = Store::open(dir.path(), &g).unwrap();
        let block = transfer_block(&store, &key, 1);
        store.apply(block, Amount(0), SigCheck::Batch).unwrap();
        let mut template = transfer_block_template(&store, &key, 1);
        template.header.protocol_version = ProtocolVersion(2);
        let err = store
            .complete_block(template, Amount(0), SigCheck::Batch)
            .unwrap_err();
        assert!(matches!(err, ApplyError::UpgradeMissing { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains("from-the-future"), "{message}");
        assert!(message.contains("stops at height 1"), "{message}");
        assert_eq!(store.tip().height, Height(1));
    }

    /// One binary crosses both shipped upgrades from genesis: a free transfer is valid
    /// until `fee-floor` and refused from its height; a memo transfer is refused until
    /// `memo` and valid from its height; each block carries its height's version.
    #[test]
    fn one_store_applies_each_height_under_the_rules_of_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let (mut g, key) = genesis();
        g.upgrades = vec![
            crate::genesis::Upgrade {
                name: "fee-floor".into(),
                height: Height(3),
                protocol_version: ProtocolVersion(2),
            },
            crate::genesis::Upgrade {
                name: "memo".into(),
                height: Height(5),
                protocol_version: ProtocolVersion(3),
            },
        ];
        let store = Store::open(dir.path(), &g).unwrap();
        let block_of = |fee: u64, memo: Option<&str>| {
            let mut template = transfer_block_template(&store, &key, 1);
            let tx = &template.transactions[0];
            let payload = match memo {
                None => tx.payload.clone(),
                Some(m) => Payload::TransferWithMemo {
                    to: Address([5; 20]),
                    amount: Amount(1),
                    memo: m.into(),
                },
            };
            template.transactions[0] =
                Transaction::new_signed(store.chain_id(), &key, tx.nonce, Amount(fee), payload);
            store.complete_block(template, Amount(0), SigCheck::Batch)
        };
        let rule_error = |r: Result<PreparedBlock, ApplyError>| match r {
            Err(ApplyError::Exec(ExecError::Tx {
                error: TxError::Rule(e),
                ..
            })) => e,
            other => panic!("expected a rule error, got {other:?}"),
        };
        for height in 1..=2 {
            let b = block_of(0, None).unwrap();
            assert_eq!(b.block.header.protocol_version, ProtocolVersion(1));
            store.commit(&b).unwrap();
            assert_eq!(store.tip().height, Height(height));
        }
        assert!(matches!(
            rule_error(block_of(0, None)),
            RuleError::FeeBelowMinimum { .. }
        ));
        let b = block_of(1, None).unwrap();
        assert_eq!(b.block.header.protocol_version, ProtocolVersion(2));
        store.commit(&b).unwrap();
        assert!(matches!(
            rule_error(block_of(1, Some("too early"))),
            RuleError::KindNotValid { .. }
        ));
        store.commit(&block_of(1, None).unwrap()).unwrap();
        let b = block_of(1, Some("invoice 7")).unwrap();
        assert_eq!(b.block.header.protocol_version, ProtocolVersion(3));
        store.commit(&b).unwrap();
        assert_eq!(store.tip().height, Height(5));
        // A block of the old version at an upgraded height is refused for its version.
        let mut stale = transfer_block_template(&store, &key, 1);
        stale.transactions[0] = Transaction::new_signed(
            store.chain_id(),
            &key,
            stale.transactions[0].nonce,
            Amount(1),
            stale.transactions[0].payload.clone(),
        );
        let mut block = store
            .complete_block(stale, Amount(0), SigCheck::Batch)
            .unwrap()
            .block;
        block.header.protocol_version = ProtocolVersion(2);
        assert!(matches!(
            store.apply(block, Amount(0), SigCheck::Batch),
            Err(ApplyError::WrongProtocolVersion { .. })
        ));
    }

    #[test]
    fn block_with_the_wrong_protocol_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (g, key) = genesis();
        let store = Store::open(dir.path(), &g).unwrap();
        let mut block = transfer_block(&store, &key, 1);
        block.header.protocol_version = ProtocolVersion(7);
        let err = store.apply(block, Amount(0), SigCheck::Batch).unwrap_err();
        assert!(
            matches!(
                err,
                ApplyError::WrongProtocolVersion {
                    expected: ProtocolVersion(1),
                    found: ProtocolVersion(7),
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn blocks_built_on_uncommitted_parents_commit_to_the_same_state_as_in_order() {
        let (g, key) = genesis();
        let speculative_dir = tempfile::tempdir().unwrap();
        let in_order_dir = tempfile::tempdir().unwrap();
        let speculative = Store::open(speculative_dir.path(), &g).unwrap();
        let in_order = Store::open(in_order_dir.path(), &g).unwrap();

        let first = speculative
            .complete_block(
                transfer_block_template(&speculative, &key, 10),
                Amount(0),
                SigCheck::Batch,
            )
            .unwrap();
        // The second transfer spends nonce 1, which only exists in the uncommitted first block.
        let mut template = transfer_block_template(&speculative, &key, 20);
        let tx = &template.transactions[0];
        template.transactions[0] =
            Transaction::new_signed(&tx.chain_id, &key, Nonce(1), tx.fee, tx.payload.clone());
        let second = speculative
            .complete_block_on(&[&first], template, Amount(0), SigCheck::Batch)
            .unwrap();
        // A peer checks the second block on top of the same uncommitted first one.
        let checked = speculative
            .prepare_on(&[&first], second.block.clone(), Amount(0), SigCheck::Batch)
            .unwrap();
        assert_eq!(checked.resulting_tip(), second.resulting_tip());
        assert!(matches!(
            speculative.commit(&second),
            Err(StoreError::NotNext { .. })
        ));
        speculative.commit(&first).unwrap();
        speculative.commit(&second).unwrap();

        in_order
            .apply(first.block.clone(), Amount(0), SigCheck::Batch)
            .unwrap();
        in_order
            .apply(second.block.clone(), Amount(0), SigCheck::Batch)
            .unwrap();
        assert_eq!(speculative.tip(), in_order.tip());
        assert_eq!(
            speculative
                .account(&Address([5; 20]))
                .unwrap()
                .unwrap()
                .balance,
            Amount(30)
        );
    }
}
