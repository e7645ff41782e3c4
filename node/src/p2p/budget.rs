//! Byte budgets of what the network task holds for the node: the queues to the node (the
//! driver's event queue, the transaction admission worker's queue) and the messages held
//! while a peer is still in the handshake; per peer and in total.
//!
//! This module owns the accounting only: how many bytes each peer has held, and for a queue,
//! in what order they went in. It must never let a count go negative or hold a byte for a
//! message the consumer has taken, and never decide what to do with a message over budget
//! (the service drops, counts and strikes).
//!
//! The queues are tokio channels whose consumers live elsewhere and only `recv`. The service
//! is each channel's only sender, so the messages taken so far are those sent minus those
//! still in the channel; they leave in the order they went in, so the oldest entries here are
//! the ones taken. [`Budget::taken`] releases them.

use std::collections::{HashMap, VecDeque};

use libp2p::PeerId;

/// The budgets' maps are looked up for every message, where SipHash costs hundreds of
/// instructions per peer id. Fx resists no chosen keys, and need not: only allow-listed peers
/// that passed the connection gate ever hold bytes.
type PeerBytes = HashMap<PeerId, usize, rustc_hash::FxBuildHasher>;

/// Which limit a message would break.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Over {
    /// The peer's own bytes held.
    Peer,
    /// All bytes held.
    Total,
}

/// Bytes held per peer and in total, against their limits; released by whoever knows what
/// left (a queue in order, [`Budget`]; the handshake hold a peer at a time).
#[derive(Debug)]
pub struct Held {
    total_max: usize,
    peer_max: usize,
    total: usize,
    /// A peer's entry stays when it falls to zero (until [`Held::release_peer`]): only
    /// allow-listed peers past the gate hold bytes, so the map stays small, and a message
    /// costs one lookup to add and one to release instead of an insert and a remove too.
    per_peer: PeerBytes,
}

impl Held {
    pub fn new(total_max: usize, peer_max: usize) -> Held {
        assert!(peer_max <= total_max, "a peer's budget fits in the total");
        Held {
            total_max,
            peer_max,
            total: 0,
            per_peer: PeerBytes::default(),
        }
    }

    /// Whether `len` more bytes from `peer` fit. Says nothing of a count bound.
    pub fn check(&self, peer: Option<&PeerId>, len: usize) -> Result<(), Over> {
        let held = peer.map(|p| self.per_peer.get(p).copied().unwrap_or(0));
        self.fits(held, len)
    }

    /// Whether `len` more bytes fit beside the `held` bytes of a peer (`None`: no peer).
    fn fits(&self, held: Option<usize>, len: usize) -> Result<(), Over> {
        if held.is_some_and(|held| held.saturating_add(len) > self.peer_max) {
            return Err(Over::Peer);
        }
        if self.total.saturating_add(len) > self.total_max {
            return Err(Over::Total);
        }
        Ok(())
    }

    /// Records `len` bytes now held for `peer` if they fit ([`Held::check`] and
    /// [`Held::add`] with one lookup).
    pub fn try_add(&mut self, peer: PeerId, len: usize) -> Result<(), Over> {
        let total = self.total;
        match self.per_peer.get_mut(&peer) {
            Some(held) => {
                if held.saturating_add(len) > self.peer_max {
                    return Err(Over::Peer);
                }
                if total.saturating_add(len) > self.total_max {
                    return Err(Over::Total);
                }
                *held += len;
            }
            None => {
                self.fits(Some(0), len)?;
                self.per_peer.insert(peer, len);
            }
        }
        self.total = total + len;
        Ok(())
    }

    /// Whether at least half the total is held. A peer over its own share while the budget
    /// is not crowded is hogging it; while it is crowded, the consumer is slow and every
    /// peer's messages pile up, honest ones included.
    pub fn crowded(&self) -> bool {
        self.total >= self.total_max / 2
    }

    /// Records `len` bytes now held for `peer` (after [`Held::check`]), or for the network's
    /// own events (`None`: small, always sent, counted in the total only).
    pub fn add(&mut self, peer: Option<PeerId>, len: usize) {
        self.total += len;
        if let Some(peer) = peer {
            *self.per_peer.entry(peer).or_default() += len;
        }
    }

    /// Releases `len` bytes recorded with [`Held::add`] for `peer`.
    pub fn release(&mut self, peer: Option<&PeerId>, len: usize) {
        self.total = self
            .total
            .checked_sub(len)
            .expect("released bytes were counted in the total");
        if let Some(peer) = peer {
            let held = self
                .per_peer
                .get_mut(peer)
                .expect("a peer with bytes held has an entry");
            *held = held
                .checked_sub(len)
                .expect("released bytes were counted for their peer");
        }
    }

    /// Releases everything held for `peer`.
    pub fn release_peer(&mut self, peer: &PeerId) {
        let len = self.per_peer.remove(peer).unwrap_or(0);
        self.total = self
            .total
            .checked_sub(len)
            .expect("a peer's bytes were counted in the total");
    }

    pub fn total(&self) -> usize {
        self.total
    }

    pub fn peer(&self, peer: &PeerId) -> usize {
        self.per_peer.get(peer).copied().unwrap_or(0)
    }
}

/// The byte budget of one queue to the node, whose messages leave in the order they went in.
#[derive(Debug)]
pub struct Budget {
    held: Held,
    /// Every message in the queue, oldest first: who sent it (`None` for the network's own
    /// events) and its bytes.
    queued: VecDeque<(Option<PeerId>, usize)>,
}

impl Budget {
    pub fn new(total_max: usize, peer_max: usize) -> Budget {
        Budget {
            held: Held::new(total_max, peer_max),
            queued: VecDeque::new(),
        }
    }

    /// The bytes waiting, per peer and in total.
    pub fn held(&self) -> &Held {
        &self.held
    }

    /// Whether `len` more bytes from `peer` fit. Says nothing of the queue's count bound.
    pub fn check(&self, peer: Option<&PeerId>, len: usize) -> Result<(), Over> {
        self.held.check(peer, len)
    }

    /// Whether the queue is at least half full by bytes ([`Held::crowded`]).
    pub fn crowded(&self) -> bool {
        self.held.crowded()
    }

    /// Records a message that went into the queue (after [`Budget::check`], or one of the
    /// network's own events, which are small and always sent).
    pub fn sent(&mut self, peer: Option<PeerId>, len: usize) {
        self.held.add(peer, len);
        self.queued.push_back((peer, len));
    }

    /// Records a message about to go into the queue, if its bytes fit ([`Budget::check`]
    /// and [`Budget::sent`] in one); the network's own events (`None`) always do. Undo with
    /// [`Budget::cancel_last`] if it does not go in.
    pub fn admit(&mut self, peer: Option<PeerId>, len: usize) -> Result<(), Over> {
        match peer {
            Some(peer) => self.held.try_add(peer, len)?,
            None => self.held.add(None, len),
        }
        self.queued.push_back((peer, len));
        Ok(())
    }

    /// The message last admitted did not go into the queue after all.
    pub fn cancel_last(&mut self) {
        let (peer, len) = self
            .queued
            .pop_back()
            .expect("a message was admitted before it is cancelled");
        self.held.release(peer.as_ref(), len);
    }

    /// Releases the messages the consumer has taken, given how many are still in the queue.
    pub fn taken(&mut self, still_queued: usize) {
        while self.queued.len() > still_queued {
            let Some((peer, len)) = self.queued.pop_front() else {
                break;
            };
            self.held.release(peer.as_ref(), len);
        }
        debug_assert_eq!(
            self.held.total(),
            self.queued.iter().map(|(_, l)| l).sum::<usize>()
        );
    }

    /// Messages recorded and not yet released.
    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    pub fn total(&self) -> usize {
        self.held.total()
    }

    pub fn peer(&self, peer: &PeerId) -> usize {
        self.held.peer(peer)
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
        assert!(budget.held.per_peer.values().all(|&held| held == 0));
        // Taking more than was ever sent releases nothing twice.
        budget.taken(0);
        assert_eq!(budget.total(), 0);
        assert_eq!(budget.check(Some(&a), 50), Ok(()));
    }

    #[test]
    fn a_peer_let_go_releases_all_it_held_and_nothing_of_the_others() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut held = Held::new(100, 40);
        held.add(Some(a), 30);
        held.add(Some(b), 25);
        held.add(Some(a), 10);
        assert_eq!(held.check(Some(&a), 1), Err(Over::Peer));
        held.release_peer(&a);
        assert_eq!((held.total(), held.peer(&a), held.peer(&b)), (25, 0, 25));
        assert_eq!(held.check(Some(&a), 40), Ok(()));
        // A peer that held nothing releases nothing.
        held.release_peer(&a);
        held.release(Some(&b), 25);
        assert_eq!(held.total(), 0);
        held.release_peer(&b);
        assert!(held.per_peer.is_empty());
    }

    #[test]
    fn admitting_checks_and_records_in_one_and_a_cancelled_message_is_released() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut budget = Budget::new(100, 40);
        assert_eq!(budget.admit(Some(a), 41), Err(Over::Peer));
        assert_eq!(budget.admit(Some(a), 30), Ok(()));
        assert_eq!(budget.admit(Some(a), 11), Err(Over::Peer));
        assert_eq!(budget.admit(Some(b), 40), Ok(()));
        // The network's own events are let in past the total.
        assert_eq!(budget.admit(None, 31), Ok(()));
        assert_eq!((budget.total(), budget.queued()), (101, 3));
        budget.cancel_last();
        budget.cancel_last();
        assert_eq!(
            (budget.total(), budget.peer(&a), budget.peer(&b)),
            (30, 30, 0)
        );
        // Refused messages left nothing behind: a refusal is the same with either form.
        let mut same = Budget::new(100, 40);
        same.sent(Some(a), 30);
        for len in [10, 11, 70, 71] {
            assert_eq!(budget.check(Some(&b), len), same.check(Some(&b), len));
            assert_eq!(budget.check(Some(&a), len), same.check(Some(&a), len));
        }
    }
}
