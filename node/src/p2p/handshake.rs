//! The handshake two peers exchange before anything else: chain id, genesis hash, fork id.
//!
//! This module owns the handshake's wire format and the rule that decides whether two nodes
//! may talk. It must never trust a decoded handshake beyond comparing it: the values are
//! logged and compared, never used to size anything.

use serde::{Deserialize, Serialize};

use cairn_ledger::codec;
use cairn_ledger::genesis::Genesis;
use cairn_ledger::types::{Hash, Height};
use cairn_ledger::upgrades::Schedule;

/// Largest encoded handshake accepted. A real one is a few hundred bytes: a chain id and a
/// few upgrade names.
pub const HANDSHAKE_BYTES_MAX: usize = 16 * 1024;

/// One activated upgrade, as peers compare them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeMark {
    pub name: String,
    pub height: Height,
}

/// Where a node stands in the chain's upgrade schedule (in the spirit of Ethereum's EIP-2124
/// fork id): the upgrades it has activated, in order, and the height of the next one it
/// knows of. Two nodes on the same rules have one list a prefix of the other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkId {
    pub activated: Vec<UpgradeMark>,
    pub next: Option<Height>,
}

impl ForkId {
    /// The fork id of a node whose chain is at `height`.
    pub fn at(genesis: &Genesis, schedule: &Schedule, height: Height) -> ForkId {
        ForkId {
            activated: genesis
                .upgrades
                .iter()
                .filter(|u| u.height <= height)
                .map(|u| UpgradeMark {
                    name: u.name.clone(),
                    height: u.height,
                })
                .collect(),
            next: schedule.next_after(height).map(|u| u.height),
        }
    }
}

/// What a node tells a peer about itself when they connect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    pub chain_id: String,
    pub genesis_hash: Hash,
    pub fork: ForkId,
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
    Fork { ours: ForkId, theirs: ForkId },
    #[error("handshake is malformed: {0}")]
    Malformed(String),
}

impl Handshake {
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Handshake, Mismatch> {
        codec::decode(bytes, HANDSHAKE_BYTES_MAX, "handshake")
            .map_err(|e| Mismatch::Malformed(e.to_string()))
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
                ours: self.fork.clone(),
                theirs: theirs.fork.clone(),
            });
        }
        Ok(())
    }
}

/// `behind` may follow `ahead`: its activated upgrades are a prefix of `ahead`'s, and if it
/// has fewer, the next one it expects is the next one `ahead` activated.
fn forks_compatible(behind: &ForkId, ahead: &ForkId) -> bool {
    let n = behind.activated.len();
    if n > ahead.activated.len() || behind.activated[..] != ahead.activated[..n] {
        return false;
    }
    match ahead.activated.get(n) {
        Some(first_missing) => behind.next == Some(first_missing.height),
        None => behind.next == ahead.next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(name: &str, h: u64) -> UpgradeMark {
        UpgradeMark {
            name: name.into(),
            height: Height(h),
        }
    }

    fn hs(activated: Vec<UpgradeMark>, next: Option<u64>) -> Handshake {
        Handshake {
            chain_id: "c".into(),
            genesis_hash: Hash::digest(b"g"),
            fork: ForkId {
                activated,
                next: next.map(Height),
            },
        }
    }

    #[test]
    fn same_rules_at_different_heights_are_compatible() {
        let behind = hs(vec![], Some(10));
        let ahead = hs(vec![mark("a", 10)], Some(20));
        assert_eq!(behind.check(&ahead), Ok(()));
        assert_eq!(ahead.check(&behind), Ok(()));
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
        let h = hs(vec![mark("a", 10)], Some(20));
        assert_eq!(Handshake::decode(&h.encode()), Ok(h));
        assert!(matches!(
            Handshake::decode(&[0xff; 7]),
            Err(Mismatch::Malformed(_))
        ));
        assert!(matches!(
            Handshake::decode(&vec![0; HANDSHAKE_BYTES_MAX + 1]),
            Err(Mismatch::Malformed(_))
        ));
    }
}
