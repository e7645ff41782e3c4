//! Which round a height belongs to. A feed's rounds tile the chain from its start height:
//! round `n` covers the heights `start + n·L ..= start + (n+1)·L − 1`, where `L` is the
//! commit window plus the reveal window; the first `commit_blocks` heights are its commit
//! phase, the rest its reveal phase. Pure arithmetic, all of it checked.

use serde::{Deserialize, Serialize};

use crate::types::{Height, RoundNumber};

/// A feed's round timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundSchedule {
    /// First height of round 0.
    pub start: Height,
    pub commit_blocks: u64,
    pub reveal_blocks: u64,
}

/// The phase a height is in, within its round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Commit,
    Reveal,
}

/// The heights of one round, all inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundBounds {
    pub round: RoundNumber,
    /// First height of the commit phase.
    pub start: Height,
    /// First height of the reveal phase; the commit phase ends the height before.
    pub reveal_start: Height,
    /// Last height of the reveal phase. The round is finalised at the end of this block.
    pub end: Height,
}

/// Where a height falls: its round and phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundPosition {
    pub bounds: RoundBounds,
    pub phase: Phase,
}

impl RoundSchedule {
    /// Blocks in one round (never 0 for validated parameters).
    pub fn round_blocks(&self) -> u64 {
        self.commit_blocks.saturating_add(self.reveal_blocks)
    }

    /// The heights of `round`, or `None` if they would pass `u64::MAX`.
    pub fn bounds(&self, round: RoundNumber) -> Option<RoundBounds> {
        let length = self.round_blocks();
        let start = self.start.checked_add(round.0.checked_mul(length)?)?;
        let reveal_start = start.checked_add(self.commit_blocks)?;
        let end = start.checked_add(length.checked_sub(1)?)?;
        Some(RoundBounds {
            round,
            start,
            reveal_start,
            end,
        })
    }

    /// The round and phase of `height`; `None` before the feed's start.
    pub fn position(&self, height: Height) -> Option<RoundPosition> {
        let offset = height.0.checked_sub(self.start.0)?;
        let length = self.round_blocks();
        if length == 0 {
            return None;
        }
        let bounds = self.bounds(RoundNumber(offset / length))?;
        let phase = if height < bounds.reveal_start {
            Phase::Commit
        } else {
            Phase::Reveal
        };
        Some(RoundPosition { bounds, phase })
    }
}

impl RoundBounds {
    pub fn phase_at(&self, height: Height) -> Option<Phase> {
        if height < self.start || height > self.end {
            None
        } else if height < self.reveal_start {
            Some(Phase::Commit)
        } else {
            Some(Phase::Reveal)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heights_map_to_rounds_and_phases() {
        let s = RoundSchedule {
            start: Height(10),
            commit_blocks: 3,
            reveal_blocks: 2,
        };
        assert_eq!(s.position(Height(9)), None);
        let expect = [
            (10, 0, Phase::Commit),
            (12, 0, Phase::Commit),
            (13, 0, Phase::Reveal),
            (14, 0, Phase::Reveal),
            (15, 1, Phase::Commit),
            (18, 1, Phase::Reveal),
            (19, 1, Phase::Reveal),
            (20, 2, Phase::Commit),
        ];
        for (h, round, phase) in expect {
            let p = s.position(Height(h)).unwrap();
            assert_eq!(
                (p.bounds.round, p.phase),
                (RoundNumber(round), phase),
                "{h}"
            );
            assert_eq!(p.bounds.phase_at(Height(h)), Some(phase));
        }
        let b = s.bounds(RoundNumber(1)).unwrap();
        assert_eq!(
            (b.start, b.reveal_start, b.end),
            (Height(15), Height(18), Height(19))
        );
        assert_eq!(b.phase_at(Height(14)), None);
        assert_eq!(b.phase_at(Height(20)), None);
    }

    #[test]
    fn far_rounds_do_not_overflow() {
        let s = RoundSchedule {
            start: Height(5),
            commit_blocks: 3,
            reveal_blocks: 2,
        };
        assert_eq!(s.bounds(RoundNumber(u64::MAX)), None);
        // The last round would end past u64::MAX: no position rather than a wrap or a panic.
        assert_eq!(s.position(Height(u64::MAX)), None);
        assert!(s.position(Height(u64::MAX - 5)).is_some());
    }
}
