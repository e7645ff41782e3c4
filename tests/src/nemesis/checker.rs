//! The nemesis's checker: reads every node's store after the run (the nodes stopped) and
//! holds it against the client history and what the nodes reported while running. Each
//! violation is one line naming the node, height, sender or transaction concerned.
//!
//! What it checks:
//! - no two nodes differ at any height they both have;
//! - no block a node reported committed while running is missing or different in its store
//!   (nothing committed was lost across crashes, hangs and full disks);
//! - every acknowledged transfer (the node answered "committed at height H") is in every
//!   store at height H;
//! - each sender's committed nonces are gap-free, every one of them a transaction the client
//!   signed, their heights never going down as the nonce goes up;
//! - every oracle round the chain keeps in its history equals the checker's replay of the
//!   oracle rules over the revealed values in the blocks (price and band, quorum, stakes,
//!   rewards, penalties), and so does every operator's bonded stake ([`super::oracle`]);
//! - the supply is conserved: balances and stakes over every account the run can touch add up
//!   to the genesis balances plus the oracle rewards minted, less the penalties burnt, by the
//!   replay (BFT pays no block reward).

use std::collections::BTreeMap;
use std::path::PathBuf;

use cairn_ledger::genesis::Genesis;
use cairn_ledger::store::Store;
use cairn_ledger::{Address, Hash, Height};

use super::client::{Clients, Op, Outcome};
use super::oracle;

/// A block a node reported as committed while the run went on (from its status).
#[derive(Clone, Debug)]
pub struct Observation {
    /// Milliseconds since the run started.
    pub at_ms: u64,
    pub node: usize,
    pub height: u64,
    pub hash: Hash,
}

/// One node's store as the checker reads it.
struct View {
    hashes: Vec<Hash>,
    store: Store,
}

impl View {
    fn tip(&self) -> u64 {
        self.hashes.len() as u64 - 1
    }
}

/// Most lines of one kind of violation listed; the rest are counted.
const LINES_PER_CHECK_MAX: usize = 10;

#[derive(Default)]
struct Found {
    lines: Vec<String>,
    per_check: BTreeMap<&'static str, usize>,
}

impl Found {
    fn add(&mut self, check: &'static str, line: String) {
        let n = self.per_check.entry(check).or_default();
        *n += 1;
        if *n <= LINES_PER_CHECK_MAX {
            self.lines.push(format!("{check}: {line}"));
        } else if *n == LINES_PER_CHECK_MAX + 1 {
            self.lines.push(format!("{check}: (more not listed)"));
        }
    }

    fn count(&self) -> usize {
        self.per_check.values().sum()
    }
}

/// What the checker found: one line per violation (a few per kind, the rest counted).
pub struct Verdict {
    pub violations: usize,
    pub lines: Vec<String>,
    /// Acknowledged transfers checked.
    pub acknowledged: usize,
    /// The height every store reaches.
    pub common_height: u64,
    /// Oracle rounds replayed, and how many of them set a price.
    pub oracle_rounds: usize,
    pub oracle_priced: usize,
}

/// Checks the stores under `data_dirs` (nodes stopped) against `history`, `observed` and
/// `clients`' accounts. `misread_oracle` is the test-only switch of [`oracle::replay`].
pub fn check(
    genesis: &Genesis,
    data_dirs: &[PathBuf],
    clients: &Clients,
    history: &[Op],
    observed: &[Observation],
    misread_oracle: bool,
) -> Verdict {
    let mut found = Found::default();
    let views: Vec<View> = data_dirs
        .iter()
        .enumerate()
        .filter_map(|(i, dir)| match read_view(genesis, dir) {
            Ok(v) => Some(v),
            Err(e) => {
                found.add("store", format!("node {i}: {e}"));
                None
            }
        })
        .collect();
    if views.len() != data_dirs.len() {
        return Verdict {
            violations: found.count(),
            lines: found.lines,
            acknowledged: 0,
            common_height: 0,
            oracle_rounds: 0,
            oracle_priced: 0,
        };
    }
    let common_height = views.iter().map(View::tip).min().unwrap_or(0);
    agreement(&views, &mut found);
    durability(&views, observed, &mut found);
    let acknowledged = acknowledged(&views, history, &mut found);
    nonces(&views[0], clients, history, &mut found);
    // The stores agree (or a fork was reported above): the blocks of the first are replayed,
    // and every store's oracle is held against that replay.
    let replay = match oracle::replay(genesis, &views[0].store, misread_oracle) {
        Ok(r) => r,
        Err(e) => {
            found.add("oracle", format!("node 0: replaying the blocks: {e}"));
            oracle::Replay::default()
        }
    };
    if let Some(why) = &replay.unsupported {
        found.add("oracle", format!("node 0: cannot replay: {why}"));
    } else {
        for (i, view) in views.iter().enumerate() {
            for line in oracle::compare(&view.store, &replay) {
                found.add("oracle", format!("node {i}: {line}"));
            }
        }
    }
    supply(genesis, &views, clients, &replay, &mut found);
    Verdict {
        violations: found.count(),
        lines: found.lines,
        acknowledged,
        common_height,
        oracle_rounds: replay.rounds.len(),
        oracle_priced: replay.rounds.iter().filter(|r| r.band.is_some()).count(),
    }
}

fn read_view(genesis: &Genesis, dir: &std::path::Path) -> Result<View, String> {
    let store = Store::open(dir, genesis).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tip = store.tip().height.0;
    let hashes = (0..=tip)
        .map(|h| match store.hash_at(Height(h)) {
            Ok(Some(hash)) => Ok(hash),
            Ok(None) => Err(format!("no block at height {h} below its tip {tip}")),
            Err(e) => Err(format!("reading height {h}: {e}")),
        })
        .collect::<Result<Vec<Hash>, String>>()?;
    Ok(View { hashes, store })
}

fn agreement(views: &[View], found: &mut Found) {
    for (i, a) in views.iter().enumerate() {
        for (j, b) in views.iter().enumerate().skip(i + 1) {
            if let Some(h) = a.hashes.iter().zip(&b.hashes).position(|(x, y)| x != y) {
                found.add(
                    "fork",
                    format!(
                        "nodes {i} and {j} differ at height {h}: {} vs {}",
                        a.hashes[h], b.hashes[h]
                    ),
                );
            }
        }
    }
}

fn durability(views: &[View], observed: &[Observation], found: &mut Found) {
    for o in observed {
        let view = &views[o.node];
        match view.hashes.get(o.height as usize) {
            Some(hash) if *hash == o.hash => {}
            Some(hash) => found.add(
                "changed",
                format!(
                    "node {} reported {} committed at height {}, its store has {hash}",
                    o.node, o.hash, o.height
                ),
            ),
            None => found.add(
                "lost",
                format!(
                    "node {} reported height {} committed, its store ends at {}",
                    o.node,
                    o.height,
                    view.tip()
                ),
            ),
        }
    }
}

/// Returns how many acknowledged transfers there were.
fn acknowledged(views: &[View], history: &[Op], found: &mut Found) -> usize {
    let mut count = 0;
    for op in history {
        let Outcome::Committed { height } = op.outcome else {
            continue;
        };
        count += 1;
        for (i, view) in views.iter().enumerate() {
            match view.store.tx_location(&op.hash) {
                Ok(Some(at)) if at.height.0 == height => {}
                Ok(Some(at)) => found.add(
                    "acknowledged",
                    format!(
                        "sender {} nonce {} ({}) acknowledged at height {height} by node {}, \
                         committed at {} on node {i}",
                        op.sender, op.nonce, op.hash, op.node, at.height.0
                    ),
                ),
                Ok(None) => found.add(
                    "acknowledged",
                    format!(
                        "sender {} nonce {} ({}) acknowledged at height {height} by node {} is \
                         not committed on node {i} (its store ends at {})",
                        op.sender,
                        op.nonce,
                        op.hash,
                        op.node,
                        view.tip()
                    ),
                ),
                Err(e) => found.add("store", format!("node {i}: {e}")),
            }
        }
    }
    count
}

fn nonces(view: &View, clients: &Clients, history: &[Op], found: &mut Found) {
    for (sender, key) in clients.keys.iter().enumerate() {
        let account = match view.store.account(&key.public().address()) {
            Ok(a) => a.unwrap_or_default(),
            Err(e) => return found.add("store", e.to_string()),
        };
        let next = account.nonce.0;
        let mut last_height = 0;
        for nonce in 0..next {
            let tx = clients.transaction(sender, nonce);
            match view.store.tx_location(&tx.hash()) {
                Ok(Some(at)) if at.height.0 >= last_height => last_height = at.height.0,
                Ok(Some(at)) => found.add(
                    "nonces",
                    format!(
                        "sender {sender} nonce {nonce} committed at height {}, below nonce {}'s \
                         {last_height}",
                        at.height.0,
                        nonce - 1
                    ),
                ),
                Ok(None) => found.add(
                    "nonces",
                    format!(
                        "sender {sender}'s nonce {nonce} is used (account nonce {next}) but not by \
                         the transaction the client signed for it"
                    ),
                ),
                Err(e) => found.add("store", e.to_string()),
            }
        }
        for op in history
            .iter()
            .filter(|o| o.sender == sender && o.nonce >= next)
        {
            if let Ok(Some(at)) = view.store.tx_location(&op.hash) {
                found.add(
                    "nonces",
                    format!(
                        "sender {sender} nonce {} committed at height {} above the account's \
                         nonce {next}",
                        op.nonce, at.height.0
                    ),
                );
            }
        }
    }
}

fn supply(
    genesis: &Genesis,
    views: &[View],
    clients: &Clients,
    replay: &oracle::Replay,
    found: &mut Found,
) {
    let genesis_total: u128 = genesis.accounts.iter().map(|a| a.balance.0 as u128).sum();
    let expected = genesis_total + replay.minted - replay.burned;
    let mut addresses: Vec<Address> = genesis.accounts.iter().map(|a| a.address).collect();
    addresses.extend(genesis.validators.iter().map(|v| v.public_key.address()));
    addresses.extend(clients.addresses());
    addresses.sort();
    addresses.dedup();
    for (i, view) in views.iter().enumerate() {
        let mut total = 0u128;
        for a in &addresses {
            match view.store.account(a) {
                Ok(Some(acc)) => total += acc.balance.0 as u128 + acc.stake.0 as u128,
                Ok(None) => {}
                Err(e) => return found.add("store", format!("node {i}: {e}")),
            }
        }
        if total != expected {
            found.add(
                "supply",
                format!(
                    "node {i} at height {}: balances and stakes add up to {total}, not {expected} \
                     (genesis {genesis_total} + oracle rewards {} - penalties {})",
                    view.tip(),
                    replay.minted,
                    replay.burned
                ),
            );
        }
    }
}
