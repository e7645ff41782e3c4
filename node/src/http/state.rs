//! What the server and every RPC method read: the shared [`RpcState`] and the bound on calls
//! waiting for a commit. A leaf: it imports nothing else of `http`, so the methods can use it
//! without importing the server back.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cairn_ledger::genesis::Validator;
use cairn_ledger::store::Store;
use cairn_ledger::tx::Transaction;

use crate::config::RpcSection;
use crate::host::status::NodeView;
use crate::metrics::{Metrics, to_i64};
use crate::txpool::mempool::Mempool;

/// Everything the server reads. Cheap to clone (all shared).
#[derive(Clone)]
pub struct RpcState {
    pub store: Arc<Store>,
    pub mempool: Arc<Mutex<Mempool>>,
    pub node: Arc<dyn NodeView>,
    pub metrics: Arc<Metrics>,
    /// The validator set reported by `validators`: genesis's until validator-set changes
    /// exist.
    pub validators: Arc<[Validator]>,
    pub limits: RpcSection,
    /// Where each transaction this server admits to the mempool is sent, for the driver to
    /// gossip; `None` when no driver runs (tests, tools). Sent with `try_send`: when the
    /// channel is full the transaction stays in the mempool un-gossiped (it still reaches a
    /// block when this node leads) and the call still succeeds.
    pub admitted: Option<tokio::sync::mpsc::Sender<Transaction>>,
}

/// Counts `submit_tx` calls in mode `commit` that are waiting for their transaction to
/// commit. Each waits on a thread of tokio's blocking pool, so the count is bounded
/// ([`COMMIT_WAITERS_MAX`]) well below that pool's size: the other requests, and any blocking
/// work of the driver on the same runtime, always find a thread. When the server is told to
/// stop, waiting calls answer at once, so a graceful shutdown does not wait out their commits.
pub struct CommitWaiters {
    waiting: AtomicUsize,
    max: usize,
    stopping: AtomicBool,
}

/// A place among the commit waiters, given back when dropped (also on a panic).
pub(crate) struct CommitWaiter<'a>(&'a CommitWaiters);

impl CommitWaiters {
    pub fn new(max: usize) -> CommitWaiters {
        CommitWaiters {
            waiting: AtomicUsize::new(0),
            max,
            stopping: AtomicBool::new(false),
        }
    }

    /// A place, or `None` when `max` calls are already waiting.
    pub(crate) fn try_enter(&self) -> Option<CommitWaiter<'_>> {
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| CommitWaiter(self))
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Tells waiting calls (and any later one) to stop waiting.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

impl Drop for CommitWaiter<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl RpcState {
    /// Sets the gauges this server has the authoritative source for, so a scrape is current
    /// even between driver updates.
    pub(crate) fn refresh_gauges(&self) {
        let height = self.store.tip().height.0;
        self.metrics.height.set(to_i64(height));
        if let Ok(pool) = self.mempool.lock() {
            self.set_mempool_gauges(&pool);
        }
        if let Some((at, oracle)) = self.store.oracle_at() {
            self.metrics.oracle.observe(at, &oracle);
        }
    }

    pub(crate) fn set_mempool_gauges(&self, pool: &Mempool) {
        self.metrics.mempool_size.set(to_i64(pool.len() as u64));
        self.metrics.mempool_bytes.set(to_i64(pool.bytes()));
    }
}
