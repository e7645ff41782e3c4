//! HotStuff wire messages, their size bounds, and the exact bytes every signature covers.
//!
//! Owns: the message types, decoding with a per-type size bound, the signing domains.
//! Never: decides whether a message is acceptable (that is `certs.rs` and `engine.rs`), and
//! never does I/O.

use cairn_ledger::block::{BLOCK_BYTES_MAX, Block, QC_VOTES_MAX, QuorumCert, Seal, check_body};
use cairn_ledger::codec::{self, CodecError, DECODE_BYTES_MAX};
use cairn_ledger::{Hash, Height, PublicKey, Round, Signature};
use serde::{Deserialize, Serialize};

/// Signing domains: a NUL-terminated tag per message kind, so a signature made for one kind
/// can never be replayed as another.
pub const VOTE_DOMAIN: &[u8] = b"cairn/hotstuff/vote/v1\0";
pub const PROPOSAL_DOMAIN: &[u8] = b"cairn/hotstuff/proposal/v1\0";
pub const TIMEOUT_DOMAIN: &[u8] = b"cairn/hotstuff/timeout/v1\0";

/// Encoded size of one QC vote: key, signature.
const QC_VOTE_BYTES: usize = 32 + 64;
/// Largest encoded QC: round, block, vote count, votes.
pub const QC_BYTES_MAX: usize = 8 + 32 + 8 + QC_VOTES_MAX * QC_VOTE_BYTES;
/// Largest encoded TC: round, its high QC, signature count, (signer, high-QC round, signature).
pub const TC_BYTES_MAX: usize = 8 + QC_BYTES_MAX + 8 + QC_VOTES_MAX * (32 + 8 + 64);
/// Largest proposal: a maximal block, an optional TC, the leader's signature, the enum tag.
pub const PROPOSAL_BYTES_MAX: usize = 4 + BLOCK_BYTES_MAX + 1 + TC_BYTES_MAX + 64;
/// A vote is fixed-size: tag, round, block, voter, signature.
pub const VOTE_BYTES_MAX: usize = 4 + 8 + 32 + 32 + 64;
/// Largest timeout: tag, round, high QC, optional TC, sender, signature.
pub const TIMEOUT_BYTES_MAX: usize = 4 + 8 + QC_BYTES_MAX + 1 + TC_BYTES_MAX + 32 + 64;
/// A sync request is fixed-size: tag, height, count.
pub const SYNC_REQUEST_BYTES_MAX: usize = 4 + 8 + 4;
/// Largest sync response; responders stop adding blocks before reaching it.
pub const SYNC_RESPONSE_BYTES_MAX: usize = DECODE_BYTES_MAX;
/// Most blocks one sync response carries; a lagging node asks again for the rest.
pub const SYNC_BLOCKS_MAX: usize = 64;

/// A leader's proposal for its round. The block's seal is `Seal::HotStuff { round, justify }`
/// with `justify` the QC of its parent; `tc` is the timeout certificate for `round - 1` when
/// `justify` is not from `round - 1`. The signature covers `proposal_signing_bytes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalMsg {
    pub block: Block,
    pub tc: Option<TimeoutCert>,
    pub signature: Signature,
}

impl ProposalMsg {
    /// The round and justify QC of a HotStuff block; `None` for any other seal.
    pub fn round_and_justify(&self) -> Option<(Round, &QuorumCert)> {
        match &self.block.header.seal {
            Seal::HotStuff { round, justify } => Some((*round, justify)),
            _ => None,
        }
    }
}

/// A validator's vote for `block` in `round`, sent to the leader of `round + 1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteMsg {
    pub round: Round,
    pub block: Hash,
    pub voter: PublicKey,
    pub signature: Signature,
}

/// "I give up on `round`", with the sender's highest QC. The signature covers
/// (round, high_qc.round) so a TC can prove every signer's high-QC round. `tc` is the
/// sender's highest TC, carried (unsigned, it verifies itself) so lagging nodes can catch up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutMsg {
    pub round: Round,
    pub high_qc: QuorumCert,
    pub tc: Option<TimeoutCert>,
    pub sender: PublicKey,
    pub signature: Signature,
}

/// One signer's part of a TC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutSignature {
    pub signer: PublicKey,
    pub high_qc_round: Round,
    pub signature: Signature,
}

/// A quorum of timeouts for `round`; `high_qc` is the highest QC among them and its round is
/// the largest `high_qc_round` signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutCert {
    pub round: Round,
    pub high_qc: QuorumCert,
    pub signatures: Vec<TimeoutSignature>,
}

/// Asks a peer for the certified chain starting at `from_height`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    pub from_height: Height,
    pub blocks_max: u32,
}

/// Consecutive blocks, lowest first; each block's justify certifies the one before it and
/// `tip_qc` certifies the last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    pub blocks: Vec<Block>,
    pub tip_qc: QuorumCert,
}

/// Everything validators send each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Proposal(Box<ProposalMsg>),
    Vote(VoteMsg),
    Timeout(Box<TimeoutMsg>),
    SyncRequest(SyncRequest),
    SyncResponse(Box<SyncResponse>),
}

/// A proposal reduced to what its signature covers: enough to prove equivocation to anyone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedProposal {
    pub round: Round,
    pub block: Hash,
    pub proposer: PublicKey,
    pub signature: Signature,
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
            1 => VOTE_BYTES_MAX,
            2 => TIMEOUT_BYTES_MAX,
            3 => SYNC_REQUEST_BYTES_MAX,
            4 => SYNC_RESPONSE_BYTES_MAX,
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
                    what: "hotstuff message",
                    reason: format!("{} bytes is shorter than the 4-byte tag", bytes.len()),
                });
            }
        };
        let msg: Message = codec::decode(bytes, Message::bytes_max(tag), "hotstuff message")?;
        // A block inside a message meets the body bounds `Block::decode` gives a block alone.
        match &msg {
            Message::Proposal(p) => check_body(&p.block.transactions)?,
            Message::SyncResponse(r) => {
                for b in &r.blocks {
                    check_body(&b.transactions)?;
                }
            }
            Message::Vote(_) | Message::Timeout(_) | Message::SyncRequest(_) => {}
        }
        Ok(msg)
    }

    /// Count limits that depend on the validator set (`validators_len`).
    pub fn check_bounds(&self, validators_len: usize) -> Result<(), BoundsError> {
        let max = validators_len.min(QC_VOTES_MAX);
        let qc = |qc: &QuorumCert, what| check_count(qc.votes.len(), max, what);
        let tc = |tc: &TimeoutCert| {
            check_count(tc.signatures.len(), max, "timeout certificate")?;
            qc(&tc.high_qc, "timeout certificate's QC")
        };
        match self {
            Message::Proposal(p) => {
                if let Some((_, justify)) = p.round_and_justify() {
                    qc(justify, "justify QC")?;
                }
                p.tc.as_ref().map_or(Ok(()), tc)
            }
            Message::Vote(_) | Message::SyncRequest(_) => Ok(()),
            Message::Timeout(t) => {
                qc(&t.high_qc, "timeout's high QC")?;
                t.tc.as_ref().map_or(Ok(()), tc)
            }
            Message::SyncResponse(r) => {
                if r.blocks.len() > SYNC_BLOCKS_MAX {
                    return Err(BoundsError::TooManyBlocks {
                        count: r.blocks.len(),
                    });
                }
                for b in &r.blocks {
                    if let Seal::HotStuff { justify, .. } = &b.header.seal {
                        qc(justify, "synced block's QC")?;
                    }
                }
                qc(&r.tip_qc, "sync tip QC")
            }
        }
    }

    /// Short name for logs and drop counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Proposal(_) => "proposal",
            Message::Vote(_) => "vote",
            Message::Timeout(_) => "timeout",
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

fn signing_bytes(domain: &[u8], chain: &Hash, round: Round, value: &impl Serialize) -> Vec<u8> {
    let mut bytes = domain.to_vec();
    bytes.extend_from_slice(&codec::encode(&(chain, round, value)));
    bytes
}

/// What a vote signs. `chain` is the genesis block id: a signature made on one network is
/// worthless on another, even for timeouts, which name no block.
pub fn vote_signing_bytes(chain: &Hash, round: Round, block: &Hash) -> Vec<u8> {
    signing_bytes(VOTE_DOMAIN, chain, round, block)
}

/// What a leader signs for its proposal: the block id covers the whole header, justify included.
pub fn proposal_signing_bytes(chain: &Hash, round: Round, block: &Hash) -> Vec<u8> {
    signing_bytes(PROPOSAL_DOMAIN, chain, round, block)
}

/// What a timeout signs: the round given up and the round of the sender's highest QC.
pub fn timeout_signing_bytes(chain: &Hash, round: Round, high_qc_round: Round) -> Vec<u8> {
    signing_bytes(TIMEOUT_DOMAIN, chain, round, &high_qc_round)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote() -> VoteMsg {
        VoteMsg {
            round: Round(3),
            block: Hash([1; 32]),
            voter: PublicKey([2; 32]),
            signature: Signature([3; 64]),
        }
    }

    #[test]
    fn tags_select_the_bound_and_round_trip() {
        let bytes = Message::Vote(vote()).encode();
        assert_eq!(&bytes[..4], &1u32.to_le_bytes());
        assert!(bytes.len() <= VOTE_BYTES_MAX);
        assert_eq!(Message::decode(&bytes).unwrap(), Message::Vote(vote()));
        let req = Message::SyncRequest(SyncRequest {
            from_height: Height(1),
            blocks_max: 5,
        });
        let bytes = req.encode();
        assert_eq!(bytes.len(), SYNC_REQUEST_BYTES_MAX);
        assert_eq!(Message::decode(&bytes).unwrap(), req);
    }

    #[test]
    fn oversized_or_short_or_unknown_messages_are_refused() {
        let mut bytes = Message::Vote(vote()).encode();
        bytes.push(0);
        assert!(matches!(
            Message::decode(&bytes),
            Err(CodecError::TooLarge { .. })
        ));
        assert!(Message::decode(&[1, 0]).is_err());
        assert!(Message::decode(&[9, 0, 0, 0]).is_err());
    }

    #[test]
    fn signing_domains_differ() {
        let c = Hash([0; 32]);
        let b = Hash([5; 32]);
        assert_ne!(
            vote_signing_bytes(&c, Round(1), &b),
            proposal_signing_bytes(&c, Round(1), &b)
        );
        assert_ne!(
            vote_signing_bytes(&c, Round(1), &b),
            vote_signing_bytes(&Hash([9; 32]), Round(1), &b)
        );
    }
}
