//! Where the chain meets a scheduled upgrade, for every driver: the fork id peers see, which
//! moves as the tip passes upgrade heights, and the halt once the chain reaches an upgrade
//! this binary lacks.
//!
//! Owns: the fork id this node announces and why the chain stopped. Never: decides which
//! upgrades exist or when (genesis and the store's schedule do), and never stops the
//! process: a halted node keeps serving reads and blocks.

use cairn_ledger::store::Store;

use super::{DriverError, NodeIo};
use crate::p2p::{Command, ForkId};

/// The fork id this node announces, kept in step with its tip.
pub struct ForkWatch {
    current: ForkId,
}

impl ForkWatch {
    /// The fork id of `store`'s tip, as the network was started with.
    pub fn new(io: &NodeIo, store: &Store) -> ForkWatch {
        ForkWatch {
            current: ForkId::at(&io.genesis, store.schedule(), store.tip().height),
        }
    }

    /// After the tip moved: when that activated an upgrade, tells the network the new fork
    /// id. The fork id depends only on the tip's height.
    pub async fn follow(&mut self, io: &NodeIo, store: &Store) -> Result<(), DriverError> {
        let fork_id = ForkId::at(&io.genesis, store.schedule(), store.tip().height);
        if fork_id == self.current {
            return Ok(());
        }
        tracing::info!(
            ?fork_id,
            "an upgrade activated: peers now see the new fork id"
        );
        self.current = fork_id.clone();
        io.command(Command::SetForkId(fork_id)).await
    }
}

/// Why the chain stopped before an upgrade this binary lacks, once it has.
#[derive(Debug, Default)]
pub struct Halt {
    why: Option<String>,
}

impl Halt {
    /// Records why the chain stopped and says so, loudly, once; later calls keep the first
    /// reason.
    pub fn stop(&mut self, why: &str) {
        if self.why.is_none() {
            tracing::error!("{why}");
            self.why = Some(why.to_owned());
        }
    }

    pub fn is_halted(&self) -> bool {
        self.why.is_some()
    }

    /// The reason, as `status` and `/ready` report it.
    pub fn reason(&self) -> Option<String> {
        self.why.clone()
    }
}
