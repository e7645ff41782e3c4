//! Account state and the state transition: how a block's transactions change balances and
//! nonces. Pure: state is read through [`StateReader`] and the result is a set of changes the
//! store writes atomically, together with the undo record that reverses them.

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_oracle::{FeedId, FeedState};
use serde::{Deserialize, Serialize};

use crate::block::{Receipt, ReceiptStatus};
use crate::crypto::{BatchError, SignatureError};
use crate::oracle::{
    OracleState, amount_from_rules, amount_to_rules, end_block_due, height_to_rules,
    operator_address, operator_id,
};
use crate::rules::{RuleError, Rules};
use crate::smt::{self, Child, NodeSource, TreeError, TreeUpdate};
use crate::tx::{Payload, Transaction, verify_signatures};
use crate::types::{Address, Amount, Hash, Height, Nonce};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub balance: Amount,
    pub nonce: Nonce,
    /// Bonded stake (validators, oracle operators); not spendable.
    pub stake: Amount,
}

impl Account {
    /// What an account holds in total, for supply accounting.
    pub fn holdings(&self) -> u128 {
        self.balance.0 as u128 + self.stake.0 as u128
    }
}

/// The state tree key of an account.
pub fn account_key(address: &Address) -> Hash {
    Hash::tagged(b"cairn/state-key/account/v1", &[&address.0])
}

/// The state tree value of an account.
pub fn account_value(account: &Account) -> Hash {
    Hash::tagged(
        b"cairn/state-value/account/v1",
        &[&crate::codec::encode(account)],
    )
}

#[derive(Debug, thiserror::Error)]
#[error("reading account state failed: {0}")]
pub struct ReadError(pub String);

pub trait StateReader {
    fn account(&self, address: &Address) -> Result<Option<Account>, ReadError>;

    /// The oracle's state; `None` on a network without an oracle.
    fn oracle(&self) -> Option<Arc<OracleState>> {
        None
    }
}

impl StateReader for BTreeMap<Address, Account> {
    fn account(&self, address: &Address) -> Result<Option<Account>, ReadError> {
        Ok(self.get(address).copied())
    }
}

/// Why one transaction cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("transaction is for chain {found:?} but this chain is {expected:?}")]
    WrongChain { expected: String, found: String },
    #[error("signature is invalid: {0}")]
    BadSignature(SignatureError),
    #[error("nonce {found} was already used by {sender}; its next nonce is {expected}")]
    StaleNonce {
        sender: Address,
        expected: Nonce,
        found: Nonce,
    },
    #[error("nonce {found} skips ahead; {sender} must use nonce {expected} first")]
    NonceGap {
        sender: Address,
        expected: Nonce,
        found: Nonce,
    },
    #[error("{sender} has balance {balance} but needs {needed} (amount plus fee)")]
    InsufficientBalance {
        sender: Address,
        balance: Amount,
        needed: Amount,
    },
    #[error("amount {amount} plus fee {fee} overflows")]
    AmountOverflow { amount: Amount, fee: Amount },
    #[error("crediting {amount} to {recipient} would overflow its balance")]
    BalanceOverflow { recipient: Address, amount: Amount },
    #[error("{sender} has used every nonce")]
    NonceExhausted { sender: Address },
    #[error(transparent)]
    Rule(#[from] RuleError),
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("transaction {index} ({hash}) is invalid: {error}")]
    Tx {
        index: usize,
        hash: Hash,
        error: TxError,
    },
    #[error("block reward and fees overflow the producer's balance")]
    RewardOverflow,
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Tree(#[from] TreeError),
}

/// How signatures are checked. Every mode gives the same verdict (see `crypto`); `Skip` is
/// only for transactions whose signatures the caller has already checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigCheck {
    Batch,
    EachAlone,
    Skip,
}

/// What a block is executed in.
#[derive(Clone, Debug)]
pub struct BlockContext<'a> {
    pub chain_id: &'a str,
    pub height: Height,
    pub producer: Address,
    /// Newly minted for the producer (the PoW subsidy; zero in BFT mode).
    pub reward: Amount,
    /// The rules in force at `height`.
    pub rules: &'a Rules,
}

/// The effect of a block on state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateChanges {
    /// New value of every account the block touched.
    pub updated: BTreeMap<Address, Account>,
    /// Value of each of those accounts before the block (`None`: did not exist): the undo
    /// record.
    pub previous: BTreeMap<Address, Option<Account>>,
    pub receipts: Vec<Receipt>,
    /// New tokens: the block reward and oracle round rewards.
    pub minted: Amount,
    /// Tokens destroyed: oracle penalties.
    pub burned: Amount,
    /// New state of every oracle feed the block changed.
    pub feeds_updated: BTreeMap<FeedId, Arc<FeedState>>,
    /// Each of those feeds before the block: the oracle part of the undo record.
    pub feeds_previous: BTreeMap<FeedId, Arc<FeedState>>,
    /// The whole oracle after the block (`None` without an oracle), for blocks executed on
    /// top of this one before it is stored.
    pub oracle_after: Option<Arc<OracleState>>,
    /// Oracle rounds finalised at the end of the block.
    pub oracle_rounds: Vec<cairn_oracle::RoundReport>,
}

/// Accounts and feeds read once from the reader, then modified in memory.
struct Overlay<'r> {
    reader: &'r dyn StateReader,
    changes: StateChanges,
    oracle: Option<Arc<OracleState>>,
    /// Feeds copied out of `oracle` on first change.
    feeds: BTreeMap<FeedId, FeedState>,
}

impl Overlay<'_> {
    fn get(&mut self, address: &Address) -> Result<Account, ReadError> {
        if let Some(a) = self.changes.updated.get(address) {
            return Ok(*a);
        }
        let stored = self.reader.account(address)?;
        self.changes.previous.insert(*address, stored);
        self.changes
            .updated
            .insert(*address, stored.unwrap_or_default());
        Ok(stored.unwrap_or_default())
    }

    fn set(&mut self, address: Address, account: Account) {
        debug_assert!(self.changes.previous.contains_key(&address));
        self.changes.updated.insert(address, account);
    }

    fn credit(&mut self, to: Address, amount: Amount) -> Result<Result<(), ()>, ReadError> {
        let mut account = self.get(&to)?;
        match account.balance.checked_add(amount) {
            Some(b) => {
                account.balance = b;
                self.set(to, account);
                Ok(Ok(()))
            }
            None => Ok(Err(())),
        }
    }

    /// The feed as this block has left it so far.
    fn feed(&self, id: &FeedId) -> Option<&FeedState> {
        self.feeds
            .get(id)
            .or_else(|| self.oracle.as_ref()?.feed(id))
    }

    /// The feed to change, copied on first use; `None` if there is no such feed.
    fn feed_mut(&mut self, id: &FeedId) -> Option<&mut FeedState> {
        if !self.feeds.contains_key(id) {
            let base = self.oracle.as_ref()?.feed(id)?.clone();
            self.feeds.insert(id.clone(), base);
        }
        self.feeds.get_mut(id)
    }

    /// Applies an oracle action of `sender` at `height`; `Err` carries why the oracle
    /// refused it, and then nothing changed.
    fn oracle_action(
        &mut self,
        sender: Address,
        from: &mut Account,
        payload: &Payload,
        height: Height,
    ) -> Result<(), String> {
        let at = height_to_rules(height);
        let op = operator_id(&sender);
        let feed_id = match payload {
            Payload::Transfer { .. } | Payload::TransferWithMemo { .. } => {
                unreachable!("transfers are not oracle actions")
            }
            Payload::OracleStake { feed, .. }
            | Payload::OracleUnstake { feed, .. }
            | Payload::OracleCommit { feed, .. }
            | Payload::OracleReveal { feed, .. } => feed,
        };
        let Some(oracle) = self.oracle.clone() else {
            return Err("this network has no oracle (genesis has no [oracle] section)".into());
        };
        let config = oracle.config().clone();
        let Some(feed) = self.feed_mut(feed_id) else {
            return Err(oracle.unknown_feed(feed_id));
        };
        match payload {
            Payload::Transfer { .. } | Payload::TransferWithMemo { .. } => {
                unreachable!("transfers are not oracle actions")
            }
            Payload::OracleStake { amount, .. } => {
                let stake = from
                    .stake
                    .checked_add(*amount)
                    .ok_or_else(|| format!("staking {amount} overflows the account's stake"))?;
                feed.stake(&config, op, amount_to_rules(*amount), at)
                    .map_err(|e| e.to_string())?;
                // The balance check before the action covered amount plus fee.
                from.balance = Amount(from.balance.0 - amount.0);
                from.stake = stake;
            }
            Payload::OracleUnstake { amount, .. } => {
                feed.unstake(&config, op, amount_to_rules(*amount), at)
                    .map_err(|e| e.to_string())?;
            }
            Payload::OracleCommit {
                round, commitment, ..
            } => feed
                .commit(op, *round, *commitment, at)
                .map_err(|e| e.to_string())?,
            Payload::OracleReveal {
                round, value, salt, ..
            } => feed
                .reveal(op, *round, *value, *salt, at)
                .map_err(|e| e.to_string())?,
        }
        Ok(())
    }

    /// Takes `from_stake` off the operator's account stake (which holds every feed's bonded
    /// and unbonding stake of the operator, where the oracle took it from) and credits
    /// `to_balance` to its balance.
    fn stake_to_balance(
        &mut self,
        operator: &cairn_oracle::OperatorId,
        from_stake: Amount,
        to_balance: Amount,
    ) -> Result<(), ExecError> {
        let who = operator_address(operator);
        let mut account = self.get(&who)?;
        account.stake = Amount(account.stake.0.saturating_sub(from_stake.0));
        add(&mut account.balance, to_balance)?;
        self.set(who, account);
        Ok(())
    }

    /// The oracle's end of block `height`: every feed whose round ends or whose unbonding
    /// entries come due, in feed id order; then the feeds that changed are recorded.
    fn oracle_end_block(&mut self, height: Height) -> Result<(), ExecError> {
        let Some(oracle) = self.oracle.clone() else {
            return Ok(());
        };
        let config = oracle.config().clone();
        let at = height_to_rules(height);
        let due: Vec<FeedId> = oracle
            .feeds()
            .map(|f| f.id())
            .filter(|id| self.feed(id).is_some_and(|f| end_block_due(f, height)))
            .cloned()
            .collect();
        for id in due {
            let feed = self.feed_mut(&id).expect("due feeds exist");
            let done = feed.end_block(&config, at);
            for round in &done.rounds {
                for s in &round.settlements {
                    let (penalty, reward) =
                        (amount_from_rules(s.penalty), amount_from_rules(s.reward));
                    // The penalty is burnt from stake; the reward is minted to the balance.
                    self.stake_to_balance(&s.operator, penalty, reward)?;
                    add(&mut self.changes.burned, penalty)?;
                    add(&mut self.changes.minted, reward)?;
                }
            }
            for r in &done.releases {
                let amount = amount_from_rules(r.amount);
                self.stake_to_balance(&r.operator, amount, amount)?;
            }
            self.changes.oracle_rounds.extend(done.rounds);
        }
        let copied = std::mem::take(&mut self.feeds);
        let mut updated = BTreeMap::new();
        for (id, feed) in copied {
            let before = oracle.feed_arc(&id).expect("copied feeds exist");
            if **before != feed {
                self.changes
                    .feeds_previous
                    .insert(id.clone(), Arc::clone(before));
                updated.insert(id, Arc::new(feed));
            }
        }
        self.changes.oracle_after = Some(Arc::new(oracle.with_changes(&updated)));
        self.changes.feeds_updated = updated;
        Ok(())
    }
}

/// Applies `txs` in order on top of `reader`'s state. Any invalid transaction makes the whole
/// block invalid: a producer must only include transactions that apply.
pub fn execute_block(
    reader: &dyn StateReader,
    ctx: &BlockContext,
    txs: &[Transaction],
    sig_check: SigCheck,
) -> Result<StateChanges, ExecError> {
    match sig_check {
        SigCheck::Batch => {
            verify_signatures(txs).map_err(|BatchError { index, error }| ExecError::Tx {
                index,
                hash: txs[index].hash(),
                error: TxError::BadSignature(error),
            })?
        }
        SigCheck::EachAlone => {
            for (index, tx) in txs.iter().enumerate() {
                tx.verify_signature().map_err(|error| ExecError::Tx {
                    index,
                    hash: tx.hash(),
                    error: TxError::BadSignature(error),
                })?;
            }
        }
        SigCheck::Skip => {}
    }
    let mut overlay = Overlay {
        reader,
        changes: StateChanges::default(),
        oracle: reader.oracle(),
        feeds: BTreeMap::new(),
    };
    let mut fees = Amount::ZERO;
    for (index, tx) in txs.iter().enumerate() {
        let (fee, status) = apply_tx(&mut overlay, ctx, tx).map_err(|e| match e {
            ApplyFailure::Tx(error) => ExecError::Tx {
                index,
                hash: tx.hash(),
                error,
            },
            ApplyFailure::Read(e) => ExecError::Read(e),
        })?;
        // Fees are bounded by the senders' balances, whose sum fits in u64.
        fees = fees.checked_add(fee).ok_or(ExecError::RewardOverflow)?;
        overlay.changes.receipts.push(Receipt { fee, status });
    }
    overlay.oracle_end_block(ctx.height)?;
    let payout = fees
        .checked_add(ctx.reward)
        .ok_or(ExecError::RewardOverflow)?;
    if payout > Amount::ZERO {
        overlay
            .credit(ctx.producer, payout)?
            .map_err(|()| ExecError::RewardOverflow)?;
    }
    overlay.changes.minted = overlay
        .changes
        .minted
        .checked_add(ctx.reward)
        .ok_or(ExecError::RewardOverflow)?;
    Ok(overlay.changes)
}

/// `total += amount`, refusing the block on overflow.
fn add(total: &mut Amount, amount: Amount) -> Result<(), ExecError> {
    *total = total.checked_add(amount).ok_or(ExecError::RewardOverflow)?;
    Ok(())
}

enum ApplyFailure {
    Tx(TxError),
    Read(ReadError),
}

impl From<ReadError> for ApplyFailure {
    fn from(e: ReadError) -> Self {
        ApplyFailure::Read(e)
    }
}

impl From<TxError> for ApplyFailure {
    fn from(e: TxError) -> Self {
        ApplyFailure::Tx(e)
    }
}

/// Checks and applies one transaction, returning the fee it paid and what became of it.
fn apply_tx(
    overlay: &mut Overlay,
    ctx: &BlockContext,
    tx: &Transaction,
) -> Result<(Amount, ReceiptStatus), ApplyFailure> {
    if tx.chain_id != ctx.chain_id {
        return Err(TxError::WrongChain {
            expected: ctx.chain_id.to_owned(),
            found: tx.chain_id.clone(),
        }
        .into());
    }
    ctx.rules.check(tx).map_err(TxError::from)?;
    let sender = tx.sender_address();
    let mut from = overlay.get(&sender)?;
    check_nonce(sender, from.nonce, tx.nonce)?;
    let amount = tx.amount();
    let needed = amount.checked_add(tx.fee).ok_or(TxError::AmountOverflow {
        amount,
        fee: tx.fee,
    })?;
    if from.balance < needed {
        return Err(TxError::InsufficientBalance {
            sender,
            balance: from.balance,
            needed,
        }
        .into());
    }
    from.balance = Amount(from.balance.0 - tx.fee.0);
    from.nonce = from
        .nonce
        .next()
        .ok_or(TxError::NonceExhausted { sender })?;
    let status = match &tx.payload {
        Payload::Transfer { to, amount } | Payload::TransferWithMemo { to, amount, .. } => {
            from.balance = Amount(from.balance.0 - amount.0);
            overlay.set(sender, from);
            if overlay.credit(*to, *amount)?.is_err() {
                return Err(TxError::BalanceOverflow {
                    recipient: *to,
                    amount: *amount,
                }
                .into());
            }
            ReceiptStatus::Applied
        }
        payload => {
            let status = match overlay.oracle_action(sender, &mut from, payload, ctx.height) {
                Ok(()) => ReceiptStatus::Applied,
                Err(reason) => ReceiptStatus::Refused { reason },
            };
            overlay.set(sender, from);
            status
        }
    };
    Ok((tx.fee, status))
}

/// The nonce rule on its own, for the mempool as well as execution.
pub fn check_nonce(sender: Address, expected: Nonce, found: Nonce) -> Result<(), TxError> {
    if found < expected {
        Err(TxError::StaleNonce {
            sender,
            expected,
            found,
        })
    } else if found > expected {
        Err(TxError::NonceGap {
            sender,
            expected,
            found,
        })
    } else {
        Ok(())
    }
}

/// The state tree update that writes `accounts` (a `None` value deletes the account).
pub fn tree_update<'a>(
    nodes: &dyn NodeSource,
    root: Child,
    accounts: impl Iterator<Item = (&'a Address, Option<&'a Account>)>,
) -> Result<TreeUpdate, TreeError> {
    tree_update_with(nodes, root, accounts, Vec::new())
}

/// Like [`tree_update`], with other state tree entries (oracle feeds) written too.
pub fn tree_update_with<'a>(
    nodes: &dyn NodeSource,
    root: Child,
    accounts: impl Iterator<Item = (&'a Address, Option<&'a Account>)>,
    mut others: Vec<(Hash, Option<Hash>)>,
) -> Result<TreeUpdate, TreeError> {
    others.extend(accounts.map(|(a, acc)| (account_key(a), acc.map(account_value))));
    others.sort_unstable_by_key(|c| c.0);
    smt::update(nodes, root, &others)
}

/// The state tree entries of the feeds a block changed.
pub fn feed_entries(feeds: &BTreeMap<FeedId, Arc<FeedState>>) -> Vec<(Hash, Option<Hash>)> {
    feeds
        .iter()
        .map(|(id, f)| {
            (
                crate::oracle::feed_key(id),
                Some(crate::oracle::feed_value(f)),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;
    use crate::rules::GENESIS_RULES;
    use proptest::prelude::*;

    const CHAIN: &str = "test-chain";

    fn key(i: u8) -> Keypair {
        Keypair::from_secret(&[i + 1; 32])
    }

    fn transfer(from: u8, nonce: u64, to: Address, amount: u64, fee: u64) -> Transaction {
        Transaction::new_signed(
            CHAIN,
            &key(from),
            Nonce(nonce),
            Amount(fee),
            Payload::Transfer {
                to,
                amount: Amount(amount),
            },
        )
    }

    fn ctx(reward: u64) -> BlockContext<'static> {
        BlockContext {
            chain_id: CHAIN,
            height: Height(1),
            producer: Address([0xaa; 20]),
            reward: Amount(reward),
            rules: &GENESIS_RULES,
        }
    }

    fn funded(n: u8, balance: u64) -> BTreeMap<Address, Account> {
        (0..n)
            .map(|i| {
                (
                    key(i).public().address(),
                    Account {
                        balance: Amount(balance),
                        ..Account::default()
                    },
                )
            })
            .collect()
    }

    fn supply(state: &BTreeMap<Address, Account>) -> u128 {
        state.values().map(Account::holdings).sum()
    }

    fn apply(state: &mut BTreeMap<Address, Account>, changes: &StateChanges) {
        for (a, acc) in &changes.updated {
            state.insert(*a, *acc);
        }
    }

    fn first_error(state: &BTreeMap<Address, Account>, txs: &[Transaction]) -> TxError {
        match execute_block(state, &ctx(0), txs, SigCheck::Batch) {
            Err(ExecError::Tx { error, .. }) => error,
            other => panic!("expected a transaction error, got {other:?}"),
        }
    }

    #[test]
    fn transfer_moves_amount_and_pays_fee_to_producer() {
        let mut state = funded(2, 100);
        let to = key(1).public().address();
        let changes = execute_block(
            &state,
            &ctx(0),
            &[transfer(0, 0, to, 30, 2)],
            SigCheck::Batch,
        )
        .unwrap();
        apply(&mut state, &changes);
        assert_eq!(state[&key(0).public().address()].balance, Amount(68));
        assert_eq!(state[&key(0).public().address()].nonce, Nonce(1));
        assert_eq!(state[&to].balance, Amount(130));
        assert_eq!(state[&ctx(0).producer].balance, Amount(2));
        assert_eq!(changes.receipts.len(), 1);
        assert_eq!(changes.previous[&ctx(0).producer], None);
    }

    #[test]
    fn replayed_and_gapped_nonces_are_rejected() {
        let state = funded(1, 100);
        let to = Address([9; 20]);
        let sender = key(0).public().address();
        assert_eq!(
            first_error(
                &state,
                &[transfer(0, 0, to, 1, 0), transfer(0, 0, to, 1, 0)]
            ),
            TxError::StaleNonce {
                sender,
                expected: Nonce(1),
                found: Nonce(0)
            }
        );
        assert_eq!(
            first_error(&state, &[transfer(0, 1, to, 1, 0)]),
            TxError::NonceGap {
                sender,
                expected: Nonce(0),
                found: Nonce(1)
            }
        );
    }

    #[test]
    fn wrong_chain_bad_signature_and_overspend_are_rejected() {
        let state = funded(1, 100);
        let to = Address([9; 20]);
        let other_chain = Transaction::new_signed(
            "other",
            &key(0),
            Nonce(0),
            Amount(0),
            Payload::Transfer {
                to,
                amount: Amount(1),
            },
        );
        assert!(matches!(
            first_error(&state, &[other_chain]),
            TxError::WrongChain { .. }
        ));
        let mut forged = transfer(0, 0, to, 1, 0);
        forged.payload = Payload::Transfer {
            to,
            amount: Amount(99),
        };
        assert_eq!(
            first_error(&state, &[forged]),
            TxError::BadSignature(SignatureError::Mismatch)
        );
        assert_eq!(
            first_error(&state, &[transfer(0, 0, to, 100, 1)]),
            TxError::InsufficientBalance {
                sender: key(0).public().address(),
                balance: Amount(100),
                needed: Amount(101)
            }
        );
        assert!(matches!(
            first_error(&state, &[transfer(0, 0, to, u64::MAX, 1)]),
            TxError::AmountOverflow { .. }
        ));
    }

    #[test]
    fn unfunded_sender_is_rejected_and_names_the_index() {
        let state = funded(1, 100);
        let txs = [
            transfer(0, 0, Address([9; 20]), 1, 0),
            transfer(5, 0, Address([9; 20]), 1, 0),
        ];
        match execute_block(&state, &ctx(0), &txs, SigCheck::Batch) {
            Err(ExecError::Tx { index, hash, .. }) => {
                assert_eq!(index, 1);
                assert_eq!(hash, txs[1].hash());
            }
            other => panic!("{other:?}"),
        }
    }

    /// Random blocks of transfers among a few accounts, some invalid.
    fn arb_block() -> impl Strategy<Value = Vec<(u8, u64, u8, u64, u64)>> {
        prop::collection::vec((0u8..6, 0u64..4, 0u8..7, 0u64..80, 0u64..5), 0..25)
    }

    fn build(
        state: &BTreeMap<Address, Account>,
        spec: &[(u8, u64, u8, u64, u64)],
    ) -> Vec<Transaction> {
        // Use the sender's real next nonce most of the time so that many blocks apply.
        let mut nonces: BTreeMap<u8, u64> = BTreeMap::new();
        spec.iter()
            .map(|&(from, nonce_skew, to, amount, fee)| {
                let addr = key(from).public().address();
                let next = nonces
                    .entry(from)
                    .or_insert_with(|| state.get(&addr).map_or(0, |a| a.nonce.0));
                let nonce = if nonce_skew == 3 { *next + 1 } else { *next };
                *next += 1;
                transfer(from, nonce, key(to).public().address(), amount, fee)
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn supply_is_conserved_except_for_the_reward(
            blocks in prop::collection::vec((arb_block(), 0u64..3), 1..6)
        ) {
            let mut state = funded(5, 100);
            for (spec, reward) in blocks {
                let txs = build(&state, &spec);
                let before = supply(&state);
                match execute_block(&state, &ctx(reward), &txs, SigCheck::Batch) {
                    Ok(changes) => {
                        apply(&mut state, &changes);
                        prop_assert_eq!(supply(&state), before + reward as u128);
                        prop_assert_eq!(changes.minted, Amount(reward));
                    }
                    Err(ExecError::Tx { .. }) => prop_assert_eq!(supply(&state), before),
                    Err(e) => return Err(TestCaseError::fail(e.to_string())),
                }
            }
        }

        #[test]
        fn batch_and_one_by_one_signature_checks_agree(
            spec in arb_block(), corrupt in prop::option::of(0usize..25)
        ) {
            let state = funded(5, 100);
            let mut txs = build(&state, &spec);
            if let Some(i) = corrupt && i < txs.len() {
                txs[i].signature.0[5] ^= 1;
            }
            let batch = execute_block(&state, &ctx(0), &txs, SigCheck::Batch);
            let each = execute_block(&state, &ctx(0), &txs, SigCheck::EachAlone);
            prop_assert_eq!(format!("{batch:?}"), format!("{each:?}"));
        }
    }
}
