//! Protocol upgrades this binary implements, and where a chain's schedule outruns them.
//!
//! Genesis schedules upgrades by height (`[[upgrades]] name, height, protocol_version`).
//! A binary that lacks one of them must not guess at the new rules: it applies blocks up to
//! the one before the upgrade's height and refuses the rest with an error that names the
//! upgrade, so the operator upgrades the binary instead of the node forking off.

use crate::genesis::params::{Genesis, Upgrade};
use crate::rules::{GENESIS_RULES, IMPLEMENTED, Implemented, Rules};
use crate::types::{Height, ProtocolVersion};

/// The protocol version at `height`: that of the last upgrade activated at or below it.
pub fn version_at(base: ProtocolVersion, upgrades: &[Upgrade], height: Height) -> ProtocolVersion {
    upgrades
        .iter()
        .rfind(|u| u.height <= height)
        .map_or(base, |u| u.protocol_version)
}

impl Genesis {
    /// The protocol version blocks at height `h` follow: that of the last upgrade activated
    /// at or below `h`, else the genesis version.
    pub fn protocol_version_at(&self, h: Height) -> ProtocolVersion {
        version_at(self.protocol_version, &self.upgrades, h)
    }
}

/// Where a chain's rules come from at each height, as far as this binary can follow them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    base: ProtocolVersion,
    upgrades: Vec<Upgrade>,
    /// The first scheduled upgrade this binary lacks.
    missing: Option<Upgrade>,
    /// The rules in force from each height on, lowest first, starting at 0; up to the first
    /// missing upgrade (the heights from there on are not followed at all).
    rules: Vec<(Height, Rules)>,
}

impl Schedule {
    /// The schedule of `genesis` as a binary implementing `implemented` follows it. A
    /// scheduled name found in `implemented` takes that entry's rules (genesis validation has
    /// checked that the versions agree); the first name not found stops the rules there.
    pub fn new(genesis: &Genesis, implemented: &[Implemented]) -> Schedule {
        let mut rules = vec![(
            Height(0),
            Rules {
                version: genesis.protocol_version,
                ..GENESIS_RULES
            },
        )];
        let mut missing = None;
        for u in &genesis.upgrades {
            let Some(known) = implemented.iter().find(|i| i.name == u.name) else {
                missing = Some(u.clone());
                break;
            };
            let before = &rules.last().expect("the genesis rules are first").1;
            let after = Rules {
                version: u.protocol_version,
                ..known.rules_after(before)
            };
            rules.push((u.height, after));
        }
        Schedule {
            base: genesis.protocol_version,
            upgrades: genesis.upgrades.clone(),
            missing,
            rules,
        }
    }

    pub fn for_this_binary(genesis: &Genesis) -> Schedule {
        Schedule::new(genesis, IMPLEMENTED)
    }

    /// The protocol version blocks at `height` follow.
    pub fn version_at(&self, height: Height) -> ProtocolVersion {
        version_at(self.base, &self.upgrades, height)
    }

    /// Every scheduled upgrade, lowest height first.
    pub fn upgrades(&self) -> &[Upgrade] {
        &self.upgrades
    }

    /// The rules blocks at `height` follow. At or above a missing upgrade's height these are
    /// the last rules this binary knows, which no block there may be judged by: callers check
    /// [`Schedule::missing_at`] first (the store refuses such blocks before executing them).
    pub fn rules_at(&self, height: Height) -> &Rules {
        &self
            .rules
            .iter()
            .rfind(|(from, _)| *from <= height)
            .expect("the genesis rules start at height 0")
            .1
    }

    /// The upgrade this binary lacks that governs `height`, if any.
    pub fn missing_at(&self, height: Height) -> Option<&Upgrade> {
        self.missing.as_ref().filter(|u| height >= u.height)
    }

    /// The next upgrade after `height`, for status and peer handshakes.
    pub fn next_after(&self, height: Height) -> Option<&Upgrade> {
        self.upgrades.iter().find(|u| u.height > height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::EngineKind;
    use crate::types::TimestampMs;

    fn known(names: &[&'static str]) -> Vec<Implemented> {
        names
            .iter()
            .map(|&name| Implemented {
                name,
                version: ProtocolVersion(0),
                summary: "",
                apply: |r| r.clone(),
            })
            .collect()
    }

    fn genesis() -> Genesis {
        let mut g = Genesis::local(EngineKind::HotStuff, &[], &[], TimestampMs(0));
        g.upgrades = vec![
            Upgrade {
                name: "alpha".into(),
                height: Height(10),
                protocol_version: ProtocolVersion(2),
            },
            Upgrade {
                name: "beta".into(),
                height: Height(20),
                protocol_version: ProtocolVersion(3),
            },
        ];
        g
    }

    #[test]
    fn versions_switch_at_activation_heights() {
        let s = Schedule::new(&genesis(), &known(&["alpha", "beta"]));
        assert_eq!(s.version_at(Height(9)), ProtocolVersion(1));
        assert_eq!(s.version_at(Height(10)), ProtocolVersion(2));
        assert_eq!(s.version_at(Height(25)), ProtocolVersion(3));
        assert_eq!(s.missing_at(Height(1_000)), None);
        assert_eq!(
            s.next_after(Height(10)).map(|u| u.name.as_str()),
            Some("beta")
        );
    }

    #[test]
    fn first_unknown_upgrade_governs_from_its_height() {
        let s = Schedule::new(&genesis(), &known(&["alpha"]));
        assert_eq!(s.missing_at(Height(19)), None);
        assert_eq!(
            s.missing_at(Height(20)).map(|u| u.name.as_str()),
            Some("beta")
        );
        let none_known = Schedule::new(&genesis(), &[]);
        assert_eq!(
            none_known.missing_at(Height(10)).map(|u| u.name.as_str()),
            Some("alpha")
        );
    }

    #[test]
    fn the_rules_change_at_each_implemented_upgrades_height() {
        let mut g = genesis();
        g.upgrades[0].name = "fee-floor".into();
        g.upgrades[1].name = "memo".into();
        let s = Schedule::for_this_binary(&g);
        assert_eq!(s.rules_at(Height(0)), &GENESIS_RULES);
        assert_eq!(s.rules_at(Height(9)), &GENESIS_RULES);
        let at10 = s.rules_at(Height(10));
        assert_eq!(
            (at10.version, at10.fee_min.0, at10.memo_transfers),
            (ProtocolVersion(2), 1, false)
        );
        let at20 = s.rules_at(Height(20));
        assert_eq!(
            (at20.version, at20.fee_min.0, at20.memo_transfers),
            (ProtocolVersion(3), 1, true)
        );
        assert_eq!(s.rules_at(Height(u64::MAX)), at20);
        // A binary without `memo` keeps the fee floor's rules and halts at 20.
        let older = Schedule::new(&g, &IMPLEMENTED[..1]);
        assert_eq!(
            older.missing_at(Height(20)).map(|u| u.name.as_str()),
            Some("memo")
        );
        assert!(!older.rules_at(Height(19)).memo_transfers);
    }
}
