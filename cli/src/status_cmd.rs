//! `cairn status`: what a node reports about itself and its chain (the RPC `status` method).

use anyhow::Result;
use cairn_ledger::{Address, Hash};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::client::{Client, RpcArgs};
use crate::output::{self, Output};

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    rpc: RpcArgs,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

/// The `status` answer: the fields scripts rely on are checked, the rest passed through.
#[derive(Serialize, Deserialize)]
pub struct Status {
    pub height: u64,
    pub hash: Hash,
    pub round: u64,
    pub leader: Option<Address>,
    pub peers: u32,
    pub syncing: bool,
    pub protocol_version: u32,
    pub chain_id: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

pub fn run(args: StatusArgs) -> Result<()> {
    let status: Status = Client::new(&args.rpc).call("status", json!({}))?;
    let mut rows = vec![
        ("height".to_owned(), status.height.to_string()),
        ("hash".to_owned(), status.hash.to_string()),
    ];
    // A proof-of-work node has no rounds or leaders to show.
    if status.extra.get("consensus") != Some(&json!("pow")) {
        rows.push(("round".to_owned(), status.round.to_string()));
        rows.push((
            "leader".to_owned(),
            status
                .leader
                .map_or_else(|| "none".to_owned(), |a| a.to_string()),
        ));
    }
    rows.extend([
        ("peers".to_owned(), status.peers.to_string()),
        ("syncing".to_owned(), status.syncing.to_string()),
        (
            "protocol_version".to_owned(),
            status.protocol_version.to_string(),
        ),
        ("chain_id".to_owned(), status.chain_id.clone()),
    ]);
    for (key, value) in &status.extra {
        output::value_rows(key, value, &mut rows);
    }
    output::print(args.output, &status, &rows);
    Ok(())
}
