//! The ledger of live long-term pins: every granted pin not yet unpinned, by process.
//!
//! It must hold hundreds of thousands of pins (io_uring pins each registered iovec with its own
//! call, 16,384 per ring) in little memory and answer each unpin without scanning the others:
//! - an entry is 40 bytes: the process is its map key and the pinner an interned id;
//! - each process's pins sit in age order, so an unpin (which releases the oldest first) pops
//!   from the front;
//! - `fronts` orders processes by their oldest pin, so a full ledger evicts the oldest pin of
//!   all in O(log n).
//!
//! The ledger is bounded by `cap` entries; an eviction is returned to the caller, who counts it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rustc_hash::FxHashMap;

use crate::{events::Task, pinner::Pinner};

/// A process, as long as it lives: tgid and start time (a reused tgid is another process).
pub(super) type ProcKey = (u32, u64);

pub(super) fn key(task: &Task) -> ProcKey {
    (task.tgid, task.start_ns)
}

/// A long-term pin whose pages were all unpinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    pub pinner: Pinner,
    pub pages: u64,
    /// From the pin's return to the unpin that released its last page.
    pub held_ns: u64,
}

/// Whether `a` and `b` are threads of one process (a reused tgid is another process).
pub(super) fn same_process(a: &Task, b: &Task) -> bool {
    a.tgid == b.tgid && a.start_ns == b.start_ns
}

/// Whether `a` and `b` are the same thread.
pub(super) fn same_task(a: &Task, b: &Task) -> bool {
    same_process(a, b) && a.tid == b.tid
}

/// One granted pin call. Page counts saturate at u32::MAX (4 Ki × 4 GiB of pinned memory).
#[derive(Debug, Clone, Copy)]
struct Entry {
    seq: u64,
    at_ns: u64,
    start: u64,
    pages: u32,
    pinned: u32,
    pinner: Pinner,
    dontfork: bool,
    shared: bool,
}

const _: () = assert!(size_of::<Entry>() == 40);

/// A pin as `push` takes it.
pub(super) struct NewPin {
    pub at_ns: u64,
    pub start: u64,
    pub pages: u64,
    pub pinner: Pinner,
    pub dontfork: bool,
    /// The pinned range is MAP_SHARED (its pages stay in their file when the process zaps it).
    pub shared: bool,
}

/// A live pin as the rules read it.
pub(super) struct HeldPin {
    pub start: u64,
    pub pages: u64,
    pub pinner: Pinner,
    pub dontfork: bool,
    pub shared: bool,
}

pub(super) struct LivePins {
    cap: usize,
    len: usize,
    next_seq: u64,
    by_process: FxHashMap<ProcKey, VecDeque<Entry>>,
    /// (oldest pin's seq, process) for every process with live pins.
    fronts: BTreeSet<(u64, ProcKey)>,
    /// Live pages by pinner (`Pinner as usize`), kept as pins come and go (read every metrics
    /// tick).
    pages_by_pinner: [u64; Pinner::ALL.len()],
}

impl LivePins {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            len: 0,
            next_seq: 0,
            by_process: FxHashMap::default(),
            fronts: BTreeSet::new(),
            pages_by_pinner: [0; Pinner::ALL.len()],
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Adds a pin; when the ledger is full, the oldest pin of all makes room and is returned.
    pub fn push(&mut self, process: ProcKey, pin: &NewPin) -> Option<Released> {
        if self.cap == 0 {
            return None;
        }
        let evicted = (self.len >= self.cap)
            .then(|| self.evict_oldest(pin.at_ns))
            .flatten();
        let pages = saturate(pin.pages);
        let entry = Entry {
            seq: self.next_seq,
            at_ns: pin.at_ns,
            start: pin.start,
            pages,
            pinned: pages,
            pinner: pin.pinner,
            dontfork: pin.dontfork,
            shared: pin.shared,
        };
        self.next_seq += 1;
        let pins = self.by_process.entry(process).or_default();
        if pins.is_empty() {
            self.fronts.insert((entry.seq, process));
        }
        pins.push_back(entry);
        self.len += 1;
        self.pages_by_pinner[entry.pinner as usize] += u64::from(pages);
        evicted
    }

    fn evict_oldest(&mut self, now: u64) -> Option<Released> {
        let &(_, process) = self.fronts.first()?;
        let pins = self.by_process.get_mut(&process)?;
        let entry = pins.pop_front()?;
        let next_front = pins.front().map(|e| e.seq);
        self.after_front_change(process, entry.seq, next_front);
        self.len -= 1;
        sub_pages(&mut self.pages_by_pinner, entry.pinner, entry.pages);
        Some(released(&entry, now))
    }

    /// Unpins of `pages` by `process` end its pins oldest first; the pins they complete are
    /// appended to `done`. Nothing is allocated: an unpin storm comes here once per record.
    pub fn release(&mut self, process: ProcKey, pages: u64, at_ns: u64, done: &mut Vec<Released>) {
        let Self {
            by_process,
            pages_by_pinner,
            len,
            ..
        } = self;
        let Some(pins) = by_process.get_mut(&process) else {
            return;
        };
        let old_front = pins.front().map(|e| e.seq);
        let mut left = pages;
        while left > 0 {
            let Some(front) = pins.front_mut() else { break };
            let take = saturate(left).min(front.pages);
            front.pages -= take;
            left -= u64::from(take);
            sub_pages(pages_by_pinner, front.pinner, take);
            if front.pages > 0 {
                break;
            }
            if let Some(entry) = pins.pop_front() {
                *len -= 1;
                done.push(released(&entry, at_ns));
            }
        }
        let new_front = pins.front().map(|e| e.seq);
        if let Some(old) = old_front
            && new_front != Some(old)
        {
            self.after_front_change(process, old, new_front);
        }
    }

    /// Drops every pin of the processes `alive` says are gone.
    pub fn prune(&mut self, mut alive: impl FnMut(u32) -> bool, now: u64) -> Vec<Released> {
        let gone: Vec<ProcKey> = self
            .by_process
            .keys()
            .filter(|(tgid, _)| !alive(*tgid))
            .copied()
            .collect();
        let mut done = Vec::new();
        for process in gone {
            let Some(pins) = self.by_process.remove(&process) else {
                continue;
            };
            if let Some(front) = pins.front() {
                self.fronts.remove(&(front.seq, process));
            }
            self.len -= pins.len();
            for entry in &pins {
                sub_pages(&mut self.pages_by_pinner, entry.pinner, entry.pages);
                done.push(released(entry, now));
            }
        }
        done
    }

    /// The process's live pins, oldest first.
    pub fn of(&self, process: ProcKey) -> impl Iterator<Item = HeldPin> + '_ {
        self.by_process
            .get(&process)
            .into_iter()
            .flatten()
            .map(|e| HeldPin {
                start: e.start,
                pages: u64::from(e.pages),
                pinner: e.pinner,
                dontfork: e.dontfork,
                shared: e.shared,
            })
    }

    /// Live pages by process.
    pub fn pages_by_process(&self) -> impl Iterator<Item = (ProcKey, u64)> + '_ {
        self.by_process
            .iter()
            .map(|(k, pins)| (*k, pins.iter().map(|e| u64::from(e.pages)).sum()))
    }

    pub fn pages_by_pinner(&self) -> BTreeMap<Pinner, u64> {
        Pinner::ALL
            .into_iter()
            .map(|pinner| (pinner, self.pages_by_pinner[pinner as usize]))
            .filter(|(_, pages)| *pages > 0)
            .collect()
    }

    /// Keeps `fronts` in step after a process's oldest pin `old` left (`new`: its next one).
    fn after_front_change(&mut self, process: ProcKey, old: u64, new: Option<u64>) {
        self.fronts.remove(&(old, process));
        match new {
            Some(seq) => {
                self.fronts.insert((seq, process));
            }
            None => {
                self.by_process.remove(&process);
            }
        }
    }
}

/// Takes `pages` off a pinner's live pages.
fn sub_pages(pages_by_pinner: &mut [u64], pinner: Pinner, pages: u32) {
    let total = &mut pages_by_pinner[pinner as usize];
    *total = total.saturating_sub(u64::from(pages));
}

/// A pin whose last page was unpinned (or that went with its process) at `now`.
fn released(entry: &Entry, now: u64) -> Released {
    Released {
        pinner: entry.pinner,
        pages: u64::from(entry.pinned),
        held_ns: now.saturating_sub(entry.at_ns),
    }
}

fn saturate(pages: u64) -> u32 {
    u32::try_from(pages).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    use Pinner::{IoUring, Vfio};

    fn pin(at_ns: u64, start: u64, pages: u64, pinner: Pinner) -> NewPin {
        NewPin {
            at_ns,
            start,
            pages,
            pinner,
            dontfork: false,
            shared: false,
        }
    }

    const A: ProcKey = (10, 1);
    const B: ProcKey = (20, 2);

    #[test]
    fn unpins_release_the_oldest_pins_of_their_process_first() {
        let mut live = LivePins::new(16);
        live.push(A, &pin(1, 0x1000, 2, IoUring));
        live.push(B, &pin(2, 0x9000, 4, Vfio));
        live.push(A, &pin(3, 0x5000, 3, IoUring));
        // 3 pages: the first pin (2) completes, the second loses 1 of 3.
        let mut done = Vec::new();
        live.release(A, 3, 10, &mut done);
        assert_eq!(
            done,
            vec![Released {
                pinner: IoUring,
                pages: 2,
                held_ns: 9
            }]
        );
        let left: Vec<(u64, u64)> = live.of(A).map(|p| (p.start, p.pages)).collect();
        assert_eq!(left, vec![(0x5000, 2)]);
        assert_eq!(live.len(), 2);
        let by_pinner = live.pages_by_pinner();
        assert_eq!(by_pinner.get(&IoUring), Some(&2));
        assert_eq!(by_pinner.get(&Vfio), Some(&4));
        // B is untouched by A's unpins.
        assert_eq!(live.of(B).map(|p| p.pages).sum::<u64>(), 4);
    }

    #[test]
    fn a_full_ledger_evicts_the_oldest_pin_of_any_process() {
        let mut live = LivePins::new(2);
        assert!(live.push(A, &pin(1, 0x1000, 1, IoUring)).is_none());
        assert!(live.push(B, &pin(2, 0x2000, 1, Vfio)).is_none());
        let evicted = live.push(B, &pin(3, 0x3000, 1, Vfio)).expect("full");
        assert_eq!(evicted.pinner, IoUring);
        assert_eq!(live.of(A).count(), 0);
        let evicted = live.push(A, &pin(4, 0x4000, 1, IoUring)).expect("full");
        assert_eq!((evicted.pinner, evicted.held_ns), (Vfio, 2));
        assert_eq!(live.len(), 2);
        let starts: Vec<u64> = live.of(B).map(|p| p.start).collect();
        assert_eq!(starts, vec![0x3000]);
    }

    #[test]
    fn pages_stay_exact_through_many_small_pins() {
        let mut live = LivePins::new(100_000);
        for i in 0..50_000u64 {
            live.push(A, &pin(i, i << 12, 1, IoUring));
        }
        assert_eq!(live.pages_by_pinner().get(&IoUring), Some(&50_000));
        let mut done = Vec::new();
        live.release(A, 49_999, 60_000, &mut done);
        assert_eq!(done.len(), 49_999);
        assert_eq!(live.len(), 1);
        done.clear();
        live.release(A, 5, 60_001, &mut done);
        assert_eq!(done.len(), 1);
        assert_eq!(live.len(), 0);
        assert!(live.pages_by_pinner().is_empty());
        assert!(live.by_process.is_empty() && live.fronts.is_empty());
    }

    #[test]
    fn pruning_a_dead_process_releases_all_its_pins() {
        let mut live = LivePins::new(16);
        live.push(A, &pin(1, 0x1000, 2, IoUring));
        live.push(A, &pin(2, 0x2000, 3, IoUring));
        live.push(B, &pin(3, 0x3000, 4, Vfio));
        let released = live.prune(|tgid| tgid != A.0, 10);
        assert_eq!(released.iter().map(|r| r.pages).sum::<u64>(), 5);
        assert_eq!(live.len(), 1);
        assert_eq!(live.pages_by_pinner().len(), 1);
        // The remaining process is still evictable: the fronts index stayed in step.
        let mut live2 = live;
        live2.cap = 1;
        assert!(live2.push(B, &pin(4, 0x4000, 1, Vfio)).is_some());
    }

    #[test]
    fn unpins_beyond_the_held_pages_stop_at_empty() {
        let mut live = LivePins::new(4);
        live.push(A, &pin(1, 0x1000, 2, IoUring));
        let mut done = Vec::new();
        live.release(A, 1_000, 5, &mut done);
        assert_eq!(done.len(), 1);
        assert_eq!(live.len(), 0);
        live.release(A, 1, 6, &mut done);
        live.release(B, 1, 6, &mut done);
        assert_eq!(done.len(), 1);
    }

    #[test]
    fn page_counts_saturate_instead_of_wrapping() {
        let mut live = LivePins::new(4);
        live.push(A, &pin(1, 0, u64::MAX, IoUring));
        assert_eq!(
            live.of(A).next().map(|p| p.pages),
            Some(u64::from(u32::MAX))
        );
        let mut done = Vec::new();
        live.release(A, u64::MAX, 2, &mut done);
        assert_eq!(done.len(), 1);
    }
}
