//! Chained HotStuff with the 2-chain commit rule (Jolteon / DiemBFT v4 family), as a pure
//! state machine: [`Engine::handle`] takes an [`Input`] and returns the [`Effect`]s the
//! driver must execute, in order.
//!
//! The validator set, the signing seam and the leader schedule belong to every BFT engine
//! and live in `crate::bft`; they are re-exported here. One file per concern: `messages`
//! (wire types, bounds, signing bytes), `certs` (QC and TC checks), `aggregator` (votes into
//! QCs, timeouts into TCs), `safety` (the rules that prevent equivocation, and the state
//! persisted for them), `pacemaker` (rounds and timeouts), `block_tree` (blocks,
//! certification, commits), `engine` (proposals and rounds), `voting` (votes and timeouts),
//! `sync` (catch-up), `effects` (the driver's contract).
//!
//! Nothing here does I/O, reads a clock, draws randomness or starts a thread.

mod aggregator;
mod block_tree;
mod certs;
mod effects;
mod engine;
mod messages;
mod pacemaker;
mod safety;
mod sync;
mod voting;

#[cfg(test)]
mod tests;

pub use crate::bft::{
    Ed25519Signer, Ed25519Verifier, LeaderSchedule, Member, SignedBytes, Signer, ValidatorSet,
    ValidatorSetError, Verifier,
};
pub use aggregator::VOTES_ROUNDS_MAX;
pub use block_tree::{COMMITTED_BLOCKS_KEPT, TREE_BLOCKS_MAX, TreeError, block_round};
pub use certs::{CertError, VERIFIED_CERTS_MAX, genesis_qc};
pub use effects::{DropReason, Effect, Evidence, Input, Validity};
pub use engine::{
    Engine, EngineConfig, EngineError, PROPOSALS_SEEN_ROUNDS_MAX, RestartState,
    VALIDATIONS_PENDING_MAX, VOTE_ROUNDS_AHEAD_MAX,
};
pub use messages::*;
pub use pacemaker::{BACKOFF_EXPONENT_MAX, BACKOFF_FREE_ROUNDS, PacemakerError};
pub use safety::{SAFETY_STATE_BYTES_MAX, SafetyError, SafetyState};
pub use sync::PENDING_PROPOSALS_MAX;

/// A block 0 for runs without a genesis file (unit tests, the simulator): empty state, no
/// transactions, and `parent` standing in for the genesis hash so runs can be told apart.
pub fn synthetic_genesis(parent: cairn_ledger::Hash) -> cairn_ledger::block::Block {
    use cairn_ledger::block::{Block, BlockHeader, Seal};
    use cairn_ledger::{Address, Hash, Height, ProtocolVersion, TimestampMs};
    Block {
        header: BlockHeader {
            height: Height(0),
            parent,
            timestamp: TimestampMs(0),
            tx_root: cairn_ledger::block::tx_root(&[]),
            state_root: Hash::ZERO,
            proposer: Address([0; 20]),
            protocol_version: ProtocolVersion(1),
            seal: Seal::Genesis,
        },
        transactions: Vec::new(),
    }
}

/// The block a driver without transactions (unit tests, the simulator) answers
/// `Effect::RequestPayload` with: empty, with the seal the engine asked for, proposed by
/// `proposer` at `timestamp`. `None` for any other effect.
pub fn empty_payload(
    request: Effect,
    proposer: cairn_ledger::Address,
    timestamp: cairn_ledger::TimestampMs,
) -> Option<cairn_ledger::block::Block> {
    use cairn_ledger::block::{Block, BlockHeader, Seal};
    use cairn_ledger::{Hash, ProtocolVersion};
    let Effect::RequestPayload {
        round,
        height,
        parent,
        justify,
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
            seal: Seal::HotStuff { round, justify },
        },
        transactions: Vec::new(),
    })
}
