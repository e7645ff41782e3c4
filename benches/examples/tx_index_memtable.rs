//! What a transaction-index entry costs RocksDB under different memtable setups: random
//! 32-byte keys (as transaction ids are) with 45-byte values, written in batches of 1,000
//! like a block's, then flushed. Reports the writer's wall time per key and the CPU time of
//! the whole process per key, which includes flushes and compactions on RocksDB's threads.
//! It is why the tx index keeps RocksDB's default skiplist memtable (benches/RESULTS.md).
//!
//! cargo build --release --workspace --examples
//! target/release/examples/tx_index_memtable MODE [KEYS]
//!
//! MODE: `skiplist` (the store's setup), `sorted` (keys of a batch sorted first), `hash`
//! (hash-linked-list memtable), `mbN` or `mbN-sorted` (an N MiB write buffer).
use std::time::Instant;

use rocksdb::{DB, MemtableFactory, Options, SliceTransform, WriteBatch, WriteOptions};
use sha2::{Digest, Sha256};

fn cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

fn main() {
    let mode = std::env::args()
        .nth(1)
        .expect("usage: tx_index_memtable MODE [KEYS]");
    let total: u64 = std::env::args()
        .nth(2)
        .map_or(2_000_000, |s| s.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::default();
    o.create_if_missing(true);
    o.set_allow_concurrent_memtable_write(false);
    o.set_max_background_jobs(2);
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    match mode.as_str() {
        "skiplist" | "sorted" => {}
        m if m.starts_with("mb") => o.set_write_buffer_size(
            m.trim_start_matches("mb")
                .trim_end_matches("-sorted")
                .parse::<usize>()
                .unwrap()
                << 20,
        ),
        "hash" => {
            o.set_prefix_extractor(SliceTransform::create_fixed_prefix(32));
            o.set_memtable_factory(MemtableFactory::HashLinkList {
                bucket_count: 1 << 19,
            });
        }
        other => panic!("unknown MODE {other}: skiplist, sorted, hash, mbN or mbN-sorted"),
    }
    let db = DB::open(&o, dir.path()).unwrap();
    let per_block = 1000u64;
    let value = [7u8; 45];
    let c0 = cpu_s();
    let t0 = Instant::now();
    for b in 0..total / per_block {
        let mut keys: Vec<[u8; 32]> = (0..per_block)
            .map(|i| Sha256::digest((b * per_block + i).to_le_bytes()).into())
            .collect();
        if mode.ends_with("sorted") {
            keys.sort_unstable();
        }
        let mut batch = WriteBatch::default();
        for k in &keys {
            batch.put(k, value);
        }
        db.write_opt(batch, &WriteOptions::default()).unwrap();
    }
    let ins = t0.elapsed().as_secs_f64();
    db.flush().unwrap();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_s() - c0;
    // The entries must still be found, or the figures mean nothing.
    for i in [0u64, total / 2, total - 1] {
        let k: [u8; 32] = Sha256::digest(i.to_le_bytes()).into();
        assert!(db.get(k).unwrap().is_some());
    }
    println!(
        "{mode:13} keys {total}: insert {:.2} us/key wall, with flush {:.2} us/key wall, cpu {:.2} us/key",
        ins / total as f64 * 1e6,
        wall / total as f64 * 1e6,
        cpu / total as f64 * 1e6
    );
}
