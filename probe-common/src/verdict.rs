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
/// A folio left a file's page cache while maybe-DMA-pinned (sent as an event).
pub const DISCARD_PINNED: u32 = 6;
/// A page-cache removal seen where the folio could not be classified (perf tracepoint, or no
/// BTF offsets).
pub const DISCARD_UNCLASSIFIED: u32 = 7;
/// madvise(MADV_DONTNEED / MADV_DONTNEED_LOCKED) by a process that has pinned (sent as an event).
pub const MADVISE_DISCARD_BY_PINNER: u32 = 8;
/// madvise(MADV_FREE) by a process that has pinned: not a discard of pinned pages (reclaim keeps
/// a lazy-free page whose refcount is raised), counted only.
pub const MADVISE_FREE_BY_PINNER: u32 = 9;
pub const COUNT: u32 = 10;
