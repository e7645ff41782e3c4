//! JSON-RPC errors: the stable codes, what each failure says, and the error object.
//!
//! Owns the codes scripts match on. Never echoes unbounded client text back.

use cairn_ledger::rules::RuleError;
use cairn_ledger::{Address, Hash, Nonce};
use serde_json::{Value, json};

use crate::txpool::mempool::Rejection;

/// Stable error codes. The -327xx/-326xx ones are JSON-RPC 2.0's; the -320xx ones are Cairn's.
pub mod codes {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The block or transaction asked for is not known.
    pub const NOT_FOUND: i64 = -32001;
    /// A recognised option this node does not implement yet (none at the moment; kept so
    /// the code keeps its meaning).
    pub const NOT_SUPPORTED: i64 = -32002;
    /// `submit_tx` mode `commit`: too many calls are already waiting for their commit
    /// (`COMMIT_WAITERS_MAX`); nothing was submitted. Retry, or use mode `mempool`.
    pub const COMMIT_WAITERS_FULL: i64 = -32003;
    // Mempool rejections, one code each (see `rejection_code`).
    pub const TX_TOO_LARGE: i64 = -32010;
    pub const TX_DUPLICATE: i64 = -32011;
    pub const TX_WRONG_CHAIN: i64 = -32012;
    pub const TX_BAD_SIGNATURE: i64 = -32013;
    pub const TX_STALE_NONCE: i64 = -32014;
    pub const TX_NONCE_GAP: i64 = -32015;
    pub const TX_REPLACEMENT_UNDERPRICED: i64 = -32016;
    pub const TX_UNAFFORDABLE: i64 = -32017;
    pub const TX_SENDER_FULL: i64 = -32018;
    pub const TX_POOL_FULL: i64 = -32019;
    pub const TX_STATE_ERROR: i64 = -32020;
    /// The fee is below the minimum of the protocol rules in force (`data`-less; the message
    /// names the minimum).
    pub const TX_FEE_BELOW_MINIMUM: i64 = -32021;
    /// The transaction's kind is not valid yet under the protocol rules in force: it comes
    /// with an upgrade that has not activated.
    pub const TX_KIND_NOT_VALID: i64 = -32022;
    // `submit_tx` mode `commit` after a successful admission; `data.hash` names the
    // transaction.
    /// Admitted but not seen committed: the wait ran out (`COMMIT_WAIT_MAX`) or the node is
    /// stopping. It may still commit.
    pub const COMMIT_TIMEOUT: i64 = -32030;
    /// Admitted but can never commit: another transaction used its sender's nonce.
    pub const TX_SUPERSEDED: i64 = -32031;
}

/// Longest piece of client-supplied text (a method or param name) quoted back in an error,
/// in characters: an error must stay small whatever the request was.
const ECHO_CHARS_MAX: usize = 64;

/// Why a call failed; `code()` is its JSON-RPC code and `Display` its message.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("parse error: {0}")]
    Parse(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("request body is over the limit of {max} bytes (rpc.body_bytes_max)")]
    BodyTooLarge { max: u32 },
    #[error(
        "the request body did not arrive within {ms} ms (rpc.io_timeout_ms); send it whole \
         right after the headers"
    )]
    BodyTimeout { ms: u64 },
    #[error("batch has {len} requests, over the limit of {max} (rpc.batch_requests_max)")]
    BatchTooLarge { len: usize, max: u32 },
    #[error("method {name:?} not found; methods are {known}")]
    MethodNotFound {
        name: String,
        /// Every method this server answers, for the message.
        known: String,
    },
    #[error("invalid param `{param}`: {problem}")]
    InvalidParams { param: String, problem: String },
    #[error("{what} {key} not found")]
    NotFound { what: &'static str, key: String },
    #[error("{what} is not yet supported")]
    NotSupported { what: String },
    #[error(
        "{max} calls are already waiting for a commit, the most this node allows; retry \
         shortly, or do not wait: submit with mode \"mempool\" and poll `tx`, or ask for a \
         block without `wait_ms`"
    )]
    CommitWaitersFull { max: usize },
    #[error(
        "transaction {hash} was admitted but not committed within {waited_s} s; it may still \
         commit"
    )]
    CommitTimeout { hash: Hash, waited_s: f64 },
    #[error(
        "transaction {hash} was admitted but the node is stopping before it committed; it may \
         still commit"
    )]
    CommitWaitStopped { hash: Hash },
    #[error(
        "transaction {hash} will never commit: nonce {nonce} of {sender} was used by another \
         transaction"
    )]
    Superseded {
        hash: Hash,
        sender: Address,
        nonce: Nonce,
    },
    #[error("{0}")]
    Rejected(#[from] Rejection),
    #[error("internal error: {0}")]
    Internal(String),
}

impl RpcError {
    pub fn code(&self) -> i64 {
        match self {
            RpcError::Parse(_) => codes::PARSE_ERROR,
            RpcError::InvalidRequest(_)
            | RpcError::BodyTooLarge { .. }
            | RpcError::BodyTimeout { .. }
            | RpcError::BatchTooLarge { .. } => codes::INVALID_REQUEST,
            RpcError::MethodNotFound { .. } => codes::METHOD_NOT_FOUND,
            RpcError::InvalidParams { .. } => codes::INVALID_PARAMS,
            RpcError::NotFound { .. } => codes::NOT_FOUND,
            RpcError::NotSupported { .. } => codes::NOT_SUPPORTED,
            RpcError::CommitWaitersFull { .. } => codes::COMMIT_WAITERS_FULL,
            RpcError::CommitTimeout { .. } | RpcError::CommitWaitStopped { .. } => {
                codes::COMMIT_TIMEOUT
            }
            RpcError::Superseded { .. } => codes::TX_SUPERSEDED,
            RpcError::Rejected(r) => rejection_code(r),
            RpcError::Internal(_) => codes::INTERNAL_ERROR,
        }
    }

    /// Machine-readable detail: the rejection's metrics reason, or the transaction a commit
    /// wait was for, so clients need not parse the message.
    fn data(&self) -> Option<Value> {
        match self {
            RpcError::Rejected(r) => Some(json!({ "reason": r.reason() })),
            RpcError::CommitTimeout { hash, .. }
            | RpcError::CommitWaitStopped { hash }
            | RpcError::Superseded { hash, .. } => Some(json!({ "hash": hash })),
            _ => None,
        }
    }

    pub(super) fn invalid_param(param: &str, problem: impl Into<String>) -> RpcError {
        RpcError::InvalidParams {
            param: truncate(param),
            problem: problem.into(),
        }
    }
}

impl From<cairn_ledger::store::StoreError> for RpcError {
    fn from(e: cairn_ledger::store::StoreError) -> Self {
        RpcError::Internal(e.to_string())
    }
}

/// One code per rejection, so a client can tell "already pending" from "nonce too low"
/// without reading English.
pub fn rejection_code(r: &Rejection) -> i64 {
    match r {
        Rejection::TooLarge { .. } => codes::TX_TOO_LARGE,
        Rejection::Duplicate(_) => codes::TX_DUPLICATE,
        Rejection::WrongChain { .. } => codes::TX_WRONG_CHAIN,
        Rejection::BadSignature(_) => codes::TX_BAD_SIGNATURE,
        Rejection::StaleNonce { .. } => codes::TX_STALE_NONCE,
        Rejection::NonceGap { .. } => codes::TX_NONCE_GAP,
        Rejection::ReplacementUnderpriced { .. } => codes::TX_REPLACEMENT_UNDERPRICED,
        Rejection::Unaffordable { .. } => codes::TX_UNAFFORDABLE,
        Rejection::SenderFull { .. } => codes::TX_SENDER_FULL,
        Rejection::PoolFull { .. } => codes::TX_POOL_FULL,
        Rejection::State(_) => codes::TX_STATE_ERROR,
        Rejection::Rule(RuleError::FeeBelowMinimum { .. }) => codes::TX_FEE_BELOW_MINIMUM,
        Rejection::Rule(RuleError::KindNotValid { .. }) => codes::TX_KIND_NOT_VALID,
    }
}

/// Client text shortened for quoting in an error.
pub(crate) fn truncate(s: &str) -> String {
    match s.char_indices().nth(ECHO_CHARS_MAX) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

pub(crate) fn error_response(id: Option<Value>, error: &RpcError) -> Value {
    let mut body = json!({ "code": error.code(), "message": error.to_string() });
    if let Some(data) = error.data() {
        body["data"] = data;
    }
    json!({ "jsonrpc": "2.0", "id": id.unwrap_or(Value::Null), "error": body })
}
