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

use std::collections::{BTreeMap, HashMap};

use probe_common::kernel::VM_SHARED;
use serde::Serialize;

use self::{live::LivePins, reorder::ReorderQueue};
use crate::{
    events::{
        Event, FileId, Fork, ForkCopy, Mkclean, PAGE_SHIFT, PfnUntrack, Pin, PinnedCow, Task, Unpin,
    },
    findings::{self, Finding, Mapping, Outcome, Process},
    hazards::Hazard,
    kernel::flags::FollFlags,
};

#[derive(Debug, Clone)]
pub struct Config {
    pub reorder_ns: u64,
    pub settle_ns: u64,
    /// Entries in each of the smaller tables (file pins, processes, reorder helpers).
    pub max_pins: usize,
    /// Entries in the live-pin ledger: one per granted long-term pin call still held.
    pub max_live_pins: usize,
}

/// 16 io_uring rings' worth of single-page buffers (16 × 16,384 pin calls) at 40 bytes each.
pub const DEFAULT_MAX_LIVE_PINS: usize = 1 << 18;

impl Default for Config {
    fn default() -> Self {
        Self {
            reorder_ns: 50_000_000,
            settle_ns: 1_000_000_000,
            max_pins: 65_536,
            max_live_pins: DEFAULT_MAX_LIVE_PINS,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub events: u64,
    pub longterm_pins: u64,
    /// Long-term pins of memory that needs no dirty tracking (anon, shmem, hugetlb, private).
    pub harmless_pins: u64,
    /// Pins dropped from the full live-pin ledger (oldest first).
    pub evicted_pins: u64,
    /// Dirty-tracked file pins dropped from their full tables (oldest first).
    pub evicted_file_pins: u64,
    /// Write faults that reused a pinned page in place (the safe outcome).
    pub pinned_reuses: u64,
    /// Processes not ranked in the summary because the tally was full.
    pub untallied_processes: u64,
}

/// A long-term pin of a dirty-tracked shared file mapping, granted by the kernel.
#[derive(Debug, Clone)]
struct FilePin {
    pin: Pin,
    file: FileId,
    /// Page-cache index of the first pinned page.
    first_index: u64,
    pages: u64,
    /// Pages unpinned so far (within the pinning syscall while pending, later while active).
    unpinned: u64,
}

/// A long-term pin whose pages were all unpinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// Shared with the ledger's name of the pinner.
    pub pinner: std::sync::Arc<str>,
    pub pages: u64,
    /// From the pin's return to the unpin that released its last page.
    pub held_ns: u64,
}

/// Long-term pinning by one process over a watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessPins {
    pub process: Process,
    /// Pages pinned long-term during the watch, summed over pin calls.
    pub pinned_pages: u64,
    /// Pages still pinned when the watch ended (as far as pinwatch saw the unpins).
    pub held_pages: u64,
}

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
    /// Every granted long-term pin not yet unpinned.
    live: LivePins,
    /// VMAs whose memtype a zap freed early, by (tgid, start time, vm_start), until their munmap.
    untracked_early: Vec<(u32, u64, u64)>,
    /// Copying unshare faults issued by pins whose event has not arrived yet.
    unshares: Vec<PinnedCow>,
    /// Eager copies seen in a fork that has not reached its `Fork` event yet.
    copies: Vec<fork::PendingCopies>,
    flags: FollFlags,
    queue: ReorderQueue,
    pending: Vec<FilePin>,
    active: Vec<FilePin>,
    findings: Vec<Finding>,
    /// Pins fully released since the caller last took them.
    released: Vec<Released>,
    /// Long-term pinned pages by process (tgid, start time), for the summary.
    tally: HashMap<(u32, u64), ProcessPins>,
    stats: Stats,
}

impl Correlator {
    pub fn new(cfg: Config, flags: FollFlags) -> Self {
        Self {
            live: LivePins::new(cfg.max_live_pins),
            cfg,
            unshares: Vec::new(),
            untracked_early: Vec::new(),
            copies: Vec::new(),
            flags,
            queue: ReorderQueue::default(),
            pending: Vec::new(),
            active: Vec::new(),
            findings: Vec::new(),
            released: Vec::new(),
            tally: HashMap::new(),
            stats: Stats::default(),
        }
    }

    /// Queues an event; it is applied once it is older than the reorder window.
    pub fn push(&mut self, event: Event) {
        self.stats.events += 1;
        self.queue.push(event);
    }

    /// Applies every event older than the reorder window and settles pins older than `settle_ns`.
    pub fn advance(&mut self, now: u64) {
        while let Some(event) = self.queue.pop_older(now, self.cfg.reorder_ns) {
            self.settle(event.at_ns());
            self.apply(event);
        }
        self.settle(now);
        // A storm grew the queue; its memory goes back once it has drained.
        self.queue.shrink();
    }

    /// Applies everything still queued and settles every pending pin: the end of a watch.
    pub fn finish(mut self) -> (Vec<Finding>, Summary) {
        self.advance(u64::MAX);
        self.flush_unshares();
        for (process, pages) in self.live.pages_by_process() {
            if let Some(t) = self.tally.get_mut(&process) {
                t.held_pages = t.held_pages.saturating_add(pages);
            }
        }
        let mut processes: Vec<ProcessPins> = self.tally.into_values().collect();
        processes.sort_by(|a, b| {
            (b.pinned_pages, b.held_pages, a.process.tgid).cmp(&(
                a.pinned_pages,
                a.held_pages,
                b.process.tgid,
            ))
        });
        let summary = Summary {
            stats: self.stats,
            processes,
        };
        (self.findings, summary)
    }

    /// Findings whose last event is older than `before_ns`, removed: a long-running watch hands
    /// each finding out once, after GUP calls of the same registration had time to merge.
    pub fn take_settled(&mut self, before_ns: u64) -> Vec<Finding> {
        let (due, keep) = std::mem::take(&mut self.findings)
            .into_iter()
            .partition(|f| f.last_ns < before_ns);
        self.findings = keep;
        due
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
    pub fn live_pages_by_pinner(&self) -> BTreeMap<&str, u64> {
        self.live.pages_by_pinner()
    }

    /// Entries in each bounded table: the correlation state's size.
    pub fn table_sizes(&self) -> [(&'static str, usize); 7] {
        [
            ("reorder-queue", self.queue.len()),
            ("live-pins", self.live.len()),
            ("pending-file-pins", self.pending.len()),
            ("active-file-pins", self.active.len()),
            ("untracked-pfn-vmas", self.untracked_early.len()),
            ("unattributed-unshares", self.unshares.len()),
            ("fork-copies", self.copies.len()),
        ]
    }

    /// The live-pin ledger's capacity, the limit a host with many pins meets first.
    pub fn max_entries(&self) -> usize {
        self.live.cap()
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Pin(pin) => self.on_pin(pin),
            Event::Unpin(unpin) => self.on_unpin(&unpin),
            Event::MkcleanPinned(clean) => self.on_clean(&clean),
            Event::PfnUntrack(untrack) => self.on_pfn_untrack(&untrack),
            Event::ForkCopy(copy) => self.on_fork_copy(&copy),
            Event::Fork(fork) => self.on_fork(&fork),
            Event::PinnedCow(cow) => self.on_pinned_cow(&cow),
            // Process-tree bookkeeping only (pipeline::ProcessTree).
            Event::Spawn(_) => {}
        }
    }

    /// Adds a finding, or grows the one with the same hazard, outcome, process, pinner and file:
    /// one report line per registration even when GUP pins a range in several calls.
    fn record(&mut self, finding: Finding) {
        let same = |f: &&mut Finding| {
            f.hazard == finding.hazard
                && f.outcome == finding.outcome
                && f.process == finding.process
                && f.pinner == finding.pinner
                && f.mapping.same_file(&finding.mapping)
                && f.page_size == finding.page_size
        };
        match self.findings.iter_mut().find(same) {
            Some(existing) => {
                existing.pages = existing.pages.saturating_add(finding.pages);
                existing.folios = match (existing.folios, finding.folios) {
                    (Some(a), Some(b)) => Some(a.saturating_add(b)),
                    (a, b) => a.or(b),
                };
                existing.first_ns = existing.first_ns.min(finding.first_ns);
                existing.last_ns = existing.last_ns.max(finding.last_ns);
                if existing.mapping.path.is_none() {
                    existing.mapping.path = finding.mapping.path;
                }
            }
            None => self.findings.push(finding),
        }
    }
}

fn same_process(a: &Task, b: &Task) -> bool {
    a.tgid == b.tgid && a.start_ns == b.start_ns
}

fn same_task(a: &Task, b: &Task) -> bool {
    same_process(a, b) && a.tid == b.tid
}

fn process(task: &Task) -> Process {
    Process {
        tgid: task.tgid,
        comm: task.comm.clone(),
        start_ns: task.start_ns,
        cgroup: findings::Cgroup {
            id: task.cgroup_id,
            path: None,
        },
    }
}

mod cow;
mod file_pins;
mod fork;
mod live;
mod pfn;
mod reorder;
mod writeback;

#[cfg(test)]
mod tests;
