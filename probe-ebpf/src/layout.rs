//! Kernel struct layout, written by userspace from BTF before load (see probe_common::layout).
//!
//! The statics start at 0 and live in .rodata, so the verifier treats them as constants.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use probe_common::layout::GUP_PIN_COUNTING_BIAS;

#[unsafe(no_mangle)]
static LAYOUT_VALID: u32 = 0;
#[unsafe(no_mangle)]
static FOLIO_FLAGS_OFF: u32 = 0;
#[unsafe(no_mangle)]
static FOLIO_REFCOUNT_OFF: u32 = 0;
#[unsafe(no_mangle)]
static FOLIO_PINCOUNT_OFF: u32 = 0;
#[unsafe(no_mangle)]
static PG_HEAD_BIT: u32 = 0;

#[inline(always)]
fn get(global: &u32) -> u32 {
    // SAFETY: reading our own static; volatile so the compiler keeps the load that userspace's
    // rewritten value reaches instead of folding the initial 0.
    unsafe { core::ptr::read_volatile(global) }
}

#[inline(always)]
fn read<T>(base: u64, offset: u32) -> Option<T> {
    // SAFETY: bpf_probe_read_kernel copes with any address; a bad one returns an error.
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T).ok() }
}

/// The kernel's own `folio_maybe_dma_pinned()`: a large folio is pinned when `_pincount > 0`,
/// a small one when `_refcount >= GUP_PIN_COUNTING_BIAS` (which can be a false positive, hence
/// "maybe"). `None` when the layout is unknown or the folio cannot be read.
#[inline(always)]
pub fn folio_maybe_dma_pinned(folio: u64) -> Option<bool> {
    if get(&LAYOUT_VALID) == 0 || folio == 0 {
        return None;
    }
    let flags: u64 = read(folio, get(&FOLIO_FLAGS_OFF))?;
    let large = flags & (1u64 << (get(&PG_HEAD_BIT) & 63)) != 0;
    if large {
        let pincount: i32 = read(folio, get(&FOLIO_PINCOUNT_OFF))?;
        Some(pincount > 0)
    } else {
        let refcount: u32 = read(folio, get(&FOLIO_REFCOUNT_OFF))?;
        Some(refcount >= GUP_PIN_COUNTING_BIAS)
    }
}
