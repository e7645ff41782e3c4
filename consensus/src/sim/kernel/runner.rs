//! Seeds: the one generator each run draws from, and the batch runner that spreads whole
//! seeds over threads, each seed staying single-threaded and deterministic, and hands the
//! reports back in seed order.
//!
//! Owns: seeds and threads. Never: shares anything between two seeds' runs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The generator of one seed's run: every random choice of the run comes from it, in the
/// order the run makes them.
pub fn seed_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Runs `run(0..count)` on `threads` threads, one seed per call, and hands the results to
/// `each` in seed order: whole seeds run in parallel, each staying single-threaded and
/// deterministic, and the output reads as if they had run one after another.
pub fn in_seed_order<R: Send>(
    count: u64,
    threads: usize,
    run: impl Fn(u64) -> R + Sync,
    mut each: impl FnMut(R),
) {
    let next = AtomicU64::new(0);
    let (sender, receiver) = mpsc::channel::<(u64, R)>();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            let sender = sender.clone();
            let (next, run) = (&next, &run);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count || sender.send((i, run(i))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        // Results arrive in any order; hand them out in seed order.
        let mut waiting: BTreeMap<u64, R> = BTreeMap::new();
        let mut reported = 0u64;
        for (i, result) in receiver {
            waiting.insert(i, result);
            while let Some(result) = waiting.remove(&reported) {
                each(result);
                reported += 1;
            }
        }
    });
}

/// Runs `count` seeds from `first_seed` (wrapping) on `threads` threads: `run` makes one
/// seed's report, `add` folds it into the summary, and `on_report` sees it, both in seed
/// order.
pub fn run_many<R: Send, S: Default>(
    first_seed: u64,
    count: u64,
    threads: usize,
    run: impl Fn(u64) -> R + Sync,
    add: impl Fn(&mut S, &R),
    mut on_report: impl FnMut(&R),
) -> S {
    let mut summary = S::default();
    in_seed_order(
        count,
        threads,
        |i| run(first_seed.wrapping_add(i)),
        |report| {
            add(&mut summary, &report);
            on_report(&report);
        },
    );
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_come_back_in_order_whatever_the_threads() {
        for threads in [1, 3, 8] {
            let mut seen = Vec::new();
            let total: u64 = run_many(
                u64::MAX - 1,
                5,
                threads,
                |seed| seed,
                |sum: &mut u64, seed| *sum = sum.wrapping_add(*seed),
                |seed| seen.push(*seed),
            );
            assert_eq!(seen, vec![u64::MAX - 1, u64::MAX, 0, 1, 2]);
            assert_eq!(total, 0);
        }
    }
}
