//! `cairn query …`: read accounts, blocks and transactions from a node's RPC.

use std::str::FromStr;

use anyhow::Result;
use cairn_ledger::{Address, Hash};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::client::{Client, RpcArgs};
use crate::output::{self, Output};

#[derive(Subcommand)]
pub enum QueryCommand {
    /// An account's balance and nonce (an address never used shows zeros).
    Account(AccountArgs),
    /// A block by height or hash; the tip when neither is given.
    Block(BlockArgs),
    /// A transaction by hash: pending in the node's mempool, or committed (where, and its
    /// receipt).
    Tx(TxArgs),
}

#[derive(Args)]
pub struct AccountArgs {
    /// The account's address: 40 hex digits.
    #[arg(value_name = "ADDR")]
    address: Address,
    #[command(flatten)]
    rpc: RpcArgs,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Args)]
pub struct BlockArgs {
    /// A height (a number) or a block hash (64 hex digits); the tip if omitted.
    #[arg(value_name = "HEIGHT|HASH")]
    block: Option<BlockRef>,
    #[command(flatten)]
    rpc: RpcArgs,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Args)]
pub struct TxArgs {
    /// The transaction's hash: 64 hex digits.
    #[arg(value_name = "HASH")]
    hash: Hash,
    #[command(flatten)]
    rpc: RpcArgs,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

/// A block named by height or by hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockRef {
    Height(u64),
    Hash(Hash),
}

impl FromStr for BlockRef {
    type Err = String;

    fn from_str(s: &str) -> Result<BlockRef, String> {
        // Shorter than a hash and all digits: a height.
        if s.len() < 2 * Hash::LEN && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse()
                .map(BlockRef::Height)
                .map_err(|e| format!("not a height: {e}"));
        }
        s.parse()
            .map(BlockRef::Hash)
            .map_err(|e: String| format!("not a height (a number) or a block hash: {e}"))
    }
}

/// The `account` answer: `address`, `balance`, `nonce`, then whatever else the node reports.
#[derive(Serialize, Deserialize)]
struct Account {
    address: Address,
    balance: u64,
    nonce: u64,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// The `block` answer: the fields scripts rely on, then whatever else the node reports.
#[derive(Serialize, Deserialize)]
struct Block {
    height: u64,
    hash: Hash,
    parent: Hash,
    timestamp: u64,
    state_root: Hash,
    transactions: Vec<Hash>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// The `tx` answer: `hash` and `status` (`pending` or `committed`), then, when committed,
/// the transaction's fields, where it landed and its receipt.
#[derive(Serialize, Deserialize)]
struct Tx {
    hash: Hash,
    status: String,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

pub fn run(command: QueryCommand) -> Result<()> {
    match command {
        QueryCommand::Account(a) => account(a),
        QueryCommand::Block(a) => block(a),
        QueryCommand::Tx(a) => tx(a),
    }
}

fn account(a: AccountArgs) -> Result<()> {
    let account: Account = Client::new(&a.rpc).call("account", json!({ "address": a.address }))?;
    let mut rows = vec![
        ("address".to_owned(), account.address.to_string()),
        ("balance".to_owned(), account.balance.to_string()),
        ("nonce".to_owned(), account.nonce.to_string()),
    ];
    extra_rows(&account.extra, &mut rows);
    output::print(a.output, &account, &rows);
    Ok(())
}

fn block(a: BlockArgs) -> Result<()> {
    let params = match a.block {
        Some(BlockRef::Height(height)) => json!({ "height": height }),
        Some(BlockRef::Hash(hash)) => json!({ "hash": hash }),
        None => json!({}),
    };
    let block: Block = Client::new(&a.rpc).call("block", params)?;
    let mut rows = vec![
        ("height".to_owned(), block.height.to_string()),
        ("hash".to_owned(), block.hash.to_string()),
        ("parent".to_owned(), block.parent.to_string()),
        ("timestamp".to_owned(), block.timestamp.to_string()),
        ("state_root".to_owned(), block.state_root.to_string()),
    ];
    extra_rows(&block.extra, &mut rows);
    rows.push((
        "transactions".to_owned(),
        block.transactions.len().to_string(),
    ));
    for (i, hash) in block.transactions.iter().enumerate() {
        rows.push((format!("transactions.{i}"), hash.to_string()));
    }
    output::print(a.output, &block, &rows);
    Ok(())
}

fn tx(a: TxArgs) -> Result<()> {
    let tx: Tx = Client::new(&a.rpc).call("tx", json!({ "hash": a.hash }))?;
    let mut rows = vec![
        ("hash".to_owned(), tx.hash.to_string()),
        ("status".to_owned(), tx.status.clone()),
    ];
    extra_rows(&tx.extra, &mut rows);
    output::print(a.output, &tx, &rows);
    Ok(())
}

fn extra_rows(extra: &Map<String, Value>, rows: &mut Vec<(String, String)>) {
    for (key, value) in extra {
        output::value_rows(key, value, rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_named_by_height_or_by_hash() {
        assert_eq!("0".parse(), Ok(BlockRef::Height(0)));
        assert_eq!("42".parse(), Ok(BlockRef::Height(42)));
        let hash = Hash([0x11; 32]);
        assert_eq!(hash.to_string().parse(), Ok(BlockRef::Hash(hash)));
        assert_eq!(format!("0x{hash}").parse(), Ok(BlockRef::Hash(hash)));
        assert!(
            "99999999999999999999999"
                .parse::<BlockRef>()
                .unwrap_err()
                .contains("not a height")
        );
        for bad in ["", "-1", "1.5", "tip", "abc"] {
            let e = bad.parse::<BlockRef>().unwrap_err();
            assert!(e.contains("64 hex digits"), "{bad}: {e}");
        }
    }
}
