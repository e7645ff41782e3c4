//! The simulator finds what it should, and only that: honest runs pass under every fault,
//! a disabled safety rule is caught with a reproduction line, and a seed is a trace.

use super::*;

fn config(seed: u64, validators: usize, faults: &str) -> SimConfig {
    SimConfig::new(seed, validators, FaultSet::parse(faults).unwrap())
}

fn describe(r: &SimReport) -> String {
    format!(
        "{}\n  violations: {:?}\n  liveness: {:?}\n  height {} round {} events {} byz {:?}",
        r.repro,
        r.safety_violations,
        r.liveness_failure,
        r.committed_height,
        r.max_round,
        r.events,
        r.byzantine
    )
}

/// `r`, the failing run of `c`, reproduces from its line (which ends in `flag`), and `fixed`,
/// the same seed with the rule back, passes; returns the fixed run.
fn assert_reproduces(c: &SimConfig, r: &SimReport, flag: &str, fixed: SimConfig) -> SimReport {
    // What `cairn sim hotstuff` prints for a failing seed.
    println!("reproduce with: {}", r.repro);
    assert_eq!(
        r.repro,
        format!(
            "cairn sim hotstuff --seed {} --validators {} --faults {} {flag}",
            c.seed, c.validators, c.faults
        )
    );
    let again = run(c).unwrap();
    assert_eq!(again.safety_violations, r.safety_violations);
    assert_eq!(again.liveness_failure, r.liveness_failure);
    assert_eq!(again.trace_hash, r.trace_hash);
    let fixed = run(&fixed).unwrap();
    assert!(fixed.passed(), "{}", describe(&fixed));
    fixed
}

fn assert_passes(seeds: std::ops::Range<u64>, validators: usize, faults: &str) {
    for seed in seeds {
        let r = run(&config(seed, validators, faults)).unwrap();
        assert!(r.passed(), "{}", describe(&r));
        assert!(r.committed_height.0 >= LIVENESS_COMMITS, "{}", describe(&r));
    }
}

#[test]
fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
    let a = run(&config(42, 4, "all")).unwrap();
    let b = run(&config(42, 4, "all")).unwrap();
    let c = run(&config(43, 4, "all")).unwrap();
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(
        (a.events, a.committed_height),
        (b.events, b.committed_height)
    );
    assert_ne!(a.trace_hash, c.trace_hash);
}

#[test]
fn honest_majorities_stay_safe_and_live_under_all_faults_with_4_validators() {
    assert_passes(0..40, 4, "all");
}

#[test]
fn honest_majorities_stay_safe_and_live_under_all_faults_with_7_and_10_validators() {
    assert_passes(100..115, 7, "all");
    assert_passes(200..210, 10, "all");
}

#[test]
fn each_fault_alone_is_survived() {
    for (i, fault) in ALL_FAULTS.iter().enumerate() {
        let start = 1000 + 10 * i as u64;
        assert_passes(start..start + 6, 4, fault.name());
    }
    assert_passes(0..3, 4, "none");
}

#[test]
fn disabling_the_one_vote_per_round_rule_is_caught_and_reproducible() {
    let mut found = None;
    for seed in 0..200 {
        let mut c = config(seed, 4, "all");
        c.unsafe_skip_voted_round_check = true;
        let r = run(&c).unwrap();
        if !r.safety_violations.is_empty() {
            found = Some((c, r));
            break;
        }
    }
    let (c, r) = found.expect("200 seeds without the rule and no violation found");
    assert_eq!(c.faults.to_string(), "all");
    assert!(
        r.safety_violations[0].contains("signed votes for two blocks")
            || r.safety_violations[0].contains("committed different blocks"),
        "{}",
        describe(&r)
    );
    // The reproduction reproduces, and with the rule in place the same seed is clean.
    let fixed = SimConfig {
        unsafe_skip_voted_round_check: false,
        ..c.clone()
    };
    assert_reproduces(&c, &r, "--unsafe-skip-voted-round-check", fixed);
}

#[test]
fn a_crashed_leader_costs_a_bounded_number_of_rounds() {
    for seed in 0..6 {
        let mut c = config(seed, 4, "none");
        c.scenario = Scenario::LeaderCrash;
        let r = run(&c).unwrap();
        assert!(r.passed(), "{}", describe(&r));
        let rounds = r.recovery_rounds.expect("recovered");
        assert!(
            (1..=8).contains(&rounds),
            "{rounds} rounds: {}",
            describe(&r)
        );
        assert!(r.recovery_ms.is_some());
    }
}

#[test]
fn real_ed25519_signatures_give_the_same_verdicts() {
    let mut c = config(5, 4, "all");
    c.crypto = SimCrypto::Ed25519;
    let r = run(&c).unwrap();
    assert!(r.passed(), "{}", describe(&r));
    assert!(r.repro.ends_with("--ed25519"));
}

#[test]
fn batches_report_in_seed_order_and_count_failing_seeds() {
    let mut c = config(0, 4, "byz");
    c.unsafe_skip_voted_round_check = true;
    let mut seen = Vec::new();
    let mut failing = 0;
    let summary = run_many(&c, 40, 3, |r| {
        seen.push(r.seed);
        failing += u64::from(!r.safety_violations.is_empty());
    })
    .unwrap();
    assert_eq!(seen, (0..40).collect::<Vec<_>>());
    assert_eq!(summary.seeds, 40);
    assert_eq!(summary.safety_violations, failing);
    assert!(failing > 0);
    // The same batch on one thread gives the same totals.
    let single = run_many(&c, 40, 1, |_| {}).unwrap();
    assert_eq!(
        (single.safety_violations, single.events),
        (summary.safety_violations, summary.events)
    );
}

#[test]
fn out_of_range_validator_counts_are_refused() {
    assert_eq!(
        run(&config(1, 0, "none")).unwrap_err(),
        SimError::Validators(0)
    );
    assert!(run_many(&config(1, SIM_VALIDATORS_MAX + 1, "none"), 1, 1, |_| {}).is_err());
}

#[test]
fn accepting_any_sync_answer_is_caught_and_reproducible() {
    let mut found = None;
    for seed in 0..400 {
        let mut c = config(seed, 4, "byz");
        c.unsafe_accept_any_sync = true;
        let r = run(&c).unwrap();
        if r.liveness_failure.is_some() {
            found = Some((c, r));
            break;
        }
    }
    let (c, r) = found.expect("400 seeds with the old sync check and no halt found");
    assert_eq!(c.faults.to_string(), "byz");
    assert!(
        r.byzantine.iter().any(|(_, b)| *b == Behaviour::SyncFlood),
        "{}",
        describe(&r)
    );
    // The same seed with today's checks keeps committing.
    let fixed = SimConfig {
        unsafe_accept_any_sync: false,
        ..c.clone()
    };
    let fixed = assert_reproduces(&c, &r, "--unsafe-accept-any-sync", fixed);
    assert!(
        fixed.drops.contains_key("unsolicited_sync"),
        "{}",
        describe(&fixed)
    );
}

#[test]
fn invalid_proposals_get_no_honest_vote_and_never_commit() {
    let mut seen = 0;
    for seed in 4000..4200 {
        let r = run(&config(seed, 4, "byz")).unwrap();
        if !r
            .byzantine
            .iter()
            .any(|(_, b)| *b == Behaviour::InvalidBlocks)
        {
            continue;
        }
        // The checker fails a run in which an honest node votes for or commits one.
        assert!(r.passed(), "{}", describe(&r));
        seen += u64::from(r.drops.contains_key("invalid_block"));
    }
    assert!(seen >= 3, "only {seen} runs refused an invalid block");
}

#[test]
fn a_stale_restart_without_the_guard_double_signs_and_the_checker_catches_it() {
    // cairn sim hotstuff --seed 4 --validators 4 --faults byz --unsafe-no-double-sign-guard
    let mut c = config(4, 4, "byz");
    c.unsafe_no_double_sign_guard = true;
    let r = run(&c).unwrap();
    assert_eq!(r.byzantine, vec![(1, Behaviour::StaleRestart)]);
    assert!(
        r.safety_violations[0].contains("honest node 1 signed votes for two blocks in round 1"),
        "{}",
        describe(&r)
    );
    // With the guard the same seed is clean.
    let guarded = SimConfig {
        unsafe_no_double_sign_guard: false,
        ..c.clone()
    };
    assert_reproduces(&c, &r, "--unsafe-no-double-sign-guard", guarded);
}

#[test]
fn stale_restarts_with_the_guard_never_double_sign() {
    let mut restarted = 0;
    for seed in 5000..5300 {
        let r = run(&config(seed, 4, "byz")).unwrap();
        if r.byzantine
            .iter()
            .any(|(_, b)| *b == Behaviour::StaleRestart)
        {
            assert!(r.passed(), "{}", describe(&r));
            restarted += 1;
        }
    }
    assert!(
        restarted >= 10,
        "only {restarted} runs drew a stale restart"
    );
}

#[test]
fn each_new_byzantine_behaviour_is_survived() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 3000..3120 {
        let r = run(&config(seed, 4, "byz")).unwrap();
        assert!(r.passed(), "{}", describe(&r));
        for (_, b) in &r.byzantine {
            seen.insert(format!("{b:?}"));
        }
    }
    for b in [
        "SyncFlood",
        "VoteSpam",
        "Junk",
        "InvalidBlocks",
        "StaleRestart",
    ] {
        assert!(seen.contains(b), "no seed drew {b}: {seen:?}");
    }
}
