//! The fault plan of one seed, drawn before the run starts: which validators are Byzantine
//! and how, and when honest ones crash and restart and the network splits and heals. The
//! HotStuff and PBFT simulators draw it the same way, from the seed's generator.
//!
//! Owns: the draws, in a fixed order (a seed's plan is part of its trace). Never: runs
//! anything; it only fills the event queue.

use std::collections::HashMap;

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::faults::{Behaviour, Fault, FaultSet};
use super::network::Event;
use crate::bft::ValidatorSet;
use crate::sim::kernel::EventQueue;

/// Up to f voting power of Byzantine validators, each with a behaviour drawn from
/// `behaviours`; none without `Fault::Byz`.
pub fn byzantine(
    rng: &mut ChaCha8Rng,
    faults: FaultSet,
    validators: &ValidatorSet,
    powers: &[u64],
    behaviours: &[Behaviour],
) -> HashMap<usize, Behaviour> {
    let mut out = HashMap::new();
    if !faults.has(Fault::Byz) {
        return out;
    }
    let mut order: Vec<usize> = (0..powers.len()).collect();
    order.shuffle(rng);
    let budget = rng.gen_range(1..=validators.faulty_power_max().max(1));
    let mut used = 0;
    for i in order {
        if used + powers[i] <= budget.min(validators.faulty_power_max()) {
            used += powers[i];
            out.insert(i, *behaviours.choose(rng).unwrap_or(&Behaviour::Silent));
        }
    }
    out
}

/// Queues 1–4 crash-restarts of `honest` validators and 1–4 partitions that heal, all
/// within `window` ms (the time the network stabilises), as `faults` allows; `n` validators.
pub fn crashes_and_partitions(
    rng: &mut ChaCha8Rng,
    faults: FaultSet,
    n: usize,
    honest: &[usize],
    window: u64,
    queue: &mut EventQueue<Event>,
) {
    if faults.has(Fault::Crash) && window > 0 {
        for _ in 0..rng.gen_range(1..=4) {
            let Some(&node) = honest.choose(rng) else {
                break;
            };
            let at = rng.gen_range(0..window * 4 / 5);
            let back = (at + rng.gen_range(50..=1500)).min(window);
            queue.push(at, Event::Crash { node });
            queue.push(back, Event::Restart { node });
        }
    }
    if faults.has(Fault::Partition) && window > 0 {
        for _ in 0..rng.gen_range(1..=4) {
            let at = rng.gen_range(0..window);
            let heal = (at + rng.gen_range(200..=1500)).min(window);
            let mut groups: Vec<u8> = (0..n).map(|_| rng.gen_range(0..2)).collect();
            groups[0] = 0;
            groups[n - 1] = 1;
            groups.shuffle(rng);
            queue.push(
                at,
                Event::Partition {
                    groups: Some(groups),
                },
            );
            queue.push(heal, Event::Partition { groups: None });
        }
        queue.push(window, Event::Partition { groups: None });
    }
}
