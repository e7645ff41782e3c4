//! `cairn upgrades`: a chain's upgrade schedule against the node's binary (RPC `upgrades`):
//! what is scheduled and active, what the node's binary implements, and the last height it
//! can follow.

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use crate::client::{Client, RpcArgs};
use crate::output::{self, Output};

#[derive(Args)]
pub struct UpgradesArgs {
    #[command(flatten)]
    rpc: RpcArgs,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub fn run(args: UpgradesArgs) -> Result<()> {
    let answer: Value = Client::new(&args.rpc).call("upgrades", json!({}))?;
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut rows = vec![
        ("height".to_owned(), text(&answer["height"])),
        (
            "protocol_version".to_owned(),
            text(&answer["protocol_version"]),
        ),
        (
            "binary".to_owned(),
            format!(
                "cairn {} (protocol versions up to {})",
                text(&answer["binary_version"]),
                text(&answer["binary_protocol_version"])
            ),
        ),
        (
            "follows".to_owned(),
            match answer["follows_until"].as_u64() {
                Some(h) => format!(
                    "until height {h}: install a release that implements the next upgrade \
                     before then"
                ),
                None => "every scheduled upgrade".to_owned(),
            },
        ),
    ];
    let listed = |key: &str| answer[key].as_array().cloned().unwrap_or_default();
    for u in listed("scheduled") {
        let state = if u["active"] == true {
            "active"
        } else {
            "not yet active"
        };
        let implemented = if u["implemented"] == true {
            "implemented"
        } else {
            "NOT IMPLEMENTED by this binary"
        };
        rows.push((
            format!("scheduled {}", text(&u["name"])),
            format!(
                "height {}, protocol version {}, {state}, {implemented}",
                text(&u["height"]),
                text(&u["protocol_version"]),
            ),
        ));
    }
    for u in listed("implemented") {
        rows.push((
            format!("implements {}", text(&u["name"])),
            format!(
                "protocol version {}: {}",
                text(&u["protocol_version"]),
                text(&u["summary"])
            ),
        ));
    }
    output::print(args.output, &answer, &rows);
    Ok(())
}
