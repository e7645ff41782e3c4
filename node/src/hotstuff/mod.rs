//! The BFT driver: one loop that feeds the engine (HotStuff or PBFT, through [`seam`]) its
//! inputs (peer messages, timers, payloads) and executes its effects in order.
//!
//! Effects run one at a time, in the order the engine gave them, on this loop's thread:
//! `Persist` and `StoreBlock` are synced to RocksDB before the next effect starts, so no vote
//! or proposal they guard can leave first. The engine asks before it votes whether a
//! proposed block executes on this node's ledger (`Effect::Validate`, see [`chain`]); the
//! answer goes straight back into the engine in the same loop. Commits go to the ledger in
//! one write batch per block, with the certificate that proves them.
//!
//! Owns: the engine, the timers, the peer ↔ validator mapping and what `status` reports.
//! Never: decides consensus (the engine does) or blocks on anything but the store.

pub mod chain;
pub mod seam;
pub mod sync_serve;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_ledger::block::{Block, Seal};
use cairn_ledger::{Address, Hash, Height, PublicKey, Round};
use libp2p::PeerId;
use tokio::sync::watch;

use crate::host::clock::{now_ms, ticks};
use crate::host::net::{Heard, outside};
use crate::host::peers::Peers;
use crate::host::status::{EngineStatus, LeaderElectionStatus, NodeStatus, SyncProgress};
use crate::host::upgrade::{Halt, UpgradeWatch, stop_reason};
use crate::host::{DriverError, NodeIo};
use crate::metrics::bft::ValidatorLabel;
use crate::metrics::to_i64;
use crate::p2p::{Command, Event, Topic, Verdict};
use chain::{Chain, Invalid};
use seam::{BftEngine, Inbound, Step, Timer, Validity};

/// Pending engine timers; one is scheduled per round, so more than this are stale rounds.
pub const TIMERS_MAX: usize = 64;
/// How often `status`, readiness and gauges are refreshed.
pub const STATUS_INTERVAL: Duration = Duration::from_millis(250);
/// Blocks of ours whose proposal time is kept for the commit-latency histogram.
const PROPOSED_KEPT: usize = 64;
/// Room kept in a sync answer for its certificate and framing, under the network bound.
pub const SYNC_ANSWER_SLACK_BYTES: usize = 64 * 1024;

/// Everything the driver runs with.
pub struct DriverParts<E> {
    pub engine: E,
    pub chain: Chain,
    pub io: NodeIo,
    pub validators: Vec<PublicKey>,
    /// With nothing to include and nothing uncommitted to push through, a leader waits this
    /// long after its parent before proposing an empty block, so an idle network does not
    /// spin (`[consensus] empty_block_interval_ms`).
    pub empty_block_interval: Duration,
    /// The genesis base round timeout: empty blocks wait at most half of it.
    pub round_timeout_base: Duration,
}

pub struct Driver<E> {
    engine: E,
    chain: Chain,
    io: NodeIo,
    me: Address,
    is_validator: bool,
    peer_of: HashMap<PublicKey, PeerId>,
    key_of: HashMap<PeerId, PublicKey>,
    peers: Peers,
    /// Deadline → timer; the key's second part keeps equal deadlines apart.
    timers: BTreeMap<(Instant, u64), Timer>,
    timer_seq: u64,
    best_seen: Height,
    proposed: Vec<(Hash, Instant)>,
    last_commit: Option<Instant>,
    last_leader: Option<PublicKey>,
    last_round: Round,
    last_height: Option<Height>,
    /// `status`'s leader-election part, recomputed when the round changes.
    election: LeaderElectionStatus,
    /// A proposal this node leads but is holding back until there is something to include
    /// or the empty-block interval has passed.
    held_payload: Option<HeldPayload>,
    empty_block_interval: Duration,
    upgrades: UpgradeWatch,
    last_tc_round: Option<Round>,
    /// Set once the chain has reached the last height this binary can commit before an
    /// upgrade it lacks: why the node no longer makes progress.
    halted: Halt,
    sync_server: sync_serve::SyncServer,
}

struct HeldPayload {
    height: Height,
    parent: Hash,
    seal: Seal,
    until: Instant,
}

impl<E: BftEngine> Driver<E> {
    pub fn new(parts: DriverParts<E>) -> Driver<E> {
        let peer_of: HashMap<PublicKey, PeerId> = parts
            .validators
            .iter()
            .filter_map(|pk| {
                cairn_ledger::keys::peer_id(pk)
                    .parse::<PeerId>()
                    .ok()
                    .map(|p| (*pk, p))
            })
            .collect();
        let me = parts.engine.public_key();
        let best_seen = parts.chain.store().tip().height;
        let io = parts.io;
        let upgrades = UpgradeWatch::new(&io, parts.chain.store());
        let last_tc_round = parts.engine.view().tc_round;
        let sync_server = sync_serve::SyncServer::new(
            Arc::clone(parts.chain.store()),
            io.p2p.clone(),
            E::encode_sync_response,
        );
        Driver {
            is_validator: parts.validators.contains(&me),
            me: me.address(),
            engine: parts.engine,
            chain: parts.chain,
            io,
            key_of: peer_of.iter().map(|(k, p)| (*p, *k)).collect(),
            peer_of,
            peers: Peers::default(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            best_seen,
            proposed: Vec::new(),
            last_commit: None,
            last_leader: None,
            last_round: Round(0),
            last_height: None,
            election: LeaderElectionStatus::default(),
            held_payload: None,
            empty_block_interval: parts.empty_block_interval.min(parts.round_timeout_base / 2),
            upgrades,
            last_tc_round,
            halted: Halt::default(),
            sync_server,
        }
    }

    /// Runs until `shutdown` turns true (`Ok`) or the node must stop (`Err`).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), DriverError> {
        self.check_upgrade();
        let effects = self.engine.start();
        self.execute(effects).await?;
        self.refresh_status();
        let mut status_tick = ticks(STATUS_INTERVAL);
        loop {
            let next_timer = self
                .timers
                .keys()
                .next()
                .map(|(at, _)| *at)
                .into_iter()
                .chain(self.held_payload.as_ref().map(|h| h.until))
                .min();
            let sleep = async {
                match next_timer {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                input = outside(&mut self.io.events, &mut shutdown) => match input? {
                    None => return Ok(()),
                    Some(event) => self.on_event(event).await?,
                },
                _ = self.io.pool_growth.notified() => self.release_payload(false).await?,
                _ = sleep => self.fire_timers().await?,
                _ = status_tick.tick() => self.refresh_status(),
            }
        }
    }

    /// Builds the held proposal if there is now something to include, or if `expired`.
    async fn release_payload(&mut self, expired: bool) -> Result<(), DriverError> {
        let Some(held) = &self.held_payload else {
            return Ok(());
        };
        let due = expired && held.until <= Instant::now();
        let has_txs = !self
            .io
            .mempool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        if !due && !has_txs {
            return Ok(());
        }
        let Some(h) = self.held_payload.take() else {
            return Ok(());
        };
        self.io.pool_growth.listen(false);
        let effects = self.build_payload(h.height, h.parent, h.seal)?;
        self.execute(effects).await
    }

    /// Builds and hands the engine this node's proposal; returns the engine's effects.
    fn build_payload(
        &mut self,
        height: Height,
        parent: Hash,
        seal: Seal,
    ) -> Result<Vec<Step>, DriverError> {
        let built = {
            let pool = self.io.mempool.lock().unwrap_or_else(|e| e.into_inner());
            self.chain
                .build(&pool, height, parent, seal, self.me, now_ms())
        };
        match built {
            Ok(block) => {
                tracing::debug!(%height, txs = block.transactions.len(), "proposing");
                Ok(self.engine.on_payload(block))
            }
            Err(e) if self.halted.is_halted() && !e.halt => {
                tracing::debug!(reason = %e, "no proposal: the chain stopped before an upgrade");
                Ok(Vec::new())
            }
            Err(e) => {
                self.invalid(e, "cannot build a proposal")?;
                Ok(Vec::new())
            }
        }
    }

    async fn fire_timers(&mut self) -> Result<(), DriverError> {
        self.release_payload(true).await?;
        let now = Instant::now();
        while let Some((&(at, seq), &timer)) = self.timers.iter().next() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, seq));
            if self.engine.is_current(timer) {
                self.io.metrics.bft.timeouts.inc();
            }
            let effects = self.engine.on_timer(timer);
            self.execute(effects).await?;
        }
        Ok(())
    }

    /// The ed25519 key behind a peer id: the validators' from a table (every consensus
    /// message asks), anyone else's by decoding the id.
    fn validator_key(&self, peer: &PeerId) -> Option<PublicKey> {
        if let Some(key) = self.key_of.get(peer) {
            return Some(*key);
        }
        cairn_ledger::keys::parse_peer_id(&peer.to_string()).ok()
    }

    async fn on_event(&mut self, event: Event) -> Result<(), DriverError> {
        match self.io.hear(&mut self.peers, event).await? {
            Heard::Done | Heard::Connected(_) | Heard::Disconnected(_) => {}
            Heard::Consensus { from, id, bytes } => {
                let verdict = self.on_consensus_bytes(from, bytes, false).await?;
                self.io.verdict(id, verdict).await?;
            }
            Heard::Direct { from, bytes } => {
                self.on_consensus_bytes(from, bytes, true).await?;
            }
            Heard::Request { id, .. } => {
                // Consensus needs no request-response exchange; answer empty so the peer's
                // request completes instead of timing out.
                self.io.respond(id, Vec::new()).await?;
            }
        }
        Ok(())
    }

    /// A consensus message that `from` sent (`direct`) or relayed by gossip. The engine
    /// checks each message's own signature; `from` is only whom to ask for missing blocks
    /// and whom to blame. A sync answer is read only as a direct message: it answers a
    /// request this node sent to that peer, so one arriving by gossip is forged.
    async fn on_consensus_bytes(
        &mut self,
        from: PeerId,
        bytes: Vec<u8>,
        direct: bool,
    ) -> Result<Verdict, DriverError> {
        let Some(key) = self.validator_key(&from) else {
            self.io
                .report(
                    from,
                    format!("consensus message from {from}, not an ed25519 peer"),
                )
                .await?;
            return Ok(Verdict::Reject);
        };
        let msg = match E::decode(&bytes) {
            Ok(msg) => msg,
            Err(e) => {
                self.io.drop_reason("malformed");
                self.io
                    .report(from, format!("malformed consensus message: {e}"))
                    .await?;
                return Ok(Verdict::Reject);
            }
        };
        // No height is learnt here: a proposal or answer claims one before anything in it is
        // verified. `best_seen` moves only with blocks the engine stored (`store_block`).
        let msg = match msg {
            Inbound::SyncResponse(_) if !direct => {
                self.io.drop_reason("unsolicited_sync");
                self.io
                    .report(from, "sync answer relayed by gossip".to_string())
                    .await?;
                return Ok(Verdict::Reject);
            }
            Inbound::SyncRequest(request, msg) => {
                let outsider = !self.peer_of.contains_key(&key);
                let tip = self.chain.store().tip().height;
                if sync_serve::store_answers(tip, &request, outsider) {
                    let bytes_max = self
                        .io
                        .message_bytes_max
                        .saturating_sub(SYNC_ANSWER_SLACK_BYTES);
                    let started = self.sync_server.start(from, key, request, bytes_max);
                    return Ok(match started {
                        Ok(()) => Verdict::Accept,
                        // Not the peer's fault: it asks again next round.
                        Err(_) => {
                            self.io.drop_reason("sync_busy");
                            Verdict::Ignore
                        }
                    });
                }
                // Nothing committed to give an allowed full node yet: not its fault.
                if outsider {
                    return Ok(Verdict::Ignore);
                }
                msg
            }
            Inbound::SyncResponse(m) | Inbound::Other(m) => m,
        };
        let effects = self.engine.on_message(key, msg);
        let fault = effects.iter().find_map(|e| match e {
            Step::Dropped {
                from: Some(k),
                reason,
                fault: true,
                ..
            } if *k == key => Some(reason.clone()),
            _ => None,
        });
        self.execute(effects).await?;
        Ok(match fault {
            Some(reason) => {
                self.io.report(from, reason).await?;
                Verdict::Reject
            }
            None => Verdict::Accept,
        })
    }

    fn saw_height(&mut self, h: Height) {
        self.best_seen = self.best_seen.max(h);
    }

    async fn execute(&mut self, effects: Vec<Step>) -> Result<(), DriverError> {
        let mut queue: std::collections::VecDeque<Step> = effects.into();
        // Writing committed blocks to the ledger waits until this batch's votes and proposals
        // have left: nothing they carry depends on it (a vote needs the new block executed
        // on its uncommitted ancestors, which it is), and it is the costliest effect, so on
        // the round's critical path it delayed every hop. A crash in between loses nothing:
        // the blocks stay stored and certified, and the next certificate commits them again.
        let mut commits = Vec::new();
        while let Some(step) = queue.pop_front() {
            match step {
                Step::Persist(state) => {
                    let safety = (chain::SAFETY_KEY.to_vec(), state);
                    self.chain.sync(Some(safety)).map_err(|e| {
                        DriverError::Halt(format!(
                            "cannot persist the consensus safety state, so no vote may \
                             leave: {e}"
                        ))
                    })?;
                }
                Step::StoreBlock(block) => self.store_block(&block)?,
                Step::Validate(block) => {
                    // Answered in this loop: the vote it may release follows this batch's
                    // effects, keeping each batch's persist-before-send order.
                    let validity = self.judge(&block)?;
                    queue.extend(self.engine.on_validity(block, validity));
                }
                Step::DiscardBlocks(ids) => self
                    .chain
                    .discard(&ids)
                    .map_err(|e| DriverError::Halt(format!("cannot delete stored blocks: {e}")))?,
                Step::Send { to, bytes, vote } => {
                    self.sync_blocks()?;
                    // The engine votes only for blocks this driver judged valid.
                    debug_assert!(
                        vote.is_none_or(|b| !self.chain.refused(&b)),
                        "vote for a refused block"
                    );
                    self.send_to(to, bytes).await?;
                }
                Step::Broadcast { bytes, proposal } => {
                    self.sync_blocks()?;
                    if let Some(id) = proposal {
                        self.note_proposed(id);
                    }
                    self.io.publish(Topic::Consensus, bytes).await?;
                }
                Step::Timer { timer, after_ms } => self.schedule(timer, after_ms),
                Step::RequestPayload {
                    height,
                    parent,
                    seal,
                } => {
                    // Listening before the look below: an admission after it wakes us.
                    self.io.pool_growth.listen(true);
                    let busy = self.chain.uncommitted_txs_below(&parent)
                        || !self
                            .io
                            .mempool
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .is_empty();
                    let parent_age = self
                        .chain
                        .timestamp(&parent)
                        .map(|t| Duration::from_millis(now_ms().0.saturating_sub(t.0)))
                        .unwrap_or(Duration::MAX);
                    if busy || parent_age >= self.empty_block_interval {
                        self.held_payload = None;
                        self.io.pool_growth.listen(false);
                        queue.extend(self.build_payload(height, parent, seal)?);
                    } else {
                        // One proposal at a time: a newer request replaces the held one.
                        self.held_payload = Some(HeldPayload {
                            height,
                            parent,
                            seal,
                            until: Instant::now() + (self.empty_block_interval - parent_age),
                        });
                    }
                }
                Step::Commit { blocks, qc } => commits.push((blocks, qc)),
                Step::Fetch { from, bytes } => {
                    self.sync_blocks()?;
                    self.send_to(from, bytes).await?;
                }
                Step::Evidence { offender, detail } => {
                    tracing::warn!(%offender, evidence = %detail, "validator equivocated");
                }
                Step::Dropped {
                    reason,
                    signed_elsewhere: true,
                    ..
                } => {
                    // The engine signs nothing more; stopping makes an operator look.
                    tracing::error!(%reason, "stopping: this validator's key signs elsewhere");
                    return Err(DriverError::Halt(reason));
                }
                Step::Dropped {
                    from,
                    label,
                    reason,
                    ..
                } => {
                    self.io.drop_reason(label);
                    tracing::debug!(from = ?from, %reason, "consensus input dropped");
                }
            }
        }
        let tc_round = self.engine.view().tc_round;
        if tc_round > self.last_tc_round {
            self.io.metrics.hotstuff.tcs.inc();
            self.last_tc_round = tc_round;
        }
        self.sync_blocks()?;
        if commits.is_empty() {
            return Ok(());
        }
        // Engines whose rounds restart at each height (PBFT) decide the last committed
        // height in the round of its commit certificate.
        let rounds_per_height = self.engine.view().height.is_some();
        for (blocks, qc) in commits {
            self.commit(blocks, &qc)?;
            if rounds_per_height {
                let pbft = &self.io.metrics.pbft;
                pbft.commit_round
                    .set(qc.round.0.min(i64::MAX as u64) as i64);
                pbft.failed_rounds.inc_by(qc.round.0);
            }
        }
        self.upgrades
            .follow(&self.io, self.chain.store(), self.halted.is_halted())
            .await?;
        Ok(())
    }

    fn invalid(&self, e: Invalid, context: &str) -> Result<(), DriverError> {
        if e.halt {
            return Err(DriverError::Halt(e.reason));
        }
        tracing::warn!(reason = %e, "{context}");
        Ok(())
    }

    /// Blocks kept this batch are on disk before anything leaves and before it ends.
    fn sync_blocks(&mut self) -> Result<(), DriverError> {
        self.chain
            .sync(None)
            .map_err(|e| DriverError::Halt(format!("cannot keep a block on disk: {e}")))
    }

    fn store_block(&mut self, block: &Block) -> Result<(), DriverError> {
        if let Err(e) = self.chain.store_block(block) {
            return Err(DriverError::Halt(e.reason));
        }
        self.saw_height(block.header.height);
        Ok(())
    }

    /// The engine's question before it votes: does the stored block `id` execute here
    /// ([`Chain::validate`])? A failure of this node (disk, a missing upgrade) stops it.
    fn judge(&mut self, id: &Hash) -> Result<Validity, DriverError> {
        // One short look under the lock per block: RPC and gossip admission wait on it.
        let mempool = Arc::clone(&self.io.mempool);
        let in_mempool = move |ids: &[Hash]| {
            let pool = mempool.lock().unwrap_or_else(|e| e.into_inner());
            ids.iter().map(|h| pool.contains(h)).collect()
        };
        match self.chain.validate(id, now_ms(), &in_mempool) {
            Ok(()) => Ok(Validity::Valid),
            Err(e) if e.ahead_of_clock => {
                tracing::warn!(
                    reason = %e,
                    "block ahead of this node's clock: no vote for it (is this node's clock, \
                     or the proposer's, wrong? check NTP)"
                );
                Ok(Validity::AheadOfClock { reason: e.reason })
            }
            Err(e) => {
                let reason = e.reason.clone();
                self.invalid(e, "block refused: no vote for it")?;
                Ok(Validity::Invalid { reason })
            }
        }
    }

    fn commit(
        &mut self,
        blocks: Vec<Block>,
        qc: &cairn_ledger::block::QuorumCert,
    ) -> Result<(), DriverError> {
        if self.halted.is_halted() {
            // Stopped before an upgrade this binary lacks: nothing past it can commit here.
            return Ok(());
        }
        let before = self.chain.store().tip();
        let committed = self
            .chain
            .commit(blocks, qc)
            .map_err(|e| DriverError::Halt(e.reason))?;
        // The tip moves only by what this driver committed, one height per block.
        let after = self.chain.store().tip();
        assert_eq!(after.height.0, before.height.0 + committed.len() as u64);
        assert!(committed.last().is_none_or(|c| c.hash == after.hash));
        let now = Instant::now();
        for c in &committed {
            if let Some(i) = self.proposed.iter().position(|(h, _)| *h == c.hash) {
                let (_, at) = self.proposed.remove(i);
                self.io
                    .metrics
                    .commit_latency_seconds
                    .observe(now.duration_since(at).as_secs_f64());
            }
            if let Some(last) = self.last_commit {
                self.io
                    .metrics
                    .block_interval_seconds
                    .observe(now.duration_since(last).as_secs_f64());
            }
            self.last_commit = Some(now);
            tracing::info!(
                height = %c.block.header.height,
                hash = %c.hash,
                txs = c.block.transactions.len(),
                "committed"
            );
        }
        let txs = committed
            .iter()
            .flat_map(|c| c.tx_ids.iter().copied().zip(&c.block.transactions));
        let mut pool = self.io.mempool.lock().unwrap_or_else(|e| e.into_inner());
        let store = self.chain.store();
        if let Err(e) = pool.recheck_ids(txs, &**store) {
            tracing::warn!(error = %e, "mempool recheck after commit failed");
        }
        pool.set_rules(store.schedule().rules_at(store.tip().height.next()));
        self.io.metrics.mempool_size.set(to_i64(pool.len() as u64));
        self.io.metrics.mempool_bytes.set(to_i64(pool.bytes()));
        self.io
            .metrics
            .height
            .set(to_i64(self.chain.store().tip().height.0));
        drop(pool);
        self.check_upgrade();
        Ok(())
    }

    /// A block commits only once its child is certified, so with an upgrade this binary
    /// lacks at height H, the chain can commit up to H − 2: block H − 1 can be proposed and
    /// certified, but nobody here can build the block at H that would commit it. Once the
    /// tip is there, say so, once, loudly, and in `status` and `/ready`; the node stays up
    /// serving reads and votes for nothing past it.
    fn check_upgrade(&mut self) {
        if self.halted.is_halted() {
            return;
        }
        if let Some(n) = self.chain.not_scheduled_here() {
            self.halted
                .stop(&n.message(self.chain.store().tip().height));
            return;
        }
        let Some(message) = stop_reason(self.chain.store(), 2) else {
            return;
        };
        self.halted.stop(&message);
    }

    fn note_proposed(&mut self, id: Hash) {
        if self.proposed.len() >= PROPOSED_KEPT {
            self.proposed.remove(0);
        }
        self.proposed.push((id, Instant::now()));
        assert!(self.proposed.len() <= PROPOSED_KEPT);
    }

    fn schedule(&mut self, timer: Timer, after_ms: u64) {
        if self.timers.len() >= TIMERS_MAX
            && let Some(oldest) = self.timers.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k)
        {
            self.timers.remove(&oldest);
        }
        self.timer_seq += 1;
        let at = Instant::now() + Duration::from_millis(after_ms);
        self.timers.insert((at, self.timer_seq), timer);
        assert!(self.timers.len() <= TIMERS_MAX);
    }

    async fn send_to(&self, to: PublicKey, bytes: Vec<u8>) -> Result<(), DriverError> {
        let peer = match self.peer_of.get(&to) {
            Some(p) => *p,
            None => match cairn_ledger::keys::peer_id(&to).parse::<PeerId>() {
                Ok(p) => p,
                Err(_) => return Ok(()),
            },
        };
        self.io.command(Command::SendDirect { peer, bytes }).await
    }

    fn sync_progress(&self) -> SyncProgress {
        SyncProgress {
            tip: self.chain.store().tip().height,
            best: self.best_seen,
        }
    }

    /// Who leader reputation passes over now; also sets the per-validator gauge, zeroing the
    /// validators no longer passed over.
    fn election_status(&self) -> LeaderElectionStatus {
        let (rule, passed_over) = self.engine.election();
        for key in self.peer_of.keys() {
            let round = passed_over
                .iter()
                .find(|p| p.validator == key.address())
                .map_or(0, |p| p.failed_round.0);
            self.io
                .metrics
                .bft
                .passed_over
                .get_or_create(&ValidatorLabel {
                    validator: key.address().to_string(),
                })
                .set(to_i64(round));
        }
        LeaderElectionStatus { rule, passed_over }
    }

    fn refresh_status(&mut self) {
        let view = self.engine.view();
        let (round, leader) = (view.round, view.leader);
        if (view.height, round) != (self.last_height, self.last_round) {
            if self.last_leader.is_some_and(|l| l != leader) {
                self.io.metrics.bft.leader_changes.inc();
            }
            self.last_leader = Some(leader);
            self.last_round = round;
            self.last_height = view.height;
            self.election = self.election_status();
        }
        let sync = self.sync_progress();
        let engine = match view.height {
            None => EngineStatus::HotStuff {
                round,
                leader: Some(leader.address()),
                election: self.election.clone(),
            },
            Some(height) => EngineStatus::Pbft {
                height,
                round,
                proposer: Some(leader.address()),
                election: self.election.clone(),
            },
        };
        self.io.post_status(
            NodeStatus {
                peers: self.peers.count(),
                peer_list: self.peers.list(),
                other_schedule: self.peers.other_schedule(),
                syncing: sync.syncing(),
                validator: self.is_validator,
                halted: self.halted.reason(),
                not_scheduled_here: self.chain.not_scheduled_here(),
                engine,
            },
            sync,
        );
        self.io.metrics.bft.round.set(to_i64(round.0));
        self.io
            .metrics
            .bft
            .rounds_without_commit
            .set(to_i64(view.rounds_without_commit));
    }
}
