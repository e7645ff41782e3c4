//! Block validity as an engine input: a peer's proposal is stored, then judged by the
//! driver (`Effect::Validate`), and voted for only on a `Validity::Valid` answer.

use cairn_ledger::{Hash, Round};

use super::*;

fn invalid() -> Validity {
    Validity::Invalid {
        reason: "bad state root".to_string(),
    }
}

fn asked(effects: &[Effect]) -> Vec<Hash> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Validate { block } => Some(*block),
            _ => None,
        })
        .collect()
}

fn signed(effects: &[Effect]) -> bool {
    effects
        .iter()
        .any(|e| matches!(e, Effect::Persist(_) | Effect::Send { .. }))
}

#[test]
fn a_proposal_is_stored_then_judged_and_voted_for_only_once_found_valid() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(kit.bystander(1));
    let b1 = kit.chain_of(1)[1].clone();
    let effects = e.handle(Input::Message(
        kit.key(kit.leader(1)),
        kit.msg(kit.proposal(b1.clone(), None)),
    ));
    let store = effects
        .iter()
        .position(|e| matches!(e, Effect::StoreBlock(b) if *b == b1));
    let validate = effects
        .iter()
        .position(|e| matches!(e, Effect::Validate { block } if *block == b1.hash()));
    assert!(store.unwrap() < validate.unwrap(), "{effects:?}");
    assert!(!signed(&effects), "no vote before the verdict: {effects:?}");
    assert_eq!(e.safety_state().last_voted_round, Round(0));
    let effects = e.handle(Input::Validity {
        block: b1.hash(),
        validity: Validity::Valid,
    });
    let sent = votes_sent(&effects);
    assert_eq!(sent.len(), 1, "{effects:?}");
    assert_eq!(sent[0].1.block, b1.hash());
    assert_eq!(e.safety_state().last_voted_round, Round(1));
    // The same answer again is for nothing the engine waits on.
    let again = e.handle(Input::Validity {
        block: b1.hash(),
        validity: Validity::Valid,
    });
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn an_invalid_block_gets_no_vote_leaves_the_tree_and_is_the_proposers_fault() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(kit.bystander(1));
    let b1 = kit.chain_of(1)[1].clone();
    let leader = kit.key(kit.leader(1));
    e.handle(Input::Message(
        leader,
        kit.msg(kit.proposal(b1.clone(), None)),
    ));
    assert_eq!(e.buffered(), (1, 0));
    let effects = e.handle(Input::Validity {
        block: b1.hash(),
        validity: invalid(),
    });
    assert!(!signed(&effects), "{effects:?}");
    let dropped = effects.iter().find_map(|e| match e {
        Effect::Dropped { from, reason } => Some((*from, reason.clone())),
        _ => None,
    });
    let Some((from, reason)) = dropped else {
        panic!("no drop: {effects:?}");
    };
    assert_eq!(from, Some(leader));
    assert!(matches!(
        reason,
        DropReason::InvalidBlock {
            round: Round(1),
            ..
        }
    ));
    assert!(reason.is_fault());
    assert_eq!(reason.label(), "invalid_block");
    assert_eq!(e.buffered(), (0, 0), "the refused block left the tree");
    assert!(e.block(&b1.hash()).is_none());
    // Not having voted, it may still time the round out.
    let effects = e.handle(Input::Timeout(Round(1)));
    assert!(times_out(&effects), "{effects:?}");
}

#[test]
fn a_block_ahead_of_this_nodes_clock_gets_no_vote_stays_and_is_nobodys_fault() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(kit.bystander(2));
    let chain = kit.chain_of(2);
    let b1 = chain[1].clone();
    let leader = kit.key(kit.leader(1));
    e.handle(Input::Message(
        leader,
        kit.msg(kit.proposal(b1.clone(), None)),
    ));
    let effects = e.handle(Input::Validity {
        block: b1.hash(),
        validity: Validity::AheadOfClock {
            reason: "timestamp 40 s ahead".to_string(),
        },
    });
    assert!(!signed(&effects), "{effects:?}");
    let reasons: Vec<DropReason> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Dropped { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert!(
        matches!(&reasons[..], [r @ DropReason::AheadOfClock { .. }] if !r.is_fault()),
        "{effects:?}"
    );
    // Still in the tree: the others' clocks allowed it, and their QC (in the next proposal)
    // certifies it here too.
    assert!(e.block(&b1.hash()).is_some());
    let effects = e.handle_valid(Input::Message(
        kit.key(kit.leader(2)),
        kit.msg(kit.proposal(chain[2].clone(), None)),
    ));
    assert!(drops(&effects).is_empty(), "{effects:?}");
    assert!(e.block(&chain[2].hash()).is_some());
    assert_eq!(e.safety_state().highest_qc.block, b1.hash());
}

#[test]
fn the_next_leader_counts_its_own_vote_only_for_a_block_it_found_valid() {
    let kit = Kit::new(4);
    let next = kit.leader(2);
    let others: Vec<usize> = (0..4).filter(|&i| i != next).collect();
    let b1 = kit.chain_of(1)[1].clone();
    for (validity, round_after) in [(invalid(), Round(1)), (Validity::Valid, Round(2))] {
        let (mut e, _) = kit.engine(next);
        e.handle(Input::Message(
            kit.key(kit.leader(1)),
            kit.msg(kit.proposal(b1.clone(), None)),
        ));
        e.handle(Input::Validity {
            block: b1.hash(),
            validity,
        });
        // Two other votes: a QC only with this node's own vote as the third.
        for &i in &others[..2] {
            e.handle(Input::Message(
                kit.key(i),
                Message::Vote(kit.vote(i, 1, b1.hash())),
            ));
        }
        assert_eq!(e.current_round(), round_after);
    }
}

#[test]
fn a_verdict_for_an_unknown_block_or_a_round_left_behind_is_ignored() {
    let kit = Kit::new(4);
    let me = kit.bystander(1);
    let (mut e, _) = kit.engine(me);
    let effects = e.handle(Input::Validity {
        block: Hash([7; 32]),
        validity: Validity::Valid,
    });
    assert!(effects.is_empty(), "{effects:?}");
    let chain = kit.chain_of(2);
    e.handle(Input::Message(
        kit.key(kit.leader(1)),
        kit.msg(kit.proposal(chain[1].clone(), None)),
    ));
    // Round 2's proposal certifies block 1: the node moves on before its driver answers.
    let effects = e.handle(Input::Message(
        kit.key(kit.leader(2)),
        kit.msg(kit.proposal(chain[2].clone(), None)),
    ));
    assert_eq!(asked(&effects), vec![chain[2].hash()]);
    let late = e.handle(Input::Validity {
        block: chain[1].hash(),
        validity: Validity::Valid,
    });
    assert!(votes_sent(&late).is_empty(), "{late:?}");
    assert_eq!(e.safety_state().last_voted_round, Round(0));
}

#[test]
fn own_proposals_and_blocks_that_arrive_certified_are_not_asked_about() {
    let kit = Kit::new(4);
    let (mut leader, start) = kit.engine(kit.leader(1));
    let request = start
        .into_iter()
        .find(|e| matches!(e, Effect::RequestPayload { .. }))
        .unwrap();
    let address = kit.key(kit.leader(1)).address();
    let block = empty_payload(request, address, cairn_ledger::TimestampMs(1)).unwrap();
    let effects = leader.handle(Input::Payload(block));
    assert!(asked(&effects).is_empty(), "{effects:?}");
    assert_eq!(leader.safety_state().last_voted_round, Round(1));

    let (mut e, _) = kit.engine(0);
    let chain = kit.chain_of(3);
    e.expect_sync_answer(kit.key(1), cairn_ledger::Height(1));
    let effects = e.handle(Input::Message(
        kit.key(1),
        Message::SyncResponse(Box::new(SyncResponse {
            blocks: chain[1..=2].to_vec(),
            tip_qc: kit.qc_for(&chain[2]),
        })),
    ));
    assert!(e.buffered().0 >= 1, "{effects:?}");
    assert!(asked(&effects).is_empty(), "{effects:?}");
}

#[test]
fn blocks_waiting_for_a_verdict_are_bounded_and_the_oldest_is_forgotten() {
    let kit = Kit::new(4);
    let me = kit.bystander(1);
    let config = EngineConfig {
        // Lets one round's leader propose many blocks that all get this far.
        unsafe_skip_voted_round_check: true,
        ..kit.config()
    };
    let signer = Ed25519Signer::new(cairn_ledger::crypto::Keypair::from_secret(
        &kit.keys[me].secret_bytes(),
    ));
    let mut e = Engine::new(config, Box::new(signer), Box::new(Ed25519Verifier), None).unwrap();
    e.start();
    let leader = kit.key(kit.leader(1));
    let blocks: Vec<_> = (0..VALIDATIONS_PENDING_MAX as u64 + 2)
        .map(|salt| kit.block(1, &kit.genesis, &kit.genesis_qc(), salt))
        .collect();
    for b in &blocks {
        let effects = e.handle(Input::Message(
            leader,
            kit.msg(kit.proposal(b.clone(), None)),
        ));
        assert_eq!(asked(&effects), vec![b.hash()]);
    }
    // The first two were forgotten: their answers are ignored.
    for b in &blocks[..2] {
        let effects = e.handle(Input::Validity {
            block: b.hash(),
            validity: Validity::Valid,
        });
        assert!(effects.is_empty(), "{effects:?}");
    }
    let last = blocks.last().unwrap();
    let effects = e.handle(Input::Validity {
        block: last.hash(),
        validity: Validity::Valid,
    });
    assert_eq!(votes_sent(&effects)[0].1.block, last.hash());
}
