//! Blocks and headers. A header commits to its parent, its transactions (`tx_root`) and the
//! state after them (`state_root`); its consensus section (`seal`) is filled by whichever
//! engine produced it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec::{self, CodecError};
use crate::tx::Transaction;
use crate::types::{
    Address, Amount, Hash, Height, ProtocolVersion, PublicKey, Round, Signature, TimestampMs,
};

/// Largest encoded header: a QC from up to [`QC_VOTES_MAX`] validators fits with room.
pub const HEADER_BYTES_MAX: usize = 64 * 1024;
/// Most validator signatures a quorum certificate may carry.
pub const QC_VOTES_MAX: usize = 512;
/// Hard ceiling on transactions per block, whatever genesis allows.
pub const BLOCK_TXS_MAX: usize = 10_000;
/// Hard ceiling on an encoded block (header and transactions), whatever genesis allows.
pub const BLOCK_BYTES_MAX: usize = 16 * 1024 * 1024;

/// ≥ 2f+1 voting power of validator signatures over (round, block).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumCert {
    pub round: Round,
    pub block: Hash,
    pub votes: Vec<(PublicKey, Signature)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seal {
    /// Block 0, whose authority is the genesis file itself.
    Genesis,
    /// BFT: the round the block was proposed in and the QC of the parent it extends.
    HotStuff { round: Round, justify: QuorumCert },
    /// Proof of work: the compact target and the nonce that meets it. The nonce is the last
    /// field of the encoded header so miners can hash everything before it once.
    Pow { bits: u32, nonce: u64 },
    /// PBFT: the leader-schedule turn of the round the block was first proposed in (the
    /// parent's turn + 1 + that round), and the commit certificate of the parent, as this
    /// block's proposer holds it (any quorum of commit signatures will do, so two proposers
    /// may carry different ones). Turns count rounds along the chain, so leader reputation
    /// reads from the chain alone which turns produced no block. A block re-proposed in a
    /// later round keeps its turn and so its id, and the prepare certificates gathered for
    /// it stay valid.
    Pbft {
        turn: Round,
        parent_commit: QuorumCert,
    },
}

impl Seal {
    /// The certificate a BFT block carries for its parent (HotStuff's justify QC, PBFT's
    /// parent commit certificate).
    pub fn parent_cert(&self) -> Option<&QuorumCert> {
        match self {
            Seal::HotStuff { justify, .. } => Some(justify),
            Seal::Pbft { parent_commit, .. } => Some(parent_commit),
            Seal::Genesis | Seal::Pow { .. } => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    pub height: Height,
    /// Hash of the parent header; for block 0, the genesis hash.
    pub parent: Hash,
    pub timestamp: TimestampMs,
    pub tx_root: Hash,
    pub state_root: Hash,
    pub proposer: Address,
    pub protocol_version: ProtocolVersion,
    pub seal: Seal,
}

impl BlockHeader {
    /// The block id: double SHA-256 of the canonical header encoding (the proof-of-work hash
    /// in Nakamoto mode, the id votes sign in BFT mode).
    pub fn hash(&self) -> Hash {
        let first = Sha256::digest(codec::encode(self));
        Hash(Sha256::digest(first).into())
    }

    pub fn decode(bytes: &[u8]) -> Result<BlockHeader, CodecError> {
        let header: BlockHeader = codec::decode(bytes, HEADER_BYTES_MAX, "block header")?;
        header.check_bounds()?;
        Ok(header)
    }

    fn check_bounds(&self) -> Result<(), CodecError> {
        if let Some(justify) = self.seal.parent_cert()
            && justify.votes.len() > QC_VOTES_MAX
        {
            return Err(CodecError::Malformed {
                what: "block header",
                reason: format!(
                    "quorum certificate has {} votes, over the limit of {QC_VOTES_MAX}",
                    justify.votes.len()
                ),
            });
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub transactions: Vec<Transaction>,
}

impl Block {
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    pub fn decode(bytes: &[u8]) -> Result<Block, CodecError> {
        let block: Block = codec::decode(bytes, BLOCK_BYTES_MAX, "block")?;
        block.header.check_bounds()?;
        check_body(&block.transactions)?;
        Ok(block)
    }
}

/// Bounds that apply to a block body wherever it comes from.
pub fn check_body(txs: &[Transaction]) -> Result<(), CodecError> {
    encode_within_bounds(txs).map(drop)
}

/// Each transaction's encoding, refusing a body over the per-block or per-transaction bounds.
fn encode_within_bounds(txs: &[Transaction]) -> Result<Vec<Vec<u8>>, CodecError> {
    if txs.len() > BLOCK_TXS_MAX {
        return Err(CodecError::Malformed {
            what: "block body",
            reason: format!(
                "{} transactions, over the limit of {BLOCK_TXS_MAX}",
                txs.len()
            ),
        });
    }
    let encoded: Vec<Vec<u8>> = txs.iter().map(Transaction::encode).collect();
    for (i, (tx, bytes)) in txs.iter().zip(&encoded).enumerate() {
        if tx.check_bounds(bytes.len()).is_err() {
            return Err(CodecError::Malformed {
                what: "block body",
                reason: format!("transaction {i} is malformed or {} bytes long", bytes.len()),
            });
        }
    }
    Ok(encoded)
}

/// A block body encoded once, with each transaction's id: size checks, the tx root, the
/// transaction index and the stored body all come from it.
#[derive(Debug, Clone)]
pub struct EncodedBody {
    /// The body as stored: the canonical encoding of the transaction list.
    pub bytes: Vec<u8>,
    pub tx_ids: Vec<Hash>,
}

impl EncodedBody {
    /// Encodes `txs`, refusing a body over the per-block or per-transaction bounds.
    pub fn new(txs: &[Transaction]) -> Result<EncodedBody, CodecError> {
        let encoded = encode_within_bounds(txs)?;
        Ok(EncodedBody {
            tx_ids: encoded.iter().map(|e| crate::tx::tx_id(e)).collect(),
            bytes: codec::encode_seq_of_encoded(&encoded),
        })
    }

    pub fn tx_root(&self) -> Hash {
        merkle_root(&self.tx_ids)
    }
}

pub fn decode_body(bytes: &[u8]) -> Result<Vec<Transaction>, CodecError> {
    let txs: Vec<Transaction> = codec::decode(bytes, BLOCK_BYTES_MAX, "block body")?;
    check_body(&txs)?;
    Ok(txs)
}

/// Merkle root over transaction ids (RFC 6962 shape: leaves and inner nodes hashed under
/// different tags, an unbalanced tree split at the largest power of two, so no two lists
/// share a root and no leaf is duplicated as in Bitcoin's CVE-2012-2459).
pub fn tx_root(txs: &[Transaction]) -> Hash {
    merkle_root(&txs.iter().map(Transaction::hash).collect::<Vec<_>>())
}

pub fn merkle_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Hash::tagged(b"cairn/merkle-empty/v1", &[]),
        1 => Hash::tagged(b"cairn/merkle-leaf/v1", &[&leaves[0].0]),
        n => {
            let split = n.next_power_of_two() / 2;
            let left = merkle_root(&leaves[..split]);
            let right = merkle_root(&leaves[split..]);
            Hash::tagged(b"cairn/merkle-node/v1", &[&left.0, &right.0])
        }
    }
}

/// What executing one transaction did, kept per block in transaction order (the transaction
/// index says which receipt is whose).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub fee: Amount,
    pub status: ReceiptStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    Applied,
    /// The transaction landed (fee paid, nonce used) but its action was refused; nothing
    /// else changed. Oracle actions can be refused this way, since whether a reveal is late
    /// depends on the height it lands at.
    Refused {
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u8) -> Hash {
        Hash([i; 32])
    }

    #[test]
    fn merkle_roots_differ_by_order_count_and_duplication() {
        let a = merkle_root(&[h(1), h(2), h(3)]);
        assert_ne!(a, merkle_root(&[h(1), h(3), h(2)]));
        assert_ne!(a, merkle_root(&[h(1), h(2), h(3), h(3)]));
        assert_ne!(merkle_root(&[h(1)]), h(1));
        assert_ne!(merkle_root(&[]), merkle_root(&[h(0)]));
    }

    #[test]
    fn header_hash_changes_with_nonce() {
        let mut header = BlockHeader {
            height: Height(1),
            parent: h(0),
            timestamp: TimestampMs(5),
            tx_root: h(1),
            state_root: h(2),
            proposer: Address([0; 20]),
            protocol_version: ProtocolVersion(1),
            seal: Seal::Pow {
                bits: 0x1d00ffff,
                nonce: 0,
            },
        };
        let before = header.hash();
        let bytes = codec::encode(&header);
        // The nonce is the final 8 bytes of the encoding, as the seal documents.
        assert_eq!(&bytes[bytes.len() - 8..], &0u64.to_le_bytes());
        header.seal = Seal::Pow {
            bits: 0x1d00ffff,
            nonce: 1,
        };
        assert_ne!(header.hash(), before);
        assert_eq!(
            BlockHeader::decode(&codec::encode(&header)).unwrap(),
            header
        );
    }
}
