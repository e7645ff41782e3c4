//! Time-weighted average price from a cumulative price×blocks accumulator.
//!
//! Time is counted in **blocks**: heights are agreed by consensus in both BFT and PoW mode,
//! while block timestamps are only loosely bounded (a PoW miner picks its own).
//!
//! **The price in force at height `t`** is the price set by the last round that ended at or
//! before `t` (a round ending at `e` sets its price at the end of block `e`, and a round
//! without quorum keeps the previous one). The accumulator `cum(x)` is the sum of the price
//! in force over the heights `oldest ..= x − 1`, where `oldest` is the oldest kept
//! observation. **The TWAP over a window of `W` blocks ending at height `H`** is the average
//! of the price in force at the heights `H − W + 1 ..= H`:
//! `(cum(H + 1) − cum(H − W + 1)) / W`, rounded down.
//!
//! An observation `(height, cum(height), price)` is recorded at the end of every round once
//! the feed has a first price, including rounds without quorum, so observations are exactly
//! one round apart. At most [`TWAP_OBSERVATIONS_MAX`] are
//! kept, the oldest dropped first. `cum(x)` for any `x` at or after the oldest observation
//! is that observation's cumulative plus its price times the blocks since: the observation
//! is found by index arithmetic (they are evenly spaced), so a query costs **O(1)**: two
//! lookups and one division. (If the spacing were ever broken the lookup falls back to a
//! binary search, `O(log n)` with `n ≤ TWAP_OBSERVATIONS_MAX`.)
//!
//! No overflow: `cum(x) ≤ (x − oldest) · u64::MAX ≤ u64::MAX² < u128::MAX`.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::TWAP_OBSERVATIONS_MAX;
use crate::types::{Height, Price};

/// The accumulator at the end of one round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The round's last height.
    pub height: Height,
    /// Sum of the price in force over the heights from the oldest kept observation's (at the
    /// time this one was recorded) up to `height − 1`. Only differences are meaningful.
    pub cumulative: u128,
    /// The price in force from `height` on.
    pub price: Price,
}

/// Why a TWAP cannot be given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TwapError {
    #[error("a TWAP window must be at least 1 block")]
    WindowZero,
    #[error("the feed has no price yet")]
    NoPrice,
    #[error(
        "a {window_blocks}-block window ending at height {now} starts before the oldest kept observation at height {oldest}; the longest window now is {window_blocks_max} blocks"
    )]
    BeforeHistory {
        window_blocks: u64,
        now: Height,
        oldest: Height,
        window_blocks_max: u64,
    },
    #[error(
        "height {now} is before the latest observation at height {latest}; ask at the current height"
    )]
    NowBeforeLatest { now: Height, latest: Height },
    #[error("height {now} is too close to u64::MAX")]
    HeightOverflow { now: Height },
}

/// The kept observations of one feed. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwapHistory {
    /// Blocks between observations: the feed's round length.
    spacing_blocks: u64,
    observations: VecDeque<Observation>,
}

impl TwapHistory {
    pub fn new(spacing_blocks: u64) -> TwapHistory {
        TwapHistory {
            spacing_blocks,
            observations: VecDeque::new(),
        }
    }

    /// Records that `price` is in force from `height` on. Heights must increase; a height at
    /// or before the latest observation is ignored (and is a bug in debug builds).
    pub fn record(&mut self, height: Height, price: Price) {
        let cumulative = match self.observations.back() {
            None => 0,
            Some(last) if height <= last.height => {
                debug_assert!(false, "observation at {height} after {}", last.height);
                return;
            }
            Some(last) => {
                let blocks = height.0 - last.height.0;
                // Cannot overflow: see the module documentation.
                last.cumulative
                    .saturating_add(u128::from(last.price.0) * u128::from(blocks))
            }
        };
        debug_assert!(self.observations.back().is_none_or(|last| {
            last.height.0.checked_add(self.spacing_blocks) == Some(height.0)
        }));
        self.observations.push_back(Observation {
            height,
            cumulative,
            price,
        });
        while self.observations.len() > TWAP_OBSERVATIONS_MAX {
            self.observations.pop_front();
        }
    }

    pub fn oldest(&self) -> Option<&Observation> {
        self.observations.front()
    }

    pub fn latest(&self) -> Option<&Observation> {
        self.observations.back()
    }

    pub fn len(&self) -> usize {
        self.observations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.observations.is_empty()
    }

    /// The kept observations, oldest first.
    pub fn observations(&self) -> impl DoubleEndedIterator<Item = &Observation> {
        self.observations.iter()
    }

    /// The TWAP over the `window_blocks` heights ending at `now` (inclusive), rounded down.
    /// `now` is the current height: not before the latest observation.
    pub fn twap(&self, now: Height, window_blocks: u64) -> Result<Price, TwapError> {
        if window_blocks == 0 {
            return Err(TwapError::WindowZero);
        }
        let (Some(oldest), Some(latest)) = (self.oldest(), self.latest()) else {
            return Err(TwapError::NoPrice);
        };
        if now < latest.height {
            return Err(TwapError::NowBeforeLatest {
                now,
                latest: latest.height,
            });
        }
        let end = now
            .checked_add(1)
            .ok_or(TwapError::HeightOverflow { now })?;
        let first = end.0.checked_sub(window_blocks);
        let Some(first) = first.filter(|&f| f >= oldest.height.0).map(Height) else {
            return Err(TwapError::BeforeHistory {
                window_blocks,
                now,
                oldest: oldest.height,
                window_blocks_max: end.0 - oldest.height.0,
            });
        };
        let sum = self.cumulative_before(end) - self.cumulative_before(first);
        // An average of u64 prices fits a u64.
        let average = sum / u128::from(window_blocks);
        Ok(Price(u64::try_from(average).unwrap_or(u64::MAX)))
    }

    /// `cum(x)` for `x` at or after the oldest observation (callers check).
    fn cumulative_before(&self, x: Height) -> u128 {
        let o = &self.observations[self.index_at(x)];
        o.cumulative
            .saturating_add(u128::from(o.price.0) * u128::from(x.0 - o.height.0))
    }

    /// Index of the latest observation at or before `x` (callers ensure there is one).
    fn index_at(&self, x: Height) -> usize {
        let len = self.observations.len();
        let oldest = self.observations[0].height;
        let steps = (x.0 - oldest.0) / self.spacing_blocks.max(1);
        let guess = usize::try_from(steps).unwrap_or(usize::MAX).min(len - 1);
        let fits = |k: usize| {
            self.observations[k].height <= x
                && (k + 1 == len || self.observations[k + 1].height > x)
        };
        if fits(guess) {
            guess
        } else {
            self.observations.partition_point(|o| o.height <= x) - 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_then_step() {
        let mut t = TwapHistory::new(10);
        assert_eq!(t.twap(Height(5), 1), Err(TwapError::NoPrice));
        t.record(Height(9), Price(100));
        t.record(Height(19), Price(200));
        // Heights 9..=18 at 100, 19.. at 200.
        assert_eq!(t.twap(Height(19), 1), Ok(Price(200)));
        assert_eq!(
            t.twap(Height(18), 1),
            Err(TwapError::NowBeforeLatest {
                now: Height(18),
                latest: Height(19)
            })
        );
        assert_eq!(t.twap(Height(19), 11), Ok(Price((100 * 10 + 200) / 11)));
        assert_eq!(t.twap(Height(28), 20), Ok(Price(150)));
        assert_eq!(t.twap(Height(28), 10), Ok(Price(200)));
        assert_eq!(t.twap(Height(28), 0), Err(TwapError::WindowZero));
        assert_eq!(
            t.twap(Height(28), 21),
            Err(TwapError::BeforeHistory {
                window_blocks: 21,
                now: Height(28),
                oldest: Height(9),
                window_blocks_max: 20
            })
        );
        assert!(matches!(
            t.twap(Height(u64::MAX), 1),
            Err(TwapError::HeightOverflow { .. })
        ));
    }

    #[test]
    fn history_is_bounded_and_queries_stay_exact() {
        let mut t = TwapHistory::new(3);
        let n = TWAP_OBSERVATIONS_MAX as u64 + 50;
        for i in 0..n {
            t.record(Height(2 + 3 * i), Price(i));
        }
        assert_eq!(t.len(), TWAP_OBSERVATIONS_MAX);
        let oldest = t.oldest().unwrap().height;
        assert_eq!(oldest, Height(2 + 3 * 50));
        let now = t.latest().unwrap().height;
        // The last two rounds: prices n-2 (3 blocks) and n-1 (1 block).
        assert_eq!(t.twap(now, 4), Ok(Price((3 * (n - 2) + (n - 1)) / 4)));
        let longest = now.0 + 1 - oldest.0;
        assert!(t.twap(now, longest).is_ok());
        assert!(matches!(
            t.twap(now, longest + 1),
            Err(TwapError::BeforeHistory { .. })
        ));
    }

    #[test]
    fn largest_prices_do_not_overflow() {
        let mut t = TwapHistory::new(1_000_000);
        for i in 0..100u64 {
            t.record(Height(i * 1_000_000), Price(u64::MAX));
        }
        assert_eq!(
            t.twap(Height(99_000_000 + 5), 99_000_006),
            Ok(Price(u64::MAX))
        );
    }
}
