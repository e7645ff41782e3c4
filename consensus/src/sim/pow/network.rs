//! The network of the proof-of-work simulator: the kernel's links, with random latency, that
//! a scheduled partition cuts.
//!
//! Links are FIFO (as TCP connections are): a message never overtakes an earlier one on the
//! same link, even when it draws a shorter latency. A message's fate is decided when it is
//! sent, so one already on its way when a partition starts still arrives; every message sent
//! across the cut while it lasts is lost.
//!
//! Owns: message arrival times. Never: holds randomness of its own (the caller passes the
//! seed's generator) or looks inside messages.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::sim::kernel::Links;

/// Upper bound on queued events; a run that needs more is cut short (and reported as a
/// liveness failure). A seed queues a few hundred at a time: one mining event per miner, the
/// messages in flight and the held-back headers.
pub const EVENTS_QUEUED_MAX: usize = 200_000;

/// Latency of an ordinary message: a LAN to a continent away.
pub const LATENCY_MS_MIN: u64 = 5;
pub const LATENCY_MS_MAX: u64 = 150;
/// One message in this many is held up further (congestion, a retransmission), so that two
/// miners sometimes build on the same parent without having heard of each other's block.
pub const SLOW_MESSAGE_ONE_IN: u32 = 50;
/// The most extra delay a held-up message gets.
pub const SLOW_MESSAGE_EXTRA_MS_MAX: u64 = 1000;

/// The links between `nodes` nodes.
pub struct Network {
    links: Links,
}

impl Network {
    pub fn new(nodes: usize) -> Network {
        Network {
            links: Links::new(nodes),
        }
    }

    /// `Some(groups)`: node i reaches only the nodes with the same group number.
    pub fn set_partition(&mut self, groups: Option<Vec<u8>>) {
        self.links.set_partition(groups);
    }

    /// When a message sent at `now_ms` from `from` to `to` arrives; `None`: lost in a partition.
    pub fn arrival(
        &mut self,
        rng: &mut ChaCha8Rng,
        now_ms: u64,
        from: usize,
        to: usize,
    ) -> Option<u64> {
        if self.links.cut(from, to) {
            return None;
        }
        let mut latency = rng.gen_range(LATENCY_MS_MIN..=LATENCY_MS_MAX);
        if rng.gen_ratio(1, SLOW_MESSAGE_ONE_IN) {
            latency += rng.gen_range(1..=SLOW_MESSAGE_EXTRA_MS_MAX);
        }
        Some(self.links.in_order(from, to, now_ms + latency))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn links_are_fifo_with_bounded_latency_and_a_partition_cuts_them() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut net = Network::new(3);
        let mut last = 0;
        for _ in 0..2000 {
            let at = net.arrival(&mut rng, 100, 0, 1).unwrap();
            assert!(at >= last);
            assert!(at <= 100 + LATENCY_MS_MAX + SLOW_MESSAGE_EXTRA_MS_MAX);
            last = at;
        }
        net.set_partition(Some(vec![0, 0, 1]));
        assert_eq!(net.arrival(&mut rng, 200, 0, 2), None);
        assert_eq!(net.arrival(&mut rng, 200, 2, 1), None);
        assert!(net.arrival(&mut rng, 200, 1, 0).is_some());
        net.set_partition(None);
        assert!(net.arrival(&mut rng, 300, 0, 2).is_some());
    }
}
