//! `cairn oracle publish`: the operator's daemon. Each round of a feed it reads a value from
//! its source, commits to it with a fresh secret salt, and reveals it in the reveal window.
//!
//! Durability: the value and salt of a round are written to the state directory and synced
//! before the commitment is sent, so a publisher restarted between its commit and its reveal
//! still reveals (a commitment whose salt was lost could never be opened, and would be
//! penalised as a miss). Round files older than [`ROUND_FILES_KEPT`] rounds are removed.
//!
//! It never gives up on the node: RPC failures are logged and retried with a backoff from
//! [`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`].

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use cairn_ledger::oracle::operator_id;
use cairn_ledger::oracle::rules::{self, CommitHash, FeedId, Price, RoundNumber, Salt};
use cairn_ledger::tx::Payload;
use cairn_ledger::{Amount, Hash, keys};
use clap::Args;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::client::{Client, RpcArgs};
use crate::submit::Signer;
use crate::tx_cmd::FEE_DEFAULT;

/// How often the publisher looks at the chain.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// First wait after an RPC failure; doubles on each failure in a row.
pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A commit or reveal not seen on chain after this many blocks is sent again (it may have
/// been dropped from a mempool, or the node restarted).
pub const RESEND_AFTER_BLOCKS: u64 = 3;
/// Round files kept in the state directory; older ones are removed.
pub const ROUND_FILES_KEPT: u64 = 8;
/// Longest a `cmd:` source may run before its round is skipped.
pub const SOURCE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes read from a source's output or file.
pub const SOURCE_BYTES_MAX: u64 = 4096;

#[derive(Args)]
pub struct PublishArgs {
    /// The feed to publish, BASE/QUOTE (e.g. DEMO/USD).
    #[arg(long)]
    feed: FeedId,
    /// The operator's key file. Its account pays the fees and holds the stake.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Where the value comes from, read once per round. The first line is the price as a
    /// decimal number in the quote currency (e.g. 1.0523; at most the feed's decimals).
    ///
    /// `cmd:COMMAND` runs COMMAND with `sh -c`; `file:PATH` reads PATH; `-` reads the latest
    /// line written to stdin; `synthetic:PRICE` draws a value near PRICE (within ±0.3%,
    /// different for each operator and round), for demos and tests.
    #[arg(long, value_name = "SOURCE")]
    source: Source,
    /// Where round files (value and salt, kept until the reveal) are written. Default: a
    /// directory `oracle-state` next to the key file.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Make sure at least this much is bonded in the feed before publishing, staking the
    /// difference from the key's balance.
    #[arg(long, value_name = "N")]
    stake: Option<u64>,
    /// The fee of each transaction, in the smallest unit.
    #[arg(long, value_name = "N", default_value_t = FEE_DEFAULT)]
    fee: u64,
    #[command(flatten)]
    rpc: RpcArgs,
}

/// Where values come from.
#[derive(Clone, Debug)]
pub enum Source {
    Command(String),
    File(PathBuf),
    Stdin,
    Synthetic(String),
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Source, String> {
        if s == "-" {
            return Ok(Source::Stdin);
        }
        match s.split_once(':') {
            Some(("cmd", c)) if !c.trim().is_empty() => Ok(Source::Command(c.to_owned())),
            Some(("file", p)) if !p.is_empty() => Ok(Source::File(PathBuf::from(p))),
            Some(("synthetic", v)) if !v.is_empty() => Ok(Source::Synthetic(v.to_owned())),
            _ => Err(format!(
                "{s:?} is not a source; use cmd:COMMAND, file:PATH, - (stdin) or synthetic:PRICE"
            )),
        }
    }
}

/// What is kept per round, before the commitment is sent.
#[derive(Debug, Serialize, Deserialize)]
struct RoundFile {
    feed: FeedId,
    round: RoundNumber,
    value: Price,
    salt: Salt,
    commitment: CommitHash,
}

#[derive(Deserialize)]
struct RoundView {
    height: u64,
    round: u64,
    next_height_phase: String,
}

/// Tracks what was last sent for a round, so it is resent only when it seems lost.
#[derive(Default)]
struct Sent {
    /// The tip height when the commitment was last sent.
    commit: Option<u64>,
    /// The tip height when the reveal was last sent.
    reveal: Option<u64>,
}

pub fn run(a: PublishArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person watching; log files and pipes get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let read_key = || {
        keys::read_key_file(&a.key)
            .with_context(|| format!("reading the operator key {}", a.key.display()))
    };
    read_key()?;
    let state_dir = match &a.state_dir {
        Some(d) => d.clone(),
        None => a
            .key
            .parent()
            .unwrap_or(Path::new("."))
            .join("oracle-state"),
    };
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating the state directory {}", state_dir.display()))?;
    let stdin_latest = matches!(a.source, Source::Stdin).then(spawn_stdin_reader);
    let mut backoff = BACKOFF_MIN;
    let signer = loop {
        match Signer::new(Client::new(&a.rpc), read_key()?) {
            Ok(s) => break s,
            Err(e) => {
                warn!("cannot reach the node yet: {e:#}; retrying in {backoff:?}");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    };
    let decimals = loop {
        match feed_decimals(&signer.client, &a.feed) {
            Ok(d) => break d,
            // The node names the feeds it has: retrying will not make this one appear.
            Err(e @ crate::client::ClientError::Rpc { code, .. })
                if code == cairn_node::http::rpc::codes::INVALID_PARAMS =>
            {
                return Err(e.into());
            }
            Err(e) => {
                warn!("{e:#}; retrying in {backoff:?}");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    };
    let mut p = Publisher {
        feed: a.feed.clone(),
        signer,
        fee: a.fee,
        source: a.source.clone(),
        decimals,
        state_dir,
        stdin_latest,
        sent: Default::default(),
        last_round: None,
        stake_goal: a.stake,
    };
    info!(
        operator = %p.signer.address(),
        feed = %p.feed,
        state_dir = %p.state_dir.display(),
        "publisher started"
    );
    let mut backoff = BACKOFF_MIN;
    loop {
        match p.step() {
            Ok(()) => {
                backoff = BACKOFF_MIN;
                std::thread::sleep(POLL_INTERVAL);
            }
            Err(e) => {
                warn!("{e:#}; retrying in {backoff:?}");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

fn feed_decimals(client: &Client, feed: &FeedId) -> Result<u8, crate::client::ClientError> {
    #[derive(Deserialize)]
    struct Decimals {
        decimals: u8,
    }
    client
        .call::<Decimals>("oracle_price", json!({ "feed": feed }))
        .map(|d| d.decimals)
}

struct Publisher {
    feed: FeedId,
    signer: Signer,
    fee: u64,
    source: Source,
    decimals: u8,
    state_dir: PathBuf,
    stdin_latest: Option<Arc<Mutex<Option<String>>>>,
    sent: std::collections::BTreeMap<u64, Sent>,
    last_round: Option<u64>,
    stake_goal: Option<u64>,
}

impl Publisher {
    fn step(&mut self) -> Result<()> {
        let me = self.signer.address();
        if let Some(goal) = self.stake_goal {
            self.ensure_stake(goal)?;
            self.stake_goal = None;
        }
        let round: RoundView = self
            .signer
            .client
            .call("oracle_round", json!({ "feed": self.feed }))?;
        if self.last_round != Some(round.round) {
            if let Some(previous) = self.last_round {
                self.report_round(previous);
            }
            self.last_round = Some(round.round);
            self.sent.retain(|&r, _| r + 1 >= round.round);
            self.prune(round.round);
        }
        let status: Value = match self.signer.client.call(
            "oracle_operator",
            json!({ "feed": self.feed, "address": me }),
        ) {
            Ok(v) => v,
            Err(crate::client::ClientError::Rpc { code, .. })
                if code == cairn_node::http::rpc::codes::NOT_FOUND =>
            {
                Value::Null
            }
            Err(e) => return Err(e.into()),
        };
        let eligible = status["eligible_stake"].as_u64().is_some();
        let committed = status["committed"] == json!(true);
        let revealed = !status["revealed"].is_null();
        let n = round.round;
        match round.next_height_phase.as_str() {
            "commit" if eligible && !committed => self.commit(n, round.height)?,
            "reveal" if committed && !revealed => self.reveal(n, round.height)?,
            _ => {}
        }
        Ok(())
    }

    fn ensure_stake(&mut self, goal: u64) -> Result<()> {
        let me = self.signer.address();
        let bonded = match self.signer.client.call::<Value>(
            "oracle_operator",
            json!({ "feed": self.feed, "address": me }),
        ) {
            Ok(v) => v["bonded"].as_u64().unwrap_or(0),
            Err(crate::client::ClientError::Rpc { code, .. })
                if code == cairn_node::http::rpc::codes::NOT_FOUND =>
            {
                0
            }
            Err(e) => return Err(e.into()),
        };
        if bonded >= goal {
            return Ok(());
        }
        let add = goal - bonded;
        info!(feed = %self.feed, amount = add, "staking");
        let (hash, committed) = self.signer.submit(
            Payload::OracleStake {
                feed: self.feed.clone(),
                amount: Amount(add),
            },
            self.fee,
            true,
        )?;
        let committed = committed.expect("waited");
        if let Some(reason) = committed.refused() {
            bail!("staking {add} was refused by the oracle: {reason} (tx {hash})");
        }
        info!(feed = %self.feed, amount = add, height = committed.height, "staked; reporting starts with the next round");
        Ok(())
    }

    fn round_path(&self, round: u64) -> PathBuf {
        self.state_dir.join(format!(
            "{}-round-{round}.json",
            self.feed.as_str().replace('/', "_")
        ))
    }

    fn commit(&mut self, round: u64, height: u64) -> Result<()> {
        if let Some(at) = self.sent.entry(round).or_default().commit
            && height < at + RESEND_AFTER_BLOCKS
        {
            return Ok(());
        }
        let path = self.round_path(round);
        // A round file already on disk (a restart, or a commit that was lost) is reused:
        // the commitment must stay the one whose salt we kept.
        let file = match read_round_file(&path)? {
            Some(f) => f,
            None => {
                let value = self.read_value(round)?;
                let mut salt = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut salt);
                let salt = Salt(salt);
                let commitment = rules::commit_hash(
                    &self.feed,
                    RoundNumber(round),
                    value,
                    &salt,
                    &operator_id(&self.signer.address()),
                );
                let file = RoundFile {
                    feed: self.feed.clone(),
                    round: RoundNumber(round),
                    value,
                    salt,
                    commitment,
                };
                write_durably(&path, &serde_json::to_vec_pretty(&file)?)?;
                file
            }
        };
        let (hash, _) = self.signer.submit(
            Payload::OracleCommit {
                feed: self.feed.clone(),
                round: RoundNumber(round),
                commitment: file.commitment,
            },
            self.fee,
            false,
        )?;
        self.sent.entry(round).or_default().commit = Some(height);
        info!(
            feed = %self.feed,
            round,
            value = %file.value.format(self.decimals),
            tx = %short(&hash),
            "committed"
        );
        Ok(())
    }

    fn reveal(&mut self, round: u64, height: u64) -> Result<()> {
        if let Some(at) = self.sent.entry(round).or_default().reveal
            && height < at + RESEND_AFTER_BLOCKS
        {
            return Ok(());
        }
        let path = self.round_path(round);
        let Some(file) = read_round_file(&path)? else {
            // Committed by someone holding this key without leaving us the salt: nothing
            // can open that commitment. Say so once per round.
            self.sent.entry(round).or_default().reveal = Some(u64::MAX - RESEND_AFTER_BLOCKS);
            warn!(
                feed = %self.feed,
                round,
                file = %path.display(),
                "a commitment of this operator is on chain but its round file is missing; it cannot be revealed and will count as a miss"
            );
            return Ok(());
        };
        let (hash, _) = self.signer.submit(
            Payload::OracleReveal {
                feed: self.feed.clone(),
                round: RoundNumber(round),
                value: file.value,
                salt: file.salt,
            },
            self.fee,
            false,
        )?;
        self.sent.entry(round).or_default().reveal = Some(height);
        info!(
            feed = %self.feed,
            round,
            value = %file.value.format(self.decimals),
            tx = %short(&hash),
            "revealed"
        );
        Ok(())
    }

    /// Logs how the round that just ended went for the feed and for this operator.
    fn report_round(&self, round: u64) {
        let price = self
            .signer
            .client
            .call::<Value>("oracle_price", json!({ "feed": self.feed, "history": 1 }));
        if let Ok(v) = price
            && let Some(r) = v["history"].get(0)
            && r["round"] == json!(round)
        {
            let outcome = match r["outcome"].as_str() {
                Some("price") => format!("price {}", output_text(&r["band"]["median"]["text"])),
                _ => "no quorum".to_string(),
            };
            info!(
                feed = %self.feed,
                round,
                outcome = %outcome,
                commits = %r["commits"],
                reveals = %r["reveals"],
                "round ended"
            );
        }
    }

    fn prune(&self, current: u64) {
        let Some(oldest_kept) = current.checked_sub(ROUND_FILES_KEPT) else {
            return;
        };
        let prefix = format!("{}-round-", self.feed.as_str().replace('/', "_"));
        let Ok(entries) = std::fs::read_dir(&self.state_dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let round = name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(".json"))
                .and_then(|r| r.parse::<u64>().ok());
            if round.is_some_and(|r| r < oldest_kept) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    fn read_value(&self, round: u64) -> Result<Price> {
        let text = match &self.source {
            Source::Command(c) => run_source_command(c)?,
            Source::File(p) => {
                let mut s = String::new();
                std::io::Read::read_to_string(
                    &mut std::io::Read::take(
                        std::fs::File::open(p)
                            .with_context(|| format!("reading source file {}", p.display()))?,
                        SOURCE_BYTES_MAX,
                    ),
                    &mut s,
                )?;
                s
            }
            Source::Stdin => self
                .stdin_latest
                .as_ref()
                .and_then(|l| l.lock().ok()?.clone())
                .ok_or_else(|| anyhow!("no value on stdin yet"))?,
            Source::Synthetic(base) => {
                let base = parse_price(base, self.decimals)?;
                return Ok(synthetic(base, &self.signer.address().0, round));
            }
        };
        let line = text.lines().next().unwrap_or("").trim();
        parse_price(line, self.decimals)
    }
}

fn output_text(v: &Value) -> String {
    crate::output::text(v)
}

fn short(h: &Hash) -> String {
    h.to_string()[..16].to_string()
}

/// A value within ±0.3% of `base`, different per operator and round: honest-looking
/// reporters that disagree a little, as real ones do.
fn synthetic(base: Price, operator: &[u8; 20], round: u64) -> Price {
    let seed = Hash::tagged(b"cairn/oracle/synthetic", &[operator, &round.to_be_bytes()]);
    let r = u64::from_be_bytes(seed.0[..8].try_into().expect("8 bytes")) % 601;
    // r in 0..=600 maps to -30..=+30 basis points.
    let bps = r as i128 - 300;
    let v = i128::from(base.0) + i128::from(base.0) * bps / 100_000;
    Price(u64::try_from(v.max(0)).unwrap_or(u64::MAX))
}

/// `1.0523` with 6 decimals is 1052300. More decimals than the feed has, signs, exponents
/// and anything else are refused with the reason.
pub fn parse_price(text: &str, decimals: u8) -> Result<Price> {
    let bad = |why: &str| anyhow!("source value {text:?} is not a price: {why}");
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad(
            "expected digits, optionally with a decimal point, e.g. 1.05",
        ));
    }
    if !fraction.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad("the part after the point must be digits"));
    }
    if fraction.len() > usize::from(decimals) {
        return Err(bad(&format!("the feed has {decimals} decimals")));
    }
    let scale = 10u128.pow(u32::from(decimals));
    let whole: u128 = whole.parse().map_err(|_| bad("too large"))?;
    let frac: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse::<u128>().map_err(|_| bad("too large"))?
            * 10u128.pow(u32::from(decimals) - fraction.len() as u32)
    };
    let v = whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(frac))
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| bad("too large for a price"))?;
    Ok(Price(v))
}

fn run_source_command(command: &str) -> Result<String> {
    let mut child = std::process::Command::new("sh")
        .args(["-c", command])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .with_context(|| format!("running source command {command:?}"))?;
    let deadline = std::time::Instant::now() + SOURCE_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            let mut out = String::new();
            if let Some(stdout) = child.stdout.take() {
                std::io::Read::read_to_string(
                    &mut std::io::Read::take(stdout, SOURCE_BYTES_MAX),
                    &mut out,
                )?;
            }
            if !status.success() {
                bail!("source command {command:?} failed ({status})");
            }
            return Ok(out);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "source command {command:?} ran over {} s",
                SOURCE_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn_stdin_reader() -> Arc<Mutex<Option<String>>> {
    let latest = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&latest);
    std::thread::spawn(move || {
        let mut input = std::io::stdin().lock();
        // Each read stops at SOURCE_BYTES_MAX, so a line without end cannot grow memory.
        let mut bounded_line = |line: &mut Vec<u8>| {
            (&mut input)
                .take(SOURCE_BYTES_MAX)
                .read_until(b'\n', line)
                .unwrap_or(0)
        };
        let mut skipping = false;
        loop {
            let mut line = Vec::new();
            if bounded_line(&mut line) == 0 {
                break;
            }
            let ended = line.ends_with(b"\n");
            // The tail of a line over the bound is dropped, up to its newline.
            if std::mem::replace(
                &mut skipping,
                !ended && line.len() as u64 >= SOURCE_BYTES_MAX,
            ) || skipping
            {
                continue;
            }
            if let Ok(mut l) = slot.lock() {
                *l = Some(String::from_utf8_lossy(&line).trim_end().to_owned());
            }
        }
    });
    latest
}

fn read_round_file(path: &Path) -> Result<Option<RoundFile>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("round file {} is corrupt", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading round file {}", path.display())),
    }
}

/// Writes `bytes` to `path` so that it survives a crash once this returns: a temporary
/// file, synced, renamed over `path`, and the directory synced.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("writing round file {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_with_the_feed_decimals() {
        assert_eq!(parse_price("1.0523", 6).unwrap(), Price(1_052_300));
        assert_eq!(parse_price("42", 2).unwrap(), Price(4200));
        assert_eq!(parse_price("0.5", 1).unwrap(), Price(5));
        for (bad, why) in [
            ("1.2345678", "6 decimals"),
            ("-1", "digits"),
            ("1e5", "digits"),
            ("", "digits"),
            ("1.2.3", "after the point"),
            ("99999999999999999999", "too large"),
        ] {
            let e = parse_price(bad, 6).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn synthetic_values_stay_within_three_tenths_of_a_percent() {
        let base = Price(1_000_000);
        let mut seen = std::collections::BTreeSet::new();
        for round in 0..200 {
            for op in 0..5u8 {
                let v = synthetic(base, &[op; 20], round);
                assert!((997_000..=1_003_000).contains(&v.0), "{v:?}");
                seen.insert(v.0);
            }
        }
        assert!(seen.len() > 100, "values vary: {}", seen.len());
    }

    #[test]
    fn sources_parse_or_say_what_is_accepted() {
        assert!(matches!("-".parse::<Source>(), Ok(Source::Stdin)));
        assert!(matches!(
            "cmd:echo 1".parse::<Source>(),
            Ok(Source::Command(_))
        ));
        assert!(matches!(
            "file:/tmp/x".parse::<Source>(),
            Ok(Source::File(_))
        ));
        let e = "http://x".parse::<Source>().unwrap_err();
        assert!(e.contains("cmd:COMMAND"), "{e}");
    }

    #[test]
    fn round_files_are_written_whole_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("DEMO_USD-round-3.json");
        assert!(read_round_file(&path).unwrap().is_none());
        let f = RoundFile {
            feed: FeedId::new("DEMO/USD").unwrap(),
            round: RoundNumber(3),
            value: Price(7),
            salt: Salt([1; 32]),
            commitment: CommitHash([2; 32]),
        };
        write_durably(&path, &serde_json::to_vec(&f).unwrap()).unwrap();
        let back = read_round_file(&path).unwrap().unwrap();
        assert_eq!((back.value, back.salt), (Price(7), Salt([1; 32])));
        std::fs::write(&path, b"{").unwrap();
        assert!(
            read_round_file(&path)
                .unwrap_err()
                .to_string()
                .contains("corrupt")
        );
    }
}
