//! The validator set: who may sign, with what voting power, and the thresholds derived from
//! it. With total power N, f = ⌊(N−1)/3⌋ and a quorum is N − f (= 2f+1 when N = 3f+1).
//!
//! Owns: membership and power arithmetic. Never: checks signatures or changes after
//! construction (no engine here reconfigures).

use std::collections::HashMap;

use cairn_ledger::block::QC_VOTES_MAX;
use cairn_ledger::genesis::Validator;
use cairn_ledger::{Address, PublicKey};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidatorSetError {
    #[error("the validator set is empty")]
    Empty,
    #[error("{count} validators is over the limit of {QC_VOTES_MAX}")]
    TooMany { count: usize },
    #[error("validator {key} has voting power 0")]
    ZeroPower { key: PublicKey },
    #[error("validator {key} is listed twice")]
    Duplicate { key: PublicKey },
    #[error("total voting power overflows a u64")]
    PowerOverflow,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub key: PublicKey,
    pub address: Address,
    pub power: u64,
}

#[derive(Clone, Debug)]
pub struct ValidatorSet {
    members: Vec<Member>,
    index: HashMap<PublicKey, usize>,
    total_power: u64,
    faulty_power_max: u64,
}

impl ValidatorSet {
    /// Members in the given (genesis) order; the order fixes the leader schedule.
    pub fn new(members: &[(PublicKey, u64)]) -> Result<ValidatorSet, ValidatorSetError> {
        if members.is_empty() {
            return Err(ValidatorSetError::Empty);
        }
        if members.len() > QC_VOTES_MAX {
            return Err(ValidatorSetError::TooMany {
                count: members.len(),
            });
        }
        let mut index = HashMap::new();
        let mut total_power: u64 = 0;
        for (i, &(key, power)) in members.iter().enumerate() {
            if power == 0 {
                return Err(ValidatorSetError::ZeroPower { key });
            }
            if index.insert(key, i).is_some() {
                return Err(ValidatorSetError::Duplicate { key });
            }
            total_power = total_power
                .checked_add(power)
                .ok_or(ValidatorSetError::PowerOverflow)?;
        }
        Ok(ValidatorSet {
            members: members
                .iter()
                .map(|&(key, power)| Member {
                    key,
                    address: key.address(),
                    power,
                })
                .collect(),
            index,
            total_power,
            faulty_power_max: (total_power - 1) / 3,
        })
    }

    pub fn from_genesis(validators: &[Validator]) -> Result<ValidatorSet, ValidatorSetError> {
        let members: Vec<(PublicKey, u64)> = validators
            .iter()
            .map(|v| (v.public_key, v.voting_power))
            .collect();
        ValidatorSet::new(&members)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn member(&self, position: usize) -> &Member {
        &self.members[position % self.members.len()]
    }

    pub fn position(&self, key: &PublicKey) -> Option<usize> {
        self.index.get(key).copied()
    }

    pub fn power(&self, key: &PublicKey) -> Option<u64> {
        self.position(key).map(|i| self.members[i].power)
    }

    pub fn total_power(&self) -> u64 {
        self.total_power
    }

    /// f: the most voting power that may be Byzantine.
    pub fn faulty_power_max(&self) -> u64 {
        self.faulty_power_max
    }

    /// N − f: the power a QC or TC needs.
    pub fn quorum_power(&self) -> u64 {
        self.total_power - self.faulty_power_max
    }

    /// A set of made-up keys with these powers, in this order (tests only).
    #[cfg(test)]
    pub(crate) fn with_powers(powers: &[u64]) -> ValidatorSet {
        let members: Vec<(PublicKey, u64)> = powers
            .iter()
            .enumerate()
            .map(|(i, &p)| (PublicKey([i as u8 + 1; 32]), p))
            .collect();
        ValidatorSet::new(&members).unwrap()
    }

    /// f + 1: enough power that at least one honest validator is among it.
    pub fn honest_witness_power(&self) -> u64 {
        self.faulty_power_max + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> PublicKey {
        PublicKey([i; 32])
    }

    #[test]
    fn thresholds_follow_voting_power() {
        let four =
            ValidatorSet::new(&[(key(1), 1), (key(2), 1), (key(3), 1), (key(4), 1)]).unwrap();
        assert_eq!(
            (
                four.faulty_power_max(),
                four.quorum_power(),
                four.honest_witness_power()
            ),
            (1, 3, 2)
        );
        // Weighted: N = 10, f = 3, quorum = 7.
        let weighted =
            ValidatorSet::new(&[(key(1), 4), (key(2), 3), (key(3), 2), (key(4), 1)]).unwrap();
        assert_eq!(
            (weighted.faulty_power_max(), weighted.quorum_power()),
            (3, 7)
        );
        let one = ValidatorSet::new(&[(key(1), 5)]).unwrap();
        assert_eq!((one.faulty_power_max(), one.quorum_power()), (1, 4));
    }

    #[test]
    fn bad_sets_are_refused_with_the_offending_key() {
        assert_eq!(
            ValidatorSet::new(&[]).unwrap_err(),
            ValidatorSetError::Empty
        );
        assert_eq!(
            ValidatorSet::new(&[(key(1), 1), (key(1), 2)]).unwrap_err(),
            ValidatorSetError::Duplicate { key: key(1) }
        );
        assert_eq!(
            ValidatorSet::new(&[(key(1), 0)]).unwrap_err(),
            ValidatorSetError::ZeroPower { key: key(1) }
        );
        assert_eq!(
            ValidatorSet::new(&[(key(1), u64::MAX), (key(2), 1)]).unwrap_err(),
            ValidatorSetError::PowerOverflow
        );
    }
}
