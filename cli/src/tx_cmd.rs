//! `cairn tx …`: sign transactions with a key file and submit them to a node's RPC.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use cairn_ledger::tx::{MEMO_BYTES_MAX, Payload, Transaction};
use cairn_ledger::{Address, Amount, Hash, Nonce, keys};
use cairn_node::http::rpc::{COMMIT_WAIT_MAX, codes};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{COMMIT_CALL_MARGIN, Client, ClientError, RpcArgs};
use crate::output::{self, Output};
use crate::submit::{Admitted, ChainId, NextNonce, check_hash};

/// The fee a transfer pays unless `--fee` says otherwise, in the smallest unit.
pub const FEE_DEFAULT: u64 = 1;
/// Most confirmations `--confirmations` may ask for.
pub const CONFIRMATIONS_MAX: u64 = 10_000;
/// Longest `--confirmations` waits after the commit before giving up.
pub const CONFIRMATIONS_WAIT_MAX: Duration = Duration::from_secs(600);
/// How often `--confirmations` asks the node.
const CONFIRMATIONS_POLL: Duration = Duration::from_millis(500);

#[derive(Subcommand)]
pub enum TxCommand {
    /// Sign a transfer with a key file and submit it to a node.
    ///
    /// The chain id comes from the node's `status` and, unless --nonce is given, the nonce
    /// from its `account` answer (`pending_nonce`: the sender's committed nonce plus its
    /// transactions pending in that node's mempool).
    Transfer(TransferArgs),
}

#[derive(Args)]
pub struct TransferArgs {
    /// The sender's key file (as `cairn keys generate` writes it).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The recipient's address: 40 hex digits.
    #[arg(long, value_name = "ADDR")]
    to: Address,
    /// How much to send, in the smallest unit.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    amount: u64,
    /// The fee, in the smallest unit; it goes to the block's producer. From the `fee-floor`
    /// upgrade on, at least 1.
    #[arg(long, value_name = "N", default_value_t = FEE_DEFAULT, allow_negative_numbers = true)]
    fee: u64,
    /// A note for the recipient, stored with the transfer (at most 256 bytes of UTF-8). Only
    /// valid once the chain has activated the `memo` upgrade; before that the node refuses it
    /// (`cairn upgrades` and `cairn status` show what is active).
    #[arg(long, value_name = "TEXT")]
    memo: Option<String>,
    /// The nonce to sign with, instead of the node's `pending_nonce` for the sender. Give it
    /// to replace a pending transaction (same nonce, higher fee), or when the sender's
    /// pending transactions sit in another node's mempool.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    nonce: Option<u64>,
    /// Wait until the transaction is committed (the node waits up to 30 s) and print the
    /// block it landed in. Without --nonce every run signs a new transfer; to wait again for
    /// one already submitted, rerun the same command with the --nonce it printed: the same
    /// signed transaction is sent, and the node reports its commit instead of admitting it
    /// twice.
    #[arg(long)]
    wait: bool,
    /// With --wait: after the commit, wait until the transaction has N confirmations (its
    /// block and N − 1 on top of it; 1 is the commit itself). Useful on proof-of-work
    /// networks, where a block can still be reorganised away; waits up to 10 minutes.
    #[arg(long, value_name = "N", requires = "wait", value_parser = clap::value_parser!(u64).range(1..=CONFIRMATIONS_MAX))]
    confirmations: Option<u64>,
    #[command(flatten)]
    rpc: RpcArgs,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

/// What `submit_tx` in mode `commit` answers (the `tx` method's committed form).
#[derive(Deserialize)]
struct Committed {
    hash: Hash,
    status: String,
    height: u64,
    index: u32,
    block: Hash,
    receipt: Value,
    #[serde(default)]
    confirmations: u64,
}

/// The parts of the `tx` answer `--confirmations` follows.
#[derive(Deserialize)]
struct TxState {
    status: String,
    #[serde(default)]
    height: u64,
    block: Option<Hash>,
    #[serde(default)]
    confirmations: u64,
}

/// Polls `tx` until `hash` has `wanted` confirmations: (height, block, confirmations). A
/// reorganisation may take it out of the chain for a while (back to pending); the wait goes
/// on until it is confirmed again or [`CONFIRMATIONS_WAIT_MAX`] has passed.
fn wait_confirmations(client: &Client, hash: &Hash, wanted: u64) -> Result<(u64, Hash, u64)> {
    let short = &hash.to_string()[..16];
    let spinner = crate::output::spinner(format!("waiting for {wanted} confirmations of {short}…"));
    let deadline = Instant::now() + CONFIRMATIONS_WAIT_MAX;
    let mut last = 0;
    loop {
        let state: TxState = match client.call("tx", json!({ "hash": hash })) {
            Ok(s) => s,
            // Reorganised out of the chain and not (yet) back in this node's mempool: it may
            // come back by gossip from the node that mined it, so keep waiting.
            Err(ClientError::Rpc { code, .. }) if code == codes::NOT_FOUND => TxState {
                status: "unknown to the node".to_owned(),
                height: 0,
                block: None,
                confirmations: 0,
            },
            Err(e) => return Err(e.into()),
        };
        if state.status == "committed" {
            spinner.set_message(format!(
                "{short}…: {} of {wanted} confirmations",
                state.confirmations
            ));
            last = state.confirmations;
            if let (true, Some(block)) = (state.confirmations >= wanted, state.block) {
                spinner.finish_and_clear();
                return Ok((state.height, block, state.confirmations));
            }
        } else {
            spinner.set_message(format!(
                "{short}… is {} again (a reorganisation)",
                state.status
            ));
        }
        if Instant::now() >= deadline {
            spinner.finish_and_clear();
            bail!(
                "transaction {hash} has {last} of {wanted} confirmations after {} s; check with \
                 `cairn query tx {hash}`",
                CONFIRMATIONS_WAIT_MAX.as_secs()
            );
        }
        std::thread::sleep(CONFIRMATIONS_POLL);
    }
}

/// What `tx transfer` prints; `height`, `index`, `block` and `receipt` only after `--wait`.
#[derive(Serialize)]
struct TransferReport {
    hash: Hash,
    status: String,
    from: Address,
    to: Address,
    amount: u64,
    fee: u64,
    nonce: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    memo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    block: Option<Hash>,
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    confirmations: Option<u64>,
}

pub fn run(command: TxCommand) -> Result<()> {
    match command {
        TxCommand::Transfer(a) => transfer(a),
    }
}

fn transfer(a: TransferArgs) -> Result<()> {
    if let Some(memo) = &a.memo
        && memo.len() > MEMO_BYTES_MAX
    {
        bail!(
            "--memo is {} bytes, over the limit of {MEMO_BYTES_MAX}; shorten it",
            memo.len()
        );
    }
    let key = keys::read_key_file(&a.key)?;
    let from = key.public().address();
    let client = Client::new(&a.rpc);
    let chain: ChainId = client.call("status", json!({}))?;
    let nonce = match a.nonce {
        Some(nonce) => nonce,
        None => {
            client
                .call::<NextNonce>("account", json!({ "address": from }))?
                .pending_nonce
        }
    };
    let tx = Transaction::new_signed(
        &chain.chain_id,
        &key,
        Nonce(nonce),
        Amount(a.fee),
        match &a.memo {
            None => Payload::Transfer {
                to: a.to,
                amount: Amount(a.amount),
            },
            Some(memo) => Payload::TransferWithMemo {
                to: a.to,
                amount: Amount(a.amount),
                memo: memo.clone(),
            },
        },
    );
    let hash = tx.hash();
    let encoded = hex::encode(tx.encode());
    let mut report = TransferReport {
        hash,
        status: "pending".to_owned(),
        from,
        to: a.to,
        amount: a.amount,
        fee: a.fee,
        nonce,
        memo: a.memo.clone(),
        height: None,
        index: None,
        block: None,
        receipt: None,
        confirmations: None,
    };
    if a.wait {
        // Short enough for one line of an 80-column terminal.
        let short = &hash.to_string()[..16];
        let spinner = crate::output::spinner(format!("waiting for transaction {short}… to commit"));
        let answer = client.call_within::<Committed>(
            "submit_tx",
            json!({ "tx": encoded, "mode": "commit" }),
            COMMIT_WAIT_MAX + COMMIT_CALL_MARGIN,
        );
        spinner.finish_and_clear();
        let committed = answer.map_err(|e| explain_wait_failure(e, &hash, nonce))?;
        check_hash(hash, committed.hash)?;
        report.status = committed.status;
        report.height = Some(committed.height);
        report.index = Some(committed.index);
        report.block = Some(committed.block);
        report.receipt = Some(committed.receipt);
        report.confirmations = Some(committed.confirmations);
        if let Some(wanted) = a.confirmations {
            let (height, block, confirmations) = wait_confirmations(&client, &hash, wanted)?;
            report.height = Some(height);
            report.block = Some(block);
            report.confirmations = Some(confirmations);
        }
    } else {
        let admitted: Admitted =
            client.call("submit_tx", json!({ "tx": encoded, "mode": "mempool" }))?;
        check_hash(hash, admitted.hash)?;
    }
    print_report(&report, a.output);
    Ok(())
}

/// Turns the ways a `--wait` can end without a commit into what the user can do next.
fn explain_wait_failure(e: ClientError, hash: &Hash, nonce: u64) -> anyhow::Error {
    let again = format!(
        "check with `cairn query tx {hash}`, or rerun this command with --nonce {nonce} to wait \
         for this same transaction"
    );
    match &e {
        // The node's message names the transaction and says why it stopped waiting.
        ClientError::Rpc { code, message, .. } if *code == codes::COMMIT_TIMEOUT => {
            anyhow::anyhow!("{message}: {again}")
        }
        ClientError::TimedOut { .. } => {
            anyhow::anyhow!("{e}; transaction {hash} may have been admitted: {again}")
        }
        _ => e.into(),
    }
}

fn print_report(report: &TransferReport, out: Output) {
    let mut rows = vec![
        ("hash".to_owned(), report.hash.to_string()),
        ("status".to_owned(), report.status.clone()),
        ("from".to_owned(), report.from.to_string()),
        ("to".to_owned(), report.to.to_string()),
        ("amount".to_owned(), report.amount.to_string()),
        ("fee".to_owned(), report.fee.to_string()),
        ("nonce".to_owned(), report.nonce.to_string()),
    ];
    if let Some(memo) = &report.memo {
        rows.push(("memo".to_owned(), memo.clone()));
    }
    if let (Some(height), Some(index), Some(block)) = (report.height, report.index, report.block) {
        rows.push(("height".to_owned(), height.to_string()));
        rows.push(("index".to_owned(), index.to_string()));
        rows.push(("block".to_owned(), block.to_string()));
    }
    if let Some(c) = report.confirmations {
        rows.push(("confirmations".to_owned(), c.to_string()));
    }
    if let Some(receipt) = &report.receipt {
        output::value_rows("receipt", receipt, &mut rows);
    }
    output::print(out, report, &rows);
}
