//! The `cairn` command: argument parsing, presentation, and the commands that run locally:
//! testnet supervision (`testnet`), genesis and key files (`genesis`, `keys`, `init`), the
//! load generator (`bench`) and the simulator front end (`sim`). The node, the ledger and the
//! consensus engines and simulators live in their crates; nothing here decides what is valid
//! on chain. Every failure is printed as one sentence naming what was wrong, with exit status
//! 1 (2 for a usage error, from clap; 74 when a node stops because it cannot write its data
//! directory, `cairn_node::run::EXIT_DATA_DIR`; 75 when `cairn node run --exit-on-halt` exits
//! because the chain stopped before an upgrade the binary lacks, `EXIT_UPGRADE_HALT`).

mod bench;
mod client;
mod genesis_cmd;
mod init_cmd;
mod keys_cmd;
mod node_cmd;
mod oracle_cmd;
mod oracle_publish;
mod output;
mod peers_cmd;
mod query_cmd;
mod sim_cmd;
mod status_cmd;
mod submit;
mod testnet_cmd;
mod tx_cmd;
mod upgrades_cmd;

use clap::{Parser, Subcommand};

// Under load the node allocates and frees a buffer or two per message and transaction on
// every thread; glibc's allocator spent ~10% of the CPU on that (benches/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "Cairn: a permissioned blockchain node (BFT or proof of work) with price oracles",
    long_about = None,
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create and inspect ed25519 key files (node identity and account keys).
    #[command(subcommand)]
    Keys(keys_cmd::KeysCommand),
    /// Create and check genesis files.
    #[command(subcommand)]
    Genesis(genesis_cmd::GenesisCommand),
    /// Create a node home: config.toml, genesis.toml, node.key and data/.
    Init(init_cmd::InitArgs),
    /// Run a node.
    #[command(subcommand)]
    Node(node_cmd::NodeCommand),
    /// Create a local network: keys, genesis and one home per validator.
    Testnet(testnet_cmd::TestnetArgs),
    /// A node's height, tip, round, leader, peers and protocol version (over its RPC).
    Status(status_cmd::StatusArgs),
    /// Sign transactions and submit them to a node (over its RPC).
    #[command(subcommand)]
    Tx(tx_cmd::TxCommand),
    /// The chain's upgrade schedule against the node's binary: what is scheduled and active,
    /// what the binary implements, how far it can follow (over its RPC).
    Upgrades(upgrades_cmd::UpgradesArgs),
    /// The peers a node is connected to and the release and protocol version each runs
    /// (over its RPC).
    Peers(peers_cmd::PeersArgs),
    /// Change a stopped node's upgrade schedule (append an upgrade to a live chain).
    #[command(subcommand)]
    Upgrade(upgrades_cmd::UpgradeCommand),
    /// Read accounts, blocks and transactions from a node (over its RPC).
    #[command(subcommand)]
    Query(query_cmd::QueryCommand),
    /// Price feeds: read prices, stake as an operator, publish a feed.
    #[command(subcommand)]
    Oracle(oracle_cmd::OracleCommand),
    /// Deterministic simulation of a consensus engine under injected faults.
    #[command(subcommand)]
    Sim(sim_cmd::SimCommand),
    /// Load generators that measure a running network (throughput, latency).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keys(c) => keys_cmd::run(c),
        Command::Genesis(c) => genesis_cmd::run(c),
        Command::Init(a) => init_cmd::run(a),
        Command::Node(c) => node_cmd::run(c),
        Command::Testnet(a) => testnet_cmd::run(a),
        Command::Status(a) => status_cmd::run(a),
        Command::Tx(c) => tx_cmd::run(c),
        Command::Upgrades(a) => upgrades_cmd::run(a),
        Command::Upgrade(c) => upgrades_cmd::run_upgrade(c),
        Command::Peers(a) => peers_cmd::run(a),
        Command::Query(c) => query_cmd::run(c),
        Command::Oracle(c) => oracle_cmd::run(c),
        Command::Sim(c) => sim_cmd::run(c),
        Command::Bench(c) => bench::run(c),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(exit_code(&e));
    }
}

/// 1, or the node's own status for why it stopped (`RunError::exit_code`).
fn exit_code(e: &anyhow::Error) -> i32 {
    e.downcast_ref::<cairn_node::run::RunError>()
        .map_or(1, cairn_node::run::RunError::exit_code)
}
