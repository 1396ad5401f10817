//! Pure correlation: decoded events in, findings out. No I/O and no clock of its own: the caller
//! passes `now` on the kernel's monotonic clock, the base of every event timestamp.
//!
//! - Events wait in a short reorder buffer, because records from different CPUs can reach
//!   userspace slightly out of order.
//! - A granted long-term file pin stays *pending* for `settle_ns`. If the same task unpins the
//!   pages within the same system call, the caller released them at once: 6.1's io_uring does
//!   this after its own check. Otherwise the pin was kept, and it stays *active* so that later
//!   writeback of its pages can be attributed to it.
//! - Every table is bounded. Evictions are counted in [`Stats`], never silent.
//!
//! The core keeps the reorder queue and the live-pin ledger; each hazard is a [`rule::Rule`]
//! in `rules/`, registered in [`rules::all`].

use std::collections::BTreeMap;

use serde::Serialize;

pub use self::{
    config::{Config, DEFAULT_MAX_LIVE_PINS},
    live::Released,
    stats::Stats,
    tally::ProcessPins,
};
use self::{
    file_pins::FilePins,
    live::LivePins,
    merged::MergedFindings,
    reorder::ReorderQueue,
    rule::{Context, Rule},
    tally::Tally,
};
use crate::{
    events::{Event, Pin, Unpin},
    findings::Finding,
    kernel::flags::FollFlags,
    pinner::Pinner,
};

/// What a finished watch leaves besides findings.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    #[serde(flatten)]
    pub stats: Stats,
    /// Processes by long-term pinned pages, most first.
    pub processes: Vec<ProcessPins>,
}

pub struct Correlator {
    cfg: Config,
    flags: FollFlags,
    queue: ReorderQueue,
    /// Every granted long-term pin not yet unpinned.
    live: LivePins,
    file_pins: FilePins,
    rules: Vec<Box<dyn Rule>>,
    findings: MergedFindings,
    /// Pins fully released since the caller last took them.
    released: Vec<Released>,
    tally: Tally,
    stats: Stats,
}

impl Correlator {
    pub fn new(cfg: Config, flags: FollFlags) -> Self {
        Self {
            live: LivePins::new(cfg.max_live_pins),
            file_pins: FilePins::new(cfg.max_pins),
            tally: Tally::new(cfg.max_pins),
            cfg,
            flags,
            queue: ReorderQueue::default(),
            rules: rules::all(),
            findings: MergedFindings::default(),
            released: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// Queues an event; it is applied once it is older than the reorder window.
    pub fn push(&mut self, event: Event) {
        self.stats.events += 1;
        self.queue.push(event);
    }

    /// Applies every event older than the reorder window and settles what waits on a window
    /// older than `now`.
    pub fn advance(&mut self, now: u64) {
        while let Some(event) = self.queue.pop_older(now, self.cfg.reorder_ns) {
            self.settle(event.at_ns());
            self.apply(&event);
        }
        self.settle(now);
        // A storm grew the queue; its memory goes back once it has drained.
        self.queue.shrink();
    }

    /// Applies everything still queued and settles everything pending: the end of a watch.
    pub fn finish(mut self) -> (Vec<Finding>, Summary) {
        self.advance(u64::MAX);
        let (mut rules, mut cx) = self.split();
        for rule in &mut rules {
            rule.finish(&mut cx);
        }
        let summary = Summary {
            stats: self.stats,
            processes: self.tally.ranked(self.live.pages_by_process()),
        };
        (self.findings.into_vec(), summary)
    }

    /// Findings whose last event is older than `before_ns`, removed: a long-running watch hands
    /// each finding out once, after GUP calls of the same registration had time to merge.
    pub fn take_settled(&mut self, before_ns: u64) -> Vec<Finding> {
        self.findings.take_older(before_ns)
    }

    /// Findings recorded so far and not taken.
    pub fn findings_so_far(&self) -> usize {
        self.findings.len()
    }

    /// Pins fully released since the last call.
    pub fn take_released(&mut self) -> Vec<Released> {
        std::mem::take(&mut self.released)
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Pages held by live long-term pins, by pinner.
    pub fn live_pages_by_pinner(&self) -> BTreeMap<Pinner, u64> {
        self.live.pages_by_pinner()
    }

    /// Entries in each bounded table: the correlation state's size.
    pub fn table_sizes(&self) -> Vec<(&'static str, usize)> {
        let mut tables = vec![
            ("reorder-queue", self.queue.len()),
            ("live-pins", self.live.len()),
        ];
        tables.extend(self.file_pins.tables());
        tables.extend(self.rules.iter().flat_map(|r| r.tables()));
        tables
    }

    /// The live-pin ledger's capacity, the limit a host with many pins meets first.
    pub fn max_entries(&self) -> usize {
        self.live.cap()
    }

    /// Pins of processes that exited are gone with them (the kernel unpins at teardown, often
    /// from a kworker pinwatch does not watch): released now, so live pages and memory stay true.
    pub fn prune_exited(&mut self, alive: impl Fn(u32) -> bool, now: u64) {
        let mut verdicts: Vec<(u32, bool)> = Vec::new();
        let mut is_alive = |tgid: u32| match verdicts.iter().find(|(t, _)| *t == tgid) {
            Some((_, v)) => *v,
            None => {
                let v = alive(tgid);
                verdicts.push((tgid, v));
                v
            }
        };
        let gone = self.live.prune(&mut is_alive, now);
        self.released.extend(gone);
        self.file_pins.prune(&mut is_alive);
    }

    /// The ledgers take the event, then every rule sees it.
    fn apply(&mut self, event: &Event) {
        match event {
            Event::Pin(pin) => self.pinned(pin),
            Event::Unpin(unpin) => self.unpinned(unpin),
            _ => {}
        }
        let (mut rules, mut cx) = self.split();
        for rule in &mut rules {
            rule.on_event(event, &mut cx);
        }
        self.rules = rules;
    }

    fn settle(&mut self, now: u64) {
        let (mut rules, mut cx) = self.split();
        for rule in &mut rules {
            rule.settle(now, &mut cx);
        }
        self.rules = rules;
    }

    /// The rules, taken out for a pass, and the context they see.
    fn split(&mut self) -> (Vec<Box<dyn Rule>>, Context<'_>) {
        let rules = std::mem::take(&mut self.rules);
        let cx = Context {
            live: &self.live,
            file_pins: &mut self.file_pins,
            findings: &mut self.findings,
            stats: &mut self.stats,
            flags: &self.flags,
            cfg: &self.cfg,
        };
        (rules, cx)
    }

    /// A long-term pin: live and tallied when granted.
    fn pinned(&mut self, pin: &Pin) {
        self.stats.longterm_pins = self.stats.longterm_pins.saturating_add(pin.calls);
        if pin.ret <= 0 {
            return;
        }
        let held = live::NewPin {
            at_ns: pin.at_ns,
            start: pin.start,
            pages: pin.ret as u64,
            pinner: pin.pinner,
            dontfork: pin.dontfork == Some(true),
            shared: pin.backing.is_some_and(|b| b.shared),
        };
        // An evicted pin is still held by the kernel, just no longer tracked: counted, and
        // not reported as released.
        if self.live.push(live::key(&pin.task), &held).is_some() {
            self.stats.evicted_pins += 1;
        }
        if !self.tally.pinned(&pin.task, pin.ret as u64) {
            self.stats.untallied_processes += 1;
        }
    }

    /// Unpins end live pins of the same process, oldest first.
    fn unpinned(&mut self, unpin: &Unpin) {
        self.live.release(
            live::key(&unpin.task),
            unpin.pages,
            unpin.at_ns,
            &mut self.released,
        );
    }
}

mod config;
mod file_pins;
mod live;
mod merged;
mod reorder;
mod rule;
mod rules;
mod stats;
mod tally;

#[cfg(test)]
mod tests;
