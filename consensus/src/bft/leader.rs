//! Who leads each round: a deterministic round-robin weighted by voting power.
//!
//! Every validator owns a contiguous range of `power` slots out of N = total power (in
//! genesis order). Round r uses slot (r · stride) mod N, where `stride` is a fixed odd
//! constant reduced mod N and nudged until it is coprime with N, so the map from rounds to
//! slots is a permutation of every N consecutive rounds: each validator leads exactly
//! `power` rounds out of every N, and a heavy validator's rounds are spread out rather than
//! back to back. With equal powers 1 and N = 4 the stride is 1: plain round-robin.
//!
//! Owns: the schedule. Never: looks at liveness or history (no reputation), so every node
//! computes the same leader from the round alone.

use cairn_ledger::Round;

use super::validators::ValidatorSet;

/// The 64-bit golden-ratio constant: odd and with no small structure, so the stride it
/// yields spreads a validator's slots over the cycle.
const STRIDE_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

#[derive(Clone, Debug)]
pub struct LeaderSchedule {
    /// cumulative[i] = power of validators 0..=i.
    cumulative: Vec<u64>,
    total_power: u64,
    stride: u64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl LeaderSchedule {
    pub fn new(validators: &ValidatorSet) -> LeaderSchedule {
        let total_power = validators.total_power();
        let mut sum = 0u64;
        let cumulative = validators
            .members()
            .iter()
            .map(|m| {
                sum += m.power;
                sum
            })
            .collect();
        let mut stride = (STRIDE_SEED % total_power).max(1);
        while gcd(stride, total_power) != 1 {
            stride += 1;
        }
        LeaderSchedule {
            cumulative,
            total_power,
            stride,
        }
    }

    /// Position (in the validator set) of the leader of `round`.
    pub fn leader(&self, round: Round) -> usize {
        let slot =
            ((u128::from(round.0) * u128::from(self.stride)) % u128::from(self.total_power)) as u64;
        // The first validator whose cumulative power exceeds the slot owns it.
        self.cumulative.partition_point(|&c| c <= slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(powers: &[u64]) -> ValidatorSet {
        ValidatorSet::with_powers(powers)
    }

    #[test]
    fn equal_power_four_is_plain_round_robin() {
        let s = LeaderSchedule::new(&set(&[1, 1, 1, 1]));
        let leaders: Vec<usize> = (0..8).map(|r| s.leader(Round(r))).collect();
        assert_eq!(leaders, vec![0, 1, 2, 3, 0, 1, 2, 3]);
    }

    #[test]
    fn each_validator_leads_in_proportion_to_power_every_cycle() {
        for powers in [vec![1u64; 7], vec![1; 10], vec![5, 1, 3, 2], vec![100, 1]] {
            let vs = set(&powers);
            let s = LeaderSchedule::new(&vs);
            let total = vs.total_power();
            for start in [0u64, 17, 1_000_003] {
                let mut counts = vec![0u64; powers.len()];
                for r in start..start + total {
                    counts[s.leader(Round(r))] += 1;
                }
                assert_eq!(counts, powers, "start {start}");
            }
        }
    }

    #[test]
    fn huge_rounds_do_not_overflow() {
        let s = LeaderSchedule::new(&set(&[3, 4]));
        assert!(s.leader(Round(u64::MAX)) < 2);
    }
}
