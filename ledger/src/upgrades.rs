//! Protocol upgrades this binary implements, and where a chain's schedule outruns them.
//!
//! Genesis schedules the first upgrades by height (`[[upgrades]] name, height,
//! protocol_version`); operators append more on a live chain (`cairn upgrade schedule`,
//! checked by [`Schedule::check_append`]). The schedule in force lives in the store, not in
//! the genesis hash, so that adding an upgrade does not make a new network.
//! A binary that lacks one of them must not guess at the new rules: it applies blocks up to
//! the one before the upgrade's height and refuses the rest with an error that names the
//! upgrade, so the operator upgrades the binary instead of the node forking off.

use crate::codec;
use crate::genesis::params::{Genesis, UPGRADE_NAME_RULE, Upgrade, is_upgrade_name};
use crate::rules::{GENESIS_RULES, IMPLEMENTED, Implemented, Rules};
use crate::types::{Hash, Height, ProtocolVersion};

/// The fewest blocks between the tip and an upgrade appended to a live chain's schedule
/// (`cairn upgrade schedule`, unless `--late`): every operator needs time to append the same
/// entry to their node before its height.
pub const SCHEDULE_MARGIN_BLOCKS_MIN: u64 = 100;
/// The most upgrades one schedule holds (genesis and appended together), so the stored
/// schedule and the fork id in every handshake stay small.
pub const SCHEDULE_UPGRADES_MAX: usize = 64;

/// Why an upgrade cannot be appended to the schedule in force. Each says which value to
/// change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("the name {0:?} breaks the rule: {UPGRADE_NAME_RULE}")]
    BadName(String),
    #[error(
        "{name:?} is already scheduled (at height {height}); the schedule is append-only, so an \
         upgrade cannot be moved or scheduled twice"
    )]
    AlreadyScheduled { name: String, height: Height },
    #[error(
        "this binary does not implement {name:?} (it implements: {known}); install a cairn \
         release that does, then schedule it"
    )]
    NotImplemented { name: String, known: String },
    #[error(
        "{name:?} is protocol version {implemented} in this binary, not {given}; one name means \
         one set of rules everywhere"
    )]
    WrongVersion {
        name: String,
        given: ProtocolVersion,
        implemented: ProtocolVersion,
    },
    #[error(
        "height {height} is not above the last scheduled upgrade {last:?} (height {last_height}); \
         the schedule is append-only: no past or current height can be rewritten"
    )]
    NotAfterLast {
        height: Height,
        last: String,
        last_height: Height,
    },
    #[error(
        "protocol version {version} is not above {floor}, the version in force at the end of the \
         schedule; each upgrade must raise it"
    )]
    VersionNotRaised {
        version: ProtocolVersion,
        floor: ProtocolVersion,
    },
    #[error(
        "height {height} is too close: the tip is at {tip} and an upgrade must be at least \
         {margin} blocks above it (height {lowest} or more), so every operator can schedule it \
         before the chain gets there"
    )]
    TooClose {
        height: Height,
        tip: Height,
        margin: u64,
        lowest: Height,
    },
    #[error("the schedule already holds {SCHEDULE_UPGRADES_MAX} upgrades, its limit")]
    Full,
}

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
        Schedule::from_upgrades(genesis.protocol_version, &genesis.upgrades, implemented)
    }

    /// The schedule `upgrades` over a chain that starts at protocol version `base`.
    pub fn from_upgrades(
        base: ProtocolVersion,
        upgrades: &[Upgrade],
        implemented: &[Implemented],
    ) -> Schedule {
        let mut rules = vec![(
            Height(0),
            Rules {
                version: base,
                ..GENESIS_RULES
            },
        )];
        let mut missing = None;
        for u in upgrades {
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
            base,
            upgrades: upgrades.to_vec(),
            missing,
            rules,
        }
    }

    /// The protocol version at height 0.
    pub fn base(&self) -> ProtocolVersion {
        self.base
    }

    /// Names the schedule: two nodes follow the same upgrades exactly when these are equal.
    pub fn hash(&self) -> Hash {
        Hash::tagged(
            b"cairn/upgrade-schedule/v1",
            &[&codec::encode(&(self.base, &self.upgrades))],
        )
    }

    /// Whether `u` may be appended to this schedule on a chain whose tip is at `tip`, by a
    /// binary implementing `implemented`: a name this binary implements at that version,
    /// above every scheduled height and version, and at least `margin` blocks (never fewer
    /// than 1) above the tip, so nothing already scheduled or committed changes. The caller
    /// picks the margin: [`SCHEDULE_MARGIN_BLOCKS_MIN`] or more on a rollout, 1 for a node
    /// that missed one and is still below the height the others scheduled.
    pub fn check_append(
        &self,
        u: &Upgrade,
        tip: Height,
        margin: u64,
        implemented: &[Implemented],
    ) -> Result<(), ScheduleError> {
        if !is_upgrade_name(&u.name) {
            return Err(ScheduleError::BadName(u.name.clone()));
        }
        if let Some(there) = self.upgrades.iter().find(|s| s.name == u.name) {
            return Err(ScheduleError::AlreadyScheduled {
                name: u.name.clone(),
                height: there.height,
            });
        }
        let Some(known) = implemented.iter().find(|i| i.name == u.name) else {
            let known = implemented
                .iter()
                .map(|i| i.name)
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ScheduleError::NotImplemented {
                name: u.name.clone(),
                known,
            });
        };
        if known.version != u.protocol_version {
            return Err(ScheduleError::WrongVersion {
                name: u.name.clone(),
                given: u.protocol_version,
                implemented: known.version,
            });
        }
        if self.upgrades.len() >= SCHEDULE_UPGRADES_MAX {
            return Err(ScheduleError::Full);
        }
        if let Some(last) = self.upgrades.last()
            && u.height <= last.height
        {
            return Err(ScheduleError::NotAfterLast {
                height: u.height,
                last: last.name.clone(),
                last_height: last.height,
            });
        }
        let floor = self
            .upgrades
            .last()
            .map_or(self.base, |l| l.protocol_version);
        if u.protocol_version <= floor {
            return Err(ScheduleError::VersionNotRaised {
                version: u.protocol_version,
                floor,
            });
        }
        let margin = margin.max(1);
        let lowest = Height(tip.0.saturating_add(margin));
        if u.height < lowest {
            return Err(ScheduleError::TooClose {
                height: u.height,
                tip,
                margin,
                lowest,
            });
        }
        Ok(())
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

    fn implemented_as(entries: &[(&'static str, u32)]) -> Vec<Implemented> {
        entries
            .iter()
            .map(|&(name, v)| Implemented {
                version: ProtocolVersion(v),
                ..known(&[name]).remove(0)
            })
            .collect()
    }

    fn upgrade(name: &str, height: u64, version: u32) -> Upgrade {
        Upgrade {
            name: name.into(),
            height: Height(height),
            protocol_version: ProtocolVersion(version),
        }
    }

    /// `cairn upgrade schedule`'s refusals, each for the value to change; what passes is
    /// exactly an implemented name at its version, above every scheduled height and version,
    /// and `margin` blocks above the tip.
    #[test]
    fn appending_refuses_each_way_of_rewriting_or_guessing_the_schedule() {
        let implemented = implemented_as(&[("alpha", 2), ("beta", 3), ("gamma", 4), ("old", 2)]);
        let s = Schedule::new(&genesis(), &implemented);
        let check = |u: Upgrade, tip: u64, margin: u64| {
            s.check_append(&u, Height(tip), margin, &implemented)
        };
        assert_eq!(check(upgrade("gamma", 200, 4), 50, 100), Ok(()));
        assert!(matches!(
            check(upgrade("Gamma", 200, 4), 50, 100),
            Err(ScheduleError::BadName(_))
        ));
        assert!(matches!(
            check(upgrade(&"g".repeat(65), 200, 4), 50, 100),
            Err(ScheduleError::BadName(_))
        ));
        assert!(matches!(
            check(upgrade("beta", 200, 3), 50, 100),
            Err(ScheduleError::AlreadyScheduled { .. })
        ));
        assert!(matches!(
            check(upgrade("delta", 200, 5), 50, 100),
            Err(ScheduleError::NotImplemented { .. })
        ));
        assert!(matches!(
            check(upgrade("gamma", 200, 5), 50, 100),
            Err(ScheduleError::WrongVersion { .. })
        ));
        assert!(matches!(
            check(upgrade("gamma", 20, 4), 5, 1),
            Err(ScheduleError::NotAfterLast { .. })
        ));
        // `old` is implemented, at a version the schedule has already passed.
        assert!(matches!(
            check(upgrade("old", 200, 2), 50, 100),
            Err(ScheduleError::VersionNotRaised { .. })
        ));
        assert!(matches!(
            check(upgrade("gamma", 149, 4), 50, 100),
            Err(ScheduleError::TooClose {
                lowest: Height(150),
                ..
            })
        ));
        // A margin of 0 still means above the tip.
        assert!(matches!(
            check(upgrade("gamma", 50, 4), 50, 0),
            Err(ScheduleError::TooClose { .. })
        ));
        assert_eq!(check(upgrade("gamma", 51, 4), 50, 0), Ok(()));
    }

    #[test]
    fn a_full_schedule_takes_no_more() {
        let names: Vec<&'static str> = (0..=SCHEDULE_UPGRADES_MAX)
            .map(|i| &*Box::leak(format!("u{i}").into_boxed_str()))
            .collect();
        let implemented: Vec<Implemented> = names
            .iter()
            .enumerate()
            .map(|(i, &name)| Implemented {
                version: ProtocolVersion(2 + i as u32),
                ..known(&[name]).remove(0)
            })
            .collect();
        let upgrades: Vec<Upgrade> = (0..SCHEDULE_UPGRADES_MAX)
            .map(|i| upgrade(names[i], 10 + i as u64, 2 + i as u32))
            .collect();
        let s = Schedule::from_upgrades(ProtocolVersion(1), &upgrades, &implemented);
        let last = SCHEDULE_UPGRADES_MAX;
        assert_eq!(
            s.check_append(
                &upgrade(names[last], 1_000, 2 + last as u32),
                Height(0),
                1,
                &implemented
            ),
            Err(ScheduleError::Full)
        );
    }

    #[test]
    fn the_schedule_hash_names_the_whole_schedule() {
        let implemented = implemented_as(&[("alpha", 2), ("beta", 3), ("gamma", 4)]);
        let s = Schedule::new(&genesis(), &implemented);
        let mut more = genesis().upgrades;
        more.push(upgrade("gamma", 30, 4));
        let longer = Schedule::from_upgrades(ProtocolVersion(1), &more, &implemented);
        let other_base =
            Schedule::from_upgrades(ProtocolVersion(0), &genesis().upgrades, &implemented);
        assert_ne!(s.hash(), longer.hash());
        assert_ne!(s.hash(), other_base.hash());
        assert_eq!(
            s.hash(),
            Schedule::from_upgrades(ProtocolVersion(1), &genesis().upgrades, &[]).hash(),
            "what this binary implements is not part of the schedule's name"
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
