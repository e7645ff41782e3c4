//! `cairn bench tps` against a real 4-validator network: at a low rate every submitted
//! transfer commits, and the JSON report carries the fields scripts rely on.

use std::process::Command;

use cairn_tests::cairn_bin;
use cairn_tests::testnet::{Testnet, serial};
use serde_json::Value;

#[test]
fn bench_tps_at_a_low_rate_commits_everything_it_submits() {
    let _serial = serial();
    let mut net = Testnet::create(4, |config| config.to_owned());
    net.start_all();
    net.wait_height(&[0, 1, 2, 3], 2);
    let rpc: Vec<&str> = net.nodes.iter().map(|n| n.rpc.as_str()).collect();
    let out = Command::new(cairn_bin())
        .args(["bench", "tps", "--rpc", &rpc.join(",")])
        .arg("--key")
        .arg(&net.faucet_key)
        .args(["--accounts", "8", "--duration", "4", "--rate", "50"])
        .args(["--seed", "7", "--output", "json"])
        .output()
        .expect("run cairn bench tps");
    assert!(
        out.status.success(),
        "cairn bench tps failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        net.logs()
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("--output json prints JSON");
    for field in [
        "submitted",
        "committed",
        "rejected",
        "rejected_by_reason",
        "submitted_tps",
        "committed_tps",
        "latency_ms",
        "drained",
    ] {
        assert!(report.get(field).is_some(), "no {field:?} in {report:#}");
    }
    let submitted = report["submitted"].as_u64().expect("submitted");
    // 4 s at 50 tx/s is 200; a slow machine may fall a little behind the schedule.
    assert!((100..=201).contains(&submitted), "{report:#}");
    assert_eq!(report["committed"], report["submitted"], "{report:#}");
    assert_eq!(report["rejected"], 0, "{report:#}");
    assert_eq!(report["drained"], true, "{report:#}");
    for p in ["p50", "p90", "p99"] {
        let ms = report["latency_ms"][p].as_f64().expect("latency in ms");
        assert!(ms > 0.0, "{report:#}");
    }
    assert!(report["committed_tps"].as_f64().expect("committed_tps") > 0.0);
}
