//! What one Byzantine peer may try against sync and votes, refused before it costs a block
//! in the tree or a signature check: unsolicited or misdirected sync answers, answers that
//! are not one certified chain, a forged tip certificate, and repeated votes.

use cairn_ledger::block::{Block, QuorumCert};
use cairn_ledger::{Height, Round};

use super::*;

fn answer(kit: &Kit, from: usize, blocks: Vec<Block>, tip_qc: QuorumCert) -> Input {
    Input::Message(
        kit.key(from),
        Message::SyncResponse(Box::new(SyncResponse { blocks, tip_qc })),
    )
}

fn only_drop(effects: &[Effect]) -> DropReason {
    let d = drops(effects);
    assert_eq!(d.len(), 1, "{effects:?}");
    d[0].clone()
}

/// Children of `parent`, each justified by `parent`'s public QC, none certified.
fn siblings(kit: &Kit, parent: &Block, round: u64, count: u64) -> Vec<Block> {
    let justify = kit.qc_for(parent);
    (0..count)
        .map(|salt| kit.block(round, parent, &justify, salt + 1))
        .collect()
}

#[test]
fn an_answer_nobody_asked_for_is_dropped_unverified_and_changes_nothing() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(0);
    let chain = kit.chain_of(3);
    let reason = only_drop(&e.handle(answer(
        &kit,
        1,
        chain[1..=2].to_vec(),
        kit.qc_for(&chain[2]),
    )));
    assert!(
        matches!(reason, DropReason::UnsolicitedSync { .. }),
        "{reason}"
    );
    // Not a fault: an honest answer that comes after newer requests replaced its own looks
    // the same. Dropped before any verification, it costs the sender nothing to send and us
    // only its decoding.
    assert!(!reason.is_fault());
    assert_eq!(e.buffered(), (0, 0));
}

#[test]
fn an_answer_from_a_peer_not_asked_is_refused_and_the_asked_one_still_read() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(0);
    let chain = kit.chain_of(3);
    // A QC for a block `e` lacks, shown by validator 2: `e` asks validator 2.
    let t = kit.timeout(2, 3, &kit.qc_for(&chain[2]));
    let effects = e.handle(Input::Message(kit.key(2), Message::Timeout(Box::new(t))));
    let asked = effects.iter().find_map(|e| match e {
        Effect::FetchBlocks { from, request } => Some((*from, request.from_height)),
        _ => None,
    });
    assert_eq!(asked, Some((kit.key(2), Height(1))));
    let good = || chain[1..=2].to_vec();
    let reason = only_drop(&e.handle(answer(&kit, 1, good(), kit.qc_for(&chain[2]))));
    assert!(
        matches!(reason, DropReason::UnsolicitedSync { .. }),
        "{reason}"
    );
    assert_eq!(e.buffered().0, 0);
    let effects = e.handle(answer(&kit, 2, good(), kit.qc_for(&chain[2])));
    assert!(drops(&effects).is_empty(), "{effects:?}");
    assert_eq!(e.buffered().0, 1);
    assert_eq!(e.committed_height(), Height(1));
    // The request is used up: the same answer again is unsolicited.
    let reason = only_drop(&e.handle(answer(&kit, 2, good(), kit.qc_for(&chain[2]))));
    assert!(
        matches!(reason, DropReason::UnsolicitedSync { .. }),
        "{reason}"
    );
}

#[test]
fn blocks_that_are_not_one_chain_are_refused_whole() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(0);
    let chain = kit.chain_of(4);
    // Block 3 without block 2: each block's parent must be the previous one.
    e.expect_sync_answer(kit.key(1), Height(1));
    let gap = vec![chain[1].clone(), chain[3].clone()];
    let reason = only_drop(&e.handle(answer(&kit, 1, gap, kit.qc_for(&chain[3]))));
    assert!(matches!(reason, DropReason::ForgedSync { .. }), "{reason}");
    assert!(reason.is_fault());
    assert_eq!(e.buffered().0, 0);
}

#[test]
fn uncertified_siblings_of_the_certified_tip_never_enter_the_tree() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(0);
    let chain = kit.chain_of(2);
    // The attack: children of a certified block, each justified by its public QC, and the
    // certified block last again so the tip QC matches.
    let mut flood = vec![chain[1].clone()];
    flood.extend(siblings(&kit, &chain[1], 2, 40));
    flood.push(chain[1].clone());
    e.expect_sync_answer(kit.key(1), Height(1));
    let reason = only_drop(&e.handle(answer(&kit, 1, flood.clone(), kit.qc_for(&chain[1]))));
    assert!(matches!(reason, DropReason::ForgedSync { .. }), "{reason}");
    assert_eq!(e.buffered().0, 0);
    // One chain whose last block no certificate covers: the tip QC must certify it.
    let tail = siblings(&kit, &chain[1], 2, 1).remove(0);
    e.expect_sync_answer(kit.key(1), Height(1));
    let uncertified = vec![chain[1].clone(), tail];
    let reason = only_drop(&e.handle(answer(&kit, 1, uncertified, kit.qc_for(&chain[1]))));
    assert!(matches!(reason, DropReason::ForgedSync { .. }), "{reason}");
    assert_eq!(e.buffered().0, 0);
    // Without the checks, the same flood goes in whole.
    let (mut old, _) = kit.engine(0);
    old.unsafe_accept_any_sync();
    old.handle(answer(&kit, 1, flood, kit.qc_for(&chain[1])));
    assert_eq!(old.buffered().0, 41);
}

#[test]
fn the_tip_certificate_is_verified_before_any_block_goes_in() {
    let kit = Kit::new(4);
    let (mut e, _) = kit.engine(0);
    let chain = kit.chain_of(3);
    // Blocks 1 and 2 are fine (2's justify certifies 1), but the QC for 2 is signed by
    // one validator only.
    e.expect_sync_answer(kit.key(1), Height(1));
    let weak = kit.qc(2, chain[2].hash(), &[1]);
    let reason = only_drop(&e.handle(answer(&kit, 1, chain[1..=2].to_vec(), weak)));
    assert!(matches!(reason, DropReason::InvalidCert(_)), "{reason}");
    assert_eq!(e.buffered().0, 0);
}

#[test]
fn a_repeated_vote_is_refused_before_its_signature_is_checked() {
    let kit = Kit::new(4);
    let leader = kit.leader(2);
    let (mut e, _) = kit.engine(leader);
    let voter = (leader + 1) % 4;
    let block = Hash([7; 32]);
    let vote = kit.vote(voter, 1, block);
    assert!(
        drops(&e.handle(Input::Message(kit.key(voter), Message::Vote(vote.clone())))).is_empty()
    );
    // The same vote with a broken signature: refused as a repeat, so never verified.
    let mut copy = vote.clone();
    copy.signature.0[0] ^= 1;
    let reason = only_drop(&e.handle(Input::Message(kit.key(voter), Message::Vote(copy))));
    assert_eq!(
        reason,
        DropReason::RepeatedVote {
            key: kit.key(voter),
            round: Round(1)
        }
    );
    assert!(reason.is_fault());
    // A vote for another block is verified (it may be evidence): a forged one is just that.
    let mut forged = kit.vote(voter, 1, Hash([8; 32]));
    forged.signature.0[0] ^= 1;
    let reason = only_drop(&e.handle(Input::Message(kit.key(voter), Message::Vote(forged))));
    assert!(
        matches!(reason, DropReason::BadSignature { .. }),
        "{reason}"
    );
    // A real one is evidence and a fault; after that, more are refused unverified.
    let effects = e.handle(Input::Message(
        kit.key(voter),
        Message::Vote(kit.vote(voter, 1, Hash([8; 32]))),
    ));
    assert!(effects.iter().any(|x| matches!(x, Effect::Evidence(_))));
    assert!(matches!(
        only_drop(&effects),
        DropReason::EquivocatingVote { .. }
    ));
    let mut third = kit.vote(voter, 1, Hash([9; 32]));
    third.signature.0[0] ^= 1;
    let reason = only_drop(&e.handle(Input::Message(kit.key(voter), Message::Vote(third))));
    assert!(
        matches!(reason, DropReason::EquivocatingVote { .. }),
        "{reason}"
    );
}
