//! Which faults a simulation injects (`--faults delay,drop,dup,reorder,partition,crash,byz`
//! or `all`), and the Byzantine behaviours.
//!
//! Owns: parsing and printing fault lists. Never: draws randomness (the plan for one seed
//! is drawn in `world.rs` from the seed's generator).

use std::fmt;

/// One selectable fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// Message latency with jitter, and occasional long delays.
    Delay,
    /// Messages lost.
    Drop,
    /// Messages delivered twice.
    Dup,
    /// Messages overtaking earlier ones on the same link.
    Reorder,
    /// The validators split into two groups that cannot talk, then heal.
    Partition,
    /// Honest validators crash and restart from their persisted safety state.
    Crash,
    /// Up to f validators are Byzantine.
    Byz,
}

pub const ALL_FAULTS: [Fault; 7] = [
    Fault::Delay,
    Fault::Drop,
    Fault::Dup,
    Fault::Reorder,
    Fault::Partition,
    Fault::Crash,
    Fault::Byz,
];

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Delay => "delay",
            Fault::Drop => "drop",
            Fault::Dup => "dup",
            Fault::Reorder => "reorder",
            Fault::Partition => "partition",
            Fault::Crash => "crash",
            Fault::Byz => "byz",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultParseError {
    #[error(
        "unknown fault {name:?}; choose from delay, drop, dup, reorder, partition, crash, byz, \
         all or none"
    )]
    Unknown { name: String },
}

/// A set of faults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FaultSet {
    bits: u8,
}

impl FaultSet {
    pub fn none() -> FaultSet {
        FaultSet { bits: 0 }
    }

    pub fn all() -> FaultSet {
        ALL_FAULTS.iter().fold(FaultSet::none(), |s, &f| s.with(f))
    }

    pub fn with(self, fault: Fault) -> FaultSet {
        FaultSet {
            bits: self.bits | 1 << fault as u8,
        }
    }

    pub fn has(self, fault: Fault) -> bool {
        self.bits & (1 << fault as u8) != 0
    }

    /// Parses `all`, `none`, or a comma-separated list of fault names.
    pub fn parse(list: &str) -> Result<FaultSet, FaultParseError> {
        let mut set = FaultSet::none();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            set = match name {
                "all" => FaultSet::all(),
                "none" => set,
                _ => {
                    let fault = ALL_FAULTS
                        .iter()
                        .find(|f| f.name() == name)
                        .ok_or_else(|| FaultParseError::Unknown {
                            name: name.to_string(),
                        })?;
                    set.with(*fault)
                }
            };
        }
        Ok(set)
    }
}

impl fmt::Display for FaultSet {
    /// `all`, `none`, or the names in a fixed order: the form a reproduction line uses.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if *self == FaultSet::all() {
            return f.write_str("all");
        }
        let names: Vec<&str> = ALL_FAULTS
            .iter()
            .filter(|&&x| self.has(x))
            .map(|x| x.name())
            .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

/// What a Byzantine validator does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Sends nothing at all.
    Silent,
    /// As leader, sends different blocks to different halves; as voter, votes for every
    /// block it has seen in the round.
    Equivocate,
    /// Corrupts the signatures of about half of what it sends.
    BadSignatures,
    /// Adds votes for blocks that do not exist, for this and later rounds.
    UnknownVotes,
    /// Every few rounds sends every node, unasked, enough forged sync answers to fill its
    /// block tree with uncertified siblings of the highest certified block; answers real
    /// requests with such siblings too.
    SyncFlood,
    /// Sends each of its votes many times, with votes for made-up blocks of the same round.
    VoteSpam,
    /// Adds random bytes, up to 64 KiB, to a quarter of what it sends.
    Junk,
    /// As leader, proposes blocks every other validator's driver judges invalid (a marker
    /// the simulator's validity policy refuses, standing in for a bad state root).
    InvalidBlocks,
    /// Otherwise honest, with its double-sign window on: now and then, right after it
    /// proposes, it crashes and restarts at once with an older safety state than its last
    /// (as from a restored backup) or none at all. Checked like an honest validator for
    /// double signs: the guard must stop it.
    StaleRestart,
    /// PBFT: sends, with each of its messages, round changes for rounds and heights already
    /// left (its own, validly signed, replayed).
    StaleRoundChanges,
}

impl Behaviour {
    /// Whether the safety checker holds this validator to what it holds an honest one:
    /// never two votes in a round, no evidence against it.
    pub fn checked_as_honest(self) -> bool {
        self == Behaviour::StaleRestart
    }
}

pub const BEHAVIOURS: [Behaviour; 9] = [
    Behaviour::Silent,
    Behaviour::Equivocate,
    Behaviour::BadSignatures,
    Behaviour::UnknownVotes,
    Behaviour::SyncFlood,
    Behaviour::VoteSpam,
    Behaviour::Junk,
    Behaviour::InvalidBlocks,
    Behaviour::StaleRestart,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_print_canonically() {
        assert_eq!(FaultSet::parse("all").unwrap().to_string(), "all");
        assert_eq!(FaultSet::parse("").unwrap().to_string(), "none");
        let s = FaultSet::parse("crash, delay").unwrap();
        assert!(s.has(Fault::Crash) && s.has(Fault::Delay) && !s.has(Fault::Byz));
        assert_eq!(s.to_string(), "delay,crash");
        assert_eq!(FaultSet::parse(&s.to_string()).unwrap(), s);
        let all_by_name = ALL_FAULTS.map(Fault::name).join(",");
        assert_eq!(FaultSet::parse(&all_by_name).unwrap(), FaultSet::all());
        assert_eq!(
            FaultSet::parse("delay,fire"),
            Err(FaultParseError::Unknown {
                name: "fire".into()
            })
        );
    }
}
