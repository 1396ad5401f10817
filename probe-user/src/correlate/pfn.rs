//! `early-pfn-untrack`: PAT memtype freed from the zap path while the VMA stays mapped.

use super::*;

impl Correlator {
    /// An untrack from the zap path frees the memtype of a VMA that stays mapped: the later
    /// munmap finds VM_PAT already cleared, and the range is used with no reservation.
    pub(super) fn on_pfn_untrack(&mut self, untrack: &PfnUntrack) {
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
}
