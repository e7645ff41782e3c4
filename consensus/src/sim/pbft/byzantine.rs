//! What Byzantine PBFT validators do to the messages their (otherwise honest) engine
//! produces: an equivocating proposer and double voters, silence, bad signatures, votes for
//! blocks nobody proposed, vote spam, junk bytes, invalid blocks, and round changes replayed
//! long after their round.
//!
//! Owns: the attack behaviours. Never: signs with anyone else's key.

use cairn_ledger::{Hash, Height, Round, Signature, TimestampMs};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::bft::Signer;
use crate::pbft::{
    Message, ProposalMsg, VoteMsg, commit_signing_bytes, prepare_signing_bytes,
    proposal_signing_bytes,
};
use crate::sim::hotstuff::Behaviour;

/// The behaviours a Byzantine PBFT validator draws from.
pub const PBFT_BEHAVIOURS: [Behaviour; 8] = [
    Behaviour::Silent,
    Behaviour::Equivocate,
    Behaviour::BadSignatures,
    Behaviour::UnknownVotes,
    Behaviour::VoteSpam,
    Behaviour::Junk,
    Behaviour::InvalidBlocks,
    Behaviour::StaleRoundChanges,
];

/// Copies of each of its votes a vote spammer sends, and votes for made-up blocks.
const SPAM_COPIES: usize = 16;
const SPAM_EQUIVOCATIONS: usize = 8;
/// Junk messages are up to this long.
const JUNK_BYTES_MAX: usize = 64 * 1024;
/// One in this many of a junk sender's messages gets junk added.
const JUNK_ONE_IN: u32 = 4;
/// Old round changes a stale-round-change sender adds to each message.
const STALE_REPLAYS: usize = 2;

/// What a Byzantine validator knows and holds while mangling one outgoing message.
pub struct Attacker<'a> {
    pub behaviour: Behaviour,
    pub signer: &'a dyn Signer,
    pub chain: Hash,
    /// Blocks proposed at the message's position, as seen on the wire.
    pub position_blocks: &'a [Hash],
    /// This validator's own earlier round changes.
    pub old_round_changes: &'a [Message],
}

fn corrupt(sig: &mut Signature, rng: &mut ChaCha8Rng) {
    let i = rng.gen_range(0..64);
    sig.0[i] ^= 1 << rng.gen_range(0..8);
}

impl Attacker<'_> {
    fn vote(&self, commit: bool, height: Height, round: Round, block: Hash) -> Message {
        let bytes = if commit {
            commit_signing_bytes(&self.chain, height, round, &block)
        } else {
            prepare_signing_bytes(&self.chain, height, round, &block)
        };
        let v = VoteMsg {
            height,
            round,
            block,
            voter: self.signer.public_key(),
            signature: self.signer.sign(&bytes),
        };
        if commit {
            Message::Commit(v)
        } else {
            Message::Prepare(v)
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
        if self.behaviour == Behaviour::Junk && rng.gen_ratio(1, JUNK_ONE_IN) {
            for &r in recipients {
                let len = rng.gen_range(1..=JUNK_BYTES_MAX);
                let mut bytes = vec![0u8; len];
                rng.fill(&mut bytes[..]);
                // Half of it starts like a real message, so decoding goes deeper.
                if rng.gen_bool(0.5) && len >= 4 {
                    let tag: u32 = rng.gen_range(0..6);
                    bytes[..4].copy_from_slice(&tag.to_le_bytes());
                }
                out.push((r, bytes));
            }
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
        let vote_of = |m: &Message| match m {
            Message::Prepare(v) => Some((false, v.clone())),
            Message::Commit(v) => Some((true, v.clone())),
            _ => None,
        };
        match self.behaviour {
            Behaviour::Silent => Vec::new(),
            // What they do wrong happens in the world (`world.rs`), not on the wire.
            Behaviour::Junk
            | Behaviour::InvalidBlocks
            | Behaviour::StaleRestart
            | Behaviour::SyncFlood => plain(&msg),
            Behaviour::StaleRoundChanges => {
                let mut out = plain(&msg);
                let mut old: Vec<&Message> = self.old_round_changes.iter().collect();
                old.shuffle(rng);
                for m in old.into_iter().take(STALE_REPLAYS) {
                    out.extend(plain(m));
                }
                out
            }
            Behaviour::VoteSpam => {
                let mut out = plain(&msg);
                if let Some((commit, v)) = vote_of(&msg) {
                    for _ in 0..SPAM_COPIES {
                        out.extend(plain(&msg));
                    }
                    for _ in 0..SPAM_EQUIVOCATIONS {
                        let other = self.vote(commit, v.height, v.round, Hash(rng.r#gen()));
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
                            Message::Prepare(v) | Message::Commit(v) => {
                                corrupt(&mut v.signature, rng)
                            }
                            Message::RoundChange(rc) => corrupt(&mut rc.signature, rng),
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
                if let Some((commit, v)) = vote_of(&msg) {
                    for ahead in 0..3u64 {
                        let bogus = Hash(rng.r#gen());
                        let extra = self.vote(commit, v.height, Round(v.round.0 + ahead), bogus);
                        out.extend(plain(&extra));
                    }
                }
                out
            }
            Behaviour::Equivocate => match msg {
                Message::Proposal(p) => self.fork_proposal(rng, recipients, *p),
                other => {
                    let mut out = plain(&other);
                    if let Some((commit, v)) = vote_of(&other) {
                        for &block in self.position_blocks.iter().filter(|&&b| b != v.block) {
                            out.extend(plain(&self.vote(commit, v.height, v.round, block)));
                        }
                    }
                    out
                }
            },
        }
    }

    /// Two blocks for one position, each signed: some recipients get one, some the other,
    /// and about a quarter get both (in either order). A re-proposal justified by prepared
    /// round changes is forked too; its twin then fails the justification rule.
    fn fork_proposal(
        &self,
        rng: &mut ChaCha8Rng,
        recipients: &[usize],
        p: ProposalMsg,
    ) -> Vec<(usize, Message)> {
        let mut twin = p.clone();
        twin.block.header.timestamp = TimestampMs(p.block.header.timestamp.0 + 1);
        twin.signature = self.signer.sign(&proposal_signing_bytes(
            &self.chain,
            p.height,
            p.round,
            &twin.block.hash(),
        ));
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
