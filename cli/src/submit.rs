//! Signing a transaction with a key file and submitting it over the RPC, for commands that
//! send transactions on someone's behalf (oracle staking, the publisher).

use anyhow::{Result, bail};
use cairn_ledger::crypto::Keypair;
use cairn_ledger::tx::{Payload, Transaction};
use cairn_ledger::{Address, Amount, Hash, Nonce};
use cairn_node::http::rpc::COMMIT_WAIT_MAX;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::{COMMIT_CALL_MARGIN, Client};

/// The part of the `status` answer that signing needs.
#[derive(Deserialize)]
pub struct ChainId {
    pub chain_id: String,
}

/// The part of the `account` answer that signing needs.
#[derive(Deserialize)]
pub struct NextNonce {
    pub pending_nonce: u64,
}

/// What `submit_tx` in mode `mempool` answers.
#[derive(Deserialize)]
pub struct Admitted {
    pub hash: Hash,
}

/// What `submit_tx` in mode `commit` answers.
#[derive(Clone, Debug, Deserialize)]
pub struct Committed {
    pub hash: Hash,
    pub height: u64,
    pub receipt: Value,
}

impl Committed {
    /// The reason the chain refused the transaction's action, if it did (it still landed and
    /// paid its fee).
    pub fn refused(&self) -> Option<String> {
        self.receipt["status"]["refused"]["reason"]
            .as_str()
            .map(str::to_owned)
    }
}

/// A key that signs transactions for one chain, through one node.
pub struct Signer {
    pub client: Client,
    key: Keypair,
    chain_id: String,
}

impl Signer {
    /// Asks the node for its chain id, so every transaction is bound to the right network.
    pub fn new(client: Client, key: Keypair) -> Result<Signer> {
        let chain: ChainId = client.call("status", json!({}))?;
        Ok(Signer {
            client,
            key,
            chain_id: chain.chain_id,
        })
    }

    pub fn address(&self) -> Address {
        self.key.public().address()
    }

    /// Signs `payload` with the node's `pending_nonce` for this key and submits it: returns
    /// once admitted to the mempool, or with `wait`, once committed.
    pub fn submit(
        &self,
        payload: Payload,
        fee: u64,
        wait: bool,
    ) -> Result<(Hash, Option<Committed>)> {
        let nonce: NextNonce = self
            .client
            .call("account", json!({ "address": self.address() }))?;
        let tx = Transaction::new_signed(
            &self.chain_id,
            &self.key,
            Nonce(nonce.pending_nonce),
            Amount(fee),
            payload,
        );
        let hash = tx.hash();
        let encoded = hex::encode(tx.encode());
        if wait {
            let committed: Committed = self.client.call_within(
                "submit_tx",
                json!({ "tx": encoded, "mode": "commit" }),
                COMMIT_WAIT_MAX + COMMIT_CALL_MARGIN,
            )?;
            check_hash(hash, committed.hash)?;
            Ok((hash, Some(committed)))
        } else {
            let admitted: Admitted = self
                .client
                .call("submit_tx", json!({ "tx": encoded, "mode": "mempool" }))?;
            check_hash(hash, admitted.hash)?;
            Ok((hash, None))
        }
    }
}

pub fn check_hash(ours: Hash, theirs: Hash) -> Result<()> {
    if ours != theirs {
        bail!("the node answered for transaction {theirs}, not the one submitted ({ours})");
    }
    Ok(())
}
