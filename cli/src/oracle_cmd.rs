//! `cairn oracle …`: read price feeds, stake as an operator, and run the publisher.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cairn_ledger::oracle::rules::FeedId;
use cairn_ledger::tx::Payload;
use cairn_ledger::{Address, Amount, keys};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::{Client, RpcArgs};
use crate::output::{self, Output};
use crate::submit::Signer;
use crate::tx_cmd::FEE_DEFAULT;

#[derive(Subcommand)]
pub enum OracleCommand {
    /// A feed's price: the stake-weighted median of the last round with quorum, its
    /// confidence band (weighted 25th–75th percentile), the round that set it, its age in
    /// blocks and whether it is stale (a later round ended without a price).
    Price(PriceArgs),
    /// Every feed on the network with its parameters.
    Feeds(QueryArgs),
    /// A feed's open round: its heights, the phase the next block falls in, commits and
    /// reveals so far.
    Round(FeedArgs),
    /// An operator's stake, unbonding entries and record (misses, penalties, rewards).
    Operator(OperatorArgs),
    /// Bond balance as stake in a feed, so the key may report in its rounds (from the next
    /// round on).
    Stake(StakeArgs),
    /// Start unbonding stake from a feed; it returns to the balance after the network's
    /// unbonding period, and can still be penalised until then.
    Unstake(StakeArgs),
    /// Publish a feed: each round, commit to a value from SOURCE and reveal it in the reveal
    /// window. Runs until interrupted; see `cairn oracle publish --help`.
    Publish(crate::oracle_publish::PublishArgs),
}

#[derive(Args)]
pub struct QueryArgs {
    #[command(flatten)]
    rpc: RpcArgs,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Args)]
pub struct FeedArgs {
    /// The feed id, BASE/QUOTE (e.g. DEMO/USD).
    feed: FeedId,
    #[command(flatten)]
    query: QueryArgs,
}

#[derive(Args)]
pub struct PriceArgs {
    /// The feed id, BASE/QUOTE (e.g. DEMO/USD).
    feed: FeedId,
    /// Also show the time-weighted average price over the last WINDOW blocks.
    #[arg(long, value_name = "WINDOW")]
    twap: Option<u64>,
    /// Also show the latest N finished rounds, newest first.
    #[arg(long, value_name = "N")]
    history: Option<u64>,
    #[command(flatten)]
    query: QueryArgs,
}

#[derive(Args)]
pub struct OperatorArgs {
    /// The feed id, BASE/QUOTE.
    feed: FeedId,
    /// The operator's address (40 hex digits).
    address: Address,
    #[command(flatten)]
    query: QueryArgs,
}

#[derive(Args)]
pub struct StakeArgs {
    /// The feed id, BASE/QUOTE.
    #[arg(long)]
    feed: FeedId,
    /// How much, in the smallest unit.
    #[arg(long, value_name = "N")]
    amount: u64,
    /// The operator's key file.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The fee, in the smallest unit.
    #[arg(long, value_name = "N", default_value_t = FEE_DEFAULT)]
    fee: u64,
    #[command(flatten)]
    query: QueryArgs,
}

pub fn run(command: OracleCommand) -> Result<()> {
    match command {
        OracleCommand::Price(a) => price(a),
        OracleCommand::Feeds(a) => {
            let v: Value = Client::new(&a.rpc).call("oracle_feeds", json!({}))?;
            let mut rows = Vec::new();
            output::value_rows("", &v, &mut rows);
            output::print(a.output, &v, &rows);
            Ok(())
        }
        OracleCommand::Round(a) => show(&a.query, "oracle_round", json!({ "feed": a.feed })),
        OracleCommand::Operator(a) => show(
            &a.query,
            "oracle_operator",
            json!({ "feed": a.feed, "address": a.address }),
        ),
        OracleCommand::Stake(a) => stake(a, true),
        OracleCommand::Unstake(a) => stake(a, false),
        OracleCommand::Publish(a) => crate::oracle_publish::run(a),
    }
}

fn show(q: &QueryArgs, method: &str, params: Value) -> Result<()> {
    let v: Value = Client::new(&q.rpc).call(method, params)?;
    let mut rows = Vec::new();
    output::value_rows("", &v, &mut rows);
    output::print(q.output, &v, &rows);
    Ok(())
}

fn price(a: PriceArgs) -> Result<()> {
    let mut params = json!({ "feed": a.feed });
    if let Some(w) = a.twap {
        params["twap_window"] = json!(w);
    }
    if let Some(n) = a.history {
        params["history"] = json!(n);
    }
    let v: Value = Client::new(&a.query.rpc).call("oracle_price", params)?;
    let text = |v: &Value| output::text(&v["text"]);
    let mut rows: Vec<(String, String)> = vec![("feed".into(), output::text(&v["feed"]))];
    if v["price"].is_null() {
        rows.push((
            "price".into(),
            format!(
                "none yet (round {} is open; a round needs revealed stake reaching its quorum)",
                v["current_round"]
            ),
        ));
    } else {
        rows.push(("price".into(), text(&v["price"])));
        rows.push((
            "confidence".into(),
            format!(
                "{} – {}",
                text(&v["confidence"]["low"]),
                text(&v["confidence"]["high"])
            ),
        ));
        rows.push(("round".into(), output::text(&v["round"])));
        rows.push((
            "age".into(),
            format!(
                "{} blocks, {} rounds without a price since",
                v["age_blocks"], v["age_rounds"]
            ),
        ));
        rows.push((
            "stale".into(),
            if v["stale"] == json!(true) {
                "yes: the latest round ended without a price".into()
            } else {
                "no".into()
            },
        ));
    }
    if let Some(t) = v.get("twap") {
        rows.push((
            format!("twap ({} blocks)", t["window_blocks"]),
            text(&t["price"]),
        ));
    }
    if let Some(Value::Array(h)) = v.get("history") {
        for r in h {
            let outcome = match r["outcome"].as_str() {
                Some("price") => format!(
                    "price {} (band {} – {})",
                    text(&r["band"]["median"]),
                    text(&r["band"]["low"]),
                    text(&r["band"]["high"])
                ),
                _ => "no quorum".into(),
            };
            rows.push((
                format!("round {}", r["round"]),
                format!(
                    "{outcome}; {} commits, {} reveals, rewards {}, penalties {}",
                    r["commits"], r["reveals"], r["rewards_paid"], r["penalties"]
                ),
            ));
        }
    }
    output::print(a.query.output, &v, &rows);
    Ok(())
}

fn stake(a: StakeArgs, bond: bool) -> Result<()> {
    if a.amount == 0 {
        bail!(
            "--amount is 0; give the amount to {} in the smallest unit",
            if bond { "stake" } else { "unstake" }
        );
    }
    let key = keys::read_key_file(&a.key)
        .with_context(|| format!("reading the operator key {}", a.key.display()))?;
    let signer = Signer::new(Client::new(&a.query.rpc), key)?;
    let payload = if bond {
        Payload::OracleStake {
            feed: a.feed.clone(),
            amount: Amount(a.amount),
        }
    } else {
        Payload::OracleUnstake {
            feed: a.feed.clone(),
            amount: Amount(a.amount),
        }
    };
    let spinner = output::spinner("waiting for the transaction to commit…");
    let result = signer.submit(payload, a.fee, true);
    spinner.finish_and_clear();
    let (hash, committed) = result?;
    let committed = committed.expect("waited for the commit");
    if let Some(reason) = committed.refused() {
        bail!(
            "transaction {hash} landed at height {} (fee paid) but the oracle refused it: {reason}",
            committed.height
        );
    }
    let report = json!({
        "hash": hash,
        "height": committed.height,
        "operator": signer.address(),
        "feed": a.feed,
        "action": if bond { "stake" } else { "unstake" },
        "amount": a.amount,
    });
    let mut rows = Vec::new();
    output::value_rows("", &report, &mut rows);
    output::print(a.query.output, &report, &rows);
    Ok(())
}
