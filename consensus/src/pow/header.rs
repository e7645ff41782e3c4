//! Checking one proof-of-work header against its ancestors: the seal, the height, the bits the
//! chain asks for, the work, and the timestamp rules, in one call the node makes for every
//! header it hears of (headers first: before any body is fetched).
//!
//! Owns: the order of the checks and what each failure means for the sender. Never: looks
//! at transactions or state roots (the body is checked when it is executed), or fetches
//! ancestors (the caller passes them, e.g. from [`super::BlockIndex::ancestry`]).

use cairn_ledger::block::{BlockHeader, Seal};
use cairn_ledger::{Hash, Height, TimestampMs};

use super::PowRules;
use super::difficulty::{self, DifficultyError, TimestampCheck, WindowStartTooEarly};
use super::target::{CompactTarget, PowError, Work, check_proof_of_work};

/// What the difficulty and fork-choice rules need of a header: its id, place and time, and
/// the bits it carries. Genesis's summary carries the genesis `initial_bits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderSummary {
    pub hash: Hash,
    pub height: Height,
    pub timestamp: TimestampMs,
    pub bits: CompactTarget,
}

impl HeaderSummary {
    /// The summary of block 0, whose seal is the genesis file itself.
    pub fn genesis(header: &BlockHeader, rules: &PowRules) -> HeaderSummary {
        HeaderSummary {
            hash: header.hash(),
            height: header.height,
            timestamp: header.timestamp,
            bits: rules.retarget.initial_bits(),
        }
    }
}

/// A header that passed [`check_header`], with what the block index needs of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckedHeader {
    pub summary: HeaderSummary,
    pub parent: Hash,
    pub nonce: u64,
    /// Expected hashes to find this block.
    pub work: Work,
}

/// Why a header was not accepted, and through [`HeaderError::rejection`], what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header {hash} is not sealed with proof of work")]
    NotPow { hash: Hash },
    #[error("no ancestors given for header {hash}; at least its parent is needed")]
    NoParent { hash: Hash },
    #[error("header {hash} names parent {parent}, but the ancestors given end at {given}")]
    ParentMismatch {
        hash: Hash,
        parent: Hash,
        given: Hash,
    },
    #[error("header {hash} has height {height}; its parent's child is at {expected}")]
    HeightMismatch {
        hash: Hash,
        height: Height,
        expected: Height,
    },
    #[error("header {hash}: cannot work out the required bits: {source}")]
    Ancestry {
        hash: Hash,
        #[source]
        source: DifficultyError,
    },
    #[error("header {hash} carries bits {bits}; the chain requires {expected} at this height")]
    WrongBits {
        hash: Hash,
        bits: CompactTarget,
        expected: CompactTarget,
    },
    #[error(transparent)]
    Pow(#[from] PowError),
    #[error(
        "header {hash}: timestamp {time} ms is not after the median of the previous blocks, {median_time_past} ms"
    )]
    TooOld {
        hash: Hash,
        time: TimestampMs,
        median_time_past: TimestampMs,
    },
    #[error("header {hash}: {source}")]
    WindowStart {
        hash: Hash,
        #[source]
        source: WindowStartTooEarly,
    },
    #[error(
        "header {hash}: timestamp {time} ms is past the latest we accept now, {latest_allowed} ms; held back"
    )]
    FromTheFuture {
        hash: Hash,
        time: TimestampMs,
        latest_allowed: TimestampMs,
    },
}

/// What a failed check means for the header and for whoever sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The header breaks a consensus rule and always will: mark it invalid (with every
    /// descendant), and score the peer that sent it.
    Invalid,
    /// Valid perhaps later (its time has not come): keep it aside and retry, punish nobody.
    HoldBack,
    /// The caller passed the wrong ancestors: a bug or a race in the node, not the header's
    /// fault. Neither mark it nor punish the sender.
    Caller,
}

impl HeaderError {
    pub fn rejection(&self) -> Rejection {
        match self {
            HeaderError::FromTheFuture { .. } => Rejection::HoldBack,
            HeaderError::NoParent { .. }
            | HeaderError::ParentMismatch { .. }
            | HeaderError::Ancestry { .. } => Rejection::Caller,
            HeaderError::NotPow { .. }
            | HeaderError::HeightMismatch { .. }
            | HeaderError::WrongBits { .. }
            | HeaderError::Pow(_)
            | HeaderError::TooOld { .. }
            | HeaderError::WindowStart { .. } => Rejection::Invalid,
        }
    }
}

/// Checks `header` against its ancestors (height order, ending at its parent; at least
/// [`PowRules::ancestors_needed`] of them) at the caller's clock `now`.
///
/// The order makes the cheap and the permanent come first: the seal, height and required
/// bits before hashing, the hash before the timestamps, and the one check whose failure is
/// temporary (a timestamp from the future) last, so that a held-back header is otherwise
/// known good.
pub fn check_header(
    rules: &PowRules,
    header: &BlockHeader,
    ancestors: &[HeaderSummary],
    now: TimestampMs,
) -> Result<CheckedHeader, HeaderError> {
    let hash = header.hash();
    let Seal::Pow { bits, nonce } = header.seal else {
        return Err(HeaderError::NotPow { hash });
    };
    let bits = CompactTarget(bits);
    let Some(parent) = ancestors.last() else {
        return Err(HeaderError::NoParent { hash });
    };
    if parent.hash != header.parent {
        return Err(HeaderError::ParentMismatch {
            hash,
            parent: header.parent,
            given: parent.hash,
        });
    }
    let expected_height = parent.height.next();
    if header.height != expected_height {
        return Err(HeaderError::HeightMismatch {
            hash,
            height: header.height,
            expected: expected_height,
        });
    }
    let expected = difficulty::next_bits(&rules.retarget, header.height, ancestors)
        .map_err(|source| HeaderError::Ancestry { hash, source })?;
    if bits != expected {
        return Err(HeaderError::WrongBits {
            hash,
            bits,
            expected,
        });
    }
    let work = check_proof_of_work(&hash, bits, rules.retarget.pow_limit())?;
    // Non-empty: the parent is there.
    let median_time_past = difficulty::median_time_past(ancestors).unwrap_or(parent.timestamp);
    let future_check = match difficulty::check_timestamp(
        header.timestamp,
        median_time_past,
        now,
        rules.future_block_time_ms_max,
    ) {
        TimestampCheck::TooOld {
            time,
            median_time_past,
        } => {
            return Err(HeaderError::TooOld {
                hash,
                time,
                median_time_past,
            });
        }
        other => other,
    };
    difficulty::check_window_start(
        &rules.retarget,
        header.height,
        header.timestamp,
        parent.timestamp,
    )
    .map_err(|source| HeaderError::WindowStart { hash, source })?;
    if let TimestampCheck::FromTheFuture {
        time,
        latest_allowed,
    } = future_check
    {
        return Err(HeaderError::FromTheFuture {
            hash,
            time,
            latest_allowed,
        });
    }
    Ok(CheckedHeader {
        summary: HeaderSummary {
            hash,
            height: header.height,
            timestamp: header.timestamp,
            bits,
        },
        parent: header.parent,
        nonce,
        work,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pow::test_support::{EASY_BITS, genesis, mine, params};

    fn rules() -> PowRules {
        PowRules::new(&params()).unwrap()
    }

    fn chain(rules: &PowRules, blocks: u64) -> Vec<HeaderSummary> {
        let (_, g) = genesis(rules);
        let mut chain = vec![g];
        for h in 1..=blocks {
            let parent = *chain.last().unwrap();
            let header = mine(&parent, parent.timestamp.0 + 2000, EASY_BITS, true);
            // Exactly the ancestors the rules ask for are enough.
            let needed = rules.ancestors_needed(Height(h)) as usize;
            let ancestors = &chain[chain.len() - needed..];
            let checked =
                check_header(rules, &header, ancestors, TimestampMs(u64::MAX / 2)).unwrap();
            assert_eq!(checked.summary.height, Height(h));
            chain.push(checked.summary);
        }
        chain
    }

    #[test]
    fn a_well_formed_chain_passes() {
        let r = rules();
        let c = chain(&r, 25);
        assert_eq!(c.len(), 26);
        let parent = c[25];
        let header = mine(&parent, parent.timestamp.0 + 2000, EASY_BITS, true);
        let checked = check_header(&r, &header, &c, parent.timestamp).unwrap();
        assert_eq!(
            checked.work,
            CompactTarget(EASY_BITS).to_target().unwrap().to_work()
        );
        assert_eq!(checked.parent, parent.hash);
        assert_eq!(checked.summary.hash, header.hash());
    }

    #[test]
    fn bad_headers_are_refused_with_a_reason_and_a_verdict() {
        let r = rules();
        let c = chain(&r, 12);
        let parent = c[12];
        let now = TimestampMs(parent.timestamp.0 + 10_000);
        let good_time = parent.timestamp.0 + 2000;

        let not_enough_work = mine(&parent, good_time, EASY_BITS, false);
        let e = check_header(&r, &not_enough_work, &c, now).unwrap_err();
        assert!(
            matches!(e, HeaderError::Pow(PowError::InsufficientWork { .. })),
            "{e}"
        );
        assert_eq!(e.rejection(), Rejection::Invalid);

        let wrong_bits = mine(&parent, good_time, 0x2000ffff, true);
        let e = check_header(&r, &wrong_bits, &c, now).unwrap_err();
        assert_eq!(
            e,
            HeaderError::WrongBits {
                hash: wrong_bits.hash(),
                bits: CompactTarget(0x2000ffff),
                expected: CompactTarget(EASY_BITS)
            }
        );
        assert_eq!(e.rejection(), Rejection::Invalid);

        let mtp = difficulty::median_time_past(&c).unwrap();
        let too_old = mine(&parent, mtp.0, EASY_BITS, true);
        let e = check_header(&r, &too_old, &c, now).unwrap_err();
        assert!(
            matches!(e, HeaderError::TooOld { median_time_past, .. } if median_time_past == mtp)
        );
        assert_eq!(e.rejection(), Rejection::Invalid);

        let future = now.0 + r.future_block_time_ms_max + 1;
        let early = mine(&parent, future, EASY_BITS, true);
        let e = check_header(&r, &early, &c, now).unwrap_err();
        assert!(matches!(e, HeaderError::FromTheFuture { .. }), "{e}");
        assert_eq!(e.rejection(), Rejection::HoldBack);
        // The same header is fine once the clock has caught up.
        assert!(check_header(&r, &early, &c, TimestampMs(future)).is_ok());

        let mut wrong_height = mine(&parent, good_time, EASY_BITS, true);
        wrong_height.height = Height(40);
        let e = check_header(&r, &wrong_height, &c, now).unwrap_err();
        assert!(
            matches!(
                e,
                HeaderError::HeightMismatch {
                    expected: Height(13),
                    ..
                }
            ),
            "{e}"
        );

        let mut not_pow = mine(&parent, good_time, EASY_BITS, true);
        not_pow.seal = Seal::Genesis;
        let e = check_header(&r, &not_pow, &c, now).unwrap_err();
        assert_eq!(
            e,
            HeaderError::NotPow {
                hash: not_pow.hash()
            }
        );
        assert_eq!(e.rejection(), Rejection::Invalid);
    }

    #[test]
    fn wrong_ancestry_is_the_callers_fault() {
        let r = rules();
        let c = chain(&r, 12);
        let header = mine(&c[12], c[12].timestamp.0 + 2000, EASY_BITS, true);
        let now = TimestampMs(u64::MAX / 2);
        let e = check_header(&r, &header, &c[..12], now).unwrap_err();
        assert!(matches!(e, HeaderError::ParentMismatch { .. }), "{e}");
        assert_eq!(e.rejection(), Rejection::Caller);
        assert_eq!(
            check_header(&r, &header, &[], now).unwrap_err().rejection(),
            Rejection::Caller
        );
        // Height 20 retargets over blocks 9..=19; two ancestors are not enough.
        let c = chain(&r, 19);
        let header = mine(&c[19], c[19].timestamp.0 + 2000, EASY_BITS, true);
        let e = check_header(&r, &header, &c[18..], now).unwrap_err();
        assert!(matches!(e, HeaderError::Ancestry { .. }), "{e}");
        assert_eq!(e.rejection(), Rejection::Caller);
    }

    #[test]
    fn a_window_start_stamped_far_before_its_parent_is_invalid() {
        let r = rules();
        // Spread the chain out so the median is far below the parent's time.
        let (_, g) = genesis(&r);
        let mut c = vec![g];
        for h in 1..=19u64 {
            let parent = *c.last().unwrap();
            let gap = if h == 19 { 10_000_000 } else { 1 };
            // Block 10 retargets: the first window was fast, so difficulty rose.
            let bits = difficulty::next_bits(&r.retarget, Height(h), &c).unwrap();
            let header = mine(&parent, parent.timestamp.0 + gap, bits.0, true);
            c.push(
                check_header(&r, &header, &c, TimestampMs(u64::MAX / 2))
                    .unwrap()
                    .summary,
            );
        }
        let parent = c[19];
        let bits = difficulty::next_bits(&r.retarget, Height(20), &c).unwrap();
        let too_early = parent.timestamp.0 - difficulty::WINDOW_START_REWIND_MS_MAX - 1;
        let header = mine(&parent, too_early, bits.0, true);
        let e = check_header(&r, &header, &c, TimestampMs(u64::MAX / 2)).unwrap_err();
        assert!(matches!(e, HeaderError::WindowStart { .. }), "{e}");
        assert_eq!(e.rejection(), Rejection::Invalid);
        let header = mine(&parent, too_early + 1, bits.0, true);
        assert!(check_header(&r, &header, &c, TimestampMs(u64::MAX / 2)).is_ok());
    }
}
