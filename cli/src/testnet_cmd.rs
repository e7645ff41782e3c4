//! `cairn testnet`: creates (or reuses) a local network under `--dir` and runs every node
//! as its own `cairn node run` process until Ctrl-C, which stops them all.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cairn_ledger::keys;
use cairn_node::config::NodeConfig;
use cairn_node::home::Home;
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::client::{Client, RpcArgs};
use crate::genesis_cmd::{self, Mode};

/// How long the nodes get to commit their first blocks before the testnet gives up.
pub const START_TIMEOUT: Duration = Duration::from_secs(90);
/// The height every node must reach before the testnet reports itself running.
const START_HEIGHT: u64 = 2;
/// How long stopped nodes get to exit after SIGTERM before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How often children are checked and statuses polled.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Lines of a failed node's log shown in the error.
const LOG_TAIL_LINES: usize = 15;
/// Most demo publishers `--oracle-publishers` starts.
pub const ORACLE_PUBLISHERS_MAX: usize = 16;
/// The demo feed every local genesis has, and what its publishers report around.
const DEMO_FEED: &str = "DEMO/USD";
const DEMO_PRICE: &str = "1.000000";
/// What the faucet gives each demo publisher, and what each stakes of it.
const PUBLISHER_FUNDS: u64 = 1_000_000;
const PUBLISHER_STAKE: u64 = 10_000;

#[derive(Args)]
pub struct TestnetArgs {
    /// The consensus engine: hotstuff (alias bft) or pbft for a BFT committee, pow for
    /// miners.
    #[arg(long, value_enum, default_value_t = Mode::HotStuff)]
    mode: Mode,
    /// Number of validators (BFT) or miners (PoW).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Where the network's files go: genesis, keys, one home per node, testnet.json.
    #[arg(long, default_value = "testnet")]
    dir: PathBuf,
    /// First port; node i uses P+2i for p2p and P+2i+1 for RPC.
    #[arg(long, default_value_t = 26600)]
    base_port: u16,
    #[command(flatten)]
    bft: genesis_cmd::BftTuning,
    #[command(flatten)]
    pow: genesis_cmd::PowTuning,
    /// Also run K oracle publishers for the demo feed DEMO/USD, each funded by the faucet,
    /// staking and reporting a synthetic price near 1.00 (logs in DIR/publishers/).
    #[arg(long, value_name = "K", default_value_t = 0)]
    oracle_publishers: usize,
    /// Only create the files (or report the existing ones); start nothing.
    #[arg(long)]
    no_start: bool,
}

#[derive(Serialize, Deserialize)]
struct TestnetNode {
    name: String,
    rpc: String,
    p2p: String,
    home: PathBuf,
    key: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct TestnetFile {
    chain_id: String,
    genesis_hash: String,
    nodes: Vec<TestnetNode>,
    faucet_key: PathBuf,
}

pub fn run(a: TestnetArgs) -> Result<()> {
    if a.oracle_publishers > ORACLE_PUBLISHERS_MAX {
        bail!(
            "--oracle-publishers {} is over the limit of {ORACLE_PUBLISHERS_MAX}",
            a.oracle_publishers
        );
    }
    let publishers = Publishers {
        dir: a.dir.join("publishers"),
        count: a.oracle_publishers,
    };
    let manifest = a.dir.join("testnet.json");
    // Running it again is how people come back to their network: reuse it.
    let reused = manifest.exists();
    let file = if reused {
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("cannot read {}", manifest.display()))?;
        let file: TestnetFile = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a testnet manifest; remove {} or pass another --dir",
                manifest.display(),
                a.dir.display()
            )
        })?;
        println!(
            "using the existing testnet in {} (remove the directory for a new one)",
            a.dir.display()
        );
        file
    } else {
        create(&a, &manifest)?
    };
    print_summary(&file, &manifest);
    if a.no_start {
        println!(
            "not started (--no-start); `{} testnet --dir {}` starts it",
            crate::output::cairn_command(),
            a.dir.display()
        );
        return Ok(());
    }
    if reused {
        check_ports_of(&file)?;
    }
    run_nodes(&file, &publishers)
}

/// Creates the network's files under `a.dir` and its manifest.
fn create(a: &TestnetArgs, manifest: &Path) -> Result<TestnetFile> {
    genesis_cmd::check_validator_count(a.validators)?;
    let ports_needed = a.validators * 2;
    if (a.base_port as usize).saturating_add(ports_needed) > u16::MAX as usize {
        bail!(
            "--base-port {} leaves too few ports for {} nodes",
            a.base_port,
            a.validators
        );
    }
    for port in a.base_port..a.base_port + ports_needed as u16 {
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            bail!(
                "port {port} is already in use; free it or move every node's ports with \
                 --base-port (node i uses base+2i and base+2i+1)"
            );
        }
    }
    let net = genesis_cmd::create(a.mode, a.validators, &a.dir, a.bft, a.pow)?;
    let peers: Vec<String> = net
        .validator_keys
        .iter()
        .enumerate()
        .map(|(i, key)| -> Result<String> {
            let peer_id = keys::peer_id(&keys::read_key_file(key)?.public());
            Ok(format!(
                "/ip4/127.0.0.1/tcp/{}/p2p/{peer_id}",
                a.base_port + 2 * i as u16
            ))
        })
        .collect::<Result<_>>()?;
    let mut nodes = Vec::new();
    for (i, key) in net.validator_keys.iter().enumerate() {
        let name = format!("node{i}");
        let p2p_port = a.base_port + 2 * i as u16;
        let rpc_port = p2p_port + 1;
        let mut config = NodeConfig::default();
        config.node.moniker = name.clone();
        config.p2p.listen = format!("/ip4/127.0.0.1/tcp/{p2p_port}");
        config.rpc.listen = format!("127.0.0.1:{rpc_port}");
        if a.mode == Mode::Pow {
            // One miner thread per node: a local network shares the machine's cores.
            config.mining.enabled = true;
            config.mining.threads = 1;
        }
        config.p2p.persistent_peers = peers
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| p.clone())
            .collect();
        let home = a.dir.join(&name);
        Home::init(&home, &net.genesis, key, &config)
            .with_context(|| format!("creating {}", home.display()))?;
        nodes.push(TestnetNode {
            name,
            rpc: format!("http://127.0.0.1:{rpc_port}"),
            p2p: peers[i].clone(),
            home,
            key: key.clone(),
        });
    }
    let file = TestnetFile {
        chain_id: net.chain_id.clone(),
        genesis_hash: net.genesis_hash.clone(),
        nodes,
        faucet_key: net.faucet_key.clone(),
    };
    let json = serde_json::to_string_pretty(&file).expect("plain data serialises to JSON");
    std::fs::write(manifest, json + "\n")
        .with_context(|| format!("cannot write {}", manifest.display()))?;
    println!(
        "created a {}-node {} testnet in {}",
        file.nodes.len(),
        match a.mode {
            Mode::HotStuff => "BFT (HotStuff)",
            Mode::Pbft => "BFT (PBFT)",
            Mode::Pow => "proof-of-work",
        },
        a.dir.display()
    );
    Ok(file)
}

fn print_summary(file: &TestnetFile, manifest: &Path) {
    println!("  chain_id      {}", file.chain_id);
    println!("  genesis_hash  {}", file.genesis_hash);
    for n in &file.nodes {
        println!("  {:<6} rpc {}  home {}", n.name, n.rpc, n.home.display());
    }
    println!("  faucet key    {}", file.faucet_key.display());
    println!("  manifest      {}", manifest.display());
}

/// Refuses to start over ports another process holds (a running copy of this testnet, say).
fn check_ports_of(file: &TestnetFile) -> Result<()> {
    for n in &file.nodes {
        let config = Home::new(&n.home).load_config()?;
        let rpc_port = config.rpc.listen.rsplit(':').next().unwrap_or_default();
        let p2p_port = config.p2p.listen.rsplit('/').next().unwrap_or_default();
        for (what, port) in [("RPC", rpc_port), ("p2p", p2p_port)] {
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            if TcpListener::bind(("127.0.0.1", port)).is_err() {
                bail!(
                    "port {port} ({}'s {what} port, set in {}) is already in use: is this \
                     testnet already running? Stop it, or create another one with --dir and \
                     --base-port",
                    n.name,
                    Home::new(&n.home).config_path().display()
                );
            }
        }
    }
    Ok(())
}

struct Running {
    name: String,
    log: PathBuf,
    child: Child,
}

/// Starts one `cairn node run` per node, waits for commits, then runs until Ctrl-C (or a
/// node dies), and stops every node it started.
fn run_nodes(file: &TestnetFile, publishers: &Publishers) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the cairn executable")?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the Ctrl-C handler")?;
    }
    let mut running = Vec::new();
    for n in &file.nodes {
        match start_node(&exe, n) {
            Ok(r) => running.push(r),
            Err(e) => {
                stop_all(&mut running);
                return Err(e);
            }
        }
    }
    let result = supervise(file, &mut running, &stop, publishers);
    stop_all(&mut running);
    if result.is_ok() {
        println!("stopped all {} processes", running.len());
    }
    result
}

fn start_node(exe: &Path, n: &TestnetNode) -> Result<Running> {
    let log = n.home.join("node.log");
    let (out, err) = open_log(&log)?;
    let child = Command::new(exe)
        .args(["node", "run", "--home"])
        .arg(&n.home)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("cannot start {}", n.name))?;
    Ok(Running {
        name: n.name.clone(),
        log,
        child,
    })
}

fn supervise(
    file: &TestnetFile,
    running: &mut Vec<Running>,
    stop: &AtomicBool,
    publishers: &Publishers,
) -> Result<()> {
    let clients: Vec<Client> = file
        .nodes
        .iter()
        .map(|n| -> Result<Client> {
            let rpc = n.rpc.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            Ok(Client::new(&RpcArgs { rpc }))
        })
        .collect::<Result<_>>()?;
    let spinner = crate::output::spinner(format!(
        "starting {} nodes, waiting for height {START_HEIGHT}",
        running.len()
    ));
    let started = Instant::now();
    loop {
        check_alive(running)?;
        if stop.load(Ordering::SeqCst) {
            spinner.finish_and_clear();
            return Ok(());
        }
        let heights: Vec<u64> = clients.iter().map(height_of).collect();
        spinner.set_message(format!(
            "starting {} nodes; heights {:?}",
            running.len(),
            heights
        ));
        if heights.iter().all(|h| *h >= START_HEIGHT) {
            break;
        }
        if started.elapsed() > START_TIMEOUT {
            spinner.finish_and_clear();
            bail!(
                "the nodes did not all reach height {START_HEIGHT} within {} s (heights {:?}); \
                 see the logs: {}",
                START_TIMEOUT.as_secs(),
                heights,
                running
                    .iter()
                    .map(|r| r.log.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    spinner.finish_and_clear();
    let nodes = running.len();
    publishers.start(file, &clients, running)?;
    println!();
    println!("running: {nodes} nodes committing blocks");
    for (n, r) in file.nodes.iter().zip(running.iter()) {
        println!("  {:<6} rpc {}  log {}", n.name, n.rpc, r.log.display());
    }
    for r in &running[nodes..] {
        println!("  {} for {DEMO_FEED}  log {}", r.name, r.log.display());
    }
    // Hints name the binary that is running, so a copied line works before `make install`.
    let cairn = crate::output::cairn_command();
    let first_rpc = file.nodes.first().map(|n| n.rpc.as_str()).unwrap_or("");
    if running.len() > nodes {
        println!(
            "prices appear after two rounds:  {cairn} oracle price {DEMO_FEED} --rpc {first_rpc}"
        );
    }
    println!("  faucet key    {}", file.faucet_key.display());
    println!("try:  {cairn} status --rpc {first_rpc}");
    println!("Ctrl-C stops every node.");
    while !stop.load(Ordering::SeqCst) {
        check_alive(running)?;
        std::thread::sleep(POLL_INTERVAL);
    }
    println!("stopping…");
    Ok(())
}

fn height_of(client: &Client) -> u64 {
    client
        .call::<serde_json::Value>("status", serde_json::json!({}))
        .ok()
        .and_then(|s| s.get("height").and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}

/// A node that exited on its own is an error naming it, with the end of its log.
fn check_alive(running: &mut [Running]) -> Result<()> {
    for r in running.iter_mut() {
        if let Some(status) = r.child.try_wait()? {
            let text = std::fs::read_to_string(&r.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
            bail!(
                "{} exited ({status}); the end of {}:\n{tail}",
                r.name,
                r.log.display()
            );
        }
    }
    Ok(())
}

/// SIGTERM to every node still running, then SIGKILL to those that outlast the grace period.
fn stop_all(running: &mut [Running]) {
    for r in running.iter_mut() {
        if let Ok(None) = r.child.try_wait() {
            // SAFETY: kill(2) on the pid of a child this process spawned and has not reaped.
            unsafe {
                libc::kill(r.child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    for r in running.iter_mut() {
        loop {
            match r.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = r.child.kill();
                    let _ = r.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// The demo publishers: one key each under `dir`, funded by the faucet when they start.
struct Publishers {
    dir: PathBuf,
    count: usize,
}

impl Publishers {
    /// Creates missing keys, funds the publishers that need it, and starts one
    /// `cairn oracle publish` per publisher, spread over the nodes' RPCs.
    fn start(
        &self,
        file: &TestnetFile,
        clients: &[Client],
        running: &mut Vec<Running>,
    ) -> Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        let exe = std::env::current_exe().context("cannot find the cairn executable")?;
        let spinner = crate::output::spinner(format!("funding {} oracle publishers", self.count));
        let faucet = crate::submit::Signer::new(
            Client::new(&RpcArgs {
                rpc: file.nodes[0]
                    .rpc
                    .parse()
                    .map_err(|e: String| anyhow::anyhow!(e))?,
            }),
            keys::read_key_file(&file.faucet_key)?,
        )?;
        for i in 0..self.count {
            let dir = self.dir.join(format!("publisher{i}"));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let key_path = dir.join("op.key");
            if !key_path.exists() {
                keys::write_key_file(
                    &key_path,
                    &cairn_ledger::crypto::Keypair::generate(&mut rand::rngs::OsRng),
                )
                .with_context(|| format!("cannot write {}", key_path.display()))?;
            }
            let address = keys::read_key_file(&key_path)?.public().address();
            let balance =
                clients[0].call::<serde_json::Value>(
                    "account",
                    serde_json::json!({ "address": address }),
                )?["balance"]
                    .as_u64()
                    .unwrap_or(0);
            if balance < PUBLISHER_STAKE * 2 {
                faucet.submit(
                    cairn_ledger::tx::Payload::Transfer {
                        to: address,
                        amount: cairn_ledger::Amount(PUBLISHER_FUNDS),
                    },
                    crate::tx_cmd::FEE_DEFAULT,
                    true,
                )?;
            }
            let log = dir.join("publisher.log");
            let (out, err) = open_log(&log)?;
            let rpc = &file.nodes[i % file.nodes.len()].rpc;
            let child = Command::new(&exe)
                .args(["oracle", "publish", "--feed", DEMO_FEED, "--key"])
                .arg(&key_path)
                .args(["--source", &format!("synthetic:{DEMO_PRICE}")])
                .args(["--stake", &PUBLISHER_STAKE.to_string(), "--rpc", rpc])
                .arg("--state-dir")
                .arg(dir.join("state"))
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .context("cannot start an oracle publisher")?;
            running.push(Running {
                name: format!("publisher{i}"),
                log,
                child,
            });
        }
        spinner.finish_and_clear();
        Ok(())
    }
}

/// A child's log file, appended to, as its stdout and stderr.
fn open_log(path: &Path) -> Result<(std::fs::File, std::fs::File)> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let err = out.try_clone()?;
    Ok((out, err))
}
