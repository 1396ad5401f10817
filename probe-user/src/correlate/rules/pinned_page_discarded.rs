//! `pinned-page-discarded`: a maybe-DMA-pinned page taken from the memory its process maps while
//! the pin lives. The device keeps the old page; the process faults in a new one.
//!
//! - A page-cache folio removed while maybe pinned (the kernel's own test, in the tracepoint) is
//!   attributed to the live long-term pin that holds its file range, kept here from the pin's
//!   mapping ([`Backing`]) until its process holds no pin. Otherwise it is reported
//!   unattributed: the pin predates pinwatch, or is a short-term one (O_DIRECT).
//! - MADV_DONTNEED by a process that pinned is matched against its live pins by address: the
//!   pinned private pages inside the range are discarded. Shared mappings only lose their page
//!   table entries (the page stays in the file), so they are not.
//! - A folio freed with its file's last reference (close, munmap or exit of an unlinked file)
//!   is no longer mapped by anyone: counted, not reported.

use std::ops::Range;

use super::super::{
    live::{key, same_process},
    rule::{Context, Rule},
};
use crate::{
    discard_call::DiscardCall,
    events::{Backing, Event, Madvise, PAGE_SHIFT, Pin, PinnedFolio, Task, Unpin},
    findings::{Cause, Finding, Mapping, Outcome},
    hazards::Hazard,
    pinner::Pinner,
    text::UserText,
};

/// A granted long-term pin of a file's pages, as the page cache indexes them.
struct FileRange {
    task: Task,
    pinner: Pinner,
    path: Option<UserText>,
    dev: u32,
    ino: u64,
    indexes: Range<u64>,
}

#[derive(Default)]
pub(super) struct PinnedPageDiscarded {
    /// Oldest first; bounded by `Config::max_pins` (a full table drops its oldest, counted).
    files: Vec<FileRange>,
}

impl Rule for PinnedPageDiscarded {
    fn on_event(&mut self, event: &Event, cx: &mut Context<'_>) {
        match event {
            Event::Pin(pin) => self.pinned(pin, cx),
            Event::Unpin(unpin) => self.unpinned(unpin, cx),
            Event::PageCacheDiscard(folio) => {
                let call = DiscardCall::of_syscall(&folio.syscall);
                if call == DiscardCall::LastClose {
                    cx.stats.discards_at_last_close += 1;
                } else {
                    let finding = self.page_cache_finding(folio, call, cx);
                    cx.findings.record(finding);
                }
            }
            Event::MadviseDiscard(madvise) => {
                for finding in madvise_findings(madvise, cx) {
                    cx.findings.record(finding);
                }
            }
            _ => {}
        }
    }

    fn tables(&self) -> Vec<(&'static str, usize)> {
        vec![("pinned-file-ranges", self.files.len())]
    }
}

impl PinnedPageDiscarded {
    fn pinned(&mut self, pin: &Pin, cx: &mut Context<'_>) {
        let Some(Backing {
            file: Some((dev, ino, first)),
            ..
        }) = pin.backing
        else {
            return;
        };
        if pin.ret <= 0 {
            return;
        }
        if self.files.len() >= cx.cfg.max_pins {
            self.files.remove(0);
            cx.stats.evicted_file_ranges += 1;
        }
        self.files.push(FileRange {
            task: pin.task.clone(),
            pinner: pin.pinner,
            path: pin.path.clone(),
            dev,
            ino,
            indexes: first..first.saturating_add(pin.ret as u64),
        });
    }

    /// A process whose last pin is released holds none of its files' pages any more.
    fn unpinned(&mut self, unpin: &Unpin, cx: &Context<'_>) {
        if cx.live.of(key(&unpin.task)).next().is_none() {
            self.files.retain(|f| !same_process(&f.task, &unpin.task));
        }
    }

    fn page_cache_finding(
        &mut self,
        folio: &PinnedFolio,
        call: DiscardCall,
        cx: &Context<'_>,
    ) -> Finding {
        let pages = folio.pages.unwrap_or(1);
        let indexes = folio.index..folio.index.saturating_add(pages);
        let holder = folio.file.and_then(|file| {
            self.files.iter().rev().find(|f| {
                (f.dev, f.ino) == (file.dev, file.ino)
                    && f.indexes.start < indexes.end
                    && indexes.start < f.indexes.end
                    // Its process may have exited since (the core pruned its pins).
                    && cx.live.of(key(&f.task)).next().is_some()
            })
        });
        let discarded = |outcome, task| Finding {
            pages,
            page_size: Some(pages << PAGE_SHIFT),
            folios: Some(1),
            ..Finding::new(
                Hazard::PinnedPageDiscarded,
                outcome,
                task,
                folio.at_ns,
                Cause::Discard { call },
            )
        };
        match holder {
            Some(f) => Finding {
                pinner: Some(f.pinner),
                mapping: folio.file.map(|file| Mapping::of(file, f.path.clone())),
                ..discarded(Outcome::Attributed, &f.task)
            },
            None => Finding {
                mapping: folio.file.map(|file| Mapping::of(file, None)),
                ..discarded(Outcome::Unattributed, &folio.task)
            },
        }
    }
}

/// The process's live private pins inside the zapped range: one finding per pinner, with the
/// pinned pages the range covers.
fn madvise_findings(madvise: &Madvise, cx: &Context<'_>) -> Vec<Finding> {
    let zapped = madvise.start..madvise.start.saturating_add(madvise.len);
    let mut by_pinner: Vec<(Pinner, u64)> = Vec::new();
    for pin in cx.live.of(key(&madvise.task)).filter(|p| !p.shared) {
        let pinned = pin.start..pin.start.saturating_add(pin.pages << PAGE_SHIFT);
        let overlap = pinned
            .end
            .min(zapped.end)
            .saturating_sub(pinned.start.max(zapped.start));
        let pages = overlap.div_ceil(1 << PAGE_SHIFT);
        if pages == 0 {
            continue;
        }
        match by_pinner.iter_mut().find(|(p, _)| *p == pin.pinner) {
            Some((_, total)) => *total = total.saturating_add(pages),
            None => by_pinner.push((pin.pinner, pages)),
        }
    }
    let call = DiscardCall::of_madvise_event(&madvise.syscall, madvise.behavior);
    by_pinner
        .into_iter()
        .map(|(pinner, pages)| Finding {
            pinner: Some(pinner),
            pages,
            page_size: Some(1 << PAGE_SHIFT),
            ..Finding::new(
                Hazard::PinnedPageDiscarded,
                Outcome::Attributed,
                &madvise.task,
                madvise.at_ns,
                Cause::Discard { call },
            )
        })
        .collect()
}
