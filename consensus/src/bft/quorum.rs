//! Counting the voting power behind a list of signers, as every certificate check does
//! before it looks at a single signature.
//!
//! Owns: the rules that each signer is a validator and is counted once. Never: checks
//! signatures or compares the sum with a threshold (each certificate names its own).

use std::collections::HashSet;

use cairn_ledger::PublicKey;

use super::validators::ValidatorSet;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TallyError {
    #[error("no signers")]
    Empty,
    #[error("signer {0} is not a validator")]
    NotAValidator(PublicKey),
    #[error("signer {0} appears twice")]
    DuplicateSigner(PublicKey),
}

/// The summed voting power of `signers`, each of whom must be a distinct validator. The
/// first offending signer, in list order, is the one reported.
pub fn tally(signers: &[&PublicKey], validators: &ValidatorSet) -> Result<u64, TallyError> {
    if signers.is_empty() {
        return Err(TallyError::Empty);
    }
    let mut seen = HashSet::with_capacity(signers.len());
    let mut power = 0u64;
    for key in signers {
        let p = validators
            .power(key)
            .ok_or(TallyError::NotAValidator(**key))?;
        if !seen.insert(*key) {
            return Err(TallyError::DuplicateSigner(**key));
        }
        // The set's total fits a u64, and each signer is counted once.
        power += p;
    }
    debug_assert!(power <= validators.total_power());
    Ok(power)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> PublicKey {
        PublicKey([i; 32])
    }

    #[test]
    fn tally_sums_distinct_validators_and_names_the_first_offender() {
        let set = ValidatorSet::new(&[(key(1), 4), (key(2), 3), (key(3), 2)]).unwrap();
        assert_eq!(tally(&[&key(1), &key(3)], &set), Ok(6));
        assert_eq!(tally(&[], &set), Err(TallyError::Empty));
        assert_eq!(
            tally(&[&key(1), &key(9), &key(1)], &set),
            Err(TallyError::NotAValidator(key(9)))
        );
        assert_eq!(
            tally(&[&key(2), &key(2), &key(9)], &set),
            Err(TallyError::DuplicateSigner(key(2)))
        );
    }
}
