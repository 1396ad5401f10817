//! Writeback cleaning page-cache folios (`folio_mkclean`, `mm/rmap.c`).
//!
//! Hot: runs for every dirty folio written back. The fast path is one classification and one
//! counter bump; only folios the kernel itself would call maybe-DMA-pinned count as pinned.

use probe_common::{filter, hook};

use crate::{args::Args, counters, entry_programs, layout};

fn on_mkclean<C: Args>(ctx: &C) {
    counters::entry(hook::FOLIO_MKCLEAN);
    let slot = match layout::folio_maybe_dma_pinned(ctx.arg_u64(0)) {
        Some(true) => filter::MKCLEAN_PINNED,
        Some(false) => filter::MKCLEAN_UNPINNED,
        None => filter::MKCLEAN_UNCLASSIFIED,
    };
    counters::filtered(slot);
}

entry_programs!(fentry_folio_mkclean, kprobe_folio_mkclean, on_mkclean);
