//! The oracle's JSON-RPC methods: read-only views of the feeds at the tip. Prices are
//! integers in `10^-decimals` units of the quote, with the decimals alongside and a
//! `price_text` with the point placed, so no client has to guess.

use std::sync::Arc;

use cairn_ledger::oracle::rules::{
    FeedId, FeedState, OperatorStatus, Phase, Price, RoundStatus, RoundSummary,
};
use cairn_ledger::oracle::{OracleState, operator_id};
use cairn_ledger::{Address, Height};
use serde_json::{Value, json};

use super::error::RpcError;
use super::params::Params;
use crate::http::state::RpcState;

/// Most finished rounds `oracle_price` returns with `history`.
pub const HISTORY_MAX: u64 = cairn_ledger::oracle::rules::ROUND_HISTORY_MAX as u64;

/// The oracle and the height it is the state after.
fn oracle(state: &RpcState) -> Result<(Height, Arc<OracleState>), RpcError> {
    state
        .store
        .oracle_at()
        .ok_or_else(|| RpcError::NotSupported {
            what: "the oracle on this network (its genesis has no [oracle] section)".into(),
        })
}

fn feed_param<'a>(oracle: &'a OracleState, p: &Params) -> Result<&'a FeedState, RpcError> {
    let text = p.required_str("feed")?;
    let id = FeedId::new(text).map_err(|e| RpcError::invalid_param("feed", e.to_string()))?;
    oracle
        .feed(&id)
        .ok_or_else(|| RpcError::invalid_param("feed", oracle.unknown_feed(&id)))
}

fn price_json(price: Price, decimals: u8) -> Value {
    json!({ "value": price.0, "text": price.format(decimals) })
}

/// `oracle_feeds`: every feed with its parameters and current round.
pub(super) fn feeds(state: &RpcState) -> Result<Value, RpcError> {
    let (tip, oracle) = oracle(state)?;
    let now = to_rules(tip);
    let feeds: Vec<Value> = oracle
        .feeds()
        .map(|f| {
            let p = f.params();
            json!({
                "feed": f.id(),
                "decimals": p.decimals,
                "commit_window_blocks": p.commit_window_blocks,
                "reveal_window_blocks": p.reveal_window_blocks,
                "quorum_bps": p.quorum_bps,
                "reward_band_bps": p.reward_band_bps,
                "reveal_miss_penalty_bps": p.reveal_miss_penalty_bps,
                "out_of_band_penalty_bps": p.out_of_band_penalty_bps,
                "round_reward": p.round_reward.0,
                "operators": f.operators().len(),
                "stake_total": f.stake_total().to_string(),
                "current_round": f.price(now).current_round.0,
            })
        })
        .collect();
    Ok(json!({
        "unbonding_blocks": oracle.config().unbonding_blocks,
        "min_operator_stake": oracle.config().min_operator_stake.0,
        "feeds": feeds,
    }))
}

/// `oracle_price`: the feed's price at the tip with its confidence band, the round that set
/// it, its age and whether it is stale (the latest finished round set no price); with
/// `twap_window` (blocks) the TWAP over that window, with `history` (count) the latest
/// finished rounds, newest first.
pub(super) fn price(state: &RpcState, p: &Params) -> Result<Value, RpcError> {
    let (tip, oracle) = oracle(state)?;
    let feed = feed_param(&oracle, p)?;
    let now = to_rules(tip);
    let view = feed.price(now);
    let decimals = view.decimals;
    let mut out = json!({
        "feed": view.feed,
        "decimals": decimals,
        "height": tip.0,
        "current_round": view.current_round.0,
        "price": Value::Null,
        "confidence": Value::Null,
        "round": Value::Null,
        "age_blocks": view.age_blocks,
        "age_rounds": view.age_rounds,
        "stale": view.age_rounds.is_none_or(|r| r > 0),
    });
    if let Some(last) = view.last {
        out["price"] = price_json(last.band.median, decimals);
        out["confidence"] = json!({
            "low": price_json(last.band.low, decimals),
            "high": price_json(last.band.high, decimals),
        });
        out["round"] = json!(last.round.0);
        out["set_at_height"] = json!(last.height.0);
    }
    if let Some(window) = p.u64("twap_window")? {
        if window == 0 {
            return Err(RpcError::invalid_param(
                "twap_window",
                "is 0; a TWAP window is at least one block",
            ));
        }
        let twap = feed
            .twap(now, window)
            .map_err(|e| RpcError::invalid_param("twap_window", e.to_string()))?;
        out["twap"] = json!({ "window_blocks": window, "price": price_json(twap, decimals) });
    }
    if let Some(n) = p.u64("history")? {
        if n > HISTORY_MAX {
            return Err(RpcError::invalid_param(
                "history",
                format!("{n} rounds asked; at most {HISTORY_MAX} are kept"),
            ));
        }
        let rounds: Vec<Value> = feed
            .history()
            .take(n as usize)
            .map(|r| summary_json(r, decimals))
            .collect();
        out["history"] = Value::Array(rounds);
    }
    Ok(out)
}

fn summary_json(r: &RoundSummary, decimals: u8) -> Value {
    let (outcome, band) = match r.outcome {
        cairn_ledger::oracle::rules::RoundOutcome::Price(b) => (
            "price",
            json!({
                "median": price_json(b.median, decimals),
                "low": price_json(b.low, decimals),
                "high": price_json(b.high, decimals),
            }),
        ),
        cairn_ledger::oracle::rules::RoundOutcome::NoQuorum => ("no_quorum", Value::Null),
    };
    json!({
        "round": r.round.0,
        "end_height": r.end_height.0,
        "outcome": outcome,
        "band": band,
        "price_in_force": r.price_in_force.map(|p| price_json(p, decimals)),
        "eligible_stake": r.eligible_stake.0,
        "revealed_stake": r.revealed_stake.0,
        "commits": r.commits,
        "reveals": r.reveals,
        "rewards_paid": r.rewards_paid.0,
        "penalties": r.penalties.0,
    })
}

/// `oracle_round`: the feed's open round, and where the next block (the earliest a
/// transaction sent now can land) falls in it.
pub(super) fn round(state: &RpcState, p: &Params) -> Result<Value, RpcError> {
    let (tip, oracle) = oracle(state)?;
    let feed = feed_param(&oracle, p)?;
    let next = to_rules(tip.next());
    let r: RoundStatus = feed.round_status(next);
    let phase = match r.phase {
        Some(Phase::Commit) => "commit",
        Some(Phase::Reveal) => "reveal",
        None => "closed",
    };
    Ok(json!({
        "feed": feed.id(),
        "height": tip.0,
        "round": r.bounds.round.0,
        "commit_start": r.bounds.start.0,
        "reveal_start": r.bounds.reveal_start.0,
        "end": r.bounds.end.0,
        "next_height_phase": phase,
        "eligible_operators": r.eligible_operators,
        "eligible_stake": r.eligible_stake.0,
        "commits": r.commits,
        "reveals": r.reveals,
    }))
}

/// `oracle_operator`: an operator's stake, unbonding entries, standing in the open round and
/// record (commits, reveals, misses, out-of-band reveals, rewards and penalties).
pub(super) fn operator(state: &RpcState, p: &Params) -> Result<Value, RpcError> {
    let (_, oracle) = oracle(state)?;
    let feed = feed_param(&oracle, p)?;
    let address: Address = p
        .required_str("address")?
        .parse()
        .map_err(|e: String| RpcError::invalid_param("address", e))?;
    let status: OperatorStatus = feed
        .operator_status(&operator_id(&address))
        .ok_or_else(|| RpcError::NotFound {
            what: "operator",
            key: format!("{address} in feed {}", feed.id()),
        })?;
    let unbonding: Vec<Value> = status
        .unbonding
        .iter()
        .map(|u| json!({ "amount": u.amount.0, "release_height": u.release_height.0 }))
        .collect();
    let rec = status.record;
    Ok(json!({
        "feed": feed.id(),
        "address": address,
        "bonded": status.bonded.0,
        "unbonding": unbonding,
        "unbonding_total": status.unbonding_total.0,
        "eligible_stake": status.eligible_stake.map(|a| a.0),
        "committed": status.committed,
        "revealed": status.revealed.map(|v| v.0),
        "joined_height": rec.joined_height.0,
        "commits": rec.commits,
        "reveals": rec.reveals,
        "misses": rec.misses,
        "out_of_band": rec.out_of_band,
        "in_band": rec.in_band,
        "rewards_total": rec.rewards_total.0,
        "penalties_total": rec.penalties_total.0,
    }))
}

fn to_rules(h: Height) -> cairn_ledger::oracle::rules::Height {
    cairn_ledger::oracle::height_to_rules(h)
}
