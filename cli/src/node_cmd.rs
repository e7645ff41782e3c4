//! `cairn node run --home DIR`: runs a node in the foreground until Ctrl-C or SIGTERM.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cairn_node::home::Home;
use clap::{Args, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Run the node in a home made by `cairn init` (or `cairn testnet`). Logs go to stderr
    /// at the level in config.toml ([logging]); RUST_LOG overrides it.
    Run(RunArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// The node home (config.toml, genesis.toml, node.key, data/).
    #[arg(long)]
    home: PathBuf,
    /// Start a validator whose store has blocks but no consensus safety state (the record
    /// of the last rounds its key signed), from a fresh one raised to the highest round in
    /// the store. Only when you are sure this key never signed above that round: a
    /// brand-new key, or its old machine stopped for good before this store's last block.
    /// Otherwise the node could sign a round twice. See README "Moving a validator safely".
    #[arg(long)]
    unsafe_start_without_safety_state: bool,
    /// When the chain stops before an upgrade this binary lacks, exit with status 75
    /// instead of staying up to serve reads and blocks. For supervisors: do not restart on
    /// 75 (systemd: RestartPreventExitStatus=75); install a release that has the upgrade.
    #[arg(long)]
    exit_on_halt: bool,
}

pub fn run(c: NodeCommand) -> Result<()> {
    match c {
        NodeCommand::Run(a) => run_node(a),
    }
}

fn run_node(a: RunArgs) -> Result<()> {
    let home = Home::new(&a.home);
    if !home.config_path().exists() {
        anyhow::bail!(
            "{} is not a node home (no config.toml); create one with `cairn init`",
            a.home.display()
        );
    }
    let config = home.load_config()?;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.logging.level))
        .with_context(|| {
            format!(
                "[logging] level {:?} in {} is not a log filter",
                config.logging.level,
                home.config_path().display()
            )
        })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.logging.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cairn")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let stop = stop_signal();
        let options = cairn_node::run::RunOptions {
            unsafe_start_without_safety_state: a.unsafe_start_without_safety_state,
            exit_on_halt: a.exit_on_halt,
        };
        cairn_node::run::run_with(&home, options, stop).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Completes on Ctrl-C or SIGTERM (what `cairn testnet` and service managers send). The
/// handlers are installed when this is called, not when the future is first polled: a
/// signal that arrives while the node is still opening its store (which can take seconds)
/// then stops it cleanly once it has started, instead of killing it outright.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
