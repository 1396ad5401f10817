//! `pinned-cow`: faults that copied a still-pinned page, by a write of the process or by a
//! long-term pin unsharing pages it found shared.

use super::super::{
    live::{self, same_task},
    rule::{Context, Rule},
};
use crate::{
    events::{Event, PAGE_SHIFT, Pin, PinnedCow as Fault},
    findings::{Cause, FaultKind, Finding, Outcome},
    hazards::Hazard,
    pinner::Pinner,
};

/// Copying unshare faults issued by pins whose event has not arrived yet.
#[derive(Default)]
pub(super) struct PinnedCow {
    unshares: Vec<Fault>,
}

impl Rule for PinnedCow {
    fn on_event(&mut self, event: &Event, cx: &mut Context<'_>) {
        match event {
            Event::PinnedCow(fault) => self.faulted(fault, cx),
            Event::Pin(pin) => self.attribute_unshares(pin, cx),
            _ => {}
        }
    }

    /// Unshares whose pin never arrived (lost, or failed): reported without a pinner.
    fn finish(&mut self, cx: &mut Context<'_>) {
        for fault in std::mem::take(&mut self.unshares) {
            cx.findings
                .record(finding(&fault, Outcome::Unshared, None, 1));
        }
    }

    fn tables(&self) -> Vec<(&'static str, usize)> {
        vec![("unattributed-unshares", self.unshares.len())]
    }
}

impl PinnedCow {
    /// A fault that copied a pinned page: DMA keeps going to the old page while the process
    /// uses its new copy. Reuse in place is the kernel doing the right thing: counted only.
    fn faulted(&mut self, fault: &Fault, cx: &mut Context<'_>) {
        if FaultKind::of(fault.fault_flags) == FaultKind::Unshare {
            // Issued by a pin in flight: attributed when that pin's event arrives.
            if fault.copied {
                self.unshares.push(fault.clone());
            }
            return;
        }
        if !fault.copied {
            cx.stats.pinned_reuses += 1;
            return;
        }
        let holder = cx.live.of(live::key(&fault.task)).find(|p| {
            let bytes = p.pages.saturating_mul(1 << PAGE_SHIFT);
            (p.start..p.start.saturating_add(bytes)).contains(&fault.address)
        });
        let finding = finding(fault, Outcome::Copied, holder.map(|p| p.pinner), 1);
        cx.findings.record(finding);
    }

    /// The pin whose GUP call issued these unshare faults has arrived: one `unshared` finding.
    fn attribute_unshares(&mut self, pin: &Pin, cx: &mut Context<'_>) {
        let (mine, others): (Vec<Fault>, Vec<Fault>) = self
            .unshares
            .drain(..)
            .partition(|u| same_task(&u.task, &pin.task) && u.syscall == pin.syscall);
        self.unshares = others;
        if let Some(first) = mine.first() {
            let pages = mine.len() as u64;
            let finding = finding(first, Outcome::Unshared, Some(pin.pinner), pages);
            cx.findings.record(finding);
        }
    }
}

fn finding(fault: &Fault, outcome: Outcome, pinner: Option<Pinner>, pages: u64) -> Finding {
    let cause = Cause::Fault {
        kind: FaultKind::of(fault.fault_flags),
    };
    Finding {
        pinner,
        pages,
        ..Finding::new(Hazard::PinnedCow, outcome, &fault.task, fault.at_ns, cause)
    }
}
