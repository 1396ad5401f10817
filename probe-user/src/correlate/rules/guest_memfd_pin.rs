//! `guest-memfd-pin`: a granted long-term pin of guest_memfd memory (KVM's guest memory file,
//! mmap-able by the host from 6.18). While the pin is held the page cannot turn private, and a
//! punched hole orphans it under the device.
//!
//! guest_memfd is never pinned through GUP-fast (its mapping is not shmem), so the slow path's
//! VMA, and with it the superblock magic, is always there.

use super::super::rule::{Context, Rule};
use crate::{
    events::{Event, Pin},
    findings::{Cause, Finding, GUEST_MEMFD_MAGIC, Mapping, Outcome},
    hazards::Hazard,
};

pub(super) struct GuestMemfdPin;

impl Rule for GuestMemfdPin {
    fn on_event(&mut self, event: &Event, cx: &mut Context<'_>) {
        if let Event::Pin(pin) = event
            && pin.ret > 0
            && let Some(finding) = finding(pin, cx)
        {
            cx.findings.record(finding);
        }
    }
}

fn finding(pin: &Pin, cx: &Context<'_>) -> Option<Finding> {
    let file = pin.vma.as_ref()?.file?;
    if file.fs_magic != GUEST_MEMFD_MAGIC {
        return None;
    }
    let cause = Cause::Pin {
        gup_flags: cx.flags.decode(pin.gup_flags),
        caller: pin.caller.clone(),
    };
    Some(Finding {
        pinner: Some(pin.pinner),
        pages: pin.ret as u64,
        mapping: Some(Mapping::of(file, pin.path.clone())),
        ..Finding::new(
            Hazard::GuestMemfdPin,
            Outcome::Granted,
            &pin.task,
            pin.at_ns,
            cause,
        )
    })
}
