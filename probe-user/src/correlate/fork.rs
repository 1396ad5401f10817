//! `fork-with-pins`: pinned anonymous pages the kernel copied eagerly for a child at fork.

use super::*;

impl Correlator {
    /// A fork with nothing copied while the process holds pins in MADV_DONTFORK ranges: the
    /// child gets no mapping there, and the pins stay with the parent.
    fn protected_fork(&mut self, fork: &Fork) {
        let mut held = self.live.of(live::key(&fork.task)).filter(|p| p.dontfork);
        let Some(first) = held.next() else { return };
        let pinner = first.pinner.to_owned();
        let pages = held.fold(first.pages, |sum, p| sum.saturating_add(p.pages));
        self.record(fork_finding(fork, Outcome::Protected, pinner, pages));
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
            .find(|(t, _, _)| same_task(t, &copy.task))
        {
            Some((_, pages, known)) => {
                *pages = pages.saturating_add(copy.pages);
                if known.is_none() {
                    *known = pinner;
                }
            }
            None => self.copies.push((copy.task.clone(), copy.pages, pinner)),
        }
    }

    /// A fork that copied pages eagerly for the child: the parent held pinned anonymous pages
    /// in a VMA it did not mark MADV_DONTFORK (those are skipped and stay silent).
    pub(super) fn on_fork(&mut self, fork: &Fork) {
        let Some(i) = self
            .copies
            .iter()
            .position(|(t, _, _)| same_task(t, &fork.task))
        else {
            self.protected_fork(fork);
            return;
        };
        let (_, pages, pinner) = self.copies.remove(i);
        let pinner =
            pinner.unwrap_or_else(|| "unknown (pinned before pinwatch was ready)".to_owned());
        self.record(fork_finding(fork, Outcome::EagerCopy, pinner, pages));
    }
}

/// A `fork-with-pins` finding: anonymous memory, no GUP flags of its own.
fn fork_finding(fork: &Fork, outcome: Outcome, pinner: String, pages: u64) -> Finding {
    Finding {
        hazard: Hazard::ForkWithPins,
        outcome,
        process: process(&fork.task),
        pinner,
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
        advice: findings::advice(Hazard::ForkWithPins, outcome),
    }
}
