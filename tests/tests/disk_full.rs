//! A full disk, on a real tmpfs: the store writes nothing more after a write fails, until it
//! is opened again with everything it had; a validator whose data dir fills stops at once
//! with exit status 74 and one error saying what to do, the others go on, and once space is
//! freed it restarts with every block it had committed and catches up. A proof-of-work
//! miner stops the same way. Mounting needs root.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_ledger::store::{Store, StoreError};
use cairn_node::run::EXIT_DATA_DIR;
use cairn_tests::disk::{Tmpfs, can_mount};
use cairn_tests::testnet::{Testnet, WAIT_MAX, fast, serial};
use cairn_tests::{ChainGen, cairn_bin};

const MIB: u64 = 1024 * 1024;

/// Waits (up to [`WAIT_MAX`]) for node `i` to stop on its own, following its height; returns
/// the last height it reported and its exit status.
fn wait_stopped(net: &mut Testnet, i: usize, disk: &Tmpfs) -> (u64, std::process::ExitStatus) {
    let deadline = Instant::now() + WAIT_MAX;
    let mut last_height = 0;
    while net.exited(i).is_none() {
        if let Some(h) = net.height(i) {
            last_height = h;
        }
        assert!(
            Instant::now() < deadline,
            "node {i} did not stop within {} s of its disk filling ({} bytes free)\n{}",
            WAIT_MAX.as_secs(),
            disk.free(),
            net.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (last_height, net.wait_exit(i))
}

/// Transfers from the faucet's senders through `nodes`, more than they commit, for 30 s or
/// until killed (pre-signing for `--rate 0` would take longer than the test).
fn load(net: &Testnet, nodes: &[usize]) -> Child {
    let rpc: Vec<&str> = nodes.iter().map(|&i| net.nodes[i].rpc.as_str()).collect();
    Command::new(cairn_bin())
        .args(["bench", "tps", "--rpc", &rpc.join(",")])
        .arg("--key")
        .arg(&net.faucet_key)
        .args(["--accounts", "16", "--duration", "30", "--rate", "3000"])
        .args(["--seed", "19", "--output", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cairn bench tps")
}

/// Asserts that node `i` exited with status 74 after printing its `count`th error, one that
/// says its data dir `data` is full and what to do; returns that error.
fn assert_stopped_on_full_disk(
    net: &Testnet,
    i: usize,
    status: std::process::ExitStatus,
    data: &std::path::Path,
    count: usize,
) -> String {
    assert_eq!(
        status.code(),
        Some(EXIT_DATA_DIR),
        "{status}\n{}",
        net.logs()
    );
    let log = std::fs::read_to_string(&net.nodes[i].log).expect("node log");
    assert!(!log.contains("panicked"), "node {i} panicked:\n{log}");
    // What `cairn node run` printed as it stopped, each time, and nothing else as loud.
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("error:") || l.contains(" ERROR "))
        .collect();
    assert_eq!(errors.len(), count, "{errors:?}");
    let line = errors[count - 1];
    for part in [
        &format!("the data directory {} is full", data.display()),
        "(no space left on device)",
        "Free space there, then restart the node; nothing committed is lost",
    ] {
        assert!(line.contains(part), "{part:?} is not in {line:?}");
    }
    line.to_owned()
}

#[test]
fn the_store_takes_no_write_after_one_fails_and_reopens_with_every_block_before_it() {
    if !can_mount() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let disk = Tmpfs::mount(&data, 32 * MIB).expect("tmpfs");
    let chain = ChainGen::new(64, 5);
    let store = Store::open(&data, &chain.genesis).expect("open");
    chain.extend(&store, 3, 100, 1);
    disk.fill(0).expect("fill");

    // RocksDB preallocates its log, so a few more blocks may fit.
    let mut tip = store.tip();
    let failed = loop {
        let block = chain.next_block(&store, 200, 2);
        match store.commit(&block) {
            Ok(t) => tip = t,
            Err(e) => break e,
        }
        assert!(tip.height.0 < 10_000, "the disk never filled");
    };
    assert!(failed.no_space(), "{failed}");
    assert_eq!(store.tip(), tip, "a failed commit moved the tip");
    let first = store.write_failure().expect("the failure is kept").clone();
    assert!(first.no_space && first.path == data, "{first:?}");

    // Space comes back, and RocksDB could resume; this store still writes nothing.
    disk.unfill().expect("unfill");
    disk.resize(256 * MIB).expect("resize");
    let block = chain.next_block(&store, 10, 3);
    match store.commit(&block) {
        Err(e @ StoreError::WritesStopped(_)) => assert!(e.no_space(), "{e}"),
        other => panic!("a write after a failed one: {other:?}"),
    }
    assert!(store.put_consensus(b"k", b"v").is_err());
    assert_eq!(store.tip(), tip);
    drop(store);

    let store = Store::open(&data, &chain.genesis).expect("reopen once space is freed");
    assert_eq!(store.tip(), tip, "a committed block was lost");
    assert!(store.write_failure().is_none());
    chain.extend(&store, 2, 100, 4);
    assert_eq!(store.tip().height.0, tip.height.0 + 2);
}

#[test]
fn a_validator_whose_disk_fills_stops_with_status_74_and_catches_up_once_space_is_freed() {
    if !can_mount() {
        return;
    }
    let _serial = serial();
    let started = Instant::now();
    let mut net = Testnet::create(4, fast);
    let data = net.nodes[3].home.join("data");
    // Declared after the network: dropped, and unmounted, before its directory goes.
    let disk = Tmpfs::mount(&data, 64 * MIB).expect("tmpfs over node 3's data dir");
    net.start_all();
    net.wait_height(&[0, 1, 2, 3], 3);

    // A few MiB left: full blocks of transfers use them up in seconds.
    disk.fill(2 * MIB).expect("fill");
    let filled = Instant::now();
    let mut load = load(&net, &[0, 1, 2]);
    let (last_height, status) = wait_stopped(&mut net, 3, &disk);
    let error = assert_stopped_on_full_disk(&net, 3, status, &data, 1);
    eprintln!(
        "node 3 stopped {:.1} s after the fill, at height {last_height}: {error}",
        filled.elapsed().as_secs_f64()
    );

    // The others go on without it.
    let h = net.height(0).expect("node 0 answers");
    net.wait_height(&[0, 1, 2], h + 5);
    let _ = load.kill();
    let _ = load.wait();

    // Started on a disk that is still full, it stops the same way.
    disk.fill(0).expect("fill the rest");
    net.start(3);
    let status = net.wait_exit(3);
    let error = assert_stopped_on_full_disk(&net, 3, status, &data, 2);
    eprintln!("started on a full disk: {error}");

    // Space freed: it resumes from what it had, catches up, and agrees on every block.
    disk.unfill().expect("unfill");
    disk.resize(512 * MIB).expect("resize");
    net.start(3);
    net.wait_for("node 3 to answer after its restart", |net| {
        net.height(3).is_some()
    });
    let resumed = net.height(3).expect("node 3 answers");
    assert!(
        resumed >= last_height,
        "node 3 had committed {last_height} but restarted at {resumed}"
    );
    let h = net.height(0).expect("node 0 answers");
    net.wait_height(&[0, 1, 2, 3], h + 3);
    let agreed = net.assert_agree(&[0, 1, 2, 3]);
    assert!(agreed > last_height);
    eprintln!(
        "node 3 resumed at {resumed} and agrees up to {agreed}; the test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_miner_whose_disk_fills_stops_with_status_74() {
    if !can_mount() {
        return;
    }
    let _serial = serial();
    let started = Instant::now();
    let mut net = Testnet::create_pow(2, 500, "0x1e200000");
    let data = net.nodes[1].home.join("data");
    let disk = Tmpfs::mount(&data, 64 * MIB).expect("tmpfs over node 1's data dir");
    net.start_all();
    net.wait_height(&[0, 1], 2);
    // Its next block, mined or heard, has nowhere to go.
    disk.fill(0).expect("fill");
    let (_, status) = wait_stopped(&mut net, 1, &disk);
    let error = assert_stopped_on_full_disk(&net, 1, status, &data, 1);
    eprintln!(
        "the miner stopped after {:.1} s: {error}",
        started.elapsed().as_secs_f64()
    );
}
