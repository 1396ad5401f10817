//! pinwatch's kernel-side programs.
//!
//! Every hook has two interchangeable entry programs, `fentry_<hook>` and `kprobe_<hook>` (and,
//! where the result matters, `fexit_<hook>` / `kretprobe_<hook>`): userspace loads whichever the
//! running kernel allows (fentry first) and records the winner. Hot paths only bump per-CPU
//! counters; the in-kernel filters decide what is worth more.
#![no_std]
#![no_main]
// `atomic_xadd`: an atomic add without compare-and-swap (see `batch::count_task`).
#![allow(internal_features)]
#![feature(core_intrinsics)]

mod args;
mod batch;
mod counters;
mod cow;
mod discard;
mod events;
mod fork;
mod gmem;
mod gup;
mod layout;
mod owners;
mod pfn;
mod process;
mod stacks;
mod unpin;
mod writeback;

/// The kernel refuses GPL-only helpers (`bpf_probe_read_kernel`, `bpf_get_stack`…) to programs
/// whose license string `license_is_gpl_compatible()` (include/linux/license.h) rejects.
/// "Dual MIT/GPL" is one of the strings it accepts verbatim, and says what this crate's
/// `MIT OR GPL-2.0-only` says; a probe-user test checks that the two agree.
#[unsafe(no_mangle)]
#[unsafe(link_section = "license")]
pub static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

/// Nonzero makes every program return before it does anything (`probe_common::event::IDLE`):
/// the benchmark's floor. Written by userspace before load and read-only after, so the verifier
/// sees a constant and drops the bodies as dead code.
#[unsafe(no_mangle)]
static IDLE: aya_ebpf::Global<u32> = aya_ebpf::Global::new(0);

/// Whether the programs are idle (see [`IDLE`]).
#[inline(always)]
pub fn idle() -> bool {
    IDLE.load() != 0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // SAFETY: eBPF programs cannot unwind; the verifier rejects any path that reaches here.
    unsafe { core::hint::unreachable_unchecked() }
}
