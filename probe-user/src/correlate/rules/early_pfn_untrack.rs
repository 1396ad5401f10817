//! `early-pfn-untrack`: PAT memtype freed from the zap path while the VMA stays mapped, and
//! the munmap that untracks the same VMA again.

use probe_common::kernel::VM_PAT;

use super::super::rule::{Context, Rule};
use crate::{
    events::{Event, PAGE_SHIFT, PfnUntrack},
    findings::{Cause, Finding, Mapping, Outcome},
    hazards::Hazard,
    pinner::UntrackOrigin,
};

/// VMAs whose memtype a zap freed early, by (tgid, start time, vm_start), until their munmap.
#[derive(Default)]
pub(super) struct EarlyPfnUntrack {
    untracked_early: Vec<(u32, u64, u64)>,
}

impl Rule for EarlyPfnUntrack {
    fn on_event(&mut self, event: &Event, cx: &mut Context<'_>) {
        if let Event::PfnUntrack(untrack) = event
            && let Some(finding) = self.untracked(untrack)
        {
            cx.findings.record(finding);
        }
    }

    fn tables(&self) -> Vec<(&'static str, usize)> {
        vec![("untracked-pfn-vmas", self.untracked_early.len())]
    }
}

impl EarlyPfnUntrack {
    /// An untrack from the zap path frees the memtype of a VMA that stays mapped: the later
    /// munmap finds VM_PAT already cleared, and the range is used with no reservation.
    fn untracked(&mut self, untrack: &PfnUntrack) -> Option<Finding> {
        let vma = untrack.vma.as_ref()?;
        let key = (untrack.task.tgid, untrack.task.start_ns, vma.start);
        let (outcome, origin) = if untrack.from_zap && vma.flags & VM_PAT != 0 {
            self.untracked_early.push(key);
            (Outcome::UntrackedWhileMapped, untrack.origin)
        } else if let Some(i) = self.untracked_early.iter().position(|k| *k == key) {
            self.untracked_early.remove(i);
            (Outcome::UntrackedAgainAtMunmap, UntrackOrigin::Munmap)
        } else {
            return None;
        };
        let cause = Cause::Untrack { origin };
        Some(Finding {
            pages: untrack.vm_end.saturating_sub(vma.start) >> PAGE_SHIFT,
            mapping: vma.file.map(|file| Mapping::of(file, untrack.path.clone())),
            ..Finding::new(
                Hazard::EarlyPfnUntrack,
                outcome,
                &untrack.task,
                untrack.at_ns,
                cause,
            )
        })
    }
}
