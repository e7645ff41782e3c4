//! The one place that knows the wire format. Everything Cairn hashes, signs, stores or sends
//! goes through [`encode`] and [`decode`]; swapping bincode for another format is a change to
//! this file only.
//!
//! Rules this module enforces, because consensus depends on them:
//! - every decode is bounded (`max_bytes`), and bincode's own container limit stops a forged
//!   length prefix from allocating more than [`DECODE_BYTES_MAX`];
//! - a byte string is accepted only if it is exactly the encoding of the value it decodes to:
//!   no trailing bytes, no second spelling of the same value. Hashes and signatures over
//!   encodings therefore identify values, not spellings.

use serde::{Serialize, de::DeserializeOwned};

/// The largest value any decode may produce, whatever the caller's own bound. It is the
/// backstop against allocation bombs; callers pass their tighter, per-type bound.
pub const DECODE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Fixed-width little-endian integers: one spelling per number, unlike varints.
fn config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<DECODE_BYTES_MAX>()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("{what} is {len} bytes, over the limit of {max} bytes")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{what} could not be decoded: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("{what} has {extra} trailing bytes after a complete value")]
    TrailingBytes { what: &'static str, extra: usize },
    #[error("{what} is not in canonical form (it re-encodes to different bytes)")]
    NonCanonical { what: &'static str },
    #[error("{what} could not be encoded: {reason}")]
    Encode { what: &'static str, reason: String },
}

/// Canonical encoding of a value. Only values whose `Serialize` can fail (none of Cairn's own
/// types) return an error.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Cairn's types serialise infallibly into a Vec; a failure here is a programming error in
    // a type's Serialize impl, not bad input.
    bincode::serde::encode_to_vec(value, config()).expect("Cairn types encode infallibly")
}

/// Replaces `out`'s contents with the canonical encoding of `value` (the bytes [`encode`]
/// gives), reusing its allocation: a block's commit encodes thousands of small values.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    out.clear();
    bincode::serde::encode_into_std_write(value, out, config())
        .expect("Cairn types encode infallibly");
}

/// The encoding of a sequence given each element's encoding, without encoding them again:
/// a fixed-width length, then the elements back to back (what `encode` of a `Vec` gives).
pub fn encode_seq_of_encoded(items: &[Vec<u8>]) -> Vec<u8> {
    let total: usize = items.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(8 + total);
    out.extend(encode(&(items.len() as u64)));
    for item in items {
        out.extend_from_slice(item);
    }
    out
}

/// Refuses `bytes` over `max_bytes` (and over [`DECODE_BYTES_MAX`]) before any decoding.
fn within_limit(bytes: &[u8], max_bytes: usize, what: &'static str) -> Result<(), CodecError> {
    let max = max_bytes.min(DECODE_BYTES_MAX);
    if bytes.len() > max {
        return Err(CodecError::TooLarge {
            what,
            len: bytes.len(),
            max,
        });
    }
    Ok(())
}

/// Decodes `bytes` as a `T`, refusing anything over `max_bytes`, with trailing bytes, or not
/// in canonical form. `what` names the value in errors ("transaction", "block header", ...).
pub fn decode<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    max_bytes: usize,
    what: &'static str,
) -> Result<T, CodecError> {
    within_limit(bytes, max_bytes, what)?;
    let (value, read): (T, usize) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|e| CodecError::Malformed {
            what,
            reason: e.to_string(),
        })?;
    if read != bytes.len() {
        return Err(CodecError::TrailingBytes {
            what,
            extra: bytes.len() - read,
        });
    }
    if encode(&value) != bytes {
        return Err(CodecError::NonCanonical { what });
    }
    Ok(value)
}

/// Decodes `bytes` as a sequence of at most `items_max` `T`s, with each element's own bytes:
/// the canonical encoding of the element, which callers hash for an id without encoding it
/// again. The same rules as [`decode`] hold for the sequence as a whole.
pub fn decode_seq_with_encodings<'a, T: Serialize + DeserializeOwned>(
    bytes: &'a [u8],
    max_bytes: usize,
    items_max: usize,
    what: &'static str,
) -> Result<Vec<(T, &'a [u8])>, CodecError> {
    within_limit(bytes, max_bytes, what)?;
    let malformed = |reason: String| CodecError::Malformed { what, reason };
    let (count, mut at): (u64, usize) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|e| malformed(e.to_string()))?;
    // Checked before anything is allocated: the count is the sender's claim.
    if count > items_max as u64 {
        return Err(malformed(format!(
            "it claims {count} elements, over the limit of {items_max}"
        )));
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut encoded = Vec::new();
    for _ in 0..count {
        let rest = &bytes[at..];
        let (value, read): (T, usize) = bincode::serde::decode_from_slice(rest, config())
            .map_err(|e| malformed(e.to_string()))?;
        let own = &rest[..read];
        encode_into(&value, &mut encoded);
        if encoded != own {
            return Err(CodecError::NonCanonical { what });
        }
        out.push((value, own));
        at += read;
    }
    if at != bytes.len() {
        return Err(CodecError::TrailingBytes {
            what,
            extra: bytes.len() - at,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        a: u64,
        b: Option<u32>,
        c: Vec<u8>,
        d: bool,
        e: String,
    }

    fn sample() -> Sample {
        Sample {
            a: 7,
            b: Some(3),
            c: vec![1, 2, 3],
            d: true,
            e: "cairn".into(),
        }
    }

    #[test]
    fn round_trips() {
        let bytes = encode(&sample());
        assert_eq!(decode::<Sample>(&bytes, 1024, "sample").unwrap(), sample());
    }

    #[test]
    fn encoding_into_a_used_buffer_gives_the_same_bytes() {
        let mut out = vec![9; 100];
        encode_into(&sample(), &mut out);
        assert_eq!(out, encode(&sample()));
        encode_into(&7u8, &mut out);
        assert_eq!(out, encode(&7u8));
    }

    #[test]
    fn sequence_from_encoded_elements_equals_encoding_the_sequence() {
        let items = vec![sample(), sample(), sample()];
        let parts: Vec<Vec<u8>> = items.iter().map(encode).collect();
        assert_eq!(encode_seq_of_encoded(&parts), encode(&items));
        assert_eq!(encode_seq_of_encoded(&[]), encode(&Vec::<Sample>::new()));
    }

    #[test]
    fn a_sequence_decodes_with_each_element_s_own_encoding() {
        let items = vec![
            sample(),
            Sample {
                a: 9,
                b: None,
                c: vec![],
                d: false,
                e: String::new(),
            },
        ];
        let bytes = encode(&items);
        let decoded: Vec<(Sample, &[u8])> =
            decode_seq_with_encodings(&bytes, 1024, 2, "samples").unwrap();
        assert_eq!(decoded.len(), 2);
        for ((value, own), item) in decoded.iter().zip(&items) {
            assert_eq!(value, item);
            assert_eq!(*own, encode(item).as_slice());
        }
        let over = decode_seq_with_encodings::<Sample>(&bytes, 1024, 1, "samples");
        assert!(
            matches!(over, Err(CodecError::Malformed { .. })),
            "{over:?}"
        );
        let mut trailing = bytes.clone();
        trailing.push(0);
        let err = decode_seq_with_encodings::<Sample>(&trailing, 1024, 2, "samples");
        assert_eq!(
            err,
            Err(CodecError::TrailingBytes {
                what: "samples",
                extra: 1
            })
        );
        let err = decode_seq_with_encodings::<Sample>(&bytes, 10, 2, "samples");
        assert!(matches!(err, Err(CodecError::TooLarge { .. })), "{err:?}");
        // A bool spelt 2 in the second element is refused, not normalised.
        let mut bad = bytes.clone();
        let at = bytes.len() - 1 - 8;
        assert_eq!(bad[at], 0, "the second element's bool");
        bad[at] = 2;
        assert!(decode_seq_with_encodings::<Sample>(&bad, 1024, 2, "samples").is_err());
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut bytes = encode(&sample());
        bytes.push(0);
        assert_eq!(
            decode::<Sample>(&bytes, 1024, "sample"),
            Err(CodecError::TrailingBytes {
                what: "sample",
                extra: 1
            })
        );
    }

    #[test]
    fn rejects_over_limit_before_decoding() {
        let bytes = encode(&sample());
        let err = decode::<Sample>(&bytes, 4, "sample").unwrap_err();
        assert!(matches!(err, CodecError::TooLarge { len, max: 4, .. } if len == bytes.len()));
    }

    #[test]
    fn rejects_non_canonical_bool_and_option_tags() {
        let bytes = encode(&sample());
        // Layout: a(8) b-tag(1) b(4) c-len(8) c(3) d(1) ...
        let mut bad_option = bytes.clone();
        bad_option[8] = 2;
        assert!(decode::<Sample>(&bad_option, 1024, "sample").is_err());
        let mut bad_bool = bytes.clone();
        bad_bool[8 + 1 + 4 + 8 + 3] = 2;
        assert!(decode::<Sample>(&bad_bool, 1024, "sample").is_err());
    }

    #[test]
    fn forged_length_prefix_does_not_allocate_or_panic() {
        let mut bytes = encode(&sample());
        // c's length prefix claims 2^62 bytes.
        bytes[13..21].copy_from_slice(&(1u64 << 62).to_le_bytes());
        assert!(matches!(
            decode::<Sample>(&bytes, 1024, "sample"),
            Err(CodecError::Malformed { .. })
        ));
    }

    #[test]
    fn fixed_byte_strings_encode_as_their_raw_bytes() {
        // `bytes.rs` relies on a non-human-readable format with little-endian fixed integers.
        let raw: Vec<u8> = (0..64).collect();
        let sig = crate::Signature(raw.clone().try_into().unwrap());
        assert_eq!(encode(&sig), raw);
        let addr = crate::Address(raw[..20].try_into().unwrap());
        assert_eq!(encode(&addr), &raw[..20]);
        assert_eq!(
            decode::<crate::Address>(&raw[..20], 20, "address").unwrap(),
            addr
        );
        assert_eq!(
            decode::<crate::Signature>(&raw, 64, "signature").unwrap(),
            sig
        );
    }
}
