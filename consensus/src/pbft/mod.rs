//! PBFT (IBFT 2.0 / QBFT family) as a pure state machine: [`Engine::handle`] takes an
//! [`Input`] and returns the [`Effect`]s the driver must execute, in order, under the same
//! contract as HotStuff's engine.
//!
//! Per height: the round's proposer offers a block (pre-prepare), validators prepare it, a
//! quorum of prepares (by voting power) makes each validator commit, and a quorum of commits
//! makes the block final at once; its commit certificate is kept beside it and travels in
//! the next block's seal (`Seal::Pbft { parent_commit }`), so any chain of blocks proves
//! itself to a node catching up. A round that fails ends in round changes, each carrying the
//! sender's highest prepare certificate; the next proposer must offer the highest prepared
//! block again (the justification rule that keeps a committed block), and f + 1 round
//! changes ahead pull a validator forward. Round timers double per round up to a maximum.
//!
//! The validator set, the signing seam and the leader schedule are `crate::bft`'s. One file
//! per concern: `messages` (wire types, bounds, signing bytes), `certs` (prepare, commit and
//! round-change certificates), `safety` (what may be signed, and the state persisted for
//! it), `engine` (heights, rounds, sync), `effects` (the driver's contract).
//!
//! Nothing here does I/O, reads a clock, draws randomness or starts a thread.

mod certs;
mod effects;
mod engine;
mod messages;
mod safety;

#[cfg(test)]
mod tests;

pub use certs::{CertChecker, CertError, VERIFIED_CERTS_MAX, genesis_commit};
pub use effects::{DropReason, Effect, Evidence, Input, Validity};
pub use engine::{
    BACKOFF_EXPONENT_MAX, CANDIDATES_MAX, COMMITTED_BLOCKS_KEPT, Engine, EngineConfig, EngineError,
    ROUNDS_AHEAD_MAX, ROUNDS_KEPT_MAX, RestartState, SYNC_REQUESTS_KEPT,
};
pub use messages::*;
pub use safety::{Position, SAFETY_STATE_BYTES_MAX, SafetyError, SafetyState};

/// The block a driver without transactions (unit tests, the simulator) answers
/// `Effect::RequestPayload` with: empty, sealed with the turn and parent commit certificate
/// the engine gave, proposed by `proposer` at `timestamp`. `None` for any other effect.
pub fn empty_payload(
    request: Effect,
    proposer: cairn_ledger::Address,
    timestamp: cairn_ledger::TimestampMs,
) -> Option<cairn_ledger::block::Block> {
    use cairn_ledger::block::{Block, BlockHeader, Seal};
    use cairn_ledger::{Hash, ProtocolVersion};
    let Effect::RequestPayload {
        height,
        parent,
        turn,
        parent_commit,
        ..
    } = request
    else {
        return None;
    };
    Some(Block {
        header: BlockHeader {
            height,
            parent,
            timestamp,
            tx_root: cairn_ledger::block::tx_root(&[]),
            state_root: Hash::ZERO,
            proposer,
            protocol_version: ProtocolVersion(1),
            seal: Seal::Pbft {
                turn,
                parent_commit,
            },
        },
        transactions: Vec::new(),
    })
}
