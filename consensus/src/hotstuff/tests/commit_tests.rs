//! Progress: QC and TC formation, the 2-chain commit rule, backoff, crash-restart.

use cairn_ledger::{Height, Round};

use super::cluster::Cluster;
use super::*;

#[test]
fn start_schedules_round_one_and_its_leader_asks_for_a_payload() {
    let kit = Kit::new(4);
    let leader = kit.leader(1);
    let (_, effects) = kit.engine(leader);
    assert_eq!(scheduled(&effects), vec![(Round(1), BASE_MS)]);
    assert!(effects.iter().any(|e| matches!(e,
        Effect::RequestPayload { round, height, parent, justify }
            if *round == Round(1) && *height == Height(1) && *parent == kit.chain
                && *justify == kit.genesis_qc())));
    let (_, effects) = kit.engine(kit.bystander(1));
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::RequestPayload { .. }))
    );
}

#[test]
fn a_vote_is_persisted_before_it_is_sent_to_the_next_leader() {
    let kit = Kit::new(4);
    let me = kit.bystander(1);
    let (mut e, _) = kit.engine(me);
    let b1 = &kit.chain_of(1)[1];
    let effects = e.handle_valid(Input::Message(
        kit.key(kit.leader(1)),
        kit.msg(kit.proposal(b1.clone(), None)),
    ));
    let persist = effects.iter().position(|e| matches!(e, Effect::Persist(_)));
    let send = effects
        .iter()
        .position(|e| matches!(e, Effect::Send { .. }));
    assert!(persist.unwrap() < send.unwrap(), "{effects:?}");
    let Effect::Persist(state) = &effects[persist.unwrap()] else {
        unreachable!()
    };
    assert_eq!(state.last_voted_round, Round(1));
    let sent = votes_sent(&effects);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, kit.key(kit.leader(2)));
    assert_eq!(sent[0].1.block, b1.hash());
}

#[test]
fn quorum_power_of_votes_forms_a_qc_that_the_next_leader_extends() {
    let kit = Kit::new(4);
    let next = kit.leader(2);
    let (mut e, _) = kit.engine(next);
    let b1 = kit.chain_of(1)[1].clone();
    e.handle_valid(Input::Message(
        kit.key(kit.leader(1)),
        kit.msg(kit.proposal(b1.clone(), None)),
    ));
    let others: Vec<usize> = (0..4).filter(|&i| i != next).collect();
    // Own vote plus one other: 2 of the 3 needed.
    let effects = e.handle_valid(Input::Message(
        kit.key(others[0]),
        Message::Vote(kit.vote(others[0], 1, b1.hash())),
    ));
    assert!(scheduled(&effects).is_empty(), "no QC yet: {effects:?}");
    let effects = e.handle_valid(Input::Message(
        kit.key(others[1]),
        Message::Vote(kit.vote(others[1], 1, b1.hash())),
    ));
    assert_eq!(e.current_round(), Round(2));
    let request = effects.iter().find_map(|e| match e {
        Effect::RequestPayload { round, justify, .. } => Some((*round, justify.clone())),
        _ => None,
    });
    let (round, justify) = request.expect("the new leader asks for a payload");
    assert_eq!(
        (round, justify.round, justify.block),
        (Round(2), Round(1), b1.hash())
    );
    assert_eq!(justify.votes.len(), 3);
}

#[test]
fn two_chain_commits_each_block_once_in_order() {
    let kit = Kit::new(4);
    let me = kit.bystander(3);
    let (mut e, _) = kit.engine(me);
    let chain = kit.chain_of(5);
    let mut all = Vec::new();
    for (round, block) in chain.iter().enumerate().skip(1) {
        let p = kit.proposal(block.clone(), None);
        let effects = e.handle(Input::Message(
            kit.key(kit.leader(round as u64)),
            kit.msg(p),
        ));
        all.push(commits(&effects));
    }
    // Block r commits when the proposal of r+2 (carrying QC(r+1)) arrives.
    assert_eq!(
        all,
        vec![
            vec![],
            vec![],
            vec![vec![Height(1)]],
            vec![vec![Height(2)]],
            vec![vec![Height(3)]]
        ]
    );
    assert_eq!(e.committed_height(), Height(3));
    // Seeing the QCs again commits nothing twice.
    let again = e.handle(Input::Message(
        kit.key(kit.leader(5)),
        kit.msg(kit.proposal(chain[5].clone(), None)),
    ));
    assert!(commits(&again).is_empty());
}

#[test]
fn a_gap_in_rounds_delays_commit_until_two_consecutive_certified_rounds() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(kit.bystander(5));
    let from = |r: u64| kit.key(kit.leader(r));
    let b1 = kit.block(1, &kit.genesis, &kit.genesis_qc(), 0);
    let qc1 = kit.qc_for(&b1);
    // Round 2 fails: a TC for it, then b3 extends b1.
    let tc2 = kit.tc(2, &qc1, &[0, 1, 2]);
    let b3 = kit.block(3, &b1, &qc1, 0);
    let qc3 = kit.qc_for(&b3);
    let b4 = kit.block(4, &b3, &qc3, 0);
    let b5 = kit.block(5, &b4, &kit.qc_for(&b4), 0);
    e.handle(Input::Message(
        from(1),
        kit.msg(kit.proposal(b1.clone(), None)),
    ));
    let effects = e.handle(Input::Message(
        from(3),
        kit.msg(kit.proposal(b3, Some(tc2))),
    ));
    assert!(commits(&effects).is_empty());
    // QC(3) certifies b3, whose parent b1 is of round 1: not consecutive, no commit.
    let effects = e.handle(Input::Message(from(4), kit.msg(kit.proposal(b4, None))));
    assert!(commits(&effects).is_empty(), "{effects:?}");
    // QC(4) certifies b4 whose parent b3 is of round 3: b1 and b3 commit together.
    let effects = e.handle(Input::Message(from(5), kit.msg(kit.proposal(b5, None))));
    assert_eq!(commits(&effects), vec![vec![Height(1), Height(2)]]);
}

#[test]
fn a_quorum_of_timeouts_forms_a_tc_and_f_plus_one_makes_a_node_join() {
    let kit = Kit::new(4);
    let me = kit.bystander(1);
    let (mut e, _) = kit.engine(me);
    let others: Vec<usize> = (0..4).filter(|&i| i != me).collect();
    let g = kit.genesis_qc();
    let effects = e.handle(Input::Message(
        kit.key(others[0]),
        Message::Timeout(Box::new(kit.timeout(others[0], 1, &g))),
    ));
    assert!(!effects.iter().any(|e| matches!(e, Effect::Broadcast(_))));
    // f+1 = 2 timeouts: the round is lost, this node times out too, persisting first.
    let effects = e.handle(Input::Message(
        kit.key(others[1]),
        Message::Timeout(Box::new(kit.timeout(others[1], 1, &g))),
    ));
    let persist = effects.iter().position(|e| matches!(e, Effect::Persist(_)));
    let bcast = effects.iter().position(
        |e| matches!(e, Effect::Broadcast(Message::Timeout(t)) if t.sender == kit.key(me)),
    );
    assert!(persist.unwrap() < bcast.unwrap());
    // Three timeouts with its own: a TC for round 1 moves the node to round 2.
    assert_eq!(e.current_round(), Round(2));
    let tc = e.safety_state().highest_tc.clone().unwrap();
    assert_eq!((tc.round, tc.signatures.len()), (Round(1), 3));
    // Round 2 is not yet late: a commit always trails the current round by two.
    assert_eq!(scheduled(&effects), vec![(Round(2), BASE_MS)]);
}

#[test]
fn round_timeouts_back_off_and_reset_after_a_commit() {
    let mut c = Cluster::new(4);
    // Proposals are lost: every round ends in a TC.
    c.drop_kinds = vec!["proposal"];
    let mut waits = Vec::new();
    for _ in 0..5 {
        c.fire_timers();
        c.run(10_000);
        waits.push(c.timers[0].unwrap());
    }
    // Round r waits base · 2^(r − committed round − 3), capped; genesis is round 0.
    let expected: Vec<(Round, u64)> = [(2, 1000), (3, 1000), (4, 2000), (5, 4000), (6, 8000)]
        .iter()
        .map(|&(r, ms)| (Round(r), ms))
        .collect();
    assert_eq!(waits, expected);
    // With proposals flowing again, blocks commit and the wait drops back to the base.
    c.drop_kinds.clear();
    c.fire_timers();
    c.run(100);
    assert!(c.heights().iter().all(|&h| h >= 3), "{:?}", c.heights());
    assert_eq!(c.timers[0].unwrap().1, BASE_MS);
    c.assert_consistent();
}

#[test]
fn four_honest_nodes_commit_the_same_chain() {
    let mut c = Cluster::new(4);
    c.run(300);
    assert!(c.heights().iter().all(|&h| h >= 10), "{:?}", c.heights());
    c.assert_consistent();
    assert!(c.evidence.is_empty());
}

#[test]
fn progress_continues_with_one_node_crashed_and_it_catches_up_after_restart() {
    let mut c = Cluster::new(4);
    c.run(100);
    c.crash(3);
    for _ in 0..8 {
        c.run(500);
        c.fire_timers();
    }
    c.run(500);
    let h = c.heights();
    assert!(h[0] > h[3] + 2, "{h:?}");
    c.restart(3);
    for _ in 0..3 {
        c.run(200);
        c.fire_timers();
    }
    c.run(200);
    let h = c.heights();
    assert!(
        h[3] + 3 >= h[0] && h[3] > 0,
        "restarted node caught up: {h:?}"
    );
    assert_eq!(c.engine(3).committed_height().0, h[3]);
    c.assert_consistent();
}

#[test]
fn a_restarted_validator_resends_its_vote_and_never_signs_another_in_that_round() {
    let kit = Kit::new(4);
    let me = kit.bystander(1);
    let (mut e, _) = kit.engine(me);
    let b1 = kit.chain_of(1)[1].clone();
    let from = kit.key(kit.leader(1));
    let effects = e.handle_valid(Input::Message(
        from,
        kit.msg(kit.proposal(b1.clone(), None)),
    ));
    let state = effects
        .iter()
        .find_map(|e| match e {
            Effect::Persist(s) => Some((**s).clone()),
            _ => None,
        })
        .unwrap();
    let first_vote = votes_sent(&effects)[0].1.clone();
    let restart = || {
        kit.restarted(
            me,
            Some(RestartState {
                safety: state.clone(),
                committed: None,
                history: Vec::new(),
                blocks: Vec::new(),
            }),
        )
        .0
    };
    // A different block for round 1 (the leader equivocating across the restart).
    let mut e = restart();
    let other = kit.block(1, &kit.genesis, &kit.genesis_qc(), 7);
    let effects = e.handle_valid(Input::Message(from, kit.msg(kit.proposal(other, None))));
    assert!(votes_sent(&effects).is_empty());
    assert!(matches!(
        drops(&effects)[..],
        [DropReason::Safety(SafetyError::AlreadyVoted { .. })]
    ));
    // The same block again: the very same vote, nothing new to persist.
    let mut e = restart();
    let again = e.handle_valid(Input::Message(from, kit.msg(kit.proposal(b1, None))));
    assert_eq!(votes_sent(&again)[0].1, first_vote);
    assert!(!again.iter().any(|e| matches!(e, Effect::Persist(_))));
}
