//! A Jepsen-style nemesis on real processes: a BFT testnet of separate `cairn node run`
//! processes, every p2p connection through a proxy it controls ([`proxy`]), clients
//! submitting transfers throughout ([`client`]), and a schedule of faults drawn from a seed —
//! partitions, one-way loss, delay and jitter, bandwidth caps, connection resets, kill -9,
//! SIGSTOP, graceful restarts, clock skew, a full disk — each healed before the next. After the run every
//! node is brought back, stopped, and [`checker`] holds their stores against the history.
//!
//! The schedule depends on the seed alone, and the report prints the command that reruns it;
//! what the processes do in between is up to the machine, so a rerun repeats the faults, not
//! every interleaving.

pub mod checker;
pub mod client;
pub mod oracle;
pub mod proxy;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_ledger::Hash;
use cairn_ledger::genesis::Genesis;
use cairn_ledger::keys::read_key_file;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::disk::{Tmpfs, can_mount};
use crate::testnet::{Testnet, fast, rpc_call_within};
use cairn_node::run::EXIT_DATA_DIR;
use checker::Observation;
use client::{Clients, Outcome};
use proxy::{Faults, Proxy};

/// What one run does.
#[derive(Clone, Debug)]
pub struct Options {
    pub validators: usize,
    /// How long faults are scheduled for (the run takes longer: setup, final catch-up, check).
    pub duration: Duration,
    pub seed: u64,
    /// Client senders besides the faucet.
    pub senders: usize,
    /// Oracle publishers (`cairn oracle publish` daemons), spread over the nodes.
    pub publishers: usize,
    /// Test-only: adds to the history an acknowledgement for a transfer no node ever saw, as
    /// if the network lost an acknowledged transfer. The checker must report it.
    pub unsafe_lose_acknowledged: bool,
    /// Test-only: after the run, rewinds the last node's store to the lowest tip of all and
    /// replaces the block there with a different one, as if it had forked. The checker must
    /// report it.
    pub unsafe_fork_one_node: bool,
    /// Test-only: the checker's oracle replay reads the reveals of the first round with a
    /// price one unit high, as if the chain had settled that round on other values than its
    /// blocks hold. The checker must report the round on every node.
    pub unsafe_misread_oracle: bool,
}

impl Options {
    pub fn new(validators: usize, duration: Duration, seed: u64) -> Options {
        Options {
            validators,
            duration,
            seed,
            senders: 4,
            publishers: 3,
            unsafe_lose_acknowledged: false,
            unsafe_fork_one_node: false,
            unsafe_misread_oracle: false,
        }
    }

    /// The command that reruns this schedule.
    pub fn rerun(&self) -> String {
        format!(
            "make chaos VALIDATORS={} DURATION={} SEED={}",
            self.validators,
            self.duration.as_secs(),
            self.seed
        )
    }
}

/// One fault of the schedule, on for a while and then healed.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Nodes in different groups cannot reach each other.
    Partition { groups: Vec<Vec<usize>> },
    /// Two sides that reach each other only through `bridge`.
    Bridge {
        left: Vec<usize>,
        right: Vec<usize>,
        bridge: usize,
    },
    /// Chunks from `from` to each of `to` arrive a retransmission late, a `share` of them;
    /// the other way is untouched.
    Loss {
        from: usize,
        to: Vec<usize>,
        share: f64,
    },
    /// Everything to and from `node` is held `delay`, give or take `jitter`.
    Delay {
        node: usize,
        delay: Duration,
        jitter: Duration,
    },
    /// Everything to and from `node` at most `bytes_per_s`.
    Bandwidth { node: usize, bytes_per_s: u64 },
    /// Every connection of `node` closed at once.
    Reset { node: usize },
    /// kill -9, started again at the heal.
    Kill { node: usize },
    /// SIGSTOP, SIGCONT at the heal: a hung node.
    Pause { node: usize },
    /// SIGTERM, then started again at once.
    Restart { node: usize },
    /// Restarted with its wall clock `seconds` off (monotonic time untouched), restarted with
    /// the right clock at the heal. Beyond 15 s ahead its blocks are in the future for
    /// everyone else.
    Skew { node: usize, seconds: i64 },
    /// `node`'s data directory (a tmpfs) fills up: it must stop with the data-dir exit
    /// status, nothing else; at the heal the space is freed and it is started again.
    DiskFull { node: usize },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(" ");
        match self {
            Fault::Partition { groups } => {
                let g: Vec<String> = groups.iter().map(|g| format!("[{}]", list(g))).collect();
                write!(f, "partition {}", g.join(" | "))
            }
            Fault::Bridge {
                left,
                right,
                bridge,
            } => write!(f, "bridge [{}] <{bridge}> [{}]", list(left), list(right)),
            Fault::Loss { from, to, share } => {
                write!(f, "loss {:.0}% {from} -> [{}]", share * 100.0, list(to))
            }
            Fault::Delay {
                node,
                delay,
                jitter,
            } => write!(
                f,
                "delay node {node} {} ms ± {} ms",
                delay.as_millis(),
                jitter.as_millis()
            ),
            Fault::Bandwidth { node, bytes_per_s } => {
                write!(f, "bandwidth node {node} {} KiB/s", bytes_per_s / 1024)
            }
            Fault::Reset { node } => write!(f, "reset node {node}"),
            Fault::Kill { node } => write!(f, "kill -9 node {node}"),
            Fault::Pause { node } => write!(f, "SIGSTOP node {node}"),
            Fault::Restart { node } => write!(f, "restart node {node}"),
            Fault::Skew { node, seconds } => write!(f, "clock node {node} {seconds:+} s"),
            Fault::DiskFull { node } => write!(f, "full disk node {node}"),
        }
    }
}

impl Fault {
    /// The kind's name, for the per-kind figures.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Partition { .. } => "partition",
            Fault::Bridge { .. } => "bridge",
            Fault::Loss { .. } => "loss",
            Fault::Delay { .. } => "delay",
            Fault::Bandwidth { .. } => "bandwidth",
            Fault::Reset { .. } => "reset",
            Fault::Kill { .. } => "kill",
            Fault::Pause { .. } => "pause",
            Fault::Restart { .. } => "restart",
            Fault::Skew { .. } => "skew",
            Fault::DiskFull { .. } => "disk",
        }
    }
}

/// One entry of the schedule: a fault on at `at` (from the start of the faults), healed
/// `hold` later.
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    pub at: Duration,
    pub hold: Duration,
    pub fault: Fault,
}

const HOLD_MIN: Duration = Duration::from_secs(2);
const HOLD_MAX: Duration = Duration::from_secs(8);
/// Between a heal and the next fault: long enough to see commits resume.
const QUIET_MIN: Duration = Duration::from_secs(3);
const QUIET_MAX: Duration = Duration::from_secs(6);

/// The faults of a run of `duration` on `n` validators, from `seed` alone.
pub fn schedule(n: usize, duration: Duration, seed: u64) -> Vec<Episode> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut at = QUIET_MIN;
    let mut out = Vec::new();
    loop {
        let hold = rng.gen_range(HOLD_MIN..=HOLD_MAX);
        if at + hold > duration {
            return out;
        }
        let fault = draw_fault(&mut rng, n);
        out.push(Episode { at, hold, fault });
        at += hold + rng.gen_range(QUIET_MIN..=QUIET_MAX);
    }
}

fn draw_fault(rng: &mut ChaCha8Rng, n: usize) -> Fault {
    let mut nodes: Vec<usize> = (0..n).collect();
    nodes.shuffle(rng);
    let node = nodes[0];
    match rng.gen_range(0..11) {
        0 => {
            let cut = rng.gen_range(1..n);
            let (a, b) = nodes.split_at(cut);
            let mut groups = vec![a.to_vec(), b.to_vec()];
            groups.iter_mut().for_each(|g| g.sort());
            Fault::Partition { groups }
        }
        1 if n >= 3 => {
            let bridge = nodes[0];
            let rest = &nodes[1..];
            let cut = rng.gen_range(1..rest.len());
            let (mut left, mut right) = (rest[..cut].to_vec(), rest[cut..].to_vec());
            left.sort();
            right.sort();
            Fault::Bridge {
                left,
                right,
                bridge,
            }
        }
        2 => {
            let mut to: Vec<usize> = nodes[1..=rng.gen_range(1..n)].to_vec();
            to.sort();
            Fault::Loss {
                from: node,
                to,
                share: [0.1, 0.3, 0.6][rng.gen_range(0..3)],
            }
        }
        3 => Fault::Delay {
            node,
            delay: Duration::from_millis(rng.gen_range(20..=400)),
            jitter: Duration::from_millis(rng.gen_range(0..=100)),
        },
        4 => Fault::Bandwidth {
            node,
            bytes_per_s: [32 * 1024, 128 * 1024, 1024 * 1024][rng.gen_range(0..3)],
        },
        5 => Fault::Reset { node },
        6 => Fault::Kill { node },
        7 => Fault::Pause { node },
        8 => Fault::Restart { node },
        9 => Fault::DiskFull { node },
        _ => Fault::Skew {
            node,
            // Within and beyond the 15 s future-timestamp rule, both ways.
            seconds: [-40, -5, 5, 40][rng.gen_range(0..4)],
        },
    }
}

/// What happened to one episode.
#[derive(Clone, Debug)]
pub struct Outcome1 {
    pub episode: Episode,
    /// When it was applied, from the start of the faults (later than `episode.at` when a
    /// full disk before it was held past its heal).
    pub applied_at: Duration,
    /// From the heal to the first commit after it, on any node.
    pub resumed_after: Option<Duration>,
    /// The longest time without a commit on any node from the fault to the next fault.
    pub longest_gap: Duration,
}

/// The result of one run.
pub struct Report {
    pub options: Options,
    pub episodes: Vec<Outcome1>,
    pub violations: Vec<String>,
    pub violation_count: usize,
    /// Expected stops (a full disk) and skipped faults.
    pub notes: Vec<String>,
    pub acknowledged: usize,
    pub transfers: usize,
    pub common_height: u64,
    /// Oracle rounds the checker replayed, and how many set a price.
    pub oracle_rounds: usize,
    pub oracle_priced: usize,
    /// Where the testnet, history and logs are (kept when there were violations).
    pub dir: PathBuf,
}

impl Report {
    /// The longest time from a heal to the next commit.
    pub fn longest_stall_after_heal(&self) -> Duration {
        self.episodes
            .iter()
            .map(|e| e.resumed_after.unwrap_or(Duration::MAX))
            .max()
            .unwrap_or_default()
    }

    /// `faults: N  violations: V  longest stall after heal: S s`
    pub fn summary(&self) -> String {
        let stall = self.longest_stall_after_heal();
        let stall = if stall == Duration::MAX {
            "never resumed".to_owned()
        } else {
            format!("{:.1} s", stall.as_secs_f64())
        };
        format!(
            "faults: {}  violations: {}  longest stall after heal: {stall}",
            self.episodes.len(),
            self.violation_count
        )
    }

    /// Everything a person reads after a run: the faults with their stalls, per-kind figures,
    /// the violations, the summary line and how to rerun.
    pub fn print(&self) -> String {
        let secs = |d: Duration| {
            if d == Duration::MAX {
                "never".to_owned()
            } else {
                format!("{:.1} s", d.as_secs_f64())
            }
        };
        let mut out = String::new();
        for e in &self.episodes {
            out += &format!(
                "  at {:>6.1} s for {:.1} s  {:<34} longest without commits {:>6}, resumed {:>6} \
                 after the heal\n",
                e.applied_at.as_secs_f64(),
                e.episode.hold.as_secs_f64(),
                e.episode.fault.to_string(),
                secs(e.longest_gap),
                secs(e.resumed_after.unwrap_or(Duration::MAX)),
            );
        }
        out += "per fault kind: longest time from the heal to a commit:\n";
        for (kind, n, d) in self.stalls_by_kind() {
            out += &format!("  {kind:<10} {n:>3} times, longest {}\n", secs(d));
        }
        out += &format!(
            "history: {} calls, {} acknowledged transfers checked; every store reaches height \
             {}\n",
            self.transfers, self.acknowledged, self.common_height
        );
        out += &format!(
            "oracle: {} publishers, {} rounds replayed and checked, {} of them set a price\n",
            self.options.publishers, self.oracle_rounds, self.oracle_priced
        );
        for n in &self.notes {
            out += &format!("note: {n}\n");
        }
        for v in &self.violations {
            out += &format!("VIOLATION {v}\n");
        }
        if self.violation_count > 0 {
            out += &format!("evidence kept in {}\n", self.dir.display());
        }
        out += &format!("{}\nrerun: {}", self.summary(), self.options.rerun());
        out
    }

    /// The longest stall after a heal, per kind of fault.
    pub fn stalls_by_kind(&self) -> Vec<(&'static str, usize, Duration)> {
        let mut out: Vec<(&'static str, usize, Duration)> = Vec::new();
        for e in &self.episodes {
            let stall = e.resumed_after.unwrap_or(Duration::MAX);
            match out
                .iter_mut()
                .find(|(k, _, _)| *k == e.episode.fault.kind())
            {
                Some((_, n, d)) => {
                    *n += 1;
                    *d = (*d).max(stall);
                }
                None => out.push((e.episode.fault.kind(), 1, stall)),
            }
        }
        out.sort();
        out
    }
}

/// The heights each node reports, polled through the run by one thread per node, so that a
/// hung or slow node delays nobody's polls but its own.
struct Monitor {
    observations: Arc<Mutex<Vec<Observation>>>,
    /// Each node's highest reported height.
    highest: Arc<Vec<AtomicU64>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

const POLL: Duration = Duration::from_millis(100);
/// A status call slower than this counts as no answer (a hung node must not hold a poller
/// long, or the commit timeline would have holes).
const POLL_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest the final catch-up may take before a node that did not make it is a violation.
const CATCH_UP_MAX: Duration = Duration::from_secs(90);

impl Monitor {
    fn start(urls: &[String], started: Instant) -> Monitor {
        let observations = Arc::new(Mutex::new(Vec::new()));
        let highest: Arc<Vec<AtomicU64>> =
            Arc::new(urls.iter().map(|_| AtomicU64::new(0)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let threads = urls
            .iter()
            .enumerate()
            .map(|(node, url)| {
                let (url, observations, highest, stop) = (
                    url.clone(),
                    observations.clone(),
                    highest.clone(),
                    stop.clone(),
                );
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Some((height, hash)) = status(&url)
                            && height > highest[node].load(Ordering::Relaxed)
                        {
                            highest[node].store(height, Ordering::Relaxed);
                            observations.lock().unwrap_or_else(|e| e.into_inner()).push(
                                Observation {
                                    at_ms: started.elapsed().as_millis() as u64,
                                    node,
                                    height,
                                    hash,
                                },
                            );
                        }
                        std::thread::sleep(POLL);
                    }
                })
            })
            .collect();
        Monitor {
            observations,
            highest,
            stop,
            threads,
        }
    }

    fn highest(&self) -> Vec<u64> {
        self.highest
            .iter()
            .map(|h| h.load(Ordering::Relaxed))
            .collect()
    }

    /// Stops the pollers; returns what they saw and the commit timeline: (ms since start,
    /// highest height on any node), at each new highest.
    fn finish(self) -> (Vec<Observation>, Vec<(u64, u64)>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let mut observations =
            std::mem::take(&mut *self.observations.lock().unwrap_or_else(|e| e.into_inner()));
        observations.sort_by_key(|o| o.at_ms);
        let mut commits: Vec<(u64, u64)> = Vec::new();
        for o in &observations {
            if commits.last().is_none_or(|c| o.height > c.1) {
                commits.push((o.at_ms, o.height));
            }
        }
        (observations, commits)
    }
}

/// A node's committed (height, hash), or `None` when it does not answer within
/// [`POLL_TIMEOUT`].
fn status(url: &str) -> Option<(u64, Hash)> {
    let s = rpc_call_within(url, "status", serde_json::json!({}), POLL_TIMEOUT).ok()?;
    Some((s["height"].as_u64()?, s["hash"].as_str()?.parse().ok()?))
}

/// Finds libfaketime (Debian's package `faketime`), for clock skew.
fn libfaketime() -> Result<PathBuf, String> {
    let dir = std::path::Path::new("/usr/lib");
    let candidates = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path().join("faketime/libfaketimeMT.so.1"));
    candidates.into_iter().find(|p| p.exists()).ok_or_else(|| {
        "libfaketime is missing: clock-skew faults need Debian's package `faketime` \
             (`make bootstrap` installs it, or apt-get install -y faketime)"
            .to_owned()
    })
}

/// Size of the tmpfs each node's data directory is on: far above what a run writes (about
/// 150 MB in 30 minutes), and memory only as far as it is used.
const DISK_BYTES: u64 = 2 << 30;
/// Room left when a disk is made full: shrunk to what is used plus this, then filled.
const DISK_FULL_HEADROOM: u64 = 4 << 20;
/// Longest a full disk is held past its scheduled heal while its node has not stopped.
const DISK_FULL_HOLD_MAX: Duration = Duration::from_secs(30);

/// The running testnet and what acts on it.
struct Nemesis {
    /// Each node's data directory's tmpfs (none when this process may not mount: the disk
    /// faults are then skipped, said so). Before `net`, so unmounted before its directory
    /// goes.
    disks: Vec<Tmpfs>,
    net: Testnet,
    proxy: Proxy,
    faketime: PathBuf,
    /// What went wrong while the faults ran (the checker adds what it finds after).
    violations: Vec<String>,
    /// Faults that were expected to stop a node and did, or were skipped: for the report.
    notes: Vec<String>,
    /// The node the current disk fault filled, while it may stop on its own.
    disk_full: Option<usize>,
    /// Nodes whose disk was full since they last started: a write that failed then can stop
    /// one after the heal (RocksDB reports a failed background flush at the next write).
    was_full: Vec<bool>,
}

impl Nemesis {
    /// Starts a node whose process is not running; a fresh start reopens its store, so a
    /// write that failed before is no longer pending.
    fn start_node(&mut self, node: usize) {
        self.was_full[node] = false;
        self.net.start(node);
    }

    fn apply(&mut self, fault: &Fault) {
        let n = self.net.nodes.len();
        let both_ways = |proxy: &Proxy, node: usize, f: Faults| {
            for other in (0..n).filter(|&o| o != node) {
                proxy.set(node, other, f);
                proxy.set(other, node, f);
            }
        };
        match fault {
            Fault::Partition { groups } => self.proxy.partition(groups),
            Fault::Bridge {
                left,
                right,
                bridge,
            } => {
                let cut = Faults {
                    cut: true,
                    ..Faults::default()
                };
                for &a in left {
                    for &b in right {
                        self.proxy.set(a, b, cut);
                        self.proxy.set(b, a, cut);
                    }
                }
                let _ = bridge;
            }
            Fault::Loss { from, to, share } => {
                for &t in to {
                    self.proxy.set(
                        *from,
                        t,
                        Faults {
                            loss: *share,
                            ..Faults::default()
                        },
                    );
                }
            }
            Fault::Delay {
                node,
                delay,
                jitter,
            } => both_ways(
                &self.proxy,
                *node,
                Faults {
                    delay: *delay,
                    jitter: *jitter,
                    ..Faults::default()
                },
            ),
            Fault::Bandwidth { node, bytes_per_s } => both_ways(
                &self.proxy,
                *node,
                Faults {
                    bandwidth: Some(*bytes_per_s),
                    ..Faults::default()
                },
            ),
            Fault::Reset { node } => self.proxy.reset(&[*node]),
            Fault::Kill { node } => self.net.kill(*node),
            Fault::Pause { node } => self.net.signal(*node, libc::SIGSTOP),
            Fault::Restart { node } => {
                self.stop(*node);
                self.start_node(*node);
            }
            Fault::DiskFull { node } => {
                let Some(disk) = self.disks.get(*node) else {
                    self.notes.push(format!(
                        "{fault}: skipped, this process may not mount a tmpfs"
                    ));
                    return;
                };
                let filled = disk
                    .resize(disk.used() + DISK_FULL_HEADROOM)
                    .and_then(|()| disk.fill(0));
                match filled {
                    Ok(_) => {
                        self.disk_full = Some(*node);
                        self.was_full[*node] = true;
                    }
                    Err(e) => self
                        .violations
                        .push(format!("{fault}: could not fill: {e}")),
                }
            }
            Fault::Skew { node, seconds } => {
                self.stop(*node);
                let preload = self.faketime.to_string_lossy().into_owned();
                let offset = format!("{seconds:+}");
                self.net.start_env(
                    *node,
                    &[
                        ("LD_PRELOAD", &preload),
                        ("FAKETIME", &offset),
                        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
                    ],
                );
            }
        }
    }

    fn heal(&mut self, fault: &Fault) {
        self.proxy.heal();
        match fault {
            Fault::Kill { node } => self.start_node(*node),
            Fault::Pause { node } => self.net.signal(*node, libc::SIGCONT),
            Fault::Skew { node, .. } => {
                self.stop(*node);
                self.start_node(*node);
            }
            Fault::DiskFull { node } => {
                if let Some(disk) = self.disks.get(*node) {
                    let freed = disk.unfill().and_then(|()| disk.resize(DISK_BYTES));
                    if let Err(e) = freed {
                        self.violations
                            .push(format!("{fault}: could not free: {e}"));
                    }
                }
                self.check_exits();
                self.disk_full = None;
                if !self.net.started(*node) {
                    self.was_full[*node] = false;
                    self.start_node(*node);
                } else {
                    self.notes.push(format!(
                        "{fault}: the node needed no new space in {} s of a full disk, so did \
                         not stop",
                        DISK_FULL_HOLD_MAX.as_secs()
                    ));
                }
            }
            _ => {}
        }
    }

    /// A graceful stop; a node that does not exit cleanly is a violation.
    fn stop(&mut self, node: usize) {
        if !self.net.started(node) {
            return;
        }
        let status = self.net.stop(node);
        if !status.success() {
            self.violations.push(format!(
                "node {node} exited with {status} on SIGTERM\n{}",
                crate::testnet::log_tail(&self.net.nodes[node].log)
            ));
        }
    }

    /// Nodes that exited on their own are violations (a node stops on its own only when
    /// it must); they are started again so the run goes on.
    fn check_exits(&mut self) {
        for i in 0..self.net.nodes.len() {
            if let Some(status) = self.net.reap(i) {
                if self.disk_full == Some(i) || self.was_full[i] {
                    // Fail-stop is what a full disk must cause, with the status saying so; it
                    // is started again at the heal.
                    if status.code() == Some(EXIT_DATA_DIR) {
                        self.notes.push(format!(
                            "full disk node {i}: stopped with status {EXIT_DATA_DIR}{}",
                            if self.disk_full == Some(i) {
                                ""
                            } else {
                                " after the heal"
                            }
                        ));
                        if self.disk_full != Some(i) {
                            // Its disk has room again: it comes back at once.
                            self.was_full[i] = false;
                            self.start_node(i);
                        }
                    } else {
                        self.violations.push(format!(
                            "node {i} exited with {status} on a full disk, not with status \
                             {EXIT_DATA_DIR}\n{}",
                            crate::testnet::log_tail(&self.net.nodes[i].log)
                        ));
                    }
                    continue;
                }
                self.violations.push(format!(
                    "node {i} exited on its own with {status}\n{}",
                    crate::testnet::log_tail(&self.net.nodes[i].log)
                ));
                self.start_node(i);
            }
        }
    }
}

/// How long no node may report a new height before every node's state is saved.
const STALL_SNAPSHOT_AFTER: Duration = Duration::from_secs(20);

/// Watches for the chain standing still, to save what the nodes say while it does.
#[derive(Default)]
struct Stall {
    /// The highest height seen and since when.
    highest: Option<(u64, Instant)>,
    /// The height a snapshot was taken at (one per stall).
    saved_at: Option<u64>,
}

impl Stall {
    fn watch(&mut self, nemesis: &Nemesis, monitor: &Monitor) {
        let now = monitor.highest().into_iter().max().unwrap_or(0);
        match self.highest {
            Some((h, since)) if h == now => {
                if since.elapsed() >= STALL_SNAPSHOT_AFTER && self.saved_at != Some(h) {
                    self.saved_at = Some(h);
                    let dir = snapshot(&nemesis.net, &format!("stall-{h}"));
                    eprintln!(
                        "no commit for {} s at height {h}: every node's status and metrics \
                         saved in {}",
                        STALL_SNAPSHOT_AFTER.as_secs(),
                        dir.display()
                    );
                }
            }
            _ => self.highest = Some((now, Instant::now())),
        }
    }
}

/// Saves every running node's `status` and `/metrics` under `<testnet>/<name>/`, for a person
/// to read after the run: what each engine thought while something went wrong.
fn snapshot(net: &Testnet, name: &str) -> PathBuf {
    let dir = net.path().join(name);
    let _ = std::fs::create_dir_all(&dir);
    for (i, node) in net.nodes.iter().enumerate() {
        let status = rpc_call_within(&node.rpc, "status", serde_json::json!({}), POLL_TIMEOUT)
            .unwrap_or_else(|e| serde_json::json!({ "no answer": e }));
        let _ = std::fs::write(dir.join(format!("node{i}.status.json")), status.to_string());
        let metrics = crate::testnet::get(&format!("{}/metrics", node.rpc));
        let _ = std::fs::write(dir.join(format!("node{i}.metrics")), metrics);
    }
    dir
}

/// Builds the testnet with every p2p connection through the proxy and every data directory
/// on a tmpfs (when this process may mount).
fn setup(n: usize, seed: u64) -> Result<(Vec<Tmpfs>, Testnet, Proxy), String> {
    let net = Testnet::create(n, fast);
    let disks = if can_mount() {
        net.nodes
            .iter()
            .map(|node| Tmpfs::mount(&node.home.join("data"), DISK_BYTES))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    let p2p = |i: usize| -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], net.base_port + 2 * i as u16))
    };
    let targets: Vec<SocketAddr> = (0..n).map(p2p).collect();
    let proxy = Proxy::start(&targets, seed).map_err(|e| format!("starting the proxy: {e}"))?;
    for i in 0..n {
        let mut config = net.config(i);
        for j in (0..n).filter(|&j| j != i) {
            let direct = format!("/ip4/127.0.0.1/tcp/{}/p2p/", p2p(j).port());
            let proxied = format!("/ip4/127.0.0.1/tcp/{}/p2p/", proxy.address(i, j).port());
            if !config.contains(&direct) {
                return Err(format!(
                    "node {i}'s config does not name node {j} at {direct}"
                ));
            }
            config = config.replace(&direct, &proxied);
        }
        net.set_config(i, &config);
    }
    Ok((disks, net, proxy))
}

/// Runs the schedule of `options` and checks the result. Prints each fault as it happens.
pub fn run(options: &Options) -> Result<Report, String> {
    let faketime = libfaketime()?;
    let episodes = schedule(options.validators, options.duration, options.seed);
    let (disks, net, proxy) = setup(options.validators, options.seed)?;
    let mut nemesis = Nemesis {
        disks,
        net,
        proxy,
        faketime,
        violations: Vec::new(),
        notes: Vec::new(),
        disk_full: None,
        was_full: vec![false; options.validators],
    };
    let n = options.validators;
    nemesis.net.start_all();
    nemesis.net.wait_height(&(0..n).collect::<Vec<_>>(), 2);
    let genesis = Genesis::load(&nemesis.net.path().join("genesis.toml"))
        .map_err(|e| format!("genesis: {e}"))?;
    let faucet = read_key_file(&nemesis.net.faucet_key).map_err(|e| format!("faucet: {e}"))?;
    let urls: Vec<String> = nemesis.net.nodes.iter().map(|n| n.rpc.clone()).collect();
    let clients = Arc::new(Clients::new(
        &genesis.chain_id,
        faucet,
        options.senders,
        options.publishers,
        options.seed,
        urls.clone(),
    ));
    // The faucet funds every sender before anything breaks.
    for s in 0..options.senders {
        match clients.submit(0, s as u64, 0, true) {
            Outcome::Committed { .. } => {}
            other => return Err(format!("funding sender {}: {other:?}", s + 1)),
        }
    }
    for k in 0..options.publishers {
        match clients.submit(0, (options.senders + k) as u64, 0, true) {
            Outcome::Committed { .. } => {}
            other => return Err(format!("funding oracle operator {k}: {other:?}")),
        }
    }
    let mut publishers = oracle::Publishers::start(nemesis.net.path(), &clients.operators, &urls)?;
    let started = clients.started;
    let monitor = Monitor::start(&urls, started);
    let senders: Vec<_> = (1..=options.senders)
        .map(|s| {
            let c = clients.clone();
            let seed = options.seed;
            std::thread::spawn(move || c.run_sender(s, seed))
        })
        .collect();

    let faults_from = Instant::now();
    let mut outcomes = Vec::new();
    let mut stall = Stall::default();
    let mut wait_until = |until: Instant, nemesis: &mut Nemesis| {
        while Instant::now() < until {
            nemesis.check_exits();
            stall.watch(nemesis, &monitor);
            std::thread::sleep(POLL);
        }
    };
    // How much later than scheduled the faults run: a full disk is held until its node
    // stops, and what follows moves back by as much.
    let mut shift = Duration::ZERO;
    for episode in &episodes {
        wait_until(faults_from + shift + episode.at, &mut nemesis);
        eprintln!(
            "[{:>6.1} s] {} for {:.1} s",
            faults_from.elapsed().as_secs_f64(),
            episode.fault,
            episode.hold.as_secs_f64()
        );
        let applied_ms = started.elapsed().as_millis() as u64;
        nemesis.apply(&episode.fault);
        let heal_at = faults_from + shift + episode.at + episode.hold;
        wait_until(heal_at, &mut nemesis);
        if let Fault::DiskFull { node } = episode.fault {
            // A node writes into space RocksDB already holds (its log preallocates) before
            // it needs more: the fault lasts until that happens, within a bound.
            let cap = Instant::now() + DISK_FULL_HOLD_MAX;
            while nemesis.disk_full == Some(node)
                && nemesis.net.started(node)
                && Instant::now() < cap
            {
                nemesis.check_exits();
                std::thread::sleep(POLL);
            }
            shift += Instant::now().saturating_duration_since(heal_at);
        }
        nemesis.heal(&episode.fault);
        let healed_ms = started.elapsed().as_millis() as u64;
        outcomes.push((episode.clone(), applied_ms, healed_ms));
    }
    wait_until(faults_from + shift + options.duration, &mut nemesis);
    let faults_end_ms = started.elapsed().as_millis() as u64;

    // The end: clients stop, every node catches up to the highest height reported, then
    // stops, and the stores are checked.
    clients.stop.store(true, Ordering::Relaxed);
    for s in senders {
        let _ = s.join();
    }
    // A publisher never gives up on its node (README): one that exited did wrong.
    nemesis.violations.extend(publishers.stop());
    let history = clients.ops();
    let target = monitor.highest().into_iter().max().unwrap_or(0);
    let catch_up = Instant::now();
    while monitor.highest().iter().any(|&h| h < target) && catch_up.elapsed() < CATCH_UP_MAX {
        nemesis.check_exits();
        std::thread::sleep(POLL);
    }
    for (i, h) in monitor.highest().iter().enumerate() {
        if *h < target {
            nemesis.violations.push(format!(
                "node {i} was at {h}, below {target}, {} s after the last heal",
                CATCH_UP_MAX.as_secs()
            ));
        }
    }
    if monitor.highest().iter().any(|&h| h < target) {
        snapshot(&nemesis.net, "end");
    }
    for i in 0..n {
        nemesis.stop(i);
    }
    let (observations, commits) = monitor.finish();
    let ends: Vec<u64> = outcomes
        .iter()
        .skip(1)
        .map(|o| o.1)
        .chain([faults_end_ms])
        .collect();
    let episodes: Vec<Outcome1> = outcomes
        .into_iter()
        .zip(ends)
        .map(|((episode, applied_ms, healed_ms), end_ms)| {
            let applied_at = Duration::from_millis(applied_ms)
                .saturating_sub(faults_from.duration_since(started));
            let height_then = commits
                .iter()
                .take_while(|c| c.0 <= healed_ms)
                .last()
                .map_or(0, |c| c.1);
            let resumed_after = commits
                .iter()
                .find(|c| c.0 > healed_ms && c.1 > height_then)
                .map(|c| Duration::from_millis(c.0 - healed_ms));
            let mut gap = 0;
            let mut prev = applied_ms;
            for &(t, _) in commits.iter().filter(|c| c.0 > applied_ms && c.0 <= end_ms) {
                gap = gap.max(t - prev);
                prev = t;
            }
            Outcome1 {
                episode,
                applied_at,
                resumed_after,
                longest_gap: Duration::from_millis(gap.max(end_ms.saturating_sub(prev))),
            }
        })
        .collect();

    let data_dirs: Vec<PathBuf> = nemesis
        .net
        .nodes
        .iter()
        .map(|n| n.home.join("data"))
        .collect();
    let mut history = history;
    if options.unsafe_lose_acknowledged {
        let phantom = clients.transaction(1, u64::MAX / 2);
        history.push(client::Op {
            at_ms: started.elapsed().as_millis() as u64,
            sender: 1,
            nonce: u64::MAX / 2,
            hash: phantom.hash(),
            node: 0,
            wait: true,
            outcome: Outcome::Committed { height: 1 },
        });
    }
    if options.unsafe_fork_one_node {
        fork_last(&genesis, &data_dirs)?;
    }
    let verdict = checker::check(
        &genesis,
        &data_dirs,
        &clients,
        &history,
        &observations,
        options.unsafe_misread_oracle,
    );
    let mut violations = nemesis.violations.clone();
    let violation_count = violations.len() + verdict.violations;
    violations.extend(verdict.lines);

    let dir = nemesis.net.path().to_path_buf();
    let lines: Vec<String> = history.iter().map(|o| o.to_json().to_string()).collect();
    let _ = std::fs::write(dir.join("history.jsonl"), lines.join("\n"));
    let report = Report {
        options: options.clone(),
        episodes,
        violations,
        violation_count,
        notes: nemesis.notes.clone(),
        acknowledged: verdict.acknowledged,
        transfers: history.len(),
        common_height: verdict.common_height,
        oracle_rounds: verdict.oracle_rounds,
        oracle_priced: verdict.oracle_priced,
        dir,
    };
    if report.violation_count > 0 {
        // Keep the evidence: the testnet's directory outlives the run.
        let kept = tempfile::tempdir().map_err(|e| e.to_string())?;
        let _ = std::mem::replace(&mut nemesis.net.dir, kept).keep();
    }
    Ok(report)
}

/// Makes the last store in `dirs` fork: rewinds it to the lowest tip among them and replaces
/// the block there with one that differs only in its timestamp.
fn fork_last(genesis: &Genesis, dirs: &[PathBuf]) -> Result<(), String> {
    use cairn_ledger::state::SigCheck;
    use cairn_ledger::store::Store;
    let open =
        |dir: &PathBuf| Store::open(dir, genesis).map_err(|e| format!("{}: {e}", dir.display()));
    let mut lowest = u64::MAX;
    for dir in dirs {
        lowest = lowest.min(open(dir)?.tip().height.0);
    }
    let store = open(dirs.last().ok_or("no stores")?)?;
    while store.tip().height.0 > lowest {
        store.revert_tip().map_err(|e| e.to_string())?;
    }
    let mut block = store.revert_tip().map_err(|e| e.to_string())?;
    block.header.timestamp.0 += 1;
    let prepared = store
        .complete_block(block, cairn_ledger::Amount::ZERO, SigCheck::Skip)
        .map_err(|e| e.to_string())?;
    store.commit(&prepared).map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_is_the_seeds_alone_and_stays_inside_its_bounds() {
        let long = Duration::from_secs(1800);
        assert_eq!(schedule(4, long, 9), schedule(4, long, 9));
        assert_ne!(schedule(4, long, 9), schedule(4, long, 10));
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..20 {
            let episodes = schedule(7, long, seed);
            assert!(!episodes.is_empty());
            let mut free_from = Duration::ZERO;
            for e in &episodes {
                assert!(e.at >= free_from, "{e:?} overlaps the one before");
                assert!((HOLD_MIN..=HOLD_MAX).contains(&e.hold), "{e:?}");
                assert!(e.at + e.hold <= long);
                free_from = e.at + e.hold + QUIET_MIN;
                kinds.insert(e.fault.kind());
                if let Fault::Partition { groups } = &e.fault {
                    let mut all: Vec<usize> = groups.concat();
                    all.sort();
                    assert_eq!(all, (0..7).collect::<Vec<_>>(), "{e:?}");
                }
            }
        }
        assert_eq!(kinds.len(), 11, "every kind of fault is drawn: {kinds:?}");
    }

    #[test]
    fn a_run_shorter_than_one_fault_schedules_none() {
        assert!(schedule(4, HOLD_MIN, 1).is_empty());
    }
}
