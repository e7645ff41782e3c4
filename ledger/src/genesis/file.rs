//! The genesis file's TOML shape ([`GenesisFile`] and its sections) and the writer that
//! turns a [`Genesis`] back into a commented file.
//!
//! Owns the field names and the text an operator edits. Must never judge values: checking
//! belongs to `validate`, so a written file goes through the same checks as a hand-made one.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::params::{EngineParams, Genesis, OracleParams};

/// How `[consensus] engine` names each engine.
pub(super) const ENGINE_HOTSTUFF: &str = "hotstuff";
pub(super) const ENGINE_POW: &str = "pow";
pub(super) const ENGINE_PBFT: &str = "pbft";

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pbft: Option<PbftSection>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PbftSection {
    pub round_timeout_ms_base: u64,
    pub round_timeout_ms_max: u64,
    /// Absent: round robin, as for HotStuff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_election: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_retry_after_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HotStuffSection {
    pub round_timeout_ms_base: u64,
    pub round_timeout_ms_max: u64,
    /// Absent in files written before the rule existed: those chains ran round robin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_election: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_retry_after_ms: Option<u64>,
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

impl Genesis {
    /// The file that [`GenesisFile::validate`]s back to this genesis.
    pub fn to_file(&self) -> GenesisFile {
        let mut pbft = None;
        let (engine, hotstuff, pow) = match &self.consensus.engine {
            EngineParams::HotStuff(h) => (
                ENGINE_HOTSTUFF,
                Some(HotStuffSection {
                    round_timeout_ms_base: h.round_timeout_ms_base,
                    round_timeout_ms_max: h.round_timeout_ms_max,
                    leader_election: Some(h.leader_election.name().to_string()),
                    leader_retry_after_ms: h.leader_election.retry_after_ms(),
                }),
                None,
            ),
            EngineParams::Pbft(p) => {
                pbft = Some(PbftSection {
                    round_timeout_ms_base: p.round_timeout_ms_base,
                    round_timeout_ms_max: p.round_timeout_ms_max,
                    leader_election: Some(p.leader_election.name().to_string()),
                    leader_retry_after_ms: p.leader_election.retry_after_ms(),
                });
                (ENGINE_PBFT, None, None)
            }
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
                pbft,
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
}

impl GenesisFile {
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
            "\"hotstuff\" or \"pbft\" (BFT), or \"pow\" (proof of work)",
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
            write_election(&mut w, &h.leader_election, h.leader_retry_after_ms);
        }
        if let Some(b) = &c.pbft {
            w.table("consensus.pbft", "");
            w.int(
                "round_timeout_ms_base",
                b.round_timeout_ms_base,
                "first round of each height; doubles per failed round",
            );
            w.int(
                "round_timeout_ms_max",
                b.round_timeout_ms_max,
                "cap on the round timeout",
            );
            write_election(&mut w, &b.leader_election, b.leader_retry_after_ms);
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

/// The leader-election lines of a BFT engine's section.
fn write_election(w: &mut TomlWriter, rule: &Option<String>, retry_after_ms: Option<u64>) {
    if let Some(rule) = rule {
        w.string(
            "leader_election",
            rule,
            "\"reputation\" (pass over leaders whose turn failed) or \"round_robin\"",
        );
    }
    if let Some(ms) = retry_after_ms {
        w.int(
            "leader_retry_after_ms",
            ms,
            "chain time before a passed-over leader gets a turn again (doubling per failed retry)",
        );
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
