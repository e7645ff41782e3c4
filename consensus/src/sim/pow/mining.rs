//! Simulated hash power and real seals.
//!
//! Finding a block is a Poisson process: a miner with share `s` of a network that does `H`
//! hashes per millisecond finds a block at target `T` after an exponentially distributed time
//! of mean `work(T) / (s × H)`. The simulator draws that time from the seed instead of
//! hashing for it, then seals the header for real: the genesis limit is so easy (regtest's
//! `0x207fffff`, about two hashes per block) that a nonce search of a few tries meets the
//! target, and every block goes through the full `check_header`, hash against target
//! included. Nothing about proof of work is bypassed.
//!
//! Owns: the arithmetic of hash power and the nonce search. Never: draws randomness of its own
//! (the caller passes the seed's generator), or reads a clock.

use cairn_ledger::block::{BlockHeader, Seal};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::pow::{CompactTarget, Work};

/// Terms of the `atanh` series in [`neg_ln`]: its argument is below 1/3, so each term is a
/// ninth of the last and 20 of them reach far below `f64`'s precision.
const ATANH_SERIES_TERMS: u32 = 20;

/// The longest a mining draw may be, in virtual ms: an hour, a hundred times the slowest
/// expected block of a run, so the cap changes nothing but keeps a degenerate share from
/// pushing the next event past the end of time.
pub const MINING_DELAY_MS_MAX: u64 = 3_600_000;

/// Nonces tried before giving up on a seal. The target stays within a few factors of four of
/// the genesis limit (two hashes per block) in a run, so a block needs tens of tries; not
/// finding one in 2^20 would mean the difficulty ran away, which the run reports.
pub const NONCE_TRIES_MAX: u64 = 1 << 20;

/// `-ln(u)` for `u` in (0, 1], using only addition, multiplication and division, which IEEE 754
/// rounds the same everywhere. The platform's `ln` may differ in its last bit between libm
/// versions, and a seed's reproduction line must replay the same run on any machine.
pub fn neg_ln(u: f64) -> f64 {
    debug_assert!(u > 0.0 && u <= 1.0, "{u}");
    const MANTISSA_BITS: u32 = 52;
    const EXPONENT_BIAS: i64 = 1023;
    let bits = u.to_bits();
    // A normal number (u ≥ 2^-53 here): u = m × 2^e with m in [1, 2).
    let exponent = ((bits >> MANTISSA_BITS) & 0x7ff) as i64 - EXPONENT_BIAS;
    let mantissa = f64::from_bits(
        (bits & ((1u64 << MANTISSA_BITS) - 1)) | ((EXPONENT_BIAS as u64) << MANTISSA_BITS),
    );
    // ln m = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + …) with s = (m - 1) / (m + 1) in [0, 1/3).
    let s = (mantissa - 1.0) / (mantissa + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    for k in 0..ATANH_SERIES_TERMS {
        sum += term / f64::from(2 * k + 1);
        term *= s2;
    }
    -(exponent as f64 * std::f64::consts::LN_2 + 2.0 * sum)
}

/// A uniform draw in (0, 1]: 53 random bits, never zero (whose logarithm is infinite).
fn uniform_open_closed(rng: &mut ChaCha8Rng) -> f64 {
    const FRACTION_BITS: u32 = 53;
    let draw = (rng.r#gen::<u64>() >> (64 - FRACTION_BITS)) + 1;
    draw as f64 / (1u64 << FRACTION_BITS) as f64
}

/// The network's hash power and how it is shared.
#[derive(Clone, Debug, PartialEq)]
pub struct HashPower {
    /// How much faster than the target block time the whole network finds blocks at the
    /// genesis limit, in thousandths: 2,000 means one block per half target time until the
    /// retarget catches up.
    pub speed_per_mille: u64,
    /// Each miner's weight; its share is its weight over the sum.
    pub weights: Vec<u64>,
    pub limit_work: Work,
    pub target_block_time_ms: u64,
}

impl HashPower {
    /// Milliseconds until `miner` finds a block whose target stands for `work`, or `None` if
    /// it has no hash power.
    pub fn draw_delay_ms(&self, rng: &mut ChaCha8Rng, miner: usize, work: Work) -> Option<u64> {
        let weight = *self.weights.get(miner)?;
        if weight == 0 {
            return None;
        }
        let total: u64 = self.weights.iter().sum();
        // mean = target time × (work / limit work) / (speed × share)
        let mean_ms = self.target_block_time_ms as f64
            * (work.to_f64() / self.limit_work.to_f64())
            * 1000.0
            * total as f64
            / (self.speed_per_mille as f64 * weight as f64);
        let delay = (mean_ms * neg_ln(uniform_open_closed(rng))).round();
        // `as` saturates a float that is too large; the cap is far below that anyway.
        Some((delay as u64).clamp(1, MINING_DELAY_MS_MAX))
    }
}

/// Searches nonces from zero until the header's hash meets the target its bits encode.
/// Returns the tries taken, or `None` if the bits are unusable or [`NONCE_TRIES_MAX`] tries
/// found nothing.
pub fn seal(header: &mut BlockHeader) -> Option<u64> {
    let Seal::Pow { bits, .. } = header.seal else {
        return None;
    };
    let target = CompactTarget(bits).to_target().ok()?;
    for nonce in 0..NONCE_TRIES_MAX {
        header.seal = Seal::Pow { bits, nonce };
        if target.is_met_by(&header.hash()) {
            return Some(nonce + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_ledger::{Address, Hash, Height, ProtocolVersion, TimestampMs};
    use rand::SeedableRng;

    #[test]
    fn neg_ln_matches_the_platform_logarithm() {
        for u in [
            1.0,
            0.999_999,
            0.75,
            0.5,
            0.1,
            1e-3,
            1e-9,
            1.0 / (1u64 << 53) as f64,
        ] {
            let ours = neg_ln(u);
            let theirs = -u.ln();
            assert!(
                (ours - theirs).abs() <= 1e-12 * theirs.abs().max(1.0),
                "{u}: {ours} vs {theirs}"
            );
        }
        assert_eq!(neg_ln(1.0), 0.0);
    }

    #[test]
    fn mining_delays_average_out_to_work_over_hash_power() {
        let limit = CompactTarget(0x207f_ffff).to_target().unwrap();
        let power = HashPower {
            speed_per_mille: 2000,
            weights: vec![1, 3, 0],
            limit_work: limit.to_work(),
            target_block_time_ms: 1000,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let draws = 20_000u64;
        let mean = |rng: &mut ChaCha8Rng, miner| {
            (0..draws)
                .map(|_| power.draw_delay_ms(rng, miner, limit.to_work()).unwrap())
                .sum::<u64>() as f64
                / draws as f64
        };
        // Miner 1 holds 3/4 of a network twice as fast as the target: mean 1000 / 2 / 0.75.
        let m1 = mean(&mut rng, 1);
        assert!((m1 - 666.7).abs() < 20.0, "{m1}");
        let m0 = mean(&mut rng, 0);
        assert!((m0 - 2000.0).abs() < 60.0, "{m0}");
        assert_eq!(power.draw_delay_ms(&mut rng, 2, limit.to_work()), None);
        assert_eq!(power.draw_delay_ms(&mut rng, 3, limit.to_work()), None);
    }

    #[test]
    fn a_sealed_header_meets_its_target() {
        let mut header = BlockHeader {
            height: Height(1),
            parent: Hash::digest(b"parent"),
            timestamp: TimestampMs(1),
            tx_root: Hash::ZERO,
            state_root: Hash::ZERO,
            proposer: Address([3; 20]),
            protocol_version: ProtocolVersion(1),
            seal: Seal::Pow {
                bits: 0x2000_ffff,
                nonce: 0,
            },
        };
        let tries = seal(&mut header).unwrap();
        let target = CompactTarget(0x2000_ffff).to_target().unwrap();
        assert!(target.is_met_by(&header.hash()));
        assert!(tries >= 1);
        header.seal = Seal::Genesis;
        assert_eq!(seal(&mut header), None);
    }
}
