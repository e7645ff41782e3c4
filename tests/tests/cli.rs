//! The `cairn` binary on real files: what users and scripts rely on, and bad input of every
//! kind giving an error that names the file or field, exit status 1, and never a panic.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use cairn_tests::testnet::{cairn, free_ports};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A failure that is reported, not a crash.
fn assert_clean_failure(o: &Output, must_mention: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "exit status; stderr: {err}");
    assert!(!err.contains("panicked"), "panic on bad input: {err}");
    assert!(err.starts_with("error: "), "{err}");
    for m in must_mention {
        assert!(err.contains(m), "error should mention {m:?}: {err}");
    }
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "stderr: {}", stderr(o));
    serde_json::from_slice(&o.stdout).expect("--output json prints JSON")
}

#[test]
fn keys_generate_writes_a_private_file_and_show_prints_address_and_peer_id() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("a.key");
    let k = key.to_str().unwrap();
    let generated = json(&cairn(&[
        "keys", "generate", "--out", k, "--output", "json",
    ]));
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let shown = json(&cairn(&["keys", "show", k, "--output", "json"]));
    assert_eq!(generated["address"], shown["address"]);
    assert_eq!(shown["address"].as_str().unwrap().len(), 40);
    assert!(shown["peer_id"].as_str().unwrap().starts_with("12D3KooW"));
    // Never overwrite a key.
    assert_clean_failure(&cairn(&["keys", "generate", "--out", k]), &[k]);
}

#[test]
fn malformed_key_files_are_named_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[u8], &str)] = &[
        ("empty.key", b"", ""),
        ("garbage.key", b"\x00\xff\xfe garbage", ""),
        (
            "truncated.key",
            b"{\"type\":\"ed25519\",\"public_key\":\"ab",
            "",
        ),
        (
            "type.key",
            b"{\"type\":\"rsa\",\"public_key\":\"00\",\"secret_key\":\"00\"}",
            "rsa",
        ),
        (
            "hex.key",
            b"{\"type\":\"ed25519\",\"public_key\":\"zz\",\"secret_key\":\"zz\"}",
            "_key",
        ),
    ];
    for (name, content, mention) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let p = path.to_str().unwrap();
        assert_clean_failure(&cairn(&["keys", "show", p]), &[p, mention]);
    }
    let missing = dir.path().join("missing.key");
    let m = missing.to_str().unwrap();
    assert_clean_failure(&cairn(&["keys", "show", m]), &[m]);

    let open = dir.path().join("open.key");
    let o = open.to_str().unwrap();
    json(&cairn(&[
        "keys", "generate", "--out", o, "--output", "json",
    ]));
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_clean_failure(&cairn(&["keys", "show", o]), &[o, "chmod 600"]);
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn genesis_new_validates_and_bad_genesis_files_name_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let n = net.to_str().unwrap();
    let created = json(&cairn(&[
        "genesis",
        "new",
        "--mode",
        "pow",
        "--validators",
        "3",
        "--out",
        n,
        "--output",
        "json",
    ]));
    let genesis = created["genesis"].as_str().unwrap();
    let valid = json(&cairn(&[
        "genesis", "validate", genesis, "--output", "json",
    ]));
    assert_eq!(valid["engine"], "pow");
    assert_eq!(valid["validators"], 3);
    assert_eq!(valid["genesis_hash"], created["genesis_hash"]);
    // A second `genesis new` into the same directory is refused.
    assert_clean_failure(
        &cairn(&["genesis", "new", "--validators", "1", "--out", n]),
        &["already exists"],
    );

    let text = std::fs::read_to_string(genesis).unwrap();
    let bad_engine = write(
        dir.path(),
        "engine.toml",
        &text.replace("engine = \"pow\"", "engine = \"raft\""),
    );
    assert_clean_failure(
        &cairn(&["genesis", "validate", &bad_engine]),
        &[&bad_engine, "consensus.engine", "raft"],
    );
    let zero_power = write(
        dir.path(),
        "power.toml",
        &text.replacen("voting_power = 1", "voting_power = 0", 1),
    );
    assert_clean_failure(
        &cairn(&["genesis", "validate", &zero_power]),
        &["validators[0].voting_power"],
    );
    let syntax = write(dir.path(), "syntax.toml", "chain_id = \"x\"\n[consensus\n");
    assert_clean_failure(
        &cairn(&["genesis", "validate", &syntax]),
        &[&syntax, "line 2"],
    );
    let binary = write(dir.path(), "binary.toml", "\u{0}\u{1}\u{2}");
    assert_clean_failure(&cairn(&["genesis", "validate", &binary]), &[&binary]);
    let missing = dir.path().join("nope.toml");
    assert_clean_failure(
        &cairn(&["genesis", "validate", missing.to_str().unwrap()]),
        &["nope.toml"],
    );
}

#[test]
fn init_creates_a_home_once_and_refuses_to_overwrite_it() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let created = json(&cairn(&[
        "genesis",
        "new",
        "--validators",
        "2",
        "--out",
        net.to_str().unwrap(),
        "--output",
        "json",
    ]));
    let genesis = created["genesis"].as_str().unwrap();
    let key = created["validator_keys"][1].as_str().unwrap();
    let home = dir.path().join("home");
    let h = home.to_str().unwrap();
    let report = json(&cairn(&[
        "init",
        "--home",
        h,
        "--genesis",
        genesis,
        "--key",
        key,
        "--output",
        "json",
    ]));
    assert_eq!(report["validator"], true);
    assert_eq!(report["genesis_hash"], created["genesis_hash"]);
    for f in ["config.toml", "genesis.toml", "node.key", "data"] {
        assert!(home.join(f).exists(), "{f} missing from the home");
    }
    let mode = std::fs::metadata(home.join("node.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let config = std::fs::read_to_string(home.join("config.toml")).unwrap();
    assert!(config.contains("moniker = \"home\""), "{config}");
    assert_clean_failure(
        &cairn(&["init", "--home", h, "--genesis", genesis, "--key", key]),
        &["already holds a node"],
    );
    let bad_rpc = dir.path().join("bad-rpc");
    assert_clean_failure(
        &cairn(&[
            "init",
            "--home",
            bad_rpc.to_str().unwrap(),
            "--genesis",
            genesis,
            "--key",
            key,
            "--rpc-listen",
            "localhost",
        ]),
        &["rpc.listen", "localhost"],
    );
    assert!(!bad_rpc.exists(), "nothing is written for a bad setting");
    let faucet = created["faucet_key"].as_str().unwrap();
    let other = dir.path().join("full");
    let report = json(&cairn(&[
        "init",
        "--home",
        other.to_str().unwrap(),
        "--genesis",
        genesis,
        "--key",
        faucet,
        "--output",
        "json",
    ]));
    assert_eq!(report["validator"], false);
}

#[test]
fn testnet_writes_homes_and_manifest_and_refuses_a_taken_port() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let taken_dir = dir.path().join("taken");
    assert_clean_failure(
        &cairn(&[
            "testnet",
            "--validators",
            "2",
            "--dir",
            taken_dir.to_str().unwrap(),
            "--base-port",
            &port.to_string(),
        ]),
        &[&port.to_string(), "--base-port"],
    );
    assert!(
        !taken_dir.exists(),
        "nothing is written when a port is taken"
    );
    drop(busy);

    let tn = dir.path().join("tn");
    // Another process may take a port of the range between our check and cairn's: retry
    // with another. The range is below 32768, out of the kernel's range for outgoing
    // connections, which other tests' nodes keep taking ports from.
    let out = (0..10)
        .map(|_| {
            let base = free_ports(6);
            cairn(&[
                "testnet",
                "--no-start",
                "--validators",
                "3",
                "--dir",
                tn.to_str().unwrap(),
                "--base-port",
                &base.to_string(),
            ])
        })
        .find(|o| !stderr(o).contains("already in use"))
        .expect("a free range of ports within 10 tries");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("not started (--no-start)"),
        "says nothing runs"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tn.join("testnet.json")).unwrap()).unwrap();
    let nodes = manifest["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for n in nodes {
        for field in ["name", "rpc", "p2p", "home", "key"] {
            assert!(n[field].is_string(), "testnet.json node lacks {field}");
        }
        assert!(Path::new(n["home"].as_str().unwrap()).join("data").exists());
    }
    assert!(Path::new(manifest["faucet_key"].as_str().unwrap()).exists());

    // Running it again reuses the network instead of failing or overwriting it.
    let again = cairn(&["testnet", "--no-start", "--dir", tn.to_str().unwrap()]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("existing testnet"));
    assert!(stdout(&again).contains(manifest["genesis_hash"].as_str().unwrap()));
}
