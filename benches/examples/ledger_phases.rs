//! Where a block's time goes: signature batch, execution, state tree, and the whole apply
//! (execution + tree + RocksDB commit) without signatures, averaged over 30 blocks of 1,000
//! transfers among 10,000 accounts. The criterion benchmark gives the end-to-end figure;
//! this breaks it down.
//!
//! cargo build --release --workspace --examples && target/release/examples/ledger_phases

use std::time::{Duration, Instant};

use cairn_ledger::Amount;
use cairn_ledger::state::{self, BlockContext, SigCheck};
use cairn_ledger::store::Store;
use cairn_tests::ChainGen;

const BLOCKS: u32 = 30;

fn main() {
    let chain = ChainGen::new(10_000, 7);
    let builder_dir = tempfile::tempdir().unwrap();
    let measured_dir = tempfile::tempdir().unwrap();
    let builder = Store::open(builder_dir.path(), &chain.genesis).unwrap();
    let measured = Store::open(measured_dir.path(), &chain.genesis).unwrap();
    let blocks: Vec<_> = (0..BLOCKS as u64)
        .map(|i| {
            let prepared = chain.next_block(&builder, 1_000, i);
            builder.commit(&prepared).unwrap();
            prepared.block
        })
        .collect();
    let mut verify = Duration::ZERO;
    let mut execute = Duration::ZERO;
    let mut tree = Duration::ZERO;
    let mut apply = Duration::ZERO;
    for block in blocks {
        let t = Instant::now();
        cairn_ledger::tx::verify_signatures(&block.transactions).unwrap();
        verify += t.elapsed();
        let ctx = BlockContext {
            chain_id: measured.chain_id(),
            height: block.header.height,
            producer: block.header.proposer,
            reward: Amount::ZERO,
            rules: measured.schedule().rules_at(block.header.height),
        };
        let t = Instant::now();
        let changes =
            state::execute_block(&measured, &ctx, &block.transactions, SigCheck::Skip).unwrap();
        execute += t.elapsed();
        let t = Instant::now();
        state::tree_update(
            &measured,
            measured.tip().state_root,
            changes.updated.iter().map(|(a, acc)| (a, Some(acc))),
        )
        .unwrap();
        tree += t.elapsed();
        let t = Instant::now();
        measured.apply(block, Amount::ZERO, SigCheck::Skip).unwrap();
        apply += t.elapsed();
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0 / BLOCKS as f64;
    println!(
        "per block of 1000 transfers (ms): verify batch {:.1}  execute {:.1}  state tree {:.1}  \
         apply without signatures (execute + tree + commit) {:.1}  => commit ≈ {:.1}",
        ms(verify),
        ms(execute),
        ms(tree),
        ms(apply),
        ms(apply) - ms(execute) - ms(tree),
    );
}
