//! Ledger throughput on one core: blocks of 1,000 transfers verified (batch), executed, their
//! state root computed and committed to real RocksDB (synced); and ed25519 verification one
//! by one against batches, in the same run.
//!
//! cargo bench --profile release --workspace --bench ledger

use std::time::{Duration, Instant};

use cairn_ledger::crypto::{self, SignedMessage};
use cairn_ledger::state::SigCheck;
use cairn_ledger::store::Store;
use cairn_ledger::{Amount, Hash};
use cairn_tests::ChainGen;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const TXS_PER_BLOCK: usize = 1_000;
const ACCOUNTS: usize = 10_000;

fn apply_blocks(c: &mut Criterion) {
    let chain = ChainGen::new(ACCOUNTS, 7);
    // The builder produces blocks; the measured store only verifies, applies and commits them.
    let builder_dir = tempfile::tempdir().unwrap();
    let measured_dir = tempfile::tempdir().unwrap();
    let builder = Store::open(builder_dir.path(), &chain.genesis).unwrap();
    let measured = Store::open(measured_dir.path(), &chain.genesis).unwrap();
    let mut group = c.benchmark_group("ledger");
    group.throughput(Throughput::Elements(TXS_PER_BLOCK as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("verify_apply_commit_block_of_1000_transfers", |b| {
        b.iter_custom(|iters| {
            let blocks = chain.build_blocks(&builder, iters, TXS_PER_BLOCK);
            let start = Instant::now();
            for block in blocks {
                measured
                    .apply(block, Amount::ZERO, SigCheck::Batch)
                    .unwrap();
            }
            start.elapsed()
        })
    });
    group.finish();
}

fn verify_signatures(c: &mut Criterion) {
    let chain = ChainGen::new(TXS_PER_BLOCK, 11);
    let messages: Vec<Vec<u8>> = (0..TXS_PER_BLOCK as u64)
        .map(|i| Hash::digest(&i.to_le_bytes()).0.to_vec())
        .collect();
    let keys: Vec<_> = chain.keys.iter().map(|k| k.public()).collect();
    let signatures: Vec<_> = chain
        .keys
        .iter()
        .zip(&messages)
        .map(|(k, m)| k.sign(m))
        .collect();
    let items: Vec<SignedMessage> = messages
        .iter()
        .zip(&keys)
        .zip(&signatures)
        .map(|((message, key), signature)| SignedMessage {
            message,
            key,
            signature,
        })
        .collect();
    let mut group = c.benchmark_group("ed25519");
    group.throughput(Throughput::Elements(TXS_PER_BLOCK as u64));
    group.sample_size(10);
    group.bench_function("cairn_verify_one_by_one_x1000", |b| {
        b.iter(|| {
            for item in &items {
                crypto::verify(item).unwrap();
            }
        })
    });
    group.bench_function("cairn_verify_batch_of_1000", |b| {
        b.iter(|| crypto::verify_batch(&items).unwrap())
    });
    // ed25519-dalek's own functions on the same signatures, for reference.
    let dalek_keys: Vec<_> = keys
        .iter()
        .map(|k| ed25519_dalek::VerifyingKey::from_bytes(&k.0).unwrap())
        .collect();
    let dalek_sigs: Vec<_> = signatures
        .iter()
        .map(|s| ed25519_dalek::Signature::from_bytes(&s.0))
        .collect();
    let dalek_msgs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    group.bench_function("dalek_verify_strict_x1000", |b| {
        b.iter(|| {
            for ((k, s), m) in dalek_keys.iter().zip(&dalek_sigs).zip(&dalek_msgs) {
                k.verify_strict(m, s).unwrap();
            }
        })
    });
    group.bench_function("dalek_verify_batch_of_1000", |b| {
        b.iter(|| ed25519_dalek::verify_batch(&dalek_msgs, &dalek_sigs, &dalek_keys).unwrap())
    });
    group.finish();
}

criterion_group!(benches, verify_signatures, apply_blocks);
criterion_main!(benches);
