//! Issue 17's attacks on real processes: three honest `cairn node run` validators of a
//! 4-validator testnet, and a Byzantine peer (`cairn_tests::byzantine`) holding the fourth
//! validator's key. 3 of 4 is a quorum, so the chain can commit without it, and it must.
//!
//! - Forged sync answers of uncertified sibling blocks (attack 1), sent unsolicited, as the
//!   answer to every request and by gossip, until the honest validators ban the peer (its
//!   strikes outlive its reconnects) and again to node 2 once it restarts: they keep
//!   committing the same blocks, count the answers as dropped, keep none of it in their
//!   stores, and one restarted in the middle of it comes back and commits.
//! - The same validator restarted from a store some blocks behind, so that it asks for
//!   blocks and the Byzantine peer answers first with forged ones, must catch up in time:
//!   a forged answer sends its next request to another validator at once.
//! - Forged answers claiming far heights must not make validators report themselves
//!   syncing: only blocks a node stored move the height it believes the chain is at.
//! - Messages of the largest size the network accepts, as fast as they go, to one validator:
//!   its resident memory stays under [`FLOOD_RSS_MAX`] and the chain keeps committing.

use std::path::Path;
use std::time::{Duration, Instant};

use cairn_consensus::hotstuff::TREE_BLOCKS_MAX;
use cairn_ledger::block::Block;
use cairn_ledger::codec;
use cairn_ledger::crypto::Keypair;
use cairn_ledger::store::Store;
use cairn_node::home::Home;
use cairn_node::hotstuff::chain::{BLOCK_PREFIX, SAFETY_KEY};
use cairn_node::p2p::QUEUE_PEER_BYTES_MAX;
use cairn_tests::byzantine::{ByzantinePeer, Mode};
use cairn_tests::testnet::{Testnet, WAIT_MAX, copy_dir, fast, memory, serial};

const HONEST: [usize; 3] = [0, 1, 2];
const BYZANTINE: usize = 3;
/// Commits every honest validator must make in each phase of a test.
const COMMITS_PER_PHASE: u64 = 8;
/// How far behind the others a restarted validator's store is put back.
const LAG_BLOCKS: u64 = 12;
/// The flood's messages: `p2p.message_bytes_max`'s default, which the testnet keeps.
const FLOOD_MESSAGE_BYTES: u64 = 4 << 20;
/// How long the flood lasts at least (and longer until the commits of the phase are in).
const FLOOD_TIME: Duration = Duration::from_secs(20);
/// The flooded validator's resident memory may not pass this, at any point and as its
/// high-water mark. It is the sum of what the node may hold: its own footprint (44 MiB
/// measured before the flood, allow 64), the event queue's byte budget (`QUEUE_BYTES_MAX`,
/// 64 MiB, of which one peer may fill `QUEUE_PEER_BYTES_MAX`, 16), the transaction queue's
/// (64 MiB), frames being read (`READING_BYTES_MAX`, 32 MiB), and 32 MiB for the message
/// being decoded and what the allocator keeps of freed ones. Measured peaks: 120-185 MiB
/// (benches/RESULTS.md); the count bounds alone allowed 16 GiB in the event queue.
const FLOOD_RSS_MAX: u64 = 256 << 20;

/// Messages node `i` dropped for `reason` (`cairn_messages_dropped_total`).
fn dropped(net: &Testnet, i: usize, reason: &str) -> u64 {
    let name = format!("cairn_messages_dropped_total{{reason=\"{reason}\"}}");
    net.metric(i, &name).unwrap_or(0.0) as u64
}

/// The highest committed height among `nodes`.
fn highest(net: &Testnet, nodes: &[usize]) -> u64 {
    nodes
        .iter()
        .filter_map(|&i| net.height(i))
        .max()
        .expect("a node answers")
}

/// Waits until every node in `nodes` has committed `commits` blocks above the highest of
/// them now.
fn wait_commits(net: &mut Testnet, nodes: &[usize], commits: u64) -> u64 {
    let target = highest(net, nodes) + commits;
    net.wait_height(nodes, target);
    target
}

/// `[unsolicited_sync, forged_sync]` drops of each honest validator.
fn drop_counts(net: &Testnet) -> Vec<[u64; 2]> {
    HONEST
        .iter()
        .map(|&i| {
            [
                dropped(net, i, "unsolicited_sync"),
                dropped(net, i, "forged_sync"),
            ]
        })
        .collect()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Puts stopped node `i`'s data dir back to `backup`, an older copy, but keeps the safety
/// state it has now: a node that lost its latest blocks, not one that forgot what it signed
/// (which the double-sign guard stops, see double_sign.rs).
fn rewind_keeping_safety_state(net: &Testnet, i: usize, backup: &Path) {
    let home = Home::new(&net.nodes[i].home);
    let genesis = home.load_genesis().expect("genesis");
    let data = home.data_dir();
    let safety = Store::open(&data, &genesis)
        .expect("open the store")
        .get_consensus(SAFETY_KEY)
        .expect("store readable")
        .expect("a validator's store has its safety state");
    std::fs::remove_dir_all(&data).expect("remove the data dir");
    copy_dir(backup, &data);
    Store::open(&data, &genesis)
        .expect("open the restored store")
        .put_consensus(SAFETY_KEY, &safety)
        .expect("write the safety state");
}

/// Every block that stopped node `i` keeps, committed or not, with their count of blocks
/// kept uncommitted; the node must be stopped (RocksDB allows one opener).
fn stored_blocks(net: &Testnet, i: usize) -> (Vec<Block>, usize) {
    let home = Home::new(&net.nodes[i].home);
    let genesis = home.load_genesis().expect("genesis");
    let store = Store::open(&home.data_dir(), &genesis).expect("open the store");
    let mut blocks: Vec<Block> = (1..=store.tip().height.0)
        .map(|h| {
            store
                .block_at(cairn_ledger::Height(h))
                .expect("store readable")
                .expect("committed block present")
        })
        .collect();
    let uncommitted = store
        .consensus_entries(BLOCK_PREFIX, TREE_BLOCKS_MAX)
        .expect("stored uncommitted blocks");
    let kept = uncommitted.len();
    for (_, bytes) in uncommitted {
        blocks.push(codec::decode(&bytes, usize::MAX, "stored block").expect("a stored block"));
    }
    (blocks, kept)
}

/// A testnet whose validators 0-2 run and commit, with the Byzantine peer as validator 3
/// sending forged sync answers (`mode`) that have reached each of them.
fn attacked_testnet(mode: Mode) -> (Testnet, ByzantinePeer) {
    let mut net = Testnet::create(4, fast);
    for i in HONEST {
        net.start(i);
    }
    let (home, key) = (
        net.nodes[BYZANTINE].home.clone(),
        net.nodes[BYZANTINE].key.clone(),
    );
    let byzantine = ByzantinePeer::start(&home, &key, mode);
    net.wait_height(&HONEST, 2);
    net.wait_for(
        "forged sync answers to reach every honest validator",
        |net| {
            HONEST
                .iter()
                .all(|&i| dropped(net, i, "unsolicited_sync") >= 3)
        },
    );
    (net, byzantine)
}

/// Stops the attack, waits for commits without it, and checks that the honest validators
/// agree on every block and that none of them keeps anything the Byzantine peer built,
/// committed or not. Returns (the last height waited for, the height agreed up to).
fn check_after_attack(mut net: Testnet, mut byzantine: ByzantinePeer) -> (u64, u64) {
    byzantine.stop();
    let end = wait_commits(&mut net, &HONEST, COMMITS_PER_PHASE / 2);
    let common = net.assert_agree(&HONEST);
    assert!(common >= end);
    for i in HONEST {
        net.stop(i);
        let (blocks, kept) = stored_blocks(&net, i);
        assert!(
            blocks
                .iter()
                .all(|b| b.header.proposer != byzantine.address),
            "node {i} stored a block the Byzantine peer built"
        );
        assert!(
            kept < TREE_BLOCKS_MAX / 4,
            "node {i} keeps {kept} uncommitted blocks"
        );
    }
    (end, common)
}

#[test]
fn forged_sync_answers_from_a_byzantine_validator_neither_stop_the_chain_nor_stay_in_a_store() {
    let _serial = serial();
    let (mut net, byzantine) = attacked_testnet(Mode::ForgedSync);

    // Under attack: every honest validator commits.
    let attacked_from = highest(&net, &HONEST);
    wait_commits(&mut net, &HONEST, COMMITS_PER_PHASE);

    // A validator restarted under attack reloads its store (forged answers included, had it
    // kept any) and commits again; without it there is no quorum, so the chain waits on it.
    let before_restart = drop_counts(&net);
    net.stop(2);
    net.start(2);
    wait_commits(&mut net, &HONEST, COMMITS_PER_PHASE);
    let tally = byzantine.tally();
    let drops = drop_counts(&net);

    let (end, common) = check_after_attack(net, byzantine);
    eprintln!(
        "forged sync: heights {attacked_from} -> {end} under attack and after, every honest \
         validator agreeing up to {common}; the Byzantine peer sent {} unsolicited answers \
         (every other one of the message bound's size), answered {} of {} sync requests with \
         forged ones, gossiped {}, sent {} far-round timeouts and {} honest proposals to draw \
         requests, over {} connections, refused {} times; dropped by nodes 0-2 \
         [unsolicited_sync, forged_sync]: {before_restart:?} before node 2 restarted, {drops:?} \
         at the end",
        tally.unsolicited,
        tally.answered,
        tally.requests,
        tally.gossiped,
        tally.advertised,
        tally.relayed,
        tally.connections,
        tally.refused,
    );
    assert!(tally.unsolicited >= 30, "{tally:?}");
    assert!(tally.gossiped >= 1, "{tally:?}");
    assert!(
        tally.connections >= 2,
        "the peer never dropped its connections to shed strikes: {tally:?}"
    );
    // Restarted node 2's count starts again at its restart; the others' cover the attack.
    for (i, [unsolicited, _]) in drops.iter().enumerate() {
        assert!(
            *unsolicited >= 1,
            "node {i} dropped no forged answer: {drops:?}"
        );
    }
}

/// How long the catch-up below is watched, so that the report says how long it took even
/// when that is longer than it may be.
const CATCH_UP_WATCHED: Duration = Duration::from_secs(240);

#[test]
fn a_validator_behind_catches_up_although_its_sync_requests_get_forged_answers() {
    let _serial = serial();
    let (mut net, byzantine) = attacked_testnet(Mode::ForgedSync);

    // Node 2's store is put back LAG_BLOCKS behind the others, its safety state kept, so it
    // has blocks to ask for when it restarts; the Byzantine peer makes sure it is asked
    // (it shows node 2 the highest QC before anyone else does) and answers with forged ones.
    net.stop(2);
    let backup = net.path().join("node2-data-backup");
    copy_dir(&net.nodes[2].home.join("data"), &backup);
    net.start(2);
    wait_commits(&mut net, &HONEST, LAG_BLOCKS);
    net.stop(2);
    rewind_keeping_safety_state(&net, 2, &backup);
    net.start(2);
    let ahead = highest(&net, &[0, 1]);
    let started = Instant::now();
    while net.height(2).is_none_or(|h| h < ahead) && started.elapsed() < CATCH_UP_WATCHED {
        assert!(net.exited(2).is_none(), "node 2 exited\n{}", net.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = started.elapsed();
    assert!(
        took <= WAIT_MAX,
        "node 2 took {:.1} s to catch up {LAG_BLOCKS} blocks, over {} s\n{}",
        took.as_secs_f64(),
        WAIT_MAX.as_secs(),
        net.logs()
    );
    // The forged answer may still be in flight behind the peer's max-size messages when node
    // 2 has caught up from an honest one; the commits below give it time to arrive.
    wait_commits(&mut net, &HONEST, COMMITS_PER_PHASE);
    let tally = byzantine.tally();
    let forged = dropped(&net, 2, "forged_sync");
    eprintln!(
        "catch-up under forged answers: node 2 from {} blocks behind reached {ahead} in \
         {:.1} s (watched up to {} s); the Byzantine peer answered {} of {} requests with \
         forged chains, node 2 refused {forged} as forged",
        LAG_BLOCKS,
        took.as_secs_f64(),
        CATCH_UP_WATCHED.as_secs(),
        tally.answered,
        tally.requests,
    );
    assert!(tally.answered >= 1, "no sync request drawn: {tally:?}");
    // The forged answer is refused as forged when it comes first, or as unsolicited or
    // useless when an honest answer got there before it; either way nothing of it is kept
    // (`check_after_attack`).
    let refused = forged
        + dropped(&net, 2, "unsolicited_sync")
        + dropped(&net, 2, "bad_sync")
        + dropped(&net, 2, "malformed");
    assert!(refused >= 1, "node 2 refused no forged answer: {tally:?}");
    check_after_attack(net, byzantine);
}

#[test]
fn forged_heights_in_sync_answers_do_not_make_validators_report_syncing() {
    let _serial = serial();
    let ahead = 1_000_000_000;
    let (mut net, _byzantine) = attacked_testnet(Mode::ForgedHeight { ahead });
    wait_commits(&mut net, &HONEST, 2);
    for i in HONEST {
        let status = net.status(i).expect("status answers");
        assert_eq!(
            status["syncing"], false,
            "node {i} believes a forged height: {status}"
        );
    }
}

#[test]
fn a_max_size_flood_from_one_peer_keeps_a_committing_validators_memory_bounded() {
    let _serial = serial();
    let mut net = Testnet::create(4, fast);
    for i in HONEST {
        net.start(i);
    }
    net.wait_height(&HONEST, 3);
    let pid = net.pid(0).expect("node 0 runs");
    let sample = || memory(pid).expect("node 0 is alive");
    let (before, _) = sample();

    let (home, key) = (
        net.nodes[BYZANTINE].home.clone(),
        net.nodes[BYZANTINE].key.clone(),
    );
    let target = cairn_ledger::keys::read_key_file(&net.nodes[0].key)
        .as_ref()
        .map(Keypair::public)
        .expect("node 0's key");
    let flooder = ByzantinePeer::start(&home, &key, Mode::Flood { target });
    net.wait_for("the flood to start", |_| flooder.tally().flood_messages > 0);
    let flood_start = highest(&net, &HONEST);
    let started = Instant::now();

    // The flood lasts FLOOD_TIME and until every honest validator has committed
    // COMMITS_PER_PHASE blocks more; node 0's memory is sampled all along.
    let target_height = flood_start + COMMITS_PER_PHASE;
    let mut peak = before;
    net.wait_for("the chain to commit under the flood", |net| {
        peak = peak.max(sample().0);
        started.elapsed() >= FLOOD_TIME
            && HONEST
                .iter()
                .all(|&i| net.height(i).is_some_and(|h| h >= target_height))
    });
    let flood_time = started.elapsed();
    let (rss, hwm) = sample();
    let tally = flooder.tally();
    let taken = dropped(&net, 0, "unsolicited_sync");
    let over_budget = dropped(&net, 0, "event_queue_peer_bytes");
    drop(flooder);
    let after = wait_commits(&mut net, &HONEST, COMMITS_PER_PHASE / 2);
    eprintln!(
        "flood: node 0 RSS before {:.0} MiB, peak sampled {:.0} MiB, high-water mark {:.0} MiB, \
         at the end {:.0} MiB (bound {:.0} MiB); {} max-size messages handed to the network in \
         {:.1} s ({:.0} MiB/s), {} taken and dropped unread by node 0's driver, {} over the \
         peer's byte budget, {} connections refused; heights {flood_start} -> {after}",
        mib(before),
        mib(peak),
        mib(hwm),
        mib(rss),
        mib(FLOOD_RSS_MAX),
        tally.flood_messages,
        flood_time.as_secs_f64(),
        mib(tally.flood_messages * FLOOD_MESSAGE_BYTES) / flood_time.as_secs_f64(),
        taken,
        over_budget,
        tally.refused,
    );
    // At least one peer's share of the event queue arrived: the flood got as far as the
    // budget, whether the driver kept up or the flooder was cut off.
    let arrived = (taken + over_budget) * FLOOD_MESSAGE_BYTES;
    assert!(
        arrived >= QUEUE_PEER_BYTES_MAX as u64,
        "{:.0} MiB of the flood reached node 0: {tally:?}",
        mib(arrived)
    );
    assert!(
        peak <= FLOOD_RSS_MAX && hwm <= FLOOD_RSS_MAX,
        "node 0's memory passed {:.0} MiB: peak {:.0} MiB, high-water mark {:.0} MiB",
        mib(FLOOD_RSS_MAX),
        mib(peak),
        mib(hwm)
    );
}
