//! Sharing a round's reward among the in-band reporters, pro rata to weight, in integers.
//!
//! Largest-remainder rule: recipient `i` with weight `wᵢ` of total `W` first gets
//! `⌊R · wᵢ / W⌋`; the `R − Σ⌊…⌋` tokens left (fewer than the number of recipients) go one
//! each to the recipients with the largest remainders `R · wᵢ mod W`, ties to the smaller
//! operator id. The shares add up to exactly `R` whenever `W > 0`; with `W = 0` nothing is
//! paid. `R · wᵢ < 2^128`, so nothing overflows.

use crate::types::{Amount, OperatorId};

/// The shares of `pool` for `recipients` (operator, weight), in the same order. Each
/// operator should appear once.
pub fn distribute(pool: Amount, recipients: &[(OperatorId, u64)]) -> Vec<Amount> {
    let total: u128 = recipients.iter().map(|&(_, w)| u128::from(w)).sum();
    if total == 0 {
        return vec![Amount::ZERO; recipients.len()];
    }
    let pool_wide = u128::from(pool.0);
    let mut shares = Vec::with_capacity(recipients.len());
    let mut remainders = Vec::with_capacity(recipients.len());
    let mut paid: u128 = 0;
    for (i, &(op, w)) in recipients.iter().enumerate() {
        let product = pool_wide * u128::from(w);
        let base = product / total;
        paid += base;
        // base ≤ pool because w ≤ total.
        shares.push(Amount(u64::try_from(base).unwrap_or(pool.0)));
        remainders.push((product % total, op, i));
    }
    let left = usize::try_from(pool_wide - paid).unwrap_or(usize::MAX);
    // Largest remainder first, then the smaller operator id.
    remainders.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, _, i) in remainders.iter().take(left) {
        shares[i] = Amount(shares[i].0 + 1);
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(b: u8) -> OperatorId {
        OperatorId([b; 20])
    }

    #[test]
    fn shares_are_pro_rata_and_sum_to_the_pool() {
        // 10 · 1/3 = 3.33 each: the leftover token goes to the smallest id (equal remainders).
        let s = distribute(Amount(10), &[(op(3), 1), (op(1), 1), (op(2), 1)]);
        assert_eq!(s, [Amount(3), Amount(4), Amount(3)]);
        // 10 · (5, 3, 2)/10 exact.
        let s = distribute(Amount(10), &[(op(1), 5), (op(2), 3), (op(3), 2)]);
        assert_eq!(s, [Amount(5), Amount(3), Amount(2)]);
        // 7 · (2, 1)/3 = 4.67, 2.33: leftover to the larger remainder.
        let s = distribute(Amount(7), &[(op(1), 2), (op(2), 1)]);
        assert_eq!(s, [Amount(5), Amount(2)]);
    }

    #[test]
    fn degenerate_inputs() {
        assert!(distribute(Amount(10), &[]).is_empty());
        assert_eq!(distribute(Amount(10), &[(op(1), 0)]), [Amount(0)]);
        assert_eq!(
            distribute(Amount(u64::MAX), &[(op(1), u64::MAX), (op(2), u64::MAX)]),
            [Amount(u64::MAX / 2 + 1), Amount(u64::MAX / 2)]
        );
        assert_eq!(distribute(Amount(0), &[(op(1), 5)]), [Amount(0)]);
    }
}
