//! The simulation kernel both simulators stand on: one queue of timed events in virtual
//! time, each seed's generator, links between nodes (FIFO order, partitions), the trace
//! that fingerprints a run, the record of violations a checker keeps, and the runner that
//! spreads seeds over threads.
//!
//! A run is a pure function of its seed: events leave the queue in time order, ties in
//! insertion order; all randomness is drawn, in the caller's order, from the one generator
//! `seed_rng` makes; the batch runner hands reports back in seed order whatever thread ran
//! them.
//!
//! Owns: event order and virtual time, link state, the trace, the violation record, seeds
//! and threads. Never: knows an engine, a message or a fault plan; draws randomness of its
//! own accord; reads the wall clock.

mod links;
mod queue;
mod runner;
mod trace;
mod verdict;

pub use links::Links;
pub use queue::EventQueue;
pub use runner::{Simulation, in_seed_order, run, run_many, seed_rng};
pub use trace::Trace;
pub use verdict::{Judge, VIOLATIONS_KEPT_MAX, Violations};
