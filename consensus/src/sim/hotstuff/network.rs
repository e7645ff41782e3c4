//! The HotStuff simulator's events and its network model, which decides when (if ever, and
//! how many times) each message arrives.
//!
//! Before `stable_from_ms` the network misbehaves as the seed's fault plan says; from then
//! on every message arrives after 5–15 ms, in order per link. The kernel's queue breaks ties
//! in time by insertion order, so a run is a pure function of its seed.
//!
//! Owns: the events and message fates. Never: holds randomness of its own (the caller
//! passes the seed's generator) or looks inside messages.

use cairn_ledger::{Height, Round};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::faults::{Fault, FaultSet};
use crate::sim::kernel::Links;

/// Upper bound on queued events; a run that needs more is cut short (and reported).
pub const EVENTS_QUEUED_MAX: usize = 1_000_000;

#[derive(Clone, Debug)]
pub enum Event {
    Deliver {
        from: usize,
        to: usize,
        bytes: Vec<u8>,
    },
    /// `height` is PBFT's (its rounds restart at every height); HotStuff's timers carry 0.
    Timer {
        node: usize,
        height: Height,
        round: Round,
        incarnation: u64,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    /// `Some(groups)`: node i can only reach nodes with the same group number.
    Partition {
        groups: Option<Vec<u8>>,
    },
    /// The scripted crash of the current leader (the recovery benchmark).
    CrashLeader,
}

/// Per-seed network misbehaviour, drawn once at the start of a run.
pub struct NetworkModel {
    faults: FaultSet,
    stable_from_ms: u64,
    drop_per_mille: u32,
    dup_per_mille: u32,
    /// Kept FIFO while reordering is off.
    links: Links,
}

impl NetworkModel {
    pub fn new(
        rng: &mut ChaCha8Rng,
        faults: FaultSet,
        validators: usize,
        stable_from_ms: u64,
    ) -> NetworkModel {
        NetworkModel {
            faults,
            stable_from_ms,
            drop_per_mille: rng.gen_range(20..=150),
            dup_per_mille: rng.gen_range(10..=80),
            links: Links::new(validators),
        }
    }

    pub fn set_partition(&mut self, groups: Option<Vec<u8>>) {
        self.links.set_partition(groups);
    }

    fn faulty(&self, fault: Fault, now_ms: u64) -> bool {
        now_ms < self.stable_from_ms && self.faults.has(fault)
    }

    fn latency_ms(&self, rng: &mut ChaCha8Rng, now_ms: u64) -> u64 {
        if !self.faulty(Fault::Delay, now_ms) {
            return rng.gen_range(5..=15);
        }
        let mut latency = rng.gen_range(5..=60);
        if rng.gen_ratio(1, 50) {
            latency += rng.gen_range(100..=1000);
        }
        latency
    }

    /// Arrival times of a message sent at `now_ms` (empty: lost).
    pub fn fates(&mut self, rng: &mut ChaCha8Rng, now_ms: u64, from: usize, to: usize) -> Vec<u64> {
        if self.links.cut(from, to) {
            return Vec::new();
        }
        if self.faulty(Fault::Drop, now_ms) && rng.gen_ratio(self.drop_per_mille, 1000) {
            return Vec::new();
        }
        let copies = if self.faulty(Fault::Dup, now_ms) && rng.gen_ratio(self.dup_per_mille, 1000) {
            2
        } else {
            1
        };
        let reorder = self.faulty(Fault::Reorder, now_ms);
        (0..copies)
            .map(|_| {
                let mut at = now_ms + self.latency_ms(rng, now_ms);
                if reorder {
                    if rng.gen_ratio(1, 10) {
                        at += rng.gen_range(0..=150);
                    }
                } else {
                    at = self.links.in_order(from, to, at);
                }
                at
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_stable_network_delivers_everything_in_order_and_a_partition_cuts_links() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut net = NetworkModel::new(&mut rng, FaultSet::all(), 4, 100);
        let mut last = 0;
        for _ in 0..200 {
            let fates = net.fates(&mut rng, 100, 0, 1);
            assert_eq!(fates.len(), 1);
            assert!(fates[0] >= last && fates[0] <= 115);
            last = fates[0];
        }
        net.set_partition(Some(vec![0, 0, 1, 1]));
        assert!(net.fates(&mut rng, 200, 0, 2).is_empty());
        assert_eq!(net.fates(&mut rng, 200, 0, 1).len(), 1);
    }

    #[test]
    fn faults_lose_and_duplicate_messages_before_the_network_stabilises() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut net = NetworkModel::new(&mut rng, FaultSet::all(), 4, 1_000_000);
        let counts: Vec<usize> = (0..2000)
            .map(|_| net.fates(&mut rng, 0, 0, 1).len())
            .collect();
        assert!(counts.contains(&0) && counts.contains(&2));
    }
}
