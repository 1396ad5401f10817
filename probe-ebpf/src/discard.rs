//! Memory leaving a process while a device may hold it: page-cache folios removed from their
//! file (tracepoint `filemap:mm_filemap_delete_from_page_cache`) and anonymous ranges discarded
//! by madvise (`madvise_do_behavior` / `do_madvise`).
//!
//! The tracepoint is hot under page-cache churn (every truncate, unlink and eviction): its fast
//! path is one counter bump and the maybe-pinned test. Reclaim never removes a maybe-pinned
//! folio (`shrink_folio_list` keeps it, `__remove_mapping` cannot freeze its refcount), so what
//! passes is a truncate, a punched hole or an invalidation taking a pinned page from the file.
//! madvise is gated on `MMF_HAS_PINNED`: a process that never pinned pays two loads.

use aya_ebpf::{
    EbpfContext,
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use probe_common::{
    event::{MadviseEvent, PinnedFolioEvent, kind},
    hook,
    kernel::madv,
    verdict,
};

use crate::{args::Args, counters, entry_programs, events, layout, stacks};

/// The raw tracepoint: `TP_PROTO(struct folio *folio)` (6.1, 6.12, 7.2). It fires before
/// `folio->mapping` is cleared, so the file and index are still readable.
#[raw_tracepoint(tracepoint = "mm_filemap_delete_from_page_cache")]
pub fn raw_tracepoint_page_cache_delete(ctx: RawTracePointContext) -> i32 {
    if crate::idle() {
        return 0;
    }
    counters::entry(hook::PAGE_CACHE_DELETE);
    let folio: u64 = ctx.arg(0);
    let Some(pins) = layout::folio_pins(folio) else {
        counters::verdict(verdict::DISCARD_UNCLASSIFIED);
        return 0;
    };
    if pins.maybe_dma_pinned() {
        counters::verdict(verdict::DISCARD_PINNED);
        emit_discard(&ctx, folio, &pins);
    }
    0
}

/// The perf tracepoint (`--method kprobe`): its record carries the pfn, not the folio, so it
/// counts removals without classifying them (`DISCARD_UNCLASSIFIED`).
#[tracepoint]
pub fn tracepoint_page_cache_delete(_ctx: TracePointContext) -> u32 {
    if !crate::idle() {
        counters::entry(hook::PAGE_CACHE_DELETE);
        counters::verdict(verdict::DISCARD_UNCLASSIFIED);
    }
    0
}

#[inline(always)]
fn emit_discard<C: EbpfContext>(ctx: &C, folio: u64, pins: &layout::FolioPins) {
    let (ino, dev, fs_magic, index) = layout::folio_file(folio).unwrap_or((0, 0, 0, 0));
    events::emit(&PinnedFolioEvent {
        header: events::header(kind::PAGE_CACHE_DISCARD),
        folio,
        index,
        ino,
        dev,
        fs_magic,
        refcount: pins.refcount,
        pincount: pins.pincount,
        large: u32::from(pins.large),
        pages: layout::folio_pages(folio).unwrap_or(0) as u32,
        // Rare (a pinned folio removed): the stack says what removed it.
        stack_id: stacks::take(ctx),
    });
}

/// madvise of `[start, start + len)` with `behavior`, by the current task.
#[inline(always)]
fn on_madvise(start: u64, len: u64, behavior: u32) {
    counters::entry(hook::MADVISE);
    let slot = match behavior {
        madv::DONTNEED | madv::DONTNEED_LOCKED => verdict::MADVISE_DISCARD_BY_PINNER,
        madv::FREE => verdict::MADVISE_FREE_BY_PINNER,
        // MADV_REMOVE reaches the page cache (`vfs_fallocate`): the tracepoint sees it.
        _ => return,
    };
    if !layout::current_has_pinned() {
        return;
    }
    counters::verdict(slot);
    if slot == verdict::MADVISE_DISCARD_BY_PINNER {
        events::emit(&MadviseEvent {
            header: events::header(kind::MADVISE_DISCARD),
            start,
            len,
            behavior,
            _pad: 0,
        });
    }
}

/// `do_madvise(mm, start, len_in, behavior)` (6.1, 6.12; 7.2 has it too, but process_madvise
/// bypasses it there).
#[inline(always)]
fn on_do_madvise<C: Args>(ctx: &C) {
    on_madvise(ctx.arg_u64(1), ctx.arg_u64(2), ctx.arg_u64(3) as u32);
}

/// `madvise_do_behavior(start, len_in, struct madvise_behavior *)` (7.2): the behaviour is a
/// field of the struct.
#[inline(always)]
fn on_madvise_do_behavior<C: Args>(ctx: &C) {
    let Some(behavior) = layout::madvise_behavior(ctx.arg_scalar(2)) else {
        counters::entry(hook::MADVISE);
        return;
    };
    on_madvise(ctx.arg_u64(0), ctx.arg_u64(1), behavior);
}

entry_programs!(fentry_madvise, kprobe_madvise, on_do_madvise);
entry_programs!(
    fentry_madvise_do_behavior,
    kprobe_madvise_do_behavior,
    on_madvise_do_behavior
);
