//! A BFT network of real `cairn node run` processes talking libp2p over real sockets, each
//! with its own RocksDB: transfers submitted with the CLI commit and every node agrees; a
//! crashed validator does not stop the chain and catches up after a restart; losing two of
//! four stops commits without forking; outsiders and other networks are refused; bad RPC
//! input gets errors while the node keeps committing. The first three run on HotStuff and
//! on PBFT (`pbft_` tests, `cairn testnet --mode pbft`).

use std::process::Command;
use std::time::Duration;

use cairn_tests::cairn_bin;
use cairn_tests::testnet::{
    Testnet, cairn, fast, free_ports, get, json_of, log_tail, new_account, post, read_manifest,
    rpc_call, serial, spawn_node,
};
use serde_json::{Value, json};

fn balance(net: &Testnet, node: usize, address: &str) -> u64 {
    let account = net
        .rpc(node, "account", json!({ "address": address }))
        .expect("account answers");
    account["balance"].as_u64().expect("balance")
}

/// Asserts that no node's committed height moves for `quiet`.
fn assert_no_commits(net: &Testnet, nodes: &[usize], quiet: Duration) -> Vec<u64> {
    let before: Vec<u64> = nodes.iter().map(|&i| net.height(i).unwrap()).collect();
    std::thread::sleep(quiet);
    let after: Vec<u64> = nodes.iter().map(|&i| net.height(i).unwrap()).collect();
    assert_eq!(
        before,
        after,
        "heights moved without a quorum\n{}",
        net.logs()
    );
    after
}

/// `cairn testnet` arguments that pick PBFT; HotStuff is the default.
const PBFT: &[&str] = &["--mode", "pbft"];

#[test]
fn four_validators_commit_cli_transfers_and_agree_on_every_block() {
    transfers_commit_and_every_node_agrees(&[]);
}

#[test]
fn pbft_four_validators_commit_cli_transfers_and_agree_on_every_block() {
    transfers_commit_and_every_node_agrees(PBFT);
}

fn transfers_commit_and_every_node_agrees(mode: &[&str]) {
    let _serial = serial();
    let mut net = Testnet::create_with(4, mode, fast);
    net.start_all();
    net.wait_height(&[0, 1, 2, 3], 3);
    // The engine and its leader rule (reputation, as `cairn testnet` writes) are shown
    // whichever engine runs.
    let status = json_of(&cairn(&[
        "status",
        "--rpc",
        &net.nodes[0].rpc,
        "--output",
        "json",
    ]));
    let engine = if mode == PBFT { "pbft" } else { "hotstuff" };
    assert_eq!(status["consensus"], engine, "{status}");
    assert_eq!(status["leader_election"]["rule"], "reputation", "{status}");
    assert!(
        status["leader_election"]["passed_over"].is_array(),
        "{status}"
    );

    let faucet = net.faucet_key.to_str().unwrap().to_owned();
    let (_, alice) = new_account(&net, "alice");
    // Through node 1, waiting for the commit.
    let waited = json_of(&cairn(&[
        "tx",
        "transfer",
        "--key",
        &faucet,
        "--to",
        &alice,
        "--amount",
        "12345",
        "--wait",
        "--rpc",
        &net.nodes[1].rpc,
        "--output",
        "json",
    ]));
    assert_eq!(waited["status"], "committed", "{waited}");
    assert_eq!(waited["receipt"]["status"], "applied", "{waited}");
    let first_height = waited["height"].as_u64().expect("height");

    // Through node 2 without waiting: admitted, gossiped, included by whichever leader.
    let submitted = json_of(&cairn(&[
        "tx",
        "transfer",
        "--key",
        &faucet,
        "--to",
        &alice,
        "--amount",
        "655",
        "--rpc",
        &net.nodes[2].rpc,
        "--output",
        "json",
    ]));
    let hash = submitted["hash"].as_str().expect("hash").to_owned();
    net.wait_for("the second transfer to commit", |net| {
        net.rpc(3, "tx", json!({ "hash": hash }))
            .is_ok_and(|t| t["status"] == "committed")
    });
    let top = net.height(0).unwrap().max(first_height) + 1;
    net.wait_height(&[0, 1, 2, 3], top);

    for i in 0..4 {
        assert_eq!(
            balance(&net, i, &alice),
            13_000,
            "alice on {}",
            net.nodes[i].name
        );
        let shown = json_of(&cairn(&[
            "query",
            "account",
            &alice,
            "--rpc",
            &net.nodes[i].rpc,
            "--output",
            "json",
        ]));
        assert_eq!(shown["balance"], 13_000);
    }
    let agreed = net.assert_agree(&[0, 1, 2, 3]);
    assert!(agreed >= top);
}

#[test]
fn a_crashed_validator_does_not_stop_the_chain_and_catches_up_after_restart() {
    crashed_validator_catches_up(&[]);
}

#[test]
fn pbft_a_crashed_validator_does_not_stop_the_chain_and_catches_up_after_restart() {
    crashed_validator_catches_up(PBFT);
}

fn crashed_validator_catches_up(mode: &[&str]) {
    let _serial = serial();
    // A crashed leader costs round timeouts on each of its turns: short rounds keep the
    // test short.
    let args = [mode, &["--round-timeout-ms", "250"]].concat();
    let mut net = Testnet::create_with(4, &args, fast);
    net.start_all();
    net.wait_height(&[0, 1, 2, 3], 3);

    net.kill(3);
    let at_crash = net.height(0).unwrap();
    // Far enough that the answer must come from the peers' stores, not their in-memory
    // history of recent blocks.
    let target = at_crash + 70;
    net.wait_height(&[0, 1, 2], target);

    net.start(3);
    let tip = net.height(0).unwrap();
    net.wait_height(&[3], tip);
    net.wait_for("node3 to report itself synced and peered", |net| {
        net.status(3)
            .is_some_and(|s| s["syncing"] == false && s["peers"].as_u64() == Some(3))
    });
    // It rejoins consensus: the chain keeps committing with node3 counted.
    let h = net.height(3).unwrap();
    net.wait_height(&[0, 1, 2, 3], h + 5);
    net.assert_agree(&[0, 1, 2, 3]);

    // A clean shutdown exits 0, and the node resumes from its own store.
    let status = net.stop(0);
    assert!(status.success(), "SIGTERM exit: {status}\n{}", net.logs());
    let before = net.height(1).unwrap();
    net.start(0);
    net.wait_height(&[0, 1, 2, 3], before + 5);
    net.assert_agree(&[0, 1, 2, 3]);
}

#[test]
fn two_of_four_down_stops_commits_without_forks_until_one_returns() {
    two_of_four_down_halts_until_one_returns(&[]);
}

#[test]
fn pbft_two_of_four_down_stops_commits_without_forks_until_one_returns() {
    two_of_four_down_halts_until_one_returns(PBFT);
}

fn two_of_four_down_halts_until_one_returns(mode: &[&str]) {
    let _serial = serial();
    let mut net = Testnet::create_with(4, mode, fast);
    net.start_all();
    net.wait_height(&[0, 1, 2, 3], 3);

    net.kill(2);
    net.kill(3);
    // Certificates already formed may still finish a commit or two; then nothing can.
    std::thread::sleep(Duration::from_secs(2));
    let stuck = assert_no_commits(&net, &[0, 1], Duration::from_secs(4));
    net.assert_agree(&[0, 1]);
    let status = net.status(0).unwrap();
    assert!(
        status["round"].as_u64().unwrap() > 0,
        "rounds still advance by timeouts: {status}"
    );

    net.start(2);
    let resume = stuck.iter().max().unwrap() + 3;
    net.wait_height(&[0, 1, 2], resume);
    net.assert_agree(&[0, 1, 2]);
}

/// Writes a node home with `genesis` and `key` listening on fresh ports, dialling node 0.
fn extra_node(
    net: &Testnet,
    name: &str,
    genesis: &std::path::Path,
    key: &str,
) -> (std::path::PathBuf, String) {
    let home = net.path().join(name);
    let port = free_ports(2);
    let p2p = format!("/ip4/127.0.0.1/tcp/{port}");
    let rpc = format!("127.0.0.1:{}", port + 1);
    let out = cairn(&[
        "init",
        "--home",
        home.to_str().unwrap(),
        "--genesis",
        genesis.to_str().unwrap(),
        "--key",
        key,
        "--p2p-listen",
        &p2p,
        "--rpc-listen",
        &rpc,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = read_manifest(net.path());
    let node0 = manifest["nodes"][0]["p2p"].as_str().unwrap();
    let config = home.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "persistent_peers = []",
            &format!("persistent_peers = [\"{node0}\"]"),
        ),
    )
    .unwrap();
    (home, format!("http://{rpc}"))
}

fn peer_id_of(key: &str) -> String {
    json_of(&cairn(&["keys", "show", key, "--output", "json"]))["peer_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn outsiders_and_nodes_of_another_genesis_are_refused() {
    let _serial = serial();
    let mut net = Testnet::create(4, fast);
    // Node 3 stays down: its key is reused below by a node on another genesis.
    for i in 0..3 {
        net.start(i);
    }
    net.wait_height(&[0, 1, 2], 3);
    let genesis = net.path().join("genesis.toml");

    // A key nobody allowed, on the right genesis.
    let (outsider_key, _) = new_account(&net, "outsider");
    let (home, outsider_rpc) = extra_node(&net, "outsider", &genesis, &outsider_key);
    let outsider_log = home.join("node.log");
    let mut outsider = spawn_node(&home, &outsider_log);

    // Node 3's own key, allowed, but on a genesis with another chain id.
    let other = net.path().join("other-genesis.toml");
    let text = std::fs::read_to_string(&genesis).unwrap();
    let chain_line = text
        .lines()
        .find(|l| l.starts_with("chain_id"))
        .expect("genesis has chain_id");
    std::fs::write(
        &other,
        text.replace(chain_line, "chain_id = \"another-chain\""),
    )
    .unwrap();
    let node3_key = net.nodes[3].key.to_str().unwrap().to_owned();
    let (other_home, other_rpc) = extra_node(&net, "other", &other, &node3_key);
    let other_log = other_home.join("node.log");
    let mut stranger = spawn_node(&other_home, &other_log);

    let outsider_id = peer_id_of(&outsider_key);
    let node3_id = peer_id_of(&node3_key);
    let node0_log = net.nodes[0].log.clone();
    net.wait_for("node0 to log refusing both", |_| {
        let log = std::fs::read_to_string(&node0_log).unwrap_or_default();
        let refused = |id: &str| log.lines().any(|l| l.contains(id) && l.contains("refused"));
        refused(&outsider_id) && refused(&node3_id)
    });
    for (rpc, log) in [(&outsider_rpc, &outsider_log), (&other_rpc, &other_log)] {
        let status = rpc_call(rpc, "status", json!({})).expect("refused node still serves RPC");
        assert_eq!(status["peers"], 0, "{status}\n{}", log_tail(log));
        assert_eq!(status["height"], 0, "{status}");
    }
    let node0 = net.status(0).unwrap();
    assert_eq!(node0["peers"], 2, "only the two other validators: {node0}");
    let _ = outsider.kill();
    let _ = stranger.kill();
    let _ = outsider.wait();
    let _ = stranger.wait();
}

#[test]
fn bad_rpc_input_gets_errors_and_the_node_keeps_committing() {
    let _serial = serial();
    let mut net = Testnet::create(4, fast);
    net.start_all();
    net.wait_height(&[0, 1, 2, 3], 3);
    let url = net.nodes[0].rpc.clone();

    let (_, body) = post(&url, b"{not json").unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], -32700, "{v}");

    // Refused with 413 and a JSON-RPC error; the server may also close the connection before
    // the client has finished sending, which the client sees as a reset.
    let huge = vec![b' '; 2 * 1024 * 1024];
    match post(&url, &huge) {
        Ok((status, body)) => {
            assert_eq!(status, 413, "{body}");
            assert!(body.contains("limit"), "{body}");
        }
        Err(e) => assert!(
            e.contains("reset") || e.contains("pipe") || e.contains("closed"),
            "oversized body: {e}"
        ),
    }

    let e = rpc_call(&url, "submit_tx", json!({ "tx": "zz" })).unwrap_err();
    assert_eq!(e["code"], -32602, "{e}");
    let e = rpc_call(&url, "submit_tx", json!({ "tx": hex_of(&[7u8; 200]) })).unwrap_err();
    assert_eq!(e["code"], -32602, "{e}");
    let e = rpc_call(&url, "no_such_method", json!({})).unwrap_err();
    assert_eq!(e["code"], -32601, "{e}");

    let h = net.height(0).unwrap();
    net.wait_height(&[0, 1, 2, 3], h + 5);
    assert!(net.exited(0).is_none());
    let health = get(&format!("{url}/health"));
    assert_eq!(health, "ok");
    let metrics = get(&format!("{url}/metrics"));
    for name in [
        "cairn_height",
        "cairn_bft_round",
        "cairn_peers",
        "cairn_txs_rejected_total",
        "cairn_block_interval_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    net.wait_for("/ready to say ready", |_| {
        get(&format!("{url}/ready")) == "ready"
    });
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn testnet_command_runs_the_network_and_ctrl_c_stops_every_node() {
    use std::io::{BufRead, BufReader};
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let base = free_ports(8);
    let mut testnet = Command::new(cairn_bin())
        .args(["testnet", "--dir"])
        .arg(dir.path())
        .args(["--base-port", &base.to_string()])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start cairn testnet");
    // It prints its banner once every node has committed; read until then on a thread so a
    // hang fails the test instead of blocking it.
    let stdout = testnet.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + cairn_tests::testnet::WAIT_MAX;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains("Ctrl-C stops every node");
                seen.push(line);
                if done {
                    break;
                }
            }
            Err(_) => {
                cairn_tests::testnet::interrupt(&mut testnet);
                panic!("cairn testnet never reported running:\n{}", seen.join("\n"));
            }
        }
    }
    let manifest = read_manifest(dir.path());
    let rpcs: Vec<String> = manifest["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["rpc"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(rpcs.len(), 4);
    assert!(dir.path().join("faucet.key").exists());
    for rpc in &rpcs {
        assert!(
            seen.iter().any(|l| l.contains(rpc.as_str())),
            "{rpc} not printed"
        );
        let status = rpc_call(rpc, "status", json!({})).expect("node answers");
        assert!(status["height"].as_u64().unwrap() >= 2, "{status}");
    }

    // A second copy on the same directory is refused: its ports are taken.
    let again = cairn(&["testnet", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("already in use") && err.contains("--base-port"),
        "{err}"
    );

    // SAFETY: kill(2) on a child this test spawned and has not reaped.
    unsafe {
        libc::kill(testnet.id() as libc::pid_t, libc::SIGINT);
    }
    let status = testnet.wait().unwrap();
    assert!(status.success(), "cairn testnet exit: {status}");
    for rpc in &rpcs {
        assert!(
            rpc_call(rpc, "status", json!({})).is_err(),
            "{rpc} still answers after Ctrl-C"
        );
    }
}

/// The `reason` sample of `cairn_messages_dropped_total` in a /metrics text, or 0.
fn dropped(metrics: &str, reason: &str) -> u64 {
    let needle = format!("cairn_messages_dropped_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(needle.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn garbage_from_an_allowed_peer_is_dropped_counted_and_punished_while_the_chain_goes_on() {
    use cairn_ledger::genesis::Genesis;
    use cairn_ledger::upgrades::Schedule;
    use cairn_node::config::P2pSection;
    use cairn_node::p2p::{self, Event, P2pConfig, Topic};

    let _serial = serial();
    let mut net = Testnet::create(4, fast);
    for i in 0..3 {
        net.start(i);
    }
    net.wait_height(&[0, 1, 2], 3);

    // The rogue speaks with node 3's key: allowed in, and the handshake matches.
    let genesis = Genesis::load(&net.path().join("genesis.toml")).unwrap();
    let key = cairn_ledger::keys::read_key_file(&net.nodes[3].key).unwrap();
    let manifest = read_manifest(net.path());
    let node0_addr = manifest["nodes"][0]["p2p"].as_str().unwrap().to_owned();
    let node0_peer = node0_addr.rsplit('/').next().unwrap().to_owned();
    let section = P2pSection {
        listen: "/ip4/127.0.0.1/tcp/0".into(),
        persistent_peers: vec![node0_addr.clone()],
        ..P2pSection::default()
    };
    let schedule = Schedule::for_this_binary(&genesis);
    let config =
        P2pConfig::new(&section, &genesis, &schedule, cairn_ledger::Height(0), &key).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = net.nodes[0].rpc.clone();
    let metrics_before = get(&format!("{url}/metrics"));
    let disconnected = runtime.block_on(async {
        let (handle, mut events, _task) = p2p::spawn(config).await.unwrap();
        let node0 = loop {
            match tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
                Ok(Some(Event::PeerConnected { peer, .. })) if peer.to_string() == node0_peer => {
                    break peer;
                }
                Ok(Some(_)) => continue,
                other => panic!("never connected to node0: {other:?}"),
            }
        };
        // Not a consensus message, a consensus message cut short, and a transaction that is
        // not one: each is refused by node0, and each is a strike against this peer.
        handle.send_direct(node0, vec![0xff; 64]).await.unwrap();
        handle
            .send_direct(node0, vec![0, 0, 0, 0, 1, 2])
            .await
            .unwrap();
        handle
            .publish(Topic::Transactions, vec![0xab; 100])
            .await
            .unwrap();
        handle.send_direct(node0, vec![9; 300]).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(Event::PeerDisconnected { peer })) if peer == node0 => break true,
                Ok(Some(_)) => continue,
                _ => break false,
            }
        }
    });
    assert!(disconnected, "node0 kept a peer that sent garbage");
    let metrics = get(&format!("{url}/metrics"));
    assert!(
        dropped(&metrics, "malformed") > dropped(&metrics_before, "malformed"),
        "garbage was not counted:\n{metrics}"
    );
    let log = std::fs::read_to_string(&net.nodes[0].log).unwrap();
    assert!(
        log.contains("invalid data from peer"),
        "{}",
        log_tail(&net.nodes[0].log)
    );
    // The node kept its data and goes on committing with the other two.
    let h = net.height(0).unwrap();
    net.wait_height(&[0, 1, 2], h + 5);
    net.assert_agree(&[0, 1, 2]);
}

#[test]
fn a_full_node_outside_the_committee_syncs_and_follows_the_chain() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("full.key");
    let key = key.to_str().unwrap().to_owned();
    json_of(&cairn(&[
        "keys", "generate", "--out", &key, "--output", "json",
    ]));
    let full_id = peer_id_of(&key);
    let allow = |config: &str| {
        let out = fast(config).replace(
            "allowed_peers = []",
            &format!("allowed_peers = [\"{full_id}\"]"),
        );
        assert!(
            out.contains(&full_id),
            "config.toml has no allowed_peers to tune"
        );
        out
    };
    let mut net = Testnet::create(4, allow);
    net.start_all();
    // Far enough ahead that the full node needs both the store-served and the recent part.
    net.wait_height(&[0, 1, 2, 3], 80);
    let genesis = net.path().join("genesis.toml");
    let (home, rpc) = extra_node(&net, "full", &genesis, &key);
    let log = home.join("node.log");
    let mut full = spawn_node(&home, &log);
    let height = |rpc: &str| {
        rpc_call(rpc, "status", json!({}))
            .ok()
            .and_then(|s| s["height"].as_u64())
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + cairn_tests::testnet::WAIT_MAX;
    while height(&rpc) + 3 < net.height(0).unwrap_or(u64::MAX) {
        assert!(
            std::time::Instant::now() < deadline,
            "the full node did not catch up (height {} vs {:?}):\n{}\n--- node0 about it:\n{}",
            height(&rpc),
            net.height(0),
            log_tail(&log),
            std::fs::read_to_string(&net.nodes[0].log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(&full_id) || l.contains("WARN"))
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // And it keeps following: later blocks arrive too, with the validators' hashes.
    let caught_up = height(&rpc);
    net.wait_for("the full node to follow new blocks", |_| {
        height(&rpc) >= caught_up + 20
    });
    let h = height(&rpc);
    let ours = rpc_call(&rpc, "block", json!({ "height": h })).unwrap();
    let theirs = net.rpc(0, "block", json!({ "height": h })).unwrap();
    assert_eq!(ours["hash"], theirs["hash"], "{}", log_tail(&log));
    let status = rpc_call(&rpc, "status", json!({})).unwrap();
    assert_eq!(status["validator"], json!(false), "{status}");
    let _ = full.kill();
    let _ = full.wait();
}
