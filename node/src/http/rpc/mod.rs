//! JSON-RPC 2.0: the envelope (parsing, batches, dispatch), the errors and params every call
//! shares, the methods, and the oracle's methods. Imports point one way: envelope → methods
//! → oracle, each of them → error, params and [`super::state`]; nothing here imports the
//! server.

pub mod envelope;
pub mod error;
pub mod methods;
mod oracle;
pub mod params;

pub use error::{RpcError, codes};
pub use methods::{COMMIT_WAIT_MAX, COMMIT_WAIT_SLICE, COMMIT_WAITERS_MAX, Method};
