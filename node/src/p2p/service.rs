//! The network task: one libp2p swarm, driven by commands from the driver and by the wire.
//!
//! This module owns each peer's lifecycle (connected → handshaking → ready → gone), the
//! pending requests in both directions, strikes and redials. It must never await the driver
//! (events are `try_send`), never deliver anything from a peer that is not ready, never
//! forget a peer's strikes because it reconnected, and never panic on a peer's input.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, TopicHash, ValidationMode};
use libp2p::request_response::{
    self, InboundFailure, OutboundFailure, OutboundRequestId, ProtocolSupport, ResponseChannel,
};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, ListenError, NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, connection_limits, core::upgrade, identify, noise,
    tcp, yamux,
};
use tokio::sync::{mpsc, oneshot};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::budget::{Budget, Held, Over};
use super::gate::{Denied, Gate};
use super::handshake::{HANDSHAKE_BYTES_MAX, Handshake, Mismatch};
use super::*;

/// Protocol of the handshake. Without the chain id in its name, so that a node of another
/// chain gets a reasoned refusal instead of "protocol not supported".
const HANDSHAKE_PROTOCOL: &str = "/cairn/handshake/2";
const IDENTIFY_PROTOCOL: &str = "/cairn/id/1";
/// Domain tag of gossip message ids.
const GOSSIP_ID_TAG: &[u8] = b"cairn/gossip-id/v1";
/// Peers whose strikes are remembered; when full, lapsed records go first, then the one
/// struck longest ago. Far above an allow list's size, so only a crowd of identities that
/// would each start clean anyway can push a record out.
const STRIKES_PEERS_MAX: usize = 1024;

/// Invalid messages counted per peer across its connections: a peer that drops its
/// connection before [`INVALID_STRIKES_MAX`] and dials again comes back with the strikes it
/// had. A peer's record lapses [`BAN_COOLDOWN`] after its last strike, as a ban would.
#[derive(Default)]
struct Strikes {
    peers: HashMap<PeerId, Strike>,
}

struct Strike {
    count: u32,
    last: Instant,
}

impl Strikes {
    /// Counts one strike against `peer` at `now`; returns its strikes, this one included.
    fn add(&mut self, peer: PeerId, now: Instant) -> u32 {
        if !self.peers.contains_key(&peer) && self.peers.len() >= STRIKES_PEERS_MAX {
            self.make_room(now);
        }
        let strike = self.peers.entry(peer).or_insert(Strike {
            count: 0,
            last: now,
        });
        if now.saturating_duration_since(strike.last) >= BAN_COOLDOWN {
            strike.count = 0;
        }
        strike.count += 1;
        strike.last = now;
        let count = strike.count;
        assert!(self.peers.len() <= STRIKES_PEERS_MAX);
        count
    }

    fn make_room(&mut self, now: Instant) {
        self.peers
            .retain(|_, s| now.saturating_duration_since(s.last) < BAN_COOLDOWN);
        if self.peers.len() < STRIKES_PEERS_MAX {
            return;
        }
        let oldest = self
            .peers
            .iter()
            .min_by_key(|(_, s)| s.last)
            .map(|(p, _)| *p);
        if let Some(peer) = oldest {
            self.peers.remove(&peer);
        }
    }

    fn remove(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }

    #[cfg(test)]
    fn get(&self, peer: &PeerId) -> Option<&u32> {
        self.peers.get(peer).map(|s| &s.count)
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

#[derive(NetworkBehaviour)]
pub(super) struct Behaviour {
    // First: the derive asks behaviours in field order, and a refused peer must not get as
    // far as the others.
    gate: Gate,
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    gossipsub: gossipsub::Behaviour,
    handshake: request_response::Behaviour<BytesCodec>,
    direct: request_response::Behaviour<BytesCodec>,
    request: request_response::Behaviour<BytesCodec>,
}

enum PeerState {
    /// Connected, handshake under way; messages held in `early` until it passes.
    Handshaking {
        deadline: Instant,
        early: Vec<Event>,
        io: HandshakeIo,
    },
    /// Its handshake, checked again whenever our fork id moves.
    Ready(Box<Handshake>),
    /// Refused; disconnected once both handshakes have crossed (or at `deadline`).
    Refused { deadline: Instant, io: HandshakeIo },
}

/// Which halves of the handshake exchange are done. A refused peer is disconnected only
/// when both are: closing earlier can cut off the handshake it still needs from us to log
/// why it was refused.
#[derive(Clone, Copy, Debug, Default)]
struct HandshakeIo {
    /// We answered the peer's handshake request (or it failed).
    answered_theirs: bool,
    /// The peer answered our handshake request (or it failed), so it has our handshake.
    ours_answered: bool,
}

impl HandshakeIo {
    fn done(&self) -> bool {
        self.answered_theirs && self.ours_answered
    }
}

struct Redial {
    addr: Multiaddr,
    delay: Duration,
    /// `None` while a dial or a connection is under way.
    next_at: Option<Instant>,
}

pub(super) struct Service {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    handshake: Handshake,
    topics: HashMap<TopicHash, Topic>,
    chain_id: String,
    message_bytes_max: usize,
    peers: HashMap<PeerId, PeerState>,
    persistent: HashMap<PeerId, Redial>,
    validators: HashSet<PeerId>,
    transactions: Option<super::TxRoute>,
    strikes: Strikes,
    inbound: HashMap<RequestId, ResponseChannel<Vec<u8>>>,
    outbound: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, RequestError>>>,
    /// Events dropped because the driver's queue was full; logged as it grows.
    events_dropped: u64,
    /// Bytes waiting in the driver's event queue, and in the transaction worker's.
    events_budget: Budget,
    tx_budget: Budget,
    /// Bytes of the messages held from peers still in the handshake.
    early_budget: Held,
    dropped: Family<ReasonLabel, Counter>,
}

/// The limits `(total, peer)` of a byte budget: a peer may always have one message of the
/// largest size the network accepts held.
fn budget_limits(total_max: usize, peer_max: usize, message_bytes_max: usize) -> (usize, usize) {
    let peer = peer_max.max(message_bytes_max);
    (total_max.max(peer), peer)
}

fn queue_budget(message_bytes_max: usize) -> Budget {
    let (total, peer) = budget_limits(QUEUE_BYTES_MAX, QUEUE_PEER_BYTES_MAX, message_bytes_max);
    Budget::new(total, peer)
}

fn early_budget(message_bytes_max: usize) -> Held {
    let (total, peer) = budget_limits(EARLY_BYTES_MAX, EARLY_PEER_BYTES_MAX, message_bytes_max);
    Held::new(total, peer)
}

/// What the network task holds for the node under a byte budget.
#[derive(Clone, Copy, Debug)]
enum Queue {
    /// The driver's event queue.
    Events,
    /// The transaction admission worker's queue.
    Tx,
    /// Messages held from peers still in the handshake.
    Early,
}

/// Messages in a channel of which the service is the only sender.
fn still_queued<T>(queue: &mpsc::Sender<T>) -> usize {
    queue.max_capacity() - queue.capacity()
}

/// Who sent a message to the node, and its bytes; the network's own events have no sender.
fn sender_and_bytes(event: &Event) -> (Option<PeerId>, usize) {
    match event {
        Event::Gossip { from, bytes, .. }
        | Event::Direct { from, bytes }
        | Event::InboundRequest { from, bytes, .. } => (Some(*from), bytes.len()),
        Event::PeerConnected { .. }
        | Event::PeerDisconnected { .. }
        | Event::PeerRefused { .. } => (None, 0),
    }
}

fn protocol(name: String) -> Result<StreamProtocol, P2pError> {
    StreamProtocol::try_from_owned(name).map_err(|e| P2pError::Setup(e.to_string()))
}

fn request_response_behaviour(
    name: String,
    codec: BytesCodec,
) -> Result<request_response::Behaviour<BytesCodec>, P2pError> {
    Ok(request_response::Behaviour::with_codec(
        codec,
        [(protocol(name)?, ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(REQUEST_TIMEOUT)
            .with_max_concurrent_streams(STREAMS_PER_CONNECTION_MAX),
    ))
}

impl Service {
    pub(super) async fn start(
        config: P2pConfig,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<Event>,
    ) -> Result<(Service, Multiaddr), P2pError> {
        let chain_id = config.handshake.chain_id.clone();
        let message_bytes_max = config.message_bytes_max;
        let gossip_config = gossipsub::ConfigBuilder::default()
            .max_transmit_size(message_bytes_max.saturating_add(GOSSIP_FRAMING_BYTES_MAX))
            // No libp2p signature per message: every payload (transaction, proposal, vote,
            // timeout, block) carries its own ed25519 signature, which the driver checks
            // before anything is forwarded. Signing and checking the envelope as well cost an
            // ed25519 signature per publish and a verification per copy received, a third of
            // a loaded node's CPU. The envelope's author is therefore not trusted for anything.
            // (Permissive, not None: None drops the author and sequence number that the
            // message ids are made of, so every message would look like the first.)
            .validation_mode(ValidationMode::Permissive)
            // Forward only what the driver has verified (Command::GossipVerdict).
            .validate_messages()
            // The envelope is unsigned, so an id made of its author and sequence number alone
            // could be copied onto other bytes by any peer, and the real message, arriving
            // later, dropped as a duplicate. The id is a hash of the payload with them (and
            // the default's base58 spelling of the author, which showed in profiles, goes).
            .message_id_fn(|m: &gossipsub::Message| {
                let seq = m.sequence_number.unwrap_or_default().to_be_bytes();
                let author = m.source.map(|p| p.to_bytes()).unwrap_or_default();
                // The author's length first, so author and payload cannot trade bytes.
                let len = (author.len() as u64).to_be_bytes();
                let id = cairn_ledger::Hash::tagged(GOSSIP_ID_TAG, &[&seq, &len, &author, &m.data]);
                gossipsub::MessageId::new(&id.0)
            })
            .build()
            .map_err(|e| P2pError::Setup(e.to_string()))?;
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_pending_incoming(Some(PENDING_CONNECTIONS_MAX))
            .with_max_pending_outgoing(Some(PENDING_CONNECTIONS_MAX))
            .with_max_established(Some(
                (config.peers_max as u32).saturating_mul(CONNECTIONS_PER_PEER_MAX),
            ))
            .with_max_established_per_peer(Some(CONNECTIONS_PER_PEER_MAX));
        let reading = BytesCodec::read_budget(READING_BYTES_MAX, message_bytes_max);
        let behaviour = Behaviour {
            gate: Gate::new(config.allowed_peers.clone(), config.peers_max),
            limits: connection_limits::Behaviour::new(limits),
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.into(), config.identity.public())
                    .with_agent_version(crate::software()),
            ),
            gossipsub: gossipsub::Behaviour::new(
                // A random sequence number per publish keeps a re-sent timeout or proposal a
                // new message rather than a duplicate.
                MessageAuthenticity::Author(config.identity.public().to_peer_id()),
                gossip_config,
            )
            .map_err(|e| P2pError::Setup(e.to_string()))?,
            handshake: request_response_behaviour(
                HANDSHAKE_PROTOCOL.into(),
                BytesCodec::new(HANDSHAKE_BYTES_MAX),
            )?,
            direct: request_response_behaviour(
                format!("/cairn/{chain_id}/direct/1"),
                BytesCodec::with_read_budget(message_bytes_max, Arc::clone(&reading)),
            )?,
            request: request_response_behaviour(
                format!("/cairn/{chain_id}/request/1"),
                BytesCodec::with_read_budget(message_bytes_max, reading),
            )?,
        };
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.identity)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| P2pError::Setup(e.to_string()))?
            .with_behaviour(|_| behaviour)
            .map_err(|e| P2pError::Setup(e.to_string()))?
            .with_swarm_config(|c| {
                c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT)
                    .with_substream_upgrade_protocol_override(upgrade::Version::V1Lazy)
            })
            .build();
        let mut topics = HashMap::new();
        for topic in Topic::ALL {
            let t = IdentTopic::new(topic.name(&chain_id));
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(&t)
                .map_err(|e| P2pError::Setup(e.to_string()))?;
            topics.insert(t.hash(), topic);
        }
        let listen_err = |reason: String| P2pError::Listen {
            addr: config.listen.clone(),
            reason,
        };
        swarm
            .listen_on(config.listen.clone())
            .map_err(|e| listen_err(e.to_string()))?;
        // Wait for the OS to give us the address (and port) actually bound.
        let listen_addr = tokio::time::timeout(LISTEN_TIMEOUT, async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::NewListenAddr { address, .. } => return Ok(address),
                    SwarmEvent::ListenerError { error, .. } => return Err(error.to_string()),
                    SwarmEvent::ListenerClosed { reason, .. } => {
                        return Err(format!("listener closed: {reason:?}"));
                    }
                    _ => {}
                }
            }
        })
        .await
        .map_err(|_| listen_err("timed out".into()))?
        .map_err(listen_err)?;
        tracing::info!(peer_id = %swarm.local_peer_id(), %listen_addr, "p2p: listening");
        let now = Instant::now();
        let persistent = config
            .persistent_peers
            .into_iter()
            .map(|(peer, addr)| {
                let redial = Redial {
                    addr,
                    delay: REDIAL_BACKOFF_BASE,
                    next_at: Some(now),
                };
                (peer, redial)
            })
            .collect();
        Ok((
            Service {
                swarm,
                commands,
                events,
                handshake: config.handshake,
                topics,
                chain_id,
                message_bytes_max,
                peers: HashMap::new(),
                persistent,
                validators: config.validators,
                transactions: config.transactions,
                strikes: Strikes::default(),
                inbound: HashMap::new(),
                outbound: HashMap::new(),
                events_dropped: 0,
                events_budget: queue_budget(message_bytes_max),
                tx_budget: queue_budget(message_bytes_max),
                early_budget: early_budget(message_bytes_max),
                dropped: config.dropped,
            },
            listen_addr,
        ))
    }

    pub(super) fn local_peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    pub(super) async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown) | None => break,
                    Some(command) => self.on_command(command),
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = tick.tick() => self.on_tick(Instant::now()),
            }
        }
        tracing::info!(peer_id = %self.swarm.local_peer_id(), "p2p: stopped");
    }

    // -----------------------------------------------------------------------------------
    // Towards the driver.

    fn emit(&mut self, event: Event) {
        let (peer, len) = sender_and_bytes(&event);
        let event = match &self.transactions {
            Some(route) => match event.into_gossiped_tx() {
                Ok(message) => {
                    self.tx_budget.taken(still_queued(&route.queue));
                    if let Err(over) = self.tx_budget.admit(Some(message.from), len) {
                        self.over_budget(message.from, over, Queue::Tx);
                        self.discard_gossip(message.id, Verdict::Ignore);
                        return;
                    }
                    if let Err(e) = route.queue.try_send(message) {
                        self.tx_budget.cancel_last();
                        if matches!(e, mpsc::error::TrySendError::Full(_)) {
                            route.full.inc();
                        }
                        self.discard_gossip(e.into_inner().id, Verdict::Ignore);
                    }
                    return;
                }
                Err(event) => event,
            },
            None => event,
        };
        self.events_budget.taken(still_queued(&self.events));
        if let Err(over) = self.events_budget.admit(peer, len) {
            let from = peer.expect("the network's own events are always admitted");
            self.over_budget(from, over, Queue::Events);
            self.discard(event);
            return;
        }
        let refused = self.events.try_send(event);
        if refused.is_err() {
            self.events_budget.cancel_last();
        }
        match refused {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(event)) => {
                self.events_dropped += 1;
                self.dropped
                    .get_or_create(&ReasonLabel {
                        reason: "event_queue_full",
                    })
                    .inc();
                tracing::warn!(
                    dropped_total = self.events_dropped,
                    capacity = EVENTS_CAPACITY,
                    "p2p: event queue full, dropping {}",
                    event_kind(&event)
                );
                if let Event::InboundRequest { id, .. } = event {
                    self.inbound.remove(&id);
                }
            }
            // The driver is gone; nothing to tell.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// A message from `peer` that does not fit a queue's byte budget: counted (the caller
    /// drops it). A peer over its own share is also struck, unless the queue is crowded: then
    /// it is our consumer that lags (a slow disk, a busy core), and striking would ban honest
    /// validators for our own slowness.
    fn over_budget(&mut self, peer: PeerId, over: Over, queue: Queue) {
        let (reason, held) = match (queue, over) {
            (Queue::Tx, Over::Peer) => ("tx_queue_peer_bytes", self.tx_budget.held()),
            (Queue::Tx, Over::Total) => ("tx_queue_bytes", self.tx_budget.held()),
            (Queue::Events, Over::Peer) => ("event_queue_peer_bytes", self.events_budget.held()),
            (Queue::Events, Over::Total) => ("event_queue_bytes", self.events_budget.held()),
            (Queue::Early, Over::Peer) => ("early_peer_bytes", &self.early_budget),
            (Queue::Early, Over::Total) => ("early_bytes", &self.early_budget),
        };
        let crowded = held.crowded();
        self.dropped.get_or_create(&ReasonLabel { reason }).inc();
        tracing::debug!(%peer, reason, "p2p: dropping a message over the queue's byte budget");
        if over == Over::Peer && !crowded {
            self.strike(peer, &format!("over its byte budget ({reason})"));
        }
    }

    /// Deliver a message from `peer`, hold it while the handshake runs, or drop it.
    fn deliver(&mut self, peer: PeerId, event: Event) {
        let early = match self.peers.get_mut(&peer) {
            Some(PeerState::Ready(_)) => return self.emit(event),
            Some(PeerState::Handshaking { early, .. }) => early,
            _ => {
                tracing::debug!(%peer, "p2p: dropping {} from a peer not ready", event_kind(&event));
                return self.discard(event);
            }
        };
        if early.len() >= EARLY_MESSAGES_MAX {
            tracing::debug!(%peer, limit = EARLY_MESSAGES_MAX, "p2p: dropping {} from a peer in the handshake", event_kind(&event));
            self.dropped
                .get_or_create(&ReasonLabel {
                    reason: "early_messages",
                })
                .inc();
            return self.discard(event);
        }
        let (_, len) = sender_and_bytes(&event);
        if let Err(over) = self.early_budget.try_add(peer, len) {
            self.over_budget(peer, over, Queue::Early);
            return self.discard(event);
        }
        early.push(event);
    }

    /// Sets (or with `None`, forgets) `peer`'s state and returns the one it replaces; a peer
    /// leaving the handshake takes its held messages' bytes out of the early budget.
    fn replace_state(&mut self, peer: PeerId, next: Option<PeerState>) -> Option<PeerState> {
        let previous = match next {
            Some(state) => self.peers.insert(peer, state),
            None => self.peers.remove(&peer),
        };
        if matches!(previous, Some(PeerState::Handshaking { .. })) {
            self.early_budget.release_peer(&peer);
        }
        previous
    }

    /// Let go of an undelivered message without leaving anything pending for it.
    fn discard(&mut self, event: Event) {
        match event {
            Event::InboundRequest { id, .. } => {
                self.inbound.remove(&id);
            }
            Event::Gossip { id, .. } => self.discard_gossip(id, Verdict::Ignore),
            _ => {}
        }
    }

    // -----------------------------------------------------------------------------------
    // Commands.

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { topic, bytes } => {
                if bytes.len() > self.message_bytes_max {
                    tracing::warn!(
                        len = bytes.len(),
                        max = self.message_bytes_max,
                        ?topic,
                        "p2p: not publishing an oversized message"
                    );
                    return;
                }
                let t = IdentTopic::new(topic.name(&self.chain_id));
                if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(t, bytes) {
                    // Normal for a node with no peers yet; the driver does not wait on it.
                    tracing::debug!(?topic, error = %e, "p2p: publish failed");
                }
            }
            Command::SendDirect { peer, bytes } => {
                if let Err(e) = self.check_sendable(peer, bytes.len()) {
                    tracing::debug!(%peer, error = %e, "p2p: direct message not sent");
                    return;
                }
                self.swarm.behaviour_mut().direct.send_request(&peer, bytes);
            }
            Command::Request { peer, bytes, reply } => {
                if let Err(e) = self.check_sendable(peer, bytes.len()) {
                    let _ = reply.send(Err(e));
                    return;
                }
                if self.outbound.len() >= OUTBOUND_REQUESTS_MAX {
                    let _ = reply.send(Err(RequestError::Busy(OUTBOUND_REQUESTS_MAX)));
                    return;
                }
                let id = self
                    .swarm
                    .behaviour_mut()
                    .request
                    .send_request(&peer, bytes);
                self.outbound.insert(id, reply);
            }
            Command::Respond { id, bytes } => {
                let Some(channel) = self.inbound.remove(&id) else {
                    tracing::debug!(
                        ?id,
                        "p2p: response to a request that is gone (timed out or closed)"
                    );
                    return;
                };
                if bytes.len() > self.message_bytes_max {
                    // Dropping the channel tells the requester it failed.
                    tracing::warn!(
                        len = bytes.len(),
                        max = self.message_bytes_max,
                        "p2p: not sending an oversized response"
                    );
                    return;
                }
                if self
                    .swarm
                    .behaviour_mut()
                    .request
                    .send_response(channel, bytes)
                    .is_err()
                {
                    tracing::debug!(?id, "p2p: requester went away before the response");
                }
            }
            Command::GossipVerdict { id, verdict } => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id.message, &id.from, verdict);
            }
            Command::ReportInvalid { peer, reason } => self.strike(peer, &reason),
            Command::SetForkId(fork) => {
                self.handshake.fork = fork;
                self.recheck_ready_peers();
            }
            Command::Peers { reply } => {
                let ready = self
                    .peers
                    .iter()
                    .filter(|(_, s)| matches!(s, PeerState::Ready(_)))
                    .map(|(p, _)| *p)
                    .collect();
                let _ = reply.send(ready);
            }
            // Handled by the loop.
            Command::Shutdown => {}
        }
    }

    fn check_sendable(&self, peer: PeerId, len: usize) -> Result<(), RequestError> {
        if len > self.message_bytes_max {
            return Err(RequestError::TooLarge {
                len,
                max: self.message_bytes_max,
            });
        }
        if !matches!(self.peers.get(&peer), Some(PeerState::Ready(_))) {
            return Err(RequestError::NotConnected(peer));
        }
        Ok(())
    }

    /// Count one invalid message against `peer`; at the limit, disconnect and ban it.
    fn strike(&mut self, peer: PeerId, reason: &str) {
        let strikes = self.strikes.add(peer, Instant::now());
        tracing::warn!(%peer, strikes, limit = INVALID_STRIKES_MAX, reason, "p2p: invalid message from peer");
        if strikes < INVALID_STRIKES_MAX {
            return;
        }
        self.strikes.remove(&peer);
        let until = Instant::now() + BAN_COOLDOWN;
        tracing::warn!(%peer, cooldown_s = BAN_COOLDOWN.as_secs(), "p2p: peer banned after repeated invalid messages");
        self.swarm.behaviour_mut().gate.ban(peer, until);
        if let Some(redial) = self.persistent.get_mut(&peer) {
            redial.next_at = Some(until);
        }
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    // -----------------------------------------------------------------------------------
    // Timers.

    fn on_tick(&mut self, now: Instant) {
        let expired: Vec<(PeerId, bool)> = self
            .peers
            .iter()
            .filter_map(|(peer, state)| match state {
                PeerState::Handshaking { deadline, .. } if *deadline <= now => Some((*peer, true)),
                PeerState::Refused { deadline, .. } if *deadline <= now => Some((*peer, false)),
                _ => None,
            })
            .collect();
        for (peer, handshaking) in expired {
            if handshaking {
                self.refuse(peer, Refusal::HandshakeTimeout);
            }
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        let due: Vec<(PeerId, Multiaddr)> = self
            .persistent
            .iter()
            .filter(|(peer, r)| {
                r.next_at.is_some_and(|t| t <= now) && !self.peers.contains_key(peer)
            })
            .map(|(peer, r)| (*peer, r.addr.clone()))
            .collect();
        for (peer, addr) in due {
            if self.swarm.behaviour_mut().gate.is_banned(&peer, now) {
                continue;
            }
            let opts = DialOpts::peer_id(peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            tracing::debug!(%peer, %addr, "p2p: dialling persistent peer");
            match self.swarm.dial(opts) {
                Ok(()) => {
                    if let Some(r) = self.persistent.get_mut(&peer) {
                        r.next_at = None;
                    }
                }
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "p2p: dial not started");
                    self.schedule_redial(peer, now);
                }
            }
        }
    }

    fn schedule_redial(&mut self, peer: PeerId, now: Instant) {
        if let Some(r) = self.persistent.get_mut(&peer) {
            r.next_at = Some(now + r.delay);
            tracing::debug!(%peer, delay_ms = r.delay.as_millis() as u64, "p2p: will redial");
            r.delay = (r.delay * 2).min(REDIAL_BACKOFF_MAX);
        }
    }

    // -----------------------------------------------------------------------------------
    // Peer lifecycle.

    fn refuse(&mut self, peer: PeerId, reason: Refusal) {
        tracing::warn!(%peer, %reason, "p2p: peer refused");
        let mut io = HandshakeIo::default();
        if let Some(PeerState::Handshaking {
            early, io: so_far, ..
        }) = self.replace_state(
            peer,
            Some(PeerState::Refused {
                deadline: Instant::now() + HANDSHAKE_TIMEOUT,
                io,
            }),
        ) {
            io = so_far;
            for event in early {
                self.discard(event);
            }
        }
        self.emit(Event::PeerRefused { peer, reason });
        self.note_handshake_io(peer, io);
    }

    /// After our fork id moved (an upgrade activated here, or the next one changed): a
    /// connected peer whose handshake no longer passes is let go at once, as it would be
    /// refused if it connected now. Without this, a peer that never scheduled an upgrade
    /// would stay connected past its height until one side restarted.
    fn recheck_ready_peers(&mut self) {
        let diverged: Vec<(PeerId, Mismatch)> = self
            .peers
            .iter()
            .filter_map(|(peer, state)| match state {
                PeerState::Ready(theirs) => self.handshake.check(theirs).err().map(|m| (*peer, m)),
                _ => None,
            })
            .collect();
        for (peer, mismatch) in diverged {
            // Both handshakes crossed long ago: nothing left to wait for.
            self.replace_state(
                peer,
                Some(PeerState::Refused {
                    deadline: Instant::now() + HANDSHAKE_TIMEOUT,
                    io: HandshakeIo {
                        answered_theirs: true,
                        ours_answered: true,
                    },
                }),
            );
            tracing::warn!(
                %peer,
                reason = %mismatch,
                "p2p: peer let go: an upgrade activated here and its rules differ from ours"
            );
            self.emit(Event::PeerDisconnected { peer });
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// Records handshake progress with `peer`; a refused peer is let go once both are done.
    fn note_handshake_io(&mut self, peer: PeerId, progress: HandshakeIo) {
        let finished_refusal = match self.peers.get_mut(&peer) {
            Some(PeerState::Handshaking { io, .. }) => {
                io.answered_theirs |= progress.answered_theirs;
                io.ours_answered |= progress.ours_answered;
                false
            }
            Some(PeerState::Refused { io, .. }) => {
                io.answered_theirs |= progress.answered_theirs;
                io.ours_answered |= progress.ours_answered;
                io.done()
            }
            _ => false,
        };
        if finished_refusal {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// The peer's handshake arrived (in its request or in its response to ours).
    fn on_remote_handshake(&mut self, peer: PeerId, bytes: &[u8]) {
        if !matches!(self.peers.get(&peer), Some(PeerState::Handshaking { .. })) {
            return;
        }
        let theirs = match Handshake::decode(bytes) {
            Ok(theirs) => theirs,
            Err(mismatch) => return self.refuse(peer, Refusal::Handshake(mismatch)),
        };
        if let Err(mismatch) = self.handshake.check(&theirs) {
            tracing::warn!(
                %peer,
                software = %theirs.software,
                protocol_version = theirs.protocol_version,
                "p2p: the peer runs other rules (its software and versions, for the operator)"
            );
            self.refuse(peer, Refusal::Handshake(mismatch));
            return;
        }
        let info = PeerInfo {
            software: theirs.software.clone(),
            protocol_version: theirs.protocol_version,
        };
        let Some(PeerState::Handshaking { early, .. }) =
            self.replace_state(peer, Some(PeerState::Ready(Box::new(theirs))))
        else {
            return;
        };
        tracing::info!(
            %peer,
            software = %info.software,
            protocol_version = info.protocol_version,
            "p2p: peer connected"
        );
        if let Some(r) = self.persistent.get_mut(&peer) {
            r.delay = REDIAL_BACKOFF_BASE;
        }
        self.emit(Event::PeerConnected { peer, info });
        for event in early {
            self.emit(event);
        }
    }

    /// The last connection to `peer_id` closed. Its strikes stay (see [`Strikes`]).
    fn on_closed(&mut self, peer_id: PeerId) {
        match self.replace_state(peer_id, None) {
            Some(PeerState::Ready(_)) => {
                tracing::info!(peer = %peer_id, "p2p: peer disconnected");
                self.emit(Event::PeerDisconnected { peer: peer_id });
            }
            Some(PeerState::Handshaking { early, .. }) => {
                for event in early {
                    self.discard(event);
                }
                tracing::warn!(peer = %peer_id, reason = %Refusal::ClosedBeforeHandshake, "p2p: peer refused");
                self.emit(Event::PeerRefused {
                    peer: peer_id,
                    reason: Refusal::ClosedBeforeHandshake,
                });
            }
            Some(PeerState::Refused { .. }) | None => {}
        }
        self.schedule_redial(peer_id, Instant::now());
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                if self.peers.contains_key(&peer_id) {
                    return;
                }
                self.peers.insert(
                    peer_id,
                    PeerState::Handshaking {
                        deadline: Instant::now() + HANDSHAKE_TIMEOUT,
                        early: Vec::new(),
                        io: HandshakeIo::default(),
                    },
                );
                // Both sides send their handshake: neither waits on the other's role.
                let ours = self.handshake.encode();
                self.swarm
                    .behaviour_mut()
                    .handshake
                    .send_request(&peer_id, ours);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => self.on_closed(peer_id),
            SwarmEvent::IncomingConnectionError { peer_id, error, .. } => {
                if let (Some(peer), ListenError::Denied { cause }) = (peer_id, error) {
                    self.on_denied(peer, cause);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => {
                match error {
                    DialError::Denied { cause } => self.on_denied(peer, cause),
                    error => tracing::debug!(%peer, %error, "p2p: dial failed"),
                }
                if !self.peers.contains_key(&peer) {
                    self.schedule_redial(peer, Instant::now());
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_denied(&mut self, peer: PeerId, cause: libp2p::swarm::ConnectionDenied) {
        // The gate logged its own refusals; connection_limits' are logged here.
        let denied = match cause.downcast::<Denied>() {
            Ok(denied) => denied,
            Err(other) => {
                tracing::warn!(%peer, reason = %other, "p2p: connection refused");
                return;
            }
        };
        self.emit(Event::PeerRefused {
            peer,
            reason: Refusal::Denied(denied),
        });
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Handshake(event) => self.on_handshake_event(event),
            BehaviourEvent::Direct(event) => self.on_direct_event(event),
            BehaviourEvent::Request(event) => self.on_request_event(event),
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let id = GossipId {
                    message: message_id,
                    from: propagation_source,
                };
                let Some(&topic) = self.topics.get(&message.topic) else {
                    // We subscribe to our topics only, so gossipsub should not hand us
                    // others; if it does, it is not ours to forward.
                    self.discard_gossip(id, Verdict::Reject);
                    return;
                };
                let relay = super::relays(
                    topic,
                    message.source.as_ref(),
                    &propagation_source,
                    &self.validators,
                );
                let event = Event::Gossip {
                    from: propagation_source,
                    topic,
                    id,
                    bytes: message.data,
                    relay,
                };
                self.deliver(propagation_source, event);
            }
            BehaviourEvent::Gossipsub(_) => {}
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                tracing::debug!(peer = %peer_id, agent = %info.agent_version, "p2p: identified peer");
            }
            BehaviourEvent::Identify(_) => {}
            BehaviourEvent::Gate(never) => match never {},
            BehaviourEvent::Limits(never) => match never {},
        }
    }

    fn discard_gossip(&mut self, id: GossipId, verdict: Verdict) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&id.message, &id.from, verdict);
    }

    fn on_handshake_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        use request_response::{Event as E, Message as M};
        match event {
            E::Message {
                peer,
                message: M::Request {
                    request, channel, ..
                },
                ..
            } => {
                self.on_remote_handshake(peer, &request);
                // Answer even a refused peer, so that it logs the reason too.
                let ours = self.handshake.encode();
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .handshake
                    .send_response(channel, ours);
            }
            E::Message {
                peer,
                message: M::Response { response, .. },
                ..
            } => {
                self.on_remote_handshake(peer, &response);
                self.note_handshake_io(
                    peer,
                    HandshakeIo {
                        ours_answered: true,
                        ..HandshakeIo::default()
                    },
                );
            }
            E::ResponseSent { peer, .. } | E::InboundFailure { peer, .. } => {
                self.note_handshake_io(
                    peer,
                    HandshakeIo {
                        answered_theirs: true,
                        ..HandshakeIo::default()
                    },
                );
            }
            E::OutboundFailure { peer, error, .. } => {
                if matches!(self.peers.get(&peer), Some(PeerState::Handshaking { .. })) {
                    tracing::debug!(%peer, %error, "p2p: handshake request failed");
                }
                self.note_handshake_io(
                    peer,
                    HandshakeIo {
                        ours_answered: true,
                        ..HandshakeIo::default()
                    },
                );
            }
        }
    }

    fn on_direct_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        use request_response::{Event as E, Message as M};
        match event {
            E::Message {
                peer,
                message: M::Request {
                    request, channel, ..
                },
                ..
            } => {
                // The empty response is the transport's acknowledgement only.
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .direct
                    .send_response(channel, Vec::new());
                self.deliver(
                    peer,
                    Event::Direct {
                        from: peer,
                        bytes: request,
                    },
                );
            }
            E::InboundFailure { peer, error, .. } => self.on_inbound_failure(peer, error),
            E::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "p2p: direct message failed");
            }
            E::Message { .. } | E::ResponseSent { .. } => {}
        }
    }

    fn on_request_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        use request_response::{Event as E, Message as M};
        match event {
            E::Message {
                peer,
                message:
                    M::Request {
                        request_id,
                        request,
                        channel,
                    },
                ..
            } => {
                if self.inbound.len() >= INBOUND_REQUESTS_MAX {
                    tracing::warn!(%peer, limit = INBOUND_REQUESTS_MAX, "p2p: too many pending requests, dropping one");
                    return;
                }
                let id = RequestId(request_id);
                self.inbound.insert(id, channel);
                self.deliver(
                    peer,
                    Event::InboundRequest {
                        from: peer,
                        id,
                        bytes: request,
                    },
                );
            }
            E::Message {
                message:
                    M::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(reply) = self.outbound.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            E::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(reply) = self.outbound.remove(&request_id) {
                    let _ = reply.send(Err(RequestError::Failed(error.to_string())));
                }
                if let OutboundFailure::Io(e) = &error {
                    tracing::debug!(error = %e, "p2p: request failed");
                }
            }
            E::InboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.inbound.remove(&RequestId(request_id));
                self.on_inbound_failure(peer, error);
            }
            E::ResponseSent { .. } => {}
        }
    }

    /// A request that could not be read: an oversized or malformed frame counts against the
    /// peer; a closed stream or a timeout does not.
    fn on_inbound_failure(&mut self, peer: PeerId, error: InboundFailure) {
        match error {
            InboundFailure::Io(e) if e.kind() == io::ErrorKind::InvalidData => {
                self.strike(peer, &format!("unreadable message: {e}"));
            }
            error => tracing::debug!(%peer, %error, "p2p: inbound request failed"),
        }
    }
}

fn event_kind(event: &Event) -> &'static str {
    match event {
        Event::PeerConnected { .. } => "peer-connected",
        Event::PeerDisconnected { .. } => "peer-disconnected",
        Event::PeerRefused { .. } => "peer-refused",
        Event::Gossip { .. } => "gossip",
        Event::Direct { .. } => "direct",
        Event::InboundRequest { .. } => "request",
    }
}

#[cfg(test)]
mod tests {
    use cairn_ledger::genesis::EngineKind;
    use cairn_ledger::types::TimestampMs;

    use super::*;

    const MIB: usize = 1 << 20;

    /// A service listening on a port of the OS's, never run: the tests drive its handlers.
    async fn service(message_bytes_max: usize) -> (Service, mpsc::Receiver<Event>) {
        let key = Keypair::generate(&mut rand::rngs::OsRng);
        let genesis = Genesis::local(EngineKind::HotStuff, &[key.public()], &[], TimestampMs(0));
        let schedule = Schedule::for_this_binary(&genesis);
        let section = P2pSection {
            listen: "/ip4/127.0.0.1/tcp/0".into(),
            persistent_peers: Vec::new(),
            allowed_peers: Vec::new(),
            peers_max: 8,
            message_bytes_max: message_bytes_max as u32,
        };
        let config = P2pConfig::new(&section, &genesis, &schedule, Height(0), &key).unwrap();
        let (_, commands) = mpsc::channel(1);
        let (events_tx, events) = mpsc::channel(EVENTS_CAPACITY);
        let (service, _) = Service::start(config, commands, events_tx).await.unwrap();
        (service, events)
    }

    /// A peer connected and still in the handshake.
    fn handshaking(service: &mut Service) -> PeerId {
        let peer = PeerId::random();
        connect(service, peer);
        peer
    }

    /// `peer` (again) connected and in the handshake.
    fn connect(service: &mut Service, peer: PeerId) {
        service.peers.insert(
            peer,
            PeerState::Handshaking {
                deadline: Instant::now() + HANDSHAKE_TIMEOUT,
                early: Vec::new(),
                io: HandshakeIo::default(),
            },
        );
    }

    fn direct(from: PeerId, len: usize) -> Event {
        Event::Direct {
            from,
            bytes: vec![0; len],
        }
    }

    fn dropped(service: &Service, reason: &'static str) -> u64 {
        service.dropped.get_or_create(&ReasonLabel { reason }).get()
    }

    #[tokio::test]
    async fn a_handshaking_peer_over_its_early_byte_budget_has_the_excess_dropped_and_is_struck() {
        let (mut service, mut events) = service(4 * MIB).await;
        let peer = handshaking(&mut service);
        // Far under the count bound: two of the largest messages are held, the rest dropped.
        for len in [4 * MIB, 4 * MIB, 4 * MIB, 1] {
            service.deliver(peer, direct(peer, len));
        }
        assert_eq!(service.early_budget.peer(&peer), EARLY_PEER_BYTES_MAX);
        assert_eq!(dropped(&service, "early_peer_bytes"), 2);
        assert_eq!(service.strikes.get(&peer), Some(&2));

        // Once it passes, what was held goes on, and leaves the early budget.
        let ours = service.handshake.encode();
        service.on_remote_handshake(peer, &ours);
        assert_eq!(service.early_budget.total(), 0);
        assert!(matches!(events.try_recv(), Ok(Event::PeerConnected { .. })));
        for _ in 0..2 {
            let Ok(Event::Direct { bytes, .. }) = events.try_recv() else {
                panic!("a held message was not delivered");
            };
            assert_eq!(bytes.len(), 4 * MIB);
        }
        assert!(events.try_recv().is_err());
    }

    #[tokio::test]
    async fn peers_in_the_handshake_share_one_early_byte_budget_and_a_count_bound_each() {
        let (mut service, _events) = service(4 * MIB).await;
        let peers: Vec<PeerId> = (0..5).map(|_| handshaking(&mut service)).collect();
        for &peer in &peers {
            service.deliver(peer, direct(peer, 4 * MIB));
            service.deliver(peer, direct(peer, 4 * MIB));
        }
        // Four peers at their share fill the total; the fifth's messages are dropped, and
        // nobody is struck for a crowd.
        assert_eq!(service.early_budget.total(), EARLY_BYTES_MAX);
        assert_eq!(service.early_budget.peer(&peers[4]), 0);
        assert_eq!(dropped(&service, "early_bytes"), 2);
        assert!(service.strikes.is_empty());

        // A peer refused or gone takes its held bytes with it.
        service.refuse(peers[0], Refusal::HandshakeTimeout);
        service.replace_state(peers[1], None);
        assert_eq!(service.early_budget.total(), 2 * EARLY_PEER_BYTES_MAX);

        // Small messages still meet the count bound.
        let chatty = peers[4];
        for _ in 0..EARLY_MESSAGES_MAX + 3 {
            service.deliver(chatty, direct(chatty, 10));
        }
        assert_eq!(dropped(&service, "early_messages"), 3);
        assert_eq!(service.early_budget.peer(&chatty), 10 * EARLY_MESSAGES_MAX);
    }

    #[tokio::test]
    async fn a_peer_that_reconnects_keeps_its_strikes_and_is_banned_at_the_limit() {
        let (mut service, _events) = service(4 * MIB).await;
        let peer = handshaking(&mut service);
        service.strike(peer, "test");
        service.on_closed(peer);
        connect(&mut service, peer);
        assert_eq!(service.strikes.get(&peer), Some(&1));
        for _ in 1..INVALID_STRIKES_MAX {
            service.strike(peer, "test");
        }
        let now = Instant::now();
        assert!(service.swarm.behaviour_mut().gate.is_banned(&peer, now));
        // Banned: its record starts again, clean, once the ban is over.
        assert!(service.strikes.is_empty());
    }

    #[test]
    fn strikes_lapse_a_ban_cooldown_after_the_last_one_and_the_table_stays_bounded() {
        let mut strikes = Strikes::default();
        let (peer, t0) = (PeerId::random(), Instant::now());
        assert_eq!(strikes.add(peer, t0), 1);
        assert_eq!(strikes.add(peer, t0 + BAN_COOLDOWN / 2), 2);
        assert_eq!(strikes.add(peer, t0 + BAN_COOLDOWN / 2 + BAN_COOLDOWN), 1);
        let later = t0 + 3 * BAN_COOLDOWN;
        for i in 0..STRIKES_PEERS_MAX + 10 {
            strikes.add(
                PeerId::random(),
                later + std::time::Duration::from_millis(i as u64),
            );
        }
        assert_eq!(strikes.peers.len(), STRIKES_PEERS_MAX);
    }
}
