//! The double-sign guard on real processes: a validator whose store has blocks but lost its
//! safety state refuses to start (unless told it is safe), and a validator restarted on an
//! old copy of its data dir, while the network went on, stops before signing anything
//! twice; the other three keep committing.

use std::path::Path;

use cairn_ledger::store::Store;
use cairn_node::home::Home;
use cairn_node::hotstuff::chain::SAFETY_KEY;
use cairn_tests::testnet::{Testnet, copy_dir, fast, serial, spawn_node_with};

/// Deletes the consensus safety state from a stopped node's store, as if its data dir had
/// been copied without it or the key moved into another node's home.
fn drop_safety_state(home: &Path) {
    let home = Home::new(home);
    let genesis = home.load_genesis().expect("genesis");
    let store = Store::open(&home.data_dir(), &genesis).expect("open the store");
    assert!(store.get_consensus(SAFETY_KEY).unwrap().is_some());
    store
        .delete_consensus(&[SAFETY_KEY.to_vec()])
        .expect("delete the safety state");
}

#[test]
fn a_validator_without_its_safety_state_refuses_to_start_unless_told_it_is_safe() {
    let _serial = serial();
    let mut net = Testnet::create(4, fast);
    net.start_all();
    net.wait_height(&[0, 1, 2, 3], 4);
    net.stop(3);
    let home = net.nodes[3].home.clone();
    drop_safety_state(&home);

    net.start(3);
    let status = net.wait_exit(3);
    assert!(!status.success());
    let log = std::fs::read_to_string(&net.nodes[3].log).unwrap();
    assert!(
        log.contains("no consensus safety state")
            && log.contains("--unsafe-start-without-safety-state"),
        "no refusal in the log:\n{log}"
    );

    // Told it is safe (this key signed nothing above the store: it has been stopped since),
    // it starts, observes, and follows the chain again.
    let log_path = net.nodes[3].log.clone();
    let mut child = spawn_node_with(&home, &log_path, &["--unsafe-start-without-safety-state"]);
    let target = net.height(0).unwrap() + 5;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        net.wait_for("node 3 to follow the chain again", |n| {
            n.height(3).is_some_and(|h| h >= target)
        });
    }));
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn a_validator_restarted_on_an_old_copy_of_its_data_dir_stops_and_the_chain_goes_on() {
    let _serial = serial();
    let mut net = Testnet::create(4, fast);
    net.start_all();
    net.wait_height(&[0, 1, 2, 3], 3);
    // The backup: node 3's data dir as of now.
    net.stop(3);
    let home = net.nodes[3].home.clone();
    let backup = net.dir.path().join("node3-data-backup");
    copy_dir(&home.join("data"), &backup);
    // Node 3 runs on, signing many more rounds.
    net.start(3);
    let target = net.height(0).unwrap() + 30;
    net.wait_height(&[0, 1, 2, 3], target);
    net.stop(3);
    // The backup is restored: its safety state remembers rounds long past.
    std::fs::remove_dir_all(home.join("data")).unwrap();
    copy_dir(&backup, &home.join("data"));
    net.start(3);
    let status = net.wait_exit(3);
    assert!(!status.success());
    let log = std::fs::read_to_string(&net.nodes[3].log).unwrap();
    assert!(
        log.contains("the key is signing elsewhere"),
        "node 3 did not stop on seeing its own signatures:\n{log}"
    );
    // The three others still make a quorum.
    let now = net.height(0).unwrap();
    net.wait_height(&[0, 1, 2], now + 5);
}
