//! Fixed-size byte strings (hashes, addresses, keys, signatures): hex in human-readable formats
//! (TOML, JSON), raw bytes with no length prefix in the binary codec.
//!
//! In binary form the bytes go out as a tuple of little-endian u64 words, then single bytes
//! for the remainder: under the codec's fixed-width little-endian integers that is exactly
//! the raw bytes, at an eighth of the per-element cost of a tuple of bytes (hashing and
//! storing tree nodes and transactions spends much of its time here). `codec` tests pin the
//! layout.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserializer, Serializer};

use cairn_oracle::parse_hex;

pub fn serialize<S: Serializer, const N: usize>(bytes: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(&hex::encode(bytes))
    } else {
        let words = bytes.chunks_exact(8);
        let rest = words.remainder();
        let mut t = s.serialize_tuple(N / 8 + N % 8)?;
        for w in words {
            t.serialize_element(&u64::from_le_bytes(w.try_into().expect("8-byte chunk")))?;
        }
        for b in rest {
            t.serialize_element(b)?;
        }
        t.end()
    }
}

pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
    struct HexOrTuple<const N: usize>;
    impl<'de, const N: usize> Visitor<'de> for HexOrTuple<N> {
        type Value = [u8; N];
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "{N} bytes as {} hex digits", N * 2)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            parse_hex::<N>(v).map_err(E::custom)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = [0u8; N];
            let mut chunks = out.chunks_exact_mut(8);
            let mut i = 0;
            for chunk in &mut chunks {
                let word: u64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                chunk.copy_from_slice(&word.to_le_bytes());
                i += 1;
            }
            for slot in chunks.into_remainder() {
                *slot = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                i += 1;
            }
            Ok(out)
        }
    }
    if d.is_human_readable() {
        d.deserialize_str(HexOrTuple::<N>)
    } else {
        d.deserialize_tuple(N / 8 + N % 8, HexOrTuple::<N>)
    }
}
