//! Keys for simulated validators: real ed25519, or a hash-based stand-in that is about a
//! hundred times cheaper so thousands of seeds fit in a test run.
//!
//! The stand-in signature is SHA-256 over a tag, the public key and the message. Anyone who
//! knows the public key can forge it, which is harmless here: the simulated adversaries
//! only ever sign with their own keys or send garbage, and what the simulator checks is
//! the protocol, not the signature scheme (the engine's tests use real ed25519).
//!
//! Owns: key derivation from the seed. Never: used outside the simulator.

use cairn_ledger::crypto::Keypair;
use cairn_ledger::{Hash, PublicKey, Signature};

use crate::hotstuff::{Ed25519Signer, Ed25519Verifier, Signer, Verifier};

/// Which signature scheme a simulation uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SimCrypto {
    /// Hash-based stand-in (see the module documentation).
    #[default]
    Fast,
    /// Real ed25519 through `cairn_ledger::crypto`, as a node uses.
    Ed25519,
}

pub struct FastSigner {
    key: PublicKey,
}

fn fast_signature(key: &PublicKey, message: &[u8]) -> Signature {
    let h = Hash::tagged(b"cairn/sim/signature", &[&key.0, message]);
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&h.0);
    sig[32..].copy_from_slice(&h.0);
    Signature(sig)
}

impl Signer for FastSigner {
    fn public_key(&self) -> PublicKey {
        self.key
    }

    fn sign(&self, message: &[u8]) -> Signature {
        fast_signature(&self.key, message)
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct FastVerifier;

impl Verifier for FastVerifier {
    fn verify(&self, message: &[u8], key: &PublicKey, signature: &Signature) -> bool {
        fast_signature(key, message) == *signature
    }
}

fn secret(seed: u64, index: usize) -> [u8; 32] {
    Hash::tagged(
        b"cairn/sim/secret",
        &[&seed.to_le_bytes(), &(index as u64).to_le_bytes()],
    )
    .0
}

/// Validator `index`'s public key in the simulation of `seed`.
pub fn public_key(crypto: SimCrypto, seed: u64, index: usize) -> PublicKey {
    match crypto {
        SimCrypto::Fast => PublicKey(Hash::tagged(b"cairn/sim/key", &[&secret(seed, index)]).0),
        SimCrypto::Ed25519 => Keypair::from_secret(&secret(seed, index)).public(),
    }
}

pub fn signer(crypto: SimCrypto, seed: u64, index: usize) -> Box<dyn Signer + Send> {
    match crypto {
        SimCrypto::Fast => Box::new(FastSigner {
            key: public_key(crypto, seed, index),
        }),
        SimCrypto::Ed25519 => Box::new(Ed25519Signer::new(Keypair::from_secret(&secret(
            seed, index,
        )))),
    }
}

pub fn verifier(crypto: SimCrypto) -> Box<dyn Verifier + Send> {
    match crypto {
        SimCrypto::Fast => Box::new(FastVerifier),
        SimCrypto::Ed25519 => Box::new(Ed25519Verifier),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_schemes_verify_their_own_and_reject_others() {
        for crypto in [SimCrypto::Fast, SimCrypto::Ed25519] {
            let (a, b) = (signer(crypto, 7, 0), signer(crypto, 7, 1));
            assert_eq!(a.public_key(), public_key(crypto, 7, 0));
            let v = verifier(crypto);
            let sig = a.sign(b"m");
            assert!(v.verify(b"m", &a.public_key(), &sig));
            assert!(!v.verify(b"n", &a.public_key(), &sig));
            assert!(!v.verify(b"m", &b.public_key(), &sig));
        }
        assert_ne!(
            public_key(SimCrypto::Fast, 1, 0),
            public_key(SimCrypto::Fast, 2, 0)
        );
    }
}
