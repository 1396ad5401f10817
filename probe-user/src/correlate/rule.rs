//! The shape of one hazard's correlation: a rule sees every event in kernel-time order, after
//! the core updated the ledgers with it, and records findings.

use super::{
    config::Config, file_pins::FilePins, live::LivePins, merged::MergedFindings, stats::Stats,
};
use crate::{events::Event, kernel::flags::FollFlags};

/// One hazard (or one outcome family of it). Registered once in [`super::rules::all`].
pub(super) trait Rule {
    /// Sees one event. The live-pin ledger already holds its effect: a granted pin is live, an
    /// unpin has released its pages.
    fn on_event(&mut self, event: &Event, cx: &mut Context<'_>);

    /// Time reached `now` (kernel monotonic ns): decisions waiting on a window are due.
    fn settle(&mut self, _now: u64, _cx: &mut Context<'_>) {}

    /// The watch ends: whatever still waits is reported as it stands.
    fn finish(&mut self, _cx: &mut Context<'_>) {}

    /// Its bounded tables, (name, entries), for the metrics.
    fn tables(&self) -> Vec<(&'static str, usize)> {
        Vec::new()
    }
}

/// What a rule may read and write besides its own state.
pub(super) struct Context<'a> {
    /// Every granted long-term pin not yet unpinned (kept by the core).
    pub live: &'a LivePins,
    /// Long-term pins of dirty-tracked files (kept by `longterm-file-pin`, read by the rules
    /// that attribute to them).
    pub file_pins: &'a mut FilePins,
    pub findings: &'a mut MergedFindings,
    pub stats: &'a mut Stats,
    pub flags: &'a FollFlags,
    pub cfg: &'a Config,
}
