use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cairn_ledger::crypto::Keypair;
use cairn_ledger::genesis::{EngineKind, EngineParams, Genesis, LeaderElection};
use cairn_ledger::keys;
use cairn_ledger::{Amount, TimestampMs};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use crate::output::{self, Output};

/// Most validators `genesis new` and `testnet` will create.
pub const VALIDATORS_MAX: usize = 64;
/// Nonces per second one core tries for `cairn testnet --mode pow`, for the default genesis
/// difficulty of a local PoW network: measured here with three one-thread miners on two
/// cores and the midstate search (`cairn_pow_hashrate` summed: 11.7 M/s, 5.8 M/s a core).
/// With it, `cairn testnet --mode pow --validators 3` made 46 blocks 2.1 s apart on average
/// (1.7 s before the first retarget at height 20, 2.4 s after).
pub const LOCAL_HASHRATE_PER_MINER: f64 = 5_800_000.0;
/// Cores the default local PoW difficulty assumes the miners share (this 2-core machine):
/// more miners than cores do not add hash rate.
pub const LOCAL_CORES: usize = 2;
/// Target block time of a local PoW network unless `--block-time-ms` says otherwise.
pub const LOCAL_BLOCK_TIME_MS: u64 = 2000;

/// What the faucet key holds at genesis, in the smallest unit.
pub const FAUCET_BALANCE: Amount = Amount(1_000_000_000_000_000);

#[derive(Subcommand)]
pub enum GenesisCommand {
    /// Write genesis.toml, one key per validator (nodeN.key) and a funded faucet.key to a
    /// directory.
    New(NewArgs),
    /// Check a genesis file; on failure every problem is listed with its field.
    Validate(ValidateArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A BFT committee running chained HotStuff (`bft` is accepted as an alias).
    #[value(name = "hotstuff", alias = "bft")]
    HotStuff,
    /// A BFT committee running PBFT (IBFT 2.0 / QBFT family): a block is final once a
    /// quorum commits it.
    Pbft,
    /// Proof-of-work longest-chain consensus.
    Pow,
}

#[derive(Args)]
pub struct NewArgs {
    /// The consensus engine: hotstuff (alias bft) or pbft for a BFT committee, pow for
    /// miners.
    #[arg(long, value_enum, default_value_t = Mode::HotStuff)]
    pub mode: Mode,
    /// Number of validators (BFT) or miners (PoW), 1 to 64.
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Directory to write into; created if missing, and refused if it already has a genesis.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub bft: BftTuning,
    #[command(flatten)]
    pub pow: PowTuning,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// BFT only: the round timeout and leader election of a new network.
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct BftTuning {
    /// BFT only: the base round timeout in milliseconds (default 1000).
    #[arg(long, value_name = "MS")]
    pub round_timeout_ms: Option<u64>,
    /// BFT only: how round leaders (PBFT: proposers) are chosen (default reputation: a
    /// validator whose turn produced no block is passed over until it is back; round-robin:
    /// the plain rotation).
    #[arg(long, value_enum)]
    pub leader_election: Option<LeaderElectionArg>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LeaderElectionArg {
    #[default]
    Reputation,
    RoundRobin,
}

/// PoW only: the genesis difficulty and block time of a new network.
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct PowTuning {
    /// PoW only: the target block time in milliseconds (default 2000).
    #[arg(long, value_name = "MS")]
    pub block_time_ms: Option<u64>,
    /// PoW only: the genesis compact target, e.g. 0x1f00ffff (default: what gives one block
    /// per block time to the network's miners, one thread each, on a 2-core machine).
    #[arg(long, value_name = "HEX", value_parser = parse_bits)]
    pub initial_bits: Option<u32>,
}

fn parse_bits(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    u32::from_str_radix(digits, 16).map_err(|e| format!("{s:?} is not a hex compact target: {e}"))
}

/// The compact target at which `hashes_per_block` tries find a block on average
/// (target ≈ 2^256 / hashes), never easier than regtest's limit 0x207fffff.
pub fn bits_for(hashes_per_block: f64) -> u32 {
    let hashes = hashes_per_block.max(2.0);
    // log256 of the target; the mantissa holds three bytes of it.
    let log256 = (256.0 - hashes.log2()) / 8.0;
    let mut exponent = log256.ceil() as i32;
    let mut mantissa = 256f64.powf(log256 - (exponent - 3) as f64);
    while mantissa > f64::from(0x007f_ffffu32) {
        mantissa /= 256.0;
        exponent += 1;
    }
    while mantissa < f64::from(0x8000u32) && exponent > 3 {
        mantissa *= 256.0;
        exponent -= 1;
    }
    if exponent > 0x20 || (exponent == 0x20 && mantissa > f64::from(0x7f_ffffu32)) {
        return 0x207f_ffff;
    }
    ((exponent as u32) << 24) | (mantissa as u32 & 0x007f_ffff)
}

/// The default genesis bits of a local PoW network of `miners` (one thread each).
pub fn local_bits(miners: usize, block_time_ms: u64) -> u32 {
    let rate = LOCAL_HASHRATE_PER_MINER * miners.clamp(1, LOCAL_CORES) as f64;
    bits_for(rate * block_time_ms as f64 / 1000.0)
}

#[derive(Args)]
pub struct ValidateArgs {
    file: PathBuf,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

/// The files `genesis new` wrote.
#[derive(Serialize)]
pub struct NewNetwork {
    pub genesis: PathBuf,
    pub genesis_hash: String,
    pub chain_id: String,
    pub validator_keys: Vec<PathBuf>,
    pub faucet_key: PathBuf,
}

pub fn check_validator_count(validators: usize) -> Result<()> {
    if validators == 0 || validators > VALIDATORS_MAX {
        bail!("--validators must be between 1 and {VALIDATORS_MAX}, not {validators}");
    }
    Ok(())
}

/// Writes a genesis and keys for a new local network. `bft.round_timeout_ms` overrides the
/// BFT base round timeout (and raises the cap, and the reputation retry, to match if needed).
pub fn create(
    mode: Mode,
    validators: usize,
    out: &Path,
    bft: BftTuning,
    pow: PowTuning,
) -> Result<NewNetwork> {
    check_validator_count(validators)?;
    let round_timeout_ms = bft.round_timeout_ms;
    if round_timeout_ms.is_some() && mode == Mode::Pow {
        bail!("--round-timeout-ms applies to BFT networks only (--mode hotstuff or pbft)");
    }
    if bft.leader_election.is_some() && mode == Mode::Pow {
        bail!("--leader-election applies to BFT networks only (--mode hotstuff or pbft)");
    }
    if (pow.block_time_ms.is_some() || pow.initial_bits.is_some()) && mode != Mode::Pow {
        bail!(
            "--block-time-ms and --initial-bits apply to proof-of-work networks only (--mode pow)"
        );
    }
    if pow.block_time_ms == Some(0) {
        bail!("--block-time-ms must be greater than 0");
    }
    if round_timeout_ms == Some(0) {
        bail!(
            "--round-timeout-ms must be greater than 0: a round needs time for a proposal and votes"
        );
    }
    let genesis_path = out.join("genesis.toml");
    if genesis_path.exists() {
        bail!(
            "{} already exists; choose another --out or remove it",
            genesis_path.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut rng = rand::rngs::OsRng;
    let mut validator_keys = Vec::new();
    let mut publics = Vec::new();
    for i in 0..validators {
        let key = Keypair::generate(&mut rng);
        let path = out.join(format!("node{i}.key"));
        keys::write_key_file(&path, &key)?;
        publics.push(key.public());
        validator_keys.push(path);
    }
    let faucet = Keypair::generate(&mut rng);
    let faucet_key = out.join("faucet.key");
    keys::write_key_file(&faucet_key, &faucet)?;
    let kind = match mode {
        Mode::HotStuff => EngineKind::HotStuff,
        Mode::Pbft => EngineKind::Pbft,
        Mode::Pow => EngineKind::Pow,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    let mut genesis = Genesis::local(
        kind,
        &publics,
        &[(faucet.public().address(), FAUCET_BALANCE)],
        TimestampMs(now.as_millis() as u64),
    );
    let bft_params = match &mut genesis.consensus.engine {
        EngineParams::HotStuff(p) => Some((
            &mut p.round_timeout_ms_base,
            &mut p.round_timeout_ms_max,
            &mut p.leader_election,
        )),
        EngineParams::Pbft(p) => Some((
            &mut p.round_timeout_ms_base,
            &mut p.round_timeout_ms_max,
            &mut p.leader_election,
        )),
        EngineParams::Pow(_) => None,
    };
    if let Some((base, max, election)) = bft_params {
        if let Some(ms) = round_timeout_ms {
            *base = ms;
            *max = (*max).max(ms);
            // The retry stays ten first timeouts, as the default's 10 s is ten of 1 s.
            if let LeaderElection::Reputation { retry_after_ms } = election {
                *retry_after_ms = (*retry_after_ms).max(ms.saturating_mul(10));
            }
        }
        if bft.leader_election == Some(LeaderElectionArg::RoundRobin) {
            *election = LeaderElection::RoundRobin;
        }
    }
    if let EngineParams::Pow(p) = &mut genesis.consensus.engine {
        p.target_block_time_ms = pow.block_time_ms.unwrap_or(LOCAL_BLOCK_TIME_MS);
        p.initial_bits = pow
            .initial_bits
            .unwrap_or_else(|| local_bits(validators, p.target_block_time_ms));
    }
    let text = genesis.to_file().to_toml_string();
    std::fs::write(&genesis_path, text)
        .with_context(|| format!("cannot write {}", genesis_path.display()))?;
    // What we wrote must load back to the same network.
    let reloaded = Genesis::load(&genesis_path)?;
    anyhow::ensure!(
        reloaded.hash() == genesis.hash(),
        "internal error: the genesis file written does not re-read identically"
    );
    Ok(NewNetwork {
        genesis: genesis_path,
        genesis_hash: genesis.hash().to_string(),
        chain_id: genesis.chain_id,
        validator_keys,
        faucet_key,
    })
}

#[derive(Serialize)]
struct Summary {
    file: PathBuf,
    chain_id: String,
    genesis_hash: String,
    engine: &'static str,
    validators: usize,
    total_voting_power: u64,
    accounts: usize,
    upgrades: Vec<String>,
    oracle_feeds: Vec<String>,
}

pub fn run(command: GenesisCommand) -> Result<()> {
    match command {
        GenesisCommand::New(a) => {
            let net = create(a.mode, a.validators, &a.out, a.bft, a.pow)?;
            let keys: Vec<String> = net
                .validator_keys
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            output::print(
                a.output,
                &net,
                &[
                    ("genesis", net.genesis.display().to_string()),
                    ("genesis_hash", net.genesis_hash.clone()),
                    ("chain_id", net.chain_id.clone()),
                    ("validator_keys", keys.join(", ")),
                    ("faucet_key", net.faucet_key.display().to_string()),
                ],
            );
        }
        GenesisCommand::Validate(a) => {
            let g = Genesis::load(&a.file)?;
            let summary = Summary {
                file: a.file.clone(),
                chain_id: g.chain_id.clone(),
                genesis_hash: g.hash().to_string(),
                engine: if g.is_pow() { "pow" } else { "hotstuff" },
                validators: g.validators.len(),
                total_voting_power: g.total_voting_power(),
                accounts: g.accounts.len(),
                upgrades: g
                    .upgrades
                    .iter()
                    .map(|u| {
                        format!(
                            "{} at height {} (v{})",
                            u.name, u.height, u.protocol_version
                        )
                    })
                    .collect(),
                oracle_feeds: g.oracle.feeds.iter().map(|f| f.id.clone()).collect(),
            };
            output::print(
                a.output,
                &summary,
                &[
                    ("status", "valid".into()),
                    ("chain_id", summary.chain_id.clone()),
                    ("genesis_hash", summary.genesis_hash.clone()),
                    ("engine", summary.engine.into()),
                    (
                        "validators",
                        format!(
                            "{} (total voting power {})",
                            summary.validators, summary.total_voting_power
                        ),
                    ),
                    ("accounts", summary.accounts.to_string()),
                    ("upgrades", summary.upgrades.join("; ")),
                    ("oracle_feeds", summary.oracle_feeds.join(", ")),
                ],
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_for_a_number_of_hashes_matches_known_targets() {
        // 2^16 hashes a block: Bitcoin's 0x1f00ffff-ish (target 0xffff × 2^224 ≈ 2^240).
        let b = bits_for(65536.0);
        assert_eq!(b >> 24, 0x1f, "{b:#x}");
        // Two hashes a block: regtest's limit.
        assert_eq!(bits_for(2.0), 0x207f_ffff);
        // Harder networks need smaller targets.
        assert!(bits_for(1e9) < bits_for(1e6));
        let local = local_bits(3, 2000);
        assert!(local < bits_for(65536.0), "{local:#x}");
    }
}
