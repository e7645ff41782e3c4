//! The oracle's own newtypes: heights, rounds, amounts, prices, operator ids, feed ids, salts
//! and commit hashes. The ledger maps its types onto these (an `Address` is an
//! [`OperatorId`] byte for byte); this crate never depends on the ledger.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{FEED_ID_BYTES_MAX, FEED_SYMBOL_CHARS_MAX};

/// An integer newtype with a meaning: serde as the bare integer, `Display` and `FromStr` as
/// the number. Exported so the ledger's newtypes (`Height`, `Amount`, …) are written the same
/// way from this one copy.
#[doc(hidden)]
#[macro_export]
macro_rules! int_newtype {
    ($(#[$doc:meta])* $name:ident, $int:ty) => {
        $(#[$doc])*
        #[derive(
            Clone,
            Copy,
            Debug,
            Default,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub $int);

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
                ::std::fmt::Display::fmt(&self.0, f)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

crate::int_newtype!(
    /// Position of a block in the chain. The oracle's only clock: windows, unbonding and the
    /// TWAP are all counted in blocks.
    Height,
    u64
);
crate::int_newtype!(
    /// A feed's round number, counted from 0 at the feed's start height.
    RoundNumber,
    u64
);
crate::int_newtype!(
    /// A quantity of the native token in its smallest unit (stake, rewards, penalties).
    Amount,
    u64
);
crate::int_newtype!(
    /// A price as an integer count of `10^-decimals` units of the quote (with 6 decimals,
    /// `1_500_000` is 1.5). The feed's `decimals` says where the point goes; the oracle
    /// itself never converts.
    Price,
    u64
);

impl Height {
    /// `self + blocks`, or `None` past `u64::MAX`.
    pub fn checked_add(self, blocks: u64) -> Option<Height> {
        self.0.checked_add(blocks).map(Height)
    }
}

impl RoundNumber {
    pub fn next(self) -> Option<RoundNumber> {
        self.0.checked_add(1).map(RoundNumber)
    }
}

impl Amount {
    pub const ZERO: Amount = Amount(0);

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }
    pub fn saturating_add(self, other: Amount) -> Amount {
        Amount(self.0.saturating_add(other.0))
    }
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl Price {
    /// The price written with its decimal point: `Price(1_500_000).format(6)` is `"1.500000"`.
    pub fn format(self, decimals: u8) -> String {
        let digits = self.0.to_string();
        let decimals = usize::from(decimals);
        if decimals == 0 {
            return digits;
        }
        let padded = format!("{digits:0>width$}", width = decimals + 1);
        let (whole, fraction) = padded.split_at(padded.len() - decimals);
        format!("{whole}.{fraction}")
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed-size byte strings.

/// Parses hex of exactly `N` bytes, with or without a `0x` prefix: how every fixed-size byte
/// string in Cairn is written, the ledger's hashes, keys and addresses included.
pub fn parse_hex<const N: usize>(s: &str) -> Result<[u8; N], String> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    if digits.len() != N * 2 {
        return Err(format!(
            "expected {} hex digits ({N} bytes), got {}",
            N * 2,
            digits.len()
        ));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(digits, &mut out).map_err(|e| format!("not valid hex: {e}"))?;
    Ok(out)
}

/// Lower-case hex, for [`byte_newtype_base!`] expanded in other crates.
#[doc(hidden)]
pub fn hex_encode(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// A fixed-size byte-string newtype without its serde: `LEN`, `as_bytes`, and hex for
/// `Display`, `Debug` and `FromStr`. Each crate adds the serde its encodings need (the
/// ledger's codec writes the bytes as words); the text side is written once, here.
#[doc(hidden)]
#[macro_export]
macro_rules! byte_newtype_base {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            pub const LEN: usize = $len;
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
                f.write_str(&$crate::hex_encode(&self.0))
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
                write!(f, "{}({})", stringify!($name), $crate::hex_encode(&self.0))
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            /// Exactly `2 × LEN` hex digits, with or without a `0x` prefix.
            fn from_str(s: &str) -> Result<Self, String> {
                $crate::parse_hex::<$len>(s).map($name)
            }
        }
    };
}

macro_rules! byte_newtype {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $crate::byte_newtype_base!($(#[$doc])* $name, $len);

        /// Hex in human-readable formats (JSON, TOML); the raw bytes, with no length prefix,
        /// in binary ones.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&hex::encode(self.0))
                } else {
                    self.0.serialize(s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    s.parse().map_err(serde::de::Error::custom)
                } else {
                    <[u8; $len]>::deserialize(d).map($name)
                }
            }
        }
    };
}

byte_newtype!(
    /// An oracle operator: the 20-byte account address that signs its transactions.
    OperatorId,
    20
);
byte_newtype!(
    /// The secret that blinds a committed value. The publisher draws it from a secure random
    /// source and keeps it until the reveal; this crate never generates one.
    Salt,
    32
);
byte_newtype!(
    /// A commitment: SHA-256 as laid out in [`crate::commit_hash`].
    CommitHash,
    32
);

// ---------------------------------------------------------------------------------------------
// Feed ids.

/// A feed's name, `BASE/QUOTE` such as `BTC/USD`: each symbol 1 to
/// [`FEED_SYMBOL_CHARS_MAX`] characters of `A-Z 0-9`, so at most [`FEED_ID_BYTES_MAX`] bytes.
/// Only valid ids can be built or decoded.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FeedId(String);

/// The feed-id rule in words, for messages. Spells out [`FEED_SYMBOL_CHARS_MAX`] (12).
pub const FEED_ID_RULE: &str =
    "a feed id is BASE/QUOTE, each 1 to 12 characters of A-Z 0-9, such as \"BTC/USD\"";
const _: () = assert!(
    FEED_SYMBOL_CHARS_MAX == 12,
    "FEED_ID_RULE spells the limit out"
);

/// Which part of a would-be feed id breaks the rule, borrowed from it in full so that each
/// caller quotes it its own way (a log line cuts it short, a genesis problem names the
/// field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedIdFault<'a> {
    /// There is no `/` between a base and a quote.
    NoSlash,
    /// The first symbol that is empty, too long or not all `A-Z 0-9`.
    BadSymbol(&'a str),
}

/// Why a string is not a feed id. The offending id is quoted (cut to
/// [`FEED_ID_BYTES_MAX`] × 2 characters so a huge input cannot flood a log line).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FeedIdError {
    #[error("feed id {id:?} has no '/'; {FEED_ID_RULE}")]
    NoSlash { id: String },
    #[error("feed id {id:?} has the symbol {symbol:?}; {FEED_ID_RULE}")]
    BadSymbol { id: String, symbol: String },
}

impl FeedId {
    /// The feed-id rule, the one copy of it: `BASE/QUOTE`, each symbol 1 to
    /// [`FEED_SYMBOL_CHARS_MAX`] characters of `A-Z 0-9`.
    pub fn check(id: &str) -> Result<(), FeedIdFault<'_>> {
        let Some((base, quote)) = id.split_once('/') else {
            return Err(FeedIdFault::NoSlash);
        };
        for symbol in [base, quote] {
            let valid = !symbol.is_empty()
                && symbol.len() <= FEED_SYMBOL_CHARS_MAX
                && symbol
                    .bytes()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
            if !valid {
                return Err(FeedIdFault::BadSymbol(symbol));
            }
        }
        debug_assert!(id.len() <= FEED_ID_BYTES_MAX);
        Ok(())
    }

    pub fn new(id: &str) -> Result<FeedId, FeedIdError> {
        let shorten = |s: &str| s.chars().take(FEED_ID_BYTES_MAX * 2).collect::<String>();
        FeedId::check(id).map_err(|fault| match fault {
            FeedIdFault::NoSlash => FeedIdError::NoSlash { id: shorten(id) },
            FeedIdFault::BadSymbol(symbol) => FeedIdError::BadSymbol {
                id: shorten(id),
                symbol: shorten(symbol),
            },
        })?;
        Ok(FeedId(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FeedId {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for FeedId {
    type Err = FeedIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FeedId::new(s)
    }
}

impl TryFrom<String> for FeedId {
    type Error = FeedIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        FeedId::new(&s)
    }
}

impl From<FeedId> for String {
    fn from(id: FeedId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_ids_are_base_slash_quote_of_upper_case_and_digits() {
        for ok in ["BTC/USD", "DEMO/USD", "A/B", "ABCDEFGHIJKL/123456789012"] {
            assert_eq!(FeedId::new(ok).unwrap().as_str(), ok);
        }
        assert!(matches!(
            FeedId::new("BTCUSD"),
            Err(FeedIdError::NoSlash { .. })
        ));
        for (bad, symbol) in [
            ("btc/USD", "btc"),
            ("BTC/", ""),
            ("/USD", ""),
            ("BTC/USD/EUR", "USD/EUR"),
            ("ABCDEFGHIJKLM/USD", "ABCDEFGHIJKLM"),
            ("BTC/US D", "US D"),
            ("BTC/ÜSD", "ÜSD"),
        ] {
            match FeedId::new(bad) {
                Err(FeedIdError::BadSymbol { symbol: s, .. }) => assert_eq!(s, symbol, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        let long = "A".repeat(10_000);
        let err = FeedId::new(&long).unwrap_err().to_string();
        assert!(err.len() < 300, "{err}");
    }

    #[test]
    fn check_names_the_part_that_breaks_the_rule_uncut() {
        assert_eq!(FeedId::check("BTC/USD"), Ok(()));
        assert_eq!(FeedId::check("BTCUSD"), Err(FeedIdFault::NoSlash));
        let long = "A".repeat(100);
        let id = format!("BTC/{long}");
        assert_eq!(FeedId::check(&id), Err(FeedIdFault::BadSymbol(&long)));
        let err = FeedId::new("btc/USD").unwrap_err().to_string();
        assert!(err.ends_with(FEED_ID_RULE), "{err}");
    }

    #[test]
    fn feed_id_decoding_validates() {
        let ok: FeedId = serde_json::from_str("\"BTC/USD\"").unwrap();
        assert_eq!(ok.to_string(), "BTC/USD");
        let err = serde_json::from_str::<FeedId>("\"btc/usd\"").unwrap_err();
        assert!(err.to_string().contains("btc"), "{err}");
    }

    #[test]
    fn byte_ids_are_hex_in_json() {
        let op = OperatorId([0xab; 20]);
        let json = serde_json::to_string(&op).unwrap();
        assert_eq!(json, format!("\"{}\"", "ab".repeat(20)));
        assert_eq!(serde_json::from_str::<OperatorId>(&json).unwrap(), op);
        assert!("0x12".parse::<OperatorId>().unwrap_err().contains("40 hex"));
        assert_eq!(
            format!("0x{}", "cd".repeat(32)).parse::<Salt>().unwrap(),
            Salt([0xcd; 32])
        );
    }

    #[test]
    fn prices_format_with_their_decimals() {
        assert_eq!(Price(1_500_000).format(6), "1.500000");
        assert_eq!(Price(5).format(3), "0.005");
        assert_eq!(Price(0).format(2), "0.00");
        assert_eq!(Price(42).format(0), "42");
        assert_eq!(Price(u64::MAX).format(18), "18.446744073709551615");
    }
}
