//! Mining hash rate on one core, three ways in the same run:
//! - `sha256d_80_bytes`: the sha2 crate's sha256d of an 80-byte message (a Bitcoin-sized
//!   header) with its nonce rewritten each time: the SHA-NI reference rate;
//! - `nonce_search`: `NonceSearch::search` over a Cairn PoW header (midstate, no allocation);
//! - `header_hash`: `BlockHeader::hash()` per nonce, encoding the header each time.
//!
//! cargo bench --profile release -p cairn-consensus --bench mining

use std::hint::black_box;
use std::time::Duration;

use cairn_consensus::pow::{NonceSearch, Target};
use cairn_ledger::block::{BlockHeader, Seal};
use cairn_ledger::{Address, Hash, Height, ProtocolVersion, TimestampMs};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sha2::{Digest, Sha256};

/// Nonces per measured iteration: enough that loop and call overhead vanish.
const NONCES_PER_ITER: u64 = 100_000;

fn header() -> BlockHeader {
    BlockHeader {
        height: Height(1_000),
        parent: Hash::digest(b"parent"),
        timestamp: TimestampMs(1_700_000_000_000),
        tx_root: Hash::digest(b"txs"),
        state_root: Hash::digest(b"state"),
        proposer: Address([7; 20]),
        protocol_version: ProtocolVersion(1),
        seal: Seal::Pow {
            bits: 0x1d00_ffff,
            nonce: 0,
        },
    }
}

/// A target of 1: no hash meets it, so every search runs its whole range.
fn unreachable_target() -> Target {
    let mut one = [0u8; 32];
    one[31] = 1;
    Target::from_be_bytes(one).expect("non-zero")
}

fn mining(c: &mut Criterion) {
    let mut group = c.benchmark_group("mining");
    group.throughput(Throughput::Elements(NONCES_PER_ITER));
    group.measurement_time(Duration::from_secs(10));

    group.bench_function("sha256d_80_bytes", |b| {
        let mut message = [0x5au8; 80];
        let mut start = 0u64;
        b.iter(|| {
            let mut best = [0xffu8; 32];
            for nonce in start..start + NONCES_PER_ITER {
                message[72..].copy_from_slice(&nonce.to_le_bytes());
                let hash: [u8; 32] = Sha256::digest(Sha256::digest(message)).into();
                best = best.min(hash);
            }
            start += NONCES_PER_ITER;
            best
        })
    });

    let search = NonceSearch::new(&header());
    let target = unreachable_target();
    group.bench_function("nonce_search", |b| {
        let mut start = 0u64;
        b.iter(|| {
            let found = search.search(black_box(&target), start, NONCES_PER_ITER);
            start += NONCES_PER_ITER;
            found
        })
    });

    group.bench_function("header_hash", |b| {
        let mut h = header();
        let mut start = 0u64;
        b.iter(|| {
            let mut found = None;
            for nonce in start..start + NONCES_PER_ITER {
                h.seal = Seal::Pow {
                    bits: 0x1d00_ffff,
                    nonce,
                };
                if target.is_met_by(&h.hash()) {
                    found = Some(nonce);
                    break;
                }
            }
            start += NONCES_PER_ITER;
            found
        })
    });

    group.finish();
}

criterion_group!(benches, mining);
criterion_main!(benches);
