//! PAT memtype tracking of VM_PFNMAP ranges and the zap paths (`arch/x86/mm/pat/memtype.c`,
//! `mm/memory.c`).
//!
//! On 6.1/6.12 `unmap_single_vma()` calls `untrack_pfn()` for every VM_PFNMAP VMA it touches,
//! including from the single-VMA zap path (`zap_page_range_single`): a zap of a live VM_PAT VMA
//! frees its memtype while the VMA stays mapped. The zap marks the task in `ZAPPING` while it
//! runs; an untrack of a VM_PAT VMA inside that window is the hazard. 7.2 untracks only when the
//! last VMA sharing the tracking context is freed (`pfnmap_untrack`, never from a zap).

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::map, maps::HashMap};
use aya_log_ebpf::warn;
use probe_common::{
    event::{PfnUntrackEvent, kind},
    hook,
    kernel::{VM_PAT, VM_PFNMAP, VM_SHARED},
};

use crate::{
    args::{Args, Ret},
    counters, counting_hook, entry_programs, events, layout, return_programs,
};

/// A shared PFN mapping (every process's `[vvar]` is private).
const SHARED_PFNMAP: u64 = VM_PFNMAP | VM_SHARED;

/// Tasks inside the single-VMA zap path.
#[map]
static ZAPPING: HashMap<u64, u8> = HashMap::with_max_entries(4096, 0);

/// `zap_page_range_single(vma, …)` (7.2: `zap_vma_range_batched(tlb, vma, …)`): every
/// `MADV_DONTNEED` comes here, and only a `VM_PFNMAP`
/// VMA can untrack a memtype inside it: the others pay one read, not a hash insert and delete.
#[inline(always)]
fn on_zap_entry<C: Args>(ctx: &C) {
    counters::entry(hook::ZAP_SINGLE_VMA);
    if layout::zap_vma_arg()
        .map(|n| ctx.arg_at(n))
        .and_then(layout::vma_flags)
        .is_some_and(|flags| flags & VM_PFNMAP == 0)
    {
        return;
    }
    if !crate::events::armed() {
        return;
    }
    if ZAPPING.insert(bpf_get_current_pid_tgid(), 1, 0).is_err() {
        counters::insert_failed(probe_common::map::ZAPPING);
        warn!(
            ctx,
            "ZAPPING full: a PFN untrack during this zap by tgid {} is not classified",
            bpf_get_current_pid_tgid() >> 32
        );
    }
}

#[inline(always)]
fn on_zap_return<C: Ret>(_ctx: &C) {
    counters::ret(hook::ZAP_SINGLE_VMA);
    // Almost no zap marked its task: a lockless lookup spares them the bucket lock a delete
    // takes.
    if zapping() != 0 {
        let _ = ZAPPING.remove(bpf_get_current_pid_tgid());
    }
}

entry_programs!(fentry_zap_single_vma, kprobe_zap_single_vma, on_zap_entry);
return_programs!(
    fexit_zap_single_vma,
    kretprobe_zap_single_vma,
    on_zap_return
);

#[inline(always)]
fn zapping() -> u32 {
    // SAFETY: a lookup of this task's own key; the value is not dereferenced.
    u32::from(unsafe { ZAPPING.get(bpf_get_current_pid_tgid()) }.is_some())
}

/// `untrack_pfn(vma, pfn, size[, mm_wr_locked])`: VMAs that still carry VM_PAT, and shared PFN
/// mappings without it (whose memtype an earlier zap may already have freed: the second untrack
/// at munmap). Every process's private `[vvar]` is neither.
#[inline(always)]
fn on_untrack_pfn<C: Args>(ctx: &C) {
    counters::entry(hook::PFN_UNTRACK);
    let vma = ctx.arg_u64(0);
    if vma == 0 {
        return;
    }
    // One read decides for almost every call (each exiting process's private `[vvar]`).
    let flags = layout::vma_flags(vma).unwrap_or(0);
    if flags & VM_PAT == 0 && flags & SHARED_PFNMAP != SHARED_PFNMAP {
        return;
    }
    let info = layout::vma_info(vma);
    events::emit(&PfnUntrackEvent {
        header: events::header(kind::PFN_UNTRACK),
        from_zap: zapping(),
        _pad: 0,
        vm_end: layout::vma_end(vma),
        pfn: ctx.arg_u64(1),
        size: ctx.arg_u64(2),
        stack_id: ctx.stack_id(),
        vma: info,
    });
}

/// `pfnmap_untrack(pfn, size)` (7.2): the last VMA of a tracked range is gone.
#[inline(always)]
fn on_pfnmap_untrack<C: Args>(ctx: &C) {
    counters::entry(hook::PFN_UNTRACK);
    events::emit(&PfnUntrackEvent {
        header: events::header(kind::PFN_UNTRACK),
        from_zap: zapping(),
        _pad: 0,
        vm_end: 0,
        pfn: ctx.arg_u64(0),
        size: ctx.arg_u64(1),
        stack_id: ctx.stack_id(),
        vma: Default::default(),
    });
}

entry_programs!(fentry_pfn_untrack, kprobe_pfn_untrack, on_untrack_pfn);
entry_programs!(
    fentry_pfnmap_untrack,
    kprobe_pfnmap_untrack,
    on_pfnmap_untrack
);

counting_hook!(fentry_pfn_track, kprobe_pfn_track, hook::PFN_TRACK);
counting_hook!(
    fentry_unmap_mapping_range,
    kprobe_unmap_mapping_range,
    hook::UNMAP_MAPPING_RANGE
);
