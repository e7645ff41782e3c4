//! The node's peer-to-peer networking: libp2p over TCP + noise + yamux, with identify,
//! gossipsub (transactions, consensus) and request-response (block sync, direct consensus
//! messages).
//!
//! This module owns connections, the allow-list, the handshake (chain id, genesis hash, fork
//! id), peer scoring and bans, and redialling persistent peers. It runs as one tokio task
//! and talks to the rest of the node only through bounded channels: [`Command`]s in,
//! [`Event`]s out, and transaction gossip out to its own queue when given a [`TxRoute`].
//! Message payloads are opaque bytes here: the driver (or the transaction admission worker)
//! decodes and verifies them and reports bad ones back with [`Command::ReportInvalid`].
//!
//! It must never forward a message from a peer that has not passed the handshake, accept a
//! message over its size bound, block on the driver (a full event queue drops the event and
//! logs it), or panic on anything a peer sends.

mod budget;
mod codec;
mod gate;
mod handshake;
mod service;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use cairn_ledger::crypto::Keypair;
use cairn_ledger::genesis::Genesis;
use cairn_ledger::types::Height;
use cairn_ledger::upgrades::Schedule;

use crate::config::P2pSection;
use crate::metrics::ReasonLabel;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

pub use budget::{Budget, Held, Over};
pub use codec::BytesCodec;
pub use gate::Denied;
pub use handshake::{ForkId, HANDSHAKE_BYTES_MAX, Handshake, Mismatch, UpgradeMark};
pub use libp2p::gossipsub::MessageAcceptance as Verdict;

/// Commands queued from the driver to the service. The driver awaits a free slot, so a busy
/// network slows the driver rather than growing memory.
pub const COMMANDS_CAPACITY: usize = 1024;
/// Events queued from the service to the driver. When full, new events are dropped and
/// logged: the network task never waits on the driver.
pub const EVENTS_CAPACITY: usize = 4096;
/// Bytes of peer messages waiting in one queue to the node (the driver's events, or the
/// transaction worker's queue), in total. The count bounds alone let 4,096 messages of
/// `message_bytes_max` (4 MiB by default) wait: 16 GiB. 64 MiB is sixteen of the largest
/// messages: a driver busy on one block for a second still finds every proposal and vote
/// of a small committee waiting, and the two queues together hold at most 128 MiB. Beyond
/// it a message is dropped and counted (`cairn_messages_dropped_total{reason=...}`), like one
/// that finds the queue full.
pub const QUEUE_BYTES_MAX: usize = 64 << 20;
/// Bytes one peer may have waiting in one queue: a quarter of [`QUEUE_BYTES_MAX`], so one
/// peer flooding leaves room for at least three others. An honest peer sends one proposal
/// per round and relays the rest once each, so four of the largest messages waiting from
/// one peer mean it sends faster than we take; over it the message is dropped, counted, and
/// the peer struck like one that sent an invalid message. Never below `message_bytes_max`,
/// so that a message the network accepts can be delivered.
pub const QUEUE_PEER_BYTES_MAX: usize = 16 << 20;
/// Messages held from a peer that is still in the handshake, released once it passes. The
/// two handshake messages travel on their own streams, so a peer that finished first may
/// already be sending.
pub const EARLY_MESSAGES_MAX: usize = 16;
/// Bytes held from one peer still in the handshake. By count alone a peer could park
/// [`EARLY_MESSAGES_MAX`] messages of `message_bytes_max` (64 MiB by default), and every
/// connected peer at once. The handshake takes a round trip, in which an honest peer that
/// finished first sends a proposal and a few votes: two of the largest messages by default.
/// Over it the message is dropped, counted (`early_peer_bytes`) and the peer struck, as over
/// a queue's share. Never below `message_bytes_max`, so that any message can be held.
pub const EARLY_PEER_BYTES_MAX: usize = 8 << 20;
/// Bytes held from all peers still in the handshake: four peers at their share, as when a
/// small committee restarts together. Over it the message is dropped and counted
/// (`early_bytes`); nobody is struck while it is at least half full, as for the queues.
pub const EARLY_BYTES_MAX: usize = 32 << 20;
/// A peer that has not completed the handshake by then is disconnected.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Invalid messages reported by the driver before the peer is disconnected and banned.
pub const INVALID_STRIKES_MAX: u32 = 3;
/// How long a peer scored out stays refused and is not redialled.
pub const BAN_COOLDOWN: Duration = Duration::from_secs(10 * 60);
/// First delay before redialling a persistent peer; doubles on each failure up to the max.
pub const REDIAL_BACKOFF_BASE: Duration = Duration::from_millis(500);
pub const REDIAL_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How often timers (redials, handshake deadlines) are checked.
pub const TICK_INTERVAL: Duration = Duration::from_millis(100);
/// Requests from peers waiting for the driver's [`Command::Respond`]; more are refused.
pub const INBOUND_REQUESTS_MAX: usize = 1024;
/// Our requests waiting for a peer's response; more fail at once with `Busy`.
pub const OUTBOUND_REQUESTS_MAX: usize = 1024;
/// A request (or direct message) unanswered after this fails with a timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent request-response streams per connection and protocol.
pub const STREAMS_PER_CONNECTION_MAX: usize = 128;
/// Bytes of direct messages, requests and responses being read at once, over all streams
/// and peers. Each stream reads a whole frame of up to `message_bytes_max` before it is a
/// message, so without it [`STREAMS_PER_CONNECTION_MAX`] streams on each of a peer's
/// connections could hold a gigabyte; a frame waits for its share before it is allocated,
/// and the sender's stream stalls meanwhile. Eight of the largest messages by default.
pub const READING_BYTES_MAX: usize = 32 << 20;
/// Connections to one peer: two, so that peers dialling each other at the same moment do
/// not each refuse the other's connection and end up with none.
pub const CONNECTIONS_PER_PEER_MAX: u32 = 2;
/// Connections still in their noise/yamux handshake, per direction.
pub const PENDING_CONNECTIONS_MAX: u32 = 64;
/// A validator network keeps its few connections open even when quiet; a connection is
/// closed for idleness only after this long.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// Room for gossipsub's own framing (topic, signature, author, sequence number) on top of
/// a payload of `message_bytes_max`.
pub const GOSSIP_FRAMING_BYTES_MAX: usize = 1024;
/// Upgrades named in a fork id; a real schedule has a handful.
pub const FORK_UPGRADES_MAX: usize = cairn_ledger::upgrades::SCHEDULE_UPGRADES_MAX;
/// How long [`spawn`] waits for the listener to come up.
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);

/// A gossipsub topic the node uses. On the wire its name carries the chain id, so two
/// chains never mix messages: `/cairn/<chain_id>/tx/2`, `/cairn/<chain_id>/consensus/1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    Transactions,
    Consensus,
}

impl Topic {
    pub const ALL: [Topic; 2] = [Topic::Transactions, Topic::Consensus];

    pub fn name(self, chain_id: &str) -> String {
        match self {
            // 2: a message carries a batch of transactions (`txpool::gossip`).
            Topic::Transactions => format!("/cairn/{chain_id}/tx/2"),
            Topic::Consensus => format!("/cairn/{chain_id}/consensus/1"),
        }
    }
}

/// Names one received gossip message, for [`Command::GossipVerdict`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipId {
    message: libp2p::gossipsub::MessageId,
    from: PeerId,
}

#[cfg(test)]
impl GossipId {
    /// A made-up id for tests of the driver's side.
    pub(crate) fn for_test(n: u64) -> GossipId {
        GossipId {
            message: libp2p::gossipsub::MessageId::new(&n.to_le_bytes()),
            from: PeerId::random(),
        }
    }
}

/// Names one inbound request, for [`Command::Respond`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(libp2p::request_response::InboundRequestId);

/// Why a request got no response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request of {len} bytes is over the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("peer {0} has not passed the handshake")]
    NotConnected(PeerId),
    #[error("too many requests in flight (limit {0})")]
    Busy(usize),
    #[error("request failed: {0}")]
    Failed(String),
    #[error("the network service has stopped")]
    Stopped,
}

/// Why a peer was refused or dropped before becoming usable. Logged on both sides.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("connection refused: {0}")]
    Denied(Denied),
    #[error("handshake refused: {0}")]
    Handshake(Mismatch),
    #[error("handshake not completed within {} s", HANDSHAKE_TIMEOUT.as_secs())]
    HandshakeTimeout,
    #[error("connection closed before the handshake completed")]
    ClosedBeforeHandshake,
}

/// What the driver asks of the network.
#[derive(Debug)]
pub enum Command {
    /// Gossip `bytes` on `topic` to every subscribed peer.
    Publish {
        topic: Topic,
        bytes: Vec<u8>,
    },
    /// Send `bytes` to one peer, fire and forget (a consensus vote to the next leader).
    SendDirect {
        peer: PeerId,
        bytes: Vec<u8>,
    },
    /// Ask one peer (block sync); the response or the failure comes back on `reply`.
    Request {
        peer: PeerId,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, RequestError>>,
    },
    /// Answer an [`Event::InboundRequest`].
    Respond {
        id: RequestId,
        bytes: Vec<u8>,
    },
    /// Whether a received gossip message may be forwarded to other peers: gossip is passed
    /// on only after the driver has verified it.
    GossipVerdict {
        id: GossipId,
        verdict: Verdict,
    },
    /// The peer sent something invalid; after [`INVALID_STRIKES_MAX`] it is disconnected
    /// and banned for [`BAN_COOLDOWN`].
    ReportInvalid {
        peer: PeerId,
        reason: String,
    },
    /// The chain moved past an upgrade height: new connections see the new fork id, and
    /// connected peers whose handshake it no longer passes are let go.
    SetForkId(ForkId),
    /// The peers that have passed the handshake.
    Peers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Shutdown,
}

/// What a peer said about itself in its handshake, for operators' eyes: never compared (the
/// fork id decides who may talk).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PeerInfo {
    /// `cairn/<release>`.
    pub software: String,
    /// The highest protocol version its binary implements.
    pub protocol_version: u32,
}

/// What the network tells the driver.
#[derive(Debug)]
pub enum Event {
    /// The peer passed the handshake; its messages are delivered from now on.
    PeerConnected { peer: PeerId, info: PeerInfo },
    /// The last connection to a peer that had passed the handshake closed.
    PeerDisconnected { peer: PeerId },
    /// A peer was refused, or refused us, before passing the handshake.
    PeerRefused { peer: PeerId, reason: Refusal },
    /// A gossip message that `from` passed on to us (its author is not authenticated by the
    /// envelope: the payload's own signature says who made it). Answer with
    /// [`Command::GossipVerdict`].
    Gossip {
        from: PeerId,
        topic: Topic,
        id: GossipId,
        bytes: Vec<u8>,
        /// Whether accepting it should pass it on: not for transactions a validator sent us
        /// itself (see [`relays`]).
        relay: bool,
    },
    /// A direct message.
    Direct { from: PeerId, bytes: Vec<u8> },
    /// A request; answer with [`Command::Respond`] before [`REQUEST_TIMEOUT`].
    InboundRequest {
        from: PeerId,
        id: RequestId,
        bytes: Vec<u8>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    #[error("[p2p] {field}: {value:?} is not a libp2p peer id")]
    BadPeerId { field: &'static str, value: String },
    #[error("[p2p] {field}: {value:?} is not a multiaddr: {reason}")]
    BadMultiaddr {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("[p2p] persistent_peers: {value:?} must end in /p2p/PEER_ID")]
    PersistentPeerWithoutId { value: String },
    #[error(
        "[p2p] persistent_peers: peer {peer} is neither a genesis validator nor in \
         allowed_peers, so it would be refused"
    )]
    PersistentPeerNotAllowed { peer: PeerId },
    #[error("the node key is not a valid ed25519 key for libp2p: {0}")]
    Key(String),
    #[error("the genesis schedules {count} upgrades, over the limit of {max}")]
    TooManyUpgrades { count: usize, max: usize },
    #[error("cannot set up libp2p: {0}")]
    Setup(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error("the network service has stopped")]
    Stopped,
}

/// A gossip message of transactions as the network delivered it, still encoded.
pub struct GossipedTx {
    pub from: PeerId,
    pub id: GossipId,
    pub bytes: Vec<u8>,
    /// Whether it is passed on if it brings something new ([`relays`]).
    pub relay: bool,
}

impl Event {
    /// A gossip message on the transaction topic as what the admission worker takes; any
    /// other event back as it was.
    #[allow(
        clippy::result_large_err,
        reason = "the error is the caller's own event handed back, moved once"
    )]
    fn into_gossiped_tx(self) -> Result<GossipedTx, Event> {
        match self {
            Event::Gossip {
                from,
                topic: Topic::Transactions,
                id,
                bytes,
                relay,
            } => Ok(GossipedTx {
                from,
                id,
                bytes,
                relay,
            }),
            other => Err(other),
        }
    }
}

/// Where the service hands gossip on the transaction topic instead of the event queue: the
/// transaction admission worker's queue. The driver's thread then never wakes for a
/// transaction and no consensus event waits behind thousands of them. A message that finds
/// the queue full is dropped, counted in `full` and ignored (not forwarded, nobody blamed).
pub struct TxRoute {
    pub queue: mpsc::Sender<GossipedTx>,
    pub full: prometheus_client::metrics::counter::Counter,
}

/// Everything the service needs, checked. Build it with [`P2pConfig::new`].
pub struct P2pConfig {
    pub identity: libp2p::identity::Keypair,
    pub listen: Multiaddr,
    pub persistent_peers: Vec<(PeerId, Multiaddr)>,
    pub allowed_peers: HashSet<PeerId>,
    /// The genesis validators' peer ids (all also in `allowed_peers`).
    pub validators: HashSet<PeerId>,
    pub peers_max: usize,
    pub message_bytes_max: usize,
    pub handshake: Handshake,
    /// Without one, transaction gossip arrives as [`Event::Gossip`] like any other.
    pub transactions: Option<TxRoute>,
    /// Where messages dropped over a queue's byte budget are counted, by reason (the node's
    /// `messages_dropped`; a detached family unless the caller gives its own).
    pub dropped: Family<ReasonLabel, Counter>,
}

impl std::fmt::Debug for P2pConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        // Not derived: the identity holds the secret key.
        f.debug_struct("P2pConfig")
            .field("peer_id", &self.identity.public().to_peer_id())
            .field("listen", &self.listen)
            .field("persistent_peers", &self.persistent_peers)
            .field("allowed_peers", &self.allowed_peers)
            .field("validators", &self.validators)
            .field("peers_max", &self.peers_max)
            .field("message_bytes_max", &self.message_bytes_max)
            .field("handshake", &self.handshake)
            .field("transactions_routed", &self.transactions.is_some())
            .finish()
    }
}

/// Whether a gossip message on `topic`, with envelope author `source`, received from `from`,
/// should be passed on once accepted.
///
/// Validators dial each other, so a batch of transactions that a validator published reached
/// every validator it is connected to straight from it; relaying it made each of them send it
/// to the others again, two extra copies per peer of every small message (gossipsub's
/// IDONTWANT only covers messages over a kilobyte). A validator cut off from another one does
/// not get that one's transactions, which still commit through the validators that did.
/// Anything else is relayed: transactions from full nodes (validators are how they reach the
/// committee), and consensus messages, which full nodes need and a partitioned validator
/// gets through others. The author is only claimed by the envelope, so forging it can only
/// keep the forger's own message from spreading.
pub fn relays(
    topic: Topic,
    source: Option<&PeerId>,
    from: &PeerId,
    validators: &HashSet<PeerId>,
) -> bool {
    !(topic == Topic::Transactions && source == Some(from) && validators.contains(from))
}

/// The libp2p identity of a Cairn node key: the same ed25519 key, so the peer id printed by
/// `cairn keys` is the one peers see.
pub fn libp2p_identity(key: &Keypair) -> Result<libp2p::identity::Keypair, P2pError> {
    // `ed25519_from_bytes` zeroes the buffer it is given.
    libp2p::identity::Keypair::ed25519_from_bytes(key.secret_bytes())
        .map_err(|e| P2pError::Key(e.to_string()))
}

impl P2pConfig {
    /// The network settings of a node with key `key` on `genesis`, whose chain is at
    /// `height`. The allow-list is the genesis validators plus `section.allowed_peers`.
    pub fn new(
        section: &P2pSection,
        genesis: &Genesis,
        schedule: &Schedule,
        height: Height,
        key: &Keypair,
    ) -> Result<P2pConfig, P2pError> {
        if schedule.upgrades().len() > FORK_UPGRADES_MAX {
            return Err(P2pError::TooManyUpgrades {
                count: schedule.upgrades().len(),
                max: FORK_UPGRADES_MAX,
            });
        }
        let parse_peer = |field, value: &str| {
            value.parse::<PeerId>().map_err(|_| P2pError::BadPeerId {
                field,
                value: value.to_owned(),
            })
        };
        let parse_addr = |field, value: &str| {
            value
                .parse::<Multiaddr>()
                .map_err(|e| P2pError::BadMultiaddr {
                    field,
                    value: value.to_owned(),
                    reason: e.to_string(),
                })
        };
        let mut validators = HashSet::new();
        for v in &genesis.validators {
            validators.insert(parse_peer("genesis validators", &v.peer_id)?);
        }
        let mut allowed_peers = validators.clone();
        for p in &section.allowed_peers {
            allowed_peers.insert(parse_peer("allowed_peers", p)?);
        }
        let mut persistent_peers = Vec::new();
        for s in &section.persistent_peers {
            let addr = parse_addr("persistent_peers", s)?;
            let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
                return Err(P2pError::PersistentPeerWithoutId { value: s.clone() });
            };
            if !allowed_peers.contains(&peer) {
                return Err(P2pError::PersistentPeerNotAllowed { peer });
            }
            persistent_peers.push((peer, addr));
        }
        Ok(P2pConfig {
            identity: libp2p_identity(key)?,
            listen: parse_addr("listen", &section.listen)?,
            persistent_peers,
            allowed_peers,
            validators,
            peers_max: section.peers_max as usize,
            message_bytes_max: section.message_bytes_max as usize,
            handshake: Handshake::ours(genesis, schedule, height),
            transactions: None,
            dropped: Family::default(),
        })
    }
}

/// The driver's side of the service: its commands, plus what it needs to know about it.
#[derive(Clone, Debug)]
pub struct P2pHandle {
    pub local_peer_id: PeerId,
    /// The address the service listens on (the OS's port when the config said port 0).
    pub listen_addr: Multiaddr,
    commands: mpsc::Sender<Command>,
    /// The genesis validators' peer ids, as in [`P2pConfig::validators`].
    validators: Arc<HashSet<PeerId>>,
}

impl P2pHandle {
    /// Queue a command, waiting for room.
    pub async fn send(&self, command: Command) -> Result<(), P2pError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| P2pError::Stopped)
    }

    pub async fn publish(&self, topic: Topic, bytes: Vec<u8>) -> Result<(), P2pError> {
        self.send(Command::Publish { topic, bytes }).await
    }

    pub async fn send_direct(&self, peer: PeerId, bytes: Vec<u8>) -> Result<(), P2pError> {
        self.send(Command::SendDirect { peer, bytes }).await
    }

    /// Send a request and wait for its response (or failure, at most [`REQUEST_TIMEOUT`]).
    pub async fn request(&self, peer: PeerId, bytes: Vec<u8>) -> Result<Vec<u8>, RequestError> {
        let (reply, response) = oneshot::channel();
        self.send(Command::Request { peer, bytes, reply })
            .await
            .map_err(|_| RequestError::Stopped)?;
        response.await.map_err(|_| RequestError::Stopped)?
    }

    pub async fn respond(&self, id: RequestId, bytes: Vec<u8>) -> Result<(), P2pError> {
        self.send(Command::Respond { id, bytes }).await
    }

    pub async fn report_invalid(&self, peer: PeerId, reason: String) -> Result<(), P2pError> {
        self.send(Command::ReportInvalid { peer, reason }).await
    }

    pub async fn peers(&self) -> Result<Vec<PeerId>, P2pError> {
        let (reply, peers) = oneshot::channel();
        self.send(Command::Peers { reply }).await?;
        peers.await.map_err(|_| P2pError::Stopped)
    }

    pub async fn shutdown(&self) -> Result<(), P2pError> {
        self.send(Command::Shutdown).await
    }

    /// Whether `peer` is a genesis validator's node (its peer id is authenticated by the
    /// connection's noise handshake).
    pub fn is_validator(&self, peer: &PeerId) -> bool {
        self.validators.contains(peer)
    }
}

#[cfg(test)]
impl P2pHandle {
    /// A handle whose commands land in the returned receiver, for tests of the drivers.
    pub(crate) fn for_test() -> (P2pHandle, mpsc::Receiver<Command>) {
        P2pHandle::for_test_with_validators(HashSet::new())
    }

    /// As [`P2pHandle::for_test`], with `validators` as the genesis validators' peers.
    pub(crate) fn for_test_with_validators(
        validators: HashSet<PeerId>,
    ) -> (P2pHandle, mpsc::Receiver<Command>) {
        let (commands, received) = mpsc::channel(COMMANDS_CAPACITY);
        let handle = P2pHandle {
            local_peer_id: PeerId::random(),
            listen_addr: "/ip4/127.0.0.1/tcp/1".parse().expect("a multiaddr"),
            commands,
            validators: Arc::new(validators),
        };
        (handle, received)
    }
}

/// Start the service on the current tokio runtime. Returns once it listens, with the
/// handle for commands, the receiver of events, and the task (which ends on
/// [`Command::Shutdown`] or when every handle is dropped).
pub async fn spawn(
    config: P2pConfig,
) -> Result<
    (
        P2pHandle,
        mpsc::Receiver<Event>,
        tokio::task::JoinHandle<()>,
    ),
    P2pError,
> {
    let (command_tx, command_rx) = mpsc::channel(COMMANDS_CAPACITY);
    let (event_tx, event_rx) = mpsc::channel(EVENTS_CAPACITY);
    let validators = Arc::new(config.validators.clone());
    let (service, listen_addr) = service::Service::start(config, command_rx, event_tx).await?;
    let local_peer_id = service.local_peer_id();
    let task = tokio::spawn(service.run());
    Ok((
        P2pHandle {
            local_peer_id,
            listen_addr,
            commands: command_tx,
            validators,
        },
        event_rx,
        task,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libp2p_peer_id_of_a_node_key_is_the_ledgers_peer_id() {
        for _ in 0..8 {
            let key = Keypair::generate(&mut rand::rngs::OsRng);
            let id = libp2p_identity(&key).unwrap().public().to_peer_id();
            assert_eq!(id.to_string(), cairn_ledger::keys::peer_id(&key.public()));
        }
    }

    #[test]
    fn only_transactions_a_validator_sent_us_itself_are_not_relayed() {
        let (validator, other, full_node) = (PeerId::random(), PeerId::random(), PeerId::random());
        let validators: HashSet<PeerId> = [validator, other].into();
        let tx = Topic::Transactions;
        assert!(!relays(tx, Some(&validator), &validator, &validators));
        // Passed on by another validator: the author may not be connected to us.
        assert!(relays(tx, Some(&validator), &other, &validators));
        // From a full node, which reaches the committee through us.
        assert!(relays(tx, Some(&full_node), &full_node, &validators));
        assert!(relays(tx, None, &validator, &validators));
        // Consensus messages always spread: full nodes follow the chain from them.
        assert!(relays(
            Topic::Consensus,
            Some(&validator),
            &validator,
            &validators
        ));
    }

    #[test]
    fn topic_names_carry_the_chain_id() {
        assert_eq!(Topic::Transactions.name("x"), "/cairn/x/tx/2");
        assert_eq!(Topic::Consensus.name("x"), "/cairn/x/consensus/1");
    }
}
