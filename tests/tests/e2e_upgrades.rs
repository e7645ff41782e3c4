//! Upgrades on real processes. A 4-validator network whose genesis schedules both upgrades
//! this binary ships (`fee-floor`, then `memo`): each height's blocks carry its protocol
//! version, and the nodes admit and commit exactly what that version's rules allow, through
//! the CLI a user runs. And a network whose schedule names an upgrade this binary lacks: it
//! stops cleanly before it, says so in `status`, `/ready`, the metrics and the log, keeps
//! serving reads, and with `--exit-on-halt` exits with the documented status. And mixed
//! versions: validators running the release before `memo` (`make old-binary`) beside the
//! current one, as an operator who upgraded only some machines would.

use std::process::Output;
use std::time::{Duration, Instant};

use cairn_node::run::EXIT_UPGRADE_HALT;
use cairn_tests::old_cairn_bin;
use cairn_tests::testnet::{
    Testnet, WAIT_MAX, cairn, fast, get, json_of, new_account, serial, spawn_node_with,
};
use serde_json::{Value, json};

const FEE_FLOOR_AT: u64 = 100;
const MEMO_AT: u64 = 200;

fn schedule(genesis: &str) -> String {
    format!(
        "{genesis}\n[[upgrades]]\nname = \"fee-floor\"\nheight = {FEE_FLOOR_AT}\n\
         protocol_version = 2\n\n[[upgrades]]\nname = \"memo\"\nheight = {MEMO_AT}\n\
         protocol_version = 3\n"
    )
}

fn transfer(net: &Testnet, key: &str, to: &str, fee: u64, memo: Option<&str>) -> Output {
    let rpc = &net.nodes[0].rpc;
    let fee = fee.to_string();
    let mut args = vec![
        "tx", "transfer", "--key", key, "--to", to, "--amount", "5", "--fee", &fee, "--wait",
        "--rpc", rpc, "--output", "json",
    ];
    if let Some(m) = memo {
        args.extend(["--memo", m]);
    }
    cairn(&args)
}

fn refused(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "it was accepted: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn version_at(net: &Testnet, height: u64) -> u64 {
    let b = net
        .rpc(0, "block", json!({ "height": height }))
        .expect("the block is there");
    b["protocol_version"].as_u64().expect("protocol_version")
}

#[test]
fn each_height_follows_the_rules_of_its_protocol_version() {
    let _serial = serial();
    let mut net = Testnet::from_genesis(4, schedule, fast);
    net.start_all();
    net.wait_height(&[0, 1, 2, 3], 2);
    let faucet = net.faucet_key.to_str().unwrap().to_owned();
    let upgrade = &net.status(0).unwrap()["upgrade"];
    assert_eq!(upgrade["state"], "approaching", "{upgrade}");
    assert_eq!(upgrade["name"], "fee-floor", "{upgrade}");
    assert_eq!(upgrade["implemented"], true, "{upgrade}");
    assert!(
        upgrade["blocks_left"].as_u64().unwrap() <= FEE_FLOOR_AT,
        "{upgrade}"
    );
    let (_, to) = new_account(&net, "recipient");

    // Version 1: a free transfer commits.
    let free = json_of(&transfer(&net, &faucet, &to, 0, None));
    assert_eq!(free["status"], "committed", "{free}");
    assert!(free["height"].as_u64().unwrap() < FEE_FLOOR_AT, "{free}");
    // ... and a memo is not a thing yet.
    let early = refused(&transfer(&net, &faucet, &to, 1, Some("too early")));
    assert!(
        early.contains("transfer_with_memo is not valid under protocol version"),
        "{early}"
    );

    net.wait_height(&[0, 1, 2, 3], FEE_FLOOR_AT);
    let floor = refused(&transfer(&net, &faucet, &to, 0, None));
    assert!(
        floor.contains("below the minimum of 1 under protocol version 2"),
        "{floor}"
    );
    let paid = json_of(&transfer(&net, &faucet, &to, 1, None));
    assert_eq!(paid["status"], "committed", "{paid}");

    net.wait_height(&[0, 1, 2, 3], MEMO_AT);
    let memo = json_of(&transfer(&net, &faucet, &to, 1, Some("invoice 7")));
    assert_eq!(memo["status"], "committed", "{memo}");
    assert!(memo["height"].as_u64().unwrap() >= MEMO_AT, "{memo}");
    let hash = memo["hash"].as_str().unwrap();
    let tx: Value = net.rpc(3, "tx", json!({ "hash": hash })).unwrap();
    assert_eq!(
        tx["payload"]["transfer_with_memo"]["memo"], "invoice 7",
        "{tx}"
    );

    // The blocks say which rules they follow, switching exactly at each height.
    let versions: Vec<u64> = [1, FEE_FLOOR_AT - 1, FEE_FLOOR_AT, MEMO_AT - 1, MEMO_AT]
        .iter()
        .map(|&h| version_at(&net, h))
        .collect();
    assert_eq!(versions, [1, 1, 2, 2, 3]);
    net.assert_agree(&[0, 1, 2, 3]);
    assert_eq!(net.status(2).unwrap()["upgrade"]["state"], "none");
    assert_eq!(net.metric(2, "cairn_upgrade_blocks_until"), Some(-1.0));
}

#[test]
fn a_network_stops_before_an_upgrade_its_binary_lacks_and_says_why() {
    let _serial = serial();
    // Height 12 needs rules this binary lacks. A block commits once its child is certified,
    // so nothing past 10 can commit: 11 can be proposed, but nobody can build 12.
    let upgrade =
        "\n[[upgrades]]\nname = \"rules-from-the-future\"\nheight = 12\nprotocol_version = 9\n";
    let mut net = Testnet::from_genesis(4, |g| format!("{g}{upgrade}"), fast);
    net.start_all();
    net.wait_for("every node to report the stop", |net| {
        (0..4).all(|i| {
            net.status(i)
                .is_some_and(|s| s["upgrade"]["state"] == "halted")
        })
    });
    for i in 0..4 {
        let status = net.status(i).unwrap();
        assert_eq!(status["height"], 10, "{status}");
        let halted = status["halted"].as_str().unwrap();
        assert!(halted.contains("rules-from-the-future"), "{halted}");
        assert!(halted.contains("height 12"), "{halted}");
        let u = &status["upgrade"];
        assert_eq!(u["name"], "rules-from-the-future", "{status}");
        assert_eq!(u["protocol_version"], 9, "{status}");
        assert_eq!(u["height"], 12, "{status}");
        assert_eq!(u["last_committed"], 10, "{status}");
        assert_eq!(u["binary_protocol_version"], 3, "{status}");
        assert!(net.exited(i).is_none(), "the node stays up to serve reads");
    }
    net.assert_agree(&[0, 1, 2, 3]);
    // Still nothing past it, however long it runs.
    let before: Vec<u64> = (0..4).map(|i| net.height(i).unwrap()).collect();
    std::thread::sleep(Duration::from_secs(2));
    let after: Vec<u64> = (0..4).map(|i| net.height(i).unwrap()).collect();
    assert_eq!(before, after, "heights moved past the stop");
    let ready = get(&format!("{}/ready", net.nodes[0].rpc));
    assert!(ready.contains("rules-from-the-future"), "{ready}");
    assert_eq!(
        net.metric(0, "cairn_upgrade_halted{upgrade=\"rules-from-the-future\"}"),
        Some(1.0)
    );
    assert_eq!(net.metric(0, "cairn_upgrade_blocks_until"), Some(2.0));
    let log = std::fs::read_to_string(&net.nodes[0].log).unwrap();
    assert!(
        log.contains("which this binary does not implement: it will stop before that height"),
        "no warning at start-up"
    );

    // Restarting the same binary stops again at once; asked to, it exits with the status
    // a supervisor is told not to restart on.
    net.stop(3);
    let mut again = spawn_node_with(&net.nodes[3].home, &net.nodes[3].log, &["--exit-on-halt"]);
    let deadline = Instant::now() + WAIT_MAX;
    let status = loop {
        if let Some(s) = again.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "--exit-on-halt never exited");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(EXIT_UPGRADE_HALT));
    let log = std::fs::read_to_string(&net.nodes[3].log).unwrap();
    assert!(log.contains("exiting as asked (--exit-on-halt)"), "{log}");
}

/// Where `memo`, the upgrade the old binary lacks, activates in the mixed-version tests.
const MIXED_MEMO_AT: u64 = 60;

fn mixed_schedule(genesis: &str) -> String {
    format!(
        "{genesis}\n[[upgrades]]\nname = \"fee-floor\"\nheight = 10\nprotocol_version = 2\n\n\
         [[upgrades]]\nname = \"memo\"\nheight = {MIXED_MEMO_AT}\nprotocol_version = 3\n"
    )
}

/// Waits until node `i` reports the chain stopped before `memo`.
fn wait_halted(net: &mut Testnet, i: usize) {
    net.wait_for("the old node to stop before the upgrade", |net| {
        net.status(i)
            .is_some_and(|s| s["upgrade"]["state"] == "halted" && s["upgrade"]["name"] == "memo")
    });
}

#[test]
fn one_old_validator_of_four_stops_at_the_upgrade_and_votes_again_once_replaced() {
    let _serial = serial();
    let old = old_cairn_bin();
    let mut net = Testnet::from_genesis(4, mixed_schedule, fast);
    for i in 0..3 {
        net.start(i);
    }
    net.start_bin(3, &old);
    // `cairn peers` shows who runs what: the old node announces protocol version 2.
    net.wait_for("node 0 to see its three peers", |net| {
        net.status(0).is_some_and(|s| s["peers"] == 3)
    });
    let rpc = net.nodes[0].rpc.clone();
    let peers = json_of(&cairn(&["peers", "--rpc", &rpc, "--output", "json"]));
    assert_eq!(
        peers["nodes_by_protocol_version"],
        json!({ "2": 1, "3": 3 }),
        "{peers}"
    );
    let listed = peers["peers"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{peers}");
    assert!(
        listed
            .iter()
            .all(|p| p["software"].as_str().unwrap().starts_with("cairn/")),
        "{peers}"
    );
    // Three of four carry the chain across the upgrade.
    net.wait_height(&[0, 1, 2], MIXED_MEMO_AT + 20);
    assert_eq!(version_at(&net, MIXED_MEMO_AT), 3);
    wait_halted(&mut net, 3);
    let status = net.status(3).unwrap();
    let stopped = status["height"].as_u64().unwrap();
    assert!(
        stopped < MIXED_MEMO_AT,
        "the old node went past the upgrade: {status}"
    );
    assert_eq!(status["upgrade"]["binary_protocol_version"], 2, "{status}");
    assert!(net.exited(3).is_none(), "the old node stays up");
    // It still serves what it has, and what it has is the network's chain.
    let (hash_old, _) = net
        .block_at(3, stopped)
        .expect("the old node serves its blocks");
    let (hash_new, _) = net.block_at(0, stopped).unwrap();
    assert_eq!(hash_old, hash_new);
    let log = std::fs::read_to_string(&net.nodes[3].log).unwrap();
    assert!(
        log.contains("this binary does not implement it"),
        "no stop message"
    );
    // The others' logs say which version the old peer runs.
    let log = std::fs::read_to_string(&net.nodes[0].log).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("p2p: peer connected") && l.contains("protocol_version=2")),
        "node 0 never logged the old peer's protocol version"
    );

    // The operator installs the current release: it catches up with no other step...
    net.stop(3);
    net.start(3);
    let top = net.height(0).unwrap();
    net.wait_height(&[3], top);
    net.assert_agree(&[0, 3]);
    // ... and votes: without node 2, the chain goes on only with node 3's votes.
    net.stop(2);
    let now = net.height(0).unwrap();
    net.wait_height(&[0, 1, 3], now + 10);
    net.assert_agree(&[0, 1, 3]);
}

#[test]
fn two_old_validators_of_four_stop_the_chain_before_the_upgrade_until_one_is_replaced() {
    let _serial = serial();
    let old = old_cairn_bin();
    let mut net = Testnet::from_genesis(4, mixed_schedule, fast);
    net.start(0);
    net.start(1);
    net.start_bin(2, &old);
    net.start_bin(3, &old);
    wait_halted(&mut net, 2);
    wait_halted(&mut net, 3);
    // Nobody commits at or past the upgrade's height: not the old nodes, which cannot, and
    // not the current ones, which lack a quorum for it.
    let before: Vec<u64> = (0..4).map(|i| net.height(i).unwrap()).collect();
    std::thread::sleep(Duration::from_secs(3));
    let after: Vec<u64> = (0..4).map(|i| net.height(i).unwrap()).collect();
    assert_eq!(
        before, after,
        "heights moved with half the network unable to go on"
    );
    assert!(after.iter().all(|&h| h < MIXED_MEMO_AT), "{after:?}");
    net.assert_agree(&[0, 1, 2, 3]);
    for i in 0..2 {
        let s = net.status(i).unwrap();
        assert_eq!(s["upgrade"]["state"], "approaching", "{s}");
        assert_eq!(s["upgrade"]["implemented"], true, "{s}");
    }

    // Upgrading one of the two gives the current release its quorum back.
    net.stop(3);
    net.start(3);
    net.wait_height(&[0, 1, 3], MIXED_MEMO_AT + 10);
    assert_eq!(version_at(&net, MIXED_MEMO_AT), 3);
    net.assert_agree(&[0, 1, 3]);
    let s = net.status(2).unwrap();
    assert_eq!(s["upgrade"]["state"], "halted", "{s}");
    assert!(s["height"].as_u64().unwrap() < MIXED_MEMO_AT, "{s}");
}

/// Blocks between the tip and the height of the upgrade the test below appends: enough for
/// three rolling restarts at `fast`'s 20 empty blocks a second, and above the CLI's minimum.
const LIVE_MARGIN: u64 = 600;

fn schedule_memo(net: &Testnet, i: usize, height: u64, extra: &[&str]) -> Output {
    let home = net.nodes[i].home.to_str().unwrap().to_owned();
    let height = height.to_string();
    let mut args = vec![
        "upgrade",
        "schedule",
        "--home",
        &home,
        "--name",
        "memo",
        "--height",
        &height,
        "--version",
        "3",
        "--output",
        "json",
    ];
    args.extend(extra);
    cairn(&args)
}

fn schedule_hash(net: &Testnet, i: usize) -> String {
    let u = net.rpc(i, "upgrades", json!({})).expect("upgrades");
    u["schedule_hash"]
        .as_str()
        .expect("schedule_hash")
        .to_owned()
}

/// Adding an upgrade to a running chain, as operators would: each node stopped in turn,
/// `cairn upgrade schedule`, started again, the chain committing throughout; the genesis
/// hash unchanged. A node left out is let go by the others at the height, stays up below
/// it, and its log names the upgrade and what to run (it never commits a block of the new
/// rules); scheduled late, with `--late` (the margin no longer fits), it catches up.
#[test]
fn an_upgrade_appended_to_a_live_chain_node_by_node_activates_on_every_node() {
    let _serial = serial();
    let mut net = Testnet::create(4, fast);
    net.start_all();
    net.wait_height(&[0, 1, 2, 3], 2);
    let faucet = net.faucet_key.to_str().unwrap().to_owned();
    let (_, to) = new_account(&net, "recipient");
    let early = refused(&transfer(&net, &faucet, &to, 1, Some("too early")));
    assert!(
        early.contains("transfer_with_memo is not valid under protocol version 1"),
        "{early}"
    );
    let genesis_hash = net.status(0).unwrap()["genesis_hash"].clone();
    let unscheduled = schedule_hash(&net, 0);

    let tip = (0..4).filter_map(|i| net.height(i)).max().unwrap();
    let at = tip + LIVE_MARGIN;
    for i in 0..3 {
        net.stop(i);
        let out = schedule_memo(&net, i, at, &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report = json_of(&out);
        assert_eq!(report["appended"]["name"], "memo", "{report}");
        net.start(i);
        // The others keep committing while it is down and after it is back.
        let before = net.height((i + 1) % 4).unwrap();
        net.wait_height(&[0, 1, 2, 3], before + 5);
    }
    let highest = (0..4).filter_map(|i| net.height(i)).max().unwrap();
    assert!(highest < at, "the chain reached {at} during the rollout");
    assert_eq!(net.status(0).unwrap()["genesis_hash"], genesis_hash);
    let scheduled = schedule_hash(&net, 0);
    assert_ne!(scheduled, unscheduled);
    assert_eq!(schedule_hash(&net, 1), scheduled);
    assert_eq!(schedule_hash(&net, 2), scheduled);
    assert_eq!(schedule_hash(&net, 3), unscheduled);
    net.assert_agree(&[0, 1, 2, 3]);

    // Three of four is a quorum: the chain crosses the height; node 3 does not follow it.
    net.wait_height(&[0, 1, 2], at + 5);
    let memo = json_of(&transfer(&net, &faucet, &to, 1, Some("after the upgrade")));
    assert_eq!(memo["status"], "committed", "{memo}");
    // At the height the others let node 3 go (their fork id moved and its handshake no
    // longer passes) and refuse it when it dials again; it stays up below the height, and
    // its status and log name the upgrade and the command.
    net.wait_for("nodes 0-2 to let node 3 go", |net| {
        net.status(3).is_some_and(|s| s["peers"] == 0)
            && (0..3).all(|i| net.status(i).is_some_and(|s| s["peers"] == 2))
    });
    let left_out = net.height(3).unwrap();
    assert!(
        left_out < at,
        "node 3 committed {left_out} under the old rules"
    );
    assert!(net.exited(3).is_none(), "node 3 exited");
    net.wait_for("node 3 to show what it lacks", |net| {
        net.status(3).is_some_and(|s| {
            s["peer_on_another_schedule"]["upgrade"] == "memo"
                && s["peer_on_another_schedule"]["height"] == at
        })
    });
    net.wait_for("node 3 to log what it lacks", |net| {
        let log = std::fs::read_to_string(&net.nodes[3].log).unwrap();
        log.contains("has activated upgrade \"memo\"") && log.contains("--late --name memo")
    });
    assert_eq!([version_at(&net, at - 1), version_at(&net, at)], [1, 3]);

    // Too late for the rollout's margin; `--late` takes any height above its tip.
    net.stop(3);
    let too_close = refused(&schedule_memo(&net, 3, at, &[]));
    assert!(too_close.contains("--late"), "{too_close}");
    let late = schedule_memo(&net, 3, at, &["--late"]);
    assert!(
        late.status.success(),
        "{}",
        String::from_utf8_lossy(&late.stderr)
    );
    net.start(3);
    let now = net.height(0).unwrap();
    net.wait_height(&[3], now);
    assert_eq!(schedule_hash(&net, 3), scheduled);
    net.assert_agree(&[0, 1, 2, 3]);
}
