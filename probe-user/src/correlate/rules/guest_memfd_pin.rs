//! `guest-memfd-pin`: a granted long-term pin of guest_memfd memory (KVM's guest memory file,
//! mmap-able by the host from 6.18). While the pin is held the page cannot turn private, and a
//! punched hole orphans it under the device.
//!
//! guest_memfd is never pinned through GUP-fast (its mapping is not shmem), so the slow path's
//! VMA, and with it the superblock magic, is always there.
//!
//! Where a kernel has the in-place conversion series, a conversion refused with -EAGAIN
//! (`KVM_SET_MEMORY_ATTRIBUTES2` on the guest_memfd) is a finding too: attributed to the pinner
//! when the process holds live pins of one pinner only.

use super::super::{
    live::key,
    rule::{Context, Rule},
};
use crate::{
    events::{Event, GmemIoctl, Pin},
    findings::{Cause, Finding, GUEST_MEMFD_MAGIC, Mapping, Outcome},
    hazards::Hazard,
};

pub(super) struct GuestMemfdPin;

impl Rule for GuestMemfdPin {
    fn on_event(&mut self, event: &Event, cx: &mut Context<'_>) {
        let finding = match event {
            Event::Pin(pin) if pin.ret > 0 => finding(pin, cx),
            Event::GmemIoctlAgain(ioctl) if is_conversion(ioctl) => Some(refused(ioctl, cx)),
            _ => None,
        };
        if let Some(finding) = finding {
            cx.findings.record(finding);
        }
    }
}

/// `ioctl` number on x86-64.
const SYS_IOCTL: u64 = 16;
/// `KVMIO`, the type byte of KVM's ioctls.
const KVMIO: u64 = 0xae;
/// `KVM_SET_MEMORY_ATTRIBUTES2`'s number (`_IOWR(KVMIO, 0xd2, struct kvm_memory_attributes2)`
/// in the series); its size field is not matched, the struct may still grow.
const SET_MEMORY_ATTRIBUTES2_NR: u64 = 0xd2;

fn is_conversion(ioctl: &GmemIoctl) -> bool {
    let request = ioctl.syscall.args[1];
    ioctl.syscall.nr == SYS_IOCTL
        && (request >> 8) & 0xff == KVMIO
        && request & 0xff == SET_MEMORY_ATTRIBUTES2_NR
}

fn refused(ioctl: &GmemIoctl, cx: &Context<'_>) -> Finding {
    let mut pinners = cx.live.of(key(&ioctl.task)).map(|p| p.pinner);
    let first = pinners.next();
    let pinner = first.filter(|p| pinners.all(|other| other == *p));
    Finding {
        pinner,
        ..Finding::new(
            Hazard::GuestMemfdPin,
            Outcome::ConversionRefused,
            &ioctl.task,
            ioctl.at_ns,
            Cause::Conversion { errno: ioctl.ret },
        )
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
