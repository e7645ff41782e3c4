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

/// A simulator as the seed runner sees it, implemented by its configuration: the
/// configuration names a seed, and running it gives that seed's report.
pub trait Simulation: Clone + Sync {
    type Report: Send;
    type Summary: Default;
    type Error;

    /// Refuses a configuration that no seed could run.
    fn validate(&self) -> Result<(), Self::Error>;

    fn seed(&self) -> u64;

    /// The same configuration with another seed.
    fn with_seed(&self, seed: u64) -> Self;

    /// Runs this configuration's seed (single-threaded) to its report.
    fn run_seed(&self) -> Self::Report;

    /// Folds one seed's report into a batch's totals.
    fn add(summary: &mut Self::Summary, report: &Self::Report);
}

/// Runs one seed.
pub fn run<C: Simulation>(config: &C) -> Result<C::Report, C::Error> {
    config.validate()?;
    Ok(config.run_seed())
}

/// Runs `count` seeds from `first`'s seed (wrapping) on `threads` threads. `on_report` sees
/// every report in seed order (failing ones carry their reproduction line).
pub fn run_many<C: Simulation>(
    first: &C,
    count: u64,
    threads: usize,
    mut on_report: impl FnMut(&C::Report),
) -> Result<C::Summary, C::Error> {
    first.validate()?;
    let mut summary = C::Summary::default();
    in_seed_order(
        count,
        threads,
        |i| first.with_seed(first.seed().wrapping_add(i)).run_seed(),
        |report| {
            C::add(&mut summary, &report);
            on_report(&report);
        },
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulation whose report is its seed, refusing odd seeds to start from.
    #[derive(Clone)]
    struct Echo(u64);

    impl Simulation for Echo {
        type Report = u64;
        type Summary = u64;
        type Error = u64;

        fn validate(&self) -> Result<(), u64> {
            if self.0 % 2 == 1 { Err(self.0) } else { Ok(()) }
        }

        fn seed(&self) -> u64 {
            self.0
        }

        fn with_seed(&self, seed: u64) -> Echo {
            Echo(seed)
        }

        fn run_seed(&self) -> u64 {
            self.0
        }

        fn add(sum: &mut u64, seed: &u64) {
            *sum = sum.wrapping_add(*seed);
        }
    }

    #[test]
    fn seeds_come_back_in_order_whatever_the_threads() {
        for threads in [1, 3, 8] {
            let mut seen = Vec::new();
            let total = run_many(&Echo(u64::MAX - 1), 5, threads, |s| seen.push(*s));
            assert_eq!(seen, vec![u64::MAX - 1, u64::MAX, 0, 1, 2]);
            assert_eq!(total, Ok(0));
        }
        assert_eq!(run(&Echo(4)), Ok(4));
        assert_eq!(run_many(&Echo(3), 5, 1, |_| {}), Err(3));
    }
}
