//! `fork-with-pins`: pinned anonymous pages the kernel copied eagerly for a child at fork.

use super::*;

/// Eager copies of one page size made by a fork that has not reached its `Fork` event yet.
#[derive(Debug)]
pub(super) struct PendingCopies {
    task: Task,
    /// Bytes of each copied page (4096, or a hugetlb page's size), when known.
    page_size: Option<u64>,
    pages: u64,
    /// The pinner of a live pin inside a copied VMA, when pinwatch saw the pin.
    pinner: Option<String>,
}

impl Correlator {
    /// A fork with nothing copied while the process holds pins in MADV_DONTFORK ranges: the
    /// child gets no mapping there, and the pins stay with the parent.
    fn protected_fork(&mut self, fork: &Fork) {
        let mut held = self.live.of(live::key(&fork.task)).filter(|p| p.dontfork);
        let Some(first) = held.next() else { return };
        let pinner = first.pinner.to_owned();
        let pages = held.fold(first.pages, |sum, p| sum.saturating_add(p.pages));
        self.record(fork_finding(
            fork,
            Outcome::Protected,
            pinner,
            pages,
            None,
            None,
        ));
    }

    pub(super) fn on_fork_copy(&mut self, copy: &ForkCopy) {
        let pinner = self
            .live
            .of(live::key(&copy.task))
            .find(|p| (copy.vm_start..copy.vm_end).contains(&p.start))
            .map(|p| p.pinner.to_owned());
        match self
            .copies
            .iter_mut()
            .find(|c| same_task(&c.task, &copy.task) && c.page_size == copy.page_size)
        {
            Some(pending) => {
                pending.pages = pending.pages.saturating_add(copy.pages);
                if pending.pinner.is_none() {
                    pending.pinner = pinner;
                }
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
    pub(super) fn on_fork(&mut self, fork: &Fork) {
        let (mine, others) = std::mem::take(&mut self.copies)
            .into_iter()
            .partition::<Vec<_>, _>(|c| same_task(&c.task, &fork.task));
        self.copies = others;
        if mine.is_empty() {
            self.protected_fork(fork);
            return;
        }
        // A pinner seen in any copied VMA names the fork's other copies too.
        let seen = mine.iter().find_map(|c| c.pinner.clone());
        for copies in mine {
            let pinner = copies
                .pinner
                .or_else(|| seen.clone())
                .unwrap_or_else(|| "unknown (pinned before pinwatch was ready)".to_owned());
            // Each copy is one page of `page_size`: a base page, or a whole hugetlb page.
            let folios = copies
                .page_size
                .map(|size| (copies.pages << PAGE_SHIFT) / size.max(1));
            self.record(fork_finding(
                fork,
                Outcome::EagerCopy,
                pinner,
                copies.pages,
                copies.page_size,
                folios,
            ));
        }
    }
}

/// A `fork-with-pins` finding: anonymous memory, no GUP flags of its own.
fn fork_finding(
    fork: &Fork,
    outcome: Outcome,
    pinner: String,
    pages: u64,
    page_size: Option<u64>,
    folios: Option<u64>,
) -> Finding {
    Finding {
        hazard: Hazard::ForkWithPins,
        outcome,
        process: process(&fork.task),
        pinner,
        pages,
        page_size,
        folios,
        mapping: Mapping {
            fs: "anon",
            dev: String::new(),
            ino: 0,
            path: None,
        },
        gup_flags: String::new(),
        first_ns: fork.at_ns,
        last_ns: fork.at_ns,
        advice: findings::advice(Hazard::ForkWithPins, outcome),
    }
}
