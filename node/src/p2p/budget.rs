//! Byte budgets of the queues from the network task to the node (the driver's event queue,
//! the transaction admission worker's queue): per peer and in total.
//!
//! This module owns the accounting only: how many bytes each peer has waiting in one queue,
//! and in what order they went in. It must never let a count go negative or hold a byte for
//! a message the consumer has taken, and never decide what to do with a message over budget
//! (the service drops, counts and strikes).
//!
//! The queues are tokio channels whose consumers live elsewhere and only `recv`. The service
//! is each channel's only sender, so the messages taken so far are those sent minus those
//! still in the channel; they leave in the order they went in, so the oldest entries here are
//! the ones taken. [`Budget::taken`] releases them.

use std::collections::{HashMap, VecDeque};

use libp2p::PeerId;

/// Which limit a message would break.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Over {
    /// The peer's own bytes waiting in the queue.
    Peer,
    /// All bytes waiting in the queue.
    Total,
}

#[derive(Debug)]
pub struct Budget {
    total_max: usize,
    peer_max: usize,
    total: usize,
    per_peer: HashMap<PeerId, usize>,
    /// Every message in the queue, oldest first: who sent it (`None` for the network's own
    /// events) and its bytes.
    queued: VecDeque<(Option<PeerId>, usize)>,
}

impl Budget {
    pub fn new(total_max: usize, peer_max: usize) -> Budget {
        assert!(peer_max <= total_max, "a peer's budget fits in the total");
        Budget {
            total_max,
            peer_max,
            total: 0,
            per_peer: HashMap::new(),
            queued: VecDeque::new(),
        }
    }

    /// Whether `len` more bytes from `peer` fit. Says nothing of the queue's count bound.
    pub fn check(&self, peer: Option<&PeerId>, len: usize) -> Result<(), Over> {
        if let Some(peer) = peer {
            let held = self.per_peer.get(peer).copied().unwrap_or(0);
            if held.saturating_add(len) > self.peer_max {
                return Err(Over::Peer);
            }
        }
        if self.total.saturating_add(len) > self.total_max {
            return Err(Over::Total);
        }
        Ok(())
    }

    /// Whether the queue as a whole is at least half full. A peer over its own share while
    /// the queue is not crowded is hogging it; while it is crowded, the consumer is slow and
    /// every peer's messages pile up, honest ones included.
    pub fn crowded(&self) -> bool {
        self.total >= self.total_max / 2
    }

    /// Records a message that went into the queue (after [`Budget::check`], or one of the
    /// network's own events, which are small and always sent).
    pub fn sent(&mut self, peer: Option<PeerId>, len: usize) {
        self.total += len;
        if let Some(peer) = peer {
            *self.per_peer.entry(peer).or_default() += len;
        }
        self.queued.push_back((peer, len));
    }

    /// Releases the messages the consumer has taken, given how many are still in the queue.
    pub fn taken(&mut self, still_queued: usize) {
        while self.queued.len() > still_queued {
            let Some((peer, len)) = self.queued.pop_front() else {
                break;
            };
            self.total = self
                .total
                .checked_sub(len)
                .expect("released bytes were counted in the total");
            if let Some(peer) = peer {
                let held = self
                    .per_peer
                    .get_mut(&peer)
                    .expect("a peer with bytes queued has an entry");
                *held = held
                    .checked_sub(len)
                    .expect("released bytes were counted for their peer");
                if *held == 0 {
                    self.per_peer.remove(&peer);
                }
            }
        }
        debug_assert_eq!(
            self.total,
            self.queued.iter().map(|(_, l)| l).sum::<usize>()
        );
    }

    /// Messages recorded and not yet released.
    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    pub fn total(&self) -> usize {
        self.total
    }

    pub fn peer(&self, peer: &PeerId) -> usize {
        self.per_peer.get(peer).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_over_its_share_is_refused_and_others_are_not() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut budget = Budget::new(100, 40);
        budget.sent(Some(a), 30);
        assert_eq!(budget.check(Some(&a), 11), Err(Over::Peer));
        assert_eq!(budget.check(Some(&a), 10), Ok(()));
        assert_eq!(budget.check(Some(&b), 40), Ok(()));
        assert_eq!(budget.peer(&b), 0);
    }

    #[test]
    fn the_total_binds_when_every_peer_is_within_its_share() {
        let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        let mut budget = Budget::new(100, 40);
        budget.sent(Some(peers[0]), 40);
        budget.sent(Some(peers[1]), 40);
        assert_eq!(budget.check(Some(&peers[2]), 21), Err(Over::Total));
        assert_eq!(budget.check(Some(&peers[2]), 20), Ok(()));
        // The network's own events count in the total too.
        assert_eq!(budget.check(None, 21), Err(Over::Total));
    }

    #[test]
    fn a_queue_is_crowded_from_half_its_total_so_a_lone_hog_is_told_from_a_slow_consumer() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut budget = Budget::new(100, 40);
        budget.sent(Some(a), 40);
        assert_eq!(budget.check(Some(&a), 1), Err(Over::Peer));
        assert!(!budget.crowded(), "one peer alone at its share is hogging");
        budget.sent(Some(b), 10);
        assert!(
            budget.crowded(),
            "half the total waiting: the consumer lags"
        );
        budget.taken(1);
        assert!(!budget.crowded());
    }

    #[test]
    fn bytes_are_released_in_order_as_the_consumer_takes_messages() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut budget = Budget::new(100, 50);
        budget.sent(Some(a), 10);
        budget.sent(None, 0);
        budget.sent(Some(b), 20);
        budget.sent(Some(a), 30);
        budget.taken(4);
        assert_eq!((budget.total(), budget.queued()), (60, 4));
        budget.taken(2);
        assert_eq!(budget.peer(&a), 30);
        assert_eq!(budget.peer(&b), 20);
        assert_eq!(budget.total(), 50);
        budget.taken(0);
        assert_eq!(
            (budget.total(), budget.peer(&a), budget.peer(&b)),
            (0, 0, 0)
        );
        assert!(budget.per_peer.is_empty());
        // Taking more than was ever sent releases nothing twice.
        budget.taken(0);
        assert_eq!(budget.total(), 0);
        assert_eq!(budget.check(Some(&a), 50), Ok(()));
    }
}
