//! `cairn peers`: the peers a node is connected to, with the release and highest protocol
//! version each announced in its handshake (RPC `peers`): during an upgrade rollout, who is
//! on which version.

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use crate::client::{Client, RpcArgs};
use crate::output::{self, Output};

#[derive(Args)]
pub struct PeersArgs {
    #[command(flatten)]
    rpc: RpcArgs,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub fn run(args: PeersArgs) -> Result<()> {
    let answer: Value = Client::new(&args.rpc).call("peers", json!({}))?;
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut rows = vec![(
        "this node".to_owned(),
        format!(
            "{}, protocol version {}",
            text(&answer["software"]),
            text(&answer["protocol_version"])
        ),
    )];
    for p in answer["peers"].as_array().into_iter().flatten() {
        rows.push((
            format!("peer {}", text(&p["peer_id"])),
            format!(
                "{}, protocol version {}",
                text(&p["software"]),
                text(&p["protocol_version"])
            ),
        ));
    }
    if let Some(counts) = answer["nodes_by_protocol_version"].as_object() {
        let summary: Vec<String> = counts
            .iter()
            .map(|(v, n)| format!("version {v}: {}", text(n)))
            .collect();
        rows.push(("nodes by version".to_owned(), summary.join(", ")));
    }
    output::print(args.output, &answer, &rows);
    Ok(())
}
