//! `longterm-file-pin`: long-term writable pins of dirty-tracked shared file mappings, from
//! entry to outcome: refused, released by the caller in the same system call, or kept
//! (granted). The pins it keeps are the file-pin ledger other rules attribute to.

use probe_common::kernel::VM_SHARED;

use super::super::{
    file_pins::FilePin,
    rule::{Context, Rule},
};
use crate::{
    events::{Event, FileId, PAGE_SHIFT, Pin},
    findings::{self, Cause, Finding, Mapping, Outcome},
    hazards::Hazard,
};

pub(super) struct LongtermFilePin;

impl Rule for LongtermFilePin {
    fn on_event(&mut self, event: &Event, cx: &mut Context<'_>) {
        match event {
            Event::Pin(pin) => on_pin(pin, cx),
            Event::Unpin(unpin) => {
                if let Some(released) = cx.file_pins.unpin(unpin) {
                    let finding = finding(
                        &released.pin,
                        released.file,
                        Outcome::ReleasedByCaller,
                        released.pages,
                        cx,
                    );
                    cx.findings.record(finding);
                }
            }
            _ => {}
        }
    }

    /// Pending pins older than the settle window were kept by their caller: granted.
    fn settle(&mut self, now: u64, cx: &mut Context<'_>) {
        let (kept, evicted) = cx.file_pins.settle(now, cx.cfg.settle_ns);
        cx.stats.evicted_file_pins += evicted;
        for pin in kept {
            let finding = finding(&pin.pin, pin.file, Outcome::Granted, pin.pages, cx);
            cx.findings.record(finding);
        }
    }
}

fn on_pin(pin: &Pin, cx: &mut Context<'_>) {
    let Some((file, first_index)) = dirty_tracked_file(pin, cx) else {
        cx.stats.harmless_pins = cx.stats.harmless_pins.saturating_add(pin.calls);
        return;
    };
    if pin.ret < 0 {
        let finding = finding(pin, file, Outcome::Refused, pin.nr_pages, cx);
        cx.findings.record(finding);
    } else if pin.ret > 0 {
        let granted = FilePin {
            pin: pin.clone(),
            file,
            first_index,
            pages: pin.ret as u64,
            unpinned: 0,
        };
        if cx.file_pins.admit(granted) {
            cx.stats.evicted_file_pins += 1;
        }
    }
}

/// The file of a FOLL_WRITE long-term pin of a MAP_SHARED mapping that needs dirty tracking,
/// with the page-cache index of `start`. The kernel's own verdict wins where it gave one.
fn dirty_tracked_file(pin: &Pin, cx: &Context<'_>) -> Option<(FileId, u64)> {
    let write = cx
        .flags
        .value("FOLL_WRITE")
        .is_some_and(|w| pin.gup_flags & w != 0);
    let vma = pin.vma.as_ref()?;
    let file = vma.file?;
    let needs = vma
        .needs_dirty_tracking
        .unwrap_or(!findings::exempt_from_dirty_tracking(file.fs_magic));
    let first_index = vma
        .pgoff
        .saturating_add(pin.start.saturating_sub(vma.start) >> PAGE_SHIFT);
    (write && vma.flags & VM_SHARED != 0 && needs).then_some((file, first_index))
}

fn finding(pin: &Pin, file: FileId, outcome: Outcome, pages: u64, cx: &Context<'_>) -> Finding {
    let cause = Cause::Pin {
        gup_flags: cx.flags.decode(pin.gup_flags),
        caller: pin.caller.clone(),
    };
    Finding {
        pinner: Some(pin.pinner),
        pages,
        mapping: Some(Mapping::of(file, pin.path.clone())),
        ..Finding::new(
            Hazard::LongtermFilePin,
            outcome,
            &pin.task,
            pin.at_ns,
            cause,
        )
    }
}
