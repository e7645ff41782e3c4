//! Upgrades that change the rules, on real processes: a 4-validator network whose genesis
//! schedules both upgrades this binary ships (`fee-floor`, then `memo`). Each height's blocks
//! carry its protocol version, and the nodes admit and commit exactly what that version's
//! rules allow, through the CLI a user runs.

use std::process::Output;

use cairn_tests::testnet::{Testnet, cairn, fast, json_of, new_account, serial};
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
}
