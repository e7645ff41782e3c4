//! What one answer to a catching-up BFT peer costs to prepare: committed blocks of 2,000
//! transfers read from RocksDB and encoded into one sync answer under the default message
//! bound (`[p2p] message_bytes_max`, 4 MiB). Until a6b5602 the driver did this on its own
//! thread for every request, and no round advanced meanwhile; now the blocking pool does.
//!
//! cargo bench --profile release --workspace --bench sync_answer

use cairn_consensus::hotstuff::{Message, SYNC_BLOCKS_MAX, SyncRequest};
use cairn_ledger::Height;
use cairn_ledger::store::Store;
use cairn_node::config::NodeConfig;
use cairn_node::hotstuff::SYNC_ANSWER_SLACK_BYTES;
use cairn_node::hotstuff::sync_serve::committed_blocks;
use cairn_tests::ChainGen;
use criterion::{Criterion, criterion_group, criterion_main};

const TXS_PER_BLOCK: usize = 2_000;
const BLOCKS: u64 = 24;

/// Prepares the answer the node sends: the blocks, then the encoded message.
fn answer(store: &Store, bytes_max: usize) -> (usize, Vec<u8>) {
    let request = SyncRequest {
        from_height: Height(1),
        blocks_max: SYNC_BLOCKS_MAX as u32,
    };
    let answer = committed_blocks(store, &request, bytes_max)
        .expect("store readable")
        .expect("blocks 1.. are committed");
    let blocks = answer.blocks.len();
    (blocks, Message::SyncResponse(Box::new(answer)).encode())
}

fn sync_answer(c: &mut Criterion) {
    let chain = ChainGen::new(10_000, 7);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &chain.genesis).unwrap();
    chain.extend(&store, BLOCKS, TXS_PER_BLOCK, 1);
    let bytes_max = NodeConfig::default().p2p.message_bytes_max as usize - SYNC_ANSWER_SLACK_BYTES;
    let (blocks, bytes) = answer(&store, bytes_max);
    println!(
        "one answer: {blocks} blocks of {TXS_PER_BLOCK} transfers, {} bytes",
        bytes.len()
    );
    let mut group = c.benchmark_group("sync_answer");
    group.sample_size(20);
    group.bench_function(
        format!("{blocks}_blocks_of_{TXS_PER_BLOCK}_transfers"),
        |b| b.iter(|| answer(&store, bytes_max)),
    );
    group.finish();
}

criterion_group!(benches, sync_answer);
criterion_main!(benches);
