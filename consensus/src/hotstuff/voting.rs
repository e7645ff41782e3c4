//! Votes and timeouts: votes sent to the next leader form QCs there; timeouts, broadcast
//! by every validator that gives up on a round, form TCs everywhere.
//!
//! Owns: the vote and timeout paths of the engine (its state lives in `engine.rs`).
//! Never: signs anything except through `SafetyRules`.

use cairn_ledger::{PublicKey, Round};

use super::aggregator::{Earlier, TimeoutOutcome, VoteOutcome};
use super::effects::{DropReason, Effect, Evidence};
use super::engine::{Engine, VOTE_ROUNDS_AHEAD_MAX};
use super::messages::{Message, TimeoutMsg, VoteMsg, timeout_signing_bytes, vote_signing_bytes};

impl Engine {
    // ---- votes ---------------------------------------------------------------------------

    pub(super) fn on_vote(&mut self, vote: VoteMsg) -> Result<(), DropReason> {
        let power = self
            .validators
            .power(&vote.voter)
            .ok_or(DropReason::NotAValidator {
                what: "vote",
                key: vote.voter,
            })?;
        let next = Round(vote.round.0.saturating_add(1));
        // With leader reputation the next leader depends on the block voted for: a vote for
        // a block not here yet is kept (bounded like any vote) until the block comes.
        if let Some(leader) = self.leader_after(&vote.block, next)
            && leader != self.me
        {
            return Err(DropReason::NotNextLeader {
                round: vote.round,
                leader,
            });
        }
        let current = self.current_round();
        if next < current {
            return Err(DropReason::StaleRound {
                what: "vote",
                round: vote.round,
                current,
            });
        }
        if vote.round.0 > current.0.saturating_add(VOTE_ROUNDS_AHEAD_MAX) {
            return Err(DropReason::FutureRound {
                what: "vote",
                round: vote.round,
                current,
            });
        }
        // Repeats are refused before the signature check; only a vote that could be new
        // evidence is verified.
        let (key, round) = (vote.voter, vote.round);
        match self.votes.earlier(&vote) {
            Some(Earlier::Same) => return Err(DropReason::RepeatedVote { key, round }),
            Some(Earlier::Reported) => return Err(DropReason::EquivocatingVote { key, round }),
            Some(Earlier::Other) | None => {}
        }
        let bytes = vote_signing_bytes(&self.chain, vote.round, &vote.block);
        if !self.verifier.verify(&bytes, &vote.voter, &vote.signature) {
            return Err(DropReason::BadSignature {
                what: "vote",
                key: vote.voter,
            });
        }
        // A peer's second vote in a round is its fault; our own re-sent vote is not.
        self.add_vote(vote, power).map_err(|e| match e {
            DropReason::Duplicate { .. } => DropReason::RepeatedVote { key, round },
            DropReason::Equivocation { .. } => DropReason::EquivocatingVote { key, round },
            other => other,
        })
    }

    pub(super) fn add_vote(&mut self, vote: VoteMsg, power: u64) -> Result<(), DropReason> {
        let (key, round) = (vote.voter, vote.round);
        match self
            .votes
            .add(vote.clone(), power, self.validators.quorum_power())
        {
            VoteOutcome::Counted => Ok(()),
            VoteOutcome::Duplicate => Err(DropReason::Duplicate {
                what: "vote",
                key,
                round,
            }),
            VoteOutcome::Equivocation(first) => {
                self.effects
                    .push(Effect::Evidence(Evidence::ConflictingVotes {
                        first: *first,
                        second: vote,
                    }));
                Err(DropReason::Equivocation {
                    what: "vote",
                    key,
                    round,
                })
            }
            VoteOutcome::Formed(qc) => {
                self.certs.trust_assembled(&qc);
                self.process_qc(&qc, self.me)
            }
        }
    }

    // ---- timeouts ------------------------------------------------------------------------

    pub(super) fn on_local_timeout(&mut self, round: Round) -> Result<(), DropReason> {
        let current = self.current_round();
        if round != current {
            return Err(DropReason::StaleTimer { round, current });
        }
        // Keep re-broadcasting while stuck: timeouts may have been lost.
        let after_ms = self
            .pacemaker
            .round_timeout_ms(round, self.tree.root_round());
        self.effects
            .push(Effect::ScheduleTimeout { round, after_ms });
        if !self.is_validator {
            return Ok(());
        }
        self.time_out(round)
    }

    pub(super) fn time_out(&mut self, round: Round) -> Result<(), DropReason> {
        let (mut timeout, fresh) = self
            .safety
            .timeout(self.signer.as_ref(), round)
            .map_err(DropReason::Safety)?;
        if fresh {
            self.persist();
        }
        timeout.tc = self.safety.state().highest_tc.clone();
        self.effects
            .push(Effect::Broadcast(Message::Timeout(Box::new(
                timeout.clone(),
            ))));
        // Counted even when re-sent: after a restart the collector starts empty.
        let power = self.validators.power(&self.me).unwrap_or(0);
        match self.add_timeout(&timeout, power) {
            Err(DropReason::Duplicate { .. }) | Ok(()) => Ok(()),
            Err(other) => Err(other),
        }
    }

    pub(super) fn on_timeout_msg(
        &mut self,
        from: PublicKey,
        t: TimeoutMsg,
    ) -> Result<(), DropReason> {
        let power = self
            .validators
            .power(&t.sender)
            .ok_or(DropReason::NotAValidator {
                what: "timeout",
                key: t.sender,
            })?;
        if let Some(tc) = &t.tc {
            self.process_tc(tc, from)?;
        }
        self.process_qc(&t.high_qc, from)?;
        let current = self.current_round();
        if t.round != current {
            let (what, round) = ("timeout", t.round);
            return Err(if t.round < current {
                DropReason::StaleRound {
                    what,
                    round,
                    current,
                }
            } else {
                DropReason::FutureRound {
                    what,
                    round,
                    current,
                }
            });
        }
        let bytes = timeout_signing_bytes(&self.chain, t.round, t.high_qc.round);
        if !self.verifier.verify(&bytes, &t.sender, &t.signature) {
            return Err(DropReason::BadSignature {
                what: "timeout",
                key: t.sender,
            });
        }
        self.add_timeout(&t, power)
    }

    pub(super) fn add_timeout(&mut self, t: &TimeoutMsg, power: u64) -> Result<(), DropReason> {
        let quorum = self.validators.quorum_power();
        match self.pacemaker.timeouts().add(t, power, quorum) {
            TimeoutOutcome::Duplicate => Err(DropReason::Duplicate {
                what: "timeout",
                key: t.sender,
                round: t.round,
            }),
            TimeoutOutcome::Counted { power } => {
                // f+1 timeouts include an honest one: the round is lost, so join in rather
                // than wait out the full timer (Bracha-style amplification).
                let joined = self
                    .safety
                    .state()
                    .last_timeout
                    .as_ref()
                    .is_some_and(|own| own.round == t.round);
                if self.is_validator && !joined && power >= self.validators.honest_witness_power() {
                    return self.time_out(t.round);
                }
                Ok(())
            }
            TimeoutOutcome::Formed(tc) => self.process_tc(&tc, self.me),
        }
    }
}
