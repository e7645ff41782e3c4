//! Catching up: proposals waiting for missing ancestors, asking a peer for the certified
//! chain above the local committed block, serving such requests, and checking answers.
//!
//! A node that sees a QC or a proposal for a block it lacks asks the peer that sent it for
//! the certified chain from its committed height + 1 (at most [`SYNC_BLOCKS_MAX`] blocks,
//! once per round unless the previous answer was full). An answer is read only from a peer
//! asked (the last [`SYNC_REQUESTS_KEPT`] requests), and only if it is one chain from the
//! height asked, each block certified by the next one's justify and the last by `tip_qc`;
//! all of it is verified before any block goes in, so a lying peer can never fill the tree
//! with blocks no quorum voted for. A forged or useless answer from the peer asked is
//! followed at once by a request to the next validator (one per answer, at most one pass
//! over the others per round), and a peer that forged is not asked first again while it is
//! among the last [`SYNC_FORGERS_KEPT`]: one lying peer costs one round trip, not a round,
//! which matters most when the round cannot end without the node that is catching up.
//! Commits then follow from the ordinary 2-chain rule.
//!
//! Owns: the pending-proposal buffer ([`PENDING_PROPOSALS_MAX`]) and the sync exchange.
//! Never: trusts a block because of who sent it, reads an answer it did not ask for, sends
//! a request for an answer it did not get, or keeps more than its bounds.

use cairn_ledger::block::{Block, Seal};
use std::collections::VecDeque;

use cairn_ledger::{Hash, Height, PublicKey, Round};

use super::effects::{DropReason, Effect};
use super::engine::Engine;
use super::messages::{
    Message, ProposalMsg, QC_BYTES_MAX, SYNC_BLOCKS_MAX, SYNC_RESPONSE_BYTES_MAX, SyncRequest,
    SyncResponse,
};

/// Proposals held while their ancestors are fetched; the oldest is dropped first.
pub const PENDING_PROPOSALS_MAX: usize = 32;
/// Sync requests remembered as in flight (at most one is sent per round), so a slow but
/// honest answer to an earlier request is still read; the oldest is forgotten first.
pub const SYNC_REQUESTS_KEPT: usize = 4;
/// Peers whose sync answer was a fault, remembered so that they are not asked first; the
/// oldest is forgiven first (an honest peer that once raced a commit is asked again).
pub const SYNC_FORGERS_KEPT: usize = 4;

/// Whom not to ask, and how many requests have followed failed answers this round.
#[derive(Debug, Default)]
pub(super) struct SyncPeers {
    /// The last peers whose answer was a fault, oldest first.
    forgers: VecDeque<PublicKey>,
    /// (round, requests sent this round because an answer failed).
    retries: Option<(Round, usize)>,
}

impl SyncPeers {
    fn forged(&self, key: &PublicKey) -> bool {
        self.forgers.contains(key)
    }

    fn remember_forger(&mut self, key: PublicKey) {
        if self.forged(&key) {
            return;
        }
        if self.forgers.len() >= SYNC_FORGERS_KEPT {
            self.forgers.pop_front();
        }
        self.forgers.push_back(key);
        assert!(self.forgers.len() <= SYNC_FORGERS_KEPT);
    }

    /// Counts one retry in `round` if fewer than `max` were sent in it.
    fn take_retry(&mut self, round: Round, max: usize) -> bool {
        let sent = match self.retries {
            Some((r, sent)) if r == round => sent,
            _ => 0,
        };
        if sent >= max {
            return false;
        }
        self.retries = Some((round, sent + 1));
        true
    }
}

impl Engine {
    /// Asks for the chain above the committed block, at most once per round: first `from`
    /// (it just showed a certificate for the missing block) unless it forged an answer
    /// lately, then, while answers bring nothing, the other validators in turn, since
    /// `from` may lack the block too.
    pub(super) fn request_sync(&mut self, from: PublicKey) {
        let round = self.current_round();
        if self.sync_requested_round == Some(round) {
            return;
        }
        let target = if self.sync_attempts == 0 && from != self.me && !self.sync_peers.forged(&from)
        {
            self.sync_attempts = 1;
            Some(from)
        } else {
            self.next_sync_peer(None)
        };
        let Some(target) = target else {
            return;
        };
        self.sync_requested_round = Some(round);
        self.request_sync_now(target);
    }

    /// The next validator in turn after this node, other than itself and `skip`, and not a
    /// recent forger unless every other one is; then the forgers too take turns, so that an
    /// honest peer remembered as one (its answer to an older request judged against a newer
    /// one, say) is asked again rather than the same silent one every round.
    pub(super) fn next_sync_peer(&mut self, skip: Option<PublicKey>) -> Option<PublicKey> {
        let me = self.validators.position(&self.me).unwrap_or(0);
        let n = self.validators.len();
        let start = self.sync_attempts;
        let mut fallback = None;
        for _ in 0..n {
            self.sync_attempts += 1;
            let key = self.validators.member(me + self.sync_attempts).key;
            if key == self.me || Some(key) == skip {
                continue;
            }
            if !self.sync_peers.forged(&key) {
                return Some(key);
            }
            fallback = fallback.or(Some((key, self.sync_attempts)));
        }
        let (key, attempts) = fallback?;
        // The next call starts after the one chosen, not where this one started.
        self.sync_attempts = attempts;
        debug_assert!(attempts > start);
        Some(key)
    }

    /// After the answer of `failed` brought nothing: ask the next validator now rather
    /// than next round, while blocks are still missing. Bounded: called once per answer
    /// read, at most one pass over the other validators per round, and never beyond
    /// [`SYNC_REQUESTS_KEPT`] requests in flight (no outstanding one is forgotten for it).
    fn retry_sync(&mut self, failed: PublicKey) {
        let missing =
            !self.tree.contains(&self.safety.state().highest_qc.block) || !self.pending.is_empty();
        if !missing || self.sync_asked.len() >= SYNC_REQUESTS_KEPT {
            return;
        }
        let others = self.validators.len().saturating_sub(1);
        if !self.sync_peers.take_retry(self.current_round(), others) {
            return;
        }
        if let Some(target) = self.next_sync_peer(Some(failed)) {
            self.request_sync_now(target);
        }
    }

    fn request_sync_now(&mut self, from: PublicKey) {
        let from_height = self.tree.root_height().next();
        if self.sync_asked.len() >= SYNC_REQUESTS_KEPT {
            self.sync_asked.pop_front();
        }
        self.sync_asked.push_back((from, from_height));
        assert!(self.sync_asked.len() <= SYNC_REQUESTS_KEPT);
        self.effects.push(Effect::FetchBlocks {
            from,
            request: SyncRequest {
                from_height,
                blocks_max: SYNC_BLOCKS_MAX as u32,
            },
        });
    }

    pub(super) fn on_sync_request(
        &mut self,
        from: PublicKey,
        request: SyncRequest,
    ) -> Result<(), DropReason> {
        if self.validators.power(&from).is_none() {
            return Err(DropReason::NotAValidator {
                what: "sync request",
                key: from,
            });
        }
        let blocks_max = (request.blocks_max as usize).min(SYNC_BLOCKS_MAX);
        let bytes_max = SYNC_RESPONSE_BYTES_MAX - QC_BYTES_MAX - 1024;
        let (blocks, tip_qc) = self
            .tree
            .certified_chain(request.from_height, blocks_max, bytes_max)
            .ok_or(DropReason::NothingToServe {
                from_height: request.from_height,
            })?;
        self.effects.push(Effect::Send {
            to: from,
            msg: Message::SyncResponse(Box::new(SyncResponse { blocks, tip_qc })),
        });
        Ok(())
    }

    /// Reads the answer to one of our requests. It must come from the peer asked, start at
    /// the height asked and be one chain ending in the block `tip_qc` certifies, so every
    /// block in it is certified (by the next block's justify, the last by `tip_qc`): a peer
    /// cannot push blocks no quorum voted for into the tree. Everything is checked before
    /// anything is inserted.
    pub(super) fn on_sync_response(
        &mut self,
        from: PublicKey,
        response: SyncResponse,
    ) -> Result<(), DropReason> {
        if self.unsafe_accept_any_sync {
            return self.accept_any_sync(from, response);
        }
        // A peer asked twice (from two heights, the root having moved between) answers the
        // request its first block names. An answer that names none of the heights asked is
        // dropped unverified and the requests stay open: an honest peer's late answer to a
        // request this node has since replaced looks the same (a node that was hung or cut
        // off gets a backlog of them), so it is no strike; a peer that keeps sending them
        // costs decodes within its byte budget, and the requests time out and move on.
        // An empty answer ("nothing to give") answers the oldest request to that peer.
        // The next validator is still asked at once when the peer was asked at all: what it
        // sent brings nothing, and a node that cannot end its round without the blocks (the
        // chain waits on it) would otherwise wait out a round timer, backed off by then, per
        // lying answer.
        let first = response.blocks.first().map(|b| b.header.height);
        let Some(asked) = self
            .sync_asked
            .iter()
            .position(|&(k, h)| k == from && first.is_none_or(|f| f == h))
        else {
            if self.sync_asked.iter().any(|&(k, _)| k == from) {
                self.retry_sync(from);
            }
            return Err(DropReason::UnsolicitedSync { from });
        };
        let (_, from_height) = self.sync_asked.remove(asked).unwrap_or((from, Height(0)));
        let result = self.read_sync_answer(from, from_height, response);
        match &result {
            Ok(true) => {}
            Ok(false) => self.retry_sync(from),
            Err(reason) => {
                if reason.is_fault() {
                    self.sync_peers.remember_forger(from);
                }
                self.retry_sync(from);
            }
        }
        result.map(|_| ())
    }

    /// Checks, then inserts, the answer of `from` to a request from `from_height`; `true`
    /// if it brought at least one block.
    fn read_sync_answer(
        &mut self,
        from: PublicKey,
        from_height: Height,
        response: SyncResponse,
    ) -> Result<bool, DropReason> {
        let SyncResponse { blocks, tip_qc } = response;
        let Some(first) = blocks.first() else {
            return Err(DropReason::BadSync {
                reason: "no blocks",
            });
        };
        // The caller matched the answer to a request by its first block's height.
        assert_eq!(first.header.height, from_height);
        let forged = |reason| Err(DropReason::ForgedSync { reason });
        // Each block hashed once for the chain, tip and tree checks below.
        let ids: Vec<Hash> = blocks.iter().map(Block::hash).collect();
        if ids.last() != Some(&tip_qc.block) {
            return forged("the tip QC does not certify the last block");
        }
        if blocks
            .iter()
            .skip(1)
            .zip(&ids)
            .any(|(b, parent)| b.header.parent != *parent)
        {
            return forged("the blocks do not form one chain");
        }
        self.certs
            .verify_qc(&tip_qc, &self.validators, self.verifier.as_ref())
            .map_err(DropReason::InvalidCert)?;
        // What committed here meanwhile is skipped; the rest must hang off the tree.
        let root_height = self.tree.root_height();
        let fresh: Vec<Block> = blocks
            .into_iter()
            .zip(&ids)
            .filter(|(b, id)| b.header.height > root_height && !self.tree.contains(id))
            .map(|(b, _)| b)
            .collect();
        if let Some(b) = fresh.first()
            && !self.tree.contains(&b.header.parent)
        {
            return forged("the first new block does not extend a known block");
        }
        for block in &fresh {
            let Seal::HotStuff { justify, .. } = &block.header.seal else {
                return Err(DropReason::NotHotStuff {
                    block: block.hash(),
                });
            };
            if justify.block != block.header.parent {
                return forged("a block's justify does not certify its parent");
            }
            self.certs
                .verify_qc(justify, &self.validators, self.verifier.as_ref())
                .map_err(DropReason::InvalidCert)?;
        }
        let full = fresh.len() >= SYNC_BLOCKS_MAX;
        let brought = !fresh.is_empty();
        for block in fresh {
            if let Seal::HotStuff { justify, .. } = &block.header.seal {
                // Certifies the parent, which may commit ancestors (verified: cached).
                self.process_qc(&justify.clone(), from)?;
            }
            self.insert_block(block)?;
            self.sync_attempts = 0;
        }
        self.process_qc(&tip_qc, from)?;
        if full {
            self.request_sync_now(from);
        }
        Ok(brought)
    }

    /// The answer check this engine had before sync answers were tied to requests and
    /// chains: any block whose parent is known and whose justify verifies goes in, certified
    /// or not. Kept only so the simulator can show it catches what that allows.
    fn accept_any_sync(
        &mut self,
        from: PublicKey,
        response: SyncResponse,
    ) -> Result<(), DropReason> {
        let Some(last) = response.blocks.last() else {
            return Err(DropReason::BadSync {
                reason: "no blocks",
            });
        };
        if response.tip_qc.block != last.hash() {
            return Err(DropReason::BadSync {
                reason: "the tip QC does not certify the last block",
            });
        }
        let full = response.blocks.len() >= SYNC_BLOCKS_MAX;
        for block in response.blocks {
            let id = block.hash();
            if self.tree.contains(&id) {
                continue;
            }
            let Seal::HotStuff { justify, .. } = &block.header.seal else {
                return Err(DropReason::NotHotStuff { block: id });
            };
            if !self.tree.contains(&block.header.parent) {
                return Err(DropReason::BadSync {
                    reason: "a block's parent is neither known nor earlier in the answer",
                });
            }
            self.process_qc(&justify.clone(), from)?;
            self.insert_block(block)?;
            self.sync_attempts = 0;
        }
        self.process_qc(&response.tip_qc, from)?;
        if full {
            self.request_sync_now(from);
        }
        Ok(())
    }

    /// Test-only: reads sync answers as this engine once did (unsolicited, unchained,
    /// uncertified blocks accepted), and lets a full tree refuse blocks instead of evicting,
    /// so the simulator can prove it catches the halt that follows. Never called in a node.
    #[doc(hidden)]
    pub fn unsafe_accept_any_sync(&mut self) {
        self.unsafe_accept_any_sync = true;
        self.tree.set_unsafe_no_eviction();
    }

    /// Test-only: records a request to `from` as if this engine had sent it.
    #[cfg(test)]
    pub(super) fn expect_sync_answer(&mut self, from: PublicKey, from_height: Height) {
        self.sync_asked.push_back((from, from_height));
    }

    /// Holds a verified proposal until its parent arrives.
    pub(super) fn buffer_pending(
        &mut self,
        from: PublicKey,
        p: ProposalMsg,
    ) -> Result<(), DropReason> {
        let id = p.block.hash();
        if self.pending.iter().any(|(_, q)| q.block.hash() == id) {
            return Ok(());
        }
        let mut evicted = None;
        if self.pending.len() >= PENDING_PROPOSALS_MAX {
            let (_, old) = self.pending.remove(0);
            evicted = old.round_and_justify().map(|(round, _)| round);
        }
        self.pending.push((from, p));
        assert!(self.pending.len() <= PENDING_PROPOSALS_MAX);
        match evicted {
            Some(round) => Err(DropReason::PendingFull { round }),
            None => Ok(()),
        }
    }

    /// After block `id` joined the tree: certify it if the highest QC names it, then retry
    /// every pending proposal that was waiting for it.
    pub(super) fn after_insert(&mut self, id: Hash) {
        let highest = self.safety.state().highest_qc.clone();
        if highest.block == id
            && let Some(committed) = self.tree.certify(&highest)
        {
            self.on_commit(committed);
        }
        while let Some(i) = self
            .pending
            .iter()
            .position(|(_, p)| p.block.header.parent == id)
        {
            let (from, p) = self.pending.remove(i);
            let result = self.accept_proposal(from, p);
            self.record(Some(from), result);
        }
    }
}
