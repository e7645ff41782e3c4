//! Checking PBFT certificates: prepare and commit certificates (a quorum of prepares or
//! commits for one block in one round of one height) and round-change certificates with
//! the justification rule a proposal above round 0 must meet.
//!
//! The commit certificate of block 0 is the genesis certificate `QuorumCert { round: 0,
//! block: <genesis id>, votes: [] }`, the only certificate accepted without signatures.
//!
//! Owns: certificate verification and a bounded cache of certificates already verified.
//! Never: decides what a valid certificate means for the round (that is `engine.rs`).

use std::collections::HashSet;

use cairn_ledger::block::QuorumCert;
use cairn_ledger::codec;
use cairn_ledger::{Hash, Height, PublicKey, Round};

use super::messages::{
    PreparedClaim, RoundChangeCert, commit_signing_bytes, prepare_signing_bytes,
    round_change_signing_bytes,
};
use crate::bft::{SignedBytes, TallyError, ValidatorSet, Verifier, tally};

/// Certificates remembered as verified (a parent commit certificate travels in every
/// proposal of a height); cleared when full.
pub const VERIFIED_CERTS_MAX: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("{what} for height {height} round {round} has no signatures")]
    Unsigned {
        what: &'static str,
        height: Height,
        round: Round,
    },
    #[error("{what} signer {key} is not a validator")]
    NotAValidator { what: &'static str, key: PublicKey },
    #[error("{what} signer {key} appears twice")]
    DuplicateSigner { what: &'static str, key: PublicKey },
    #[error(
        "{what} for height {height} round {round} has voting power {power}, below the quorum of \
         {quorum}"
    )]
    InsufficientPower {
        what: &'static str,
        height: Height,
        round: Round,
        power: u64,
        quorum: u64,
    },
    #[error("{what} for height {height} round {round} carries an invalid signature")]
    BadSignature {
        what: &'static str,
        height: Height,
        round: Round,
    },
    #[error("{what} certifies block {got}, not {expected}")]
    WrongBlock {
        what: &'static str,
        expected: Hash,
        got: Hash,
    },
    #[error("round-change certificate is for round {got}, the proposal for round {expected}")]
    WrongRound { expected: Round, got: Round },
    #[error("round-change certificate for round 0: nothing changes into the first round")]
    RoundZero,
    #[error(
        "round-change certificate's highest claim is round {claimed:?}, but its prepare \
         certificate is {carried:?}"
    )]
    PreparedMismatch {
        claimed: Option<PreparedClaim>,
        carried: Option<PreparedClaim>,
    },
    #[error("prepare certificate of round {prepared} is not below the round {round} it justifies")]
    PreparedNotBelow { prepared: Round, round: Round },
}

/// The genesis commit certificate: block 0's authority is the genesis file, not signatures.
pub fn genesis_commit(genesis_block: Hash) -> QuorumCert {
    QuorumCert {
        round: Round(0),
        block: genesis_block,
        votes: Vec::new(),
    }
}

pub struct CertChecker {
    chain: Hash,
    verified: HashSet<Hash>,
}

#[derive(Clone, Copy)]
enum Kind {
    Prepare,
    Commit,
}

impl Kind {
    fn what(self) -> &'static str {
        match self {
            Kind::Prepare => "prepare certificate",
            Kind::Commit => "commit certificate",
        }
    }

    fn bytes(self, chain: &Hash, height: Height, round: Round, block: &Hash) -> Vec<u8> {
        match self {
            Kind::Prepare => prepare_signing_bytes(chain, height, round, block),
            Kind::Commit => commit_signing_bytes(chain, height, round, block),
        }
    }
}

impl CertChecker {
    pub fn new(chain: Hash) -> CertChecker {
        CertChecker {
            chain,
            verified: HashSet::new(),
        }
    }

    fn digest(kind: Kind, height: Height, qc: &QuorumCert) -> Hash {
        let tag: &[u8] = match kind {
            Kind::Prepare => b"prepare",
            Kind::Commit => b"commit",
        };
        Hash::tagged(
            b"cairn/pbft/cert-digest",
            &[tag, &codec::encode(&(height, qc))],
        )
    }

    fn remember(&mut self, digest: Hash) {
        if self.verified.len() >= VERIFIED_CERTS_MAX {
            self.verified.clear();
        }
        self.verified.insert(digest);
    }

    /// Marks a certificate this node assembled from votes it verified one by one.
    pub fn trust_commit(&mut self, height: Height, qc: &QuorumCert) {
        self.remember(Self::digest(Kind::Commit, height, qc));
    }

    /// Checks that `qc` commits block `qc.block` at `height`: the genesis certificate for
    /// height 0, a quorum of valid commit signatures otherwise.
    pub fn verify_commit(
        &mut self,
        height: Height,
        qc: &QuorumCert,
        validators: &ValidatorSet,
        verifier: &dyn Verifier,
    ) -> Result<(), CertError> {
        if height == Height(0) {
            if *qc == genesis_commit(self.chain) {
                return Ok(());
            }
            return Err(CertError::WrongBlock {
                what: "genesis commit certificate",
                expected: self.chain,
                got: qc.block,
            });
        }
        self.verify(Kind::Commit, height, qc, validators, verifier)
    }

    /// Checks that `qc` is a quorum of prepares for `qc.block` in round `qc.round` of `height`.
    pub fn verify_prepare(
        &mut self,
        height: Height,
        qc: &QuorumCert,
        validators: &ValidatorSet,
        verifier: &dyn Verifier,
    ) -> Result<(), CertError> {
        self.verify(Kind::Prepare, height, qc, validators, verifier)
    }

    fn verify(
        &mut self,
        kind: Kind,
        height: Height,
        qc: &QuorumCert,
        validators: &ValidatorSet,
        verifier: &dyn Verifier,
    ) -> Result<(), CertError> {
        let what = kind.what();
        let digest = Self::digest(kind, height, qc);
        if self.verified.contains(&digest) {
            return Ok(());
        }
        let signers: Vec<&PublicKey> = qc.votes.iter().map(|(k, _)| k).collect();
        check_power(what, height, qc.round, &signers, validators)?;
        let bytes = kind.bytes(&self.chain, height, qc.round, &qc.block);
        let items: Vec<SignedBytes> = qc
            .votes
            .iter()
            .map(|(key, signature)| SignedBytes {
                message: &bytes,
                key,
                signature,
            })
            .collect();
        if !verifier.verify_all(&items) {
            return Err(CertError::BadSignature {
                what,
                height,
                round: qc.round,
            });
        }
        self.remember(digest);
        Ok(())
    }

    /// Checks a proposal's justification for `(height, round)` and returns the block the
    /// proposal must offer, if the rule names one.
    ///
    /// The rule (IBFT 2.0 / QBFT): a quorum signed round changes to `round`; if any of them
    /// claims a prepared block, the certificate carries a valid prepare certificate for the
    /// highest claim, below `round`, and the proposal must offer that block. If a block was
    /// committed in an earlier round, a quorum prepared it there, so every quorum of round
    /// changes includes an honest claim for it, and no higher valid prepare certificate can
    /// exist for another block: the committed block is the one offered again.
    pub fn verify_justification(
        &mut self,
        height: Height,
        round: Round,
        cert: &RoundChangeCert,
        validators: &ValidatorSet,
        verifier: &dyn Verifier,
    ) -> Result<Option<Hash>, CertError> {
        const WHAT: &str = "round-change certificate";
        if round == Round(0) {
            return Err(CertError::RoundZero);
        }
        if cert.round != round {
            return Err(CertError::WrongRound {
                expected: round,
                got: cert.round,
            });
        }
        let signers: Vec<&PublicKey> = cert.signatures.iter().map(|s| &s.signer).collect();
        check_power(WHAT, height, round, &signers, validators)?;
        let bytes: Vec<Vec<u8>> = cert
            .signatures
            .iter()
            .map(|s| round_change_signing_bytes(&self.chain, height, round, &s.prepared))
            .collect();
        let items: Vec<SignedBytes> = cert
            .signatures
            .iter()
            .zip(&bytes)
            .map(|(s, message)| SignedBytes {
                message,
                key: &s.signer,
                signature: &s.signature,
            })
            .collect();
        if !verifier.verify_all(&items) {
            return Err(CertError::BadSignature {
                what: WHAT,
                height,
                round,
            });
        }
        let highest = cert
            .signatures
            .iter()
            .filter_map(|s| s.prepared)
            .max_by_key(|c| c.round);
        let carried = cert.prepared.as_ref().map(|qc| PreparedClaim {
            round: qc.round,
            block: qc.block,
        });
        // Two claims may share the highest round only if they name one block (two prepare
        // quorums in one round need a third of the power to sign twice); the carried
        // certificate must match one of them.
        let matches = match (highest, carried) {
            (None, None) => true,
            (Some(h), Some(c)) => {
                c.round == h.round && cert.signatures.iter().any(|s| s.prepared == Some(c))
            }
            _ => false,
        };
        if !matches {
            return Err(CertError::PreparedMismatch {
                claimed: highest,
                carried,
            });
        }
        let Some(qc) = &cert.prepared else {
            return Ok(None);
        };
        if qc.round >= round {
            return Err(CertError::PreparedNotBelow {
                prepared: qc.round,
                round,
            });
        }
        self.verify_prepare(height, qc, validators, verifier)?;
        Ok(Some(qc.block))
    }
}

fn check_power(
    what: &'static str,
    height: Height,
    round: Round,
    signers: &[&PublicKey],
    validators: &ValidatorSet,
) -> Result<(), CertError> {
    let power = tally(signers, validators).map_err(|e| match e {
        TallyError::Empty => CertError::Unsigned {
            what,
            height,
            round,
        },
        TallyError::NotAValidator(key) => CertError::NotAValidator { what, key },
        TallyError::DuplicateSigner(key) => CertError::DuplicateSigner { what, key },
    })?;
    if power < validators.quorum_power() {
        return Err(CertError::InsufficientPower {
            what,
            height,
            round,
            power,
            quorum: validators.quorum_power(),
        });
    }
    Ok(())
}
