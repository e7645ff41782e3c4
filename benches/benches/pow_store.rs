//! Proof-of-work store costs on real RocksDB (synced writes): blocks of 1,000 transfers
//! connected the way the PoW node connects them (prepare with batch signature checks,
//! execution and the state root checked, then commit), and a 100-block reorganisation (revert 100 tips with their
//! undo records, then prepare and commit the 100 blocks of the other branch).
//!
//! cargo bench --profile release --workspace --bench pow_store
//!
//! The same figures without criterion: `cargo test --release -p cairn-tests --test e2e_pow --
//! --ignored --nocapture pow_store` (see benches/RESULTS.md).

use std::time::{Duration, Instant};

use cairn_ledger::block::Block;
use cairn_ledger::state::SigCheck;
use cairn_ledger::store::Store;
use cairn_ledger::{Amount, Height};
use cairn_tests::ChainGen;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const TXS_PER_BLOCK: usize = 1_000;
const ACCOUNTS: usize = 10_000;
/// Blocks undone and blocks connected by one measured reorganisation.
const REORG_DEPTH: u64 = 100;
/// Prepares (batch signature checks, execution, state root checked against the header) and
/// commits one block, as the PoW node connects a block from a peer. The generated blocks
/// carry no subsidy (their roots say so); a subsidy is one more account credit.
fn connect(store: &Store, block: Block) {
    let prepared = store.prepare(block, Amount::ZERO, SigCheck::Batch).unwrap();
    store.commit(&prepared).unwrap();
}

/// `count` blocks of `txs` transfers built on a fresh store of `chain`'s genesis.
fn branch(chain: &ChainGen, count: u64, txs: usize, seed: u64) -> Vec<Block> {
    let dir = tempfile::tempdir().unwrap();
    let builder = Store::open(dir.path(), &chain.genesis).unwrap();
    (0..count)
        .map(|i| {
            let prepared = chain.next_block(&builder, txs, seed.wrapping_mul(1_000_003) ^ i);
            builder.commit(&prepared).unwrap();
            prepared.block
        })
        .collect()
}

fn connect_blocks(c: &mut Criterion) {
    let chain = ChainGen::new(ACCOUNTS, 7);
    let builder_dir = tempfile::tempdir().unwrap();
    let measured_dir = tempfile::tempdir().unwrap();
    let builder = Store::open(builder_dir.path(), &chain.genesis).unwrap();
    let measured = Store::open(measured_dir.path(), &chain.genesis).unwrap();
    let mut group = c.benchmark_group("pow_store");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("connect_block_of_1000_transfers", |b| {
        b.iter_custom(|iters| {
            let blocks = chain.build_blocks(&builder, iters, TXS_PER_BLOCK);
            let start = Instant::now();
            for block in blocks {
                connect(&measured, block);
            }
            start.elapsed()
        })
    });
    group.finish();
}

fn reorg(c: &mut Criterion) {
    let chain = ChainGen::new(ACCOUNTS, 11);
    let a = branch(&chain, REORG_DEPTH, TXS_PER_BLOCK, 1);
    let b = branch(&chain, REORG_DEPTH, TXS_PER_BLOCK, 2);
    assert_ne!(a[0].hash(), b[0].hash());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &chain.genesis).unwrap();
    for block in &a {
        connect(&store, block.clone());
    }
    let mut on_a = true;
    let mut group = c.benchmark_group("pow_store");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(60));
    group.bench_function("reorg_100_blocks_of_1000_transfers", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let to = if on_a { &b } else { &a };
                let start = Instant::now();
                for _ in 0..REORG_DEPTH {
                    store.revert_tip().unwrap();
                }
                for block in to {
                    connect(&store, block.clone());
                }
                total += start.elapsed();
                on_a = !on_a;
                assert_eq!(store.tip().height, Height(REORG_DEPTH));
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, connect_blocks, reorg);
criterion_main!(benches);
