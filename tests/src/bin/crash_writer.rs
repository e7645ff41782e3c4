//! Child process for the crash test: commits generated blocks to the store in DIR as fast as
//! it can, forever, until it is killed.
//!
//! usage: crash_writer DIR SEED

use cairn_tests::ChainGen;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(seed)) = (args.next(), args.next()) else {
        eprintln!("usage: crash_writer DIR SEED");
        std::process::exit(2);
    };
    let seed: u64 = seed.parse().expect("SEED is a number");
    let chain = ChainGen::new(cairn_tests::CRASH_TEST_ACCOUNTS, seed);
    let store = cairn_ledger::store::Store::open(dir.as_ref(), &chain.genesis).expect("open store");
    loop {
        chain.extend(&store, 1, 20, seed);
    }
}
