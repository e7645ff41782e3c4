//! The proof-of-work driver: one loop that takes blocks and headers from peers and from this
//! node's miner, keeps the store on the most-work chain ([`chain`]), syncs headers first, and
//! hands the miner threads ([`miner`]) a new template whenever the tip moves.
//!
//! - A gossiped block is checked as a header first ([`chain::PowChain::accept_header`]);
//!   its body is kept on disk before the block is relayed (the gossip verdict), and a block
//!   we mined is committed before it is gossiped. A block whose parent is unknown makes the
//!   driver ask that peer for headers from a block locator: there is no orphan pool.
//! - Sync: on connecting to a peer (and every [`HEADERS_POLL`]), ask it for headers after our
//!   locator; check each header before asking for any body; fetch the missing bodies of the
//!   best branch in requests of at most [`wire::BLOCKS_PER_REQUEST_MAX`] spread over the
//!   peers. A peer whose header, body or block breaks a rule is reported
//!   ([`Command::ReportInvalid`]), which scores and in the end bans it.
//! - After every change of tip: transactions of disconnected blocks go back to the mempool
//!   (and are gossiped again) when still valid, the pool is rechecked, and the miner restarts
//!   on the new tip at once.
//!
//! Owns: the peers' sync state, the held-back blocks, the miner's job. Never: decides which
//! chain is best (the pure index does) or lets the miner threads touch the store.

pub mod chain;
pub mod miner;
pub mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_consensus::pow::CompactTarget;
use cairn_ledger::block::{Block, Seal};
use cairn_ledger::store::PreparedBlock;
use cairn_ledger::tx::Transaction;
use cairn_ledger::{Address, Hash};
use libp2p::PeerId;
use tokio::sync::{mpsc, watch};

use crate::host::clock::{now_ms, ticks};
use crate::host::net::{Heard, outside};
use crate::host::peers::Peers;
use crate::host::status::{EngineStatus, NodeStatus, SyncProgress};
use crate::host::upgrade::{Halt, UpgradeWatch, stop_reason};
use crate::host::{DriverError, NodeIo};
use crate::metrics::{ReasonLabel, to_i64};
use crate::p2p::{Event, RequestError, Topic, Verdict};
use chain::{Accepted, Followed, PowChain, Refused};
use miner::{FOUND_QUEUE_MAX, Found, Miner};
use wire::{BLOCKS_PER_REQUEST_MAX, HEADERS_PER_REPLY_MAX, Request, Response};

/// How often status, gauges, held-back blocks and outstanding requests are looked at.
pub const TICK_INTERVAL: Duration = Duration::from_millis(250);
/// A headers request to a peer is not repeated within this long unless forced.
pub const HEADERS_RETRY: Duration = Duration::from_secs(5);
/// How often one peer (in turn) is asked for headers even without news: a lost gossip
/// message or a healed partition is noticed within this long.
pub const HEADERS_POLL: Duration = Duration::from_secs(5);
/// A body asked for and not received within this long is asked for again (of another peer).
pub const BODY_RETRY: Duration = Duration::from_secs(10);
/// Bodies asked for and not yet received, at most.
pub const BODIES_IN_FLIGHT_MAX: usize = 1024;
/// Blocks held back because their timestamps are ahead of our clock; more are dropped (the
/// peer's next block brings them again through a headers request).
pub const HELD_BACK_MAX: usize = 32;
/// Bodies whose sender is remembered, to score it if the block then fails to execute.
pub const BODY_SENDERS_MAX: usize = 4096;
/// Transactions of disconnected blocks gossiped again after a reorg, at most.
pub const REGOSSIP_TXS_MAX: usize = 4096;
/// With new transactions in the pool, the miner's template is rebuilt at most this often.
pub const TEMPLATE_REFRESH: Duration = Duration::from_secs(1);
/// Replies to our requests waiting for the driver.
pub const REPLIES_QUEUE_MAX: usize = 256;
/// The hash-rate gauge averages over at least this long.
const HASHRATE_WINDOW: Duration = Duration::from_secs(2);

/// How this node mines, when it does.
pub struct MiningSetup {
    pub threads: usize,
    pub reward_to: Address,
}

/// Everything the driver runs with.
pub struct PowParts {
    pub chain: PowChain,
    /// What opening the chain did (a reorg a crash interrupted, finished).
    pub opened: Followed,
    pub io: NodeIo,
    pub mining: Option<MiningSetup>,
}

enum Asked {
    Headers,
    Blocks(Vec<Hash>),
}

struct Reply {
    peer: PeerId,
    asked: Asked,
    result: Result<Vec<u8>, RequestError>,
}

struct Job {
    generation: u64,
    prepared: PreparedBlock,
    built: Instant,
}

struct Held {
    due: Instant,
    from: Option<PeerId>,
    block: Block,
}

pub struct PowDriver {
    chain: PowChain,
    io: NodeIo,
    miner: Option<Miner>,
    reward_to: Address,
    found: mpsc::Receiver<Found>,
    job: Option<Job>,
    pool_grew: bool,
    replies_tx: mpsc::Sender<Reply>,
    replies: mpsc::Receiver<Reply>,
    peers: Peers,
    headers_asked: HashMap<PeerId, Instant>,
    bodies_asked: HashMap<Hash, Instant>,
    /// Bodies of the best branch still missing after the last follow.
    missing: Vec<Hash>,
    body_from: HashMap<Hash, PeerId>,
    held: Vec<Held>,
    halted: Halt,
    last_poll: Instant,
    hash_sample: (Instant, u64),
    upgrades: UpgradeWatch,
    opened: Option<Followed>,
}

impl PowDriver {
    /// Starts the miner threads (if mining) and returns the driver.
    pub fn new(parts: PowParts) -> Result<PowDriver, DriverError> {
        let (found_tx, found) = mpsc::channel(FOUND_QUEUE_MAX);
        let (miner, reward_to) = match &parts.mining {
            Some(m) => (
                Some(Miner::start(m.threads, found_tx).map_err(|e| {
                    DriverError::Halt(format!("cannot start the miner threads: {e}"))
                })?),
                m.reward_to,
            ),
            None => (None, Address([0; 20])),
        };
        let (replies_tx, replies) = mpsc::channel(REPLIES_QUEUE_MAX);
        let io = parts.io;
        let upgrades = UpgradeWatch::new(&io, parts.chain.store());
        let hashes = miner.as_ref().map_or(0, Miner::hashes);
        Ok(PowDriver {
            chain: parts.chain,
            io,
            miner,
            reward_to,
            found,
            job: None,
            pool_grew: false,
            replies_tx,
            replies,
            peers: Peers::default(),
            headers_asked: HashMap::new(),
            bodies_asked: HashMap::new(),
            missing: Vec::new(),
            body_from: HashMap::new(),
            held: Vec::new(),
            halted: Halt::default(),
            last_poll: Instant::now(),
            hash_sample: (Instant::now(), hashes),
            upgrades,
            opened: Some(parts.opened),
        })
    }

    /// Runs until `shutdown` turns true (`Ok`) or the node must stop (`Err`).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), DriverError> {
        if let Some(opened) = self.opened.take() {
            self.apply(opened).await?;
        }
        if let Some(why) = stop_reason(self.chain.store(), 1) {
            self.halted.stop(&why);
        }
        self.new_job();
        self.refresh_status();
        let mut tick = ticks(TICK_INTERVAL);
        loop {
            tokio::select! {
                input = outside(&mut self.io.events, &mut shutdown) => match input? {
                    None => return Ok(()),
                    Some(event) => self.on_event(event).await?,
                },
                Some(found) = self.found.recv() => self.on_found(found).await?,
                Some(reply) = self.replies.recv() => self.on_reply(reply).await?,
                _ = self.io.pool_growth.notified() => self.pool_grew = true,
                _ = tick.tick() => self.on_tick().await?,
            }
        }
    }

    async fn on_tick(&mut self) -> Result<(), DriverError> {
        let now = Instant::now();
        let due: Vec<Held> = {
            let (due, later) = std::mem::take(&mut self.held)
                .into_iter()
                .partition(|h| h.due <= now);
            self.held = later;
            due
        };
        for h in due {
            self.on_block(h.from, h.block).await?;
        }
        self.headers_asked
            .retain(|_, at| now.duration_since(*at) < HEADERS_RETRY);
        self.bodies_asked
            .retain(|_, at| now.duration_since(*at) < BODY_RETRY);
        if !self.missing.is_empty() {
            let missing = self.missing.clone();
            self.request_bodies(&missing);
        }
        if now.duration_since(self.last_poll) >= HEADERS_POLL
            && let Some(peer) = self.peers.next_in_turn()
        {
            self.last_poll = now;
            self.request_headers(peer, false);
        }
        if self.pool_grew
            && self
                .job
                .as_ref()
                .is_none_or(|j| j.built.elapsed() >= TEMPLATE_REFRESH)
        {
            self.pool_grew = false;
            self.new_job();
        }
        self.refresh_status();
        Ok(())
    }

    async fn on_event(&mut self, event: Event) -> Result<(), DriverError> {
        match self.io.hear(&mut self.peers, event).await? {
            Heard::Done => {}
            Heard::Connected(peer) => self.request_headers(peer, true),
            Heard::Disconnected(peer) => {
                self.headers_asked.remove(&peer);
            }
            Heard::Consensus { from, id, bytes } => {
                let verdict = match wire::decode_block(&bytes) {
                    Ok(block) => self.on_block(Some(from), block).await?,
                    Err(e) => {
                        self.invalid(Some(from), "malformed", format!("malformed block: {e}"))
                            .await?;
                        Verdict::Reject
                    }
                };
                self.io.verdict(id, verdict).await?;
            }
            Heard::Direct { .. } => self.io.drop_reason("unexpected_direct"),
            Heard::Request { from, id, bytes } => {
                let answer = self.serve(from, &bytes).await?;
                self.io.respond(id, answer).await?;
            }
        }
        Ok(())
    }

    /// A block heard of (gossip, or held back until now): header first, then the body, then
    /// the best tip. Returns whether gossip may relay it.
    async fn on_block(
        &mut self,
        from: Option<PeerId>,
        block: Block,
    ) -> Result<Verdict, DriverError> {
        let hash = block.hash();
        match self.chain.accept_header(&block.header, now_ms()) {
            Ok(Accepted::New { .. } | Accepted::Known) => {}
            Err(Refused::UnknownParent { parent }) => {
                tracing::debug!(%hash, %parent, "block with an unknown parent: asking for headers");
                if let Some(peer) = from {
                    self.request_headers(peer, false);
                }
                return Ok(Verdict::Ignore);
            }
            Err(Refused::HoldBack { after_ms, reason }) => {
                if self.held.len() >= HELD_BACK_MAX {
                    self.io.drop_reason("held_back_full");
                } else {
                    tracing::info!(%hash, %reason, "block held back until its time comes");
                    self.held.push(Held {
                        due: Instant::now() + Duration::from_millis(after_ms.saturating_add(1)),
                        from,
                        block,
                    });
                    assert!(self.held.len() <= HELD_BACK_MAX);
                }
                return Ok(Verdict::Ignore);
            }
            Err(Refused::Invalid { label, reason }) => {
                self.invalid(from, label, reason).await?;
                return Ok(Verdict::Reject);
            }
            Err(Refused::Dropped { label, reason }) => {
                tracing::debug!(%hash, %reason, "block dropped");
                self.io.drop_reason(label);
                return Ok(Verdict::Ignore);
            }
            Err(Refused::Halt(e)) => return Err(e),
        }
        match self.chain.add_body(&block) {
            Ok(true) => {
                if let Some(peer) = from {
                    self.remember_sender(hash, peer);
                }
                self.follow().await?;
                Ok(Verdict::Accept)
            }
            Ok(false) => Ok(Verdict::Ignore),
            Err(Refused::Invalid { label, reason }) => {
                self.invalid(from, label, reason).await?;
                self.follow().await?;
                Ok(Verdict::Reject)
            }
            Err(Refused::Halt(e)) => Err(e),
            Err(e) => {
                tracing::debug!(%hash, reason = %e, "block body dropped");
                Ok(Verdict::Ignore)
            }
        }
    }

    fn remember_sender(&mut self, hash: Hash, peer: PeerId) {
        if self.body_from.len() >= BODY_SENDERS_MAX {
            self.body_from.clear();
        }
        self.body_from.insert(hash, peer);
        assert!(self.body_from.len() <= BODY_SENDERS_MAX);
    }

    /// Moves to the best tip and deals with what that did.
    async fn follow(&mut self) -> Result<(), DriverError> {
        let followed = self.chain.follow_best()?;
        self.apply(followed).await
    }

    async fn apply(&mut self, f: Followed) -> Result<(), DriverError> {
        for (hash, reason) in &f.invalid {
            let sender = self.body_from.remove(hash);
            tracing::warn!(%hash, %reason, "block does not execute: marked invalid");
            self.io
                .metrics
                .pow
                .invalid
                .get_or_create(&ReasonLabel {
                    reason: "execution",
                })
                .inc();
            if let Some(peer) = sender {
                self.io
                    .report(peer, format!("block {hash} does not execute: {reason}"))
                    .await?;
            }
        }
        if let Some(depth) = f.refused_depth {
            self.io.metrics.pow.reorgs_refused.inc();
            tracing::warn!(
                depth,
                limit = self.chain_reorg_limit(),
                best = %self.chain.index().best_tip(),
                tip = %self.chain.store().tip().hash,
                "REORG REFUSED: the most-work chain forks deeper than [pow] reorg_depth_max; \
                 this node stays on its chain. Check the network (a long partition or an \
                 attack) and raise the limit to follow it"
            );
        }
        if let Some(why) = &f.halted {
            self.halted.stop(why);
        }
        self.missing = f.missing;
        if !self.missing.is_empty() {
            let missing = self.missing.clone();
            self.request_bodies(&missing);
        }
        if f.connected.is_empty() && f.disconnected.is_empty() {
            return Ok(());
        }
        if !f.disconnected.is_empty() {
            self.io.metrics.pow.reorgs.inc();
            let depth = to_i64(f.disconnected.len() as u64);
            if depth > self.io.metrics.pow.reorg_depth_max.get() {
                self.io.metrics.pow.reorg_depth_max.set(depth);
            }
            tracing::info!(
                depth = f.disconnected.len(),
                connected = f.connected.len(),
                tip = %self.chain.store().tip().hash,
                "reorganised to the most-work chain"
            );
        }
        for b in &f.connected {
            tracing::info!(
                height = %b.header.height,
                hash = %b.hash(),
                txs = b.transactions.len(),
                "connected"
            );
        }
        let connected: Vec<Transaction> = f
            .connected
            .into_iter()
            .flat_map(|b| b.transactions)
            .collect();
        let mut returned: Vec<Transaction> = f
            .disconnected
            .into_iter()
            .flat_map(|b| b.transactions)
            .collect();
        returned.sort_by_key(|tx| (tx.sender_address(), tx.nonce));
        let mut regossip = Vec::new();
        {
            let store = Arc::clone(self.chain.store());
            let mut pool = self.io.mempool.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = pool.recheck(&connected, &*store) {
                tracing::warn!(error = %e, "mempool recheck after connecting failed");
            }
            pool.set_rules(store.schedule().rules_at(store.tip().height.next()));
            for tx in returned {
                // Their signatures were checked when the blocks were executed.
                if pool.insert_verified(tx.clone(), &*store).is_ok()
                    && regossip.len() < REGOSSIP_TXS_MAX
                {
                    regossip.push(tx);
                }
            }
            self.io.metrics.mempool_size.set(to_i64(pool.len() as u64));
            self.io.metrics.mempool_bytes.set(to_i64(pool.bytes()));
        }
        if !regossip.is_empty() {
            tracing::info!(
                txs = regossip.len(),
                "transactions of disconnected blocks are back in the mempool"
            );
        }
        self.io.publish_txs(&regossip).await?;
        self.tip_moved().await
    }

    fn chain_reorg_limit(&self) -> u64 {
        self.chain.reorg_depth_max()
    }

    /// After the tip moved: gauges, fork id, and a new job for the miner.
    async fn tip_moved(&mut self) -> Result<(), DriverError> {
        let tip = self.chain.store().tip().height;
        self.io.metrics.height.set(to_i64(tip.0));
        // Nobody here can make or accept the next block: stop, whether or not a peer has
        // sent one yet.
        if let Some(why) = stop_reason(self.chain.store(), 1) {
            self.halted.stop(&why);
        }
        self.upgrades
            .follow(&self.io, self.chain.store(), self.halted.is_halted())
            .await?;
        self.new_job();
        Ok(())
    }

    /// Hands the miner a template on the current tip (or pauses it while syncing).
    fn new_job(&mut self) {
        let Some(miner) = &self.miner else {
            return;
        };
        if self.halted.is_halted() || self.syncing() {
            miner.pause();
            self.job = None;
            return;
        }
        let built = {
            let pool = self.io.mempool.lock().unwrap_or_else(|e| e.into_inner());
            self.chain.template(&pool, self.reward_to, now_ms())
        };
        let prepared = match built {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(reason = %e, "cannot build a block template; not mining");
                miner.pause();
                self.job = None;
                return;
            }
        };
        let Seal::Pow { bits, .. } = prepared.block.header.seal else {
            return;
        };
        let target = match CompactTarget(bits).to_target() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "the template's bits are unusable; not mining");
                miner.pause();
                return;
            }
        };
        let generation = miner.set_job(prepared.block.header.clone(), target);
        self.job = Some(Job {
            generation,
            prepared,
            built: Instant::now(),
        });
    }

    /// A miner thread found a nonce: seal, commit, then gossip.
    async fn on_found(&mut self, found: Found) -> Result<(), DriverError> {
        let Some(job) = self.job.take_if(|j| j.generation == found.generation) else {
            return Ok(());
        };
        let mut prepared = job.prepared;
        let Seal::Pow { bits, .. } = prepared.block.header.seal else {
            return Ok(());
        };
        prepared.block.header.seal = Seal::Pow {
            bits,
            nonce: found.nonce,
        };
        prepared.hash = prepared.block.hash();
        match self.chain.connect_mined(&prepared, now_ms()) {
            Ok(hash) => {
                self.io.metrics.pow.blocks_mined.inc();
                tracing::info!(
                    height = %prepared.block.header.height,
                    %hash,
                    txs = prepared.block.transactions.len(),
                    "mined"
                );
                // Committed above: the block is durable before it leaves.
                self.io
                    .publish(
                        Topic::Consensus,
                        cairn_ledger::codec::encode(&prepared.block),
                    )
                    .await?;
                let mined = Followed {
                    connected: vec![prepared.block],
                    ..Followed::default()
                };
                self.apply(mined).await?;
                // The index may prefer another branch of equal height seen first.
                self.follow().await
            }
            Err(Refused::Halt(e)) => Err(e),
            Err(e) => {
                tracing::debug!(reason = %e, "mined block not connected");
                self.new_job();
                Ok(())
            }
        }
    }

    async fn on_reply(&mut self, reply: Reply) -> Result<(), DriverError> {
        let peer = reply.peer;
        if let Asked::Blocks(hashes) = &reply.asked {
            for h in hashes {
                self.bodies_asked.remove(h);
            }
        } else {
            self.headers_asked.remove(&peer);
        }
        let bytes = match reply.result {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "sync request failed");
                return Ok(());
            }
        };
        let response = match Response::decode(&bytes, self.io.message_bytes_max) {
            Ok(r) => r,
            Err(e) => {
                return self
                    .invalid(
                        Some(peer),
                        "malformed",
                        format!("malformed sync reply: {e}"),
                    )
                    .await;
            }
        };
        match (reply.asked, response) {
            (Asked::Headers, Response::Headers(headers)) => self.on_headers(peer, headers).await,
            (Asked::Blocks(asked), Response::Blocks(blocks)) => {
                let asked: HashSet<Hash> = asked.into_iter().collect();
                for block in blocks {
                    if !asked.contains(&block.hash()) {
                        return self
                            .invalid(
                                Some(peer),
                                "unrequested",
                                format!("block {} was not asked for", block.hash()),
                            )
                            .await;
                    }
                    self.on_block(Some(peer), block).await?;
                }
                Ok(())
            }
            _ => {
                self.invalid(
                    Some(peer),
                    "malformed",
                    "sync reply of the wrong kind".into(),
                )
                .await
            }
        }
    }

    /// Headers from `peer`, in chain order: each checked and indexed before any body is
    /// fetched; the first bad one ends the batch and scores the peer.
    async fn on_headers(
        &mut self,
        peer: PeerId,
        headers: Vec<cairn_ledger::block::BlockHeader>,
    ) -> Result<(), DriverError> {
        let full = headers.len() >= HEADERS_PER_REPLY_MAX;
        let mut last_ok = None;
        for header in &headers {
            match self.chain.accept_header(header, now_ms()) {
                Ok(_) => last_ok = Some(header.hash()),
                Err(Refused::Invalid { label, reason }) => {
                    self.invalid(Some(peer), label, reason).await?;
                    break;
                }
                Err(Refused::UnknownParent { parent }) => {
                    self.invalid(
                        Some(peer),
                        "disconnected_headers",
                        format!("headers reply does not connect: unknown parent {parent}"),
                    )
                    .await?;
                    break;
                }
                Err(e) => {
                    tracing::debug!(%peer, reason = %e, "header not taken");
                    break;
                }
            }
        }
        self.io
            .metrics
            .pow
            .best_header_height
            .set(to_i64(self.chain.index().best_height().0));
        if full && last_ok.is_some() {
            self.request_headers(peer, true);
        }
        self.follow().await
    }

    /// Answers a peer's sync request from the store and the side bodies.
    async fn serve(&mut self, from: PeerId, bytes: &[u8]) -> Result<Vec<u8>, DriverError> {
        let request = match Request::decode(bytes) {
            Ok(r) => r,
            Err(e) => {
                self.invalid(
                    Some(from),
                    "malformed",
                    format!("malformed sync request: {e}"),
                )
                .await?;
                return Ok(Vec::new());
            }
        };
        let response = match request {
            Request::GetHeaders { locator, max } => {
                let max = (max as usize).min(HEADERS_PER_REPLY_MAX);
                Response::Headers(self.chain.headers_after(&locator, max)?)
            }
            Request::GetBlocks { hashes } => {
                let budget = wire::blocks_reply_budget(self.io.message_bytes_max);
                let mut used = 0;
                let mut blocks = Vec::new();
                for hash in hashes {
                    let Some(block) = self.chain.block(&hash)? else {
                        continue;
                    };
                    let len = cairn_ledger::codec::encode(&block).len();
                    if used + len > budget {
                        break;
                    }
                    used += len;
                    blocks.push(block);
                }
                Response::Blocks(blocks)
            }
        };
        Ok(response.encode())
    }

    /// Asks `peer` for headers after our best header, unless asked recently (`force`: on a
    /// new connection, or after a full reply, ask anyway).
    fn request_headers(&mut self, peer: PeerId, force: bool) {
        if !force && self.headers_asked.contains_key(&peer) {
            return;
        }
        self.headers_asked.insert(peer, Instant::now());
        let request = Request::GetHeaders {
            locator: self.chain.locator(),
            max: HEADERS_PER_REPLY_MAX as u32,
        };
        self.spawn_request(peer, Asked::Headers, request);
    }

    /// Asks for the bodies in `hashes` not already asked for, in requests of at most
    /// [`BLOCKS_PER_REQUEST_MAX`], each to the next peer in turn.
    fn request_bodies(&mut self, hashes: &[Hash]) {
        if self.peers.is_empty() {
            return;
        }
        let wanted: Vec<Hash> = hashes
            .iter()
            .filter(|h| !self.bodies_asked.contains_key(h))
            .take(BODIES_IN_FLIGHT_MAX.saturating_sub(self.bodies_asked.len()))
            .copied()
            .collect();
        let now = Instant::now();
        for chunk in wanted.chunks(BLOCKS_PER_REQUEST_MAX) {
            let Some(peer) = self.peers.next_in_turn() else {
                break;
            };
            for h in chunk {
                self.bodies_asked.insert(*h, now);
            }
            let request = Request::GetBlocks {
                hashes: chunk.to_vec(),
            };
            self.spawn_request(peer, Asked::Blocks(chunk.to_vec()), request);
        }
        assert!(self.bodies_asked.len() <= BODIES_IN_FLIGHT_MAX);
    }

    fn spawn_request(&self, peer: PeerId, asked: Asked, request: Request) {
        let p2p = self.io.p2p.clone();
        let replies = self.replies_tx.clone();
        tokio::spawn(async move {
            let result = p2p.request(peer, request.encode()).await;
            // The driver may be gone (shutting down): nothing to tell then.
            let _ = replies
                .send(Reply {
                    peer,
                    asked,
                    result,
                })
                .await;
        });
    }

    /// Counts an invalid header, block or message and scores the peer that sent it.
    async fn invalid(
        &mut self,
        from: Option<PeerId>,
        label: &'static str,
        reason: String,
    ) -> Result<(), DriverError> {
        self.io
            .metrics
            .pow
            .invalid
            .get_or_create(&ReasonLabel { reason: label })
            .inc();
        match from {
            Some(peer) => self.io.report(peer, reason).await,
            None => {
                tracing::warn!(%reason, "refused");
                Ok(())
            }
        }
    }

    fn sync_progress(&self) -> SyncProgress {
        SyncProgress {
            tip: self.chain.store().tip().height,
            best: self.chain.index().best_height(),
        }
    }

    fn syncing(&self) -> bool {
        self.sync_progress().syncing()
    }

    fn refresh_status(&mut self) {
        let sync = self.sync_progress();
        self.io.post_status(
            NodeStatus {
                peers: self.peers.count(),
                peer_list: self.peers.list(),
                other_schedule: self.peers.other_schedule(),
                syncing: sync.syncing(),
                validator: self.miner.is_some(),
                halted: self.halted.reason(),
                not_scheduled_here: None,
                engine: EngineStatus::Pow {
                    best_header_height: sync.best,
                },
            },
            sync,
        );
        self.io
            .metrics
            .pow
            .best_header_height
            .set(to_i64(sync.best.0));
        if let Some(miner) = &self.miner {
            let (at, before) = self.hash_sample;
            let elapsed = at.elapsed();
            if elapsed >= HASHRATE_WINDOW {
                let now = miner.hashes();
                let rate = now.saturating_sub(before) as f64 / elapsed.as_secs_f64();
                self.io.metrics.pow.hashrate.set(rate);
                self.hash_sample = (Instant::now(), now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::config::MempoolSection;
    use crate::host::status::StatusBoard;
    use crate::metrics::Metrics;
    use crate::p2p::{Command, GossipId, P2pHandle};
    use crate::txpool::mempool::Mempool;
    use chain::tests::{net, now, open, seal, template, transfers};

    struct Harness {
        driver: PowDriver,
        commands: mpsc::Receiver<Command>,
        _dir: tempfile::TempDir,
        net: chain::tests::Net,
    }

    fn harness() -> Harness {
        let net = net(100);
        let dir = tempfile::tempdir().unwrap();
        let (chain, opened) = open(&net, dir.path(), 100);
        let (p2p, commands) = P2pHandle::for_test();
        let (_events_tx, events) = mpsc::channel(1);
        let driver = PowDriver::new(PowParts {
            chain,
            opened,
            io: NodeIo {
                mempool: Arc::new(Mutex::new(Mempool::new(
                    &net.genesis.chain_id,
                    MempoolSection::default(),
                ))),
                metrics: Arc::new(Metrics::new()),
                board: Arc::new(StatusBoard::new(
                    NodeStatus::default(),
                    crate::host::status::Readiness::NotReady("test".into()),
                )),
                p2p,
                events,
                pool_growth: Arc::new(crate::txpool::gossip::PoolGrowth::new(true)),
                genesis: net.genesis.clone(),
                message_bytes_max: 4 * 1024 * 1024,
            },
            mining: None,
        })
        .unwrap();
        Harness {
            driver,
            commands,
            _dir: dir,
            net,
        }
    }

    /// The peers reported invalid so far, with the reasons.
    fn reports(commands: &mut mpsc::Receiver<Command>) -> Vec<(PeerId, String)> {
        let mut out = Vec::new();
        while let Ok(c) = commands.try_recv() {
            if let Command::ReportInvalid { peer, reason } = c {
                out.push((peer, reason));
            }
        }
        out
    }

    #[tokio::test]
    async fn a_peer_sending_bad_blocks_headers_or_bytes_is_scored_with_the_reason() {
        let mut h = harness();
        let peer = PeerId::random();
        let good = template(&h.net, &h.driver.chain, Vec::new(), 1000).block;

        let mut wrong_bits = good.clone();
        wrong_bits.header.seal = Seal::Pow {
            bits: 0x1f00_ffff,
            nonce: 0,
        };
        seal(&mut wrong_bits, true);
        let verdict = h.driver.on_block(Some(peer), wrong_bits).await.unwrap();
        assert!(matches!(verdict, Verdict::Reject));
        let r = reports(&mut h.commands);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, peer);
        assert!(r[0].1.contains("requires"), "{}", r[0].1);

        // A body that does not match its header.
        let mut sealed = good.clone();
        seal(&mut sealed, true);
        let mut wrong_body = sealed.clone();
        wrong_body.transactions = transfers(&h.net, &h.driver.chain, 1);
        let verdict = h.driver.on_block(Some(peer), wrong_body).await.unwrap();
        assert!(matches!(verdict, Verdict::Reject));
        let r = reports(&mut h.commands);
        assert!(r[0].1.contains("tx_root"), "{}", r[0].1);

        // A headers reply whose header lacks the work.
        let mut no_work = good.clone();
        seal(&mut no_work, false);
        h.driver
            .on_headers(peer, vec![no_work.header])
            .await
            .unwrap();
        let r = reports(&mut h.commands);
        assert!(r[0].1.contains("does not meet target"), "{}", r[0].1);

        // Gossip that is not a block at all.
        h.driver
            .on_event(Event::Gossip {
                from: peer,
                topic: Topic::Consensus,
                id: GossipId::for_test(1),
                bytes: vec![0xde, 0xad],
                relay: true,
            })
            .await
            .unwrap();
        let r = reports(&mut h.commands);
        assert!(r[0].1.contains("malformed"), "{}", r[0].1);
        let invalid = h.driver.io.metrics.render();
        assert!(
            invalid.contains("cairn_pow_invalid_total{reason=\"wrong_bits\"} 1"),
            "{invalid}"
        );

        // A good block is taken, relayed and connected; nobody is scored.
        let verdict = h.driver.on_block(Some(peer), sealed.clone()).await.unwrap();
        assert!(matches!(verdict, Verdict::Accept));
        assert!(reports(&mut h.commands).is_empty());
        assert_eq!(h.driver.chain.store().tip().hash, sealed.hash());
        let _ = now(0);
    }
}
