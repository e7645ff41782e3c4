//! Block 0: the block, the state changes and the state tree a genesis starts a chain with.
//!
//! Owns turning the typed genesis into initial state (accounts, oracle feeds, the state
//! root). Sits above the state machine and the oracle, which it calls; nothing below it may
//! call back here. Pure: engines and simulators build block 0 too.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::block::{self, Block, BlockHeader, Seal};
use crate::oracle::OracleState;
use crate::smt::{Child, Node, Position, TreeUpdate};
use crate::state::{self, Account, StateChanges};
use crate::types::{Address, Height};

use super::params::Genesis;

impl Genesis {
    /// Block 0 and the state it creates (the genesis accounts, nothing else), with the state
    /// tree nodes to store. Pure, so engines and simulators can build block 0 too.
    pub fn block_zero(&self) -> (Block, StateChanges, TreeUpdate) {
        let mut changes = StateChanges::default();
        for a in &self.accounts {
            changes.previous.insert(a.address, None);
            changes.updated.insert(
                a.address,
                Account {
                    balance: a.balance,
                    ..Account::default()
                },
            );
        }
        // Validation builds the oracle too, so a genesis that got this far has a valid one.
        let oracle = OracleState::from_genesis(&self.oracle).ok().flatten();
        if let Some(o) = &oracle {
            for f in o.feeds() {
                changes
                    .feeds_updated
                    .insert(f.id().clone(), Arc::new(f.clone()));
            }
        }
        changes.oracle_after = oracle.map(Arc::new);
        let nodes = BTreeMap::<Position, Node>::new();
        let tree = state::tree_update_with(
            &nodes,
            Child::Empty,
            changes.updated.iter().map(|(a, acc)| (a, Some(acc))),
            state::feed_entries(&changes.feeds_updated),
        )
        .expect("building a tree from empty reads no stored nodes");
        let header = BlockHeader {
            height: Height(0),
            parent: self.hash(),
            timestamp: self.genesis_time,
            tx_root: block::tx_root(&[]),
            state_root: tree.root_hash(),
            proposer: Address([0; 20]),
            protocol_version: self.protocol_version_at(Height(0)),
            seal: Seal::Genesis,
        };
        let block = Block {
            header,
            transactions: Vec::new(),
        };
        (block, changes, tree)
    }
}
