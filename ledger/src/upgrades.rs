//! Protocol upgrades this binary implements, and where a chain's schedule outruns them.
//!
//! Genesis schedules upgrades by height (`[[upgrades]] name, height, protocol_version`).
//! A binary that lacks one of them must not guess at the new rules: it applies blocks up to
//! the one before the upgrade's height and refuses the rest with an error that names the
//! upgrade, so the operator upgrades the binary instead of the node forking off.

use crate::genesis::params::{Genesis, Upgrade};
use crate::types::{Height, ProtocolVersion};

/// Upgrades this binary implements, by name. Empty: this binary knows protocol version 1
/// (the genesis rules) only. An upgrade's code lands together with its name here.
pub const KNOWN_UPGRADES: &[&str] = &[];

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
}

impl Schedule {
    pub fn new(genesis: &Genesis, known: &[&str]) -> Schedule {
        Schedule {
            base: genesis.protocol_version,
            upgrades: genesis.upgrades.clone(),
            missing: genesis
                .upgrades
                .iter()
                .find(|u| !known.contains(&u.name.as_str()))
                .cloned(),
        }
    }

    pub fn for_this_binary(genesis: &Genesis) -> Schedule {
        Schedule::new(genesis, KNOWN_UPGRADES)
    }

    /// The protocol version blocks at `height` follow.
    pub fn version_at(&self, height: Height) -> ProtocolVersion {
        version_at(self.base, &self.upgrades, height)
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
        let s = Schedule::new(&genesis(), &["alpha", "beta"]);
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
        let s = Schedule::new(&genesis(), &["alpha"]);
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
}
