//! The handshake two peers exchange before anything else: chain id, genesis hash, fork id.
//!
//! This module owns the handshake's wire format and the rule that decides whether two nodes
//! may talk. It must never trust a decoded handshake beyond comparing it: the values are
//! logged and compared, never used to size anything.

use serde::{Deserialize, Serialize};

use cairn_ledger::codec;
use cairn_ledger::genesis::{Genesis, Upgrade};
use cairn_ledger::rules;
use cairn_ledger::types::{Hash, Height};
use cairn_ledger::upgrades::Schedule;

/// Largest encoded handshake accepted. A real one is a few hundred bytes: a chain id and a
/// few upgrade names.
pub const HANDSHAKE_BYTES_MAX: usize = 16 * 1024;

/// One upgrade, as peers compare them: its name and height, and the fingerprint of the rules
/// the sender's binary compiled for it (`None`: the sender's binary does not implement it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeMark {
    pub name: String,
    pub height: Height,
    pub fingerprint: Option<Hash>,
}

impl UpgradeMark {
    fn of(u: &Upgrade) -> UpgradeMark {
        UpgradeMark {
            name: u.name.clone(),
            height: u.height,
            fingerprint: rules::implemented(&u.name).map(|i| i.fingerprint()),
        }
    }
}

/// Where a node stands in the chain's upgrade schedule, in the spirit of Ethereum's EIP-2124
/// fork id made stronger: the upgrades it has activated, in order, each with the fingerprint
/// of its compiled rules, and the next one it knows of. Two nodes on the same rules have one
/// list a prefix of the other; two binaries that give one upgrade different rules differ in
/// its fingerprint and refuse each other, before it activates as well as after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkId {
    pub activated: Vec<UpgradeMark>,
    pub next: Option<UpgradeMark>,
}

impl ForkId {
    /// An upgrade `self` has activated that `ours` neither activated nor expects next: the
    /// sender is on a schedule the holder of `ours` was not given.
    pub fn activated_unknown_to(&self, ours: &ForkId) -> Option<&UpgradeMark> {
        self.activated.iter().find(|t| {
            !ours
                .activated
                .iter()
                .chain(ours.next.iter())
                .any(|o| o.name == t.name)
        })
    }

    /// The fork id of a node whose chain is at `height`.
    pub fn at(schedule: &Schedule, height: Height) -> ForkId {
        ForkId {
            activated: schedule
                .upgrades()
                .iter()
                .filter(|u| u.height <= height)
                .map(UpgradeMark::of)
                .collect(),
            next: schedule.next_after(height).map(UpgradeMark::of),
        }
    }
}

/// Longest software name a peer may announce (`cairn/0.1.0`), in bytes.
pub const SOFTWARE_LEN_MAX: usize = 64;

/// What a node tells a peer about itself when they connect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    pub chain_id: String,
    pub genesis_hash: Hash,
    pub fork: ForkId,
    /// The sender's software and release, for operators' eyes only (never compared).
    pub software: String,
    /// The highest protocol version the sender's binary implements (never compared: the
    /// fork id decides).
    pub protocol_version: u32,
}

impl Handshake {
    /// This binary's handshake for a chain at `height`.
    pub fn ours(genesis: &Genesis, schedule: &Schedule, height: Height) -> Handshake {
        Handshake {
            chain_id: genesis.chain_id.clone(),
            genesis_hash: genesis.hash(),
            fork: ForkId::at(schedule, height),
            software: crate::software(),
            protocol_version: rules::highest_version().0,
        }
    }
}

/// Why a peer's handshake was refused. Each variant carries both sides' values so the log
/// line says what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("chain id differs: ours {ours:?}, theirs {theirs:?}")]
    ChainId { ours: String, theirs: String },
    #[error("genesis hash differs: ours {ours}, theirs {theirs}")]
    GenesisHash { ours: Hash, theirs: Hash },
    #[error("upgrade schedules diverge: ours {ours:?}, theirs {theirs:?}")]
    Fork {
        ours: Box<ForkId>,
        theirs: Box<ForkId>,
    },
    #[error("handshake is malformed: {0}")]
    Malformed(String),
}

impl Handshake {
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Handshake, Mismatch> {
        let h: Handshake = codec::decode(bytes, HANDSHAKE_BYTES_MAX, "handshake")
            .map_err(|e| Mismatch::Malformed(e.to_string()))?;
        if h.software.len() > SOFTWARE_LEN_MAX {
            return Err(Mismatch::Malformed(format!(
                "software name is {} bytes, over the limit of {SOFTWARE_LEN_MAX}",
                h.software.len()
            )));
        }
        Ok(h)
    }

    /// Whether a node that sent `theirs` may talk to us. Symmetric: both sides reach the same
    /// verdict, so a refusal is logged on both.
    pub fn check(&self, theirs: &Handshake) -> Result<(), Mismatch> {
        if self.chain_id != theirs.chain_id {
            return Err(Mismatch::ChainId {
                ours: self.chain_id.clone(),
                theirs: theirs.chain_id.clone(),
            });
        }
        if self.genesis_hash != theirs.genesis_hash {
            return Err(Mismatch::GenesisHash {
                ours: self.genesis_hash,
                theirs: theirs.genesis_hash,
            });
        }
        if !forks_compatible(&self.fork, &theirs.fork)
            && !forks_compatible(&theirs.fork, &self.fork)
        {
            return Err(Mismatch::Fork {
                ours: Box::new(self.fork.clone()),
                theirs: Box::new(theirs.fork.clone()),
            });
        }
        Ok(())
    }
}

/// `behind` may follow `ahead`: its activated upgrades are a prefix of `ahead`'s (names,
/// heights and rules), and the next one it expects is the next one `ahead` activated, or
/// expects. A `behind` that does not implement that next upgrade stays compatible until its
/// height, which it cannot pass: it still serves and fetches the blocks below it.
///
/// A `behind` that expects no next upgrade while `ahead` expects one (not yet activated) is
/// compatible too: operators append an upgrade to a live chain's schedule one node at a time
/// (`cairn upgrade schedule`), and refusing each other meanwhile would stop the chain for the
/// rollout. They cannot fork over it: every header carries the protocol version its height
/// has, so neither side accepts the other's blocks from that height on; and once `ahead`
/// activates it, the upgrade is in its `activated` list and the rule above refuses `behind`.
fn forks_compatible(behind: &ForkId, ahead: &ForkId) -> bool {
    let n = behind.activated.len();
    if n > ahead.activated.len() || behind.activated[..] != ahead.activated[..n] {
        return false;
    }
    if let Some(activated) = ahead.activated.get(n) {
        return behind
            .next
            .as_ref()
            .is_some_and(|ours| same_upgrade(ours, activated));
    }
    match (&behind.next, &ahead.next) {
        (None, _) => true,
        (Some(ours), Some(theirs)) => same_upgrade(ours, theirs),
        (Some(_), None) => false,
    }
}

/// The same upgrade at the same height, with the same rules where both know them.
fn same_upgrade(ours: &UpgradeMark, theirs: &UpgradeMark) -> bool {
    ours.name == theirs.name
        && ours.height == theirs.height
        && match (ours.fingerprint, theirs.fingerprint) {
            (Some(a), Some(b)) => a == b,
            // One side lacks it: fine until its height.
            _ => true,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(name: &str, h: u64) -> UpgradeMark {
        UpgradeMark {
            name: name.into(),
            height: Height(h),
            fingerprint: Some(Hash::digest(name.as_bytes())),
        }
    }

    fn hs(activated: Vec<UpgradeMark>, next: Option<UpgradeMark>) -> Handshake {
        Handshake {
            chain_id: "c".into(),
            genesis_hash: Hash::digest(b"g"),
            fork: ForkId { activated, next },
            software: "cairn/test".into(),
            protocol_version: 3,
        }
    }

    #[test]
    fn same_rules_at_different_heights_are_compatible() {
        let behind = hs(vec![], Some(mark("a", 10)));
        let ahead = hs(vec![mark("a", 10)], Some(mark("b", 20)));
        assert_eq!(behind.check(&ahead), Ok(()));
        assert_eq!(ahead.check(&behind), Ok(()));
        // An older binary that lacks `a` may stay until height 10, which it cannot pass.
        let older = hs(
            vec![],
            Some(UpgradeMark {
                fingerprint: None,
                ..mark("a", 10)
            }),
        );
        assert_eq!(older.check(&ahead), Ok(()));
        assert_eq!(older.check(&behind), Ok(()));
    }

    #[test]
    fn one_name_with_other_rules_is_refused_before_and_after_it_activates() {
        let other_rules = |m: UpgradeMark| UpgradeMark {
            fingerprint: Some(Hash::digest(b"other rules")),
            ..m
        };
        // Both still below it.
        let ours = hs(vec![], Some(mark("a", 10)));
        let theirs = hs(vec![], Some(other_rules(mark("a", 10))));
        assert!(matches!(ours.check(&theirs), Err(Mismatch::Fork { .. })));
        assert!(matches!(theirs.check(&ours), Err(Mismatch::Fork { .. })));
        // One past it, one below.
        let past = hs(vec![other_rules(mark("a", 10))], None);
        assert!(matches!(ours.check(&past), Err(Mismatch::Fork { .. })));
        // Both past it.
        let past_too = hs(vec![mark("a", 10)], None);
        assert!(matches!(past_too.check(&past), Err(Mismatch::Fork { .. })));
        // Another upgrade at the next height.
        let elsewhere = hs(vec![], Some(mark("b", 10)));
        assert!(matches!(ours.check(&elsewhere), Err(Mismatch::Fork { .. })));
    }

    #[test]
    fn diverging_schedules_are_refused() {
        let ours = hs(vec![mark("a", 10)], None);
        let theirs = hs(vec![mark("b", 10)], None);
        assert!(matches!(ours.check(&theirs), Err(Mismatch::Fork { .. })));
        // They never heard of the upgrade we activated at 10.
        let unaware = hs(vec![], None);
        assert!(matches!(ours.check(&unaware), Err(Mismatch::Fork { .. })));
    }

    #[test]
    fn a_node_that_has_not_yet_scheduled_an_upgrade_stays_compatible_until_it_activates() {
        // The rollout of `cairn upgrade schedule`: some nodes have appended `b`, some not.
        let scheduled = hs(vec![mark("a", 10)], Some(mark("b", 500)));
        let not_yet = hs(vec![mark("a", 10)], None);
        assert_eq!(scheduled.check(&not_yet), Ok(()));
        assert_eq!(not_yet.check(&scheduled), Ok(()));
        // Once `b` is active on one side, the other (which never heard of it) is refused.
        let activated = hs(vec![mark("a", 10), mark("b", 500)], None);
        assert!(matches!(
            activated.check(&not_yet),
            Err(Mismatch::Fork { .. })
        ));
        assert!(matches!(
            not_yet.check(&activated),
            Err(Mismatch::Fork { .. })
        ));
        // Scheduling another upgrade than the others did is still refused.
        let other = hs(vec![mark("a", 10)], Some(mark("c", 500)));
        assert!(matches!(
            other.check(&scheduled),
            Err(Mismatch::Fork { .. })
        ));
    }

    #[test]
    fn genesis_and_chain_mismatches_are_named() {
        let ours = hs(vec![], None);
        let mut theirs = ours.clone();
        theirs.genesis_hash = Hash::digest(b"other");
        assert!(matches!(
            ours.check(&theirs),
            Err(Mismatch::GenesisHash { .. })
        ));
        theirs.chain_id = "d".into();
        assert!(matches!(ours.check(&theirs), Err(Mismatch::ChainId { .. })));
    }

    #[test]
    fn encoding_round_trips_and_garbage_is_refused() {
        let h = hs(vec![mark("a", 10)], Some(mark("b", 20)));
        assert_eq!(Handshake::decode(&h.encode()), Ok(h));
        assert!(matches!(
            Handshake::decode(&[0xff; 7]),
            Err(Mismatch::Malformed(_))
        ));
        assert!(matches!(
            Handshake::decode(&vec![0; HANDSHAKE_BYTES_MAX + 1]),
            Err(Mismatch::Malformed(_))
        ));
        let mut long = hs(vec![], None);
        long.software = "x".repeat(SOFTWARE_LEN_MAX + 1);
        assert!(matches!(
            Handshake::decode(&long.encode()),
            Err(Mismatch::Malformed(m)) if m.contains("software name")
        ));
        // Versions are shown, never compared.
        let mut other = hs(vec![], None);
        other.software = "cairn/9.9.9".into();
        other.protocol_version = 7;
        assert_eq!(hs(vec![], None).check(&other), Ok(()));
    }
}
