//! The commitment an operator publishes in the commit phase. It binds the value to the feed,
//! the round and the operator's own address, so a commitment copied from another operator
//! can never be opened by the copier, and one made for a round or feed cannot be replayed in
//! another.

use sha2::{Digest, Sha256};

use crate::types::{CommitHash, FeedId, OperatorId, Price, RoundNumber, Salt};

/// Domain tag of commitments; the version changes if the layout ever does.
pub const COMMIT_DOMAIN_TAG: &[u8] = b"cairn/oracle/commit/v1";

/// SHA-256 over, in order:
///
/// | bytes | what |
/// |---|---|
/// | 22 | [`COMMIT_DOMAIN_TAG`], `cairn/oracle/commit/v1` in ASCII |
/// | 1 | `0x00` |
/// | 1 | length of the feed id in bytes (at most 25) |
/// | 1..=25 | the feed id in ASCII, e.g. `BTC/USD` |
/// | 8 | round number, big-endian |
/// | 8 | value (the price as an integer), big-endian |
/// | 32 | salt |
/// | 20 | operator address |
///
/// Every field has a fixed size or a length prefix, so two different tuples never give the
/// same bytes.
pub fn commit_hash(
    feed: &FeedId,
    round: RoundNumber,
    value: Price,
    salt: &Salt,
    operator: &OperatorId,
) -> CommitHash {
    let id = feed.as_str().as_bytes();
    // A FeedId is at most FEED_ID_BYTES_MAX (25) bytes by construction.
    let id_len = u8::try_from(id.len()).unwrap_or(u8::MAX);
    let mut h = Sha256::new();
    h.update(COMMIT_DOMAIN_TAG);
    h.update([0u8]);
    h.update([id_len]);
    h.update(id);
    h.update(round.0.to_be_bytes());
    h.update(value.0.to_be_bytes());
    h.update(salt.0);
    h.update(operator.0);
    CommitHash(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn btc() -> FeedId {
        FeedId::new("BTC/USD").unwrap()
    }

    #[test]
    fn known_answer() {
        // Pinned so that publishers written in other languages can check their encoding:
        // sha256(b"cairn/oracle/commit/v1\x00\x07BTC/USD" + be64(3) + be64(6_500_000_000_000)
        //        + 32×0x11 + 20×0x22)
        let h = commit_hash(
            &btc(),
            RoundNumber(3),
            Price(6_500_000_000_000),
            &Salt([0x11; 32]),
            &OperatorId([0x22; 20]),
        );
        let mut bytes = b"cairn/oracle/commit/v1\x00\x07BTC/USD".to_vec();
        bytes.extend_from_slice(&3u64.to_be_bytes());
        bytes.extend_from_slice(&6_500_000_000_000u64.to_be_bytes());
        bytes.extend_from_slice(&[0x11; 32]);
        bytes.extend_from_slice(&[0x22; 20]);
        assert_eq!(h.0, <[u8; 32]>::from(Sha256::digest(&bytes)));
        assert_eq!(
            h.to_string(),
            "ea037ba5a54c03bfd5c284e1803e5f6e1bc944dd2464187c1707f0d522237a42",
            "update this pin only with a new COMMIT_DOMAIN_TAG version"
        );
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = (
            btc(),
            RoundNumber(1),
            Price(100),
            Salt([1; 32]),
            OperatorId([2; 20]),
        );
        let h = |f: &FeedId, r, v, s: &Salt, o: &OperatorId| commit_hash(f, r, v, s, o);
        let reference = h(&base.0, base.1, base.2, &base.3, &base.4);
        let eth = FeedId::new("ETH/USD").unwrap();
        let variants = [
            h(&eth, base.1, base.2, &base.3, &base.4),
            h(&base.0, RoundNumber(2), base.2, &base.3, &base.4),
            h(&base.0, base.1, Price(101), &base.3, &base.4),
            h(&base.0, base.1, base.2, &Salt([9; 32]), &base.4),
            h(&base.0, base.1, base.2, &base.3, &OperatorId([3; 20])),
        ];
        for v in variants {
            assert_ne!(v, reference);
        }
    }
}
