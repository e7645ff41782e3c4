//! The genesis format end to end: files parsed, checked, written and hashed.

use std::collections::HashSet;
use std::path::PathBuf;

use proptest::prelude::*;

use super::*;
use crate::crypto::Keypair;
use crate::keys;
use crate::types::{Address, Amount, Height, PublicKey, TimestampMs};

fn key(seed: u8) -> PublicKey {
    Keypair::from_secret(&[seed; 32]).public()
}

fn address(seed: u8) -> Address {
    key(seed).address()
}

/// The format's own example, with real keys.
fn example_toml() -> String {
    format!(
        r#"
chain_id = "cairn-local"
genesis_time_ms = 1767225600000
protocol_version = 1

[consensus]
engine = "hotstuff"
block_txs_max = 2000
block_bytes_max = 4194304

[consensus.hotstuff]
round_timeout_ms_base = 1000
round_timeout_ms_max = 30000

[[validators]]
name = "node0"
public_key = "{k1}"
voting_power = 1
peer_id = "{p1}"

[[validators]]
public_key = "0x{k2}"
voting_power = 3

[[accounts]]
address = "{a1}"
balance = 1000000

[[upgrades]]
name = "oracle-v2"
height = 100
protocol_version = 2

[[upgrades]]
name = "fees-v3"
height = 250
protocol_version = 3

[oracle]
unbonding_blocks = 100
min_operator_stake = 1000
round_reward = 10

[[oracle.feeds]]
id = "BTC/USD"
decimals = 8
commit_window_blocks = 5
reveal_window_blocks = 5
quorum_bps = 5000
reward_band_bps = 100
reveal_miss_penalty_bps = 10
out_of_band_penalty_bps = 10
"#,
        k1 = key(1),
        p1 = keys::peer_id(&key(1)),
        k2 = key(2),
        a1 = address(9),
    )
}

fn example() -> Genesis {
    Genesis::from_toml_str(&example_toml()).unwrap()
}

fn pow_example() -> Genesis {
    Genesis::local(
        EngineKind::Pow,
        &[key(1)],
        &[(address(9), Amount(5))],
        TimestampMs(7),
    )
}

fn problems(result: Result<Genesis, GenesisError>) -> Vec<Problem> {
    match result {
        Err(GenesisError::Invalid { problems, .. }) => problems,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn problem_paths(toml: &str) -> Vec<String> {
    let mut paths: Vec<String> = problems(Genesis::from_toml_str(toml))
        .into_iter()
        .map(|p| p.path)
        .collect();
    paths.sort();
    paths
}

fn round_trip(g: &Genesis) -> Genesis {
    Genesis::from_toml_str(&g.to_file().to_toml_string()).unwrap()
}

#[test]
fn example_parses_into_the_typed_genesis() {
    let g = example();
    assert_eq!(g.chain_id, "cairn-local");
    assert_eq!(g.genesis_time, TimestampMs(1_767_225_600_000));
    assert_eq!(
        g.consensus.engine,
        EngineParams::HotStuff(HotStuffParams {
            round_timeout_ms_base: 1000,
            round_timeout_ms_max: 30_000,
            leader_election: LeaderElection::RoundRobin,
        })
    );
    assert_eq!(g.validators.len(), 2);
    assert_eq!(g.validators[1].name, None);
    assert_eq!(g.validators[1].public_key, key(2));
    // Left out in the file, derived from the key.
    assert_eq!(g.validators[1].peer_id, keys::peer_id(&key(2)));
    assert_eq!(g.total_voting_power(), 4);
    assert!(!g.is_pow());
    assert_eq!(g.accounts[0].address, address(9));
    assert_eq!(g.oracle.feeds[0].decimals, 8);
    assert_eq!(g.oracle.feeds[0].quorum_bps, 5000);
}

#[test]
fn written_file_loads_back_equal_with_the_same_hash() {
    for g in [
        example(),
        pow_example(),
        Genesis::local(
            EngineKind::HotStuff,
            &[key(1), key(2), key(3)],
            &[],
            TimestampMs(0),
        ),
    ] {
        let text = g.to_file().to_toml_string();
        let back = Genesis::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, g);
        assert_eq!(back.hash(), g.hash());
    }
}

#[test]
fn local_genesis_has_the_documented_defaults() {
    let g = pow_example();
    assert!(g.is_pow());
    let EngineParams::Pow(pow) = &g.consensus.engine else {
        unreachable!()
    };
    assert_eq!(pow.initial_bits, 0x1f00ffff);
    assert_eq!(pow.block_reward, Amount(5_000_000_000));
    assert_eq!(g.consensus.block_bytes_max, 4 * 1024 * 1024);
    assert_eq!(g.validators[0].name.as_deref(), Some("node0"));
    assert_eq!(g.oracle.feeds[0].id, "DEMO/USD");
    assert!(g.upgrades.is_empty());
    // The validation rules agree with the defaults.
    assert_eq!(g.to_file().validate().unwrap(), g);
}

#[test]
fn absent_oracle_section_means_no_feeds_and_round_trips() {
    let mut g = example();
    g.oracle = OracleParams::default();
    assert!(g.to_file().oracle.is_none());
    assert_eq!(round_trip(&g), g);
    // An oracle section with no feeds is not the same network as no section.
    let mut with_section = g.clone();
    with_section.oracle.unbonding_blocks = 1;
    with_section.oracle.min_operator_stake = Amount(1);
    assert_eq!(round_trip(&with_section), with_section);
    assert_ne!(with_section.hash(), g.hash());
}

#[test]
fn hash_changes_when_any_field_changes() {
    type Edit = fn(&mut Genesis);
    let hotstuff_edits: Vec<Edit> = vec![
        |g| g.chain_id.push('x'),
        |g| g.genesis_time.0 += 1,
        |g| g.protocol_version.0 += 1,
        |g| g.consensus.block_txs_max += 1,
        |g| g.consensus.block_bytes_max += 1,
        |g| {
            if let EngineParams::HotStuff(h) = &mut g.consensus.engine {
                h.round_timeout_ms_base += 1
            }
        },
        |g| {
            if let EngineParams::HotStuff(h) = &mut g.consensus.engine {
                h.round_timeout_ms_max += 1
            }
        },
        |g| {
            if let EngineParams::HotStuff(h) = &mut g.consensus.engine {
                h.leader_election = match h.leader_election {
                    LeaderElection::RoundRobin => LeaderElection::Reputation {
                        retry_after_ms: 5000,
                    },
                    LeaderElection::Reputation { .. } => LeaderElection::RoundRobin,
                }
            }
        },
        |g| g.validators[0].name = None,
        |g| g.validators[0].name = Some("node9".into()),
        |g| g.validators[0].public_key = key(7),
        |g| g.validators[0].voting_power += 1,
        |g| g.validators[0].peer_id.push('x'),
        |g| g.validators.swap(0, 1),
        |g| {
            g.validators.pop();
        },
        |g| g.accounts[0].address = address(8),
        |g| g.accounts[0].balance.0 += 1,
        |g| g.accounts.clear(),
        |g| g.oracle.unbonding_blocks += 1,
        |g| g.oracle.min_operator_stake.0 += 1,
        |g| g.oracle.round_reward.0 += 1,
        |g| g.oracle.feeds[0].id.push('X'),
        |g| g.oracle.feeds[0].decimals += 1,
        |g| g.oracle.feeds[0].commit_window_blocks += 1,
        |g| g.oracle.feeds[0].reveal_window_blocks += 1,
        |g| g.oracle.feeds[0].quorum_bps += 1,
        |g| g.oracle.feeds[0].reward_band_bps += 1,
        |g| g.oracle.feeds[0].reveal_miss_penalty_bps += 1,
        |g| g.oracle.feeds[0].out_of_band_penalty_bps += 1,
        |g| g.oracle.feeds.clear(),
        |g| g.consensus.engine = pow_example().consensus.engine,
    ];
    let pow_edits: Vec<Edit> = vec![
        |g| pow_params(g).initial_bits -= 1,
        |g| pow_params(g).target_block_time_ms += 1,
        |g| pow_params(g).retarget_interval_blocks += 1,
        |g| pow_params(g).block_reward.0 += 1,
        |g| pow_params(g).halving_interval_blocks += 1,
        |g| pow_params(g).coinbase_maturity_blocks += 1,
        |g| pow_params(g).future_block_time_ms_max += 1,
    ];
    for (base, edits) in [(example(), hotstuff_edits), (pow_example(), pow_edits)] {
        let mut hashes = HashSet::from([base.hash()]);
        for (i, edit) in edits.iter().enumerate() {
            let mut g = base.clone();
            edit(&mut g);
            assert_ne!(g, base, "edit {i} changed nothing");
            assert!(hashes.insert(g.hash()), "edit {i} did not change the hash");
        }
    }
}

/// The schedule grows on a live chain (`cairn upgrade schedule`): it must not rename the
/// network. Handshakes compare schedules through the fork id instead.
#[test]
fn hash_leaves_out_the_upgrade_schedule() {
    let base = example();
    assert!(!base.upgrades.is_empty());
    type Edit = fn(&mut Genesis);
    let edits: Vec<Edit> = vec![
        |g| g.upgrades[0].name.push('x'),
        |g| g.upgrades[0].height.0 += 1,
        |g| g.upgrades[0].protocol_version.0 += 1,
        |g| {
            g.upgrades.pop();
        },
        |g| g.upgrades.clear(),
    ];
    for (i, edit) in edits.iter().enumerate() {
        let mut g = base.clone();
        edit(&mut g);
        assert_ne!(g, base, "edit {i} changed nothing");
        assert_eq!(g.hash(), base.hash(), "edit {i} changed the hash");
    }
}

fn pow_params(g: &mut Genesis) -> &mut PowParams {
    match &mut g.consensus.engine {
        EngineParams::Pow(p) => p,
        EngineParams::HotStuff(_) | EngineParams::Pbft(_) => panic!("not a pow genesis"),
    }
}

#[test]
fn every_problem_in_a_file_is_reported_with_its_path() {
    let big = i64::MAX;
    let toml = format!(
        r#"
chain_id = "bad chain!"
genesis_time_ms = 0
protocol_version = 0

[consensus]
engine = "hotstuff"
block_txs_max = 0
block_bytes_max = 10

[consensus.hotstuff]
round_timeout_ms_base = 0
round_timeout_ms_max = 0

[consensus.pow]
initial_bits = "0x00800000"
target_block_time_ms = 0
retarget_interval_blocks = 1
block_reward = 1
halving_interval_blocks = 1
coinbase_maturity_blocks = 1
future_block_time_ms_max = 1

[[validators]]
name = "a"
public_key = "{k1}"
voting_power = 0

[[validators]]
name = "a"
public_key = "{k1}"
voting_power = 1
peer_id = "{p2}"

[[validators]]
public_key = "zz"
voting_power = 1

[[accounts]]
address = "{a1}"
balance = {big}

[[accounts]]
address = "{a1}"
balance = {big}

[[accounts]]
address = "xyz"
balance = {big}

[[upgrades]]
name = "Bad Name"
height = 0
protocol_version = 0

[[upgrades]]
name = "up"
height = 100
protocol_version = 5

[[upgrades]]
name = "up"
height = 50
protocol_version = 3

[oracle]
unbonding_blocks = 0
min_operator_stake = 0
round_reward = 0

[[oracle.feeds]]
id = "btc/usd"
decimals = 19
commit_window_blocks = 0
reveal_window_blocks = 0
quorum_bps = 0
reward_band_bps = 10001
reveal_miss_penalty_bps = 10001
out_of_band_penalty_bps = 10001

[[oracle.feeds]]
id = "BTC/USD"
decimals = 8
commit_window_blocks = 5
reveal_window_blocks = 5
quorum_bps = 5000
reward_band_bps = 100
reveal_miss_penalty_bps = 10
out_of_band_penalty_bps = 10

[[oracle.feeds]]
id = "BTC/USD"
decimals = 8
commit_window_blocks = 5
reveal_window_blocks = 5
quorum_bps = 5000
reward_band_bps = 100
reveal_miss_penalty_bps = 10
out_of_band_penalty_bps = 10
"#,
        k1 = key(1),
        p2 = keys::peer_id(&key(2)),
        a1 = address(1),
    );
    let mut expected = vec![
        "chain_id",
        "protocol_version",
        "consensus.block_txs_max",
        "consensus.block_bytes_max",
        "consensus.hotstuff.round_timeout_ms_base",
        "consensus.pow",
        "consensus.pow.initial_bits",
        "consensus.pow.target_block_time_ms",
        "validators[0].voting_power",
        "validators[1].name",
        "validators[1].public_key",
        "validators[1].peer_id",
        "validators[2].public_key",
        "accounts[1].address",
        "accounts[2].address",
        "accounts[2].balance",
        "upgrades[0].name",
        "upgrades[0].height",
        "upgrades[0].protocol_version",
        "upgrades[2].name",
        "upgrades[2].height",
        "upgrades[2].protocol_version",
        "oracle.unbonding_blocks",
        "oracle.feeds[0].id",
        "oracle.feeds[0].decimals",
        "oracle.feeds[0].commit_window_blocks",
        "oracle.feeds[0].reveal_window_blocks",
        "oracle.feeds[0].quorum_bps",
        "oracle.feeds[0].reward_band_bps",
        "oracle.feeds[0].reveal_miss_penalty_bps",
        "oracle.feeds[0].out_of_band_penalty_bps",
        "oracle.feeds[2].id",
    ];
    expected.sort();
    assert_eq!(problem_paths(&toml), expected);
}

#[test]
fn messages_name_the_offending_values() {
    let base = example_toml();
    let messages = |toml: String| -> Vec<String> {
        problems(Genesis::from_toml_str(&toml))
            .into_iter()
            .map(|p| p.to_string())
            .collect()
    };

    let m = messages(base.replace("height = 250", "height = 50"));
    assert_eq!(
        m,
        [
            "upgrades[1].height: 50 is not above upgrades[0].height (100); upgrades must be in \
          increasing height order"
        ]
    );

    // A name this binary implements must carry the version it implements.
    let m = messages(base.replace("name = \"fees-v3\"", "name = \"fee-floor\""));
    assert_eq!(
        m,
        [
            "upgrades[1].protocol_version: is 3, but this binary implements \"fee-floor\" as \
          protocol version 2; one name must mean one set of rules everywhere (fix the genesis, \
          or name the upgrade differently if it is another one)"
        ]
    );

    let m = messages(base.replace("engine = \"hotstuff\"", "engine = \"raft\""));
    assert_eq!(
        m,
        ["consensus.engine: unknown engine \"raft\"; expected \"hotstuff\", \"pbft\" or \"pow\""]
    );

    let m = messages(base.replace(&format!("0x{}", key(2)), &key(1).to_string()));
    assert_eq!(
        m,
        [format!(
            "validators[1].public_key: duplicate of validators[0] ({}); each key may appear \
             once",
            key(1)
        )]
    );

    let m = messages(base.replace("protocol_version = 3", "protocol_version = 2"));
    assert_eq!(
        m,
        [
            "upgrades[1].protocol_version: 2 is not above upgrades[0].protocol_version (2); \
          versions must increase with height"
        ]
    );

    let long_chain = "x".repeat(65);
    let m = messages(base.replace("\"cairn-local\"", &format!("\"{long_chain}\"")));
    assert_eq!(
        m,
        [format!(
            "chain_id: \"{long_chain}\" is 65 characters, over the limit of 64"
        )]
    );
}

#[test]
fn engine_and_sections_must_agree() {
    let pow_section = r#"
[consensus.pow]
initial_bits = "0x1d00ffff"
target_block_time_ms = 2000
retarget_interval_blocks = 20
block_reward = 1
halving_interval_blocks = 1
coinbase_maturity_blocks = 1
future_block_time_ms_max = 1
"#;
    let hotstuff_section =
        "[consensus.hotstuff]\nround_timeout_ms_base = 1000\nround_timeout_ms_max = 30000\n";
    let base = example_toml();

    // hotstuff with an extra pow section.
    let with_pow = base.replacen(
        "[[validators]]",
        &format!("{pow_section}\n[[validators]]"),
        1,
    );
    let p = problems(Genesis::from_toml_str(&with_pow));
    assert_eq!(p.len(), 1);
    assert_eq!(
        p[0].to_string(),
        "consensus.pow: section given but engine is \"hotstuff\"; remove it or set engine = \
         \"pow\""
    );

    // pow with only a hotstuff section.
    let pow_missing = base.replace("engine = \"hotstuff\"", "engine = \"pow\"");
    let p = problems(Genesis::from_toml_str(&pow_missing));
    let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["consensus.hotstuff", "consensus.pow"]);
    assert!(p[1].message.contains("missing"));

    // hotstuff with neither section and no validators.
    let bare = base
        .replace(hotstuff_section, "")
        .split("[[validators]]")
        .next()
        .unwrap()
        .to_string();
    let p = problems(Genesis::from_toml_str(&bare));
    let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["consensus.hotstuff", "validators"]);

    // pow needs no validators.
    let pow_only = bare.replace("engine = \"hotstuff\"", "engine = \"pow\"") + pow_section;
    let g = Genesis::from_toml_str(&pow_only).unwrap();
    assert!(g.is_pow() && g.validators.is_empty());
}

#[test]
fn validator_keys_must_be_usable() {
    let mut not_on_curve = None;
    for b in 2..=255u8 {
        let mut bytes = [0u8; 32];
        bytes[0] = b;
        if curve25519_dalek::edwards::CompressedEdwardsY(bytes)
            .decompress()
            .is_none()
        {
            not_on_curve = Some(PublicKey(bytes));
            break;
        }
    }
    let not_on_curve = not_on_curve.expect("some small y is not on the curve");
    // y = 1 is the identity: canonical, of order 1.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    // y = p + 1 spells y = 1 a second way.
    let mut y_over_p = [0xffu8; 32];
    y_over_p[0] = 0xee;
    y_over_p[31] = 0x7f;
    let cases = [
        (not_on_curve.to_string(), "not a point on the curve"),
        (hex::encode(identity), "small order"),
        (hex::encode(y_over_p), "not a canonical point encoding"),
        ("abcd".to_string(), "expected 64 hex digits"),
    ];
    for (bad, expected) in cases {
        let toml = example_toml().replace(&format!("0x{}", key(2)), &bad);
        let p = problems(Genesis::from_toml_str(&toml));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].path, "validators[1].public_key");
        assert!(p[0].message.contains(expected), "{}", p[0].message);
    }
}

#[test]
fn wrong_peer_id_is_reported() {
    let toml = example_toml().replace(
        &keys::peer_id(&key(1)),
        "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
    );
    let p = problems(Genesis::from_toml_str(&toml));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].path, "validators[0].peer_id");
    assert!(p[0].message.contains(&keys::peer_id(&key(1))));
}

#[test]
fn total_voting_power_and_supply_overflow_are_reported() {
    let max = u64::MAX;
    let fits = example_toml().replace("voting_power = 1", &format!("voting_power = {}", max - 3));
    assert_eq!(
        Genesis::from_toml_str(&fits).unwrap().total_voting_power(),
        max
    );
    let toml = example_toml()
        .replace("voting_power = 1", &format!("voting_power = {max}"))
        .replacen(
            "[[upgrades]]",
            &format!(
                "[[accounts]]\naddress = \"{}\"\nbalance = {max}\n\n[[upgrades]]",
                address(8)
            ),
            1,
        );
    let p = problems(Genesis::from_toml_str(&toml));
    let shown: Vec<String> = p.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        shown,
        [
            format!(
                "validators[1].voting_power: adding 3 makes the total voting power overflow a \
                 u64 (max {max})"
            ),
            format!(
                "accounts[1].balance: adding {max} makes the total supply overflow a u64 (max \
                 {max})"
            ),
        ]
    );
}

#[test]
fn syntax_unknown_fields_and_wrong_types_are_parse_errors_with_lines() {
    let base = example_toml();
    let cases = [
        (format!("colour = 1\n{base}"), "unknown field `colour`"),
        (
            base.replace("round_reward = 10", "round_reward = 10\nmood = \"ok\""),
            "unknown field `mood`",
        ),
        (
            base.replace(
                "genesis_time_ms = 1767225600000",
                "genesis_time_ms = \"soon\"",
            ),
            "invalid type",
        ),
        (
            base.replace("voting_power = 3", "voting_power = -3"),
            "voting_power",
        ),
        (base.replace("\"cairn-local\"", "\"cairn-local"), "line 2"),
        (base.replace("[consensus]", "[consensus"), "line"),
        (
            base.replace("block_txs_max = 2000\n", ""),
            "missing field `block_txs_max`",
        ),
    ];
    for (toml, expected) in cases {
        match Genesis::from_toml_str(&toml) {
            Err(e @ GenesisError::Parse { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("line"), "no line number: {msg}");
                assert!(msg.contains(expected), "{msg:?} lacks {expected:?}");
                assert!(msg.starts_with("cannot parse genesis: "), "{msg}");
            }
            other => panic!("expected a parse error for {expected:?}, got {other:?}"),
        }
    }
}

#[test]
fn protocol_version_follows_the_upgrade_schedule() {
    let g = example();
    let at = |h| g.protocol_version_at(Height(h)).0;
    assert_eq!(
        [at(0), at(99), at(100), at(249), at(250), at(u64::MAX)],
        [1, 1, 2, 2, 3, 3]
    );
}

#[test]
fn invalid_error_lists_every_problem_under_a_header() {
    let e = GenesisError::Invalid {
        path: Some(PathBuf::from("/x/genesis.toml")),
        problems: vec![
            Problem {
                path: "chain_id".into(),
                message: "is empty".into(),
            },
            Problem {
                path: "validators".into(),
                message: "none given".into(),
            },
        ],
    };
    assert_eq!(
        e.to_string(),
        "genesis file /x/genesis.toml has 2 problems:\n  - chain_id: is empty\n  - \
         validators: none given"
    );
}

#[test]
fn load_names_the_file_in_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("genesis.toml");
    std::fs::write(&path, example_toml()).unwrap();
    assert_eq!(Genesis::load(&path).unwrap(), example());

    let shown = path.display().to_string();
    let missing = dir.path().join("nope.toml");
    let e = Genesis::load(&missing).unwrap_err();
    assert!(matches!(e, GenesisError::Read { .. }));
    assert!(e.to_string().contains(&missing.display().to_string()));

    std::fs::write(
        &path,
        example_toml().replace("round_reward = 10", "round_reward = 10\nx = 1"),
    )
    .unwrap();
    let e = Genesis::load(&path).unwrap_err();
    assert!(matches!(&e, GenesisError::Parse { path: Some(p), .. } if *p == path));
    assert!(
        e.to_string()
            .starts_with(&format!("cannot parse genesis file {shown}: "))
    );

    std::fs::write(&path, example_toml().replace("cairn-local", "")).unwrap();
    let e = Genesis::load(&path).unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "genesis file {shown} has 1 problem:\n  - chain_id: "
        )),
        "{e}"
    );

    std::fs::write(&path, [b'a', 0xff, 0xfe]).unwrap();
    let e = Genesis::load(&path).unwrap_err();
    assert!(e.to_string().contains("not UTF-8"), "{e}");

    std::fs::write(&path, vec![b'#'; GENESIS_BYTES_MAX + 1]).unwrap();
    let e = Genesis::load(&path).unwrap_err();
    assert!(matches!(e, GenesisError::Read { .. }));
    assert!(e.to_string().contains("over the limit"), "{e}");
}

#[test]
fn written_file_documents_its_fields() {
    let text = example().to_file().to_toml_string();
    assert!(text.starts_with("# Cairn genesis file"));
    assert!(text.contains("[consensus.hotstuff]"));
    assert!(text.contains("# first round timeout"));
    assert!(text.contains("[[oracle.feeds]]"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
        let _ = Genesis::from_toml_str(&s);
    }

    #[test]
    fn edited_example_never_panics(
        at in 0usize..2000,
        len in 0usize..20,
        insert in "[\\PC\n]{0,20}",
    ) {
        let base = example_toml();
        let start = base.char_indices().map(|(i, _)| i).nth(at % base.chars().count()).unwrap();
        let end = base[start..]
            .char_indices()
            .map(|(i, _)| start + i)
            .nth(len)
            .unwrap_or(base.len());
        let edited = format!("{}{}{}", &base[..start], insert, &base[end..]);
        let _ = Genesis::from_toml_str(&edited);
    }


    #[test]
    fn written_strings_and_numbers_read_back_exactly(
        chain_id in "\\PC{0,40}",
        name in "[\\PC\t\n\"\\\\']{0,20}",
        balance in any::<u64>(),
    ) {
        let mut file = example().to_file();
        file.chain_id = chain_id;
        file.validators[0].name = Some(name);
        file.accounts[0].balance = balance;
        let back: GenesisFile = toml::from_str(&file.to_toml_string()).unwrap();
        prop_assert_eq!(back, file);
    }
}

#[test]
fn leader_election_is_round_robin_when_absent_and_reputation_when_asked() {
    let rule = |toml: &str| match Genesis::from_toml_str(toml).unwrap().consensus.engine {
        EngineParams::HotStuff(h) => h.leader_election,
        other => panic!("not hotstuff: {other:?}"),
    };
    let base = example_toml();
    assert_eq!(rule(&base), LeaderElection::RoundRobin);
    let with = |extra: &str| {
        base.replace(
            "round_timeout_ms_max = 30000\n",
            &format!("round_timeout_ms_max = 30000\n{extra}"),
        )
    };
    assert_eq!(
        rule(&with("leader_election = \"reputation\"\n")),
        LeaderElection::Reputation {
            retry_after_ms: LeaderElection::RETRY_AFTER_MS_DEFAULT
        }
    );
    assert_eq!(
        rule(&with(
            "leader_election = \"reputation\"\nleader_retry_after_ms = 4000\n"
        )),
        LeaderElection::Reputation {
            retry_after_ms: 4000
        }
    );
    assert_eq!(
        rule(&with("leader_election = \"round_robin\"\n")),
        LeaderElection::RoundRobin
    );
    // Written back and read again, each rule is itself.
    for g in [
        example(),
        Genesis::from_toml_str(&with("leader_election = \"reputation\"\n")).unwrap(),
    ] {
        assert_eq!(round_trip(&g), g);
    }
}

#[test]
fn a_wrong_leader_election_names_the_field_and_the_choices() {
    let base = example_toml();
    let with = |extra: &str| {
        base.replace(
            "round_timeout_ms_max = 30000\n",
            &format!("round_timeout_ms_max = 30000\n{extra}"),
        )
    };
    let p = problems(Genesis::from_toml_str(&with(
        "leader_election = \"random\"\n",
    )));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].path, "consensus.hotstuff.leader_election");
    assert!(
        p[0].message.contains("\"reputation\" or \"round_robin\""),
        "{}",
        p[0].message
    );
    let p = problems(Genesis::from_toml_str(&with(
        "leader_retry_after_ms = 4000\n",
    )));
    assert_eq!(p[0].path, "consensus.hotstuff.leader_retry_after_ms");
    let p = problems(Genesis::from_toml_str(&with(
        "leader_election = \"reputation\"\nleader_retry_after_ms = 10\n",
    )));
    assert_eq!(p[0].path, "consensus.hotstuff.leader_retry_after_ms");
    assert!(
        p[0].message.contains("round_timeout_ms_base"),
        "{}",
        p[0].message
    );
}

#[test]
fn a_pbft_genesis_round_trips_and_its_section_must_match_the_engine() {
    let key = crate::crypto::Keypair::from_secret(&[3; 32]).public();
    let g = Genesis::local(EngineKind::Pbft, &[key], &[], TimestampMs(0));
    let text = g.to_file().to_toml_string();
    assert!(
        text.contains("engine = \"pbft\"") && text.contains("[consensus.pbft]"),
        "{text}"
    );
    assert_eq!(Genesis::from_toml_str(&text).unwrap(), g);
    // PBFT and HotStuff genesis files of the same validators are different networks.
    let h = Genesis::local(EngineKind::HotStuff, &[key], &[], TimestampMs(0));
    assert_ne!(g.hash(), h.hash());
    let mixed = text.replace("engine = \"pbft\"", "engine = \"hotstuff\"");
    let paths: Vec<String> = problems(Genesis::from_toml_str(&mixed))
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(
        paths,
        [
            "consensus.pbft: section given but engine is \"hotstuff\"; remove it or set engine = \"pbft\"",
            "consensus.hotstuff: missing; engine \"hotstuff\" needs a [consensus.hotstuff] section"
        ]
    );
    let zero = text.replace("round_timeout_ms_base = 1000", "round_timeout_ms_base = 0");
    let p = problems(Genesis::from_toml_str(&zero));
    assert_eq!(p[0].path, "consensus.pbft.round_timeout_ms_base");
}

#[test]
fn a_pbft_genesis_carries_its_leader_election_in_its_hash_and_names_its_section() {
    let key = crate::crypto::Keypair::from_secret(&[3; 32]).public();
    let g = Genesis::local(EngineKind::Pbft, &[key], &[], TimestampMs(0));
    let EngineParams::Pbft(p) = &g.consensus.engine else {
        panic!("not pbft");
    };
    // What `cairn genesis new --mode pbft` writes.
    assert_eq!(
        p.leader_election,
        LeaderElection::Reputation {
            retry_after_ms: LeaderElection::RETRY_AFTER_MS_DEFAULT
        }
    );
    let text = g.to_file().to_toml_string();
    assert!(text.contains("leader_election = \"reputation\""), "{text}");
    let mut round_robin = g.clone();
    if let EngineParams::Pbft(p) = &mut round_robin.consensus.engine {
        p.leader_election = LeaderElection::RoundRobin;
    }
    assert_ne!(round_robin.hash(), g.hash());
    assert_eq!(round_trip(&round_robin), round_robin);
    // Absent: round robin, as for HotStuff.
    let absent = text
        .lines()
        .filter(|l| !l.starts_with("leader_"))
        .collect::<Vec<_>>()
        .join("\n");
    match Genesis::from_toml_str(&absent).unwrap().consensus.engine {
        EngineParams::Pbft(p) => assert_eq!(p.leader_election, LeaderElection::RoundRobin),
        other => panic!("not pbft: {other:?}"),
    }
    let wrong = text.replace(
        "leader_election = \"reputation\"",
        "leader_election = \"random\"",
    );
    let p = problems(Genesis::from_toml_str(&wrong));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].path, "consensus.pbft.leader_election");
    let short = text.replace(
        "leader_retry_after_ms = 10000",
        "leader_retry_after_ms = 10",
    );
    let p = problems(Genesis::from_toml_str(&short));
    assert_eq!(p[0].path, "consensus.pbft.leader_retry_after_ms");
}
