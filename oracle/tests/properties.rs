//! Property tests of the documented rules, against direct (brute-force) references.

mod common;

use std::collections::BTreeMap;

use cairn_oracle::*;
use common::*;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Weighted median and percentiles.

/// The documented rule, directly: the smallest sample value whose cumulative weight (of all
/// samples at or below it) reaches `q` of the total.
fn percentile_reference(samples: &[(u64, u64)], q_bps: u16) -> Option<u64> {
    let total: u128 = samples.iter().map(|&(_, w)| u128::from(w)).sum();
    if total == 0 {
        return None;
    }
    samples
        .iter()
        .map(|&(v, _)| v)
        .filter(|&v| {
            let cum: u128 = samples
                .iter()
                .filter(|&&(x, _)| x <= v)
                .map(|&(_, w)| u128::from(w))
                .sum();
            cum * 10_000 >= total * u128::from(q_bps)
        })
        .min()
}

fn to_prices(samples: &[(u64, u64)]) -> Vec<(Price, u64)> {
    samples.iter().map(|&(v, w)| (Price(v), w)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn weighted_percentiles_match_the_reference(
        // Few distinct values, so ties are common; some zero weights.
        samples in prop::collection::vec((0u64..30, 0u64..50), 0..40),
        q in 1u16..=10_000,
    ) {
        let got = weighted_percentile(&mut to_prices(&samples), q).map(|p| p.0);
        prop_assert_eq!(got, percentile_reference(&samples, q));
        let band = weighted_band(&mut to_prices(&samples));
        prop_assert_eq!(band.map(|b| b.low.0), percentile_reference(&samples, 2500));
        prop_assert_eq!(band.map(|b| b.median.0), percentile_reference(&samples, 5000));
        prop_assert_eq!(band.map(|b| b.high.0), percentile_reference(&samples, 7500));
        if let Some(b) = band {
            prop_assert!(b.low <= b.median && b.median <= b.high);
        }
    }

    #[test]
    fn weighted_median_matches_the_reference_at_full_range(
        samples in prop::collection::vec((any::<u64>(), any::<u64>()), 0..30),
    ) {
        let got = weighted_median(&mut to_prices(&samples)).map(|p| p.0);
        prop_assert_eq!(got, percentile_reference(&samples, 5000));
    }

    #[test]
    fn a_minority_cannot_move_the_median_outside_the_honest_range(
        honest in prop::collection::vec((1_000u64..2_000, 1u64..1_000_000), 1..20),
        attackers in prop::collection::vec((any::<u64>(), 1u64..1_000_000), 0..20),
    ) {
        let honest_weight: u64 = honest.iter().map(|&(_, w)| w).sum();
        // Keep attackers strictly below half of all weight: below the honest weight.
        let mut attack_weight = 0;
        let attackers: Vec<_> = attackers
            .into_iter()
            .filter(|&(_, w)| {
                let ok = attack_weight + w < honest_weight;
                if ok {
                    attack_weight += w;
                }
                ok
            })
            .collect();
        let mut all = honest.clone();
        all.extend(attackers);
        let median = weighted_median(&mut to_prices(&all)).unwrap().0;
        let lo = honest.iter().map(|&(v, _)| v).min().unwrap();
        let hi = honest.iter().map(|&(v, _)| v).max().unwrap();
        prop_assert!(lo <= median && median <= hi, "{} outside {}..={}", median, lo, hi);
    }

    /// The same through whole rounds: staked operators, commit, reveal, finalise.
    #[test]
    fn a_minority_of_stake_cannot_move_the_round_price(
        honest in prop::collection::vec((1_000u64..2_000, 1_000u64..100_000), 1..8),
        attackers in prop::collection::vec((any::<u64>(), 1_000u64..100_000), 0..8),
    ) {
        let honest_stake: u64 = honest.iter().map(|&(_, s)| s).sum();
        let mut attack_stake = 0;
        let attackers: Vec<_> = attackers
            .into_iter()
            .filter(|&(_, s)| {
                let ok = attack_stake + s < honest_stake;
                if ok {
                    attack_stake += s;
                }
                ok
            })
            .collect();
        let everyone: Vec<(u8, u64, u64)> = honest
            .iter()
            .chain(&attackers)
            .enumerate()
            .map(|(i, &(v, s))| (i as u8 + 1, v, s))
            .collect();
        let mut c = Chain::new(params("BTC/USD"));
        for &(i, _, s) in &everyone {
            c.stake(i, s).unwrap();
        }
        c.end_round();
        for &(i, v, _) in &everyone {
            c.commit(i, v).unwrap();
        }
        c.reveal_phase();
        for &(i, v, _) in &everyone {
            c.reveal(i, v).unwrap();
        }
        let RoundOutcome::Price(band) = c.end_round().summary.outcome else {
            return Err(TestCaseError::fail("no price with everyone revealing"));
        };
        let lo = honest.iter().map(|&(v, _)| v).min().unwrap();
        let hi = honest.iter().map(|&(v, _)| v).max().unwrap();
        prop_assert!(lo <= band.median.0 && band.median.0 <= hi);
    }
}

// ---------------------------------------------------------------------------------------------
// TWAP.

/// Sum of the price in force over heights `from ..= to`, segment by segment, from the
/// (end height, price from then on) steps.
fn direct_sum(steps: &[(u64, u64)], from: u64, to: u64) -> Option<u128> {
    if steps.first().is_none_or(|&(h, _)| h > from) {
        return None;
    }
    let mut sum = 0u128;
    for (k, &(h, p)) in steps.iter().enumerate() {
        let next = steps.get(k + 1).map_or(u64::MAX, |&(n, _)| n);
        let lo = h.max(from);
        let hi = (next - 1).min(to);
        if lo <= hi {
            sum += u128::from(p) * u128::from(hi - lo + 1);
        }
    }
    Some(sum)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Through whole rounds: prices from some rounds, none from others (no quorum).
    #[test]
    fn twap_equals_the_direct_time_weighted_average(
        commit_blocks in 1u64..4,
        reveal_blocks in 1u64..4,
        rounds in prop::collection::vec(prop::option::weighted(0.7, 0u64..1_000_000), 1..30),
        queries in prop::collection::vec((0u64..8, 1u64..200), 1..20),
    ) {
        let mut p = params("BTC/USD");
        p.commit_window_blocks = commit_blocks;
        p.reveal_window_blocks = reveal_blocks;
        let length = commit_blocks + reveal_blocks;
        let mut c = Chain::new(p);
        c.stake(1, 5000).unwrap();
        c.end_round();
        // (height from which, price) for every change of the price in force.
        let mut steps: Vec<(u64, u64)> = Vec::new();
        for value in &rounds {
            if let Some(v) = value {
                c.commit(1, *v).unwrap();
                c.reveal_phase();
                c.reveal(1, *v).unwrap();
            }
            let s = c.end_round().summary;
            prop_assert_eq!(s.outcome == RoundOutcome::NoQuorum, value.is_none());
            if let Some(v) = value {
                steps.push((s.end_height.0, *v));
            }
        }
        let last_end = c.height.0 - 1;
        for (offset, window) in queries {
            // Any height from the last round's end up to the next round's end.
            let now = last_end + offset % length;
            let got = c.oracle.twap(&c.feed, Height(now), window);
            let from = (now + 1).checked_sub(window);
            match from.and_then(|f| direct_sum(&steps, f, now)) {
                Some(sum) => prop_assert_eq!(got, Ok(Price((sum / u128::from(window)) as u64))),
                None => prop_assert!(matches!(
                    got,
                    Err(QueryError::Twap { source: TwapError::BeforeHistory { .. } | TwapError::NoPrice, .. })
                ), "{:?}", got),
            }
        }
    }

    /// The accumulator alone, with full-range prices and more observations than are kept.
    #[test]
    fn twap_history_matches_the_direct_average_past_its_bound(
        spacing in 1u64..1_000,
        first in 0u64..1_000_000,
        prices in prop::collection::vec(any::<u64>(), 1..(TWAP_OBSERVATIONS_MAX + 100)),
        queries in prop::collection::vec((any::<u64>(), any::<u64>()), 1..20),
    ) {
        let mut t = TwapHistory::new(spacing);
        let mut steps = Vec::new();
        for (k, &p) in prices.iter().enumerate() {
            let h = first + k as u64 * spacing;
            t.record(Height(h), Price(p));
            steps.push((h, p));
        }
        let kept = steps.len().min(TWAP_OBSERVATIONS_MAX);
        let steps = &steps[steps.len() - kept..];
        prop_assert_eq!(t.len(), kept);
        let latest = steps[kept - 1].0;
        let oldest = steps[0].0;
        for (a, b) in queries {
            let now = latest + a % (3 * spacing);
            let longest = now + 1 - oldest;
            let window = 1 + b % (longest + 2);
            let got = t.twap(Height(now), window);
            if window > longest {
                let is_before_history = matches!(got, Err(TwapError::BeforeHistory { .. }));
                prop_assert!(is_before_history);
            } else {
                let sum = direct_sum(steps, now + 1 - window, now).unwrap();
                prop_assert_eq!(got, Ok(Price((sum / u128::from(window)) as u64)));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reveals.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn bad_reveals_are_refused_with_their_reason_and_change_nothing(
        committed in prop::collection::vec((any::<u64>(), any::<[u8; 32]>()), 2..6),
        pick in any::<(usize, usize)>(),
        wrong in 1u64..u64::MAX,
        stranger_salt in any::<[u8; 32]>(),
    ) {
        let n = committed.len();
        let a = pick.0 % n;
        let v = (a + 1 + pick.1 % (n - 1)) % n;
        let id = |k: usize| op(k as u8 + 1);
        let stranger = op(n as u8 + 1);
        let mut c = Chain::new(params("BTC/USD"));
        for k in 0..=n {
            c.stake(k as u8 + 1, 5000).unwrap();
        }
        c.end_round();
        let round = c.round();
        let feed = c.feed.clone();
        for (k, &(value, salt)) in committed.iter().enumerate() {
            let h = commit_hash(&feed, round, Price(value), &Salt(salt), &id(k));
            c.oracle.commit(&feed, id(k), round, h, c.height).unwrap();
        }
        // A second commitment is refused, never replaces the first.
        let again = c.oracle.commit(&feed, id(a), round, CommitHash([0; 32]), c.height);
        prop_assert_eq!(again, Err(CommitError::DuplicateCommit { operator: id(a), round }));

        let reveal = |c: &mut Chain, who: OperatorId, value: u64, salt: [u8; 32]| {
            let before = c.oracle.clone();
            let r = c.oracle.reveal(&feed, who, round, Price(value), Salt(salt), c.height);
            if r.is_err() {
                assert_eq!(c.oracle, before, "a refused reveal changed the state");
            }
            r
        };
        let (a_value, a_salt) = committed[a];
        let (v_value, v_salt) = committed[v];

        // Early: still the commit phase.
        let early = reveal(&mut c, id(a), a_value, a_salt);
        prop_assert!(matches!(early, Err(RevealError::Early { .. })), "{:?}", early);
        c.reveal_phase();

        // Mismatch: a different value with its own salt.
        let wrong_value = a_value.wrapping_add(wrong);
        let mismatch = reveal(&mut c, id(a), wrong_value, a_salt);
        let committed_hash = commit_hash(&feed, round, Price(a_value), &Salt(a_salt), &id(a));
        let revealed_hash = commit_hash(&feed, round, Price(wrong_value), &Salt(a_salt), &id(a));
        prop_assert_eq!(mismatch, Err(RevealError::Mismatch {
            operator: id(a),
            round,
            committed: committed_hash,
            revealed: revealed_hash,
        }));
        // Another operator's commitment, by a committer and by a non-committer.
        for who in [id(a), stranger] {
            let r = reveal(&mut c, who, v_value, v_salt);
            prop_assert_eq!(r, Err(RevealError::AnotherOperatorsCommit { operator: who, owner: id(v), round }));
        }
        // No commitment at all.
        let none = reveal(&mut c, stranger, a_value, stranger_salt);
        prop_assert_eq!(none, Err(RevealError::NoCommit { operator: stranger, round }));
        // The right one, then a duplicate.
        reveal(&mut c, id(a), a_value, a_salt).unwrap();
        let dup = reveal(&mut c, id(a), a_value, a_salt);
        prop_assert_eq!(dup, Err(RevealError::DuplicateReveal { operator: id(a), round }));
        // Late: the round is over.
        let end = c.bounds().end;
        c.end_round();
        let late = reveal(&mut c, id(v), v_value, v_salt);
        prop_assert_eq!(late, Err(RevealError::Late { round, height: Height(end.0 + 1), reveal_until: end }));
    }
}

// ---------------------------------------------------------------------------------------------
// Penalties, rewards, unbonding and conservation.

/// Checks one end of block against the documented rules, from the state before and after.
fn check_end_block(
    pre: &FeedState,
    post: &FeedState,
    out: &EndBlock,
    height: Height,
) -> Result<(), TestCaseError> {
    let p = pre.params();
    let mut settled: BTreeMap<OperatorId, Settlement> = BTreeMap::new();
    for report in &out.rounds {
        let s = report.summary;
        // Price or not, by the quorum rule over the reported weights.
        let revealed: Vec<(u64, u64)> = report
            .settlements
            .iter()
            .filter_map(|x| match x.verdict {
                Verdict::InBand { value }
                | Verdict::OutOfBand { value }
                | Verdict::RevealedWithoutQuorum { value } => Some((value.0, x.weight.0)),
                Verdict::NotRevealed => None,
            })
            .collect();
        let weight: u128 = revealed.iter().map(|&(_, w)| u128::from(w)).sum();
        prop_assert_eq!(u128::from(s.revealed_stake.0), weight);
        let quorum = weight > 0
            && weight >= u128::from(p.quorum_stake_min.0)
            && weight * 10_000 >= u128::from(s.eligible_stake.0) * u128::from(p.quorum_bps);
        let median = percentile_reference(&revealed, 5000);
        match s.outcome {
            RoundOutcome::Price(band) => {
                prop_assert!(quorum);
                prop_assert_eq!(Some(band.median.0), median);
            }
            RoundOutcome::NoQuorum => prop_assert!(!quorum),
        }
        // Verdicts follow the band; rewards are largest-remainder shares of the pool.
        let mut recipients = Vec::new();
        for x in &report.settlements {
            match (x.verdict, s.outcome) {
                (Verdict::InBand { value }, RoundOutcome::Price(b)) => {
                    prop_assert!(in_band(value, b.median, p.reward_band_bps));
                    recipients.push((x.operator, x.weight.0, x.reward.0));
                }
                (Verdict::OutOfBand { value }, RoundOutcome::Price(b)) => {
                    prop_assert!(!in_band(value, b.median, p.reward_band_bps));
                    prop_assert_eq!(x.reward, Amount(0));
                }
                (Verdict::RevealedWithoutQuorum { .. }, RoundOutcome::NoQuorum)
                | (Verdict::NotRevealed, _) => prop_assert_eq!(x.reward, Amount(0)),
                other => return Err(TestCaseError::fail(format!("{other:?}"))),
            }
            settled.insert(x.operator, *x);
        }
        let paid: u128 = recipients.iter().map(|&(_, _, r)| u128::from(r)).sum();
        prop_assert_eq!(u128::from(s.rewards_paid.0), paid);
        check_largest_remainder(p.round_reward.0, &recipients)?;
        let penalties: u64 = report.settlements.iter().map(|x| x.penalty.0).sum();
        prop_assert_eq!(s.penalties.0, penalties);
    }
    let released: BTreeMap<OperatorId, u64> = out
        .releases
        .iter()
        .map(|r| (r.operator, r.amount.0))
        .collect();
    for (id, before) in pre.operators() {
        let bps = match settled.get(id).map(|s| s.verdict) {
            Some(Verdict::NotRevealed) => p.reveal_miss_penalty_bps,
            Some(Verdict::OutOfBand { .. }) => p.out_of_band_penalty_bps,
            _ => 0,
        };
        // The documented penalty: a floor share of the bonded stake and of each entry.
        let from_bonded = share(before.bonded, bps).0;
        let from_entries: u64 = before
            .unbonding
            .iter()
            .map(|u| share(u.amount, bps).0)
            .sum();
        let penalty = from_bonded + from_entries;
        prop_assert_eq!(settled.get(id).map_or(0, |s| s.penalty.0), penalty);
        // Released: the entries due now, less their penalty.
        let due: u64 = before
            .unbonding
            .iter()
            .filter(|u| u.release_height <= height)
            .map(|u| u.amount.0 - share(u.amount, bps).0)
            .sum();
        prop_assert_eq!(released.get(id).copied().unwrap_or(0), due);
        let after = post.operator(id);
        let at_risk_after = after.map_or(0, |o| o.at_risk());
        prop_assert_eq!(
            at_risk_after,
            before.at_risk() - u128::from(penalty) - u128::from(due)
        );
        prop_assert_eq!(
            after.map_or(0, |o| o.bonded.0),
            before.bonded.0 - from_bonded
        );
        if after.is_none() {
            prop_assert!(before.bonded.0 == from_bonded);
        }
    }
    Ok(())
}

/// The documented reward rule, checked on its result: `(operator, weight, share)` are
/// floor or floor + 1 of the pro-rata share, sum to the pool (nothing when no weight), and
/// the extra tokens went to the largest remainders, ties to the smaller id.
fn check_largest_remainder(
    pool: u64,
    recipients: &[(OperatorId, u64, u64)],
) -> Result<(), TestCaseError> {
    let pool = u128::from(pool);
    let total: u128 = recipients.iter().map(|&(_, w, _)| u128::from(w)).sum();
    let paid: u128 = recipients.iter().map(|&(_, _, r)| u128::from(r)).sum();
    if total == 0 {
        prop_assert_eq!(paid, 0);
        return Ok(());
    }
    prop_assert_eq!(paid, pool);
    let floor = |w: u64| pool * u128::from(w) / total;
    let rem = |w: u64| pool * u128::from(w) % total;
    for &(id, w, r) in recipients {
        prop_assert!(u128::from(r) == floor(w) || u128::from(r) == floor(w) + 1);
        if u128::from(r) == floor(w) + 1 {
            for &(id2, w2, r2) in recipients {
                if u128::from(r2) == floor(w2) {
                    prop_assert!(rem(w) > rem(w2) || (rem(w) == rem(w2) && id < id2));
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn reward_shares_follow_the_largest_remainder_rule(
        pool in prop_oneof![0u64..100, any::<u64>()],
        // Small weights, so equal remainders are common.
        weights in prop::collection::vec(prop_oneof![0u64..4, any::<u64>()], 0..12),
        order in any::<u64>(),
    ) {
        let mut recipients: Vec<(OperatorId, u64)> =
            weights.iter().enumerate().map(|(k, &w)| (op(k as u8), w)).collect();
        // The input order must not matter.
        let len = recipients.len().max(1);
        recipients.rotate_left((order as usize) % len);
        let shares = distribute(Amount(pool), &recipients);
        let got: Vec<_> = recipients.iter().zip(&shares).map(|(&(id, w), s)| (id, w, s.0)).collect();
        check_largest_remainder(pool, &got)?;
    }
}

/// What one operator does in one round.
#[derive(Clone, Copy, Debug)]
enum Act {
    Absent,
    Honest(u64),
    Liar,
    Silent,
    HonestThenUnstakeHalf(u64),
    SilentAndUnstakeAll,
    StakeMore(u64),
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        Just(Act::Absent),
        (0u64..50).prop_map(Act::Honest),
        (0u64..50).prop_map(Act::Honest),
        Just(Act::Liar),
        Just(Act::Silent),
        (0u64..50).prop_map(Act::HonestThenUnstakeHalf),
        Just(Act::SilentAndUnstakeAll),
        (1u64..10_000).prop_map(Act::StakeMore),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn penalties_rewards_and_unbonding_follow_the_rules_and_conserve_stake(
        stakes in prop::collection::vec(1_000u64..1_000_000, 1..8),
        rounds in prop::collection::vec(prop::collection::vec(act(), 8), 1..6),
        miss_bps in 0u16..=10_000,
        out_of_band_bps in 0u16..=10_000,
        band_bps in 0u16..300,
        reward in 0u64..1_000_000,
        quorum_bps in 1u16..=10_000,
    ) {
        let mut p = params("BTC/USD");
        p.reveal_miss_penalty_bps = miss_bps;
        p.out_of_band_penalty_bps = out_of_band_bps;
        p.reward_band_bps = band_bps;
        p.round_reward = Amount(reward);
        p.quorum_bps = quorum_bps;
        let mut c = Chain::new(p);
        let mut staked: u128 = 0;
        let mut released: u128 = 0;
        let mut penalised: u128 = 0;
        for (k, &s) in stakes.iter().enumerate() {
            c.stake(k as u8 + 1, s).unwrap();
            staked += u128::from(s);
        }
        let step = |c: &mut Chain| -> Result<(u128, u128), TestCaseError> {
            let pre = c.state().clone();
            let height = c.height;
            let out = c.finish_block();
            check_end_block(&pre, c.state(), &out, height)?;
            let r: u128 = out.releases.iter().map(|r| u128::from(r.amount.0)).sum();
            let pen: u128 = out
                .rounds
                .iter()
                .map(|x| u128::from(x.summary.penalties.0))
                .sum();
            Ok((r, pen))
        };
        // Round 0 (nobody eligible), then the generated rounds, then long enough for every
        // unbonding entry to be released.
        let mut plan = vec![vec![Act::Absent; 8]];
        plan.extend(rounds);
        for acts in plan {
            let round_end = c.bounds().end;
            for (k, &a) in acts.iter().take(stakes.len()).enumerate() {
                let i = k as u8 + 1;
                let value = match a {
                    Act::Honest(j) | Act::HonestThenUnstakeHalf(j) => 1_000_000 + j,
                    _ => 9_000_000,
                };
                match a {
                    Act::Absent => {}
                    Act::StakeMore(x) => {
                        if c.stake(i, x).is_ok() {
                            staked += u128::from(x);
                        }
                    }
                    _ => {
                        let eligible = c.state().open_round().eligible.contains_key(&op(i));
                        prop_assert_eq!(c.commit(i, value).is_ok(), eligible);
                    }
                }
                let bonded = c.bonded(i);
                match a {
                    Act::HonestThenUnstakeHalf(_) => {
                        let _ = c.unstake(i, bonded / 2);
                    }
                    Act::SilentAndUnstakeAll if bonded > 0 => {
                        let u = c.unstake(i, bonded).unwrap();
                        prop_assert_eq!(u.release_height, Height(c.height.0 + UNBONDING_BLOCKS));
                    }
                    _ => {}
                }
            }
            while c.height < c.bounds().reveal_start {
                let (r, pen) = step(&mut c)?;
                released += r;
                penalised += pen;
            }
            for (k, &a) in acts.iter().take(stakes.len()).enumerate() {
                let i = k as u8 + 1;
                let value = match a {
                    Act::Honest(j) | Act::HonestThenUnstakeHalf(j) => 1_000_000 + j,
                    Act::Liar => 9_000_000,
                    _ => continue,
                };
                let committed = c.state().open_round().commits.contains_key(&op(i));
                prop_assert_eq!(c.reveal(i, value).is_ok(), committed);
            }
            while c.height <= round_end {
                let (r, pen) = step(&mut c)?;
                released += r;
                penalised += pen;
            }
        }
        for _ in 0..=UNBONDING_BLOCKS {
            let (r, pen) = step(&mut c)?;
            released += r;
            penalised += pen;
        }
        // Conservation: everything staked is still staked, released, or taken as penalty.
        prop_assert_eq!(staked, c.state().stake_total() + released + penalised);
        prop_assert!(c.state().operators().values().all(|o| o.unbonding.is_empty()));
    }
}
