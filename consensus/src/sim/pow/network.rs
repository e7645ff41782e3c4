//! The virtual clock and network of the proof-of-work simulator: a queue of timed events, and
//! links with random latency that a scheduled partition cuts.
//!
//! Links are FIFO (as TCP connections are): a message never overtakes an earlier one on the
//! same link, even when it draws a shorter latency. A message's fate is decided when it is
//! sent, so one already on its way when a partition starts still arrives; every message sent
//! across the cut while it lasts is lost. Ties in time are broken by insertion order, so a run
//! is a pure function of its seed.
//!
//! Owns: event ordering and message arrival times. Never: holds randomness of its own (the
//! caller passes the seed's generator) or looks inside messages.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

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

struct Entry<E> {
    at_ms: u64,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    // Reversed: BinaryHeap is a max-heap and the earliest event must come out first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_ms, other.seq).cmp(&(self.at_ms, self.seq))
    }
}

pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    seq: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<E> EventQueue<E> {
    /// Queues `event` at `at_ms`; refuses (returns false) beyond [`EVENTS_QUEUED_MAX`].
    #[must_use]
    pub fn push(&mut self, at_ms: u64, event: E) -> bool {
        if self.heap.len() >= EVENTS_QUEUED_MAX {
            return false;
        }
        self.seq += 1;
        self.heap.push(Entry {
            at_ms,
            seq: self.seq,
            event,
        });
        true
    }

    pub fn pop(&mut self) -> Option<(u64, E)> {
        self.heap.pop().map(|e| (e.at_ms, e.event))
    }
}

/// The links between `nodes` nodes.
pub struct Network {
    nodes: usize,
    /// Latest arrival per (from, to) link, to keep links FIFO.
    link_last_ms: Vec<u64>,
    /// `Some(groups)`: node i reaches only the nodes with the same group number.
    groups: Option<Vec<u8>>,
}

impl Network {
    pub fn new(nodes: usize) -> Network {
        Network {
            nodes,
            link_last_ms: vec![0; nodes * nodes],
            groups: None,
        }
    }

    pub fn set_partition(&mut self, groups: Option<Vec<u8>>) {
        self.groups = groups;
    }

    /// When a message sent at `now_ms` from `from` to `to` arrives; `None`: lost in a partition.
    pub fn arrival(
        &mut self,
        rng: &mut ChaCha8Rng,
        now_ms: u64,
        from: usize,
        to: usize,
    ) -> Option<u64> {
        if let Some(groups) = &self.groups
            && groups.get(from) != groups.get(to)
        {
            return None;
        }
        let mut latency = rng.gen_range(LATENCY_MS_MIN..=LATENCY_MS_MAX);
        if rng.gen_ratio(1, SLOW_MESSAGE_ONE_IN) {
            latency += rng.gen_range(1..=SLOW_MESSAGE_EXTRA_MS_MAX);
        }
        let link = from * self.nodes + to;
        let at = (now_ms + latency).max(self.link_last_ms[link]);
        self.link_last_ms[link] = at;
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn events_come_out_in_time_then_insertion_order() {
        let mut q = EventQueue::default();
        assert!(q.push(10, 1));
        assert!(q.push(5, 2));
        assert!(q.push(10, 3));
        let order: Vec<(u64, u32)> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![(5, 2), (10, 1), (10, 3)]);
    }

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
