//! The commit follower of `bench tps`: reads every block after the start on the first
//! node, marks the run's transactions committed and times each from its submission. Never
//! submits anything, and stops by the drain deadline or after a bounded run of failures.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cairn_ledger::Hash;
use cairn_node::http::rpc::codes;
use serde::Deserialize;
use serde_json::json;

use super::load::{Shared, TX_COMMITTED, TX_STAMP_MASK};
use super::plan::Plan;
use super::{calls_ok, decode};
use crate::client::{Client, RpcUrl};

/// How long one call of the commit follower waits for the next block (`block` with
/// `wait_ms`, answered as soon as it commits); well under the RPC client's call timeout.
pub const FOLLOW_WAIT: Duration = Duration::from_secs(1);
/// Pause after a failed follower call, so a node that is down is not hammered.
const FOLLOW_RETRY: Duration = Duration::from_millis(50);
/// Blocks fetched per batch by the commit follower (each answer lists up to 2,000 hashes).
const BLOCKS_PER_BATCH: u64 = 20;
/// Consecutive failed polls after which the follower gives up on the node.
const FOLLOW_ERRORS_MAX: u32 = 100;
/// Longest the run waits after the load stops for submitted transactions to commit.
pub const DRAIN_MAX: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
struct BlockTxs {
    height: u64,
    transactions: Vec<Hash>,
    /// Blocks from it to the tip, itself included, when it was read.
    confirmations: u64,
}

/// What the follower saw.
#[derive(Default)]
pub(super) struct FollowOutcome {
    pub(super) committed: u64,
    pub(super) latencies_us: Vec<u64>,
    pub(super) last_commit: Option<Instant>,
    pub(super) end_height: u64,
    pub(super) blocks: u64,
    pub(super) block_txs_max: usize,
    pub(super) drained: bool,
}

/// Follows the chain on `url` from `start_height`, timing each of the run's transactions
/// from its submission to the follower reading its block, until every accepted transaction has
/// committed after the workers stopped, or the drain period is over.
pub(super) fn follow(
    url: &RpcUrl,
    start_height: u64,
    plan: &Plan,
    index: &HashMap<Hash, u32>,
    shared: &Shared,
) -> Result<FollowOutcome> {
    let conn = Client::for_url(url.clone());
    let drain_end = shared.t0 + plan.duration + DRAIN_MAX;
    let mut out = FollowOutcome {
        end_height: start_height,
        ..FollowOutcome::default()
    };
    let mut errors = 0;
    loop {
        if shared.workers_done.load(Ordering::Relaxed)
            && out.committed >= shared.submitted.load(Ordering::Relaxed)
        {
            out.drained = true;
            return Ok(out);
        }
        if Instant::now() > drain_end {
            return Ok(out);
        }
        match follow_step(&conn, &mut out, index, plan, shared) {
            Ok(()) => errors = 0,
            Err(e) => {
                errors += 1;
                if errors > FOLLOW_ERRORS_MAX {
                    return Err(e).context(format!(
                        "following blocks on {url} failed {FOLLOW_ERRORS_MAX} times in a row"
                    ));
                }
                thread::sleep(FOLLOW_RETRY);
            }
        }
    }
}

/// One step: waits for the block after the last one seen, then reads every block committed
/// since.
fn follow_step(
    conn: &Client,
    out: &mut FollowOutcome,
    index: &HashMap<Hash, u32>,
    plan: &Plan,
    shared: &Shared,
) -> Result<()> {
    let next = out.end_height + 1;
    let wait_ms = u64::try_from(FOLLOW_WAIT.as_millis()).unwrap_or(u64::MAX);
    let answer = conn
        .batch("block", [json!({ "height": next, "wait_ms": wait_ms })])?
        .pop()
        .context("an empty answer to a batch of one")?;
    let first: BlockTxs = match answer {
        // Nothing committed within the wait: ask again.
        Err(e) if e.code == codes::NOT_FOUND => return Ok(()),
        answer => decode(conn, "block", answer)?,
    };
    record_blocks(out, std::slice::from_ref(&first), index, plan, shared);
    // Its confirmations say how far the chain was when it was read.
    let height = first.height + first.confirmations.saturating_sub(1);
    shared.height.store(height, Ordering::Relaxed);
    while out.end_height < height {
        let from = out.end_height + 1;
        let to = height.min(out.end_height + BLOCKS_PER_BATCH);
        let blocks: Vec<BlockTxs> =
            calls_ok(conn, "block", (from..=to).map(|h| json!({ "height": h })))?;
        record_blocks(out, &blocks, index, plan, shared);
    }
    Ok(())
}

/// Marks the run's transactions in `blocks` (the next ones, in order) committed as of now.
fn record_blocks(
    out: &mut FollowOutcome,
    blocks: &[BlockTxs],
    index: &HashMap<Hash, u32>,
    plan: &Plan,
    shared: &Shared,
) {
    let observed = Instant::now();
    let observed_us =
        u64::try_from(observed.duration_since(shared.t0).as_micros()).unwrap_or(u64::MAX);
    for block in blocks {
        debug_assert_eq!(block.height, out.end_height + 1);
        out.blocks += 1;
        out.block_txs_max = out.block_txs_max.max(block.transactions.len());
        for hash in &block.transactions {
            let Some(&tx) = index.get(hash) else {
                continue;
            };
            let tx = tx as usize;
            let before = shared.mark(tx, TX_COMMITTED);
            if before & TX_COMMITTED != 0 {
                continue;
            }
            let stamp = before & TX_STAMP_MASK;
            if stamp > 0 {
                out.latencies_us.push(observed_us.saturating_sub(stamp - 1));
            }
            out.committed += 1;
            out.last_commit = Some(observed);
            let sender = tx / plan.txs_per_sender as usize;
            shared.committed_per_sender[sender].fetch_add(1, Ordering::Relaxed);
            shared.committed.fetch_add(1, Ordering::Relaxed);
        }
        out.end_height = block.height;
    }
}
