//! The HTTP server on a real socket, with a real RocksDB store and a real mempool: every
//! request goes through TCP, HTTP/1.1 parsing, the body limit and JSON-RPC dispatch.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_ledger::block::{Block, BlockHeader, QuorumCert, Seal};
use cairn_ledger::crypto::Keypair;
use cairn_ledger::genesis::{EngineKind, Genesis};
use cairn_ledger::state::SigCheck;
use cairn_ledger::store::Store;
use cairn_ledger::tx::{Payload, Transaction};
use cairn_ledger::{Address, Amount, Hash, Height, Nonce, ProtocolVersion, Round, TimestampMs};
use cairn_node::config::{MempoolSection, RpcSection};
use cairn_node::host::status::{EngineStatus, NodeStatus, Readiness, StatusBoard};
use cairn_node::http::rpc::codes;
use cairn_node::http::{RpcState, serve};
use cairn_node::metrics::Metrics;
use cairn_node::txpool::mempool::Mempool;
use serde_json::{Value, json};

/// Small limits so the limit tests stay small. An oversized body must still fit in one of
/// the server's socket reads: a server that closes with unread bytes resets the connection,
/// and the client could then lose the 413 response before reading it.
const BODY_BYTES_MAX: u32 = 2048;
/// For tests that send transactions near their own size limit.
const BODY_BYTES_MAX_LARGE: u32 = 64 * 1024;
const BATCH_REQUESTS_MAX: u32 = 3;
const FUNDS: u64 = 1_000_000;
/// How long a test waits for any one HTTP exchange before failing instead of hanging.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

struct TestNode {
    addr: SocketAddr,
    store: Arc<Store>,
    board: Arc<StatusBoard>,
    validator: Keypair,
    user: Keypair,
    /// What the server hands the driver for gossip, when started with a channel.
    gossip: Option<tokio::sync::mpsc::Receiver<Transaction>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestNode {
    fn start() -> TestNode {
        TestNode::start_with(limits(BODY_BYTES_MAX), None)
    }

    /// A node whose admissions go to a gossip channel of `capacity`.
    fn start_gossiping(capacity: usize) -> TestNode {
        TestNode::start_with(limits(BODY_BYTES_MAX), Some(capacity))
    }

    /// A node that closes connections stalled or idle for `io_timeout`.
    fn start_impatient(io_timeout: Duration) -> TestNode {
        let limits = RpcSection {
            io_timeout_ms: io_timeout.as_millis() as u64,
            ..limits(BODY_BYTES_MAX)
        };
        TestNode::start_with(limits, None)
    }

    fn start_with(limits: RpcSection, gossip_capacity: Option<usize>) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let validator = Keypair::from_secret(&[1; 32]);
        let user = Keypair::from_secret(&[2; 32]);
        let genesis = Genesis::local(
            EngineKind::HotStuff,
            &[validator.public()],
            &[(user.public().address(), Amount(FUNDS))],
            TimestampMs(1_700_000_000_000),
        );
        let store = Arc::new(Store::open(dir.path(), &genesis).unwrap());
        let mempool = Mempool::new(store.chain_id(), MempoolSection::default());
        let board = Arc::new(StatusBoard::new(
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
            Readiness::NotReady("syncing: height 0 of 10".into()),
        ));
        let (admitted, gossip) = match gossip_capacity {
            Some(capacity) => {
                let (tx, rx) = tokio::sync::mpsc::channel(capacity);
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let state = RpcState {
            store: store.clone(),
            mempool: Arc::new(Mutex::new(mempool)),
            node: board.clone(),
            metrics: Arc::new(Metrics::new()),
            validators: genesis.validators.clone().into(),
            limits,
            admitted,
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                addr_tx.send(listener.local_addr()?).unwrap();
                serve(listener, state, async move {
                    let _ = rx.await;
                })
                .await
            })
        });
        let addr = addr_rx.recv_timeout(IO_TIMEOUT).unwrap();
        TestNode {
            addr,
            store,
            board,
            validator,
            user,
            gossip,
            shutdown: Some(tx),
            server: Some(server),
            _dir: dir,
        }
    }

    fn transfer(&self, nonce: u64, amount: u64) -> Transaction {
        Transaction::new_signed(
            self.store.chain_id(),
            &self.user,
            Nonce(nonce),
            Amount(1),
            Payload::Transfer {
                to: Address([9; 20]),
                amount: Amount(amount),
            },
        )
    }

    /// Commits a block holding `transactions` on the tip straight into the store, as the
    /// driver will; returns the block's hash.
    fn commit_block(&self, transactions: Vec<Transaction>) -> Hash {
        let block = Block {
            header: BlockHeader {
                height: Height(0),
                parent: Hash::ZERO,
                timestamp: TimestampMs(1_700_000_001_000 + self.store.tip().height.0 * 1000),
                tx_root: Hash::ZERO,
                state_root: Hash::ZERO,
                proposer: self.validator.public().address(),
                protocol_version: ProtocolVersion(0),
                seal: Seal::HotStuff {
                    round: Round(self.store.tip().height.0 + 1),
                    justify: QuorumCert {
                        round: Round(self.store.tip().height.0),
                        block: self.store.tip().hash,
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
        prepared.hash
    }

    /// The next transaction handed to the gossip channel, failing the test after
    /// `IO_TIMEOUT` rather than hanging when none comes.
    fn next_gossiped(&mut self) -> Transaction {
        let gossip = self.gossip.as_mut().expect("started with a gossip channel");
        let deadline = std::time::Instant::now() + IO_TIMEOUT;
        loop {
            match gossip.try_recv() {
                Ok(tx) => return tx,
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "nothing was gossiped within {IO_TIMEOUT:?}"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("gossip channel: {e}"),
            }
        }
    }

    /// `submit_tx` in mode `commit` from another thread: the caller commits meanwhile.
    fn submit_and_wait_in_background(&self, tx: &Transaction) -> std::thread::JoinHandle<Value> {
        let addr = self.addr;
        let request = json!({
            "jsonrpc": "2.0", "id": 1, "method": "submit_tx",
            "params": { "tx": hex_of(tx), "mode": "commit" },
        });
        std::thread::spawn(move || {
            let (status, text) = http_to(addr, "POST", "/", request.to_string().as_bytes());
            assert_eq!(status, 200, "{text}");
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
        })
    }

    /// One HTTP/1.1 exchange on a fresh connection: (status, body).
    fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        http_to(self.addr, method, path, body)
    }

    fn post(&self, body: &str) -> (u16, Value) {
        let (status, text) = self.http("POST", "/", body.as_bytes());
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
        };
        (status, value)
    }

    /// Calls `method`, returning the whole response object.
    fn call(&self, method: &str, params: Value) -> Value {
        let request = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
        let (status, response) = self.post(&request.to_string());
        assert_eq!(status, 200, "{response}");
        assert_eq!(response["jsonrpc"], "2.0");
        assert_eq!(response["id"], 1);
        response
    }

    fn result(&self, method: &str, params: Value) -> Value {
        let response = self.call(method, params);
        assert!(response.get("error").is_none(), "{response}");
        response["result"].clone()
    }

    /// The error's (code, message).
    fn error(&self, method: &str, params: Value) -> (i64, String) {
        let response = self.call(method, params);
        error_of(&response)
    }

    fn metrics(&self) -> String {
        let (status, text) = self.http("GET", "/metrics", b"");
        assert_eq!(status, 200);
        text
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let result = server.join();
            if !std::thread::panicking() {
                result.unwrap().unwrap();
            }
        }
    }
}

/// The tests' server limits, with the default I/O timeout.
fn limits(body_bytes_max: u32) -> RpcSection {
    RpcSection {
        listen: "127.0.0.1:0".into(),
        body_bytes_max,
        batch_requests_max: BATCH_REQUESTS_MAX,
        ..RpcSection::default()
    }
}

/// One HTTP/1.1 exchange with `addr` on a fresh connection: (status, body). Waits up to
/// `IO_TIMEOUT` for the answer; a commit wait must answer within that.
fn http_to(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "this client reads only Content-Length bodies: {head}"
    );
    (status, body.to_owned())
}

fn error_of(response: &Value) -> (i64, String) {
    let error = &response["error"];
    assert!(error.is_object(), "expected an error: {response}");
    (
        error["code"].as_i64().unwrap(),
        error["message"].as_str().unwrap().to_owned(),
    )
}

fn hex_of(tx: &Transaction) -> String {
    hex::encode(tx.encode())
}

#[test]
fn submit_admits_then_refuses_the_duplicate_and_metrics_count_both() {
    let node = TestNode::start();
    let tx = node.transfer(0, 100);
    let result = node.result("submit_tx", json!([hex_of(&tx)]));
    assert_eq!(result["hash"], tx.hash().to_string());

    let pool = node.result("mempool", json!(null));
    assert_eq!(pool["size"], 1);
    assert_eq!(pool["bytes"], tx.encode().len() as u64);

    let response = node.call(
        "submit_tx",
        json!({ "tx": format!("0x{}", hex_of(&tx)), "mode": "mempool" }),
    );
    let (code, message) = error_of(&response);
    assert_eq!(code, codes::TX_DUPLICATE);
    assert!(message.contains("already pending"), "{message}");
    assert_eq!(response["error"]["data"]["reason"], "duplicate");

    let metrics = node.metrics();
    for line in [
        "cairn_mempool_size 1\n",
        &format!("cairn_mempool_bytes {}\n", tx.encode().len()),
        "cairn_height 0\n",
        "cairn_txs_rejected_total{reason=\"duplicate\"} 1\n",
        "cairn_rpc_requests_total{method=\"submit_tx\"} 2\n",
        "cairn_rpc_requests_total{method=\"mempool\"} 1\n",
        "cairn_bft_round ",
        "cairn_commit_latency_seconds_bucket",
    ] {
        assert!(metrics.contains(line), "{line:?} missing from:\n{metrics}");
    }

    // Another rejection gets its own code: nonce 5 skips ahead of the pending nonce 0.
    let (code, message) = node.error("submit_tx", json!([hex_of(&node.transfer(5, 1))]));
    assert_eq!(code, codes::TX_NONCE_GAP, "{message}");
}

#[test]
fn bad_transactions_and_modes_are_param_errors_naming_the_param() {
    let node = TestNode::start_with(limits(BODY_BYTES_MAX_LARGE), None);
    for params in [
        json!(["zz"]),
        json!(["abc"]),
        json!(["00ff"]),
        json!([""]),
        json!([12]),
        json!({}),
        json!([hex::encode(vec![0u8; 5000])]),
    ] {
        let (code, message) = node.error("submit_tx", params.clone());
        assert_eq!(code, codes::INVALID_PARAMS, "{params}: {message}");
        assert!(message.contains("`tx`"), "{params}: {message}");
    }
    // A transaction signed by someone else fails on the signature, not the decode.
    let mut forged = node.transfer(0, 1);
    forged.fee = Amount(2);
    let (code, _) = node.error("submit_tx", json!([hex_of(&forged)]));
    assert_eq!(code, codes::TX_BAD_SIGNATURE);

    let good = hex_of(&node.transfer(0, 1));
    let (code, message) = node.error("submit_tx", json!({ "tx": good, "mode": "later" }));
    assert_eq!(code, codes::INVALID_PARAMS);
    assert!(message.contains("`mode`"), "{message}");
    let (code, message) = node.error("submit_tx", json!({ "tx": good, "fast": true }));
    assert_eq!(code, codes::INVALID_PARAMS);
    assert!(message.contains("`fast`"), "{message}");
    let (code, message) = node.error("submit_tx", json!([good, "mempool", 3]));
    assert_eq!(code, codes::INVALID_PARAMS, "{message}");

    // Bytes that are not a transaction count as rejections; a param of the wrong JSON type
    // or a missing one does not (no transaction was offered).
    let metrics = node.metrics();
    assert!(
        metrics.contains("cairn_txs_rejected_total{reason=\"malformed\"} 5\n"),
        "{metrics}"
    );
    assert!(metrics.contains("cairn_txs_rejected_total{reason=\"bad_signature\"} 1\n"));
    assert_eq!(node.result("mempool", json!([]))["size"], 0);
}

#[test]
fn envelope_errors_have_the_standard_codes() {
    let node = TestNode::start();
    let (status, response) = node.post("{\"jsonrpc\": \"2.0\", \"method\": ");
    assert_eq!(status, 200);
    assert_eq!(error_of(&response).0, codes::PARSE_ERROR);
    assert_eq!(response["id"], Value::Null);

    let (code, message) = node.error("no_such_method", json!([]));
    assert_eq!(code, codes::METHOD_NOT_FOUND);
    assert!(message.contains("no_such_method") && message.contains("submit_tx"));

    for bad in [
        r#"{"jsonrpc": "1.0", "id": 1, "method": "status"}"#,
        r#"{"id": 1, "method": "status"}"#,
        r#"{"jsonrpc": "2.0", "id": 1, "method": 5}"#,
        r#"{"jsonrpc": "2.0", "id": 1, "method": "status", "params": "x"}"#,
        r#"{"jsonrpc": "2.0", "id": [1], "method": "status"}"#,
        r#"17"#,
        r#""status""#,
    ] {
        let (status, response) = node.post(bad);
        assert_eq!(status, 200, "{bad}");
        assert_eq!(error_of(&response).0, codes::INVALID_REQUEST, "{bad}");
    }
    // A string id comes back as given.
    let (_, response) = node.post(r#"{"jsonrpc": "2.0", "id": "a", "method": "mempool"}"#);
    assert_eq!(response["id"], "a");
    assert_eq!(response["result"]["size"], 0);
}

#[test]
fn oversized_body_is_413_with_a_json_rpc_error() {
    let node = TestNode::start();
    let padding = "x".repeat(BODY_BYTES_MAX as usize + 100);
    let body = format!(r#"{{"jsonrpc": "2.0", "id": 1, "method": "status", "pad": "{padding}"}}"#);
    let (status, text) = node.http("POST", "/", body.as_bytes());
    assert_eq!(status, 413, "{text}");
    let response: Value = serde_json::from_str(&text).unwrap();
    let (code, message) = error_of(&response);
    assert_eq!(code, codes::INVALID_REQUEST);
    assert!(message.contains("rpc.body_bytes_max"), "{message}");
    // The server is still there.
    assert_eq!(node.http("GET", "/health", b"").0, 200);
}

#[test]
fn batches_answer_each_request_and_are_bounded() {
    let node = TestNode::start();
    let batch = json!([
        { "jsonrpc": "2.0", "id": 1, "method": "status" },
        { "jsonrpc": "2.0", "id": 2, "method": "nope" },
        { "jsonrpc": "2.0", "method": "mempool" },
    ]);
    let (status, response) = node.post(&batch.to_string());
    assert_eq!(status, 200);
    let responses = response.as_array().expect("a batch response");
    // The notification (no id) gets no response.
    assert_eq!(responses.len(), 2, "{response}");
    assert_eq!(responses[0]["id"], 1);
    assert_eq!(responses[0]["result"]["height"], 0);
    assert_eq!(responses[1]["id"], 2);
    assert_eq!(error_of(&responses[1]).0, codes::METHOD_NOT_FOUND);

    let request = json!({ "jsonrpc": "2.0", "id": 1, "method": "status" });
    let too_many = Value::Array(vec![request; BATCH_REQUESTS_MAX as usize + 1]);
    let (status, response) = node.post(&too_many.to_string());
    assert_eq!(status, 200);
    let (code, message) = error_of(&response);
    assert_eq!(code, codes::INVALID_REQUEST);
    assert!(message.contains("rpc.batch_requests_max"), "{message}");

    let (_, response) = node.post("[]");
    assert_eq!(error_of(&response).0, codes::INVALID_REQUEST);
    let (_, response) = node.post("[1, 2]");
    assert_eq!(error_of(&response[0]).0, codes::INVALID_REQUEST);

    let (status, text) = node.http("POST", "/", br#"[{"jsonrpc": "2.0", "method": "status"}]"#);
    assert_eq!((status, text.as_str()), (204, ""));
}

#[test]
fn account_block_status_and_validators() {
    let node = TestNode::start();
    let user = node.user.public().address();
    let account = node.result("account", json!([user.to_string()]));
    assert_eq!(
        account,
        json!({
            "address": user.to_string(),
            "balance": FUNDS,
            "nonce": 0,
            "pending_nonce": 0,
            "stake": 0
        })
    );
    let nobody = node.result(
        "account",
        json!({ "address": Address([5; 20]).to_string() }),
    );
    assert_eq!(
        (nobody["balance"].clone(), nobody["nonce"].clone()),
        (json!(0), json!(0))
    );
    let (code, message) = node.error("account", json!(["12"]));
    assert_eq!(code, codes::INVALID_PARAMS);
    assert!(
        message.contains("`address`") && message.contains("40 hex digits"),
        "{message}"
    );
    let (_, message) = node.error("account", json!([]));
    assert!(
        message.contains("`address`") && message.contains("missing"),
        "{message}"
    );

    let genesis_hash = node.store.hash_at(Height(0)).unwrap().unwrap();
    let block = node.result("block", json!({ "height": 0 }));
    assert_eq!(block["height"], 0);
    assert_eq!(block["hash"], genesis_hash.to_string());
    assert_eq!(block["parent"], node.store.genesis_hash().to_string());
    assert_eq!(block["transactions"], json!([]));
    for key in ["timestamp", "state_root"] {
        assert!(block.get(key).is_some(), "{key} missing: {block}");
    }
    assert_eq!(
        node.result("block", json!([genesis_hash.to_string()])),
        block
    );
    assert_eq!(node.result("block", json!([0])), block);
    assert_eq!(node.result("block", json!(null)), block);
    let (code, _) = node.error("block", json!([99]));
    assert_eq!(code, codes::NOT_FOUND);
    for (params, param) in [
        (json!({ "height": -1 }), "`height`"),
        (json!({ "height": 1.5 }), "`height`"),
        (json!({ "height": "1" }), "`height`"),
        (
            json!({ "height": 1, "hash": genesis_hash.to_string() }),
            "`hash`",
        ),
        (json!({ "hash": "00" }), "`hash`"),
    ] {
        let (code, message) = node.error("block", params.clone());
        assert_eq!(code, codes::INVALID_PARAMS, "{params}");
        assert!(message.contains(param), "{params}: {message}");
    }

    let status = node.result("status", json!(null));
    assert_eq!(status["height"], 0);
    assert_eq!(status["hash"], genesis_hash.to_string());
    assert_eq!(status["round"], 7);
    assert_eq!(
        status["leader"],
        node.validator.public().address().to_string()
    );
    assert_eq!(status["peers"], 3);
    assert_eq!(status["syncing"], false);
    assert_eq!(status["protocol_version"], 1);
    assert_eq!(status["validator"], true);
    assert_eq!(status["chain_id"], "cairn-local");

    let validators = node.result("validators", json!([]));
    assert_eq!(validators.as_array().unwrap().len(), 1);
    assert_eq!(
        validators[0]["public_key"],
        node.validator.public().to_string()
    );
    assert_eq!(validators[0]["voting_power"], 1);
    let (code, _) = node.error("validators", json!([1]));
    assert_eq!(code, codes::INVALID_PARAMS);
}

#[test]
fn tx_reports_pending_then_committed_with_location_and_receipt() {
    let node = TestNode::start();
    let tx = node.transfer(0, 250);
    node.result("submit_tx", json!([hex_of(&tx)]));
    let pending = node.result("tx", json!([tx.hash().to_string()]));
    assert_eq!(pending["status"], "pending");

    // Commit a block holding it straight into the store, as the driver will.
    let block_hash = node.commit_block(vec![tx.clone()]);

    let found = node.result("tx", json!({ "hash": tx.hash().to_string() }));
    assert_eq!(found["status"], "committed");
    assert_eq!(found["height"], 1);
    assert_eq!(found["index"], 0);
    assert_eq!(found["block"], block_hash.to_string());
    assert_eq!(found["nonce"], 0);
    assert_eq!(found["fee"], 1);
    assert_eq!(found["from"], node.user.public().address().to_string());
    assert_eq!(found["payload"]["transfer"]["amount"], 250);
    assert_eq!(found["receipt"], json!({ "fee": 1, "status": "applied" }));

    let block = node.result("block", json!([1]));
    assert_eq!(block["transactions"], json!([tx.hash().to_string()]));
    assert_eq!(node.result("status", json!([]))["height"], 1);
    let account = node.result("account", json!([node.user.public().address().to_string()]));
    assert_eq!(
        (account["balance"].clone(), account["nonce"].clone()),
        (json!(FUNDS - 251), json!(1))
    );
    assert!(node.metrics().contains("cairn_height 1\n"));

    let (code, _) = node.error("tx", json!([Hash([3; 32]).to_string()]));
    assert_eq!(code, codes::NOT_FOUND);
}

#[test]
fn health_ready_and_metrics_endpoints() {
    let node = TestNode::start();
    assert_eq!(node.http("GET", "/health", b""), (200, "ok".to_owned()));
    let (status, reason) = node.http("GET", "/ready", b"");
    assert_eq!(status, 503);
    assert!(reason.contains("syncing: height 0 of 10"), "{reason}");
    node.board.set_readiness(Readiness::Ready);
    assert_eq!(node.http("GET", "/ready", b"").0, 200);
    assert!(node.metrics().ends_with("# EOF\n"));
    // Methods other than POST on the JSON-RPC path are refused by HTTP, not by a panic.
    assert_eq!(node.http("GET", "/", b"").0, 405);
}

#[test]
fn hostile_inputs_get_errors_and_the_server_keeps_serving() {
    let node = TestNode::start();
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    let bodies: Vec<String> = vec![
        deep,
        "".into(),
        "null".into(),
        "\u{0}\u{1}".into(),
        "{\"jsonrpc\": \"2.0\", \"id\": 1e400, \"method\": \"status\"}".into(),
        r#"{"jsonrpc": "2.0", "id": 1, "method": "block", "params": {"height": 18446744073709551616}}"#.into(),
        r#"{"jsonrpc": "2.0", "id": 1, "method": "block", "params": [null, null, null, null]}"#.into(),
        r#"{"jsonrpc": "2.0", "id": 1, "method": "tx", "params": [{"a": 1}]}"#.into(),
        r#"{"jsonrpc": "2.0", "id": 1, "method": "account", "params": ["0xé€"]}"#.into(),
        format!(r#"{{"jsonrpc": "2.0", "id": 1, "method": "{}"}}"#, "m".repeat(1500)),
        r#"[[], {}, null, "x"]"#.into(),
    ];
    for body in &bodies {
        let (status, text) = node.http("POST", "/", body.as_bytes());
        assert!(
            status == 200 || status == 400,
            "{status} for {body:.80}: {text}"
        );
        let response: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let first = response.as_array().map_or(&response, |r| &r[0]);
        assert!(first["error"]["code"].is_i64(), "{body:.80}: {text}");
        assert!(text.len() < 1024, "error echoes too much: {text}");
    }
    assert_eq!(node.http("GET", "/health", b"").0, 200);
}

#[test]
fn account_pending_nonce_counts_the_senders_pending_transactions() {
    let node = TestNode::start();
    let user = node.user.public().address().to_string();
    node.result("submit_tx", json!([hex_of(&node.transfer(0, 10))]));
    node.result("submit_tx", json!([hex_of(&node.transfer(1, 10))]));
    let account = node.result("account", json!([user]));
    assert_eq!(
        (account["nonce"].clone(), account["pending_nonce"].clone()),
        (json!(0), json!(2))
    );
    // The next admission takes exactly that nonce.
    node.result("submit_tx", json!([hex_of(&node.transfer(2, 10))]));
}

#[test]
fn commit_mode_waits_for_the_block_and_answers_what_tx_answers() {
    let mut node = TestNode::start_gossiping(8);
    let tx = node.transfer(0, 300);
    let waiter = node.submit_and_wait_in_background(&tx);
    // Admitted and handed to the driver while the call is still waiting.
    assert_eq!(node.next_gossiped(), tx);
    assert!(!waiter.is_finished(), "answered before any block");
    assert_eq!(
        node.result("tx", json!([tx.hash().to_string()]))["status"],
        "pending"
    );

    let block = node.commit_block(vec![tx.clone()]);
    let response = waiter.join().unwrap();
    assert!(response.get("error").is_none(), "{response}");
    let result = &response["result"];
    assert_eq!(result["status"], "committed");
    assert_eq!(result["height"], 1);
    assert_eq!(result["block"], block.to_string());
    assert_eq!(result["hash"], tx.hash().to_string());
    assert_eq!(*result, node.result("tx", json!([tx.hash().to_string()])));
}

#[test]
fn block_with_wait_ms_answers_once_the_height_commits_and_not_found_when_the_wait_runs_out() {
    let node = TestNode::start();
    let (code, message) = node.error("block", json!({ "height": 5, "wait_ms": 30 }));
    assert_eq!(code, codes::NOT_FOUND, "{message}");
    assert!(message.contains("block at height 5"), "{message}");
    let (code, message) = node.error("block", json!({ "wait_ms": 30 }));
    assert_eq!(code, codes::INVALID_PARAMS, "{message}");
    assert!(
        message.contains("wait_ms") && message.contains("height"),
        "{message}"
    );
    // A committed block is answered whether or not the call waits.
    assert_eq!(
        node.result("block", json!({ "height": 0, "wait_ms": 60_000 }))["height"],
        0
    );

    let addr = node.addr;
    let request = json!({
        "jsonrpc": "2.0", "id": 1, "method": "block",
        "params": { "height": 1, "wait_ms": 60_000 },
    });
    let waiter = std::thread::spawn(move || {
        let (status, text) = http_to(addr, "POST", "/", request.to_string().as_bytes());
        assert_eq!(status, 200, "{text}");
        serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    });
    std::thread::sleep(Duration::from_millis(50));
    assert!(!waiter.is_finished(), "answered before the block");
    let hash = node.commit_block(vec![node.transfer(0, 300)]);
    let response = waiter.join().unwrap();
    assert!(response.get("error").is_none(), "{response}");
    assert_eq!(response["result"]["height"], 1);
    assert_eq!(response["result"]["hash"], hash.to_string());
}

#[test]
fn commit_mode_for_a_pending_or_committed_transaction_reports_its_commit() {
    let mut node = TestNode::start_gossiping(8);
    let tx = node.transfer(0, 40);
    node.result("submit_tx", json!([hex_of(&tx)]));
    assert_eq!(node.next_gossiped(), tx);

    // Already pending: the call waits for it instead of refusing a duplicate.
    let waiter = node.submit_and_wait_in_background(&tx);
    let block = node.commit_block(vec![tx.clone()]);
    let first = waiter.join().unwrap();
    assert_eq!(first["result"]["block"], block.to_string(), "{first}");

    // Already committed: answered at once, the same way, and nothing is gossiped again.
    let again = node.result("submit_tx", json!({ "tx": hex_of(&tx), "mode": "commit" }));
    assert_eq!(again, first["result"]);
    assert!(node.gossip.as_mut().unwrap().try_recv().is_err());
    // Neither commit-mode call counted as a rejection.
    assert!(
        !node
            .metrics()
            .contains("cairn_txs_rejected_total{reason=\"duplicate\"}"),
        "{}",
        node.metrics()
    );
}

#[test]
fn commit_mode_reports_a_transaction_whose_nonce_another_one_used() {
    let mut node = TestNode::start_gossiping(8);
    let tx = node.transfer(0, 1);
    let waiter = node.submit_and_wait_in_background(&tx);
    assert_eq!(node.next_gossiped(), tx);
    // Another transaction with the same nonce commits (say, from another node's mempool).
    let other = node.transfer(0, 2);
    node.commit_block(vec![other]);
    // The nonce alone may come from a block half written (its accounts visible before its
    // index), so the verdict waits for the tip to move past the one it was seen at.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!waiter.is_finished(), "superseded before the tip moved on");
    while !waiter.is_finished() {
        node.commit_block(Vec::new());
        std::thread::sleep(Duration::from_millis(50));
    }
    let response = waiter.join().unwrap();
    let (code, message) = error_of(&response);
    assert_eq!(code, codes::TX_SUPERSEDED, "{message}");
    assert!(
        message.contains("never commit") && message.contains("nonce 0"),
        "{message}"
    );
    assert_eq!(response["error"]["data"]["hash"], tx.hash().to_string());
}

#[test]
fn a_commit_mode_call_refused_by_the_mempool_answers_the_rejection() {
    let node = TestNode::start();
    let (code, message) = node.error(
        "submit_tx",
        json!({ "tx": hex_of(&node.transfer(0, FUNDS)), "mode": "commit" }),
    );
    assert_eq!(code, codes::TX_UNAFFORDABLE, "{message}");
    assert!(
        node.metrics()
            .contains("cairn_txs_rejected_total{reason=\"unaffordable\"} 1\n")
    );
}

#[test]
fn admissions_go_to_the_gossip_channel_and_a_full_channel_fails_no_call() {
    let mut node = TestNode::start_gossiping(1);
    let first = node.transfer(0, 1);
    let second = node.transfer(1, 1);
    node.result("submit_tx", json!([hex_of(&first)]));
    // The channel holds one: the second is admitted all the same, just not gossiped.
    node.result("submit_tx", json!([hex_of(&second)]));
    assert_eq!(node.result("mempool", json!([]))["size"], 2);
    // A rejected transaction is never offered.
    node.error("submit_tx", json!([hex_of(&node.transfer(7, 1))]));
    let gossip = node.gossip.as_mut().unwrap();
    assert_eq!(gossip.try_recv().unwrap(), first);
    assert!(gossip.try_recv().is_err());
}

#[test]
fn stopping_the_server_answers_commit_waits_at_once() {
    let mut node = TestNode::start_gossiping(8);
    let tx = node.transfer(0, 1);
    let waiter = node.submit_and_wait_in_background(&tx);
    assert_eq!(node.next_gossiped(), tx);
    let stopping = std::time::Instant::now();
    drop(node);
    // The graceful shutdown finished: it did not wait out the 30 s commit bound.
    assert!(stopping.elapsed() < cairn_node::http::rpc::COMMIT_WAIT_MAX / 2);
    let response = waiter.join().unwrap();
    let (code, message) = error_of(&response);
    assert_eq!(code, codes::COMMIT_TIMEOUT);
    assert!(message.contains("node is stopping"), "{message}");
    assert_eq!(response["error"]["data"]["hash"], tx.hash().to_string());
}

#[test]
fn connections_beyond_the_cap_wait_until_one_closes() {
    use cairn_node::http::CONNECTIONS_MAX;
    let node = TestNode::start();
    // Idle connections hold every slot.
    let mut idle: Vec<TcpStream> = (0..CONNECTIONS_MAX)
        .map(|_| TcpStream::connect(node.addr).unwrap())
        .collect();
    let mut late = TcpStream::connect(node.addr).unwrap();
    let head = format!(
        "GET /health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        node.addr
    );
    late.write_all(head.as_bytes()).unwrap();
    late.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 1];
    let waited = late.read(&mut buf);
    assert!(
        matches!(&waited, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
            || e.kind() == std::io::ErrorKind::TimedOut),
        "a connection over the cap was served: {waited:?}"
    );
    // One idle client leaves: the waiting one is accepted and answered.
    drop(idle.pop());
    late.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut response = Vec::new();
    late.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("ok"), "{text}");
}

/// How long the impatient test servers wait on a stalled client.
const IMPATIENT: Duration = Duration::from_millis(400);

#[test]
fn idle_and_stalled_clients_are_closed_and_their_slots_go_to_waiting_ones() {
    use cairn_node::http::CONNECTIONS_MAX;
    let node = TestNode::start_impatient(IMPATIENT);
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"status"}"#;
    let stalls = [
        // Connects and sends nothing.
        String::new(),
        // Stops inside the headers.
        "POST / HTTP/1.1\r\nHost: cairn\r\nContent-".to_owned(),
        // Sends the headers, then only part of the body.
        format!(
            "POST / HTTP/1.1\r\nHost: cairn\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{}",
            body.len(),
            &body[..10]
        ),
    ];
    let mut stalled: Vec<(usize, TcpStream)> = (0..CONNECTIONS_MAX)
        .map(|i| {
            let mut stream = TcpStream::connect(node.addr).unwrap();
            stream
                .write_all(stalls[i % stalls.len()].as_bytes())
                .unwrap();
            stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            (i % stalls.len(), stream)
        })
        .collect();
    // Every slot is taken and no stalled client gives up: the late one is answered anyway,
    // once the server has closed the stalled connections.
    let mut late = TcpStream::connect(node.addr).unwrap();
    late.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let head = format!(
        "GET /health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        node.addr
    );
    late.write_all(head.as_bytes()).unwrap();
    let mut response = Vec::new();
    late.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // Clients stalled before a whole head are closed without an answer; the one stalled in
    // its body is told what happened.
    for (stall, stream) in &mut stalled {
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .unwrap_or_else(|e| panic!("stall {stall}: the server did not close: {e}"));
        let text = String::from_utf8_lossy(&answer);
        if *stall < 2 {
            assert!(text.is_empty(), "stall {stall} was answered: {text}");
        } else {
            assert!(text.starts_with("HTTP/1.1 408"), "{text}");
            let json = text.split_once("\r\n\r\n").unwrap().1;
            let response: Value = serde_json::from_str(json).unwrap();
            let (code, message) = error_of(&response);
            assert_eq!(code, codes::INVALID_REQUEST);
            assert!(message.contains("rpc.io_timeout_ms"), "{message}");
        }
    }
}

#[test]
fn a_client_that_stops_reading_its_answers_is_closed() {
    let node = TestNode::start_impatient(IMPATIENT);
    // A big block, so that the answers to the pipelined requests below are far more than
    // the kernel buffers between server and client can hold.
    let txs: Vec<Transaction> = (0..1500).map(|n| node.transfer(n, 1)).collect();
    node.commit_block(txs);
    let request = r#"{"jsonrpc":"2.0","id":1,"method":"block","params":{"height":1}}"#;
    let (status, one) = node.http("POST", "/", request.as_bytes());
    assert_eq!(status, 200);
    let copies = (64 * 1024 * 1024 / one.len()).max(2);
    let mut stream = TcpStream::connect(node.addr).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: cairn\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{request}",
        request.len()
    );
    stream.write_all(head.repeat(copies).as_bytes()).unwrap();
    // Not reading for several timeouts: the server's writes stall and it gives up.
    std::thread::sleep(IMPATIENT * 5);
    let mut received = Vec::new();
    let ended = stream.read_to_end(&mut received);
    if let Err(e) = &ended {
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "the connection neither ended nor was reset: {e}"
        );
    }
    let answered = String::from_utf8_lossy(&received)
        .matches("HTTP/1.1 200")
        .count();
    assert!(
        answered < copies,
        "all {copies} answers were sent to a client that did not read"
    );
    // The server still serves others.
    let (status, _) = node.http("GET", "/health", b"");
    assert_eq!(status, 200);
}
