//! Catching up: proposals waiting for missing ancestors, asking a peer for the certified
//! chain above the local committed block, serving such requests, and checking answers.
//!
//! A node that sees a QC or a proposal for a block it lacks asks the peer that sent it for
//! the certified chain from its committed height + 1 (at most [`SYNC_BLOCKS_MAX`] blocks,
//! once per round unless the previous answer was full). Each block in an answer is checked
//! like any other: its justify QC is verified and must certify its parent, so a lying peer
//! can only waste one round trip. Commits then follow from the ordinary 2-chain rule.
//!
//! Owns: the pending-proposal buffer ([`PENDING_PROPOSALS_MAX`]) and the sync exchange.
//! Never: trusts a block because of who sent it, or keeps more than its bounds.

use cairn_ledger::block::Seal;
use cairn_ledger::{Hash, PublicKey};

use super::effects::{DropReason, Effect};
use super::engine::Engine;
use super::messages::{
    Message, ProposalMsg, QC_BYTES_MAX, SYNC_BLOCKS_MAX, SYNC_RESPONSE_BYTES_MAX, SyncRequest,
    SyncResponse,
};

/// Proposals held while their ancestors are fetched; the oldest is dropped first.
pub const PENDING_PROPOSALS_MAX: usize = 32;

impl Engine {
    /// Asks for the chain above the committed block, at most once per round: first `from`
    /// (it just showed a certificate for the missing block), then, while answers bring
    /// nothing, the other validators in turn, since `from` may lack the block too.
    pub(super) fn request_sync(&mut self, from: PublicKey) {
        let round = self.current_round();
        if self.sync_requested_round == Some(round) {
            return;
        }
        let me = self.validators.position(&self.me).unwrap_or(0);
        let target = if self.sync_attempts == 0 {
            from
        } else {
            self.validators.member(me + self.sync_attempts).key
        };
        self.sync_attempts += 1;
        if target == self.me {
            return;
        }
        self.sync_requested_round = Some(round);
        self.request_sync_now(target);
    }

    fn request_sync_now(&mut self, from: PublicKey) {
        self.effects.push(Effect::FetchBlocks {
            from,
            request: SyncRequest {
                from_height: self.tree.root_height().next(),
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

    pub(super) fn on_sync_response(
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
            // Verifies the QC and certifies the parent, which may commit ancestors.
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
