//! Engine tests with real ed25519 keys: a kit that signs votes, QCs, timeouts, TCs and
//! proposals as any validator would, and a tiny in-order cluster for multi-node runs.

mod byzantine_tests;
mod cluster;
mod commit_tests;
mod fuzz;
mod rejections;
mod restart_tests;
mod sync_tests;
mod validity_tests;

use cairn_ledger::block::{Block, BlockHeader, QuorumCert, Seal};
use cairn_ledger::crypto::Keypair;
use cairn_ledger::genesis::{HotStuffParams, LeaderElection};
use cairn_ledger::{Hash, Height, ProtocolVersion, PublicKey, Round, TimestampMs};

use super::*;

pub const BASE_MS: u64 = 1000;
pub const MAX_MS: u64 = 8000;

pub fn genesis_block() -> Block {
    super::synthetic_genesis(Hash::tagged(b"cairn/test-genesis", &[]))
}

pub struct Kit {
    pub keys: Vec<Keypair>,
    pub validators: ValidatorSet,
    pub genesis: Block,
    pub chain: Hash,
}

impl Kit {
    pub fn new(n: usize) -> Kit {
        let keys: Vec<Keypair> = (0..n)
            .map(|i| Keypair::from_secret(&[i as u8 + 1; 32]))
            .collect();
        let members: Vec<(PublicKey, u64)> = keys.iter().map(|k| (k.public(), 1)).collect();
        let genesis = genesis_block();
        Kit {
            validators: ValidatorSet::new(&members).unwrap(),
            chain: genesis.hash(),
            genesis,
            keys,
        }
    }

    pub fn key(&self, i: usize) -> PublicKey {
        self.keys[i].public()
    }

    pub fn config(&self) -> EngineConfig {
        EngineConfig {
            validators: self.validators.clone(),
            params: HotStuffParams {
                round_timeout_ms_base: BASE_MS,
                round_timeout_ms_max: MAX_MS,
                leader_election: LeaderElection::RoundRobin,
            },
            genesis: self.genesis.clone(),
            double_sign_check_rounds: 0,
            unsafe_no_double_sign_guard: false,
            unsafe_skip_voted_round_check: false,
        }
    }

    fn signer(&self, i: usize) -> Box<dyn Signer + Send> {
        Box::new(Ed25519Signer::new(Keypair::from_secret(
            &self.keys[i].secret_bytes(),
        )))
    }

    /// Validator `i`, started (its start effects are returned too).
    pub fn engine(&self, i: usize) -> (Engine, Vec<Effect>) {
        self.restarted(i, None)
    }

    pub fn restarted(&self, i: usize, restart: Option<RestartState>) -> (Engine, Vec<Effect>) {
        let mut e = Engine::new(
            self.config(),
            self.signer(i),
            Box::new(Ed25519Verifier),
            restart,
        )
        .unwrap();
        let effects = e.start();
        (e, effects)
    }

    /// Index of the leader of `round`.
    pub fn leader(&self, round: u64) -> usize {
        LeaderSchedule::new(&self.validators).leader(Round(round))
    }

    /// Any validator that leads neither `round` nor `round + 1`.
    pub fn bystander(&self, round: u64) -> usize {
        (0..self.keys.len())
            .find(|&i| i != self.leader(round) && i != self.leader(round + 1))
            .unwrap()
    }

    pub fn genesis_qc(&self) -> QuorumCert {
        genesis_qc(self.chain)
    }

    pub fn vote(&self, i: usize, round: u64, block: Hash) -> VoteMsg {
        VoteMsg {
            round: Round(round),
            block,
            voter: self.key(i),
            signature: self.keys[i].sign(&vote_signing_bytes(&self.chain, Round(round), &block)),
        }
    }

    pub fn qc(&self, round: u64, block: Hash, signers: &[usize]) -> QuorumCert {
        let mut votes: Vec<_> = signers
            .iter()
            .map(|&i| (self.key(i), self.vote(i, round, block).signature))
            .collect();
        votes.sort_by_key(|(k, _)| *k);
        QuorumCert {
            round: Round(round),
            block,
            votes,
        }
    }

    pub fn qc_for(&self, block: &Block) -> QuorumCert {
        let round = block_round(block).unwrap().0;
        self.qc(round, block.hash(), &[0, 1, 2])
    }

    pub fn timeout(&self, i: usize, round: u64, high_qc: &QuorumCert) -> TimeoutMsg {
        TimeoutMsg {
            round: Round(round),
            high_qc: high_qc.clone(),
            tc: None,
            sender: self.key(i),
            signature: self.keys[i].sign(&timeout_signing_bytes(
                &self.chain,
                Round(round),
                high_qc.round,
            )),
        }
    }

    /// A TC for `round` from `signers`, each reporting `high_qc`.
    pub fn tc(&self, round: u64, high_qc: &QuorumCert, signers: &[usize]) -> TimeoutCert {
        let mut signatures: Vec<TimeoutSignature> = signers
            .iter()
            .map(|&i| {
                let t = self.timeout(i, round, high_qc);
                TimeoutSignature {
                    signer: t.sender,
                    high_qc_round: high_qc.round,
                    signature: t.signature,
                }
            })
            .collect();
        signatures.sort_by_key(|s| s.signer);
        TimeoutCert {
            round: Round(round),
            high_qc: high_qc.clone(),
            signatures,
        }
    }

    /// A block of `round` on `parent`, by the round's leader; `salt` makes siblings differ.
    pub fn block(&self, round: u64, parent: &Block, justify: &QuorumCert, salt: u64) -> Block {
        Block {
            header: BlockHeader {
                height: parent.header.height.next(),
                parent: parent.hash(),
                timestamp: TimestampMs(round * 1000 + salt),
                tx_root: cairn_ledger::block::tx_root(&[]),
                state_root: Hash::ZERO,
                proposer: self.key(self.leader(round)).address(),
                protocol_version: ProtocolVersion(1),
                seal: Seal::HotStuff {
                    round: Round(round),
                    justify: justify.clone(),
                },
            },
            transactions: Vec::new(),
        }
    }

    pub fn proposal(&self, block: Block, tc: Option<TimeoutCert>) -> ProposalMsg {
        let round = block_round(&block).unwrap();
        let leader = self.leader(round.0);
        let signature =
            self.keys[leader].sign(&proposal_signing_bytes(&self.chain, round, &block.hash()));
        ProposalMsg {
            block,
            tc,
            signature,
        }
    }

    /// Blocks of rounds 1..=n, each extending the previous with a QC from validators 0..3.
    pub fn chain_of(&self, n: u64) -> Vec<Block> {
        let mut blocks = vec![self.genesis.clone()];
        let mut justify = self.genesis_qc();
        for round in 1..=n {
            let b = self.block(round, blocks.last().unwrap(), &justify, 0);
            justify = self.qc_for(&b);
            blocks.push(b);
        }
        blocks
    }

    pub fn msg(&self, p: ProposalMsg) -> Message {
        Message::Proposal(Box::new(p))
    }
}

/// Answers every `Effect::Validate` among `effects` with `validity`, as a driver does at
/// once: the engine's answers follow the whole batch.
pub fn judged(e: &mut Engine, effects: Vec<Effect>, validity: &Validity) -> Vec<Effect> {
    let asked: Vec<Hash> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Validate { block } => Some(*block),
            _ => None,
        })
        .collect();
    let mut out = effects;
    for block in asked {
        let more = e.handle(Input::Validity {
            block,
            validity: validity.clone(),
        });
        out.extend(judged(e, more, validity));
    }
    out
}

/// A driver that finds every block valid.
pub trait HandleValid {
    /// `handle`, then every block the engine asks about judged valid.
    fn handle_valid(&mut self, input: Input) -> Vec<Effect>;
}

impl HandleValid for Engine {
    fn handle_valid(&mut self, input: Input) -> Vec<Effect> {
        let effects = self.handle(input);
        judged(self, effects, &Validity::Valid)
    }
}

/// Whether `effects` broadcast a timeout.
pub fn times_out(effects: &[Effect]) -> bool {
    effects
        .iter()
        .any(|e| matches!(e, Effect::Broadcast(Message::Timeout(_))))
}

/// The drop reasons among `effects`.
pub fn drops(effects: &[Effect]) -> Vec<DropReason> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Dropped { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

pub fn commits(effects: &[Effect]) -> Vec<Vec<Height>> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Commit { blocks, .. } => Some(blocks.iter().map(|b| b.header.height).collect()),
            _ => None,
        })
        .collect()
}

pub fn votes_sent(effects: &[Effect]) -> Vec<(PublicKey, VoteMsg)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                to,
                msg: Message::Vote(v),
            } => Some((*to, v.clone())),
            _ => None,
        })
        .collect()
}

pub fn scheduled(effects: &[Effect]) -> Vec<(Round, u64)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::ScheduleTimeout { round, after_ms } => Some((*round, *after_ms)),
            _ => None,
        })
        .collect()
}
