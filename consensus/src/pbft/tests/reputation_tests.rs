//! Leader reputation under PBFT: proposers chosen by turns counted along the committed chain,
//! a silent proposer passed over after its failed turn, brought back, and agreed on after a
//! restart; and the turn a block must carry.

use super::cluster::Cluster;
use super::*;

/// Chain time in the cluster is the count of delivered messages (some 30 a height).
const RETRY_AFTER_MS: u64 = 2_000;

fn kit(n: usize, election: LeaderElection) -> Kit {
    let mut kit = Kit::new(n);
    kit.leader_election = election;
    kit
}

fn reputation() -> LeaderElection {
    LeaderElection::Reputation {
        retry_after_ms: RETRY_AFTER_MS,
    }
}

/// A cluster of four whose first proposer is cut off from the start, run to height 1 (its
/// turn fails once), then on for twelve heights: three rotations. Returns the cluster, the
/// silent validator and the round timeouts the twelve heights cost.
fn silent_first_proposer(election: LeaderElection) -> (Cluster, usize, usize) {
    let mut c = Cluster::with_kit(kit(4, election));
    let silent = c.kit.proposer(1, 0);
    c.nodes[silent].isolated = true;
    assert_eq!(c.run_to(1, 4), 1, "its first turn costs one round timeout");
    let stalls = c.run_to(13, 16);
    c.assert_agree();
    (c, silent, stalls)
}

#[test]
fn a_silent_proposer_is_passed_over_after_its_failed_turn_and_round_robin_is_not() {
    let (c, silent, stalls) = silent_first_proposer(reputation());
    assert_eq!(
        stalls, 0,
        "no turn of the silent validator came round again"
    );
    for i in (0..4).filter(|&i| i != silent) {
        let passed: Vec<PublicKey> = c.engine(i).passed_over().iter().map(|p| p.0).collect();
        assert_eq!(passed, vec![c.kit.key(silent)], "node {i}");
        assert_eq!(c.engine(i).leader_election(), LeaderElection::REPUTATION);
    }
    // Turns count rounds along the chain: height 1 took two (its round 0 failed), every
    // later height one.
    let ledger = &c.nodes[(silent + 1) % 4].ledger;
    let turns: Vec<u64> = ledger
        .iter()
        .map(|b| match &b.header.seal {
            Seal::Pbft { turn, .. } => turn.0,
            other => panic!("not a PBFT seal: {other:?}"),
        })
        .collect();
    let expected: Vec<u64> = (0..ledger.len() as u64).map(|h| h + 2).collect();
    assert_eq!(turns, expected);

    // The same network under round robin waits out the silent validator's turn every
    // rotation: each failed turn shifts the rotation by one, so it comes round every third
    // height.
    let (c, silent, stalls) = silent_first_proposer(LeaderElection::RoundRobin);
    assert_eq!(
        stalls, 4,
        "heights 4, 7, 10 and 13 are the silent validator's turns"
    );
    assert!(c.engine((silent + 1) % 4).passed_over().is_empty());
}

#[test]
fn a_returned_validator_proposes_again_within_its_retry_wait() {
    let (mut c, silent, _) = silent_first_proposer(reputation());
    c.nodes[silent].isolated = false;
    let back_at = c.nodes[(silent + 1) % 4].ledger.len();
    // It catches up from its peers, and either its commit signature in a block's parent
    // certificate or the retry wait (some 70 heights of chain time here) gives it turns
    // again; a retry while it still lagged could cost a timeout.
    c.run_to(back_at + 120, 4);
    c.assert_agree();
    let ledger = &c.nodes[silent].ledger;
    assert!(ledger.len() >= back_at + 120, "it caught up");
    let led = ledger[back_at..]
        .iter()
        .filter(|b| b.header.proposer == c.kit.address(silent))
        .count();
    assert!(
        led >= 10,
        "it led {led} of the 120 blocks after it returned"
    );
    assert!(c.engine(silent).passed_over().is_empty());
}

#[test]
fn a_restarted_validator_passes_over_whom_the_others_do() {
    let (mut c, silent, _) = silent_first_proposer(reputation());
    let node = (silent + 1) % 4;
    c.crash(node);
    c.nodes[node].drops.clear();
    c.restart(node);
    assert_eq!(
        c.engine(node).passed_over(),
        c.engine((silent + 2) % 4).passed_over()
    );
    c.run_to(20, 8);
    c.assert_agree();
    // It expects the proposers the others choose: no proposal refused as from the wrong one.
    let wrong: Vec<&DropReason> = c.nodes[node]
        .drops
        .iter()
        .filter(|d| matches!(d, DropReason::WrongProposer { .. }))
        .collect();
    assert!(wrong.is_empty(), "{wrong:?}");
}

#[test]
fn a_fresh_block_must_carry_the_turn_of_its_round() {
    let kit = Kit::new(4);
    let p = kit.proposer(1, 0);
    let (mut e, _) = kit.engine(kit.bystander(1, 0));
    // Round 0's block sealed with the turn of round 1.
    let block = kit.first_block_in(1, p, 1);
    let id = block.hash();
    let fx = e.handle(Input::Message(
        kit.key(p),
        Message::Proposal(Box::new(kit.proposal(p, 1, 0, block, None))),
    ));
    let reason = fx
        .iter()
        .find_map(|f| match f {
            Effect::Dropped { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .expect("the proposal is dropped");
    assert_eq!(
        reason,
        DropReason::WrongTurn {
            block: id,
            round: Round(0),
            got: Round(2),
            expected: Round(1),
        }
    );
    assert!(reason.is_fault());
}
