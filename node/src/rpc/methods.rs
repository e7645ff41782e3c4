//! The JSON-RPC methods: what each takes and returns. Field names are the ones
//! `cairn status`/`cairn query` and scripts rely on (see DESIGN.md, "Command line"); amounts
//! are integers in the smallest unit, hashes, keys and addresses lowercase hex.
//!
//! Reads the store and the mempool; the only write is mempool admission. Never writes the
//! store and never holds the mempool lock while reading a block.

use cairn_ledger::block::Block;
use cairn_ledger::tx::{TX_BYTES_MAX, Transaction};
use cairn_ledger::{Address, Hash, Height};
use serde_json::{Value, json};

use super::RpcState;
use super::envelope::{Params, RpcError, truncate};

/// Every method this server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    SubmitTx,
    Account,
    Block,
    Tx,
    Status,
    Mempool,
    Validators,
}

const ALL: [Method; 7] = [
    Method::SubmitTx,
    Method::Account,
    Method::Block,
    Method::Tx,
    Method::Status,
    Method::Mempool,
    Method::Validators,
];

/// `submit_tx`'s modes: admit to the mempool and return, or (later) wait for the commit.
const MODE_MEMPOOL: &str = "mempool";
const MODE_COMMIT: &str = "commit";

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::SubmitTx => "submit_tx",
            Method::Account => "account",
            Method::Block => "block",
            Method::Tx => "tx",
            Method::Status => "status",
            Method::Mempool => "mempool",
            Method::Validators => "validators",
        }
    }

    pub fn from_name(name: &str) -> Option<Method> {
        ALL.into_iter().find(|m| m.name() == name)
    }

    /// All method names, for error messages.
    pub fn names() -> String {
        ALL.map(Method::name).join(", ")
    }

    /// Param names, in positional order.
    pub fn params(self) -> &'static [&'static str] {
        match self {
            Method::SubmitTx => &["tx", "mode"],
            Method::Account => &["address"],
            Method::Block => &["height", "hash"],
            Method::Tx => &["hash"],
            Method::Status | Method::Mempool | Method::Validators => &[],
        }
    }

    /// Adjusts positional params before binding: `block` takes one value, a height (number)
    /// or a hash (string), as `cairn query block HEIGHT|HASH` does.
    pub(super) fn positional(self, mut values: Vec<Value>) -> Vec<Value> {
        if self == Method::Block && values.len() == 1 && values[0].is_string() {
            values.insert(0, Value::Null);
        }
        values
    }

    pub(super) fn call(self, state: &RpcState, p: &Params) -> Result<Value, RpcError> {
        match self {
            Method::SubmitTx => submit_tx(state, p),
            Method::Account => account(state, p),
            Method::Block => block(state, p),
            Method::Tx => tx(state, p),
            Method::Status => status(state),
            Method::Mempool => mempool(state),
            Method::Validators => Ok(validators(state)),
        }
    }
}

fn submit_tx(state: &RpcState, p: &Params) -> Result<Value, RpcError> {
    let hex_tx = p.required_str("tx")?;
    match p.str("mode")?.unwrap_or(MODE_MEMPOOL) {
        MODE_MEMPOOL => {}
        MODE_COMMIT => {
            return Err(RpcError::NotSupported {
                what: format!("submit_tx mode {MODE_COMMIT:?} (use {MODE_MEMPOOL:?})"),
            });
        }
        other => {
            return Err(RpcError::invalid_param(
                "mode",
                format!(
                    "{:?} is not a mode; expected {MODE_MEMPOOL:?} or {MODE_COMMIT:?}",
                    truncate(other)
                ),
            ));
        }
    }
    let bytes = decode_hex("tx", hex_tx, TX_BYTES_MAX).inspect_err(|_| {
        state.metrics.reject(REASON_MALFORMED);
    })?;
    let tx = Transaction::decode(&bytes).map_err(|e| {
        state.metrics.reject(REASON_MALFORMED);
        RpcError::invalid_param("tx", e.to_string())
    })?;
    let admitted = {
        let mut pool = lock_mempool(state)?;
        let admitted = pool.insert(tx, &*state.store);
        state.set_mempool_gauges(&pool);
        admitted
    };
    match admitted {
        Ok(hash) => Ok(json!({ "hash": hash })),
        Err(rejection) => {
            state.metrics.reject(rejection.reason());
            Err(rejection.into())
        }
    }
}

/// The `txs_rejected_total` reason for bytes that are not a transaction at all (the
/// mempool's own reasons cover the rest).
const REASON_MALFORMED: &str = "malformed";

fn account(state: &RpcState, p: &Params) -> Result<Value, RpcError> {
    let address: Address = parse_hex_param(p, "address")?;
    let account = state.store.account(&address)?.unwrap_or_default();
    Ok(json!({
        "address": address,
        "balance": account.balance.0,
        "nonce": account.nonce.0,
        "stake": account.stake.0,
    }))
}

fn block(state: &RpcState, p: &Params) -> Result<Value, RpcError> {
    let height = p.u64("height")?;
    let hash = match p.get("hash") {
        Some(_) => Some(parse_hex_param::<Hash>(p, "hash")?),
        None => None,
    };
    let block = match (height, hash) {
        (Some(_), Some(_)) => {
            return Err(RpcError::invalid_param(
                "hash",
                "give `height` or `hash`, not both",
            ));
        }
        (Some(h), None) => state
            .store
            .block_at(Height(h))?
            .ok_or_else(|| RpcError::NotFound {
                what: "block at height",
                key: h.to_string(),
            })?,
        (None, Some(hash)) => state
            .store
            .block(&hash)?
            .ok_or_else(|| RpcError::NotFound {
                what: "block",
                key: hash.to_string(),
            })?,
        // Neither: the tip, which always exists (block 0 is written when the store opens).
        (None, None) => {
            let tip = state.store.tip();
            state
                .store
                .block(&tip.hash)?
                .ok_or_else(|| RpcError::Internal(format!("tip block {} is missing", tip.hash)))?
        }
    };
    Ok(block_json(&block))
}

fn block_json(block: &Block) -> Value {
    let h = &block.header;
    let transactions: Vec<Hash> = block.transactions.iter().map(Transaction::hash).collect();
    json!({
        "height": h.height.0,
        "hash": block.hash(),
        "parent": h.parent,
        "timestamp": h.timestamp.0,
        "state_root": h.state_root,
        "tx_root": h.tx_root,
        "proposer": h.proposer,
        "protocol_version": h.protocol_version.0,
        "transactions": transactions,
    })
}

fn tx(state: &RpcState, p: &Params) -> Result<Value, RpcError> {
    let hash: Hash = parse_hex_param(p, "hash")?;
    let Some(location) = state.store.tx_location(&hash)? else {
        if lock_mempool(state)?.contains(&hash) {
            return Ok(json!({ "hash": hash, "status": "pending" }));
        }
        return Err(RpcError::NotFound {
            what: "transaction",
            key: hash.to_string(),
        });
    };
    // The index and the block are written in one batch, so a miss here is corruption.
    let corrupt = |what: &str| {
        RpcError::Internal(format!(
            "transaction {hash} is indexed at height {} index {} but its {what} is missing",
            location.height, location.index
        ))
    };
    let block = state
        .store
        .block(&location.block)?
        .ok_or_else(|| corrupt("block"))?;
    let index = location.index as usize;
    let tx = block
        .transactions
        .get(index)
        .ok_or_else(|| corrupt("transaction"))?;
    let receipt = state
        .store
        .receipts(location.height)?
        .and_then(|r| r.get(index).cloned())
        .ok_or_else(|| corrupt("receipt"))?;
    let mut out = serde_json::to_value(tx).map_err(|e| RpcError::Internal(e.to_string()))?;
    let extra = json!({
        "hash": hash,
        "from": tx.sender_address(),
        "status": "committed",
        "height": location.height.0,
        "index": location.index,
        "block": location.block,
        "receipt": receipt,
    });
    if let (Value::Object(out), Value::Object(extra)) = (&mut out, extra) {
        out.extend(extra);
    }
    Ok(out)
}

fn status(state: &RpcState) -> Result<Value, RpcError> {
    let tip = state.store.tip();
    let node = state.node.status();
    Ok(json!({
        "height": tip.height.0,
        "hash": tip.hash,
        "round": node.round.0,
        "leader": node.leader,
        "peers": node.peers,
        "syncing": node.syncing,
        "protocol_version": state.store.schedule().version_at(tip.height).0,
        "validator": node.validator,
        "chain_id": state.store.chain_id(),
        "genesis_hash": state.store.genesis_hash(),
    }))
}

fn mempool(state: &RpcState) -> Result<Value, RpcError> {
    let pool = lock_mempool(state)?;
    Ok(json!({ "size": pool.len(), "bytes": pool.bytes() }))
}

fn validators(state: &RpcState) -> Value {
    let list: Vec<Value> = state
        .validators
        .iter()
        .map(|v| {
            json!({
                "name": v.name,
                "public_key": v.public_key,
                "address": v.public_key.address(),
                "voting_power": v.voting_power,
                "peer_id": v.peer_id,
            })
        })
        .collect();
    Value::Array(list)
}

fn lock_mempool(
    state: &RpcState,
) -> Result<std::sync::MutexGuard<'_, crate::mempool::Mempool>, RpcError> {
    // A poisoned lock means a panic mid-admission: the pool may be inconsistent, so refuse
    // rather than serve or extend it.
    state
        .mempool
        .lock()
        .map_err(|_| RpcError::Internal("the mempool lock is poisoned".into()))
}

/// Decodes a hex param (optional `0x`), refusing more than `bytes_max` bytes before decoding.
fn decode_hex(param: &str, text: &str, bytes_max: usize) -> Result<Vec<u8>, RpcError> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.len() > 2 * bytes_max {
        return Err(RpcError::invalid_param(
            param,
            format!(
                "{} hex digits, over the limit of {} ({bytes_max} bytes)",
                digits.len(),
                2 * bytes_max
            ),
        ));
    }
    hex::decode(digits).map_err(|e| RpcError::invalid_param(param, format!("not hex: {e}")))
}

/// A required fixed-size hex value (hash, address) via its `FromStr`.
fn parse_hex_param<T: std::str::FromStr<Err = String>>(
    p: &Params,
    name: &str,
) -> Result<T, RpcError> {
    p.required_str(name)?
        .parse()
        .map_err(|e: String| RpcError::invalid_param(name, e))
}
