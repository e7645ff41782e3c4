//! The nemesis's clients: several senders submitting transfers to random nodes throughout a
//! run, as a wallet would — most calls wait for the commit (`submit_tx` mode `commit`, what
//! `cairn tx transfer --wait` does), some only for admission; on no answer they retry the
//! same transaction on another node, and after a failure they ask a node for the sender's
//! pending nonce and go on from there. Every call and its outcome goes into the history the
//! checker reads.
//!
//! A sender's transaction for a nonce is always the same one (recipient and amount derive from
//! the sender and the nonce), so a retry is the same transaction and the history names each
//! (sender, nonce) with one hash.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_ledger::crypto::Keypair;
use cairn_ledger::tx::{Payload, Transaction};
use cairn_ledger::{Address, Amount, Hash, Nonce};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::testnet::rpc_call;

/// Where a transfer ended up, as the client saw it.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The node answered that it committed, at this height: an acknowledged transfer.
    Committed { height: u64 },
    /// Admitted to the node's mempool (mode `mempool`): nothing promised.
    Admitted,
    /// The node refused it, with this JSON-RPC error code and message.
    Refused { code: i64, message: String },
    /// No answer (node down, hung, or the call timed out): it may or may not commit.
    Unknown { error: String },
}

/// One call in the history.
#[derive(Clone, Debug)]
pub struct Op {
    /// Milliseconds since the run started.
    pub at_ms: u64,
    /// The sender's index in [`Clients::keys`].
    pub sender: usize,
    pub nonce: u64,
    pub hash: Hash,
    /// The node asked.
    pub node: usize,
    /// Whether the call waited for the commit.
    pub wait: bool,
    pub outcome: Outcome,
}

impl Op {
    pub fn to_json(&self) -> Value {
        let (outcome, detail) = match &self.outcome {
            Outcome::Committed { height } => ("committed", json!({ "height": height })),
            Outcome::Admitted => ("admitted", json!({})),
            Outcome::Refused { code, message } => {
                ("refused", json!({ "code": code, "message": message }))
            }
            Outcome::Unknown { error } => ("unknown", json!({ "error": error })),
        };
        json!({
            "at_ms": self.at_ms,
            "sender": self.sender,
            "nonce": self.nonce,
            "hash": self.hash.to_string(),
            "node": self.node,
            "wait": self.wait,
            "outcome": outcome,
            "detail": detail,
        })
    }
}

/// Tries of one transaction on different nodes before the sender asks for its nonce again.
const TRIES_PER_TX: usize = 3;
/// Most transactions a sender submits in one go (the last one waits for the commit).
const BURST_MAX: u64 = 3;
/// Longest pause between a sender's bursts.
const PAUSE_MAX: Duration = Duration::from_millis(150);
/// Recipients besides the senders themselves.
const RECIPIENTS: usize = 8;
const FEE: Amount = Amount(1);
/// Every sender's starting balance, paid by the faucet: enough for any run's transfers.
pub const FUNDING: Amount = Amount(1_000_000_000);
/// Every oracle operator's starting balance: its stake and the fees of a long run.
pub const OPERATOR_FUNDING: Amount = Amount(10_000_000);

/// The senders of one run and the history they write.
pub struct Clients {
    pub chain_id: String,
    /// Sender 0 is the faucet (it funds the others before the faults start).
    pub keys: Vec<Keypair>,
    /// The oracle publishers' keys: the faucet funds them after the senders.
    pub operators: Vec<Keypair>,
    pub recipients: Vec<Address>,
    pub history: Mutex<Vec<Op>>,
    pub started: Instant,
    pub stop: AtomicBool,
    /// The nodes' RPC URLs.
    pub nodes: Vec<String>,
}

impl Clients {
    pub fn new(
        chain_id: &str,
        faucet: Keypair,
        senders: usize,
        operators: usize,
        seed: u64,
        nodes: Vec<String>,
    ) -> Clients {
        let derive = |tag: &[u8], i: usize| {
            Keypair::from_secret(
                &Hash::tagged(tag, &[&seed.to_le_bytes(), &(i as u64).to_le_bytes()]).0,
            )
        };
        let mut keys = vec![faucet];
        keys.extend((0..senders).map(|i| derive(b"cairn/nemesis-sender", i)));
        let operators = (0..operators)
            .map(|i| derive(b"cairn/nemesis-operator", i))
            .collect();
        let recipients = (0..RECIPIENTS)
            .map(|i| derive(b"cairn/nemesis-recipient", i).public().address())
            .collect();
        Clients {
            chain_id: chain_id.to_owned(),
            keys,
            operators,
            recipients,
            history: Mutex::new(Vec::new()),
            started: Instant::now(),
            stop: AtomicBool::new(false),
            nodes,
        }
    }

    /// Every address a transfer of this run can touch.
    pub fn addresses(&self) -> Vec<Address> {
        let mut all: Vec<Address> = self
            .keys
            .iter()
            .chain(&self.operators)
            .map(|k| k.public().address())
            .collect();
        all.extend(&self.recipients);
        all
    }

    /// The one transaction `sender` signs for `nonce`. The faucet's first ones fund the
    /// senders, the next ones the oracle operators; every other pays a recipient or another
    /// sender a small amount.
    pub fn transaction(&self, sender: usize, nonce: u64) -> Transaction {
        let senders = self.keys.len() - 1;
        let funded = nonce as usize;
        let payload = if sender == 0 && funded < senders {
            Payload::Transfer {
                to: self.keys[funded + 1].public().address(),
                amount: FUNDING,
            }
        } else if sender == 0 && funded < senders + self.operators.len() {
            Payload::Transfer {
                to: self.operators[funded - senders].public().address(),
                amount: OPERATOR_FUNDING,
            }
        } else {
            let pick = Hash::tagged(
                b"cairn/nemesis-transfer",
                &[&(sender as u64).to_le_bytes(), &nonce.to_le_bytes()],
            );
            let choice = u64::from_le_bytes(pick.0[..8].try_into().expect("8 bytes"));
            let targets = self.recipients.len() + self.keys.len();
            let i = (choice % targets as u64) as usize;
            let to = match self.recipients.get(i) {
                Some(a) => *a,
                None => self.keys[i - self.recipients.len()].public().address(),
            };
            Payload::Transfer {
                to,
                amount: Amount(1 + choice % 97),
            }
        };
        Transaction::new_signed(
            &self.chain_id,
            &self.keys[sender],
            Nonce(nonce),
            FEE,
            payload,
        )
    }

    fn record(&self, op: Op) {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(op);
    }

    /// Submits `sender`'s transaction for `nonce` to `node`; records and returns the outcome.
    pub fn submit(&self, sender: usize, nonce: u64, node: usize, wait: bool) -> Outcome {
        let tx = self.transaction(sender, nonce);
        let hex: String = tx.encode().iter().map(|b| format!("{b:02x}")).collect();
        let mode = if wait { "commit" } else { "mempool" };
        let outcome = match rpc_call(
            &self.nodes[node],
            "submit_tx",
            json!({ "tx": hex, "mode": mode }),
        ) {
            Ok(v) if wait => match v["height"].as_u64() {
                Some(height) => Outcome::Committed { height },
                None => Outcome::Unknown {
                    error: format!("a commit answer without a height: {v}"),
                },
            },
            Ok(_) => Outcome::Admitted,
            Err(Value::String(error)) => Outcome::Unknown { error },
            Err(e) => Outcome::Refused {
                code: e["code"].as_i64().unwrap_or(0),
                message: e["message"].as_str().unwrap_or("").to_owned(),
            },
        };
        self.record(Op {
            at_ms: self.started.elapsed().as_millis() as u64,
            sender,
            nonce,
            hash: tx.hash(),
            node,
            wait,
            outcome: outcome.clone(),
        });
        outcome
    }

    /// `sender`'s pending nonce as `node` sees it.
    fn pending_nonce(&self, sender: usize, node: usize) -> Option<u64> {
        let address = self.keys[sender].public().address();
        let v = rpc_call(
            &self.nodes[node],
            "account",
            json!({ "address": address.to_string() }),
        )
        .ok()?;
        v["pending_nonce"].as_u64()
    }

    /// One sender's loop until [`Clients::stop`].
    pub fn run_sender(self: &Arc<Clients>, sender: usize, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (sender as u64) << 32);
        while !self.stop.load(Ordering::Relaxed) {
            let node = rng.gen_range(0..self.nodes.len());
            let Some(first) = self.pending_nonce(sender, node) else {
                std::thread::sleep(PAUSE_MAX);
                continue;
            };
            let burst = rng.gen_range(1..=BURST_MAX);
            // Unconfirmed ones first, on the node that knows the pending nonce (another would
            // refuse the gap); the last waits for its commit, retried on other nodes.
            for nonce in first..first + burst - 1 {
                if !matches!(self.submit(sender, nonce, node, false), Outcome::Admitted) {
                    break;
                }
            }
            let last = first + burst - 1;
            let mut at = node;
            for _ in 0..TRIES_PER_TX {
                if self.stop.load(Ordering::Relaxed) {
                    break;
                }
                match self.submit(sender, last, at, true) {
                    Outcome::Unknown { .. } => {
                        at = (at + 1 + rng.gen_range(0..self.nodes.len() - 1)) % self.nodes.len()
                    }
                    _ => break,
                }
            }
            std::thread::sleep(PAUSE_MAX.mul_f64(rng.r#gen::<f64>()));
        }
    }

    pub fn ops(&self) -> Vec<Op> {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
