//! The deterministic simulators: many engines over a virtual network and clock, faults
//! injected from one seed, safety and liveness checked after every step.
//!
//! `kernel` is what both simulators stand on: the one event queue in virtual time, the
//! seed's generator, links (FIFO order, partitions), the trace hash, the violation record
//! and the seed runner. `hotstuff` runs HotStuff validators through network faults, crashes
//! and Byzantine behaviours; `pbft` runs PBFT validators through the same faults, network
//! model and checkers; `pow` runs proof-of-work miners through delays and partitions.
//! The HotStuff simulator's items are re-exported here, where the CLI finds them.
//!
//! Owns: simulation. Never: reads the wall clock, or any randomness except the seed's
//! `ChaCha8Rng`; a seed's outcome does not depend on the thread that runs it.

pub mod hotstuff;
pub mod kernel;
pub mod pbft;
pub mod pow;

pub use hotstuff::{
    ALL_FAULTS, BEHAVIOURS, BatchSummary, Behaviour, EVENTS_PER_RUN_MAX, EVENTS_QUEUED_MAX, Fault,
    FaultParseError, FaultSet, LIVENESS_COMMITS, SIM_LEADER_RETRY_AFTER_MS,
    SIM_ROUND_TIMEOUT_MS_BASE, SIM_ROUND_TIMEOUT_MS_MAX, SIM_VALIDATORS_MAX, Scenario, SimConfig,
    SimCrypto, SimError, SimReport, run, run_many,
};
pub use kernel::{VIOLATIONS_KEPT_MAX, in_seed_order};
