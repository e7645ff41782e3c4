//! Reading and checking a genesis file: [`GenesisFile::validate`] and every rule it applies,
//! [`Genesis::load`] / [`Genesis::from_toml_str`], and the errors they report.
//!
//! Owns the rules of the format and their messages. Must never accept a file with a problem
//! in it, and never stop at the first problem: an operator fixing a file gets every problem
//! at once, each with the path of the field to blame. Reads one file and touches nothing
//! else on disk.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::block::{BLOCK_BYTES_MAX, BLOCK_TXS_MAX, QC_VOTES_MAX};
use crate::keys;
use crate::tx::CHAIN_ID_LEN_MAX;
use crate::types::{Address, Amount, Height, ProtocolVersion, PublicKey, TimestampMs};
use crate::work::{COMPACT_SIGN_BIT, CompactError, CompactTarget};
use cairn_oracle::{FEED_ID_RULE, FeedId, FeedIdFault};

use super::file::{
    AccountEntry, ConsensusSection, ENGINE_HOTSTUFF, ENGINE_PBFT, ENGINE_POW, GenesisFile,
    HotStuffSection, OracleSection, PbftSection, PowSection, UpgradeEntry, ValidatorEntry,
};
use super::params::{
    BLOCK_BYTES_MIN, BPS_MAX, ConsensusParams, EngineParams, FEED_DECIMALS_MAX, GENESIS_BYTES_MAX,
    Genesis, GenesisAccount, GenesisFeed, HotStuffParams, LeaderElection, NAME_CHARS_MAX,
    OracleParams, PbftParams, PowParams, UPGRADE_NAME_RULE, Upgrade, Validator, upgrade_name_char,
};

/// How much of an offending string a message quotes.
const QUOTE_CHARS_MAX: usize = 80;

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

impl Genesis {
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
}

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
    let pbft = c.pbft.as_ref().map(|b| check_pbft(b, p));
    let pow = c.pow.as_ref().map(|s| check_pow(s, p));
    let present = [
        (ENGINE_HOTSTUFF, c.hotstuff.is_some()),
        (ENGINE_PBFT, c.pbft.is_some()),
        (ENGINE_POW, c.pow.is_some()),
    ];
    let known = present.iter().any(|(name, _)| *name == c.engine);
    if known {
        for (name, given) in present {
            if given && name != c.engine {
                p.add(
                    format!("consensus.{name}"),
                    format!(
                        "section given but engine is {}; remove it or set engine = \"{name}\"",
                        quote(&c.engine)
                    ),
                );
            }
        }
    }
    let engine = match c.engine.as_str() {
        ENGINE_HOTSTUFF => hotstuff.map(EngineParams::HotStuff),
        ENGINE_PBFT => pbft.map(EngineParams::Pbft),
        ENGINE_POW => pow.flatten().map(EngineParams::Pow),
        other => {
            p.add(
                "consensus.engine",
                format!(
                    "unknown engine {}; expected \"hotstuff\", \"pbft\" or \"pow\"",
                    quote(other)
                ),
            );
            None
        }
    };
    if known
        && present
            .iter()
            .any(|(name, given)| *name == c.engine && !given)
    {
        p.add(
            format!("consensus.{}", c.engine),
            format!(
                "missing; engine \"{0}\" needs a [consensus.{0}] section",
                c.engine
            ),
        );
    }
    Some(ConsensusParams {
        block_txs_max: c.block_txs_max,
        block_bytes_max: c.block_bytes_max,
        engine: engine?,
    })
}

fn check_pbft(b: &PbftSection, p: &mut Problems) -> PbftParams {
    check_round_timeouts(
        "consensus.pbft",
        b.round_timeout_ms_base,
        b.round_timeout_ms_max,
        p,
    );
    PbftParams {
        round_timeout_ms_base: b.round_timeout_ms_base,
        round_timeout_ms_max: b.round_timeout_ms_max,
        leader_election: check_leader_election(
            "consensus.pbft",
            b.leader_election.as_deref(),
            b.leader_retry_after_ms,
            b.round_timeout_ms_base,
            p,
        ),
    }
}

fn check_round_timeouts(section: &str, base: u64, max: u64, p: &mut Problems) {
    if base == 0 {
        p.add(
            format!("{section}.round_timeout_ms_base"),
            "is 0; a round needs time for a proposal and votes to travel",
        );
    }
    if max < base {
        p.add(
            format!("{section}.round_timeout_ms_max"),
            format!(
                "{max} is below round_timeout_ms_base ({base}); the cap must be at least the \
                 first timeout"
            ),
        );
    }
}

fn check_hotstuff(h: &HotStuffSection, p: &mut Problems) -> HotStuffParams {
    check_round_timeouts(
        "consensus.hotstuff",
        h.round_timeout_ms_base,
        h.round_timeout_ms_max,
        p,
    );
    HotStuffParams {
        round_timeout_ms_base: h.round_timeout_ms_base,
        round_timeout_ms_max: h.round_timeout_ms_max,
        leader_election: check_leader_election(
            "consensus.hotstuff",
            h.leader_election.as_deref(),
            h.leader_retry_after_ms,
            h.round_timeout_ms_base,
            p,
        ),
    }
}

/// A BFT section's `leader_election` and `leader_retry_after_ms` (`round_timeout_ms_base`
/// is the section's own).
fn check_leader_election(
    section: &str,
    rule: Option<&str>,
    retry: Option<u64>,
    round_timeout_ms_base: u64,
    p: &mut Problems,
) -> LeaderElection {
    match rule {
        None | Some(LeaderElection::ROUND_ROBIN) => {
            if retry.is_some() {
                p.add(
                    format!("{section}.leader_retry_after_ms"),
                    "is set, but leader_election is not \"reputation\"; remove it or set \
                     leader_election = \"reputation\"",
                );
            }
            LeaderElection::RoundRobin
        }
        Some(LeaderElection::REPUTATION) => {
            let retry_after_ms = retry.unwrap_or(LeaderElection::RETRY_AFTER_MS_DEFAULT);
            if retry_after_ms < round_timeout_ms_base {
                p.add(
                    format!("{section}.leader_retry_after_ms"),
                    format!(
                        "{retry_after_ms} is below round_timeout_ms_base \
                         ({round_timeout_ms_base}): a passed-over leader would get its turn \
                         back before its failed turn timed out"
                    ),
                );
            }
            LeaderElection::Reputation { retry_after_ms }
        }
        Some(other) => {
            p.add(
                format!("{section}.leader_election"),
                format!(
                    "unknown rule {}; expected \"reputation\" or \"round_robin\"",
                    quote(other)
                ),
            );
            LeaderElection::RoundRobin
        }
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

/// Whether `bits` is a usable compact target under [`CompactTarget::to_target`] (the one
/// copy of the rule), in this file's words.
fn check_bits(bits: u32) -> Result<(), String> {
    let compact = CompactTarget(bits);
    // A set sign bit is named whatever else is wrong with the bits: the fix is the same.
    let signed = bits & COMPACT_SIGN_BIT != 0;
    match (compact.to_target(), signed) {
        (Ok(_), _) => Ok(()),
        (Err(_), true) | (Err(CompactError::Negative { .. }), false) => Err(format!(
            "0x{bits:08x} has the sign bit (0x00800000) set, so the target is negative; \
             shift the mantissa right a byte and add 1 to the exponent"
        )),
        (Err(CompactError::Zero { .. }), false) => Err(format!(
            "0x{bits:08x} encodes a target of zero, which no block hash can meet"
        )),
        (Err(CompactError::Overflow { .. }), false) => Err(format!(
            "0x{bits:08x} encodes a target that does not fit in 256 bits (exponent {}, \
             mantissa 0x{:06x})",
            compact.exponent(),
            compact.mantissa()
        )),
    }
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
    if engine == ENGINE_HOTSTUFF || engine == ENGINE_PBFT {
        if entries.is_empty() {
            p.add(
                "validators",
                format!("none given; engine \"{engine}\" needs at least one [[validators]] entry"),
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
        check_name(&u.name, upgrade_name_char, UPGRADE_NAME_RULE, at("name"), p);
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
        if let Some(known) = crate::rules::implemented(&u.name)
            && known.version.0 != u.protocol_version
        {
            p.add(
                at("protocol_version"),
                format!(
                    "is {}, but this binary implements {} as protocol version {}; one name \
                     must mean one set of rules everywhere (fix the genesis, or name the \
                     upgrade differently if it is another one)",
                    u.protocol_version,
                    quote(&u.name),
                    known.version
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

/// The oracle's feed-id rule ([`FeedId::check`]), in this file's words.
fn check_feed_id(id: &str) -> Result<(), String> {
    FeedId::check(id).map_err(|fault| match fault {
        FeedIdFault::NoSlash => format!("{} has no '/'; {FEED_ID_RULE}", quote(id)),
        FeedIdFault::BadSymbol(symbol) => format!(
            "{} has the symbol {}; {FEED_ID_RULE}",
            quote(id),
            quote(symbol)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    proptest! {
        #[test]
        fn any_bits_value_is_checked_without_panicking(bits in any::<u32>()) {
            if check_bits(bits).is_ok() {
                prop_assert_eq!(parse_bits(&format!("0x{bits:08x}")), Ok(bits));
            }
        }
    }
}
