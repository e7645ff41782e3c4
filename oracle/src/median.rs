//! Stake-weighted percentiles of the valid reveals.
//!
//! The weighted `q`-percentile (`q` in basis points, 1..=10000) of samples `(value, weight)`
//! with total weight `W > 0` is **the smallest value `v` such that the weight of all samples
//! with value ≤ `v` is at least `q/10000 · W`**, i.e. `10000 · cum(v) ≥ q · W` in integer
//! arithmetic. The median is `q = 5000` (the *lower* weighted median: when the cumulative
//! weight reaches exactly half at some value, that value is taken, never an average of
//! two), the confidence band is `q = 2500` to `q = 7500`. The result is always one of the
//! sample values, and depends only on the multiset of samples, not on their order.
//!
//! Samples with weight 0 are ignored. Cost: one sort, `O(n log n)` for `n` samples.

use serde::{Deserialize, Serialize};

use crate::BPS_MAX;
use crate::types::Price;

/// The weighted 25th, 50th and 75th percentiles of a round's reveals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightedBand {
    /// Weighted 25th percentile: the low end of the confidence band.
    pub low: Price,
    /// Lower weighted median: the round's price.
    pub median: Price,
    /// Weighted 75th percentile: the high end of the confidence band.
    pub high: Price,
}

/// The weighted `q_bps` percentile of `samples` (see the module documentation); `None` when
/// the total weight is 0. Sorts `samples` by value.
///
/// # Panics
/// If `q_bps` is 0 or above 10000 (a programming error: callers pass constants).
pub fn weighted_percentile(samples: &mut [(Price, u64)], q_bps: u16) -> Option<Price> {
    samples.sort_unstable_by_key(|&(v, _)| v);
    percentile_of_sorted(samples, total_weight(samples), q_bps)
}

/// The lower weighted median of `samples`; `None` when the total weight is 0.
pub fn weighted_median(samples: &mut [(Price, u64)]) -> Option<Price> {
    weighted_percentile(samples, 5000)
}

/// The weighted 25th, 50th and 75th percentiles of `samples`; `None` when the total weight
/// is 0. Sorts `samples` by value.
pub fn weighted_band(samples: &mut [(Price, u64)]) -> Option<WeightedBand> {
    samples.sort_unstable_by_key(|&(v, _)| v);
    let total = total_weight(samples);
    Some(WeightedBand {
        low: percentile_of_sorted(samples, total, 2500)?,
        median: percentile_of_sorted(samples, total, 5000)?,
        high: percentile_of_sorted(samples, total, 7500)?,
    })
}

fn total_weight(samples: &[(Price, u64)]) -> u128 {
    samples.iter().map(|&(_, w)| u128::from(w)).sum()
}

fn percentile_of_sorted(sorted: &[(Price, u64)], total: u128, q_bps: u16) -> Option<Price> {
    assert!(q_bps >= 1 && u32::from(q_bps) <= BPS_MAX, "q_bps {q_bps}");
    if total == 0 {
        return None;
    }
    // `total ≤ n · u64::MAX` and `n` is far below 2^64, so neither product can overflow.
    let threshold = total * u128::from(q_bps);
    let mut cumulative: u128 = 0;
    for &(value, weight) in sorted {
        cumulative += u128::from(weight);
        if weight > 0 && cumulative * u128::from(BPS_MAX) >= threshold {
            return Some(value);
        }
    }
    // Unreachable: at the last positive weight the cumulative weight is `total`, and
    // `10000 · total ≥ q · total` for every `q ≤ 10000`.
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[(u64, u64)]) -> Vec<(Price, u64)> {
        v.iter().map(|&(p, w)| (Price(p), w)).collect()
    }

    #[test]
    fn exact_half_takes_the_lower_value() {
        // Cumulative weight reaches exactly half at 10: the lower median is 10, not 15.
        assert_eq!(
            weighted_median(&mut s(&[(20, 1), (10, 1)])),
            Some(Price(10))
        );
        assert_eq!(
            weighted_median(&mut s(&[(10, 3), (20, 2), (30, 1)])),
            Some(Price(10))
        );
        assert_eq!(
            weighted_median(&mut s(&[(10, 2), (20, 2), (30, 1)])),
            Some(Price(20))
        );
    }

    #[test]
    fn heavy_sample_dominates_and_zero_weights_are_ignored() {
        let mut v = s(&[(1, 1), (1000, 10), (5, 0), (2, 1)]);
        assert_eq!(weighted_median(&mut v), Some(Price(1000)));
        assert_eq!(weighted_median(&mut s(&[(5, 0)])), None);
        assert_eq!(weighted_median(&mut []), None);
    }

    #[test]
    fn band_is_p25_median_p75() {
        let mut v = s(&[(10, 1), (20, 1), (30, 1), (40, 1)]);
        assert_eq!(
            weighted_band(&mut v),
            Some(WeightedBand {
                low: Price(10),
                median: Price(20),
                high: Price(30)
            })
        );
        let mut one = s(&[(7, 5)]);
        let b = weighted_band(&mut one).unwrap();
        assert_eq!((b.low, b.median, b.high), (Price(7), Price(7), Price(7)));
    }

    #[test]
    fn extreme_weights_do_not_overflow() {
        let mut v = s(&[(1, u64::MAX), (2, u64::MAX), (3, u64::MAX)]);
        assert_eq!(weighted_median(&mut v), Some(Price(2)));
    }
}
