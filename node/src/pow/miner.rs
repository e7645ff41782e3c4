//! Miner threads: search nonces for the driver's current template on `threads` OS threads,
//! in chunks, and drop the work the moment the driver moves to a new job (a new best tip or
//! a fuller template).
//!
//! The driver publishes a job under a new generation number; each thread checks the shared
//! generation between chunks of [`NONCE_CHUNK`] nonces, so abandoned work costs at most one
//! chunk. A nonce that meets the target goes back to the driver with the job's generation,
//! and the driver ignores it if the job has moved on. Threads split the nonce space: thread
//! `i` of `n` starts at `i × (2^64 / n)`.
//!
//! Owns: the threads and the hash counter. Never: touches the store or the network (a found
//! nonce is only a message to the driver), or blocks on the driver (a full queue drops it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use cairn_consensus::pow::Target;
use cairn_consensus::pow::mine::NonceSearch;
use cairn_ledger::block::BlockHeader;
use tokio::sync::mpsc;

/// Nonces a thread tries before looking at the generation again.
pub const NONCE_CHUNK: u64 = 1 << 15;
/// Found nonces waiting for the driver; more are dropped (the driver is behind anyway, and
/// the job they belong to is about to be replaced).
pub const FOUND_QUEUE_MAX: usize = 16;

/// A nonce that meets the target of job `generation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    pub generation: u64,
    pub nonce: u64,
}

struct Job {
    generation: u64,
    header: BlockHeader,
    target: Target,
}

struct Shared {
    job: Mutex<Option<Arc<Job>>>,
    wake: Condvar,
    generation: AtomicU64,
    hashes: AtomicU64,
    stop: AtomicBool,
}

/// The running miner threads; dropping it stops and joins them.
pub struct Miner {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Miner {
    /// Starts `threads` (at least one) searching threads that report to `found`.
    pub fn start(threads: usize, found: mpsc::Sender<Found>) -> std::io::Result<Miner> {
        let shared = Arc::new(Shared {
            job: Mutex::new(None),
            wake: Condvar::new(),
            generation: AtomicU64::new(0),
            hashes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let n = threads.max(1) as u64;
        let span = u64::MAX / n;
        let mut handles = Vec::new();
        for i in 0..n {
            let shared = Arc::clone(&shared);
            let found = found.clone();
            let handle = std::thread::Builder::new()
                .name(format!("cairn-miner-{i}"))
                .spawn(move || search_loop(&shared, i * span, &found))?;
            handles.push(handle);
        }
        Ok(Miner {
            shared,
            threads: handles,
        })
    }

    /// Replaces the job: every thread drops what it was doing and searches `header` (whose
    /// nonce is ignored) against `target`. Returns the job's generation.
    pub fn set_job(&self, header: BlockHeader, target: Target) -> u64 {
        let mut slot = self.shared.job.lock().unwrap_or_else(|e| e.into_inner());
        let generation = self.shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
        *slot = Some(Arc::new(Job {
            generation,
            header,
            target,
        }));
        self.shared.wake.notify_all();
        generation
    }

    /// Stops the search until the next [`Miner::set_job`].
    pub fn pause(&self) {
        let mut slot = self.shared.job.lock().unwrap_or_else(|e| e.into_inner());
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        *slot = None;
    }

    /// Nonces tried since the miner started.
    pub fn hashes(&self) -> u64 {
        self.shared.hashes.load(Ordering::Relaxed)
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.pause();
        self.shared.wake.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn search_loop(shared: &Shared, first_nonce: u64, found: &mpsc::Sender<Found>) {
    let mut done: u64 = 0;
    loop {
        let job = {
            let mut slot = shared.job.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                match slot.as_ref() {
                    Some(job) if job.generation != done => break Arc::clone(job),
                    _ => {
                        slot = shared.wake.wait(slot).unwrap_or_else(|e| e.into_inner());
                    }
                }
            }
        };
        done = job.generation;
        let search = NonceSearch::new(&job.header);
        let mut start = first_nonce;
        while shared.generation.load(Ordering::Relaxed) == job.generation
            && !shared.stop.load(Ordering::Relaxed)
        {
            let count = NONCE_CHUNK.min(u64::MAX - start);
            let hit = search.search(&job.target, start, count);
            shared.hashes.fetch_add(count, Ordering::Relaxed);
            if let Some(nonce) = hit {
                if found
                    .try_send(Found {
                        generation: job.generation,
                        nonce,
                    })
                    .is_err()
                {
                    tracing::debug!("a found nonce was dropped: the driver's queue is full");
                }
                break;
            }
            // The nonce space wraps; a thread that went round it all keeps trying (a new
            // timestamp in the next job changes every hash anyway).
            start = start.wrapping_add(count.max(1));
        }
    }
}
