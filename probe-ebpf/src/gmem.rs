//! guest_memfd's own ioctl (`kvm_gmem_ioctl`, kvm.ko), which only the in-place conversion series
//! ("guest_memfd: In-place conversion support") adds: it refuses a shared-to-private conversion
//! with -EAGAIN while a page holds an extra reference, a pin included. No Debian kernel of the
//! matrix has it; the hook attaches wherever a kernel ships it. Module functions take kprobes
//! only (fentry needs vmlinux BTF), so the return program reads no arguments: the user's
//! request travels in the record's header (`syscall.args[1]`), and userspace matches it.

use probe_common::{
    event::{GmemIoctlEvent, kind},
    hook,
};

use crate::{args::Ret, counters, events, return_programs};

/// `-EAGAIN`.
const EAGAIN: i64 = -11;

#[inline(always)]
fn on_return<C: Ret>(ctx: &C) {
    counters::entry(hook::GMEM_IOCTL);
    counters::ret(hook::GMEM_IOCTL);
    let ret = ctx.ret_i64();
    if ret == EAGAIN {
        events::emit(&GmemIoctlEvent {
            header: events::header(kind::GMEM_IOCTL_AGAIN),
            ret,
        });
    }
}

return_programs!(fexit_kvm_gmem_ioctl, kretprobe_kvm_gmem_ioctl, on_return);

/// The kprobe side of a return-alone hook: the kretprobe needs nothing from the entry.
#[aya_ebpf::macros::kprobe]
pub fn kprobe_kvm_gmem_ioctl(_ctx: aya_ebpf::programs::ProbeContext) -> u32 {
    0
}
