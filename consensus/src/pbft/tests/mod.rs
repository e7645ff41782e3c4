//! PBFT engine tests with real ed25519 keys: a kit that signs proposals, prepares, commits,
//! round changes and certificates as any validator would, and a tiny in-order cluster.

mod cluster;
mod justification_tests;
mod rejections;
mod reputation_tests;
mod round_tests;

use cairn_ledger::block::{Block, BlockHeader, QuorumCert, Seal};
use cairn_ledger::crypto::Keypair;
use cairn_ledger::genesis::LeaderElection;
use cairn_ledger::{Address, Hash, Height, ProtocolVersion, PublicKey, Round, TimestampMs};

use super::*;
use crate::bft::{Ed25519Signer, Ed25519Verifier, Signer, ValidatorSet};

pub const BASE_MS: u64 = 1000;
pub const MAX_MS: u64 = 8000;

pub struct Kit {
    pub keys: Vec<Keypair>,
    pub validators: ValidatorSet,
    pub genesis: Block,
    pub chain: Hash,
    /// Round robin unless a test asks for reputation: most tests name proposers by turn.
    pub leader_election: LeaderElection,
}

impl Kit {
    pub fn new(n: usize) -> Kit {
        let keys: Vec<Keypair> = (0..n)
            .map(|i| Keypair::from_secret(&[i as u8 + 1; 32]))
            .collect();
        let members: Vec<(PublicKey, u64)> = keys.iter().map(|k| (k.public(), 1)).collect();
        let genesis =
            crate::hotstuff::synthetic_genesis(Hash::tagged(b"cairn/pbft-test-genesis", &[]));
        Kit {
            validators: ValidatorSet::new(&members).unwrap(),
            chain: genesis.hash(),
            genesis,
            keys,
            leader_election: LeaderElection::RoundRobin,
        }
    }

    pub fn key(&self, i: usize) -> PublicKey {
        self.keys[i].public()
    }

    pub fn config(&self) -> EngineConfig {
        EngineConfig {
            validators: self.validators.clone(),
            round_timeout_ms_base: BASE_MS,
            round_timeout_ms_max: MAX_MS,
            genesis: self.genesis.clone(),
            double_sign_check_rounds: 0,
            leader_election: self.leader_election,
            unsafe_skip_justification: false,
        }
    }

    pub fn signer(&self, i: usize) -> Box<dyn Signer + Send> {
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

    /// Index of the proposer of `(height, round)` on a chain whose every height so far
    /// committed in round 0 (turn = height + round).
    pub fn proposer(&self, height: u64, round: u64) -> usize {
        let key = self.engine_probe().proposer_of(Round(height - 1 + round));
        (0..self.keys.len()).find(|&i| self.key(i) == key).unwrap()
    }

    fn engine_probe(&self) -> Engine {
        Engine::new(
            self.config(),
            self.signer(0),
            Box::new(Ed25519Verifier),
            None,
        )
        .unwrap()
    }

    /// Any validator that proposes neither `(height, round)` nor `(height, round + 1)`.
    pub fn bystander(&self, height: u64, round: u64) -> usize {
        (0..self.keys.len())
            .find(|&i| i != self.proposer(height, round) && i != self.proposer(height, round + 1))
            .unwrap()
    }

    pub fn genesis_commit(&self) -> QuorumCert {
        genesis_commit(self.chain)
    }

    /// A block at `height` on `parent`, proposed by validator `by` in round 0 of a chain
    /// whose every height so far committed in round 0; `salt` tells blocks apart.
    pub fn block(
        &self,
        height: u64,
        parent: Hash,
        parent_commit: QuorumCert,
        by: usize,
        salt: u64,
    ) -> Block {
        Block {
            header: BlockHeader {
                height: Height(height),
                parent,
                timestamp: TimestampMs(salt),
                tx_root: cairn_ledger::block::tx_root(&[]),
                state_root: Hash::ZERO,
                proposer: self.key(by).address(),
                protocol_version: ProtocolVersion(1),
                seal: Seal::Pbft {
                    turn: Round(height),
                    parent_commit,
                },
            },
            transactions: Vec::new(),
        }
    }

    /// A block at height 1 by `by`, first offered in round 0.
    pub fn first_block(&self, by: usize, salt: u64) -> Block {
        self.first_block_in(0, by, salt)
    }

    /// A block at height 1 by `by`, first offered in `round`.
    pub fn first_block_in(&self, round: u64, by: usize, salt: u64) -> Block {
        let mut block = self.block(1, self.chain, self.genesis_commit(), by, salt);
        if let Seal::Pbft { turn, .. } = &mut block.header.seal {
            *turn = Round(1 + round);
        }
        block
    }

    pub fn proposal(
        &self,
        by: usize,
        height: u64,
        round: u64,
        block: Block,
        justification: Option<RoundChangeCert>,
    ) -> ProposalMsg {
        let id = block.hash();
        ProposalMsg {
            height: Height(height),
            round: Round(round),
            block,
            justification,
            proposer: self.key(by),
            signature: self.keys[by].sign(&proposal_signing_bytes(
                &self.chain,
                Height(height),
                Round(round),
                &id,
            )),
        }
    }

    pub fn prepare(&self, i: usize, height: u64, round: u64, block: Hash) -> VoteMsg {
        let (h, r) = (Height(height), Round(round));
        VoteMsg {
            height: h,
            round: r,
            block,
            voter: self.key(i),
            signature: self.keys[i].sign(&prepare_signing_bytes(&self.chain, h, r, &block)),
        }
    }

    pub fn commit(&self, i: usize, height: u64, round: u64, block: Hash) -> VoteMsg {
        let (h, r) = (Height(height), Round(round));
        VoteMsg {
            height: h,
            round: r,
            block,
            voter: self.key(i),
            signature: self.keys[i].sign(&commit_signing_bytes(&self.chain, h, r, &block)),
        }
    }

    fn cert(&self, votes: Vec<VoteMsg>, round: u64, block: Hash) -> QuorumCert {
        let mut votes: Vec<_> = votes.into_iter().map(|v| (v.voter, v.signature)).collect();
        votes.sort_by_key(|(k, _)| *k);
        QuorumCert {
            round: Round(round),
            block,
            votes,
        }
    }

    pub fn prepare_cert(
        &self,
        height: u64,
        round: u64,
        block: Hash,
        signers: &[usize],
    ) -> QuorumCert {
        let votes = signers
            .iter()
            .map(|&i| self.prepare(i, height, round, block))
            .collect();
        self.cert(votes, round, block)
    }

    pub fn commit_cert(
        &self,
        height: u64,
        round: u64,
        block: Hash,
        signers: &[usize],
    ) -> QuorumCert {
        let votes = signers
            .iter()
            .map(|&i| self.commit(i, height, round, block))
            .collect();
        self.cert(votes, round, block)
    }

    pub fn round_change(
        &self,
        i: usize,
        height: u64,
        round: u64,
        prepared: Option<QuorumCert>,
        block: Option<Block>,
    ) -> RoundChangeMsg {
        let claim = prepared.as_ref().map(|qc| PreparedClaim {
            round: qc.round,
            block: qc.block,
        });
        RoundChangeMsg {
            height: Height(height),
            round: Round(round),
            prepared,
            block,
            sender: self.key(i),
            signature: self.keys[i].sign(&round_change_signing_bytes(
                &self.chain,
                Height(height),
                Round(round),
                &claim,
            )),
        }
    }

    /// The certificate a proposer builds from these round changes.
    pub fn justification(&self, round: u64, rcs: &[RoundChangeMsg]) -> RoundChangeCert {
        let prepared = rcs
            .iter()
            .filter_map(|rc| rc.prepared.clone())
            .max_by_key(|qc| qc.round);
        RoundChangeCert {
            round: Round(round),
            signatures: rcs
                .iter()
                .map(|rc| RoundChangeSig {
                    signer: rc.sender,
                    prepared: rc.claim(),
                    signature: rc.signature,
                })
                .collect(),
            prepared,
        }
    }

    pub fn address(&self, i: usize) -> Address {
        self.key(i).address()
    }
}

/// The drop reasons among `effects`, by label.
pub fn drops(effects: &[Effect]) -> Vec<&'static str> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Dropped { reason, .. } => Some(reason.label()),
            _ => None,
        })
        .collect()
}

pub fn dropped(effects: &[Effect]) -> Vec<&DropReason> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Dropped { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

pub fn broadcasts(effects: &[Effect]) -> Vec<&Message> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Broadcast(m) => Some(m),
            _ => None,
        })
        .collect()
}

pub fn commits(effects: &[Effect]) -> Vec<(Vec<Hash>, QuorumCert)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Commit { blocks, qc } => {
                Some((blocks.iter().map(Block::hash).collect(), qc.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Every `Persist` comes before the first send that follows it, and the last state
/// persisted before each send covers what that send signed.
pub fn assert_persist_before_send(effects: &[Effect]) {
    let mut persisted: Option<&SafetyState> = None;
    for e in effects {
        match e {
            Effect::Persist(s) => persisted = Some(s),
            Effect::Broadcast(Message::Prepare(v)) | Effect::Broadcast(Message::Commit(v)) => {
                let s = persisted.expect("a vote left before any persist");
                let at = Position {
                    height: v.height,
                    round: v.round,
                };
                assert!(
                    s.signed_max().is_some_and(|m| m >= at),
                    "vote ahead of the persisted state"
                );
            }
            _ => {}
        }
    }
}
