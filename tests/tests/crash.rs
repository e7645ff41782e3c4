//! A process committing blocks is SIGKILLed at random moments, many times. Every reopen must
//! find the store at a whole block whose state root equals a replay of the same chain from
//! genesis, and no committed (synced) block may ever be lost.

use std::process::{Command, Stdio};
use std::time::Duration;

use cairn_ledger::store::Store;
use cairn_tests::{CRASH_TEST_ACCOUNTS, ChainGen};
use rand::{Rng, SeedableRng};

const KILLS: usize = 40;

#[test]
fn store_reopens_at_a_whole_block_after_sigkill_at_random_points() {
    let seed: u64 = rand::random();
    println!("crash test seed {seed}");
    let mut timing = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let reference_dir = tempfile::tempdir().unwrap();
    let chain = ChainGen::new(CRASH_TEST_ACCOUNTS, seed);
    let reference = Store::open(reference_dir.path(), &chain.genesis).unwrap();
    let mut last_height = 0;
    let mut grew = 0;
    for round in 0..KILLS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
            .arg(&data)
            .arg(seed.to_string())
            .stdout(Stdio::null())
            .spawn()
            .expect("start crash_writer");
        std::thread::sleep(Duration::from_millis(timing.gen_range(20..400)));
        child.kill().expect("SIGKILL the writer");
        child.wait().unwrap();

        let store = Store::open(&data, &chain.genesis)
            .unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL failed: {e}"));
        let tip = store.tip();
        assert!(
            tip.height.0 >= last_height,
            "round {round}: synced blocks were lost (tip went from {last_height} to {})",
            tip.height
        );
        if tip.height.0 > last_height {
            grew += 1;
        }
        // Replay the same chain from genesis up to the recovered height.
        while reference.tip().height < tip.height {
            chain.extend(&reference, 1, 20, seed);
        }
        assert_eq!(
            reference.tip(),
            tip,
            "round {round}: tip differs from the replay"
        );
        let header = store.header(&tip.hash).unwrap().expect("tip header stored");
        assert_eq!(header.state_root, tip.state_root.hash());
        assert_eq!(store.hash_at(tip.height).unwrap(), Some(tip.hash));
        let block = store.block(&tip.hash).unwrap().expect("tip body stored");
        for tx in &block.transactions {
            assert_eq!(
                store.tx_location(&tx.hash()).unwrap().map(|l| l.height),
                Some(tip.height)
            );
        }
        last_height = tip.height.0;
    }
    assert!(
        grew >= KILLS / 4,
        "the writer made progress in only {grew} of {KILLS} rounds; the test proved little"
    );
}
