//! Difficulty and time: which `bits` the block at a height must carry, the median time past,
//! and whether a header's timestamp is acceptable now.
//!
//! The retarget is Bitcoin's (every `retarget_interval_blocks`, towards the genesis block
//! time, clamped to ×4 / ÷4 per step, never easier than the genesis limit) without its
//! time-warp hole:
//!
//! - Bitcoin measures a window from its own first block to its last, so consecutive windows
//!   do not share a block and the gap between them is never counted: by setting each window's
//!   first timestamp far back, a majority miner makes every window look slow. Here a window
//!   is measured from the **last block of the previous window** to its own last block, so the
//!   measured spans telescope: their sum is the time between two blocks, whatever the
//!   timestamps in between say.
//! - As in BIP94, the first block of a window may not be more than
//!   [`WINDOW_START_REWIND_MS_MAX`] before its parent.
//!
//! Owns: arithmetic over ancestors' (height, timestamp, bits). Never: reads a clock (the
//! caller passes `now`) or walks a chain (the caller passes the ancestors).

use cairn_ledger::{Height, TimestampMs};

use super::ParamsError;
use super::header::HeaderSummary;
use super::target::{CompactError, CompactTarget, Target, U256, U512};

/// Most a retarget may change the target in one step, either way: a burst of hash power (or
/// of lying timestamps) moves difficulty at most this far per window. Bitcoin's value.
pub const RETARGET_STEP_FACTOR_MAX: u64 = 4;

/// Blocks whose median timestamp a new block must exceed. Bitcoin's value: a median of 11
/// cannot be moved by fewer than 6 colluding miners, and it still advances with real time.
pub const MEDIAN_TIME_SPAN_BLOCKS: usize = 11;

/// How far before its parent the first block of a difficulty window may be stamped (BIP94's
/// 600 s). Windows here are measured from the previous window's last block, which already
/// closes the time warp; this bound keeps a window's first timestamp from being dragged back
/// anyway, so no later rule change can reopen it, while leaving room for honest clock skew.
pub const WINDOW_START_REWIND_MS_MAX: u64 = 600_000;

/// The part of the genesis parameters the retarget reads, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetargetParams {
    initial_bits: CompactTarget,
    pow_limit: Target,
    target_block_time_ms: u64,
    retarget_interval_blocks: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DifficultyError {
    #[error("height 0 is genesis; its bits come from the genesis file, not a retarget")]
    GenesisHeight,
    #[error("the block at height {height} needs its last {needed} ancestors; {given} given")]
    TooFewAncestors {
        height: Height,
        needed: u64,
        given: usize,
    },
    #[error(
        "ancestors must run without gaps up to the parent: found height {got} where {expected} belongs"
    )]
    AncestorsNotContiguous { expected: Height, got: Height },
    #[error("ancestor at height {height} carries unusable bits: {source}")]
    AncestorBits {
        height: Height,
        #[source]
        source: CompactError,
    },
}

/// The blocks a retarget measures between: `first` is the last block of the window before
/// (genesis for the first window), `last` the parent of the block being retargeted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    first: Height,
    last: Height,
}

impl Window {
    fn intervals(self) -> u64 {
        self.last.0 - self.first.0
    }
}

impl RetargetParams {
    pub fn new(
        initial_bits: CompactTarget,
        target_block_time_ms: u64,
        retarget_interval_blocks: u64,
    ) -> Result<RetargetParams, ParamsError> {
        let pow_limit = initial_bits.to_target().map_err(ParamsError::InitialBits)?;
        if target_block_time_ms == 0 {
            return Err(ParamsError::Zero {
                field: "target_block_time_ms",
            });
        }
        if retarget_interval_blocks == 0 {
            return Err(ParamsError::Zero {
                field: "retarget_interval_blocks",
            });
        }
        Ok(RetargetParams {
            initial_bits,
            pow_limit,
            target_block_time_ms,
            retarget_interval_blocks,
        })
    }

    /// The bits of the first blocks, and of genesis's [`HeaderSummary`].
    pub fn initial_bits(&self) -> CompactTarget {
        self.initial_bits
    }

    /// The easiest target any block may have: the one genesis starts at.
    pub fn pow_limit(&self) -> Target {
        self.pow_limit
    }

    pub fn target_block_time_ms(&self) -> u64 {
        self.target_block_time_ms
    }

    pub fn retarget_interval_blocks(&self) -> u64 {
        self.retarget_interval_blocks
    }

    /// Whether the block at `height` opens a difficulty window (and so may be retargeted).
    pub fn is_window_start(&self, height: Height) -> bool {
        height.0 > 0 && height.0.is_multiple_of(self.retarget_interval_blocks)
    }

    /// The window measured for the block at `height`, if that block is retargeted.
    fn window(&self, height: Height) -> Option<Window> {
        if !self.is_window_start(height) {
            return None;
        }
        let last = height.0 - 1;
        let window = Window {
            first: Height(last.saturating_sub(self.retarget_interval_blocks)),
            last: Height(last),
        };
        // With an interval of 1, block 1's window is genesis alone: nothing to measure.
        (window.intervals() > 0).then_some(window)
    }

    /// How many of its latest ancestors (the parent last) [`next_bits`] reads for the block
    /// at `height`: the parent alone, or at a retarget the whole measured window.
    pub fn ancestors_needed(&self, height: Height) -> u64 {
        match self.window(height) {
            Some(w) => w.intervals() + 1,
            None => height.0.min(1),
        }
    }
}

/// The bits the block at `height` must carry, given its ancestors in height order ending at
/// its parent (at least [`RetargetParams::ancestors_needed`] of them; earlier ones are
/// ignored). Genesis's summary carries [`RetargetParams::initial_bits`].
pub fn next_bits(
    params: &RetargetParams,
    height: Height,
    ancestors: &[HeaderSummary],
) -> Result<CompactTarget, DifficultyError> {
    if height.0 == 0 {
        return Err(DifficultyError::GenesisHeight);
    }
    let needed = params.ancestors_needed(height);
    let used = trailing(ancestors, needed, height)?;
    let parent = used[used.len() - 1];
    let Some(window) = params.window(height) else {
        return Ok(parent.bits);
    };
    let first = used[0];
    let old = parent
        .bits
        .to_target()
        .map_err(|source| DifficultyError::AncestorBits {
            height: parent.height,
            source,
        })?;
    let actual_ms = parent.timestamp.0.saturating_sub(first.timestamp.0);
    let expected_ms = u128::from(window.intervals()) * u128::from(params.target_block_time_ms);
    Ok(retarget(old, u128::from(actual_ms), expected_ms, params.pow_limit).to_compact())
}

/// The last `needed` ancestors, checked to run up to `height - 1` without gaps.
fn trailing(
    ancestors: &[HeaderSummary],
    needed: u64,
    height: Height,
) -> Result<&[HeaderSummary], DifficultyError> {
    let too_few = DifficultyError::TooFewAncestors {
        height,
        needed,
        given: ancestors.len(),
    };
    let Some(start) = usize::try_from(needed)
        .ok()
        .and_then(|n| ancestors.len().checked_sub(n))
    else {
        return Err(too_few);
    };
    let used = &ancestors[start..];
    for (i, a) in used.iter().enumerate() {
        let expected = Height(height.0 - needed + i as u64);
        if a.height != expected {
            return Err(DifficultyError::AncestorsNotContiguous {
                expected,
                got: a.height,
            });
        }
    }
    Ok(used)
}

/// Bitcoin's `CalculateNextWorkRequired` arithmetic: `old × actual / expected`, with the
/// actual timespan clamped to [expected / 4, expected × 4] and the result capped at `limit`.
/// Computed in 512 bits, so unlike Bitcoin it cannot overflow near a large limit.
pub fn retarget(old: Target, actual_ms: u128, expected_ms: u128, limit: Target) -> Target {
    if expected_ms == 0 {
        return old;
    }
    let factor = u128::from(RETARGET_STEP_FACTOR_MAX);
    let actual_ms = actual_ms.clamp(expected_ms / factor, expected_ms.saturating_mul(factor));
    let scaled = old.as_u256().widen() * U512::from(actual_ms) / U512::from(expected_ms);
    let new = scaled.narrow().map_or(limit, |v| {
        // A target rounded down to zero could never be met: one is the hardest there is.
        Target::from_u256(v).unwrap_or_else(|| Target::from_u256(U256::one()).unwrap_or(old))
    });
    new.min(limit)
}

/// Median of the timestamps of the last [`MEDIAN_TIME_SPAN_BLOCKS`] ancestors (fewer near
/// genesis), taking the upper middle of an even count as Bitcoin does; `None` without any.
pub fn median_time_past(ancestors: &[HeaderSummary]) -> Option<TimestampMs> {
    let start = ancestors.len().saturating_sub(MEDIAN_TIME_SPAN_BLOCKS);
    let mut times: Vec<TimestampMs> = ancestors[start..].iter().map(|a| a.timestamp).collect();
    times.sort_unstable();
    times.get(times.len() / 2).copied()
}

/// What a header's timestamp means for it right now.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampCheck {
    Ok,
    /// Not after the median time past: the header is invalid, now and forever.
    TooOld {
        time: TimestampMs,
        median_time_past: TimestampMs,
    },
    /// Further ahead of our clock than allowed: hold the header back and look again later.
    /// It may be valid then, so it must not be marked invalid nor its sender punished.
    FromTheFuture {
        time: TimestampMs,
        latest_allowed: TimestampMs,
    },
}

/// The timestamp rules: strictly after the median time past, and at most `future_ms_max`
/// past `now` (the caller's clock).
pub fn check_timestamp(
    time: TimestampMs,
    median_time_past: TimestampMs,
    now: TimestampMs,
    future_ms_max: u64,
) -> TimestampCheck {
    if time <= median_time_past {
        return TimestampCheck::TooOld {
            time,
            median_time_past,
        };
    }
    let latest_allowed = TimestampMs(now.0.saturating_add(future_ms_max));
    if time > latest_allowed {
        return TimestampCheck::FromTheFuture {
            time,
            latest_allowed,
        };
    }
    TimestampCheck::Ok
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "block at height {height} opens a difficulty window at {time} ms, more than \
     {WINDOW_START_REWIND_MS_MAX} ms before its parent's {parent_time} ms (earliest {earliest} ms)"
)]
pub struct WindowStartTooEarly {
    pub height: Height,
    pub time: TimestampMs,
    pub parent_time: TimestampMs,
    pub earliest: TimestampMs,
}

/// BIP94's rule: the first block of a window is not stamped more than
/// [`WINDOW_START_REWIND_MS_MAX`] before its parent, the previous window's last block.
pub fn check_window_start(
    params: &RetargetParams,
    height: Height,
    time: TimestampMs,
    parent_time: TimestampMs,
) -> Result<(), WindowStartTooEarly> {
    if !params.is_window_start(height) {
        return Ok(());
    }
    let earliest = TimestampMs(parent_time.0.saturating_sub(WINDOW_START_REWIND_MS_MAX));
    if time < earliest {
        return Err(WindowStartTooEarly {
            height,
            time,
            parent_time,
            earliest,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pow::test_support::{EASY_BITS, hash_of};
    use proptest::prelude::*;

    const INTERVAL: u64 = 10;
    const BLOCK_MS: u64 = 2000;

    fn target(bits: u32) -> Target {
        CompactTarget(bits).to_target().unwrap()
    }

    fn params(limit_bits: u32) -> RetargetParams {
        RetargetParams::new(CompactTarget(limit_bits), BLOCK_MS, INTERVAL).unwrap()
    }

    fn summary(height: u64, timestamp: u64, bits: CompactTarget) -> HeaderSummary {
        HeaderSummary {
            hash: hash_of(height),
            height: Height(height),
            timestamp: TimestampMs(timestamp),
            bits,
        }
    }

    /// Grows a chain from genesis with the given gaps between timestamps, each block carrying
    /// the bits `next_bits` demands.
    fn grow(params: &RetargetParams, gaps_ms: impl IntoIterator<Item = u64>) -> Vec<HeaderSummary> {
        let mut chain = vec![summary(0, 1_000_000, params.initial_bits())];
        for gap in gaps_ms {
            let height = Height(chain.len() as u64);
            let bits = next_bits(params, height, &chain).unwrap();
            let time = chain.last().unwrap().timestamp.0 + gap;
            chain.push(summary(height.0, time, bits));
        }
        chain
    }

    /// Bitcoin Core's `pow_tests` (main network, 14-day windows): the arithmetic is the
    /// same once both timespans are in milliseconds.
    #[test]
    fn retarget_matches_bitcoin_core_vectors() {
        let limit = target(0x1d00ffff);
        let expected = 14 * 24 * 60 * 60 * 1000u128;
        let cases = [
            // get_next_work: blocks 30240..32255.
            (1261130161u64, 1262152739u64, 0x1d00ffffu32, 0x1d00d86au32),
            // get_next_work_pow_limit: capped at the limit.
            (1231006505, 1233061996, 0x1d00ffff, 0x1d00ffff),
            // get_next_work_lower_limit_actual: clamped to a quarter of the timespan.
            (1279008237, 1279297671, 0x1c05a3f4, 0x1c0168fd),
            // get_next_work_upper_limit_actual: clamped to four times the timespan.
            (1263163443, 1269211443, 0x1c387f6f, 0x1d00e1fd),
        ];
        for (first, last, bits, want) in cases {
            let actual = u128::from(last - first) * 1000;
            let got = retarget(target(bits), actual, expected, limit).to_compact();
            assert_eq!(got, CompactTarget(want), "retarget of {bits:#010x}");
        }
    }

    #[test]
    fn bits_carry_over_between_retargets() {
        let p = params(0x1e0fffff);
        let chain = grow(&p, [1u64; 9]);
        assert!(chain.iter().all(|s| s.bits == p.initial_bits()));
        assert_eq!(p.ancestors_needed(Height(9)), 1);
        assert_eq!(next_bits(&p, Height(9), &chain[..9]), Ok(p.initial_bits()));
    }

    #[test]
    fn on_schedule_blocks_keep_the_difficulty() {
        let p = params(0x1e0fffff);
        let start = target(0x1d0fffff);
        let mut chain = vec![summary(0, 0, start.to_compact())];
        for h in 1..=35 {
            let bits = next_bits(&p, Height(h), &chain).unwrap();
            chain.push(summary(h, h * BLOCK_MS, bits));
        }
        // Windows measured from the previous window's last block are exactly on schedule
        // (the first, from genesis, too: 9 intervals expected and taken).
        assert!(
            chain.iter().all(|s| s.bits == start.to_compact()),
            "{chain:?}"
        );
    }

    #[test]
    fn fast_blocks_raise_difficulty_at_most_fourfold_per_window() {
        let p = params(0x1e0fffff);
        let chain = grow(&p, [1u64; 30]);
        let limit = p.pow_limit();
        // The first window (genesis to block 9) took 9 ms for 9 × 2000 expected.
        assert_eq!(
            chain[10].bits,
            retarget(limit, 9, 9 * 2000, limit).to_compact()
        );
        assert_eq!(chain[10].bits, CompactTarget(0x1e03ffff));
        assert!(chain[11..20].iter().all(|s| s.bits == chain[10].bits));
        assert_eq!(chain[20].bits, CompactTarget(0x1e00ffff));
        assert_eq!(chain[30].bits, CompactTarget(0x1d3fffc0));
    }

    #[test]
    fn slow_blocks_never_make_it_easier_than_the_limit() {
        let p = params(0x1e0fffff);
        let chain = grow(&p, [1_000_000u64; 25]);
        assert!(chain.iter().all(|s| s.bits == CompactTarget(0x1e0fffff)));
        // From a harder start, a slow window eases by four at most.
        let start = CompactTarget(0x1c0fffff);
        let mut chain = vec![summary(0, 0, start)];
        for h in 1..=10 {
            let bits = next_bits(&p, Height(h), &chain).unwrap();
            chain.push(summary(h, h * 1_000_000, bits));
        }
        assert_eq!(chain[10].bits, CompactTarget(0x1c3ffffc));
    }

    #[test]
    fn a_window_is_measured_from_the_last_block_of_the_previous_one() {
        let p = params(0x1e0fffff);
        let start = CompactTarget(0x1d0fffff);
        let base: Vec<HeaderSummary> = (0..20).map(|h| summary(h, h * BLOCK_MS, start)).collect();
        assert_eq!(p.ancestors_needed(Height(20)), 11);
        assert_eq!(next_bits(&p, Height(20), &base), Ok(start));
        // Moving block 9 (the previous window's last) back by half a window makes window
        // 10..=19 look slower. Bitcoin, measuring 10..=19 only, would not see it, which is
        // how consecutive windows could each be made to look slow.
        let mut shifted = base.clone();
        shifted[9].timestamp = TimestampMs(9 * BLOCK_MS - 5 * BLOCK_MS);
        let eased = next_bits(&p, Height(20), &shifted).unwrap();
        assert!(eased.to_target().unwrap() > start.to_target().unwrap());
        // Only the window's end points count: block 10's time does not.
        let mut first_moved = base.clone();
        first_moved[10].timestamp = TimestampMs(0);
        assert_eq!(next_bits(&p, Height(20), &first_moved), Ok(start));
    }

    /// The classic time warp: a majority miner stamps every block at the median time past
    /// plus one, except each window's last, stamped at real time. Measured from each
    /// window's own first block, as Bitcoin does, every window would look slow and the
    /// difficulty would fall window after window; measured from the previous window's last
    /// block, the spans are the real ones and the difficulty stays put.
    #[test]
    fn time_warp_stamping_gains_nothing() {
        let p = params(0x1e0fffff);
        let start = CompactTarget(0x1d0fffff);
        let mut chain = vec![summary(0, 0, start)];
        for h in 1..=60u64 {
            let bits = next_bits(&p, Height(h), &chain).unwrap();
            let real = h * BLOCK_MS;
            let last_of_window = (h + 1).is_multiple_of(INTERVAL);
            let time = if last_of_window {
                real
            } else {
                let mtp = median_time_past(&chain).unwrap().0 + 1;
                // The window's first block may not go back past the bound.
                if p.is_window_start(Height(h)) {
                    let parent = chain.last().unwrap().timestamp.0;
                    mtp.max(parent.saturating_sub(WINDOW_START_REWIND_MS_MAX))
                } else {
                    mtp
                }
            };
            chain.push(summary(h, time, bits));
        }
        assert!(
            chain.iter().all(|s| s.bits == start),
            "difficulty moved: {:?}",
            chain.iter().map(|s| s.bits).collect::<Vec<_>>()
        );
    }

    #[test]
    fn window_start_may_not_go_back_past_the_bound() {
        let p = params(EASY_BITS);
        let parent = TimestampMs(10_000_000);
        let earliest = TimestampMs(parent.0 - WINDOW_START_REWIND_MS_MAX);
        assert_eq!(check_window_start(&p, Height(20), earliest, parent), Ok(()));
        assert_eq!(
            check_window_start(&p, Height(20), TimestampMs(earliest.0 - 1), parent),
            Err(WindowStartTooEarly {
                height: Height(20),
                time: TimestampMs(earliest.0 - 1),
                parent_time: parent,
                earliest,
            })
        );
        // Inside a window the median-time-past rule alone applies.
        assert_eq!(
            check_window_start(&p, Height(21), TimestampMs(0), parent),
            Ok(())
        );
    }

    #[test]
    fn ancestors_must_be_enough_and_contiguous() {
        let p = params(EASY_BITS);
        let chain = grow(&p, [BLOCK_MS; 19]);
        assert_eq!(
            next_bits(&p, Height(20), &chain[12..]),
            Err(DifficultyError::TooFewAncestors {
                height: Height(20),
                needed: 11,
                given: 8
            })
        );
        let mut gappy = chain.clone();
        gappy[14] = chain[15];
        assert_eq!(
            next_bits(&p, Height(20), &gappy),
            Err(DifficultyError::AncestorsNotContiguous {
                expected: Height(14),
                got: Height(15)
            })
        );
        assert_eq!(
            next_bits(&p, Height(0), &chain),
            Err(DifficultyError::GenesisHeight)
        );
        assert_eq!(
            next_bits(&p, Height(5), &[]),
            Err(DifficultyError::TooFewAncestors {
                height: Height(5),
                needed: 1,
                given: 0
            })
        );
    }

    #[test]
    fn interval_of_one_retargets_every_block_after_the_first() {
        let p = RetargetParams::new(CompactTarget(0x1e0fffff), BLOCK_MS, 1).unwrap();
        assert_eq!(p.ancestors_needed(Height(1)), 1);
        assert_eq!(p.ancestors_needed(Height(2)), 2);
        let chain = grow(&p, [1u64; 3]);
        assert_eq!(chain[1].bits, p.initial_bits());
        assert!(chain[2].bits.to_target().unwrap() < p.pow_limit());
    }

    #[test]
    fn median_time_past_is_the_middle_of_the_last_eleven() {
        let times = [5u64, 1, 9, 3, 7, 2, 8, 4, 6, 10, 11, 100, 0];
        let chain: Vec<HeaderSummary> = times
            .iter()
            .enumerate()
            .map(|(h, t)| summary(h as u64, *t, CompactTarget(EASY_BITS)))
            .collect();
        // Last eleven: 9 3 7 2 8 4 6 10 11 100 0 → sorted middle is 7.
        assert_eq!(median_time_past(&chain), Some(TimestampMs(7)));
        // Even count: the upper middle, as Bitcoin's `pbegin[(pend - pbegin) / 2]`.
        assert_eq!(median_time_past(&chain[..2]), Some(TimestampMs(5)));
        assert_eq!(median_time_past(&chain[..1]), Some(TimestampMs(5)));
        assert_eq!(median_time_past(&[]), None);
    }

    #[test]
    fn timestamps_too_old_are_invalid_and_future_ones_held_back() {
        let mtp = TimestampMs(1000);
        let now = TimestampMs(5000);
        let max = 7_200_000;
        assert_eq!(
            check_timestamp(TimestampMs(1000), mtp, now, max),
            TimestampCheck::TooOld {
                time: TimestampMs(1000),
                median_time_past: mtp
            }
        );
        assert_eq!(
            check_timestamp(TimestampMs(1001), mtp, now, max),
            TimestampCheck::Ok
        );
        assert_eq!(
            check_timestamp(TimestampMs(5000 + max), mtp, now, max),
            TimestampCheck::Ok
        );
        assert_eq!(
            check_timestamp(TimestampMs(5001 + max), mtp, now, max),
            TimestampCheck::FromTheFuture {
                time: TimestampMs(5001 + max),
                latest_allowed: TimestampMs(5000 + max)
            }
        );
        // No overflow at the end of time.
        assert_eq!(
            check_timestamp(TimestampMs(u64::MAX), mtp, TimestampMs(u64::MAX - 1), max),
            TimestampCheck::Ok
        );
    }

    proptest! {
        #[test]
        fn retarget_stays_within_a_factor_of_four_and_the_limit(
            bits in 0x1a00_8000u32..0x1e0f_ffff,
            actual in 0u128..100_000_000,
            quarter in 1u128..2_500_000,
        ) {
            // A multiple of four, so that the ÷4 clamp is exact and the bound below tight.
            let expected = quarter * 4;
            let limit = target(0x1e0fffff);
            let Ok(old) = CompactTarget(bits).to_target() else { return Ok(()) };
            let new = retarget(old, actual, expected, limit);
            prop_assert!(new <= limit);
            let (o, n) = (old.as_u256().widen(), new.as_u256().widen());
            prop_assert!(n <= o * U512::from(4u32));
            // ÷4 up to rounding of the quotient.
            prop_assert!(n * U512::from(4u32) + U512::from(4u32) >= o || new == limit);
        }

        /// Whatever the timestamps, the measured spans of consecutive windows add up to the
        /// time between their outer end points: no stamping gains time.
        #[test]
        fn window_spans_telescope(gaps in proptest::collection::vec(0u64..10_000, 40)) {
            let p = params(0x1e0fffff);
            let mut times = vec![0u64];
            for g in &gaps {
                times.push(times.last().unwrap() + g);
            }
            let mut spans = 0u64;
            for h in [10u64, 20, 30, 40] {
                let w = p.window(Height(h)).unwrap();
                spans += times[w.last.0 as usize] - times[w.first.0 as usize];
            }
            prop_assert_eq!(spans, times[39] - times[0]);
        }
    }
}
