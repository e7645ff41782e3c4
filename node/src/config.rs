//! `config.toml`: one file per node, every field documented in the file `cairn init` writes.
//! Command-line flags override it; missing fields take the defaults below.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    pub node: NodeSection,
    pub p2p: P2pSection,
    pub rpc: RpcSection,
    pub mempool: MempoolSection,
    pub consensus: ConsensusSection,
    pub mining: MiningSection,
    pub pow: PowSection,
    pub logging: LoggingSection,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSection {
    pub moniker: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct P2pSection {
    pub listen: String,
    pub persistent_peers: Vec<String>,
    pub allowed_peers: Vec<String>,
    pub peers_max: u32,
    pub message_bytes_max: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RpcSection {
    pub listen: String,
    pub body_bytes_max: u32,
    pub batch_requests_max: u32,
    /// How long the server waits on a client: for a request's headers, then its body, for it
    /// to take in the answer, and for the next request on a kept-alive connection. A slower
    /// or idle connection is closed, so it cannot keep one of the server's connection slots.
    pub io_timeout_ms: u64,
}

/// Upper bound of `rpc.io_timeout_ms`: a longer one would let idle clients hold the
/// server's connection slots for longer than any honest client needs.
pub const RPC_IO_TIMEOUT_MS_MAX: u64 = 10 * 60 * 1000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolSection {
    pub txs_max: u32,
    pub bytes_max: u64,
    pub txs_per_sender_max: u32,
}

/// Local consensus policy (what the network agrees on is in genesis).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusSection {
    /// With nothing to include, a leader waits this long after its parent before proposing
    /// an empty block (capped at half the genesis base round timeout).
    pub empty_block_interval_ms: u64,
    /// A validator signs nothing for this many rounds after it starts, and stops for good if
    /// it sees its own key's signature above the last round it remembers signing meanwhile
    /// (0: sign at once, no check).
    pub double_sign_check_rounds: u64,
}

/// Proof-of-work networks only: whether and how this node mines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MiningSection {
    /// Search for blocks on the best tip (a node that does not mine still follows the chain).
    pub enabled: bool,
    /// OS threads searching nonces, 1..=[`MINING_THREADS_MAX`].
    pub threads: u32,
    /// Who block rewards and fees are paid to (40 hex digits); empty: this node key's address.
    pub reward_address: String,
}

/// Upper bound of `mining.threads`.
pub const MINING_THREADS_MAX: u32 = 256;

/// Proof-of-work networks only: local policy (what the network agrees on is in genesis).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PowSection {
    /// Deepest reorganisation this node follows, in blocks undone. A deeper one is refused
    /// and logged as a warning (and counted in `cairn_pow_reorgs_refused_total`): it means a
    /// long partition or an attack, and an operator should look before the node follows it.
    pub reorg_depth_max: u64,
}

/// Upper bound of `pow.reorg_depth_max`: the block index keeps this much history anyway.
pub const REORG_DEPTH_MAX_LIMIT: u64 = 10_000;

impl Default for MiningSection {
    fn default() -> Self {
        MiningSection {
            enabled: false,
            threads: 1,
            reward_address: String::new(),
        }
    }
}

impl Default for PowSection {
    fn default() -> Self {
        PowSection {
            reorg_depth_max: 100,
        }
    }
}

impl MiningSection {
    /// The reward address: the configured one, or `default` (the node key's) when empty.
    pub fn reward_address_or(
        &self,
        default: cairn_ledger::Address,
    ) -> Result<cairn_ledger::Address, String> {
        if self.reward_address.is_empty() {
            return Ok(default);
        }
        self.reward_address.parse()
    }
}

/// Upper bound of `consensus.empty_block_interval_ms`.
pub const EMPTY_BLOCK_INTERVAL_MS_MAX: u64 = 60_000;
/// Upper bound of `consensus.double_sign_check_rounds`: each round can cost a base timeout
/// when the network waits for this validator.
pub const DOUBLE_SIGN_CHECK_ROUNDS_MAX: u64 = 1_000;
/// Default of `consensus.double_sign_check_rounds`. Another holder of the key shows up in
/// about three QCs out of four on a 4-validator network (two in three on large ones), so 5
/// rounds miss it with odds of ~0.1% to ~0.4%, while costing a restarted validator about 5
/// blocks of its votes, or 5 base timeouts when the whole network restarts at once.
pub const DOUBLE_SIGN_CHECK_ROUNDS_DEFAULT: u64 = 5;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingSection {
    pub level: String,
    pub format: String,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            moniker: "cairn-node".into(),
        }
    }
}

impl Default for P2pSection {
    fn default() -> Self {
        P2pSection {
            listen: "/ip4/0.0.0.0/tcp/26656".into(),
            persistent_peers: Vec::new(),
            allowed_peers: Vec::new(),
            peers_max: 50,
            message_bytes_max: 4 * 1024 * 1024,
        }
    }
}

impl Default for RpcSection {
    fn default() -> Self {
        RpcSection {
            listen: "127.0.0.1:26657".into(),
            body_bytes_max: 1024 * 1024,
            batch_requests_max: 50,
            io_timeout_ms: 10_000,
        }
    }
}

impl Default for MempoolSection {
    fn default() -> Self {
        MempoolSection {
            txs_max: 20_000,
            bytes_max: 32 * 1024 * 1024,
            txs_per_sender_max: 256,
        }
    }
}

impl Default for ConsensusSection {
    fn default() -> Self {
        ConsensusSection {
            empty_block_interval_ms: 500,
            double_sign_check_rounds: DOUBLE_SIGN_CHECK_ROUNDS_DEFAULT,
        }
    }
}

impl Default for LoggingSection {
    fn default() -> Self {
        LoggingSection {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid node configuration: {message}")]
    Parse {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("{path}: {field}: {message}")]
    Invalid {
        path: std::path::PathBuf,
        field: &'static str,
        message: String,
    },
}

impl NodeConfig {
    pub fn load(path: &std::path::Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: NodeConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks the settings, naming `path` (where they are or will be written) in errors.
    pub fn validate(&self, path: &std::path::Path) -> Result<(), ConfigError> {
        let invalid = |field, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            field,
            message,
        };
        if self.rpc.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "rpc.listen",
                format!(
                    "{:?} is not an address like 127.0.0.1:26657",
                    self.rpc.listen
                ),
            ));
        }
        if !self.p2p.listen.starts_with('/') {
            return Err(invalid(
                "p2p.listen",
                format!(
                    "{:?} is not a multiaddr like /ip4/0.0.0.0/tcp/26656",
                    self.p2p.listen
                ),
            ));
        }
        for (field, value) in [
            ("mempool.txs_max", self.mempool.txs_max as u64),
            ("mempool.bytes_max", self.mempool.bytes_max),
            ("rpc.body_bytes_max", self.rpc.body_bytes_max as u64),
            ("p2p.message_bytes_max", self.p2p.message_bytes_max as u64),
            ("rpc.batch_requests_max", self.rpc.batch_requests_max as u64),
            ("rpc.io_timeout_ms", self.rpc.io_timeout_ms),
            (
                "mempool.txs_per_sender_max",
                self.mempool.txs_per_sender_max as u64,
            ),
            ("p2p.peers_max", self.p2p.peers_max as u64),
            ("mining.threads", self.mining.threads as u64),
            ("pow.reorg_depth_max", self.pow.reorg_depth_max),
        ] {
            if value == 0 {
                return Err(invalid(field, "must be greater than 0".into()));
            }
        }
        for (field, value, max) in [
            (
                "consensus.empty_block_interval_ms",
                self.consensus.empty_block_interval_ms,
                EMPTY_BLOCK_INTERVAL_MS_MAX,
            ),
            (
                "consensus.double_sign_check_rounds",
                self.consensus.double_sign_check_rounds,
                DOUBLE_SIGN_CHECK_ROUNDS_MAX,
            ),
            (
                "rpc.io_timeout_ms",
                self.rpc.io_timeout_ms,
                RPC_IO_TIMEOUT_MS_MAX,
            ),
            (
                "mining.threads",
                u64::from(self.mining.threads),
                u64::from(MINING_THREADS_MAX),
            ),
        ] {
            if value > max {
                return Err(invalid(
                    field,
                    format!("{value} is over the limit of {max}"),
                ));
            }
        }
        if let Err(e) = self
            .mining
            .reward_address_or(cairn_ledger::Address([0; 20]))
        {
            return Err(invalid(
                "mining.reward_address",
                format!("{:?}: {e}", self.mining.reward_address),
            ));
        }
        if self.pow.reorg_depth_max > REORG_DEPTH_MAX_LIMIT {
            return Err(invalid(
                "pow.reorg_depth_max",
                format!(
                    "{} is over the limit of {REORG_DEPTH_MAX_LIMIT}",
                    self.pow.reorg_depth_max
                ),
            ));
        }
        if !matches!(self.logging.format.as_str(), "text" | "json") {
            return Err(invalid(
                "logging.format",
                format!("{:?}: expected \"text\" or \"json\"", self.logging.format),
            ));
        }
        Ok(())
    }

    /// The file `cairn init` writes: every field with its value and what it means.
    pub fn to_documented_toml(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let list = |v: &[String]| {
            let items: Vec<String> = v.iter().map(|s| q(s)).collect();
            format!("[{}]", items.join(", "))
        };
        format!(
            r#"# Cairn node configuration. Every field is optional; the value shown is what this node
# uses. Command-line flags override this file.

[node]
# Name shown in logs, `cairn status` and to peers.
moniker = {moniker}

[p2p]
# libp2p address to listen on for other nodes.
listen = {p2p_listen}
# Nodes to stay connected to (multiaddrs ending in /p2p/PEER_ID); reconnected with backoff.
persistent_peers = {persistent}
# Peer ids allowed to connect besides the genesis validators. Everyone else is refused.
allowed_peers = {allowed}
# Most peers connected at once.
peers_max = {peers_max}
# Largest message accepted from a peer, in bytes; bigger ones are dropped and the peer scored.
message_bytes_max = {msg_max}

[rpc]
# Address of the JSON-RPC, /health, /ready and /metrics server. Keep it on localhost unless a
# proxy in front of it controls access.
listen = {rpc_listen}
# Largest request body, in bytes.
body_bytes_max = {body_max}
# Most requests in one JSON-RPC batch.
batch_requests_max = {batch_max}
# Milliseconds the server waits on a client: for a request's headers, then its body, for it
# to read the answer, and for the next request on a kept-alive connection. Slower or idle
# connections are closed, so they cannot keep the server's connection slots.
io_timeout_ms = {io_timeout}

[mempool]
# Most pending transactions; when full, the lowest fee is evicted first.
txs_max = {txs_max}
# Most bytes of pending transactions.
bytes_max = {bytes_max}
# Most pending transactions from one sender.
txs_per_sender_max = {per_sender}

[consensus]
# With no transactions to include, a leader waits this long (ms) after the parent block
# before proposing an empty one; capped at half the genesis base round timeout. 0: no wait.
empty_block_interval_ms = {empty_interval}
# Validators only. After each start, sign nothing for this many rounds and only watch for
# this key's signatures made elsewhere (another machine running the key, or this data dir
# restored from an old backup); stop with an error if one shows up. 0: sign at once.
double_sign_check_rounds = {double_sign_check}

[mining]
# Proof-of-work networks only. Search for blocks on the best tip with `threads` OS threads;
# rewards and fees go to `reward_address` (40 hex digits; empty: this node key's address).
enabled = {mining_enabled}
threads = {mining_threads}
reward_address = {reward_address}

[pow]
# Proof-of-work networks only. The deepest reorganisation (blocks undone) this node follows;
# a deeper one is refused with a warning in the log and in cairn_pow_reorgs_refused_total.
reorg_depth_max = {reorg_depth_max}

[logging]
# trace, debug, info, warn or error (a RUST_LOG-style filter also works).
level = {level}
# "text" for people, "json" for log collectors.
format = {format}
"#,
            moniker = q(&self.node.moniker),
            p2p_listen = q(&self.p2p.listen),
            persistent = list(&self.p2p.persistent_peers),
            allowed = list(&self.p2p.allowed_peers),
            peers_max = self.p2p.peers_max,
            msg_max = self.p2p.message_bytes_max,
            rpc_listen = q(&self.rpc.listen),
            body_max = self.rpc.body_bytes_max,
            batch_max = self.rpc.batch_requests_max,
            io_timeout = self.rpc.io_timeout_ms,
            txs_max = self.mempool.txs_max,
            bytes_max = self.mempool.bytes_max,
            per_sender = self.mempool.txs_per_sender_max,
            empty_interval = self.consensus.empty_block_interval_ms,
            double_sign_check = self.consensus.double_sign_check_rounds,
            mining_enabled = self.mining.enabled,
            mining_threads = self.mining.threads,
            reward_address = q(&self.mining.reward_address),
            reorg_depth_max = self.pow.reorg_depth_max,
            level = q(&self.logging.level),
            format = q(&self.logging.format),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_file_parses_back_to_the_same_config() {
        let mut c = NodeConfig::default();
        c.node.moniker = "with \"quotes\"".into();
        c.p2p.persistent_peers = vec!["/ip4/127.0.0.1/tcp/1/p2p/12D3KooWabc".into()];
        c.mining.enabled = true;
        c.mining.threads = 3;
        c.mining.reward_address = "11".repeat(20);
        c.pow.reorg_depth_max = 7;
        c.rpc.io_timeout_ms = 2500;
        let text = c.to_documented_toml();
        assert_eq!(toml::from_str::<NodeConfig>(&text).unwrap(), c);
    }

    #[test]
    fn bad_fields_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[rpc]\nlisten = \"nowhere\"\n").unwrap();
        let err = NodeConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("rpc.listen"), "{err}");
        std::fs::write(&path, "[rpc]\nbatch_requests_max = 0\n").unwrap();
        let err = NodeConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("rpc.batch_requests_max"), "{err}");
        std::fs::write(&path, "[rpc]\nlisen = \"127.0.0.1:1\"\n").unwrap();
        let err = NodeConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
        std::fs::write(&path, "[mining]\nreward_address = \"xyz\"\n").unwrap();
        let err = NodeConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("mining.reward_address"), "{err}");
        std::fs::write(&path, "[rpc]\nio_timeout_ms = 0\n").unwrap();
        let err = NodeConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("rpc.io_timeout_ms"), "{err}");
        std::fs::write(&path, "[rpc]\nio_timeout_ms = 600001\n").unwrap();
        let err = NodeConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("rpc.io_timeout_ms"), "{err}");
        std::fs::write(&path, "[mining]\nthreads = 0\n").unwrap();
        let err = NodeConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("mining.threads"), "{err}");
    }
}
