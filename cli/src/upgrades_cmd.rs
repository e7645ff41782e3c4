//! `cairn upgrades`: a chain's upgrade schedule against the node's binary (RPC `upgrades`):
//! what is scheduled and active, what the node's binary implements, and the last height it
//! can follow. `cairn upgrade schedule`: appends an upgrade to a stopped node's schedule.

use std::path::PathBuf;

use anyhow::Result;
use cairn_ledger::genesis::Upgrade;
use cairn_ledger::upgrades::{SCHEDULE_MARGIN_BLOCKS_MIN, ScheduleError};
use cairn_ledger::{Height, ProtocolVersion};
use cairn_node::home::{Home, HomeError};
use clap::{Args, Subcommand};
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
    rows.push(("schedule_hash".to_owned(), text(&answer["schedule_hash"])));
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

#[derive(Subcommand)]
pub enum UpgradeCommand {
    /// Append an upgrade to a live chain's schedule, in a stopped node's home. Run it on
    /// every node (each stopped in turn, then started again) well before the height: nodes
    /// that have not scheduled it stop below it rather than follow other rules. Append-only:
    /// the height must be above every scheduled upgrade and at least --margin blocks above
    /// the tip, and the name one this binary implements at that version (see `cairn
    /// upgrades`).
    Schedule(ScheduleArgs),
}

#[derive(Args)]
pub struct ScheduleArgs {
    /// The node home (its node must be stopped).
    #[arg(long)]
    home: PathBuf,
    /// The upgrade's name, as `cairn upgrades` lists what this binary implements.
    #[arg(long)]
    name: String,
    /// The height from which its rules apply.
    #[arg(long)]
    height: u64,
    /// Its protocol version (the one this binary implements it as).
    #[arg(long)]
    version: u32,
    /// The fewest blocks between the tip and --height, at least 100: time for every
    /// operator to schedule it before the chain gets there.
    #[arg(long, default_value_t = SCHEDULE_MARGIN_BLOCKS_MIN)]
    margin: u64,
    /// This node missed the rollout (the others scheduled the upgrade, and the chain may
    /// already be stopped below its height waiting for this node): accept any height above
    /// this node's tip, whatever --margin says. Never one at or below it: nothing committed
    /// is judged by other rules.
    #[arg(long)]
    late: bool,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub fn run_upgrade(c: UpgradeCommand) -> Result<()> {
    match c {
        UpgradeCommand::Schedule(a) => schedule(a),
    }
}

fn schedule(a: ScheduleArgs) -> Result<()> {
    let home = Home::new(&a.home);
    if !home.genesis_path().exists() {
        anyhow::bail!(
            "{} is not a node home (no genesis.toml); create one with `cairn init`",
            a.home.display()
        );
    }
    let upgrade = Upgrade {
        name: a.name,
        height: Height(a.height),
        protocol_version: ProtocolVersion(a.version),
    };
    if !a.late && a.margin < SCHEDULE_MARGIN_BLOCKS_MIN {
        anyhow::bail!(
            "--margin {} is below the minimum of {SCHEDULE_MARGIN_BLOCKS_MIN} blocks; give \
             every operator time to schedule the upgrade (or pass --late if this node missed a \
             rollout the others finished)",
            a.margin
        );
    }
    let margin = if a.late { 1 } else { a.margin };
    let report = match home.schedule_upgrade(upgrade, margin) {
        Err(HomeError::Schedule(e @ ScheduleError::TooClose { .. })) => anyhow::bail!(
            "upgrade not scheduled: {e}. If the other nodes have scheduled it and this node \
             missed the rollout, pass --late"
        ),
        other => other?,
    };
    let rows = [
        (
            "scheduled".to_owned(),
            format!(
                "{} at height {} (protocol version {}); the tip is at {}",
                report.appended.name,
                report.appended.height,
                report.appended.protocol_version,
                report.tip
            ),
        ),
        ("schedule_hash".to_owned(), report.schedule_hash.to_string()),
        (
            "next".to_owned(),
            "start the node again; every node must schedule the same upgrade (compare \
             schedule_hash in `cairn upgrades`)"
                .to_owned(),
        ),
    ];
    output::print(a.output, &report, &rows);
    Ok(())
}
