//! The engine's interface to its driver: what goes in ([`Input`]), what comes out
//! ([`Effect`]), the proofs of misbehaviour it yields ([`Evidence`]) and why it refuses
//! things ([`DropReason`]).
//!
//! Owns: these types and their documentation, which is the driver's contract. Never:
//! behaviour; the engine decides, the driver executes.

use cairn_ledger::block::{Block, QuorumCert};
use cairn_ledger::{Address, Hash, Height, PublicKey, Round};

use super::block_tree::TreeError;
use super::certs::CertError;
use super::messages::{BoundsError, Message, SignedProposal, SyncRequest, VoteMsg};
use super::safety::{SafetyError, SafetyState};

/// Everything that can happen to the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A decoded message from peer `0` (the peer's validator key as the transport
    /// authenticated it; signed content is checked against its own signer regardless).
    Message(PublicKey, Message),
    /// Raw bytes from a peer: decoded here with the per-type bound, dropped with a reason
    /// when malformed.
    Bytes(PublicKey, Vec<u8>),
    /// The timer scheduled by `Effect::ScheduleTimeout` for this round fired.
    Timeout(Round),
    /// The block the driver built in answer to `Effect::RequestPayload`.
    Payload(Block),
    /// The driver's judgement of `block`, asked for by `Effect::Validate`. Answers for
    /// blocks the engine is not waiting on (unknown, already answered, or from a round it
    /// has left) are ignored.
    Validity { block: Hash, validity: Validity },
}

/// Whether a proposed block may get this node's vote: its transactions execute on its
/// ancestors' state and its header (state root, timestamp) holds, by the driver's ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Validity {
    Valid,
    Invalid {
        reason: String,
    },
    /// Valid by everything but this node's clock: its timestamp is further ahead than the
    /// node allows. No vote, but no fault either: a proposer whose clock runs fast is not a
    /// Byzantine one, and this node's clock may be the one that is wrong. The block stays in
    /// the tree, so that the others may still certify it.
    AheadOfClock {
        reason: String,
    },
}

/// What the driver must do, in the order given. Within one `Vec`, a `Persist` must be
/// durable before any later `Send`, `Broadcast` or `FetchBlocks` of the same `Vec` leaves
/// the process; everything else may run as it comes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Write the safety state durably (fsync) before executing any later Send/Broadcast of
    /// this batch; after a crash, pass the last state written to `Engine::new`.
    Persist(Box<SafetyState>),
    /// Keep this uncommitted block durably, like the safety state before any later
    /// Send/Broadcast of this batch: a validator must still hold every block it voted for
    /// after a crash, or a certified block could vanish with every copy. Pass the stored
    /// blocks back in `RestartState::blocks`; blocks at or below a committed height may be
    /// deleted once `Commit` has been applied.
    StoreBlock(Block),
    /// Judge the proposed block `block` (handed over by an earlier `StoreBlock`) and answer
    /// with `Input::Validity`; the engine votes for it only on `Validity::Valid`, and only
    /// while it is still in the block's round. Answer at once: a late answer costs the
    /// vote. Blocks that arrive certified (by sync) and this node's own proposals are not
    /// asked about.
    Validate { block: Hash },
    /// These blocks, stored through `StoreBlock` before a restart, will never be needed:
    /// delete them from the store. Yielded once, by `Engine::start`.
    DiscardBlocks(Vec<Hash>),
    /// Send `msg` to validator `to` (best effort; the protocol tolerates loss).
    Send { to: PublicKey, msg: Message },
    /// Send `msg` to every other validator; the engine has already handled its own copy.
    Broadcast(Message),
    /// Deliver `Input::Timeout(round)` after `after_ms` of local time. Timers for rounds the
    /// engine has left are ignored by it, so the driver need not cancel them.
    ScheduleTimeout { round: Round, after_ms: u64 },
    /// This node leads `round`: build a block at `height` whose header has `parent` and
    /// `Seal::HotStuff { round, justify }`, proposer = this node's address, and hand it
    /// back as `Input::Payload`. Not answering only costs the round.
    RequestPayload {
        round: Round,
        height: Height,
        parent: Hash,
        justify: QuorumCert,
    },
    /// These blocks are final: apply and store them in order (lowest height first). Each
    /// block is committed exactly once. `qc` certifies the last block; keep it with that
    /// block and pass both to `Engine::new` after a restart.
    Commit { blocks: Vec<Block>, qc: QuorumCert },
    /// Ask peer `from` for certified blocks: send it `Message::SyncRequest(request)` (or
    /// serve the request from the local store if the driver knows better); the answer
    /// arrives as an ordinary `Input::Message`.
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

/// Two conflicting signed statements by one validator for one round; each verifies alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    ConflictingProposals {
        first: SignedProposal,
        second: SignedProposal,
    },
    ConflictingVotes {
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
    #[error("block {block} is not a HotStuff block")]
    NotHotStuff { block: Hash },
    #[error("proposal for round {round} names proposer {got}; the leader is {expected}")]
    WrongLeader {
        round: Round,
        expected: Address,
        got: Address,
    },
    #[error("invalid certificate: {0}")]
    InvalidCert(CertError),
    #[error(
        "proposal for round {round} is justified neither by its QC (round {qc_round}) nor by \
         a TC (round {tc_round:?})"
    )]
    UnjustifiedRound {
        round: Round,
        qc_round: Round,
        tc_round: Option<Round>,
    },
    #[error("{what} for round {round} is stale; the current round is {current}")]
    StaleRound {
        what: &'static str,
        round: Round,
        current: Round,
    },
    #[error("{what} for round {round} is ahead of the current round {current}")]
    FutureRound {
        what: &'static str,
        round: Round,
        current: Round,
    },
    #[error("vote for round {round} sent here, but the next leader is {leader}")]
    NotNextLeader { round: Round, leader: PublicKey },
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
    #[error("block refused: {0}")]
    Tree(TreeError),
    #[error("block {block} extends {parent}, which is not on the committed chain")]
    ConflictsWithCommitted { block: Hash, parent: Hash },
    #[error("safety rules refused: {0}")]
    Safety(SafetyError),
    #[error("pending-block buffer full; dropped the proposal of round {round}")]
    PendingFull { round: Round },
    #[error("payload for round {round} refused: {reason}")]
    PayloadMismatch { round: Round, reason: &'static str },
    #[error("timer for round {round} fired in round {current}")]
    StaleTimer { round: Round, current: Round },
    #[error("no certified blocks from height {from_height} to serve")]
    NothingToServe { from_height: Height },
    #[error("sync response refused: {reason}")]
    BadSync { reason: &'static str },
    #[error("sync response from {from}, who was not asked")]
    UnsolicitedSync { from: PublicKey },
    #[error("sync response is not a certified chain from the height asked: {reason}")]
    ForgedSync { reason: &'static str },
    #[error("second vote from {key} for round {round}")]
    RepeatedVote { key: PublicKey, round: Round },
    #[error("equivocating vote from {key} in round {round}")]
    EquivocatingVote { key: PublicKey, round: Round },
    /// The driver judged the block ahead of this node's clock (`Validity::AheadOfClock`).
    #[error(
        "block {block} proposed by {proposer} for round {round} gets no vote: {reason} (check \
         the clocks of both nodes)"
    )]
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
    #[error("proposal for round {round} names proposer {proposer}, who is not a validator")]
    UnknownProposer { round: Round, proposer: Address },
}

impl DropReason {
    /// A stable, low-cardinality name for counters.
    pub fn label(&self) -> &'static str {
        match self {
            DropReason::Malformed { .. } => "malformed",
            DropReason::OutOfBounds(_) => "out_of_bounds",
            DropReason::NotAValidator { .. } => "not_a_validator",
            DropReason::BadSignature { .. } => "bad_signature",
            DropReason::NotHotStuff { .. } => "not_hotstuff",
            DropReason::WrongLeader { .. } => "wrong_leader",
            DropReason::InvalidCert(_) => "invalid_cert",
            DropReason::UnjustifiedRound { .. } => "unjustified_round",
            DropReason::StaleRound { .. } => "stale_round",
            DropReason::FutureRound { .. } => "future_round",
            DropReason::NotNextLeader { .. } => "not_next_leader",
            DropReason::Duplicate { .. } => "duplicate",
            DropReason::Equivocation { .. } => "equivocation",
            DropReason::Tree(_) => "block_refused",
            DropReason::ConflictsWithCommitted { .. } => "conflicts_with_committed",
            DropReason::Safety(_) => "safety_rules",
            DropReason::PendingFull { .. } => "pending_full",
            DropReason::PayloadMismatch { .. } => "payload_mismatch",
            DropReason::StaleTimer { .. } => "stale_timer",
            DropReason::NothingToServe { .. } => "nothing_to_serve",
            DropReason::BadSync { .. } => "bad_sync",
            DropReason::UnsolicitedSync { .. } => "unsolicited_sync",
            DropReason::ForgedSync { .. } => "forged_sync",
            DropReason::RepeatedVote { .. } => "repeated_vote",
            DropReason::EquivocatingVote { .. } => "equivocating_vote",
            DropReason::InvalidBlock { .. } => "invalid_block",
            DropReason::AheadOfClock { .. } => "ahead_of_clock",
            DropReason::UnknownProposer { .. } => "unknown_proposer",
        }
    }

    /// Whether only a faulty or malicious peer sends what this refuses: bytes that do not
    /// decode or break a bound, a signer outside the set, a signature or a certificate that
    /// does not verify, a sync answer nobody asked it for or that is not the certified
    /// chain asked for, a validator's second vote in one round (an honest validator sends
    /// one vote per round, once, to one leader), a proposal its driver judged invalid (the
    /// proposer signed a block that does not execute). Every other reason also happens between
    /// honest nodes (late or early messages, relayed duplicates, races between proposals
    /// and sync).
    pub fn is_fault(&self) -> bool {
        // Spelled out, so a new reason has to be placed on one side.
        match self {
            DropReason::Malformed { .. }
            | DropReason::OutOfBounds(_)
            | DropReason::NotAValidator { .. }
            | DropReason::BadSignature { .. }
            | DropReason::InvalidCert(_)
            | DropReason::ForgedSync { .. }
            | DropReason::RepeatedVote { .. }
            | DropReason::EquivocatingVote { .. }
            | DropReason::InvalidBlock { .. }
            | DropReason::UnknownProposer { .. } => true,
            DropReason::NotHotStuff { .. }
            | DropReason::AheadOfClock { .. }
            | DropReason::WrongLeader { .. }
            | DropReason::UnjustifiedRound { .. }
            | DropReason::StaleRound { .. }
            | DropReason::FutureRound { .. }
            | DropReason::NotNextLeader { .. }
            | DropReason::Duplicate { .. }
            | DropReason::Equivocation { .. }
            | DropReason::Tree(_)
            | DropReason::ConflictsWithCommitted { .. }
            | DropReason::Safety(_)
            | DropReason::PendingFull { .. }
            | DropReason::PayloadMismatch { .. }
            | DropReason::StaleTimer { .. }
            | DropReason::NothingToServe { .. }
            | DropReason::BadSync { .. }
            // An honest peer's answer that arrives after newer requests replaced the one it
            // answers looks the same; it is dropped before anything is verified, so it costs
            // a decode, not a strike.
            | DropReason::UnsolicitedSync { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_a_faulty_peer_sends_is_a_fault() {
        let key = PublicKey([1; 32]);
        let round = Round(3);
        let faults = [
            DropReason::Malformed {
                reason: "truncated".to_string(),
            },
            DropReason::OutOfBounds(BoundsError::TooManyBlocks { count: 999 }),
            DropReason::NotAValidator { what: "vote", key },
            DropReason::BadSignature { what: "vote", key },
            DropReason::InvalidCert(CertError::TcRoundZero),
            DropReason::ForgedSync { reason: "gap" },
            DropReason::RepeatedVote { key, round },
            DropReason::EquivocatingVote { key, round },
            DropReason::InvalidBlock {
                block: Hash::ZERO,
                round,
                proposer: key,
                reason: "bad state root".to_string(),
            },
            DropReason::UnknownProposer {
                round,
                proposer: key.address(),
            },
        ];
        for reason in &faults {
            assert!(reason.is_fault(), "{}", reason.label());
        }
        let honest = [
            DropReason::StaleRound {
                what: "vote",
                round,
                current: Round(4),
            },
            DropReason::FutureRound {
                what: "vote",
                round,
                current: Round(1),
            },
            DropReason::Duplicate {
                what: "vote",
                key,
                round,
            },
            DropReason::PendingFull { round },
            DropReason::UnsolicitedSync { from: key },
            DropReason::StaleTimer {
                round,
                current: Round(4),
            },
            DropReason::BadSync { reason: "empty" },
            DropReason::AheadOfClock {
                block: Hash::ZERO,
                round,
                proposer: key,
                reason: "timestamp 20 s ahead".to_string(),
            },
        ];
        for reason in &honest {
            assert!(!reason.is_fault(), "{}", reason.label());
        }
        // The node counts faults per peer by label; the two views must agree.
        let labels: Vec<&str> = faults.iter().map(DropReason::label).collect();
        assert_eq!(
            labels,
            [
                "malformed",
                "out_of_bounds",
                "not_a_validator",
                "bad_signature",
                "invalid_cert",
                "forged_sync",
                "repeated_vote",
                "equivocating_vote",
                "invalid_block",
                "unknown_proposer"
            ]
        );
    }
}
