//! The consensus rules of each protocol version, and the upgrades this binary implements.
//!
//! One [`Rules`] value per protocol version says everything that differs between versions.
//! Execution, mempool admission and block building all take the `Rules` of the height they
//! work on, from [`Schedule::rules_at`](crate::upgrades::Schedule::rules_at); nothing else
//! compares heights or versions to decide what is valid.
//!
//! An upgrade is compiled into the binary as an [`Implemented`] entry: its name, the protocol
//! version it brings, and how it changes the rules in force before it. A chain's schedule
//! (genesis `[[upgrades]]`) names upgrades by name and version; a name this binary implements
//! must carry the version it implements, or the genesis is refused (two binaries must never
//! read one name as different rules). Once an upgrade has shipped, its entry never changes:
//! the golden tests at the end of this file hold every rule set and its fingerprint fixed,
//! so one binary can replay a chain from genesis across every upgrade.
//!
//! | upgrade | version | what changes |
//! |---|---|---|
//! | (genesis) | 1 | fee may be 0; transfers, oracle actions |
//! | `fee-floor` | 2 | every transaction pays a fee of at least [`FEE_FLOOR`] |
//! | `memo` | 3 | a new transaction kind, `transfer_with_memo`: a transfer carrying up to [`MEMO_BYTES_MAX`](crate::tx::MEMO_BYTES_MAX) bytes of UTF-8 text |

use serde::Serialize;

use crate::codec;
use crate::tx::{Payload, Transaction};
use crate::types::{Amount, Hash, ProtocolVersion};

/// The smallest fee from `fee-floor` on.
pub const FEE_FLOOR: Amount = Amount(1);

/// What is valid under one protocol version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rules {
    pub version: ProtocolVersion,
    /// The smallest fee a transaction may pay.
    pub fee_min: Amount,
    /// Whether `transfer_with_memo` transactions are valid.
    pub memo_transfers: bool,
}

/// The rules at genesis (protocol version 1).
pub const GENESIS_RULES: Rules = Rules {
    version: ProtocolVersion(1),
    fee_min: Amount::ZERO,
    memo_transfers: false,
};

/// An upgrade compiled into this binary.
#[derive(Debug)]
pub struct Implemented {
    pub name: &'static str,
    pub version: ProtocolVersion,
    /// One line for `cairn upgrades` and the logs.
    pub summary: &'static str,
    /// The rules from its height on, given those in force before it.
    pub apply: fn(&Rules) -> Rules,
}

/// Every upgrade this binary implements, in the order they were released. A build with the
/// `omit-newest-upgrade` feature leaves out the last one: the binary of the release before.
pub const IMPLEMENTED: &[Implemented] = if cfg!(feature = "omit-newest-upgrade") {
    SHIPPED.split_at(SHIPPED.len() - 1).0
} else {
    SHIPPED
};

/// Every upgrade shipped so far, oldest first. Append only.
const SHIPPED: &[Implemented] = &[
    Implemented {
        name: "fee-floor",
        version: ProtocolVersion(2),
        summary: "every transaction pays a fee of at least 1",
        apply: |before| Rules {
            fee_min: FEE_FLOOR.max(before.fee_min),
            ..before.clone()
        },
    },
    Implemented {
        name: "memo",
        version: ProtocolVersion(3),
        summary: "transfers may carry a memo (transaction kind transfer_with_memo)",
        apply: |before| Rules {
            memo_transfers: true,
            ..before.clone()
        },
    },
];

/// The highest protocol version this binary implements.
pub fn highest_version() -> ProtocolVersion {
    IMPLEMENTED
        .iter()
        .map(|u| u.version)
        .max()
        .unwrap_or(GENESIS_RULES.version)
}

/// The implemented upgrade called `name`.
pub fn implemented(name: &str) -> Option<&'static Implemented> {
    IMPLEMENTED.iter().find(|u| u.name == name)
}

impl Implemented {
    /// The rules it brings, applied to `before`, at its version.
    pub fn rules_after(&self, before: &Rules) -> Rules {
        Rules {
            version: self.version,
            ..(self.apply)(before)
        }
    }

    /// A fingerprint of what the upgrade does: its name, version and the rules it makes of
    /// the genesis rules. Two binaries that give one name different rules differ here.
    pub fn fingerprint(&self) -> Hash {
        Hash::tagged(
            b"cairn/upgrade-rules/v1",
            &[
                self.name.as_bytes(),
                &codec::encode(&self.rules_after(&GENESIS_RULES)),
            ],
        )
    }
}

/// Why a transaction is not valid under some rules. It says which rule and, where the rule is
/// an upgrade's, what to wait for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error(
        "the fee {fee} is below the minimum of {min} under protocol version {version}; pay at \
         least {min}"
    )]
    FeeBelowMinimum {
        fee: Amount,
        min: Amount,
        version: ProtocolVersion,
    },
    #[error(
        "transaction kind {kind} is not valid under protocol version {version}; it becomes \
         valid with the upgrade that brings it (see `cairn upgrades`)"
    )]
    KindNotValid {
        kind: &'static str,
        version: ProtocolVersion,
    },
}

impl Rules {
    /// Whether `tx` may be included in a block under these rules (its state checks aside).
    pub fn check(&self, tx: &Transaction) -> Result<(), RuleError> {
        if tx.fee < self.fee_min {
            return Err(RuleError::FeeBelowMinimum {
                fee: tx.fee,
                min: self.fee_min,
                version: self.version,
            });
        }
        if matches!(tx.payload, Payload::TransferWithMemo { .. }) && !self.memo_transfers {
            return Err(RuleError::KindNotValid {
                kind: "transfer_with_memo",
                version: self.version,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;
    use crate::types::{Address, Nonce};

    /// The golden vectors: each shipped rule set, literally, and its fingerprint. A change
    /// here is a change of consensus rules under an existing name: ship a new upgrade instead.
    #[test]
    fn shipped_rules_are_frozen() {
        let names: Vec<&str> = IMPLEMENTED.iter().map(|u| u.name).collect();
        assert_eq!(names, ["fee-floor", "memo"]);
        let v2 = IMPLEMENTED[0].rules_after(&GENESIS_RULES);
        assert_eq!(
            v2,
            Rules {
                version: ProtocolVersion(2),
                fee_min: Amount(1),
                memo_transfers: false,
            }
        );
        let v3 = IMPLEMENTED[1].rules_after(&v2);
        assert_eq!(
            v3,
            Rules {
                version: ProtocolVersion(3),
                fee_min: Amount(1),
                memo_transfers: true,
            }
        );
        let prints: Vec<String> = IMPLEMENTED
            .iter()
            .map(|u| u.fingerprint().to_string())
            .collect();
        assert_eq!(
            prints,
            [
                "dcbf2cf64cec8d23f939b5e0cd49c117bb7d42155812a275730165df847645f3",
                "939cc98d741295b0f04096322dc78b4a076011777b8c3c1b48f139fcafe5a60c",
            ]
        );
    }

    fn tx(fee: u64, payload: Payload) -> Transaction {
        Transaction::new_signed(
            "c",
            &Keypair::from_secret(&[1; 32]),
            Nonce(0),
            Amount(fee),
            payload,
        )
    }

    #[test]
    fn each_version_admits_what_it_should() {
        let free = tx(
            0,
            Payload::Transfer {
                to: Address([2; 20]),
                amount: Amount(1),
            },
        );
        let memo = tx(
            1,
            Payload::TransferWithMemo {
                to: Address([2; 20]),
                amount: Amount(1),
                memo: "invoice 7".into(),
            },
        );
        let v2 = IMPLEMENTED[0].rules_after(&GENESIS_RULES);
        let v3 = IMPLEMENTED[1].rules_after(&v2);
        assert_eq!(GENESIS_RULES.check(&free), Ok(()));
        assert!(matches!(
            GENESIS_RULES.check(&memo),
            Err(RuleError::KindNotValid { .. })
        ));
        assert!(matches!(
            v2.check(&free),
            Err(RuleError::FeeBelowMinimum { .. })
        ));
        assert!(matches!(
            v2.check(&memo),
            Err(RuleError::KindNotValid { .. })
        ));
        assert!(v3.check(&free).is_err());
        assert_eq!(v3.check(&memo), Ok(()));
        // `memo` alone on a chain, without `fee-floor`: fees may stay 0.
        let memo_only = IMPLEMENTED[1].rules_after(&GENESIS_RULES);
        assert_eq!(memo_only.check(&free), Ok(()));
        assert_eq!(memo_only.check(&memo), Ok(()));
    }
}
