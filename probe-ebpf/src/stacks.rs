//! Kernel stacks of pin and untrack callers, symbolized in userspace to name the pinner or the
//! zap's origin.
//!
//! A stack map holds one stack per hash bucket. Without `BPF_F_REUSE_STACKID` it refuses a
//! different stack whose hash lands in a taken bucket (`-EEXIST`), and with a few hundred
//! distinct stacks per session that happens by birthday odds alone: the pinner then goes
//! unnamed for the whole session. Reusing buckets instead would rename stacks under events still
//! in the ring buffer. So a refused stack is taken again one frame shorter: the hash changes and
//! the retry draws an independent bucket, while the dropped innermost frames are the traced
//! function's own (GUP, untrack, the program), which naming skips anyway. A stack always ends
//! in the same bucket on the same attempt, so its id is stable.

use core::cell::UnsafeCell;

use aya_ebpf::{
    EbpfContext,
    bindings::{bpf_map_def, bpf_map_type::BPF_MAP_TYPE_STACK_TRACE},
    helpers::generated::bpf_get_stackid,
};

/// Frames kept per stack: the pinner sits within a dozen frames of the pin call; a shallow
/// value keeps 4096 buckets near 1 MiB instead of 4 MiB at the default 127 frames.
const DEPTH: u32 = 32;
/// Attempts (innermost frames skipped: 0, 1, 2) before the stack is given up.
const ATTEMPTS: u64 = 3;

/// A `BPF_MAP_TYPE_STACK_TRACE` map with shallow values; aya-ebpf's `StackTrace` fixes the
/// depth at 127 frames. Userspace reads it with aya's `StackTraceMap`, which takes its depth
/// from the value size.
#[repr(transparent)]
pub struct StackMap(UnsafeCell<bpf_map_def>);

// SAFETY: the definition is only read by the loader; programs pass its address to helpers.
unsafe impl Sync for StackMap {}

#[unsafe(link_section = "maps")]
#[unsafe(export_name = "STACKS")]
pub static STACKS: StackMap = StackMap(UnsafeCell::new(bpf_map_def {
    type_: BPF_MAP_TYPE_STACK_TRACE,
    key_size: 4,
    value_size: DEPTH * 8,
    max_entries: 4096,
    map_flags: 0,
    id: 0,
    pinning: 0,
}));

/// Id of the current kernel stack in `STACKS`, negative when no attempt found it a bucket (or
/// the stack could not be walked).
#[inline(always)]
pub fn take<C: EbpfContext + ?Sized>(ctx: &C) -> i64 {
    let mut id = -1;
    for skip in 0..ATTEMPTS {
        // SAFETY: a valid context and map; the low 8 bits of the flags are the frames skipped.
        id = unsafe { bpf_get_stackid(ctx.as_ptr(), STACKS.0.get().cast(), skip) };
        if id >= 0 {
            break;
        }
    }
    id
}
