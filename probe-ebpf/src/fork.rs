//! Fork with pinned pages (`copy_page_range` in `mm/memory.c`, `mm/rmap.c`).
//!
//! At fork, `copy_page_range()` copies each VMA's page tables; a pinned anonymous page cannot be
//! shared with the child, so the kernel copies it eagerly, mapping a new anon page for the child
//! (`folio_add_new_anon_rmap` / 6.1 `page_add_new_anon_rmap`, the only out-of-line call on that
//! path). Pinned hugetlb pages are copied the same way through `copy_hugetlb_page_range` and
//! `hugetlb_add_new_anon_rmap` (6.1 `hugepage_add_new_anon_rmap`); a pinned THP is split and
//! copied page by page. `FORKING` marks the task while it copies one VMA and counts those new
//! pages.
//!
//! These hooks are among the kernel's hottest (every new anonymous page, every VMA of every
//! fork). A process that never pinned can meet none of the hazards here, so each program first
//! tests `MMF_HAS_PINNED` and returns: such calls are not even counted in
//! `pinwatch_hook_calls_total`.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::map, maps::HashMap};
use aya_log_ebpf::warn;
use probe_common::{
    event::{ForkCopyEvent, ForkEvent, kind},
    hook, map as maps,
};

use crate::{
    args::{Args, Ret},
    counters, entry_programs, events, layout, return_programs,
};

/// The VMA being copied by each forking task, with the eager copies seen so far.
#[map]
static FORKING: HashMap<u64, ForkCopyEvent> = HashMap::with_max_entries(4096, 0);

/// `copy_page_range(dst_vma, src_vma)`. Only processes that ever pinned can have pinned pages
/// to copy, so everyone else pays one flag test and is not even counted.
#[inline(always)]
fn on_copy_entry<C: Args>(ctx: &C) {
    if !layout::current_may_hold_pins() {
        return;
    }
    counters::entry(hook::COPY_PAGE_RANGE);
    if !layout::current_has_pinned() || !events::armed() {
        return;
    }
    // The copy is judged against the ledger: this task's gathered pins go first.
    crate::batch::flush_current();
    let src = ctx.arg_u64(1);
    let info = layout::vma_info(src);
    let copy = ForkCopyEvent {
        header: events::header(kind::FORK_COPY),
        vm_start: info.vm_start,
        vm_end: layout::vma_end(src),
        vm_flags: info.vm_flags,
        pages: 0,
        copy_pages: 0,
    };
    if FORKING.insert(bpf_get_current_pid_tgid(), copy, 0).is_err() {
        counters::insert_failed(maps::FORKING);
        warn!(
            ctx,
            "FORKING full: eager copies in a fork by tgid {} are not counted",
            copy.header.pid_tgid >> 32
        );
    }
}

#[inline(always)]
fn on_copy_return<C: Ret>(_ctx: &C) {
    if !layout::current_may_hold_pins() {
        return;
    }
    counters::ret(hook::COPY_PAGE_RANGE);
    let key = bpf_get_current_pid_tgid();
    let Some(copy) = FORKING.get_ptr_mut(key) else {
        return;
    };
    // SAFETY: this task's own entry, removed right after.
    let copy = unsafe { *copy };
    let _ = FORKING.remove(key);
    if copy.pages > 0 {
        events::emit(&copy);
    }
}

entry_programs!(
    fentry_copy_page_range,
    kprobe_copy_page_range,
    on_copy_entry
);
return_programs!(
    fexit_copy_page_range,
    kretprobe_copy_page_range,
    on_copy_return
);

#[inline(always)]
fn on_new_anon_rmap<C: Args>(_ctx: &C) {
    // Every new anonymous page of the system comes here; only a process that pinned is forking
    // with pinned pages (`FORKING`) or faulting on one (`WP_FAULTS`).
    if !layout::current_may_hold_pins() {
        return;
    }
    counters::entry(hook::NEW_ANON_RMAP);
    count_copy(1);
    crate::cow::mark_copied();
}

entry_programs!(fentry_new_anon_rmap, kprobe_new_anon_rmap, on_new_anon_rmap);

/// One more folio of `copy_pages` base pages copied for the child, when this task is forking.
#[inline(always)]
fn count_copy(copy_pages: u64) {
    if let Some(copy) = FORKING.get_ptr_mut(bpf_get_current_pid_tgid()) {
        // SAFETY: this task's own entry.
        unsafe {
            (*copy).pages += copy_pages.max(1);
            (*copy).copy_pages = copy_pages;
        }
    }
}

/// `hugetlb_add_new_anon_rmap(folio, vma, address)` (6.1: the head page): rare, hugetlb faults
/// and fork copies only. The huge page's size comes from its folio.
#[inline(always)]
fn on_hugetlb_new_anon_rmap<C: Args>(ctx: &C) {
    if !layout::current_may_hold_pins() {
        return;
    }
    counters::entry(hook::HUGETLB_NEW_ANON_RMAP);
    count_copy(layout::folio_pages(ctx.arg_scalar(0)).unwrap_or(0));
}

entry_programs!(
    fentry_hugetlb_new_anon_rmap,
    kprobe_hugetlb_new_anon_rmap,
    on_hugetlb_new_anon_rmap
);

/// Nonzero while userspace watches a process tree: every fork is then sent, so the tree is
/// known from the kernel's own records (written by userspace before load).
#[unsafe(no_mangle)]
static TRACK_SPAWNS: aya_ebpf::Global<u32> = aya_ebpf::Global::new(0);

/// A fork, seen from the parent after the copy (either flavour of `sched_process_fork`): a
/// `FORK` record when the parent ever pinned (`fork-with-pins`), else a `SPAWN` record when a
/// process tree is watched, else nothing.
#[inline(always)]
pub fn on_fork(child_pid: u32) {
    counters::entry(hook::PROCESS_FORK);
    let kind = if layout::current_has_pinned() {
        // The fork rule reads the ledger: every pin and unpin of the forking task first.
        crate::batch::flush_current();
        kind::FORK
    } else if TRACK_SPAWNS.load() != 0 {
        kind::SPAWN
    } else {
        return;
    };
    events::emit(&ForkEvent {
        header: events::header(kind),
        child_pid,
        _pad: 0,
    });
}
