//! A tiny in-order PBFT cluster: messages are delivered one at a time in sending order,
//! payloads and validity are answered at once, timers fire only when a test says so, and
//! a test can cut a node off, crash it, or restart it from what it persisted.

use std::collections::VecDeque;

use super::*;

pub struct Node {
    pub engine: Option<Engine>,
    pub persisted: Option<SafetyState>,
    pub ledger: Vec<Block>,
    pub tip_cert: Option<QuorumCert>,
    pub stored: Vec<Block>,
    pub drops: Vec<DropReason>,
    pub evidence: Vec<Evidence>,
    /// Cut off: sends nothing and receives nothing.
    pub isolated: bool,
}

pub struct Cluster {
    pub kit: Kit,
    pub nodes: Vec<Node>,
    queue: VecDeque<(usize, usize, Message)>,
    pub delivered: usize,
}

impl Cluster {
    pub fn new(n: usize) -> Cluster {
        Cluster::with_kit(Kit::new(n))
    }

    pub fn with_kit(kit: Kit) -> Cluster {
        let n = kit.keys.len();
        let mut c = Cluster {
            nodes: Vec::new(),
            queue: VecDeque::new(),
            delivered: 0,
            kit,
        };
        let mut starts = Vec::new();
        for i in 0..n {
            let (engine, effects) = c.kit.engine(i);
            starts.push(effects);
            c.nodes.push(Node {
                engine: Some(engine),
                persisted: None,
                ledger: Vec::new(),
                tip_cert: None,
                stored: Vec::new(),
                drops: Vec::new(),
                evidence: Vec::new(),
                isolated: false,
            });
        }
        for (i, effects) in starts.into_iter().enumerate() {
            c.execute(i, effects);
        }
        c
    }

    pub fn engine(&self, i: usize) -> &Engine {
        self.nodes[i].engine.as_ref().expect("node is down")
    }

    pub fn handle(&mut self, i: usize, input: Input) {
        let Some(engine) = self.nodes[i].engine.as_mut() else {
            return;
        };
        let effects = engine.handle(input);
        self.execute(i, effects);
    }

    pub fn execute(&mut self, i: usize, effects: Vec<Effect>) {
        assert_persist_before_send(&effects);
        let n = self.nodes.len();
        let mut queue: VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Persist(s) => self.nodes[i].persisted = Some(*s),
                Effect::StoreBlock(b) => self.nodes[i].stored.push(b),
                Effect::Validate { block } => {
                    if let Some(e) = self.nodes[i].engine.as_mut() {
                        queue.extend(e.handle(Input::Validity {
                            block,
                            validity: Validity::Valid,
                        }));
                    }
                }
                Effect::DiscardBlocks(ids) => {
                    self.nodes[i].stored.retain(|b| !ids.contains(&b.hash()))
                }
                Effect::Send { to, msg } => {
                    if let Some(j) = (0..n).find(|&j| self.kit.key(j) == to) {
                        self.queue.push_back((i, j, msg));
                    }
                }
                Effect::Broadcast(msg) => {
                    for j in (0..n).filter(|&j| j != i) {
                        self.queue.push_back((i, j, msg.clone()));
                    }
                }
                Effect::ScheduleTimeout { .. } => {}
                request @ Effect::RequestPayload { .. } => {
                    let block = empty_payload(
                        request,
                        self.kit.address(i),
                        TimestampMs(self.delivered as u64),
                    )
                    .unwrap();
                    if let Some(e) = self.nodes[i].engine.as_mut() {
                        queue.extend(e.handle(Input::Payload(block)));
                    }
                }
                Effect::Commit { blocks, qc } => {
                    let node = &mut self.nodes[i];
                    for b in blocks {
                        assert_eq!(b.header.height.0, node.ledger.len() as u64 + 1);
                        node.ledger.push(b);
                    }
                    node.tip_cert = Some(qc);
                }
                Effect::FetchBlocks { from, request } => {
                    if let Some(j) = (0..n).find(|&j| self.kit.key(j) == from) {
                        self.queue.push_back((i, j, Message::SyncRequest(request)));
                    }
                }
                Effect::Evidence(e) => self.nodes[i].evidence.push(e),
                Effect::Dropped { reason, .. } => self.nodes[i].drops.push(reason),
            }
        }
    }

    /// The next queued message, skipping those of isolated nodes.
    pub fn pop(&mut self) -> Option<(usize, usize, Message)> {
        while let Some((from, to, msg)) = self.queue.pop_front() {
            if self.nodes[from].isolated || self.nodes[to].isolated {
                continue;
            }
            self.delivered += 1;
            return Some((from, to, msg));
        }
        None
    }

    /// Delivers queued messages until none are left (or `max` were delivered).
    pub fn run(&mut self, max: usize) {
        let mut count = 0;
        while let Some((from, to, msg)) = self.pop() {
            let key = self.kit.key(from);
            self.handle(to, Input::Message(key, msg));
            count += 1;
            if count >= max {
                break;
            }
        }
    }

    /// Fires node `i`'s timer for the position it is in.
    pub fn timeout(&mut self, i: usize) {
        let (height, round) = {
            let e = self.engine(i);
            (e.current_height(), e.current_round())
        };
        self.handle(i, Input::Timeout { height, round });
    }

    /// Crashes node `i`, dropping everything it had in memory.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].engine = None;
    }

    /// Restarts node `i` from what it persisted and stored.
    pub fn restart(&mut self, i: usize) {
        let node = &self.nodes[i];
        let restart = RestartState {
            safety: node.persisted.clone().unwrap_or_else(SafetyState::initial),
            committed: node.ledger.last().cloned().zip(node.tip_cert.clone()),
            history: node.ledger.clone(),
            blocks: node.stored.clone(),
        };
        let (engine, effects) = self.kit.restarted(i, Some(restart));
        self.nodes[i].engine = Some(engine);
        self.execute(i, effects);
    }

    /// Every node's ledger is a prefix of the longest one.
    pub fn assert_agree(&self) {
        let longest = self
            .nodes
            .iter()
            .map(|n| &n.ledger)
            .max_by_key(|l| l.len())
            .unwrap();
        for (i, n) in self.nodes.iter().enumerate() {
            assert_eq!(
                &longest[..n.ledger.len()],
                &n.ledger[..],
                "node {i} disagrees"
            );
        }
    }

    /// Delivers messages until every node that is not isolated has committed `height`,
    /// firing their timers whenever nothing is left to deliver. Returns how many times the
    /// timers had to fire (each is a round that ended by timeout).
    pub fn run_to(&mut self, height: usize, stalls_max: usize) -> usize {
        let mut stalls = 0;
        loop {
            let live: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| !self.nodes[i].isolated && self.nodes[i].engine.is_some())
                .collect();
            if live.iter().all(|&i| self.nodes[i].ledger.len() >= height) {
                return stalls;
            }
            let before = self.delivered;
            self.run(64);
            if self.delivered == before {
                stalls += 1;
                assert!(
                    stalls <= stalls_max,
                    "stuck at heights {:?} after {stalls} timeouts",
                    self.heights()
                );
                for i in live {
                    self.timeout(i);
                }
            }
        }
    }

    pub fn heights(&self) -> Vec<usize> {
        self.nodes.iter().map(|n| n.ledger.len()).collect()
    }
}
