//! The wall clock, for every driver: block timestamps and the checks against them. Engines
//! never read it (they are given `now`); drivers read it only through here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_ledger::TimestampMs;

/// Milliseconds since the Unix epoch; 0 if the clock is before it.
pub(crate) fn now_ms() -> TimestampMs {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    TimestampMs(ms)
}

/// A driver's periodic tick: a late tick is skipped rather than bunched up, so a driver
/// that was busy does not then run several ticks back to back.
pub(crate) fn ticks(period: Duration) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    ticks
}
