//! One peer floods a node with messages of the largest size it accepts, as fast as its
//! network allows, on real sockets and from another process (so the figures below are the
//! receiving node's own memory).
//!
//! The receiving side is the network service with a stand-in for the driver: first it takes
//! every event at once (a keen driver), then it stops taking them (a driver busy on a long
//! block). Its resident memory must stay within [`RSS_GROWTH_MAX`] of what it was before the
//! flood, and the flooder must end up dropped, counted and banned once it holds more than its
//! byte budget in the event queue.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cairn_ledger::crypto::Keypair;
use cairn_ledger::genesis::{EngineKind, Genesis};
use cairn_ledger::types::{Height, TimestampMs};
use cairn_ledger::upgrades::Schedule;
use cairn_node::config::P2pSection;
use cairn_node::metrics::ReasonLabel;
use cairn_node::p2p::{self, Event, P2pConfig};
use libp2p::PeerId;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::time::{Instant, timeout};

/// `p2p.message_bytes_max`'s default.
const MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Growth of the receiver's resident memory allowed during the flood: both queues' byte
/// budgets (128 MiB) plus libp2p's buffers for messages being read.
const RSS_GROWTH_MAX: u64 = 256 * 1024 * 1024;
/// How long each phase of the flood lasts.
const PHASE: Duration = Duration::from_secs(4);
/// The flooder's environment: the address of the node to flood.
const TARGET_ENV: &str = "CAIRN_FLOOD_TARGET";
/// Pause between two messages of the flooder: fast enough to outrun the receiver's noise and
/// yamux (a few hundred MB/s on one core), slow enough that the flooder's own backlog stays
/// within a few GiB until it is banned.
const FLOOD_GAP: Duration = Duration::from_millis(5);

fn receiver_key() -> Keypair {
    Keypair::from_secret(&[11; 32])
}

fn flooder_key() -> Keypair {
    Keypair::from_secret(&[12; 32])
}

/// Both ends build the same genesis: the flooder is a validator, so it is allowed in.
fn genesis() -> Genesis {
    let keys = [receiver_key().public(), flooder_key().public()];
    Genesis::local(EngineKind::HotStuff, &keys, &[], TimestampMs(0))
}

fn section(persistent: Vec<String>) -> P2pSection {
    P2pSection {
        listen: "/ip4/127.0.0.1/tcp/0".into(),
        persistent_peers: persistent,
        allowed_peers: Vec::new(),
        peers_max: 8,
        message_bytes_max: MESSAGE_BYTES as u32,
    }
}

/// `(VmRSS, VmHWM)` of this process, in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The flooder's process: run by [`a_max_size_flood_from_one_peer_keeps_memory_bounded`]
/// with [`TARGET_ENV`] set; does nothing when run on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the flooding peer's process, started by the flood test"]
async fn flooder() {
    let Ok(target) = std::env::var(TARGET_ENV) else {
        return;
    };
    let g = genesis();
    let schedule = Schedule::for_this_binary(&g);
    let config = P2pConfig::new(
        &section(vec![target.clone()]),
        &g,
        &schedule,
        Height(0),
        &flooder_key(),
    )
    .unwrap();
    let (handle, mut events, _task) = p2p::spawn(config).await.unwrap();
    let peer: PeerId = target
        .rsplit('/')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the target ends in /p2p/PEER_ID");
    loop {
        match events.recv().await {
            Some(Event::PeerConnected { peer: p, .. }) if p == peer => break,
            Some(_) => {}
            None => return,
        }
    }
    println!("connected");
    let mut n = 0u8;
    loop {
        n = n.wrapping_add(1);
        if handle
            .send_direct(peer, vec![n; MESSAGE_BYTES])
            .await
            .is_err()
        {
            return;
        }
        while events.try_recv().is_ok() {}
        tokio::time::sleep(FLOOD_GAP).await;
    }
}

/// Kills the flooder however the test ends.
struct Flooder(Child);

impl Drop for Flooder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_max_size_flood_from_one_peer_keeps_memory_bounded() {
    let g = genesis();
    let schedule = Schedule::for_this_binary(&g);
    let dropped = Family::<ReasonLabel, Counter>::default();
    let config = P2pConfig {
        dropped: dropped.clone(),
        ..P2pConfig::new(
            &section(Vec::new()),
            &g,
            &schedule,
            Height(0),
            &receiver_key(),
        )
        .unwrap()
    };
    let (handle, mut events, _task) = p2p::spawn(config).await.unwrap();
    let target = format!("{}/p2p/{}", handle.listen_addr, handle.local_peer_id);
    let (before, _) = rss();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["flooder", "--exact", "--ignored", "--nocapture", "--quiet"])
        .env(TARGET_ENV, &target)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the flooder");
    let stdout = child.stdout.take().unwrap();
    let _flooder = Flooder(child);
    let connected = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .any(|l| l.is_ok_and(|l| l == "connected"))
    });
    assert!(
        timeout(Duration::from_secs(20), connected)
            .await
            .expect("the flooder connects within 20 s")
            .unwrap(),
        "the flooder stopped before connecting"
    );

    // A keen driver: every event taken at once.
    // On a loaded machine even this driver falls behind, and the flooder can be banned here
    // already: the ban counts in either phase.
    let mut peak = before;
    let mut received = 0usize;
    let mut banned = false;
    let end = Instant::now() + PHASE;
    while let Ok(event) =
        timeout(end.saturating_duration_since(Instant::now()), events.recv()).await
    {
        match event {
            Some(Event::Direct { bytes, .. }) => received += bytes.len(),
            Some(Event::PeerDisconnected { .. }) => banned = true,
            _ => {}
        }
        peak = peak.max(rss().0);
    }
    let keen_peak = peak;

    // A driver that stops listening: the flooder fills its byte budget, is struck and
    // banned, and the queue holds no more than that budget.
    let end = Instant::now() + PHASE;
    while Instant::now() < end {
        peak = peak.max(rss().0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut queued = 0usize;
    while let Ok(event) = events.try_recv() {
        match event {
            Event::Direct { bytes, .. } => queued += bytes.len(),
            Event::PeerDisconnected { .. } => banned = true,
            _ => {}
        }
    }
    let (after, hwm) = rss();
    let count = |reason| dropped.get_or_create(&ReasonLabel { reason }).get();
    eprintln!(
        "flood: RSS before {:.0} MiB, peak while taken at once {:.0} MiB, peak overall {:.0} MiB \
         (high-water mark {:.0} MiB), after {:.0} MiB; {:.0} MiB delivered while taken, {:.0} MiB \
         queued when the driver stopped; dropped over the peer's budget {}",
        mib(before),
        mib(keen_peak),
        mib(peak),
        mib(hwm),
        mib(after),
        mib(received as u64),
        mib(queued as u64),
        count("event_queue_peer_bytes"),
    );
    assert!(received > 0, "nothing of the flood arrived");
    assert!(
        queued <= p2p::QUEUE_PEER_BYTES_MAX,
        "{queued} bytes queued from one peer"
    );
    assert!(count("event_queue_peer_bytes") >= 1);
    assert!(banned, "the flooder was not disconnected");
    assert!(
        peak.saturating_sub(before) <= RSS_GROWTH_MAX,
        "RSS grew by {:.0} MiB, over {:.0} MiB",
        mib(peak - before),
        mib(RSS_GROWTH_MAX)
    );
}
