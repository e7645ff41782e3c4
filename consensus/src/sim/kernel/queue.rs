//! The one queue of timed events: the virtual clock of a run is the time of the event that
//! last left it.
//!
//! Owns: event order (time, then insertion) and the queue's bound. Never: looks inside an
//! event.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

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
    /// Bumped only by an event that was queued, so refusals leave the order untouched.
    seq: u64,
    events_queued_max: usize,
}

impl<E> EventQueue<E> {
    /// An empty queue that holds at most `events_queued_max` events at once.
    pub fn new(events_queued_max: usize) -> EventQueue<E> {
        assert!(events_queued_max > 0);
        EventQueue {
            heap: BinaryHeap::new(),
            seq: 0,
            events_queued_max,
        }
    }

    /// Queues `event` at `at_ms`; refuses (returns false) when the queue is full.
    pub fn push(&mut self, at_ms: u64, event: E) -> bool {
        if self.heap.len() >= self.events_queued_max {
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

    /// The earliest event and its time; of equal times, the one queued first.
    pub fn pop(&mut self) -> Option<(u64, E)> {
        self.heap.pop().map(|e| (e.at_ms, e.event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_in_time_then_insertion_order() {
        let mut q = EventQueue::new(8);
        assert!(q.push(10, 1));
        assert!(q.push(5, 2));
        assert!(q.push(10, 3));
        let order: Vec<(u64, u32)> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![(5, 2), (10, 1), (10, 3)]);
    }

    #[test]
    fn a_full_queue_refuses_without_disturbing_the_order() {
        let mut q = EventQueue::new(2);
        assert!(q.push(7, 'a'));
        assert!(q.push(7, 'b'));
        assert!(!q.push(1, 'c'));
        assert_eq!(q.pop(), Some((7, 'a')));
        assert!(q.push(7, 'd'));
        let rest: Vec<(u64, char)> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(rest, vec![(7, 'b'), (7, 'd')]);
    }
}
