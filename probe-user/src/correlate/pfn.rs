//! `early-pfn-untrack`: PAT memtype freed from the zap path while the VMA stays mapped.

use probe_common::kernel::VM_PAT;

use super::*;

impl Correlator {
    /// An untrack from the zap path frees the memtype of a VMA that stays mapped: the later
    /// munmap finds VM_PAT already cleared, and the range is used with no reservation.
    pub(super) fn on_pfn_untrack(&mut self, untrack: &PfnUntrack) {
        let Some(vma) = untrack.vma.as_ref() else {
            return;
        };
        let key = (untrack.task.tgid, untrack.task.start_ns, vma.start);
        let (outcome, via) = if untrack.from_zap && vma.flags & VM_PAT != 0 {
            self.untracked_early.push(key);
            (Outcome::UntrackedWhileMapped, untrack.via.clone())
        } else if let Some(i) = self.untracked_early.iter().position(|k| *k == key) {
            self.untracked_early.remove(i);
            (Outcome::UntrackedAgainAtMunmap, "munmap".to_owned())
        } else {
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
            outcome,
            process: process(&untrack.task),
            pinner: via,
            pages: untrack.vm_end.saturating_sub(vma.start) >> PAGE_SHIFT,
            page_size: None,
            folios: None,
            mapping,
            gup_flags: String::new(),
            first_ns: untrack.at_ns,
            last_ns: untrack.at_ns,
            advice: findings::advice(Hazard::EarlyPfnUntrack, outcome),
        });
    }
}
