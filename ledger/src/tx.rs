//! Transactions: what a user signs, and the canonical bytes the signature covers.

use serde::{Deserialize, Serialize};

use cairn_oracle::{CommitHash, FeedId, Price, RoundNumber, Salt};

use crate::codec::{self, CodecError};
use crate::crypto::{self, Keypair, SignatureError, SignedMessage};
use crate::types::{Address, Amount, Hash, Nonce, PublicKey, Signature};

/// Largest encoded transaction accepted from anywhere.
pub const TX_BYTES_MAX: usize = 4 * 1024;
/// Longest chain id; also bounds every transaction's chain id field.
pub const CHAIN_ID_LEN_MAX: usize = 64;
/// Longest memo of a `transfer_with_memo`, in bytes of UTF-8.
pub const MEMO_BYTES_MAX: usize = 256;

const SIGNING_TAG: &[u8] = b"cairn/tx/v1\0";

/// What a transaction does. New kinds (stake, oracle commit/reveal, upgrade signals) are new
/// variants at the end; existing variants keep their encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    Transfer {
        to: Address,
        amount: Amount,
    },
    /// Bonds `amount` of the sender's balance as oracle stake in `feed`.
    OracleStake {
        feed: FeedId,
        amount: Amount,
    },
    /// Starts unbonding `amount` of the sender's stake in `feed`; it is released to the
    /// balance after the unbonding period and can be penalised until then.
    OracleUnstake {
        feed: FeedId,
        amount: Amount,
    },
    /// Commits to a value for `round` of `feed` without showing it:
    /// `cairn_oracle::commit_hash(feed, round, value, salt, sender address)`.
    OracleCommit {
        feed: FeedId,
        round: RoundNumber,
        commitment: CommitHash,
    },
    /// Opens the sender's commitment for `round` of `feed`.
    OracleReveal {
        feed: FeedId,
        round: RoundNumber,
        value: Price,
        salt: Salt,
    },
    /// A transfer with a note for the recipient (at most [`MEMO_BYTES_MAX`] bytes). Valid from
    /// the `memo` upgrade on ([`crate::rules`]).
    TransferWithMemo {
        to: Address,
        amount: Amount,
        memo: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub chain_id: String,
    pub sender: PublicKey,
    pub nonce: Nonce,
    pub fee: Amount,
    pub payload: Payload,
    pub signature: Signature,
}

/// The signed part of a transaction: every field but the signature, in the same order.
#[derive(Serialize)]
struct Unsigned<'a> {
    chain_id: &'a str,
    sender: &'a PublicKey,
    nonce: Nonce,
    fee: Amount,
    payload: &'a Payload,
}

impl Transaction {
    pub fn new_signed(
        chain_id: &str,
        key: &Keypair,
        nonce: Nonce,
        fee: Amount,
        payload: Payload,
    ) -> Transaction {
        let mut tx = Transaction {
            chain_id: chain_id.to_owned(),
            sender: key.public(),
            nonce,
            fee,
            payload,
            signature: Signature([0; 64]),
        };
        tx.signature = key.sign(&tx.signing_bytes());
        tx
    }

    /// The bytes the sender signs: a domain tag and the canonical encoding without the
    /// signature. The chain id inside stops a transaction replaying on another network.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = SIGNING_TAG.to_vec();
        out.extend(codec::encode(&Unsigned {
            chain_id: &self.chain_id,
            sender: &self.sender,
            nonce: self.nonce,
            fee: self.fee,
            payload: &self.payload,
        }));
        out
    }

    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a transaction from untrusted bytes. Signature and state checks come later;
    /// this only guarantees a well-formed, canonical, bounded value.
    pub fn decode(bytes: &[u8]) -> Result<Transaction, CodecError> {
        let tx: Transaction = codec::decode(bytes, TX_BYTES_MAX, "transaction")?;
        tx.check_bounds(bytes.len())?;
        Ok(tx)
    }

    /// The bounds a transaction from outside meets beyond its encoding being canonical:
    /// [`TX_BYTES_MAX`] for its `encoded_len` bytes and [`CHAIN_ID_LEN_MAX`]. Every decoder
    /// of outside transactions applies them, whatever carried the transaction.
    pub fn check_bounds(&self, encoded_len: usize) -> Result<(), CodecError> {
        if encoded_len > TX_BYTES_MAX {
            return Err(CodecError::TooLarge {
                what: "transaction",
                len: encoded_len,
                max: TX_BYTES_MAX,
            });
        }
        if self.chain_id.len() > CHAIN_ID_LEN_MAX {
            return Err(CodecError::Malformed {
                what: "transaction",
                reason: format!(
                    "chain id is {} bytes, over the limit of {CHAIN_ID_LEN_MAX}",
                    self.chain_id.len()
                ),
            });
        }
        if let Payload::TransferWithMemo { memo, .. } = &self.payload
            && memo.len() > MEMO_BYTES_MAX
        {
            return Err(CodecError::Malformed {
                what: "transaction",
                reason: format!(
                    "memo is {} bytes, over the limit of {MEMO_BYTES_MAX}",
                    memo.len()
                ),
            });
        }
        Ok(())
    }

    /// Identifies the transaction, signature included.
    pub fn hash(&self) -> Hash {
        tx_id(&self.encode())
    }

    pub fn sender_address(&self) -> Address {
        self.sender.address()
    }

    pub fn verify_signature(&self) -> Result<(), SignatureError> {
        let message = self.signing_bytes();
        crypto::verify(&SignedMessage {
            message: &message,
            key: &self.sender,
            signature: &self.signature,
        })
    }

    /// The amount leaving the sender's balance besides the fee (if the action succeeds).
    pub fn amount(&self) -> Amount {
        match &self.payload {
            Payload::Transfer { amount, .. }
            | Payload::TransferWithMemo { amount, .. }
            | Payload::OracleStake { amount, .. } => *amount,
            Payload::OracleUnstake { .. }
            | Payload::OracleCommit { .. }
            | Payload::OracleReveal { .. } => Amount::ZERO,
        }
    }
}

/// The id of a transaction given its canonical encoding.
pub fn tx_id(encoded: &[u8]) -> Hash {
    Hash::tagged(b"cairn/txid/v1", &[encoded])
}

/// Checks every transaction's signature in one batch; on failure names the first bad one (by
/// its position in `txs`). Takes references, so callers checking a subset need not copy it.
pub fn verify_signatures<'a>(
    txs: impl IntoIterator<Item = &'a Transaction>,
) -> Result<(), crypto::BatchError> {
    let txs: Vec<&Transaction> = txs.into_iter().collect();
    let messages: Vec<Vec<u8>> = txs.iter().map(|tx| tx.signing_bytes()).collect();
    let items: Vec<SignedMessage> = txs
        .iter()
        .zip(&messages)
        .map(|(tx, message)| SignedMessage {
            message,
            key: &tx.sender,
            signature: &tx.signature,
        })
        .collect();
    crypto::verify_batch(&items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx() -> Transaction {
        let kp = Keypair::from_secret(&[1; 32]);
        Transaction::new_signed(
            "test-chain",
            &kp,
            Nonce(0),
            Amount(1),
            Payload::Transfer {
                to: Address([2; 20]),
                amount: Amount(10),
            },
        )
    }

    #[test]
    fn signed_transaction_verifies_and_round_trips() {
        let t = tx();
        t.verify_signature().unwrap();
        assert_eq!(Transaction::decode(&t.encode()).unwrap(), t);
    }

    #[test]
    fn any_field_change_breaks_the_signature() {
        let base = tx();
        let mut a = base.clone();
        a.chain_id = "other-chain".into();
        let mut b = base.clone();
        b.nonce = Nonce(1);
        let mut c = base.clone();
        c.fee = Amount(2);
        let mut d = base.clone();
        d.payload = Payload::Transfer {
            to: Address([3; 20]),
            amount: Amount(10),
        };
        for t in [a, b, c, d] {
            assert_eq!(t.verify_signature(), Err(SignatureError::Mismatch));
        }
    }

    #[test]
    fn decode_rejects_an_overlong_memo() {
        let kp = Keypair::from_secret(&[1; 32]);
        let with = |memo: String| {
            Transaction::new_signed(
                "c",
                &kp,
                Nonce(0),
                Amount(1),
                Payload::TransferWithMemo {
                    to: Address([2; 20]),
                    amount: Amount(1),
                    memo,
                },
            )
        };
        let ok = with("é".repeat(MEMO_BYTES_MAX / 2));
        assert_eq!(Transaction::decode(&ok.encode()).unwrap(), ok);
        let long = with("x".repeat(MEMO_BYTES_MAX + 1));
        let err = Transaction::decode(&long.encode()).unwrap_err();
        assert!(err.to_string().contains("memo is 257 bytes"), "{err}");
    }

    #[test]
    fn decode_rejects_overlong_chain_id() {
        let mut t = tx();
        t.chain_id = "x".repeat(CHAIN_ID_LEN_MAX + 1);
        let err = Transaction::decode(&t.encode()).unwrap_err();
        assert!(err.to_string().contains("chain id"), "{err}");
    }
}
