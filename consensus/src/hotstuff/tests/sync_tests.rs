//! Missing ancestors and catch-up through certified blocks.

use cairn_ledger::block::{Block, QuorumCert};
use cairn_ledger::{Height, Round};

use super::*;

/// An engine that has seen the proposals of rounds 1..=n of `kit.chain_of(n)`.
fn server(kit: &Kit, n: u64) -> (Engine, Vec<cairn_ledger::block::Block>) {
    let chain = kit.chain_of(n);
    let (mut s, _) = kit.engine(kit.bystander(n));
    for r in 1..=n {
        s.handle(Input::Message(
            kit.key(kit.leader(r)),
            kit.msg(kit.proposal(chain[r as usize].clone(), None)),
        ));
    }
    (s, chain)
}

fn fetch_request(effects: &[Effect]) -> Option<(cairn_ledger::PublicKey, SyncRequest)> {
    effects.iter().find_map(|e| match e {
        Effect::FetchBlocks { from, request } => Some((*from, request.clone())),
        _ => None,
    })
}

fn response_to(effects: &[Effect]) -> Message {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Send {
                msg: m @ Message::SyncResponse(_),
                ..
            } => Some(m.clone()),
            _ => None,
        })
        .expect("a sync response")
}

#[test]
fn a_proposal_with_a_missing_parent_waits_for_it_then_gets_its_vote() {
    let kit = Kit::new(4);
    let me = kit.bystander(3);
    let (mut e, _) = kit.engine(me);
    // The server saw rounds 1..=3, so it holds blocks 1 and 2 and the QC of 2.
    let (mut s, chain) = server(&kit, 3);
    let l3 = kit.key(kit.leader(3));
    let b3 = chain[3].clone();
    let effects = e.handle_valid(Input::Message(l3, kit.msg(kit.proposal(b3.clone(), None))));
    let (from, request) = fetch_request(&effects).expect("asks for the missing blocks");
    assert_eq!((from, request.from_height), (l3, Height(1)));
    assert!(votes_sent(&effects).is_empty());
    assert_eq!(e.buffered().1, 1);
    // The peer asked answers (with the same certified chain `s` serves).
    let served = s.handle_valid(Input::Message(kit.key(me), Message::SyncRequest(request)));
    let effects = e.handle_valid(Input::Message(l3, response_to(&served)));
    assert!(drops(&effects).is_empty(), "{effects:?}");
    let votes = votes_sent(&effects);
    assert_eq!(votes.len(), 1);
    assert_eq!((votes[0].1.round, votes[0].1.block), (Round(3), b3.hash()));
    assert_eq!(e.buffered(), (2, 0));
    assert_eq!(e.committed_height(), Height(1));
}

#[test]
fn a_fresh_node_catches_up_through_certified_blocks_and_commits_the_same_chain() {
    let kit = Kit::new(4);
    let (mut s, chain) = server(&kit, 8);
    assert_eq!(s.committed_height(), Height(6));
    let newcomer = kit.bystander(9);
    let (mut e, _) = kit.engine(newcomer);
    e.expect_sync_answer(s.public_key(), Height(1));
    let served = s.handle(Input::Message(
        kit.key(newcomer),
        Message::SyncRequest(SyncRequest {
            from_height: Height(1),
            blocks_max: 100,
        }),
    ));
    let effects = e.handle(Input::Message(s.public_key(), response_to(&served)));
    let committed: Vec<cairn_ledger::Hash> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Commit { blocks, .. } => Some(blocks.iter().map(|b| b.hash())),
            _ => None,
        })
        .flatten()
        .collect();
    let expected: Vec<cairn_ledger::Hash> = chain[1..=6].iter().map(|b| b.hash()).collect();
    assert_eq!(committed, expected);
    assert_eq!(e.committed_id(), s.committed_id());
    // Synced up to QC(7): the node is in round 8 like the server.
    assert_eq!(e.current_round(), s.current_round());
}

#[test]
fn a_block_is_stored_before_the_vote_for_it_leaves() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(kit.bystander(1));
    let b1 = kit.chain_of(1)[1].clone();
    let effects = e.handle_valid(Input::Message(
        kit.key(kit.leader(1)),
        kit.msg(kit.proposal(b1.clone(), None)),
    ));
    let store = effects
        .iter()
        .position(|e| matches!(e, Effect::StoreBlock(b) if *b == b1));
    let send = effects
        .iter()
        .position(|e| matches!(e, Effect::Send { .. }));
    assert!(store.unwrap() < send.unwrap(), "{effects:?}");
}

#[test]
fn a_restarted_node_rebuilds_its_tree_from_its_disk_and_still_serves_history() {
    let kit = Kit::new(4);
    let chain = kit.chain_of(6);
    let me = kit.bystander(6);
    let (mut e, _) = kit.engine(me);
    let mut effects = Vec::new();
    for (r, block) in chain.iter().enumerate().skip(1) {
        effects.extend(e.handle_valid(Input::Message(
            kit.key(kit.leader(r as u64)),
            kit.msg(kit.proposal(block.clone(), None)),
        )));
    }
    assert_eq!(e.committed_height(), Height(4));
    // What the driver kept on disk.
    let safety = effects
        .iter()
        .rev()
        .find_map(|e| match e {
            Effect::Persist(s) => Some((**s).clone()),
            _ => None,
        })
        .unwrap();
    let mut ledger = Vec::new();
    let mut tip_qc = None;
    let mut stored = Vec::new();
    for effect in &effects {
        match effect {
            Effect::Commit { blocks, qc } => {
                ledger.extend(blocks.iter().cloned());
                tip_qc = Some(qc.clone());
            }
            Effect::StoreBlock(b) => stored.push(b.clone()),
            _ => {}
        }
    }
    stored.retain(|b| b.header.height > Height(4));
    let tip = ledger.pop().unwrap();
    let (mut r, start) = kit.restarted(
        me,
        Some(RestartState {
            safety,
            committed: Some((tip, tip_qc.unwrap())),
            history: ledger,
            blocks: stored,
        }),
    );
    assert!(drops(&start).is_empty(), "{start:?}");
    assert_eq!(r.committed_id(), e.committed_id());
    assert_eq!(r.highest_certified(), e.highest_certified());
    assert_eq!(r.current_round(), e.current_round());
    // A node starting from nothing can sync everything from the restarted one.
    let (mut fresh, _) = kit.engine(kit.leader(6));
    fresh.expect_sync_answer(r.public_key(), Height(1));
    let served = r.handle_valid(Input::Message(
        fresh.public_key(),
        Message::SyncRequest(SyncRequest {
            from_height: Height(1),
            blocks_max: 64,
        }),
    ));
    fresh.handle_valid(Input::Message(r.public_key(), response_to(&served)));
    assert_eq!(fresh.committed_id(), e.committed_id());
}

/// A sync answer from validator `from`.
fn sync_answer(kit: &Kit, from: usize, blocks: Vec<Block>, tip_qc: &QuorumCert) -> Input {
    Input::Message(
        kit.key(from),
        Message::SyncResponse(Box::new(SyncResponse {
            blocks,
            tip_qc: tip_qc.clone(),
        })),
    )
}

/// Validator `from` shows `e` a QC for `block` in a timeout of `round`.
fn show_qc(kit: &Kit, e: &mut Engine, from: usize, round: u64, block: &Block) -> Vec<Effect> {
    let t = kit.timeout(from, round, &kit.qc_for(block));
    e.handle(Input::Message(kit.key(from), Message::Timeout(Box::new(t))))
}

#[test]
fn a_forged_answer_is_followed_at_once_by_a_request_to_another_validator() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(0);
    let chain = kit.chain_of(3);
    let effects = show_qc(&kit, &mut e, 2, 3, &chain[2]);
    let (asked, request) = fetch_request(&effects).expect("asks the peer that showed the QC");
    assert_eq!((asked, request.from_height), (kit.key(2), Height(1)));
    // Validator 2 answers with a gap (block 3 without block 2) in the same round.
    let forged = vec![chain[1].clone(), chain[3].clone()];
    let effects = e.handle(sync_answer(&kit, 2, forged, &kit.qc_for(&chain[3])));
    assert!(
        matches!(drops(&effects)[..], [DropReason::ForgedSync { .. }]),
        "{effects:?}"
    );
    let (next, request) = fetch_request(&effects).expect("asks another validator at once");
    assert!(next != kit.key(2) && next != kit.key(0), "asked {next}");
    assert_eq!(request.from_height, Height(1));
    let other = (1..4).find(|&i| kit.key(i) == next).unwrap();
    let effects = e.handle(sync_answer(
        &kit,
        other,
        chain[1..=2].to_vec(),
        &kit.qc_for(&chain[2]),
    ));
    assert!(drops(&effects).is_empty(), "{effects:?}");
    assert_eq!(e.committed_height(), Height(1));
    // Caught up: nothing more is asked.
    assert!(fetch_request(&effects).is_none(), "{effects:?}");
}

/// The byzantine test's attack on a validator restarted behind: the peer asked answers with
/// blocks above the height asked. That answers no request (no strike: an honest late answer
/// to a replaced request looks the same), but another validator is asked at once; waiting
/// for the next round instead cost the node a backed-off round timer per lying answer.
#[test]
fn an_answer_at_another_height_from_the_peer_asked_is_followed_at_once_by_a_request_to_another_validator()
 {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(0);
    let chain = kit.chain_of(4);
    let effects = show_qc(&kit, &mut e, 2, 4, &chain[3]);
    let (asked, request) = fetch_request(&effects).expect("asks the peer that showed the QC");
    assert_eq!((asked, request.from_height), (kit.key(2), Height(1)));
    let effects = e.handle(sync_answer(
        &kit,
        2,
        chain[2..=3].to_vec(),
        &kit.qc_for(&chain[3]),
    ));
    assert!(
        matches!(drops(&effects)[..], [DropReason::UnsolicitedSync { .. }]),
        "{effects:?}"
    );
    let (next, request) = fetch_request(&effects).expect("asks another validator at once");
    assert!(next != kit.key(2) && next != kit.key(0), "asked {next}");
    assert_eq!(request.from_height, Height(1));
    let other = (1..4).find(|&i| kit.key(i) == next).unwrap();
    let effects = e.handle(sync_answer(
        &kit,
        other,
        chain[1..=3].to_vec(),
        &kit.qc_for(&chain[3]),
    ));
    assert!(drops(&effects).is_empty(), "{effects:?}");
    assert_eq!(e.committed_height(), Height(2));
    // The request to validator 2 stays open: its real answer is still read.
    let effects = e.handle(sync_answer(&kit, 2, Vec::new(), &kit.qc_for(&chain[3])));
    assert!(
        matches!(drops(&effects)[..], [DropReason::BadSync { .. }]),
        "{effects:?}"
    );
}

/// A peer never asked gets no request sent on its account, however many answers it sends.
#[test]
fn answers_from_a_peer_never_asked_draw_no_requests() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(0);
    let chain = kit.chain_of(4);
    show_qc(&kit, &mut e, 2, 4, &chain[3]);
    for _ in 0..10 {
        let effects = e.handle(sync_answer(
            &kit,
            3,
            chain[1..=3].to_vec(),
            &kit.qc_for(&chain[3]),
        ));
        assert!(
            matches!(drops(&effects)[..], [DropReason::UnsolicitedSync { .. }]),
            "{effects:?}"
        );
        assert!(fetch_request(&effects).is_none(), "{effects:?}");
    }
}

#[test]
fn a_peer_that_forged_an_answer_is_not_asked_first_again() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(0);
    let chain = kit.chain_of(5);
    show_qc(&kit, &mut e, 2, 3, &chain[2]);
    let forged = vec![chain[1].clone(), chain[3].clone()];
    let effects = e.handle(sync_answer(&kit, 2, forged, &kit.qc_for(&chain[3])));
    let (next, _) = fetch_request(&effects).expect("a retry");
    let other = (1..4).find(|&i| kit.key(i) == next).unwrap();
    e.handle(sync_answer(
        &kit,
        other,
        chain[1..=2].to_vec(),
        &kit.qc_for(&chain[2]),
    ));
    assert_eq!(e.committed_height(), Height(1));
    // Later, in another round, validator 2 is again the first to show a QC for a block
    // `e` lacks: someone else is asked.
    let effects = show_qc(&kit, &mut e, 2, 5, &chain[4]);
    let (asked, request) = fetch_request(&effects).expect("asks for the missing blocks");
    assert_eq!(request.from_height, Height(2));
    assert!(asked != kit.key(2) && asked != kit.key(0), "asked {asked}");
    // An engine that never got a forged answer asks validator 2 first.
    let (mut fresh, _) = kit.engine(0);
    let effects = show_qc(&kit, &mut fresh, 2, 5, &chain[4]);
    assert_eq!(fetch_request(&effects).map(|(k, _)| k), Some(kit.key(2)));
}

#[test]
fn retries_after_useless_answers_stop_after_one_pass_over_the_validators_in_a_round() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(0);
    let chain = kit.chain_of(3);
    let effects = show_qc(&kit, &mut e, 1, 3, &chain[2]);
    let mut asked = fetch_request(&effects).map(|(k, _)| k);
    let mut requests = 0;
    // Every validator asked answers with nothing: each answer may bring one more request,
    // and no more than one for each other validator in the round.
    while let Some(key) = asked {
        requests += 1;
        assert!(requests <= 4, "request {requests}");
        let i = (1..4).find(|&i| kit.key(i) == key).unwrap();
        let effects = e.handle(sync_answer(&kit, i, Vec::new(), &kit.qc_for(&chain[2])));
        assert!(
            matches!(drops(&effects)[..], [DropReason::BadSync { .. }]),
            "{effects:?}"
        );
        asked = fetch_request(&effects).map(|(k, _)| k);
    }
    // The first request and one retry for each of the 3 other validators.
    assert_eq!(requests, 4);
}

#[test]
fn a_peer_asked_twice_from_two_heights_is_not_a_forger_for_answering_the_later_request() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(0);
    let chain = kit.chain_of(4);
    // Validator 2 is asked from height 1; validator 1's answer catches `e` up to a root at
    // height 1 meanwhile, so validator 2 is asked again, from height 2.
    e.expect_sync_answer(kit.key(2), Height(1));
    e.expect_sync_answer(kit.key(1), Height(1));
    e.handle(sync_answer(
        &kit,
        1,
        chain[1..=2].to_vec(),
        &kit.qc_for(&chain[2]),
    ));
    assert_eq!(e.committed_height(), Height(1));
    e.expect_sync_answer(kit.key(2), Height(2));
    // Validator 2 answers the later request first: it is read against that request.
    let effects = e.handle(sync_answer(
        &kit,
        2,
        chain[2..=3].to_vec(),
        &kit.qc_for(&chain[3]),
    ));
    assert!(drops(&effects).is_empty(), "{effects:?}");
    assert_eq!(e.committed_height(), Height(2));
    // An answer starting at a height not asked of it answers no open request: dropped
    // unverified, no strike (an honest peer's late answer to a replaced request looks the
    // same), and the request stays open for the real answer.
    e.expect_sync_answer(kit.key(3), Height(3));
    let effects = e.handle(sync_answer(
        &kit,
        3,
        chain[2..=4].to_vec(),
        &kit.qc_for(&chain[4]),
    ));
    assert!(
        matches!(drops(&effects)[..], [DropReason::UnsolicitedSync { .. }]),
        "{effects:?}"
    );
    let effects = e.handle(sync_answer(
        &kit,
        3,
        chain[3..=4].to_vec(),
        &kit.qc_for(&chain[4]),
    ));
    assert!(drops(&effects).is_empty(), "{effects:?}");
    assert_eq!(e.committed_height(), Height(3));
}

#[test]
fn when_every_other_validator_is_remembered_as_a_forger_they_are_asked_in_turn() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(0);
    let chain = kit.chain_of(3);
    // Validators 1, 2 and 3 each answer a request with a forged chain.
    for i in 1..4 {
        e.expect_sync_answer(kit.key(i), Height(1));
        let forged = vec![chain[1].clone(), chain[3].clone()];
        e.handle(sync_answer(&kit, i, forged, &kit.qc_for(&chain[3])));
    }
    // The requests go round all three, not always to the same one.
    let asked: std::collections::BTreeSet<usize> = (0..6)
        .filter_map(|_| e.next_sync_peer(None))
        .map(|key| (1..4).find(|&i| kit.key(i) == key).unwrap())
        .collect();
    assert_eq!(asked.into_iter().collect::<Vec<_>>(), vec![1, 2, 3]);
}
