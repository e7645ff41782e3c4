//! Shared by the end-to-end tests and the benchmarks: a deterministic generator of valid
//! chains of transfer blocks. The same seed and the same prior state always give the same
//! next block, so a chain can be rebuilt from genesis and compared.

pub mod byzantine;
pub mod disk;
pub mod fuzz;
pub mod nemesis;
pub mod testnet;

use std::collections::BTreeMap;

use cairn_ledger::block::{Block, BlockHeader, QuorumCert, Seal};
use cairn_ledger::crypto::Keypair;
use cairn_ledger::genesis::{EngineKind, Genesis};
use cairn_ledger::state::SigCheck;
use cairn_ledger::store::{PreparedBlock, Store};
use cairn_ledger::tx::{Payload, Transaction};
use cairn_ledger::{Address, Amount, Hash, Height, Nonce, ProtocolVersion, Round, TimestampMs};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const GENESIS_TIME: TimestampMs = TimestampMs(1_767_225_600_000);
/// Accounts in the crash test's chain (shared by the writer and the checker).
pub const CRASH_TEST_ACCOUNTS: usize = 50;
pub const ACCOUNT_BALANCE: Amount = Amount(1_000_000_000_000);

pub struct ChainGen {
    pub keys: Vec<Keypair>,
    pub genesis: Genesis,
}

impl ChainGen {
    /// `accounts` funded accounts whose keys derive from `seed`.
    pub fn new(accounts: usize, seed: u64) -> ChainGen {
        let keys: Vec<Keypair> = (0..accounts as u64)
            .map(|i| {
                let secret =
                    Hash::tagged(b"cairn/test-key", &[&seed.to_le_bytes(), &i.to_le_bytes()]);
                Keypair::from_secret(&secret.0)
            })
            .collect();
        let funded: Vec<(Address, Amount)> = keys
            .iter()
            .map(|k| (k.public().address(), ACCOUNT_BALANCE))
            .collect();
        let genesis = Genesis::local(
            EngineKind::HotStuff,
            &[keys[0].public()],
            &funded,
            GENESIS_TIME,
        );
        ChainGen { keys, genesis }
    }

    /// Signed transfers among the accounts, valid on `store`'s tip state in this order.
    pub fn transfers(&self, store: &Store, count: usize, seed: u64) -> Vec<Transaction> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut nonces: BTreeMap<usize, Nonce> = BTreeMap::new();
        (0..count)
            .map(|_| {
                let from = rng.gen_range(0..self.keys.len());
                let to = rng.gen_range(0..self.keys.len());
                let nonce = nonces.entry(from).or_insert_with(|| {
                    store
                        .account(&self.keys[from].public().address())
                        .expect("store readable")
                        .map_or(Nonce(0), |a| a.nonce)
                });
                let tx = Transaction::new_signed(
                    store.chain_id(),
                    &self.keys[from],
                    *nonce,
                    Amount(1),
                    Payload::Transfer {
                        to: self.keys[to].public().address(),
                        amount: Amount(rng.gen_range(1..1000)),
                    },
                );
                *nonce = nonce.next().expect("nonces do not run out in tests");
                tx
            })
            .collect()
    }

    /// The next block on `store`'s tip with `count` transfers, roots filled in.
    pub fn next_block(&self, store: &Store, count: usize, seed: u64) -> PreparedBlock {
        let tip = store.tip();
        let height = tip.height.next();
        let transactions = self.transfers(store, count, seed ^ height.0);
        let block = Block {
            header: BlockHeader {
                height,
                parent: tip.hash,
                timestamp: TimestampMs(GENESIS_TIME.0 + height.0 * 1000),
                tx_root: Hash::ZERO,
                state_root: Hash::ZERO,
                proposer: self.keys[0].public().address(),
                protocol_version: ProtocolVersion(1),
                seal: Seal::HotStuff {
                    round: Round(height.0),
                    justify: QuorumCert {
                        round: Round(height.0 - 1),
                        block: tip.hash,
                        votes: Vec::new(),
                    },
                },
            },
            transactions,
        };
        store
            .complete_block(block, Amount::ZERO, SigCheck::Skip)
            .expect("generated blocks apply")
    }

    /// Builds and commits `blocks` blocks, returning the tip height.
    /// `count` blocks of `txs` transfers, built and committed on `builder`, for another store
    /// to verify, apply and commit (what the benchmarks time).
    pub fn build_blocks(&self, builder: &Store, count: u64, txs: usize) -> Vec<Block> {
        (0..count)
            .map(|i| {
                let prepared = self.next_block(builder, txs, i);
                builder.commit(&prepared).unwrap();
                prepared.block
            })
            .collect()
    }

    pub fn extend(&self, store: &Store, blocks: u64, txs: usize, seed: u64) -> Height {
        for _ in 0..blocks {
            let prepared = self.next_block(store, txs, seed);
            store.commit(&prepared).expect("commit");
        }
        store.tip().height
    }
}

/// The `cairn` of the release before the newest upgrade (`make old-binary` builds it next to
/// [`cairn_bin`]), for the mixed-version tests.
pub fn old_cairn_bin() -> std::path::PathBuf {
    let bin = cairn_bin().with_file_name("cairn-without-newest-upgrade");
    assert!(
        bin.exists(),
        "{} is missing: build it with `make old-binary` (`make test` does)",
        bin.display()
    );
    bin
}

/// The `cairn` binary built alongside the tests (`cargo test --workspace` builds every
/// package's binaries before running any test).
pub fn cairn_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> or target/<profile>/<binary> -> target/<profile>/cairn
    let dir = exe.parent().expect("an executable lives in a directory");
    let bin = match dir.file_name() {
        Some(name) if name == "deps" => dir.parent().unwrap_or(dir).join("cairn"),
        _ => dir.join("cairn"),
    };
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --release -p cairn-cli` (or run the whole \
         workspace's tests, which builds it)",
        bin.display()
    );
    bin
}
