//! Round finalisation with 100 operators in each of 50 feeds (all ending in one block), and
//! TWAP queries over a full history.
//!
//! `CARGO_TARGET_DIR=/work/target-oracle cargo bench -p cairn-oracle --bench oracle`

use std::hint::black_box;

use cairn_oracle::*;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const FEEDS: usize = 50;
const OPERATORS: usize = 100;

fn config() -> OracleConfig {
    OracleConfig {
        unbonding_blocks: 100,
        min_operator_stake: Amount(1000),
    }
}

fn params(id: &str) -> FeedParams {
    FeedParams {
        id: FeedId::new(id).unwrap(),
        decimals: 6,
        commit_window_blocks: 5,
        reveal_window_blocks: 5,
        quorum_bps: 5000,
        quorum_stake_min: Amount(0),
        reward_band_bps: 100,
        reveal_miss_penalty_bps: 10,
        out_of_band_penalty_bps: 10,
        round_reward: Amount(1_000_000),
    }
}

fn operator(k: usize) -> OperatorId {
    let mut b = [0u8; 20];
    b[..8].copy_from_slice(&(k as u64).to_be_bytes());
    OperatorId(b)
}

fn salt(k: usize) -> Salt {
    let mut s = [7u8; 32];
    s[..8].copy_from_slice(&(k as u64).to_le_bytes());
    Salt(s)
}

/// 50 feeds × 100 operators with varied stakes; round 1 fully committed and revealed (80
/// honest, 10 liars, 10 silent per feed), right before its last block ends. Returns the
/// state and that height.
fn round_ready_to_end() -> (Oracle, Height) {
    let mut o = Oracle::new(config()).unwrap();
    let ids: Vec<FeedId> = (0..FEEDS)
        .map(|f| FeedId::new(&format!("F{f}/USD")).unwrap())
        .collect();
    for id in &ids {
        o.add_feed(params(id.as_str()), Height(1)).unwrap();
        for k in 0..OPERATORS {
            let stake = 1000 + (k as u64 * 7919) % 100_000;
            o.stake(id, operator(k), Amount(stake), Height(1)).unwrap();
        }
    }
    for h in 1..=10 {
        o.end_block(Height(h)).unwrap();
    }
    let value = |k: usize| match k % 10 {
        0 => Price(9_000_000),
        _ => Price(1_000_000 + (k as u64 * 31) % 5_000),
    };
    let round = RoundNumber(1);
    for id in &ids {
        for k in 0..OPERATORS {
            let h = commit_hash(id, round, value(k), &salt(k), &operator(k));
            o.commit(id, operator(k), round, h, Height(11)).unwrap();
        }
    }
    for h in 11..=15 {
        o.end_block(Height(h)).unwrap();
    }
    for id in &ids {
        for k in (0..OPERATORS).filter(|k| k % 10 != 1) {
            o.reveal(id, operator(k), round, value(k), salt(k), Height(16))
                .unwrap();
        }
    }
    for h in 16..=19 {
        o.end_block(Height(h)).unwrap();
    }
    (o, Height(20))
}

fn finalisation(c: &mut Criterion) {
    let (state, end) = round_ready_to_end();
    let check = state.clone().end_block(end).unwrap();
    assert_eq!(check.rounds.len(), FEEDS);
    assert!(
        check
            .rounds
            .iter()
            .all(|r| matches!(r.summary.outcome, RoundOutcome::Price(_)))
    );
    c.bench_function("end_block: finalise 50 feeds x 100 operators", |b| {
        b.iter_batched(
            || state.clone(),
            // The state is returned so that dropping it is not timed.
            |mut o| {
                let out = o.end_block(end).unwrap();
                (o, out)
            },
            BatchSize::LargeInput,
        )
    });
    c.bench_function("end_block: no round ends (50 feeds x 100 operators)", |b| {
        let (mut o, end) = round_ready_to_end();
        o.end_block(end).unwrap();
        let mut h = end.0;
        b.iter_batched(
            || {
                // Keep clear of the next round's end.
                h = if h >= end.0 + 8 { end.0 + 1 } else { h + 1 };
                (o.clone(), Height(h))
            },
            |(mut o, h)| {
                let out = o.end_block(h);
                (o, out)
            },
            BatchSize::LargeInput,
        )
    });
    c.bench_function(
        "reveal: verify against its commitment (100 committers)",
        |b| {
            b.iter_batched(
                || {
                    let (o, _) = round_ready_to_end();
                    o
                },
                |mut o| {
                    let id = FeedId::new("F0/USD").unwrap();
                    // Operator 1 of every ten is silent: its reveal is still possible.
                    let out = o.reveal(
                        &id,
                        operator(1),
                        RoundNumber(1),
                        Price(1_000_031),
                        salt(1),
                        Height(19),
                    );
                    (o, out)
                },
                BatchSize::PerIteration,
            )
        },
    );
}

fn twap(c: &mut Criterion) {
    let mut t = TwapHistory::new(10);
    for k in 0..(TWAP_OBSERVATIONS_MAX as u64 + 10) {
        t.record(Height(9 + 10 * k), Price(1_000_000 + (k * 7919) % 10_000));
    }
    let now = Height(t.latest().unwrap().height.0 + 3);
    let longest = now.0 + 1 - t.oldest().unwrap().height.0;
    c.bench_function("twap: window of 1 round", |b| {
        b.iter(|| black_box(t.twap(black_box(now), 10)))
    });
    c.bench_function("twap: whole kept history (1024 rounds)", |b| {
        b.iter(|| black_box(t.twap(black_box(now), black_box(longest))))
    });
    c.bench_function("commit_hash", |b| {
        let id = FeedId::new("BTC/USD").unwrap();
        b.iter(|| {
            black_box(commit_hash(
                &id,
                RoundNumber(7),
                black_box(Price(1)),
                &salt(1),
                &operator(1),
            ))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = finalisation, twap
}
criterion_main!(benches);
