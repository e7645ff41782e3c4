//! JSON-RPC 2.0: the envelope (parsing, batches, errors), the methods, and the oracle's
//! methods.

pub mod envelope;
pub mod methods;
mod oracle;

pub use envelope::{RpcError, codes};
pub use methods::{COMMIT_WAIT_MAX, COMMIT_WAIT_SLICE, COMMIT_WAITERS_MAX, Method};
