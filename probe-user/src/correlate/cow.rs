//! `pinned-cow`: write faults that copied a still-pinned page.

use probe_common::kernel::{FAULT_FLAG_UNSHARE, FAULT_FLAG_WRITE};

use super::*;

impl Correlator {
    /// A fault that copied a pinned page: DMA keeps going to the old page while the process
    /// uses its new copy. Reuse in place is the kernel doing the right thing: counted only.
    pub(super) fn on_pinned_cow(&mut self, cow: &PinnedCow) {
        if cow.fault_flags & FAULT_FLAG_UNSHARE != 0 {
            // Issued by a pin in flight: attributed when that pin's event arrives.
            if cow.copied {
                self.unshares.push(cow.clone());
            }
            return;
        }
        if !cow.copied {
            self.stats.pinned_reuses += 1;
            return;
        }
        let holder = self.live.of(live::key(&cow.task)).find(|p| {
            (p.start
                ..p.start
                    .saturating_add(p.pages.saturating_mul(1 << PAGE_SHIFT)))
                .contains(&cow.address)
        });
        let pinner = holder.map_or_else(
            || "unknown (pinned before pinwatch was ready)".to_owned(),
            |p| p.pinner.to_owned(),
        );
        self.record(Finding {
            hazard: Hazard::PinnedCow,
            outcome: Outcome::Copied,
            process: process(&cow.task),
            pinner,
            pages: 1,
            page_size: None,
            folios: None,
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

    /// The pin whose GUP call issued these unshare faults has arrived: one `unshared` finding.
    pub(super) fn attribute_unshares(&mut self, pin: &Pin) {
        let (mine, others): (Vec<PinnedCow>, Vec<PinnedCow>) = self
            .unshares
            .drain(..)
            .partition(|u| same_task(&u.task, &pin.task) && u.syscall == pin.syscall);
        self.unshares = others;
        if let Some(first) = mine.first() {
            let finding = unshare_finding(first, mine.len() as u64, pin.pinner.to_string());
            self.record(finding);
        }
    }

    /// Unshares whose pin never arrived (lost, or failed): reported without a pinner.
    pub(super) fn flush_unshares(&mut self) {
        for u in std::mem::take(&mut self.unshares) {
            self.record(unshare_finding(&u, 1, "unknown".to_owned()));
        }
    }
}

fn unshare_finding(u: &PinnedCow, pages: u64, pinner: String) -> Finding {
    Finding {
        hazard: Hazard::PinnedCow,
        outcome: Outcome::Unshared,
        process: process(&u.task),
        pinner,
        pages,
        page_size: None,
        folios: None,
        mapping: Mapping {
            fs: "cow",
            dev: String::new(),
            ino: 0,
            path: None,
        },
        gup_flags: fault_kind(u.fault_flags).to_owned(),
        first_ns: u.at_ns,
        last_ns: u.at_ns,
        advice: findings::advice(Hazard::PinnedCow, Outcome::Unshared),
    }
}

/// The kind of fault a `vm_fault.flags` value records.
fn fault_kind(flags: u32) -> &'static str {
    if flags & FAULT_FLAG_UNSHARE != 0 {
        "FAULT_FLAG_UNSHARE"
    } else if flags & FAULT_FLAG_WRITE != 0 {
        "FAULT_FLAG_WRITE"
    } else {
        "fault"
    }
}
