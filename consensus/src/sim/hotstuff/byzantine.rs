//! What Byzantine validators do to the messages their (otherwise honest) engine produces.
//!
//! A Byzantine validator runs a normal engine, so it takes part in rounds like anyone; its
//! outgoing messages then pass through [`mangle`], which may drop, corrupt, fork or add to
//! them, signing the additions with the validator's own key, or add bytes of its own
//! (floods of forged sync answers, junk up to the decoder's bound).
//!
//! Owns: the attack behaviours. Never: signs with anyone else's key.

use cairn_ledger::block::{Block, QuorumCert, Seal};
use cairn_ledger::{Hash, Round, Signature, TimestampMs};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::faults::Behaviour;
use crate::hotstuff::{
    Message, ProposalMsg, SYNC_BLOCKS_MAX, Signer, SyncResponse, TREE_BLOCKS_MAX, VoteMsg,
    proposal_signing_bytes, vote_signing_bytes,
};

/// Uncertified siblings per forged sync answer: the answer is `[B, siblings…, B]`, so the
/// certified block B both anchors them and ends the answer its public QC certifies.
const FLOOD_SIBLINGS: usize = SYNC_BLOCKS_MAX - 2;
/// Forged answers per victim in one flood: enough siblings to fill a block tree.
pub const FLOOD_ANSWERS: usize = TREE_BLOCKS_MAX / FLOOD_SIBLINGS + 2;
/// Copies of each of its votes a vote spammer sends, and votes for made-up blocks.
const SPAM_COPIES: usize = 16;
const SPAM_EQUIVOCATIONS: usize = 8;
/// Junk messages are up to this long: over every consensus bound but the largest.
const JUNK_BYTES_MAX: usize = 64 * 1024;
/// One in this many of a junk sender's messages gets junk added.
const JUNK_ONE_IN: u32 = 4;

/// What a Byzantine validator knows and holds while mangling one outgoing message.
pub struct Attacker<'a> {
    pub behaviour: Behaviour,
    pub signer: &'a dyn Signer,
    pub chain: Hash,
    /// Blocks proposed in the message's round, as seen on the wire.
    pub round_blocks: &'a [Hash],
    /// Index of the leader of a round.
    pub leader_of: &'a dyn Fn(Round) -> usize,
    /// Sync flood only: flood now, with the highest certified block known and its QC.
    pub flood: Option<(&'a Block, &'a QuorumCert)>,
    /// Every other validator.
    pub everyone: &'a [usize],
}

fn corrupt(sig: &mut Signature, rng: &mut ChaCha8Rng) {
    let i = rng.gen_range(0..64);
    sig.0[i] ^= 1 << rng.gen_range(0..8);
}

impl Attacker<'_> {
    fn vote(&self, round: Round, block: Hash) -> VoteMsg {
        VoteMsg {
            round,
            block,
            voter: self.signer.public_key(),
            signature: self
                .signer
                .sign(&vote_signing_bytes(&self.chain, round, &block)),
        }
    }

    /// The bytes actually sent for `msg` addressed to `recipients`: (recipient, bytes).
    pub fn mangle(
        &self,
        rng: &mut ChaCha8Rng,
        recipients: &[usize],
        msg: Message,
    ) -> Vec<(usize, Vec<u8>)> {
        let mut out: Vec<(usize, Vec<u8>)> = self
            .mangle_message(rng, recipients, msg)
            .into_iter()
            .map(|(r, m)| (r, m.encode()))
            .collect();
        match self.behaviour {
            Behaviour::SyncFlood => {
                if let Some((block, qc)) = self.flood {
                    for _ in 0..FLOOD_ANSWERS {
                        let bytes = forged_answer(rng, block, qc).encode();
                        out.extend(self.everyone.iter().map(|&r| (r, bytes.clone())));
                    }
                }
            }
            Behaviour::Junk if rng.gen_ratio(1, JUNK_ONE_IN) => {
                for &r in recipients {
                    let len = rng.gen_range(1..=JUNK_BYTES_MAX);
                    let mut bytes = vec![0u8; len];
                    rng.fill(&mut bytes[..]);
                    // Half of it starts like a real message, so decoding goes deeper.
                    if rng.gen_bool(0.5) && len >= 4 {
                        let tag: u32 = rng.gen_range(0..5);
                        bytes[..4].copy_from_slice(&tag.to_le_bytes());
                    }
                    out.push((r, bytes));
                }
            }
            _ => {}
        }
        out
    }

    fn mangle_message(
        &self,
        rng: &mut ChaCha8Rng,
        recipients: &[usize],
        msg: Message,
    ) -> Vec<(usize, Message)> {
        let plain = |m: &Message| {
            recipients
                .iter()
                .map(|&r| (r, m.clone()))
                .collect::<Vec<_>>()
        };
        match self.behaviour {
            Behaviour::Silent => Vec::new(),
            // What they do wrong happens in the world (`world.rs`), not on the wire.
            Behaviour::Junk
            | Behaviour::InvalidBlocks
            | Behaviour::StaleRestart
            | Behaviour::StaleRoundChanges => plain(&msg),
            Behaviour::SyncFlood => match msg {
                // Asked for blocks, it answers with uncertified siblings instead.
                Message::SyncResponse(r) => match r.blocks.last() {
                    Some(last) => plain(&forged_answer(rng, last, &r.tip_qc)),
                    None => Vec::new(),
                },
                other => plain(&other),
            },
            Behaviour::VoteSpam => {
                let mut out = plain(&msg);
                if let Message::Vote(v) = &msg {
                    for _ in 0..SPAM_COPIES {
                        out.extend(plain(&msg));
                    }
                    for _ in 0..SPAM_EQUIVOCATIONS {
                        let other = Message::Vote(self.vote(v.round, Hash(rng.r#gen())));
                        out.extend(plain(&other));
                    }
                }
                out
            }
            Behaviour::BadSignatures => recipients
                .iter()
                .map(|&r| {
                    let mut m = msg.clone();
                    if rng.gen_bool(0.5) {
                        match &mut m {
                            Message::Proposal(p) => corrupt(&mut p.signature, rng),
                            Message::Vote(v) => corrupt(&mut v.signature, rng),
                            Message::Timeout(t) => corrupt(&mut t.signature, rng),
                            Message::SyncResponse(s) => {
                                if let Some((_, sig)) = s.tip_qc.votes.first_mut() {
                                    corrupt(sig, rng);
                                }
                            }
                            Message::SyncRequest(_) => {}
                        }
                    }
                    (r, m)
                })
                .collect(),
            Behaviour::UnknownVotes => {
                let mut out = plain(&msg);
                if let Message::Vote(v) = &msg {
                    for ahead in 0..3u64 {
                        let round = Round(v.round.0 + ahead);
                        let bogus = Hash(rng.r#gen());
                        let to = (self.leader_of)(Round(round.0 + 1));
                        out.push((to, Message::Vote(self.vote(round, bogus))));
                    }
                }
                out
            }
            Behaviour::Equivocate => match msg {
                Message::Proposal(p) => self.fork_proposal(rng, recipients, *p),
                Message::Vote(v) => {
                    let mut out = plain(&Message::Vote(v.clone()));
                    for &block in self.round_blocks.iter().filter(|&&b| b != v.block) {
                        let extra = Message::Vote(self.vote(v.round, block));
                        out.extend(recipients.iter().map(|&r| (r, extra.clone())));
                    }
                    out
                }
                other => plain(&other),
            },
        }
    }

    /// Two blocks for one round, each signed: some recipients get one, some the other, and
    /// about a quarter get both (in either order), which tempts them to vote twice.
    fn fork_proposal(
        &self,
        rng: &mut ChaCha8Rng,
        recipients: &[usize],
        p: ProposalMsg,
    ) -> Vec<(usize, Message)> {
        let Some((round, _)) = p.round_and_justify() else {
            return Vec::new();
        };
        let mut twin = p.clone();
        twin.block.header.timestamp = TimestampMs(p.block.header.timestamp.0 + 1);
        if let Seal::HotStuff { .. } = twin.block.header.seal {
            twin.signature = self.signer.sign(&proposal_signing_bytes(
                &self.chain,
                round,
                &twin.block.hash(),
            ));
        }
        let mut shuffled = recipients.to_vec();
        shuffled.shuffle(rng);
        let half = shuffled.len() / 2 + rng.gen_range(0..=1);
        let mut out = Vec::new();
        for (i, &r) in shuffled.iter().enumerate() {
            let (first, second) = if i < half { (&p, &twin) } else { (&twin, &p) };
            out.push((r, Message::Proposal(Box::new(first.clone()))));
            if rng.gen_ratio(1, 4) {
                out.push((r, Message::Proposal(Box::new(second.clone()))));
            }
        }
        out
    }
}

/// A sync answer an old engine would take whole: the certified block `b`, then uncertified
/// children of it justified by its public QC, then `b` again so `qc` certifies the last
/// block. It is not one chain and its middle is certified by nobody.
pub fn forged_answer(rng: &mut ChaCha8Rng, b: &Block, qc: &QuorumCert) -> Message {
    let mut blocks = Vec::with_capacity(SYNC_BLOCKS_MAX);
    blocks.push(b.clone());
    let round = Round(qc.round.0.saturating_add(1));
    let salt: u64 = rng.r#gen();
    for i in 0..FLOOD_SIBLINGS as u64 {
        let mut child = b.clone();
        child.transactions.clear();
        child.header.height = b.header.height.next();
        child.header.parent = b.hash();
        child.header.timestamp = TimestampMs(salt.wrapping_add(i));
        child.header.seal = Seal::HotStuff {
            round,
            justify: qc.clone(),
        };
        blocks.push(child);
    }
    blocks.push(b.clone());
    Message::SyncResponse(Box::new(SyncResponse {
        blocks,
        tip_qc: qc.clone(),
    }))
}
