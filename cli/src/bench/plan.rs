//! What a `bench tps` run does, decided before the clock starts: how many transfers per
//! sender, how many workers at what rate, the sender keys (derived from the seed) and every
//! transfer signed in advance. Never talks to a node.

use std::thread;
use std::time::Duration;

use cairn_ledger::crypto::Keypair;
use cairn_ledger::tx::{Payload, Transaction};
use cairn_ledger::{Address, Amount, Hash, Nonce};

/// Transactions pre-signed per second of `--duration` when `--rate` is 0: more than a local
/// network commits, so the run ends by the clock rather than by running out.
pub const UNLIMITED_PRESIGN_PER_S: u64 = 15_000;
/// Most transactions pre-signed for one run (about 350 bytes of memory each, so 350 MB).
pub const TXS_MAX: u64 = 1_000_000;
/// What each benchmark transfer moves and pays, in the smallest unit.
pub const TRANSFER_AMOUNT: u64 = 1;
pub const TRANSFER_FEE: u64 = 1;
/// Domain tag of the sender keys derived from `--seed`.
const SENDER_KEY_TAG: &[u8] = b"cairn/bench/sender/v1";
/// How much work the run does, decided once from the flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Plan {
    pub(super) accounts: u32,
    pub(super) txs_per_sender: u32,
    pub(super) workers: u32,
    /// Transactions per second, 0 for as fast as accepted.
    pub(super) rate: u32,
    pub(super) duration: Duration,
}

impl Plan {
    pub(super) fn new(accounts: u32, duration_s: u64, rate: u32, workers: u32) -> Plan {
        let wanted = match rate {
            0 => duration_s.saturating_mul(UNLIMITED_PRESIGN_PER_S),
            r => duration_s.saturating_mul(u64::from(r)),
        }
        .clamp(1, TXS_MAX);
        let txs_per_sender =
            u32::try_from(wanted.div_ceil(u64::from(accounts))).expect("TXS_MAX fits in u32");
        // A worker needs a sender of its own, and with a rate, at least 1 tx/s.
        let mut workers = workers.min(accounts);
        if rate > 0 {
            workers = workers.min(rate);
        }
        Plan {
            accounts,
            txs_per_sender,
            workers,
            rate,
            duration: Duration::from_secs(duration_s),
        }
    }

    pub(super) fn total_txs(&self) -> u64 {
        u64::from(self.accounts) * u64::from(self.txs_per_sender)
    }

    /// What each sender needs to pay for all its transfers.
    pub(super) fn funding_per_sender(&self) -> u64 {
        u64::from(self.txs_per_sender) * (TRANSFER_AMOUNT + TRANSFER_FEE)
    }

    /// The rate of worker `w`: `rate` split as evenly as whole numbers allow.
    pub(super) fn worker_rate(&self, w: u32) -> u32 {
        self.rate / self.workers + u32::from(w < self.rate % self.workers)
    }
}

/// The key of sender `index` for `seed`.
pub(super) fn sender_key(seed: u64, index: u32) -> Keypair {
    let secret = Hash::tagged(
        SENDER_KEY_TAG,
        &[&seed.to_le_bytes(), &u64::from(index).to_le_bytes()],
    );
    Keypair::from_secret(&secret.0)
}

/// A transfer signed before the clock starts: its request param and its hash.
pub(super) struct Signed {
    pub(super) hex: String,
    pub(super) hash: Hash,
}

/// Signs every sender's transfers with consecutive nonces, on all cores. Sender i pays
/// sender i+1 (the last pays the first), so no account outside the run is touched.
pub(super) fn presign(
    chain_id: &str,
    senders: &[Keypair],
    addresses: &[Address],
    start_nonces: &[u64],
    plan: &Plan,
) -> Vec<Vec<Signed>> {
    let threads = thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = senders.len().div_ceil(threads);
    let sign_one = |s: usize| -> Vec<Signed> {
        let to = addresses[(s + 1) % addresses.len()];
        (0..u64::from(plan.txs_per_sender))
            .map(|j| {
                let tx = Transaction::new_signed(
                    chain_id,
                    &senders[s],
                    Nonce(start_nonces[s] + j),
                    Amount(TRANSFER_FEE),
                    Payload::Transfer {
                        to,
                        amount: Amount(TRANSFER_AMOUNT),
                    },
                );
                Signed {
                    hex: hex::encode(tx.encode()),
                    hash: tx.hash(),
                }
            })
            .collect()
    };
    thread::scope(|scope| {
        let handles: Vec<_> = (0..senders.len())
            .step_by(per_thread)
            .map(|from| {
                let to = (from + per_thread).min(senders.len());
                scope.spawn(move || (from..to).map(sign_one).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a signing thread panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::DURATION_S_MAX;

    #[test]
    fn plans_split_the_rate_over_workers_and_bound_the_presigned_count() {
        let plan = Plan::new(256, 30, 500, 4);
        assert_eq!(plan.workers, 4);
        assert_eq!(plan.total_txs(), 256 * 59);
        assert!(plan.total_txs() >= 15_000);
        assert_eq!((0..4).map(|w| plan.worker_rate(w)).sum::<u32>(), 500);
        let odd = Plan::new(256, 1, 7, 4);
        assert_eq!(
            (0..4).map(|w| odd.worker_rate(w)).collect::<Vec<_>>(),
            [2, 2, 2, 1]
        );
        // Fewer workers than tx/s or than senders: none is left idle.
        let slow = Plan::new(256, 10, 2, 4);
        assert_eq!(slow.workers, 2);
        assert!((0..slow.workers).all(|w| slow.worker_rate(w) == 1));
        assert_eq!(Plan::new(3, 10, 0, 8).workers, 3);
        // Unlimited: a bounded number, spread over the senders.
        let unlimited = Plan::new(256, 30, 0, 4);
        assert_eq!(unlimited.total_txs(), 256 * 1758);
        assert!(unlimited.total_txs() >= 30 * UNLIMITED_PRESIGN_PER_S);
        let long = Plan::new(1, DURATION_S_MAX, 0, 4);
        assert_eq!(long.total_txs(), TXS_MAX);
        assert_eq!(
            long.funding_per_sender(),
            TXS_MAX * (TRANSFER_AMOUNT + TRANSFER_FEE)
        );
    }

    #[test]
    fn sender_keys_follow_from_the_seed() {
        let address = |seed, i| sender_key(seed, i).public().address();
        assert_eq!(address(1, 0), address(1, 0));
        assert_ne!(address(1, 0), address(1, 1));
        assert_ne!(address(1, 0), address(2, 0));
    }
}
