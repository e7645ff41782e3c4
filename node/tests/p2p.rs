//! The p2p service on real sockets: nodes on 127.0.0.1 with ports from the OS.
//!
//! Every wait is for an event, bounded by a timeout; nothing sleeps to synchronise.

use std::time::Duration;

use cairn_ledger::crypto::Keypair;
use cairn_ledger::genesis::{EngineKind, Genesis};
use cairn_ledger::types::{Height, TimestampMs};
use cairn_ledger::upgrades::Schedule;
use cairn_node::config::P2pSection;
use cairn_node::p2p::{self, Denied, Event, Mismatch, P2pConfig, P2pHandle, Refusal, Topic};
use libp2p::PeerId;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

/// Longest wait for any one expected event.
const WAIT: Duration = Duration::from_secs(5);

struct Node {
    handle: P2pHandle,
    events: mpsc::Receiver<Event>,
}

impl Node {
    fn id(&self) -> PeerId {
        self.handle.local_peer_id
    }

    /// The address other nodes dial: the listen address with our peer id.
    fn dial_addr(&self) -> String {
        format!("{}/p2p/{}", self.handle.listen_addr, self.id())
    }

    /// Wait for the first event matching `want`, passing over (and returning) the others.
    async fn wait_for(&mut self, what: &str, want: impl Fn(&Event) -> bool) -> (Event, Vec<Event>) {
        let deadline = Instant::now() + WAIT;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.events.recv()).await {
                Ok(Some(e)) if want(&e) => return (e, skipped),
                Ok(Some(e)) => skipped.push(e),
                Ok(None) => panic!("event stream ended while waiting for {what}"),
                Err(_) => panic!("no {what} within {WAIT:?}; saw {skipped:?}"),
            }
        }
    }

    /// Events already queued, without waiting.
    fn drain(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }
}

fn section(persistent: &[String], message_bytes_max: u32) -> P2pSection {
    P2pSection {
        listen: "/ip4/127.0.0.1/tcp/0".into(),
        persistent_peers: persistent.to_vec(),
        allowed_peers: Vec::new(),
        peers_max: 8,
        message_bytes_max,
    }
}

fn genesis(validators: &[&Keypair], time_ms: u64) -> Genesis {
    let keys: Vec<_> = validators.iter().map(|k| k.public()).collect();
    Genesis::local(EngineKind::HotStuff, &keys, &[], TimestampMs(time_ms))
}

async fn start(key: &Keypair, genesis: &Genesis, section: P2pSection) -> Node {
    let schedule = Schedule::for_this_binary(genesis);
    let config = P2pConfig::new(&section, genesis, &schedule, Height(0), key).unwrap();
    let (handle, events, _task) = p2p::spawn(config).await.unwrap();
    Node { handle, events }
}

fn key() -> Keypair {
    Keypair::generate(&mut rand::rngs::OsRng)
}

/// Start `a` listening and `b` dialling it as a persistent peer; wait until both are ready.
async fn connected_pair(a_bytes_max: u32, b_bytes_max: u32) -> (Node, Node) {
    let (ka, kb) = (key(), key());
    let g = genesis(&[&ka, &kb], 0);
    let mut a = start(&ka, &g, section(&[], a_bytes_max)).await;
    let mut b = start(&kb, &g, section(&[a.dial_addr()], b_bytes_max)).await;
    let (a_id, b_id) = (a.id(), b.id());
    a.wait_for(
        "a: b connected",
        |e| matches!(e, Event::PeerConnected { peer, .. } if *peer == b_id),
    )
    .await;
    b.wait_for(
        "b: a connected",
        |e| matches!(e, Event::PeerConnected { peer, .. } if *peer == a_id),
    )
    .await;
    (a, b)
}

/// Publish `bytes` from `from` until `to` receives them (the first publishes can find no
/// subscribed peer while subscriptions are still being exchanged).
async fn gossip_until_received(
    from: &Node,
    to: &mut Node,
    topic: Topic,
    bytes: &[u8],
) -> Vec<Event> {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        from.handle.publish(topic, bytes.to_vec()).await.unwrap();
        if let Ok(Some(e)) = timeout(Duration::from_millis(200), to.events.recv()).await {
            if matches!(&e, Event::Gossip { bytes: b, topic: t, .. } if b == bytes && *t == topic) {
                return seen;
            }
            seen.push(e);
        }
    }
    panic!("gossip never arrived; saw {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_nodes_handshake_then_gossip_send_and_answer_requests() {
    let (a, mut b) = connected_pair(64 * 1024, 64 * 1024).await;
    let (a_id, b_id) = (a.id(), b.id());

    gossip_until_received(&a, &mut b, Topic::Consensus, b"proposal").await;
    assert_eq!(b.handle.peers().await.unwrap(), vec![a_id]);

    a.handle.send_direct(b_id, b"vote".to_vec()).await.unwrap();
    let (e, _) = b
        .wait_for("direct", |e| matches!(e, Event::Direct { .. }))
        .await;
    assert!(matches!(e, Event::Direct { from, bytes } if from == a_id && bytes == b"vote"));

    let requester = a.handle.clone();
    let request =
        tokio::spawn(async move { requester.request(b_id, b"blocks 1..10".to_vec()).await });
    let (e, _) = b
        .wait_for("request", |e| matches!(e, Event::InboundRequest { .. }))
        .await;
    let Event::InboundRequest { from, id, bytes } = e else {
        unreachable!()
    };
    assert_eq!((from, bytes.as_slice()), (a_id, &b"blocks 1..10"[..]));
    b.handle
        .respond(id, b"here they are".to_vec())
        .await
        .unwrap();
    let response = timeout(WAIT, request).await.unwrap().unwrap().unwrap();
    assert_eq!(response, b"here they are");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_outside_the_allow_list_cannot_connect() {
    let (ka, kb, outsider_key) = (key(), key(), key());
    let g = genesis(&[&ka, &kb], 0);
    let mut a = start(&ka, &g, section(&[], 64 * 1024)).await;
    // The outsider knows the chain and wants `a`, but `a` does not list it.
    let mut outsider = start(&outsider_key, &g, section(&[a.dial_addr()], 64 * 1024)).await;
    let outsider_id = outsider.id();

    let (e, skipped) = a
        .wait_for("refusal", |e| matches!(e, Event::PeerRefused { .. }))
        .await;
    assert!(
        matches!(&e, Event::PeerRefused { peer, reason: Refusal::Denied(Denied::NotAllowed) } if *peer == outsider_id),
        "{e:?}"
    );
    assert!(skipped.is_empty(), "{skipped:?}");
    // The outsider redials with backoff and is refused again: it never gets in.
    a.wait_for("second refusal", |e| matches!(e, Event::PeerRefused { .. }))
        .await;
    assert!(a.handle.peers().await.unwrap().is_empty());
    assert!(outsider.handle.peers().await.unwrap().is_empty());
    let outsider_events = outsider.drain();
    assert!(
        !outsider_events
            .iter()
            .any(|e| matches!(e, Event::PeerConnected { .. })),
        "{outsider_events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_with_another_genesis_is_refused_after_the_handshake() {
    let (ka, kb) = (key(), key());
    let ours = genesis(&[&ka, &kb], 0);
    // Same validators, same chain id: only the genesis hash differs.
    let theirs = genesis(&[&ka, &kb], 1);
    assert_ne!(ours.hash(), theirs.hash());
    let mut a = start(&ka, &ours, section(&[], 64 * 1024)).await;
    let mut b = start(&kb, &theirs, section(&[a.dial_addr()], 64 * 1024)).await;
    for (node, what) in [(&mut a, "a refuses b"), (&mut b, "b refuses a")] {
        let (e, skipped) = node
            .wait_for(what, |e| matches!(e, Event::PeerRefused { .. }))
            .await;
        assert!(
            matches!(
                &e,
                Event::PeerRefused {
                    reason: Refusal::Handshake(Mismatch::GenesisHash { .. }),
                    ..
                }
            ),
            "{what}: {e:?}"
        );
        assert!(skipped.is_empty(), "{what}: {skipped:?}");
        assert!(node.handle.peers().await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_reported_invalid_repeatedly_is_disconnected_and_banned() {
    let (mut a, mut b) = connected_pair(64 * 1024, 64 * 1024).await;
    let (a_id, b_id) = (a.id(), b.id());
    for i in 1..p2p::INVALID_STRIKES_MAX {
        a.handle
            .report_invalid(b_id, format!("bad signature #{i}"))
            .await
            .unwrap();
    }
    // Below the limit the peer stays.
    assert_eq!(a.handle.peers().await.unwrap(), vec![b_id]);
    a.handle
        .report_invalid(b_id, "bad signature, last straw".into())
        .await
        .unwrap();
    a.wait_for(
        "a drops b",
        |e| matches!(e, Event::PeerDisconnected { peer } if *peer == b_id),
    )
    .await;
    b.wait_for(
        "b loses a",
        |e| matches!(e, Event::PeerDisconnected { peer } if *peer == a_id),
    )
    .await;
    // `b` keeps `a` as a persistent peer and redials; `a` refuses it while the ban lasts.
    let (e, _) = a
        .wait_for("ban refusal", |e| matches!(e, Event::PeerRefused { .. }))
        .await;
    assert!(
        matches!(&e, Event::PeerRefused { peer, reason: Refusal::Denied(Denied::Banned { .. }) } if *peer == b_id),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_dropped_not_delivered() {
    const SMALL_MAX: u32 = 1024;
    // `a` allows itself big messages; `b` accepts at most 1 KiB.
    let (a, mut b) = connected_pair(64 * 1024, SMALL_MAX).await;
    let (a_id, b_id) = (a.id(), b.id());
    let big = vec![7u8; 4 * SMALL_MAX as usize];

    let failed = timeout(WAIT, a.handle.request(b_id, big.clone()))
        .await
        .unwrap();
    assert!(failed.is_err(), "{failed:?}");
    a.handle.send_direct(b_id, b"small".to_vec()).await.unwrap();
    let (_, skipped) = b
        .wait_for(
            "small direct",
            |e| matches!(e, Event::Direct { bytes, .. } if bytes == b"small"),
        )
        .await;
    assert!(
        !skipped
            .iter()
            .any(|e| matches!(e, Event::InboundRequest { .. } | Event::Direct { .. })),
        "{skipped:?}"
    );

    // Gossip works before the oversized message...
    gossip_until_received(&a, &mut b, Topic::Transactions, b"small tx").await;
    a.handle
        .publish(Topic::Transactions, big.clone())
        .await
        .unwrap();
    // ...and the oversized one is never delivered. Proving absence needs a window: watch
    // everything `b` hears for a bounded time. (libp2p's gossipsub then stops reading that
    // connection's gossip stream; direct messages still flow, checked below.)
    let window_end = Instant::now() + Duration::from_millis(1500);
    while let Ok(Some(e)) = timeout(
        window_end.saturating_duration_since(Instant::now()),
        b.events.recv(),
    )
    .await
    {
        assert!(
            !matches!(&e, Event::Gossip { bytes, .. } if *bytes == big),
            "the oversized gossip was delivered"
        );
    }
    a.handle.send_direct(b_id, b"after".to_vec()).await.unwrap();
    b.wait_for(
        "direct after the oversized gossip",
        |e| matches!(e, Event::Direct { bytes, .. } if bytes == b"after"),
    )
    .await;
    // One strike for the unreadable request, not enough to disconnect.
    assert_eq!(b.handle.peers().await.unwrap(), vec![a_id]);
}

/// Publishes a transaction-topic message from `node`, different from the ones before.
async fn publish_new_txs(node: &Node, n: &mut u32) {
    *n += 1;
    let bytes = format!("txs {n}").into_bytes();
    node.handle
        .publish(Topic::Transactions, bytes)
        .await
        .unwrap();
}

/// `a` listening and `b` dialling it, with `b`'s transaction gossip routed to a queue of
/// `capacity`; returns once `a` has seen `b` connect, with that queue and the counter of
/// messages that found it full.
async fn pair_with_tx_route(
    bytes_max: u32,
    capacity: usize,
) -> (Node, Node, mpsc::Receiver<p2p::GossipedTx>, Counter<u64>) {
    let (ka, kb) = (key(), key());
    let g = genesis(&[&ka, &kb], 0);
    let mut a = start(&ka, &g, section(&[], bytes_max)).await;
    let (queue, routed) = mpsc::channel(capacity);
    let full = Counter::<u64>::default();
    let schedule = Schedule::for_this_binary(&g);
    let config = P2pConfig {
        transactions: Some(p2p::TxRoute {
            queue,
            full: full.clone(),
        }),
        ..P2pConfig::new(
            &section(&[a.dial_addr()], bytes_max),
            &g,
            &schedule,
            Height(0),
            &kb,
        )
        .unwrap()
    };
    let (handle, events, _task) = p2p::spawn(config).await.unwrap();
    let b = Node { handle, events };
    let b_id = b.id();
    a.wait_for(
        "a: b connected",
        |e| matches!(e, Event::PeerConnected { peer, .. } if *peer == b_id),
    )
    .await;
    (a, b, routed, full)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_gossip_goes_to_its_own_queue_and_a_full_one_drops_and_counts() {
    let (a, mut b, mut routed, full) = pair_with_tx_route(64 * 1024, 1).await;

    // Until subscriptions are exchanged a publish can reach nobody: publish new bytes until
    // one arrives on the queue.
    let deadline = Instant::now() + WAIT;
    let mut n = 0u32;
    let first = loop {
        assert!(
            Instant::now() < deadline,
            "no transaction gossip reached the queue"
        );
        publish_new_txs(&a, &mut n).await;
        if let Ok(Some(m)) = timeout(Duration::from_millis(200), routed.recv()).await {
            break m;
        }
    };
    assert_eq!(first.from, a.id());
    assert!(first.bytes.starts_with(b"txs "));
    // A validator's own batch, straight from it: admitted by the worker, not relayed.
    assert!(!first.relay);

    // Nobody takes from the queue now: once it holds one, later messages are dropped and
    // counted; none ever becomes an event for the driver.
    let deadline = Instant::now() + WAIT;
    while full.get() == 0 {
        assert!(
            Instant::now() < deadline,
            "a full queue never counted a drop"
        );
        publish_new_txs(&a, &mut n).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events = b.drain();
    assert!(
        !events.iter().any(|e| matches!(
            e,
            Event::Gossip {
                topic: Topic::Transactions,
                ..
            }
        )),
        "{events:?}"
    );
}

/// Not a check but a fixed amount of work on the message path, for instruction counts under
/// callgrind (benches/RESULTS.md): `CAIRN_P2P_WORK` (default 1,000) direct messages of 300
/// bytes and as many transaction gossip messages of 16 KiB from one node to another, whose
/// events and transaction queue are drained as the driver and the worker would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a workload for instruction counts, run by hand"]
async fn message_path_workload() {
    const PATIENCE: Duration = Duration::from_secs(120);
    const WINDOW: usize = 32;
    let n: usize = std::env::var("CAIRN_P2P_WORK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let (a, mut b, mut routed, _) = pair_with_tx_route(4 << 20, 2_048).await;
    let b_id = b.id();
    let mut m = 0u32;
    loop {
        publish_new_txs(&a, &mut m).await;
        if let Ok(Some(_)) = timeout(Duration::from_millis(200), routed.recv()).await {
            break;
        }
    }
    let mut sent = 0;
    while sent < n {
        let k = WINDOW.min(n - sent);
        for i in 0..k {
            let tag = ((sent + i) as u32).to_be_bytes();
            let mut tx = vec![7u8; 16 * 1024];
            tx[..4].copy_from_slice(&tag);
            a.handle.publish(Topic::Transactions, tx).await.unwrap();
            a.handle.send_direct(b_id, vec![tag[3]; 300]).await.unwrap();
        }
        let (mut directs, mut txs) = (0, 0);
        while directs < k {
            match timeout(PATIENCE, b.events.recv()).await {
                Ok(Some(Event::Direct { .. })) => directs += 1,
                Ok(Some(_)) => {}
                other => panic!("no direct message: {other:?}"),
            }
        }
        while txs < k {
            let Ok(Some(message)) = timeout(PATIENCE, routed.recv()).await else {
                panic!("no transaction gossip");
            };
            b.handle
                .send(p2p::Command::GossipVerdict {
                    id: message.id,
                    verdict: p2p::Verdict::Ignore,
                })
                .await
                .unwrap();
            txs += 1;
        }
        sent += k;
    }
}
