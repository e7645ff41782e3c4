//! Who leads a round in a BFT engine: the schedule alone, or the schedule with leader
//! reputation (`super::Reputation`), whose state is kept per block (HotStuff: each block of
//! its tree; PBFT: the committed tip) so the leader of a proposal is a function of the block
//! it extends. Rounds here are the rounds of the seal: HotStuff's round, PBFT's turn.
//!
//! Owns: the per-block reputation states and the rule chosen by the genesis. Never: decides
//! anything about safety; a wrong leader costs a round, never a fork.

use std::collections::HashMap;

use cairn_ledger::block::{Block, Seal};
use cairn_ledger::genesis::LeaderElection;
use cairn_ledger::{Hash, Round};

use super::{BlockFacts, LeaderSchedule, PassedOver, Reputation, ReputationConfig, ValidatorSet};

pub(crate) struct Leaders {
    schedule: LeaderSchedule,
    reputation: Option<ReputationRule>,
}

struct ReputationRule {
    config: ReputationConfig,
    /// The state after each block of the tree (the committed root included).
    states: HashMap<Hash, Reputation>,
}

/// What the rule needs of a block; `None` for a block without a BFT seal (genesis).
/// `parent_round` is the round of the state the block is folded into: a PBFT seal's commit
/// certificate was signed at its parent's turn, which the certificate itself does not name.
fn facts<'a>(
    validators: &ValidatorSet,
    block: &Block,
    parent_round: Round,
    signers: &'a mut Vec<usize>,
) -> Option<BlockFacts<'a>> {
    let (round, cert, qc_round) = match &block.header.seal {
        Seal::HotStuff { round, justify } => (*round, justify, justify.round),
        Seal::Pbft {
            turn,
            parent_commit,
        } => (*turn, parent_commit, parent_round),
        Seal::Genesis | Seal::Pow { .. } => return None,
    };
    let proposer = validators
        .members()
        .iter()
        .position(|m| m.address == block.header.proposer)?;
    signers.clear();
    signers.extend(
        cert.votes
            .iter()
            .filter_map(|(key, _)| validators.position(key)),
    );
    Some(BlockFacts {
        round,
        timestamp: block.header.timestamp,
        proposer,
        qc_round,
        qc_signers: signers,
    })
}

impl Leaders {
    /// The rule of `election`, starting at the committed `root`. `history` (the committed
    /// blocks just below it, lowest first) is folded in first, so a restarted node passes over
    /// whom the others do unless the failure is older than its history.
    pub(crate) fn new(
        validators: &ValidatorSet,
        election: LeaderElection,
        history: &[Block],
        root: &Block,
    ) -> Leaders {
        let schedule = LeaderSchedule::new(validators);
        let reputation = match election {
            LeaderElection::RoundRobin => None,
            LeaderElection::Reputation { retry_after_ms } => {
                let config = ReputationConfig {
                    retry_after_ms,
                    ..ReputationConfig::default()
                };
                let first = history.first().unwrap_or(root);
                let round = match &first.header.seal {
                    Seal::HotStuff { round, .. } => *round,
                    Seal::Pbft { turn, .. } => *turn,
                    Seal::Genesis | Seal::Pow { .. } => Round(0),
                };
                let mut state = Reputation::start(validators, round, first.header.timestamp);
                let mut signers = Vec::new();
                for block in history.iter().skip(1).chain(std::iter::once(root)) {
                    if let Some(f) = facts(validators, block, state.round(), &mut signers)
                        && f.round > state.round()
                    {
                        state = state.after_block(validators, &schedule, &config, &f);
                    }
                }
                let mut states = HashMap::new();
                states.insert(root.hash(), state);
                Some(ReputationRule { config, states })
            }
        };
        Leaders {
            schedule,
            reputation,
        }
    }

    /// The leader of `round` for a proposal extending `parent`; `None` when the rule needs
    /// the parent's state and the parent is not in the tree.
    pub(crate) fn leader_after(
        &self,
        validators: &ValidatorSet,
        parent: &Hash,
        round: Round,
    ) -> Option<usize> {
        self.leader_on_trial(validators, parent, round)
            .map(|(l, _)| l)
    }

    /// [`Leaders::leader_after`], and whether the leader is on trial (never under round
    /// robin): see `Reputation::leader_on_trial`.
    pub(crate) fn leader_on_trial(
        &self,
        validators: &ValidatorSet,
        parent: &Hash,
        round: Round,
    ) -> Option<(usize, bool)> {
        match &self.reputation {
            None => Some((self.schedule.leader(round), false)),
            Some(rule) => rule
                .states
                .get(parent)
                .map(|s| s.leader_on_trial(validators, &self.schedule, &rule.config, round)),
        }
    }

    /// Records a block just inserted into the tree (its parent is there).
    pub(crate) fn on_insert(&mut self, validators: &ValidatorSet, block: &Block, id: Hash) {
        let Some(rule) = &mut self.reputation else {
            return;
        };
        let mut signers = Vec::new();
        let Some(parent) = rule.states.get(&block.header.parent) else {
            return;
        };
        let Some(f) = facts(validators, block, parent.round(), &mut signers) else {
            return;
        };
        let state = parent.after_block(validators, &self.schedule, &rule.config, &f);
        rule.states.insert(id, state);
    }

    /// Forgets the states of blocks no longer in the tree.
    pub(crate) fn retain(&mut self, keep: impl Fn(&Hash) -> bool) {
        if let Some(rule) = &mut self.reputation {
            rule.states.retain(|h, _| keep(h));
        }
    }

    /// Who is passed over for proposals extending `at`.
    pub(crate) fn passed_over(&self, validators: &ValidatorSet, at: &Hash) -> Vec<PassedOver> {
        match &self.reputation {
            None => Vec::new(),
            Some(rule) => rule
                .states
                .get(at)
                .map(|s| s.passed_over(validators, &rule.config))
                .unwrap_or_default(),
        }
    }

    pub(crate) fn is_reputation(&self) -> bool {
        self.reputation.is_some()
    }

    /// States held, for the engine's bound assertions.
    pub(crate) fn len(&self) -> usize {
        self.reputation.as_ref().map_or(0, |r| r.states.len())
    }
}
