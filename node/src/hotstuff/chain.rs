//! The ledger side of the HotStuff driver: what the engine cannot do because it does no I/O.
//!
//! - Every block the engine accepts is kept durably (`Effect::StoreBlock`); one it may vote
//!   for is executed on its uncommitted ancestors first (`Effect::Validate`): a leader that
//!   proposes a bad state root, an unaffordable transfer or a timestamp from the future gets
//!   no vote from here.
//! - A leader's proposal is built on its (possibly uncommitted) parent from the mempool,
//!   keeping only transactions that execute on top of the ancestors' state.
//! - A committed block is written with the QC that certifies it in one batch, so the
//!   engine can always be restarted from the store alone.
//! - Requests for committed blocks older than what the engine keeps are served from the
//!   store, so a node can catch up from any height.
//!
//! Owns: the consensus column's keys (below) and the executed-but-uncommitted blocks. Never:
//! decides anything about consensus; it only judges blocks and reports.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cairn_consensus::hotstuff::{QC_BYTES_MAX, TREE_BLOCKS_MAX};
use cairn_ledger::block::{BLOCK_BYTES_MAX, Block, HEADER_BYTES_MAX, QuorumCert, Seal};
use cairn_ledger::codec;
use cairn_ledger::state::SigCheck;
use cairn_ledger::store::{
    ApplyError, ConsensusWrites, Durability, KeyValue, PreparedBlock, Store, StoreError,
};
use cairn_ledger::tx::Transaction;
use cairn_ledger::{Address, Amount, Hash, Height, TimestampMs};

use crate::host::payload::{self, BlockLimits};
use crate::host::upgrade::NotScheduledHere;
use crate::txpool::mempool::{Identified, Mempool};

/// The engine's safety state (`Effect::Persist`).
pub const SAFETY_KEY: &[u8] = b"hotstuff/safety";
/// The QC certifying the committed tip, written in the tip's own batch.
pub const TIP_QC_KEY: &[u8] = b"hotstuff/tip_qc";
/// Uncommitted blocks (`Effect::StoreBlock`), keyed by this prefix and the block id.
pub const BLOCK_PREFIX: &[u8] = b"hotstuff/block/";
/// Committed blocks handed to a restarted engine to serve lagging peers from memory; older
/// ones are served from the store (see [`super::sync_serve`]).
pub const RESTART_HISTORY_BLOCKS: u64 = 128;
/// How far ahead of this node's clock a proposal's timestamp may be and still get a vote.
pub const FUTURE_TIMESTAMP_MS_MAX: u64 = 15_000;

/// What the store holds for a restarting engine; the driver's setup decodes the safety
/// state for its engine (`None`: start from the engine's initial state).
#[derive(Debug)]
pub struct Stored {
    pub safety: Option<Vec<u8>>,
    pub committed: Option<(Block, QuorumCert)>,
    pub history: Vec<Block>,
    pub blocks: Vec<Block>,
}

/// Why a block cannot be executed here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub reason: String,
    /// The node cannot go on (an upgrade this binary lacks, a failing disk), as opposed to a
    /// bad block this node merely refuses to vote for.
    pub halt: bool,
    /// Refused only for a timestamp ahead of this node's clock: either clock may be wrong,
    /// so it says nothing about the proposer's honesty.
    pub ahead_of_clock: bool,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl Invalid {
    fn refuse(reason: impl Into<String>) -> Invalid {
        Invalid {
            reason: reason.into(),
            halt: false,
            ahead_of_clock: false,
        }
    }

    fn from_apply(e: ApplyError) -> Invalid {
        // A missing upgrade is not this process's failure: the node stays up, serving reads,
        // and says why the chain stopped (see `Driver::check_upgrade`).
        let halt = matches!(e, ApplyError::Store(_));
        Invalid {
            reason: e.to_string(),
            halt,
            ahead_of_clock: false,
        }
    }

    fn from_store(e: StoreError) -> Invalid {
        Invalid {
            reason: e.to_string(),
            halt: true,
            ahead_of_clock: false,
        }
    }
}

struct Entry {
    block: Block,
    exec: Option<Result<PreparedBlock, Invalid>>,
    /// Failed its last `validate` (execution or timestamp): no vote of this node may name it.
    refused: bool,
}

/// Executed and stored uncommitted blocks over the store.
pub struct Chain {
    store: Arc<Store>,
    entries: HashMap<Hash, Entry>,
    /// Entries that have a `BLOCK_PREFIX` key on disk, or in `unsynced` on their way there.
    stored: HashSet<Hash>,
    /// Blocks kept (`Effect::StoreBlock`) but not yet written: they go to disk with the safety
    /// state that usually follows them, in one synced batch, and always before anything
    /// leaves the driver ([`Chain::sync`]).
    unsynced: Vec<KeyValue>,
    limits: BlockLimits,
    /// Set once the network commits a block under another protocol version than this
    /// node's schedule gives its height; nothing commits here from then on.
    not_scheduled_here: Option<NotScheduledHere>,
}

/// What to do with a store that has blocks but no safety state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissingSafetyState {
    /// A validator refuses to start: its key may have signed above anything the store
    /// shows, and a fresh state would let it sign those rounds again.
    Refuse,
    /// A full node (it signs nothing), or a validator started with
    /// `--unsafe-start-without-safety-state`: start from a fresh state, which the engine
    /// raises to the highest round in the store.
    Allow,
}

/// A block this node committed, for the mempool and the metrics.
pub struct Committed {
    pub block: Block,
    pub hash: Hash,
    /// The ids of `block.transactions`, in order (the store computed them executing it).
    pub tx_ids: Vec<Hash>,
}

impl Chain {
    pub fn new(store: Arc<Store>, block_txs_max: u32, block_bytes_max: u32) -> Chain {
        Chain {
            store,
            entries: HashMap::new(),
            stored: HashSet::new(),
            unsynced: Vec::new(),
            limits: BlockLimits::new(block_txs_max, block_bytes_max),
            not_scheduled_here: None,
        }
    }

    /// Why commits stopped, if the network committed a block under another protocol
    /// version than this node's schedule gives it.
    pub fn not_scheduled_here(&self) -> Option<NotScheduledHere> {
        self.not_scheduled_here
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// What the engine needs to resume from this store, or `None` for a node that has never
    /// run. Stored blocks the store has since committed past are deleted here. A store with
    /// blocks but no safety state is an error unless `missing_safety` allows it.
    pub fn restart_state(
        &mut self,
        missing_safety: MissingSafetyState,
    ) -> Result<Option<Stored>, String> {
        let store = Arc::clone(&self.store);
        let tip = store.tip();
        let safety = store.get_consensus(SAFETY_KEY).map_err(|e| e.to_string())?;
        let entries = store
            .consensus_entries(BLOCK_PREFIX, TREE_BLOCKS_MAX)
            .map_err(|e| e.to_string())?;
        let mut blocks = Vec::new();
        let mut obsolete = Vec::new();
        for (key, bytes) in entries {
            let block: Block =
                codec::decode(&bytes, BLOCK_BYTES_MAX + HEADER_BYTES_MAX, "stored block")
                    .map_err(|e| format!("a stored uncommitted block is unreadable: {e}"))?;
            if block.header.height <= tip.height {
                obsolete.push(key);
            } else {
                blocks.push(block);
            }
        }
        store
            .delete_consensus(&obsolete)
            .map_err(|e| e.to_string())?;
        if safety.is_none() && tip.height == Height(0) && blocks.is_empty() {
            return Ok(None);
        }
        if safety.is_none() && missing_safety == MissingSafetyState::Refuse {
            return Err(format!(
                "this validator's store holds blocks (committed up to height {}, {} more \
                 uncommitted) but no consensus safety state, the record of the last rounds \
                 this key signed: the key may have signed above them on another machine or \
                 before a restore, and starting from scratch could sign those rounds twice. \
                 Move a validator by stopping the old node for good and copying its whole \
                 home, data/ included. Only if you are sure this key never signed above the \
                 highest block in this store (a brand-new key, or its old machine stopped for \
                 good before this store's last block), start once with `cairn node run \
                 --unsafe-start-without-safety-state`; see README 'Moving a validator safely'",
                tip.height,
                blocks.len()
            ));
        }
        let committed = if tip.height == Height(0) {
            None
        } else {
            let block = store
                .block(&tip.hash)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("the tip block {} is missing from the store", tip.hash))?;
            let qc_bytes = store
                .get_consensus(TIP_QC_KEY)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    format!(
                        "the store has blocks up to height {} but no certificate for its tip; \
                         it was not written by a BFT node",
                        tip.height
                    )
                })?;
            let qc: QuorumCert = codec::decode(&qc_bytes, QC_BYTES_MAX, "tip QC")
                .map_err(|e| format!("the stored tip certificate is unreadable: {e}"))?;
            Some((block, qc))
        };
        let mut history = Vec::new();
        let from = tip.height.0.saturating_sub(RESTART_HISTORY_BLOCKS).max(1);
        for h in from..tip.height.0 {
            let block = store
                .block_at(Height(h))
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("committed block {h} is missing from the store"))?;
            history.push(block);
        }
        for block in &blocks {
            let id = block.hash();
            self.stored.insert(id);
            self.entries.insert(
                id,
                Entry {
                    block: block.clone(),
                    exec: None,
                    refused: false,
                },
            );
        }
        Ok(Some(Stored {
            safety,
            committed,
            history,
            blocks,
        }))
    }

    /// Keeps `block` durably (`Effect::StoreBlock`): on disk at the next [`Chain::sync`].
    pub fn store_block(&mut self, block: &Block) -> Result<Hash, Invalid> {
        let id = block.hash();
        if !self.stored.contains(&id) {
            let mut key = BLOCK_PREFIX.to_vec();
            key.extend_from_slice(&id.0);
            self.unsynced.push((key, codec::encode(block)));
            self.stored.insert(id);
        }
        self.entries.entry(id).or_insert_with(|| Entry {
            block: block.clone(),
            exec: None,
            refused: false,
        });
        Ok(id)
    }

    /// Writes the blocks kept since the last call, and `also` (the safety state), in one
    /// synced batch. A proposal costs a follower one fsync before its vote instead of two.
    pub fn sync(&mut self, also: Option<KeyValue>) -> Result<(), StoreError> {
        if self.unsynced.is_empty() && also.is_none() {
            return Ok(());
        }
        let mut entries = std::mem::take(&mut self.unsynced);
        entries.extend(also);
        self.store.put_consensus_all(&entries)
    }

    /// Executes `id` (and any unexecuted ancestors) on the committed state, and checks its
    /// timestamp against its parent's and this node's clock `now`. A block that fails is
    /// remembered as [`Chain::refused`].
    ///
    /// `verified` says which of a block's transaction ids this node has already checked the
    /// signatures of (those in its mempool): a transaction id covers its signature and every
    /// signed field, so only the block's other transactions need their signatures checked.
    pub fn validate(
        &mut self,
        id: &Hash,
        now: TimestampMs,
        verified: Verified,
    ) -> Result<(), Invalid> {
        let verdict = self.check(id, now, verified);
        if let Some(e) = self.entries.get_mut(id) {
            e.refused = verdict.is_err();
        }
        verdict
    }

    /// Deletes stored blocks the engine will never need (`Effect::DiscardBlocks`).
    pub fn discard(&mut self, ids: &[Hash]) -> Result<(), StoreError> {
        let keys: Vec<Vec<u8>> = ids
            .iter()
            .filter(|id| self.stored.contains(*id))
            .map(|id| {
                let mut key = BLOCK_PREFIX.to_vec();
                key.extend_from_slice(&id.0);
                key
            })
            .collect();
        // A block still waiting in `unsynced` is written by the next sync; the engine
        // discards only at start, before anything new is stored.
        debug_assert!(self.unsynced.is_empty());
        self.store.delete_consensus(&keys)?;
        for id in ids {
            self.stored.remove(id);
            self.entries.remove(id);
        }
        Ok(())
    }

    /// Whether `id` failed [`Chain::validate`] here.
    pub fn refused(&self, id: &Hash) -> bool {
        self.entries.get(id).is_some_and(|e| e.refused)
    }

    fn check(&mut self, id: &Hash, now: TimestampMs, verified: Verified) -> Result<(), Invalid> {
        self.execute_with(id, Some(verified))?;
        let block = &self.entries[id].block;
        let parent_time = self.timestamp_of(&block.header.parent)?;
        let time = block.header.timestamp;
        if time <= parent_time {
            return Err(Invalid::refuse(format!(
                "block {id} has timestamp {time}, not after its parent's {parent_time}"
            )));
        }
        if time.0 > now.0.saturating_add(FUTURE_TIMESTAMP_MS_MAX) {
            return Err(Invalid {
                ahead_of_clock: true,
                ..Invalid::refuse(format!(
                    "block {id} has timestamp {time}, more than {FUTURE_TIMESTAMP_MS_MAX} ms \
                     ahead of this node's clock ({now})"
                ))
            });
        }
        Ok(())
    }

    /// The timestamp of a committed or known uncommitted block.
    pub fn timestamp(&self, id: &Hash) -> Option<TimestampMs> {
        self.timestamp_of(id).ok()
    }

    fn timestamp_of(&self, id: &Hash) -> Result<TimestampMs, Invalid> {
        if let Some(e) = self.entries.get(id) {
            return Ok(e.block.header.timestamp);
        }
        match self.store.header(id) {
            Ok(Some(h)) => Ok(h.timestamp),
            Ok(None) => Err(Invalid::refuse(format!("block {id} is unknown"))),
            Err(e) => Err(Invalid::from_store(e)),
        }
    }

    /// The uncommitted chain from the store's tip to `id`, oldest first (empty when `id` is
    /// the tip).
    fn path_to(&self, id: &Hash) -> Result<Vec<Hash>, Invalid> {
        let tip = self.store.tip();
        let mut path = Vec::new();
        let mut cur = *id;
        while cur != tip.hash {
            let Some(e) = self.entries.get(&cur) else {
                return Err(Invalid::refuse(format!(
                    "block {cur} is neither committed at the tip nor known uncommitted"
                )));
            };
            if e.block.header.height <= tip.height {
                return Err(Invalid::refuse(format!(
                    "block {cur} at height {} does not extend the committed tip at height {}",
                    e.block.header.height, tip.height
                )));
            }
            path.push(cur);
            cur = e.block.header.parent;
        }
        path.reverse();
        Ok(path)
    }

    fn prepared(&self, id: &Hash) -> &PreparedBlock {
        match &self.entries[id].exec {
            Some(Ok(p)) => p,
            _ => unreachable!("only executed blocks are used as ancestors"),
        }
    }

    fn execute(&mut self, id: &Hash) -> Result<(), Invalid> {
        self.execute_with(id, None)
    }

    /// Executes `id` and any unexecuted ancestors. With `verified`, signatures of the
    /// transactions it lists are not checked again (see [`Chain::validate`]).
    fn execute_with(&mut self, id: &Hash, verified: Option<Verified>) -> Result<(), Invalid> {
        let path = self.path_to(id)?;
        for (i, at) in path.iter().enumerate() {
            match &self.entries[at].exec {
                Some(Ok(_)) => continue,
                Some(Err(e)) if at == id => return Err(e.clone()),
                Some(Err(e)) => {
                    return Err(Invalid {
                        reason: format!("its ancestor {at} is invalid: {e}"),
                        halt: e.halt,
                        ahead_of_clock: false,
                    });
                }
                None => {}
            }
            let result = {
                let ancestors: Vec<&PreparedBlock> =
                    path[..i].iter().map(|a| self.prepared(a)).collect();
                let block = self.entries[at].block.clone();
                signatures_left(&block, verified).and_then(|sig_check| {
                    self.store
                        .prepare_on(&ancestors, block, Amount(0), sig_check)
                        .map_err(Invalid::from_apply)
                })
            };
            let failed = result.as_ref().err().cloned();
            if let Some(e) = self.entries.get_mut(at) {
                e.exec = Some(result);
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
        Ok(())
    }

    /// This node's proposal: a block at `height` on `parent`, sealed with `seal`, holding
    /// what the mempool offers that will execute on top of the uncommitted ancestors,
    /// executed and kept here.
    pub fn build(
        &mut self,
        mempool: &Mempool,
        height: Height,
        parent: Hash,
        seal: Seal,
        proposer: Address,
        now: TimestampMs,
    ) -> Result<Block, Invalid> {
        self.execute(&parent)?;
        let path = self.path_to(&parent)?;
        let parent_time = self.timestamp_of(&parent)?;
        let candidates = self.limits.reap(mempool);
        let transactions = {
            let ancestors: Vec<&PreparedBlock> = path.iter().map(|a| self.prepared(a)).collect();
            self.executable(&ancestors, height, candidates)?
        };
        let template = payload::template(
            height,
            parent,
            TimestampMs(now.0.max(parent_time.0 + 1)),
            proposer,
            seal,
            transactions,
        );
        let prepared = {
            let ancestors: Vec<&PreparedBlock> = path.iter().map(|a| self.prepared(a)).collect();
            // Signatures were checked when the mempool admitted each transaction.
            self.store
                .complete_block_on(&ancestors, template, Amount(0), SigCheck::Skip)
                .map_err(Invalid::from_apply)?
        };
        let header = &prepared.block.header;
        if header.height != height || header.parent != parent {
            return Err(Invalid::refuse(format!(
                "asked to build height {height} on {parent}, but the executed chain gives height \
                 {} on {}",
                header.height, header.parent
            )));
        }
        let block = prepared.block.clone();
        self.entries.insert(
            prepared.hash,
            Entry {
                block: block.clone(),
                exec: Some(Ok(prepared)),
                refused: false,
            },
        );
        Ok(block)
    }

    /// Keeps, in order, the candidates that are not already in an ancestor and that execute
    /// on top of the ancestors ([`payload::executable`]).
    fn executable(
        &self,
        ancestors: &[&PreparedBlock],
        height: Height,
        candidates: Vec<Identified>,
    ) -> Result<Vec<Transaction>, Invalid> {
        let included: HashSet<Hash> = ancestors
            .iter()
            .flat_map(|p| p.tx_ids().iter().copied())
            .collect();
        let fresh = candidates
            .into_iter()
            .filter(|c| included.is_empty() || !included.contains(&c.id()))
            .map(Identified::into_tx);
        let rules = self.store.schedule().rules_at(height);
        payload::executable(fresh, rules, |sender| {
            let account = self
                .store
                .account_on(ancestors, sender)
                .map_err(|e| Invalid {
                    reason: format!("reading account {sender}: {e}"),
                    halt: true,
                    ahead_of_clock: false,
                })?
                .unwrap_or_default();
            Ok((account.nonce, account.balance.0 as u128))
        })
    }

    /// Commits the engine's final `blocks` (lowest first); `qc` certifies the last. Each
    /// block is written with its certificate in one batch, and stored copies of blocks at or
    /// below its height are deleted in that batch. Stops before the first block that follows
    /// an upgrade this binary lacks, returning what it committed below it.
    pub fn commit(
        &mut self,
        blocks: Vec<Block>,
        qc: &QuorumCert,
    ) -> Result<Vec<Committed>, Invalid> {
        let certifying: Vec<QuorumCert> = blocks
            .iter()
            .skip(1)
            .map(|b| match b.header.seal.parent_cert() {
                Some(cert) => Ok(cert.clone()),
                None => Err(Invalid {
                    reason: format!("committed block {} carries no BFT seal", b.hash()),
                    halt: true,
                    ahead_of_clock: false,
                }),
            })
            .chain(std::iter::once(Ok(qc.clone())))
            .collect::<Result<_, _>>()?;
        let mut done = Vec::with_capacity(blocks.len());
        for (block, cert) in blocks.into_iter().zip(certifying) {
            let id = block.hash();
            let height = block.header.height;
            let found = block.header.protocol_version;
            let expected = self.store.schedule().version_at(height);
            if found != expected && self.store.schedule().missing_at(height).is_none() {
                // A quorum committed it under other rules than this node's schedule gives
                // the height: the schedules differ. Stop here rather than judge the chain
                // by rules nobody told this node to use; the driver says why.
                self.not_scheduled_here = Some(NotScheduledHere {
                    height,
                    found,
                    expected,
                });
                break;
            }
            self.entries.entry(id).or_insert(Entry {
                block,
                exec: None,
                refused: false,
            });
            if let Err(e) = self.execute(&id) {
                if self.store.schedule().missing_at(height).is_some() {
                    // The network went on past an upgrade this binary lacks: not this
                    // process's failure. Commit nothing from here; the driver says why and
                    // stays up serving reads.
                    break;
                }
                return Err(Invalid {
                    reason: format!(
                        "the network committed block {id} at height {height}, but this node \
                         cannot execute it: {e}"
                    ),
                    // A final block that does not execute here means this node cannot follow
                    // the chain: stopping beats diverging.
                    halt: true,
                    ahead_of_clock: false,
                });
            }
            let obsolete: Vec<Hash> = self
                .entries
                .iter()
                .filter(|(_, e)| e.block.header.height <= height)
                .map(|(h, _)| *h)
                .collect();
            let mut writes = ConsensusWrites {
                durability: Durability::WithNextSync,
                ..ConsensusWrites::default()
            };
            writes
                .puts
                .push((TIP_QC_KEY.to_vec(), codec::encode(&cert)));
            for h in obsolete.iter().filter(|h| self.stored.contains(h)) {
                let mut key = BLOCK_PREFIX.to_vec();
                key.extend_from_slice(&h.0);
                writes.deletes.push(key);
            }
            let prepared = self.prepared(&id);
            // Commits reach the ledger contiguous and lowest first: each on the tip.
            let tip = self.store.tip();
            assert_eq!(
                (height, self.entries[&id].block.header.parent),
                (tip.height.next(), tip.hash),
                "block {id} committed out of order"
            );
            self.store
                .commit_with(prepared, &writes)
                .map_err(Invalid::from_store)?;
            let tx_ids = prepared.tx_ids().to_vec();
            let entry = self.entries.remove(&id).expect("executed above");
            for h in &obsolete {
                self.entries.remove(h);
                self.stored.remove(h);
            }
            done.push(Committed {
                block: entry.block,
                hash: id,
                tx_ids,
            });
        }
        Ok(done)
    }

    /// Whether any uncommitted block from the tip to `id` carries transactions: then the
    /// next blocks are what commits them, and should not wait.
    pub fn uncommitted_txs_below(&self, id: &Hash) -> bool {
        self.path_to(id).is_ok_and(|path| {
            path.iter()
                .any(|h| !self.entries[h].block.transactions.is_empty())
        })
    }

    /// Uncommitted blocks known here (for status and tests).
    pub fn uncommitted(&self) -> usize {
        self.entries.len()
    }
}

/// Which of the given transaction ids this node has already checked the signatures of, one
/// answer per id: asked once per block, so the caller takes its lock once.
pub type Verified<'a> = &'a dyn Fn(&[Hash]) -> Vec<bool>;

/// Checks, in one batch, the signatures of the block's transactions that `verified` does not
/// vouch for, and says how the ledger should treat signatures when it executes the block.
fn signatures_left(block: &Block, verified: Option<Verified>) -> Result<SigCheck, Invalid> {
    let Some(verified) = verified else {
        return Ok(SigCheck::Batch);
    };
    let ids: Vec<Hash> = block.transactions.iter().map(Transaction::hash).collect();
    let (unchecked, unchecked_ids): (Vec<&Transaction>, Vec<Hash>) = block
        .transactions
        .iter()
        .zip(ids.iter().zip(verified(&ids)))
        .filter(|(_, (_, known))| !known)
        .map(|(tx, (id, _))| (tx, *id))
        .unzip();
    cairn_ledger::tx::verify_signatures(unchecked).map_err(|e| {
        Invalid::refuse(format!(
            "transaction {} has an invalid signature: {}",
            unchecked_ids[e.index], e.error
        ))
    })?;
    Ok(SigCheck::Skip)
}

#[cfg(test)]
mod signature_tests {
    use cairn_ledger::block::{BlockHeader, Seal};
    use cairn_ledger::crypto::Keypair;
    use cairn_ledger::tx::Payload;
    use cairn_ledger::{Nonce, ProtocolVersion};

    use super::*;

    fn transfer(key: &Keypair, nonce: u64) -> Transaction {
        Transaction::new_signed(
            "c",
            key,
            Nonce(nonce),
            Amount(1),
            Payload::Transfer {
                to: Address([3; 20]),
                amount: Amount(5),
            },
        )
    }

    fn block(txs: Vec<Transaction>) -> Block {
        Block {
            header: BlockHeader {
                height: Height(1),
                parent: Hash::ZERO,
                timestamp: TimestampMs(1),
                tx_root: Hash::ZERO,
                state_root: Hash::ZERO,
                proposer: Address([0; 20]),
                protocol_version: ProtocolVersion(1),
                seal: Seal::Genesis,
            },
            transactions: txs,
        }
    }

    #[test]
    fn only_transactions_not_verified_before_are_checked_and_a_tampered_copy_is_not_trusted() {
        let key = Keypair::from_secret(&[4; 32]);
        let good = transfer(&key, 0);
        let mut tampered = transfer(&key, 1);
        let verified: HashSet<Hash> = [good.hash(), tampered.hash()].into();
        // Same signature, another fee: another id, so the earlier check does not cover it.
        tampered.fee = Amount(2);
        let b = block(vec![good.clone(), tampered.clone()]);
        let known = |ids: &[Hash]| ids.iter().map(|h| verified.contains(h)).collect();
        let err = signatures_left(&b, Some(&known)).unwrap_err();
        assert!(err.reason.contains(&tampered.hash().to_string()), "{err}");
        assert!(!err.halt);

        let clean = block(vec![good.clone(), transfer(&key, 1)]);
        assert_eq!(
            signatures_left(&clean, Some(&known)).unwrap(),
            SigCheck::Skip
        );
        assert_eq!(
            signatures_left(&clean, Some(&|ids: &[Hash]| vec![false; ids.len()])).unwrap(),
            SigCheck::Skip,
            "checked here, in one batch"
        );
        assert_eq!(signatures_left(&b, None).unwrap(), SigCheck::Batch);
    }
}

#[cfg(test)]
mod schedule_tests {
    use cairn_ledger::block::{BlockHeader, QuorumCert, Seal};
    use cairn_ledger::crypto::Keypair;
    use cairn_ledger::genesis::{EngineKind, Genesis};
    use cairn_ledger::{ProtocolVersion, Round};

    use super::*;

    /// A quorum committed a block under protocol version 3 where this node's schedule says 1
    /// (the others appended an upgrade this node did not): nothing commits, nothing is
    /// executed, and the chain says why instead of failing the node.
    #[test]
    fn a_committed_block_under_another_version_than_the_schedule_stops_commits_here() {
        let dir = tempfile::tempdir().unwrap();
        let validator = Keypair::from_secret(&[1; 32]);
        let genesis = Genesis::local(
            EngineKind::HotStuff,
            &[validator.public()],
            &[],
            TimestampMs(1_700_000_000_000),
        );
        let store = Arc::new(Store::open(dir.path(), &genesis).unwrap());
        let tip = store.tip();
        let mut chain = Chain::new(Arc::clone(&store), 100, 1 << 20);
        let block = Block {
            header: BlockHeader {
                height: Height(1),
                parent: tip.hash,
                timestamp: TimestampMs(1_700_000_000_001),
                tx_root: Hash::ZERO,
                state_root: Hash::ZERO,
                proposer: validator.public().address(),
                protocol_version: ProtocolVersion(3),
                seal: Seal::HotStuff {
                    round: Round(1),
                    justify: QuorumCert {
                        round: Round(0),
                        block: tip.hash,
                        votes: Vec::new(),
                    },
                },
            },
            transactions: Vec::new(),
        };
        let qc = QuorumCert {
            round: Round(1),
            block: block.hash(),
            votes: Vec::new(),
        };
        let committed = chain.commit(vec![block], &qc).unwrap();
        assert!(committed.is_empty());
        assert_eq!(store.tip().height, Height(0));
        let stop = chain.not_scheduled_here().expect("the reason is kept");
        assert_eq!(
            (stop.height, stop.found, stop.expected),
            (Height(1), ProtocolVersion(3), ProtocolVersion(1))
        );
        assert!(
            stop.message(Height(0)).contains("upgrade schedule --late"),
            "{}",
            stop.message(Height(0))
        );
    }
}
