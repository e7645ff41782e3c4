//! Heights, rounds, round changes, restarts and catch-up on the in-order cluster.

use super::cluster::Cluster;
use super::*;

#[test]
fn four_validators_commit_height_after_height_and_agree() {
    let mut c = Cluster::new(4);
    c.run(2_000);
    let heights = c.heights();
    assert!(heights.iter().all(|&h| h >= 10), "heights {heights:?}");
    c.assert_agree();
    // Each block carries the commit certificate of its parent, and each height's first
    // proposer is the next validator in turn.
    let ledger = &c.nodes[0].ledger;
    for pair in ledger.windows(2) {
        let Seal::Pbft { parent_commit, .. } = &pair[1].header.seal else {
            panic!("not a PBFT block");
        };
        assert_eq!(parent_commit.block, pair[0].hash());
        assert!(parent_commit.votes.len() >= 3);
    }
    let proposers: Vec<Address> = ledger[..4].iter().map(|b| b.header.proposer).collect();
    let mut distinct = proposers.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "proposers {proposers:?}");
    assert!(
        c.nodes
            .iter()
            .all(|n| n.drops.iter().all(|d| !d.is_fault()))
    );
}

#[test]
fn a_silent_proposer_costs_one_round_change() {
    let mut c = Cluster::new(4);
    let p = c.kit.proposer(1, 0);
    // The first proposer's block never leaves it.
    c.nodes[p].isolated = true;
    c.run(100);
    assert!(c.heights().iter().all(|&h| h == 0));
    c.nodes[p].isolated = false;
    for i in (0..4).filter(|&i| i != p) {
        c.timeout(i);
    }
    c.run(200);
    let others: Vec<usize> = (0..4)
        .filter(|&i| i != p)
        .map(|i| c.nodes[i].ledger.len())
        .collect();
    assert!(others.iter().all(|&h| h >= 1), "heights {others:?}");
    let first = &c.nodes[(p + 1) % 4].ledger[0];
    assert_eq!(first.header.proposer, c.kit.address(c.kit.proposer(1, 1)));
    c.assert_agree();
}

#[test]
fn f_plus_one_round_changes_pull_a_validator_forward() {
    let mut c = Cluster::new(4);
    let stay = c.kit.bystander(1, 0);
    let p = c.kit.proposer(1, 0);
    c.nodes[p].isolated = true;
    c.run(100);
    // Two validators (f + 1) give up round 0; the third follows without its timer.
    let movers: Vec<usize> = (0..4).filter(|&i| i != p && i != stay).collect();
    for &i in &movers {
        c.timeout(i);
    }
    c.run(200);
    // Without its round change the two movers are no quorum (the first proposer is cut
    // off), so height 1 commits only because the third followed them.
    for i in (0..4).filter(|&i| i != p) {
        assert!(!c.nodes[i].ledger.is_empty(), "heights {:?}", c.heights());
    }
    assert_eq!(
        c.nodes[stay].ledger[0].header.proposer,
        c.kit.address(c.kit.proposer(1, 1))
    );
}

#[test]
fn a_prepared_block_is_offered_again_after_a_round_change() {
    let mut c = Cluster::new(4);
    let p0 = c.kit.proposer(1, 0);
    // Deliver until every node prepared the first block, but hold every commit.
    let mut held = Vec::new();
    while let Some((from, to, msg)) = c.pop() {
        if matches!(msg, Message::Commit(_)) {
            held.push((from, to, msg));
            continue;
        }
        let key = c.kit.key(from);
        c.handle(to, Input::Message(key, msg));
        if c.nodes.iter().all(|n| {
            n.persisted
                .as_ref()
                .is_some_and(|s| s.prepared_at(Height(1)).is_some())
        }) {
            break;
        }
    }
    let prepared = c.nodes[0]
        .persisted
        .as_ref()
        .unwrap()
        .prepared_at(Height(1))
        .unwrap()
        .block;
    drop(held);
    for i in 0..4 {
        c.timeout(i);
    }
    c.run(300);
    assert!(c.heights().iter().all(|&h| h >= 1));
    assert_eq!(
        c.nodes[0].ledger[0].hash(),
        prepared,
        "round 1 committed another block"
    );
    let p1 = c.kit.proposer(1, 1);
    assert_ne!(p0, p1);
    c.assert_agree();
}

#[test]
fn a_restarted_validator_resumes_from_its_persisted_state_and_catches_up() {
    let mut c = Cluster::new(4);
    c.run(150);
    let victim = 2;
    c.crash(victim);
    c.run(400);
    let before = c.nodes[victim].ledger.len();
    c.restart(victim);
    // The others wait on it (it proposes next) or keep going; either way their next
    // messages are from heights ahead, and it asks one of them for the blocks it missed.
    for i in (0..4).filter(|&i| i != victim) {
        c.timeout(i);
    }
    c.run(400);
    assert!(
        c.nodes[victim].ledger.len() > before + 2,
        "{:?}",
        c.heights()
    );
    c.assert_agree();
    assert!(c.nodes[victim].drops.iter().all(|d| !d.is_fault()));
}

#[test]
fn after_a_crash_the_round_change_still_carries_the_prepared_block() {
    let kit = Kit::new(4);
    let v = kit.bystander(1, 0);
    let (mut e, _) = kit.engine(v);
    let p = kit.proposer(1, 0);
    let block = kit.first_block(p, 7);
    let id = block.hash();
    let mut fx = e.handle(Input::Message(
        kit.key(p),
        Message::Proposal(Box::new(kit.proposal(p, 1, 0, block.clone(), None))),
    ));
    fx.extend(e.handle(Input::Validity {
        block: id,
        validity: Validity::Valid,
    }));
    let mut persisted = None;
    let mut stored = Vec::new();
    let others: Vec<usize> = (0..4).filter(|&i| i != v).take(2).collect();
    for &i in &others {
        fx.extend(e.handle(Input::Message(
            kit.key(i),
            Message::Prepare(kit.prepare(i, 1, 0, id)),
        )));
    }
    for f in &fx {
        match f {
            Effect::Persist(s) => persisted = Some((**s).clone()),
            Effect::StoreBlock(b) => stored.push(b.clone()),
            _ => {}
        }
    }
    let persisted = persisted.unwrap();
    assert_eq!(
        persisted.prepared_at(Height(1)).map(|qc| qc.block),
        Some(id)
    );
    let (mut again, _) = kit.restarted(
        v,
        Some(RestartState {
            safety: persisted,
            committed: None,
            history: Vec::new(),
            blocks: stored,
        }),
    );
    let fx = again.handle(Input::Timeout {
        height: Height(1),
        round: Round(0),
    });
    let rc = broadcasts(&fx)
        .into_iter()
        .find_map(|m| match m {
            Message::RoundChange(rc) => Some(rc.clone()),
            _ => None,
        })
        .expect("no round change");
    assert_eq!(rc.prepared.as_ref().map(|qc| qc.block), Some(id));
    assert_eq!(rc.block.as_ref().map(Block::hash), Some(id));
    // And the restarted validator never prepares another block in round 0.
    let other = kit.first_block(p, 8);
    let fx = again.handle(Input::Message(
        kit.key(p),
        Message::Proposal(Box::new(kit.proposal(p, 1, 0, other, None))),
    ));
    assert!(
        broadcasts(&fx)
            .iter()
            .all(|m| !matches!(m, Message::Prepare(_)))
    );
}

#[test]
fn conflicting_proposals_and_votes_yield_evidence() {
    let kit = Kit::new(4);
    let v = kit.bystander(1, 0);
    let (mut e, _) = kit.engine(v);
    let p = kit.proposer(1, 0);
    let (a, b) = (kit.first_block(p, 1), kit.first_block(p, 2));
    e.handle(Input::Message(
        kit.key(p),
        Message::Proposal(Box::new(kit.proposal(p, 1, 0, a.clone(), None))),
    ));
    let fx = e.handle(Input::Message(
        kit.key(p),
        Message::Proposal(Box::new(kit.proposal(p, 1, 0, b.clone(), None))),
    ));
    assert!(
        fx.iter()
            .any(|f| matches!(f, Effect::Evidence(Evidence::ConflictingProposals { .. })))
    );
    assert_eq!(drops(&fx), ["equivocation"]);
    let w = (0..4).find(|&i| i != v && i != p).unwrap();
    e.handle(Input::Message(
        kit.key(w),
        Message::Commit(kit.commit(w, 1, 0, a.hash())),
    ));
    let fx = e.handle(Input::Message(
        kit.key(w),
        Message::Commit(kit.commit(w, 1, 0, b.hash())),
    ));
    match fx.iter().find_map(|f| match f {
        Effect::Evidence(ev) => Some(ev),
        _ => None,
    }) {
        Some(ev @ Evidence::ConflictingVotes { commit: true, .. }) => {
            assert_eq!(ev.offender(), kit.key(w))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_node_that_missed_the_commits_commits_from_the_next_proposal() {
    let mut c = Cluster::new(4);
    let late = 3;
    // Node 3 sees everything but commits for height 1.
    let mut count = 0;
    while let Some((from, to, msg)) = c.pop() {
        count += 1;
        if count > 400 {
            break;
        }
        if to == late && matches!(&msg, Message::Commit(v) if v.height == Height(1)) {
            continue;
        }
        let key = c.kit.key(from);
        c.handle(to, Input::Message(key, msg));
    }
    assert!(c.nodes[late].ledger.len() >= 2, "{:?}", c.heights());
    c.assert_agree();
}

fn round_changes_sent(fx: &[Effect]) -> Vec<Round> {
    broadcasts(fx)
        .into_iter()
        .filter_map(|m| match m {
            Message::RoundChange(rc) => Some(rc.round),
            _ => None,
        })
        .collect()
}

#[test]
fn a_timer_in_a_round_nobody_else_reached_repeats_the_round_change_instead_of_leaving() {
    let kit = Kit::new(4);
    let v = kit.bystander(1, 0);
    let (mut e, _) = kit.engine(v);
    let fx = e.handle(Input::Timeout {
        height: Height(1),
        round: Round(0),
    });
    assert_eq!(round_changes_sent(&fx), [Round(1)]);
    // Alone in round 1: its timer says so again, and it stays (leaving would keep it a
    // round ahead of the others for good, their capped timers being no longer than its).
    let fx = e.handle(Input::Timeout {
        height: Height(1),
        round: Round(1),
    });
    assert_eq!(round_changes_sent(&fx), [Round(1)]);
    assert_eq!(e.current_round(), Round(1));
    assert!(fx.iter().any(|f| matches!(
        f,
        Effect::ScheduleTimeout {
            round: Round(1),
            ..
        }
    )));
}

#[test]
fn a_timer_in_a_lonely_round_joins_a_validator_waiting_further_on() {
    let kit = Kit::new(4);
    let v = kit.bystander(1, 0);
    let (mut e, _) = kit.engine(v);
    e.handle(Input::Timeout {
        height: Height(1),
        round: Round(0),
    });
    let w = (0..4).find(|&i| i != v).unwrap();
    // One validator waits in round 3: not f + 1, so no jump on receipt.
    let rc = kit.round_change(w, 1, 3, None, None);
    e.handle(Input::Message(
        kit.key(w),
        Message::RoundChange(Box::new(rc)),
    ));
    assert_eq!(e.current_round(), Round(1));
    let fx = e.handle(Input::Timeout {
        height: Height(1),
        round: Round(1),
    });
    assert_eq!(e.current_round(), Round(3));
    assert_eq!(round_changes_sent(&fx), [Round(3)]);
}

#[test]
fn a_round_with_a_quorum_in_it_ends_by_its_timer() {
    let kit = Kit::new(4);
    let v = kit.bystander(1, 1);
    let (mut e, _) = kit.engine(v);
    e.handle(Input::Timeout {
        height: Height(1),
        round: Round(0),
    });
    for i in (0..4).filter(|&i| i != v).take(2) {
        let rc = kit.round_change(i, 1, 1, None, None);
        e.handle(Input::Message(
            kit.key(i),
            Message::RoundChange(Box::new(rc)),
        ));
    }
    // The quorum re-armed the timer: only the newer one ends the round.
    let fx = e.handle(Input::Timeout {
        height: Height(1),
        round: Round(1),
    });
    assert_eq!(drops(&fx), ["stale_timer"]);
    let fx = e.handle(Input::Timeout {
        height: Height(1),
        round: Round(1),
    });
    assert_eq!(round_changes_sent(&fx), [Round(2)]);
    assert_eq!(e.current_round(), Round(2));
}

#[test]
fn validators_that_all_start_observing_still_get_going_by_their_timers() {
    let kit = Kit::new(4);
    let mut engines: Vec<Engine> = (0..4)
        .map(|i| {
            let mut cfg = kit.config();
            cfg.double_sign_check_rounds = 3;
            let mut e = Engine::new(
                cfg,
                kit.signer(i),
                Box::new(crate::bft::Ed25519Verifier),
                None,
            )
            .unwrap();
            e.start();
            e
        })
        .collect();
    // Nobody signs while observing, so rounds end only by timers; once the watch is over
    // the round changes flow and a quorum meets in one round.
    let mut sent = Vec::new();
    for _ in 0..6 {
        for (i, e) in engines.iter_mut().enumerate() {
            let (height, round) = (e.current_height(), e.current_round());
            let fx = e.handle(Input::Timeout { height, round });
            for m in broadcasts(&fx) {
                sent.push((i, m.clone()));
            }
        }
        for (from, m) in std::mem::take(&mut sent) {
            for (j, e) in engines.iter_mut().enumerate().filter(|(j, _)| *j != from) {
                let _ = j;
                for m2 in broadcasts(&e.handle(Input::Message(kit.key(from), m.clone()))) {
                    sent.push((j, m2.clone()));
                }
            }
        }
    }
    assert!(engines.iter().all(|e| !e.observing()));
    let rounds: Vec<Round> = engines.iter().map(Engine::current_round).collect();
    assert!(
        rounds.iter().all(|r| *r == rounds[0] && *r > Round(0)),
        "{rounds:?}"
    );
}

#[test]
fn candidate_blocks_stay_bounded_as_rounds_go_by() {
    let kit = Kit::new(4);
    let v = kit.bystander(1, 0);
    let (mut e, _) = kit.engine(v);
    // A justified proposal in each of more rounds than candidates are kept: each moves the
    // validator on, and the oldest blocks give way.
    let rounds = (1..)
        .filter(|&r| kit.proposer(1, r) != v)
        .take(CANDIDATES_MAX + 4);
    for round in rounds {
        let p = kit.proposer(1, round);
        let rcs: Vec<_> = (0..4)
            .filter(|&i| i != p)
            .map(|i| kit.round_change(i, 1, round, None, None))
            .collect();
        let cert = kit.justification(round, &rcs);
        let block = kit.first_block_in(round, p, round);
        let proposal = kit.proposal(p, 1, round, block, Some(cert));
        let fx = e.handle(Input::Message(
            kit.key(p),
            Message::Proposal(Box::new(proposal)),
        ));
        assert!(drops(&fx).is_empty(), "round {round}: {:?}", dropped(&fx));
        assert_eq!(e.current_round(), Round(round));
        let (rounds, candidates) = e.buffered();
        assert!(rounds <= ROUNDS_KEPT_MAX && candidates <= CANDIDATES_MAX);
    }
    assert_eq!(e.buffered().1, CANDIDATES_MAX);
}

#[test]
fn a_validator_behind_asks_each_peer_ahead_once_per_position() {
    let kit = Kit::new(4);
    let v = kit.bystander(1, 0);
    let (mut e, _) = kit.engine(v);
    let others: Vec<usize> = (0..4).filter(|&i| i != v).collect();
    let fetched = |fx: &[Effect]| -> Vec<PublicKey> {
        fx.iter()
            .filter_map(|f| match f {
                Effect::FetchBlocks { from, .. } => Some(*from),
                _ => None,
            })
            .collect()
    };
    // A proposal two heights ahead: this validator is behind and must fetch.
    let ahead = |by: usize| {
        let block = kit.block(3, Hash([7; 32]), kit.genesis_commit(), by, 1);
        Input::Message(
            kit.key(by),
            Message::Proposal(Box::new(kit.proposal(by, 3, 0, block, None))),
        )
    };
    let fx = e.handle(ahead(others[0]));
    assert_eq!(fetched(&fx), vec![kit.key(others[0])]);
    // The same peer again at the same position: its answer may still come.
    assert!(fetched(&e.handle(ahead(others[0]))).is_empty());
    // Another peer ahead is asked too, so one lost answer does not wait for the round
    // timer, which backs off as the rounds of a stuck height go by.
    assert_eq!(
        fetched(&e.handle(ahead(others[1]))),
        vec![kit.key(others[1])]
    );
    assert_eq!(
        fetched(&e.handle(ahead(others[2]))),
        vec![kit.key(others[2])]
    );
    assert!(fetched(&e.handle(ahead(others[1]))).is_empty());
}
