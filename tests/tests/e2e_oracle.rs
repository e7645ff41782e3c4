//! The oracle end to end: a 4-validator network of real processes and five real
//! `cairn oracle publish` daemons staking and reporting DEMO/USD. Three report honestly, one
//! lies far off, one commits and is killed before it can reveal; one honest publisher is
//! killed between its commit and its reveal and restarted. The chain's price is the honest
//! median, the liar is penalised as out of band, the silent one for not revealing, the
//! restarted one still reveals, and the TWAP follows the price in force block by block.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_tests::cairn_bin;
use cairn_tests::testnet::{Testnet, WAIT_MAX, json_of, serial};
use serde_json::{Value, json};

/// Other windows than the local default (30 + 30): shorter, so that rounds end sooner with
/// the 100 ms empty-block interval below, and still long enough for a publisher polling every
/// 100 ms on a loaded machine; the rules are the same.
const WINDOW_BLOCKS: u64 = 20;
const STAKE: u64 = 5_000;
const FUNDS: u64 = 100_000;

fn fast(config: &str) -> String {
    config.replace(
        "empty_block_interval_ms = 500",
        "empty_block_interval_ms = 100",
    )
}

fn long_windows(genesis: &str) -> String {
    let out = genesis
        .replace(
            "commit_window_blocks = 30",
            &format!("commit_window_blocks = {WINDOW_BLOCKS}"),
        )
        .replace(
            "reveal_window_blocks = 30",
            &format!("reveal_window_blocks = {WINDOW_BLOCKS}"),
        );
    assert_ne!(out, genesis, "genesis has no DEMO/USD windows to tune");
    out
}

fn cairn(args: &[&str]) -> Value {
    json_of(&cairn_tests::testnet::cairn(args))
}

struct Publisher {
    key: String,
    address: String,
    source: PathBuf,
    state: PathBuf,
    log: PathBuf,
    rpc: String,
    child: Option<Child>,
}

impl Publisher {
    fn new(net: &Testnet, i: usize, rpc: &str) -> Publisher {
        let dir = net.path().join(format!("publisher{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("op.key").to_str().unwrap().to_owned();
        let out = cairn(&["keys", "generate", "--out", &key, "--output", "json"]);
        Publisher {
            key,
            address: out["address"].as_str().unwrap().to_owned(),
            source: dir.join("value.txt"),
            state: dir.join("state"),
            log: dir.join("publisher.log"),
            rpc: rpc.to_owned(),
            child: None,
        }
    }

    fn set_value(&self, value: &str) {
        std::fs::write(&self.source, format!("{value}\n")).unwrap();
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let source = format!("file:{}", self.source.display());
        let child = Command::new(cairn_bin())
            .args([
                "oracle", "publish", "--feed", "DEMO/USD", "--key", &self.key,
            ])
            .args(["--source", &source, "--stake", &STAKE.to_string()])
            .arg("--state-dir")
            .arg(&self.state)
            .args(["--rpc", &self.rpc])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn cairn oracle publish");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.kill();
    }
}

fn operator(net: &Testnet, address: &str) -> Value {
    net.rpc(
        0,
        "oracle_operator",
        json!({ "feed": "DEMO/USD", "address": address }),
    )
    .unwrap_or(Value::Null)
}

fn round(net: &Testnet) -> Value {
    net.rpc(0, "oracle_round", json!({ "feed": "DEMO/USD" }))
        .expect("oracle_round answers")
}

fn logs(net: &Testnet, publishers: &[Publisher]) -> String {
    let mut out = net.logs();
    for (i, p) in publishers.iter().enumerate() {
        out.push_str(&format!("\n--- publisher {i} ---\n{}", p.log()));
    }
    out
}

/// Polls `check` every 50 ms for up to `max`, panicking with every log on timeout.
fn wait(
    net: &Testnet,
    publishers: &[Publisher],
    what: &str,
    max: Duration,
    mut check: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + max;
    while !check() {
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}\n{}", logs(net, publishers));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The price in force at height `t` per the rounds in `history` (newest first).
fn price_in_force(history: &[Value], t: u64) -> Option<u64> {
    history
        .iter()
        .find(|r| r["end_height"].as_u64().unwrap() <= t)
        .and_then(|r| r["price_in_force"]["value"].as_u64())
}

#[test]
fn publishers_set_the_honest_median_and_misbehaviour_is_penalised() {
    let _serial = serial();
    let mut net = Testnet::from_genesis(4, long_windows, fast);
    net.start_all();
    net.wait_height(&[0, 1, 2, 3], 2);
    let faucet = net.faucet_key.to_str().unwrap().to_owned();
    let rpcs: Vec<String> = net.nodes.iter().map(|n| n.rpc.clone()).collect();

    // Operators 0-2 honest, 3 lies, 4 commits and dies. Spread over the nodes' RPCs.
    let mut ps: Vec<Publisher> = (0..5)
        .map(|i| Publisher::new(&net, i, &rpcs[i % 4]))
        .collect();
    for p in &ps {
        cairn(&[
            "tx",
            "transfer",
            "--key",
            &faucet,
            "--to",
            &p.address,
            "--amount",
            &FUNDS.to_string(),
            "--wait",
            "--rpc",
            &rpcs[0],
            "--output",
            "json",
        ]);
    }
    let values = ["1.000000", "1.002000", "1.001000", "5.000000", "1.001500"];
    for (p, v) in ps.iter_mut().zip(values) {
        p.set_value(v);
        p.start();
    }

    // The first round in which all five are eligible: they staked during the previous one.
    let mut target = 0;
    wait(&net, &ps, "all five operators eligible", WAIT_MAX, || {
        let all = ps
            .iter()
            .all(|p| operator(&net, &p.address)["eligible_stake"] == json!(STAKE));
        if all {
            target = round(&net)["round"].as_u64().unwrap();
        }
        all
    });
    // The round must still be in its commit phase for the kills below to land between
    // commit and reveal; if all became eligible late in it, use the next round.
    if round(&net)["next_height_phase"] != json!("commit") {
        target += 1;
    }
    let in_target_commit = |net: &Testnet| {
        let r = round(net);
        r["round"] == json!(target) && r["next_height_phase"] == json!("commit")
    };

    // Kill the silent one (4) and an honest one (0) as soon as their commitments are on
    // chain, still in the commit phase; restart 0 only.
    for who in [4usize, 0] {
        let address = ps[who].address.clone();
        wait(
            &net,
            &ps,
            "a commitment in the target round",
            WAIT_MAX,
            || {
                round(&net)["round"].as_u64().unwrap() == target
                    && operator(&net, &address)["committed"] == json!(true)
            },
        );
        assert!(
            in_target_commit(&net),
            "operator {who} committed too late in round {target} to test a kill before the reveal"
        );
        ps[who].kill();
    }
    ps[0].start();

    // Round `target` ends.
    let mut summary = Value::Null;
    wait(&net, &ps, "the target round to end", WAIT_MAX, || {
        let v = net
            .rpc(
                0,
                "oracle_price",
                json!({ "feed": "DEMO/USD", "history": 4 }),
            )
            .unwrap();
        if let Some(r) = v["history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["round"] == json!(target))
        {
            summary = r.clone();
            true
        } else {
            false
        }
    });
    let all = logs(&net, &ps);
    assert_eq!(summary["outcome"], json!("price"), "{summary}\n{all}");
    assert_eq!(summary["commits"], json!(5), "{summary}");
    assert_eq!(summary["reveals"], json!(4), "{summary}");
    // Reveals 1.000, 1.001, 1.002 and 5.000 with equal stake: the lower weighted median is
    // 1.001, an honest value; the liar cannot move it.
    assert_eq!(
        summary["band"]["median"]["value"],
        json!(1_001_000),
        "{summary}"
    );

    let status = |who: usize| operator(&net, &ps[who].address);
    // The restarted publisher revealed from its round file.
    let restarted = status(0);
    assert_eq!(restarted["misses"], json!(0), "{restarted}\n{all}");
    assert!(restarted["in_band"].as_u64().unwrap() >= 1, "{restarted}");
    let log = ps[0].log();
    let after_restart = log.rsplit("publisher started").next().unwrap_or("");
    assert!(
        after_restart.contains(&format!("round={target}")) && after_restart.contains("revealed"),
        "the restarted publisher should reveal round {target}:\n{log}"
    );
    // The liar: out of band and penalised (10 bps of 5,000).
    let liar = status(3);
    assert!(liar["out_of_band"].as_u64().unwrap() >= 1, "{liar}");
    assert!(liar["penalties_total"].as_u64().unwrap() >= 5, "{liar}");
    assert!(liar["bonded"].as_u64().unwrap() < STAKE, "{liar}");
    // The silent one: a miss, penalised from stake; its account stake shows the burn.
    let silent = status(4);
    assert_eq!(silent["misses"], json!(1), "{silent}");
    assert_eq!(silent["penalties_total"], json!(5), "{silent}");
    let account = net
        .rpc(0, "account", json!({ "address": ps[4].address }))
        .unwrap();
    assert_eq!(account["stake"], json!(STAKE - 5), "{account}");
    // Honest reporters share the rewards.
    for who in [1, 2] {
        let s = status(who);
        assert!(s["rewards_total"].as_u64().unwrap() > 0, "{s}");
        assert_eq!(s["penalties_total"], json!(0), "{s}");
    }

    // Move the honest values: the next round's price follows, and the TWAP over a window
    // spanning both prices is their block-weighted average.
    for (who, v) in [(0, "2.000000"), (1, "2.002000"), (2, "2.001000")] {
        ps[who].set_value(v);
    }
    let mut history = Vec::new();
    wait(
        &net,
        &ps,
        "a round priced at the new values",
        WAIT_MAX * 2,
        || {
            let v = net
                .rpc(
                    0,
                    "oracle_price",
                    json!({ "feed": "DEMO/USD", "history": 8 }),
                )
                .unwrap();
            history = v["history"].as_array().unwrap().clone();
            v["price"]["value"] == json!(2_001_000)
        },
    );
    let round_blocks = 2 * WINDOW_BLOCKS;
    // One round: every height in it has a price in force (the first price was set at least
    // a round before the new one), and the newest heights have the new price.
    let window = round_blocks;
    let out = cairn(&[
        "oracle",
        "price",
        "DEMO/USD",
        "--twap",
        &window.to_string(),
        "--history",
        "8",
        "--rpc",
        &rpcs[1],
        "--output",
        "json",
    ]);
    let history: Vec<Value> = out["history"].as_array().unwrap().clone();
    let now = out["height"].as_u64().unwrap();
    let expected: u64 = ((now + 1 - window)..=now)
        .map(|t| price_in_force(&history, t).expect("a price in force over the window"))
        .sum::<u64>()
        / window;
    let twap = out["twap"]["price"]["value"].as_u64().unwrap();
    assert_eq!(twap, expected, "{out}");
    assert!(twap > 1_001_000 && twap <= 2_001_000, "{out}");
    assert!(out["confidence"]["low"]["value"].as_u64().unwrap() <= 2_001_000);
    assert_eq!(out["stale"], json!(false), "{out}");

    let metrics = cairn_tests::testnet::get(&format!("{}/metrics", rpcs[3]));
    assert!(
        metrics.contains("cairn_oracle_price{feed=\"DEMO/USD\"} 2.001"),
        "{metrics}"
    );

    // Bad queries get errors that say what to do, and the node keeps going.
    for (args, says) in [
        (
            vec!["oracle", "price", "BTC/USD"],
            "feeds on this network: DEMO/USD",
        ),
        (
            vec!["oracle", "price", "DEMO/USD", "--twap", "0"],
            "at least one block",
        ),
        (
            vec!["oracle", "price", "DEMO/USD", "--history", "100000"],
            "at most",
        ),
    ] {
        let out = Command::new(cairn_bin())
            .args(&args)
            .args(["--rpc", &rpcs[2]])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{args:?}: {err}"
        );
    }
    let bad_id = Command::new(cairn_bin())
        .args(["oracle", "price", "demo-usd", "--rpc", &rpcs[2]])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad_id.stderr).contains("BASE/QUOTE"));
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(cmd);
            }
        }
    }
    found
}

#[test]
fn testnet_with_publishers_shows_prices_and_ctrl_c_stops_them_too() {
    publishers_show_prices_and_stop_with_the_testnet(&[]);
}

#[test]
fn pbft_testnet_with_publishers_shows_prices_and_ctrl_c_stops_them_too() {
    publishers_show_prices_and_stop_with_the_testnet(&["--mode", "pbft"]);
}

fn publishers_show_prices_and_stop_with_the_testnet(mode: &[&str]) {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let base = cairn_tests::testnet::free_ports(8);
    let mut testnet = Command::new(cairn_bin())
        .args(["testnet", "--oracle-publishers", "3"])
        .args(mode)
        .arg("--dir")
        .arg(dir.path())
        .args(["--base-port", &base.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cairn testnet");
    let rpc = format!("http://127.0.0.1:{}", base + 1);
    let deadline = Instant::now() + WAIT_MAX * 2;
    let price = loop {
        let v = cairn_tests::testnet::rpc_call(&rpc, "oracle_price", json!({ "feed": "DEMO/USD" }));
        if let Ok(v) = &v
            && !v["price"].is_null()
        {
            break v.clone();
        }
        if Instant::now() > deadline {
            cairn_tests::testnet::interrupt(&mut testnet);
            let log =
                std::fs::read_to_string(dir.path().join("publishers/publisher0/publisher.log"))
                    .unwrap_or_default();
            panic!("no DEMO/USD price appeared: {v:?}\n{log}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // The synthetic source stays within 0.3% of 1.00.
    let value = price["price"]["value"].as_u64().unwrap();
    assert!((997_000..=1_003_000).contains(&value), "{price}");
    let needle = dir.path().to_str().unwrap().to_owned();
    assert_eq!(
        processes_mentioning(&format!("{needle}/publishers")).len(),
        3,
        "three publishers run"
    );

    // SAFETY: kill(2) on a child this test spawned and has not reaped.
    unsafe {
        libc::kill(testnet.id() as libc::pid_t, libc::SIGINT);
    }
    let status = testnet.wait().unwrap();
    assert!(status.success(), "cairn testnet exit: {status}");
    let left = processes_mentioning(&needle);
    assert!(left.is_empty(), "still running after Ctrl-C: {left:?}");
}
