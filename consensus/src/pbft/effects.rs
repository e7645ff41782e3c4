//! The PBFT engine's interface to its driver: what goes in ([`Input`]), what comes out
//! ([`Effect`]), the proofs of misbehaviour it yields ([`Evidence`]) and why it refuses
//! things ([`DropReason`]). The contract is HotStuff's, with positions (height and round)
//! where HotStuff has rounds alone.
//!
//! Owns: these types and their documentation, which is the driver's contract. Never:
//! behaviour; the engine decides, the driver executes.

use cairn_ledger::block::{Block, QuorumCert};
use cairn_ledger::{Address, Hash, Height, PublicKey, Round};

use super::certs::CertError;
use super::messages::{BoundsError, Message, SignedProposal, SyncRequest, VoteMsg};
use super::safety::{SafetyError, SafetyState};

pub use crate::hotstuff::Validity;

/// Everything that can happen to the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A decoded message from peer `0` (its validator key as the transport authenticated
    /// it; signed content is checked against its own signer regardless).
    Message(PublicKey, Message),
    /// Raw bytes from a peer: decoded here with the per-type bound.
    Bytes(PublicKey, Vec<u8>),
    /// The timer scheduled by `Effect::ScheduleTimeout` for this position fired.
    Timeout { height: Height, round: Round },
    /// The block the driver built in answer to `Effect::RequestPayload`.
    Payload(Block),
    /// The driver's judgement of `block`, asked for by `Effect::Validate`.
    Validity { block: Hash, validity: Validity },
}

/// What the driver must do, in the order given. Within one `Vec`, a `Persist` or
/// `StoreBlock` must be durable before any later `Send`, `Broadcast` or `FetchBlocks` of the
/// same `Vec` leaves the process; everything else may run as it comes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Write the safety state durably (fsync) before any later send of this batch; after a
    /// crash, pass the last state written to `Engine::new`.
    Persist(Box<SafetyState>),
    /// Keep this uncommitted block durably before any later send of this batch: a
    /// validator's round change must still offer the block it prepared after a crash. Pass
    /// the stored blocks back in `RestartState::blocks`; blocks at or below a committed
    /// height may be deleted once `Commit` has been applied.
    StoreBlock(Block),
    /// Judge the proposed block `block` (handed over by an earlier `StoreBlock`) and answer
    /// with `Input::Validity`; the engine prepares it only on `Validity::Valid`.
    Validate { block: Hash },
    /// These stored blocks will never be needed: delete them. Yielded once, by `start`.
    DiscardBlocks(Vec<Hash>),
    /// Send `msg` to validator `to` (best effort; the protocol tolerates loss).
    Send { to: PublicKey, msg: Message },
    /// Send `msg` to every other validator; the engine has already handled its own copy.
    Broadcast(Message),
    /// Deliver `Input::Timeout { height, round }` after `after_ms` of local time. Timers for
    /// positions the engine has left are ignored, so the driver need not cancel them.
    ScheduleTimeout {
        height: Height,
        round: Round,
        after_ms: u64,
    },
    /// This node proposes at `(height, round)`: build a block at `height` whose header has
    /// `parent` and `Seal::Pbft { turn, parent_commit }`, proposer = this node's address, and
    /// hand it back as `Input::Payload`. Not answering only costs the round.
    RequestPayload {
        height: Height,
        round: Round,
        parent: Hash,
        turn: Round,
        parent_commit: QuorumCert,
    },
    /// These blocks are final: apply and store them in order (lowest height first). Each is
    /// committed exactly once. `qc` is the commit certificate of the last block; keep it
    /// with that block and pass both to `Engine::new` after a restart.
    Commit { blocks: Vec<Block>, qc: QuorumCert },
    /// Ask peer `from` for committed blocks: send it `Message::SyncRequest(request)`; the
    /// answer arrives as an ordinary `Input::Message`.
    FetchBlocks {
        from: PublicKey,
        request: SyncRequest,
    },
    /// Proof that a validator signed two conflicting messages: keep it and expose it.
    Evidence(Evidence),
    /// An input was refused; count it by `reason.label()`. `from` is the peer, or `None`
    /// for local inputs.
    Dropped {
        from: Option<PublicKey>,
        reason: DropReason,
    },
}

/// Two conflicting signed statements by one validator for one position; each verifies alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    ConflictingProposals {
        first: SignedProposal,
        second: SignedProposal,
    },
    /// Two prepares (`commit: false`) or two commits for different blocks at one position.
    ConflictingVotes {
        commit: bool,
        first: VoteMsg,
        second: VoteMsg,
    },
}

impl Evidence {
    pub fn offender(&self) -> PublicKey {
        match self {
            Evidence::ConflictingProposals { first, .. } => first.proposer,
            Evidence::ConflictingVotes { first, .. } => first.voter,
        }
    }
}

/// Why an input was refused. Every variant names the offending values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    #[error("malformed message: {reason}")]
    Malformed { reason: String },
    #[error("message over a bound: {0}")]
    OutOfBounds(BoundsError),
    #[error("{what} signed by {key}, who is not a validator")]
    NotAValidator { what: &'static str, key: PublicKey },
    #[error("{what} signature of {key} does not verify")]
    BadSignature { what: &'static str, key: PublicKey },
    #[error("block {block} is not a PBFT block")]
    NotPbft { block: Hash },
    #[error(
        "block {block} offered in round {round} names turn {got}; it must be {expected} \
         (the parent's turn + 1 + the round it was first offered in)"
    )]
    WrongTurn {
        block: Hash,
        round: Round,
        got: Round,
        expected: Round,
    },
    #[error(
        "proposal for height {height} round {round} is signed by {got}; the proposer is {expected}"
    )]
    WrongProposer {
        height: Height,
        round: Round,
        expected: PublicKey,
        got: PublicKey,
    },
    #[error("proposal by {key} names {named} as the block's proposer")]
    ProposerMismatch { key: PublicKey, named: Address },
    #[error("invalid certificate: {0}")]
    InvalidCert(CertError),
    #[error("proposal for round {round} carries no round-change certificate")]
    Unjustified { round: Round },
    #[error("proposal for round 0 carries a round-change certificate")]
    JustifiedRoundZero,
    #[error(
        "proposal for round {round} offers block {got}, but its round changes name the prepared \
         block {required}"
    )]
    NotThePreparedBlock {
        round: Round,
        required: Hash,
        got: Hash,
    },
    #[error("block {block} at height {got} offered for height {expected}")]
    WrongHeight {
        block: Hash,
        expected: Height,
        got: Height,
    },
    #[error("block {block} extends {parent}, not the committed tip {tip}")]
    WrongParent {
        block: Hash,
        parent: Hash,
        tip: Hash,
    },
    #[error("round change carries block {got:?}, but its prepare certificate names {expected:?}")]
    PreparedBlockMismatch {
        expected: Option<Hash>,
        got: Option<Hash>,
    },
    #[error("{what} for height {height} is behind this node's height {current}")]
    StaleHeight {
        what: &'static str,
        height: Height,
        current: Height,
    },
    #[error("{what} for height {height} is ahead of this node's height {current}")]
    FutureHeight {
        what: &'static str,
        height: Height,
        current: Height,
    },
    #[error("{what} for round {round} is stale; the current round is {current}")]
    StaleRound {
        what: &'static str,
        round: Round,
        current: Round,
    },
    #[error("{what} for round {round} is too far ahead of the current round {current}")]
    FutureRound {
        what: &'static str,
        round: Round,
        current: Round,
    },
    #[error("duplicate {what} from {key} for round {round}")]
    Duplicate {
        what: &'static str,
        key: PublicKey,
        round: Round,
    },
    #[error("equivocating {what} from {key} in round {round}")]
    Equivocation {
        what: &'static str,
        key: PublicKey,
        round: Round,
    },
    #[error("safety rules refused: {0}")]
    Safety(SafetyError),
    #[error("candidate-block buffer full; dropped block {block}")]
    CandidatesFull { block: Hash },
    #[error("payload for height {height} round {round} refused: {reason}")]
    PayloadMismatch {
        height: Height,
        round: Round,
        reason: &'static str,
    },
    #[error("timer for height {height} round {round} fired at {current_height}/{current_round}")]
    StaleTimer {
        height: Height,
        round: Round,
        current_height: Height,
        current_round: Round,
    },
    #[error("no committed blocks from height {from_height} to serve")]
    NothingToServe { from_height: Height },
    #[error("sync response refused: {reason}")]
    BadSync { reason: &'static str },
    #[error("sync response from {from}, who was not asked")]
    UnsolicitedSync { from: PublicKey },
    #[error("sync response is not a committed chain from the height asked: {reason}")]
    ForgedSync { reason: &'static str },
    #[error("block {block} proposed by {proposer} for round {round} gets no prepare: {reason}")]
    AheadOfClock {
        block: Hash,
        round: Round,
        proposer: PublicKey,
        reason: String,
    },
    #[error("block {block} proposed by {proposer} for round {round} is invalid: {reason}")]
    InvalidBlock {
        block: Hash,
        round: Round,
        proposer: PublicKey,
        reason: String,
    },
}

impl DropReason {
    /// A stable, low-cardinality name for counters.
    pub fn label(&self) -> &'static str {
        match self {
            DropReason::Malformed { .. } => "malformed",
            DropReason::OutOfBounds(_) => "out_of_bounds",
            DropReason::NotAValidator { .. } => "not_a_validator",
            DropReason::BadSignature { .. } => "bad_signature",
            DropReason::NotPbft { .. } => "not_pbft",
            DropReason::WrongTurn { .. } => "wrong_turn",
            DropReason::WrongProposer { .. } => "wrong_leader",
            DropReason::ProposerMismatch { .. } => "proposer_mismatch",
            DropReason::InvalidCert(_) => "invalid_cert",
            DropReason::Unjustified { .. } => "unjustified_round",
            DropReason::JustifiedRoundZero => "justified_round_zero",
            DropReason::NotThePreparedBlock { .. } => "not_the_prepared_block",
            DropReason::WrongHeight { .. } => "wrong_height",
            DropReason::WrongParent { .. } => "wrong_parent",
            DropReason::PreparedBlockMismatch { .. } => "prepared_block_mismatch",
            DropReason::StaleHeight { .. } => "stale_height",
            DropReason::FutureHeight { .. } => "future_height",
            DropReason::StaleRound { .. } => "stale_round",
            DropReason::FutureRound { .. } => "future_round",
            DropReason::Duplicate { .. } => "duplicate",
            DropReason::Equivocation { .. } => "equivocation",
            DropReason::Safety(_) => "safety_rules",
            DropReason::CandidatesFull { .. } => "pending_full",
            DropReason::PayloadMismatch { .. } => "payload_mismatch",
            DropReason::StaleTimer { .. } => "stale_timer",
            DropReason::NothingToServe { .. } => "nothing_to_serve",
            DropReason::BadSync { .. } => "bad_sync",
            DropReason::UnsolicitedSync { .. } => "unsolicited_sync",
            DropReason::ForgedSync { .. } => "forged_sync",
            DropReason::AheadOfClock { .. } => "ahead_of_clock",
            DropReason::InvalidBlock { .. } => "invalid_block",
        }
    }

    /// Whether only a faulty or malicious peer sends what this refuses (bytes that do not
    /// decode or break a bound, a signer outside the set, a signature, certificate or
    /// justification that does not verify, a block that is not what its signed message
    /// says, a forged sync answer, two conflicting signatures, an invalid block). Every
    /// other reason also happens between honest nodes.
    pub fn is_fault(&self) -> bool {
        // Spelled out, so a new reason has to be placed on one side.
        match self {
            DropReason::Malformed { .. }
            | DropReason::OutOfBounds(_)
            | DropReason::NotAValidator { .. }
            | DropReason::BadSignature { .. }
            | DropReason::NotPbft { .. }
            | DropReason::WrongTurn { .. }
            | DropReason::ProposerMismatch { .. }
            | DropReason::InvalidCert(_)
            | DropReason::Unjustified { .. }
            | DropReason::JustifiedRoundZero
            | DropReason::NotThePreparedBlock { .. }
            | DropReason::WrongHeight { .. }
            | DropReason::PreparedBlockMismatch { .. }
            | DropReason::ForgedSync { .. }
            | DropReason::Equivocation { .. }
            | DropReason::InvalidBlock { .. } => true,
            DropReason::WrongProposer { .. }
            | DropReason::WrongParent { .. }
            | DropReason::StaleHeight { .. }
            | DropReason::FutureHeight { .. }
            | DropReason::StaleRound { .. }
            | DropReason::FutureRound { .. }
            | DropReason::Duplicate { .. }
            | DropReason::Safety(_)
            | DropReason::CandidatesFull { .. }
            | DropReason::PayloadMismatch { .. }
            | DropReason::StaleTimer { .. }
            | DropReason::NothingToServe { .. }
            | DropReason::BadSync { .. }
            | DropReason::UnsolicitedSync { .. }
            | DropReason::AheadOfClock { .. } => false,
        }
    }
}
