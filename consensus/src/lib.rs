//! Pure consensus engines and the deterministic simulator that tests them.
//!
//! `hotstuff` is the BFT engine: sans-IO, `handle(input) -> effects`. `pow` is the pure core
//! of proof-of-work consensus (compact targets and work, difficulty retargeting without the
//! time-warp hole, timestamp rules, fork choice by accumulated work, reorg paths, locators,
//! subsidies); the node that mines and reorganises on it comes later. `sim` runs many engines
//! over a virtual clock and network with injected faults, all randomness from one seed, and
//! checks safety and liveness after every step.
//!
//! This crate never touches the disk, the network, a runtime or the wall clock. The engines
//! start no threads; the simulator's batch runner spreads whole seeds over threads, each
//! seed staying single-threaded and deterministic.

pub mod bft;
pub mod hotstuff;
pub mod pow;
pub mod sim;
