//! A Byzantine validator for end-to-end tests: it joins a testnet with one validator's real
//! key, the way that validator's node would, and attacks the others instead of voting.
//!
//! [`Mode::ForgedSync`] replays attack 1 of issue 17: from the consensus gossip it learns the
//! highest QC and the block it certifies, then sends sibling children of that block (justify
//! = that public QC, proposer = itself, distinct bodies, some up to the message bound) as
//! sync answers: unsolicited to every honest validator, as the answer to every sync request
//! it gets, and once per connection by gossip. To draw requests it re-sends honest proposals
//! and a timeout for a far-off round carrying the highest QC straight to each validator, so
//! one that lacks the block asks it. Answers to requests and gossiped answers are faults
//! that the honest nodes strike; before the third strike it drops its connections and dials
//! again, as an attacker hoping for a clean record would. Strikes outlive reconnects, so it is
//! banned all the same after three, and the tests hold whether it is connected or not.
//!
//! [`Mode::ForgedHeight`] does the same with blocks claiming far greater heights.
//! [`Mode::Flood`] sends one validator messages of exactly `p2p.message_bytes_max` bytes (a
//! well-formed sync answer nobody asked for) as fast as the network takes them, holding at
//! most about [`FLOODER_RSS_MAX`] of them unsent in this process.
//!
//! It runs on its own tokio runtime, so a blocking test drives it; dropping it stops it.
//! Never: signs anything an honest validator would mind (no vote, no proposal, only timeouts
//! for rounds far ahead, which are dropped unread), or panics on what the network delivers.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cairn_consensus::hotstuff::{
    Message, SYNC_BLOCKS_MAX, SyncResponse, TimeoutMsg, timeout_signing_bytes,
};
use cairn_ledger::block::{BLOCK_TXS_MAX, Block, BlockHeader, QuorumCert, Seal};
use cairn_ledger::codec;
use cairn_ledger::crypto::Keypair;
use cairn_ledger::genesis::Genesis;
use cairn_ledger::tx::{CHAIN_ID_LEN_MAX, Payload, Transaction};
use cairn_ledger::upgrades::Schedule;
use cairn_ledger::{
    Address, Amount, Hash, Height, Nonce, ProtocolVersion, PublicKey, Round, Signature, TimestampMs,
};
use cairn_node::config::P2pSection;
use cairn_node::home::Home;
use cairn_node::p2p::{
    self, Command, Event, INVALID_STRIKES_MAX, P2pConfig, P2pHandle, Topic, Verdict,
};
use libp2p::PeerId;
use tokio::sync::{mpsc, watch};

/// Blocks in one flood message: enough that a message of `message_bytes_max` fits in
/// blocks of at most `BLOCK_TXS_MAX` well-formed transactions.
const FLOOD_SIBLINGS: usize = 4;
/// How often the forged-sync attack sends its next round of junk to every honest validator.
const ATTACK_INTERVAL: Duration = Duration::from_millis(300);
/// Faults the honest nodes strike that the peer commits on one connection: one fewer than
/// their ban threshold, after which it dials again (its record is not clean: strikes are
/// kept across connections).
const STRIKES_PER_CONNECTION: u32 = INVALID_STRIKES_MAX - 1;
/// The longest one connection lasts before the peer dials again.
const CONNECTION_MAX: Duration = Duration::from_secs(8);
/// How long after connecting the peer gossips its one forged answer: gossipsub needs the
/// peers' subscriptions first.
const GOSSIP_AFTER: Duration = Duration::from_secs(1);
/// Rounds ahead of the highest QC of the timeouts sent to draw sync requests: far enough to
/// be dropped unread as future rounds, never counted towards a timeout certificate.
const ADVERTISED_ROUNDS_AHEAD: u64 = 1_000;
/// Siblings in one forged answer meant to fill a block tree: one answer's worth.
const FILLER_SIBLINGS: usize = SYNC_BLOCKS_MAX - 1;
/// Siblings in one forged answer meant to exhaust memory and disk: few, with large bodies.
const FAT_SIBLINGS: usize = 3;
/// Room under the message bound for the network's own framing of a fat answer.
const FAT_SLACK_BYTES: usize = 1024;
/// Resident memory of this process above which the flooder waits for its backlog to drain:
/// messages it queued and the network has not sent yet live here.
const FLOODER_RSS_MAX: u64 = 1 << 30;
/// A pause before dialling again after the network could not start (its port still held).
const RESPAWN_PAUSE: Duration = Duration::from_millis(200);

/// What the peer does.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Attack 1: forged sync answers of uncertified sibling blocks, to every honest validator.
    ForgedSync,
    /// As [`Mode::ForgedSync`], with the forged blocks claiming heights `ahead` blocks above
    /// the one they would have: what a node believes of a height before checking anything.
    ForgedHeight { ahead: u64 },
    /// Messages of the largest size accepted, as fast as they go, to the validator `target`.
    Flood { target: PublicKey },
}

/// What the peer has done so far; read with [`ByzantinePeer::tally`].
#[derive(Default, Debug)]
struct Counters {
    highest_qc_round: AtomicU64,
    unsolicited: AtomicU64,
    requests: AtomicU64,
    answered: AtomicU64,
    gossiped: AtomicU64,
    advertised: AtomicU64,
    relayed: AtomicU64,
    connections: AtomicU64,
    flood_messages: AtomicU64,
    refused: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Round of the highest QC learnt from the gossip (0: none yet).
    pub highest_qc_round: u64,
    /// Forged answers sent that nobody asked for.
    pub unsolicited: u64,
    /// Sync requests received from honest validators, and forged answers sent to them.
    pub requests: u64,
    pub answered: u64,
    /// Forged answers published by gossip.
    pub gossiped: u64,
    /// Far-round timeouts and honest proposals sent straight to validators to draw requests.
    pub advertised: u64,
    pub relayed: u64,
    /// Connections made (the first one, and every dial after dropping them to shed strikes).
    pub connections: u64,
    /// Max-size messages handed to the network by the flooder.
    pub flood_messages: u64,
    /// Times a validator refused the peer's connection (a ban shows up here).
    pub refused: u64,
}

impl Counters {
    fn tally(&self) -> Tally {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Tally {
            highest_qc_round: get(&self.highest_qc_round),
            unsolicited: get(&self.unsolicited),
            requests: get(&self.requests),
            answered: get(&self.answered),
            gossiped: get(&self.gossiped),
            advertised: get(&self.advertised),
            relayed: get(&self.relayed),
            connections: get(&self.connections),
            flood_messages: get(&self.flood_messages),
            refused: get(&self.refused),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The running peer. Stops when dropped.
pub struct ByzantinePeer {
    runtime: Option<tokio::runtime::Runtime>,
    stop: watch::Sender<bool>,
    counters: Arc<Counters>,
    /// The address its blocks name as proposer.
    pub address: Address,
}

impl ByzantinePeer {
    /// Joins the network of the node whose home is `home` (its config and genesis) as the
    /// validator whose key file is `key`, in place of that node.
    pub fn start(home: &Path, key: &Path, mode: Mode) -> ByzantinePeer {
        let home = Home::new(home);
        let config = home.load_config().expect("the node's config.toml");
        let genesis = home.load_genesis().expect("the node's genesis");
        let key = cairn_ledger::keys::read_key_file(key).expect("the validator's key file");
        let me = key.public();
        assert!(
            genesis.validators.iter().any(|v| v.public_key == me),
            "the Byzantine peer needs a validator's key"
        );
        let honest: Vec<PeerId> = genesis
            .validators
            .iter()
            .filter(|v| v.public_key != me)
            .map(|v| v.peer_id.parse().expect("a genesis peer id"))
            .collect();
        let ctx = Arc::new(Context {
            chain: genesis.block_zero().0.hash(),
            message_bytes_max: config.p2p.message_bytes_max as usize,
            section: config.p2p,
            genesis,
            key,
            honest,
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("byzantine")
            .build()
            .expect("a tokio runtime");
        let (stop, stopped) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        runtime.spawn(run(ctx, mode, Arc::clone(&counters), stopped));
        ByzantinePeer {
            runtime: Some(runtime),
            stop,
            counters,
            address: me.address(),
        }
    }

    pub fn tally(&self) -> Tally {
        self.counters.tally()
    }

    /// Stops the attack and closes every connection.
    pub fn stop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for ByzantinePeer {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Context {
    section: P2pSection,
    genesis: Genesis,
    key: Keypair,
    /// The genesis block id, which every consensus signature covers.
    chain: Hash,
    message_bytes_max: usize,
    /// The other validators' peers.
    honest: Vec<PeerId>,
}

impl Context {
    fn p2p_config(&self) -> P2pConfig {
        let schedule = Schedule::for_this_binary(&self.genesis);
        P2pConfig::new(
            &self.section,
            &self.genesis,
            &schedule,
            Height(0),
            &self.key,
        )
        .expect("the node's own p2p settings")
    }
}

/// What the gossip has shown so far.
#[derive(Default)]
struct Seen {
    /// The highest QC and the height of the block it certifies.
    qc: Option<(QuorumCert, Height)>,
    /// The highest-round honest proposal, as received.
    proposal: Option<(Round, Vec<u8>)>,
    /// Distinguishes every forged block from all others.
    salt: u64,
    /// Added to the height of every forged block.
    ahead: u64,
}

impl Seen {
    fn learn(&mut self, bytes: &[u8], counters: &Counters) -> Verdict {
        let Ok(Message::Proposal(p)) = Message::decode(bytes) else {
            return Verdict::Ignore;
        };
        let Some((round, justify)) = p.round_and_justify() else {
            return Verdict::Ignore;
        };
        let Some(certified) = p.block.header.height.0.checked_sub(1) else {
            return Verdict::Ignore;
        };
        if justify.block != p.block.header.parent {
            return Verdict::Ignore;
        }
        if self
            .qc
            .as_ref()
            .is_none_or(|(qc, _)| justify.round > qc.round)
        {
            counters
                .highest_qc_round
                .store(justify.round.0, Ordering::Relaxed);
            self.qc = Some((justify.clone(), Height(certified)));
        }
        if self.proposal.as_ref().is_none_or(|(r, _)| round > *r) {
            self.proposal = Some((round, bytes.to_vec()));
        }
        Verdict::Accept
    }

    /// A sync answer of `siblings` children of the highest certified block, each with
    /// `txs` transactions, its `tip_qc` the public QC of their parent; padded to exactly
    /// `pad_to` bytes when given.
    fn forged_answer(
        &mut self,
        ctx: &Context,
        siblings: usize,
        txs: usize,
        pad_to: Option<usize>,
    ) -> Option<Vec<u8>> {
        let (qc, height) = self.qc.clone()?;
        self.salt += 1;
        let me = ctx.key.public();
        let junk_tx = |nonce: u64| Transaction {
            chain_id: ctx.genesis.chain_id.clone(),
            sender: me,
            nonce: Nonce(nonce),
            fee: Amount(1),
            payload: Payload::Transfer {
                to: Address([0xB5; 20]),
                amount: Amount(1),
            },
            signature: Signature([0xB5; 64]),
        };
        let blocks: Vec<Block> = (0..siblings as u64)
            .map(|i| {
                let salt = self.salt * SYNC_BLOCKS_MAX as u64 + i;
                Block {
                    header: BlockHeader {
                        height: Height(height.0.saturating_add(1).saturating_add(self.ahead)),
                        parent: qc.block,
                        timestamp: TimestampMs(salt),
                        tx_root: Hash::tagged(b"cairn/test-byzantine", &[&salt.to_le_bytes()]),
                        state_root: Hash::ZERO,
                        proposer: me.address(),
                        protocol_version: ProtocolVersion(1),
                        seal: Seal::HotStuff {
                            round: Round(qc.round.0 + 1),
                            justify: qc.clone(),
                        },
                    },
                    transactions: (0..txs as u64)
                        .map(|n| junk_tx(salt * BLOCK_TXS_MAX as u64 + n))
                        .collect(),
                }
            })
            .collect();
        let mut answer = SyncResponse { blocks, tip_qc: qc };
        let encode = |a: &SyncResponse| Message::SyncResponse(Box::new(a.clone())).encode();
        let Some(target) = pad_to else {
            return Some(encode(&answer));
        };
        // Padding stays within every bound a receiver checks (a malformed transaction would be
        // a fault that gets the peer banned, ending the attack): more junk transactions spread
        // over the blocks, then chain-id characters up to the chain id's limit, one byte each
        // (a string's length prefix is fixed-size).
        let slack = CHAIN_ID_LEN_MAX.saturating_sub(ctx.genesis.chain_id.len());
        let tx_len = codec::encode(&junk_tx(0)).len();
        let mut extra = 0u64;
        loop {
            let short = target.checked_sub(encode(&answer).len())?;
            let room: usize = answer
                .blocks
                .iter()
                .map(|b| b.transactions.len())
                .sum::<usize>()
                * slack;
            if short <= room {
                break;
            }
            let more = ((short - room) / (tx_len + slack)).max(1);
            for _ in 0..more {
                let b = (extra as usize) % answer.blocks.len();
                if answer.blocks[b].transactions.len() >= BLOCK_TXS_MAX {
                    return None;
                }
                extra += 1;
                let nonce = self.salt * BLOCK_TXS_MAX as u64 * 64 + BLOCK_TXS_MAX as u64 + extra;
                answer.blocks[b].transactions.push(junk_tx(nonce));
            }
        }
        let mut short = target.checked_sub(encode(&answer).len())?;
        for tx in answer
            .blocks
            .iter_mut()
            .flat_map(|b| b.transactions.iter_mut())
        {
            let add = short.min(slack);
            tx.chain_id.push_str(&"x".repeat(add));
            short -= add;
            if short == 0 {
                break;
            }
        }
        let bytes = encode(&answer);
        assert_eq!(bytes.len(), target);
        Some(bytes)
    }

    /// The largest answer under the message bound: [`FAT_SIBLINGS`] blocks sharing the
    /// bytes, padded to `bytes` exactly.
    fn fat_answer(&mut self, ctx: &Context, bytes: usize) -> Option<Vec<u8>> {
        let one_tx = codec::encode(&Transaction {
            chain_id: ctx.genesis.chain_id.clone(),
            sender: ctx.key.public(),
            nonce: Nonce(0),
            fee: Amount(0),
            payload: Payload::Transfer {
                to: Address([0; 20]),
                amount: Amount(0),
            },
            signature: Signature([0; 64]),
        })
        .len();
        let empty = self.forged_answer(ctx, FAT_SIBLINGS, 0, None)?.len();
        let txs = (bytes.saturating_sub(empty) / (FAT_SIBLINGS * one_tx)).min(BLOCK_TXS_MAX);
        // One transaction fewer than fits leaves room for the padding to land exactly.
        self.forged_answer(ctx, FAT_SIBLINGS, txs.saturating_sub(1), Some(bytes))
    }

    /// A timeout for a round far ahead carrying the highest QC: a validator that lacks the
    /// certified block asks the sender for it before dropping the timeout as early.
    fn advert(&self, ctx: &Context) -> Option<Vec<u8>> {
        let (qc, _) = self.qc.as_ref()?;
        let round = Round(qc.round.0 + ADVERTISED_ROUNDS_AHEAD);
        let signature = ctx
            .key
            .sign(&timeout_signing_bytes(&ctx.chain, round, qc.round));
        let msg = Message::Timeout(Box::new(TimeoutMsg {
            round,
            high_qc: qc.clone(),
            tc: None,
            sender: ctx.key.public(),
            signature,
        }));
        Some(msg.encode())
    }
}

async fn run(
    ctx: Arc<Context>,
    mode: Mode,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    let mut seen = Seen {
        ahead: match mode {
            Mode::ForgedHeight { ahead } => ahead,
            Mode::ForgedSync | Mode::Flood { .. } => 0,
        },
        ..Seen::default()
    };
    while !*stop.borrow() {
        let (handle, events, task) = match p2p::spawn(ctx.p2p_config()).await {
            Ok(spawned) => spawned,
            Err(_) => {
                tokio::time::sleep(RESPAWN_PAUSE).await;
                continue;
            }
        };
        bump(&counters.connections);
        let mut conn = Connection {
            ctx: &ctx,
            handle: &handle,
            counters: &counters,
            seen: &mut seen,
            connected: HashSet::new(),
            strikes: HashMap::new(),
        };
        match mode {
            Mode::ForgedSync | Mode::ForgedHeight { .. } => {
                conn.forged_sync(events, &mut stop).await
            }
            Mode::Flood { target } => {
                let peer = cairn_ledger::keys::peer_id(&target)
                    .parse()
                    .expect("a validator's peer id");
                conn.flood(peer, events, &mut stop).await
            }
        }
        let _ = handle.shutdown().await;
        drop(handle);
        let _ = task.await;
    }
}

/// One connection's worth of the attack, from dialling to dropping every connection.
struct Connection<'a> {
    ctx: &'a Context,
    handle: &'a P2pHandle,
    counters: &'a Counters,
    seen: &'a mut Seen,
    connected: HashSet<PeerId>,
    /// Faults each honest peer has struck us for on this connection.
    strikes: HashMap<PeerId, u32>,
}

impl Connection<'_> {
    /// Handles what the network tells us; the answer to a sync request is a forged one.
    async fn on_event(&mut self, event: Event, answer: bool) {
        match event {
            Event::PeerConnected { peer, .. } => {
                self.connected.insert(peer);
                if answer {
                    // A validator that just (re)started may lack blocks: be the first to
                    // show it a certificate, so that it asks us.
                    self.draw_requests(peer).await;
                }
            }
            Event::PeerDisconnected { peer } => {
                self.connected.remove(&peer);
            }
            Event::PeerRefused { .. } => bump(&self.counters.refused),
            Event::Gossip {
                id, topic, bytes, ..
            } => {
                let verdict = match topic {
                    Topic::Consensus => self.seen.learn(&bytes, self.counters),
                    Topic::Transactions => Verdict::Ignore,
                };
                let _ = self
                    .handle
                    .send(Command::GossipVerdict { id, verdict })
                    .await;
            }
            Event::Direct { from, bytes } => {
                if !matches!(Message::decode(&bytes), Ok(Message::SyncRequest(_))) {
                    return;
                }
                bump(&self.counters.requests);
                if !answer {
                    return;
                }
                if let Some(forged) = self.seen.forged_answer(self.ctx, FILLER_SIBLINGS, 1, None)
                    && self.handle.send_direct(from, forged).await.is_ok()
                {
                    bump(&self.counters.answered);
                    *self.strikes.entry(from).or_default() += 1;
                }
            }
            Event::InboundRequest { id, .. } => {
                let _ = self.handle.respond(id, Vec::new()).await;
            }
        }
    }

    async fn forged_sync(
        &mut self,
        mut events: mpsc::Receiver<Event>,
        stop: &mut watch::Receiver<bool>,
    ) {
        let started = Instant::now();
        let mut tick = tokio::time::interval(ATTACK_INTERVAL);
        let mut gossiped = false;
        let mut fat = false;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                event = events.recv() => match event {
                    Some(event) => self.on_event(event, true).await,
                    None => return,
                },
                _ = tick.tick() => {
                    fat = !fat;
                    self.attack_round(fat).await;
                    if !gossiped && started.elapsed() >= GOSSIP_AFTER && !self.connected.is_empty() {
                        gossiped = self.gossip_forged_answer().await;
                    }
                }
            }
            let worst = self.strikes.values().copied().max().unwrap_or(0);
            if worst >= STRIKES_PER_CONNECTION || started.elapsed() >= CONNECTION_MAX {
                return;
            }
        }
    }

    /// One forged answer to each connected honest validator, plus what draws requests.
    async fn attack_round(&mut self, fat: bool) {
        let peers: Vec<PeerId> = self
            .ctx
            .honest
            .iter()
            .filter(|p| self.connected.contains(p))
            .copied()
            .collect();
        for peer in peers {
            let forged = if fat {
                let bytes = self.ctx.message_bytes_max - FAT_SLACK_BYTES;
                self.seen.fat_answer(self.ctx, bytes)
            } else {
                self.seen.forged_answer(self.ctx, FILLER_SIBLINGS, 1, None)
            };
            let Some(forged) = forged else {
                return;
            };
            if self.handle.send_direct(peer, forged).await.is_ok() {
                bump(&self.counters.unsolicited);
            }
            self.draw_requests(peer).await;
        }
    }

    /// Shows `peer` the highest QC, as a timeout for a far-off round and as the latest honest
    /// proposal: if it lacks the certified block it asks us, the first to show it.
    async fn draw_requests(&mut self, peer: PeerId) {
        if let Some(advert) = self.seen.advert(self.ctx)
            && self.handle.send_direct(peer, advert).await.is_ok()
        {
            bump(&self.counters.advertised);
        }
        if let Some((_, proposal)) = &self.seen.proposal
            && self
                .handle
                .send_direct(peer, proposal.clone())
                .await
                .is_ok()
        {
            bump(&self.counters.relayed);
        }
    }

    /// Publishes one forged answer by gossip; every validator that gets it strikes us.
    async fn gossip_forged_answer(&mut self) -> bool {
        let Some(forged) = self.seen.forged_answer(self.ctx, FILLER_SIBLINGS, 1, None) else {
            return false;
        };
        if self.handle.publish(Topic::Consensus, forged).await.is_err() {
            return false;
        }
        bump(&self.counters.gossiped);
        for peer in &self.connected {
            *self.strikes.entry(*peer).or_default() += 1;
        }
        true
    }

    /// Max-size forged answers to `target` as fast as the network sends them, until it
    /// disconnects us or the test stops us.
    async fn flood(
        &mut self,
        target: PeerId,
        mut events: mpsc::Receiver<Event>,
        stop: &mut watch::Receiver<bool>,
    ) {
        let mut message = None;
        let mut was_connected = false;
        loop {
            if *stop.borrow() {
                return;
            }
            while let Ok(event) = events.try_recv() {
                self.on_event(event, false).await;
            }
            let connected = self.connected.contains(&target);
            if was_connected && !connected {
                return;
            }
            was_connected = connected;
            if message.is_none() {
                message = self.seen.forged_answer(
                    self.ctx,
                    FLOOD_SIBLINGS,
                    1,
                    Some(self.ctx.message_bytes_max),
                );
            }
            let (true, Some(bytes)) = (connected, &message) else {
                tokio::select! {
                    _ = stop.changed() => return,
                    event = events.recv() => match event {
                        Some(event) => self.on_event(event, false).await,
                        None => return,
                    },
                }
                continue;
            };
            if own_rss() > FLOODER_RSS_MAX {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            if self
                .handle
                .send_direct(target, bytes.clone())
                .await
                .is_err()
            {
                return;
            }
            bump(&self.counters.flood_messages);
            tokio::task::yield_now().await;
        }
    }
}

/// This process's resident memory, in bytes.
fn own_rss() -> u64 {
    crate::testnet::memory(std::process::id()).map_or(0, |(rss, _)| rss)
}
