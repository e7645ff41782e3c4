//! The fuzz checks: one function per decoder or parser of outside input, each taking the raw
//! bytes a peer, a client or a file could hand the node.
//!
//! Owns: what "correct" means for each decoder under arbitrary input, and the seed inputs
//! made from real encodings ([`seeds`]). The libFuzzer targets in `fuzz/` are one line
//! around each check, and `tests/fuzz_corpora.rs` replays the committed corpora through the
//! same functions on stable, so a crash found once stays a failing test until it is fixed.
//!
//! Each check: decodes; must not panic on any input; on success re-encodes and asserts the
//! bytes decode to an equal value and, where the format is canonical, encode to the same
//! bytes; and asserts every size bound the decoder promises. A check never prints: libFuzzer
//! runs it millions of times.
//!
//! Never: stubs the decoder it claims to check (each calls the function the node calls),
//! or keeps state that changes a verdict between two runs of the same input, except the
//! RPC check's mempool, which a valid signed transaction enters once.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cairn_consensus::hotstuff::{
    Message, ProposalMsg, QC_BYTES_MAX, SYNC_BLOCKS_MAX, SyncRequest, SyncResponse, TimeoutCert,
    TimeoutMsg, TimeoutSignature, VoteMsg, proposal_signing_bytes, timeout_signing_bytes,
    vote_signing_bytes,
};
use cairn_consensus::pbft;
use cairn_consensus::pow::fork_choice::LOCATOR_HASHES_MAX;
use cairn_ledger::block::{
    BLOCK_TXS_MAX, Block, BlockHeader, EncodedBody, HEADER_BYTES_MAX, QC_VOTES_MAX, QuorumCert,
    Seal, decode_body, tx_root,
};
use cairn_ledger::codec;
use cairn_ledger::crypto::Keypair;
use cairn_ledger::genesis::{EngineKind, Genesis};
use cairn_ledger::keys::{KEY_FILE_BYTES_MAX, read_key_file, write_key_file};
use cairn_ledger::store::Store;
use cairn_ledger::tx::{CHAIN_ID_LEN_MAX, Payload, TX_BYTES_MAX, Transaction, tx_id};
use cairn_ledger::upgrades::Schedule;
use cairn_ledger::{Amount, Hash, Height, Nonce, Round};
use cairn_node::config::{NodeConfig, RpcSection};
use cairn_node::hotstuff::sync_serve::store_answers;
use cairn_node::http::RpcState;
use cairn_node::http::rpc::codes;
use cairn_node::http::rpc::envelope::handle_body;
use cairn_node::http::state::CommitWaiters;
use cairn_node::p2p::{BytesCodec, ForkId, HANDSHAKE_BYTES_MAX, Handshake, UpgradeMark};
use cairn_node::pow::wire::{
    self, BLOCKS_PER_REQUEST_MAX, HEADERS_PER_REPLY_MAX, POW_HEADER_BYTES_MAX,
};
use cairn_node::txpool::gossip::{TX_BATCH_BYTES_MAX, TX_BATCH_MAX, decode_batch, encode_batches};
use serde_json::{Value, json};

use crate::{ChainGen, GENESIS_TIME};

/// The node's default `p2p.message_bytes_max`: the bound every network message meets
/// before any decoder sees it.
const MESSAGE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// The frame bound the framing check reads with. The code path is the node's whatever the
/// bound; a small one keeps each run cheap when a length prefix claims the whole bound.
const FRAME_BYTES_MAX: usize = 64 * 1024;

/// A check: returns whether a decoder accepted the input (every seed must be accepted).
pub type Check = fn(&[u8]) -> bool;

/// The checks by target name, in the order `make fuzz` runs them.
pub const TARGETS: &[(&str, Check)] = &[
    ("transaction", transaction),
    ("block", block),
    ("consensus_message", consensus_message),
    ("sync_request", sync_request),
    ("sync_response", sync_response),
    ("gossip_batch", gossip_batch),
    ("handshake", handshake),
    ("framing", framing),
    ("rpc_body", rpc_body),
    ("genesis_toml", genesis_toml),
    ("config_toml", config_toml),
    ("key_file", key_file),
];

/// A transaction as the RPC and every block carry it: canonical, within
/// [`TX_BYTES_MAX`] and [`CHAIN_ID_LEN_MAX`]; its signature check never panics.
pub fn transaction(data: &[u8]) -> bool {
    let Ok(tx) = Transaction::decode(data) else {
        return false;
    };
    assert_tx_bounds(&tx, data);
    assert_eq!(
        tx.hash(),
        tx_id(data),
        "a transaction's id is its bytes' id"
    );
    let _ = tx.verify_signature();
    true
}

/// The bounds every transaction accepted from outside meets, whatever carried it.
fn assert_tx_bounds(tx: &Transaction, own: &[u8]) {
    let encoded = tx.encode();
    assert_eq!(encoded, own, "a transaction re-encodes to its own bytes");
    assert!(encoded.len() <= TX_BYTES_MAX, "{} bytes", encoded.len());
    assert!(tx.chain_id.len() <= CHAIN_ID_LEN_MAX);
    assert_eq!(Transaction::decode(&encoded).as_ref(), Ok(tx));
}

/// A block (gossiped by PoW nodes, inside proposals and sync answers), a header, a body:
/// each decoder the bytes could meet.
pub fn block(data: &[u8]) -> bool {
    let mut accepted = false;
    if let Ok(block) = Block::decode(data) {
        assert_eq!(codec::encode(&block), data);
        assert_block_bounds(&block);
        accepted = true;
    }
    if let Ok(block) = wire::decode_block(data) {
        assert_eq!(Block::decode(data).as_ref(), Ok(&block));
        assert!(codec::encode(&block.header).len() <= POW_HEADER_BYTES_MAX);
    }
    if let Ok(header) = BlockHeader::decode(data) {
        assert_eq!(codec::encode(&header), data);
        assert!(data.len() <= HEADER_BYTES_MAX);
        assert_header_bounds(&header);
        let _ = header.hash();
        accepted = true;
    }
    if let Ok(txs) = decode_body(data) {
        assert_eq!(codec::encode(&txs), data);
        assert_body_bounds(&txs);
        accepted = true;
    }
    accepted
}

fn assert_header_bounds(header: &BlockHeader) {
    if let Seal::HotStuff { justify, .. } = &header.seal {
        assert!(justify.votes.len() <= QC_VOTES_MAX);
    }
}

fn assert_body_bounds(txs: &[Transaction]) {
    assert!(txs.len() <= BLOCK_TXS_MAX);
    for tx in txs {
        assert_tx_bounds(tx, &tx.encode());
    }
    let body = EncodedBody::new(txs).expect("a decoded body is within the body bounds");
    assert_eq!(body.bytes, codec::encode(&txs));
    assert_eq!(body.tx_root(), tx_root(txs));
}

fn assert_block_bounds(block: &Block) {
    assert_header_bounds(&block.header);
    assert_body_bounds(&block.transactions);
    assert_eq!(Block::decode(&codec::encode(block)).as_ref(), Ok(block));
    let _ = block.hash();
}

/// Every consensus message of either BFT engine through its decoder with per-kind bounds,
/// then the structural bounds the driver checks next: HotStuff's (proposal, vote, timeout,
/// sync request and answer) and PBFT's (proposal, prepare, commit, round change, sync
/// request and answer). One input may be tried by both: the node runs one engine, but a
/// peer chooses the bytes.
pub fn consensus_message(data: &[u8]) -> bool {
    let hotstuff = hotstuff_message(data);
    let pbft = decode_pbft_message(data).is_some();
    hotstuff || pbft
}

fn hotstuff_message(data: &[u8]) -> bool {
    let Some(msg) = decode_message(data) else {
        return false;
    };
    let chain = Hash::ZERO;
    match &msg {
        Message::Proposal(p) => {
            assert_block_bounds(&p.block);
            if let Some((round, _)) = p.round_and_justify() {
                let _ = proposal_signing_bytes(&chain, round, &p.block.hash());
            }
            if let Some(tc) = &p.tc {
                assert_tc_bounds(tc);
            }
        }
        Message::Vote(v) => {
            let _ = vote_signing_bytes(&chain, v.round, &v.block);
        }
        Message::Timeout(t) => {
            assert_qc_bounds(&t.high_qc);
            if let Some(tc) = &t.tc {
                assert_tc_bounds(tc);
            }
            let _ = timeout_signing_bytes(&chain, t.round, t.high_qc.round);
        }
        Message::SyncRequest(_) | Message::SyncResponse(_) => {}
    }
    true
}

/// Decodes as the driver does and asserts what every accepted message meets: the bound of
/// its kind, canonical bytes, and a verdict of `check_bounds` for every committee size.
fn decode_message(data: &[u8]) -> Option<Message> {
    let msg = Message::decode(data).ok()?;
    let tag = u32::from_le_bytes(data[..4].try_into().expect("a decoded message has a tag"));
    assert!(
        data.len() <= Message::bytes_max(tag),
        "{} bytes",
        data.len()
    );
    assert_eq!(msg.encode(), data);
    assert_eq!(Message::decode(&msg.encode()).as_ref(), Ok(&msg));
    for validators in [1, 4, 100, QC_VOTES_MAX, usize::MAX] {
        let _ = msg.check_bounds(validators);
    }
    let _ = msg.kind();
    Some(msg)
}

/// Decodes a PBFT message as the driver does and asserts what every accepted one meets: its
/// kind's bound, canonical bytes, and, when it passes `check_bounds` for the largest
/// committee, the size of every certificate and block inside it.
fn decode_pbft_message(data: &[u8]) -> Option<pbft::Message> {
    let msg = pbft::Message::decode(data).ok()?;
    let tag = u32::from_le_bytes(data[..4].try_into().expect("a decoded message has a tag"));
    assert!(
        data.len() <= pbft::Message::bytes_max(tag),
        "{} bytes",
        data.len()
    );
    assert_eq!(msg.encode(), data);
    assert_eq!(pbft::Message::decode(&msg.encode()).as_ref(), Ok(&msg));
    for validators in [1, 4, 100, QC_VOTES_MAX, usize::MAX] {
        let _ = msg.check_bounds(validators);
    }
    let within_bounds = msg.check_bounds(QC_VOTES_MAX).is_ok();
    let _ = msg.kind();
    let chain = Hash::ZERO;
    match &msg {
        pbft::Message::Proposal(p) => {
            assert_block_bounds(&p.block);
            let _ = pbft::proposal_signing_bytes(&chain, p.height, p.round, &p.block.hash());
            if let Some(j) = &p.justification
                && within_bounds
            {
                assert!(codec::encode(j).len() <= pbft::ROUND_CHANGE_CERT_BYTES_MAX);
            }
        }
        pbft::Message::Prepare(v) => {
            let _ = pbft::prepare_signing_bytes(&chain, v.height, v.round, &v.block);
        }
        pbft::Message::Commit(v) => {
            let _ = pbft::commit_signing_bytes(&chain, v.height, v.round, &v.block);
        }
        pbft::Message::RoundChange(rc) => {
            if let Some(qc) = &rc.prepared {
                assert_qc_bounds(qc);
            }
            if let Some(b) = &rc.block {
                assert_block_bounds(b);
            }
            let _ = pbft::round_change_signing_bytes(&chain, rc.height, rc.round, &rc.claim());
        }
        pbft::Message::SyncRequest(_) => {}
        pbft::Message::SyncResponse(r) => {
            for b in &r.blocks {
                assert_block_bounds(b);
            }
            if within_bounds {
                assert!(r.blocks.len() <= SYNC_BLOCKS_MAX);
            }
        }
    }
    Some(msg)
}

fn assert_qc_bounds(qc: &QuorumCert) {
    assert!(codec::encode(qc).len() <= QC_BYTES_MAX || qc.votes.len() > QC_VOTES_MAX);
}

fn assert_tc_bounds(tc: &TimeoutCert) {
    assert_qc_bounds(&tc.high_qc);
}

/// A sync request: HotStuff's (through the consensus decoder, then the store's "do I
/// answer" rule) and proof-of-work's `GetHeaders`/`GetBlocks`.
pub fn sync_request(data: &[u8]) -> bool {
    let mut accepted = false;
    let hotstuff = match decode_message(data) {
        Some(Message::SyncRequest(request)) => Some(request),
        _ => None,
    };
    let pbft = match decode_pbft_message(data) {
        Some(pbft::Message::SyncRequest(request)) => Some(request),
        _ => None,
    };
    for request in hotstuff.iter().chain(&pbft) {
        accepted = true;
        for tip in [0, 1, request.from_height.0, u64::MAX] {
            for up_to_tip in [false, true] {
                let _ = store_answers(Height(tip), request, up_to_tip);
            }
        }
    }
    if let Ok(request) = wire::Request::decode(data) {
        assert_eq!(request.encode(), data);
        match &request {
            wire::Request::GetHeaders { locator, .. } => {
                assert!(locator.len() <= LOCATOR_HASHES_MAX)
            }
            wire::Request::GetBlocks { hashes } => assert!(hashes.len() <= BLOCKS_PER_REQUEST_MAX),
        }
        assert_eq!(wire::Request::decode(&request.encode()), Ok(request));
        accepted = true;
    }
    accepted
}

/// A sync answer: HotStuff's (blocks and the tip's certificate) and proof-of-work's
/// `Headers`/`Blocks`, at the node's default message bound.
pub fn sync_response(data: &[u8]) -> bool {
    let mut accepted = false;
    if let Some(Message::SyncResponse(response)) = decode_message(data) {
        accepted = true;
        for b in &response.blocks {
            assert_block_bounds(b);
        }
        if Message::SyncResponse(response.clone())
            .check_bounds(QC_VOTES_MAX)
            .is_ok()
        {
            assert!(response.blocks.len() <= SYNC_BLOCKS_MAX);
        }
    }
    // PBFT's answer: the same blocks-and-certificate shape under PBFT's tags, checked by
    // the PBFT decoder's own bounds.
    if let Some(pbft::Message::SyncResponse(_)) = decode_pbft_message(data) {
        accepted = true;
    }
    if let Ok(response) = wire::Response::decode(data, MESSAGE_BYTES_MAX) {
        assert_eq!(response.encode(), data);
        match &response {
            wire::Response::Headers(headers) => {
                assert!(headers.len() <= HEADERS_PER_REPLY_MAX);
                for h in headers {
                    assert!(codec::encode(h).len() <= POW_HEADER_BYTES_MAX);
                    assert_header_bounds(h);
                }
            }
            wire::Response::Blocks(blocks) => {
                assert!(blocks.len() <= BLOCKS_PER_REQUEST_MAX);
                for b in blocks {
                    assert!(codec::encode(&b.header).len() <= POW_HEADER_BYTES_MAX);
                    assert_block_bounds(b);
                }
            }
        }
        assert_eq!(
            wire::Response::decode(&response.encode(), MESSAGE_BYTES_MAX),
            Ok(response)
        );
        accepted = true;
    }
    accepted
}

/// A transaction gossip message: 1 to [`TX_BATCH_MAX`] transactions, each within the
/// bounds of a transaction from anywhere, each id that of its own bytes; encoding the
/// batch again gives the same one message.
pub fn gossip_batch(data: &[u8]) -> bool {
    let Ok(batch) = decode_batch(data) else {
        return false;
    };
    assert!(!batch.is_empty() && batch.len() <= TX_BATCH_MAX);
    assert!(data.len() <= TX_BATCH_BYTES_MAX);
    let txs: Vec<Transaction> = batch.iter().map(|i| i.tx().clone()).collect();
    for (identified, tx) in batch.iter().zip(&txs) {
        assert_tx_bounds(tx, &tx.encode());
        assert_eq!(identified.id(), tx.hash());
    }
    assert_eq!(
        encode_batches(&txs, TX_BATCH_BYTES_MAX),
        vec![data.to_vec()]
    );
    true
}

/// A peer's handshake: bounded, canonical, and the compatibility rule symmetric (both
/// sides reach the same verdict) and reflexive.
pub fn handshake(data: &[u8]) -> bool {
    let Ok(theirs) = Handshake::decode(data) else {
        return false;
    };
    assert!(data.len() <= HANDSHAKE_BYTES_MAX);
    assert_eq!(theirs.encode(), data);
    assert_eq!(Handshake::decode(&theirs.encode()), Ok(theirs.clone()));
    assert_eq!(theirs.check(&theirs), Ok(()));
    for ours in local_handshakes() {
        assert_eq!(
            ours.check(&theirs).is_ok(),
            theirs.check(ours).is_ok(),
            "the handshake rule is symmetric"
        );
    }
    true
}

/// The request-response framing: frames read from an arbitrary byte stream, one after the
/// other, are each within the bound, and writing one back gives exactly the bytes read.
pub fn framing(data: &[u8]) -> bool {
    let budget = BytesCodec::read_budget(FRAME_BYTES_MAX, FRAME_BYTES_MAX);
    let codec = BytesCodec::with_read_budget(FRAME_BYTES_MAX, budget);
    let mut at = 0;
    let mut frames = 0;
    while let Ok((frame, read)) = codec.read_frame(&data[at..]) {
        assert!(frame.len() <= FRAME_BYTES_MAX);
        assert_eq!(read, 4 + frame.len());
        let written = codec.write_frame(frame).expect("a frame read writes back");
        assert_eq!(written, &data[at..at + read]);
        at += read;
        frames += 1;
    }
    frames > 0
}

/// A JSON-RPC body through the node's own handler over a real store (no server, no driver;
/// commit waits end at once): any body gets a JSON-RPC answer or, for notifications only,
/// none. Accepted: some call in it reached its method with valid params.
pub fn rpc_body(data: &[u8]) -> bool {
    let (state, waiters) = rpc_state();
    let Some(answer) = handle_body(state, waiters, data) else {
        return true;
    };
    let one = |a: &Value| {
        let a = a.as_object().expect("each answer is an object");
        assert_eq!(a.get("jsonrpc"), Some(&json!("2.0")));
        assert!(a.contains_key("id"));
        assert!(a.contains_key("result") != a.contains_key("error"), "{a:?}");
        if let Some(e) = a.get("error") {
            assert!(e["code"].is_i64() && e["message"].is_string(), "{e:?}");
        }
    };
    match &answer {
        Value::Array(answers) => {
            assert!(!answers.is_empty());
            answers.iter().for_each(one);
        }
        single => one(single),
    }
    let text = serde_json::to_string(&answer).expect("an answer serialises");
    // A call reached its method when its answer is a result or a method's own error.
    let reached = |a: &Value| {
        let code = a.get("error").map(|e| e["code"].as_i64());
        !matches!(
            code,
            Some(Some(
                codes::PARSE_ERROR
                    | codes::INVALID_REQUEST
                    | codes::METHOD_NOT_FOUND
                    | codes::INVALID_PARAMS
            ))
        )
    };
    let results = match &answer {
        Value::Array(answers) => answers.iter().any(reached),
        single => reached(single),
    };
    // Valid JSON, but not compared for equality: serde_json parses a float id such as
    // 3.0000000000004046 to a neighbouring f64, so an echoed fractional id may differ in its
    // last digit (JSON-RPC ids should not be fractional; the node echoes what it parsed).
    assert!(serde_json::from_str::<Value>(&text).is_ok(), "{text}");
    results
}

/// A genesis file as `Genesis::load` reads it (UTF-8, then parse and validate); an accepted
/// one builds block 0, and the file `cairn genesis new` would write for it reads back
/// equal and writes the same text again.
pub fn genesis_toml(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(genesis) = Genesis::from_toml_str(text) else {
        return false;
    };
    let _ = genesis.hash();
    let _ = genesis.block_zero();
    let written = genesis.to_file().to_toml_string();
    let again = Genesis::from_toml_str(&written).expect("a written genesis file reads back");
    assert_eq!(again, genesis);
    assert_eq!(again.to_file().to_toml_string(), written);
    true
}

/// A node's config.toml as the node loads it; an accepted one, written as `cairn init`
/// writes it, loads back equal and writes the same text again.
pub fn config_toml(data: &[u8]) -> bool {
    let path = scratch_file("config.toml", data, 0o644);
    let Ok(config) = NodeConfig::load(&path) else {
        return false;
    };
    let written = config.to_documented_toml();
    let path = scratch_file("config.toml", written.as_bytes(), 0o644);
    let again = NodeConfig::load(&path).expect("a written config reads back");
    assert_eq!(again, config);
    assert_eq!(again.to_documented_toml(), written);
    true
}

/// A key file (owner-only, as the node requires); an accepted one, written again with
/// `write_key_file`, reads back as the same key, and that file is written the same way.
pub fn key_file(data: &[u8]) -> bool {
    let path = scratch_file("node.key", data, 0o600);
    let Ok(key) = read_key_file(&path) else {
        return false;
    };
    assert!(data.len() as u64 <= KEY_FILE_BYTES_MAX);
    let written = rewrite_key(&key);
    let again = read_key_file(&scratch_file("node.key", &written, 0o600))
        .expect("a written key file reads back");
    assert_eq!(again.public(), key.public());
    assert_eq!(again.secret_bytes(), key.secret_bytes());
    assert_eq!(rewrite_key(&again), written);
    true
}

fn rewrite_key(key: &Keypair) -> Vec<u8> {
    let path = scratch_dir().join("written.key");
    let _ = std::fs::remove_file(&path);
    write_key_file(&path, key).expect("a key file writes");
    std::fs::read(&path).expect("a written key file reads")
}

/// A directory for this process's scratch files, in memory where the machine has one.
fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::Builder::new()
                .prefix("cairn-fuzz")
                .tempdir_in(shm)
        } else {
            tempfile::Builder::new().prefix("cairn-fuzz").tempdir()
        };
        dir.expect("a scratch directory")
    })
    .path()
}

/// Replaces the scratch file `name` with `data`, created with `mode`.
fn scratch_file(name: &str, data: &[u8], mode: u32) -> PathBuf {
    let path = scratch_dir().join(name);
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&path)
        .expect("a scratch file");
    file.write_all(data).expect("a scratch file written");
    path
}

/// The RPC handler's state over a real store with one funded account (the seeds' sender),
/// built once per process, and commit waiters already told to stop.
fn rpc_state() -> (&'static RpcState, &'static CommitWaiters) {
    static STATE: OnceLock<(RpcState, CommitWaiters, tempfile::TempDir)> = OnceLock::new();
    let (state, waiters, _) = STATE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("cairn-fuzz-rpc")
            .tempdir()
            .expect("a store directory");
        let genesis = fixture_genesis();
        let store = Arc::new(Store::open(dir.path(), &genesis).expect("the store opens"));
        let mempool = cairn_node::txpool::mempool::Mempool::new(
            store.chain_id(),
            cairn_node::config::MempoolSection::default(),
        );
        let state = RpcState {
            store,
            mempool: Arc::new(Mutex::new(mempool)),
            node: Arc::new(cairn_node::host::status::StatusBoard::new(
                cairn_node::host::status::NodeStatus::default(),
                cairn_node::host::status::Readiness::Ready,
            )),
            metrics: Arc::new(cairn_node::metrics::Metrics::new()),
            validators: genesis.validators.clone().into(),
            limits: RpcSection::default(),
            admitted: None,
        };
        let waiters = CommitWaiters::new(cairn_node::http::rpc::COMMIT_WAITERS_MAX);
        waiters.stop();
        (state, waiters, dir)
    });
    (state, waiters)
}

/// Keys of the fixtures and seeds, fixed so that seeds stay valid across runs.
fn fixture_key(i: u8) -> Keypair {
    Keypair::from_secret(&[i + 1; 32])
}

/// A local BFT genesis: validator `fixture_key(0)`, `fixture_key(1)` funded.
fn fixture_genesis() -> Genesis {
    Genesis::local(
        EngineKind::HotStuff,
        &[fixture_key(0).public()],
        &[(fixture_key(1).public().address(), Amount(1_000_000_000))],
        GENESIS_TIME,
    )
}

/// Handshakes a local node could send: no upgrades, and one with an upgrade behind and
/// one ahead.
fn local_handshakes() -> &'static [Handshake] {
    static OURS: OnceLock<Vec<Handshake>> = OnceLock::new();
    OURS.get_or_init(|| {
        let genesis = fixture_genesis();
        let mark = |name: &str, h| UpgradeMark {
            name: name.into(),
            height: Height(h),
            fingerprint: Some(Hash::digest(name.as_bytes())),
        };
        [
            ForkId {
                activated: Vec::new(),
                next: None,
            },
            ForkId {
                activated: vec![mark("v2", 10)],
                next: Some(mark("v3", 20)),
            },
            ForkId {
                activated: Vec::new(),
                next: Some(UpgradeMark {
                    fingerprint: None,
                    ..mark("v2", 10)
                }),
            },
        ]
        .into_iter()
        .map(|fork| Handshake {
            fork,
            ..Handshake::ours(&genesis, &Schedule::for_this_binary(&genesis), Height(0))
        })
        .collect()
    })
}

/// Seed inputs from real encodings: `(target, file name, bytes)`. Every seed is accepted by
/// its decoder (the replay test checks it), so the fuzzer starts from inside each format.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        out.push((target, format!("seed-{name}"), bytes));
    };

    // A real chain: blocks of signed transfers, committed on a store.
    let dir = tempfile::tempdir().expect("a store directory");
    let chain = ChainGen::new(4, 17);
    let store = Store::open(dir.path(), &chain.genesis).expect("the store opens");
    let blocks = chain.build_blocks(&store, 3, 3);
    let chain_id = store.chain_id().to_owned();
    let user = fixture_key(1);
    let payloads = [
        (
            "transfer",
            Payload::Transfer {
                to: fixture_key(2).public().address(),
                amount: Amount(5),
            },
        ),
        (
            "oracle-stake",
            Payload::OracleStake {
                feed: "DEMO/USD".parse().expect("a feed id"),
                amount: Amount(100),
            },
        ),
        (
            "oracle-unstake",
            Payload::OracleUnstake {
                feed: "DEMO/USD".parse().expect("a feed id"),
                amount: Amount(100),
            },
        ),
    ];
    let txs: Vec<Transaction> = payloads
        .iter()
        .enumerate()
        .map(|(i, (_, p))| {
            Transaction::new_signed(&chain_id, &user, Nonce(i as u64), Amount(1), p.clone())
        })
        .collect();
    for ((name, _), tx) in payloads.iter().zip(&txs) {
        add("transaction", name, tx.encode());
    }
    add(
        "transaction",
        "from-block",
        blocks[0].transactions[0].encode(),
    );

    let (block_zero, _, _) = chain.genesis.block_zero();
    add("block", "hotstuff", codec::encode(&blocks[1]));
    add("block", "zero", codec::encode(&block_zero));
    add("block", "header", codec::encode(&blocks[1].header));
    add("block", "body", codec::encode(&blocks[1].transactions));
    let pow_block = Block {
        header: BlockHeader {
            seal: Seal::Pow {
                bits: 0x1f00_ffff,
                nonce: 7,
            },
            ..blocks[0].header.clone()
        },
        transactions: blocks[0].transactions.clone(),
    };
    add("block", "pow", codec::encode(&pow_block));

    let validators: Vec<Keypair> = (0..4).map(fixture_key).collect();
    let genesis_id = chain.genesis.hash();
    let qc_for = |block: &Block| QuorumCert {
        round: Round(block.header.height.0),
        block: block.hash(),
        votes: validators[..3]
            .iter()
            .map(|k| {
                let signed =
                    vote_signing_bytes(&genesis_id, Round(block.header.height.0), &block.hash());
                (k.public(), k.sign(&signed))
            })
            .collect(),
    };
    let high_qc = qc_for(&blocks[1]);
    let tc = TimeoutCert {
        round: Round(3),
        high_qc: high_qc.clone(),
        signatures: validators[..3]
            .iter()
            .map(|k| TimeoutSignature {
                signer: k.public(),
                high_qc_round: high_qc.round,
                signature: k.sign(&timeout_signing_bytes(&genesis_id, Round(3), high_qc.round)),
            })
            .collect(),
    };
    let proposal = |with_tc: bool| {
        let block = blocks[2].clone();
        let signature = validators[0].sign(&proposal_signing_bytes(
            &genesis_id,
            Round(block.header.height.0),
            &block.hash(),
        ));
        Message::Proposal(Box::new(ProposalMsg {
            block,
            tc: with_tc.then(|| tc.clone()),
            signature,
        }))
    };
    let vote = Message::Vote(VoteMsg {
        round: Round(3),
        block: blocks[2].hash(),
        voter: validators[1].public(),
        signature: validators[1].sign(&vote_signing_bytes(
            &genesis_id,
            Round(3),
            &blocks[2].hash(),
        )),
    });
    let timeout = |with_tc: bool| {
        Message::Timeout(Box::new(TimeoutMsg {
            round: Round(4),
            high_qc: high_qc.clone(),
            tc: with_tc.then(|| tc.clone()),
            sender: validators[2].public(),
            signature: validators[2].sign(&timeout_signing_bytes(
                &genesis_id,
                Round(4),
                high_qc.round,
            )),
        }))
    };
    let sync_req = Message::SyncRequest(SyncRequest {
        from_height: Height(1),
        blocks_max: SYNC_BLOCKS_MAX as u32,
    });
    let sync_resp = Message::SyncResponse(Box::new(SyncResponse {
        blocks: blocks[..2].to_vec(),
        tip_qc: qc_for(&blocks[1]),
    }));
    add("consensus_message", "proposal", proposal(false).encode());
    add("consensus_message", "proposal-tc", proposal(true).encode());
    add("consensus_message", "vote", vote.encode());
    add("consensus_message", "timeout", timeout(false).encode());
    add("consensus_message", "timeout-tc", timeout(true).encode());
    add("consensus_message", "sync-request", sync_req.encode());
    add("consensus_message", "sync-response", sync_resp.encode());

    for (name, msg) in pbft_seeds(&validators, &genesis_id, &blocks) {
        match &msg {
            pbft::Message::SyncRequest(_) => add("sync_request", "pbft", msg.encode()),
            pbft::Message::SyncResponse(_) => add("sync_response", "pbft", msg.encode()),
            pbft::Message::Proposal(p) if p.justification.is_none() => {
                add("block", "pbft", codec::encode(&p.block))
            }
            _ => {}
        }
        add("consensus_message", &format!("pbft-{name}"), msg.encode());
    }

    add("sync_request", "hotstuff", sync_req.encode());
    add(
        "sync_request",
        "pow-headers",
        wire::Request::GetHeaders {
            locator: vec![blocks[2].hash(), blocks[0].hash(), genesis_id],
            max: 2000,
        }
        .encode(),
    );
    add(
        "sync_request",
        "pow-blocks",
        wire::Request::GetBlocks {
            hashes: blocks.iter().map(Block::hash).collect(),
        }
        .encode(),
    );
    add("sync_response", "hotstuff", sync_resp.encode());
    add(
        "sync_response",
        "pow-headers",
        wire::Response::Headers(vec![pow_block.header.clone(), block_zero.header.clone()]).encode(),
    );
    add(
        "sync_response",
        "pow-blocks",
        wire::Response::Blocks(vec![pow_block.clone()]).encode(),
    );

    let mut gossip = txs.clone();
    gossip.extend(blocks[1].transactions.iter().cloned());
    add(
        "gossip_batch",
        "one",
        encode_batches(&txs[..1], TX_BATCH_BYTES_MAX).remove(0),
    );
    add(
        "gossip_batch",
        "several",
        encode_batches(&gossip, TX_BATCH_BYTES_MAX).remove(0),
    );

    for (i, hs) in local_handshakes().iter().enumerate() {
        add("handshake", &format!("local-{i}"), hs.encode());
    }

    let frame = |bytes: &[u8]| {
        let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    };
    add("framing", "vote", frame(&vote.encode()));
    let mut two = frame(&sync_req.encode());
    two.extend(frame(&txs[0].encode()));
    add("framing", "two-frames", two);
    add("framing", "empty-frame", frame(&[]));

    let tx_hex = to_hex(&txs[0].encode());
    let rpc = |name: &str, body: Value| (name.to_owned(), body.to_string().into_bytes());
    let request = |id: u64, method: &str, params: Value| json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
    for (name, body) in [
        rpc(
            "status",
            json!({ "jsonrpc": "2.0", "id": 1, "method": "status" }),
        ),
        rpc(
            "submit-tx",
            request(2, "submit_tx", json!({ "tx": tx_hex })),
        ),
        rpc(
            "submit-tx-commit",
            request(3, "submit_tx", json!([tx_hex, "commit"])),
        ),
        rpc("block-height", request(4, "block", json!([0]))),
        rpc(
            "block-hash",
            request(
                5,
                "block",
                json!({ "hash": fixture_genesis().block_zero().0.hash().to_string() }),
            ),
        ),
        rpc(
            "block-wait",
            request(5, "block", json!({ "height": 1, "wait_ms": 10 })),
        ),
        rpc(
            "account",
            request(6, "account", json!([user.public().address().to_string()])),
        ),
        rpc("tx", request(7, "tx", json!([txs[0].hash().to_string()]))),
        rpc(
            "oracle-price",
            request(
                8,
                "oracle_price",
                json!({ "feed": "DEMO/USD", "history": 2 }),
            ),
        ),
        rpc(
            "oracle-operator",
            request(
                9,
                "oracle_operator",
                json!(["DEMO/USD", user.public().address().to_string()]),
            ),
        ),
        rpc(
            "batch",
            json!([
                request(10, "submit_tx", json!([to_hex(&txs[1].encode())])),
                request(11, "submit_tx", json!([to_hex(&txs[2].encode())])),
                request(12, "validators", json!([])),
                json!({ "jsonrpc": "2.0", "method": "mempool" }),
            ]),
        ),
    ] {
        add("rpc_body", &name, body);
    }

    for (name, engine) in [("bft", EngineKind::HotStuff), ("pow", EngineKind::Pow)] {
        let genesis = Genesis::local(
            engine,
            &[fixture_key(0).public(), fixture_key(3).public()],
            &[(user.public().address(), Amount(1_000))],
            GENESIS_TIME,
        );
        add(
            "genesis_toml",
            &format!("local-{name}"),
            genesis.to_file().to_toml_string().into_bytes(),
        );
    }
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../genesis");
    let example = std::fs::read(examples.join("bft-upgrades.toml")).expect("an example genesis");
    add("genesis_toml", "example-bft-upgrades", example);

    add(
        "config_toml",
        "default",
        NodeConfig::default().to_documented_toml().into_bytes(),
    );
    let mut tuned = NodeConfig::default();
    tuned.p2p.persistent_peers = vec!["/ip4/127.0.0.1/tcp/26656/p2p/12D3KooWAbc".into()];
    tuned.consensus.double_sign_check_rounds = 10;
    add(
        "config_toml",
        "tuned",
        tuned.to_documented_toml().into_bytes(),
    );

    add("key_file", "written", rewrite_key(&user));
    out
}

/// The check named `target`.
/// One signed PBFT message of each kind, on a block sealed with its parent's real commit
/// certificate: a round-0 proposal, a round-2 proposal justified by round changes that carry
/// a prepare certificate, a prepare, a commit, round changes with and without a prepared
/// block, and a sync request and answer.
fn pbft_seeds(
    validators: &[Keypair],
    genesis_id: &Hash,
    blocks: &[Block],
) -> Vec<(&'static str, pbft::Message)> {
    let quorum = &validators[..3];
    let cert = |sign: fn(&Hash, Height, Round, &Hash) -> Vec<u8>, block: &Block, round: Round| {
        let (height, hash) = (block.header.height, block.hash());
        QuorumCert {
            round,
            block: hash,
            votes: quorum
                .iter()
                .map(|k| (k.public(), k.sign(&sign(genesis_id, height, round, &hash))))
                .collect(),
        }
    };
    let block = Block {
        header: BlockHeader {
            seal: Seal::Pbft {
                turn: Round(blocks[1].header.height.0),
                parent_commit: cert(pbft::commit_signing_bytes, &blocks[0], Round(0)),
            },
            ..blocks[1].header.clone()
        },
        transactions: blocks[1].transactions.clone(),
    };
    let (height, hash) = (block.header.height, block.hash());
    let prepared = cert(pbft::prepare_signing_bytes, &block, Round(1));
    let claim = Some(pbft::PreparedClaim {
        round: Round(1),
        block: hash,
    });
    let proposal = |round: Round, justification: Option<pbft::RoundChangeCert>| {
        let signature = validators[0].sign(&pbft::proposal_signing_bytes(
            genesis_id, height, round, &hash,
        ));
        pbft::Message::Proposal(Box::new(pbft::ProposalMsg {
            height,
            round,
            block: block.clone(),
            justification,
            proposer: validators[0].public(),
            signature,
        }))
    };
    let justification = pbft::RoundChangeCert {
        round: Round(2),
        signatures: quorum
            .iter()
            .map(|k| pbft::RoundChangeSig {
                signer: k.public(),
                prepared: claim,
                signature: k.sign(&pbft::round_change_signing_bytes(
                    genesis_id,
                    height,
                    Round(2),
                    &claim,
                )),
            })
            .collect(),
        prepared: Some(prepared.clone()),
    };
    let vote = |sign: fn(&Hash, Height, Round, &Hash) -> Vec<u8>| pbft::VoteMsg {
        height,
        round: Round(1),
        block: hash,
        voter: validators[1].public(),
        signature: validators[1].sign(&sign(genesis_id, height, Round(1), &hash)),
    };
    let round_change = |with_prepared: bool| {
        let claim = if with_prepared { claim } else { None };
        pbft::Message::RoundChange(Box::new(pbft::RoundChangeMsg {
            height,
            round: Round(2),
            prepared: with_prepared.then(|| prepared.clone()),
            block: with_prepared.then(|| block.clone()),
            sender: validators[2].public(),
            signature: validators[2].sign(&pbft::round_change_signing_bytes(
                genesis_id,
                height,
                Round(2),
                &claim,
            )),
        }))
    };
    vec![
        ("proposal", proposal(Round(0), None)),
        (
            "proposal-justified",
            proposal(Round(2), Some(justification)),
        ),
        (
            "prepare",
            pbft::Message::Prepare(vote(pbft::prepare_signing_bytes)),
        ),
        (
            "commit",
            pbft::Message::Commit(vote(pbft::commit_signing_bytes)),
        ),
        ("round-change", round_change(false)),
        ("round-change-prepared", round_change(true)),
        (
            "sync-request",
            pbft::Message::SyncRequest(SyncRequest {
                from_height: Height(1),
                blocks_max: SYNC_BLOCKS_MAX as u32,
            }),
        ),
        (
            "sync-response",
            pbft::Message::SyncResponse(Box::new(SyncResponse {
                blocks: vec![block.clone()],
                tip_qc: cert(pbft::commit_signing_bytes, &block, Round(1)),
            })),
        ),
    ]
}

pub fn check(target: &str) -> Option<Check> {
    TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, c)| *c)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
