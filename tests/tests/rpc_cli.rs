//! The `cairn` client commands (`status`, `tx transfer`, `query …`) as a user runs them: the
//! real binary as a subprocess, talking HTTP to a real RPC server over a real RocksDB store.
//! No consensus runs: where a block is needed, the test commits it into the store itself, as
//! the driver will, and the server reads the same store.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_ledger::block::{Block, BlockHeader, QuorumCert, Seal};
use cairn_ledger::crypto::Keypair;
use cairn_ledger::genesis::{EngineKind, Genesis};
use cairn_ledger::keys;
use cairn_ledger::state::SigCheck;
use cairn_ledger::store::Store;
use cairn_ledger::tx::Transaction;
use cairn_ledger::{Address, Amount, Hash, Height, ProtocolVersion, Round, TimestampMs};
use cairn_node::config::{MempoolSection, RpcSection};
use cairn_node::host::status::{EngineStatus, NodeStatus, Readiness, StatusBoard};
use cairn_node::http::{RpcState, serve};
use cairn_node::metrics::Metrics;
use cairn_node::txpool::mempool::Mempool;
use cairn_tests::cairn_bin;
use serde_json::Value;
use tokio::sync::mpsc;

/// What the user's account holds at genesis.
const FUNDS: u64 = 1_000_000;
/// Where transfers go.
const RECIPIENT: Address = Address([9; 20]);
/// Longest a test waits for the server, the binary or a gossiped transaction before failing
/// instead of hanging.
const WAIT_MAX: Duration = Duration::from_secs(20);
/// How often a test looks again while it waits for something to happen.
const POLL: Duration = Duration::from_millis(10);

/// An RPC server on 127.0.0.1 over a fresh store, with a funded user whose key is on disk.
struct Node {
    url: String,
    store: Arc<Store>,
    mempool: Arc<Mutex<Mempool>>,
    /// Admissions the server hands the (absent) driver for gossip.
    gossip: mpsc::Receiver<Transaction>,
    validator: Keypair,
    user: Keypair,
    user_key: PathBuf,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    dir: tempfile::TempDir,
}

impl Node {
    fn start() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let validator = Keypair::from_secret(&[1; 32]);
        let user = Keypair::from_secret(&[2; 32]);
        let user_key = dir.path().join("user.key");
        keys::write_key_file(&user_key, &user).unwrap();
        let genesis = Genesis::local(
            EngineKind::HotStuff,
            &[validator.public()],
            &[(user.public().address(), Amount(FUNDS))],
            TimestampMs(1_700_000_000_000),
        );
        let store = Arc::new(Store::open(&dir.path().join("data"), &genesis).unwrap());
        let mempool = Arc::new(Mutex::new(Mempool::new(
            store.chain_id(),
            MempoolSection::default(),
        )));
        let board = StatusBoard::new(
            NodeStatus {
                peers: 3,
                syncing: false,
                validator: true,
                halted: None,
                not_scheduled_here: None,
                peer_list: Default::default(),
                other_schedule: None,
                engine: EngineStatus::HotStuff {
                    round: Round(7),
                    leader: Some(validator.public().address()),
                    election: Default::default(),
                },
            },
            Readiness::Ready,
        );
        let (admitted, gossip) = mpsc::channel(64);
        let state = RpcState {
            store: store.clone(),
            mempool: mempool.clone(),
            node: Arc::new(board),
            metrics: Arc::new(Metrics::new()),
            validators: genesis.validators.clone().into(),
            limits: RpcSection::default(),
            admitted: Some(admitted),
        };
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
        let server = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                addr_tx.send(listener.local_addr()?).unwrap();
                serve(listener, state, async move {
                    let _ = shutdown_rx.await;
                })
                .await
            })
        });
        let addr = addr_rx.recv_timeout(WAIT_MAX).unwrap();
        Node {
            url: format!("http://{addr}"),
            store,
            mempool,
            gossip,
            validator,
            user,
            user_key,
            shutdown: Some(shutdown),
            server: Some(server),
            dir,
        }
    }

    /// Runs `cairn ARGS --rpc URL`.
    fn cairn(&self, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--rpc", &self.url]);
        cairn(&all)
    }

    /// `cairn tx transfer` from the user to [`RECIPIENT`], plus `extra` args, as JSON.
    fn transfer_args(&self, amount: u64, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "tx",
            "transfer",
            "--key",
            self.user_key.to_str().unwrap(),
            "--to",
            &RECIPIENT.to_string(),
            "--amount",
            &amount.to_string(),
            "--output",
            "json",
            "--rpc",
            &self.url,
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// The next transaction the server handed over for gossip; fails the test after
    /// `WAIT_MAX`, or as soon as `child` (the command that should submit it) has exited.
    fn next_gossiped(&mut self, mut child: Option<&mut Child>) -> Transaction {
        let deadline = Instant::now() + WAIT_MAX;
        loop {
            match self.gossip.try_recv() {
                Ok(tx) => return tx,
                Err(mpsc::error::TryRecvError::Empty) => {}
                Err(e) => panic!("gossip channel: {e}"),
            }
            if let Some(child) = child.as_mut()
                && let Some(status) = child.try_wait().unwrap()
            {
                let mut stderr = String::new();
                use std::io::Read;
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr)
                    .unwrap();
                panic!("cairn exited ({status}) before submitting: {stderr}");
            }
            assert!(
                Instant::now() < deadline,
                "nothing gossiped in {WAIT_MAX:?}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// Commits a block holding `transactions` on the tip straight into the store and
    /// rechecks the mempool, as the driver does after a commit. Returns the block's hash.
    fn commit_block(&self, transactions: Vec<Transaction>) -> Hash {
        let tip = self.store.tip();
        let block = Block {
            header: BlockHeader {
                height: Height(0),
                parent: Hash::ZERO,
                timestamp: TimestampMs(1_700_000_000_000 + (tip.height.0 + 1) * 1000),
                tx_root: Hash::ZERO,
                state_root: Hash::ZERO,
                proposer: self.validator.public().address(),
                protocol_version: ProtocolVersion(0),
                seal: Seal::HotStuff {
                    round: Round(tip.height.0 + 1),
                    justify: QuorumCert {
                        round: Round(tip.height.0),
                        block: tip.hash,
                        votes: Vec::new(),
                    },
                },
            },
            transactions,
        };
        let prepared = self
            .store
            .complete_block(block, Amount::ZERO, SigCheck::EachAlone)
            .unwrap();
        self.store.commit(&prepared).unwrap();
        self.mempool
            .lock()
            .unwrap()
            .recheck(&prepared.block.transactions, &*self.store)
            .unwrap();
        prepared.hash
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let result = server.join();
            if !std::thread::panicking() {
                result.unwrap().unwrap();
            }
        }
    }
}

/// Runs `cairn ARGS` with no `$CAIRN_RPC` from the environment running the tests.
fn cairn<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(cairn_bin())
        .args(args)
        .env_remove("CAIRN_RPC")
        .output()
        .expect("run cairn")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "stderr: {}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "--output json prints JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

/// A failure reported as one `error: …` line with status `code`, not a crash.
fn assert_failure(o: &Output, code: i32, must_mention: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit status; stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.starts_with("error: "), "{err}");
    for m in must_mention {
        assert!(err.contains(m), "error should mention {m:?}: {err}");
    }
}

/// An address on which nothing listens: a port the OS just gave out, closed again.
fn unreachable_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Waits for `child` with a deadline, then returns its output.
fn finish(mut child: Child) -> Output {
    let deadline = Instant::now() + WAIT_MAX;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            child.kill().unwrap();
            panic!("cairn did not exit within {WAIT_MAX:?}");
        }
        std::thread::sleep(POLL);
    }
    child.wait_with_output().unwrap()
}

#[test]
fn status_prints_the_fields_scripts_rely_on() {
    let node = Node::start();
    let status = json(&node.cairn(&["status", "--output", "json"]));
    let tip = node.store.tip();
    assert_eq!(status["height"], 0);
    assert_eq!(status["hash"], tip.hash.to_string());
    assert_eq!(status["round"], 7);
    assert_eq!(
        status["leader"],
        node.validator.public().address().to_string()
    );
    assert_eq!(status["peers"], 3);
    assert_eq!(status["syncing"], false);
    assert_eq!(status["protocol_version"], 1);
    assert_eq!(status["chain_id"], "cairn-local");
    assert_eq!(
        status["genesis_hash"],
        node.store.genesis_hash().to_string()
    );
    assert_eq!(status["validator"], true);

    // $CAIRN_RPC is the default for --rpc, and a bare HOST:PORT is enough.
    let bare = node.url.strip_prefix("http://").unwrap();
    let from_env = Command::new(cairn_bin())
        .args(["status", "--output", "json"])
        .env("CAIRN_RPC", bare)
        .output()
        .unwrap();
    assert_eq!(json(&from_env)["hash"], tip.hash.to_string());

    let table = node.cairn(&["status"]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = String::from_utf8(table.stdout).unwrap();
    let line = |label: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(label))
            .unwrap_or_else(|| panic!("no {label} line in:\n{text}"))
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned()
    };
    assert_eq!(line("height"), "0");
    assert_eq!(line("hash"), tip.hash.to_string());
    assert_eq!(line("peers"), "3");
}

#[test]
fn query_account_shows_a_funded_balance() {
    let node = Node::start();
    let user = node.user.public().address().to_string();
    let account = json(&node.cairn(&["query", "account", &user, "--output", "json"]));
    assert_eq!(account["address"], user);
    assert_eq!(account["balance"], FUNDS);
    assert_eq!(account["nonce"], 0);

    let unused = json(&node.cairn(&[
        "query",
        "account",
        &RECIPIENT.to_string(),
        "--output",
        "json",
    ]));
    assert_eq!(
        (unused["balance"].clone(), unused["nonce"].clone()),
        (0.into(), 0.into())
    );

    let table = node.cairn(&["query", "account", &user]);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["balance", &FUNDS.to_string()]),
        "{text}"
    );
}

#[test]
fn transfer_is_admitted_and_query_tx_says_pending() {
    let mut node = Node::start();
    let sent = json(&cairn(&node.transfer_args(100, &["--fee", "3"])));
    assert_eq!(sent["status"], "pending");
    assert_eq!(sent["nonce"], 0);
    assert_eq!(
        (sent["amount"].clone(), sent["fee"].clone()),
        (100.into(), 3.into())
    );
    let hash = sent["hash"].as_str().unwrap().to_owned();
    // Admitted and handed over for gossip: the very transaction the command signed.
    let gossiped = node.next_gossiped(None);
    assert_eq!(gossiped.hash().to_string(), hash);
    assert_eq!(gossiped.chain_id, "cairn-local");
    assert_eq!(gossiped.fee, Amount(3));

    let found = json(&node.cairn(&["query", "tx", &hash, "--output", "json"]));
    assert_eq!(found["hash"], hash);
    assert_eq!(found["status"], "pending");

    // The next transfer signs the next nonce: the node counts what is pending.
    let second = json(&cairn(&node.transfer_args(5, &[])));
    assert_eq!(second["nonce"], 1);
    assert_eq!(node.mempool.lock().unwrap().len(), 2);
}

#[test]
fn transfer_wait_returns_once_its_block_commits() {
    let mut node = Node::start();
    let mut child = Command::new(cairn_bin())
        .args(node.transfer_args(250, &["--wait"]))
        .env_remove("CAIRN_RPC")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tx = node.next_gossiped(Some(&mut child));
    assert!(
        child.try_wait().unwrap().is_none(),
        "--wait returned before any block"
    );
    let block = node.commit_block(vec![tx.clone()]);
    let output = finish(child);
    // Not a terminal: no spinner, nothing on stderr.
    assert!(output.stderr.is_empty(), "{}", stderr(&output));
    let done = json(&output);
    assert_eq!(done["hash"], tx.hash().to_string());
    assert_eq!(done["status"], "committed");
    assert_eq!(done["height"], 1);
    assert_eq!(done["block"], block.to_string());
    assert_eq!(done["receipt"]["status"], "applied");

    let by_height = json(&node.cairn(&["query", "block", "1", "--output", "json"]));
    assert_eq!(by_height["height"], 1);
    assert_eq!(by_height["hash"], block.to_string());
    assert_eq!(
        by_height["transactions"],
        serde_json::json!([tx.hash().to_string()])
    );
    assert_eq!(
        by_height["parent"],
        node.store.hash_at(Height(0)).unwrap().unwrap().to_string()
    );
    for key in ["timestamp", "state_root"] {
        assert!(by_height.get(key).is_some(), "{key}: {by_height}");
    }
    let by_hash = json(&node.cairn(&["query", "block", &block.to_string(), "--output", "json"]));
    assert_eq!(by_hash, by_height);
    let tip = json(&node.cairn(&["query", "block", "--output", "json"]));
    assert_eq!(tip, by_height);

    let found = json(&node.cairn(&["query", "tx", &tx.hash().to_string(), "--output", "json"]));
    assert_eq!(found["status"], "committed");
    assert_eq!(found["height"], 1);
    let recipient = json(&node.cairn(&[
        "query",
        "account",
        &RECIPIENT.to_string(),
        "--output",
        "json",
    ]));
    assert_eq!(recipient["balance"], 250);

    // Waiting again for the same transaction reports the same commit at once.
    let again = json(&cairn(
        &node.transfer_args(250, &["--wait", "--nonce", "0"]),
    ));
    assert_eq!(again, done);
}

#[test]
fn an_unreachable_rpc_is_one_clear_error_with_status_1() {
    let node = Node::start();
    let address = unreachable_address();
    let url = format!("http://{address}");
    let user = node.user.public().address().to_string();
    let key = node.user_key.to_str().unwrap();
    let recipient = RECIPIENT.to_string();
    for args in [
        vec!["status"],
        vec!["query", "account", &user],
        vec!["query", "block", "1"],
        vec![
            "tx", "transfer", "--key", key, "--to", &recipient, "--amount", "1",
        ],
    ] {
        let mut all = args.clone();
        all.extend(["--rpc", &address]);
        let o = cairn(&all);
        assert_failure(
            &o,
            1,
            &[
                &format!("could not reach the node's RPC at {url}"),
                "is the node running? set --rpc or $CAIRN_RPC",
            ],
        );
        assert_eq!(stderr(&o).lines().count(), 1, "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn malformed_addresses_and_amounts_are_refused_naming_the_flag() {
    let node = Node::start();
    let key = node.user_key.to_str().unwrap();
    let to = RECIPIENT.to_string();
    // Checked before any connection: the --rpc given would fail with exit status 1.
    let dead = unreachable_address();
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (
            vec!["--to", "zz", "--amount", "1"],
            &["--to", "40 hex digits"],
        ),
        (vec!["--to", "", "--amount", "1"], &["--to"]),
        (vec!["--to", &to, "--amount", "abc"], &["--amount"]),
        (vec!["--to", &to, "--amount", "-5"], &["--amount"]),
        (vec!["--to", &to, "--amount", "1.5"], &["--amount"]),
        (
            vec!["--to", &to, "--amount", "18446744073709551616"],
            &["--amount", "too large"],
        ),
        (vec!["--to", &to, "--amount", "1", "--fee", "x"], &["--fee"]),
        (
            vec!["--to", &to, "--amount", "1", "--nonce", "-1"],
            &["--nonce"],
        ),
    ];
    for (flags, mentions) in cases {
        let mut args = vec!["tx", "transfer", "--key", key, "--rpc", &dead];
        args.extend(flags);
        assert_failure(&cairn(&args), 2, mentions);
    }
    for (args, mentions) in [
        (
            vec!["query", "account", "12"],
            &["ADDR", "40 hex digits"][..],
        ),
        (
            vec!["query", "block", "tip"],
            &["HEIGHT|HASH", "64 hex digits"],
        ),
        (vec!["query", "tx", "00"], &["HASH", "64 hex digits"]),
        (
            vec!["status", "--rpc", "https://node:1"],
            &["--rpc", "plain HTTP"],
        ),
        (
            vec!["status", "--rpc", "ftp://node:1"],
            &["--rpc", "\"ftp\""],
        ),
    ] {
        let mut all = args.clone();
        if !all.contains(&"--rpc") {
            all.extend(["--rpc", &dead]);
        }
        assert_failure(&cairn(&all), 2, mentions);
    }
    // A key file that is not there is named.
    let missing = node.dir.path().join("missing.key");
    let o = cairn(&[
        "tx",
        "transfer",
        "--key",
        missing.to_str().unwrap(),
        "--to",
        &to,
        "--amount",
        "1",
        "--rpc",
        &dead,
    ]);
    assert_failure(&o, 1, &["missing.key"]);
}

#[test]
fn a_transfer_the_mempool_refuses_prints_the_reason() {
    let node = Node::start();
    // The whole balance plus the fee is more than the balance.
    let o = cairn(&node.transfer_args(FUNDS, &[]));
    assert_failure(&o, 1, &["has balance 1000000", "JSON-RPC error -32017"]);
    assert!(node.mempool.lock().unwrap().is_empty());

    let o = cairn(&node.transfer_args(1, &["--nonce", "5"]));
    assert_failure(&o, 1, &["nonce 5 skips ahead", "JSON-RPC error -32015"]);
}

#[test]
fn query_tx_of_an_unknown_hash_says_not_found() {
    let node = Node::start();
    let unknown = Hash([3; 32]).to_string();
    let o = node.cairn(&["query", "tx", &unknown]);
    assert_failure(&o, 1, &[&unknown, "not found", "JSON-RPC error -32001"]);
    let o = node.cairn(&["query", "block", "9"]);
    assert_failure(&o, 1, &["not found", "-32001"]);
}

#[test]
fn an_answer_that_is_not_json_rpc_is_named() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    listener.set_nonblocking(true).unwrap();
    // Answers one connection with plain text, then stops; bounded by WAIT_MAX.
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let deadline = Instant::now() + WAIT_MAX;
        let mut stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "cairn never connected");
                    std::thread::sleep(POLL);
                }
                Err(e) => panic!("{e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(WAIT_MAX)).unwrap();
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request).unwrap();
        stream
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 18\r\n\
                  Connection: close\r\n\r\n<html>hello</html>",
            )
            .unwrap();
    });
    let o = cairn(&["status", "--rpc", &address]);
    server.join().unwrap();
    assert_failure(
        &o,
        1,
        &["not JSON-RPC (HTTP 200)", "<html>hello</html>", &address],
    );
}

/// A stand-in node that answers `connections` HTTP requests, one per connection, with
/// `answer(method)` as the JSON-RPC response body; bounded by `WAIT_MAX`.
fn canned_node(
    connections: usize,
    answer: fn(&str) -> Value,
) -> (String, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    listener.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || {
        let deadline = Instant::now() + WAIT_MAX;
        let mut methods = Vec::new();
        while methods.len() < connections {
            let mut stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        Instant::now() < deadline,
                        "cairn stopped calling: {methods:?}"
                    );
                    std::thread::sleep(POLL);
                    continue;
                }
                Err(e) => panic!("{e}"),
            };
            stream.set_nonblocking(false).unwrap();
            stream.set_read_timeout(Some(WAIT_MAX)).unwrap();
            // Read the head, then Content-Length bytes of body.
            let mut request = Vec::new();
            let mut chunk = [0u8; 4096];
            let body_start = loop {
                let n = stream.read(&mut chunk).unwrap();
                assert!(n > 0, "connection closed mid-request");
                request.extend_from_slice(&chunk[..n]);
                if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
            };
            let head = String::from_utf8_lossy(&request[..body_start]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .expect("a Content-Length")
                .trim()
                .parse()
                .unwrap();
            while request.len() < body_start + length {
                let n = stream.read(&mut chunk).unwrap();
                assert!(n > 0, "connection closed mid-body");
                request.extend_from_slice(&chunk[..n]);
            }
            let call: Value = serde_json::from_slice(&request[body_start..]).unwrap();
            let method = call["method"].as_str().unwrap().to_owned();
            let body = answer(&method).to_string();
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(response.as_bytes()).unwrap();
            methods.push(method);
        }
        methods
    });
    (address, server)
}

#[test]
fn a_wait_that_runs_out_says_the_transfer_may_still_commit_and_how_to_wait_again() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("user.key");
    keys::write_key_file(&key, &Keypair::from_secret(&[2; 32])).unwrap();
    let (address, node) = canned_node(3, |method| match method {
        "status" => serde_json::json!({ "jsonrpc": "2.0", "id": 1, "result": {
            "chain_id": "cairn-local", "height": 5 } }),
        "account" => serde_json::json!({ "jsonrpc": "2.0", "id": 1, "result": {
            "address": "00", "balance": 10, "nonce": 3, "pending_nonce": 4 } }),
        _ => serde_json::json!({ "jsonrpc": "2.0", "id": 1, "error": {
            "code": cairn_node::http::rpc::codes::COMMIT_TIMEOUT,
            "message": "transaction 00 was admitted but not committed within 30 s; it may \
                        still commit" } }),
    });
    let o = cairn(&[
        "tx",
        "transfer",
        "--key",
        key.to_str().unwrap(),
        "--to",
        &RECIPIENT.to_string(),
        "--amount",
        "1",
        "--wait",
        "--rpc",
        &address,
    ]);
    assert_eq!(node.join().unwrap(), ["status", "account", "submit_tx"]);
    assert_failure(
        &o,
        1,
        &[
            "was admitted but not committed within 30 s",
            "it may still commit",
            "cairn query tx",
            "--nonce 4",
        ],
    );
}
