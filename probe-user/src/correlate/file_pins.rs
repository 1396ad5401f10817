//! Long-term pins of dirty-tracked file mappings, from grant to release: *pending* while the
//! pinning system call may still release them (6.1's io_uring unpins at once after its own
//! check), then *active* until unpinned, so that writeback of their pages can be attributed.

use std::ops::Range;

use super::live::{same_process, same_task};
use crate::events::{FileId, Pin, Unpin};

/// A granted long-term pin of a dirty-tracked shared file mapping.
#[derive(Debug, Clone)]
pub(super) struct FilePin {
    pub pin: Pin,
    pub file: FileId,
    /// Page-cache index of the first pinned page.
    pub first_index: u64,
    pub pages: u64,
    /// Pages unpinned so far (within the pinning syscall while pending, later while active).
    pub unpinned: u64,
}

impl FilePin {
    /// Whether the pin holds part of the page-cache range `indexes` of `file` (a pin may start
    /// inside a large folio).
    fn covers(&self, file: FileId, indexes: &Range<u64>) -> bool {
        self.file == file
            && self.first_index < indexes.end
            && indexes.start < self.first_index.saturating_add(self.pages)
    }
}

/// Both tables are bounded by `cap`: a full one drops its oldest pin, and the caller counts it.
pub(super) struct FilePins {
    cap: usize,
    pending: Vec<FilePin>,
    active: Vec<FilePin>,
}

impl FilePins {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            pending: Vec::new(),
            active: Vec::new(),
        }
    }

    /// Takes a pin just granted; `true` when the full table dropped its oldest.
    pub fn admit(&mut self, pin: FilePin) -> bool {
        push_bounded(&mut self.pending, pin, self.cap)
    }

    /// Counts an unpin against the pin it ends: a pending pin of the same system call, else an
    /// active pin of the same process. Returns a pending pin this unpin released completely:
    /// its caller gave it back at once.
    pub fn unpin(&mut self, unpin: &Unpin) -> Option<FilePin> {
        let same_call =
            |p: &FilePin| same_task(&p.pin.task, &unpin.task) && p.pin.syscall == unpin.syscall;
        if let Some(i) = self.pending.iter().rposition(same_call) {
            let pin = &mut self.pending[i];
            pin.unpinned = pin.unpinned.saturating_add(unpin.pages);
            return (pin.unpinned >= pin.pages).then(|| self.pending.remove(i));
        }
        let owner = |p: &FilePin| same_process(&p.pin.task, &unpin.task);
        if let Some(i) = self.active.iter().position(owner) {
            let pin = &mut self.active[i];
            pin.unpinned = pin.unpinned.saturating_add(unpin.pages);
            if pin.unpinned >= pin.pages {
                self.active.remove(i);
            }
        }
        None
    }

    /// Pending pins granted `settle_ns` before `now` were kept by their caller: they become
    /// active, and are returned with the number the full active table dropped.
    pub fn settle(&mut self, now: u64, settle_ns: u64) -> (Vec<FilePin>, u64) {
        if self.pending.is_empty() {
            return (Vec::new(), 0);
        }
        let (due, keep): (Vec<FilePin>, Vec<FilePin>) = self
            .pending
            .drain(..)
            .partition(|p| p.pin.at_ns.saturating_add(settle_ns) <= now);
        self.pending = keep;
        let mut evicted = 0;
        for pin in &due {
            let kept = FilePin {
                unpinned: 0,
                ..pin.clone()
            };
            evicted += u64::from(push_bounded(&mut self.active, kept, self.cap));
        }
        (due, evicted)
    }

    /// The pin, active or pending, that holds part of `indexes` in `file`.
    pub fn covering(&self, file: FileId, indexes: &Range<u64>) -> Option<&FilePin> {
        self.active
            .iter()
            .chain(&self.pending)
            .find(|p| p.covers(file, indexes))
    }

    /// Pins of processes that exited are gone with them.
    pub fn prune(&mut self, mut alive: impl FnMut(u32) -> bool) {
        self.active.retain(|p| alive(p.pin.task.tgid));
    }

    pub fn tables(&self) -> [(&'static str, usize); 2] {
        [
            ("pending-file-pins", self.pending.len()),
            ("active-file-pins", self.active.len()),
        ]
    }
}

/// Appends `pin`, dropping the oldest first when `table` holds `cap`: `true` when it did.
fn push_bounded(table: &mut Vec<FilePin>, pin: FilePin, cap: usize) -> bool {
    let full = table.len() >= cap;
    if full {
        table.remove(0);
    }
    table.push(pin);
    full
}
