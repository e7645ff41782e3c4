//! Nonce search: the inner loop of a miner, hashing a header for many nonces as cheaply as
//! sha256d allows.
//!
//! The proof-of-work hash is [`BlockHeader::hash`], sha256d over the canonical encoding, and
//! the nonce is the encoding's last 8 bytes (little-endian). Everything before the 64-byte
//! SHA-256 block that holds the nonce's first byte is the same for every nonce, so
//! [`NonceSearch::new`] compresses it once into a midstate and pads the rest (the tail) once.
//! Each nonce then costs writing its 8 bytes into the tail, compressing the one or two tail
//! blocks, and one compression for the second SHA-256: with today's 152-byte PoW header, two
//! compressions per nonce where a plain sha256d of the header needs four.
//!
//! Owns: the hashing arithmetic and the target comparison. Never: starts threads, reads the
//! clock, does I/O, or decides which nonces to try. The node splits the nonce space, runs
//! [`NonceSearch::search`] on its own threads over slices small enough to stay responsive,
//! and rebuilds the search whenever the header changes (new tip, timestamp, transactions).

use cairn_ledger::Hash;
use cairn_ledger::block::{BlockHeader, Seal};
use cairn_ledger::codec;
use sha2::compress256;
use sha2::digest::consts::U64;
use sha2::digest::generic_array::GenericArray;

use super::Target;

const BLOCK_BYTES: usize = 64;
const NONCE_BYTES: usize = 8;
/// SHA-256 padding takes one 0x80 byte and the 8-byte message length in bits.
const PADDING_BYTES_MIN: usize = 1 + 8;
/// The nonce starts in the first tail block and may spill into the second; so may the
/// padding. Never more than two.
const TAIL_BLOCKS_MAX: usize = 2;
/// A sha256 digest is 32 bytes, so the second hash is always one block.
const DIGEST_BYTES: usize = 32;

/// SHA-256's initial hash value (FIPS 180-4, 5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

type Block = GenericArray<u8, U64>;

/// A header prepared for hashing with many nonces.
#[derive(Clone, Debug)]
pub struct NonceSearch {
    /// SHA-256 state after every whole block before the one the nonce starts in.
    midstate: [u32; 8],
    /// The rest of the message, the nonce bytes last, already padded.
    tail: [Block; TAIL_BLOCKS_MAX],
    /// 1 or 2: how many blocks of `tail` the padded message uses.
    tail_blocks: usize,
    /// Where the nonce starts within `tail`.
    nonce_at: usize,
}

impl NonceSearch {
    /// Prepares `header` for mining. The header's own nonce is ignored.
    ///
    /// # Panics
    /// If the header is not sealed with `Seal::Pow`: only that seal ends in a nonce, and
    /// mining any other header is a bug in the caller, not bad input.
    pub fn new(header: &BlockHeader) -> NonceSearch {
        assert!(
            matches!(header.seal, Seal::Pow { .. }),
            "NonceSearch::new needs a header sealed with Seal::Pow, got {:?}",
            header.seal
        );
        let encoded = codec::encode(header);
        NonceSearch::from_prefix(&encoded[..encoded.len() - NONCE_BYTES])
    }

    /// A search over messages `prefix ‖ nonce.to_le_bytes()`. Separate from `new` so tests
    /// can put the nonce at every offset within a block, which a real header (whose
    /// encoding has a fixed length) never does.
    fn from_prefix(prefix: &[u8]) -> NonceSearch {
        let hashed_len = prefix.len() / BLOCK_BYTES * BLOCK_BYTES;
        let mut midstate = SHA256_IV;
        let whole: Vec<Block> = prefix[..hashed_len]
            .chunks_exact(BLOCK_BYTES)
            .map(|block| *Block::from_slice(block))
            .collect();
        compress256(&mut midstate, &whole);

        let rest = &prefix[hashed_len..];
        let nonce_at = rest.len();
        let message_len = nonce_at + NONCE_BYTES;
        let tail_blocks = (message_len + PADDING_BYTES_MIN).div_ceil(BLOCK_BYTES);
        let padded_len = tail_blocks * BLOCK_BYTES;
        let mut flat = [0u8; TAIL_BLOCKS_MAX * BLOCK_BYTES];
        flat[..nonce_at].copy_from_slice(rest);
        flat[message_len] = 0x80;
        let message_bits = (prefix.len() as u64 + NONCE_BYTES as u64) * 8;
        flat[padded_len - 8..padded_len].copy_from_slice(&message_bits.to_be_bytes());
        let tail = [
            *Block::from_slice(&flat[..BLOCK_BYTES]),
            *Block::from_slice(&flat[BLOCK_BYTES..]),
        ];
        NonceSearch {
            midstate,
            tail,
            tail_blocks,
            nonce_at,
        }
    }

    /// The header hash with `nonce` in its seal: equal to [`BlockHeader::hash`] of that
    /// header, for checking a found nonce or for callers that want the id without
    /// re-encoding.
    pub fn hash(&self, nonce: u64) -> Hash {
        let mut tail = self.tail;
        let words = self.sha256d_words(&mut tail, nonce);
        let mut out = [0u8; DIGEST_BYTES];
        for (bytes, word) in out.chunks_exact_mut(4).zip(words) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        Hash(out)
    }

    /// The first nonce in `start..start + count` (stopping at `u64::MAX`, never wrapping)
    /// whose hash meets `target`, or `None` if none does. The same answer as trying
    /// `target.is_met_by(&header.hash())` for each nonce in turn.
    pub fn search(&self, target: &Target, start: u64, count: u64) -> Option<u64> {
        let last = start.saturating_add(count.checked_sub(1)?);
        let target_words = be_words(&target.to_be_bytes());
        // One scratch copy for the whole range: each nonce overwrites only its own 8 bytes.
        let mut tail = self.tail;
        let mut nonce = start;
        loop {
            if meets(&self.sha256d_words(&mut tail, nonce), &target_words) {
                return Some(nonce);
            }
            if nonce == last {
                return None;
            }
            nonce += 1;
        }
    }

    /// sha256d of the message with `nonce`, as SHA-256 state words (the digest's big-endian
    /// words). `tail` is a copy of `self.tail` whose nonce bytes get overwritten.
    #[inline(always)]
    fn sha256d_words(&self, tail: &mut [Block; TAIL_BLOCKS_MAX], nonce: u64) -> [u32; 8] {
        let bytes = nonce.to_le_bytes();
        let in_first = (BLOCK_BYTES - self.nonce_at).min(NONCE_BYTES);
        tail[0][self.nonce_at..self.nonce_at + in_first].copy_from_slice(&bytes[..in_first]);
        if in_first < NONCE_BYTES {
            tail[1][..NONCE_BYTES - in_first].copy_from_slice(&bytes[in_first..]);
        }
        let mut first = self.midstate;
        compress256(&mut first, &tail[..self.tail_blocks]);

        let mut second_block = Block::from(SECOND_HASH_BLOCK);
        for (bytes, word) in second_block.chunks_exact_mut(4).zip(first) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        let mut second = SHA256_IV;
        compress256(&mut second, std::slice::from_ref(&second_block));
        second
    }
}

/// The second SHA-256's only block with its padding for a 32-byte message in place; the
/// first hash's digest goes in the first 32 bytes.
const SECOND_HASH_BLOCK: [u8; BLOCK_BYTES] = {
    let mut block = [0u8; BLOCK_BYTES];
    block[DIGEST_BYTES] = 0x80;
    let bits = (DIGEST_BYTES as u64 * 8).to_be_bytes();
    let mut i = 0;
    while i < 8 {
        block[BLOCK_BYTES - 8 + i] = bits[i];
        i += 1;
    }
    block
};

fn be_words(bytes: &[u8; 32]) -> [u32; 8] {
    let mut words = [0u32; 8];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(4)) {
        *word = u32::from_be_bytes(chunk.try_into().expect("chunks of 4"));
    }
    words
}

/// [`Target::is_met_by`] on state words: comparing big-endian words in order is comparing
/// the bytes in order, and it settles almost every miss on the first word.
#[inline(always)]
fn meets(hash_words: &[u32; 8], target_words: &[u32; 8]) -> bool {
    hash_words <= target_words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pow::CompactTarget;
    use cairn_ledger::{Address, Height, ProtocolVersion, TimestampMs};
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    fn sha256d(message: &[u8]) -> [u8; 32] {
        Sha256::digest(Sha256::digest(message)).into()
    }

    fn message(prefix: &[u8], nonce: u64) -> Vec<u8> {
        let mut m = prefix.to_vec();
        m.extend_from_slice(&nonce.to_le_bytes());
        m
    }

    fn header(height: u64, proposer: u8, bits: u32) -> BlockHeader {
        BlockHeader {
            height: Height(height),
            parent: Hash::digest(&height.to_le_bytes()),
            timestamp: TimestampMs(1_700_000_000_000 + height),
            tx_root: Hash::digest(b"txs"),
            state_root: Hash::digest(b"state"),
            proposer: Address([proposer; 20]),
            protocol_version: ProtocolVersion(1),
            seal: Seal::Pow { bits, nonce: 0 },
        }
    }

    fn with_nonce(header: &BlockHeader, nonce: u64) -> BlockHeader {
        let Seal::Pow { bits, .. } = header.seal else {
            unreachable!("test headers are PoW")
        };
        BlockHeader {
            seal: Seal::Pow { bits, nonce },
            ..header.clone()
        }
    }

    /// The slow path the miner must agree with: encode, hash, compare, one nonce at a time.
    fn slow_search(
        header: &BlockHeader,
        target: &Target,
        nonces: std::ops::Range<u64>,
    ) -> Option<u64> {
        nonces
            .into_iter()
            .find(|n| target.is_met_by(&with_nonce(header, *n).hash()))
    }

    fn target_of(bits: u32) -> Target {
        CompactTarget(bits).to_target().unwrap()
    }

    /// About one hash in 256 meets it: searches end after a few hundred nonces, and nonce 0
    /// rarely wins, so an off-by-one in the nonce would show.
    const ONE_IN_256_BITS: u32 = 0x2000_ffff;

    #[test]
    fn found_nonces_match_the_slow_path_for_many_headers() {
        let target = target_of(ONE_IN_256_BITS);
        for (height, proposer) in [(0, 0), (1, 7), (1_000, 0xff), (u64::MAX, 3)] {
            let h = header(height, proposer, ONE_IN_256_BITS);
            let found = NonceSearch::new(&h).search(&target, 0, 100_000);
            assert_eq!(found, slow_search(&h, &target, 0..100_000));
            let nonce = found.expect("a 1-in-256 target is met within 100,000 nonces");
            assert!(nonce > 0 || target.is_met_by(&with_nonce(&h, 0).hash()));
            assert!(target.is_met_by(&with_nonce(&h, nonce).hash()));
            // From just past the winner, the next winner, as the slow path finds it.
            let next = NonceSearch::new(&h).search(&target, nonce + 1, 100_000);
            assert_eq!(next, slow_search(&h, &target, nonce + 1..nonce + 100_001));
        }
    }

    #[test]
    fn the_header_nonce_is_ignored() {
        let h = header(5, 1, ONE_IN_256_BITS);
        let a = NonceSearch::new(&h);
        let b = NonceSearch::new(&with_nonce(&h, 0xdead_beef));
        assert_eq!(a.hash(42), b.hash(42));
        assert_eq!(a.hash(42), with_nonce(&h, 42).hash());
    }

    /// A PoW header's encoding has one length, so the nonce offsets within a block are
    /// covered on raw messages of every length across three blocks, including nonces
    /// straddling a block boundary (prefix lengths 57–63 mod 64) and padding spilling into
    /// a second tail block (prefix lengths 48–56 mod 64).
    #[test]
    fn every_nonce_offset_hashes_like_sha256d_of_the_whole_message() {
        for len in 0..=3 * BLOCK_BYTES {
            let prefix: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            let search = NonceSearch::from_prefix(&prefix);
            for nonce in [0, 1, 0x0102_0304_0506_0708, u64::MAX] {
                assert_eq!(
                    search.hash(nonce).0,
                    sha256d(&message(&prefix, nonce)),
                    "prefix length {len}, nonce {nonce:#x}"
                );
            }
        }
    }

    #[test]
    fn search_finds_the_first_winner_at_every_nonce_offset() {
        let target = target_of(ONE_IN_256_BITS);
        for len in [0, 55, 56, 57, 60, 63, 64, 100, 119, 120, 121, 127, 144] {
            let prefix = vec![len as u8; len];
            let slow =
                (0..10_000u64).find(|n| target.is_met_by(&Hash(sha256d(&message(&prefix, *n)))));
            assert!(slow.is_some());
            assert_eq!(
                NonceSearch::from_prefix(&prefix).search(&target, 0, 10_000),
                slow,
                "prefix length {len}"
            );
        }
    }

    #[test]
    fn no_nonce_in_range_meets_a_tiny_target() {
        let mut one = [0u8; 32];
        one[31] = 1;
        let tiny = Target::from_be_bytes(one).unwrap();
        let h = header(9, 2, ONE_IN_256_BITS);
        assert_eq!(slow_search(&h, &tiny, 0..5_000), None);
        assert_eq!(NonceSearch::new(&h).search(&tiny, 0, 5_000), None);
    }

    #[test]
    fn range_is_start_to_start_plus_count_and_stops_at_the_last_nonce() {
        let h = header(3, 4, ONE_IN_256_BITS);
        let search = NonceSearch::new(&h);
        assert_eq!(search.search(&Target::MAX, 17, 0), None);
        assert_eq!(search.search(&Target::MAX, 17, 1), Some(17));
        assert_eq!(search.search(&Target::MAX, u64::MAX, 10), Some(u64::MAX));
        // The winner just past the range is not reported; at the range's end it is.
        let target = target_of(ONE_IN_256_BITS);
        let winner = search.search(&target, 1, u64::MAX).unwrap();
        assert!(winner > 1);
        assert_eq!(search.search(&target, 1, winner - 1), None);
        assert_eq!(search.search(&target, 1, winner), Some(winner));
        // Near u64::MAX the search stops instead of overflowing.
        let tiny = Target::from_be_bytes([
            0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0,
        ])
        .unwrap();
        assert_eq!(search.search(&tiny, u64::MAX - 3, 100), None);
    }

    #[test]
    #[should_panic(expected = "Seal::Pow")]
    fn a_header_without_a_pow_seal_is_refused() {
        let mut h = header(1, 1, ONE_IN_256_BITS);
        h.seal = Seal::Genesis;
        NonceSearch::new(&h);
    }

    fn words_meet_as_target_does(hash: [u8; 32], target: [u8; 32]) {
        let t = Target::from_be_bytes(target).unwrap();
        assert_eq!(
            meets(&be_words(&hash), &be_words(&target)),
            t.is_met_by(&Hash(hash)),
            "hash {} target {}",
            hex::encode(hash),
            hex::encode(target)
        );
    }

    #[test]
    fn word_compare_matches_target_at_the_edges() {
        let target = target_of(0x1d00_ffff).to_be_bytes();
        words_meet_as_target_does(target, target);
        for i in 0..32 {
            let mut above = target;
            above[i] = above[i].wrapping_add(1);
            words_meet_as_target_does(above, target);
            let mut below = target;
            below[i] = below[i].wrapping_sub(1);
            words_meet_as_target_does(below, target);
        }
        words_meet_as_target_does([0; 32], target);
        words_meet_as_target_does([0xff; 32], target);
        words_meet_as_target_does([0xff; 32], [0xff; 32]);
    }

    fn arb_header() -> impl Strategy<Value = BlockHeader> {
        (
            any::<u64>(),
            any::<[u8; 32]>(),
            any::<u64>(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            any::<[u8; 20]>(),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(
                |(height, parent, time, tx, state, proposer, version, bits)| BlockHeader {
                    height: Height(height),
                    parent: Hash(parent),
                    timestamp: TimestampMs(time),
                    tx_root: Hash(tx),
                    state_root: Hash(state),
                    proposer: Address(proposer),
                    protocol_version: ProtocolVersion(version),
                    seal: Seal::Pow { bits, nonce: 0 },
                },
            )
    }

    proptest! {
        #[test]
        fn midstate_hash_equals_header_hash(header in arb_header(), nonce in any::<u64>()) {
            prop_assert_eq!(NonceSearch::new(&header).hash(nonce), with_nonce(&header, nonce).hash());
        }

        #[test]
        fn midstate_hash_equals_sha256d_for_any_prefix(
            prefix in proptest::collection::vec(any::<u8>(), 0..300),
            nonce in any::<u64>(),
        ) {
            prop_assert_eq!(NonceSearch::from_prefix(&prefix).hash(nonce).0, sha256d(&message(&prefix, nonce)));
        }

        #[test]
        fn word_compare_matches_target(
            target in any::<[u8; 32]>().prop_filter("non-zero", |t| t.iter().any(|b| *b != 0)),
            hash in any::<[u8; 32]>(),
            shared in 0usize..=32,
        ) {
            // Sharing a prefix with the target puts the first difference at any byte.
            let mut hash = hash;
            hash[..shared].copy_from_slice(&target[..shared]);
            words_meet_as_target_does(hash, target);
        }
    }
}
