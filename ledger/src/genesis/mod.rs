//! The genesis file: what a network is before its first block.
//!
//! This module owns the genesis file format, its validation, the genesis hash that names
//! the network and block 0. It reads one file and touches nothing else on disk. It must
//! never accept a file with a problem in it, and never stop at the first problem: an
//! operator fixing a file gets every problem at once, each with the path of the field to
//! blame.
//!
//! Reading is two layers. [`GenesisFile`] is the file's shape as written (strings for keys
//! and addresses, plain integers), parsed by `toml` with unknown fields refused; then
//! [`GenesisFile::validate`] checks every rule below and builds the typed [`Genesis`].
//! [`Genesis::to_file`] and [`GenesisFile::to_toml_string`] go the other way, so a tool can
//! write a file that loads back to an equal `Genesis` (and so the same hash).
//!
//! The parts, lowest first (each uses only those above it):
//! - `params`: the typed [`Genesis`] and its parameter types, the hash, the format's limits.
//!   Below the state machine, the oracle and the upgrade schedule, which all read it.
//! - `file`: the TOML shape and the commented writer.
//! - `validate`: every rule and its message, reading a file, [`GenesisError`].
//! - `block_zero`: block 0 and the initial state, built with the state machine and oracle.
//! - `local`: the single-machine network of `cairn testnet`.
//!
//! Other crates use the flat paths re-exported here (`cairn_ledger::genesis::Genesis`);
//! the parts are modules of this crate only.
//!
//! # Format
//!
//! ```toml
//! chain_id = "cairn-local"          # 1..=64 characters of A-Z a-z 0-9 . _ -
//! genesis_time_ms = 1767225600000   # block 0 timestamp, ms since the Unix epoch
//! protocol_version = 1              # protocol version at height 0, >= 1
//!
//! [consensus]
//! engine = "hotstuff"               # "hotstuff" or "pbft" (BFT), or "pow" (Nakamoto)
//! block_txs_max = 2000              # 1..=block::BLOCK_TXS_MAX
//! block_bytes_max = 4194304         # 1024..=block::BLOCK_BYTES_MAX
//!
//! [consensus.hotstuff]              # required if and only if engine = "hotstuff"
//! round_timeout_ms_base = 1000      # > 0
//! round_timeout_ms_max = 30000      # >= round_timeout_ms_base
//! leader_election = "reputation"    # or "round_robin" (the default when absent)
//! leader_retry_after_ms = 10000     # reputation only; >= round_timeout_ms_base
//!
//! [consensus.pbft]                  # required if and only if engine = "pbft"
//! round_timeout_ms_base = 1000      # > 0; first round of each height, doubles per round
//! round_timeout_ms_max = 30000      # >= round_timeout_ms_base
//! leader_election = "reputation"    # or "round_robin" (the default when absent)
//! leader_retry_after_ms = 10000     # reputation only; >= round_timeout_ms_base
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
//! [[validators]]                    # hotstuff, pbft: at least 1, at most block::QC_VOTES_MAX;
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
//! [[upgrades]]                      # the first entries of the schedule; not in the
//!                                   # genesis hash (`cairn upgrade schedule` appends more)
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

mod block_zero;
pub(crate) mod file;
mod local;
pub(crate) mod params;
mod validate;

#[cfg(test)]
mod tests;

pub use file::{
    AccountEntry, ConsensusSection, FeedEntry, GenesisFile, HotStuffSection, OracleSection,
    PbftSection, PowSection, UpgradeEntry, ValidatorEntry,
};
pub use params::{
    BLOCK_BYTES_MIN, BPS_MAX, ConsensusParams, EngineKind, EngineParams, FEED_DECIMALS_MAX,
    FEED_SYMBOL_CHARS_MAX, GENESIS_BYTES_MAX, Genesis, GenesisAccount, GenesisFeed, HotStuffParams,
    LeaderElection, NAME_CHARS_MAX, OracleParams, PbftParams, PowParams, UPGRADE_NAME_RULE,
    Upgrade, Validator, is_upgrade_name, upgrade_name_char,
};
pub use validate::{GenesisError, Problem};
