//! The `cairn` command. Parsing and presentation only: every action is a call into the
//! `node` or `ledger` crates, and every failure is printed as one sentence naming what was
//! wrong, with exit status 1 (2 for a usage error, from clap).

mod genesis_cmd;
mod init_cmd;
mod keys_cmd;
mod output;
mod sim_cmd;
mod testnet_cmd;

use clap::{Parser, Subcommand};

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
    /// Create a local network: keys, genesis and one home per validator.
    Testnet(testnet_cmd::TestnetArgs),
    /// Deterministic simulation of a consensus engine under injected faults.
    #[command(subcommand)]
    Sim(sim_cmd::SimCommand),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keys(c) => keys_cmd::run(c),
        Command::Genesis(c) => genesis_cmd::run(c),
        Command::Init(a) => init_cmd::run(a),
        Command::Testnet(a) => testnet_cmd::run(a),
        Command::Sim(c) => sim_cmd::run(c),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
