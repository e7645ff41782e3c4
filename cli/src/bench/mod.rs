//! `cairn bench tps`: a load generator that measures a running network's transaction
//! throughput and submit-to-commit latency over its JSON-RPC.
//!
//! This module owns the command, its flags and the order of a run: check the nodes, plan the
//! work and sign it ([`plan`]), fund the senders ([`fund`]), submit on schedule ([`load`])
//! while following the chain ([`follow`]), then print the figures ([`report`]). Every call
//! goes through the CLI's one JSON-RPC client ([`crate::client`]). A run never submits more
//! of one sender's transactions than the node's per-sender limit allows to be pending, never
//! retries without a bound, and never signs anything while the clock is running: every
//! transfer is signed before the timed part starts.

mod follow;
mod fund;
mod load;
mod plan;
mod report;

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use cairn_ledger::crypto::Keypair;
use cairn_ledger::{Address, Hash, keys};
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::client::{Client, RPC_DEFAULT, RpcFailure, RpcUrl};
use crate::output::Output;
use plan::{Plan, sender_key};

/// Sender accounts unless `--accounts` says otherwise.
pub const ACCOUNTS_DEFAULT: u32 = 256;
/// Most sender accounts: each is funded by one faucet transfer before the run.
pub const ACCOUNTS_MAX: u32 = 4_096;
/// Seconds of load unless `--duration` says otherwise.
pub const DURATION_S_DEFAULT: u64 = 30;
/// Longest `--duration`, in seconds.
pub const DURATION_S_MAX: u64 = 3_600;
/// Highest `--rate`, in transactions per second (0 means as fast as the nodes accept).
pub const RATE_MAX: u32 = 100_000;
/// Submitting threads unless `--workers` says otherwise.
pub const WORKERS_DEFAULT: u32 = 4;
/// Most submitting threads.
pub const WORKERS_MAX: u32 = 64;
/// Most addresses in `--rpc`.
pub const RPC_URLS_MAX: usize = 64;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Load a running network with signed transfers and report throughput and latency.
    ///
    /// Derives --accounts sender keys from --seed, funds them from --key, pre-signs every
    /// transfer, then submits for --duration seconds at --rate (0: as fast as the nodes
    /// accept), following blocks to time each transaction from submission to commit. Each
    /// sender always uses the same node of --rpc, so its nonces arrive in order.
    Tps(TpsArgs),
}

#[derive(Args)]
pub struct TpsArgs {
    /// The nodes' JSON-RPC addresses, comma-separated (http://HOST:PORT or HOST:PORT).
    /// Senders are spread over them round-robin; blocks are followed on the first.
    #[arg(long, value_name = "URL[,URL…]", env = "CAIRN_RPC", default_value = RPC_DEFAULT)]
    rpc: RpcList,
    /// A funded key file that pays for the sender accounts (a testnet's faucet.key).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Sender accounts, each with its own nonce sequence.
    #[arg(long, value_name = "N", default_value_t = ACCOUNTS_DEFAULT,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(ACCOUNTS_MAX)))]
    accounts: u32,
    /// Seconds of load (then up to 30 s more for submitted transactions to commit).
    #[arg(long, value_name = "S", default_value_t = DURATION_S_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..=DURATION_S_MAX))]
    duration: u64,
    /// Target transactions per second; 0 submits as fast as the nodes accept.
    #[arg(long, value_name = "R", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(RATE_MAX)))]
    rate: u32,
    /// Submitting threads.
    #[arg(long, value_name = "N", default_value_t = WORKERS_DEFAULT,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(WORKERS_MAX)))]
    workers: u32,
    /// Seed of the sender keys (default: random). The same seed reuses the same accounts;
    /// those already funded are not funded again.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Tps(a) => tps(a),
    }
}

/// `--rpc URL[,URL…]`: checked addresses, at least one, none twice.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RpcList(Vec<RpcUrl>);

impl FromStr for RpcList {
    type Err = String;

    fn from_str(s: &str) -> Result<RpcList, String> {
        let mut urls: Vec<RpcUrl> = Vec::new();
        for item in s.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(format!(
                    "an empty address in {s:?}; expected URL[,URL…] such as \
                     http://127.0.0.1:26657,http://127.0.0.1:26659"
                ));
            }
            let url: RpcUrl = item.parse().map_err(|e| format!("{item:?}: {e}"))?;
            if urls.contains(&url) {
                return Err(format!("{url} is listed twice"));
            }
            urls.push(url);
            if urls.len() > RPC_URLS_MAX {
                return Err(format!("more than {RPC_URLS_MAX} addresses"));
            }
        }
        Ok(RpcList(urls))
    }
}

#[derive(Deserialize)]
struct ChainId {
    chain_id: String,
}

#[derive(Deserialize)]
struct HeightOnly {
    height: u64,
}

/// Like [`Client::batch`], failing on the first error, each result decoded as `T`.
fn calls_ok<T: DeserializeOwned>(
    client: &Client,
    method: &str,
    params: impl IntoIterator<Item = Value>,
) -> Result<Vec<T>> {
    client
        .batch(method, params)?
        .into_iter()
        .map(|r| decode(client, method, r))
        .collect()
}

/// One answer to `method` decoded as `T`, or why not.
fn decode<T: DeserializeOwned>(
    client: &Client,
    method: &str,
    answer: Result<Value, RpcFailure>,
) -> Result<T> {
    let value = answer.map_err(|e| {
        anyhow::anyhow!(
            "{method} at {} failed: {} (JSON-RPC error {})",
            client.url(),
            e.message,
            e.code
        )
    })?;
    serde_json::from_value(value).with_context(|| {
        format!(
            "the answer of {} to {method} is not what cairn expects",
            client.url()
        )
    })
}

fn tps(a: TpsArgs) -> Result<()> {
    let urls = a.rpc.0;
    // The key error names the file and the cause; as a plain message, so the cause is not
    // printed twice by the error chain.
    let faucet =
        keys::read_key_file(&a.key).map_err(|e| anyhow::anyhow!("cannot use --key: {e}"))?;
    let chain_id = check_nodes(&urls)?;
    let plan = Plan::new(a.accounts, a.duration, a.rate, a.workers);
    let seed = a.seed.unwrap_or_else(rand::random);
    let progress = crate::output::spinner("");

    progress.set_message(format!("deriving {} sender keys", plan.accounts));
    let senders: Vec<Keypair> = (0..plan.accounts).map(|i| sender_key(seed, i)).collect();
    let addresses: Vec<Address> = senders.iter().map(|k| k.public().address()).collect();
    let conns: Vec<Client> = urls.iter().cloned().map(Client::for_url).collect();

    fund::fund(&conns[0], &chain_id, &faucet, &addresses, &plan, &progress)?;
    let start_nonces = fund::funded_nonces(&conns, &addresses, &plan)?;

    progress.set_message(format!("signing {} transfers", plan.total_txs()));
    let signed = plan::presign(&chain_id, &senders, &addresses, &start_nonces, &plan);
    drop(senders);
    let index: HashMap<Hash, u32> = signed
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, tx)| (tx.hash, u32::try_from(i).expect("TXS_MAX fits in u32")))
        .collect();

    let start_height = calls_ok::<HeightOnly>(&conns[0], "status", [json!({})])?
        .remove(0)
        .height;
    let outcome = load::load(&plan, &urls, &signed, &index, start_height, &progress)?;
    progress.finish_and_clear();

    let report = report::Report::new(&plan, &urls, &chain_id, seed, start_height, &outcome);
    report::print_report(&report, a.output);
    report::warn_if_partial(&report);
    Ok(())
}

/// Asks every node for its status (a clear error for one that does not answer) and checks
/// that they all run the same chain.
fn check_nodes(urls: &[RpcUrl]) -> Result<String> {
    let mut chain: Option<(String, &RpcUrl)> = None;
    for url in urls {
        let status: ChainId = Client::for_url(url.clone()).call("status", json!({}))?;
        match &chain {
            None => chain = Some((status.chain_id, url)),
            Some((first, first_url)) if *first != status.chain_id => bail!(
                "{first_url} runs chain {first:?} but {url} runs {:?}; give --rpc addresses of \
                 one network",
                status.chain_id
            ),
            Some(_) => {}
        }
    }
    Ok(chain.expect("RpcList holds at least one address").0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_lists_split_on_commas_and_refuse_empty_or_repeated_addresses() {
        let list = |s: &str| {
            s.parse::<RpcList>()
                .map(|l| l.0.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        assert_eq!(list("127.0.0.1:1").unwrap(), ["http://127.0.0.1:1"]);
        assert_eq!(
            list("http://a:1, b:2 ,http://c:3/").unwrap(),
            ["http://a:1", "http://b:2", "http://c:3"]
        );
        assert!(list("").unwrap_err().contains("empty"));
        assert!(list("a:1,,b:2").unwrap_err().contains("empty"));
        assert!(list("a:1,").unwrap_err().contains("empty"));
        assert!(list("a:1,http://a:1").unwrap_err().contains("twice"));
        assert!(list("a:1,https://b:2").unwrap_err().contains("plain HTTP"));
        let many: Vec<String> = (0..=RPC_URLS_MAX).map(|i| format!("h:{}", i + 1)).collect();
        assert!(list(&many.join(",")).unwrap_err().contains("more than"));
        let most: Vec<String> = (0..RPC_URLS_MAX).map(|i| format!("h:{}", i + 1)).collect();
        assert_eq!(list(&most.join(",")).unwrap().len(), RPC_URLS_MAX);
    }
}
