//! The mempool: transactions waiting for a block, bounded by count and bytes.
//!
//! Rules, checked on admission against the committed state:
//! - well-formed, for this chain, correctly signed, not already pending;
//! - valid under the protocol rules of the next block's height (fee floor, transaction kinds:
//!   `cairn_ledger::rules`); when an upgrade changes them, whatever the new rules refuse is
//!   dropped ([`Mempool::set_rules`]);
//! - per sender, pending nonces form one gap-free run starting at the account's nonce
//!   (a transaction for a nonce already pending replaces it only with a strictly higher fee);
//! - the sender can afford every pending transaction up to and including this one;
//! - at most `txs_per_sender_max` pending per sender.
//!
//! When the pool is full, the lowest-fee transaction goes first (with every later nonce of its
//! sender, which could no longer execute), but only for a transaction that pays more.
//! After each commit, included and no-longer-valid transactions are dropped.
//!
//! Owns no I/O: state comes in through `StateReader`, and the caller decides when to gossip.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cairn_ledger::crypto::SignatureError;
use cairn_ledger::rules::{GENESIS_RULES, RuleError, Rules};
use cairn_ledger::state::{ReadError, StateReader};
use cairn_ledger::tx::{TX_BYTES_MAX, Transaction, tx_id};
use cairn_ledger::{Address, Amount, Hash, Nonce};

use crate::config::MempoolSection;

/// Why a transaction was not admitted. `reason()` is the metrics label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("transaction is {len} bytes, over the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("transaction {0} is already pending")]
    Duplicate(Hash),
    #[error("transaction is for chain {found:?} but this node runs {expected:?}")]
    WrongChain { expected: String, found: String },
    #[error("signature is invalid: {0}")]
    BadSignature(SignatureError),
    #[error("nonce {found} was already used by {sender}; its next nonce is {next}")]
    StaleNonce {
        sender: Address,
        next: Nonce,
        found: Nonce,
    },
    #[error("nonce {found} skips ahead; the next nonce {sender} can use is {next}")]
    NonceGap {
        sender: Address,
        next: Nonce,
        found: Nonce,
    },
    #[error(
        "a transaction with nonce {nonce} is pending with fee {pending_fee}; a replacement must pay more"
    )]
    ReplacementUnderpriced { nonce: Nonce, pending_fee: Amount },
    #[error(
        "{sender} has balance {balance} but its pending transactions with this one need {needed}"
    )]
    Unaffordable {
        sender: Address,
        balance: Amount,
        needed: u128,
    },
    #[error("{sender} already has {max} pending transactions, the most allowed per sender")]
    SenderFull { sender: Address, max: u32 },
    #[error(
        "the mempool is full and this fee ({fee}) does not beat the lowest pending fee ({lowest})"
    )]
    PoolFull { fee: Amount, lowest: Amount },
    #[error("reading state failed: {0}")]
    State(String),
    #[error(transparent)]
    Rule(RuleError),
}

impl Rejection {
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::TooLarge { .. } => "too_large",
            Rejection::Duplicate(_) => "duplicate",
            Rejection::WrongChain { .. } => "wrong_chain",
            Rejection::BadSignature(_) => "bad_signature",
            Rejection::StaleNonce { .. } => "stale_nonce",
            Rejection::NonceGap { .. } => "nonce_gap",
            Rejection::ReplacementUnderpriced { .. } => "replacement_underpriced",
            Rejection::Unaffordable { .. } => "unaffordable",
            Rejection::SenderFull { .. } => "sender_full",
            Rejection::PoolFull { .. } => "pool_full",
            Rejection::State(_) => "state_error",
            Rejection::Rule(RuleError::FeeBelowMinimum { .. }) => "fee_below_minimum",
            Rejection::Rule(RuleError::KindNotValid { .. }) => "kind_not_valid",
        }
    }
}

impl From<ReadError> for Rejection {
    fn from(e: ReadError) -> Self {
        Rejection::State(e.0)
    }
}

/// A transaction with its id and encoded length, worked out once. Callers that need the id
/// before admitting (to skip what is already pending, to match a batch signature check) hand
/// this over, so the mempool does not encode and hash the transaction again under its lock.
#[derive(Debug)]
pub struct Identified {
    tx: Transaction,
    id: Hash,
    len: usize,
}

impl Identified {
    pub fn new(tx: Transaction) -> Identified {
        let encoded = tx.encode();
        Identified {
            id: tx_id(&encoded),
            len: encoded.len(),
            tx,
        }
    }

    /// For `tx` as decoded from `encoded` by the canonical codec, which makes `encoded` its
    /// one encoding: the id and length come from those bytes, without encoding again.
    pub fn decoded_from(tx: Transaction, encoded: &[u8]) -> Identified {
        Identified {
            id: tx_id(encoded),
            len: encoded.len(),
            tx,
        }
    }

    pub fn id(&self) -> Hash {
        self.id
    }

    pub fn tx(&self) -> &Transaction {
        &self.tx
    }

    pub fn into_tx(self) -> Transaction {
        self.tx
    }
}

impl From<Transaction> for Identified {
    fn from(tx: Transaction) -> Identified {
        Identified::new(tx)
    }
}

struct Entry {
    tx: Transaction,
    sender: Address,
    bytes: usize,
    seq: u64,
}

/// Orders eviction: lowest fee first; among equal fees, the newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct FeeKey {
    fee: Amount,
    newest_first: std::cmp::Reverse<u64>,
    hash: Hash,
}

pub struct Mempool {
    limits: MempoolSection,
    chain_id: String,
    /// The rules of the next block's height: what may be admitted.
    rules: Rules,
    entries: HashMap<Hash, Entry>,
    by_sender: HashMap<Address, BTreeMap<Nonce, Hash>>,
    /// What each sender's entries in `by_sender` cost together (amounts plus fees), kept as
    /// they come and go, so an admission checks affordability without walking the sender's
    /// queue (up to `txs_per_sender_max` lookups per admission, a hot spot under load).
    cost_by_sender: HashMap<Address, u128>,
    by_fee: BTreeSet<FeeKey>,
    bytes: u64,
    next_seq: u64,
}

impl Mempool {
    pub fn new(chain_id: &str, limits: MempoolSection) -> Mempool {
        Mempool {
            limits,
            chain_id: chain_id.to_owned(),
            rules: GENESIS_RULES,
            entries: HashMap::new(),
            by_sender: HashMap::new(),
            cost_by_sender: HashMap::new(),
            by_fee: BTreeSet::new(),
            bytes: 0,
            next_seq: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn contains(&self, hash: &Hash) -> bool {
        self.entries.contains_key(hash)
    }

    /// The next nonce this pool admits from `sender`, whose committed nonce is `committed`:
    /// past its pending transactions. Entries below `committed` are ones a block has just
    /// included and `recheck` has not yet dropped; they do not count.
    pub fn next_nonce(&self, sender: &Address, committed: Nonce) -> Nonce {
        let live = self
            .by_sender
            .get(sender)
            .map_or(0, |p| p.range(committed..).count());
        Nonce(committed.0 + live as u64)
    }

    /// Admits `tx` or says why not. On success returns its hash; the caller gossips it.
    pub fn insert(
        &mut self,
        tx: impl Into<Identified>,
        state: &dyn StateReader,
    ) -> Result<Hash, Rejection> {
        self.admit(tx.into(), state, false)
    }

    /// Like [`Mempool::insert`] for a transaction whose signature the caller has already
    /// checked with the ledger's rules (`cairn_ledger::tx::verify_signatures`, which gives the
    /// same verdict as a single check): a batch check of many costs a third of checking each.
    pub fn insert_verified(
        &mut self,
        tx: impl Into<Identified>,
        state: &dyn StateReader,
    ) -> Result<Hash, Rejection> {
        self.admit(tx.into(), state, true)
    }

    fn admit(
        &mut self,
        tx: Identified,
        state: &dyn StateReader,
        signature_checked: bool,
    ) -> Result<Hash, Rejection> {
        let Identified {
            tx,
            id: hash,
            len: bytes,
        } = tx;
        if bytes > TX_BYTES_MAX {
            return Err(Rejection::TooLarge {
                len: bytes,
                max: TX_BYTES_MAX,
            });
        }
        if self.entries.contains_key(&hash) {
            return Err(Rejection::Duplicate(hash));
        }
        if tx.chain_id != self.chain_id {
            return Err(Rejection::WrongChain {
                expected: self.chain_id.clone(),
                found: tx.chain_id.clone(),
            });
        }
        self.rules.check(&tx).map_err(Rejection::Rule)?;
        if !signature_checked {
            tx.verify_signature().map_err(Rejection::BadSignature)?;
        }
        let sender = tx.sender_address();
        let account = state.account(&sender)?.unwrap_or_default();
        let pending = self.by_sender.get(&sender);
        let pending_count = pending.map_or(0, BTreeMap::len) as u64;
        // Between a commit and the recheck that follows it, entries below the committed nonce
        // are still here: only the ones at or above it are pending.
        let next = self.next_nonce(&sender, account.nonce);
        let replaces = if tx.nonce < account.nonce {
            return Err(Rejection::StaleNonce {
                sender,
                next,
                found: tx.nonce,
            });
        } else if tx.nonce > next {
            return Err(Rejection::NonceGap {
                sender,
                next,
                found: tx.nonce,
            });
        } else if tx.nonce < next {
            let Some(&old) = pending.and_then(|p| p.get(&tx.nonce)) else {
                return Err(Rejection::NonceGap {
                    sender,
                    next,
                    found: tx.nonce,
                });
            };
            let pending_fee = self.entries[&old].tx.fee;
            if tx.fee <= pending_fee {
                return Err(Rejection::ReplacementUnderpriced {
                    nonce: tx.nonce,
                    pending_fee,
                });
            }
            Some(old)
        } else {
            if pending_count >= self.limits.txs_per_sender_max as u64 {
                return Err(Rejection::SenderFull {
                    sender,
                    max: self.limits.txs_per_sender_max,
                });
            }
            None
        };
        // The sender must afford all its pending transactions with this one in place: all of
        // its entries, less the one this replaces and those a block has just included (below
        // the committed nonce, usually none), plus this one.
        let entry_cost = |h: &Hash| cost(&self.entries[h].tx);
        let committed: u128 = pending
            .into_iter()
            .flat_map(|p| p.range(..account.nonce))
            .map(|(_, h)| entry_cost(h))
            .sum();
        let replaced = replaces.as_ref().map_or(0, entry_cost);
        let needed = self.cost_by_sender.get(&sender).copied().unwrap_or(0) - committed - replaced
            + cost(&tx);
        if needed > account.balance.0 as u128 {
            return Err(Rejection::Unaffordable {
                sender,
                balance: account.balance,
                needed,
            });
        }
        if let Some(old) = replaces {
            self.remove(&old);
        }
        self.make_room(tx.fee, bytes as u64, &sender)?;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_fee.insert(FeeKey {
            fee: tx.fee,
            newest_first: std::cmp::Reverse(seq),
            hash,
        });
        self.by_sender
            .entry(sender)
            .or_default()
            .insert(tx.nonce, hash);
        *self.cost_by_sender.entry(sender).or_default() += cost(&tx);
        self.bytes += bytes as u64;
        self.entries.insert(
            hash,
            Entry {
                tx,
                sender,
                bytes,
                seq,
            },
        );
        debug_assert!(
            self.entries.len() <= self.limits.txs_max as usize
                && self.bytes <= self.limits.bytes_max,
            "the pool holds {} transactions of {} bytes, beyond its limits",
            self.entries.len(),
            self.bytes
        );
        debug_assert_eq!(self.entries.len(), self.by_fee.len());
        Ok(hash)
    }

    /// Evicts lowest-fee transactions until one of `bytes` fits, if `fee` beats them.
    fn make_room(&mut self, fee: Amount, bytes: u64, sender: &Address) -> Result<(), Rejection> {
        while self.entries.len() >= self.limits.txs_max as usize
            || self.bytes + bytes > self.limits.bytes_max
        {
            let lowest = *self.by_fee.first().expect("a full pool has entries");
            if fee <= lowest.fee {
                return Err(Rejection::PoolFull {
                    fee,
                    lowest: lowest.fee,
                });
            }
            let victim_sender = self.entries[&lowest.hash].sender;
            let victim_nonce = self.entries[&lowest.hash].tx.nonce;
            // Later nonces of the victim's sender could never execute without it.
            let doomed: Vec<Hash> = self.by_sender[&victim_sender]
                .range(victim_nonce..)
                .map(|(_, h)| *h)
                .collect();
            if victim_sender == *sender {
                // Evicting the sender's own earlier transaction would orphan the new one.
                return Err(Rejection::PoolFull {
                    fee,
                    lowest: lowest.fee,
                });
            }
            for h in doomed {
                self.remove(&h);
            }
        }
        Ok(())
    }

    fn remove(&mut self, hash: &Hash) -> Option<Transaction> {
        let entry = self.entries.remove(hash)?;
        self.bytes -= entry.bytes as u64;
        self.by_fee.remove(&FeeKey {
            fee: entry.tx.fee,
            newest_first: std::cmp::Reverse(entry.seq),
            hash: *hash,
        });
        if let Some(nonces) = self.by_sender.get_mut(&entry.sender) {
            nonces.remove(&entry.tx.nonce);
            if nonces.is_empty() {
                self.by_sender.remove(&entry.sender);
                self.cost_by_sender.remove(&entry.sender);
            } else if let Some(total) = self.cost_by_sender.get_mut(&entry.sender) {
                *total -= cost(&entry.tx);
            }
        }
        Some(entry.tx)
    }

    /// The rules of the next block's height, set by the driver whenever the tip moves. When
    /// they differ from the last ones (an upgrade activates, or a reorganisation goes back
    /// below one), every pending transaction they refuse is dropped with its sender's later
    /// nonces, which could no longer execute. Returns how many were dropped.
    pub fn set_rules(&mut self, rules: &Rules) -> usize {
        if *rules == self.rules {
            return 0;
        }
        self.rules = rules.clone();
        let before = self.entries.len();
        // Per sender, the lowest refused nonce: the tail from it goes, once.
        let mut refused: HashMap<Address, Nonce> = HashMap::new();
        for e in self.entries.values() {
            if self.rules.check(&e.tx).is_err() {
                let from = refused.entry(e.sender).or_insert(e.tx.nonce);
                *from = (*from).min(e.tx.nonce);
            }
        }
        for (sender, from) in refused {
            let doomed: Vec<Hash> = self
                .by_sender
                .get(&sender)
                .map(|n| n.range(from..).map(|(_, h)| *h).collect())
                .unwrap_or_default();
            for h in doomed {
                self.remove(&h);
            }
        }
        before - self.entries.len()
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// After a block commits: drops what it included and whatever the new state makes
    /// invalid (stale nonces, no-longer-affordable tails). Returns how many were dropped.
    pub fn recheck(
        &mut self,
        committed: &[Transaction],
        state: &dyn StateReader,
    ) -> Result<usize, ReadError> {
        self.recheck_ids(committed.iter().map(|tx| (tx.hash(), tx)), state)
    }

    /// [`Mempool::recheck`] for a caller that already knows each transaction's id (a block
    /// prepared by the store has them), which saves hashing every committed transaction again.
    pub fn recheck_ids<'a>(
        &mut self,
        committed: impl IntoIterator<Item = (Hash, &'a Transaction)>,
        state: &dyn StateReader,
    ) -> Result<usize, ReadError> {
        let before = self.entries.len();
        let mut senders = Vec::new();
        for (id, tx) in committed {
            // A pending entry knows its sender; a transaction admitted elsewhere may still
            // conflict with one of this sender's pending nonces, so its sender is checked too.
            match self.entries.get(&id).map(|e| e.sender) {
                Some(sender) => {
                    self.remove(&id);
                    senders.push(sender);
                }
                None => senders.push(tx.sender_address()),
            }
        }
        senders.sort_unstable();
        senders.dedup();
        for sender in senders {
            let Some(nonces) = self.by_sender.get(&sender) else {
                continue;
            };
            let account = state.account(&sender)?.unwrap_or_default();
            // The usual case after a commit: the queue still starts at the account's nonce,
            // has no gap, and the balance covers all of it; nothing to walk. (A sender in
            // `by_sender` has at least one entry and a running cost.)
            let (Some((first, _)), Some((last, _))) =
                (nonces.first_key_value(), nonces.last_key_value())
            else {
                continue;
            };
            let gap_free = last.0 - first.0 + 1 == nonces.len() as u64;
            let total = self
                .cost_by_sender
                .get(&sender)
                .copied()
                .unwrap_or(u128::MAX);
            if *first == account.nonce && gap_free && total <= account.balance.0 as u128 {
                continue;
            }
            let mut expected = account.nonce;
            let mut spent: u128 = 0;
            let mut doomed = Vec::new();
            let mut broken = false;
            for (nonce, hash) in nonces {
                if *nonce < account.nonce {
                    // Used by a transaction admitted elsewhere; its successors may still run.
                    doomed.push(*hash);
                    continue;
                }
                let tx = &self.entries[hash].tx;
                spent += cost(tx);
                broken |= *nonce != expected || spent > account.balance.0 as u128;
                if broken {
                    doomed.push(*hash);
                } else {
                    expected = Nonce(expected.0 + 1);
                }
            }
            for h in doomed {
                self.remove(&h);
            }
        }
        Ok(before - self.entries.len())
    }

    /// Transactions for a block, highest fee first, each sender's in nonce order, within
    /// `txs_max` and `bytes_max`; with their ids, which a block builder needs and would
    /// otherwise hash again.
    pub fn reap(&self, txs_max: usize, bytes_max: usize) -> Vec<Identified> {
        // Each sender's next transaction competes on fee; taking one reveals its successor.
        let head = |hash: &Hash| {
            let e = &self.entries[hash];
            (e.tx.fee, std::cmp::Reverse(e.seq), *hash)
        };
        let mut queues: HashMap<Address, _> = self
            .by_sender
            .iter()
            .map(|(s, nonces)| (*s, nonces.values()))
            .collect();
        let mut heads: BTreeSet<(Amount, std::cmp::Reverse<u64>, Hash)> = queues
            .values_mut()
            .filter_map(|q| q.next().map(head))
            .collect();
        let mut out = Vec::new();
        let mut bytes = 0;
        while let Some((_, _, hash)) = heads.pop_last() {
            let entry = &self.entries[&hash];
            if out.len() >= txs_max || bytes + entry.bytes > bytes_max {
                break;
            }
            bytes += entry.bytes;
            out.push(Identified {
                tx: entry.tx.clone(),
                id: hash,
                len: entry.bytes,
            });
            if let Some(next) = queues.get_mut(&entry.sender).and_then(Iterator::next) {
                heads.insert(head(next));
            }
        }
        out
    }
}

fn cost(tx: &Transaction) -> u128 {
    tx.amount().0 as u128 + tx.fee.0 as u128
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cairn_ledger::crypto::Keypair;
    use cairn_ledger::state::Account;
    use cairn_ledger::tx::Payload;

    use super::*;

    const CHAIN: &str = "test-chain";

    fn key(i: u8) -> Keypair {
        Keypair::from_secret(&[i + 1; 32])
    }

    fn tx(from: u8, nonce: u64, amount: u64, fee: u64) -> Transaction {
        Transaction::new_signed(
            CHAIN,
            &key(from),
            Nonce(nonce),
            Amount(fee),
            Payload::Transfer {
                to: Address([9; 20]),
                amount: Amount(amount),
            },
        )
    }

    fn state(balances: &[(u8, u64, u64)]) -> BTreeMap<Address, Account> {
        balances
            .iter()
            .map(|&(i, balance, nonce)| {
                (
                    key(i).public().address(),
                    Account {
                        balance: Amount(balance),
                        nonce: Nonce(nonce),
                        ..Account::default()
                    },
                )
            })
            .collect()
    }

    fn pool(txs_max: u32, per_sender: u32) -> Mempool {
        Mempool::new(
            CHAIN,
            MempoolSection {
                txs_max,
                bytes_max: 1 << 20,
                txs_per_sender_max: per_sender,
            },
        )
    }

    #[test]
    fn admits_gap_free_runs_and_names_every_rejection() {
        let s = state(&[(0, 100, 3)]);
        let mut p = pool(100, 4);
        let sender = key(0).public().address();
        p.insert(tx(0, 3, 10, 1), &s).unwrap();
        assert_eq!(
            p.insert(tx(0, 3, 10, 1), &s),
            Err(Rejection::Duplicate(tx(0, 3, 10, 1).hash()))
        );
        assert_eq!(
            p.insert(tx(0, 2, 10, 1), &s),
            Err(Rejection::StaleNonce {
                sender,
                next: Nonce(4),
                found: Nonce(2)
            })
        );
        assert_eq!(
            p.insert(tx(0, 5, 10, 1), &s),
            Err(Rejection::NonceGap {
                sender,
                next: Nonce(4),
                found: Nonce(5)
            })
        );
        p.insert(tx(0, 4, 10, 1), &s).unwrap();
        // 11 + 11 pending, 80 more would need 102 > 100.
        assert!(matches!(
            p.insert(tx(0, 5, 79, 1), &s),
            Err(Rejection::Unaffordable { needed: 102, .. })
        ));
        let mut forged = tx(0, 5, 1, 1);
        forged.fee = Amount(2);
        assert!(matches!(
            p.insert(forged, &s),
            Err(Rejection::BadSignature(_))
        ));
        let other_chain = Transaction::new_signed(
            "other",
            &key(0),
            Nonce(5),
            Amount(1),
            Payload::Transfer {
                to: Address([9; 20]),
                amount: Amount(1),
            },
        );
        assert!(matches!(
            p.insert(other_chain, &s),
            Err(Rejection::WrongChain { .. })
        ));
        assert_eq!(p.len(), 2);
    }

    /// The rules of the next height decide admission; when an upgrade changes them, what
    /// they refuse leaves with its sender's later nonces, and nothing valid goes.
    #[test]
    fn an_upgrade_changes_what_is_admitted_and_drops_only_what_it_makes_invalid() {
        use cairn_ledger::rules::IMPLEMENTED;
        let fee_floor = IMPLEMENTED[0].rules_after(&GENESIS_RULES);
        let memo = IMPLEMENTED[1].rules_after(&fee_floor);
        let s = state(&[(0, 1000, 0), (1, 1000, 0), (2, 1000, 0)]);
        let mut p = pool(100, 8);
        let memo_tx = |from: u8, nonce: u64| {
            Transaction::new_signed(
                CHAIN,
                &key(from),
                Nonce(nonce),
                Amount(1),
                Payload::TransferWithMemo {
                    to: Address([9; 20]),
                    amount: Amount(1),
                    memo: "hi".into(),
                },
            )
        };
        assert!(matches!(
            p.insert(memo_tx(2, 0), &s),
            Err(Rejection::Rule(RuleError::KindNotValid { .. }))
        ));
        // Sender 0 pays 1, 0, 1: its free transaction and the one after it cannot survive
        // the fee floor; sender 1 pays 1 throughout.
        p.insert(tx(0, 0, 1, 1), &s).unwrap();
        p.insert(tx(0, 1, 1, 0), &s).unwrap();
        p.insert(tx(0, 2, 1, 1), &s).unwrap();
        p.insert(tx(1, 0, 1, 1), &s).unwrap();
        assert_eq!(p.set_rules(&GENESIS_RULES), 0);
        assert_eq!(p.set_rules(&fee_floor), 2);
        assert_eq!(p.len(), 2);
        assert!(p.contains(&tx(0, 0, 1, 1).hash()));
        assert!(p.contains(&tx(1, 0, 1, 1).hash()));
        let rejection = p.insert(tx(0, 1, 1, 0), &s).unwrap_err();
        assert_eq!(rejection.reason(), "fee_below_minimum");
        assert!(
            rejection.to_string().contains("below the minimum of 1"),
            "{rejection}"
        );
        assert_eq!(p.set_rules(&memo), 0);
        p.insert(memo_tx(2, 0), &s).unwrap();
        // A reorganisation back below `memo` takes the memo transfer out again.
        assert_eq!(p.set_rules(&fee_floor), 1);
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn admission_between_a_commit_and_its_recheck_ignores_the_committed_entries() {
        let mut p = pool(100, 8);
        let before = state(&[(0, 1000, 0)]);
        for n in 0..3 {
            p.insert(tx(0, n, 10, 1), &before).unwrap();
        }
        // A block took nonces 0 and 1; the pool has not been rechecked yet.
        let after = state(&[(0, 978, 2)]);
        let sender = key(0).public().address();
        assert_eq!(p.next_nonce(&sender, Nonce(2)), Nonce(3));
        p.insert(tx(0, 3, 10, 1), &after).unwrap();
        assert!(matches!(
            p.insert(tx(0, 5, 10, 1), &after),
            Err(Rejection::NonceGap { next: Nonce(4), .. })
        ));
        // Replacing the still-pending nonce 2 works; nonce 1 is stale.
        p.insert(tx(0, 2, 10, 5), &after).unwrap();
        assert!(matches!(
            p.insert(tx(0, 1, 10, 9), &after),
            Err(Rejection::StaleNonce { .. })
        ));
        let dropped = p
            .recheck(&[tx(0, 0, 10, 1), tx(0, 1, 10, 1)], &after)
            .unwrap();
        assert_eq!(dropped, 2);
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn replacement_needs_a_higher_fee() {
        let s = state(&[(0, 100, 0)]);
        let mut p = pool(100, 4);
        p.insert(tx(0, 0, 10, 2), &s).unwrap();
        assert!(matches!(
            p.insert(tx(0, 0, 11, 2), &s),
            Err(Rejection::ReplacementUnderpriced { .. })
        ));
        p.insert(tx(0, 0, 11, 3), &s).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p.reap(10, 1 << 20)[0].tx().fee, Amount(3));
    }

    #[test]
    fn per_sender_limit_holds() {
        let s = state(&[(0, 1000, 0)]);
        let mut p = pool(100, 2);
        p.insert(tx(0, 0, 1, 1), &s).unwrap();
        p.insert(tx(0, 1, 1, 1), &s).unwrap();
        assert!(matches!(
            p.insert(tx(0, 2, 1, 1), &s),
            Err(Rejection::SenderFull { max: 2, .. })
        ));
    }

    #[test]
    fn full_pool_evicts_lowest_fee_with_its_later_nonces_only_for_a_better_fee() {
        let s = state(&[(0, 1000, 0), (1, 1000, 0), (2, 1000, 0)]);
        let mut p = pool(3, 10);
        p.insert(tx(0, 0, 1, 1), &s).unwrap();
        p.insert(tx(0, 1, 1, 5), &s).unwrap();
        p.insert(tx(1, 0, 1, 3), &s).unwrap();
        assert_eq!(
            p.insert(tx(2, 0, 1, 1), &s),
            Err(Rejection::PoolFull {
                fee: Amount(1),
                lowest: Amount(1)
            })
        );
        // Fee 2 beats sender 0's nonce-0 fee 1: both of sender 0's go (nonce 1 would be stuck).
        p.insert(tx(2, 0, 1, 2), &s).unwrap();
        assert_eq!(p.len(), 2);
        assert!(!p.contains(&tx(0, 1, 1, 5).hash()));
        assert!(p.bytes() > 0);
    }

    #[test]
    fn reap_orders_by_fee_within_nonce_order_and_respects_limits() {
        let s = state(&[(0, 1000, 0), (1, 1000, 0)]);
        let mut p = pool(100, 10);
        p.insert(tx(0, 0, 1, 1), &s).unwrap();
        p.insert(tx(0, 1, 1, 9), &s).unwrap();
        p.insert(tx(1, 0, 1, 5), &s).unwrap();
        let fees: Vec<(u64, u64)> = p
            .reap(10, 1 << 20)
            .iter()
            .map(|t| {
                assert_eq!(t.id(), t.tx().hash(), "reaped with its id");
                (t.tx().fee.0, t.tx().nonce.0)
            })
            .collect();
        assert_eq!(fees, vec![(5, 0), (1, 0), (9, 1)]);
        assert_eq!(p.reap(2, 1 << 20).len(), 2);
        assert_eq!(p.reap(10, 10).len(), 0);
    }

    #[test]
    fn recheck_drops_a_pending_nonce_that_a_transaction_admitted_elsewhere_used() {
        let s = state(&[(0, 100, 0)]);
        let mut p = pool(100, 10);
        p.insert(tx(0, 0, 10, 1), &s).unwrap();
        p.insert(tx(0, 1, 10, 1), &s).unwrap();
        // Another node's transaction for nonce 0 (another fee, so another id) committed.
        let elsewhere = tx(0, 0, 10, 2);
        let after = state(&[(0, 88, 1)]);
        let dropped = p
            .recheck_ids([(elsewhere.hash(), &elsewhere)], &after)
            .unwrap();
        assert_eq!(dropped, 1, "the pending nonce 0 can never execute");
        assert!(!p.contains(&tx(0, 0, 10, 1).hash()));
        assert!(p.contains(&tx(0, 1, 10, 1).hash()));
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn recheck_drops_included_and_invalidated_transactions() {
        let s = state(&[(0, 100, 0), (1, 100, 0)]);
        let mut p = pool(100, 10);
        let a0 = tx(0, 0, 10, 1);
        p.insert(a0.clone(), &s).unwrap();
        p.insert(tx(0, 1, 10, 1), &s).unwrap();
        p.insert(tx(0, 2, 10, 1), &s).unwrap();
        p.insert(tx(1, 0, 10, 1), &s).unwrap();
        // a0 committed; meanwhile sender 0 spent most of its balance elsewhere.
        let after = state(&[(0, 15, 1), (1, 100, 0)]);
        let dropped = p.recheck(std::slice::from_ref(&a0), &after).unwrap();
        assert_eq!(dropped, 2, "a0 included, nonce 2 unaffordable");
        assert!(p.contains(&tx(0, 1, 10, 1).hash()));
        assert!(!p.contains(&tx(0, 2, 10, 1).hash()));
        assert!(p.contains(&tx(1, 0, 10, 1).hash()));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        #[test]
        fn limits_and_gap_free_runs_hold_under_any_inserts(
            ops in proptest::collection::vec((0u8..5, 0u64..6, 0u64..60, 0u64..8), 1..80)
        ) {
            let s = state(&[(0, 200, 0), (1, 200, 2), (2, 50, 0), (3, 500, 1), (4, 90, 0)]);
            let mut p = pool(12, 4);
            for (from, nonce, amount, fee) in ops {
                let _ = p.insert(tx(from, nonce, amount, fee), &s);
                proptest::prop_assert!(p.len() <= 12);
                let total: u64 = p.entries.values().map(|e| e.bytes as u64).sum();
                proptest::prop_assert_eq!(total, p.bytes());
                for (sender, nonces) in &p.by_sender {
                    let account = s[sender];
                    proptest::prop_assert!(nonces.len() <= 4);
                    let expected: Vec<u64> =
                        (account.nonce.0..account.nonce.0 + nonces.len() as u64).collect();
                    let got: Vec<u64> = nonces.keys().map(|n| n.0).collect();
                    proptest::prop_assert_eq!(got, expected, "gap-free from the account nonce");
                    let cost: u128 = nonces.values().map(|h| cost(&p.entries[h].tx)).sum();
                    proptest::prop_assert!(cost <= account.balance.0 as u128);
                    proptest::prop_assert_eq!(p.cost_by_sender[sender], cost, "running cost");
                }
                proptest::prop_assert_eq!(p.cost_by_sender.len(), p.by_sender.len());
                let reaped = p.reap(usize::MAX, usize::MAX);
                proptest::prop_assert_eq!(reaped.len(), p.len());
            }
        }
    }
}
