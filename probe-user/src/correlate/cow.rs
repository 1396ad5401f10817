//! `pinned-cow`: write faults that copied a still-pinned page.

use super::*;

impl Correlator {
    /// A fault that copied a pinned page: DMA keeps going to the old page while the process
    /// uses its new copy. Reuse in place is the kernel doing the right thing: counted only.
    pub(super) fn on_pinned_cow(&mut self, cow: &PinnedCow) {
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
