//! Writeback cleaning page-cache folios (`folio_mkclean`, `mm/rmap.c`).
//!
//! Hot: runs for every dirty folio written back. The fast path is one counter bump and one
//! classification (three direct loads on fentry); only a folio the kernel itself would call maybe-DMA-pinned becomes an event.

use probe_common::{
    event::{PinnedFolioEvent, kind},
    hook, verdict,
};

use crate::{args::Args, counters, entry_programs, events, layout};

#[inline(always)]
fn on_mkclean<C: Args>(ctx: &C) {
    counters::entry(hook::FOLIO_MKCLEAN);
    let Some(pins) = ctx.folio_pins(0) else {
        counters::verdict(verdict::MKCLEAN_UNCLASSIFIED);
        return;
    };
    if !pins.maybe_dma_pinned() {
        // Counted by the call itself: userspace derives the unpinned ones.
        return;
    }
    counters::verdict(verdict::MKCLEAN_PINNED);
    let folio = ctx.arg_scalar(0);
    let (ino, dev, fs_magic, index) = layout::folio_file(folio).unwrap_or((0, 0, 0, 0));
    events::emit(&PinnedFolioEvent {
        header: events::header(kind::MKCLEAN_PINNED),
        folio,
        index,
        ino,
        dev,
        fs_magic,
        refcount: pins.refcount,
        pincount: pins.pincount,
        large: u32::from(pins.large),
        pages: layout::folio_pages(folio).unwrap_or(0) as u32,
        // Writeback's stack says nothing the folio's file does not.
        stack_id: -1,
    });
}

entry_programs!(fentry_folio_mkclean, kprobe_folio_mkclean, on_mkclean);
