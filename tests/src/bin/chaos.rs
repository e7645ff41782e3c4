//! `make chaos`: the nemesis (cairn_tests::nemesis) on a local BFT testnet of real processes,
//! for as long as asked; prints each fault, the figures and every violation, and exits 1 if
//! there was one. `chaos --help` lists the options.

use std::process::ExitCode;
use std::time::Duration;

use cairn_tests::nemesis::{self, Options};
use clap::Parser;

/// Runs a seeded schedule of network, process and clock faults against a local testnet of
/// `cairn node run` processes under client load, then checks the nodes' stores against the
/// clients' history.
#[derive(Parser)]
#[command(name = "chaos")]
struct Args {
    /// Validators in the testnet.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=16))]
    validators: u16,
    /// Seconds of faults (setup, the final catch-up and the check come on top).
    #[arg(long, default_value_t = 120)]
    seconds: u64,
    /// Seed of the schedule; random when not given (the report prints it).
    #[arg(long)]
    seed: Option<u64>,
    /// Client senders besides the faucet.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    senders: u16,
    /// Oracle publishers (`cairn oracle publish` daemons) reporting DEMO/USD, spread over the
    /// nodes; the checker replays the oracle rules over their reveals in the blocks.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(0..=16))]
    publishers: u16,
    /// Print the schedule the seed gives and exit, running nothing.
    #[arg(long)]
    dry_run: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut options = Options::new(
        args.validators as usize,
        Duration::from_secs(args.seconds),
        seed,
    );
    options.senders = args.senders as usize;
    options.publishers = args.publishers as usize;
    if args.dry_run {
        for e in nemesis::schedule(options.validators, options.duration, seed) {
            println!(
                "at {:>7.1} s for {:.1} s  {}",
                e.at.as_secs_f64(),
                e.hold.as_secs_f64(),
                e.fault
            );
        }
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "chaos: {} validators, {} s of faults, seed {seed}; rerun: {}",
        options.validators,
        args.seconds,
        options.rerun()
    );
    match nemesis::run(&options) {
        Ok(report) => {
            println!("{}", report.print());
            if report.violation_count == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("chaos: could not run: {e}");
            ExitCode::from(2)
        }
    }
}
