//! The seam between the BFT driver and its engine: HotStuff and PBFT share one driver, and
//! each engine's effects arrive here as [`Step`]s, with its messages already encoded.
//!
//! Both engines keep the same contract (persist before send, validate before vote, commit
//! with a certificate, fetch certified blocks), so the translation is one match per engine.
//!
//! Owns: [`BftEngine`], [`Step`] and the two translations. Never: decides anything; every
//! choice stays in the engines, every action in the driver.

use cairn_consensus::{hotstuff, pbft};
use cairn_ledger::block::{Block, QuorumCert, Seal};
use cairn_ledger::codec::CodecError;
use cairn_ledger::{Hash, Height, PublicKey, Round};

pub use cairn_consensus::hotstuff::{SyncRequest, SyncResponse, Validity};

use crate::host::status::PassedOverStatus;

/// Which timer fired: HotStuff's carry height 0 (its rounds never restart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timer {
    pub height: Height,
    pub round: Round,
}

/// One effect, as the driver executes it.
#[derive(Debug)]
pub enum Step {
    /// The encoded safety state, durable before any later send of the batch.
    Persist(Vec<u8>),
    StoreBlock(Block),
    Validate(Hash),
    DiscardBlocks(Vec<Hash>),
    /// `vote` names the block a vote in `bytes` is for (the driver checks it judged it).
    Send {
        to: PublicKey,
        bytes: Vec<u8>,
        vote: Option<Hash>,
    },
    /// `proposal` names the block a proposal in `bytes` offers (for commit latency).
    Broadcast {
        bytes: Vec<u8>,
        proposal: Option<Hash>,
    },
    Timer {
        timer: Timer,
        after_ms: u64,
    },
    /// Build the block at `height` on `parent` sealed with `seal`, proposed by this node.
    RequestPayload {
        height: Height,
        parent: Hash,
        seal: Seal,
    },
    Commit {
        blocks: Vec<Block>,
        qc: QuorumCert,
    },
    /// Send `bytes` (a sync request) to `from`.
    Fetch {
        from: PublicKey,
        bytes: Vec<u8>,
    },
    Evidence {
        offender: PublicKey,
        detail: String,
    },
    Dropped {
        from: Option<PublicKey>,
        label: &'static str,
        reason: String,
        /// Only a faulty peer sends what this refuses.
        fault: bool,
        /// This validator's key signs elsewhere: the node must stop.
        signed_elsewhere: bool,
    },
}

/// A decoded peer message, with what the driver handles itself picked out.
pub enum Inbound<M> {
    /// The request, and the message to hand the engine if the store does not answer it.
    SyncRequest(SyncRequest, M),
    SyncResponse(M),
    Other(M),
}

/// What `status` and the gauges show of the engine.
pub struct View {
    pub round: Round,
    /// The height being decided, for engines whose rounds restart at each height.
    pub height: Option<Height>,
    pub leader: PublicKey,
    /// Rounds since the last commit (HotStuff) or rounds of the current height (PBFT).
    pub rounds_without_commit: u64,
    /// The highest timeout certificate's round (HotStuff only).
    pub tc_round: Option<Round>,
}

pub trait BftEngine: Send + 'static {
    type Message: Send;
    /// The name `status` shows.
    const NAME: &'static str;

    fn public_key(&self) -> PublicKey;
    fn is_validator(&self) -> bool;
    fn start(&mut self) -> Vec<Step>;
    fn decode(bytes: &[u8]) -> Result<Inbound<Self::Message>, CodecError>;
    fn on_message(&mut self, from: PublicKey, msg: Self::Message) -> Vec<Step>;
    fn on_timer(&mut self, timer: Timer) -> Vec<Step>;
    fn on_payload(&mut self, block: Block) -> Vec<Step>;
    fn on_validity(&mut self, block: Hash, validity: Validity) -> Vec<Step>;
    fn encode_sync_response(response: SyncResponse) -> Vec<u8>;
    /// Whether a timer for `timer` would still end a round (for the timeout counter).
    fn is_current(&self, timer: Timer) -> bool;
    fn view(&self) -> View;
    /// The genesis rule for choosing leaders, and whom it passes over now.
    fn election(&self) -> (&'static str, Vec<PassedOverStatus>);
}

fn passed_over_status(
    list: Vec<(PublicKey, cairn_consensus::bft::PassedOver)>,
) -> Vec<PassedOverStatus> {
    list.into_iter()
        .map(|(key, p)| PassedOverStatus {
            validator: key.address(),
            failed_round: p.failure.round,
            failed_turns: p.failure.strikes,
            until: p.until,
        })
        .collect()
}

fn dropped(
    from: Option<PublicKey>,
    label: &'static str,
    reason: &impl std::fmt::Display,
    fault: bool,
    signed_elsewhere: bool,
) -> Step {
    Step::Dropped {
        from,
        label,
        reason: reason.to_string(),
        fault,
        signed_elsewhere,
    }
}

fn hotstuff_step(effect: hotstuff::Effect) -> Step {
    use hotstuff::{DropReason, Effect, Message, SafetyError};
    match effect {
        Effect::Persist(state) => Step::Persist(state.encode()),
        Effect::StoreBlock(b) => Step::StoreBlock(b),
        Effect::Validate { block } => Step::Validate(block),
        Effect::DiscardBlocks(ids) => Step::DiscardBlocks(ids),
        Effect::Send { to, msg } => Step::Send {
            to,
            vote: match &msg {
                Message::Vote(v) => Some(v.block),
                _ => None,
            },
            bytes: msg.encode(),
        },
        Effect::Broadcast(msg) => Step::Broadcast {
            proposal: match &msg {
                Message::Proposal(p) => Some(p.block.hash()),
                _ => None,
            },
            bytes: msg.encode(),
        },
        Effect::ScheduleTimeout { round, after_ms } => Step::Timer {
            timer: Timer {
                height: Height(0),
                round,
            },
            after_ms,
        },
        Effect::RequestPayload {
            round,
            height,
            parent,
            justify,
        } => Step::RequestPayload {
            height,
            parent,
            seal: Seal::HotStuff { round, justify },
        },
        Effect::Commit { blocks, qc } => Step::Commit { blocks, qc },
        Effect::FetchBlocks { from, request } => Step::Fetch {
            from,
            bytes: Message::SyncRequest(request).encode(),
        },
        Effect::Evidence(e) => Step::Evidence {
            offender: e.offender(),
            detail: format!("{e:?}"),
        },
        Effect::Dropped { from, reason } => {
            let elsewhere = matches!(
                reason,
                DropReason::Safety(SafetyError::SignedElsewhere { .. })
            );
            dropped(from, reason.label(), &reason, reason.is_fault(), elsewhere)
        }
    }
}

fn hotstuff_steps(effects: Vec<hotstuff::Effect>) -> Vec<Step> {
    effects.into_iter().map(hotstuff_step).collect()
}

impl BftEngine for hotstuff::Engine {
    type Message = hotstuff::Message;
    const NAME: &'static str = "hotstuff";

    fn public_key(&self) -> PublicKey {
        hotstuff::Engine::public_key(self)
    }

    fn is_validator(&self) -> bool {
        hotstuff::Engine::is_validator(self)
    }

    fn start(&mut self) -> Vec<Step> {
        hotstuff_steps(hotstuff::Engine::start(self))
    }

    fn decode(bytes: &[u8]) -> Result<Inbound<Self::Message>, CodecError> {
        Ok(match hotstuff::Message::decode(bytes)? {
            hotstuff::Message::SyncRequest(r) => {
                Inbound::SyncRequest(r.clone(), hotstuff::Message::SyncRequest(r))
            }
            m @ hotstuff::Message::SyncResponse(_) => Inbound::SyncResponse(m),
            m => Inbound::Other(m),
        })
    }

    fn on_message(&mut self, from: PublicKey, msg: Self::Message) -> Vec<Step> {
        hotstuff_steps(self.handle(hotstuff::Input::Message(from, msg)))
    }

    fn on_timer(&mut self, timer: Timer) -> Vec<Step> {
        hotstuff_steps(self.handle(hotstuff::Input::Timeout(timer.round)))
    }

    fn on_payload(&mut self, block: Block) -> Vec<Step> {
        hotstuff_steps(self.handle(hotstuff::Input::Payload(block)))
    }

    fn on_validity(&mut self, block: Hash, validity: Validity) -> Vec<Step> {
        hotstuff_steps(self.handle(hotstuff::Input::Validity { block, validity }))
    }

    fn encode_sync_response(response: SyncResponse) -> Vec<u8> {
        hotstuff::Message::SyncResponse(Box::new(response)).encode()
    }

    fn is_current(&self, timer: Timer) -> bool {
        timer.round == self.current_round()
    }

    fn view(&self) -> View {
        let round = self.current_round();
        View {
            round,
            height: None,
            leader: self.leader_of(round),
            rounds_without_commit: round.0.saturating_sub(self.committed_round().0),
            tc_round: self.safety_state().highest_tc.as_ref().map(|tc| tc.round),
        }
    }

    fn election(&self) -> (&'static str, Vec<PassedOverStatus>) {
        (
            self.leader_election(),
            passed_over_status(self.passed_over()),
        )
    }
}

fn pbft_step(effect: pbft::Effect) -> Step {
    use pbft::{DropReason, Effect, Message, SafetyError};
    match effect {
        Effect::Persist(state) => Step::Persist(state.encode()),
        Effect::StoreBlock(b) => Step::StoreBlock(b),
        Effect::Validate { block } => Step::Validate(block),
        Effect::DiscardBlocks(ids) => Step::DiscardBlocks(ids),
        Effect::Send { to, msg } => Step::Send {
            to,
            vote: match &msg {
                Message::Prepare(v) => Some(v.block),
                _ => None,
            },
            bytes: msg.encode(),
        },
        Effect::Broadcast(msg) => Step::Broadcast {
            proposal: match &msg {
                Message::Proposal(p) => Some(p.block.hash()),
                _ => None,
            },
            bytes: msg.encode(),
        },
        Effect::ScheduleTimeout {
            height,
            round,
            after_ms,
        } => Step::Timer {
            timer: Timer { height, round },
            after_ms,
        },
        Effect::RequestPayload {
            height,
            parent,
            turn,
            parent_commit,
            ..
        } => Step::RequestPayload {
            height,
            parent,
            seal: Seal::Pbft {
                turn,
                parent_commit,
            },
        },
        Effect::Commit { blocks, qc } => Step::Commit { blocks, qc },
        Effect::FetchBlocks { from, request } => Step::Fetch {
            from,
            bytes: Message::SyncRequest(request).encode(),
        },
        Effect::Evidence(e) => Step::Evidence {
            offender: e.offender(),
            detail: format!("{e:?}"),
        },
        Effect::Dropped { from, reason } => {
            let elsewhere = matches!(
                reason,
                DropReason::Safety(SafetyError::SignedElsewhere { .. })
            );
            dropped(from, reason.label(), &reason, reason.is_fault(), elsewhere)
        }
    }
}

fn pbft_steps(effects: Vec<pbft::Effect>) -> Vec<Step> {
    effects.into_iter().map(pbft_step).collect()
}

impl BftEngine for pbft::Engine {
    type Message = pbft::Message;
    const NAME: &'static str = "pbft";

    fn public_key(&self) -> PublicKey {
        pbft::Engine::public_key(self)
    }

    fn is_validator(&self) -> bool {
        pbft::Engine::is_validator(self)
    }

    fn start(&mut self) -> Vec<Step> {
        pbft_steps(pbft::Engine::start(self))
    }

    fn decode(bytes: &[u8]) -> Result<Inbound<Self::Message>, CodecError> {
        Ok(match pbft::Message::decode(bytes)? {
            pbft::Message::SyncRequest(r) => {
                Inbound::SyncRequest(r.clone(), pbft::Message::SyncRequest(r))
            }
            m @ pbft::Message::SyncResponse(_) => Inbound::SyncResponse(m),
            m => Inbound::Other(m),
        })
    }

    fn on_message(&mut self, from: PublicKey, msg: Self::Message) -> Vec<Step> {
        pbft_steps(self.handle(pbft::Input::Message(from, msg)))
    }

    fn on_timer(&mut self, timer: Timer) -> Vec<Step> {
        pbft_steps(self.handle(pbft::Input::Timeout {
            height: timer.height,
            round: timer.round,
        }))
    }

    fn on_payload(&mut self, block: Block) -> Vec<Step> {
        pbft_steps(self.handle(pbft::Input::Payload(block)))
    }

    fn on_validity(&mut self, block: Hash, validity: Validity) -> Vec<Step> {
        pbft_steps(self.handle(pbft::Input::Validity { block, validity }))
    }

    fn encode_sync_response(response: SyncResponse) -> Vec<u8> {
        pbft::Message::SyncResponse(Box::new(response)).encode()
    }

    fn is_current(&self, timer: Timer) -> bool {
        (timer.height, timer.round) == (self.current_height(), self.current_round())
    }

    fn view(&self) -> View {
        let (height, round) = (self.current_height(), self.current_round());
        View {
            round,
            height: Some(height),
            leader: self.proposer_of(round),
            rounds_without_commit: round.0,
            tc_round: None,
        }
    }

    fn election(&self) -> (&'static str, Vec<PassedOverStatus>) {
        (
            self.leader_election(),
            passed_over_status(self.passed_over()),
        )
    }
}
