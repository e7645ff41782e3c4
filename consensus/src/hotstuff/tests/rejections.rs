//! Every rejection path: each bad input is dropped with its reason, never a panic, and
//! equivocation yields evidence.

use cairn_ledger::block::{BlockHeader, QuorumCert, Seal};
use cairn_ledger::crypto::Keypair;
use cairn_ledger::{Hash, Height, Round};

use super::*;

/// Moves `e` (validator `me`) to round `r` with a TC for r−1 delivered by another validator.
fn enter_round(kit: &Kit, e: &mut Engine, me: usize, r: u64) {
    let other = (me + 1) % kit.keys.len();
    let mut t = kit.timeout(other, r, &kit.genesis_qc());
    t.tc = Some(kit.tc(r - 1, &kit.genesis_qc(), &[0, 1, 2]));
    e.handle(Input::Message(
        kit.key(other),
        Message::Timeout(Box::new(t)),
    ));
    assert_eq!(e.current_round(), Round(r));
}

fn only_drop(effects: &[Effect]) -> DropReason {
    let d = drops(effects);
    assert_eq!(d.len(), 1, "{effects:?}");
    d[0].clone()
}

#[test]
fn malformed_bytes_and_oversized_certificates_are_dropped() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(0);
    let reason = only_drop(&e.handle(Input::Bytes(kit.key(1), vec![1, 2, 3])));
    assert_eq!(reason.label(), "malformed");
    // A QC with more signatures than there are validators.
    let b = kit.block(1, &kit.genesis, &kit.qc(1, Hash([1; 32]), &[0, 1, 2, 3]), 0);
    let mut p = kit.proposal(b, None);
    if let Seal::HotStuff { justify, .. } = &mut p.block.header.seal {
        justify.votes.push(justify.votes[0]);
    }
    let bytes = kit.msg(p).encode();
    let reason = only_drop(&e.handle(Input::Bytes(kit.key(1), bytes)));
    assert!(matches!(reason, DropReason::OutOfBounds(_)), "{reason}");
}

#[test]
fn bad_votes_are_dropped_with_their_reason() {
    let kit = Kit::new(4);
    let leader2 = kit.leader(2);
    let (mut e, _) = kit.engine(leader2);
    let voter = (leader2 + 1) % 4;
    let block = Hash([7; 32]);
    let vote = |v: VoteMsg| Input::Message(kit.key(voter), Message::Vote(v));

    let outsider = Keypair::from_secret(&[99; 32]);
    let mut v = kit.vote(voter, 1, block);
    v.voter = outsider.public();
    assert!(matches!(
        only_drop(&e.handle(vote(v))),
        DropReason::NotAValidator { .. }
    ));

    let mut v = kit.vote(voter, 1, block);
    v.signature = kit.vote((voter + 1) % 4, 1, block).signature;
    assert!(matches!(
        only_drop(&e.handle(vote(v))),
        DropReason::BadSignature { what: "vote", .. }
    ));

    let far = 1 + VOTE_ROUNDS_AHEAD_MAX + 4;
    let far = (far..far + 8)
        .find(|&r| kit.leader(r + 1) == leader2)
        .unwrap();
    assert!(matches!(
        only_drop(&e.handle(vote(kit.vote(voter, far, block)))),
        DropReason::FutureRound { .. }
    ));

    let (mut not_leader, _) = kit.engine(kit.bystander(1));
    assert!(matches!(
        only_drop(&not_leader.handle(vote(kit.vote(voter, 1, block)))),
        DropReason::NotNextLeader { .. }
    ));

    assert!(drops(&e.handle(vote(kit.vote(voter, 1, block)))).is_empty());
    assert!(matches!(
        only_drop(&e.handle(vote(kit.vote(voter, 1, block)))),
        DropReason::RepeatedVote { .. }
    ));
    let effects = e.handle(vote(kit.vote(voter, 1, Hash([8; 32]))));
    assert!(matches!(
        only_drop(&effects),
        DropReason::EquivocatingVote { .. }
    ));
    let evidence: Vec<&Evidence> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Evidence(ev) => Some(ev),
            _ => None,
        })
        .collect();
    assert!(
        matches!(evidence[..], [Evidence::ConflictingVotes { first, second }]
        if first.block == block && second.block == Hash([8; 32]))
    );
    assert_eq!(evidence[0].offender(), kit.key(voter));

    // Round 1's QC is useless once round 2 is over.
    enter_round(&kit, &mut e, leader2, 5);
    assert!(matches!(
        only_drop(&e.handle(vote(kit.vote(voter, 1, Hash([9; 32]))))),
        DropReason::StaleRound { .. }
    ));
}

#[test]
fn bad_proposals_are_dropped_with_their_reason() {
    let kit = Kit::new(4);
    let me = kit.bystander(1);
    let (mut e, _) = kit.engine(me);
    let l1 = kit.key(kit.leader(1));
    let g = kit.genesis_qc();
    let send = |e: &mut Engine, p: ProposalMsg| e.handle(Input::Message(l1, kit.msg(p)));

    let mut b = kit.block(1, &kit.genesis, &g, 0);
    b.header.proposer = kit.key(me).address();
    assert!(matches!(
        only_drop(&send(&mut e, kit.proposal(b, None))),
        DropReason::WrongLeader { .. }
    ));

    let b = kit.block(1, &kit.genesis, &g, 0);
    let mut p = kit.proposal(b.clone(), None);
    p.signature = kit.keys[me].sign(b"something else");
    assert!(matches!(
        only_drop(&send(&mut e, p)),
        DropReason::BadSignature {
            what: "proposal",
            ..
        }
    ));

    let mut pow = b.clone();
    pow.header.seal = Seal::Pow { bits: 0, nonce: 0 };
    let mut p = kit.proposal(b.clone(), None);
    p.block = pow;
    assert!(matches!(
        only_drop(&send(&mut e, p)),
        DropReason::NotHotStuff { .. }
    ));

    let unjustified = kit.block(3, &kit.genesis, &g, 0);
    let from3 = kit.key(kit.leader(3));
    let effects = e.handle(Input::Message(
        from3,
        kit.msg(kit.proposal(unjustified, None)),
    ));
    assert!(matches!(
        only_drop(&effects),
        DropReason::UnjustifiedRound { .. }
    ));

    // The good one, then the same again, then a second block for round 1.
    assert!(drops(&send(&mut e, kit.proposal(b.clone(), None))).is_empty());
    assert!(matches!(
        only_drop(&send(&mut e, kit.proposal(b.clone(), None))),
        DropReason::Duplicate {
            what: "proposal",
            ..
        }
    ));
    let other = kit.block(1, &kit.genesis, &g, 2);
    let effects = send(&mut e, kit.proposal(other.clone(), None));
    assert!(matches!(
        only_drop(&effects),
        DropReason::Equivocation {
            what: "proposal",
            ..
        }
    ));
    assert!(effects.iter().any(|e| matches!(e,
        Effect::Evidence(Evidence::ConflictingProposals { first, second })
            if first.block == b.hash() && second.block == other.hash())));

    let mut tall = kit.block(2, &b, &kit.qc_for(&b), 0);
    tall.header.height = Height(7);
    assert!(matches!(
        only_drop(&send(&mut e, kit.proposal(tall, None))),
        DropReason::Tree(TreeError::HeightMismatch { .. })
    ));
}

#[test]
fn invalid_quorum_certificates_are_dropped_with_the_offence() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(kit.bystander(2));
    let b1 = kit.block(1, &kit.genesis, &kit.genesis_qc(), 0);
    let try_qc = |e: &mut Engine, qc: QuorumCert| {
        let b2 = kit.block(2, &b1, &qc, 0);
        let effects = e.handle(Input::Message(
            kit.key(kit.leader(2)),
            kit.msg(kit.proposal(b2, None)),
        ));
        match only_drop(&effects) {
            DropReason::InvalidCert(err) => err,
            other => panic!("{other}"),
        }
    };
    let id = b1.hash();
    assert!(matches!(
        try_qc(&mut e, kit.qc(1, id, &[0, 1])),
        CertError::InsufficientPower {
            power: 2,
            quorum: 3,
            ..
        }
    ));
    let mut dup = kit.qc(1, id, &[0, 1]);
    dup.votes.push(dup.votes[0]);
    assert!(matches!(
        try_qc(&mut e, dup),
        CertError::DuplicateSigner { .. }
    ));
    let mut outsider = kit.qc(1, id, &[0, 1, 2]);
    outsider.votes[0].0 = Keypair::from_secret(&[99; 32]).public();
    assert!(matches!(
        try_qc(&mut e, outsider),
        CertError::NotAValidator { .. }
    ));
    let mut forged = kit.qc(1, id, &[0, 1, 2]);
    forged.votes[1].1 = forged.votes[0].1;
    assert!(matches!(
        try_qc(&mut e, forged),
        CertError::BadSignature { what: "QC", .. }
    ));
    let mut unsigned = kit.qc(1, id, &[0]);
    unsigned.votes.clear();
    assert!(matches!(
        try_qc(&mut e, unsigned),
        CertError::Unsigned { .. }
    ));
    let false_genesis = QuorumCert {
        round: Round(0),
        block: id,
        votes: Vec::new(),
    };
    assert!(matches!(
        try_qc(&mut e, false_genesis),
        CertError::FalseGenesis { .. }
    ));
}

#[test]
fn bad_timeouts_and_timeout_certificates_are_dropped() {
    let kit = Kit::new(4);
    let me = 0;
    let (mut e, _) = kit.engine(me);
    let g = kit.genesis_qc();
    let send = |e: &mut Engine, t: TimeoutMsg| {
        e.handle(Input::Message(kit.key(1), Message::Timeout(Box::new(t))))
    };
    let mut t = kit.timeout(1, 1, &g);
    t.signature = kit.timeout(2, 1, &g).signature;
    assert!(matches!(
        only_drop(&send(&mut e, t)),
        DropReason::BadSignature {
            what: "timeout",
            ..
        }
    ));
    let mut t = kit.timeout(1, 1, &g);
    t.sender = Keypair::from_secret(&[99; 32]).public();
    assert!(matches!(
        only_drop(&send(&mut e, t)),
        DropReason::NotAValidator { .. }
    ));
    assert!(matches!(
        only_drop(&send(&mut e, kit.timeout(1, 4, &g))),
        DropReason::FutureRound { .. }
    ));
    assert!(drops(&send(&mut e, kit.timeout(1, 1, &g))).is_empty());
    assert!(matches!(
        only_drop(&send(&mut e, kit.timeout(1, 1, &g))),
        DropReason::Duplicate { .. }
    ));
    // A TC whose QC is not the highest its signers claim.
    let b1 = kit.block(1, &kit.genesis, &g, 0);
    let mut tc = kit.tc(2, &kit.qc_for(&b1), &[0, 1, 2]);
    tc.high_qc = g.clone();
    let mut t = kit.timeout(1, 3, &g);
    t.tc = Some(tc);
    assert!(matches!(
        only_drop(&send(&mut e, t)),
        DropReason::InvalidCert(CertError::TcHighQcMismatch { .. })
    ));
    enter_round(&kit, &mut e, me, 4);
    assert!(matches!(
        only_drop(&send(&mut e, kit.timeout(2, 2, &g))),
        DropReason::StaleRound { .. }
    ));
}

#[test]
fn the_two_chain_vote_rule_refuses_a_block_below_the_tcs_highest_qc() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(kit.bystander(3));
    let b1 = kit.block(1, &kit.genesis, &kit.genesis_qc(), 0);
    e.handle_valid(Input::Message(
        kit.key(kit.leader(1)),
        kit.msg(kit.proposal(b1.clone(), None)),
    ));
    // TC for round 2 proves someone holds QC(1); a round-3 block on genesis would abandon it.
    let tc2 = kit.tc(2, &kit.qc_for(&b1), &[0, 1, 2]);
    let b3 = kit.block(3, &kit.genesis, &kit.genesis_qc(), 0);
    let effects = e.handle_valid(Input::Message(
        kit.key(kit.leader(3)),
        kit.msg(kit.proposal(b3, Some(tc2))),
    ));
    assert!(votes_sent(&effects).is_empty());
    assert!(matches!(
        only_drop(&effects),
        DropReason::Safety(SafetyError::NotSafeToVote {
            round: Round(3),
            justify_round: Round(0),
            ..
        })
    ));
}

#[test]
fn local_inputs_out_of_turn_are_dropped() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(kit.bystander(1));
    assert!(matches!(
        only_drop(&e.handle(Input::Timeout(Round(7)))),
        DropReason::StaleTimer { .. }
    ));
    let b = kit.block(1, &kit.genesis, &kit.genesis_qc(), 0);
    assert!(matches!(
        only_drop(&e.handle(Input::Payload(b.clone()))),
        DropReason::PayloadMismatch { .. }
    ));
    let (mut leader, _) = kit.engine(kit.leader(1));
    let mut wrong = b;
    wrong.header.seal = Seal::HotStuff {
        round: Round(1),
        justify: kit.qc(0, Hash([1; 32]), &[]),
    };
    assert!(matches!(
        only_drop(&leader.handle(Input::Payload(wrong))),
        DropReason::PayloadMismatch { .. }
    ));
}

#[test]
fn bad_sync_exchanges_are_dropped() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(0);
    let outsider = Keypair::from_secret(&[99; 32]).public();
    let req = |h: u64| {
        Message::SyncRequest(SyncRequest {
            from_height: Height(h),
            blocks_max: 10,
        })
    };
    assert!(matches!(
        only_drop(&e.handle(Input::Message(outsider, req(1)))),
        DropReason::NotAValidator { .. }
    ));
    assert!(matches!(
        only_drop(&e.handle(Input::Message(kit.key(1), req(50)))),
        DropReason::NothingToServe { .. }
    ));
    let chain = kit.chain_of(3);
    let resp = |blocks: Vec<cairn_ledger::block::Block>, tip_qc: QuorumCert| {
        Input::Message(
            kit.key(1),
            Message::SyncResponse(Box::new(SyncResponse { blocks, tip_qc })),
        )
    };
    let wrong_tip = resp(chain[1..3].to_vec(), kit.qc_for(&chain[1]));
    e.expect_sync_answer(kit.key(1), Height(1));
    assert!(matches!(
        only_drop(&e.handle(wrong_tip)),
        DropReason::ForgedSync { .. }
    ));
    // Starting above the height asked: not an answer to that request (a late answer to an
    // older one looks the same), dropped unverified, no strike.
    let gap = resp(vec![chain[2].clone()], kit.qc_for(&chain[2]));
    e.expect_sync_answer(kit.key(1), Height(1));
    let reason = only_drop(&e.handle(gap));
    assert!(
        matches!(reason, DropReason::UnsolicitedSync { .. }) && !reason.is_fault(),
        "{reason:?}"
    );
    e.expect_sync_answer(kit.key(1), Height(1));
    assert!(matches!(
        only_drop(&e.handle(resp(vec![], kit.genesis_qc()))),
        DropReason::BadSync { .. }
    ));
}

#[test]
fn proposals_waiting_for_ancestors_are_bounded() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(0);
    let mut reasons = Vec::new();
    for r in 2..(PENDING_PROPOSALS_MAX as u64 + 4) {
        let missing = Hash([r as u8; 32]);
        let justify = kit.qc(r - 1, missing, &[0, 1, 2]);
        let mut b = kit.block(r, &kit.genesis, &justify, 0);
        b.header.parent = missing;
        let effects = e.handle(Input::Message(
            kit.key(kit.leader(r)),
            kit.msg(kit.proposal(b, None)),
        ));
        reasons.extend(drops(&effects));
    }
    assert_eq!(e.buffered().1, PENDING_PROPOSALS_MAX);
    assert!(
        reasons
            .iter()
            .all(|r| matches!(r, DropReason::PendingFull { .. })),
        "{reasons:?}"
    );
    assert_eq!(reasons.len(), 2);
}

#[test]
fn a_block_forking_below_the_committed_root_is_refused() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(kit.bystander(6));
    let chain = kit.chain_of(5);
    for (r, block) in chain.iter().enumerate().skip(1) {
        e.handle(Input::Message(
            kit.key(kit.leader(r as u64)),
            kit.msg(kit.proposal(block.clone(), None)),
        ));
    }
    assert_eq!(e.committed_height(), Height(3));
    // A QC for an unknown round-2 block, justified into round 6 by a TC for round 5.
    let stranger = Hash([42; 32]);
    let qc2 = kit.qc(2, stranger, &[0, 1, 2]);
    let tc5 = kit.tc(5, &qc2, &[0, 1, 2]);
    let mut b6 = kit.block(6, &chain[5], &qc2, 0);
    b6.header.parent = stranger;
    b6.header = BlockHeader {
        height: Height(3),
        ..b6.header
    };
    let effects = e.handle(Input::Message(
        kit.key(kit.leader(6)),
        kit.msg(kit.proposal(b6, Some(tc5))),
    ));
    assert!(matches!(
        only_drop(&effects),
        DropReason::ConflictsWithCommitted { .. }
    ));
}
