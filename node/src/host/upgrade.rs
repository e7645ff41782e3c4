//! Where the chain meets a scheduled upgrade, for every driver: the fork id peers see, which
//! moves as the tip passes upgrade heights; warnings as the tip nears an upgrade this binary
//! lacks; the halt once the chain reaches it; and the one upgrade state `status` reports
//! ([`UpgradeState`]), the same for every engine.
//!
//! Owns: the fork id this node announces, the warnings, the `cairn_upgrade_…` metrics and why
//! the chain stopped. Never: decides which upgrades exist or when (genesis and the store's
//! schedule do), and never stops the process on its own: a halted node keeps serving reads
//! and blocks (`cairn node run --exit-on-halt` asks it to exit instead).

use cairn_ledger::genesis::Upgrade;
use cairn_ledger::rules;
use cairn_ledger::store::Store;
use cairn_ledger::{Height, ProtocolVersion};
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;

use super::{DriverError, NodeIo};
use crate::metrics::to_i64;
use crate::metrics::upgrade::UpgradeLabel;
use crate::p2p::{Command, ForkId};

/// Distances (in blocks) below an upgrade this binary lacks at which the node warns, once
/// each, as the tip passes them.
pub const MISSING_UPGRADE_WARN_BLOCKS: [u64; 5] = [10_000, 1_000, 100, 10, 1];
/// Blocks whose timestamps give the block rate for an upgrade's estimated time of arrival.
pub const ETA_SAMPLE_BLOCKS: u64 = 100;

/// The fork id this node announces and the warnings it has given, kept in step with its tip.
pub struct UpgradeWatch {
    current: ForkId,
    /// The smallest distance in [`MISSING_UPGRADE_WARN_BLOCKS`] already warned about.
    warned_within: Option<u64>,
    /// `cairn_upgrade_halted{upgrade}` for the first scheduled upgrade this binary lacks,
    /// labelled once here rather than on every tip move.
    halted: Option<Gauge>,
}

impl UpgradeWatch {
    /// The fork id of `store`'s tip, as the network was started with. Warns at once when the
    /// schedule holds an upgrade this binary lacks.
    pub fn new(io: &NodeIo, store: &Store) -> UpgradeWatch {
        let tip = store.tip().height;
        let missing = store.schedule().missing_at(Height(u64::MAX));
        if let Some(u) = missing
            && u.height > tip
        {
            tracing::warn!(
                upgrade = %u.name,
                height = %u.height,
                blocks_left = u.height.0 - tip.0,
                "the chain schedules upgrade {:?} (protocol version {}) at height {}, which this \
                 binary does not implement: it will stop before that height. Install a cairn \
                 release that has it before then",
                u.name,
                u.protocol_version,
                u.height
            );
        }
        let halted = missing.map(|u| {
            io.metrics
                .upgrade
                .halted
                .get_or_create(&UpgradeLabel {
                    upgrade: u.name.clone(),
                })
                .clone()
        });
        let mut watch = UpgradeWatch {
            current: ForkId::at(store.schedule(), tip),
            warned_within: None,
            halted,
        };
        watch.measure(io, store, false);
        watch
    }

    /// After the tip moved: when that activated an upgrade, tells the network the new fork
    /// id (it depends only on the tip's height); warns when the tip passes one of the
    /// distances below an upgrade this binary lacks; updates the metrics. `halted`: the
    /// driver has stopped the chain before such an upgrade.
    pub async fn follow(
        &mut self,
        io: &NodeIo,
        store: &Store,
        halted: bool,
    ) -> Result<(), DriverError> {
        self.measure(io, store, halted);
        let fork_id = ForkId::at(store.schedule(), store.tip().height);
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

    fn measure(&mut self, io: &NodeIo, store: &Store, halted: bool) {
        let schedule = store.schedule();
        let tip = store.tip().height;
        let until = schedule
            .next_after(tip)
            .map_or(-1, |u| to_i64(u.height.0 - tip.0));
        io.metrics.upgrade.blocks_until.set(until);
        let Some(missing) = schedule.missing_at(Height(u64::MAX)) else {
            return;
        };
        if let Some(gauge) = &self.halted {
            gauge.set(i64::from(halted));
        }
        let Some(left) = missing.height.0.checked_sub(tip.0).filter(|l| *l > 0) else {
            return;
        };
        let crossed = MISSING_UPGRADE_WARN_BLOCKS
            .iter()
            .copied()
            .filter(|d| left <= *d)
            .min();
        if let Some(d) = crossed
            && self.warned_within.is_none_or(|w| d < w)
        {
            self.warned_within = Some(d);
            warn_missing(missing, left);
        }
    }
}

fn warn_missing(u: &Upgrade, left: u64) {
    tracing::warn!(
        upgrade = %u.name,
        height = %u.height,
        blocks_left = left,
        "{left} blocks before upgrade {:?} (protocol version {}), which this binary does not \
         implement: the chain stops here below height {} unless you install a cairn release \
         that has it",
        u.name,
        u.protocol_version,
        u.height
    );
}

/// Why the chain stops at `store`'s tip, if an upgrade this binary lacks activates within
/// `lookahead` blocks above it: the engine cannot go on past there (HotStuff commits a
/// block once its child is certified, so it stops two below; proof of work one below).
pub fn stop_reason(store: &Store, lookahead: u64) -> Option<String> {
    let tip = store.tip().height;
    let u = store
        .schedule()
        .missing_at(Height(tip.0.saturating_add(lookahead)))?;
    Some(format!(
        "stopped at height {tip}: upgrade {:?} (protocol version {}) activates at height {} \
         and this binary does not implement it; install a cairn release that has it and \
         restart",
        u.name, u.protocol_version, u.height
    ))
}

/// `status.upgrade`: where the chain stands against its schedule. The same in every engine,
/// whether every node or only this one lacks the upgrade.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum UpgradeState {
    /// No upgrade scheduled above the tip.
    None,
    /// The next scheduled upgrade; `implemented` says whether this binary can pass it.
    Approaching {
        name: String,
        protocol_version: u32,
        height: u64,
        blocks_left: u64,
        /// Seconds to its height at the recent block rate (none before there is one).
        eta_s: Option<u64>,
        implemented: bool,
    },
    /// The chain stopped here: before an upgrade this binary lacks (`cause`
    /// `binary_lacks_it`), or at a block the network committed under another protocol
    /// version than this node's schedule gives its height (`not_scheduled_here`: the other
    /// nodes scheduled an upgrade this one did not, or the reverse; `name` is then unknown).
    Halted {
        cause: &'static str,
        name: Option<String>,
        protocol_version: u32,
        height: u64,
        last_committed: u64,
        binary_version: &'static str,
        /// The highest protocol version this binary implements.
        binary_protocol_version: u32,
    },
}

/// The network committed the block at `height` under `found`, but this node's schedule gives
/// that height `expected`: the schedules differ, and following the network would mean
/// judging blocks by rules this node was not told to use. The chain stops here instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotScheduledHere {
    pub height: Height,
    pub found: ProtocolVersion,
    pub expected: ProtocolVersion,
}

impl NotScheduledHere {
    /// What the operator reads in the log, `status.halted` and `/ready`.
    pub fn message(&self, tip: Height) -> String {
        let Self {
            height,
            found,
            expected,
        } = self;
        let fix = if found > expected {
            format!(
                "the other nodes scheduled an upgrade this one has not. Read it from `cairn \
                 upgrades` on a node that follows the chain, then stop this node and run `cairn \
                 upgrade schedule --late --name <name> --height {height} --version {found}` (or \
                 install a release that implements it first)"
            )
        } else {
            "this node scheduled an upgrade the network did not; the network's operators \
             decide: schedule it on the other nodes, or re-sync this one with their schedule"
                .to_owned()
        };
        format!(
            "stopped at height {tip}: the network committed block {height} under protocol \
             version {found}, but this node's upgrade schedule gives that height version \
             {expected}: {fix}"
        )
    }
}

/// The upgrade state of `store`'s tip; `halted`: the driver stopped the chain, and
/// `not_here` if it stopped because the schedules differ.
pub fn upgrade_state(
    store: &Store,
    halted: bool,
    not_here: Option<NotScheduledHere>,
) -> UpgradeState {
    let schedule = store.schedule();
    let tip = store.tip().height;
    if halted && let Some(n) = not_here {
        return UpgradeState::Halted {
            cause: "not_scheduled_here",
            name: None,
            protocol_version: n.found.0,
            height: n.height.0,
            last_committed: tip.0,
            binary_version: crate::BINARY_VERSION,
            binary_protocol_version: binary_protocol_version(),
        };
    }
    if halted && let Some(u) = schedule.missing_at(Height(u64::MAX)) {
        return UpgradeState::Halted {
            cause: "binary_lacks_it",
            name: Some(u.name.clone()),
            protocol_version: u.protocol_version.0,
            height: u.height.0,
            last_committed: tip.0,
            binary_version: crate::BINARY_VERSION,
            binary_protocol_version: binary_protocol_version(),
        };
    }
    let Some(u) = schedule.next_after(tip) else {
        return UpgradeState::None;
    };
    let blocks_left = u.height.0 - tip.0;
    UpgradeState::Approaching {
        name: u.name.clone(),
        protocol_version: u.protocol_version.0,
        height: u.height.0,
        blocks_left,
        eta_s: block_ms(store).map(|ms| blocks_left.saturating_mul(ms) / 1000),
        implemented: schedule.missing_at(u.height).is_none(),
    }
}

/// The highest protocol version this binary implements.
pub fn binary_protocol_version() -> u32 {
    rules::highest_version().0
}

/// Milliseconds per block over the last [`ETA_SAMPLE_BLOCKS`] (fewer near genesis).
fn block_ms(store: &Store) -> Option<u64> {
    let tip = store.tip().height.0;
    let back = tip.min(ETA_SAMPLE_BLOCKS);
    if back == 0 {
        return None;
    }
    let now = store.header_at(Height(tip)).ok()??.timestamp.0;
    let then = store.header_at(Height(tip - back)).ok()??.timestamp.0;
    Some(now.saturating_sub(then) / back)
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
