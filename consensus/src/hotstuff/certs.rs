//! Checking quorum and timeout certificates: signers are distinct validators, their summed
//! voting power reaches the quorum, and every signature verifies over the right bytes.
//!
//! Genesis convention: block 0 (`Seal::Genesis`) is certified at round 0 by the *genesis
//! QC* `QuorumCert { round: 0, block: <genesis block id>, votes: [] }`. It is the only QC
//! accepted without signatures and the only one allowed at round 0.
//!
//! Owns: certificate verification and a bounded cache of certificates already verified.
//! Never: decides what a valid certificate means for the protocol (that is `engine.rs`).

use std::collections::HashSet;

use cairn_ledger::block::QuorumCert;
use cairn_ledger::codec;
use cairn_ledger::{Hash, PublicKey, Round};

use super::messages::{TimeoutCert, timeout_signing_bytes, vote_signing_bytes};
use crate::bft::{SignedBytes, TallyError, ValidatorSet, Verifier, tally};

/// Certificates remembered as verified; QCs travel in every proposal, timeout and TC, so
/// the same one is seen many times. Cleared when full.
pub const VERIFIED_CERTS_MAX: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("{what} at round {round} has no signatures and is not the genesis QC")]
    Unsigned { what: &'static str, round: Round },
    #[error("QC at round 0 for block {block} is not the genesis QC")]
    FalseGenesis { block: Hash },
    #[error("{what} signer {key} is not a validator")]
    NotAValidator { what: &'static str, key: PublicKey },
    #[error("{what} signer {key} appears twice")]
    DuplicateSigner { what: &'static str, key: PublicKey },
    #[error("{what} at round {round} has voting power {power}, below the quorum of {quorum}")]
    InsufficientPower {
        what: &'static str,
        round: Round,
        power: u64,
        quorum: u64,
    },
    #[error("{what} at round {round} carries an invalid signature")]
    BadSignature { what: &'static str, round: Round },
    #[error(
        "TC for round {round} carries a high QC of round {qc_round}, but its signers claim {claimed}"
    )]
    TcHighQcMismatch {
        round: Round,
        qc_round: Round,
        claimed: Round,
    },
    #[error("TC for round {round} carries a high QC of round {qc_round}, not below it")]
    TcHighQcNotBelow { round: Round, qc_round: Round },
    #[error("TC for round 0: no round precedes the first")]
    TcRoundZero,
}

pub struct CertChecker {
    chain: Hash,
    genesis_qc: QuorumCert,
    verified: HashSet<Hash>,
}

impl CertChecker {
    pub fn new(chain: Hash) -> CertChecker {
        CertChecker {
            chain,
            genesis_qc: genesis_qc(chain),
            verified: HashSet::new(),
        }
    }

    pub fn genesis_qc(&self) -> &QuorumCert {
        &self.genesis_qc
    }

    fn remember(&mut self, digest: Hash) {
        if self.verified.len() >= VERIFIED_CERTS_MAX {
            self.verified.clear();
        }
        self.verified.insert(digest);
    }

    /// Marks a QC this node assembled from votes it verified one by one.
    pub fn trust_assembled(&mut self, qc: &QuorumCert) {
        self.remember(Hash::tagged(
            b"cairn/hotstuff/qc-digest",
            &[&codec::encode(qc)],
        ));
    }

    pub fn verify_qc(
        &mut self,
        qc: &QuorumCert,
        validators: &ValidatorSet,
        verifier: &dyn Verifier,
    ) -> Result<(), CertError> {
        if qc.round == Round(0) {
            return if *qc == self.genesis_qc {
                Ok(())
            } else {
                Err(CertError::FalseGenesis { block: qc.block })
            };
        }
        let digest = Hash::tagged(b"cairn/hotstuff/qc-digest", &[&codec::encode(qc)]);
        if self.verified.contains(&digest) {
            return Ok(());
        }
        let signers: Vec<&PublicKey> = qc.votes.iter().map(|(k, _)| k).collect();
        check_power("QC", qc.round, &signers, validators)?;
        let message = vote_signing_bytes(&self.chain, qc.round, &qc.block);
        let items: Vec<SignedBytes> = qc
            .votes
            .iter()
            .map(|(key, signature)| SignedBytes {
                message: &message,
                key,
                signature,
            })
            .collect();
        if !verifier.verify_all(&items) {
            return Err(CertError::BadSignature {
                what: "QC",
                round: qc.round,
            });
        }
        self.remember(digest);
        Ok(())
    }

    pub fn verify_tc(
        &mut self,
        tc: &TimeoutCert,
        validators: &ValidatorSet,
        verifier: &dyn Verifier,
    ) -> Result<(), CertError> {
        if tc.round == Round(0) {
            return Err(CertError::TcRoundZero);
        }
        let digest = Hash::tagged(b"cairn/hotstuff/tc-digest", &[&codec::encode(tc)]);
        if self.verified.contains(&digest) {
            return Ok(());
        }
        if tc.high_qc.round >= tc.round {
            return Err(CertError::TcHighQcNotBelow {
                round: tc.round,
                qc_round: tc.high_qc.round,
            });
        }
        let claimed = tc
            .signatures
            .iter()
            .map(|s| s.high_qc_round)
            .max()
            .unwrap_or(Round(0));
        if claimed != tc.high_qc.round {
            return Err(CertError::TcHighQcMismatch {
                round: tc.round,
                qc_round: tc.high_qc.round,
                claimed,
            });
        }
        let signers: Vec<&PublicKey> = tc.signatures.iter().map(|s| &s.signer).collect();
        check_power("TC", tc.round, &signers, validators)?;
        let messages: Vec<Vec<u8>> = tc
            .signatures
            .iter()
            .map(|s| timeout_signing_bytes(&self.chain, tc.round, s.high_qc_round))
            .collect();
        let items: Vec<SignedBytes> = tc
            .signatures
            .iter()
            .zip(&messages)
            .map(|(s, message)| SignedBytes {
                message,
                key: &s.signer,
                signature: &s.signature,
            })
            .collect();
        if !verifier.verify_all(&items) {
            return Err(CertError::BadSignature {
                what: "TC",
                round: tc.round,
            });
        }
        self.verify_qc(&tc.high_qc, validators, verifier)?;
        self.remember(digest);
        Ok(())
    }
}

/// The QC that certifies the genesis block (see the module documentation).
pub fn genesis_qc(genesis_block: Hash) -> QuorumCert {
    QuorumCert {
        round: Round(0),
        block: genesis_block,
        votes: Vec::new(),
    }
}

fn check_power(
    what: &'static str,
    round: Round,
    signers: &[&PublicKey],
    validators: &ValidatorSet,
) -> Result<(), CertError> {
    let power = tally(signers, validators).map_err(|e| match e {
        TallyError::Empty => CertError::Unsigned { what, round },
        TallyError::NotAValidator(key) => CertError::NotAValidator { what, key },
        TallyError::DuplicateSigner(key) => CertError::DuplicateSigner { what, key },
    })?;
    if power < validators.quorum_power() {
        return Err(CertError::InsufficientPower {
            what,
            round,
            power,
            quorum: validators.quorum_power(),
        });
    }
    Ok(())
}
