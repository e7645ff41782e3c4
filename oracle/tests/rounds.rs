//! Whole rounds through the public API: the scenarios an operator meets.

mod common;

use cairn_oracle::*;
use common::*;

/// Five operators with 10_000 each, in round 1 (round 0 has nobody eligible).
fn five_operators() -> Chain {
    let mut c = Chain::new(params("BTC/USD"));
    for i in 1..=5 {
        c.stake(i, 10_000).unwrap();
    }
    let r0 = c.end_round();
    assert_eq!(r0.summary.outcome, RoundOutcome::NoQuorum);
    assert_eq!(r0.summary.eligible_stake, Amount(0));
    assert_eq!((c.round(), c.height), (RoundNumber(1), Height(6)));
    c
}

#[test]
fn honest_median_wins_the_liar_and_the_silent_are_penalised() {
    let mut c = five_operators();
    let values = [
        (1, 100_000),
        (2, 100_500),
        (3, 99_800),
        (4, 200_000),
        (5, 100_000),
    ];
    for (i, v) in values {
        c.commit(i, v).unwrap();
    }
    c.reveal_phase();
    for (i, v) in &values[..4] {
        c.reveal(*i, *v).unwrap();
    }
    let report = c.end_round();
    let s = report.summary;
    assert_eq!(
        s.outcome,
        RoundOutcome::Price(WeightedBand {
            low: Price(99_800),
            median: Price(100_000),
            high: Price(100_500),
        })
    );
    assert_eq!((s.round, s.end_height), (RoundNumber(1), Height(10)));
    assert_eq!(
        (s.eligible_stake, s.revealed_stake),
        (Amount(50_000), Amount(40_000))
    );
    assert_eq!((s.commits, s.reveals), (5, 4));
    // 1000 / 3 = 333 each; the one left over goes to the smallest id (equal remainders).
    let got: Vec<_> = report
        .settlements
        .iter()
        .map(|s| (s.operator, s.verdict, s.reward.0, s.penalty.0))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                op(1),
                Verdict::InBand {
                    value: Price(100_000)
                },
                334,
                0
            ),
            (
                op(2),
                Verdict::InBand {
                    value: Price(100_500)
                },
                333,
                0
            ),
            (
                op(3),
                Verdict::InBand {
                    value: Price(99_800)
                },
                333,
                0
            ),
            // 2% of 10_000.
            (
                op(4),
                Verdict::OutOfBand {
                    value: Price(200_000)
                },
                0,
                200
            ),
            // 1% of 10_000.
            (op(5), Verdict::NotRevealed, 0, 100),
        ]
    );
    assert_eq!((s.rewards_paid, s.penalties), (Amount(1000), Amount(300)));
    assert_eq!((c.bonded(4), c.bonded(5)), (9_800, 9_900));
    let liar = c.oracle.operator_status(&c.feed, &op(4)).unwrap().record;
    let silent = c.oracle.operator_status(&c.feed, &op(5)).unwrap().record;
    let honest = c.oracle.operator_status(&c.feed, &op(1)).unwrap().record;
    assert_eq!((liar.out_of_band, liar.penalties_total), (1, Amount(200)));
    assert_eq!((silent.misses, silent.penalties_total), (1, Amount(100)));
    assert_eq!((honest.in_band, honest.rewards_total), (1, Amount(334)));
    assert_eq!((honest.commits, honest.reveals, silent.reveals), (1, 1, 0));

    let view = c.oracle.price(&c.feed, Height(12)).unwrap();
    assert_eq!(view.last.unwrap().band.median, Price(100_000));
    assert_eq!(view.last.unwrap().round, RoundNumber(1));
    assert_eq!((view.age_blocks, view.age_rounds), (Some(2), Some(0)));
    assert_eq!(view.current_round, RoundNumber(2));
}

#[test]
fn without_quorum_the_price_is_kept_and_ages_but_misses_are_still_penalised() {
    let mut c = five_operators();
    for i in 1..=5 {
        c.commit(i, 100_000).unwrap();
    }
    c.reveal_phase();
    for i in 1..=5 {
        c.reveal(i, 100_000).unwrap();
    }
    c.end_round();
    // Round 2: 10_000 of 50_000 reveals, short of the 50% quorum.
    c.commit(1, 123_456).unwrap();
    c.commit(2, 100_000).unwrap();
    c.reveal_phase();
    c.reveal(1, 123_456).unwrap();
    let report = c.end_round();
    assert_eq!(report.summary.outcome, RoundOutcome::NoQuorum);
    assert_eq!(report.summary.price_in_force, Some(Price(100_000)));
    assert_eq!(report.summary.rewards_paid, Amount(0));
    assert_eq!(
        report
            .settlements
            .iter()
            .map(|s| (s.verdict, s.reward.0, s.penalty.0))
            .collect::<Vec<_>>(),
        vec![
            (
                Verdict::RevealedWithoutQuorum {
                    value: Price(123_456)
                },
                0,
                0
            ),
            (Verdict::NotRevealed, 0, 100),
        ]
    );
    let view = c.oracle.price(&c.feed, Height(15)).unwrap();
    assert_eq!(view.last.unwrap().band.median, Price(100_000));
    assert_eq!((view.age_blocks, view.age_rounds), (Some(5), Some(1)));
    // Rounds without a commitment at all: no penalties, the age keeps growing.
    c.end_round();
    let view = c.oracle.price(&c.feed, Height(20)).unwrap();
    assert_eq!((view.age_blocks, view.age_rounds), (Some(10), Some(2)));
    let history = c.oracle.history(&c.feed, 10).unwrap();
    assert_eq!(
        history.iter().map(|h| h.round.0).collect::<Vec<_>>(),
        [3, 2, 1, 0]
    );
}

#[test]
fn quorum_floor_in_tokens_also_applies() {
    let mut p = params("BTC/USD");
    p.quorum_stake_min = Amount(20_001);
    let mut c = Chain::new(p);
    for i in 1..=2 {
        c.stake(i, 10_000).unwrap();
    }
    c.end_round();
    for i in 1..=2 {
        c.commit(i, 5).unwrap();
    }
    c.reveal_phase();
    for i in 1..=2 {
        c.reveal(i, 5).unwrap();
    }
    // 100% of eligible stake, but 20_000 < 20_001.
    assert_eq!(c.end_round().summary.outcome, RoundOutcome::NoQuorum);
}

#[test]
fn twap_follows_the_price_in_force() {
    let mut c = five_operators();
    let everyone = |c: &mut Chain, v: u64| {
        for i in 1..=5 {
            c.commit(i, v).unwrap();
        }
        c.reveal_phase();
        for i in 1..=5 {
            c.reveal(i, v).unwrap();
        }
        c.end_round()
    };
    everyone(&mut c, 100_000); // ends at 10
    assert!(matches!(
        c.oracle.twap(&c.feed, Height(9), 1),
        Err(QueryError::Twap {
            source: TwapError::NowBeforeLatest { .. },
            ..
        })
    ));
    c.end_round(); // round 2, no commitments: no quorum, ends at 15
    everyone(&mut c, 200_000); // ends at 20
    let twap = |w| c.oracle.twap(&c.feed, Height(24), w);
    // Heights 15..=24: five at 100_000, five at 200_000.
    assert_eq!(twap(10), Ok(Price(150_000)));
    assert_eq!(twap(15), Ok(Price(2_000_000 / 15)));
    assert_eq!(twap(5), Ok(Price(200_000)));
    assert_eq!(
        twap(16),
        Err(QueryError::Twap {
            feed: c.feed.clone(),
            source: TwapError::BeforeHistory {
                window_blocks: 16,
                now: Height(24),
                oldest: Height(10),
                window_blocks_max: 15
            }
        })
    );
}

#[test]
fn unstaking_does_not_dodge_a_penalty_and_releases_after_the_period() {
    let mut c = five_operators();
    c.commit(3, 100_000).unwrap();
    for i in [1, 2, 4] {
        c.commit(i, 100_000).unwrap();
    }
    // Operator 3 unstakes everything right after committing, at height 6.
    assert_eq!(
        c.unstake(3, 10_000).unwrap(),
        Unbonding {
            amount: Amount(10_000),
            release_height: Height(6 + UNBONDING_BLOCKS)
        }
    );
    c.reveal_phase();
    for i in [1, 2, 4] {
        c.reveal(i, 100_000).unwrap();
    }
    let report = c.end_round();
    let s3 = report
        .settlements
        .iter()
        .find(|s| s.operator == op(3))
        .unwrap();
    // Not revealed: 1% of its unbonding 10_000; its weight would have been 0.
    assert_eq!(
        (s3.verdict, s3.penalty, s3.weight),
        (Verdict::NotRevealed, Amount(100), Amount(0))
    );
    let status = c.oracle.operator_status(&c.feed, &op(3)).unwrap();
    assert_eq!(
        (status.bonded, status.unbonding_total),
        (Amount(0), Amount(9_900))
    );
    assert_eq!(status.eligible_stake, None);
    // Released at the end of block 26, not before; then operator 3 is gone.
    c.go_to(Height(26));
    assert!(c.ended.iter().all(|(_, e)| e.releases.is_empty()));
    let out = c.finish_block();
    assert_eq!(
        out.releases,
        vec![Release {
            feed: c.feed.clone(),
            operator: op(3),
            amount: Amount(9_900)
        }]
    );
    assert!(c.state().operator(&op(3)).is_none());
    assert!(matches!(
        c.oracle.operator_status(&c.feed, &op(3)),
        Err(QueryError::NotOperator { .. })
    ));
}

#[test]
fn staking_rules() {
    let mut c = Chain::new(params("BTC/USD"));
    assert_eq!(c.stake(1, 0), Err(StakeError::ZeroAmount));
    assert_eq!(
        c.stake(1, 999),
        Err(StakeError::BelowMinimum {
            bonded_after: Amount(999),
            min: Amount(1000)
        })
    );
    assert_eq!(c.stake(1, 1000), Ok(Amount(1000)));
    assert_eq!(c.stake(1, 1), Ok(Amount(1001)));
    assert_eq!(
        c.unstake(1, 2000),
        Err(StakeError::InsufficientBonded {
            bonded: Amount(1001),
            requested: Amount(2000)
        })
    );
    assert_eq!(
        c.unstake(1, 2),
        Err(StakeError::WouldLeaveDust {
            remaining: Amount(999),
            min: Amount(1000)
        })
    );
    assert_eq!(
        c.unstake(2, 1),
        Err(StakeError::NotOperator { operator: op(2) })
    );
    assert_eq!(
        c.oracle
            .stake(&FeedId::new("X/Y").unwrap(), op(1), Amount(5000), c.height),
        Err(StakeError::UnknownFeed {
            feed: FeedId::new("X/Y").unwrap()
        })
    );
    // Unstakes in one block merge; the queue is bounded.
    c.stake(1, 100_000).unwrap();
    c.unstake(1, 1).unwrap();
    assert_eq!(c.unstake(1, 1).unwrap().amount, Amount(2));
    for _ in 1..UNBONDING_ENTRIES_MAX {
        c.finish_block();
        c.unstake(1, 1).unwrap();
    }
    c.finish_block();
    let before = c.oracle.clone();
    assert_eq!(
        c.unstake(1, 1),
        Err(StakeError::TooManyUnbonding {
            max: UNBONDING_ENTRIES_MAX
        })
    );
    assert_eq!(c.oracle, before);

    // The feed's total stake stays within a u64.
    let mut c = Chain::new(params("BTC/USD"));
    c.stake(1, 1000).unwrap();
    c.stake(2, u64::MAX - 2000).unwrap();
    assert_eq!(c.stake(3, 1000), Ok(Amount(1000)));
    assert_eq!(c.stake(4, 1000), Err(StakeError::StakeOverflow));
    assert_eq!(c.stake(2, u64::MAX), Err(StakeError::StakeOverflow));
}

#[test]
fn stake_counts_from_the_next_round() {
    let mut c = Chain::new(params("BTC/USD"));
    c.stake(1, 5000).unwrap();
    assert_eq!(
        c.commit(1, 7),
        Err(CommitError::NotEligible {
            operator: op(1),
            round: RoundNumber(0)
        })
    );
    c.end_round();
    c.commit(1, 7).unwrap();
    // Joins during round 1: may commit only from round 2, and does not change round 1's quorum.
    c.stake(2, 1_000_000).unwrap();
    assert_eq!(
        c.commit(2, 7),
        Err(CommitError::NotEligible {
            operator: op(2),
            round: RoundNumber(1)
        })
    );
    c.reveal_phase();
    c.reveal(1, 7).unwrap();
    let r = c.end_round();
    assert_eq!(r.summary.eligible_stake, Amount(5000));
    assert!(matches!(r.summary.outcome, RoundOutcome::Price(_)));
    c.commit(2, 7).unwrap();
    assert_eq!(c.state().open_round().eligible_total, Amount(1_005_000));
}

#[test]
fn more_stake_during_the_round_does_not_add_weight_less_stake_removes_it() {
    let mut c = Chain::new(params("BTC/USD"));
    c.stake(1, 3000).unwrap();
    c.stake(2, 2000).unwrap();
    c.stake(3, 2000).unwrap();
    c.end_round();
    for (i, v) in [(1, 10), (2, 20), (3, 30)] {
        c.commit(i, v).unwrap();
    }
    // Operator 3 adds a lot (no effect this round), operator 1 halves its stake.
    c.stake(3, 1_000_000).unwrap();
    c.unstake(1, 1500).unwrap();
    c.reveal_phase();
    for (i, v) in [(1, 10), (2, 20), (3, 30)] {
        c.reveal(i, v).unwrap();
    }
    let r = c.end_round();
    let weights: Vec<_> = r.settlements.iter().map(|s| s.weight.0).collect();
    assert_eq!(weights, [1500, 2000, 2000]);
    // Weights 1500 @10, 2000 @20, 2000 @30: half of 5500 is reached at 20.
    match r.summary.outcome {
        RoundOutcome::Price(b) => assert_eq!(b.median, Price(20)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rejections_name_the_reason_and_change_nothing() {
    let mut c = five_operators();
    let round = c.round();
    c.commit(1, 500).unwrap();
    c.commit(2, 600).unwrap();
    let check = |c: &mut Chain, f: &dyn Fn(&mut Chain) -> String, want: &str| {
        let before = c.oracle.clone();
        let got = f(c);
        assert!(got.contains(want), "{got:?} does not name {want}");
        assert_eq!(c.oracle, before, "a rejection changed the state");
    };
    check(
        &mut c,
        &|c| format!("{:?}", c.commit(1, 501)),
        "DuplicateCommit",
    );
    check(&mut c, &|c| format!("{:?}", c.reveal(1, 500)), "Early");
    // Round 2's commit window is in the future.
    check(
        &mut c,
        &|c| {
            let h = c.hash(1, RoundNumber(2), 5);
            format!(
                "{:?}",
                c.oracle.commit(&c.feed, op(1), RoundNumber(2), h, c.height)
            )
        },
        "Early",
    );
    c.reveal_phase();
    check(&mut c, &|c| format!("{:?}", c.commit(3, 1)), "Late");
    check(&mut c, &|c| format!("{:?}", c.reveal(1, 501)), "Mismatch");
    check(&mut c, &|c| format!("{:?}", c.reveal(3, 500)), "NoCommit");
    // Operator 3 replays operator 2's value and salt.
    check(
        &mut c,
        &|c| {
            format!(
                "{:?}",
                c.oracle
                    .reveal(&c.feed, op(3), round, Price(600), salt(2, round), c.height)
            )
        },
        "AnotherOperatorsCommit",
    );
    // Operator 1 too, although it has a commitment of its own.
    check(
        &mut c,
        &|c| {
            format!(
                "{:?}",
                c.oracle
                    .reveal(&c.feed, op(1), round, Price(600), salt(2, round), c.height)
            )
        },
        "AnotherOperatorsCommit",
    );
    c.reveal(1, 500).unwrap();
    check(
        &mut c,
        &|c| format!("{:?}", c.reveal(1, 500)),
        "DuplicateReveal",
    );
    c.end_round();
    check(
        &mut c,
        &|c| {
            format!(
                "{:?}",
                c.oracle
                    .reveal(&c.feed, op(2), round, Price(600), salt(2, round), c.height)
            )
        },
        "Late",
    );
    let err = c
        .oracle
        .reveal(&c.feed, op(2), round, Price(600), salt(2, round), c.height)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the reveal window of round 1 closed at height 10; this is height 11"
    );
}

#[test]
fn a_copied_commitment_cannot_be_opened_by_the_copier() {
    let mut c = five_operators();
    let round = c.round();
    c.commit(1, 777).unwrap();
    let copied = c.state().open_round().commits[&op(1)].hash;
    c.oracle
        .commit(&c.feed, op(2), round, copied, c.height)
        .unwrap();
    c.reveal_phase();
    c.reveal(1, 777).unwrap();
    // Operator 2 now knows the value and salt, but its address is in the hash.
    let err = c
        .oracle
        .reveal(&c.feed, op(2), round, Price(777), salt(1, round), c.height)
        .unwrap_err();
    assert!(matches!(err, RevealError::AnotherOperatorsCommit { owner, .. } if owner == op(1)));
    let r = c.end_round();
    assert_eq!(r.settlements[1].verdict, Verdict::NotRevealed);
}

#[test]
fn a_feed_starting_later_refuses_commitments_before_it_starts() {
    let mut oracle = Oracle::new(config()).unwrap();
    let feed = FeedId::new("ETH/USD").unwrap();
    oracle.add_feed(params("ETH/USD"), Height(100)).unwrap();
    let h = commit_hash(
        &feed,
        RoundNumber(0),
        Price(1),
        &salt(1, RoundNumber(0)),
        &op(1),
    );
    assert_eq!(
        oracle.commit(&feed, op(1), RoundNumber(0), h, Height(50)),
        Err(CommitError::Early {
            round: RoundNumber(0),
            height: Height(50),
            commit_from: Some(Height(100))
        })
    );
    for h in 1..104 {
        assert!(oracle.end_block(Height(h)).unwrap().rounds.is_empty());
    }
    assert_eq!(oracle.end_block(Height(104)).unwrap().rounds.len(), 1);
    assert_eq!(
        oracle.end_block(Height(104)),
        Err(EndBlockError::NotIncreasing {
            height: Height(104),
            last: Height(104)
        })
    );
}

#[test]
fn feeds_are_validated_and_bounded() {
    let mut oracle = Oracle::new(config()).unwrap();
    let mut p = params("BTC/USD");
    p.reveal_window_blocks = 0;
    match oracle.add_feed(p, Height(1)) {
        Err(AddFeedError::Param(e)) => assert_eq!(e.field, "reveal_window_blocks"),
        other => panic!("{other:?}"),
    }
    oracle.add_feed(params("BTC/USD"), Height(1)).unwrap();
    assert!(matches!(
        oracle.add_feed(params("BTC/USD"), Height(1)),
        Err(AddFeedError::Duplicate { .. })
    ));
    for i in 1..FEEDS_MAX {
        oracle
            .add_feed(params(&format!("F{i}/USD")), Height(1))
            .unwrap();
    }
    assert_eq!(
        oracle.add_feed(params("LAST/USD"), Height(1)),
        Err(AddFeedError::TooManyFeeds { max: FEEDS_MAX })
    );
    let feed = FeedId::new("BTC/USD").unwrap();
    for i in 0..OPERATORS_PER_FEED_MAX {
        let id = OperatorId([i as u8; 20]);
        oracle.stake(&feed, id, Amount(1000), Height(1)).unwrap();
    }
    assert_eq!(
        oracle.stake(&feed, OperatorId([0xff; 20]), Amount(1000), Height(1)),
        Err(StakeError::TooManyOperators {
            max: OPERATORS_PER_FEED_MAX
        })
    );
}

#[test]
fn state_round_trips_through_json_and_parts() {
    let mut c = five_operators();
    for i in 1..=4 {
        c.commit(i, 100 * u64::from(i)).unwrap();
    }
    c.unstake(2, 5000).unwrap();
    c.reveal_phase();
    c.reveal(1, 100).unwrap();
    c.end_round();
    c.commit(3, 1).unwrap();
    // The binary round trip is the ledger's (its one codec module stores this state).
    let json = serde_json::to_string(&c.oracle).unwrap();
    assert_eq!(serde_json::from_str::<Oracle>(&json).unwrap(), c.oracle);
    assert!(json.contains("\"BTC/USD\""));
    // Stored in parts and put back together.
    let (config, feeds, last) = c.oracle.clone().into_parts();
    let again = Oracle::from_parts(config.clone(), feeds.clone(), last).unwrap();
    assert_eq!(again, c.oracle);
    let twice = [feeds.clone(), feeds].concat();
    assert!(matches!(
        Oracle::from_parts(config, twice, last),
        Err(AddFeedError::Duplicate { .. })
    ));
}
