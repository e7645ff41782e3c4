use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cairn_ledger::crypto::Keypair;
use cairn_ledger::genesis::{EngineKind, Genesis};
use cairn_ledger::keys;
use cairn_ledger::{Amount, TimestampMs};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use crate::output::{self, Output};

/// Most validators `genesis new` and `testnet` will create.
pub const VALIDATORS_MAX: usize = 64;
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
    /// A BFT committee running chained HotStuff.
    Bft,
    /// Proof-of-work longest-chain consensus.
    Pow,
}

#[derive(Args)]
pub struct NewArgs {
    #[arg(long, value_enum, default_value_t = Mode::Bft)]
    pub mode: Mode,
    /// Number of validators (BFT) or miners (PoW), 1 to 64.
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Directory to write into; created if missing, and refused if it already has a genesis.
    #[arg(long)]
    pub out: PathBuf,
    /// BFT only: the base round timeout in milliseconds (default 1000).
    #[arg(long, value_name = "MS")]
    pub round_timeout_ms: Option<u64>,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
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

/// Writes a genesis and keys for a new local network. `round_timeout_ms` overrides the BFT
/// base round timeout (and raises the cap to match if needed).
pub fn create(
    mode: Mode,
    validators: usize,
    out: &Path,
    round_timeout_ms: Option<u64>,
) -> Result<NewNetwork> {
    check_validator_count(validators)?;
    if round_timeout_ms.is_some() && mode != Mode::Bft {
        bail!("--round-timeout-ms applies to BFT networks only (--mode bft)");
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
        Mode::Bft => EngineKind::Bft,
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
    if let (Some(ms), cairn_ledger::genesis::Engine::HotStuff(p)) =
        (round_timeout_ms, &mut genesis.consensus.engine)
    {
        p.round_timeout_ms_base = ms;
        p.round_timeout_ms_max = p.round_timeout_ms_max.max(ms);
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
            let net = create(a.mode, a.validators, &a.out, a.round_timeout_ms)?;
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
