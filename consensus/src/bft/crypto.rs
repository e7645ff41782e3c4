//! The signing seam: an engine signs and verifies only through [`Signer`] and [`Verifier`],
//! so a node plugs in its ed25519 key, tests plug in real keys, and the simulator may plug in
//! a cheaper scheme.
//!
//! Owns: the traits and the ed25519 implementation over `cairn_ledger::crypto`.
//! Never: decides what is signed (each engine's messages do) or holds any other state.

use cairn_ledger::crypto::{self as ledger_crypto, Keypair, SignedMessage};
use cairn_ledger::{PublicKey, Signature};

/// Produces this validator's signatures.
pub trait Signer {
    fn public_key(&self) -> PublicKey;
    fn sign(&self, message: &[u8]) -> Signature;
}

/// One signature to check.
#[derive(Clone, Copy, Debug)]
pub struct SignedBytes<'a> {
    pub message: &'a [u8],
    pub key: &'a PublicKey,
    pub signature: &'a Signature,
}

/// Checks signatures. `verify_all` must give exactly the verdict of checking each one.
pub trait Verifier {
    fn verify(&self, message: &[u8], key: &PublicKey, signature: &Signature) -> bool;

    fn verify_all(&self, items: &[SignedBytes]) -> bool {
        items
            .iter()
            .all(|i| self.verify(i.message, i.key, i.signature))
    }
}

/// A validator's ed25519 key.
pub struct Ed25519Signer {
    key: Keypair,
}

impl Ed25519Signer {
    pub fn new(key: Keypair) -> Ed25519Signer {
        Ed25519Signer { key }
    }
}

impl Signer for Ed25519Signer {
    fn public_key(&self) -> PublicKey {
        self.key.public()
    }

    fn sign(&self, message: &[u8]) -> Signature {
        self.key.sign(message)
    }
}

/// Cairn's one definition of a valid ed25519 signature (cofactored, canonical; see
/// `cairn_ledger::crypto`), batched for certificates.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ed25519Verifier;

impl Verifier for Ed25519Verifier {
    fn verify(&self, message: &[u8], key: &PublicKey, signature: &Signature) -> bool {
        ledger_crypto::verify(&SignedMessage {
            message,
            key,
            signature,
        })
        .is_ok()
    }

    fn verify_all(&self, items: &[SignedBytes]) -> bool {
        let batch: Vec<SignedMessage> = items
            .iter()
            .map(|i| SignedMessage {
                message: i.message,
                key: i.key,
                signature: i.signature,
            })
            .collect();
        ledger_crypto::verify_batch(&batch).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_signs_and_verifies_singly_and_in_batches() {
        let a = Ed25519Signer::new(Keypair::from_secret(&[1; 32]));
        let b = Ed25519Signer::new(Keypair::from_secret(&[2; 32]));
        let (ka, kb) = (a.public_key(), b.public_key());
        let (sa, sb) = (a.sign(b"x"), b.sign(b"y"));
        let v = Ed25519Verifier;
        assert!(v.verify(b"x", &ka, &sa));
        assert!(!v.verify(b"x", &kb, &sa));
        let good = [
            SignedBytes {
                message: b"x",
                key: &ka,
                signature: &sa,
            },
            SignedBytes {
                message: b"y",
                key: &kb,
                signature: &sb,
            },
        ];
        assert!(v.verify_all(&good));
        let bad = [
            good[0],
            SignedBytes {
                key: &ka,
                ..good[1]
            },
        ];
        assert!(!v.verify_all(&bad));
    }
}
