//! Copy-on-write faults on pinned pages (`do_wp_page` in `mm/memory.c`): whether the fault
//! copied the page away from the device or reused it, and unshares a long-term pin asks for.
//!
//! `do_wp_page` is among the kernel's hottest functions (every write fault on a shared or
//! read-only page). A process that never pinned can meet none of this, so each program first
//! tests `MMF_HAS_PINNED` and returns: such calls are not even counted in
//! `pinwatch_hook_calls_total`. The fork side is `fork`.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::map, maps::HashMap};
use probe_common::{
    event::{CowEvent, kind},
    hook,
    kernel::FAULT_FLAG_UNSHARE,
    map as maps,
};

use crate::{
    args::{Args, Ret},
    counters, entry_programs, events, layout, return_programs,
};

/// Write-protect faults in flight: the `vm_fault` and whether the fault copied the page
/// (`wp_page_copy` on 6.1; inlined from 6.12 on, where its new anon rmap is the witness).
#[map]
static WP_FAULTS: HashMap<u64, [u64; 2]> = HashMap::with_max_entries(4096, 0);

/// `do_wp_page(vmf)`: hot (every write fault on a shared or read-only page of every process).
/// Only a process that ever pinned can fault on a page it pinned, so everyone else pays a flag
/// test and nothing more (`layout::current_may_hold_pins`). Long-term pins fault in the
/// pinner's own mm (or in a kthread that adopted it with `kthread_use_mm`), so the current
/// task's mm is the faulting one.
#[inline(always)]
fn on_wp_entry<C: Args>(ctx: &C) {
    if !layout::current_may_hold_pins() {
        return;
    }
    counters::entry(hook::DO_WP_PAGE);
    if !events::armed() {
        return;
    }
    // Hot: counted, never logged.
    if WP_FAULTS
        .insert(bpf_get_current_pid_tgid(), [ctx.arg_u64(0), 0], 0)
        .is_err()
    {
        counters::insert_failed(maps::WP_FAULTS);
    }
}

/// The fault in flight copied its page. Only tasks of processes that pinned have a fault in
/// `WP_FAULTS`.
#[inline(always)]
pub fn mark_copied() {
    if let Some(state) = WP_FAULTS.get_ptr_mut(bpf_get_current_pid_tgid()) {
        // SAFETY: this task's own in-flight fault.
        unsafe { (*state)[1] = 1 };
    }
}

#[inline(always)]
fn on_wp_page_copy<C: Args>(_ctx: &C) {
    if layout::current_may_hold_pins() {
        counters::entry(hook::WP_PAGE_COPY);
        mark_copied();
    }
}

#[inline(always)]
fn on_wp_return<C: Ret>(_ctx: &C) {
    // The flag is never cleared: clear now means clear at entry, and no fault was recorded.
    if !layout::current_may_hold_pins() {
        return;
    }
    counters::ret(hook::DO_WP_PAGE);
    let key = bpf_get_current_pid_tgid();
    let Some(state) = WP_FAULTS.get_ptr(key) else {
        return;
    };
    // SAFETY: this task's own entry, removed right after.
    let [vmf, copied] = unsafe { *state };
    let _ = WP_FAULTS.remove(key);
    // vmf->page is the page the fault found; a large folio's pins are counted on its head.
    let Some((page, fault_flags, address)) = layout::vm_fault(vmf) else {
        return;
    };
    let folio = layout::page_folio(page).unwrap_or(page);
    let Some(pins) = layout::folio_pins(folio) else {
        return;
    };
    // An unshare fault issued by a long-term pin in flight: the pin is copying a page away from
    // the processes it was shared with (fork children) before pinning the copy.
    let unshare_for_pin = fault_flags & FAULT_FLAG_UNSHARE != 0
        && crate::batch::current().is_some_and(|task| crate::batch::in_longterm_walk(task));
    if !pins.maybe_dma_pinned() && !unshare_for_pin {
        return;
    }
    events::emit(&CowEvent {
        header: events::header(kind::PINNED_COW),
        address,
        fault_flags,
        copied: copied as u32,
        refcount: pins.refcount,
        pincount: pins.pincount,
    });
}

entry_programs!(fentry_do_wp_page, kprobe_do_wp_page, on_wp_entry);
return_programs!(fexit_do_wp_page, kretprobe_do_wp_page, on_wp_return);
entry_programs!(fentry_wp_page_copy, kprobe_wp_page_copy, on_wp_page_copy);
