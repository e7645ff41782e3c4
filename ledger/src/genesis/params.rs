//! The typed genesis: the parameters a network is made of, once checked.
//!
//! Owns the types every layer reads (consensus, validators, accounts, upgrades, oracle
//! feeds), the genesis hash and the limits of the format. Must never depend on the state
//! machine, the oracle, the upgrade schedule or the store: they build on these types, so
//! this module sits below all of them.

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::types::{Address, Amount, Hash, Height, ProtocolVersion, PublicKey, TimestampMs};

/// Largest genesis file read. Room for about 150,000 accounts; the bound keeps a wrong path
/// from being read into memory whole.
pub const GENESIS_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Smallest `block_bytes_max`: a floor that stops a slip of units (KiB for bytes) from making
/// a chain whose blocks cannot carry a transaction.
pub const BLOCK_BYTES_MIN: u32 = 1024;
/// Longest validator or upgrade name.
pub const NAME_CHARS_MAX: usize = 64;
// The feed limits are the oracle's own: genesis checks a feed by the rules it will run under.
pub use cairn_oracle::{BPS_MAX, FEED_DECIMALS_MAX, FEED_SYMBOL_CHARS_MAX};

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
    Pbft(PbftParams),
}

/// PBFT's round timer: the first round of each height waits `round_timeout_ms_base`, each
/// later round of the same height twice the one before, up to `round_timeout_ms_max`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PbftParams {
    pub round_timeout_ms_base: u64,
    pub round_timeout_ms_max: u64,
    /// Who proposes each round; a proposer passed over by reputation is one whose turn
    /// produced no block.
    pub leader_election: LeaderElection,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HotStuffParams {
    pub round_timeout_ms_base: u64,
    pub round_timeout_ms_max: u64,
    pub leader_election: LeaderElection,
}

/// How the leader of each BFT round is chosen. Every validator must use the same rule, so it
/// is part of the genesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaderElection {
    /// The schedule alone: each validator leads in turn, in proportion to its power, whether
    /// or not it is up.
    RoundRobin,
    /// The schedule, except that a validator whose last turn produced no block is passed
    /// over until it votes again, leads a block, or `retry_after_ms` of chain time pass.
    Reputation { retry_after_ms: u64 },
}

impl LeaderElection {
    /// The names the genesis file uses.
    pub const ROUND_ROBIN: &'static str = "round_robin";
    pub const REPUTATION: &'static str = "reputation";
    /// What `cairn genesis new` writes for `retry_after_ms`: long against a loaded round (a
    /// hung validator costs one timeout per retry), short against the time an operator
    /// waits for a returned validator to lead again.
    pub const RETRY_AFTER_MS_DEFAULT: u64 = 10_000;

    pub fn name(&self) -> &'static str {
        match self {
            LeaderElection::RoundRobin => Self::ROUND_ROBIN,
            LeaderElection::Reputation { .. } => Self::REPUTATION,
        }
    }

    /// The chain time a passed-over leader waits, under reputation.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            LeaderElection::RoundRobin => None,
            LeaderElection::Reputation { retry_after_ms } => Some(*retry_after_ms),
        }
    }
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

/// The rule for upgrade names, in genesis and `cairn upgrade schedule` alike.
pub const UPGRADE_NAME_RULE: &str = "an upgrade name is 1 to 64 characters of a-z 0-9 -";

/// A character an upgrade name may hold.
pub fn upgrade_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// Whether `name` follows [`UPGRADE_NAME_RULE`].
pub fn is_upgrade_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= NAME_CHARS_MAX
        && name.chars().all(upgrade_name_char)
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
    Pbft,
}

impl Genesis {
    /// The network's name: two nodes are on the same network exactly when their genesis
    /// hashes are equal. Covers every field but `upgrades`, through the canonical encoding:
    /// the schedule grows on a live chain (`cairn upgrade schedule`) without making it another
    /// network, and nodes compare schedules through the fork id in their handshake instead.
    pub fn hash(&self) -> Hash {
        let unscheduled = Genesis {
            upgrades: Vec::new(),
            ..self.clone()
        };
        Hash::tagged(b"cairn/genesis/v2", &[&codec::encode(&unscheduled)])
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
}
