//! The nemesis's network: every p2p connection of a testnet passes through a TCP proxy this
//! process controls, one listener per ordered pair of nodes (the dialer's config names the
//! proxy instead of the peer), so that faults can be put on traffic between any two nodes in
//! either direction.
//!
//! Faults act the way a real network shows them to TCP, never by corrupting a stream:
//! - a cut (partition) stops moving bytes both ways, as a dead path does: senders' socket
//!   buffers fill and block; connections opened across a cut are held unanswered. On heal the
//!   held bytes flow again, unless a node gave up on the connection meanwhile.
//! - loss on a byte stream is retransmission: a lost chunk arrives one retransmission
//!   timeout late and everything behind it waits ([`RETRANSMIT_DELAY`]).
//! - delay and jitter hold each chunk, keeping order; a bandwidth cap paces the writer.
//! - a reset closes both sockets of every connection of the nodes named (a connection opened
//!   across a cut and reset while held gets an RST).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How late a chunk "lost" on the way arrives: Linux's minimum TCP retransmission timeout.
pub const RETRANSMIT_DELAY: Duration = Duration::from_millis(200);
/// Bytes read from a socket at once: one chunk, the unit faults act on.
const CHUNK_BYTES: usize = 16 * 1024;
/// Chunks held between the reading and the writing half of one direction of one connection
/// (delayed or paced ones): at most this many times [`CHUNK_BYTES`] per direction.
const CHUNKS_HELD_MAX: usize = 1024;
/// Connections through one link at once; more are closed on accept (a node keeps at most a
/// couple per peer, so more means a redial storm worth seeing in the log, not hiding).
const CONNECTIONS_PER_LINK_MAX: usize = 8;

/// Faults on the traffic from one node to another.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// No byte moves (one half of a partition, or a one-way one).
    pub cut: bool,
    /// Share of chunks that arrive [`RETRANSMIT_DELAY`] late, 0.0 to 1.0.
    pub loss: f64,
    pub delay: Duration,
    /// Each chunk's delay varies by up to this much either way.
    pub jitter: Duration,
    /// Bytes per second; `None`: no cap.
    pub bandwidth: Option<u64>,
}

/// Traffic counters, for the summary and for tests.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub bytes: AtomicU64,
    pub resets: AtomicU64,
}

struct Shared {
    /// Faults by (from node, to node); absent: none.
    faults: Mutex<HashMap<(usize, usize), Faults>>,
    /// Bumped at every change of faults, so that a cut direction wakes to see a heal.
    changed: watch::Sender<u64>,
    /// Bumped to reset connections: (generation, which nodes' connections; empty: all).
    reset: watch::Sender<(u64, Vec<usize>)>,
    counters: Counters,
    seed: u64,
}

impl Shared {
    fn faults(&self, from: usize, to: usize) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(from, to))
            .copied()
            .unwrap_or_default()
    }
}

/// The proxies of one testnet; dropped, it closes every listener and connection.
pub struct Proxy {
    runtime: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    listen: HashMap<(usize, usize), SocketAddr>,
    nodes: usize,
}

impl Proxy {
    /// Listens for every ordered pair of the nodes whose p2p addresses are `targets`: the
    /// connections node `i` dials to node `j` go to [`Proxy::address`]`(i, j)`. `seed` makes
    /// loss and jitter repeatable (as far as the interleaving of threads lets them be).
    pub fn start(targets: &[SocketAddr], seed: u64) -> std::io::Result<Proxy> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("nemesis-proxy")
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared {
            faults: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
            reset: watch::channel((0, Vec::new())).0,
            counters: Counters::default(),
            seed,
        });
        let mut listen = HashMap::new();
        for (i, _) in targets.iter().enumerate() {
            for (j, target) in targets.iter().enumerate() {
                if i == j {
                    continue;
                }
                // Port 0: the kernel picks a free port at bind time, so no other process can
                // take it between choosing and binding.
                let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0"))?;
                listen.insert((i, j), listener.local_addr()?);
                runtime.spawn(accept_loop(listener, i, j, *target, shared.clone()));
            }
        }
        Ok(Proxy {
            runtime,
            shared,
            listen,
            nodes: targets.len(),
        })
    }

    /// Where node `dialer` connects to reach node `target`.
    pub fn address(&self, dialer: usize, target: usize) -> SocketAddr {
        self.listen[&(dialer, target)]
    }

    /// Puts `faults` on the traffic from node `from` to node `to` (replacing any there).
    pub fn set(&self, from: usize, to: usize, faults: Faults) {
        let mut table = self.shared.faults.lock().unwrap_or_else(|e| e.into_inner());
        if faults == Faults::default() {
            table.remove(&(from, to));
        } else {
            table.insert((from, to), faults);
        }
        drop(table);
        self.shared.changed.send_modify(|g| *g += 1);
    }

    /// Cuts every pair of nodes in different groups, both ways. Nodes in no group are cut
    /// from everyone.
    pub fn partition(&self, groups: &[Vec<usize>]) {
        let group_of = |n: usize| groups.iter().position(|g| g.contains(&n));
        for a in 0..self.nodes {
            for b in 0..self.nodes {
                if a != b && (group_of(a).is_none() || group_of(a) != group_of(b)) {
                    let mut f = self.shared.faults(a, b);
                    f.cut = true;
                    self.set(a, b, f);
                }
            }
        }
    }

    /// Takes every fault away.
    pub fn heal(&self) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.shared.changed.send_modify(|g| *g += 1);
    }

    /// Resets (RST) every connection to or from one of `nodes`; all of them when empty.
    pub fn reset(&self, nodes: &[usize]) {
        self.shared
            .reset
            .send_modify(|(g, which)| (*g, *which) = (*g + 1, nodes.to_vec()));
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// Runs `f` on the proxy's runtime (for tests that talk through it).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

async fn accept_loop(
    listener: TcpListener,
    dialer: usize,
    target_node: usize,
    target: SocketAddr,
    shared: Arc<Shared>,
) {
    let open = Arc::new(AtomicU64::new(0));
    let mut conn_id = 0u64;
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if open.load(Ordering::Relaxed) as usize >= CONNECTIONS_PER_LINK_MAX {
            continue;
        }
        conn_id += 1;
        open.fetch_add(1, Ordering::Relaxed);
        shared.counters.connections.fetch_add(1, Ordering::Relaxed);
        let (shared, open) = (shared.clone(), open.clone());
        let salt = (dialer as u64) << 48 | (target_node as u64) << 32 | conn_id;
        tokio::spawn(async move {
            connection(inbound, dialer, target_node, target, &shared, salt).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// One proxied connection, until either side closes it or it is reset.
async fn connection(
    inbound: TcpStream,
    dialer: usize,
    target_node: usize,
    target: SocketAddr,
    shared: &Shared,
    salt: u64,
) {
    let mut reset = shared.reset.subscribe();
    reset.mark_unchanged();
    // A connection opened across a cut is held, like a SYN on a dead path.
    if !wait_open(shared, dialer, target_node, &mut reset).await {
        return refuse(inbound, shared);
    }
    let Ok(outbound) = TcpStream::connect(target).await else {
        return refuse(inbound, shared);
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    let rng = |dir: u64| ChaCha8Rng::seed_from_u64(shared.seed ^ salt.rotate_left(1) ^ dir);
    let forward = pump(in_read, out_write, dialer, target_node, shared, rng(1));
    let back = pump(out_read, in_write, target_node, dialer, shared, rng(2));
    let touched = |which: &[usize]| {
        which.is_empty() || which.contains(&dialer) || which.contains(&target_node)
    };
    tokio::select! {
        _ = async { tokio::join!(forward, back) } => {}
        _ = async {
            loop {
                if reset.changed().await.is_err() {
                    return std::future::pending().await;
                }
                if touched(&reset.borrow_and_update().1) {
                    // Counted before the close, so that whoever sees it closed sees it counted.
                    shared.counters.resets.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        } => {}
    }
    // The halves are dropped here, closing both sockets: each node sees its connection end.
}

/// Waits while the path between the two nodes is cut either way; `false` if a reset came.
async fn wait_open(
    shared: &Shared,
    a: usize,
    b: usize,
    reset: &mut watch::Receiver<(u64, Vec<usize>)>,
) -> bool {
    let mut changed = shared.changed.subscribe();
    loop {
        if !shared.faults(a, b).cut && !shared.faults(b, a).cut {
            return true;
        }
        tokio::select! {
            _ = changed.changed() => {}
            _ = reset.changed() => {
                let which = reset.borrow_and_update().1.clone();
                if which.is_empty() || which.contains(&a) || which.contains(&b) {
                    return false;
                }
            }
        }
    }
}

/// Closes a connection never forwarded with an RST, as a refused or reset connection.
fn refuse(inbound: TcpStream, shared: &Shared) {
    let _ = inbound.set_zero_linger();
    shared.counters.resets.fetch_add(1, Ordering::Relaxed);
}

/// Moves the bytes of one direction, `from` node to `to` node, through its faults.
async fn pump(
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
    from: usize,
    to: usize,
    shared: &Shared,
    mut rng: ChaCha8Rng,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(CHUNKS_HELD_MAX);
    let reader = async move {
        let mut changed = shared.changed.subscribe();
        let mut last_release = Instant::now();
        loop {
            // A cut stops reading, so the sender's buffers fill as on a dead path.
            while shared.faults(from, to).cut {
                if changed.changed().await.is_err() {
                    return;
                }
            }
            let mut buf = vec![0u8; CHUNK_BYTES];
            let n = match read_some(&read, &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.truncate(n);
            let f = shared.faults(from, to);
            let mut hold = f.delay;
            if !f.jitter.is_zero() {
                let j = f.jitter.as_micros() as i64;
                let shift = rng.gen_range(-j..=j);
                hold = Duration::from_micros((hold.as_micros() as i64 + shift).max(0) as u64);
            }
            if f.loss > 0.0 && rng.gen_bool(f.loss.min(1.0)) {
                hold += RETRANSMIT_DELAY;
            }
            // Order is kept: a chunk never overtakes the one before it.
            let release = (Instant::now() + hold).max(last_release);
            last_release = release;
            if tx.send((release, buf)).await.is_err() {
                return;
            }
        }
    };
    let writer = async move {
        let mut changed = shared.changed.subscribe();
        while let Some((release, chunk)) = rx.recv().await {
            tokio::time::sleep_until(release).await;
            // Bytes already read when a cut came wait for the heal too.
            while shared.faults(from, to).cut {
                if changed.changed().await.is_err() {
                    return;
                }
            }
            // A capped link takes the chunk's time on the wire before it arrives.
            if let Some(rate) = shared.faults(from, to).bandwidth {
                let secs = chunk.len() as f64 / rate.max(1) as f64;
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            }
            // Counted before the write: a reader that has the bytes sees them counted.
            shared
                .counters
                .bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if write_all(&write, &chunk).await.is_err() {
                return;
            }
        }
        // Dropping the write half shuts it down: the far side reads the end of the stream.
        drop(write);
    };
    tokio::join!(reader, writer);
}

/// Reads what is there (at least one byte, or 0 at the end of the stream).
async fn read_some(read: &OwnedReadHalf, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        read.readable().await?;
        match read.try_read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

async fn write_all(write: &OwnedWriteHalf, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        write.writable().await?;
        match write.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::{Read, Write};

    /// A proxy in front of two echo servers (nodes 0 and 1) on plain threads.
    fn two_nodes() -> Proxy {
        let echo = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = l.local_addr().expect("addr");
            std::thread::spawn(move || {
                for s in l.incoming().flatten() {
                    std::thread::spawn(move || {
                        let mut r = s.try_clone().expect("clone");
                        let mut w = s;
                        let _ = std::io::copy(&mut r, &mut w);
                    });
                }
            });
            addr
        };
        Proxy::start(&[echo(), echo()], 7).expect("proxy")
    }

    /// Sends `bytes` through the proxy from node 0 to node 1's echo and reads them back;
    /// how long that took, or `None` if it did not within `within`.
    fn round_trip(proxy: &Proxy, bytes: usize, within: Duration) -> Option<Duration> {
        let started = std::time::Instant::now();
        let mut s = std::net::TcpStream::connect(proxy.address(0, 1)).ok()?;
        s.set_read_timeout(Some(within)).ok()?;
        let data: Vec<u8> = (0..bytes).map(|i| i as u8).collect();
        let mut w = s.try_clone().ok()?;
        let sent = data.clone();
        let writer = std::thread::spawn(move || w.write_all(&sent).is_ok());
        let mut back = vec![0u8; bytes];
        let got = s.read_exact(&mut back).is_ok();
        // A write stuck behind a cut ends when the socket closes.
        let _ = s.shutdown(std::net::Shutdown::Both);
        let _ = writer.join();
        (got && back == data && started.elapsed() <= within).then(|| started.elapsed())
    }

    #[test]
    fn bytes_pass_unchanged_when_no_fault_is_set() {
        let proxy = two_nodes();
        assert!(round_trip(&proxy, 1 << 20, Duration::from_secs(10)).is_some());
        assert!(proxy.counters().bytes.load(Ordering::Relaxed) >= 2 << 20);
    }

    #[test]
    fn a_cut_holds_bytes_until_the_heal_and_then_they_arrive_intact() {
        let proxy = two_nodes();
        proxy.partition(&[vec![0], vec![1]]);
        assert!(round_trip(&proxy, 4096, Duration::from_millis(500)).is_none());
        // Bytes sent into a cut arrive after the heal.
        let mut s = std::net::TcpStream::connect(proxy.address(0, 1)).expect("connect");
        s.write_all(b"held").expect("write");
        std::thread::sleep(Duration::from_millis(300));
        proxy.heal();
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut b = [0u8; 4];
        s.read_exact(&mut b)
            .expect("the held bytes arrive after the heal");
        assert_eq!(&b, b"held");
        // A one-way cut stops the round trip too (the echo cannot answer).
        proxy.set(
            1,
            0,
            Faults {
                cut: true,
                ..Faults::default()
            },
        );
        assert!(round_trip(&proxy, 4096, Duration::from_millis(500)).is_none());
    }

    #[test]
    fn delay_loss_and_bandwidth_slow_the_traffic_down_by_about_what_they_say() {
        let proxy = two_nodes();
        let delay = Duration::from_millis(150);
        proxy.set(
            0,
            1,
            Faults {
                delay,
                ..Faults::default()
            },
        );
        let took = round_trip(&proxy, 100, Duration::from_secs(5)).expect("arrives");
        assert!(took >= delay, "{took:?}");
        proxy.heal();
        proxy.set(
            1,
            0,
            Faults {
                loss: 1.0,
                ..Faults::default()
            },
        );
        let took = round_trip(&proxy, 100, Duration::from_secs(5)).expect("arrives");
        assert!(took >= RETRANSMIT_DELAY, "{took:?}");
        proxy.heal();
        // 64 KiB at 128 KiB/s: half a second at least.
        proxy.set(
            0,
            1,
            Faults {
                bandwidth: Some(128 * 1024),
                ..Faults::default()
            },
        );
        let took = round_trip(&proxy, 64 * 1024, Duration::from_secs(10)).expect("arrives");
        assert!(took >= Duration::from_millis(400), "{took:?}");
        proxy.heal();
        let took = round_trip(&proxy, 64 * 1024, Duration::from_secs(10)).expect("arrives");
        assert!(
            took < Duration::from_millis(400),
            "healed, still slow: {took:?}"
        );
    }

    #[test]
    fn a_reset_ends_open_connections_of_the_nodes_named_only() {
        let proxy = two_nodes();
        let open = || {
            let mut s = std::net::TcpStream::connect(proxy.address(0, 1)).expect("connect");
            s.write_all(b"hello").expect("write");
            let mut b = [0u8; 5];
            s.read_exact(&mut b).expect("echo");
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            s
        };
        let mut s = open();
        proxy.reset(&[2]);
        s.write_all(b"still").expect("write");
        let mut b = [0u8; 5];
        s.read_exact(&mut b)
            .expect("a reset of another node leaves it open");
        proxy.reset(&[1]);
        let mut b = [0u8; 1];
        assert!(matches!(s.read(&mut b), Ok(0) | Err(_)), "still open");
        assert_eq!(proxy.counters().resets.load(Ordering::Relaxed), 1);
    }
}
