//! Newtypes for every value with a meaning: no bare integer or byte array crosses a module
//! boundary without saying what it is.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A fixed-size byte string: the text side (hex, `LEN`, `as_bytes`) is the oracle's
/// [`cairn_oracle::byte_newtype_base!`], the binary side the codec's word-wise form from
/// `bytes`.
macro_rules! byte_newtype {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        cairn_oracle::byte_newtype_base!($(#[$doc])* $name, $len);

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                crate::bytes::serialize(&self.0, s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                crate::bytes::deserialize(d).map($name)
            }
        }
    };
}

byte_newtype!(
    /// A SHA-256 digest.
    Hash,
    32
);
byte_newtype!(
    /// An account: the first 20 bytes of SHA-256 over a domain tag and the ed25519 public key.
    Address,
    20
);
byte_newtype!(
    /// An ed25519 public key in its 32-byte compressed encoding (validity is checked where it
    /// is used, in `crypto`).
    PublicKey,
    32
);
byte_newtype!(
    /// An ed25519 signature, R then S.
    Signature,
    64
);

impl Hash {
    pub const ZERO: Hash = Hash([0; 32]);

    pub fn digest(data: &[u8]) -> Hash {
        Hash(Sha256::digest(data).into())
    }

    /// SHA-256 over a domain tag, a NUL, then each part: the tag keeps hashes of different
    /// kinds of value from ever colliding (the NUL makes tags prefix-free).
    pub fn tagged(tag: &[u8], parts: &[&[u8]]) -> Hash {
        debug_assert!(!tag.contains(&0));
        let mut h = Sha256::new();
        h.update(tag);
        h.update([0u8]);
        for p in parts {
            h.update(p);
        }
        Hash(h.finalize().into())
    }
}

impl PublicKey {
    pub fn address(&self) -> Address {
        let h = Hash::tagged(b"cairn/address/v1", &[&self.0]);
        let mut a = [0u8; 20];
        a.copy_from_slice(&h.0[..20]);
        Address(a)
    }
}

cairn_oracle::int_newtype!(
    /// Position of a block in the chain; genesis is 0.
    Height,
    u64
);
cairn_oracle::int_newtype!(
    /// A quantity of the native token in its smallest unit.
    Amount,
    u64
);
cairn_oracle::int_newtype!(
    /// An account's count of executed transactions; the next transaction must carry exactly it.
    Nonce,
    u64
);
cairn_oracle::int_newtype!(
    /// Milliseconds since the Unix epoch.
    TimestampMs,
    u64
);
cairn_oracle::int_newtype!(
    /// The protocol rules a block follows; raised by scheduled upgrades.
    ProtocolVersion,
    u32
);
cairn_oracle::int_newtype!(
    /// A HotStuff round.
    Round,
    u64
);

impl Height {
    pub fn next(self) -> Height {
        Height(self.0 + 1)
    }
}

impl Nonce {
    pub fn next(self) -> Option<Nonce> {
        self.0.checked_add(1).map(Nonce)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_prefix() {
        let h = Hash::digest(b"cairn");
        assert_eq!(h.to_string().parse::<Hash>().unwrap(), h);
        assert_eq!(format!("0x{h}").parse::<Hash>().unwrap(), h);
        assert!("abc".parse::<Hash>().unwrap_err().contains("64 hex digits"));
        assert!("zz".repeat(32).parse::<Hash>().unwrap_err().contains("hex"));
    }

    #[test]
    fn json_uses_hex_and_binary_uses_raw_bytes() {
        let a = Address([7; 20]);
        assert_eq!(serde_json_like(&a), format!("\"{}\"", "07".repeat(20)));
        assert_eq!(crate::codec::encode(&a), vec![7; 20]);
    }

    fn serde_json_like(a: &Address) -> String {
        // toml cannot serialise a bare string; a one-field table shows the same thing.
        #[derive(Serialize)]
        struct W<'a> {
            a: &'a Address,
        }
        let s = toml::to_string(&W { a }).unwrap();
        s.trim().trim_start_matches("a = ").to_string()
    }
}
