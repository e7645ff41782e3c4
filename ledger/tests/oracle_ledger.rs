//! The oracle inside the ledger, on a real RocksDB store: staking moves balance to stake,
//! commit-reveal rounds settle into a price, penalties burn stake and rewards are minted, the
//! feed state is in the state root, and reverting a block restores it exactly.

use cairn_ledger::block::{Block, BlockHeader, ReceiptStatus, Seal};
use cairn_ledger::crypto::Keypair;
use cairn_ledger::genesis::{EngineKind, Genesis};
use cairn_ledger::oracle::operator_id;
use cairn_ledger::oracle::rules::{self, FeedId, Price, RoundNumber, Salt};
use cairn_ledger::state::SigCheck;
use cairn_ledger::store::Store;
use cairn_ledger::tx::{Payload, Transaction};
use cairn_ledger::types::{Address, Amount, Hash, Height, Nonce, ProtocolVersion, TimestampMs};

const FUNDS: u64 = 100_000;
const STAKE: u64 = 2_000;
const PRODUCER: Address = Address([7; 20]);

struct Net {
    _dir: tempfile::TempDir,
    store: Store,
    operators: Vec<Keypair>,
    feed: FeedId,
}

/// DEMO/USD with windows of 5 + 5 blocks, which the heights in these tests count on.
fn with_short_windows(mut genesis: Genesis) -> Genesis {
    let feed = &mut genesis.oracle.feeds[0];
    feed.commit_window_blocks = 5;
    feed.reveal_window_blocks = 5;
    genesis
}

fn net() -> Net {
    let validator = Keypair::from_secret(&[200; 32]);
    let operators: Vec<Keypair> = (1..=5).map(|i| Keypair::from_secret(&[i; 32])).collect();
    let funded: Vec<(Address, Amount)> = operators
        .iter()
        .map(|k| (k.public().address(), Amount(FUNDS)))
        .collect();
    let genesis = with_short_windows(Genesis::local(
        EngineKind::HotStuff,
        &[validator.public()],
        &funded,
        TimestampMs(1),
    ));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &genesis).unwrap();
    Net {
        _dir: dir,
        store,
        operators,
        feed: FeedId::new("DEMO/USD").unwrap(),
    }
}

impl Net {
    fn tx(&self, who: usize, payload: Payload) -> Transaction {
        let key = &self.operators[who];
        let nonce = self
            .store
            .account(&key.public().address())
            .unwrap()
            .map_or(Nonce(0), |a| a.nonce);
        Transaction::new_signed(self.store.chain_id(), key, nonce, Amount(1), payload)
    }

    /// Builds and commits the next block with `txs`; returns its receipts' statuses.
    fn block(&self, txs: Vec<Transaction>) -> Vec<ReceiptStatus> {
        let template = Block {
            header: BlockHeader {
                height: Height(0),
                parent: Hash::ZERO,
                timestamp: TimestampMs(2),
                tx_root: Hash::ZERO,
                state_root: Hash::ZERO,
                proposer: PRODUCER,
                protocol_version: ProtocolVersion(1),
                seal: Seal::Genesis,
            },
            transactions: txs,
        };
        let prepared = self
            .store
            .complete_block(template, Amount(0), SigCheck::Batch)
            .unwrap();
        let statuses = prepared
            .changes
            .receipts
            .iter()
            .map(|r| r.status.clone())
            .collect();
        self.store.commit(&prepared).unwrap();
        statuses
    }

    fn until(&self, height: u64) {
        while self.store.tip().height.0 < height {
            self.block(Vec::new());
        }
    }

    fn stake(&self, who: usize, amount: u64) -> Transaction {
        self.tx(
            who,
            Payload::OracleStake {
                feed: self.feed.clone(),
                amount: Amount(amount),
            },
        )
    }

    fn address(&self, who: usize) -> Address {
        self.operators[who].public().address()
    }

    fn commit(&self, who: usize, round: u64, value: u64, salt: u8) -> Transaction {
        let commitment = rules::commit_hash(
            &self.feed,
            RoundNumber(round),
            Price(value),
            &Salt([salt; 32]),
            &operator_id(&self.address(who)),
        );
        self.tx(
            who,
            Payload::OracleCommit {
                feed: self.feed.clone(),
                round: RoundNumber(round),
                commitment,
            },
        )
    }

    fn reveal(&self, who: usize, round: u64, value: u64, salt: u8) -> Transaction {
        self.tx(
            who,
            Payload::OracleReveal {
                feed: self.feed.clone(),
                round: RoundNumber(round),
                value: Price(value),
                salt: Salt([salt; 32]),
            },
        )
    }

    /// Balance plus stake over the operators and the producer.
    fn holdings(&self) -> u128 {
        (0..self.operators.len())
            .map(|i| self.address(i))
            .chain([PRODUCER])
            .filter_map(|a| self.store.account(&a).unwrap())
            .map(|a| a.holdings())
            .sum()
    }
}

fn applied(statuses: &[ReceiptStatus]) {
    for s in statuses {
        assert_eq!(*s, ReceiptStatus::Applied);
    }
}

/// DEMO/USD as [`with_short_windows`] sets it: rounds of 5 commit + 5 reveal blocks from height 1, so
/// round 1 commits at 11..=15, reveals at 16..=20 and is settled at the end of block 20.
#[test]
fn a_round_settles_into_the_honest_median_with_penalties_and_rewards() {
    let n = net();
    let before = n.holdings();
    let stakes: Vec<Transaction> = (0..5).map(|i| n.stake(i, STAKE)).collect();
    applied(&n.block(stakes));
    for i in 0..5 {
        let a = n.store.account(&n.address(i)).unwrap().unwrap();
        assert_eq!(a.stake, Amount(STAKE));
        assert_eq!(a.balance, Amount(FUNDS - STAKE - 1));
    }
    n.until(10);
    // Three honest, one far off, one that will not reveal.
    let values = [1_000_000, 1_010_000, 1_005_000, 5_000_000, 1_002_000];
    let commits = (0..5).map(|i| n.commit(i, 1, values[i], i as u8)).collect();
    applied(&n.block(commits)); // height 11
    n.until(15);
    let reveals = (0..4).map(|i| n.reveal(i, 1, values[i], i as u8)).collect();
    applied(&n.block(reveals)); // height 16
    n.until(19);
    let root_19 = n.store.tip().state_root;
    let oracle_19 = n.store.oracle().unwrap();
    n.block(Vec::new()); // height 20: the round is settled
    let root_20 = n.store.tip().state_root;
    assert_ne!(
        root_19, root_20,
        "settling the round changes the state root"
    );

    let oracle = n.store.oracle().unwrap();
    let feed = oracle.feed(&n.feed).unwrap();
    let last = feed.last_price().expect("round 1 reached quorum");
    assert_eq!(last.band.median, Price(1_005_000));
    assert_eq!(last.round, RoundNumber(1));

    let status = |i: usize| feed.operator_status(&operator_id(&n.address(i))).unwrap();
    // 10 bps of 2,000 taken from the liar and the silent one, burnt from account stake.
    for (i, field) in [(3, "out_of_band"), (4, "misses")] {
        let s = status(i);
        assert_eq!(s.bonded.0, STAKE - 2, "operator {i}");
        assert_eq!(s.record.penalties_total.0, 2);
        let count = if field == "misses" {
            s.record.misses
        } else {
            s.record.out_of_band
        };
        assert_eq!(count, 1, "operator {i} {field}");
        let a = n.store.account(&n.address(i)).unwrap().unwrap();
        assert_eq!(a.stake, Amount(STAKE - 2));
    }
    // The in-band three share the round reward of 10 exactly, as balance.
    let mut rewards = 0;
    for i in 0..3 {
        let s = status(i);
        assert_eq!(s.record.in_band, 1);
        let a = n.store.account(&n.address(i)).unwrap().unwrap();
        let fees = 3; // stake, commit, reveal
        assert_eq!(a.balance.0 + fees + STAKE - FUNDS, s.record.rewards_total.0);
        rewards += s.record.rewards_total.0;
    }
    assert_eq!(rewards, 10);
    // Supply: the reward minted, the penalties burnt, fees moved to the producer.
    assert_eq!(n.holdings(), before + 10 - 4);

    // Reverting the settling block restores the feed and the root exactly; re-applying
    // gives the same root again.
    let block_20 = n.store.revert_tip().unwrap();
    assert_eq!(n.store.tip().state_root, root_19);
    assert_eq!(*n.store.oracle().unwrap(), *oracle_19);
    assert_eq!(
        n.store.account(&n.address(3)).unwrap().unwrap().stake,
        Amount(STAKE)
    );
    n.store.apply(block_20, Amount(0), SigCheck::Batch).unwrap();
    assert_eq!(n.store.tip().state_root, root_20);
}

#[test]
fn refused_oracle_actions_land_with_a_reason_and_charge_the_fee() {
    let n = net();
    let stakes = (0..2).map(|i| n.stake(i, STAKE)).collect();
    applied(&n.block(stakes));
    // Below the minimum stake of 1,000: refused, nothing bonded, fee paid.
    let small = n.stake(2, 10);
    let statuses = n.block(vec![small]);
    let ReceiptStatus::Refused { reason } = &statuses[0] else {
        panic!("{statuses:?}")
    };
    assert!(reason.contains("1000"), "{reason}");
    let a = n.store.account(&n.address(2)).unwrap().unwrap();
    assert_eq!((a.balance.0, a.stake.0, a.nonce), (FUNDS - 1, 0, Nonce(1)));

    n.until(10);
    applied(&n.block(vec![n.commit(0, 1, 500, 1), n.commit(1, 1, 600, 2)]));
    // Revealing in the commit phase is early.
    let early = n.block(vec![n.reveal(0, 1, 500, 1)]);
    assert!(
        matches!(&early[0], ReceiptStatus::Refused { reason } if reason.contains("not in its reveal window")),
        "{early:?}"
    );
    n.until(15);
    // Operator 1 reveals operator 0's value and salt: not its own commitment.
    let copied = n.block(vec![n.reveal(1, 1, 500, 1)]);
    let ReceiptStatus::Refused { reason } = &copied[0] else {
        panic!("{copied:?}")
    };
    assert!(reason.contains("only its own commitment"), "{reason}");
    // A wrong value does not open the commitment.
    let wrong = n.block(vec![n.reveal(0, 1, 501, 1)]);
    assert!(
        matches!(&wrong[0], ReceiptStatus::Refused { .. }),
        "{wrong:?}"
    );
    applied(&n.block(vec![n.reveal(0, 1, 500, 1)]));
    let twice = n.block(vec![n.reveal(0, 1, 500, 1)]);
    assert!(
        matches!(&twice[0], ReceiptStatus::Refused { .. }),
        "{twice:?}"
    );
    n.until(20);
    // After the reveal window: late.
    let late = n.block(vec![n.reveal(1, 1, 600, 2)]);
    assert!(
        matches!(&late[0], ReceiptStatus::Refused { .. }),
        "{late:?}"
    );
    // An unknown feed is named with the feeds that exist.
    let unknown = n.block(vec![n.tx(
        2,
        Payload::OracleStake {
            feed: FeedId::new("BTC/USD").unwrap(),
            amount: Amount(STAKE),
        },
    )]);
    let ReceiptStatus::Refused { reason } = &unknown[0] else {
        panic!("{unknown:?}")
    };
    assert!(
        reason.contains("BTC/USD") && reason.contains("DEMO/USD"),
        "{reason}"
    );
}

#[test]
fn unstaked_funds_return_to_the_balance_after_the_unbonding_period() {
    let n = net();
    applied(&n.block(vec![n.stake(0, STAKE)]));
    applied(&n.block(vec![n.tx(
        0,
        Payload::OracleUnstake {
            feed: n.feed.clone(),
            amount: Amount(STAKE),
        },
    )])); // height 2; genesis unbonding is 100 blocks
    n.until(101);
    let a = n.store.account(&n.address(0)).unwrap().unwrap();
    assert_eq!(a.stake, Amount(STAKE), "still unbonding at 101");
    n.until(102);
    let a = n.store.account(&n.address(0)).unwrap().unwrap();
    assert_eq!((a.stake.0, a.balance.0), (0, FUNDS - 2));
}

#[test]
fn the_oracle_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let validator = Keypair::from_secret(&[200; 32]);
    let op = Keypair::from_secret(&[1; 32]);
    let genesis = with_short_windows(Genesis::local(
        EngineKind::HotStuff,
        &[validator.public()],
        &[(op.public().address(), Amount(FUNDS))],
        TimestampMs(1),
    ));
    let store = Store::open(dir.path(), &genesis).unwrap();
    let n = Net {
        _dir: tempfile::tempdir().unwrap(),
        store,
        operators: vec![op],
        feed: FeedId::new("DEMO/USD").unwrap(),
    };
    applied(&n.block(vec![n.stake(0, STAKE)]));
    n.until(12);
    let before = n.store.oracle().unwrap();
    let root = n.store.tip().state_root;
    drop(n);
    let store = Store::open(dir.path(), &genesis).unwrap();
    assert_eq!(*store.oracle().unwrap(), *before);
    assert_eq!(store.tip().state_root, root);
}
