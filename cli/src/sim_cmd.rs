//! `cairn sim hotstuff` (alias `bft`), `cairn sim pbft` and `cairn sim pow`: run the
//! deterministic HotStuff, PBFT or proof-of-work simulator over many seeds and report failures
//! with a one-line reproduction each.
//! The front end only: it parses the flags, runs the batch and prints it; the simulators and
//! their checkers live in `cairn_consensus::sim` and `sim::pow`, and nothing here judges a run.

use std::time::Instant;

use anyhow::{Result, bail};
use cairn_consensus::sim::pbft::{self as pbft_sim, PbftSimConfig};
use cairn_consensus::sim::pow::{self as pow_sim, PowBatchSummary, PowSimConfig, PowSimReport};
use cairn_consensus::sim::{
    self, BatchSummary, FaultSet, Scenario, SimConfig, SimCrypto, SimReport,
};
use cairn_ledger::genesis::LeaderElection;
use clap::{Args, Subcommand, ValueEnum};

use crate::genesis_cmd::LeaderElectionArg;

#[derive(Subcommand)]
pub enum SimCommand {
    /// Simulate the chained HotStuff engine over a virtual network with faults.
    #[command(name = "hotstuff", visible_alias = "bft")]
    HotStuff(HotStuffArgs),
    /// Simulate the PBFT engine over a virtual network with the same faults.
    Pbft(PbftArgs),
    /// Simulate proof-of-work miners over a virtual network with delays and partitions.
    Pow(PowArgs),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
enum ScenarioArg {
    /// Random faults until the network stabilises, then a liveness check.
    #[default]
    Faults,
    /// A quiet network whose leader crashes for good: measures the rounds to recover.
    LeaderCrash,
}

/// Which seeds a batch runs, the same flags for both simulators.
#[derive(Args)]
pub struct SeedArgs {
    /// How many seeds to run, starting at --seed-start.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed of the batch.
    #[arg(long, default_value_t = 0)]
    seed_start: u64,
    /// Run this one seed only, and print its trace hash.
    #[arg(long, conflicts_with_all = ["seeds", "seed_start"])]
    seed: Option<u64>,
}

impl SeedArgs {
    /// The first seed and how many to run: `--seed` alone, else `--seeds` from `--seed-start`.
    fn range(&self) -> Result<(u64, u64)> {
        let range = match self.seed {
            Some(seed) => (seed, 1),
            None => (self.seed_start, self.seeds),
        };
        if range.1 == 0 {
            bail!("--seeds 0: nothing to run");
        }
        Ok(range)
    }
}

#[derive(Args)]
pub struct HotStuffArgs {
    #[command(flatten)]
    batch: SeedArgs,
    /// Validators in the simulated network (each seed also picks equal or unequal powers).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Faults to inject: a comma-separated list of delay, drop, dup, reorder, partition,
    /// crash, byz; or all, or none. Default: all; none with --scenario leader-crash, which
    /// measures recovery on an otherwise quiet network.
    #[arg(long)]
    faults: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    scenario: ScenarioArg,
    /// Worker threads (default: one per core). Results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Sign with real ed25519 instead of the simulator's cheap stand-in (much slower).
    #[arg(long)]
    ed25519: bool,
    /// Test-only: disable the one-vote-per-round rule, to watch the checkers catch it.
    #[arg(long, hide = true)]
    unsafe_skip_voted_round_check: bool,
    /// Test-only: accept any sync answer, as before issue 17, to watch the checkers catch it.
    #[arg(long, hide = true)]
    unsafe_accept_any_sync: bool,
    /// Test-only: run the stale-restart validator without the double-sign guard, to watch
    /// the checkers catch its double sign.
    #[arg(long, hide = true)]
    unsafe_no_double_sign_guard: bool,
    /// How leaders are chosen, as the genesis's `leader_election`: reputation passes over a
    /// validator whose turn produced no block; round-robin is the plain schedule.
    #[arg(long, value_enum, default_value_t)]
    leader_election: LeaderElectionArg,
}

#[derive(Args)]
pub struct PbftArgs {
    #[command(flatten)]
    batch: SeedArgs,
    /// Validators in the simulated network (each seed also picks equal or unequal powers).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Faults to inject: a comma-separated list of delay, drop, dup, reorder, partition,
    /// crash, byz; or all, or none.
    #[arg(long, default_value = "all")]
    faults: String,
    /// Worker threads (default: one per core). Results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Sign with real ed25519 instead of the simulator's cheap stand-in (much slower).
    #[arg(long)]
    ed25519: bool,
    /// Test-only: disable the round-change justification rule (a new proposer need not offer
    /// the highest prepared block again), to watch the checkers catch the fork.
    #[arg(long, hide = true)]
    unsafe_skip_justification: bool,
    /// How proposers are chosen, as the genesis's `leader_election`: reputation passes over
    /// a validator whose turn produced no block; round-robin is the plain schedule.
    #[arg(long, value_enum, default_value_t)]
    leader_election: LeaderElectionArg,
}

#[derive(Args)]
pub struct PowArgs {
    #[command(flatten)]
    batch: SeedArgs,
    /// Nodes in the simulated network, each mining with its share of the hash power
    /// (default 4, or one per --shares weight).
    #[arg(long)]
    miners: Option<usize>,
    /// Hash-power weights, one per miner, comma-separated (e.g. 50,30,20; 0 is a node that
    /// does not mine). Default: drawn from each seed, 1 to 10 each.
    #[arg(long, value_delimiter = ',')]
    shares: Option<Vec<u64>>,
    /// Worker threads (default: one per core). Results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Test-only: node 0 follows the longest chain by height, to watch the checkers catch it.
    #[arg(long, hide = true)]
    unsafe_longest_chain_node: bool,
}

/// Miners when neither --miners nor --shares says.
const POW_MINERS_DEFAULT: usize = 4;

pub fn run(command: SimCommand) -> Result<()> {
    match command {
        SimCommand::HotStuff(a) => hotstuff(a),
        SimCommand::Pbft(a) => pbft(a),
        SimCommand::Pow(a) => pow(a),
    }
}

fn default_threads(threads: Option<usize>) -> usize {
    threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    })
}

/// What the batch output reads of one seed's report, the same for both simulators.
trait SeedReport: Clone {
    fn seed(&self) -> u64;
    fn passed(&self) -> bool;
    fn repro(&self) -> &str;
    fn first_failure(&self) -> String;
}

/// What the batch output reads of a batch's summary, the same for both simulators.
trait SeedCounts {
    /// Seeds run, seeds with a safety violation, seeds with a liveness failure.
    fn counts(&self) -> (u64, u64, u64);

    /// The batch's closing line.
    fn print_counts(&self) {
        let (seeds, safety, liveness) = self.counts();
        println!("seeds: {seeds}  safety violations: {safety}  liveness failures: {liveness}");
    }

    /// An error when any seed failed.
    fn check_counts(&self) -> Result<()> {
        let (seeds, safety, liveness) = self.counts();
        let failed = safety + liveness;
        if failed > 0 {
            bail!("{failed} of {seeds} seeds failed");
        }
        Ok(())
    }
}

macro_rules! seed_report {
    ($($report:ty => $summary:ty),*) => {$(
        impl SeedCounts for $summary {
            fn counts(&self) -> (u64, u64, u64) {
                (self.seeds, self.safety_violations, self.liveness_failures)
            }
        }

        impl SeedReport for $report {
            fn seed(&self) -> u64 {
                self.seed
            }
            fn passed(&self) -> bool {
                <$report>::passed(self)
            }
            fn repro(&self) -> &str {
                &self.repro
            }
            fn first_failure(&self) -> String {
                match (self.safety_violations.first(), &self.liveness_failure) {
                    (Some(v), _) => format!("safety violation: {v}"),
                    (None, Some(l)) => format!("liveness failure: {l}"),
                    (None, None) => "passed".to_string(),
                }
            }
        }
    )*};
}
seed_report!(SimReport => BatchSummary, PowSimReport => PowBatchSummary);

/// Runs a batch through `run_many` on `threads` (default: one per core), printing each failed
/// seed as it comes (its first failure, then the command that reproduces it, naming this binary). Answers the
/// summary, the last seed's report (printed in full when the batch is one seed) and the wall
/// time in seconds.
fn run_batch<S, R: SeedReport, E: std::error::Error + Send + Sync + 'static>(
    threads: Option<usize>,
    run_many: impl FnOnce(usize, &mut dyn FnMut(&R)) -> Result<S, E>,
) -> Result<(S, Option<R>, f64)> {
    let started = Instant::now();
    let mut last = None;
    let summary = run_many(default_threads(threads), &mut |r: &R| {
        if !r.passed() {
            println!("seed {}: {}", r.seed(), r.first_failure());
            println!("{}", crate::output::runnable(r.repro()));
        }
        last = Some(r.clone());
    })?;
    Ok((summary, last, started.elapsed().as_secs_f64()))
}

fn hotstuff(a: HotStuffArgs) -> Result<()> {
    let faults = a.faults.as_deref().unwrap_or(match a.scenario {
        ScenarioArg::Faults => "all",
        ScenarioArg::LeaderCrash => "none",
    });
    let faults = FaultSet::parse(faults)?;
    let (seed_start, seeds) = a.batch.range()?;
    let config = SimConfig {
        seed: seed_start,
        validators: a.validators,
        faults,
        scenario: match a.scenario {
            ScenarioArg::Faults => Scenario::Faults,
            ScenarioArg::LeaderCrash => Scenario::LeaderCrash,
        },
        crypto: if a.ed25519 {
            SimCrypto::Ed25519
        } else {
            SimCrypto::Fast
        },
        unsafe_skip_voted_round_check: a.unsafe_skip_voted_round_check,
        unsafe_accept_any_sync: a.unsafe_accept_any_sync,
        unsafe_no_double_sign_guard: a.unsafe_no_double_sign_guard,
        leader_election: sim_leader_election(a.leader_election),
    };
    let (summary, last, wall_s) = run_batch(a.threads, |threads, on_report| {
        sim::run_many(&config, seeds, threads, on_report)
    })?;
    print_bft_batch(&summary, wall_s);
    if config.scenario == Scenario::LeaderCrash {
        print_recovery(&summary.recovery_rounds, &summary.recovery_ms);
    }
    summary.print_counts();
    print_bft_seed(seeds, last.as_ref(), "round");
    summary.check_counts()
}

/// The simulated genesis's rule: reputation waits the simulator's retry time.
fn sim_leader_election(arg: LeaderElectionArg) -> LeaderElection {
    match arg {
        LeaderElectionArg::Reputation => LeaderElection::Reputation {
            retry_after_ms: sim::SIM_LEADER_RETRY_AFTER_MS,
        },
        LeaderElectionArg::RoundRobin => LeaderElection::RoundRobin,
    }
}

fn pbft(a: PbftArgs) -> Result<()> {
    let (seed_start, seeds) = a.batch.range()?;
    let config = PbftSimConfig {
        seed: seed_start,
        validators: a.validators,
        faults: FaultSet::parse(&a.faults)?,
        crypto: if a.ed25519 {
            SimCrypto::Ed25519
        } else {
            SimCrypto::Fast
        },
        unsafe_skip_justification: a.unsafe_skip_justification,
        leader_election: sim_leader_election(a.leader_election),
    };
    let (summary, last, wall_s) = run_batch(a.threads, |threads, on_report| {
        pbft_sim::run_many(&config, seeds, threads, on_report)
    })?;
    print_bft_batch(&summary, wall_s);
    summary.print_counts();
    // PBFT's rounds restart at every height: the report counts rounds entered instead.
    print_bft_seed(seeds, last.as_ref(), "rounds entered");
    summary.check_counts()
}

fn print_bft_batch(summary: &BatchSummary, wall_s: f64) {
    println!(
        "committed blocks: {}  events: {}  wall: {:.2}s  seeds/s: {:.0}  committed blocks/s: {:.0}",
        summary.committed_blocks,
        summary.events,
        wall_s,
        summary.seeds as f64 / wall_s,
        summary.committed_blocks as f64 / wall_s
    );
}

/// A one-seed batch's report in full.
fn print_bft_seed(seeds: u64, last: Option<&SimReport>, round_name: &str) {
    if let (1, Some(r)) = (seeds, last) {
        let drops: Vec<String> = r.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let byzantine: Vec<String> = r
            .byzantine
            .iter()
            .map(|(i, b)| format!("node{i}:{b:?}"))
            .collect();
        println!(
            "height: {}  {round_name}: {}  virtual: {}ms  evidence: {}  byzantine: [{}]",
            r.committed_height,
            r.max_round,
            r.virtual_ms,
            r.evidence,
            byzantine.join(" ")
        );
        println!("dropped: {}", drops.join(" "));
        println!("trace: {}", r.trace_hash);
    }
}

fn print_recovery(rounds: &[u64], ms: &[u64]) {
    let stats = |values: &[u64]| {
        let mut v = values.to_vec();
        v.sort_unstable();
        match (v.first(), v.last()) {
            (Some(min), Some(max)) => format!(
                "min {min}  median {}  mean {:.2}  max {max}",
                v[v.len() / 2],
                v.iter().sum::<u64>() as f64 / v.len() as f64
            ),
            _ => "none recovered".to_string(),
        }
    };
    println!("leader crash recovery rounds: {}", stats(rounds));
    println!("leader crash recovery virtual ms: {}", stats(ms));
}

fn pow(a: PowArgs) -> Result<()> {
    let (seed_start, seeds) = a.batch.range()?;
    let miners = match (a.miners, &a.shares) {
        (Some(m), _) => m,
        (None, Some(shares)) => shares.len(),
        (None, None) => POW_MINERS_DEFAULT,
    };
    let config = PowSimConfig {
        seed: seed_start,
        miners,
        shares: a.shares,
        unsafe_longest_chain_node: a.unsafe_longest_chain_node,
    };
    let (summary, last, wall_s) = run_batch(a.threads, |threads, on_report| {
        pow_sim::run_many(&config, seeds, threads, on_report)
    })?;
    println!(
        "blocks: {}  stale: {}  reorgs: {}  deepest reorg: {}  longest partition branch: {}  \
         most whole-network blocks undone by one reorg: {}  partitions: {}  held back: {}  max \
         difficulty: {:.2}",
        summary.blocks_mined,
        summary.stale_blocks,
        summary.reorgs,
        summary.deepest_reorg,
        summary.longest_branch,
        summary.reorg_whole_blocks_max,
        summary.partitions,
        summary.held_back,
        summary.difficulty_max
    );
    println!(
        "slowest convergence after the last heal: {}ms  events: {}  wall: {:.2}s  seeds/s: {:.0}  \
         simulated blocks/s: {:.0}",
        summary.converged_after_heal_ms_max,
        summary.events,
        wall_s,
        summary.seeds as f64 / wall_s,
        summary.blocks_mined as f64 / wall_s
    );
    summary.print_counts();
    if let (1, Some(r)) = (seeds, &last) {
        let partitions: Vec<String> = r
            .partitions
            .iter()
            .map(|p| {
                let side = |g: u8| -> Vec<String> {
                    (0..p.groups.len())
                        .filter(|i| p.groups[*i] == g)
                        .map(|i| i.to_string())
                        .collect()
                };
                format!(
                    "{}..{}ms {{{}}}:{} vs {{{}}}:{}",
                    p.start_ms,
                    p.heal_ms,
                    side(0).join(","),
                    p.mined[0],
                    side(1).join(","),
                    p.mined[1]
                )
            })
            .collect();
        let shares: Vec<String> = r.weights.iter().map(u64::to_string).collect();
        println!(
            "height: {}  tip: {}  virtual: {}ms  shares: {}  speed: {}‰  partitions (blocks mined \
             per side): [{}]",
            r.height,
            r.final_tip,
            r.virtual_ms,
            shares.join(","),
            r.speed_per_mille,
            partitions.join("; ")
        );
        let drops: Vec<String> = r.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("dropped: {}", drops.join(" "));
        println!("trace: {}", r.trace_hash);
    }
    summary.check_counts()
}
