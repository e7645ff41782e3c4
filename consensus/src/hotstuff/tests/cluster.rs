//! A minimal in-order network of engines for multi-node tests: messages are delivered in
//! FIFO order, payloads are built at once, timers fire only when a test says so.

use std::collections::{HashMap, VecDeque};

use cairn_ledger::block::{Block, QuorumCert};
use cairn_ledger::{Hash, PublicKey, Round, TimestampMs};

use super::*;

pub struct Cluster {
    pub kit: Kit,
    pub engines: Vec<Option<Engine>>,
    queue: VecDeque<(usize, usize, Message)>,
    pub committed: Vec<Vec<Block>>,
    pub tips: Vec<Option<(Block, QuorumCert)>>,
    pub persisted: Vec<Option<SafetyState>>,
    pub stored: Vec<Vec<Block>>,
    pub evidence: Vec<Evidence>,
    pub drops: Vec<(usize, DropReason)>,
    /// Nodes whose messages are lost in both directions.
    pub isolated: Vec<bool>,
    /// Message kinds (`Message::kind`) the network loses.
    pub drop_kinds: Vec<&'static str>,
    /// The last timer each node scheduled.
    pub timers: Vec<Option<(Round, u64)>>,
    /// Every vote each node signed: (node, round) -> blocks.
    pub votes: HashMap<(usize, Round), Vec<Hash>>,
    /// Blocks every node's driver judges invalid.
    pub invalid: Vec<Hash>,
    /// Blocks each node was asked to judge.
    pub judged: Vec<Vec<Hash>>,
    index: HashMap<PublicKey, usize>,
}

impl Cluster {
    pub fn new(n: usize) -> Cluster {
        let kit = Kit::new(n);
        let index = (0..n).map(|i| (kit.key(i), i)).collect();
        let mut c = Cluster {
            engines: Vec::new(),
            queue: VecDeque::new(),
            committed: vec![Vec::new(); n],
            tips: vec![None; n],
            persisted: vec![None; n],
            stored: vec![Vec::new(); n],
            evidence: Vec::new(),
            drops: Vec::new(),
            isolated: vec![false; n],
            drop_kinds: Vec::new(),
            timers: vec![None; n],
            votes: HashMap::new(),
            invalid: Vec::new(),
            judged: vec![Vec::new(); n],
            index,
            kit,
        };
        for i in 0..n {
            let (e, effects) = c.kit.engine(i);
            c.engines.push(Some(e));
            c.apply(i, effects);
        }
        c
    }

    pub fn engine(&self, i: usize) -> &Engine {
        self.engines[i].as_ref().unwrap()
    }

    fn apply(&mut self, i: usize, effects: Vec<Effect>) {
        // Answered after the batch, as a node's driver does.
        let mut verdicts = Vec::new();
        for effect in effects {
            match effect {
                Effect::Persist(s) => self.persisted[i] = Some(*s),
                Effect::StoreBlock(b) => self.stored[i].push(b),
                Effect::DiscardBlocks(ids) => self.stored[i].retain(|b| !ids.contains(&b.hash())),
                Effect::Validate { block } => {
                    self.judged[i].push(block);
                    let validity = if self.invalid.contains(&block) {
                        Validity::Invalid {
                            reason: "refused by the test".to_string(),
                        }
                    } else {
                        Validity::Valid
                    };
                    verdicts.push(Input::Validity { block, validity });
                }
                Effect::Send { to, msg } => {
                    if let Message::Vote(v) = &msg {
                        self.votes.entry((i, v.round)).or_default().push(v.block);
                    }
                    self.queue.push_back((i, self.index[&to], msg));
                }
                Effect::Broadcast(msg) => {
                    for j in 0..self.kit.keys.len() {
                        if j != i {
                            self.queue.push_back((i, j, msg.clone()));
                        }
                    }
                }
                Effect::ScheduleTimeout { round, after_ms } => {
                    self.timers[i] = Some((round, after_ms));
                }
                request @ Effect::RequestPayload { round, .. } => {
                    let address = self.kit.key(i).address();
                    if let Some(block) = empty_payload(request, address, TimestampMs(round.0)) {
                        self.deliver(i, Input::Payload(block));
                    }
                }
                Effect::Commit { blocks, qc } => {
                    self.tips[i] = Some((blocks.last().unwrap().clone(), qc));
                    self.committed[i].extend(blocks);
                }
                Effect::FetchBlocks { from, request } => {
                    self.queue
                        .push_back((i, self.index[&from], Message::SyncRequest(request)));
                }
                Effect::Evidence(e) => self.evidence.push(e),
                Effect::Dropped { reason, .. } => self.drops.push((i, reason)),
            }
        }
        for verdict in verdicts {
            self.deliver(i, verdict);
        }
    }

    pub fn deliver(&mut self, i: usize, input: Input) {
        if let Some(e) = self.engines[i].as_mut() {
            let effects = e.handle(input);
            self.apply(i, effects);
        }
    }

    /// Delivers queued messages until none are left or `steps_max` were delivered.
    pub fn run(&mut self, steps_max: usize) {
        for _ in 0..steps_max {
            let Some((from, to, msg)) = self.queue.pop_front() else {
                return;
            };
            if self.isolated[from] || self.isolated[to] || self.drop_kinds.contains(&msg.kind()) {
                continue;
            }
            let key = self.kit.key(from);
            self.deliver(to, Input::Message(key, msg));
        }
    }

    /// Fires every live node's timer for its current round.
    pub fn fire_timers(&mut self) {
        for i in 0..self.engines.len() {
            if let Some(e) = &self.engines[i] {
                let round = e.current_round();
                self.deliver(i, Input::Timeout(round));
            }
        }
    }

    pub fn crash(&mut self, i: usize) {
        self.engines[i] = None;
    }

    /// Restarts node `i` from its persisted safety state and its ledger's committed tip.
    pub fn restart(&mut self, i: usize) {
        let restart = self.persisted[i].clone().map(|safety| RestartState {
            safety,
            committed: self.tips[i].clone(),
            history: self.committed[i][..self.committed[i].len().saturating_sub(1)].to_vec(),
            blocks: self.stored[i].clone(),
        });
        let (e, effects) = self.kit.restarted(i, restart);
        self.engines[i] = Some(e);
        self.apply(i, effects);
    }

    pub fn heights(&self) -> Vec<u64> {
        self.committed.iter().map(|c| c.len() as u64).collect()
    }

    /// Every pair of committed chains agrees on the heights both have.
    pub fn assert_consistent(&self) {
        for a in &self.committed {
            for b in &self.committed {
                for (x, y) in a.iter().zip(b) {
                    assert_eq!(x.hash(), y.hash());
                }
            }
        }
        for ((node, round), blocks) in &self.votes {
            let first = blocks[0];
            assert!(
                blocks.iter().all(|b| *b == first),
                "node {node} voted for two blocks in round {round}"
            );
        }
    }
}
