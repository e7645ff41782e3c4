//! What goes into a block this node makes, whatever the engine: how much of the mempool fits
//! in one block, which of those transactions execute in order on the parent's state, and the
//! unsealed header around them.
//!
//! Owns: the selection rule and the block template. Never: executes, seals or signs a block
//! (the store fills in the roots; each engine seals), and never reads the clock (the caller
//! passes the timestamp).

use std::collections::HashMap;

use cairn_ledger::block::{BLOCK_BYTES_MAX, Block, BlockHeader, HEADER_BYTES_MAX, Seal};
use cairn_ledger::rules::Rules;
use cairn_ledger::tx::Transaction;
use cairn_ledger::{Address, Hash, Height, Nonce, ProtocolVersion, TimestampMs};

use crate::txpool::mempool::{Identified, Mempool};

/// Room left in a block for its header and encoding overhead when filling it from the pool.
pub const BLOCK_OVERHEAD_BYTES: usize = HEADER_BYTES_MAX;

/// How many transactions and bytes one block may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLimits {
    pub txs_max: usize,
    pub bytes_max: usize,
}

impl BlockLimits {
    /// The genesis limits, never above what the ledger accepts.
    pub fn new(txs_max: u32, bytes_max: u32) -> BlockLimits {
        BlockLimits {
            txs_max: txs_max as usize,
            bytes_max: (bytes_max as usize).min(BLOCK_BYTES_MAX),
        }
    }

    /// The pool's candidates for one block, in the pool's order, with room for the header.
    pub fn reap(&self, pool: &Mempool) -> Vec<Identified> {
        pool.reap(
            self.txs_max,
            self.bytes_max.saturating_sub(BLOCK_OVERHEAD_BYTES),
        )
    }
}

/// Keeps, in order, the candidates valid under `rules` (those of the block's height: the pool
/// admitted them under the rules of the height after the committed tip, which an upgrade
/// may change within a pipeline of uncommitted blocks or across a reorganisation) whose nonce
/// is their sender's next and whose amount and fee their sender can still pay. `spendable`
/// reads a sender's state on the parent: its next nonce and what it may spend (each engine
/// knows which state, and what is locked).
pub fn executable<E>(
    candidates: impl IntoIterator<Item = Transaction>,
    rules: &Rules,
    mut spendable: impl FnMut(&Address) -> Result<(Nonce, u128), E>,
) -> Result<Vec<Transaction>, E> {
    let candidates = candidates.into_iter();
    let mut senders: HashMap<Address, (Nonce, u128)> = HashMap::new();
    let mut out = Vec::with_capacity(candidates.size_hint().0);
    for tx in candidates {
        if rules.check(&tx).is_err() {
            continue;
        }
        let sender = tx.sender_address();
        let (next, left) = match senders.get(&sender) {
            Some(s) => *s,
            None => spendable(&sender)?,
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

/// A block to be completed by the store (roots and protocol version) and sealed by its
/// engine: `seal` carries what the engine has so far (a round and QC, or bits and nonce 0).
pub fn template(
    height: Height,
    parent: Hash,
    timestamp: TimestampMs,
    proposer: Address,
    seal: Seal,
    transactions: Vec<Transaction>,
) -> Block {
    Block {
        header: BlockHeader {
            height,
            parent,
            timestamp,
            tx_root: Hash::ZERO,
            state_root: Hash::ZERO,
            proposer,
            protocol_version: ProtocolVersion(0),
            seal,
        },
        transactions,
    }
}
