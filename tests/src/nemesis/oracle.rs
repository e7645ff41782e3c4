//! The oracle under the nemesis: real `cairn oracle publish` daemons report the demo feed
//! through every fault, and the checker replays the oracle's rules over the committed blocks.
//!
//! The replay is the checker's own reading of the rules documented in `oracle/src/lib.rs`
//! (eligibility when a round opens, weight capped by bonded stake, quorum, the lower weighted
//! median and its 25–75% band, the reward band, largest-remainder rewards, penalties), written
//! apart from the oracle crate so that a slip in the chain's arithmetic or bookkeeping shows
//! as a difference. It takes from the store only what the chain decided at a height without
//! computing: the blocks, and each transaction's receipt (an oracle action the rules refused
//! still lands, with a `refused` receipt, and changes nothing). The publishers never unstake,
//! so the replay does not model unbonding; a run that contains an unstake says so instead of
//! guessing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use cairn_ledger::block::ReceiptStatus;
use cairn_ledger::crypto::Keypair;
use cairn_ledger::genesis::Genesis;
use cairn_ledger::keys::write_key_file;
use cairn_ledger::oracle::{OracleState, operator_id};
use cairn_ledger::store::Store;
use cairn_ledger::tx::Payload;
use cairn_ledger::{Address, Height};
use cairn_oracle::{FeedId, RoundNumber};

use crate::cairn_bin;

/// The feed every local genesis has.
pub const FEED: &str = "DEMO/USD";
/// What each publisher keeps bonded (`--stake`).
pub const STAKE: u64 = 5_000;
/// Near what the publishers report (`--source synthetic:…`).
const PRICE: &str = "1.00";

/// The publisher daemons of one run, one per operator key, each talking to one node.
pub struct Publishers {
    children: Vec<Child>,
    pub logs: Vec<PathBuf>,
}

impl Publishers {
    /// Starts one `cairn oracle publish` per key in `keys`, publisher `i` on node
    /// `i % rpcs.len()`, with its key, round files and log under `dir/publisher<i>`.
    pub fn start(dir: &Path, keys: &[Keypair], rpcs: &[String]) -> Result<Publishers, String> {
        let mut out = Publishers {
            children: Vec::new(),
            logs: Vec::new(),
        };
        for (i, key) in keys.iter().enumerate() {
            let home = dir.join(format!("publisher{i}"));
            std::fs::create_dir_all(&home).map_err(|e| format!("{}: {e}", home.display()))?;
            let key_file = home.join("op.key");
            write_key_file(&key_file, key).map_err(|e| format!("publisher {i}'s key: {e}"))?;
            let log_path = home.join("publisher.log");
            let log = std::fs::File::create(&log_path)
                .map_err(|e| format!("{}: {e}", log_path.display()))?;
            let err = log.try_clone().map_err(|e| e.to_string())?;
            let child = Command::new(cairn_bin())
                .args(["oracle", "publish", "--feed", FEED, "--key"])
                .arg(&key_file)
                .args(["--source", &format!("synthetic:{PRICE}")])
                .args(["--stake", &STAKE.to_string()])
                .arg("--state-dir")
                .arg(home.join("state"))
                .args(["--rpc", &rpcs[i % rpcs.len()]])
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .spawn()
                .map_err(|e| format!("starting publisher {i}: {e}"))?;
            out.children.push(child);
            out.logs.push(log_path);
        }
        Ok(out)
    }

    /// Stops every publisher; returns the ones that had exited on their own, with status.
    pub fn stop(&mut self) -> Vec<String> {
        let mut exited = Vec::new();
        for (i, c) in self.children.iter_mut().enumerate() {
            if let Ok(Some(status)) = c.try_wait() {
                exited.push(format!(
                    "publisher {i} exited on its own ({status}); see {}",
                    self.logs[i].display()
                ));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
        exited
    }
}

impl Drop for Publishers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One finished round as the replay computes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub round: u64,
    pub end: u64,
    /// (low, median, high) when the round reached quorum.
    pub band: Option<(u64, u64, u64)>,
    pub price_in_force: Option<u64>,
    pub eligible: u64,
    pub revealed: u64,
    pub commits: u32,
    pub reveals: u32,
    pub rewards: u64,
    pub penalties: u64,
}

/// What replaying the blocks gave.
#[derive(Debug, Default)]
pub struct Replay {
    pub rounds: Vec<Round>,
    /// Each operator's bonded stake after the last block.
    pub bonded: BTreeMap<Address, u64>,
    pub minted: u128,
    pub burned: u128,
    /// Why the replay stopped short (an action it does not model), if it did.
    pub unsupported: Option<String>,
}

/// The weighted `q_bps` percentile of `samples` sorted by value: the smallest value whose
/// cumulative weight reaches `q` of the total (so the lower median at 5000).
fn percentile(sorted: &[(u64, u64)], q_bps: u128) -> Option<u64> {
    let total: u128 = sorted.iter().map(|s| u128::from(s.1)).sum();
    if total == 0 {
        return None;
    }
    let mut cum = 0u128;
    for &(value, weight) in sorted {
        cum += u128::from(weight);
        if weight > 0 && cum * 10_000 >= q_bps * total {
            return Some(value);
        }
    }
    None
}

/// `pool` shared pro rata to weight, the leftover tokens one each to the largest remainders
/// (ties to the smaller address); in the order of `weights`.
fn shares(pool: u64, weights: &[(Address, u64)]) -> Vec<u64> {
    let total: u128 = weights.iter().map(|w| u128::from(w.1)).sum();
    if total == 0 {
        return vec![0; weights.len()];
    }
    let mut out: Vec<u64> = weights
        .iter()
        .map(|w| (u128::from(pool) * u128::from(w.1) / total) as u64)
        .collect();
    let left = pool - out.iter().sum::<u64>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let rem = |i: usize| u128::from(pool) * u128::from(weights[i].1) % total;
        rem(b).cmp(&rem(a)).then(weights[a].0.cmp(&weights[b].0))
    });
    for &i in order.iter().take(left as usize) {
        out[i] += 1;
    }
    out
}

/// Replays the oracle rules for [`FEED`] over `store`'s blocks 1..=tip. `misread` is the
/// test-only switch: the replay reads every reveal of the first round with a price one unit
/// higher than it is, as if the chain had aggregated other values than it committed.
pub fn replay(genesis: &Genesis, store: &Store, misread: bool) -> Result<Replay, String> {
    let feed_id = FeedId::new(FEED).map_err(|e| e.to_string())?;
    let oracle = OracleState::from_genesis(&genesis.oracle)
        .map_err(|e| format!("genesis oracle: {e}"))?
        .ok_or("genesis has no oracle")?;
    let feed = oracle
        .feed(&feed_id)
        .ok_or_else(|| format!("genesis has no feed {FEED}"))?;
    let p = feed.params().clone();
    let min_stake = oracle.config().min_operator_stake.0;
    let schedule = feed.schedule();
    let bounds = |r: u64| {
        schedule
            .bounds(RoundNumber(r))
            .ok_or_else(|| format!("round {r} has no heights"))
    };

    let mut out = Replay::default();
    let mut round = 0u64;
    let mut end = bounds(0)?.end.0;
    let mut eligible: BTreeMap<Address, u64> = BTreeMap::new();
    let mut commits: BTreeMap<u64, BTreeSet<Address>> = BTreeMap::new();
    let mut reveals: BTreeMap<u64, BTreeMap<Address, u64>> = BTreeMap::new();
    let mut last_price: Option<u64> = None;
    let mut misread_left = misread;
    let tip = store.tip().height.0;
    for h in 1..=tip {
        let block = store
            .block_at(Height(h))
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no block at height {h}"))?;
        let receipts = store
            .receipts(Height(h))
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no receipts at height {h}"))?;
        if receipts.len() != block.transactions.len() {
            return Err(format!(
                "height {h}: {} receipts for {} transactions",
                receipts.len(),
                block.transactions.len()
            ));
        }
        for (tx, receipt) in block.transactions.iter().zip(&receipts) {
            if receipt.status != ReceiptStatus::Applied {
                continue;
            }
            let sender = tx.sender_address();
            match &tx.payload {
                Payload::OracleStake { feed, amount } if *feed == feed_id => {
                    *out.bonded.entry(sender).or_default() += amount.0;
                }
                Payload::OracleUnstake { feed, .. } if *feed == feed_id => {
                    out.unsupported = Some(format!(
                        "an unstake at height {h} (the replay does not model unbonding)"
                    ));
                    return Ok(out);
                }
                Payload::OracleCommit { feed, round, .. } if *feed == feed_id => {
                    commits.entry(round.0).or_default().insert(sender);
                }
                Payload::OracleReveal {
                    feed, round, value, ..
                } if *feed == feed_id => {
                    reveals.entry(round.0).or_default().insert(sender, value.0);
                }
                _ => {}
            }
        }
        // The end of the block: finalise the round that ends here, open the next.
        while end <= h {
            let committed = commits.remove(&round).unwrap_or_default();
            let revealed = reveals.remove(&round).unwrap_or_default();
            let weight = |a: &Address| {
                let cap = out.bonded.get(a).copied().unwrap_or(0);
                eligible.get(a).copied().unwrap_or(0).min(cap)
            };
            let bump = u64::from(misread_left);
            let mut samples: Vec<(u64, u64)> = revealed
                .iter()
                .map(|(a, v)| (v + bump, weight(a)))
                .collect();
            samples.sort();
            let revealed_stake: u128 = samples.iter().map(|s| u128::from(s.1)).sum();
            let eligible_total: u128 = eligible.values().map(|&s| u128::from(s)).sum();
            let quorum = revealed_stake > 0
                && revealed_stake >= u128::from(p.quorum_stake_min.0)
                && revealed_stake * 10_000 >= eligible_total * u128::from(p.quorum_bps);
            let band = if quorum {
                match (
                    percentile(&samples, 2500),
                    percentile(&samples, 5000),
                    percentile(&samples, 7500),
                ) {
                    (Some(l), Some(m), Some(h)) => Some((l, m, h)),
                    _ => None,
                }
            } else {
                None
            };
            if band.is_some() {
                misread_left = false;
            }
            let mut in_band = Vec::new();
            let mut penalised = Vec::new();
            for a in &committed {
                match (revealed.get(a), band) {
                    (None, _) => penalised.push((*a, p.reveal_miss_penalty_bps)),
                    (Some(_), None) => {}
                    (Some(&v), Some((_, m, _))) => {
                        let off = u128::from(v.abs_diff(m)) * 10_000;
                        if off <= u128::from(m) * u128::from(p.reward_band_bps) {
                            in_band.push((*a, weight(a)));
                        } else {
                            penalised.push((*a, p.out_of_band_penalty_bps));
                        }
                    }
                }
            }
            let rewards: u64 = shares(p.round_reward.0, &in_band).iter().sum();
            let mut penalties = 0u64;
            for (a, bps) in penalised {
                if let Some(b) = out.bonded.get_mut(&a) {
                    let cut = (u128::from(*b) * u128::from(bps) / 10_000) as u64;
                    *b -= cut;
                    penalties += cut;
                }
            }
            if let Some((_, m, _)) = band {
                last_price = Some(m);
            }
            out.minted += u128::from(rewards);
            out.burned += u128::from(penalties);
            out.rounds.push(Round {
                round,
                end,
                band,
                price_in_force: last_price,
                eligible: eligible_total as u64,
                revealed: revealed_stake as u64,
                commits: committed.len() as u32,
                reveals: revealed.len() as u32,
                rewards,
                penalties,
            });
            round += 1;
            end = bounds(round)?.end.0;
            eligible = out
                .bonded
                .iter()
                .filter(|(_, s)| **s >= min_stake)
                .map(|(a, s)| (*a, *s))
                .collect();
        }
    }
    Ok(out)
}

/// Holds `store`'s feed after the run against `replay`: every round in the feed's history,
/// and every operator's bonded stake. One line per difference.
pub fn compare(store: &Store, replay: &Replay) -> Vec<String> {
    let mut lines = Vec::new();
    let Ok(feed_id) = FeedId::new(FEED) else {
        return vec![format!("{FEED} is not a feed id")];
    };
    let Some(oracle) = store.oracle() else {
        return vec!["the store has no oracle".to_owned()];
    };
    let Some(feed) = oracle.feed(&feed_id) else {
        return vec![format!("the store has no feed {FEED}")];
    };
    let by_round: BTreeMap<u64, &Round> = replay.rounds.iter().map(|r| (r.round, r)).collect();
    for s in feed.history() {
        let band = match s.outcome {
            cairn_oracle::RoundOutcome::Price(b) => Some((b.low.0, b.median.0, b.high.0)),
            cairn_oracle::RoundOutcome::NoQuorum => None,
        };
        let stored = Round {
            round: s.round.0,
            end: s.end_height.0,
            band,
            price_in_force: s.price_in_force.map(|p| p.0),
            eligible: s.eligible_stake.0,
            revealed: s.revealed_stake.0,
            commits: s.commits,
            reveals: s.reveals,
            rewards: s.rewards_paid.0,
            penalties: s.penalties.0,
        };
        match by_round.get(&stored.round) {
            Some(r) if **r == stored => {}
            Some(r) => lines.push(format!(
                "round {} (ending at height {}): the chain has {}, the replay of its blocks \
                 gives {}",
                stored.round,
                stored.end,
                describe(&stored),
                describe(r)
            )),
            None => lines.push(format!(
                "round {} ending at height {} is in the chain's history, not in the replay",
                stored.round, stored.end
            )),
        }
    }
    for (address, bonded) in &replay.bonded {
        let chain = feed
            .operator(&operator_id(address))
            .map_or(0, |o| o.bonded.0);
        if chain != *bonded {
            lines.push(format!(
                "operator {address}: {chain} bonded on chain, the replay gives {bonded}"
            ));
        }
    }
    lines
}

fn describe(r: &Round) -> String {
    let price = match r.band {
        Some((l, m, h)) => format!("price {m} (band {l}..{h})"),
        None => "no quorum".to_owned(),
    };
    format!(
        "{price}, in force {:?}, eligible {} revealed {}, {} commits {} reveals, rewards {} \
         penalties {}",
        r.price_in_force, r.eligible, r.revealed, r.commits, r.reveals, r.rewards, r.penalties
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_percentiles_are_the_lower_weighted_ones() {
        // Half the weight at 10: the lower median is 10, not the mean of 10 and 20.
        assert_eq!(percentile(&[(10, 1), (20, 1)], 5000), Some(10));
        // One heavy operator holds the median.
        assert_eq!(percentile(&[(1, 1), (5, 10), (9, 1)], 5000), Some(5));
        assert_eq!(percentile(&[(1, 3), (5, 1), (9, 1)], 2500), Some(1));
        assert_eq!(percentile(&[(1, 1), (5, 1), (9, 3)], 7500), Some(9));
        // Zero weight counts for nothing.
        assert_eq!(percentile(&[(1, 0), (5, 2)], 2500), Some(5));
        assert_eq!(percentile(&[(1, 0)], 5000), None);
    }

    #[test]
    fn shares_add_up_to_the_pool_with_leftovers_to_the_largest_remainders() {
        let a = |b: u8| Address([b; 20]);
        assert_eq!(shares(10, &[(a(3), 1), (a(1), 1), (a(2), 1)]), [3, 4, 3]);
        assert_eq!(shares(7, &[(a(1), 2), (a(2), 1)]), [5, 2]);
        assert_eq!(shares(10, &[]), Vec::<u64>::new());
        assert_eq!(shares(10, &[(a(1), 0)]), [0]);
    }
}
