use std::path::PathBuf;

use anyhow::Result;
use cairn_node::config::NodeConfig;
use cairn_node::home::Home;
use clap::Args;

use crate::output::{self, Output};

#[derive(Args)]
pub struct InitArgs {
    /// The node home to create.
    #[arg(long)]
    home: PathBuf,
    /// The network's genesis file (copied into the home).
    #[arg(long)]
    genesis: PathBuf,
    /// This node's key file (copied into the home as node.key, mode 0600).
    #[arg(long)]
    key: PathBuf,
    /// Name shown in logs and status; default: the home directory's name.
    #[arg(long)]
    moniker: Option<String>,
    /// JSON-RPC listen address written to config.toml.
    #[arg(long)]
    rpc_listen: Option<String>,
    /// libp2p listen multiaddr written to config.toml.
    #[arg(long)]
    p2p_listen: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub fn run(a: InitArgs) -> Result<()> {
    let mut config = NodeConfig::default();
    config.node.moniker = a.moniker.unwrap_or_else(|| {
        a.home
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| config.node.moniker.clone())
    });
    if let Some(l) = a.rpc_listen {
        config.rpc.listen = l;
    }
    if let Some(l) = a.p2p_listen {
        config.p2p.listen = l;
    }
    let report = Home::init(&a.home, &a.genesis, &a.key, &config)?;
    output::print(
        a.output,
        &report,
        &[
            ("home", report.home.display().to_string()),
            ("chain_id", report.chain_id.clone()),
            ("genesis_hash", report.genesis_hash.to_string()),
            ("address", report.address.to_string()),
            ("peer_id", report.peer_id.clone()),
            (
                "role",
                if report.validator {
                    "validator".into()
                } else {
                    "full node (key is not a genesis validator)".into()
                },
            ),
        ],
    );
    Ok(())
}
