//! One simulated proof-of-work node, sans-IO: it takes an input (a peer's message, a block its
//! miner found, headers whose time has come, a link coming back) and returns effects the
//! world executes. It does what issue #5 asks of the real node, on the real pure core:
//!
//! - every header, mined here or heard of, goes through [`check_header`] against its
//!   ancestors from the [`BlockIndex`] before it is indexed (headers first);
//! - a header whose parent is unknown makes the node ask that peer for headers from a block
//!   locator, as headers-first sync does; there is no orphan pool;
//! - a header from the future (past our clock plus the allowed drift) is held back and
//!   retried when our clock gets there, never marked invalid;
//! - the node follows the best tip: when it changes, the node walks [`BlockIndex::reorg_path`],
//!   disconnecting blocks with their undo records and connecting the new branch, checking each
//!   connected block's state root; a block whose root is wrong is marked invalid, and the node
//!   then follows the best tip that is left;
//! - a new tip is announced to every peer.
//!
//! Blocks carry no transactions here: the ledger state is the balances the block rewards have
//! paid to miners, so that a reorg really has to take rewards back and give others.
//!
//! Owns: one node's index, headers, ledger and undo records. Never: reads a clock (the world
//! passes its time, and the node adds its own clock skew) or draws randomness.

use std::collections::{BTreeMap, HashMap};

use cairn_ledger::block::{BlockHeader, Seal};
use cairn_ledger::{Address, Amount, Hash, Height, ProtocolVersion, TimestampMs};

use crate::pow::difficulty::{self, DifficultyError};
use crate::pow::{
    BlockIndex, BlockStatus, CompactTarget, HeaderError, HeaderSummary, IndexError, IndexLimits,
    PowRules, check_header,
};

/// Headers in one reply to a headers request; a longer reply is dropped unread. Bitcoin sends
/// up to 2,000; this is small so that a branch built during a long partition needs several
/// round trips, and the follow-up request (the reply was full: ask again from its last
/// header) runs in many seeds.
pub const HEADERS_PER_MESSAGE_MAX: usize = 16;

/// Batches of headers a node holds back at once because their timestamps are ahead of its
/// clock; more are dropped (the peer's next announcement brings them again).
pub const HELD_BACK_MAX: usize = 32;

/// A node asks the same peer for headers again only after this long without a reply: a
/// request lost to a partition is retried, and a flurry of announcements with unknown parents
/// costs one request, not one each.
pub const HEADERS_REQUEST_RETRY_MS: u64 = 1000;

/// Times the node re-picks its tip in one go after finding a connected block invalid. Each
/// pass marks at least one block invalid, so passes are bounded by the index anyway; this
/// bounds the work of one input.
pub const FOLLOW_PASSES_MAX: usize = 64;

/// Where virtual time 0 sits on the nodes' clocks (2023-11-14, in Unix ms): far enough from
/// zero that a clock running behind never goes below it.
pub const SIM_EPOCH_MS: u64 = 1_700_000_000_000;

/// Domain tag of the simulated ledger's state root.
const STATE_ROOT_TAG: &[u8] = b"cairn/sim/pow/state";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A node's new best tip (the whole block: bodies are empty here).
    Block(BlockHeader),
    /// Headers after the last of these blocks we share, up to [`HEADERS_PER_MESSAGE_MAX`].
    GetHeaders { locator: Vec<Hash> },
    /// A reply to `GetHeaders`, in chain order.
    Headers(Vec<BlockHeader>),
}

#[derive(Clone, Debug)]
pub enum Input {
    Message {
        from: usize,
        msg: Message,
    },
    /// Our miner sealed this header on our tip.
    Mined(BlockHeader),
    /// Headers from `from` held back earlier; their time should have come.
    Retry {
        from: usize,
        headers: Vec<BlockHeader>,
    },
    /// The link to `peer` is back (a partition healed): ask it for headers, as on connecting.
    Reconnected {
        peer: usize,
    },
}

/// What the world must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    Send {
        to: usize,
        msg: Message,
    },
    /// To every other node.
    Broadcast(Message),
    /// The header passed `check_header` and entered the block index.
    Accepted {
        hash: Hash,
    },
    /// The node moved its tip, disconnecting `disconnected` (newest first) on the way.
    TipChanged {
        from: Hash,
        to: Hash,
        disconnected: Vec<Hash>,
    },
    /// Hand these headers back as [`Input::Retry`] after `after_ms`.
    HoldBack {
        from: usize,
        after_ms: u64,
        headers: Vec<BlockHeader>,
    },
    /// A header or a block was refused. Every simulated miner is honest, so it is a bug.
    Rejected {
        hash: Hash,
        reason: String,
    },
    /// Something was dropped at a bound.
    Dropped {
        reason: &'static str,
    },
}

/// How a node picks the tip it follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForkChoice {
    /// The index's best tip: the most accumulated work, first seen among equals.
    MostWork,
    /// Test-only, wrong on purpose: the highest viable leaf, first seen among equals, whatever
    /// its work. The checkers must catch a node that does this.
    LongestByHeight,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("the reward of block {height} overflows: {reason}")]
    Reward { height: Height, reason: String },
    #[error("block {height} pays {address} past the largest amount")]
    BalanceOverflow { height: Height, address: Address },
    #[error("block {got} does not follow the ledger's height {at}")]
    Height { at: Height, got: Height },
}

/// The simulated ledger: each miner's balance of rewards at a height.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    height: Height,
    balances: BTreeMap<Address, Amount>,
}

/// What connecting a block changed, to take it back on a reorg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Undo {
    proposer: Address,
    balance_before: Option<Amount>,
}

impl Ledger {
    pub fn height(&self) -> Height {
        self.height
    }

    /// Pays `header`'s reward (the subsidy at its height; blocks carry no fees here) to its
    /// proposer.
    pub fn apply(&mut self, rules: &PowRules, header: &BlockHeader) -> Result<Undo, LedgerError> {
        if header.height != self.height.next() {
            return Err(LedgerError::Height {
                at: self.height,
                got: header.height,
            });
        }
        let reward = rules
            .reward
            .block_reward(header.height, Amount::ZERO)
            .map_err(|e| LedgerError::Reward {
                height: header.height,
                reason: e.to_string(),
            })?;
        let before = self.balances.get(&header.proposer).copied();
        let after = before.unwrap_or(Amount::ZERO).checked_add(reward).ok_or(
            LedgerError::BalanceOverflow {
                height: header.height,
                address: header.proposer,
            },
        )?;
        self.balances.insert(header.proposer, after);
        self.height = header.height;
        Ok(Undo {
            proposer: header.proposer,
            balance_before: before,
        })
    }

    /// Takes back the block at the ledger's height, given what connecting it changed.
    pub fn undo(&mut self, undo: Undo) {
        match undo.balance_before {
            Some(b) => self.balances.insert(undo.proposer, b),
            None => self.balances.remove(&undo.proposer),
        };
        self.height = Height(self.height.0.saturating_sub(1));
    }

    /// The root a header carries: a hash over the height and every balance, in address order.
    pub fn root(&self) -> Hash {
        let mut bytes = Vec::with_capacity(8 + self.balances.len() * 28);
        bytes.extend_from_slice(&self.height.0.to_le_bytes());
        for (address, amount) in &self.balances {
            bytes.extend_from_slice(&address.0);
            bytes.extend_from_slice(&amount.0.to_le_bytes());
        }
        Hash::tagged(STATE_ROOT_TAG, &[&bytes])
    }

    /// Test-only: corrupts a balance, to check that the replay checker notices.
    #[cfg(test)]
    pub fn tamper(&mut self, address: Address, amount: Amount) {
        self.balances.insert(address, amount);
    }
}

/// What became of one header.
enum Accept {
    Added,
    Known,
    UnknownParent,
    HeldBack { after_ms: u64 },
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the tip's ancestry: {0}")]
    Index(#[from] IndexError),
    #[error("the next bits: {0}")]
    Difficulty(#[from] DifficultyError),
    #[error("the reward: {0}")]
    Ledger(#[from] LedgerError),
}

pub struct SimNode {
    id: usize,
    rules: PowRules,
    fork_choice: ForkChoice,
    /// Added to the world's time: this node's clock runs ahead (or behind, if negative).
    clock_skew_ms: i64,
    address: Address,
    index: BlockIndex,
    /// Every indexed header, to serve peers and to connect blocks. As many as the blocks of a
    /// run, which `EVENTS_PER_RUN_MAX` bounds far below the index's own `INDEX_BLOCKS_MAX`
    /// (so the index never prunes here and this map needs no pruning of its own).
    headers: HashMap<Hash, BlockHeader>,
    /// The block the ledger is at.
    tip: Hash,
    ledger: Ledger,
    /// Undo records of the connected chain (genesis excluded).
    undo: HashMap<Hash, Undo>,
    /// When each peer was last asked for headers without replying yet.
    asked_ms: Vec<Option<u64>>,
    held_back: usize,
}

impl SimNode {
    pub fn new(
        id: usize,
        nodes: usize,
        rules: PowRules,
        genesis: &BlockHeader,
        fork_choice: ForkChoice,
        clock_skew_ms: i64,
        address: Address,
    ) -> Result<SimNode, IndexError> {
        let summary = HeaderSummary::genesis(genesis, &rules);
        let index = BlockIndex::new(summary, IndexLimits::default())?;
        Ok(SimNode {
            id,
            rules,
            fork_choice,
            clock_skew_ms,
            address,
            tip: summary.hash,
            headers: HashMap::from([(summary.hash, genesis.clone())]),
            index,
            ledger: Ledger::default(),
            undo: HashMap::new(),
            asked_ms: vec![None; nodes],
            held_back: 0,
        })
    }

    pub fn tip(&self) -> Hash {
        self.tip
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    #[cfg(test)]
    pub fn index(&self) -> &BlockIndex {
        &self.index
    }

    #[cfg(test)]
    pub fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    /// This node's clock at the world's time `now_ms`.
    pub fn clock(&self, now_ms: u64) -> TimestampMs {
        TimestampMs((SIM_EPOCH_MS + now_ms).saturating_add_signed(self.clock_skew_ms))
    }

    /// The bits a block on our tip must carry (what our miner works at).
    pub fn next_bits(&self) -> Result<CompactTarget, TemplateError> {
        let height = self.ledger.height().next();
        let ancestors = self
            .index
            .ancestry(&self.tip, self.rules.ancestors_needed(height))?;
        Ok(difficulty::next_bits(
            &self.rules.retarget,
            height,
            &ancestors,
        )?)
    }

    /// An unsealed block on our tip, stamped with our clock (or just past the median time
    /// past, if our clock is behind it), paying our address.
    pub fn template(&self, now_ms: u64) -> Result<BlockHeader, TemplateError> {
        let height = self.ledger.height().next();
        let ancestors = self
            .index
            .ancestry(&self.tip, self.rules.ancestors_needed(height))?;
        let bits = difficulty::next_bits(&self.rules.retarget, height, &ancestors)?;
        let after_median = difficulty::median_time_past(&ancestors).map_or(0, |t| t.0 + 1);
        let mut header = BlockHeader {
            height,
            parent: self.tip,
            timestamp: TimestampMs(self.clock(now_ms).0.max(after_median)),
            tx_root: Hash::ZERO,
            state_root: Hash::ZERO,
            proposer: self.address,
            protocol_version: ProtocolVersion(1),
            seal: Seal::Pow {
                bits: bits.0,
                nonce: 0,
            },
        };
        let mut next = self.ledger.clone();
        next.apply(&self.rules, &header)?;
        header.state_root = next.root();
        Ok(header)
    }

    pub fn handle(&mut self, now_ms: u64, input: Input) -> Vec<Effect> {
        let mut out = Vec::new();
        match input {
            Input::Message { from, .. } | Input::Retry { from, .. }
                if from >= self.asked_ms.len() =>
            {
                out.push(Effect::Dropped {
                    reason: "message from an unknown peer",
                });
            }
            Input::Message {
                msg: Message::Headers(headers),
                ..
            } if headers.len() > HEADERS_PER_MESSAGE_MAX => out.push(Effect::Dropped {
                reason: "headers reply over the bound",
            }),
            Input::Message { from, msg } => match msg {
                Message::Block(header) => self.on_headers(now_ms, from, vec![header], &mut out),
                Message::GetHeaders { locator } => self.serve_headers(from, &locator, &mut out),
                Message::Headers(headers) => {
                    self.asked_ms[from] = None;
                    let full = headers.len() >= HEADERS_PER_MESSAGE_MAX;
                    let last = headers.last().map(BlockHeader::hash);
                    self.on_headers(now_ms, from, headers, &mut out);
                    // A full reply: there may be more after its last header.
                    if let Some(last) = last.filter(|h| full && self.index.contains(h)) {
                        self.request_headers(now_ms, from, last, true, &mut out);
                    }
                }
            },
            Input::Mined(header) => self.on_headers(now_ms, self.id, vec![header], &mut out),
            Input::Retry { from, headers } => {
                self.held_back = self.held_back.saturating_sub(1);
                self.on_headers(now_ms, from, headers, &mut out);
            }
            Input::Reconnected { peer } if peer >= self.asked_ms.len() => {
                out.push(Effect::Dropped {
                    reason: "reconnected to an unknown peer",
                });
            }
            Input::Reconnected { peer } => {
                let best = self.index.best_tip();
                self.request_headers(now_ms, peer, best, true, &mut out);
            }
        }
        out
    }

    /// Checks and indexes `headers` (in chain order) from `from`, then follows the best tip.
    fn on_headers(
        &mut self,
        now_ms: u64,
        from: usize,
        headers: Vec<BlockHeader>,
        out: &mut Vec<Effect>,
    ) {
        for (i, header) in headers.iter().enumerate() {
            match self.accept(now_ms, header, out) {
                Accept::Added | Accept::Known => {}
                Accept::UnknownParent => {
                    let best = self.index.best_tip();
                    self.request_headers(now_ms, from, best, false, out);
                    break;
                }
                Accept::HeldBack { after_ms } => {
                    if self.held_back >= HELD_BACK_MAX {
                        out.push(Effect::Dropped {
                            reason: "held-back headers over the bound",
                        });
                    } else {
                        self.held_back += 1;
                        out.push(Effect::HoldBack {
                            from,
                            after_ms,
                            headers: headers[i..].to_vec(),
                        });
                    }
                    break;
                }
                // The rest build on it.
                Accept::Refused => break,
            }
        }
        self.follow_best(out);
    }

    fn accept(&mut self, now_ms: u64, header: &BlockHeader, out: &mut Vec<Effect>) -> Accept {
        let hash = header.hash();
        if self.index.contains(&hash) {
            return Accept::Known;
        }
        let Some(parent) = self.index.get(&header.parent) else {
            return Accept::UnknownParent;
        };
        if parent.status != BlockStatus::Viable {
            out.push(Effect::Rejected {
                hash,
                reason: format!("builds on {}, which is not viable", header.parent),
            });
            return Accept::Refused;
        }
        let needed = self.rules.ancestors_needed(parent.summary.height.next());
        let ancestors = match self.index.ancestry(&header.parent, needed) {
            Ok(a) => a,
            Err(e) => {
                out.push(Effect::Rejected {
                    hash,
                    reason: e.to_string(),
                });
                return Accept::Refused;
            }
        };
        let checked = match check_header(&self.rules, header, &ancestors, self.clock(now_ms)) {
            Ok(c) => c,
            // Valid perhaps later: our clock reaches `time` that much later.
            Err(HeaderError::FromTheFuture {
                time,
                latest_allowed,
                ..
            }) => {
                return Accept::HeldBack {
                    after_ms: time.0 - latest_allowed.0,
                };
            }
            Err(e) => {
                out.push(Effect::Rejected {
                    hash,
                    reason: e.to_string(),
                });
                return Accept::Refused;
            }
        };
        match self.index.insert_checked(&checked) {
            Ok(_) => {
                self.headers.insert(hash, header.clone());
                out.push(Effect::Accepted { hash });
                Accept::Added
            }
            Err(e) => {
                out.push(Effect::Rejected {
                    hash,
                    reason: e.to_string(),
                });
                Accept::Refused
            }
        }
    }

    /// Asks `peer` for the headers after our chain up to `tip`, unless a request to it is
    /// still fresh (`force`: on a new connection or after a full reply, ask anyway).
    fn request_headers(
        &mut self,
        now_ms: u64,
        peer: usize,
        tip: Hash,
        force: bool,
        out: &mut Vec<Effect>,
    ) {
        if peer == self.id {
            return;
        }
        let fresh = self.asked_ms[peer]
            .is_some_and(|at| now_ms.saturating_sub(at) < HEADERS_REQUEST_RETRY_MS);
        if fresh && !force {
            return;
        }
        match self.index.locator(&tip) {
            Ok(locator) => {
                self.asked_ms[peer] = Some(now_ms);
                out.push(Effect::Send {
                    to: peer,
                    msg: Message::GetHeaders { locator },
                });
            }
            Err(_) => out.push(Effect::Dropped {
                reason: "no locator for the tip",
            }),
        }
    }

    /// Replies with our best chain after the fork point the locator shows.
    fn serve_headers(&mut self, from: usize, locator: &[Hash], out: &mut Vec<Effect>) {
        let fork = match self.index.find_fork(locator) {
            Ok(Some((_, height))) => height,
            Ok(None) => {
                out.push(Effect::Dropped {
                    reason: "locator shares nothing with us",
                });
                return;
            }
            Err(_) => {
                out.push(Effect::Dropped {
                    reason: "locator over the bound",
                });
                return;
            }
        };
        let headers = self
            .index
            .best_chain_from(fork.next(), HEADERS_PER_MESSAGE_MAX)
            .iter()
            .filter_map(|h| self.headers.get(h).cloned())
            .collect();
        out.push(Effect::Send {
            to: from,
            msg: Message::Headers(headers),
        });
    }

    /// The tip this node's fork choice picks.
    fn choose_tip(&self) -> Hash {
        match self.fork_choice {
            ForkChoice::MostWork => self.index.best_tip(),
            ForkChoice::LongestByHeight => {
                let mut best: Option<(Height, Hash)> = None;
                // Leaves come in the order first seen, so `>` keeps the first among equals.
                for leaf in self.index.leaves() {
                    let viable = leaf.status == BlockStatus::Viable;
                    if viable && best.is_none_or(|(h, _)| leaf.summary.height > h) {
                        best = Some((leaf.summary.height, leaf.summary.hash));
                    }
                }
                best.map_or(self.index.best_tip(), |(_, hash)| hash)
            }
        }
    }

    /// Moves the ledger to the tip the fork choice picks, through the reorg path; a connected
    /// block whose state root is wrong is marked invalid and the choice is made again.
    fn follow_best(&mut self, out: &mut Vec<Effect>) {
        let start = self.tip;
        let mut disconnected = Vec::new();
        for _ in 0..FOLLOW_PASSES_MAX {
            let target = self.choose_tip();
            if target == self.tip {
                break;
            }
            let path = match self.index.reorg_path(&self.tip, &target) {
                Ok(p) => p,
                Err(e) => {
                    out.push(Effect::Rejected {
                        hash: target,
                        reason: format!("no reorg path: {e}"),
                    });
                    break;
                }
            };
            for hash in &path.disconnect {
                let Some(undo) = self.undo.remove(hash) else {
                    out.push(Effect::Rejected {
                        hash: *hash,
                        reason: "connected without an undo record".to_string(),
                    });
                    return;
                };
                self.ledger.undo(undo);
                // Every indexed block's header is kept: they are inserted together.
                self.tip = self.headers[hash].parent;
                disconnected.push(*hash);
            }
            // On an invalid block the next pass picks again, without it.
            self.connect(&path.connect, out);
        }
        if self.tip != start {
            out.push(Effect::TipChanged {
                from: start,
                to: self.tip,
                disconnected,
            });
            out.push(Effect::Broadcast(Message::Block(
                self.headers[&self.tip].clone(),
            )));
        }
    }

    /// Connects `blocks` (oldest first) on the tip, up to the first invalid one (which is
    /// marked, the ledger left at its parent).
    fn connect(&mut self, blocks: &[Hash], out: &mut Vec<Effect>) {
        for hash in blocks {
            let header = &self.headers[hash];
            let applied = self.ledger.apply(&self.rules, header);
            let reason = match applied {
                Ok(undo) if self.ledger.root() == header.state_root => {
                    self.undo.insert(*hash, undo);
                    self.tip = *hash;
                    continue;
                }
                Ok(undo) => {
                    let reason = format!(
                        "state root {} in the header, {} after executing it",
                        header.state_root,
                        self.ledger.root()
                    );
                    self.ledger.undo(undo);
                    reason
                }
                Err(e) => e.to_string(),
            };
            out.push(Effect::Rejected {
                hash: *hash,
                reason,
            });
            if self.index.mark_invalid(*hash).is_err() {
                out.push(Effect::Dropped {
                    reason: "could not mark a block invalid",
                });
            }
            return;
        }
    }
}
