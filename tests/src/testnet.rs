//! A local network of real `cairn node run` processes for end-to-end tests: created with
//! `cairn testnet --no-start`, each node started, killed and restarted on its own, and
//! observed through its JSON-RPC over a real socket.
//!
//! Waits poll with a deadline and, when it passes, fail with the condition and every node's
//! log tail: a slow machine makes a test slower, not wrong.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cairn_bin;

/// Longest any single wait in a test may take before it fails.
pub const WAIT_MAX: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);
const LOG_TAIL_LINES: usize = 25;

/// End-to-end tests run one at a time: several networks of several processes on two cores
/// would make each of them crawl.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct TestNode {
    pub name: String,
    pub home: PathBuf,
    pub rpc: String,
    pub key: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

pub struct Testnet {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<TestNode>,
    pub faucet_key: PathBuf,
    pub base_port: u16,
}

/// Where [`free_ports`] draws from: below Linux's default ephemeral range (32768-60999),
/// from which the kernel takes the local port of every outgoing connection, so a port found
/// free here is not taken by some connection before the node binds it.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_768;

/// A run of `count` free ports on 127.0.0.1, starting at a random even port.
pub fn free_ports(count: u16) -> u16 {
    use rand::Rng;
    assert!(count < TEST_PORTS.len() as u16 / 2, "{count} ports");
    let mut rng = rand::thread_rng();
    for _ in 0..200 {
        let base = rng.gen_range(TEST_PORTS.start..TEST_PORTS.end - count) & !1;
        if (base..base + count).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!("no run of {count} free ports found");
}

impl Testnet {
    /// Creates an `n`-validator BFT testnet (files only). `tune` may edit each node's
    /// config.toml text before anything starts.
    pub fn create(n: usize, tune: impl Fn(&str) -> String) -> Testnet {
        Testnet::create_with(n, &[], tune)
    }

    /// Like [`Testnet::create`], passing `args` on to `cairn testnet`.
    pub fn create_with(n: usize, args: &[&str], tune: impl Fn(&str) -> String) -> Testnet {
        let dir = tempfile::tempdir().expect("temp dir");
        let base_port = free_ports(2 * n as u16);
        let out = Command::new(cairn_bin())
            .args(["testnet", "--no-start", "--validators", &n.to_string()])
            .arg("--dir")
            .arg(dir.path())
            .args(["--base-port", &base_port.to_string()])
            .args(args)
            .output()
            .expect("run cairn testnet");
        assert!(
            out.status.success(),
            "cairn testnet --no-start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let manifest = read_manifest(dir.path());
        let nodes = manifest["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| {
                let home = PathBuf::from(n["home"].as_str().expect("home"));
                let config = home.join("config.toml");
                let text = std::fs::read_to_string(&config).expect("config.toml");
                std::fs::write(&config, tune(&text)).expect("write config.toml");
                TestNode {
                    name: n["name"].as_str().expect("name").to_owned(),
                    rpc: n["rpc"].as_str().expect("rpc").to_owned(),
                    key: PathBuf::from(n["key"].as_str().expect("key")),
                    log: home.join("node.log"),
                    home,
                    child: None,
                }
            })
            .collect();
        Testnet {
            faucet_key: PathBuf::from(manifest["faucet_key"].as_str().expect("faucet_key")),
            dir,
            nodes,
            base_port,
        }
    }

    /// An `n`-validator network built step by step as an operator would (`cairn genesis new`,
    /// then `cairn init` per node), with `edit_genesis` applied to the genesis file before any
    /// node exists. Configs get fast empty blocks (`fast_config`).
    pub fn from_genesis(
        n: usize,
        edit_genesis: impl Fn(&str) -> String,
        tune: impl Fn(&str) -> String,
    ) -> Testnet {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = |args: &[&str]| {
            let out = Command::new(cairn_bin())
                .args(args)
                .output()
                .expect("run cairn");
            assert!(
                out.status.success(),
                "cairn {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out
        };
        let path = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
        let net_dir = dir.path().join("net");
        run(&[
            "genesis",
            "new",
            "--validators",
            &n.to_string(),
            "--out",
            &path(&net_dir),
        ]);
        let genesis = net_dir.join("genesis.toml");
        let text = std::fs::read_to_string(&genesis).expect("genesis.toml");
        std::fs::write(&genesis, edit_genesis(&text)).expect("write genesis.toml");
        let base_port = free_ports(2 * n as u16);
        let peer_ids: Vec<String> = (0..n)
            .map(|i| {
                let key = path(&net_dir.join(format!("node{i}.key")));
                let out = run(&["keys", "show", &key, "--output", "json"]);
                let v: Value = serde_json::from_slice(&out.stdout).expect("keys show JSON");
                v["peer_id"].as_str().expect("peer_id").to_owned()
            })
            .collect();
        let p2p = |i: usize| format!("/ip4/127.0.0.1/tcp/{}", base_port + 2 * i as u16);
        let mut nodes = Vec::new();
        for i in 0..n {
            let home = dir.path().join(format!("node{i}"));
            let key = net_dir.join(format!("node{i}.key"));
            let rpc = format!("127.0.0.1:{}", base_port + 2 * i as u16 + 1);
            run(&[
                "init",
                "--home",
                &path(&home),
                "--genesis",
                &path(&genesis),
                "--key",
                &path(&key),
                "--p2p-listen",
                &p2p(i),
                "--rpc-listen",
                &rpc,
            ]);
            let peers: Vec<String> = (0..n)
                .filter(|&j| j != i)
                .map(|j| format!("\"{}/p2p/{}\"", p2p(j), peer_ids[j]))
                .collect();
            let config = home.join("config.toml");
            let text = std::fs::read_to_string(&config).expect("config.toml");
            let text = text.replace(
                "persistent_peers = []",
                &format!("persistent_peers = [{}]", peers.join(", ")),
            );
            std::fs::write(&config, tune(&text)).expect("write config.toml");
            nodes.push(TestNode {
                name: format!("node{i}"),
                rpc: format!("http://{rpc}"),
                key,
                log: home.join("node.log"),
                home,
                child: None,
            });
        }
        Testnet {
            faucet_key: net_dir.join("faucet.key"),
            dir,
            nodes,
            base_port,
        }
    }

    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
    }

    pub fn start(&mut self, i: usize) {
        self.start_env(i, &[]);
    }

    /// [`Testnet::start`] with more environment variables for the node's process (a
    /// preloaded fake clock, say).
    pub fn start_env(&mut self, i: usize, env: &[(&str, &str)]) {
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "{} is already running", node.name);
        node.child = Some(spawn_node_env(&node.home, &node.log, &[], env));
    }

    /// Starts node `i` with another build of `cairn` ([`crate::old_cairn_bin`], say).
    pub fn start_bin(&mut self, i: usize, bin: &Path) {
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "{} is already running", node.name);
        node.child = Some(spawn_node_bin(bin, &node.home, &node.log, &[], &[]));
    }

    /// Sends `signal` to node `i`'s process, if it runs (SIGSTOP hangs it, SIGCONT wakes it).
    pub fn signal(&self, i: usize, signal: libc::c_int) {
        if let Some(child) = &self.nodes[i].child {
            // SAFETY: kill(2) on a child this process spawned and has not reaped.
            unsafe {
                libc::kill(child.id() as libc::pid_t, signal);
            }
        }
    }

    /// Whether node `i`'s process was started and has not been stopped or killed since
    /// (it may have exited on its own: see [`Testnet::exited`]).
    pub fn started(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// Forgets node `i`'s process after it exited on its own, so that it can be started
    /// again.
    pub fn reap(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        let status = self.exited(i)?;
        self.nodes[i].child = None;
        Some(status)
    }

    /// SIGKILL: a crash, not a shutdown.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait: a clean shutdown. Returns the exit status.
    pub fn stop(&mut self, i: usize) -> std::process::ExitStatus {
        let mut child = self.nodes[i].child.take().expect("node is running");
        // SAFETY: kill(2) on a child this process spawned and has not reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        child.wait().expect("wait for node")
    }

    /// Waits (up to [`WAIT_MAX`]) for node `i`'s process to exit on its own.
    pub fn wait_exit(&mut self, i: usize) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT_MAX;
        loop {
            if let Some(status) = self.exited(i) {
                self.nodes[i].child = None;
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not exit within {} s\n{}",
                    self.nodes[i].name,
                    WAIT_MAX.as_secs(),
                    self.logs()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Whether node `i`'s process has exited on its own.
    pub fn exited(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        self.nodes[i]
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// A JSON-RPC call to node `i`: the result, or the error object.
    pub fn rpc(&self, i: usize, method: &str, params: Value) -> Result<Value, Value> {
        rpc_call(&self.nodes[i].rpc, method, params)
    }

    pub fn status(&self, i: usize) -> Option<Value> {
        self.rpc(i, "status", json!({})).ok()
    }

    pub fn height(&self, i: usize) -> Option<u64> {
        self.status(i).and_then(|s| s["height"].as_u64())
    }

    /// The committed block at `height` on node `i`: (hash, state_root).
    pub fn block_at(&self, i: usize, height: u64) -> Option<(String, String)> {
        let b = self.rpc(i, "block", json!({ "height": height })).ok()?;
        Some((
            b["hash"].as_str()?.to_owned(),
            b["state_root"].as_str()?.to_owned(),
        ))
    }

    /// Polls `check` until it holds, or fails the test naming `what`, with the logs.
    pub fn wait_for(&mut self, what: &str, mut check: impl FnMut(&Testnet) -> bool) {
        let deadline = Instant::now() + WAIT_MAX;
        loop {
            if check(self) {
                return;
            }
            for i in 0..self.nodes.len() {
                if let Some(status) = self.exited(i) {
                    panic!(
                        "{} exited ({status}) while waiting for {what}\n{}",
                        self.nodes[i].name,
                        self.logs()
                    );
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {} s waiting for {what}\n{}",
                    WAIT_MAX.as_secs(),
                    self.logs()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until every node in `nodes` has committed at least `height`.
    pub fn wait_height(&mut self, nodes: &[usize], height: u64) {
        let what = format!("nodes {nodes:?} to reach height {height}");
        self.wait_for(&what, |net| {
            nodes
                .iter()
                .all(|&i| net.height(i).is_some_and(|h| h >= height))
        });
    }

    /// Asserts that every node in `nodes` has the same block hash and state root at every
    /// height from 1 to the lowest tip among them.
    pub fn assert_agree(&self, nodes: &[usize]) -> u64 {
        let lowest = nodes
            .iter()
            .map(|&i| self.height(i).expect("node answers status"))
            .min()
            .expect("some nodes");
        for h in 1..=lowest {
            let first = self.block_at(nodes[0], h).expect("block exists");
            for &i in &nodes[1..] {
                let other = self.block_at(i, h).expect("block exists");
                assert_eq!(
                    first, other,
                    "{} and {} disagree at height {h}",
                    self.nodes[nodes[0]].name, self.nodes[i].name
                );
            }
        }
        lowest
    }

    /// The last lines of every node's log.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- {} ({})\n{}", n.name, n.log.display(), log_tail(&n.log)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Creates an `n`-miner proof-of-work testnet (files only) with `cairn testnet --mode pow`,
    /// the genesis block time `block_time_ms` and compact target `initial_bits`; every node
    /// mines with one thread.
    pub fn create_pow(n: usize, block_time_ms: u64, initial_bits: &str) -> Testnet {
        let block_time = block_time_ms.to_string();
        Testnet::create_with(
            n,
            &[
                "--mode",
                "pow",
                "--block-time-ms",
                &block_time,
                "--initial-bits",
                initial_bits,
            ],
            |c| c.to_owned(),
        )
    }

    /// Node `i`'s tip: (height, hash).
    pub fn tip(&self, i: usize) -> Option<(u64, String)> {
        let s = self.status(i)?;
        Some((s["height"].as_u64()?, s["hash"].as_str()?.to_owned()))
    }

    /// The value of metric `name` (with its labels, e.g. `cairn_pow_reorgs_total`) on node
    /// `i`'s `/metrics`, if it is there.
    pub fn metric(&self, i: usize, name: &str) -> Option<f64> {
        let text = get(&format!("{}/metrics", self.nodes[i].rpc));
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Node `i`'s process id, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(Child::id)
    }

    /// Node `i`'s config.toml text.
    pub fn config(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i].home.join("config.toml")).expect("config.toml")
    }

    /// Replaces node `i`'s config.toml (takes effect at its next start).
    pub fn set_config(&self, i: usize, text: &str) {
        std::fs::write(self.nodes[i].home.join("config.toml"), text).expect("write config.toml");
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// Starts `cairn node run --home HOME`, appending its output to `log`.
pub fn spawn_node(home: &Path, log: &Path) -> Child {
    spawn_node_with(home, log, &[])
}

/// [`spawn_node`] with more flags for `cairn node run`.
pub fn spawn_node_with(home: &Path, log: &Path, args: &[&str]) -> Child {
    spawn_node_env(home, log, args, &[])
}

/// [`spawn_node_with`] with more environment variables.
pub fn spawn_node_env(home: &Path, log: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    spawn_node_bin(&cairn_bin(), home, log, args, env)
}

/// [`spawn_node_env`] running another build of `cairn` (an older release, say).
pub fn spawn_node_bin(
    bin: &Path,
    home: &Path,
    log: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open node log");
    let err = out.try_clone().expect("clone log handle");
    Command::new(bin)
        .args(["node", "run", "--home"])
        .arg(home)
        .args(args)
        .env("NO_COLOR", "1")
        // `CAIRN_TEST_NODE_LOG` (a RUST_LOG filter) turns up the nodes' logs when a failure
        // needs them, e.g. `info,cairn_node::hotstuff=debug` to see every dropped input.
        .env(
            "RUST_LOG",
            std::env::var("CAIRN_TEST_NODE_LOG").unwrap_or_else(|_| "info".into()),
        )
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start cairn node run")
}

/// Stops a `cairn testnet` child the way a person would, with Ctrl-C (SIGINT), so that it
/// stops its nodes too; SIGKILL after 20 s. A test that gives up on a testnet calls this
/// rather than `Child::kill`, which would leave the nodes running, holding ports and files.
pub fn interrupt(child: &mut Child) {
    // SAFETY: kill(2) on a child this process spawned; harmless if it already exited.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A node's config.toml text with empty blocks every 50 ms instead of 500: the same
/// protocol, a faster test. For [`Testnet::create`]'s `tune`.
pub fn fast(config: &str) -> String {
    let out = config.replace(
        "empty_block_interval_ms = 500",
        "empty_block_interval_ms = 50",
    );
    assert_ne!(out, config, "config.toml has no empty_block_interval_ms");
    out
}

/// `cp -a from to`: a stopped node's data dir, as a backup or back from one.
pub fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

/// `(VmRSS, VmHWM)` of process `pid` in bytes: its resident memory now and at its peak so
/// far, from `/proc/<pid>/status`; `None` once it has exited.
pub fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// One JSON-RPC 2.0 call over HTTP: the result, or the error object (or a description of
/// why there was no answer, as a string).
pub fn rpc_call(url: &str, method: &str, params: Value) -> Result<Value, Value> {
    rpc_call_within(url, method, params, HTTP_TIMEOUT)
}

/// [`rpc_call`] giving up after `timeout`.
pub fn rpc_call_within(
    url: &str,
    method: &str,
    params: Value,
    timeout: Duration,
) -> Result<Value, Value> {
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let answer = post_within(url, body.to_string().as_bytes(), timeout).map_err(Value::String)?;
    let v: Value = serde_json::from_str(&answer.1).map_err(|e| Value::String(e.to_string()))?;
    match v.get("error") {
        Some(e) => Err(e.clone()),
        None => Ok(v["result"].clone()),
    }
}

/// Longest any one HTTP exchange with a node may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

fn agent() -> ureq::Agent {
    agent_within(HTTP_TIMEOUT)
}

fn agent_within(timeout: Duration) -> ureq::Agent {
    ureq::config::Config::builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

/// GETs `url`'s body, or "" when there is no answer.
pub fn get(url: &str) -> String {
    agent()
        .get(url)
        .call()
        .map(|mut r| r.body_mut().read_to_string().unwrap_or_default())
        .unwrap_or_default()
}

/// The `testnet.json` that `cairn testnet` wrote in `dir`.
pub fn read_manifest(dir: &Path) -> Value {
    let path = dir.join("testnet.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).expect("testnet.json is JSON")
}

/// POSTs raw bytes to `url`: (HTTP status, body).
pub fn post(url: &str, body: &[u8]) -> Result<(u16, String), String> {
    post_within(url, body, HTTP_TIMEOUT)
}

/// [`post`] giving up after `timeout`.
pub fn post_within(url: &str, body: &[u8], timeout: Duration) -> Result<(u16, String), String> {
    let mut response = agent_within(timeout)
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok((status, text))
}

/// Runs `cairn` with `args` and returns what it printed.
pub fn cairn(args: &[&str]) -> Output {
    Command::new(cairn_bin())
        .args(args)
        .output()
        .expect("run cairn")
}

/// The JSON a successful `--output json` command printed; panics with its stderr otherwise.
pub fn json_of(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "cairn failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("--output json prints JSON")
}

/// A new key file in the testnet's directory; returns (path, address).
pub fn new_account(net: &Testnet, name: &str) -> (String, String) {
    let path = net.path().join(format!("{name}.key"));
    let path = path.to_str().expect("utf-8 path").to_owned();
    let out = json_of(&cairn(&[
        "keys", "generate", "--out", &path, "--output", "json",
    ]));
    (path, out["address"].as_str().expect("address").to_owned())
}
