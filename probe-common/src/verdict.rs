//! Slots of the per-CPU `VERDICTS` map: what the in-kernel filters decided.

/// folio_mkclean on a folio the kernel's own test calls maybe-DMA-pinned.
pub const MKCLEAN_PINNED: u32 = 0;
// folio_mkclean on an ordinary folio has no slot: every written-back folio comes there, so it is
// derived in userspace (calls − pinned − unclassified), one counter less on the hot path.
/// folio_mkclean seen while the folio layout was unknown (no BTF offsets): not classified.
pub const MKCLEAN_UNCLASSIFIED: u32 = 1;
/// A pin call returned an error (negative errno).
pub const PIN_FAILED: u32 = 2;
/// vma_needs_dirty_tracking() answered true.
pub const DIRTY_TRACKING_NEEDED: u32 = 3;
/// A short-term pin call (no FOLL_LONGTERM: O_DIRECT, process_vm…) with FOLL_WRITE.
pub const SHORT_TERM_PIN_WRITE: u32 = 4;
/// A short-term pin call without FOLL_WRITE.
pub const SHORT_TERM_PIN_READ: u32 = 5;
pub const COUNT: u32 = 6;
