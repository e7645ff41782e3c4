//! The HotStuff simulator: N HotStuff engines over the kernel's virtual network and clock,
//! with faults (delay, loss, duplication, reordering, partitions, crashes, Byzantine
//! validators) injected from one seed, and safety and liveness checked after every step.
//!
//! The kernel's `run(&SimConfig)` runs one seed and returns a [`SimReport`] whose `repro`
//! line re-runs exactly that seed from the command line; its `run_many` spreads seeds over
//! threads (each seed stays single-threaded and deterministic) and reports them in seed
//! order. Both are re-exported here.
//!
//! Owns: the HotStuff fault plan, network model, attacks and checkers. Never: reads the wall
//! clock, or any randomness except the seed's `ChaCha8Rng`; a seed's outcome does not
//! depend on the thread that runs it.

mod byzantine;
// The fault plan, network model, keys and checkers serve the PBFT simulator too.
pub(crate) mod checker;
pub(crate) mod crypto;
mod faults;
pub(crate) mod network;
pub(crate) mod plan;
pub(crate) mod world;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use cairn_ledger::genesis::LeaderElection;
use cairn_ledger::{Hash, Height, Round};

use super::kernel::Simulation;

pub use super::kernel::{VIOLATIONS_KEPT_MAX, run, run_many};
pub use checker::{LIVENESS_COMMITS, STALL_MS_MAX};
pub use crypto::SimCrypto;
pub use faults::{ALL_FAULTS, BEHAVIOURS, Behaviour, Fault, FaultParseError, FaultSet};
pub use network::EVENTS_QUEUED_MAX;
pub use world::{EVENTS_PER_RUN_MAX, SIM_ROUND_TIMEOUT_MS_BASE, SIM_ROUND_TIMEOUT_MS_MAX};

/// Most validators a simulation runs.
pub const SIM_VALIDATORS_MAX: usize = 64;

/// What a run exercises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scenario {
    /// Random faults from the fault set until the network stabilises, then a liveness check.
    #[default]
    Faults,
    /// A quiet network in which, at 1.5 s, the leader of the next round (the one collecting
    /// the current round's votes) crashes for good. Recovery is counted from the highest
    /// round at the crash to the highest round when a block proposed after it commits.
    LeaderCrash,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    pub seed: u64,
    pub validators: usize,
    pub faults: FaultSet,
    pub scenario: Scenario,
    pub crypto: SimCrypto,
    /// Test-only: runs the engines with the one-vote-per-round rule disabled.
    #[doc(hidden)]
    pub unsafe_skip_voted_round_check: bool,
    /// Test-only: runs the engines with the old sync answer check (any answer, any blocks
    /// whose justify verifies) and no eviction from a full block tree.
    #[doc(hidden)]
    pub unsafe_accept_any_sync: bool,
    /// Test-only: runs the stale-restart validator without the double-sign guard (no raise
    /// of its signed rounds from the store, no observation window).
    #[doc(hidden)]
    pub unsafe_no_double_sign_guard: bool,
    /// The genesis rule for choosing leaders (default: reputation, as `cairn genesis new`
    /// writes).
    pub leader_election: LeaderElection,
}

/// The simulated genesis's `leader_retry_after_ms`: ten first round timeouts, as the local
/// genesis's 10 s is ten of its 1 s timeouts.
pub const SIM_LEADER_RETRY_AFTER_MS: u64 = 10 * SIM_ROUND_TIMEOUT_MS_BASE;

impl SimConfig {
    pub fn new(seed: u64, validators: usize, faults: FaultSet) -> SimConfig {
        SimConfig {
            seed,
            validators,
            faults,
            scenario: Scenario::Faults,
            crypto: SimCrypto::Fast,
            unsafe_skip_voted_round_check: false,
            unsafe_accept_any_sync: false,
            unsafe_no_double_sign_guard: false,
            leader_election: LeaderElection::Reputation {
                retry_after_ms: SIM_LEADER_RETRY_AFTER_MS,
            },
        }
    }

    /// The command that re-runs exactly this seed.
    pub fn repro(&self) -> String {
        let mut line = format!(
            "cairn sim hotstuff --seed {} --validators {} --faults {}",
            self.seed, self.validators, self.faults
        );
        if self.scenario == Scenario::LeaderCrash {
            line.push_str(" --scenario leader-crash");
        }
        if self.crypto == SimCrypto::Ed25519 {
            line.push_str(" --ed25519");
        }
        if self.unsafe_skip_voted_round_check {
            line.push_str(" --unsafe-skip-voted-round-check");
        }
        if self.unsafe_accept_any_sync {
            line.push_str(" --unsafe-accept-any-sync");
        }
        if self.unsafe_no_double_sign_guard {
            line.push_str(" --unsafe-no-double-sign-guard");
        }
        if self.leader_election == LeaderElection::RoundRobin {
            line.push_str(" --leader-election round-robin");
        }
        line
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("--validators {0}: a simulation needs between 1 and {SIM_VALIDATORS_MAX}")]
    Validators(usize),
}

/// The outcome of one seed.
#[derive(Clone, Debug)]
pub struct SimReport {
    pub seed: u64,
    pub validators: usize,
    pub faults: FaultSet,
    /// The first violations found (at most [`VIOLATIONS_KEPT_MAX`]).
    pub safety_violations: Vec<String>,
    pub violation_count: usize,
    pub liveness_failure: Option<String>,
    /// Rounds from stabilisation (or the leader crash) until commits resumed.
    pub recovery_rounds: Option<u64>,
    /// Virtual ms from the leader crash until a block proposed after it committed.
    pub recovery_ms: Option<u64>,
    /// SHA-256 over the ordered event log: equal seeds give equal hashes.
    pub trace_hash: Hash,
    pub committed_height: Height,
    pub max_round: Round,
    pub events: u64,
    pub virtual_ms: u64,
    pub evidence: u64,
    pub drops: BTreeMap<&'static str, u64>,
    pub byzantine: Vec<(usize, Behaviour)>,
    pub repro: String,
}

impl SimReport {
    pub fn passed(&self) -> bool {
        self.violation_count == 0 && self.liveness_failure.is_none()
    }
}

/// Totals over many seeds.
#[derive(Clone, Debug, Default)]
pub struct BatchSummary {
    pub seeds: u64,
    /// Seeds with at least one safety violation.
    pub safety_violations: u64,
    /// Seeds whose commits did not resume in time.
    pub liveness_failures: u64,
    pub committed_blocks: u64,
    pub events: u64,
    /// Recovery rounds of every seed that recovered, in seed order.
    pub recovery_rounds: Vec<u64>,
    pub recovery_ms: Vec<u64>,
}

impl Simulation for SimConfig {
    type Report = SimReport;
    type Summary = BatchSummary;
    type Error = SimError;

    fn validate(&self) -> Result<(), SimError> {
        if self.validators == 0 || self.validators > SIM_VALIDATORS_MAX {
            return Err(SimError::Validators(self.validators));
        }
        Ok(())
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn with_seed(&self, seed: u64) -> SimConfig {
        SimConfig {
            seed,
            ..self.clone()
        }
    }

    fn run_seed(&self) -> SimReport {
        world::World::new(self).run()
    }

    fn add(summary: &mut BatchSummary, report: &SimReport) {
        summary.seeds += 1;
        summary.safety_violations += u64::from(report.violation_count > 0);
        summary.liveness_failures += u64::from(report.liveness_failure.is_some());
        summary.committed_blocks += report.committed_height.0;
        summary.events += report.events;
        summary.recovery_rounds.extend(report.recovery_rounds);
        summary.recovery_ms.extend(report.recovery_ms);
    }
}
