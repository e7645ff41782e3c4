//! PBFT wire messages, their size bounds, and the exact bytes every signature covers.
//!
//! Owns: the message types, decoding with a per-type size bound, the signing domains.
//! Never: decides whether a message is acceptable (`certs.rs` and `engine.rs` do), and never
//! does I/O.

use cairn_ledger::block::{BLOCK_BYTES_MAX, Block, QC_VOTES_MAX, QuorumCert, check_body};
use cairn_ledger::codec::{self, CodecError};
use cairn_ledger::{Hash, Height, PublicKey, Round, Signature};
use serde::{Deserialize, Serialize};

pub use crate::hotstuff::{
    QC_BYTES_MAX, SYNC_BLOCKS_MAX, SYNC_REQUEST_BYTES_MAX, SYNC_RESPONSE_BYTES_MAX, SyncRequest,
    SyncResponse,
};

/// Signing domains: a NUL-terminated tag per message kind, distinct from HotStuff's, so a
/// signature made for one kind or one engine can never be replayed as another.
pub const PROPOSAL_DOMAIN: &[u8] = b"cairn/pbft/proposal/v1\0";
pub const PREPARE_DOMAIN: &[u8] = b"cairn/pbft/prepare/v1\0";
pub const COMMIT_DOMAIN: &[u8] = b"cairn/pbft/commit/v1\0";
pub const ROUND_CHANGE_DOMAIN: &[u8] = b"cairn/pbft/round-change/v1\0";

/// Encoded size of what a round change claims to have prepared: option tag, round, block.
const PREPARED_CLAIM_BYTES: usize = 1 + 8 + 32;
/// Largest round-change certificate: round, count, (signer, claim, signature) per validator,
/// and the optional prepare certificate of the highest claim.
pub const ROUND_CHANGE_CERT_BYTES_MAX: usize =
    8 + 8 + QC_VOTES_MAX * (32 + PREPARED_CLAIM_BYTES + 64) + 1 + QC_BYTES_MAX;
/// Largest proposal: tag, height, round, a maximal block, the optional justification, the
/// proposer and its signature.
pub const PROPOSAL_BYTES_MAX: usize =
    4 + 8 + 8 + BLOCK_BYTES_MAX + 1 + ROUND_CHANGE_CERT_BYTES_MAX + 32 + 64;
/// Prepares and commits are fixed-size: tag, height, round, block, voter, signature.
pub const VOTE_BYTES_MAX: usize = 4 + 8 + 8 + 32 + 32 + 64;
/// Largest round change: tag, height, round, the optional prepare certificate, the optional
/// prepared block, the sender and its signature.
pub const ROUND_CHANGE_BYTES_MAX: usize =
    4 + 8 + 8 + 1 + QC_BYTES_MAX + 1 + BLOCK_BYTES_MAX + 32 + 64;

/// The proposer of `(height, round)` offers `block`. For a round above 0, `justification`
/// proves that a quorum moved to this round and which block, if any, the proposer had to
/// offer again. The signature covers `proposal_signing_bytes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalMsg {
    pub height: Height,
    pub round: Round,
    pub block: Block,
    pub justification: Option<RoundChangeCert>,
    pub proposer: PublicKey,
    pub signature: Signature,
}

/// A prepare or a commit (which one is the `Message` variant, and the signing domain).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteMsg {
    pub height: Height,
    pub round: Round,
    pub block: Hash,
    pub voter: PublicKey,
    pub signature: Signature,
}

/// "Move `height` to `round`", with the highest prepare certificate the sender holds for
/// this height and the block it prepared, so the next proposer can offer that block again.
/// The signature covers (height, round, the certificate's round and block).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundChangeMsg {
    pub height: Height,
    pub round: Round,
    pub prepared: Option<QuorumCert>,
    pub block: Option<Block>,
    pub sender: PublicKey,
    pub signature: Signature,
}

impl RoundChangeMsg {
    /// What the signature covers about the prepared block.
    pub fn claim(&self) -> Option<PreparedClaim> {
        self.prepared.as_ref().map(|qc| PreparedClaim {
            round: qc.round,
            block: qc.block,
        })
    }
}

/// A round change's signed claim: "the highest round I prepared in, and for which block".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PreparedClaim {
    pub round: Round,
    pub block: Hash,
}

/// One signer's round change, reduced to what its signature covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundChangeSig {
    pub signer: PublicKey,
    pub prepared: Option<PreparedClaim>,
    pub signature: Signature,
}

/// A quorum of round changes to `round`, and the prepare certificate of the highest claim
/// among them (`None` when none claims one). A proposal justified by it must offer that
/// claim's block: the rule that keeps a block committed in an earlier round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundChangeCert {
    pub round: Round,
    pub signatures: Vec<RoundChangeSig>,
    pub prepared: Option<QuorumCert>,
}

/// Everything PBFT validators send each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Proposal(Box<ProposalMsg>),
    Prepare(VoteMsg),
    Commit(VoteMsg),
    RoundChange(Box<RoundChangeMsg>),
    SyncRequest(SyncRequest),
    SyncResponse(Box<SyncResponse>),
}

/// A proposal reduced to what its signature covers: enough to prove equivocation to anyone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedProposal {
    pub height: Height,
    pub round: Round,
    pub block: Hash,
    pub proposer: PublicKey,
    pub signature: Signature,
}

impl ProposalMsg {
    pub fn signed(&self) -> SignedProposal {
        SignedProposal {
            height: self.height,
            round: self.round,
            block: self.block.hash(),
            proposer: self.proposer,
            signature: self.signature,
        }
    }
}

/// Why a decoded message is structurally unacceptable before any signature is looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundsError {
    #[error("{what} carries {count} signatures, more than the {max} validators")]
    TooManySignatures {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("sync response carries {count} blocks, over the limit of {SYNC_BLOCKS_MAX}")]
    TooManyBlocks { count: usize },
}

impl Message {
    /// The bound for each variant, chosen from the bincode variant tag (a little-endian u32
    /// in the first four bytes) before decoding anything else.
    pub fn bytes_max(tag: u32) -> usize {
        match tag {
            0 => PROPOSAL_BYTES_MAX,
            1 | 2 => VOTE_BYTES_MAX,
            3 => ROUND_CHANGE_BYTES_MAX,
            4 => SYNC_REQUEST_BYTES_MAX,
            5 => SYNC_RESPONSE_BYTES_MAX,
            // Unknown tags fail in the decoder; a tiny bound makes that cheap.
            _ => 4,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Canonical, bounded decoding: the bound depends on the message kind.
    pub fn decode(bytes: &[u8]) -> Result<Message, CodecError> {
        let tag = match bytes.get(..4) {
            Some(t) => u32::from_le_bytes([t[0], t[1], t[2], t[3]]),
            None => {
                return Err(CodecError::Malformed {
                    what: "pbft message",
                    reason: format!("{} bytes is shorter than the 4-byte tag", bytes.len()),
                });
            }
        };
        let msg: Message = codec::decode(bytes, Message::bytes_max(tag), "pbft message")?;
        // A block inside a message meets the body bounds `Block::decode` gives a block alone.
        match &msg {
            Message::Proposal(p) => check_body(&p.block.transactions)?,
            Message::RoundChange(rc) => {
                if let Some(b) = &rc.block {
                    check_body(&b.transactions)?;
                }
            }
            Message::SyncResponse(r) => {
                for b in &r.blocks {
                    check_body(&b.transactions)?;
                }
            }
            Message::Prepare(_) | Message::Commit(_) | Message::SyncRequest(_) => {}
        }
        Ok(msg)
    }

    /// Count limits that depend on the validator set (`validators_len`).
    pub fn check_bounds(&self, validators_len: usize) -> Result<(), BoundsError> {
        let max = validators_len.min(QC_VOTES_MAX);
        let qc = |qc: &QuorumCert, what| check_count(qc.votes.len(), max, what);
        let seal = |b: &Block, what| b.header.seal.parent_cert().map_or(Ok(()), |c| qc(c, what));
        match self {
            Message::Proposal(p) => {
                seal(&p.block, "parent commit certificate")?;
                if let Some(j) = &p.justification {
                    check_count(j.signatures.len(), max, "round-change certificate")?;
                    if let Some(c) = &j.prepared {
                        qc(c, "prepare certificate")?;
                    }
                }
                Ok(())
            }
            Message::Prepare(_) | Message::Commit(_) | Message::SyncRequest(_) => Ok(()),
            Message::RoundChange(rc) => {
                if let Some(c) = &rc.prepared {
                    qc(c, "prepare certificate")?;
                }
                rc.block
                    .as_ref()
                    .map_or(Ok(()), |b| seal(b, "parent commit certificate"))
            }
            Message::SyncResponse(r) => {
                if r.blocks.len() > SYNC_BLOCKS_MAX {
                    return Err(BoundsError::TooManyBlocks {
                        count: r.blocks.len(),
                    });
                }
                for b in &r.blocks {
                    seal(b, "synced block's certificate")?;
                }
                qc(&r.tip_qc, "sync tip certificate")
            }
        }
    }

    /// Short name for logs and drop counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Proposal(_) => "proposal",
            Message::Prepare(_) => "prepare",
            Message::Commit(_) => "commit",
            Message::RoundChange(_) => "round_change",
            Message::SyncRequest(_) => "sync_request",
            Message::SyncResponse(_) => "sync_response",
        }
    }
}

fn check_count(count: usize, max: usize, what: &'static str) -> Result<(), BoundsError> {
    if count > max {
        return Err(BoundsError::TooManySignatures { what, count, max });
    }
    Ok(())
}

fn signing_bytes(
    domain: &[u8],
    chain: &Hash,
    height: Height,
    round: Round,
    value: &impl Serialize,
) -> Vec<u8> {
    let mut bytes = domain.to_vec();
    bytes.extend_from_slice(&codec::encode(&(chain, height, round, value)));
    bytes
}

/// What a proposer signs. `chain` is the genesis block id: a signature made on one network
/// is worthless on another.
pub fn proposal_signing_bytes(chain: &Hash, height: Height, round: Round, block: &Hash) -> Vec<u8> {
    signing_bytes(PROPOSAL_DOMAIN, chain, height, round, block)
}

/// What a prepare signs.
pub fn prepare_signing_bytes(chain: &Hash, height: Height, round: Round, block: &Hash) -> Vec<u8> {
    signing_bytes(PREPARE_DOMAIN, chain, height, round, block)
}

/// What a commit signs; a commit certificate is a quorum of these.
pub fn commit_signing_bytes(chain: &Hash, height: Height, round: Round, block: &Hash) -> Vec<u8> {
    signing_bytes(COMMIT_DOMAIN, chain, height, round, block)
}

/// What a round change signs: the round moved to and the highest prepared claim.
pub fn round_change_signing_bytes(
    chain: &Hash,
    height: Height,
    round: Round,
    prepared: &Option<PreparedClaim>,
) -> Vec<u8> {
    signing_bytes(ROUND_CHANGE_DOMAIN, chain, height, round, prepared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote() -> VoteMsg {
        VoteMsg {
            height: Height(4),
            round: Round(3),
            block: Hash([1; 32]),
            voter: PublicKey([2; 32]),
            signature: Signature([3; 64]),
        }
    }

    #[test]
    fn tags_select_the_bound_and_round_trip() {
        for msg in [Message::Prepare(vote()), Message::Commit(vote())] {
            let bytes = msg.encode();
            assert_eq!(bytes.len(), VOTE_BYTES_MAX);
            assert_eq!(Message::decode(&bytes).unwrap(), msg);
        }
        let req = Message::SyncRequest(SyncRequest {
            from_height: Height(1),
            blocks_max: 5,
        });
        let bytes = req.encode();
        assert_eq!(&bytes[..4], &4u32.to_le_bytes());
        assert_eq!(Message::decode(&bytes).unwrap(), req);
    }

    #[test]
    fn oversized_or_short_or_unknown_messages_are_refused() {
        let mut bytes = Message::Prepare(vote()).encode();
        bytes.push(0);
        assert!(matches!(
            Message::decode(&bytes),
            Err(CodecError::TooLarge { .. })
        ));
        assert!(Message::decode(&[1, 0]).is_err());
        assert!(Message::decode(&[9, 0, 0, 0]).is_err());
    }

    #[test]
    fn signing_domains_and_fields_differ() {
        let c = Hash([0; 32]);
        let b = Hash([5; 32]);
        let (h, r) = (Height(2), Round(1));
        let all = [
            proposal_signing_bytes(&c, h, r, &b),
            prepare_signing_bytes(&c, h, r, &b),
            commit_signing_bytes(&c, h, r, &b),
            commit_signing_bytes(&c, Height(3), r, &b),
            commit_signing_bytes(&c, h, Round(2), &b),
            commit_signing_bytes(&Hash([9; 32]), h, r, &b),
            crate::hotstuff::vote_signing_bytes(&c, r, &b),
        ];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y);
            }
        }
    }
}
