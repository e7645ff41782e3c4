//! The JSON-RPC methods: what each takes and returns. Field names are a contract with
//! `cairn status`/`cairn query` and with scripts (README.md, the command-line section):
//! `status` always has `height`, `hash`, `round`, `leader`, `peers`, `syncing` and
//! `protocol_version`, whatever the engine; a field is added, never renamed. Amounts are
//! integers in the smallest unit, hashes, keys and addresses lowercase hex.
//!
//! Reads the store and the mempool; the only write is mempool admission. Never writes the
//! store, never holds the mempool lock while reading a block, and never waits for a commit
//! beyond [`COMMIT_WAIT_MAX`] nor with more than [`COMMIT_WAITERS_MAX`] calls at once (the
//! waiting calls of `submit_tx` in mode `commit` and of `block` with `wait_ms` together).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cairn_ledger::block::Block;
use cairn_ledger::rules::IMPLEMENTED;
use cairn_ledger::store::{Tip, TxLocation};
use cairn_ledger::tx::{TX_BYTES_MAX, Transaction, verify_signatures};
use cairn_ledger::{Address, Hash, Height, Nonce};
use serde_json::{Value, json};
use tokio::sync::mpsc::error::TrySendError;

use super::error::{RpcError, truncate};
use super::params::Params;
use crate::host::status::{EngineStatus, LeaderElectionStatus};
use crate::host::upgrade::{binary_protocol_version, upgrade_state};
use crate::http::state::{CommitWaiters, RpcState};
use crate::txpool::mempool::{Identified, Rejection};

/// Longest a `submit_tx` call in mode `commit` waits for its transaction to commit after
/// admitting it; then it answers `COMMIT_TIMEOUT` (the transaction may still commit). A batch
/// runs its requests in turn, so one with several such calls can take this long for each.
pub const COMMIT_WAIT_MAX: Duration = Duration::from_secs(30);
/// A waiting call wakes at every commit (the store's tip changed) and at least this often, to
/// notice the server stopping.
pub const COMMIT_WAIT_SLICE: Duration = Duration::from_millis(250);
/// Most calls waiting for a commit at once; beyond it a call is refused (`COMMIT_WAITERS_FULL`)
/// before anything is admitted. Each holds a thread of tokio's blocking pool while it waits,
/// so this stays at most half of that pool's default size.
pub const COMMIT_WAITERS_MAX: usize = 256;
/// tokio's default `max_blocking_threads`, which the node's runtime keeps.
const TOKIO_BLOCKING_THREADS_DEFAULT: usize = 512;
const _: () = assert!(COMMIT_WAITERS_MAX <= TOKIO_BLOCKING_THREADS_DEFAULT / 2);

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
    OracleFeeds,
    OraclePrice,
    OracleRound,
    OracleOperator,
    Upgrades,
    Peers,
}

const ALL: [Method; 13] = [
    Method::SubmitTx,
    Method::Account,
    Method::Block,
    Method::Tx,
    Method::Status,
    Method::Mempool,
    Method::Validators,
    Method::OracleFeeds,
    Method::OraclePrice,
    Method::OracleRound,
    Method::OracleOperator,
    Method::Upgrades,
    Method::Peers,
];

/// `submit_tx`'s modes: admit to the mempool and return, or admit and wait for the commit.
const MODE_MEMPOOL: &str = "mempool";
const MODE_COMMIT: &str = "commit";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Mempool,
    Commit,
}

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
            Method::OracleFeeds => "oracle_feeds",
            Method::OraclePrice => "oracle_price",
            Method::OracleRound => "oracle_round",
            Method::OracleOperator => "oracle_operator",
            Method::Upgrades => "upgrades",
            Method::Peers => "peers",
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
            Method::Block => &["height", "hash", "wait_ms"],
            Method::Tx => &["hash"],
            Method::Status
            | Method::Mempool
            | Method::Validators
            | Method::OracleFeeds
            | Method::Upgrades
            | Method::Peers => &[],
            Method::OraclePrice => &["feed", "twap_window", "history"],
            Method::OracleRound => &["feed"],
            Method::OracleOperator => &["feed", "address"],
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

    pub(super) fn call(
        self,
        state: &RpcState,
        waiters: &CommitWaiters,
        predecoded: Option<Predecoded>,
        p: &Params,
    ) -> Result<Value, RpcError> {
        match self {
            Method::SubmitTx => submit_tx(state, waiters, predecoded, p),
            Method::Account => account(state, p),
            Method::Block => block(state, waiters, p),
            Method::Tx => tx(state, p),
            Method::Status => status(state),
            Method::Upgrades => Ok(upgrades(state)),
            Method::Peers => Ok(peers(state)),
            Method::Mempool => mempool(state),
            Method::Validators => Ok(validators(state)),
            Method::OracleFeeds => super::oracle::feeds(state),
            Method::OraclePrice => super::oracle::price(state, p),
            Method::OracleRound => super::oracle::round(state, p),
            Method::OracleOperator => super::oracle::operator(state, p),
        }
    }
}

/// A `submit_tx` transaction of a JSON-RPC batch, decoded before the calls ran so that the
/// batch's signatures could be checked together: a batch check of fifty costs about a third of
/// fifty single checks, and a load generator or a wallet sends them fifty at a time. The call
/// takes it instead of decoding the same hex again.
pub(crate) struct Predecoded {
    tx: Identified,
    signature_checked: bool,
}

/// Decodes the transaction of every well-formed `submit_tx` request in `batch` and checks all
/// their signatures at once. One entry per request, in order: `None` for other methods and
/// for malformed transactions, which the call itself decodes again to name what is wrong. If
/// any signature fails, none counts as checked: each call then checks its own and names the
/// bad one.
pub(crate) fn predecode_batch(batch: &[Value]) -> Vec<Option<Predecoded>> {
    let txs: Vec<Option<Identified>> = batch
        .iter()
        .map(|request| {
            let bytes = decode_hex("tx", submitted_tx_hex(request)?, TX_BYTES_MAX).ok()?;
            let tx = Transaction::decode(&bytes).ok()?;
            // The codec is canonical, so the id of the submitted bytes is the transaction's.
            Some(Identified::decoded_from(tx, &bytes))
        })
        .collect();
    let decoded: Vec<&Transaction> = txs.iter().flatten().map(Identified::tx).collect();
    let signature_checked = decoded.len() >= 2 && verify_signatures(decoded).is_ok();
    txs.into_iter()
        .map(|tx| {
            tx.map(|tx| Predecoded {
                tx,
                signature_checked,
            })
        })
        .collect()
}

/// The `tx` param of a `submit_tx` request, by name or by position, if it is a string: the
/// value `Params::bind` gives the call as `tx`.
fn submitted_tx_hex(request: &Value) -> Option<&str> {
    let request = request.as_object()?;
    if request.get("method")?.as_str()? != Method::SubmitTx.name() {
        return None;
    }
    match request.get("params")? {
        Value::Object(named) => named.get("tx")?.as_str(),
        Value::Array(positional) => positional.first()?.as_str(),
        _ => None,
    }
}

/// `submit_tx`: admits a transaction to the mempool and answers its hash; in mode `commit`,
/// then waits for it to commit and answers what `tx` answers for a committed transaction.
///
/// Mode `commit` is idempotent: a transaction already committed is answered at once, and one
/// already pending is waited for as if this call had admitted it. So a client that submits
/// again after losing the first answer (`cairn tx transfer --wait` run twice, or a retry
/// after a client timeout) gets the commit, not "already pending" or "nonce already used".
/// Mode `mempool` still refuses a duplicate: there the caller asked for an admission, and
/// the error says the transaction is already in.
fn submit_tx(
    state: &RpcState,
    waiters: &CommitWaiters,
    predecoded: Option<Predecoded>,
    p: &Params,
) -> Result<Value, RpcError> {
    let hex_tx = p.required_str("tx")?;
    let mode = match p.str("mode")?.unwrap_or(MODE_MEMPOOL) {
        MODE_MEMPOOL => Mode::Mempool,
        MODE_COMMIT => Mode::Commit,
        other => {
            return Err(RpcError::invalid_param(
                "mode",
                format!(
                    "{:?} is not a mode; expected {MODE_MEMPOOL:?} or {MODE_COMMIT:?}",
                    truncate(other)
                ),
            ));
        }
    };
    let (tx, signature_checked) = match predecoded {
        Some(p) => (p.tx, p.signature_checked),
        None => {
            let bytes = decode_hex("tx", hex_tx, TX_BYTES_MAX).inspect_err(|_| {
                state.metrics.reject(REASON_MALFORMED);
            })?;
            let tx = Transaction::decode(&bytes).map_err(|e| {
                state.metrics.reject(REASON_MALFORMED);
                RpcError::invalid_param("tx", e.to_string())
            })?;
            (Identified::decoded_from(tx, &bytes), false)
        }
    };
    match mode {
        Mode::Mempool => {
            let hash =
                admit(state, tx, signature_checked).inspect_err(|e| count_rejection(state, e))?;
            Ok(json!({ "hash": hash }))
        }
        Mode::Commit => {
            // A place first: a refused call has admitted nothing.
            let _place = waiters
                .try_enter()
                .ok_or(RpcError::CommitWaitersFull { max: waiters.max() })?;
            submit_and_wait(state, waiters, tx, signature_checked, COMMIT_WAIT_MAX)
        }
    }
}

/// Mode `commit` once it has a waiter's place: answers a committed transaction at once,
/// admits (or joins a pending duplicate), then waits up to `wait_max`.
fn submit_and_wait(
    state: &RpcState,
    waiters: &CommitWaiters,
    tx: impl Into<Identified>,
    signature_checked: bool,
    wait_max: Duration,
) -> Result<Value, RpcError> {
    let tx = tx.into();
    let hash = tx.id();
    if let Some(location) = state.store.tx_location(&hash)? {
        return committed_tx(state, hash, location);
    }
    let (sender, nonce) = (tx.tx().sender_address(), tx.tx().nonce);
    match admit(state, tx, signature_checked) {
        Ok(_) | Err(RpcError::Rejected(Rejection::Duplicate(_))) => {}
        Err(e) => {
            // It may have committed since the look above, and its nonce is then "used".
            if let Some(location) = state.store.tx_location(&hash)? {
                return committed_tx(state, hash, location);
            }
            count_rejection(state, &e);
            return Err(e);
        }
    }
    wait_for_commit(state, waiters, hash, sender, nonce, wait_max)
}

/// Polls the store's index until `hash` is committed, its sender's `nonce` is used by another
/// transaction (it can then never commit), `wait_max` has passed, or the server stops.
fn wait_for_commit(
    state: &RpcState,
    waiters: &CommitWaiters,
    hash: Hash,
    sender: Address,
    nonce: Nonce,
    wait_max: Duration,
) -> Result<Value, RpcError> {
    let deadline = Instant::now() + wait_max;
    // The tip just after the nonce was first seen used, while the index lacked `hash`.
    let mut used_at: Option<Tip> = None;
    loop {
        // Read before the look below: a commit after it wakes the wait at the end at once.
        let seen = state.store.tip();
        if let Some(location) = state.store.tx_location(&hash)? {
            return committed_tx(state, hash, location);
        }
        let used = state.store.account(&sender)?.unwrap_or_default().nonce;
        if used <= nonce {
            // A proof-of-work reorganisation can give the nonce back.
            used_at = None;
        } else if superseded(used_at.as_ref(), &seen) {
            return Err(RpcError::Superseded {
                hash,
                sender,
                nonce,
            });
        } else if used_at.is_none() {
            // The account may come from a block still being written (with in-place memtable
            // updates its accounts show before its index does); that block is at most the
            // tip's child, so its index is visible once the tip moves on.
            used_at = Some(state.store.tip());
            continue;
        }
        if waiters.stopping() {
            return Err(RpcError::CommitWaitStopped { hash });
        }
        if next_tip(state, &seen, deadline).is_none() {
            return Err(RpcError::CommitTimeout {
                hash,
                waited_s: wait_max.as_secs_f64(),
            });
        }
    }
}

/// Whether a transaction whose nonce was seen used at tip `used_at` can never commit, given
/// that its index was looked up after reading tip `seen` and lacked it: only once the tip has
/// moved past `used_at`, so the block that used the nonce has been written whole.
fn superseded(used_at: Option<&Tip>, seen: &Tip) -> bool {
    used_at.is_some_and(|used_at| used_at != seen)
}

/// The tip once it moves past `seen`, or after [`COMMIT_WAIT_SLICE`] (so a waiter notices the
/// server stopping); `None` if `deadline` has passed.
fn next_tip(state: &RpcState, seen: &Tip, deadline: Instant) -> Option<Tip> {
    let left = deadline.checked_duration_since(Instant::now())?;
    (!left.is_zero()).then(|| {
        state
            .store
            .wait_for_new_tip(seen, COMMIT_WAIT_SLICE.min(left))
    })
}

/// Waits until block `height` is committed, at most `wait_ms` (and [`COMMIT_WAIT_MAX`]), as
/// one of the `waiters`; a block already there is answered at once, without a place.
fn wait_for_height(
    state: &RpcState,
    waiters: &CommitWaiters,
    height: u64,
    wait_ms: u64,
) -> Result<(), RpcError> {
    if state.store.tip().height.0 >= height {
        return Ok(());
    }
    let _place = waiters
        .try_enter()
        .ok_or(RpcError::CommitWaitersFull { max: waiters.max() })?;
    let deadline = Instant::now() + Duration::from_millis(wait_ms).min(COMMIT_WAIT_MAX);
    let mut tip = state.store.tip();
    while tip.height.0 < height && !waiters.stopping() {
        let Some(next) = next_tip(state, &tip, deadline) else {
            break;
        };
        tip = next;
    }
    Ok(())
}

/// Admits `tx` to the mempool (its signature already checked, or not), then offers it to the
/// driver for gossip.
fn admit(state: &RpcState, tx: Identified, signature_checked: bool) -> Result<Hash, RpcError> {
    let gossip = state.admitted.as_ref().map(|_| tx.tx().clone());
    let admitted = {
        let mut pool = lock_mempool(state)?;
        let admitted = if signature_checked {
            pool.insert_verified(tx, &*state.store)
        } else {
            pool.insert(tx, &*state.store)
        };
        state.set_mempool_gauges(&pool);
        admitted
    };
    let hash = admitted?;
    if let (Some(channel), Some(tx)) = (&state.admitted, gossip) {
        match channel.try_send(tx) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => tracing::debug!(
                %hash,
                "the gossip channel is full: the transaction stays in the mempool, not gossiped"
            ),
            Err(TrySendError::Closed(_)) => tracing::debug!(
                %hash,
                "the gossip channel is closed: the transaction stays in the mempool, not gossiped"
            ),
        }
    }
    Ok(hash)
}

/// Counts a mempool rejection in `txs_rejected_total` (other errors offered no transaction).
fn count_rejection(state: &RpcState, error: &RpcError) {
    if let RpcError::Rejected(rejection) = error {
        state.metrics.reject(rejection.reason());
    }
}

/// The `txs_rejected_total` reason for bytes that are not a transaction at all (the
/// mempool's own reasons cover the rest).
const REASON_MALFORMED: &str = "malformed";

/// `account`: the committed account, and `pending_nonce`, the nonce this node's mempool
/// would accept next from it (its committed nonce plus its pending transactions), which is
/// what a client signing another transaction needs. Both are read under the mempool lock, as
/// admission reads them.
fn account(state: &RpcState, p: &Params) -> Result<Value, RpcError> {
    let address: Address = parse_hex_param(p, "address")?;
    let (account, pending_nonce) = {
        let pool = lock_mempool(state)?;
        let account = state.store.account(&address)?.unwrap_or_default();
        let next = pool.next_nonce(&address, account.nonce);
        (account, next.0)
    };
    Ok(json!({
        "address": address,
        "balance": account.balance.0,
        "nonce": account.nonce.0,
        "pending_nonce": pending_nonce,
        "stake": account.stake.0,
    }))
}

fn block(state: &RpcState, waiters: &CommitWaiters, p: &Params) -> Result<Value, RpcError> {
    let height = p.u64("height")?;
    let hash = match p.get("hash") {
        Some(_) => Some(parse_hex_param::<Hash>(p, "hash")?),
        None => None,
    };
    if height.is_some() && hash.is_some() {
        return Err(RpcError::invalid_param(
            "hash",
            "give `height` or `hash`, not both",
        ));
    }
    if let Some(wait_ms) = p.u64("wait_ms")? {
        let Some(h) = height else {
            return Err(RpcError::invalid_param(
                "wait_ms",
                "waits for a block by `height` only",
            ));
        };
        wait_for_height(state, waiters, h, wait_ms)?;
    }
    let block = match (height, hash) {
        (Some(h), _) => state
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
    Ok(block_json(
        &block,
        confirmations(state, block.header.height),
    ))
}

/// Blocks on top of `height` in the stored chain, itself included (1 for the tip). The store
/// holds only the chain this node follows (in PoW mode, the most-work chain it has
/// connected), so a block it returns is on it.
fn confirmations(state: &RpcState, height: Height) -> u64 {
    state.store.tip().height.0.saturating_sub(height.0) + 1
}

fn block_json(block: &Block, confirmations: u64) -> Value {
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
        "confirmations": confirmations,
    })
}

fn tx(state: &RpcState, p: &Params) -> Result<Value, RpcError> {
    let hash: Hash = parse_hex_param(p, "hash")?;
    if let Some(location) = state.store.tx_location(&hash)? {
        return committed_tx(state, hash, location);
    }
    if lock_mempool(state)?.contains(&hash) {
        return Ok(json!({ "hash": hash, "status": "pending" }));
    }
    // It may have left the pool for a block between the two looks.
    match state.store.tx_location(&hash)? {
        Some(location) => committed_tx(state, hash, location),
        None => Err(RpcError::NotFound {
            what: "transaction",
            key: hash.to_string(),
        }),
    }
}

/// A committed transaction as `tx` and `submit_tx` mode `commit` answer it: its fields, its
/// sender, where it landed and its receipt.
fn committed_tx(state: &RpcState, hash: Hash, location: TxLocation) -> Result<Value, RpcError> {
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
        "confirmations": confirmations(state, location.height),
    });
    if let (Value::Object(out), Value::Object(extra)) = (&mut out, extra) {
        out.extend(extra);
    }
    Ok(out)
}

fn status(state: &RpcState) -> Result<Value, RpcError> {
    let tip = state.store.tip();
    let node = state.node.status();
    // Proof of work has no rounds or leaders (`round` stays 0 and `leader` null for scripts
    // that read both modes); it has a best header instead.
    let (round, leader) = match &node.engine {
        EngineStatus::HotStuff { round, leader, .. } => (round.0, *leader),
        EngineStatus::Pbft {
            round, proposer, ..
        } => (round.0, *proposer),
        EngineStatus::Pow { .. } => (0, None),
    };
    let mut out = json!({
        "height": tip.height.0,
        "hash": tip.hash,
        "round": round,
        "leader": leader,
        "peers": node.peers,
        "syncing": node.syncing,
        "protocol_version": state.store.schedule().version_at(tip.height).0,
        "validator": node.validator,
        "halted": node.halted,
        "upgrade": upgrade_state(&state.store, node.halted.is_some(), node.not_scheduled_here),
        "chain_id": state.store.chain_id(),
        "genesis_hash": state.store.genesis_hash(),
        "consensus": node.engine.name(),
        "peer_on_another_schedule": node.other_schedule.as_ref().map(|o| json!({
            "peer_id": o.peer_id,
            "upgrade": o.upgrade,
            "height": o.height,
            "hint": o.hint(),
        })),
    });
    // The driver posts its best header every 250 ms while the tip is read live here; the
    // tip's own header is known, so the best header is never below it.
    match &node.engine {
        EngineStatus::Pow { best_header_height } => {
            out["best_header_height"] = json!(best_header_height.0.max(tip.height.0));
        }
        // PBFT's round belongs to the height being decided; its leader is the proposer.
        EngineStatus::Pbft {
            height, election, ..
        } => {
            out["deciding_height"] = json!(height.0);
            out["leader_election"] = election_json(election, "turn");
        }
        EngineStatus::HotStuff { election, .. } => {
            out["leader_election"] = election_json(election, "round");
        }
    }
    Ok(out)
}

/// The leader-election rule and whom it passes over, with why. `unit` names what the
/// engine's failed turns are counted in (HotStuff: rounds; PBFT: turns along the chain).
fn election_json(election: &LeaderElectionStatus, unit: &str) -> Value {
    let passed_over: Vec<Value> = election
        .passed_over
        .iter()
        .map(|p| {
            json!({
                "validator": p.validator,
                "why": format!(
                    "its turn as leader of {unit} {} produced no block ({} failed turn{} in a \
                     row)",
                    p.failed_round,
                    p.failed_turns,
                    if p.failed_turns == 1 { "" } else { "s" }
                ),
                "failed_round": p.failed_round.0,
                "failed_turns": p.failed_turns,
                "until_ms": p.until.0,
            })
        })
        .collect();
    json!({
        "rule": election.rule,
        "passed_over": passed_over,
    })
}

/// The chain's upgrade schedule against this node's binary: what is scheduled, what is active,
/// what this binary implements, and the last height it can follow (`null`: all of them).
fn upgrades(state: &RpcState) -> Value {
    let schedule = state.store.schedule();
    let tip = state.store.tip().height;
    let scheduled: Vec<Value> = schedule
        .upgrades()
        .iter()
        .map(|u| {
            json!({
                "name": u.name,
                "height": u.height.0,
                "protocol_version": u.protocol_version.0,
                "active": u.height <= tip,
                "implemented": schedule.missing_at(u.height).is_none(),
            })
        })
        .collect();
    let implemented: Vec<Value> = IMPLEMENTED
        .iter()
        .map(|u| {
            json!({
                "name": u.name,
                "protocol_version": u.version.0,
                "summary": u.summary,
                "fingerprint": u.fingerprint(),
            })
        })
        .collect();
    let follows_until = schedule
        .missing_at(Height(u64::MAX))
        .map(|u| u.height.0.saturating_sub(1));
    json!({
        "height": tip.0,
        "protocol_version": schedule.version_at(tip).0,
        "binary_version": crate::BINARY_VERSION,
        "binary_protocol_version": binary_protocol_version(),
        "scheduled": scheduled,
        "schedule_hash": schedule.hash(),
        "implemented": implemented,
        "follows_until": follows_until,
    })
}

/// Who this node is connected to and which release and protocol version each announced,
/// with this node's own: during a rollout, who is on which version.
fn peers(state: &RpcState) -> Value {
    let node = state.node.status();
    let mut by_version: BTreeMap<u32, u32> = BTreeMap::new();
    *by_version.entry(binary_protocol_version()).or_default() += 1;
    for p in node.peer_list.iter() {
        *by_version.entry(p.info.protocol_version).or_default() += 1;
    }
    json!({
        "software": crate::software(),
        "protocol_version": binary_protocol_version(),
        "peers": &*node.peer_list,
        "nodes_by_protocol_version": by_version
            .into_iter()
            .map(|(v, n)| (v.to_string(), json!(n)))
            .collect::<serde_json::Map<_, _>>(),
    })
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
) -> Result<std::sync::MutexGuard<'_, crate::txpool::mempool::Mempool>, RpcError> {
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use cairn_ledger::crypto::Keypair;
    use cairn_ledger::genesis::{EngineKind, Genesis};
    use cairn_ledger::store::Store;
    use cairn_ledger::tx::Payload;
    use cairn_ledger::{Amount, TimestampMs};

    use super::*;
    use crate::config::{MempoolSection, RpcSection};
    use crate::host::status::{NodeStatus, Readiness, StatusBoard};
    use crate::http::rpc::envelope::handle_body;
    use crate::http::rpc::error::codes;
    use crate::metrics::Metrics;
    use crate::txpool::mempool::Mempool;

    struct Fixture {
        state: RpcState,
        user: Keypair,
        _dir: tempfile::TempDir,
    }

    /// A server's state over a real store, with one funded user and no driver.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let validator = Keypair::from_secret(&[1; 32]);
        let user = Keypair::from_secret(&[2; 32]);
        let genesis = Genesis::local(
            EngineKind::HotStuff,
            &[validator.public()],
            &[(user.public().address(), Amount(1_000))],
            TimestampMs(1_700_000_000_000),
        );
        let store = Arc::new(Store::open(dir.path(), &genesis).unwrap());
        let mempool = Mempool::new(store.chain_id(), MempoolSection::default());
        let state = RpcState {
            store,
            mempool: Arc::new(Mutex::new(mempool)),
            node: Arc::new(StatusBoard::new(NodeStatus::default(), Readiness::Ready)),
            metrics: Arc::new(Metrics::new()),
            validators: genesis.validators.clone().into(),
            limits: RpcSection::default(),
            admitted: None,
        };
        Fixture {
            state,
            user,
            _dir: dir,
        }
    }

    impl Fixture {
        fn transfer(&self, nonce: u64) -> Transaction {
            Transaction::new_signed(
                self.state.store.chain_id(),
                &self.user,
                Nonce(nonce),
                Amount(1),
                Payload::Transfer {
                    to: Address([9; 20]),
                    amount: Amount(5),
                },
            )
        }
    }

    #[test]
    fn a_commit_wait_that_runs_out_names_the_admitted_transaction() {
        let f = fixture();
        let tx = f.transfer(0);
        let hash = tx.hash();
        let started = Instant::now();
        let wait_max = Duration::from_millis(100);
        let waiters = CommitWaiters::new(1);
        let error = submit_and_wait(&f.state, &waiters, tx, false, wait_max).unwrap_err();
        assert!(started.elapsed() >= wait_max);
        assert_eq!(error.code(), codes::COMMIT_TIMEOUT);
        let message = error.to_string();
        assert!(
            message.contains(&hash.to_string())
                && message.contains("admitted")
                && message.contains("within 0.1 s")
                && message.contains("may still commit"),
            "{message}"
        );
        // It stays admitted: it may still commit.
        assert!(f.state.mempool.lock().unwrap().contains(&hash));
    }

    #[test]
    fn a_stopping_server_ends_commit_waits_at_once() {
        let f = fixture();
        let tx = f.transfer(0);
        let hash = tx.hash();
        let waiters = CommitWaiters::new(1);
        waiters.stop();
        let started = Instant::now();
        let error = submit_and_wait(&f.state, &waiters, tx, false, COMMIT_WAIT_MAX).unwrap_err();
        assert!(started.elapsed() < COMMIT_WAIT_MAX / 2);
        assert_eq!(error.code(), codes::COMMIT_TIMEOUT);
        let message = error.to_string();
        assert!(
            message.contains(&hash.to_string()) && message.contains("node is stopping"),
            "{message}"
        );
        assert!(f.state.mempool.lock().unwrap().contains(&hash));
    }

    #[test]
    fn commit_waiters_are_bounded_and_a_refused_call_admits_nothing() {
        let f = fixture();
        let waiters = CommitWaiters::new(2);
        let first = waiters.try_enter().expect("a place");
        let _second = waiters.try_enter().expect("a place");
        assert!(waiters.try_enter().is_none());

        let request = json!({
            "jsonrpc": "2.0", "id": 1, "method": "submit_tx",
            "params": { "tx": hex::encode(f.transfer(0).encode()), "mode": "commit" },
        });
        let response = handle_body(&f.state, &waiters, request.to_string().as_bytes()).unwrap();
        assert_eq!(response["error"]["code"], codes::COMMIT_WAITERS_FULL);
        let message = response["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("2 calls are already waiting")
                && message.contains("retry")
                && message.contains("\"mempool\""),
            "{message}"
        );
        assert!(f.state.mempool.lock().unwrap().is_empty());

        // A place given back is free again, also when its holder panicked.
        drop(first);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _place = waiters.try_enter().expect("a place");
            panic!("handler bug");
        }));
        assert!(caught.is_err());
        assert!(waiters.try_enter().is_some());
    }

    #[test]
    fn a_batch_is_checked_at_once_and_a_forged_signature_in_it_is_still_named() {
        let f = fixture();
        let waiters = CommitWaiters::new(1);
        let call = |id: u64, tx: &Transaction, by_name: bool| {
            let hex = hex::encode(tx.encode());
            let params = if by_name {
                json!({ "tx": hex })
            } else {
                json!([hex])
            };
            json!({ "jsonrpc": "2.0", "id": id, "method": "submit_tx", "params": params })
        };
        let honest: Vec<Transaction> = (0..3).map(|n| f.transfer(n)).collect();
        let batch: Vec<Value> = honest
            .iter()
            .enumerate()
            .map(|(i, tx)| call(i as u64, tx, i % 2 == 0))
            .collect();
        let predecoded = predecode_batch(&batch);
        assert!(
            predecoded
                .iter()
                .all(|p| p.as_ref().unwrap().signature_checked)
        );
        let response = handle_body(
            &f.state,
            &waiters,
            Value::Array(batch).to_string().as_bytes(),
        );
        let response = response.unwrap();
        for (answer, tx) in response.as_array().unwrap().iter().zip(&honest) {
            let hash = tx.hash().to_string();
            assert_eq!(
                answer["result"]["hash"].as_str(),
                Some(hash.as_str()),
                "{answer}"
            );
        }

        // One forged signature among honest ones: nothing counts as checked, and only the
        // forged one is refused, by name.
        let mut forged = f.transfer(4);
        forged.fee = Amount(2);
        let batch = vec![
            call(10, &f.transfer(3), true),
            call(11, &forged, true),
            json!({ "jsonrpc": "2.0", "id": 12, "method": "status" }),
        ];
        let predecoded = predecode_batch(&batch);
        assert!(
            predecoded[..2]
                .iter()
                .all(|p| !p.as_ref().unwrap().signature_checked)
        );
        assert!(predecoded[2].is_none());
        let response = handle_body(
            &f.state,
            &waiters,
            Value::Array(batch).to_string().as_bytes(),
        );
        let answers = response.unwrap();
        assert!(answers[0]["result"]["hash"].is_string(), "{answers}");
        assert_eq!(
            answers[1]["error"]["code"],
            codes::TX_BAD_SIGNATURE,
            "{answers}"
        );
        assert!(
            answers[1]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("signature"),
            "{answers}"
        );
        assert!(answers[2]["result"]["height"].is_number(), "{answers}");
        assert_eq!(f.state.mempool.lock().unwrap().len(), 4);
    }
}
