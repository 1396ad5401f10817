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

use std::{cmp::Reverse, collections::BinaryHeap};

use serde::Serialize;

use crate::{
    events::{Event, FileId, Fork, ForkCopy, Mkclean, PfnUntrack, Pin, PinnedCow, Task, Unpin},
    findings::{self, Finding, Mapping, Outcome, Process},
    hazards::Hazard,
    kernel::flags::FollFlags,
};

/// `VM_SHARED`, the same on every kernel.
const VM_SHARED: u64 = 0x8;
const PAGE_SHIFT: u64 = 12;

#[derive(Debug, Clone)]
pub struct Config {
    pub reorder_ns: u64,
    pub settle_ns: u64,
    pub max_pins: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            reorder_ns: 50_000_000,
            settle_ns: 1_000_000_000,
            max_pins: 65_536,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub events: u64,
    pub longterm_pins: u64,
    /// Long-term pins of memory that needs no dirty tracking (anon, shmem, hugetlb, private).
    pub harmless_pins: u64,
    /// Pins dropped from a full table (oldest first).
    pub evicted_pins: u64,
    /// Write faults that reused a pinned page in place (the safe outcome).
    pub pinned_reuses: u64,
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

struct Queued(u64, u64, Event);

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.0, self.1) == (other.0, other.1)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(other.0, other.1))
    }
}

/// Pages a process holds pinned, from one granted long-term pin.
#[derive(Debug, Clone)]
struct LivePin {
    task: Task,
    pinner: String,
    start: u64,
    pages: u64,
}

pub struct Correlator {
    cfg: Config,
    /// Every granted long-term pin not yet unpinned, oldest first.
    live: Vec<LivePin>,
    /// Eager copies seen in a fork that has not reached its `Fork` event yet, by task, with the
    /// pinner of the live pin inside the copied VMA when pinwatch saw it.
    copies: Vec<(Task, u64, Option<String>)>,
    flags: FollFlags,
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    pending: Vec<FilePin>,
    active: Vec<FilePin>,
    findings: Vec<Finding>,
    stats: Stats,
}

impl Correlator {
    pub fn new(cfg: Config, flags: FollFlags) -> Self {
        Self {
            cfg,
            live: Vec::new(),
            copies: Vec::new(),
            flags,
            queue: BinaryHeap::new(),
            seq: 0,
            pending: Vec::new(),
            active: Vec::new(),
            findings: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// Queues an event; it is applied once it is older than the reorder window.
    pub fn push(&mut self, event: Event) {
        self.stats.events += 1;
        self.seq += 1;
        self.queue
            .push(Reverse(Queued(event.at_ns(), self.seq, event)));
    }

    /// Applies every event older than the reorder window and settles pins older than `settle_ns`.
    pub fn advance(&mut self, now: u64) {
        while let Some(Reverse(Queued(at, _, _))) = self.queue.peek() {
            if at.saturating_add(self.cfg.reorder_ns) > now {
                break;
            }
            let Some(Reverse(Queued(_, _, event))) = self.queue.pop() else {
                break;
            };
            self.settle(event.at_ns());
            self.apply(event);
        }
        self.settle(now);
    }

    /// Applies everything still queued and settles every pending pin: the end of a watch.
    pub fn finish(mut self) -> (Vec<Finding>, Stats) {
        self.advance(u64::MAX);
        (self.findings, self.stats)
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
        }
    }

    /// A fault that copied a pinned page: DMA keeps going to the old page while the process
    /// uses its new copy. Reuse in place is the kernel doing the right thing: counted only.
    fn on_pinned_cow(&mut self, cow: &PinnedCow) {
        if !cow.copied {
            self.stats.pinned_reuses += 1;
            return;
        }
        let holder = self.live.iter().find(|p| {
            same_process(&p.task, &cow.task)
                && (p.start..p.start + (p.pages << PAGE_SHIFT)).contains(&cow.address)
        });
        let pinner = holder.map_or_else(
            || "unknown (pinned before pinwatch started)".to_owned(),
            |p| p.pinner.clone(),
        );
        self.record(Finding {
            hazard: Hazard::PinnedCow,
            outcome: Outcome::Copied,
            process: process(&cow.task),
            pinner,
            pages: 1,
            mapping: Mapping {
                fs: "cow",
                dev: String::new(),
                ino: 0,
                path: None,
            },
            gup_flags: fault_kind(cow.fault_flags).to_owned(),
            first_ns: cow.at_ns,
            last_ns: cow.at_ns,
            advice: findings::advice(Hazard::PinnedCow, Outcome::Copied),
        });
    }

    fn on_fork_copy(&mut self, copy: &ForkCopy) {
        let pinner = self
            .live
            .iter()
            .find(|p| {
                same_process(&p.task, &copy.task) && (copy.vm_start..copy.vm_end).contains(&p.start)
            })
            .map(|p| p.pinner.clone());
        match self
            .copies
            .iter_mut()
            .find(|(t, _, _)| same_task(t, &copy.task))
        {
            Some((_, pages, known)) => {
                *pages += copy.pages;
                if known.is_none() {
                    *known = pinner;
                }
            }
            None => self.copies.push((copy.task.clone(), copy.pages, pinner)),
        }
    }

    /// A fork that copied pages eagerly for the child: the parent held pinned anonymous pages
    /// in a VMA it did not mark MADV_DONTFORK (those are skipped and stay silent).
    fn on_fork(&mut self, fork: &Fork) {
        let Some(i) = self
            .copies
            .iter()
            .position(|(t, _, _)| same_task(t, &fork.task))
        else {
            return;
        };
        let (_, pages, pinner) = self.copies.remove(i);
        self.record(Finding {
            hazard: Hazard::ForkWithPins,
            outcome: Outcome::EagerCopy,
            process: process(&fork.task),
            pinner: pinner.unwrap_or_else(|| "unknown (pinned before pinwatch started)".to_owned()),
            pages,
            mapping: Mapping {
                fs: "anon",
                dev: String::new(),
                ino: 0,
                path: None,
            },
            gup_flags: String::new(),
            first_ns: fork.at_ns,
            last_ns: fork.at_ns,
            advice: findings::advice(Hazard::ForkWithPins, Outcome::EagerCopy),
        });
    }

    /// An untrack from the zap path frees the memtype of a VMA that stays mapped: the later
    /// munmap finds VM_PAT already cleared, and the range is used with no reservation.
    fn on_pfn_untrack(&mut self, untrack: &PfnUntrack) {
        let Some(vma) = untrack.vma.as_ref().filter(|_| untrack.from_zap) else {
            return;
        };
        let mapping = match vma.file {
            Some(file) => Mapping::of(file, untrack.path.clone()),
            None => Mapping {
                fs: "pfnmap",
                dev: String::new(),
                ino: 0,
                path: untrack.path.clone(),
            },
        };
        self.record(Finding {
            hazard: Hazard::EarlyPfnUntrack,
            outcome: Outcome::UntrackedWhileMapped,
            process: process(&untrack.task),
            pinner: untrack.via.clone(),
            pages: untrack.vm_end.saturating_sub(vma.start) >> PAGE_SHIFT,
            mapping,
            gup_flags: String::new(),
            first_ns: untrack.at_ns,
            last_ns: untrack.at_ns,
            advice: findings::advice(Hazard::EarlyPfnUntrack, Outcome::UntrackedWhileMapped),
        });
    }

    fn on_pin(&mut self, pin: Pin) {
        self.stats.longterm_pins += 1;
        if pin.ret > 0 {
            if self.live.len() >= self.cfg.max_pins {
                self.live.remove(0);
                self.stats.evicted_pins += 1;
            }
            self.live.push(LivePin {
                task: pin.task.clone(),
                pinner: pin.pinner.clone(),
                start: pin.start,
                pages: pin.ret as u64,
            });
        }
        let Some((file, first_index)) = self.dirty_tracked_file(&pin) else {
            self.stats.harmless_pins += 1;
            return;
        };
        if pin.ret < 0 {
            let finding = self.pin_finding(&pin, file, Outcome::Refused, pin.nr_pages);
            self.record(finding);
        } else if pin.ret > 0 {
            let pages = pin.ret as u64;
            if self.pending.len() >= self.cfg.max_pins {
                self.pending.remove(0);
                self.stats.evicted_pins += 1;
            }
            self.pending.push(FilePin {
                pin,
                file,
                first_index,
                pages,
                unpinned: 0,
            });
        }
    }

    /// The file of a FOLL_WRITE long-term pin of a MAP_SHARED mapping that needs dirty tracking,
    /// with the page-cache index of `start`. The kernel's own verdict wins where it gave one.
    fn dirty_tracked_file(&self, pin: &Pin) -> Option<(FileId, u64)> {
        let write = self
            .flags
            .value("FOLL_WRITE")
            .is_some_and(|w| pin.gup_flags & w != 0);
        let vma = pin.vma.as_ref()?;
        let file = vma.file?;
        let needs = vma
            .needs_dirty_tracking
            .unwrap_or(!findings::exempt_from_dirty_tracking(file.fs_magic));
        let first_index = vma.pgoff + (pin.start.saturating_sub(vma.start) >> PAGE_SHIFT);
        (write && vma.flags & VM_SHARED != 0 && needs).then_some((file, first_index))
    }

    fn on_unpin(&mut self, unpin: &Unpin) {
        self.release_live(unpin);
        let same_call =
            |p: &FilePin| same_task(&p.pin.task, &unpin.task) && p.pin.syscall == unpin.syscall;
        if let Some(i) = self.pending.iter().rposition(same_call) {
            self.pending[i].unpinned += unpin.pages;
            if self.pending[i].unpinned >= self.pending[i].pages {
                let released = self.pending.remove(i);
                let finding = self.pin_finding(
                    &released.pin,
                    released.file,
                    Outcome::ReleasedByCaller,
                    released.pages,
                );
                self.record(finding);
            }
            return;
        }
        let owner = |p: &FilePin| same_process(&p.pin.task, &unpin.task);
        if let Some(i) = self.active.iter().position(owner) {
            self.active[i].unpinned += unpin.pages;
            if self.active[i].unpinned >= self.active[i].pages {
                self.active.remove(i);
            }
        }
    }

    /// Unpins end live pins of the same process, oldest first.
    fn release_live(&mut self, unpin: &Unpin) {
        let mut left = unpin.pages;
        for pin in self
            .live
            .iter_mut()
            .filter(|p| same_process(&p.task, &unpin.task))
        {
            let take = left.min(pin.pages);
            pin.pages -= take;
            left -= take;
            if left == 0 {
                break;
            }
        }
        self.live.retain(|p| p.pages > 0);
    }

    fn on_clean(&mut self, clean: &Mkclean) {
        let covers = |p: &&FilePin| {
            Some(p.file) == clean.file
                && (p.first_index..p.first_index + p.pages).contains(&clean.index)
        };
        let holder = self
            .active
            .iter()
            .chain(&self.pending)
            .find(covers)
            .cloned();
        let (outcome, process, pinner, gup_flags, mapping) = match &holder {
            Some(p) => (
                Outcome::Attributed,
                process(&p.pin.task),
                p.pin.pinner.clone(),
                self.flags.decode(p.pin.gup_flags),
                Mapping::of(p.file, p.pin.path.clone()),
            ),
            None => (
                Outcome::Unattributed,
                process(&clean.task),
                "unknown (pinned before pinwatch started)".to_owned(),
                String::new(),
                clean
                    .file
                    .map_or_else(unknown_mapping, |f| Mapping::of(f, None)),
            ),
        };
        self.record(Finding {
            hazard: Hazard::PinnedFolioCleaned,
            outcome,
            process,
            pinner,
            pages: 1,
            mapping,
            gup_flags,
            first_ns: clean.at_ns,
            last_ns: clean.at_ns,
            advice: findings::advice(Hazard::PinnedFolioCleaned, outcome),
        });
    }

    /// Pending pins older than the settle window were kept by their caller: granted.
    fn settle(&mut self, now: u64) {
        let settle_ns = self.cfg.settle_ns;
        let (due, keep): (Vec<FilePin>, Vec<FilePin>) = self
            .pending
            .drain(..)
            .partition(|p| p.pin.at_ns.saturating_add(settle_ns) <= now);
        self.pending = keep;
        for mut pin in due {
            let finding = self.pin_finding(&pin.pin, pin.file, Outcome::Granted, pin.pages);
            self.record(finding);
            pin.unpinned = 0;
            if self.active.len() >= self.cfg.max_pins {
                self.active.remove(0);
                self.stats.evicted_pins += 1;
            }
            self.active.push(pin);
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
                && f.mapping == finding.mapping
        };
        match self.findings.iter_mut().find(same) {
            Some(existing) => {
                existing.pages += finding.pages;
                existing.first_ns = existing.first_ns.min(finding.first_ns);
                existing.last_ns = existing.last_ns.max(finding.last_ns);
            }
            None => self.findings.push(finding),
        }
    }

    fn pin_finding(&self, pin: &Pin, file: FileId, outcome: Outcome, pages: u64) -> Finding {
        Finding {
            hazard: Hazard::LongtermFilePin,
            outcome,
            process: process(&pin.task),
            pinner: pin.pinner.clone(),
            pages,
            mapping: Mapping::of(file, pin.path.clone()),
            gup_flags: self.flags.decode(pin.gup_flags),
            first_ns: pin.at_ns,
            last_ns: pin.at_ns,
            advice: findings::advice(Hazard::LongtermFilePin, outcome),
        }
    }
}

/// FAULT_FLAG_UNSHARE (0x400) and FAULT_FLAG_WRITE (0x1): the same values in 6.1, 6.12 and 7.2.
fn fault_kind(flags: u32) -> &'static str {
    if flags & 0x400 != 0 {
        "FAULT_FLAG_UNSHARE"
    } else if flags & 0x1 != 0 {
        "FAULT_FLAG_WRITE"
    } else {
        "fault"
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

fn unknown_mapping() -> Mapping {
    Mapping {
        fs: "unknown",
        dev: String::new(),
        ino: 0,
        path: None,
    }
}

#[cfg(test)]
mod tests;
