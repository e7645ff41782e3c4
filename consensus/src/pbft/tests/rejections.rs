//! Every way the engine refuses an input, each with the reason it names.

use cairn_ledger::Signature;

use super::*;

/// A started validator that proposes neither round 0 nor round 1 of height 1.
fn bystander(kit: &Kit) -> (Engine, usize) {
    let v = kit.bystander(1, 0);
    (kit.engine(v).0, v)
}

fn proposal_msg(p: ProposalMsg) -> Message {
    Message::Proposal(Box::new(p))
}

fn send(e: &mut Engine, kit: &Kit, from: usize, msg: Message) -> Vec<Effect> {
    e.handle(Input::Message(kit.key(from), msg))
}

#[test]
fn undecodable_or_oversized_messages() {
    let kit = Kit::new(4);
    let (mut e, _) = bystander(&kit);
    let fx = e.handle(Input::Bytes(kit.key(0), vec![0, 0, 0]));
    assert_eq!(drops(&fx), ["malformed"]);
    let fx = e.handle(Input::Bytes(kit.key(0), vec![7, 0, 0, 0, 1]));
    assert_eq!(drops(&fx), ["malformed"]);
    let p = kit.proposer(1, 1);
    let rcs: Vec<_> = (0..3)
        .map(|i| kit.round_change(i, 1, 1, None, None))
        .collect();
    let mut cert = kit.justification(1, &rcs);
    cert.signatures = vec![cert.signatures[0].clone(); 5];
    let fx = send(
        &mut e,
        &kit,
        p,
        proposal_msg(kit.proposal(p, 1, 1, kit.first_block(p, 1), Some(cert))),
    );
    assert_eq!(drops(&fx), ["out_of_bounds"]);
    assert!(dropped(&fx)[0].is_fault());
}

#[test]
fn votes_from_outsiders_or_with_bad_signatures() {
    let kit = Kit::new(4);
    let (mut e, v) = bystander(&kit);
    let id = kit.first_block(0, 1).hash();
    let outsider = Kit::new(5);
    let fx = send(
        &mut e,
        &kit,
        0,
        Message::Prepare(outsider.prepare(4, 1, 0, id)),
    );
    assert_eq!(drops(&fx), ["not_a_validator"]);
    let w = (0..4).find(|&i| i != v).unwrap();
    let mut forged = kit.prepare(w, 1, 0, id);
    forged.signature = Signature([1; 64]);
    assert_eq!(
        drops(&send(&mut e, &kit, w, Message::Prepare(forged))),
        ["bad_signature"]
    );
    // A prepare's signature is not a commit's.
    let mut swapped = kit.prepare(w, 1, 0, id);
    swapped.signature = kit.prepare(w, 1, 0, id).signature;
    assert_eq!(
        drops(&send(&mut e, &kit, w, Message::Commit(swapped))),
        ["bad_signature"]
    );
    let ok = kit.prepare(w, 1, 0, id);
    assert!(drops(&send(&mut e, &kit, w, Message::Prepare(ok.clone()))).is_empty());
    assert_eq!(
        drops(&send(&mut e, &kit, w, Message::Prepare(ok))),
        ["duplicate"]
    );
    assert_eq!(
        drops(&send(
            &mut e,
            &kit,
            w,
            Message::Prepare(kit.prepare(w, 1, 20, id))
        )),
        ["future_round"]
    );
}

#[test]
fn proposals_from_the_wrong_proposer_or_with_a_wrong_block() {
    let kit = Kit::new(4);
    let (mut e, _) = bystander(&kit);
    let p = kit.proposer(1, 0);
    let q = kit.proposer(1, 1);
    // Signed by a validator whose turn it is not.
    let fx = send(
        &mut e,
        &kit,
        q,
        proposal_msg(kit.proposal(q, 1, 0, kit.first_block(q, 1), None)),
    );
    assert_eq!(drops(&fx), ["wrong_leader"]);
    let mut bad = kit.proposal(p, 1, 0, kit.first_block(p, 1), None);
    bad.signature = Signature([2; 64]);
    assert_eq!(
        drops(&send(&mut e, &kit, p, proposal_msg(bad))),
        ["bad_signature"]
    );
    // The block names someone else as its proposer.
    let fx = send(
        &mut e,
        &kit,
        p,
        proposal_msg(kit.proposal(p, 1, 0, kit.first_block(q, 1), None)),
    );
    assert_eq!(drops(&fx), ["proposer_mismatch"]);
    // A block of another height.
    let high = kit.block(2, kit.chain, kit.genesis_commit(), p, 1);
    assert_eq!(
        drops(&send(
            &mut e,
            &kit,
            p,
            proposal_msg(kit.proposal(p, 1, 0, high, None))
        )),
        ["wrong_height"]
    );
    // On a parent that is not the committed tip.
    let orphan = kit.block(1, Hash([9; 32]), kit.genesis_commit(), p, 1);
    assert_eq!(
        drops(&send(
            &mut e,
            &kit,
            p,
            proposal_msg(kit.proposal(p, 1, 0, orphan, None))
        )),
        ["wrong_parent"]
    );
    // With a HotStuff seal.
    let mut hs = kit.first_block(p, 1);
    hs.header.seal = Seal::HotStuff {
        round: Round(1),
        justify: kit.genesis_commit(),
    };
    assert_eq!(
        drops(&send(
            &mut e,
            &kit,
            p,
            proposal_msg(kit.proposal(p, 1, 0, hs, None))
        )),
        ["not_pbft"]
    );
    // With a parent certificate for another block.
    let wrong_cert = kit.block(
        1,
        kit.chain,
        QuorumCert {
            round: Round(0),
            block: Hash([3; 32]),
            votes: Vec::new(),
        },
        p,
        1,
    );
    assert_eq!(
        drops(&send(
            &mut e,
            &kit,
            p,
            proposal_msg(kit.proposal(p, 1, 0, wrong_cert, None))
        )),
        ["invalid_cert"]
    );
}

#[test]
fn proposals_whose_round_is_not_justified() {
    let kit = Kit::new(4);
    let (mut e, _) = bystander(&kit);
    let p1 = kit.proposer(1, 1);
    let fx = send(
        &mut e,
        &kit,
        p1,
        proposal_msg(kit.proposal(p1, 1, 1, kit.first_block(p1, 1), None)),
    );
    assert_eq!(drops(&fx), ["unjustified_round"]);
    let p0 = kit.proposer(1, 0);
    let rcs: Vec<_> = (0..3)
        .map(|i| kit.round_change(i, 1, 1, None, None))
        .collect();
    let cert = kit.justification(1, &rcs);
    let fx = send(
        &mut e,
        &kit,
        p0,
        proposal_msg(kit.proposal(p0, 1, 0, kit.first_block(p0, 1), Some(cert))),
    );
    assert_eq!(drops(&fx), ["justified_round_zero"]);
    // Two round changes are not a quorum.
    let thin = kit.justification(1, &rcs[..2]);
    let fx = send(
        &mut e,
        &kit,
        p1,
        proposal_msg(kit.proposal(p1, 1, 1, kit.first_block(p1, 1), Some(thin))),
    );
    assert_eq!(drops(&fx), ["invalid_cert"]);
}

#[test]
fn stale_and_future_positions() {
    let kit = Kit::new(4);
    let (mut e, v) = bystander(&kit);
    let w = (0..4).find(|&i| i != v).unwrap();
    let id = kit.first_block(0, 1).hash();
    let fx = send(&mut e, &kit, w, Message::Prepare(kit.prepare(w, 0, 0, id)));
    assert_eq!(drops(&fx), ["stale_height"]);
    // A verified message from a height ahead: dropped, and the sender asked for blocks.
    let fx = send(&mut e, &kit, w, Message::Commit(kit.commit(w, 5, 0, id)));
    assert_eq!(drops(&fx), ["future_height"]);
    assert!(fx.iter().any(|f| matches!(f, Effect::FetchBlocks { from, request } if *from == kit.key(w) && request.from_height == Height(1))));
    // Moved to round 1 by its timer, round 0's proposal is stale.
    e.handle(Input::Timeout {
        height: Height(1),
        round: Round(0),
    });
    let p = kit.proposer(1, 0);
    let fx = send(
        &mut e,
        &kit,
        p,
        proposal_msg(kit.proposal(p, 1, 0, kit.first_block(p, 1), None)),
    );
    assert_eq!(drops(&fx), ["stale_round"]);
    let fx = e.handle(Input::Timeout {
        height: Height(1),
        round: Round(0),
    });
    assert_eq!(drops(&fx), ["stale_timer"]);
    // Round 1 ends by its timer once a quorum is known to be in it (that quorum re-armed
    // the timer, so the first timer to fire is stale); a round change to it is then stale,
    // and the sender, behind, gets this node's own round change for that round, once.
    let others: Vec<usize> = (0..4).filter(|&i| i != v).collect();
    for &i in &others[..2] {
        let rc = kit.round_change(i, 1, 1, None, None);
        let fx = send(&mut e, &kit, i, Message::RoundChange(Box::new(rc)));
        assert!(drops(&fx).is_empty(), "{:?}", dropped(&fx));
    }
    let fx = e.handle(Input::Timeout {
        height: Height(1),
        round: Round(1),
    });
    assert_eq!(drops(&fx), ["stale_timer"]);
    e.handle(Input::Timeout {
        height: Height(1),
        round: Round(1),
    });
    assert_eq!(e.current_round(), Round(2));
    let y = others[2];
    let late = Message::RoundChange(Box::new(kit.round_change(y, 1, 1, None, None)));
    let fx = send(&mut e, &kit, y, late.clone());
    assert_eq!(drops(&fx), ["stale_round"]);
    let answered = |fx: &[Effect]| {
        fx.iter()
            .filter(|f| matches!(f, Effect::Send { to, msg: Message::RoundChange(rc) } if *to == kit.key(y) && rc.round == Round(1) && rc.sender == kit.key(v)))
            .count()
    };
    assert_eq!(answered(&fx), 1);
    assert_eq!(answered(&send(&mut e, &kit, y, late)), 0);
}

#[test]
fn round_changes_with_false_prepared_claims() {
    let kit = Kit::new(4);
    let (mut e, v) = bystander(&kit);
    let w = (0..4).find(|&i| i != v).unwrap();
    let a = kit.first_block(kit.proposer(1, 0), 1);
    let thin = kit.prepare_cert(1, 0, a.hash(), &[0, 1]);
    let fx = send(
        &mut e,
        &kit,
        w,
        Message::RoundChange(Box::new(kit.round_change(w, 1, 1, Some(thin), None))),
    );
    assert_eq!(drops(&fx), ["invalid_cert"]);
    let qc = kit.prepare_cert(1, 0, a.hash(), &[0, 1, 2]);
    let other = kit.first_block(kit.proposer(1, 0), 2);
    let fx = send(
        &mut e,
        &kit,
        w,
        Message::RoundChange(Box::new(kit.round_change(
            w,
            1,
            1,
            Some(qc),
            Some(other.clone()),
        ))),
    );
    assert_eq!(drops(&fx), ["prepared_block_mismatch"]);
    let fx = send(
        &mut e,
        &kit,
        w,
        Message::RoundChange(Box::new(kit.round_change(w, 1, 1, None, Some(other)))),
    );
    assert_eq!(drops(&fx), ["prepared_block_mismatch"]);
    let fx = send(
        &mut e,
        &kit,
        w,
        Message::RoundChange(Box::new(kit.round_change(w, 1, 0, None, None))),
    );
    assert_eq!(drops(&fx), ["invalid_cert"]);
    let ok = kit.round_change(w, 1, 1, None, None);
    assert!(
        drops(&send(
            &mut e,
            &kit,
            w,
            Message::RoundChange(Box::new(ok.clone()))
        ))
        .is_empty()
    );
    assert_eq!(
        drops(&send(&mut e, &kit, w, Message::RoundChange(Box::new(ok)))),
        ["duplicate"]
    );
}

#[test]
fn payloads_timers_and_validity_answers_nobody_asked_for() {
    let kit = Kit::new(4);
    let (mut e, v) = bystander(&kit);
    let fx = e.handle(Input::Payload(kit.first_block(v, 1)));
    assert_eq!(drops(&fx), ["payload_mismatch"]);
    // An answer for a block never asked about changes nothing.
    let fx = e.handle(Input::Validity {
        block: Hash([5; 32]),
        validity: Validity::Valid,
    });
    assert!(fx.is_empty());
    let p = kit.proposer(1, 0);
    let block = kit.first_block(p, 1);
    send(
        &mut e,
        &kit,
        p,
        proposal_msg(kit.proposal(p, 1, 0, block.clone(), None)),
    );
    let fx = e.handle(Input::Validity {
        block: block.hash(),
        validity: Validity::AheadOfClock {
            reason: "12 s ahead".to_string(),
        },
    });
    assert_eq!(drops(&fx), ["ahead_of_clock"]);
    assert!(broadcasts(&fx).is_empty());
    let (mut e2, _) = bystander(&kit);
    send(
        &mut e2,
        &kit,
        p,
        proposal_msg(kit.proposal(p, 1, 0, block.clone(), None)),
    );
    let fx = e2.handle(Input::Validity {
        block: block.hash(),
        validity: Validity::Invalid {
            reason: "bad state root".to_string(),
        },
    });
    assert_eq!(drops(&fx), ["invalid_block"]);
    assert!(broadcasts(&fx).is_empty());
}

#[test]
fn the_proposer_refuses_a_payload_that_is_not_what_it_asked_for() {
    let kit = Kit::new(4);
    let p = kit.proposer(1, 0);
    let (mut e, fx) = kit.engine(p);
    let request = fx
        .into_iter()
        .find(|f| matches!(f, Effect::RequestPayload { .. }))
        .expect("no request");
    let mut block = empty_payload(request, kit.address(p), TimestampMs(1)).unwrap();
    block.header.parent = Hash([4; 32]);
    assert_eq!(
        drops(&e.handle(Input::Payload(block))),
        ["payload_mismatch"]
    );
    let other = kit.first_block((p + 1) % 4, 1);
    assert_eq!(
        drops(&e.handle(Input::Payload(other))),
        ["payload_mismatch"]
    );
}

#[test]
fn sync_answers_unasked_empty_or_forged() {
    let kit = Kit::new(4);
    let (mut e, v) = bystander(&kit);
    let w = (0..4).find(|&i| i != v).unwrap();
    let b1 = kit.first_block(kit.proposer(1, 0), 1);
    let answer = SyncResponse {
        blocks: vec![b1.clone()],
        tip_qc: kit.commit_cert(1, 0, b1.hash(), &[0, 1, 2]),
    };
    let fx = send(
        &mut e,
        &kit,
        w,
        Message::SyncResponse(Box::new(answer.clone())),
    );
    assert_eq!(drops(&fx), ["unsolicited_sync"]);
    // Asked (it saw a commit from height 3), w answers.
    send(
        &mut e,
        &kit,
        w,
        Message::Commit(kit.commit(w, 3, 0, Hash([1; 32]))),
    );
    let empty = SyncResponse {
        blocks: Vec::new(),
        tip_qc: answer.tip_qc.clone(),
    };
    assert_eq!(
        drops(&send(
            &mut e,
            &kit,
            w,
            Message::SyncResponse(Box::new(empty))
        )),
        ["bad_sync"]
    );
    let thin = SyncResponse {
        blocks: vec![b1.clone()],
        tip_qc: kit.commit_cert(1, 0, b1.hash(), &[0, 1]),
    };
    assert_eq!(
        drops(&send(
            &mut e,
            &kit,
            w,
            Message::SyncResponse(Box::new(thin))
        )),
        ["forged_sync"]
    );
    let gap = SyncResponse {
        blocks: vec![
            b1.clone(),
            kit.block(3, b1.hash(), answer.tip_qc.clone(), 0, 1),
        ],
        tip_qc: answer.tip_qc.clone(),
    };
    assert_eq!(
        drops(&send(&mut e, &kit, w, Message::SyncResponse(Box::new(gap)))),
        ["forged_sync"]
    );
    let fx = send(&mut e, &kit, w, Message::SyncResponse(Box::new(answer)));
    assert!(drops(&fx).is_empty(), "{:?}", dropped(&fx));
    assert_eq!(commits(&fx).len(), 1);
    assert_eq!(e.committed_height(), Height(1));
    // Nothing to give a peer asking beyond the tip.
    let fx = send(
        &mut e,
        &kit,
        w,
        Message::SyncRequest(SyncRequest {
            from_height: Height(9),
            blocks_max: 4,
        }),
    );
    assert_eq!(drops(&fx), ["nothing_to_serve"]);
    let fx = send(
        &mut e,
        &kit,
        w,
        Message::SyncRequest(SyncRequest {
            from_height: Height(1),
            blocks_max: 4,
        }),
    );
    assert!(fx.iter().any(
        |f| matches!(f, Effect::Send { msg: Message::SyncResponse(r), .. } if r.blocks.len() == 1)
    ));
}

#[test]
fn an_observing_validator_signs_nothing_and_a_stranger_using_its_key_stops_it() {
    let kit = Kit::new(4);
    let v = kit.bystander(1, 0);
    let mut cfg = kit.config();
    cfg.double_sign_check_rounds = 2;
    let mut e = Engine::new(
        cfg,
        kit.signer(v),
        Box::new(crate::bft::Ed25519Verifier),
        None,
    )
    .unwrap();
    e.start();
    assert!(e.observing());
    let fx = e.handle(Input::Timeout {
        height: Height(1),
        round: Round(0),
    });
    assert_eq!(drops(&fx), ["safety_rules"]);
    assert!(broadcasts(&fx).is_empty());
    // A valid prepare of its own key it never signed.
    let fx = send(
        &mut e,
        &kit,
        0,
        Message::Prepare(kit.prepare(v, 1, 1, Hash([8; 32]))),
    );
    assert!(
        dropped(&fx)
            .iter()
            .any(|d| matches!(d, DropReason::Safety(SafetyError::SignedElsewhere { .. })))
    );
    assert!(e.signing_halted().is_some());
}
