//! The PBFT simulator finds what it should, and only that: honest majorities pass under
//! every fault, the disabled justification rule is caught with a reproduction line, and a
//! seed is a trace.

use super::*;
use crate::sim::hotstuff::{ALL_FAULTS, Behaviour, LIVENESS_COMMITS};

fn config(seed: u64, validators: usize, faults: &str) -> PbftSimConfig {
    PbftSimConfig::new(seed, validators, FaultSet::parse(faults).unwrap())
}

fn describe(r: &SimReport) -> String {
    format!(
        "{}\n  violations: {:?}\n  liveness: {:?}\n  height {} positions {} events {} byz {:?} drops {:?}",
        r.repro,
        r.safety_violations,
        r.liveness_failure,
        r.committed_height,
        r.max_round,
        r.events,
        r.byzantine,
        r.drops
    )
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
fn a_quiet_network_commits_a_block_per_height_in_round_zero() {
    let r = run(&config(7, 4, "none")).unwrap();
    assert!(r.passed(), "{}", describe(&r));
    // One round per height: the positions entered are the heights committed (plus the one
    // being decided), with no timer ever ending a round.
    assert!(
        r.max_round.0 <= r.committed_height.0 + 1,
        "{}",
        describe(&r)
    );
    assert_eq!(r.evidence, 0);
    assert!(
        r.drops.keys().all(|k| !k.starts_with("stale_timer")),
        "{}",
        describe(&r)
    );
}

#[test]
fn honest_majorities_stay_safe_and_live_under_all_faults_with_4_validators() {
    assert_passes(0..60, 4, "all");
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
}

#[test]
fn every_byzantine_behaviour_is_drawn_and_survived() {
    let mut seen = Vec::new();
    for seed in 0..400 {
        let r = run(&config(seed, 4, "byz")).unwrap();
        assert!(r.passed(), "{}", describe(&r));
        seen.extend(r.byzantine.iter().map(|(_, b)| *b));
        if PBFT_BEHAVIOURS.iter().all(|b| seen.contains(b)) {
            break;
        }
    }
    let missing: Vec<&Behaviour> = PBFT_BEHAVIOURS
        .iter()
        .filter(|b| !seen.contains(b))
        .collect();
    assert!(missing.is_empty(), "never drawn: {missing:?}");
}

#[test]
fn without_the_justification_rule_the_checker_finds_a_fork_with_a_one_line_repro() {
    let mut found = None;
    for seed in 0..500 {
        let mut c = config(seed, 4, "delay,drop,reorder,partition");
        c.unsafe_skip_justification = true;
        let r = run(&c).unwrap();
        if r.violation_count > 0 {
            found = Some((c, r));
            break;
        }
    }
    let (c, r) = found.expect("no seed in 0..500 broke safety without the justification rule");
    println!("reproduce with: {}", r.repro);
    assert!(
        r.safety_violations[0].contains("committed different blocks"),
        "{}",
        describe(&r)
    );
    assert_eq!(
        r.repro,
        format!(
            "cairn sim pbft --seed {} --validators 4 --faults {} --unsafe-skip-justification",
            c.seed, c.faults
        )
    );
    let again = run(&c).unwrap();
    assert_eq!(again.trace_hash, r.trace_hash);
    assert_eq!(again.safety_violations, r.safety_violations);
    let mut fixed = c.clone();
    fixed.unsafe_skip_justification = false;
    let fixed = run(&fixed).unwrap();
    assert!(fixed.passed(), "{}", describe(&fixed));
}
