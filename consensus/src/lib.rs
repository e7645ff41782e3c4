//! Pure consensus engines and the deterministic simulator that tests them.
//!
//! `bft` holds what every BFT engine shares: the validator set and its quorum arithmetic by
//! voting power, the signing seam, the leader schedule. `hotstuff` is the BFT engine built on
//! it: sans-IO, `handle(input) -> effects`; `pbft` is the second BFT engine, under the same
//! contract. `pow` is the pure core of proof-of-work consensus (compact targets and work,
//! difficulty retargeting without the time-warp hole, timestamp rules, fork choice by
//! accumulated work, reorg paths, locators, subsidies); the node that mines and reorganises
//! on it is `cairn_node`'s `pow` module. `sim` runs many engines over a virtual clock and
//! network, all randomness from one seed, and checks safety and liveness after every step:
//! `sim::kernel` is the event queue, links, trace and seed runner the simulators stand on,
//! `sim::hotstuff` injects faults and Byzantine validators into HotStuff, `sim::pbft` the
//! same into PBFT, `sim::pow` runs miners through partitions.
//!
//! This crate never touches the disk, the network, a runtime or the wall clock. The engines
//! start no threads; the simulator's batch runner spreads whole seeds over threads, each
//! seed staying single-threaded and deterministic.

pub mod bft;
pub mod hotstuff;
pub mod pbft;
pub mod pow;
pub mod sim;
