//! `fork-with-pins`: pinned anonymous pages the kernel copied eagerly for a child at fork, and
//! forks whose pins MADV_DONTFORK kept from the child.

use super::super::{
    live::{self, same_task},
    rule::{Context, Rule},
};
use crate::{
    events::{Event, Fork, ForkCopy, PAGE_SHIFT, Task},
    findings::{Cause, Finding, Outcome},
    hazards::Hazard,
    pinner::Pinner,
};

/// Eager copies a fork made, waiting for its `Fork` event.
#[derive(Default)]
pub(super) struct ForkWithPins {
    copies: Vec<PendingCopies>,
}

/// Eager copies of one page size made by a fork that has not reached its `Fork` event yet.
#[derive(Debug)]
struct PendingCopies {
    task: Task,
    /// Bytes of each copied page (4096, or a hugetlb page's size), when known.
    page_size: Option<u64>,
    pages: u64,
    /// The pinner of a live pin inside a copied VMA, when pinwatch saw the pin.
    pinner: Option<Pinner>,
}

impl Rule for ForkWithPins {
    fn on_event(&mut self, event: &Event, cx: &mut Context<'_>) {
        match event {
            Event::ForkCopy(copy) => self.copied(copy, cx),
            Event::Fork(fork) => self.forked(fork, cx),
            _ => {}
        }
    }

    fn tables(&self) -> Vec<(&'static str, usize)> {
        vec![("fork-copies", self.copies.len())]
    }
}

impl ForkWithPins {
    fn copied(&mut self, copy: &ForkCopy, cx: &Context<'_>) {
        let pinner = cx
            .live
            .of(live::key(&copy.task))
            .find(|p| (copy.vm_start..copy.vm_end).contains(&p.start))
            .map(|p| p.pinner);
        let same_fork = |c: &&mut PendingCopies| {
            same_task(&c.task, &copy.task) && c.page_size == copy.page_size
        };
        match self.copies.iter_mut().find(same_fork) {
            Some(pending) => {
                pending.pages = pending.pages.saturating_add(copy.pages);
                pending.pinner = pending.pinner.or(pinner);
            }
            None => self.copies.push(PendingCopies {
                task: copy.task.clone(),
                page_size: copy.page_size,
                pages: copy.pages,
                pinner,
            }),
        }
    }

    /// A fork that copied pages eagerly for the child: the parent held pinned anonymous pages
    /// in a VMA it did not mark MADV_DONTFORK (those are skipped and stay silent). One finding
    /// per page size copied (base pages, hugetlb pages).
    fn forked(&mut self, fork: &Fork, cx: &mut Context<'_>) {
        let (mine, others) = std::mem::take(&mut self.copies)
            .into_iter()
            .partition::<Vec<_>, _>(|c| same_task(&c.task, &fork.task));
        self.copies = others;
        if mine.is_empty() {
            protected(fork, cx);
            return;
        }
        // A pinner seen in any copied VMA names the fork's other copies too.
        let seen = mine.iter().find_map(|c| c.pinner);
        for copies in mine {
            // Each copy is one page of `page_size`: a base page, or a whole hugetlb page.
            let folios = copies
                .page_size
                .map(|size| (copies.pages << PAGE_SHIFT) / size.max(1));
            cx.findings.record(Finding {
                pinner: copies.pinner.or(seen),
                pages: copies.pages,
                page_size: copies.page_size,
                folios,
                ..finding(fork, Outcome::EagerCopy)
            });
        }
    }
}

/// A fork with nothing copied while the process holds pins in MADV_DONTFORK ranges: the
/// child gets no mapping there, and the pins stay with the parent.
fn protected(fork: &Fork, cx: &mut Context<'_>) {
    let mut held = cx.live.of(live::key(&fork.task)).filter(|p| p.dontfork);
    let Some(first) = held.next() else { return };
    let pages = held.fold(first.pages, |sum, p| sum.saturating_add(p.pages));
    cx.findings.record(Finding {
        pinner: Some(first.pinner),
        pages,
        ..finding(fork, Outcome::Protected)
    });
}

/// A `fork-with-pins` finding: anonymous memory, one fork.
fn finding(fork: &Fork, outcome: Outcome) -> Finding {
    let cause = Cause::Fork { forks: 1 };
    Finding::new(Hazard::ForkWithPins, outcome, &fork.task, fork.at_ns, cause)
}
