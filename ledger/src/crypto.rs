//! Signing and the one definition of a valid signature.
//!
//! Validity must not depend on how a node happens to check it: a block whose signatures one
//! node checks one by one and another checks in a batch must get the same verdict, or the
//! network forks. ed25519-dalek's own `verify` is cofactorless while its `verify_batch` uses
//! random linear combinations without clearing the cofactor, so a signer who adds a torsion
//! point to R makes a signature that `verify` rejects and `verify_batch` accepts about one
//! time in eight (the test `dalek_single_and_batch_disagree_on_torsion` shows it). Cairn
//! therefore uses the cofactored equation, as ZIP-215 does, for both paths:
//!
//! - S must be canonical (S < ℓ): no malleable second signature;
//! - A (the public key) and R must be canonical encodings of curve points;
//! - A must not be of small order (such a key verifies forged messages);
//! - [8](S·B − R − k·A) = 0, with k = SHA-512(R ‖ A ‖ M) mod ℓ.
//!
//! A batch checks [8]·Σ zᵢ(Sᵢ·B − Rᵢ − kᵢ·Aᵢ) = 0 with 128-bit zᵢ derived from a hash of the
//! whole batch; multiplying by 8 removes every torsion component, so a batch accepts exactly
//! when every member would (up to a 2⁻¹²⁸ chance the signer cannot steer). Signatures made by
//! [`Keypair::sign`] satisfy every rule.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::Signer;
use sha2::{Digest, Sha512};

use crate::types::{PublicKey, Signature};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature scalar S is not canonical (S >= group order)")]
    NonCanonicalS,
    #[error("public key is not a canonical point encoding")]
    NonCanonicalKey,
    #[error("public key is not a point on the curve")]
    KeyNotOnCurve,
    #[error("public key is of small order (a weak key that verifies forgeries)")]
    SmallOrderKey,
    #[error("signature point R is not a canonical point encoding")]
    NonCanonicalR,
    #[error("signature point R is not a point on the curve")]
    RNotOnCurve,
    #[error("signature does not verify for this key and message")]
    Mismatch,
}

/// An ed25519 secret key with its public half. The secret is zeroised on drop.
pub struct Keypair {
    inner: ed25519_dalek::SigningKey,
}

impl Keypair {
    pub fn generate<R: rand::CryptoRng + rand::RngCore>(rng: &mut R) -> Keypair {
        Keypair {
            inner: ed25519_dalek::SigningKey::generate(rng),
        }
    }

    pub fn from_secret(secret: &[u8; 32]) -> Keypair {
        Keypair {
            inner: ed25519_dalek::SigningKey::from_bytes(secret),
        }
    }

    pub fn secret_bytes(&self) -> [u8; 32] {
        self.inner.to_bytes()
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.inner.verifying_key().to_bytes())
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.inner.sign(message).to_bytes())
    }
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "Keypair({})", self.public())
    }
}

/// One signature to check: the message, the key that should have signed it, the signature.
#[derive(Clone, Copy, Debug)]
pub struct SignedMessage<'a> {
    pub message: &'a [u8],
    pub key: &'a PublicKey,
    pub signature: &'a Signature,
}

struct Prepared {
    a: EdwardsPoint,
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

/// y ≥ p, or x = 0 with the sign bit set, are second spellings of points that have a
/// canonical one.
fn is_canonical_point(bytes: &[u8; 32]) -> bool {
    let sign = bytes[31] >> 7;
    let high = bytes[31] & 0x7f;
    let middle_all_ff = bytes[1..31].iter().all(|&b| b == 0xff);
    let y_at_least_p = high == 0x7f && middle_all_ff && bytes[0] >= 0xed;
    if y_at_least_p {
        return false;
    }
    if sign == 1 {
        // x = 0 exactly when y = 1 or y = p − 1.
        let y_is_one = bytes[0] == 1 && bytes[1..31].iter().all(|&b| b == 0) && high == 0;
        let y_is_p_minus_one = bytes[0] == 0xec && middle_all_ff && high == 0x7f;
        if y_is_one || y_is_p_minus_one {
            return false;
        }
    }
    true
}

/// Most decompressed public keys kept. Decompressing a key costs about a third of a batched
/// signature check, and accounts sign many transactions, so valid keys are remembered.
pub const KEY_CACHE_ENTRIES_MAX: usize = 65_536;

static KEY_CACHE: LazyLock<Mutex<HashMap<PublicKey, EdwardsPoint>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The curve point of a public key that passes every key rule.
fn public_point(key: &PublicKey) -> Result<EdwardsPoint, SignatureError> {
    if let Some(point) = KEY_CACHE.lock().expect("key cache lock").get(key) {
        return Ok(*point);
    }
    check_key(&key.0).inspect(|point| {
        let mut cache = KEY_CACHE.lock().expect("key cache lock");
        if cache.len() >= KEY_CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(*key, *point);
    })
}

fn check_key(bytes: &[u8; 32]) -> Result<EdwardsPoint, SignatureError> {
    if !is_canonical_point(bytes) {
        return Err(SignatureError::NonCanonicalKey);
    }
    let a = CompressedEdwardsY(*bytes)
        .decompress()
        .ok_or(SignatureError::KeyNotOnCurve)?;
    if a.is_small_order() {
        return Err(SignatureError::SmallOrderKey);
    }
    Ok(a)
}

/// Checks that `key` is usable as a Cairn public key (canonical, on the curve, not of small
/// order), e.g. for validator keys in genesis.
pub fn check_public_key(key: &PublicKey) -> Result<(), SignatureError> {
    public_point(key).map(|_| ())
}

fn prepare(item: &SignedMessage) -> Result<Prepared, SignatureError> {
    let sig = &item.signature.0;
    let mut r_bytes = [0u8; 32];
    let mut s_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&sig[..32]);
    s_bytes.copy_from_slice(&sig[32..]);
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))
        .ok_or(SignatureError::NonCanonicalS)?;
    let a_bytes = &item.key.0;
    let a = public_point(item.key)?;
    if !is_canonical_point(&r_bytes) {
        return Err(SignatureError::NonCanonicalR);
    }
    let r = CompressedEdwardsY(r_bytes)
        .decompress()
        .ok_or(SignatureError::RNotOnCurve)?;
    let k = Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(r_bytes)
            .chain_update(a_bytes)
            .chain_update(item.message)
            .finalize()
            .into(),
    );
    Ok(Prepared { a, r, s, k })
}

/// Checks one signature under the rules in the module documentation.
pub fn verify(item: &SignedMessage) -> Result<(), SignatureError> {
    let p = prepare(item)?;
    let sb_minus_ka = EdwardsPoint::vartime_double_scalar_mul_basepoint(&(-p.k), &p.a, &p.s);
    if (sb_minus_ka - p.r).mul_by_cofactor().is_identity() {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// A batch that did not verify: the first member that fails on its own, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signature {index} of the batch is invalid: {error}")]
pub struct BatchError {
    pub index: usize,
    pub error: SignatureError,
}

/// Checks many signatures at once, about twice as fast per signature as [`verify`]. The
/// verdict is the same as checking each with [`verify`]; on failure the first invalid member
/// is found by checking them one by one, so the error is deterministic.
pub fn verify_batch(items: &[SignedMessage]) -> Result<(), BatchError> {
    let prepared = items
        .iter()
        .enumerate()
        .map(|(index, item)| prepare(item).map_err(|error| BatchError { index, error }))
        .collect::<Result<Vec<_>, _>>()?;
    if prepared.is_empty() {
        return Ok(());
    }
    // The weights come from a hash of everything being checked, so the signer cannot choose
    // them, and the same batch always gets the same verdict on every node.
    let mut seed = Sha512::new();
    seed.update(b"cairn/batch-verify/v1");
    for p in &prepared {
        seed.update(p.k.as_bytes());
        seed.update(p.s.as_bytes());
    }
    let seed = seed.finalize();
    // Each 512-bit output gives four independent 128-bit weights: a quarter of the hashing.
    let weights: Vec<Scalar> = (0..prepared.len().div_ceil(4) as u64)
        .flat_map(|block| {
            let h = Sha512::new()
                .chain_update(seed)
                .chain_update(block.to_le_bytes())
                .finalize();
            (0..4).map(move |j| {
                let mut z = [0u8; 16];
                z.copy_from_slice(&h[16 * j..16 * (j + 1)]);
                Scalar::from(u128::from_le_bytes(z))
            })
        })
        .take(prepared.len())
        .collect();
    let b_coefficient: Scalar = prepared.iter().zip(&weights).map(|(p, z)| z * p.s).sum();
    let scalars = std::iter::once(b_coefficient)
        .chain(weights.iter().map(|z| -z))
        .chain(prepared.iter().zip(&weights).map(|(p, z)| -(z * p.k)));
    let points = std::iter::once(curve25519_dalek::constants::ED25519_BASEPOINT_POINT)
        .chain(prepared.iter().map(|p| p.r))
        .chain(prepared.iter().map(|p| p.a));
    let sum = EdwardsPoint::vartime_multiscalar_mul(scalars, points);
    if sum.mul_by_cofactor().is_identity() {
        return Ok(());
    }
    for (index, item) in items.iter().enumerate() {
        verify(item).map_err(|error| BatchError { index, error })?;
    }
    // Reaching here would mean the batch equation failed while every member passes alone,
    // which happens with probability 2^-128; report the whole batch rather than accept it.
    Err(BatchError {
        index: 0,
        error: SignatureError::Mismatch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;

    fn keypair(seed: u8) -> Keypair {
        Keypair::from_secret(&[seed; 32])
    }

    /// Signs as the key owner but with R shifted by a torsion point: the crafted signature
    /// satisfies the cofactored equation and fails the cofactorless one.
    fn sign_with_torsion_r(kp: &Keypair, msg: &[u8], torsion: usize) -> Signature {
        let expanded = Sha512::digest(kp.secret_bytes());
        let mut lower = [0u8; 32];
        lower.copy_from_slice(&expanded[..32]);
        let a_scalar = Scalar::from_bytes_mod_order(curve25519_dalek::scalar::clamp_integer(lower));
        let r_scalar = Scalar::from_bytes_mod_order_wide(&Sha512::digest(b"nonce").into());
        let r_point = EdwardsPoint::mul_base(&r_scalar) + EIGHT_TORSION[torsion];
        let r_bytes = r_point.compress().to_bytes();
        let k = Scalar::from_bytes_mod_order_wide(
            &Sha512::new()
                .chain_update(r_bytes)
                .chain_update(kp.public().0)
                .chain_update(msg)
                .finalize()
                .into(),
        );
        let s = r_scalar + k * a_scalar;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r_bytes);
        sig[32..].copy_from_slice(s.as_bytes());
        Signature(sig)
    }

    fn item<'a>(msg: &'a [u8], key: &'a PublicKey, signature: &'a Signature) -> SignedMessage<'a> {
        SignedMessage {
            message: msg,
            key,
            signature,
        }
    }

    /// Single and batch verdicts for `target` inside a batch of honest signatures.
    fn verdicts(msg: &[u8], key: &PublicKey, sig: &Signature) -> (bool, bool) {
        let honest: Vec<(Vec<u8>, PublicKey, Signature)> = (0..5u8)
            .map(|i| {
                let kp = keypair(100 + i);
                let m = vec![i; 10];
                let s = kp.sign(&m);
                (m, kp.public(), s)
            })
            .collect();
        let mut batch: Vec<SignedMessage> = honest.iter().map(|(m, k, s)| item(m, k, s)).collect();
        batch.insert(2, item(msg, key, sig));
        let single = verify(&item(msg, key, sig)).is_ok();
        let batched = verify_batch(&batch).is_ok();
        (single, batched)
    }

    #[test]
    fn honest_signatures_pass_alone_and_in_batches() {
        let kp = keypair(1);
        let sig = kp.sign(b"hello");
        assert_eq!(verdicts(b"hello", &kp.public(), &sig), (true, true));
        assert_eq!(verify_batch(&[]), Ok(()));
    }

    #[test]
    fn wrong_message_fails_both_and_batch_names_the_index() {
        let kp = keypair(1);
        let sig = kp.sign(b"hello");
        assert_eq!(verdicts(b"hullo", &kp.public(), &sig), (false, false));
        let key = kp.public();
        let good = keypair(2).sign(b"x");
        let good_key = keypair(2).public();
        let err =
            verify_batch(&[item(b"x", &good_key, &good), item(b"hullo", &key, &sig)]).unwrap_err();
        assert_eq!(
            err,
            BatchError {
                index: 1,
                error: SignatureError::Mismatch
            }
        );
    }

    #[test]
    fn non_canonical_s_is_rejected_by_both() {
        let kp = keypair(3);
        let sig = kp.sign(b"m");
        // S + ℓ is the same scalar mod ℓ but a second spelling of the signature.
        let s = Scalar::from_canonical_bytes(sig.0[32..].try_into().unwrap()).unwrap();
        let ell_bytes = {
            let mut l = [0u8; 32];
            l.copy_from_slice(
                &hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
                    .unwrap(),
            );
            l
        };
        let mut big = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = s.as_bytes()[i] as u16 + ell_bytes[i] as u16 + carry;
            big[i] = v as u8;
            carry = v >> 8;
        }
        let mut malleated = sig;
        malleated.0[32..].copy_from_slice(&big);
        assert_eq!(verdicts(b"m", &kp.public(), &malleated), (false, false));
        assert_eq!(
            verify(&item(b"m", &kp.public(), &malleated)),
            Err(SignatureError::NonCanonicalS)
        );
    }

    #[test]
    fn small_order_keys_are_rejected_by_both() {
        for t in EIGHT_TORSION.iter() {
            let key = PublicKey(t.compress().to_bytes());
            // With A and R of small order and S = 0 the cofactored equation holds for any
            // message: exactly the forgery the small-order rule exists to stop.
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&t.compress().to_bytes());
            let sig = Signature(sig);
            assert_eq!(verdicts(b"anything", &key, &sig), (false, false));
            let err = verify(&item(b"anything", &key, &sig)).unwrap_err();
            assert!(
                matches!(
                    err,
                    SignatureError::SmallOrderKey | SignatureError::NonCanonicalKey
                ),
                "{err:?}"
            );
        }
    }

    #[test]
    fn non_canonical_key_and_r_encodings_are_rejected_by_both() {
        // y = p + 1 spells the point y = 1 a second way.
        let mut y_over_p = [0xffu8; 32];
        y_over_p[0] = 0xee;
        y_over_p[31] = 0x7f;
        assert!(!is_canonical_point(&y_over_p));
        let mut negative_zero = [0u8; 32];
        negative_zero[0] = 1;
        negative_zero[31] = 0x80;
        assert!(!is_canonical_point(&negative_zero));

        let kp = keypair(4);
        let sig = kp.sign(b"m");
        let key = PublicKey(y_over_p);
        assert_eq!(verdicts(b"m", &key, &sig), (false, false));
        let mut bad_r = sig;
        bad_r.0[..32].copy_from_slice(&negative_zero);
        assert_eq!(verdicts(b"m", &kp.public(), &bad_r), (false, false));
        assert_eq!(
            verify(&item(b"m", &kp.public(), &bad_r)),
            Err(SignatureError::NonCanonicalR)
        );
    }

    #[test]
    fn torsion_in_r_gets_one_verdict_from_both_paths() {
        let kp = keypair(5);
        for t in 1..8 {
            let sig = sign_with_torsion_r(&kp, b"crafted", t);
            assert_eq!(
                verdicts(b"crafted", &kp.public(), &sig),
                (true, true),
                "torsion {t}"
            );
        }
    }

    #[test]
    fn dalek_single_and_batch_disagree_on_torsion() {
        // Why this module exists: with dalek's own functions the verdict on a crafted
        // signature depends on which path checks it.
        let kp = keypair(6);
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&kp.public().0).unwrap();
        let mut disagreements = 0;
        for i in 0..64u32 {
            let msg = i.to_le_bytes();
            // Torsion index 4 is the point of order 2: dalek's batch misses it whenever its
            // weight is even.
            let sig = sign_with_torsion_r(&kp, &msg, 4);
            let dsig = ed25519_dalek::Signature::from_bytes(&sig.0);
            let single = ed25519_dalek::Verifier::verify(&vk, &msg, &dsig).is_ok();
            let batch = ed25519_dalek::verify_batch(&[&msg[..]], &[dsig], &[vk]).is_ok();
            assert!(!single);
            if batch {
                disagreements += 1;
            }
            assert!(verify(&item(&msg, &kp.public(), &sig)).is_ok());
        }
        assert!(disagreements > 0, "dalek paths never disagreed in 64 tries");
    }
}
