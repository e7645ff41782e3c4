//! What Byzantine validators do to the messages their (otherwise honest) engine produces.
//!
//! A Byzantine validator runs a normal engine, so it takes part in rounds like anyone; its
//! outgoing messages then pass through [`mangle`], which may drop, corrupt, fork or add to
//! them, signing the additions with the validator's own key.
//!
//! Owns: the attack behaviours. Never: signs with anyone else's key.

use cairn_ledger::block::Seal;
use cairn_ledger::{Hash, Round, Signature, TimestampMs};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::faults::Behaviour;
use crate::hotstuff::{
    Message, ProposalMsg, Signer, VoteMsg, proposal_signing_bytes, vote_signing_bytes,
};

/// What a Byzantine validator knows and holds while mangling one outgoing message.
pub struct Attacker<'a> {
    pub behaviour: Behaviour,
    pub signer: &'a dyn Signer,
    pub chain: Hash,
    /// Blocks proposed in the message's round, as seen on the wire.
    pub round_blocks: &'a [Hash],
    /// Index of the leader of a round.
    pub leader_of: &'a dyn Fn(Round) -> usize,
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

    /// The messages actually sent for `msg` addressed to `recipients`: (recipient, message).
    pub fn mangle(
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
