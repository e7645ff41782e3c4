//! Funding a `bench tps` run: tops up from the `--key` account every sender that holds less
//! than the plan needs, and reads each sender's next nonce on the node it submits to. Never
//! sends a sender more than the mempool admits pending from one account, and never waits
//! without a bound.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cairn_ledger::crypto::Keypair;
use cairn_ledger::tx::{Payload, Transaction};
use cairn_ledger::{Address, Amount, Nonce};
use indicatif::ProgressBar;
use serde::Deserialize;
use serde_json::{Value, json};

use super::calls_ok;
use super::plan::{Plan, TRANSFER_FEE};
use crate::client::{BATCH_REQUESTS_MAX, Client};

/// Faucet transfers submitted before waiting for them to commit (mempool: 256 per sender).
pub const FUNDING_CHUNK: usize = 200;
/// Longest wait for one chunk of funding transfers to commit.
pub const FUNDING_WAIT_MAX: Duration = Duration::from_secs(60);
/// How often the faucet's nonce is polled while funding.
const FUNDING_POLL: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Deserialize)]
struct AccountInfo {
    balance: u64,
    nonce: u64,
    pending_nonce: u64,
}

/// `account` for every address, in batches; answers in the same order.
fn accounts(conn: &Client, addresses: &[Address]) -> Result<Vec<AccountInfo>> {
    let mut out = Vec::with_capacity(addresses.len());
    for chunk in addresses.chunks(BATCH_REQUESTS_MAX) {
        out.extend(calls_ok::<AccountInfo>(
            conn,
            "account",
            chunk.iter().map(|a| json!({ "address": a })),
        )?);
    }
    Ok(out)
}

/// Funds every sender that holds less than the run needs from the faucet, in chunks the
/// mempool admits from one sender, waiting for each chunk to commit.
pub(super) fn fund(
    conn: &Client,
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
            calls_ok::<Value>(conn, "submit_tx", txs)
                .context("a funding transfer from --key was refused")?;
        }
        let deadline = Instant::now() + FUNDING_WAIT_MAX;
        while accounts(conn, &[faucet_address])?[0].nonce < nonce {
            if Instant::now() > deadline {
                bail!(
                    "funding transfers from {faucet_address} did not commit within {} s; is the \
                     network making blocks? (cairn status --rpc {})",
                    FUNDING_WAIT_MAX.as_secs(),
                    conn.url()
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
pub(super) fn funded_nonces(
    conns: &[Client],
    addresses: &[Address],
    plan: &Plan,
) -> Result<Vec<u64>> {
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
                        conn.url(),
                        addresses[*s],
                        acct.balance,
                        FUNDING_WAIT_MAX.as_secs(),
                        conn.url()
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
