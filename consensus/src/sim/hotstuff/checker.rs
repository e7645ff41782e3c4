//! The simulator's judges, consulted after every step.
//!
//! Safety: no two honest validators commit different blocks at one height; each honest
//! validator's committed chain links up (so it is a prefix of the longest); no honest
//! validator signs votes for two blocks in one round, counting across crash-restarts
//! (votes are taken from the persisted safety state, which survives a crash); no honest
//! validator is accused by evidence; no honest validator votes for or commits a block the
//! validity policy refuses. Liveness: once the network is stable, every honest
//! validator commits [`LIVENESS_COMMITS`] blocks beyond the best height at that moment
//! before any honest validator gets more than `rounds_max` rounds further.
//!
//! Owns: the verdicts. Never: influences the run it judges.

use std::collections::{BTreeMap, HashMap, HashSet};

use cairn_ledger::block::Block;
use cairn_ledger::{Hash, Height, Round};

use crate::sim::kernel::{Judge, Violations};

/// New blocks every honest validator must commit after the network stabilises.
pub const LIVENESS_COMMITS: u64 = 3;
/// Once the network is stable (every honest validator up and connected), the longest the
/// honest validators may go without any of them committing: 30 rounds at the longest
/// round timeout, which covers a run of silent Byzantine leaders with room to spare.
pub const STALL_MS_MAX: u64 = 30 * super::world::SIM_ROUND_TIMEOUT_MS_MAX;

#[derive(Default)]
pub struct SafetyChecker {
    /// The first block committed at each height, and by whom.
    canonical: BTreeMap<Height, (Hash, usize)>,
    /// Each node's last committed block (`None`: genesis).
    tips: Vec<Option<(Height, Hash)>>,
    votes: HashMap<(usize, Round), Hash>,
    /// PBFT: (node, commit?, height, round) → the block signed.
    position_votes: HashMap<(usize, bool, Height, Round), Hash>,
    /// Blocks built to be refused by the validity policy.
    invalid: HashSet<Hash>,
    violations: Violations,
}

impl Judge for SafetyChecker {
    fn record(&self) -> &Violations {
        &self.violations
    }

    fn record_mut(&mut self) -> &mut Violations {
        &mut self.violations
    }
}

impl SafetyChecker {
    pub fn new(validators: usize) -> SafetyChecker {
        SafetyChecker {
            tips: vec![None; validators],
            ..SafetyChecker::default()
        }
    }

    /// `block` was built to be refused by every honest validator's validity policy.
    pub fn on_invalid_proposed(&mut self, block: Hash) {
        self.invalid.insert(block);
    }

    pub fn on_commit(&mut self, now_ms: u64, node: usize, blocks: &[Block]) {
        for block in blocks {
            let (height, id) = (block.header.height, block.hash());
            if self.invalid.contains(&id) {
                self.violation(format!(
                    "t={now_ms}ms: node {node} committed the invalid block {id} at height {height}"
                ));
            }
            let expected = self.tips[node].map_or(Height(1), |(h, _)| h.next());
            let links = self.tips[node].is_none_or(|(_, tip)| block.header.parent == tip);
            if height != expected || !links {
                self.violation(format!(
                    "t={now_ms}ms: node {node} committed block {id} at height {height}, which \
                     does not extend its committed chain (expected height {expected})"
                ));
            }
            self.tips[node] = Some((height, id));
            match self.canonical.get(&height) {
                Some(&(first, by)) if first != id => self.violation(format!(
                    "t={now_ms}ms: nodes {by} and {node} committed different blocks at height \
                     {height}: {first} and {id}"
                )),
                Some(_) => {}
                None => {
                    self.canonical.insert(height, (id, node));
                }
            }
        }
    }

    pub fn on_vote(&mut self, now_ms: u64, node: usize, round: Round, block: Hash) {
        if self.invalid.contains(&block) {
            self.violation(format!(
                "t={now_ms}ms: honest node {node} voted for the invalid block {block} in round \
                 {round}"
            ));
        }
        match self.votes.get(&(node, round)) {
            Some(&first) if first != block => self.violation(format!(
                "t={now_ms}ms: honest node {node} signed votes for two blocks in round {round}: \
                 {first} and {block}"
            )),
            Some(_) => {}
            None => {
                self.votes.insert((node, round), block);
            }
        }
    }

    /// A PBFT prepare (`commit: false`) or commit an honest node signed, from its persisted
    /// safety state: one block per kind and position, ever, and never an invalid one.
    pub fn on_position_vote(
        &mut self,
        now_ms: u64,
        node: usize,
        commit: bool,
        height: Height,
        round: Round,
        block: Hash,
    ) {
        let kind = if commit { "commits" } else { "prepares" };
        if self.invalid.contains(&block) && !commit {
            self.violation(format!(
                "t={now_ms}ms: honest node {node} prepared the invalid block {block} at height \
                 {height} round {round}"
            ));
        }
        match self.position_votes.get(&(node, commit, height, round)) {
            Some(&first) if first != block => self.violation(format!(
                "t={now_ms}ms: honest node {node} signed {kind} for two blocks at height \
                 {height} round {round}: {first} and {block}"
            )),
            Some(_) => {}
            None => {
                self.position_votes
                    .insert((node, commit, height, round), block);
            }
        }
    }

    pub fn on_evidence_against_honest(&mut self, now_ms: u64, accused: usize) {
        self.violation(format!(
            "t={now_ms}ms: evidence of equivocation against honest node {accused}"
        ));
    }

    pub fn best_height(&self) -> Height {
        self.canonical
            .keys()
            .next_back()
            .copied()
            .unwrap_or(Height(0))
    }
}

/// Tracks whether commits resumed after the network stabilised.
pub struct LivenessTracker {
    rounds_max: u64,
    /// (round, height) baselines taken when the network became stable.
    baseline: Option<(Round, Height)>,
    verdict: Option<Result<u64, String>>,
}

impl LivenessTracker {
    pub fn new(rounds_max: u64) -> LivenessTracker {
        LivenessTracker {
            rounds_max,
            baseline: None,
            verdict: None,
        }
    }

    pub fn stabilised(&mut self, max_round: Round, best_height: Height) {
        self.baseline.get_or_insert((max_round, best_height));
    }

    /// Checks progress; `heights` and `max_round` cover the honest validators only.
    pub fn observe(&mut self, now_ms: u64, max_round: Round, heights: &[Height]) {
        let Some((round0, height0)) = self.baseline else {
            return;
        };
        if self.verdict.is_some() {
            return;
        }
        let target = height0.0 + LIVENESS_COMMITS;
        if heights.iter().all(|h| h.0 >= target) {
            self.verdict = Some(Ok(max_round.0.saturating_sub(round0.0)));
        } else if max_round.0 > round0.0 + self.rounds_max {
            self.verdict = Some(Err(format!(
                "t={now_ms}ms: {} rounds after the network stabilised (round {round0}), honest \
                 heights are {heights:?}; all needed {target}",
                self.rounds_max
            )));
        }
    }

    pub fn give_up(&mut self, now_ms: u64, why: &str) {
        if self.verdict.is_none() {
            self.verdict = Some(Err(format!("t={now_ms}ms: {why}")));
        }
    }

    /// `Some(Ok(rounds))` once commits resumed, `Some(Err(why))` on a failure.
    pub fn verdict(&self) -> Option<&Result<u64, String>> {
        self.verdict.as_ref()
    }
}

/// Fails a run as soon as, after stabilisation, honest commits stop for longer than
/// [`STALL_MS_MAX`], rather than only judging progress once at the end.
pub struct StallChecker {
    stable_from_ms: u64,
    /// The highest honest height and when it was first reached (or stabilisation).
    progress: Option<(Height, u64)>,
}

impl StallChecker {
    pub fn new(stable_from_ms: u64) -> StallChecker {
        StallChecker {
            stable_from_ms,
            progress: None,
        }
    }

    /// `Some(why)` once honest commits have stalled for too long.
    pub fn observe(&mut self, now_ms: u64, heights: &[Height]) -> Option<String> {
        if now_ms < self.stable_from_ms {
            return None;
        }
        let best = heights.iter().copied().max().unwrap_or(Height(0));
        let since = match self.progress {
            Some((h, since)) if h >= best => since,
            _ => {
                self.progress = Some((best, now_ms));
                now_ms
            }
        };
        (now_ms - since > STALL_MS_MAX).then(|| {
            format!(
                "t={now_ms}ms: no honest validator committed for {}ms after the network was \
                 stable (honest heights {heights:?}, bound {STALL_MS_MAX}ms)",
                now_ms - since
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_ledger::block::{BlockHeader, Seal};
    use cairn_ledger::{Address, ProtocolVersion, TimestampMs};

    fn block(height: u64, parent: Hash, salt: u64) -> Block {
        Block {
            header: BlockHeader {
                height: Height(height),
                parent,
                timestamp: TimestampMs(salt),
                tx_root: Hash::ZERO,
                state_root: Hash::ZERO,
                proposer: Address([0; 20]),
                protocol_version: ProtocolVersion(1),
                seal: Seal::Genesis,
            },
            transactions: Vec::new(),
        }
    }

    #[test]
    fn conflicting_commits_and_double_votes_are_violations() {
        let mut c = SafetyChecker::new(2);
        let b1 = block(1, Hash::ZERO, 0);
        let b2 = block(2, b1.hash(), 0);
        c.on_commit(0, 0, &[b1.clone(), b2.clone()]);
        c.on_commit(0, 1, std::slice::from_ref(&b1));
        assert!(c.violations().is_empty());
        c.on_commit(0, 1, &[block(2, b1.hash(), 9)]);
        assert_eq!(c.violation_count(), 1);
        // A gap in one node's chain.
        c.on_commit(0, 0, &[block(4, b2.hash(), 0)]);
        assert_eq!(c.violation_count(), 2);
        c.on_vote(0, 1, Round(3), Hash([1; 32]));
        c.on_vote(0, 1, Round(3), Hash([1; 32]));
        c.on_vote(0, 1, Round(3), Hash([2; 32]));
        assert_eq!(c.violation_count(), 3);
        // A vote for, or a commit of, a block the validity policy refuses.
        let bad = block(3, block(2, b1.hash(), 9).hash(), 7);
        c.on_invalid_proposed(bad.hash());
        c.on_vote(0, 0, Round(4), bad.hash());
        assert_eq!(c.violation_count(), 4);
        c.on_commit(0, 1, &[bad]);
        assert_eq!(c.violation_count(), 5);
    }

    #[test]
    fn a_stall_after_stabilisation_fails_during_the_run() {
        let mut c = StallChecker::new(1000);
        assert_eq!(c.observe(0, &[Height(1)]), None);
        assert_eq!(c.observe(1000, &[Height(1)]), None);
        assert_eq!(c.observe(1000 + STALL_MS_MAX, &[Height(2)]), None);
        assert_eq!(c.observe(1000 + 2 * STALL_MS_MAX, &[Height(2)]), None);
        assert!(c.observe(1001 + 2 * STALL_MS_MAX, &[Height(2)]).is_some());
    }

    #[test]
    fn liveness_needs_new_commits_within_the_round_bound() {
        let mut ok = LivenessTracker::new(10);
        ok.stabilised(Round(50), Height(20));
        ok.observe(0, Round(55), &[Height(23), Height(22)]);
        assert_eq!(ok.verdict(), None);
        ok.observe(0, Round(56), &[Height(23), Height(24)]);
        assert_eq!(ok.verdict(), Some(&Ok(6)));
        let mut stuck = LivenessTracker::new(10);
        stuck.stabilised(Round(50), Height(20));
        stuck.observe(0, Round(61), &[Height(20), Height(30)]);
        assert!(matches!(stuck.verdict(), Some(Err(_))));
    }
}
