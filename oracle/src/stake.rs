//! An operator's stake in one feed: bonded stake, the unbonding queue, and its record.
//!
//! Penalty rule (see the crate documentation): a penalty of `bps` basis points takes
//! `⌊amount · bps / 10000⌋` from the bonded stake and, separately, from each unbonding entry,
//! so bonded and unbonding stake lose the same share and the total taken is the sum of
//! those floors. Entries left at 0 are dropped.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::BPS_MAX;
use crate::types::{Amount, Height};

/// Stake on its way out: released at the end of block `release_height`, and open to
/// penalties until then.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unbonding {
    pub amount: Amount,
    pub release_height: Height,
}

/// What an operator has done in a feed since it joined. Counters saturate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorRecord {
    /// Height of the stake that made it an operator of the feed.
    pub joined_height: Height,
    /// Commitments accepted.
    pub commits: u64,
    /// Valid reveals accepted.
    pub reveals: u64,
    /// Rounds it committed to and did not validly reveal (penalised).
    pub misses: u64,
    /// Rounds with a price whose median its reveal was outside the band of (penalised).
    pub out_of_band: u64,
    /// Rounds with a price whose band its reveal was inside (rewarded).
    pub in_band: u64,
    /// Every reward earned in this feed.
    pub rewards_total: Amount,
    /// Every penalty taken in this feed.
    pub penalties_total: Amount,
}

/// One operator in one feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorState {
    /// Stake that counts: weight in rounds, eligibility, and penalties.
    pub bonded: Amount,
    /// Unstaked amounts waiting out the unbonding period, in release order. At most
    /// [`UNBONDING_ENTRIES_MAX`](crate::UNBONDING_ENTRIES_MAX) entries.
    pub unbonding: VecDeque<Unbonding>,
    pub record: OperatorRecord,
}

impl OperatorState {
    pub fn new(joined_height: Height) -> OperatorState {
        OperatorState {
            bonded: Amount::ZERO,
            unbonding: VecDeque::new(),
            record: OperatorRecord {
                joined_height,
                ..OperatorRecord::default()
            },
        }
    }

    /// The sum of the unbonding entries.
    pub fn unbonding_total(&self) -> u128 {
        self.unbonding.iter().map(|u| u128::from(u.amount.0)).sum()
    }

    /// Bonded plus unbonding: everything a penalty can reach.
    pub fn at_risk(&self) -> u128 {
        u128::from(self.bonded.0) + self.unbonding_total()
    }

    /// Nothing bonded and nothing unbonding: the operator can leave the feed.
    pub fn is_empty(&self) -> bool {
        self.bonded.is_zero() && self.unbonding.is_empty()
    }

    /// Takes `bps` basis points from the bonded stake and from each unbonding entry (each
    /// rounded down), drops emptied entries, and returns the total taken.
    pub(crate) fn penalise(&mut self, bps: u16) -> Amount {
        let mut taken = share(self.bonded, bps);
        self.bonded = Amount(self.bonded.0 - taken.0);
        for u in &mut self.unbonding {
            let cut = share(u.amount, bps);
            u.amount = Amount(u.amount.0 - cut.0);
            // The penalties add up to at most the operator's stake, which fits a u64.
            taken = taken.saturating_add(cut);
        }
        self.unbonding.retain(|u| !u.amount.is_zero());
        self.record.penalties_total = self.record.penalties_total.saturating_add(taken);
        taken
    }

    /// Removes the entries due at or before `height` and returns their sum.
    pub(crate) fn release_due(&mut self, height: Height) -> Amount {
        let mut released = Amount::ZERO;
        while let Some(u) = self.unbonding.front().copied() {
            if u.release_height > height {
                break;
            }
            self.unbonding.pop_front();
            released = released.saturating_add(u.amount);
        }
        released
    }
}

/// `⌊amount · bps / 10000⌋`; never more than `amount` for `bps ≤ 10000`.
pub fn share(amount: Amount, bps: u16) -> Amount {
    let bps = u128::from(bps).min(u128::from(BPS_MAX));
    let cut = u128::from(amount.0) * bps / u128::from(BPS_MAX);
    // cut ≤ amount because bps ≤ 10000.
    Amount(u64::try_from(cut).unwrap_or(amount.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalty_takes_a_floor_share_of_each_bucket() {
        let mut op = OperatorState::new(Height(1));
        op.bonded = Amount(10_005);
        op.unbonding.push_back(Unbonding {
            amount: Amount(999),
            release_height: Height(50),
        });
        op.unbonding.push_back(Unbonding {
            amount: Amount(5),
            release_height: Height(60),
        });
        // 10 bps: 10_005 → 10, 999 → 0, 5 → 0.
        assert_eq!(op.penalise(10), Amount(10));
        assert_eq!(op.bonded, Amount(9_995));
        // 5000 bps: 9_995 → 4_997, 999 → 499, 5 → 2.
        assert_eq!(op.penalise(5000), Amount(4_997 + 499 + 2));
        assert_eq!(op.bonded, Amount(4_998));
        assert_eq!(
            op.unbonding.iter().map(|u| u.amount).collect::<Vec<_>>(),
            [Amount(500), Amount(3)]
        );
        assert_eq!(op.record.penalties_total, Amount(10 + 4_997 + 499 + 2));
        // 100%: everything goes, emptied entries are dropped.
        assert_eq!(op.penalise(10_000), Amount(4_998 + 503));
        assert!(op.is_empty());
    }

    #[test]
    fn release_takes_due_entries_in_order() {
        let mut op = OperatorState::new(Height(1));
        for (a, h) in [(1, 10), (2, 20), (4, 30)] {
            op.unbonding.push_back(Unbonding {
                amount: Amount(a),
                release_height: Height(h),
            });
        }
        assert_eq!(op.release_due(Height(9)), Amount(0));
        assert_eq!(op.release_due(Height(20)), Amount(3));
        assert_eq!(op.unbonding_total(), 4);
        assert_eq!(op.release_due(Height(100)), Amount(4));
    }

    #[test]
    fn share_is_exact_at_the_extremes() {
        assert_eq!(share(Amount(u64::MAX), 10_000), Amount(u64::MAX));
        assert_eq!(share(Amount(u64::MAX), 1), Amount(u64::MAX / 10_000));
        assert_eq!(share(Amount(9_999), 1), Amount(0));
        assert_eq!(share(Amount(7), 0), Amount(0));
    }
}
