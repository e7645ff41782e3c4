//! The PBFT simulator: N PBFT engines over the kernel's virtual network and clock, with the
//! HotStuff simulator's faults (delay, loss, duplication, reordering, partitions that heal,
//! crash-restarts from persisted state only, Byzantine validators) drawn from one seed, and
//! its checkers run after every step: no two honest commits differ at a height, every
//! node's chain extends its own, no honest validator signs two prepares or two commits at
//! one position across restarts, and commits resume within a bound once the network is
//! stable.
//!
//! The fault plan, network model, keys and checkers are the HotStuff simulator's
//! (`sim::hotstuff`); this module adds the PBFT world and its attacks. Reports and batch
//! summaries are the same types, so `cairn sim pbft` prints what `cairn sim hotstuff` does.
//!
//! Owns: the PBFT run and attacks. Never: reads the wall clock, or any randomness except the
//! seed's `ChaCha8Rng`.

mod byzantine;
mod world;

#[cfg(test)]
mod tests;

use cairn_ledger::genesis::LeaderElection;

use super::hotstuff::{
    BatchSummary, FaultSet, SIM_LEADER_RETRY_AFTER_MS, SIM_VALIDATORS_MAX, SimCrypto, SimError,
    SimReport,
};
use super::kernel::Simulation;

pub use super::kernel::{run, run_many};
pub use byzantine::PBFT_BEHAVIOURS;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PbftSimConfig {
    pub seed: u64,
    pub validators: usize,
    pub faults: FaultSet,
    pub crypto: SimCrypto,
    /// Test-only: runs the engines without the round-change justification rule.
    #[doc(hidden)]
    pub unsafe_skip_justification: bool,
    /// The genesis rule for choosing proposers (default: reputation, as `cairn genesis new`
    /// writes).
    pub leader_election: LeaderElection,
}

impl PbftSimConfig {
    pub fn new(seed: u64, validators: usize, faults: FaultSet) -> PbftSimConfig {
        PbftSimConfig {
            seed,
            validators,
            faults,
            crypto: SimCrypto::Fast,
            unsafe_skip_justification: false,
            leader_election: LeaderElection::Reputation {
                retry_after_ms: SIM_LEADER_RETRY_AFTER_MS,
            },
        }
    }

    /// The command that re-runs exactly this seed.
    pub fn repro(&self) -> String {
        let mut line = format!(
            "cairn sim pbft --seed {} --validators {} --faults {}",
            self.seed, self.validators, self.faults
        );
        if self.crypto == SimCrypto::Ed25519 {
            line.push_str(" --ed25519");
        }
        if self.unsafe_skip_justification {
            line.push_str(" --unsafe-skip-justification");
        }
        if self.leader_election == LeaderElection::RoundRobin {
            line.push_str(" --leader-election round-robin");
        }
        line
    }
}

impl Simulation for PbftSimConfig {
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

    fn with_seed(&self, seed: u64) -> PbftSimConfig {
        PbftSimConfig {
            seed,
            ..self.clone()
        }
    }

    fn run_seed(&self) -> SimReport {
        world::World::new(self).run()
    }

    fn add(summary: &mut BatchSummary, report: &SimReport) {
        <super::hotstuff::SimConfig as Simulation>::add(summary, report);
    }
}
