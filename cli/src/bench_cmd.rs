//! `cairn bench tps`: a load generator that measures a running network's transaction
//! throughput and submit-to-commit latency over its JSON-RPC.
//!
//! It owns the benchmark's accounts (derived from a seed and funded from `--key`), its
//! pre-signed transfers, the submission schedule and the commit tracking. It never submits
//! more of one sender's transactions than the node's per-sender limit allows to be pending,
//! never retries without a bound, and never signs anything while the clock is running: every
//! transfer is signed before the timed part starts.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cairn_ledger::crypto::Keypair;
use cairn_ledger::tx::{Payload, Transaction};
use cairn_ledger::{Address, Amount, Hash, Nonce, keys};
use cairn_node::http::rpc::codes;
use clap::{Args, Subcommand};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{
    CALL_TIMEOUT, CONNECT_TIMEOUT, Client, RESPONSE_BYTES_MAX, RPC_DEFAULT, RpcArgs, RpcUrl,
    agent_config,
};
use crate::output::{self, Output};

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
/// Transactions pre-signed per second of `--duration` when `--rate` is 0: more than a local
/// network commits, so the run ends by the clock rather than by running out.
pub const UNLIMITED_PRESIGN_PER_S: u64 = 15_000;
/// Most transactions pre-signed for one run (about 350 bytes of memory each, so 350 MB).
pub const TXS_MAX: u64 = 1_000_000;
/// Submitting threads unless `--workers` says otherwise.
pub const WORKERS_DEFAULT: u32 = 4;
/// Most submitting threads.
pub const WORKERS_MAX: u32 = 64;
/// Most addresses in `--rpc`.
pub const RPC_URLS_MAX: usize = 64;
/// Requests per JSON-RPC batch: the node's default `[rpc] batch_requests_max`.
pub const BATCH_REQUESTS_MAX: usize = 50;
/// Most of one sender's transactions in one batch, so a batch spreads over senders.
pub const SENDER_TXS_PER_BATCH_MAX: u32 = 10;
/// Most of one sender's transactions submitted and not yet seen committed; below the
/// mempool's 256 pending per sender, with room for the follower seeing commits late.
pub const SENDER_IN_FLIGHT_MAX: u32 = 200;
/// Most transactions submitted and not yet seen committed, over all senders; below the
/// mempool's 20,000 (gossip puts every transaction in every node's pool).
pub const IN_FLIGHT_MAX: u64 = 16_000;
/// Most consecutive refusals (pool full, sender full, transport failure) of one transaction
/// before its sender is given up for the rest of the run.
pub const RETRIES_MAX: u32 = 30;
/// Wait before the first retry of a refused transaction; doubles per retry.
pub const RETRY_BACKOFF_BASE: Duration = Duration::from_millis(20);
/// Longest wait between two retries of one transaction.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Longest a worker sleeps when nothing is due or nothing may be sent.
const IDLE_SLEEP_MAX: Duration = Duration::from_millis(5);
/// How long one call of the commit follower waits for the next block (`block` with
/// `wait_ms`, answered as soon as it commits); well under the RPC client's call timeout.
pub const FOLLOW_WAIT: Duration = Duration::from_secs(1);
/// Pause after a failed follower call, so a node that is down is not hammered.
const FOLLOW_RETRY: Duration = Duration::from_millis(50);
/// Blocks fetched per batch by the commit follower (each answer lists up to 2,000 hashes).
const BLOCKS_PER_BATCH: u64 = 20;
/// Consecutive failed polls after which the follower gives up on the node.
const FOLLOW_ERRORS_MAX: u32 = 100;
/// Longest the run waits after the load stops for submitted transactions to commit.
pub const DRAIN_MAX: Duration = Duration::from_secs(30);
/// Faucet transfers submitted before waiting for them to commit (mempool: 256 per sender).
pub const FUNDING_CHUNK: usize = 200;
/// Longest wait for one chunk of funding transfers to commit.
pub const FUNDING_WAIT_MAX: Duration = Duration::from_secs(60);
/// How often the faucet's nonce is polled while funding.
const FUNDING_POLL: Duration = Duration::from_millis(100);
/// What each benchmark transfer moves and pays, in the smallest unit.
pub const TRANSFER_AMOUNT: u64 = 1;
pub const TRANSFER_FEE: u64 = 1;
/// How often the progress line redraws (on a terminal only).
const PROGRESS_TICK: Duration = Duration::from_millis(200);
/// Domain tag of the sender keys derived from `--seed`.
const SENDER_KEY_TAG: &[u8] = b"cairn/bench/sender/v1";

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

/// How much work the run does, decided once from the flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plan {
    accounts: u32,
    txs_per_sender: u32,
    workers: u32,
    /// Transactions per second, 0 for as fast as accepted.
    rate: u32,
    duration: Duration,
}

impl Plan {
    fn new(accounts: u32, duration_s: u64, rate: u32, workers: u32) -> Plan {
        let wanted = match rate {
            0 => duration_s.saturating_mul(UNLIMITED_PRESIGN_PER_S),
            r => duration_s.saturating_mul(u64::from(r)),
        }
        .clamp(1, TXS_MAX);
        let txs_per_sender =
            u32::try_from(wanted.div_ceil(u64::from(accounts))).expect("TXS_MAX fits in u32");
        // A worker needs a sender of its own, and with a rate, at least 1 tx/s.
        let mut workers = workers.min(accounts);
        if rate > 0 {
            workers = workers.min(rate);
        }
        Plan {
            accounts,
            txs_per_sender,
            workers,
            rate,
            duration: Duration::from_secs(duration_s),
        }
    }

    fn total_txs(&self) -> u64 {
        u64::from(self.accounts) * u64::from(self.txs_per_sender)
    }

    /// What each sender needs to pay for all its transfers.
    fn funding_per_sender(&self) -> u64 {
        u64::from(self.txs_per_sender) * (TRANSFER_AMOUNT + TRANSFER_FEE)
    }

    /// The rate of worker `w`: `rate` split as evenly as whole numbers allow.
    fn worker_rate(&self, w: u32) -> u32 {
        self.rate / self.workers + u32::from(w < self.rate % self.workers)
    }
}

/// How many transactions a schedule of `rate` per second should have sent `elapsed` after
/// its start: the first at once, the k-th (from 0) at k / rate seconds.
fn due_by(elapsed: Duration, rate: u32) -> u64 {
    let sent = elapsed.as_nanos() * u128::from(rate) / 1_000_000_000;
    u64::try_from(sent).unwrap_or(u64::MAX).saturating_add(1)
}

/// When the k-th transaction (from 0) of a schedule of `rate` per second is due.
fn due_at(k: u64, rate: u32) -> Duration {
    debug_assert!(rate > 0);
    let nanos = (u128::from(k) * 1_000_000_000).div_ceil(u128::from(rate));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The nearest-rank percentile `p` (0 < p ≤ 100) of ascending `sorted` values.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    debug_assert!(p > 0.0 && p <= 100.0);
    debug_assert!(sorted.is_sorted());
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Wait before retry number `retries` (from 1) of a refused transaction.
fn backoff(retries: u32) -> Duration {
    let doublings = retries.saturating_sub(1).min(16);
    (RETRY_BACKOFF_BASE * (1 << doublings)).min(RETRY_BACKOFF_MAX)
}

/// The key of sender `index` for `seed`.
fn sender_key(seed: u64, index: u32) -> Keypair {
    let secret = Hash::tagged(
        SENDER_KEY_TAG,
        &[&seed.to_le_bytes(), &u64::from(index).to_le_bytes()],
    );
    Keypair::from_secret(&secret.0)
}

// ---------------------------------------------------------------------------------------
// JSON-RPC batches over one kept-alive connection per thread.

/// A JSON-RPC error object.
#[derive(Clone, Debug, Deserialize)]
struct RpcFailure {
    code: i64,
    message: String,
    #[serde(default)]
    data: Option<Value>,
}

impl RpcFailure {
    /// The node's rejection reason (`pool_full`, `nonce_gap`, …), else `rpc_error_CODE`.
    fn reason(&self) -> String {
        match self
            .data
            .as_ref()
            .and_then(|d| d.get("reason"))
            .and_then(Value::as_str)
        {
            Some(reason) => reason.to_owned(),
            None => format!("rpc_error_{}", -self.code),
        }
    }
}

#[derive(Deserialize)]
struct Reply {
    id: Option<u64>,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<RpcFailure>,
}

/// Why a whole batch failed.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error("could not reach the node's RPC at {url}: {reason}")]
    Transport { url: RpcUrl, reason: String },
    #[error("the node's RPC at {url} refused the batch: {message} (JSON-RPC error {code})")]
    Refused {
        url: RpcUrl,
        code: i64,
        message: String,
    },
    #[error("the answer from {url} is not a JSON-RPC batch answer: {problem}")]
    NotJsonRpc { url: RpcUrl, problem: String },
}

struct Conn {
    url: RpcUrl,
    agent: ureq::Agent,
}

impl Conn {
    fn new(url: &RpcUrl) -> Conn {
        let agent = agent_config()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(CALL_TIMEOUT))
            .build()
            .new_agent();
        Conn {
            url: url.clone(),
            agent,
        }
    }

    /// Calls `method` once per params in one batch; answers in the same order.
    fn calls(
        &self,
        method: &str,
        params: impl IntoIterator<Item = Value>,
    ) -> Result<Vec<Result<Value, RpcFailure>>, BatchError> {
        let requests: Vec<Value> = params
            .into_iter()
            .enumerate()
            .map(|(id, p)| json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": p }))
            .collect();
        let n = requests.len();
        self.post(Value::Array(requests).to_string(), n)
    }

    /// Posts a batch body of `n` requests with ids 0..n; answers in id order.
    fn post(&self, body: String, n: usize) -> Result<Vec<Result<Value, RpcFailure>>, BatchError> {
        debug_assert!(n > 0 && n <= BATCH_REQUESTS_MAX);
        let transport = |e: ureq::Error| BatchError::Transport {
            url: self.url.clone(),
            reason: e.to_string(),
        };
        let mut response = self
            .agent
            .post(self.url.to_string())
            .header("content-type", "application/json")
            .send(body)
            .map_err(transport)?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(RESPONSE_BYTES_MAX)
            .read_to_vec()
            .map_err(transport)?;
        let not_json_rpc = |problem: String| BatchError::NotJsonRpc {
            url: self.url.clone(),
            problem: format!("HTTP {status}, {problem}"),
        };
        let replies: Vec<Reply> = match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Array(items)) => items
                .into_iter()
                .map(serde_json::from_value)
                .collect::<Result<_, _>>()
                .map_err(|e| not_json_rpc(e.to_string()))?,
            Ok(single) => {
                return Err(match serde_json::from_value::<Reply>(single) {
                    Ok(Reply {
                        error: Some(e),
                        id: None,
                        ..
                    }) => BatchError::Refused {
                        url: self.url.clone(),
                        code: e.code,
                        message: e.message,
                    },
                    _ => not_json_rpc("a single object where an array was expected".into()),
                });
            }
            Err(e) => return Err(not_json_rpc(e.to_string())),
        };
        let mut answers: Vec<Option<Result<Value, RpcFailure>>> = vec![None; n];
        for reply in replies {
            let slot = reply
                .id
                .and_then(|id| usize::try_from(id).ok())
                .and_then(|id| answers.get_mut(id))
                .ok_or_else(|| not_json_rpc("an answer with an unknown id".into()))?;
            *slot = Some(match (reply.result, reply.error) {
                (_, Some(e)) => Err(e),
                (Some(v), None) => Ok(v),
                (None, None) => return Err(not_json_rpc("an answer without a result".into())),
            });
        }
        answers
            .into_iter()
            .map(|a| a.ok_or_else(|| not_json_rpc("an answer is missing".into())))
            .collect()
    }

    /// Like [`Conn::calls`], failing on the first error, each result decoded as `T`.
    fn calls_ok<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: impl IntoIterator<Item = Value>,
    ) -> Result<Vec<T>> {
        self.calls(method, params)?
            .into_iter()
            .map(|r| self.decode(method, r))
            .collect()
    }

    /// One answer to `method` decoded as `T`, or why not.
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        answer: Result<Value, RpcFailure>,
    ) -> Result<T> {
        let value = answer.map_err(|e| {
            anyhow::anyhow!(
                "{method} at {} failed: {} (JSON-RPC error {})",
                self.url,
                e.message,
                e.code
            )
        })?;
        serde_json::from_value(value).with_context(|| {
            format!(
                "the answer of {} to {method} is not what cairn expects",
                self.url
            )
        })
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

#[derive(Clone, Copy, Deserialize)]
struct AccountInfo {
    balance: u64,
    nonce: u64,
    pending_nonce: u64,
}

#[derive(Deserialize)]
struct BlockTxs {
    height: u64,
    transactions: Vec<Hash>,
    /// Blocks from it to the tip, itself included, when it was read.
    confirmations: u64,
}

/// `account` for every address, in batches; answers in the same order.
fn accounts(conn: &Conn, addresses: &[Address]) -> Result<Vec<AccountInfo>> {
    let mut out = Vec::with_capacity(addresses.len());
    for chunk in addresses.chunks(BATCH_REQUESTS_MAX) {
        out.extend(
            conn.calls_ok::<AccountInfo>("account", chunk.iter().map(|a| json!({ "address": a })))?,
        );
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The run.

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
    let conns: Vec<Conn> = urls.iter().map(Conn::new).collect();

    fund(&conns[0], &chain_id, &faucet, &addresses, &plan, &progress)?;
    let start_nonces = funded_nonces(&conns, &addresses, &plan)?;

    progress.set_message(format!("signing {} transfers", plan.total_txs()));
    let signed = presign(&chain_id, &senders, &addresses, &start_nonces, &plan);
    drop(senders);
    let index: HashMap<Hash, u32> = signed
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, tx)| (tx.hash, u32::try_from(i).expect("TXS_MAX fits in u32")))
        .collect();

    let start_height = conns[0]
        .calls_ok::<HeightOnly>("status", [json!({})])?
        .remove(0)
        .height;
    let outcome = load(&plan, &urls, &signed, &index, start_height, &progress)?;
    progress.finish_and_clear();

    let report = Report::new(&plan, &urls, &chain_id, seed, start_height, &outcome);
    print_report(&report, a.output);
    warn_if_partial(&report);
    Ok(())
}

/// Asks every node for its status (a clear error for one that does not answer) and checks
/// that they all run the same chain.
fn check_nodes(urls: &[RpcUrl]) -> Result<String> {
    let mut chain: Option<(String, &RpcUrl)> = None;
    for url in urls {
        let status: ChainId =
            Client::new(&RpcArgs { rpc: url.clone() }).call("status", json!({}))?;
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

/// Funds every sender that holds less than the run needs from the faucet, in chunks the
/// mempool admits from one sender, waiting for each chunk to commit.
fn fund(
    conn: &Conn,
    chain_id: &str,
    faucet: &Keypair,
    addresses: &[Address],
    plan: &Plan,
    progress: &ProgressBar,
) -> Result<()> {
    let need = plan.funding_per_sender();
    let balances = accounts(conn, addresses)?;
    let short: Vec<(Address, u64)> = addresses
        .iter()
        .zip(&balances)
        .filter(|(_, acct)| acct.balance < need)
        .map(|(address, acct)| (*address, need - acct.balance))
        .collect();
    if short.is_empty() {
        return Ok(());
    }
    let faucet_address = faucet.public().address();
    let faucet_account = accounts(conn, &[faucet_address])?[0];
    let total: u128 = short
        .iter()
        .map(|(_, amount)| u128::from(*amount) + u128::from(TRANSFER_FEE))
        .sum();
    if u128::from(faucet_account.balance) < total {
        bail!(
            "the --key account {faucet_address} holds {} but funding {} sender accounts needs \
             {total}; use a funded key (a testnet's faucet.key), or fewer --accounts, a shorter \
             --duration or a lower --rate",
            faucet_account.balance,
            short.len()
        );
    }
    let mut nonce = faucet_account.pending_nonce;
    let mut funded = 0;
    for chunk in short.chunks(FUNDING_CHUNK) {
        progress.set_message(format!(
            "funding sender accounts: {funded}/{} done",
            short.len()
        ));
        for batch in chunk.chunks(BATCH_REQUESTS_MAX) {
            let txs: Vec<Value> = batch
                .iter()
                .map(|(to, amount)| {
                    let tx = Transaction::new_signed(
                        chain_id,
                        faucet,
                        Nonce(nonce),
                        Amount(TRANSFER_FEE),
                        Payload::Transfer {
                            to: *to,
                            amount: Amount(*amount),
                        },
                    );
                    nonce += 1;
                    json!({ "tx": hex::encode(tx.encode()), "mode": "mempool" })
                })
                .collect();
            conn.calls_ok::<Value>("submit_tx", txs)
                .context("a funding transfer from --key was refused")?;
        }
        let deadline = Instant::now() + FUNDING_WAIT_MAX;
        while accounts(conn, &[faucet_address])?[0].nonce < nonce {
            if Instant::now() > deadline {
                bail!(
                    "funding transfers from {faucet_address} did not commit within {} s; is the \
                     network making blocks? (cairn status --rpc {})",
                    FUNDING_WAIT_MAX.as_secs(),
                    conn.url
                );
            }
            thread::sleep(FUNDING_POLL);
        }
        funded += chunk.len();
    }
    Ok(())
}

/// Waits until every sender's node sees it funded (a node can be a block or two behind the
/// one funding went through), then answers each sender's next nonce on that node.
fn funded_nonces(conns: &[Conn], addresses: &[Address], plan: &Plan) -> Result<Vec<u64>> {
    let need = plan.funding_per_sender();
    let deadline = Instant::now() + FUNDING_WAIT_MAX;
    let mut nonces = vec![0; addresses.len()];
    for (u, conn) in conns.iter().enumerate() {
        let mine: Vec<usize> = (u..addresses.len()).step_by(conns.len()).collect();
        let list: Vec<Address> = mine.iter().map(|&s| addresses[s]).collect();
        let found = loop {
            let found = accounts(conn, &list)?;
            if let Some((s, acct)) = mine.iter().zip(&found).find(|(_, a)| a.balance < need) {
                if Instant::now() > deadline {
                    bail!(
                        "{} still sees sender account {} with balance {}, below the {need} the \
                         run needs, {} s after funding; is that node following the chain? \
                         (cairn status --rpc {})",
                        conn.url,
                        addresses[*s],
                        acct.balance,
                        FUNDING_WAIT_MAX.as_secs(),
                        conn.url
                    );
                }
                thread::sleep(FUNDING_POLL);
                continue;
            }
            break found;
        };
        for (s, acct) in mine.into_iter().zip(found) {
            nonces[s] = acct.pending_nonce;
        }
    }
    Ok(nonces)
}

/// A transfer signed before the clock starts: its request param and its hash.
struct Signed {
    hex: String,
    hash: Hash,
}

/// Signs every sender's transfers with consecutive nonces, on all cores. Sender i pays
/// sender i+1 (the last pays the first), so no account outside the run is touched.
fn presign(
    chain_id: &str,
    senders: &[Keypair],
    addresses: &[Address],
    start_nonces: &[u64],
    plan: &Plan,
) -> Vec<Vec<Signed>> {
    let threads = thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = senders.len().div_ceil(threads);
    let sign_one = |s: usize| -> Vec<Signed> {
        let to = addresses[(s + 1) % addresses.len()];
        (0..u64::from(plan.txs_per_sender))
            .map(|j| {
                let tx = Transaction::new_signed(
                    chain_id,
                    &senders[s],
                    Nonce(start_nonces[s] + j),
                    Amount(TRANSFER_FEE),
                    Payload::Transfer {
                        to,
                        amount: Amount(TRANSFER_AMOUNT),
                    },
                );
                Signed {
                    hex: hex::encode(tx.encode()),
                    hash: tx.hash(),
                }
            })
            .collect()
    };
    thread::scope(|scope| {
        let handles: Vec<_> = (0..senders.len())
            .step_by(per_thread)
            .map(|from| {
                let to = (from + per_thread).min(senders.len());
                scope.spawn(move || (from..to).map(sign_one).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a signing thread panicked"))
            .collect()
    })
}

/// A transaction's word in [`Shared::txs`]: flags, and the microseconds from `t0` to its
/// last submission plus 1 (0: never submitted).
const TX_ACCEPTED: u64 = 1 << 63;
const TX_COMMITTED: u64 = 1 << 62;
const TX_STAMP_MASK: u64 = TX_COMMITTED - 1;

/// What the workers and the follower share while the clock runs.
struct Shared {
    t0: Instant,
    /// Per transaction: see [`TX_ACCEPTED`].
    txs: Vec<AtomicU64>,
    /// Per sender: its transactions seen committed (they commit in nonce order).
    committed_per_sender: Vec<AtomicU32>,
    /// Transactions a node accepted, or seen committed when the answer to their submission
    /// was lost: each counted once.
    submitted: AtomicU64,
    committed: AtomicU64,
    height: AtomicU64,
    workers_done: AtomicBool,
}

impl Shared {
    fn in_flight(&self) -> u64 {
        let committed = self.committed.load(Ordering::Relaxed);
        self.submitted
            .load(Ordering::Relaxed)
            .saturating_sub(committed)
    }

    /// Records that transaction `tx` is being submitted `at` (again).
    fn stamp(&self, tx: usize, at: Instant) {
        let us = u64::try_from(at.saturating_duration_since(self.t0).as_micros())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
            .min(TX_STAMP_MASK);
        let _ = self.txs[tx].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
            Some(word & !TX_STAMP_MASK | us)
        });
    }

    /// Sets `flag` on transaction `tx`; counts it submitted if it is its first flag. Returns
    /// the word before.
    fn mark(&self, tx: usize, flag: u64) -> u64 {
        let before = self.txs[tx].fetch_or(flag, Ordering::Relaxed);
        if before & (TX_ACCEPTED | TX_COMMITTED) == 0 {
            self.submitted.fetch_add(1, Ordering::Relaxed);
        }
        before
    }
}

/// What one worker did.
#[derive(Default)]
struct WorkerOutcome {
    accepted: u64,
    rejected: BTreeMap<String, u64>,
    /// The first message seen for each reason of a refusal, retried or not.
    messages: BTreeMap<String, String>,
    retries: u64,
    transport_errors: u64,
    first_send: Option<Instant>,
    last_accept: Option<Instant>,
}

/// What the follower saw.
#[derive(Default)]
struct FollowOutcome {
    committed: u64,
    latencies_us: Vec<u64>,
    last_commit: Option<Instant>,
    end_height: u64,
    blocks: u64,
    block_txs_max: usize,
    drained: bool,
}

struct LoadOutcome {
    workers: Vec<WorkerOutcome>,
    follow: FollowOutcome,
    /// See [`Shared::submitted`].
    submitted: u64,
}

/// Runs the workers and the follower until the duration and the drain are over.
fn load(
    plan: &Plan,
    urls: &[RpcUrl],
    signed: &[Vec<Signed>],
    index: &HashMap<Hash, u32>,
    start_height: u64,
    progress: &ProgressBar,
) -> Result<LoadOutcome> {
    let shared = Shared {
        t0: Instant::now(),
        txs: (0..plan.total_txs()).map(|_| AtomicU64::new(0)).collect(),
        committed_per_sender: (0..plan.accounts).map(|_| AtomicU32::new(0)).collect(),
        submitted: AtomicU64::new(0),
        committed: AtomicU64::new(0),
        height: AtomicU64::new(start_height),
        workers_done: AtomicBool::new(false),
    };
    let shared = &shared;
    thread::scope(|scope| {
        let workers: Vec<_> = (0..plan.workers)
            .map(|w| scope.spawn(move || worker(w, plan, urls, signed, shared)))
            .collect();
        let follower = scope.spawn(move || follow(&urls[0], start_height, plan, index, shared));
        while !follower.is_finished() {
            if !shared.workers_done.load(Ordering::Relaxed)
                && workers.iter().all(|w| w.is_finished())
            {
                shared.workers_done.store(true, Ordering::Relaxed);
            }
            let submitted = shared.submitted.load(Ordering::Relaxed);
            let committed = shared.committed.load(Ordering::Relaxed);
            let elapsed = shared.t0.elapsed().as_secs();
            let phase = if shared.workers_done.load(Ordering::Relaxed) {
                "draining"
            } else {
                "loading"
            };
            progress.set_message(format!(
                "{phase} {elapsed}/{} s: submitted {submitted}, committed {committed}, height {}",
                plan.duration.as_secs(),
                shared.height.load(Ordering::Relaxed)
            ));
            thread::sleep(PROGRESS_TICK);
        }
        // The follower only ends early on an error; the workers stop by the clock.
        shared.workers_done.store(true, Ordering::Relaxed);
        let workers: Vec<WorkerOutcome> = workers
            .into_iter()
            .map(|w| w.join().expect("a worker thread panicked"))
            .collect();
        let follow = follower.join().expect("the follower thread panicked")?;
        Ok(LoadOutcome {
            workers,
            follow,
            submitted: shared.submitted.load(Ordering::Relaxed),
        })
    })
}

/// One sender as a worker sees it.
struct SenderState {
    /// Global sender index.
    index: usize,
    url: usize,
    /// The next of its transactions to submit (all before it were accepted).
    next: u32,
    /// Consecutive refusals of `next`.
    retries: u32,
    retry_at: Instant,
    /// A transport failure left its last submission's fate unknown: a `duplicate` or
    /// `stale_nonce` answer then means the earlier one got in.
    uncertain: bool,
    given_up: bool,
}

/// What an answer to one `submit_tx` means for the run.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Accepted,
    /// Refused for now (pool or sender full): retry the same transaction later.
    Retry(String),
    /// Refused for good: the sender's later nonces can no longer be used.
    Fatal(String),
}

fn verdict(answer: &Result<Value, RpcFailure>, uncertain: bool) -> Verdict {
    let Err(e) = answer else {
        return Verdict::Accepted;
    };
    match e.code {
        codes::TX_DUPLICATE => Verdict::Accepted,
        codes::TX_STALE_NONCE if uncertain => Verdict::Accepted,
        codes::TX_POOL_FULL | codes::TX_SENDER_FULL | codes::TX_STATE_ERROR => {
            Verdict::Retry(e.reason())
        }
        _ => Verdict::Fatal(e.reason()),
    }
}

/// Submits worker `w`'s senders' transactions on schedule until the duration is over or
/// every one of them is submitted or given up.
fn worker(
    w: u32,
    plan: &Plan,
    urls: &[RpcUrl],
    signed: &[Vec<Signed>],
    shared: &Shared,
) -> WorkerOutcome {
    let conns: Vec<Conn> = urls.iter().map(Conn::new).collect();
    let end = shared.t0 + plan.duration;
    let rate = plan.worker_rate(w);
    let mut senders: Vec<SenderState> = (w as usize..plan.accounts as usize)
        .step_by(plan.workers as usize)
        .map(|s| SenderState {
            index: s,
            url: s % urls.len(),
            next: 0,
            retries: 0,
            retry_at: shared.t0,
            uncertain: false,
            given_up: false,
        })
        .collect();
    let mut out = WorkerOutcome::default();
    let mut cursor = 0;
    let mut batch: Vec<(usize, u32)> = Vec::with_capacity(BATCH_REQUESTS_MAX);
    loop {
        let now = Instant::now();
        if now >= end
            || senders
                .iter()
                .all(|s| s.given_up || s.next == plan.txs_per_sender)
        {
            return out;
        }
        let quota = match rate {
            0 => u64::MAX,
            r => due_by(now - shared.t0, r).saturating_sub(out.accepted),
        };
        let room = IN_FLIGHT_MAX.saturating_sub(shared.in_flight());
        let limit = quota.min(room).min(BATCH_REQUESTS_MAX as u64) as usize;
        batch.clear();
        if limit > 0 {
            cursor = fill_batch(&senders, cursor, limit, plan, shared, now, &mut batch);
        }
        if batch.is_empty() {
            let next_due = match rate {
                0 => IDLE_SLEEP_MAX,
                r => (shared.t0 + due_at(out.accepted, r)).saturating_duration_since(now),
            };
            thread::sleep(next_due.clamp(Duration::from_micros(200), IDLE_SLEEP_MAX));
            continue;
        }
        let url = senders[batch[0].0].url;
        let body = batch_body(&batch, &senders, plan, signed, shared, now);
        out.first_send.get_or_insert(now);
        let answers = conns[url].post(body, batch.len());
        let now = Instant::now();
        match answers {
            Ok(answers) => settle(&batch, &answers, &mut senders, plan, shared, now, &mut out),
            Err(e) => batch_failed(&batch, &e, &mut senders, now, &mut out),
        }
    }
}

/// The JSON-RPC batch submitting `batch`, stamping each transaction as submitted `now`.
fn batch_body(
    batch: &[(usize, u32)],
    senders: &[SenderState],
    plan: &Plan,
    signed: &[Vec<Signed>],
    shared: &Shared,
    now: Instant,
) -> String {
    let mut body = String::with_capacity(batch.len() * 480);
    body.push('[');
    for (id, &(l, seq)) in batch.iter().enumerate() {
        let s = senders[l].index;
        shared.stamp(tx_index(plan, s, seq), now);
        if id > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"submit_tx","params":{{"tx":"{}","mode":"mempool"}}}}"#,
            signed[s][seq as usize].hex
        ));
    }
    body.push(']');
    body
}

/// Applies the node's answers to a batch: accepted transactions move their sender on; a
/// refused one is retried later or gives its sender up. Once one of a sender's transactions
/// is refused, its later ones in the batch were refused for the nonce gap: they go again
/// with it.
fn settle(
    batch: &[(usize, u32)],
    answers: &[Result<Value, RpcFailure>],
    senders: &mut [SenderState],
    plan: &Plan,
    shared: &Shared,
    now: Instant,
    out: &mut WorkerOutcome,
) {
    let mut failed: Vec<usize> = Vec::new();
    for (&(l, seq), answer) in batch.iter().zip(answers) {
        if failed.contains(&l) {
            continue;
        }
        let sender = &mut senders[l];
        debug_assert_eq!(sender.next, seq);
        let verdict = verdict(answer, sender.uncertain);
        if let (Verdict::Retry(reason) | Verdict::Fatal(reason), Err(e)) = (&verdict, answer) {
            out.messages
                .entry(reason.clone())
                .or_insert_with(|| e.message.clone());
        }
        match verdict {
            Verdict::Accepted => {
                shared.mark(tx_index(plan, sender.index, seq), TX_ACCEPTED);
                sender.next = seq + 1;
                sender.retries = 0;
                sender.uncertain = false;
                out.accepted += 1;
                out.last_accept = Some(now);
            }
            Verdict::Retry(reason) => {
                failed.push(l);
                refused(sender, &reason, now, out);
            }
            Verdict::Fatal(reason) => {
                failed.push(l);
                sender.given_up = true;
                *out.rejected.entry(reason).or_default() += 1;
            }
        }
    }
}

/// A batch that got no per-transaction answers: each of its senders retries later, not
/// knowing whether the node admitted what it sent.
fn batch_failed(
    batch: &[(usize, u32)],
    error: &BatchError,
    senders: &mut [SenderState],
    now: Instant,
    out: &mut WorkerOutcome,
) {
    out.transport_errors += 1;
    let reason = match error {
        BatchError::Transport { .. } => "transport".to_owned(),
        BatchError::Refused { code, .. } => format!("rpc_error_{}", -code),
        BatchError::NotJsonRpc { .. } => "not_json_rpc".to_owned(),
    };
    out.messages
        .entry(reason.clone())
        .or_insert_with(|| error.to_string());
    let mut seen = Vec::new();
    for &(l, _) in batch {
        if !seen.contains(&l) {
            seen.push(l);
            senders[l].uncertain = true;
            refused(&mut senders[l], &reason, now, out);
        }
    }
}

/// Schedules a retry of `sender`'s next transaction, or gives the sender up (counting the
/// transaction as rejected for `reason`) once it has been refused too often.
fn refused(sender: &mut SenderState, reason: &str, now: Instant, out: &mut WorkerOutcome) {
    sender.retries += 1;
    out.retries += 1;
    if sender.retries > RETRIES_MAX {
        sender.given_up = true;
        *out.rejected.entry(reason.to_owned()).or_default() += 1;
    } else {
        sender.retry_at = now + backoff(sender.retries);
    }
}

/// Puts up to `limit` ready transactions into `batch`, all for one node, taking senders
/// round-robin from `cursor`; returns the cursor for the next batch.
fn fill_batch(
    senders: &[SenderState],
    cursor: usize,
    limit: usize,
    plan: &Plan,
    shared: &Shared,
    now: Instant,
    batch: &mut Vec<(usize, u32)>,
) -> usize {
    let mut url = None;
    let n = senders.len();
    for step in 0..n {
        let l = (cursor + step) % n;
        let s = &senders[l];
        if s.given_up || s.retry_at > now || url.is_some_and(|u| u != s.url) {
            continue;
        }
        let committed = shared.committed_per_sender[s.index].load(Ordering::Relaxed);
        let in_flight = s.next.saturating_sub(committed);
        let take = (plan.txs_per_sender - s.next)
            .min(SENDER_IN_FLIGHT_MAX.saturating_sub(in_flight))
            .min(SENDER_TXS_PER_BATCH_MAX)
            .min(u32::try_from(limit - batch.len()).unwrap_or(u32::MAX));
        if take == 0 {
            continue;
        }
        url = Some(s.url);
        batch.extend((s.next..s.next + take).map(|seq| (l, seq)));
        if batch.len() == limit {
            return (l + 1) % n;
        }
    }
    (cursor + 1) % n.max(1)
}

fn tx_index(plan: &Plan, sender: usize, seq: u32) -> usize {
    sender * plan.txs_per_sender as usize + seq as usize
}

/// Follows the chain on `url` from `start_height`, timing each of the run's transactions
/// from its submission to the follower reading its block, until every accepted transaction has
/// committed after the workers stopped, or the drain period is over.
fn follow(
    url: &RpcUrl,
    start_height: u64,
    plan: &Plan,
    index: &HashMap<Hash, u32>,
    shared: &Shared,
) -> Result<FollowOutcome> {
    let conn = Conn::new(url);
    let drain_end = shared.t0 + plan.duration + DRAIN_MAX;
    let mut out = FollowOutcome {
        end_height: start_height,
        ..FollowOutcome::default()
    };
    let mut errors = 0;
    loop {
        if shared.workers_done.load(Ordering::Relaxed)
            && out.committed >= shared.submitted.load(Ordering::Relaxed)
        {
            out.drained = true;
            return Ok(out);
        }
        if Instant::now() > drain_end {
            return Ok(out);
        }
        match follow_step(&conn, &mut out, index, plan, shared) {
            Ok(()) => errors = 0,
            Err(e) => {
                errors += 1;
                if errors > FOLLOW_ERRORS_MAX {
                    return Err(e).context(format!(
                        "following blocks on {url} failed {FOLLOW_ERRORS_MAX} times in a row"
                    ));
                }
                thread::sleep(FOLLOW_RETRY);
            }
        }
    }
}

/// One step: waits for the block after the last one seen, then reads every block committed
/// since.
fn follow_step(
    conn: &Conn,
    out: &mut FollowOutcome,
    index: &HashMap<Hash, u32>,
    plan: &Plan,
    shared: &Shared,
) -> Result<()> {
    let next = out.end_height + 1;
    let wait_ms = u64::try_from(FOLLOW_WAIT.as_millis()).unwrap_or(u64::MAX);
    let answer = conn
        .calls("block", [json!({ "height": next, "wait_ms": wait_ms })])?
        .pop()
        .context("an empty answer to a batch of one")?;
    let first: BlockTxs = match answer {
        // Nothing committed within the wait: ask again.
        Err(e) if e.code == codes::NOT_FOUND => return Ok(()),
        answer => conn.decode("block", answer)?,
    };
    record_blocks(out, std::slice::from_ref(&first), index, plan, shared);
    // Its confirmations say how far the chain was when it was read.
    let height = first.height + first.confirmations.saturating_sub(1);
    shared.height.store(height, Ordering::Relaxed);
    while out.end_height < height {
        let from = out.end_height + 1;
        let to = height.min(out.end_height + BLOCKS_PER_BATCH);
        let blocks: Vec<BlockTxs> =
            conn.calls_ok("block", (from..=to).map(|h| json!({ "height": h })))?;
        record_blocks(out, &blocks, index, plan, shared);
    }
    Ok(())
}

/// Marks the run's transactions in `blocks` (the next ones, in order) committed as of now.
fn record_blocks(
    out: &mut FollowOutcome,
    blocks: &[BlockTxs],
    index: &HashMap<Hash, u32>,
    plan: &Plan,
    shared: &Shared,
) {
    let observed = Instant::now();
    let observed_us =
        u64::try_from(observed.duration_since(shared.t0).as_micros()).unwrap_or(u64::MAX);
    for block in blocks {
        debug_assert_eq!(block.height, out.end_height + 1);
        out.blocks += 1;
        out.block_txs_max = out.block_txs_max.max(block.transactions.len());
        for hash in &block.transactions {
            let Some(&tx) = index.get(hash) else {
                continue;
            };
            let tx = tx as usize;
            let before = shared.mark(tx, TX_COMMITTED);
            if before & TX_COMMITTED != 0 {
                continue;
            }
            let stamp = before & TX_STAMP_MASK;
            if stamp > 0 {
                out.latencies_us.push(observed_us.saturating_sub(stamp - 1));
            }
            out.committed += 1;
            out.last_commit = Some(observed);
            let sender = tx / plan.txs_per_sender as usize;
            shared.committed_per_sender[sender].fetch_add(1, Ordering::Relaxed);
            shared.committed.fetch_add(1, Ordering::Relaxed);
        }
        out.end_height = block.height;
    }
}

// ---------------------------------------------------------------------------------------
// Presentation.

/// One line on stderr when the run did less than asked, so a script reading the figures
/// (or a person skimming them) does not take them for a clean run.
fn warn_if_partial(r: &Report) {
    if r.rejected > 0 {
        eprintln!(
            "warning: {} sender accounts stopped early after a refusal ({}); the figures cover \
             less load than asked",
            r.rejected,
            r.rejected_by_reason
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !r.drained {
        eprintln!(
            "warning: {} submitted transactions were not seen committed within {} s after the \
             load stopped",
            r.not_committed,
            DRAIN_MAX.as_secs()
        );
    }
}

#[derive(Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

/// What `bench tps` prints. Rates are per second, times in seconds unless named `_ms`.
#[derive(Serialize)]
struct Report {
    rpc: Vec<String>,
    chain_id: String,
    seed: u64,
    accounts: u32,
    workers: u32,
    duration_s: u64,
    /// 0: as fast as the nodes accept.
    rate_target: u32,
    presigned: u64,
    submitted: u64,
    committed: u64,
    rejected: u64,
    rejected_by_reason: BTreeMap<String, u64>,
    /// The first message the nodes (or the transport) gave for each reason of a refusal,
    /// retried or final.
    error_messages: BTreeMap<String, String>,
    /// Submitted but not seen committed by the end of the drain.
    not_committed: u64,
    retries: u64,
    transport_errors: u64,
    /// From the first submission to the last accepted one.
    submit_window_s: f64,
    submitted_tps: f64,
    /// From the first submission to the last commit seen.
    commit_window_s: f64,
    committed_tps: f64,
    /// Submission to the follower reading the block (it waits on the node for each next
    /// block, so within an HTTP round trip of its commit there).
    latency_ms: Option<Latency>,
    start_height: u64,
    end_height: u64,
    blocks: u64,
    block_txs_max: usize,
    /// Every submitted transaction committed within the drain period.
    drained: bool,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn per_second(count: u64, window: Duration) -> f64 {
    if window.is_zero() {
        return 0.0;
    }
    round1(count as f64 / window.as_secs_f64())
}

impl Report {
    fn new(
        plan: &Plan,
        urls: &[RpcUrl],
        chain_id: &str,
        seed: u64,
        start_height: u64,
        outcome: &LoadOutcome,
    ) -> Report {
        let workers = &outcome.workers;
        let follow = &outcome.follow;
        let submitted = outcome.submitted;
        let mut rejected_by_reason: BTreeMap<String, u64> = BTreeMap::new();
        let mut error_messages: BTreeMap<String, String> = BTreeMap::new();
        for w in workers {
            for (reason, count) in &w.rejected {
                *rejected_by_reason.entry(reason.clone()).or_default() += count;
            }
            for (reason, message) in &w.messages {
                error_messages
                    .entry(reason.clone())
                    .or_insert_with(|| message.clone());
            }
        }
        let first_send = workers.iter().filter_map(|w| w.first_send).min();
        let last_accept = workers.iter().filter_map(|w| w.last_accept).max();
        let window = |end: Option<Instant>| match (first_send, end) {
            (Some(start), Some(end)) => end.saturating_duration_since(start),
            _ => Duration::ZERO,
        };
        let submit_window = window(last_accept);
        let commit_window = window(follow.last_commit);
        let mut latencies = follow.latencies_us.clone();
        latencies.sort_unstable();
        let ms = |p: f64| round1(percentile(&latencies, p).unwrap_or(0) as f64 / 1000.0);
        let latency_ms = (!latencies.is_empty()).then(|| Latency {
            p50: ms(50.0),
            p90: ms(90.0),
            p99: ms(99.0),
            max: ms(100.0),
        });
        Report {
            rpc: urls.iter().map(ToString::to_string).collect(),
            chain_id: chain_id.to_owned(),
            seed,
            accounts: plan.accounts,
            workers: plan.workers,
            duration_s: plan.duration.as_secs(),
            rate_target: plan.rate,
            presigned: plan.total_txs(),
            submitted,
            committed: follow.committed,
            rejected: rejected_by_reason.values().sum(),
            rejected_by_reason,
            error_messages,
            not_committed: submitted.saturating_sub(follow.committed),
            retries: workers.iter().map(|w| w.retries).sum(),
            transport_errors: workers.iter().map(|w| w.transport_errors).sum(),
            submit_window_s: round1(submit_window.as_secs_f64()),
            submitted_tps: per_second(submitted, submit_window),
            commit_window_s: round1(commit_window.as_secs_f64()),
            committed_tps: per_second(follow.committed, commit_window),
            latency_ms,
            start_height,
            end_height: follow.end_height,
            blocks: follow.blocks,
            block_txs_max: follow.block_txs_max,
            drained: follow.drained,
        }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
            self.p50, self.p90, self.p99, self.max
        )
    }
}

fn print_report(r: &Report, out: Output) {
    let rate = match r.rate_target {
        0 => "unlimited".to_owned(),
        n => format!("{n} tx/s"),
    };
    let rejected = if r.rejected_by_reason.is_empty() {
        "0".to_owned()
    } else {
        let reasons: Vec<String> = r
            .rejected_by_reason
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        format!("{} ({})", r.rejected, reasons.join(", "))
    };
    let rows = vec![
        ("rpc", r.rpc.join(",")),
        ("chain_id", r.chain_id.clone()),
        ("seed", r.seed.to_string()),
        ("accounts", r.accounts.to_string()),
        ("workers", r.workers.to_string()),
        ("duration_s", r.duration_s.to_string()),
        ("rate_target", rate),
        ("presigned", r.presigned.to_string()),
        ("submitted", r.submitted.to_string()),
        ("committed", r.committed.to_string()),
        ("rejected", rejected),
        ("not_committed", r.not_committed.to_string()),
        ("retries", r.retries.to_string()),
        ("transport_errors", r.transport_errors.to_string()),
        (
            "submitted_tps",
            format!("{} (over {} s)", r.submitted_tps, r.submit_window_s),
        ),
        (
            "committed_tps",
            format!("{} (over {} s)", r.committed_tps, r.commit_window_s),
        ),
        (
            "latency_ms",
            r.latency_ms
                .as_ref()
                .map_or_else(|| "none".to_owned(), ToString::to_string),
        ),
        (
            "blocks",
            format!(
                "{} (heights {}..{}, at most {} txs)",
                r.blocks,
                r.start_height + 1,
                r.end_height,
                r.block_txs_max
            ),
        ),
        ("drained", r.drained.to_string()),
    ];
    let mut rows: Vec<(String, String)> =
        rows.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    for (reason, message) in &r.error_messages {
        rows.push((format!("error.{reason}"), message.clone()));
    }
    output::print(out, r, &rows);
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

    #[test]
    fn percentiles_use_the_nearest_rank() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 50.0), Some(7));
        assert_eq!(percentile(&[7], 100.0), Some(7));
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&hundred, 50.0), Some(50));
        assert_eq!(percentile(&hundred, 90.0), Some(90));
        assert_eq!(percentile(&hundred, 99.0), Some(99));
        assert_eq!(percentile(&hundred, 100.0), Some(100));
        assert_eq!(percentile(&hundred, 0.1), Some(1));
        let ten: Vec<u64> = (1..=10).map(|x| x * 10).collect();
        assert_eq!(percentile(&ten, 50.0), Some(50));
        assert_eq!(percentile(&ten, 99.0), Some(100));
        assert_eq!(percentile(&[1, 2, 3], 50.0), Some(2));
    }

    #[test]
    fn pacing_sends_the_first_at_once_and_the_kth_at_k_over_rate() {
        assert_eq!(due_by(Duration::ZERO, 100), 1);
        assert_eq!(due_by(Duration::from_millis(9), 100), 1);
        assert_eq!(due_by(Duration::from_millis(10), 100), 2);
        assert_eq!(due_by(Duration::from_secs(1), 100), 101);
        assert_eq!(due_by(Duration::from_secs(30), 500), 15_001);
        assert_eq!(due_at(0, 100), Duration::ZERO);
        assert_eq!(due_at(1, 100), Duration::from_millis(10));
        assert_eq!(due_at(1, 3), Duration::from_nanos(333_333_334));
        for rate in [1, 3, 7, 500, 99_999, RATE_MAX] {
            for k in [0, 1, 2, 10, 1_000, 123_456] {
                let at = due_at(k, rate);
                assert_eq!(due_by(at, rate), k + 1, "rate {rate} k {k}");
                if !at.is_zero() {
                    assert_eq!(due_by(at - Duration::from_nanos(1), rate), k);
                }
            }
        }
    }

    #[test]
    fn plans_split_the_rate_over_workers_and_bound_the_presigned_count() {
        let plan = Plan::new(256, 30, 500, 4);
        assert_eq!(plan.workers, 4);
        assert_eq!(plan.total_txs(), 256 * 59);
        assert!(plan.total_txs() >= 15_000);
        assert_eq!((0..4).map(|w| plan.worker_rate(w)).sum::<u32>(), 500);
        let odd = Plan::new(256, 1, 7, 4);
        assert_eq!(
            (0..4).map(|w| odd.worker_rate(w)).collect::<Vec<_>>(),
            [2, 2, 2, 1]
        );
        // Fewer workers than tx/s or than senders: none is left idle.
        let slow = Plan::new(256, 10, 2, 4);
        assert_eq!(slow.workers, 2);
        assert!((0..slow.workers).all(|w| slow.worker_rate(w) == 1));
        assert_eq!(Plan::new(3, 10, 0, 8).workers, 3);
        // Unlimited: a bounded number, spread over the senders.
        let unlimited = Plan::new(256, 30, 0, 4);
        assert_eq!(unlimited.total_txs(), 256 * 1758);
        assert!(unlimited.total_txs() >= 30 * UNLIMITED_PRESIGN_PER_S);
        let long = Plan::new(1, DURATION_S_MAX, 0, 4);
        assert_eq!(long.total_txs(), TXS_MAX);
        assert_eq!(
            long.funding_per_sender(),
            TXS_MAX * (TRANSFER_AMOUNT + TRANSFER_FEE)
        );
    }

    #[test]
    fn refusals_for_a_full_pool_are_retried_and_others_give_the_sender_up() {
        let refusal = |code: i64, reason: &str| -> Result<Value, RpcFailure> {
            Err(RpcFailure {
                code,
                message: "refused".into(),
                data: Some(json!({ "reason": reason })),
            })
        };
        assert_eq!(verdict(&Ok(json!({})), false), Verdict::Accepted);
        assert_eq!(
            verdict(&refusal(codes::TX_POOL_FULL, "pool_full"), false),
            Verdict::Retry("pool_full".into())
        );
        assert_eq!(
            verdict(&refusal(codes::TX_SENDER_FULL, "sender_full"), false),
            Verdict::Retry("sender_full".into())
        );
        assert_eq!(
            verdict(&refusal(codes::TX_DUPLICATE, "duplicate"), false),
            Verdict::Accepted
        );
        assert_eq!(
            verdict(&refusal(codes::TX_STALE_NONCE, "stale_nonce"), false),
            Verdict::Fatal("stale_nonce".into())
        );
        assert_eq!(
            verdict(&refusal(codes::TX_STALE_NONCE, "stale_nonce"), true),
            Verdict::Accepted
        );
        let internal = Err(RpcFailure {
            code: codes::INTERNAL_ERROR,
            message: "boom".into(),
            data: None,
        });
        assert_eq!(
            verdict(&internal, false),
            Verdict::Fatal("rpc_error_32603".into())
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        assert_eq!(backoff(1), RETRY_BACKOFF_BASE);
        assert_eq!(backoff(2), RETRY_BACKOFF_BASE * 2);
        assert_eq!(backoff(3), RETRY_BACKOFF_BASE * 4);
        assert_eq!(backoff(RETRIES_MAX), RETRY_BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), RETRY_BACKOFF_MAX);
    }

    #[test]
    fn sender_keys_follow_from_the_seed() {
        let address = |seed, i| sender_key(seed, i).public().address();
        assert_eq!(address(1, 0), address(1, 0));
        assert_ne!(address(1, 0), address(1, 1));
        assert_ne!(address(1, 0), address(2, 0));
    }
}
