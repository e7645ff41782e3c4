//! The PoW simulator finds what it should, and only that: honest networks pass every check,
//! a partition's branches are settled by work when it heals, a node with the wrong fork
//! choice and a ledger that drifted from its chain are caught, and a seed is a trace.

use cairn_ledger::block::{BlockHeader, Seal};
use cairn_ledger::{Address, Amount, Hash, Height, ProtocolVersion, TimestampMs};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::node::{Effect, ForkChoice, Input, Message, SimNode};
use super::world::{Plan, World};
use super::*;
use crate::pow::{BlockStatus, PowRules};
use crate::sim::kernel::Judge;

fn describe(r: &PowSimReport) -> String {
    format!(
        "{}\n  violations: {:?}\n  liveness: {:?}\n  height {} mined {} reorgs {} deepest {} \
         (longest branch {}) partitions {:?} events {}",
        r.repro,
        r.safety_violations,
        r.liveness_failure,
        r.height,
        r.blocks_mined,
        r.reorgs,
        r.deepest_reorg,
        r.longest_branch,
        r.partitions
            .iter()
            .map(|p| (p.start_ms, p.heal_ms, p.mined))
            .collect::<Vec<_>>(),
        r.events
    )
}

#[test]
fn the_simulators_parameters_pass_the_rules() {
    let rules = PowRules::new(&SIM_POW_PARAMS).unwrap();
    assert_eq!(rules.retarget.initial_bits().0, 0x207f_ffff);
}

#[test]
fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
    let a = run(&PowSimConfig::new(42, 4)).unwrap();
    let b = run(&PowSimConfig::new(42, 4)).unwrap();
    let c = run(&PowSimConfig::new(43, 4)).unwrap();
    assert!(a.passed(), "{}", describe(&a));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(
        (a.events, a.blocks_mined, a.final_tip, a.reorgs),
        (b.events, b.blocks_mined, b.final_tip, b.reorgs)
    );
    assert_ne!(a.trace_hash, c.trace_hash);
}

#[test]
fn honest_miners_pass_every_check() {
    for (miners, seeds) in [(4, 0..40), (2, 100..110), (7, 200..210), (1, 300..302)] {
        for seed in seeds {
            let r = run(&PowSimConfig::new(seed, miners)).unwrap();
            assert!(r.passed(), "{}", describe(&r));
            assert!(r.height.0 > 0, "{}", describe(&r));
            assert!(r.converged_after_heal_ms.is_some(), "{}", describe(&r));
        }
    }
}

#[test]
fn given_shares_and_full_nodes_that_do_not_mine_pass() {
    let mut c = PowSimConfig::new(7, 4);
    c.shares = Some(vec![6, 3, 1, 0]);
    let r = run(&c).unwrap();
    assert!(r.passed(), "{}", describe(&r));
    assert_eq!(r.weights, vec![6, 3, 1, 0]);
    assert_eq!(
        r.repro,
        "cairn sim pow --seed 7 --miners 4 --shares 6,3,1,0"
    );
}

/// Nodes {0, 1} (70% of the hash power) and {2, 3} (30%) are cut apart for 30 s: both sides
/// build branches, and after the heal everyone follows the heavier one.
#[test]
fn a_partition_makes_competing_branches_and_healing_converges_on_the_most_work_one() {
    let cfg = PowSimConfig::new(11, 4);
    let plan = Plan {
        weights: vec![4, 3, 2, 1],
        speed_per_mille: 1000,
        clock_skews_ms: vec![0, 300, -300, 100],
        partitions: vec![(5000, 30_000, vec![0, 0, 1, 1])],
    };
    let mut world = World::with_plan(&cfg, plan, ChaCha8Rng::seed_from_u64(cfg.seed));
    world.run_loop();
    world.finish();
    let r = world.report();
    assert!(r.passed(), "{}", describe(&r));
    let p = &r.partitions[0];
    assert!(p.mined[0] >= 5 && p.mined[1] >= 2, "{p:?}");
    // At the heal each side had its own tip, on different branches.
    let (tip_a, tip_b) = (p.tips_at_heal[0], p.tips_at_heal[2]);
    assert_eq!(p.tips_at_heal[1], tip_a);
    assert_eq!(p.tips_at_heal[3], tip_b);
    let node = &world.nodes[0];
    let path = node.index().reorg_path(&tip_a, &tip_b).unwrap();
    assert!(!path.disconnect.is_empty() && !path.connect.is_empty());
    // Everyone ends on one tip, which has the most work of all blocks mined and descends
    // from the heavier of the two branch tips, not the lighter.
    let work = |h: &Hash| world.checker.chain_work(h).unwrap();
    let (heavy, light) = if work(&tip_a) > work(&tip_b) {
        (tip_a, tip_b)
    } else {
        (tip_b, tip_a)
    };
    assert!(world.nodes.iter().all(|n| n.tip() == r.final_tip));
    assert_eq!(work(&r.final_tip), work(&world.checker.best()));
    let on_final_chain = |h: &Hash| {
        let height = node.index().get(h).unwrap().summary.height;
        node.index().ancestor(&r.final_tip, height) == Some(*h)
    };
    assert!(on_final_chain(&heavy));
    assert!(!on_final_chain(&light));
    // The lighter side's nodes gave up their branch: a reorg at least as deep as what they
    // had built on their own, undoing blocks mined during the partition only.
    assert!(r.deepest_reorg as usize >= path.depth().min(path.connect.len()));
    assert!(r.reorg_whole_blocks_max <= REORG_SLACK_BLOCKS);
    // Every node's ledger pays the miners of the final chain alone.
    let ledger = world.nodes[3].ledger().clone();
    assert!(world.nodes.iter().all(|n| *n.ledger() == ledger));
    assert_eq!(ledger.height(), r.height);
}

#[test]
fn a_node_that_follows_the_longest_chain_by_height_is_caught_and_reproducible() {
    let mut found = None;
    for seed in 0..100 {
        let mut c = PowSimConfig::new(seed, 4);
        c.unsafe_longest_chain_node = true;
        let r = run(&c).unwrap();
        if r.violation_count > 0 {
            found = Some((c, r));
            break;
        }
    }
    let (c, r) = found.expect("100 seeds with a longest-chain node and no violation found");
    println!("reproduce with: {}", r.repro);
    assert_eq!(
        r.repro,
        format!(
            "cairn sim pow --seed {} --miners 4 --unsafe-longest-chain-node",
            c.seed
        )
    );
    assert!(
        r.safety_violations[0].contains("node 0 follows")
            && r.safety_violations[0].contains("with more work"),
        "{}",
        describe(&r)
    );
    let again = run(&c).unwrap();
    assert_eq!(again.safety_violations, r.safety_violations);
    assert_eq!(again.trace_hash, r.trace_hash);
    // With the right fork choice the same seed is clean.
    let honest = run(&PowSimConfig {
        unsafe_longest_chain_node: false,
        ..c
    })
    .unwrap();
    assert!(honest.passed(), "{}", describe(&honest));
}

#[test]
fn a_ledger_that_drifted_from_its_chain_is_caught_by_the_replay() {
    let cfg = PowSimConfig::new(5, 3);
    let mut world = World::new(&cfg);
    world.run_loop();
    world.finish();
    assert!(world.report().passed(), "{}", describe(&world.report()));
    world.nodes[1]
        .ledger_mut()
        .tamper(Address([9; 20]), Amount(1));
    world.finish();
    let r = world.report();
    assert_eq!(r.violation_count, 1, "{}", describe(&r));
    assert!(
        r.safety_violations[0].starts_with("node 1: its ledger")
            && r.safety_violations[0].contains("differs from the replay"),
        "{}",
        describe(&r)
    );
}

/// A lone node over the simulator's genesis, and a helper that mines on it for real.
struct Solo {
    node: SimNode,
    now_ms: u64,
}

impl Solo {
    fn new(id: usize, skew_ms: i64) -> Solo {
        let rules = PowRules::new(&SIM_POW_PARAMS).unwrap();
        let genesis = genesis_header();
        let node = SimNode::new(
            id,
            3,
            rules,
            &genesis,
            ForkChoice::MostWork,
            skew_ms,
            Address([id as u8 + 1; 20]),
        )
        .unwrap();
        Solo { node, now_ms: 0 }
    }

    /// Mines a block on the node's tip, `gap_ms` after the last; the node takes it in.
    fn mine(&mut self, gap_ms: u64) -> (BlockHeader, Vec<Effect>) {
        self.now_ms += gap_ms;
        let mut header = self.node.template(self.now_ms).unwrap();
        mining::seal(&mut header).unwrap();
        let effects = self.node.handle(self.now_ms, Input::Mined(header.clone()));
        (header, effects)
    }
}

fn genesis_header() -> BlockHeader {
    BlockHeader {
        height: Height(0),
        parent: Hash::digest(b"solo"),
        timestamp: TimestampMs(node::SIM_EPOCH_MS),
        tx_root: Hash::ZERO,
        state_root: node::Ledger::default().root(),
        proposer: Address([0; 20]),
        protocol_version: ProtocolVersion(1),
        seal: Seal::Genesis,
    }
}

fn deliver(node: &mut SimNode, now_ms: u64, from: usize, msg: Message) -> Vec<Effect> {
    node.handle(now_ms, Input::Message { from, msg })
}

#[test]
fn a_block_with_an_unknown_parent_makes_the_node_ask_for_headers_and_keeps_nothing() {
    let mut miner = Solo::new(0, 0);
    let (b1, _) = miner.mine(1000);
    let (b2, effects) = miner.mine(1000);
    assert!(effects.contains(&Effect::Broadcast(Message::Block(b2.clone()))));
    let mut other = Solo::new(1, 0);
    let effects = deliver(&mut other.node, 2100, 0, Message::Block(b2.clone()));
    let Some(Effect::Send {
        to: 0,
        msg: Message::GetHeaders { locator },
    }) = effects.first()
    else {
        panic!("no headers request: {effects:?}");
    };
    assert!(!other.node.index().contains(&b2.hash()));
    // Announced again before the reply: the request is still fresh, so no second one.
    let effects = deliver(&mut other.node, 2120, 0, Message::Block(b2.clone()));
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Send { .. })),
        "{effects:?}"
    );
    // The miner answers from the locator; the headers connect in order.
    let reply = deliver(
        &mut miner.node,
        2150,
        1,
        Message::GetHeaders {
            locator: locator.clone(),
        },
    );
    assert_eq!(
        reply,
        vec![Effect::Send {
            to: 1,
            msg: Message::Headers(vec![b1.clone(), b2.clone()])
        }]
    );
    let effects = deliver(
        &mut other.node,
        2200,
        0,
        Message::Headers(vec![b1.clone(), b2.clone()]),
    );
    assert_eq!(other.node.tip(), b2.hash());
    assert!(effects.contains(&Effect::TipChanged {
        from: genesis_header().hash(),
        to: b2.hash(),
        disconnected: Vec::new()
    }));
    assert_eq!(other.node.ledger(), miner.node.ledger());
    // Once the reply is in, the next gap is asked about at once.
    miner.mine(1000);
    let (b4, _) = miner.mine(1000);
    let effects = deliver(&mut other.node, 2300, 0, Message::Block(b4.clone()));
    assert!(
        matches!(
            effects.first(),
            Some(Effect::Send {
                to: 0,
                msg: Message::GetHeaders { .. }
            })
        ),
        "{effects:?}"
    );
}

#[test]
fn a_header_from_the_future_is_held_back_then_accepted() {
    // The miner's clock runs 1.5 s ahead, ours 1.5 s behind: 3 s apart, more than allowed.
    let mut miner = Solo::new(0, 1500);
    let (b1, _) = miner.mine(1000);
    let mut other = Solo::new(1, -1500);
    let effects = deliver(&mut other.node, 1000, 0, Message::Block(b1.clone()));
    let [
        Effect::HoldBack {
            from: 0,
            after_ms,
            headers,
        },
    ] = effects.as_slice()
    else {
        panic!("not held back: {effects:?}");
    };
    assert_eq!(*after_ms, 3000 - SIM_POW_PARAMS.future_block_time_ms_max);
    assert_eq!(headers, &vec![b1.clone()]);
    assert!(!other.node.index().contains(&b1.hash()));
    let effects = other.node.handle(
        1000 + after_ms,
        Input::Retry {
            from: 0,
            headers: headers.clone(),
        },
    );
    assert!(effects.contains(&Effect::Accepted { hash: b1.hash() }));
    assert_eq!(other.node.tip(), b1.hash());
}

#[test]
fn a_block_with_a_wrong_state_root_is_refused_when_connected_and_never_followed() {
    let mut miner = Solo::new(0, 0);
    let (b1, _) = miner.mine(1000);
    let mut bad = miner.node.template(2000).unwrap();
    bad.state_root = Hash::digest(b"not the state");
    mining::seal(&mut bad).unwrap();
    let mut other = Solo::new(1, 0);
    deliver(&mut other.node, 1100, 0, Message::Block(b1.clone()));
    let effects = deliver(&mut other.node, 2100, 0, Message::Block(bad.clone()));
    // The header is fine (headers first), the block is not.
    assert!(effects.contains(&Effect::Accepted { hash: bad.hash() }));
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Rejected { hash, reason } if *hash == bad.hash() && reason.contains("state root"))),
        "{effects:?}"
    );
    assert_eq!(other.node.tip(), b1.hash());
    assert_eq!(
        other.node.index().get(&bad.hash()).unwrap().status,
        BlockStatus::Invalid
    );
    assert_eq!(other.node.index().best_tip(), b1.hash());
    assert_eq!(other.node.ledger(), miner.node.ledger());
}

/// The reorg rule on its own: undoing blocks mined while the network was split is what a
/// partition allows; undoing more than the slack of blocks mined on a whole network is not.
#[test]
fn a_reorg_through_blocks_mined_on_a_whole_network_is_a_violation() {
    // One block more than the slack, mined a second apart from 1 s on.
    let count = REORG_SLACK_BLOCKS + 1;
    let mut miner = Solo::new(0, 0);
    let headers: Vec<BlockHeader> = (0..count).map(|_| miner.mine(1000).0).collect();
    let rules = PowRules::new(&SIM_POW_PARAMS).unwrap();
    let record = |checker: &mut checker::Checker| {
        for (i, header) in headers.iter().enumerate() {
            checker.on_mined(1000 * (i as u64 + 1), 0, header);
        }
    };
    let undo: Vec<Hash> = headers.iter().rev().map(BlockHeader::hash).collect();
    // A partition from 2.5 s until the last block covers all but the first two (its settling
    // time after the heal included).
    let last_ms = 1000 * count;
    let mut split = checker::Checker::new(rules, &genesis_header(), 2, vec![(2500, last_ms)]);
    record(&mut split);
    split.on_tip_changed(last_ms + 1000, 1, &undo);
    assert_eq!(split.violation_count(), 0, "{:?}", split.violations());
    assert_eq!(split.reorg_whole_blocks_max(), 2);
    // On a network that was never split, the slack's worth may go, and no more.
    let mut whole = checker::Checker::new(rules, &genesis_header(), 2, Vec::new());
    record(&mut whole);
    whole.on_tip_changed(last_ms + 1000, 1, &undo[1..]);
    assert_eq!(whole.violation_count(), 0);
    whole.on_tip_changed(last_ms + 1000, 1, &undo);
    assert_eq!(whole.violation_count(), 1);
    let expected = format!("node 1 reorganised {count} blocks deep, undoing {count} blocks");
    assert!(
        whole.violations()[0].contains(&expected),
        "{:?}",
        whole.violations()
    );
    assert_eq!(whole.deepest_reorg(), count);
}

#[test]
fn batches_report_in_seed_order_and_threads_do_not_change_totals() {
    let c = PowSimConfig::new(0, 4);
    let mut seen = Vec::new();
    let summary = run_many(&c, 12, 3, |r| seen.push(r.seed)).unwrap();
    assert_eq!(seen, (0..12).collect::<Vec<_>>());
    assert_eq!(summary.seeds, 12);
    assert_eq!(summary.safety_violations + summary.liveness_failures, 0);
    assert!(summary.reorgs > 0 && summary.partitions >= 12);
    let single = run_many(&c, 12, 1, |_| {}).unwrap();
    assert_eq!(
        (single.events, single.blocks_mined, single.reorgs),
        (summary.events, summary.blocks_mined, summary.reorgs)
    );
}

#[test]
fn bad_configurations_are_refused() {
    assert_eq!(
        run(&PowSimConfig::new(1, 0)).unwrap_err(),
        PowSimError::Miners(0)
    );
    assert!(run_many(&PowSimConfig::new(1, POW_SIM_MINERS_MAX + 1), 1, 1, |_| {}).is_err());
    let mut c = PowSimConfig::new(1, 3);
    c.shares = Some(vec![1, 2]);
    assert_eq!(
        run(&c).unwrap_err(),
        PowSimError::SharesCount {
            shares: 2,
            miners: 3
        }
    );
    c.shares = Some(vec![0, 0, 0]);
    assert_eq!(run(&c).unwrap_err(), PowSimError::NoHashPower);
    c.shares = Some(vec![1, SHARE_WEIGHT_MAX + 1, 1]);
    assert_eq!(
        run(&c).unwrap_err(),
        PowSimError::ShareTooLarge(SHARE_WEIGHT_MAX + 1)
    );
}
