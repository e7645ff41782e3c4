//! The genesis file: what a network is before its first block.
//!
//! This module owns the genesis file format, its validation and the genesis hash that names
//! the network. It reads one file and touches nothing else on disk. It must never accept a
//! file with a problem in it, and never stop at the first problem: an operator fixing a file
//! gets every problem at once, each with the path of the field to blame.
//!
//! Reading is two layers. [`GenesisFile`] is the file's shape as written (strings for keys
//! and addresses, plain integers), parsed by `toml` with unknown fields refused; then
//! [`GenesisFile::validate`] checks every rule below and builds the typed [`Genesis`].
//! [`Genesis::to_file`] and [`GenesisFile::to_toml_string`] go the other way, so a tool can
//! write a file that loads back to an equal `Genesis` (and so the same hash).
//!
//! # Format
//!
//! ```toml
//! chain_id = "cairn-local"          # 1..=64 characters of A-Z a-z 0-9 . _ -
//! genesis_time_ms = 1767225600000   # block 0 timestamp, ms since the Unix epoch
//! protocol_version = 1              # protocol version at height 0, >= 1
//!
//! [consensus]
//! engine = "hotstuff"               # "hotstuff" (BFT) or "pow" (Nakamoto)
//! block_txs_max = 2000              # 1..=block::BLOCK_TXS_MAX
//! block_bytes_max = 4194304         # 1024..=block::BLOCK_BYTES_MAX
//!
//! [consensus.hotstuff]              # required if and only if engine = "hotstuff"
//! round_timeout_ms_base = 1000      # > 0
//! round_timeout_ms_max = 30000      # >= round_timeout_ms_base
//!
//! [consensus.pow]                   # required if and only if engine = "pow"
//! initial_bits = "0x1f00ffff"       # compact target (Bitcoin `bits`): positive, nonzero,
//!                                   # fits in 256 bits
//! target_block_time_ms = 2000       # > 0
//! retarget_interval_blocks = 20     # > 0
//! block_reward = 5000000000         # smallest units
//! halving_interval_blocks = 210000  # > 0
//! coinbase_maturity_blocks = 10
//! future_block_time_ms_max = 7200000  # > 0
//!
//! [[validators]]                    # hotstuff: at least 1, at most block::QC_VOTES_MAX;
//!                                   # pow: optional (the miners allowed to connect)
//! name = "node0"                    # optional; unique; 1..=64 characters, no control chars
//! public_key = "<64 hex digits>"    # canonical ed25519 point, not of small order; unique
//! voting_power = 1                  # > 0; the total must fit in a u64
//! peer_id = "12D3KooW..."           # optional; if given, must be the key's libp2p peer id
//!
//! [[accounts]]
//! address = "<40 hex digits>"       # unique
//! balance = 1000000                 # the total over all accounts must fit in a u64
//!
//! [[upgrades]]
//! name = "oracle-v2"                # 1..=64 characters of a-z 0-9 -; unique
//! height = 100                      # > 0, strictly increasing in file order
//! protocol_version = 2              # strictly increasing, above the top-level version
//!
//! [oracle]                          # optional; absent means no feeds
//! unbonding_blocks = 100            # > 0
//! min_operator_stake = 1000
//! round_reward = 10
//!
//! [[oracle.feeds]]
//! id = "BTC/USD"                    # BASE/QUOTE, each 1..=12 characters of A-Z 0-9; unique
//! decimals = 8                      # <= 18
//! commit_window_blocks = 5          # > 0
//! reveal_window_blocks = 5          # > 0
//! quorum_bps = 5000                 # 1..=10000: revealed stake share a round needs
//! reward_band_bps = 100             # <= 10000
//! reveal_miss_penalty_bps = 10      # <= 10000
//! out_of_band_penalty_bps = 10      # <= 10000
//! ```

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::block::{BLOCK_BYTES_MAX, BLOCK_TXS_MAX, QC_VOTES_MAX};
use crate::codec;
use crate::keys;
use crate::tx::CHAIN_ID_LEN_MAX;
use crate::types::{Address, Amount, Hash, Height, ProtocolVersion, PublicKey, TimestampMs};

/// Largest genesis file read. Room for about 150,000 accounts; the bound keeps a wrong path
/// from being read into memory whole.
pub const GENESIS_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Smallest `block_bytes_max`: a floor that stops a slip of units (KiB for bytes) from making
/// a chain whose blocks cannot carry a transaction.
pub const BLOCK_BYTES_MIN: u32 = 1024;
/// Longest validator or upgrade name.
pub const NAME_CHARS_MAX: usize = 64;
/// Longest base or quote symbol of an oracle feed id.
pub const FEED_SYMBOL_CHARS_MAX: usize = 12;
/// Most decimals a feed price may have (10^18 still fits a u64 with room).
pub const FEED_DECIMALS_MAX: u32 = 18;
/// 100% in basis points.
pub const BPS_MAX: u32 = 10_000;

const ENGINE_HOTSTUFF: &str = "hotstuff";
const ENGINE_POW: &str = "pow";
/// How much of an offending string a message quotes.
const QUOTE_CHARS_MAX: usize = 80;

// ---------------------------------------------------------------------------------------------
// The file as written.

/// A genesis file as written: parsed, not yet checked. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisFile {
    pub chain_id: String,
    pub genesis_time_ms: u64,
    pub protocol_version: u32,
    pub consensus: ConsensusSection,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validators: Vec<ValidatorEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upgrades: Vec<UpgradeEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle: Option<OracleSection>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusSection {
    pub engine: String,
    pub block_txs_max: u32,
    pub block_bytes_max: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hotstuff: Option<HotStuffSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pow: Option<PowSection>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HotStuffSection {
    pub round_timeout_ms_base: u64,
    pub round_timeout_ms_max: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowSection {
    pub initial_bits: String,
    pub target_block_time_ms: u64,
    pub retarget_interval_blocks: u64,
    pub block_reward: u64,
    pub halving_interval_blocks: u64,
    pub coinbase_maturity_blocks: u64,
    pub future_block_time_ms_max: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub public_key: String,
    pub voting_power: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEntry {
    pub address: String,
    pub balance: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeEntry {
    pub name: String,
    pub height: u64,
    pub protocol_version: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OracleSection {
    pub unbonding_blocks: u64,
    pub min_operator_stake: u64,
    pub round_reward: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feeds: Vec<FeedEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedEntry {
    pub id: String,
    pub decimals: u32,
    pub commit_window_blocks: u64,
    pub reveal_window_blocks: u64,
    pub quorum_bps: u32,
    pub reward_band_bps: u32,
    pub reveal_miss_penalty_bps: u32,
    pub out_of_band_penalty_bps: u32,
}

// ---------------------------------------------------------------------------------------------
// The checked, typed genesis.

/// A validated genesis. Build one with [`Genesis::load`], [`Genesis::from_toml_str`],
/// [`GenesisFile::validate`] or [`Genesis::local`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    pub chain_id: String,
    pub genesis_time: TimestampMs,
    pub protocol_version: ProtocolVersion,
    pub consensus: ConsensusParams,
    pub validators: Vec<Validator>,
    pub accounts: Vec<GenesisAccount>,
    /// In increasing height (and protocol version) order.
    pub upgrades: Vec<Upgrade>,
    /// All zero with no feeds when the file has no `[oracle]` section.
    pub oracle: OracleParams,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusParams {
    pub block_txs_max: u32,
    pub block_bytes_max: u32,
    pub engine: EngineParams,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EngineParams {
    HotStuff(HotStuffParams),
    Pow(PowParams),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HotStuffParams {
    pub round_timeout_ms_base: u64,
    pub round_timeout_ms_max: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowParams {
    /// Compact target of the first blocks, in Bitcoin's `bits` encoding.
    pub initial_bits: u32,
    pub target_block_time_ms: u64,
    pub retarget_interval_blocks: u64,
    pub block_reward: Amount,
    pub halving_interval_blocks: u64,
    pub coinbase_maturity_blocks: u64,
    pub future_block_time_ms_max: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    pub name: Option<String>,
    pub public_key: PublicKey,
    pub voting_power: u64,
    /// Always filled: derived from the key when the file leaves it out.
    pub peer_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisAccount {
    pub address: Address,
    pub balance: Amount,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upgrade {
    pub name: String,
    pub height: Height,
    pub protocol_version: ProtocolVersion,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OracleParams {
    pub unbonding_blocks: u64,
    pub min_operator_stake: Amount,
    pub round_reward: Amount,
    pub feeds: Vec<GenesisFeed>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisFeed {
    /// `BASE/QUOTE`, e.g. `BTC/USD`.
    pub id: String,
    pub decimals: u8,
    pub commit_window_blocks: u64,
    pub reveal_window_blocks: u64,
    /// Share of the feed's stake that must reveal for a round to produce a price.
    pub quorum_bps: u16,
    /// Reveals within this distance of the median are rewarded.
    pub reward_band_bps: u16,
    pub reveal_miss_penalty_bps: u16,
    pub out_of_band_penalty_bps: u16,
}

/// Which engine [`Genesis::local`] sets up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    HotStuff,
    Pow,
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// One thing wrong with a genesis file: the field to blame (`validators[2].voting_power`)
/// and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("cannot read genesis file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot parse {}: {message}", describe(path.as_deref()))]
    Parse {
        path: Option<PathBuf>,
        message: String,
    },
    #[error("{}", render_problems(path.as_deref(), problems))]
    Invalid {
        path: Option<PathBuf>,
        problems: Vec<Problem>,
    },
}

fn describe(path: Option<&Path>) -> String {
    match path {
        Some(p) => format!("genesis file {}", p.display()),
        None => "genesis".to_string(),
    }
}

fn render_problems(path: Option<&Path>, problems: &[Problem]) -> String {
    let n = problems.len();
    let mut out = format!(
        "{} has {n} problem{}:",
        describe(path),
        if n == 1 { "" } else { "s" }
    );
    for p in problems {
        let _ = write!(out, "\n  - {p}");
    }
    out
}

impl GenesisError {
    fn with_path(self, path: &Path) -> GenesisError {
        match self {
            GenesisError::Parse { message, .. } => GenesisError::Parse {
                path: Some(path.to_path_buf()),
                message,
            },
            GenesisError::Invalid { problems, .. } => GenesisError::Invalid {
                path: Some(path.to_path_buf()),
                problems,
            },
            read @ GenesisError::Read { .. } => read,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Genesis.

impl Genesis {
    /// The network's name: two nodes are on the same network exactly when their genesis
    /// hashes are equal. Covers every field, through the canonical encoding.
    pub fn hash(&self) -> Hash {
        Hash::tagged(b"cairn/genesis/v1", &[&codec::encode(self)])
    }

    /// Reads, parses and validates the genesis file at `path`; errors name the file.
    pub fn load(path: &Path) -> Result<Genesis, GenesisError> {
        let read_error = |source| GenesisError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(read_error)?;
        let mut bytes = Vec::new();
        file.take(GENESIS_BYTES_MAX as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() > GENESIS_BYTES_MAX {
            return Err(read_error(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the file is over the limit of {GENESIS_BYTES_MAX} bytes"),
            )));
        }
        let text = String::from_utf8(bytes).map_err(|e| GenesisError::Parse {
            path: Some(path.to_path_buf()),
            message: format!("the file is not UTF-8 text: {}", e.utf8_error()),
        })?;
        Genesis::from_toml_str(&text).map_err(|e| e.with_path(path))
    }

    /// Parses and validates genesis TOML held in memory.
    pub fn from_toml_str(s: &str) -> Result<Genesis, GenesisError> {
        if s.len() > GENESIS_BYTES_MAX {
            return Err(GenesisError::Parse {
                path: None,
                message: format!(
                    "it is {} bytes, over the limit of {GENESIS_BYTES_MAX} bytes",
                    s.len()
                ),
            });
        }
        let file: GenesisFile = toml::from_str(s).map_err(|e| GenesisError::Parse {
            path: None,
            message: e.to_string().trim_end().to_string(),
        })?;
        file.validate()
    }

    /// The file that [`GenesisFile::validate`]s back to this genesis.
    pub fn to_file(&self) -> GenesisFile {
        let (engine, hotstuff, pow) = match &self.consensus.engine {
            EngineParams::HotStuff(h) => (
                ENGINE_HOTSTUFF,
                Some(HotStuffSection {
                    round_timeout_ms_base: h.round_timeout_ms_base,
                    round_timeout_ms_max: h.round_timeout_ms_max,
                }),
                None,
            ),
            EngineParams::Pow(p) => (
                ENGINE_POW,
                None,
                Some(PowSection {
                    initial_bits: format!("0x{:08x}", p.initial_bits),
                    target_block_time_ms: p.target_block_time_ms,
                    retarget_interval_blocks: p.retarget_interval_blocks,
                    block_reward: p.block_reward.0,
                    halving_interval_blocks: p.halving_interval_blocks,
                    coinbase_maturity_blocks: p.coinbase_maturity_blocks,
                    future_block_time_ms_max: p.future_block_time_ms_max,
                }),
            ),
        };
        // An absent section and an all-default one mean the same; the default is never valid
        // as a written section (unbonding_blocks must be > 0), so this is unambiguous.
        let oracle = (self.oracle != OracleParams::default()).then(|| OracleSection {
            unbonding_blocks: self.oracle.unbonding_blocks,
            min_operator_stake: self.oracle.min_operator_stake.0,
            round_reward: self.oracle.round_reward.0,
            feeds: self
                .oracle
                .feeds
                .iter()
                .map(|f| FeedEntry {
                    id: f.id.clone(),
                    decimals: f.decimals.into(),
                    commit_window_blocks: f.commit_window_blocks,
                    reveal_window_blocks: f.reveal_window_blocks,
                    quorum_bps: f.quorum_bps.into(),
                    reward_band_bps: f.reward_band_bps.into(),
                    reveal_miss_penalty_bps: f.reveal_miss_penalty_bps.into(),
                    out_of_band_penalty_bps: f.out_of_band_penalty_bps.into(),
                })
                .collect(),
        });
        GenesisFile {
            chain_id: self.chain_id.clone(),
            genesis_time_ms: self.genesis_time.0,
            protocol_version: self.protocol_version.0,
            consensus: ConsensusSection {
                engine: engine.to_string(),
                block_txs_max: self.consensus.block_txs_max,
                block_bytes_max: self.consensus.block_bytes_max,
                hotstuff,
                pow,
            },
            validators: self
                .validators
                .iter()
                .map(|v| ValidatorEntry {
                    name: v.name.clone(),
                    public_key: v.public_key.to_string(),
                    voting_power: v.voting_power,
                    peer_id: Some(v.peer_id.clone()),
                })
                .collect(),
            accounts: self
                .accounts
                .iter()
                .map(|a| AccountEntry {
                    address: a.address.to_string(),
                    balance: a.balance.0,
                })
                .collect(),
            upgrades: self
                .upgrades
                .iter()
                .map(|u| UpgradeEntry {
                    name: u.name.clone(),
                    height: u.height.0,
                    protocol_version: u.protocol_version.0,
                })
                .collect(),
            oracle,
        }
    }

    /// The protocol version blocks at height `h` follow: that of the last upgrade activated
    /// at or below `h`, else the genesis version.
    /// Block 0 and the state it creates (the genesis accounts, nothing else), with the state
    /// tree nodes to store. Pure, so engines and simulators can build block 0 too.
    pub fn block_zero(
        &self,
    ) -> (
        crate::block::Block,
        crate::state::StateChanges,
        crate::smt::TreeUpdate,
    ) {
        use crate::block::{Block, BlockHeader, Seal};
        use crate::smt::{Child, Node, Position};
        use crate::state::{Account, StateChanges};
        let mut changes = StateChanges::default();
        for a in &self.accounts {
            changes.previous.insert(a.address, None);
            changes.updated.insert(
                a.address,
                Account {
                    balance: a.balance,
                    ..Account::default()
                },
            );
        }
        // Validation builds the oracle too, so a genesis that got this far has a valid one.
        let oracle = crate::oracle::OracleState::from_genesis(&self.oracle)
            .ok()
            .flatten();
        if let Some(o) = &oracle {
            for f in o.feeds() {
                changes
                    .feeds_updated
                    .insert(f.id().clone(), std::sync::Arc::new(f.clone()));
            }
        }
        changes.oracle_after = oracle.map(std::sync::Arc::new);
        let nodes = std::collections::BTreeMap::<Position, Node>::new();
        let tree = crate::state::tree_update_with(
            &nodes,
            Child::Empty,
            changes.updated.iter().map(|(a, acc)| (a, Some(acc))),
            crate::state::feed_entries(&changes.feeds_updated),
        )
        .expect("building a tree from empty reads no stored nodes");
        let header = BlockHeader {
            height: Height(0),
            parent: self.hash(),
            timestamp: self.genesis_time,
            tx_root: crate::block::tx_root(&[]),
            state_root: tree.root_hash(),
            proposer: Address([0; 20]),
            protocol_version: self.protocol_version_at(Height(0)),
            seal: Seal::Genesis,
        };
        let block = Block {
            header,
            transactions: Vec::new(),
        };
        (block, changes, tree)
    }

    pub fn protocol_version_at(&self, h: Height) -> ProtocolVersion {
        crate::upgrades::version_at(self.protocol_version, &self.upgrades, h)
    }

    /// Validation guarantees the sum fits; saturating keeps a hand-built genesis from
    /// panicking here.
    pub fn total_voting_power(&self) -> u64 {
        self.validators
            .iter()
            .fold(0u64, |sum, v| sum.saturating_add(v.voting_power))
    }

    pub fn is_pow(&self) -> bool {
        matches!(self.consensus.engine, EngineParams::Pow(_))
    }

    /// A single-machine network: chain id `cairn-local`, validators named `node0`, `node1`, …
    /// with voting power 1, the `funded` accounts, one demo oracle feed `DEMO/USD`, and no
    /// upgrades. For PoW the validators are the allowed miners. The caller passes distinct
    /// keys and addresses; the result is checked by loading what [`Genesis::to_file`] writes.
    pub fn local(
        engine: EngineKind,
        validators: &[PublicKey],
        funded: &[(Address, Amount)],
        genesis_time: TimestampMs,
    ) -> Genesis {
        // Oracle windows are counted in blocks, so they are sized for the block rate: a BFT
        // network that carries traffic makes a block every few milliseconds (5 blocks would
        // be over before a publisher polling every 100 ms saw the window open), a local PoW
        // network one every 2 s.
        let window_blocks = match engine {
            EngineKind::HotStuff => 30,
            EngineKind::Pow => 5,
        };
        let engine = match engine {
            EngineKind::HotStuff => EngineParams::HotStuff(HotStuffParams {
                round_timeout_ms_base: 1000,
                round_timeout_ms_max: 30_000,
            }),
            EngineKind::Pow => EngineParams::Pow(PowParams {
                initial_bits: 0x1f00_ffff,
                target_block_time_ms: 2000,
                retarget_interval_blocks: 20,
                block_reward: Amount(50_0000_0000),
                halving_interval_blocks: 210_000,
                coinbase_maturity_blocks: 10,
                future_block_time_ms_max: 7_200_000,
            }),
        };
        Genesis {
            chain_id: "cairn-local".to_string(),
            genesis_time,
            protocol_version: ProtocolVersion(1),
            consensus: ConsensusParams {
                block_txs_max: 2000,
                block_bytes_max: 4 * 1024 * 1024,
                engine,
            },
            validators: validators
                .iter()
                .enumerate()
                .map(|(i, key)| Validator {
                    name: Some(format!("node{i}")),
                    public_key: *key,
                    voting_power: 1,
                    peer_id: keys::peer_id(key),
                })
                .collect(),
            accounts: funded
                .iter()
                .map(|&(address, balance)| GenesisAccount { address, balance })
                .collect(),
            upgrades: Vec::new(),
            oracle: OracleParams {
                unbonding_blocks: 100,
                min_operator_stake: Amount(1000),
                round_reward: Amount(10),
                feeds: vec![GenesisFeed {
                    id: "DEMO/USD".to_string(),
                    decimals: 6,
                    commit_window_blocks: window_blocks,
                    reveal_window_blocks: window_blocks,
                    quorum_bps: 5000,
                    reward_band_bps: 100,
                    reveal_miss_penalty_bps: 10,
                    out_of_band_penalty_bps: 10,
                }],
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validation.

/// Problems found so far. Each check adds what it finds and carries on, so one run reports
/// everything.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

impl GenesisFile {
    /// Checks every rule of the format and returns the typed genesis, or every problem found.
    pub fn validate(&self) -> Result<Genesis, GenesisError> {
        let mut p = Problems::default();
        check_chain_id(&self.chain_id, &mut p);
        if self.protocol_version < 1 {
            p.add("protocol_version", "is 0; protocol versions start at 1");
        }
        let consensus = check_consensus(&self.consensus, &mut p);
        let validators = check_validators(&self.validators, &self.consensus.engine, &mut p);
        let accounts = check_accounts(&self.accounts, &mut p);
        let upgrades = check_upgrades(&self.upgrades, self.protocol_version, &mut p);
        let oracle = match &self.oracle {
            Some(o) => check_oracle(o, &mut p),
            None => OracleParams::default(),
        };
        // Every check that returns None has added a problem; the emptiness test is the one
        // that decides.
        match consensus {
            Some(consensus) if p.0.is_empty() => Ok(Genesis {
                chain_id: self.chain_id.clone(),
                genesis_time: TimestampMs(self.genesis_time_ms),
                protocol_version: ProtocolVersion(self.protocol_version),
                consensus,
                validators,
                accounts,
                upgrades,
                oracle,
            }),
            _ => {
                debug_assert!(!p.0.is_empty(), "a check failed without saying why");
                Err(GenesisError::Invalid {
                    path: None,
                    problems: p.0,
                })
            }
        }
    }

    /// The file as TOML, with each field's meaning in a comment, so a generated file
    /// documents itself to the operator who edits it. Written by hand rather than with
    /// `toml::to_string` for those comments; strings still go through `toml` for quoting,
    /// and the round-trip tests keep this in step with the structs.
    pub fn to_toml_string(&self) -> String {
        let mut w = TomlWriter::default();
        w.comment("Cairn genesis file: the network's parameters and initial state.");
        w.comment(
            "Every node of a network must have exactly this file; its hash names the network.",
        );
        w.blank();
        w.string(
            "chain_id",
            &self.chain_id,
            "1..=64 characters of A-Z a-z 0-9 . _ -",
        );
        w.int(
            "genesis_time_ms",
            self.genesis_time_ms,
            "block 0 timestamp, ms since the Unix epoch",
        );
        w.int(
            "protocol_version",
            self.protocol_version,
            "protocol version at height 0, >= 1",
        );

        let c = &self.consensus;
        w.table("consensus", "");
        w.string(
            "engine",
            &c.engine,
            "\"hotstuff\" (BFT) or \"pow\" (proof of work)",
        );
        w.int(
            "block_txs_max",
            c.block_txs_max,
            "most transactions per block",
        );
        w.int(
            "block_bytes_max",
            c.block_bytes_max,
            "largest encoded block",
        );
        if let Some(h) = &c.hotstuff {
            w.table("consensus.hotstuff", "");
            w.int(
                "round_timeout_ms_base",
                h.round_timeout_ms_base,
                "first round timeout; doubles per failed round",
            );
            w.int(
                "round_timeout_ms_max",
                h.round_timeout_ms_max,
                "cap on the round timeout",
            );
        }
        if let Some(pow) = &c.pow {
            w.table("consensus.pow", "");
            w.string(
                "initial_bits",
                &pow.initial_bits,
                "compact target of the first blocks",
            );
            w.int("target_block_time_ms", pow.target_block_time_ms, "");
            w.int(
                "retarget_interval_blocks",
                pow.retarget_interval_blocks,
                "blocks between difficulty adjustments",
            );
            w.int(
                "block_reward",
                pow.block_reward,
                "coinbase reward before halvings, smallest units",
            );
            w.int("halving_interval_blocks", pow.halving_interval_blocks, "");
            w.int(
                "coinbase_maturity_blocks",
                pow.coinbase_maturity_blocks,
                "blocks before a coinbase can be spent",
            );
            w.int(
                "future_block_time_ms_max",
                pow.future_block_time_ms_max,
                "how far ahead of a node's clock a block may be",
            );
        }

        for v in &self.validators {
            w.array_table("validators");
            if let Some(name) = &v.name {
                w.string("name", name, "");
            }
            w.string("public_key", &v.public_key, "ed25519");
            w.int("voting_power", v.voting_power, "");
            if let Some(peer_id) = &v.peer_id {
                w.string("peer_id", peer_id, "libp2p peer id of public_key");
            }
        }
        for a in &self.accounts {
            w.array_table("accounts");
            w.string("address", &a.address, "");
            w.int("balance", a.balance, "smallest units");
        }
        for u in &self.upgrades {
            w.array_table("upgrades");
            w.string("name", &u.name, "");
            w.int("height", u.height, "first block under the new rules");
            w.int("protocol_version", u.protocol_version, "");
        }
        if let Some(o) = &self.oracle {
            w.table("oracle", "");
            w.int(
                "unbonding_blocks",
                o.unbonding_blocks,
                "blocks before unstaked funds are released",
            );
            w.int("min_operator_stake", o.min_operator_stake, "");
            w.int(
                "round_reward",
                o.round_reward,
                "paid per round to in-band reporters",
            );
            for f in &o.feeds {
                w.array_table("oracle.feeds");
                w.string("id", &f.id, "BASE/QUOTE");
                w.int("decimals", f.decimals, "");
                w.int("commit_window_blocks", f.commit_window_blocks, "");
                w.int("reveal_window_blocks", f.reveal_window_blocks, "");
                w.int(
                    "quorum_bps",
                    f.quorum_bps,
                    "revealed stake share a round needs",
                );
                w.int(
                    "reward_band_bps",
                    f.reward_band_bps,
                    "distance from the median still rewarded",
                );
                w.int("reveal_miss_penalty_bps", f.reveal_miss_penalty_bps, "");
                w.int("out_of_band_penalty_bps", f.out_of_band_penalty_bps, "");
            }
        }
        w.out
    }
}

#[derive(Default)]
struct TomlWriter {
    out: String,
}

impl TomlWriter {
    fn comment(&mut self, text: &str) {
        let _ = writeln!(self.out, "# {text}");
    }
    fn blank(&mut self) {
        self.out.push('\n');
    }
    fn table(&mut self, name: &str, comment: &str) {
        self.blank();
        self.line(&format!("[{name}]"), comment);
    }
    fn array_table(&mut self, name: &str) {
        self.blank();
        self.line(&format!("[[{name}]]"), "");
    }
    fn string(&mut self, key: &str, value: &str, comment: &str) {
        // toml's own rendering of a string value does the quoting and escaping.
        let quoted = toml::Value::String(value.to_string()).to_string();
        self.line(&format!("{key} = {quoted}"), comment);
    }
    fn int(&mut self, key: &str, value: impl Into<u64>, comment: &str) {
        self.line(&format!("{key} = {}", value.into()), comment);
    }
    fn line(&mut self, text: &str, comment: &str) {
        if comment.is_empty() {
            let _ = writeln!(self.out, "{text}");
        } else {
            let _ = writeln!(self.out, "{text:<36} # {comment}");
        }
    }
}

/// An untrusted string as it appears in a message: quoted, escaped and cut to a readable
/// length.
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_CHARS_MAX) {
        Some((i, _)) => format!("{:?}…", &s[..i]),
        None => format!("{s:?}"),
    }
}

fn check_chain_id(chain_id: &str, p: &mut Problems) {
    const RULE: &str = "a chain id is 1 to 64 characters of A-Z a-z 0-9 . _ -";
    if chain_id.is_empty() {
        p.add("chain_id", format!("is empty; {RULE}"));
    } else if let Some(c) = chain_id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        p.add(
            "chain_id",
            format!("{} contains {c:?}; {RULE}", quote(chain_id)),
        );
    } else if chain_id.len() > CHAIN_ID_LEN_MAX {
        p.add(
            "chain_id",
            format!(
                "{} is {} characters, over the limit of {CHAIN_ID_LEN_MAX}",
                quote(chain_id),
                chain_id.len()
            ),
        );
    }
}

fn check_consensus(c: &ConsensusSection, p: &mut Problems) -> Option<ConsensusParams> {
    if c.block_txs_max == 0 || c.block_txs_max as usize > BLOCK_TXS_MAX {
        p.add(
            "consensus.block_txs_max",
            format!(
                "{} is outside 1..={BLOCK_TXS_MAX} (the most any block may hold)",
                c.block_txs_max
            ),
        );
    }
    if c.block_bytes_max < BLOCK_BYTES_MIN || c.block_bytes_max as usize > BLOCK_BYTES_MAX {
        p.add(
            "consensus.block_bytes_max",
            format!(
                "{} is outside {BLOCK_BYTES_MIN}..={BLOCK_BYTES_MAX} bytes",
                c.block_bytes_max
            ),
        );
    }
    // Sections are checked whether or not the engine wants them, so their own problems are
    // reported alongside a wrong engine name.
    let hotstuff = c.hotstuff.as_ref().map(|h| check_hotstuff(h, p));
    let pow = c.pow.as_ref().map(|s| check_pow(s, p));
    let engine = match c.engine.as_str() {
        ENGINE_HOTSTUFF => {
            if c.pow.is_some() {
                p.add(
                    "consensus.pow",
                    "section given but engine is \"hotstuff\"; remove it or set engine = \"pow\"",
                );
            }
            match hotstuff {
                Some(h) => Some(EngineParams::HotStuff(h)),
                None => {
                    p.add(
                        "consensus.hotstuff",
                        "missing; engine \"hotstuff\" needs a [consensus.hotstuff] section",
                    );
                    None
                }
            }
        }
        ENGINE_POW => {
            if c.hotstuff.is_some() {
                p.add(
                    "consensus.hotstuff",
                    "section given but engine is \"pow\"; remove it or set engine = \"hotstuff\"",
                );
            }
            match pow {
                Some(s) => s.map(EngineParams::Pow),
                None => {
                    p.add(
                        "consensus.pow",
                        "missing; engine \"pow\" needs a [consensus.pow] section",
                    );
                    None
                }
            }
        }
        other => {
            p.add(
                "consensus.engine",
                format!(
                    "unknown engine {}; expected \"hotstuff\" or \"pow\"",
                    quote(other)
                ),
            );
            None
        }
    };
    Some(ConsensusParams {
        block_txs_max: c.block_txs_max,
        block_bytes_max: c.block_bytes_max,
        engine: engine?,
    })
}

fn check_hotstuff(h: &HotStuffSection, p: &mut Problems) -> HotStuffParams {
    if h.round_timeout_ms_base == 0 {
        p.add(
            "consensus.hotstuff.round_timeout_ms_base",
            "is 0; a round needs time for a proposal and votes to travel",
        );
    }
    if h.round_timeout_ms_max < h.round_timeout_ms_base {
        p.add(
            "consensus.hotstuff.round_timeout_ms_max",
            format!(
                "{} is below round_timeout_ms_base ({}); the cap must be at least the first \
                 timeout",
                h.round_timeout_ms_max, h.round_timeout_ms_base
            ),
        );
    }
    HotStuffParams {
        round_timeout_ms_base: h.round_timeout_ms_base,
        round_timeout_ms_max: h.round_timeout_ms_max,
    }
}

fn check_pow(s: &PowSection, p: &mut Problems) -> Option<PowParams> {
    let bits = match parse_bits(&s.initial_bits) {
        Ok(bits) => Some(bits),
        Err(message) => {
            p.add("consensus.pow.initial_bits", message);
            None
        }
    };
    let positive = [
        ("target_block_time_ms", s.target_block_time_ms),
        ("retarget_interval_blocks", s.retarget_interval_blocks),
        ("halving_interval_blocks", s.halving_interval_blocks),
        ("future_block_time_ms_max", s.future_block_time_ms_max),
    ];
    for (field, value) in positive {
        if value == 0 {
            p.add(format!("consensus.pow.{field}"), "is 0; it must be above 0");
        }
    }
    Some(PowParams {
        initial_bits: bits?,
        target_block_time_ms: s.target_block_time_ms,
        retarget_interval_blocks: s.retarget_interval_blocks,
        block_reward: Amount(s.block_reward),
        halving_interval_blocks: s.halving_interval_blocks,
        coinbase_maturity_blocks: s.coinbase_maturity_blocks,
        future_block_time_ms_max: s.future_block_time_ms_max,
    })
}

/// A compact target written as hex (`0x1d00ffff` or `1d00ffff`), checked by [`check_bits`].
fn parse_bits(s: &str) -> Result<u32, String> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if digits.is_empty() || digits.len() > 8 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "{} is not a compact target; expected 1 to 8 hex digits such as \"0x1f00ffff\"",
            quote(s)
        ));
    }
    let bits = u32::from_str_radix(digits, 16)
        .map_err(|e| format!("{} is not a compact target: {e}", quote(s)))?;
    check_bits(bits)?;
    Ok(bits)
}

/// Bitcoin's compact encoding: exponent (the top byte) and a 23-bit mantissa with a sign bit,
/// target = mantissa × 256^(exponent − 3). The rules are those under which Bitcoin Core's
/// `SetCompact` yields a usable target: not negative, not zero, not over 256 bits.
fn check_bits(bits: u32) -> Result<(), String> {
    let exponent = bits >> 24;
    let mantissa = bits & 0x007f_ffff;
    if bits & 0x0080_0000 != 0 {
        return Err(format!(
            "0x{bits:08x} has the sign bit (0x00800000) set, so the target is negative; \
             shift the mantissa right a byte and add 1 to the exponent"
        ));
    }
    // An exponent below 3 shifts mantissa bytes out to the right.
    let kept = if exponent <= 3 {
        mantissa >> (8 * (3 - exponent))
    } else {
        mantissa
    };
    if kept == 0 {
        return Err(format!(
            "0x{bits:08x} encodes a target of zero, which no block hash can meet"
        ));
    }
    let overflows =
        exponent > 34 || (mantissa > 0xff && exponent > 33) || (mantissa > 0xffff && exponent > 32);
    if overflows {
        return Err(format!(
            "0x{bits:08x} encodes a target that does not fit in 256 bits (exponent {exponent}, \
             mantissa 0x{mantissa:06x})"
        ));
    }
    Ok(())
}

/// A public key that verifies signatures under the rules in `crypto`: a canonical encoding of
/// a curve point that is not of small order.
fn parse_validator_key(s: &str) -> Result<PublicKey, String> {
    let key: PublicKey = s
        .parse()
        .map_err(|e| format!("{} is not a public key: {e}", quote(s)))?;
    crate::crypto::check_public_key(&key)
        .map_err(|e| format!("{key} cannot be a validator key: {e}"))?;
    Ok(key)
}

/// A validator or upgrade name: 1..=NAME_CHARS_MAX characters each allowed by `ok`.
fn check_name(name: &str, ok: impl Fn(char) -> bool, rule: &str, path: String, p: &mut Problems) {
    let count = name.chars().count();
    let message = if name.is_empty() {
        format!("is empty; {rule}")
    } else if count > NAME_CHARS_MAX {
        format!(
            "{} is {count} characters, over the limit of {NAME_CHARS_MAX}",
            quote(name)
        )
    } else if let Some(c) = name.chars().find(|&c| !ok(c)) {
        format!("{} contains {c:?}; {rule}", quote(name))
    } else {
        return;
    };
    p.add(path, message);
}

fn check_validators(entries: &[ValidatorEntry], engine: &str, p: &mut Problems) -> Vec<Validator> {
    if engine == ENGINE_HOTSTUFF {
        if entries.is_empty() {
            p.add(
                "validators",
                "none given; engine \"hotstuff\" needs at least one [[validators]] entry",
            );
        } else if entries.len() > QC_VOTES_MAX {
            p.add(
                "validators",
                format!(
                    "{} given, over the limit of {QC_VOTES_MAX} (the most signatures a quorum \
                     certificate can carry)",
                    entries.len()
                ),
            );
        }
    }
    let mut out = Vec::with_capacity(entries.len());
    let mut keys_seen: HashMap<PublicKey, usize> = HashMap::new();
    let mut names_seen: HashMap<&str, usize> = HashMap::new();
    let mut total: Option<u64> = Some(0);
    for (i, v) in entries.iter().enumerate() {
        let at = |field: &str| format!("validators[{i}].{field}");
        if let Some(name) = &v.name {
            check_name(
                name,
                |c| !c.is_control(),
                "a name is 1 to 64 characters, without control characters",
                at("name"),
                p,
            );
            if let Some(j) = first_seen(&mut names_seen, name.as_str(), i) {
                p.add(
                    at("name"),
                    format!("{} is already the name of validators[{j}]", quote(name)),
                );
            }
        }
        if v.voting_power == 0 {
            p.add(
                at("voting_power"),
                "is 0; every validator needs a voting power above 0",
            );
        }
        let before = total;
        total = total.and_then(|t| t.checked_add(v.voting_power));
        if before.is_some() && total.is_none() {
            p.add(
                at("voting_power"),
                format!(
                    "adding {} makes the total voting power overflow a u64 (max {})",
                    v.voting_power,
                    u64::MAX
                ),
            );
        }
        let key = match parse_validator_key(&v.public_key) {
            Ok(key) => key,
            Err(message) => {
                p.add(at("public_key"), message);
                continue;
            }
        };
        if let Some(j) = first_seen(&mut keys_seen, key, i) {
            p.add(
                at("public_key"),
                format!("duplicate of validators[{j}] ({key}); each key may appear once"),
            );
        }
        let derived = keys::peer_id(&key);
        if let Some(given) = &v.peer_id
            && *given != derived
        {
            p.add(
                at("peer_id"),
                format!(
                    "{} is not the peer id of public_key, which is {derived}",
                    quote(given)
                ),
            );
        }
        out.push(Validator {
            name: v.name.clone(),
            public_key: key,
            voting_power: v.voting_power,
            peer_id: derived,
        });
    }
    out
}

/// The index `key` was first seen at, or None (recording `i`) if this is the first time:
/// duplicates point at the first occurrence, however many there are.
fn first_seen<K: std::hash::Hash + Eq>(
    seen: &mut HashMap<K, usize>,
    key: K,
    i: usize,
) -> Option<usize> {
    match seen.entry(key) {
        std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(i);
            None
        }
    }
}

fn check_accounts(entries: &[AccountEntry], p: &mut Problems) -> Vec<GenesisAccount> {
    let mut out = Vec::with_capacity(entries.len());
    let mut seen: HashMap<Address, usize> = HashMap::new();
    let mut total: Option<u64> = Some(0);
    for (i, a) in entries.iter().enumerate() {
        let at = |field: &str| format!("accounts[{i}].{field}");
        let before = total;
        total = total.and_then(|t| t.checked_add(a.balance));
        if before.is_some() && total.is_none() {
            p.add(
                at("balance"),
                format!(
                    "adding {} makes the total supply overflow a u64 (max {})",
                    a.balance,
                    u64::MAX
                ),
            );
        }
        match a.address.parse::<Address>() {
            Ok(address) => {
                if let Some(j) = first_seen(&mut seen, address, i) {
                    p.add(
                        at("address"),
                        format!("duplicate of accounts[{j}] ({address}); list each account once"),
                    );
                }
                out.push(GenesisAccount {
                    address,
                    balance: Amount(a.balance),
                });
            }
            Err(e) => p.add(
                at("address"),
                format!("{} is not an address: {e}", quote(&a.address)),
            ),
        }
    }
    out
}

fn check_upgrades(
    entries: &[UpgradeEntry],
    genesis_version: u32,
    p: &mut Problems,
) -> Vec<Upgrade> {
    let mut names_seen: HashMap<&str, usize> = HashMap::new();
    for (i, u) in entries.iter().enumerate() {
        let at = |field: &str| format!("upgrades[{i}].{field}");
        check_name(
            &u.name,
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
            "an upgrade name is 1 to 64 characters of a-z 0-9 -",
            at("name"),
            p,
        );
        if let Some(j) = first_seen(&mut names_seen, u.name.as_str(), i) {
            p.add(
                at("name"),
                format!("{} is already the name of upgrades[{j}]", quote(&u.name)),
            );
        }
        if u.height == 0 {
            p.add(
                at("height"),
                "is 0; height 0 is the genesis block itself, so an upgrade activates at 1 or later",
            );
        }
        let prev = i.checked_sub(1).map(|j| (j, &entries[j]));
        if let Some((j, prev)) = prev
            && u.height <= prev.height
        {
            p.add(
                at("height"),
                format!(
                    "{} is not above upgrades[{j}].height ({}); upgrades must be in increasing \
                     height order",
                    u.height, prev.height
                ),
            );
        }
        if u.protocol_version <= genesis_version {
            p.add(
                at("protocol_version"),
                format!(
                    "{} is not above the genesis protocol_version ({genesis_version}); an \
                     upgrade must raise the version",
                    u.protocol_version
                ),
            );
        } else if let Some((j, prev)) = prev
            && u.protocol_version <= prev.protocol_version
        {
            p.add(
                at("protocol_version"),
                format!(
                    "{} is not above upgrades[{j}].protocol_version ({}); versions must \
                     increase with height",
                    u.protocol_version, prev.protocol_version
                ),
            );
        }
    }
    entries
        .iter()
        .map(|u| Upgrade {
            name: u.name.clone(),
            height: Height(u.height),
            protocol_version: ProtocolVersion(u.protocol_version),
        })
        .collect()
}

fn check_oracle(o: &OracleSection, p: &mut Problems) -> OracleParams {
    if o.unbonding_blocks == 0 {
        p.add(
            "oracle.unbonding_blocks",
            "is 0; unstaking must wait so that a penalty cannot be dodged by leaving first",
        );
    }
    let mut feeds = Vec::with_capacity(o.feeds.len());
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, f) in o.feeds.iter().enumerate() {
        let at = |field: &str| format!("oracle.feeds[{i}].{field}");
        if let Err(message) = check_feed_id(&f.id) {
            p.add(at("id"), message);
        } else if let Some(j) = first_seen(&mut seen, f.id.as_str(), i) {
            p.add(
                at("id"),
                format!("{} is already the id of oracle.feeds[{j}]", quote(&f.id)),
            );
        }
        if f.decimals > FEED_DECIMALS_MAX {
            p.add(
                at("decimals"),
                format!("{} is over the limit of {FEED_DECIMALS_MAX}", f.decimals),
            );
        }
        for (field, value) in [
            ("commit_window_blocks", f.commit_window_blocks),
            ("reveal_window_blocks", f.reveal_window_blocks),
        ] {
            if value == 0 {
                p.add(at(field), "is 0; a window must last at least one block");
            }
        }
        if f.quorum_bps == 0 || f.quorum_bps > BPS_MAX {
            p.add(
                at("quorum_bps"),
                format!(
                    "{} is outside 1..={BPS_MAX} (basis points of the feed's stake)",
                    f.quorum_bps
                ),
            );
        }
        for (field, value) in [
            ("reward_band_bps", f.reward_band_bps),
            ("reveal_miss_penalty_bps", f.reveal_miss_penalty_bps),
            ("out_of_band_penalty_bps", f.out_of_band_penalty_bps),
        ] {
            if value > BPS_MAX {
                p.add(
                    at(field),
                    format!("{value} is over {BPS_MAX} basis points (100%)"),
                );
            }
        }
        // Out-of-range values are reported above and make the whole file fail, so the
        // narrowing fallbacks here are never part of a returned genesis.
        let bps = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        feeds.push(GenesisFeed {
            id: f.id.clone(),
            decimals: u8::try_from(f.decimals).unwrap_or(u8::MAX),
            commit_window_blocks: f.commit_window_blocks,
            reveal_window_blocks: f.reveal_window_blocks,
            quorum_bps: bps(f.quorum_bps),
            reward_band_bps: bps(f.reward_band_bps),
            reveal_miss_penalty_bps: bps(f.reveal_miss_penalty_bps),
            out_of_band_penalty_bps: bps(f.out_of_band_penalty_bps),
        });
    }
    let params = OracleParams {
        unbonding_blocks: o.unbonding_blocks,
        min_operator_stake: Amount(o.min_operator_stake),
        round_reward: Amount(o.round_reward),
        feeds,
    };
    // The oracle's own rules (e.g. unbonding must outlast a round) once the fields above are
    // each in range.
    if p.0.is_empty()
        && let Err(e) = crate::oracle::OracleState::from_genesis(&params)
    {
        let path = match &e.feed {
            Some(id) => match params.feeds.iter().position(|f| f.id == id.as_str()) {
                Some(_) if e.field == "round_reward" => "oracle.round_reward".to_string(),
                Some(i) => format!("oracle.feeds[{i}].{}", e.field),
                None => format!("oracle.{}", e.field),
            },
            None => format!("oracle.{}", e.field),
        };
        p.add(path, format!("{}: {}", e.value, e.rule));
    }
    params
}

fn check_feed_id(id: &str) -> Result<(), String> {
    let rule = "a feed id is BASE/QUOTE, each 1 to 12 characters of A-Z 0-9, such as \"BTC/USD\"";
    let Some((base, quote_symbol)) = id.split_once('/') else {
        return Err(format!("{} has no '/'; {rule}", quote(id)));
    };
    for symbol in [base, quote_symbol] {
        let valid = !symbol.is_empty()
            && symbol.len() <= FEED_SYMBOL_CHARS_MAX
            && symbol
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !valid {
            return Err(format!(
                "{} has the symbol {}; {rule}",
                quote(id),
                quote(symbol)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn key(seed: u8) -> PublicKey {
        Keypair::from_secret(&[seed; 32]).public()
    }

    fn address(seed: u8) -> Address {
        key(seed).address()
    }

    /// The format's own example, with real keys.
    fn example_toml() -> String {
        format!(
            r#"
chain_id = "cairn-local"
genesis_time_ms = 1767225600000
protocol_version = 1

[consensus]
engine = "hotstuff"
block_txs_max = 2000
block_bytes_max = 4194304

[consensus.hotstuff]
round_timeout_ms_base = 1000
round_timeout_ms_max = 30000

[[validators]]
name = "node0"
public_key = "{k1}"
voting_power = 1
peer_id = "{p1}"

[[validators]]
public_key = "0x{k2}"
voting_power = 3

[[accounts]]
address = "{a1}"
balance = 1000000

[[upgrades]]
name = "oracle-v2"
height = 100
protocol_version = 2

[[upgrades]]
name = "fees-v3"
height = 250
protocol_version = 3

[oracle]
unbonding_blocks = 100
min_operator_stake = 1000
round_reward = 10

[[oracle.feeds]]
id = "BTC/USD"
decimals = 8
commit_window_blocks = 5
reveal_window_blocks = 5
quorum_bps = 5000
reward_band_bps = 100
reveal_miss_penalty_bps = 10
out_of_band_penalty_bps = 10
"#,
            k1 = key(1),
            p1 = keys::peer_id(&key(1)),
            k2 = key(2),
            a1 = address(9),
        )
    }

    fn example() -> Genesis {
        Genesis::from_toml_str(&example_toml()).unwrap()
    }

    fn pow_example() -> Genesis {
        Genesis::local(
            EngineKind::Pow,
            &[key(1)],
            &[(address(9), Amount(5))],
            TimestampMs(7),
        )
    }

    fn problems(result: Result<Genesis, GenesisError>) -> Vec<Problem> {
        match result {
            Err(GenesisError::Invalid { problems, .. }) => problems,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn problem_paths(toml: &str) -> Vec<String> {
        let mut paths: Vec<String> = problems(Genesis::from_toml_str(toml))
            .into_iter()
            .map(|p| p.path)
            .collect();
        paths.sort();
        paths
    }

    fn round_trip(g: &Genesis) -> Genesis {
        Genesis::from_toml_str(&g.to_file().to_toml_string()).unwrap()
    }

    #[test]
    fn example_parses_into_the_typed_genesis() {
        let g = example();
        assert_eq!(g.chain_id, "cairn-local");
        assert_eq!(g.genesis_time, TimestampMs(1_767_225_600_000));
        assert_eq!(
            g.consensus.engine,
            EngineParams::HotStuff(HotStuffParams {
                round_timeout_ms_base: 1000,
                round_timeout_ms_max: 30_000
            })
        );
        assert_eq!(g.validators.len(), 2);
        assert_eq!(g.validators[1].name, None);
        assert_eq!(g.validators[1].public_key, key(2));
        // Left out in the file, derived from the key.
        assert_eq!(g.validators[1].peer_id, keys::peer_id(&key(2)));
        assert_eq!(g.total_voting_power(), 4);
        assert!(!g.is_pow());
        assert_eq!(g.accounts[0].address, address(9));
        assert_eq!(g.oracle.feeds[0].decimals, 8);
        assert_eq!(g.oracle.feeds[0].quorum_bps, 5000);
    }

    #[test]
    fn written_file_loads_back_equal_with_the_same_hash() {
        for g in [
            example(),
            pow_example(),
            Genesis::local(
                EngineKind::HotStuff,
                &[key(1), key(2), key(3)],
                &[],
                TimestampMs(0),
            ),
        ] {
            let text = g.to_file().to_toml_string();
            let back = Genesis::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(back, g);
            assert_eq!(back.hash(), g.hash());
        }
    }

    #[test]
    fn local_genesis_has_the_documented_defaults() {
        let g = pow_example();
        assert!(g.is_pow());
        let EngineParams::Pow(pow) = &g.consensus.engine else {
            unreachable!()
        };
        assert_eq!(pow.initial_bits, 0x1f00ffff);
        assert_eq!(pow.block_reward, Amount(5_000_000_000));
        assert_eq!(g.consensus.block_bytes_max, 4 * 1024 * 1024);
        assert_eq!(g.validators[0].name.as_deref(), Some("node0"));
        assert_eq!(g.oracle.feeds[0].id, "DEMO/USD");
        assert!(g.upgrades.is_empty());
        // The validation rules agree with the defaults.
        assert_eq!(g.to_file().validate().unwrap(), g);
    }

    #[test]
    fn absent_oracle_section_means_no_feeds_and_round_trips() {
        let mut g = example();
        g.oracle = OracleParams::default();
        assert!(g.to_file().oracle.is_none());
        assert_eq!(round_trip(&g), g);
        // An oracle section with no feeds is not the same network as no section.
        let mut with_section = g.clone();
        with_section.oracle.unbonding_blocks = 1;
        with_section.oracle.min_operator_stake = Amount(1);
        assert_eq!(round_trip(&with_section), with_section);
        assert_ne!(with_section.hash(), g.hash());
    }

    #[test]
    fn hash_changes_when_any_field_changes() {
        type Edit = fn(&mut Genesis);
        let hotstuff_edits: Vec<Edit> = vec![
            |g| g.chain_id.push('x'),
            |g| g.genesis_time.0 += 1,
            |g| g.protocol_version.0 += 1,
            |g| g.consensus.block_txs_max += 1,
            |g| g.consensus.block_bytes_max += 1,
            |g| {
                if let EngineParams::HotStuff(h) = &mut g.consensus.engine {
                    h.round_timeout_ms_base += 1
                }
            },
            |g| {
                if let EngineParams::HotStuff(h) = &mut g.consensus.engine {
                    h.round_timeout_ms_max += 1
                }
            },
            |g| g.validators[0].name = None,
            |g| g.validators[0].name = Some("node9".into()),
            |g| g.validators[0].public_key = key(7),
            |g| g.validators[0].voting_power += 1,
            |g| g.validators[0].peer_id.push('x'),
            |g| g.validators.swap(0, 1),
            |g| {
                g.validators.pop();
            },
            |g| g.accounts[0].address = address(8),
            |g| g.accounts[0].balance.0 += 1,
            |g| g.accounts.clear(),
            |g| g.upgrades[0].name.push('x'),
            |g| g.upgrades[0].height.0 += 1,
            |g| g.upgrades[0].protocol_version.0 += 1,
            |g| {
                g.upgrades.pop();
            },
            |g| g.oracle.unbonding_blocks += 1,
            |g| g.oracle.min_operator_stake.0 += 1,
            |g| g.oracle.round_reward.0 += 1,
            |g| g.oracle.feeds[0].id.push('X'),
            |g| g.oracle.feeds[0].decimals += 1,
            |g| g.oracle.feeds[0].commit_window_blocks += 1,
            |g| g.oracle.feeds[0].reveal_window_blocks += 1,
            |g| g.oracle.feeds[0].quorum_bps += 1,
            |g| g.oracle.feeds[0].reward_band_bps += 1,
            |g| g.oracle.feeds[0].reveal_miss_penalty_bps += 1,
            |g| g.oracle.feeds[0].out_of_band_penalty_bps += 1,
            |g| g.oracle.feeds.clear(),
            |g| g.consensus.engine = pow_example().consensus.engine,
        ];
        let pow_edits: Vec<Edit> = vec![
            |g| pow_params(g).initial_bits -= 1,
            |g| pow_params(g).target_block_time_ms += 1,
            |g| pow_params(g).retarget_interval_blocks += 1,
            |g| pow_params(g).block_reward.0 += 1,
            |g| pow_params(g).halving_interval_blocks += 1,
            |g| pow_params(g).coinbase_maturity_blocks += 1,
            |g| pow_params(g).future_block_time_ms_max += 1,
        ];
        for (base, edits) in [(example(), hotstuff_edits), (pow_example(), pow_edits)] {
            let mut hashes = HashSet::from([base.hash()]);
            for (i, edit) in edits.iter().enumerate() {
                let mut g = base.clone();
                edit(&mut g);
                assert_ne!(g, base, "edit {i} changed nothing");
                assert!(hashes.insert(g.hash()), "edit {i} did not change the hash");
            }
        }
    }

    fn pow_params(g: &mut Genesis) -> &mut PowParams {
        match &mut g.consensus.engine {
            EngineParams::Pow(p) => p,
            EngineParams::HotStuff(_) => panic!("not a pow genesis"),
        }
    }

    #[test]
    fn every_problem_in_a_file_is_reported_with_its_path() {
        let big = i64::MAX;
        let toml = format!(
            r#"
chain_id = "bad chain!"
genesis_time_ms = 0
protocol_version = 0

[consensus]
engine = "hotstuff"
block_txs_max = 0
block_bytes_max = 10

[consensus.hotstuff]
round_timeout_ms_base = 0
round_timeout_ms_max = 0

[consensus.pow]
initial_bits = "0x00800000"
target_block_time_ms = 0
retarget_interval_blocks = 1
block_reward = 1
halving_interval_blocks = 1
coinbase_maturity_blocks = 1
future_block_time_ms_max = 1

[[validators]]
name = "a"
public_key = "{k1}"
voting_power = 0

[[validators]]
name = "a"
public_key = "{k1}"
voting_power = 1
peer_id = "{p2}"

[[validators]]
public_key = "zz"
voting_power = 1

[[accounts]]
address = "{a1}"
balance = {big}

[[accounts]]
address = "{a1}"
balance = {big}

[[accounts]]
address = "xyz"
balance = {big}

[[upgrades]]
name = "Bad Name"
height = 0
protocol_version = 0

[[upgrades]]
name = "up"
height = 100
protocol_version = 5

[[upgrades]]
name = "up"
height = 50
protocol_version = 3

[oracle]
unbonding_blocks = 0
min_operator_stake = 0
round_reward = 0

[[oracle.feeds]]
id = "btc/usd"
decimals = 19
commit_window_blocks = 0
reveal_window_blocks = 0
quorum_bps = 0
reward_band_bps = 10001
reveal_miss_penalty_bps = 10001
out_of_band_penalty_bps = 10001

[[oracle.feeds]]
id = "BTC/USD"
decimals = 8
commit_window_blocks = 5
reveal_window_blocks = 5
quorum_bps = 5000
reward_band_bps = 100
reveal_miss_penalty_bps = 10
out_of_band_penalty_bps = 10

[[oracle.feeds]]
id = "BTC/USD"
decimals = 8
commit_window_blocks = 5
reveal_window_blocks = 5
quorum_bps = 5000
reward_band_bps = 100
reveal_miss_penalty_bps = 10
out_of_band_penalty_bps = 10
"#,
            k1 = key(1),
            p2 = keys::peer_id(&key(2)),
            a1 = address(1),
        );
        let mut expected = vec![
            "chain_id",
            "protocol_version",
            "consensus.block_txs_max",
            "consensus.block_bytes_max",
            "consensus.hotstuff.round_timeout_ms_base",
            "consensus.pow",
            "consensus.pow.initial_bits",
            "consensus.pow.target_block_time_ms",
            "validators[0].voting_power",
            "validators[1].name",
            "validators[1].public_key",
            "validators[1].peer_id",
            "validators[2].public_key",
            "accounts[1].address",
            "accounts[2].address",
            "accounts[2].balance",
            "upgrades[0].name",
            "upgrades[0].height",
            "upgrades[0].protocol_version",
            "upgrades[2].name",
            "upgrades[2].height",
            "upgrades[2].protocol_version",
            "oracle.unbonding_blocks",
            "oracle.feeds[0].id",
            "oracle.feeds[0].decimals",
            "oracle.feeds[0].commit_window_blocks",
            "oracle.feeds[0].reveal_window_blocks",
            "oracle.feeds[0].quorum_bps",
            "oracle.feeds[0].reward_band_bps",
            "oracle.feeds[0].reveal_miss_penalty_bps",
            "oracle.feeds[0].out_of_band_penalty_bps",
            "oracle.feeds[2].id",
        ];
        expected.sort();
        assert_eq!(problem_paths(&toml), expected);
    }

    #[test]
    fn messages_name_the_offending_values() {
        let base = example_toml();
        let messages = |toml: String| -> Vec<String> {
            problems(Genesis::from_toml_str(&toml))
                .into_iter()
                .map(|p| p.to_string())
                .collect()
        };

        let m = messages(base.replace("height = 250", "height = 50"));
        assert_eq!(
            m,
            [
                "upgrades[1].height: 50 is not above upgrades[0].height (100); upgrades must be in \
              increasing height order"
            ]
        );

        let m = messages(base.replace("engine = \"hotstuff\"", "engine = \"raft\""));
        assert_eq!(
            m,
            ["consensus.engine: unknown engine \"raft\"; expected \"hotstuff\" or \"pow\""]
        );

        let m = messages(base.replace(&format!("0x{}", key(2)), &key(1).to_string()));
        assert_eq!(
            m,
            [format!(
                "validators[1].public_key: duplicate of validators[0] ({}); each key may appear \
                 once",
                key(1)
            )]
        );

        let m = messages(base.replace("protocol_version = 3", "protocol_version = 2"));
        assert_eq!(
            m,
            [
                "upgrades[1].protocol_version: 2 is not above upgrades[0].protocol_version (2); \
              versions must increase with height"
            ]
        );

        let long_chain = "x".repeat(65);
        let m = messages(base.replace("\"cairn-local\"", &format!("\"{long_chain}\"")));
        assert_eq!(
            m,
            [format!(
                "chain_id: \"{long_chain}\" is 65 characters, over the limit of 64"
            )]
        );
    }

    #[test]
    fn engine_and_sections_must_agree() {
        let pow_section = r#"
[consensus.pow]
initial_bits = "0x1d00ffff"
target_block_time_ms = 2000
retarget_interval_blocks = 20
block_reward = 1
halving_interval_blocks = 1
coinbase_maturity_blocks = 1
future_block_time_ms_max = 1
"#;
        let hotstuff_section =
            "[consensus.hotstuff]\nround_timeout_ms_base = 1000\nround_timeout_ms_max = 30000\n";
        let base = example_toml();

        // hotstuff with an extra pow section.
        let with_pow = base.replacen(
            "[[validators]]",
            &format!("{pow_section}\n[[validators]]"),
            1,
        );
        let p = problems(Genesis::from_toml_str(&with_pow));
        assert_eq!(p.len(), 1);
        assert_eq!(
            p[0].to_string(),
            "consensus.pow: section given but engine is \"hotstuff\"; remove it or set engine = \
             \"pow\""
        );

        // pow with only a hotstuff section.
        let pow_missing = base.replace("engine = \"hotstuff\"", "engine = \"pow\"");
        let p = problems(Genesis::from_toml_str(&pow_missing));
        let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["consensus.hotstuff", "consensus.pow"]);
        assert!(p[1].message.contains("missing"));

        // hotstuff with neither section and no validators.
        let bare = base
            .replace(hotstuff_section, "")
            .split("[[validators]]")
            .next()
            .unwrap()
            .to_string();
        let p = problems(Genesis::from_toml_str(&bare));
        let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["consensus.hotstuff", "validators"]);

        // pow needs no validators.
        let pow_only = bare.replace("engine = \"hotstuff\"", "engine = \"pow\"") + pow_section;
        let g = Genesis::from_toml_str(&pow_only).unwrap();
        assert!(g.is_pow() && g.validators.is_empty());
    }

    #[test]
    fn validator_keys_must_be_usable() {
        let mut not_on_curve = None;
        for b in 2..=255u8 {
            let mut bytes = [0u8; 32];
            bytes[0] = b;
            if curve25519_dalek::edwards::CompressedEdwardsY(bytes)
                .decompress()
                .is_none()
            {
                not_on_curve = Some(PublicKey(bytes));
                break;
            }
        }
        let not_on_curve = not_on_curve.expect("some small y is not on the curve");
        // y = 1 is the identity: canonical, of order 1.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        // y = p + 1 spells y = 1 a second way.
        let mut y_over_p = [0xffu8; 32];
        y_over_p[0] = 0xee;
        y_over_p[31] = 0x7f;
        let cases = [
            (not_on_curve.to_string(), "not a point on the curve"),
            (hex::encode(identity), "small order"),
            (hex::encode(y_over_p), "not a canonical point encoding"),
            ("abcd".to_string(), "expected 64 hex digits"),
        ];
        for (bad, expected) in cases {
            let toml = example_toml().replace(&format!("0x{}", key(2)), &bad);
            let p = problems(Genesis::from_toml_str(&toml));
            assert_eq!(p.len(), 1, "{p:?}");
            assert_eq!(p[0].path, "validators[1].public_key");
            assert!(p[0].message.contains(expected), "{}", p[0].message);
        }
    }

    #[test]
    fn wrong_peer_id_is_reported() {
        let toml = example_toml().replace(
            &keys::peer_id(&key(1)),
            "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
        );
        let p = problems(Genesis::from_toml_str(&toml));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].path, "validators[0].peer_id");
        assert!(p[0].message.contains(&keys::peer_id(&key(1))));
    }

    #[test]
    fn total_voting_power_and_supply_overflow_are_reported() {
        let max = u64::MAX;
        let fits =
            example_toml().replace("voting_power = 1", &format!("voting_power = {}", max - 3));
        assert_eq!(
            Genesis::from_toml_str(&fits).unwrap().total_voting_power(),
            max
        );
        let toml = example_toml()
            .replace("voting_power = 1", &format!("voting_power = {max}"))
            .replacen(
                "[[upgrades]]",
                &format!(
                    "[[accounts]]\naddress = \"{}\"\nbalance = {max}\n\n[[upgrades]]",
                    address(8)
                ),
                1,
            );
        let p = problems(Genesis::from_toml_str(&toml));
        let shown: Vec<String> = p.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            shown,
            [
                format!(
                    "validators[1].voting_power: adding 3 makes the total voting power overflow a \
                     u64 (max {max})"
                ),
                format!(
                    "accounts[1].balance: adding {max} makes the total supply overflow a u64 (max \
                     {max})"
                ),
            ]
        );
    }

    #[test]
    fn syntax_unknown_fields_and_wrong_types_are_parse_errors_with_lines() {
        let base = example_toml();
        let cases = [
            (format!("colour = 1\n{base}"), "unknown field `colour`"),
            (
                base.replace("round_reward = 10", "round_reward = 10\nmood = \"ok\""),
                "unknown field `mood`",
            ),
            (
                base.replace(
                    "genesis_time_ms = 1767225600000",
                    "genesis_time_ms = \"soon\"",
                ),
                "invalid type",
            ),
            (
                base.replace("voting_power = 3", "voting_power = -3"),
                "voting_power",
            ),
            (base.replace("\"cairn-local\"", "\"cairn-local"), "line 2"),
            (base.replace("[consensus]", "[consensus"), "line"),
            (
                base.replace("block_txs_max = 2000\n", ""),
                "missing field `block_txs_max`",
            ),
        ];
        for (toml, expected) in cases {
            match Genesis::from_toml_str(&toml) {
                Err(e @ GenesisError::Parse { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains("line"), "no line number: {msg}");
                    assert!(msg.contains(expected), "{msg:?} lacks {expected:?}");
                    assert!(msg.starts_with("cannot parse genesis: "), "{msg}");
                }
                other => panic!("expected a parse error for {expected:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn compact_bits_follow_bitcoin_rules() {
        for ok in [
            0x1d00ffff, 0x1f00ffff, 0x207fffff, 0x03000001, 0x22000001, 0x21000100, 0x2000ffff,
        ] {
            assert_eq!(check_bits(ok), Ok(()), "0x{ok:08x}");
        }
        let bad = [
            (0x00800000, "sign bit"),
            (0x1d800000, "sign bit"),
            (0x1d000000, "zero"),
            (0x00000000, "zero"),
            // Exponent 1 shifts the only nonzero byte out.
            (0x01003456, "zero"),
            (0xff123456, "256 bits"),
            (0x23000001, "256 bits"),
            (0x22000100, "256 bits"),
            (0x21010000, "256 bits"),
        ];
        for (bits, expected) in bad {
            let err = check_bits(bits).unwrap_err();
            assert!(err.contains(expected), "0x{bits:08x}: {err}");
            assert!(err.contains(&format!("0x{bits:08x}")), "{err}");
        }
        assert_eq!(parse_bits("0x1d00ffff"), Ok(0x1d00ffff));
        assert_eq!(parse_bits("1D00FFFF"), Ok(0x1d00ffff));
        for s in ["", "0x", "0x1d00ffff0", "0xzz", "+1d00ffff", "0x-1"] {
            assert!(parse_bits(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn protocol_version_follows_the_upgrade_schedule() {
        let g = example();
        let at = |h| g.protocol_version_at(Height(h)).0;
        assert_eq!(
            [at(0), at(99), at(100), at(249), at(250), at(u64::MAX)],
            [1, 1, 2, 2, 3, 3]
        );
    }

    #[test]
    fn invalid_error_lists_every_problem_under_a_header() {
        let e = GenesisError::Invalid {
            path: Some(PathBuf::from("/x/genesis.toml")),
            problems: vec![
                Problem {
                    path: "chain_id".into(),
                    message: "is empty".into(),
                },
                Problem {
                    path: "validators".into(),
                    message: "none given".into(),
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "genesis file /x/genesis.toml has 2 problems:\n  - chain_id: is empty\n  - \
             validators: none given"
        );
    }

    #[test]
    fn load_names_the_file_in_every_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("genesis.toml");
        std::fs::write(&path, example_toml()).unwrap();
        assert_eq!(Genesis::load(&path).unwrap(), example());

        let shown = path.display().to_string();
        let missing = dir.path().join("nope.toml");
        let e = Genesis::load(&missing).unwrap_err();
        assert!(matches!(e, GenesisError::Read { .. }));
        assert!(e.to_string().contains(&missing.display().to_string()));

        std::fs::write(
            &path,
            example_toml().replace("round_reward = 10", "round_reward = 10\nx = 1"),
        )
        .unwrap();
        let e = Genesis::load(&path).unwrap_err();
        assert!(matches!(&e, GenesisError::Parse { path: Some(p), .. } if *p == path));
        assert!(
            e.to_string()
                .starts_with(&format!("cannot parse genesis file {shown}: "))
        );

        std::fs::write(&path, example_toml().replace("cairn-local", "")).unwrap();
        let e = Genesis::load(&path).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "genesis file {shown} has 1 problem:\n  - chain_id: "
            )),
            "{e}"
        );

        std::fs::write(&path, [b'a', 0xff, 0xfe]).unwrap();
        let e = Genesis::load(&path).unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");

        std::fs::write(&path, vec![b'#'; GENESIS_BYTES_MAX + 1]).unwrap();
        let e = Genesis::load(&path).unwrap_err();
        assert!(matches!(e, GenesisError::Read { .. }));
        assert!(e.to_string().contains("over the limit"), "{e}");
    }

    #[test]
    fn written_file_documents_its_fields() {
        let text = example().to_file().to_toml_string();
        assert!(text.starts_with("# Cairn genesis file"));
        assert!(text.contains("[consensus.hotstuff]"));
        assert!(text.contains("# first round timeout"));
        assert!(text.contains("[[oracle.feeds]]"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
            let _ = Genesis::from_toml_str(&s);
        }

        #[test]
        fn edited_example_never_panics(
            at in 0usize..2000,
            len in 0usize..20,
            insert in "[\\PC\n]{0,20}",
        ) {
            let base = example_toml();
            let start = base.char_indices().map(|(i, _)| i).nth(at % base.chars().count()).unwrap();
            let end = base[start..]
                .char_indices()
                .map(|(i, _)| start + i)
                .nth(len)
                .unwrap_or(base.len());
            let edited = format!("{}{}{}", &base[..start], insert, &base[end..]);
            let _ = Genesis::from_toml_str(&edited);
        }

        #[test]
        fn any_bits_value_is_checked_without_panicking(bits in any::<u32>()) {
            if check_bits(bits).is_ok() {
                prop_assert_eq!(parse_bits(&format!("0x{bits:08x}")), Ok(bits));
            }
        }

        #[test]
        fn written_strings_and_numbers_read_back_exactly(
            chain_id in "\\PC{0,40}",
            name in "[\\PC\t\n\"\\\\']{0,20}",
            balance in any::<u64>(),
        ) {
            let mut file = example().to_file();
            file.chain_id = chain_id;
            file.validators[0].name = Some(name);
            file.accounts[0].balance = balance;
            let back: GenesisFile = toml::from_str(&file.to_toml_string()).unwrap();
            prop_assert_eq!(back, file);
        }
    }
}
