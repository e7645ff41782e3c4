//! What a restart re-inserts from the stored blocks (`restorable` in `engine.rs`): the
//! certified chains and what this node may have voted for; everything else goes back to the
//! driver for deletion (`Effect::DiscardBlocks`).

use std::collections::HashSet;

use cairn_ledger::block::Block;
use cairn_ledger::{Hash, Round};

use super::*;

fn discarded(effects: &[Effect]) -> HashSet<Hash> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::DiscardBlocks(ids) => Some(ids.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Uncertified children of `parent` of round `round`, justified by `parent`'s public QC.
fn junk(kit: &Kit, parent: &Block, round: u64, count: u64) -> Vec<Block> {
    let justify = kit.qc_for(parent);
    (0..count)
        .map(|salt| kit.block(round, parent, &justify, 100 + salt))
        .collect()
}

/// A safety state that voted for `block` of `round`, its highest QC `qc_round`'s.
fn voted(kit: &Kit, me: usize, block: &Block, highest_qc: QuorumCert) -> SafetyState {
    let round = block_round(block).unwrap();
    let mut state = SafetyState::initial(kit.genesis_qc());
    state.last_voted_round = round;
    state.last_proposed_round = round;
    state.highest_qc = highest_qc;
    state.last_vote = Some(kit.vote(me, round.0, block.hash()));
    state
}

#[test]
fn junk_siblings_are_not_restored_but_the_certified_chain_and_the_voted_block_are() {
    let kit = Kit::new(4);
    let me = kit.bystander(3);
    let chain = kit.chain_of(3);
    // Blocks 1 and 2 are certified (by the justifies of 2 and 3); this node voted for 3,
    // whose QC it has not seen. The junk: uncertified round-3 siblings of block 3.
    let siblings = junk(&kit, &chain[2], 3, 5);
    let mut blocks: Vec<Block> = siblings.iter().chain(&chain[1..]).cloned().collect();
    blocks.reverse();
    let restart = RestartState {
        safety: voted(&kit, me, &chain[3], kit.qc_for(&chain[2])),
        committed: None,
        history: Vec::new(),
        blocks,
    };
    let (e, effects) = kit.restarted(me, Some(restart));
    let want: HashSet<Hash> = siblings.iter().map(Block::hash).collect();
    assert_eq!(discarded(&effects), want);
    for b in &chain[1..] {
        assert!(
            e.block(&b.hash()).is_some(),
            "block {} restored",
            b.header.height
        );
    }
    for b in &siblings {
        assert!(e.block(&b.hash()).is_none());
    }
    assert!(drops(&effects).is_empty(), "{effects:?}");
}

#[test]
fn an_older_vote_above_every_known_qc_is_kept_and_one_below_them_is_not() {
    let kit = Kit::new(4);
    let me = kit.bystander(5);
    let chain = kit.chain_of(2);
    // Round 3 on block 2: maybe voted for (a round above QC 2, below the last vote), its
    // QC unseen. Round 1's sibling of block 1 sits below the QCs held: no longer needed.
    let b3 = kit.block(3, &chain[2], &kit.qc_for(&chain[2]), 0);
    let stale = junk(&kit, &kit.genesis, 1, 1);
    let mut safety = SafetyState::initial(kit.genesis_qc());
    safety.last_voted_round = Round(5);
    safety.last_proposed_round = Round(5);
    safety.last_vote = Some(kit.vote(me, 5, Hash([5; 32])));
    let restart = RestartState {
        safety,
        committed: None,
        history: Vec::new(),
        blocks: vec![
            stale[0].clone(),
            b3.clone(),
            chain[2].clone(),
            chain[1].clone(),
        ],
    };
    let (e, effects) = kit.restarted(me, Some(restart));
    assert_eq!(discarded(&effects), HashSet::from([stale[0].hash()]));
    assert!(e.block(&b3.hash()).is_some());
}

#[test]
fn a_stale_or_missing_safety_state_keeps_every_block_above_the_known_qcs() {
    let kit = Kit::new(4);
    let me = kit.bystander(3);
    let chain = kit.chain_of(3);
    let siblings = junk(&kit, &chain[2], 3, 3);
    let blocks: Vec<Block> = chain[1..].iter().chain(&siblings).cloned().collect();
    // No record of any vote, yet the store shows round 3: it says nothing about which of
    // the round-3 blocks this key signed, so none is thrown away.
    let restart = RestartState {
        safety: SafetyState::initial(kit.genesis_qc()),
        committed: None,
        history: Vec::new(),
        blocks,
    };
    let (e, effects) = kit.restarted(me, Some(restart));
    assert!(discarded(&effects).is_empty(), "{effects:?}");
    for b in chain[2..].iter().chain(&siblings) {
        assert!(e.block(&b.hash()).is_some());
    }
}
