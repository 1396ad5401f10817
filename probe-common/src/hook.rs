//! Hook identifiers: one per kernel function (or tracepoint) pinwatch observes.
//!
//! A hook is a *mechanism*, not a symbol: `PFN_UNTRACK` is `untrack_pfn` on 6.1/6.12 and
//! `pfnmap_untrack` on 7.2. Userspace decides which symbol wins (see `probe-user/src/probes.rs`);
//! the eBPF program for a hook only ever bumps the counter slot with the hook's id.

/// `pin_user_pages()`: io_uring on 6.1, vhost, xdp umem.
pub const PIN_USER_PAGES: u32 = 0;
/// `pin_user_pages_fast()`: io_uring on 6.12+, O_DIRECT (via iov_iter) on 6.12+.
pub const PIN_USER_PAGES_FAST: u32 = 1;
/// `pin_user_pages_remote()`: VFIO type1, process_vm_readv/writev.
pub const PIN_USER_PAGES_REMOTE: u32 = 2;
/// `pin_user_pages_unlocked()`.
pub const PIN_USER_PAGES_UNLOCKED: u32 = 3;
/// GUP-fast internal entry: `gup_fast_fallback` (6.12+) / `internal_get_user_pages_fast` (6.1).
pub const GUP_FAST: u32 = 4;
/// `__gup_longterm_locked()`: the slow path every long-term pin can fall back to.
pub const GUP_SLOW: u32 = 5;
pub const UNPIN_USER_PAGE: u32 = 6;
pub const UNPIN_USER_PAGES: u32 = 7;
pub const UNPIN_USER_PAGES_DIRTY_LOCK: u32 = 8;
pub const UNPIN_USER_PAGE_RANGE_DIRTY_LOCK: u32 = 9;
pub const UNPIN_FOLIO: u32 = 10;
pub const UNPIN_FOLIOS: u32 = 11;
pub const UNPIN_USER_FOLIO: u32 = 12;
/// `folio_mkclean()`: writeback write-protects and cleans a page-cache folio.
pub const FOLIO_MKCLEAN: u32 = 13;
/// `do_wp_page()`: COW and unshare faults.
pub const DO_WP_PAGE: u32 = 14;
/// `wp_page_copy()`: out of line only on 6.1 (inlined into do_wp_page on 6.12+).
pub const WP_PAGE_COPY: u32 = 15;
/// `copy_page_range()`: fork copies one VMA's page tables.
pub const COPY_PAGE_RANGE: u32 = 16;
/// `folio_add_new_anon_rmap` (6.12+) / `page_add_new_anon_rmap` (6.1): a new anon page is mapped;
/// inside `copy_page_range` that is an eager copy of a pinned page at fork.
pub const NEW_ANON_RMAP: u32 = 17;
/// `vma_needs_dirty_tracking()` (6.5+): the check that refuses long-term writable file pins.
pub const VMA_NEEDS_DIRTY_TRACKING: u32 = 18;
/// PAT memtype reservation for a VM_PFNMAP range: `pfnmap_track` (7.2) / `track_pfn_remap`.
pub const PFN_TRACK: u32 = 19;
/// PAT memtype release: `pfnmap_untrack` (7.2) / `untrack_pfn` (6.1, 6.12).
pub const PFN_UNTRACK: u32 = 20;
/// Single-VMA zap: `zap_page_range_single` (6.1, 6.12) / `zap_vma_range_batched` (7.2).
pub const ZAP_SINGLE_VMA: u32 = 21;
/// `unmap_mapping_range()`: file truncate, revoke_iomem, vfio-pci BAR zap.
pub const UNMAP_MAPPING_RANGE: u32 = 22;
/// Tracepoint `sched:sched_process_fork`.
pub const PROCESS_FORK: u32 = 23;
/// Tracepoint `sched:sched_process_exit`.
pub const PROCESS_EXIT: u32 = 24;

/// `check_vma_flags()`: the GUP slow path's per-VMA permission check; where a pin meets its VMA.
pub const CHECK_VMA_FLAGS: u32 = 25;

/// `hugetlb_add_new_anon_rmap` (6.12+) / `hugepage_add_new_anon_rmap` (6.1): a new anonymous
/// huge page is mapped; inside `copy_page_range` that is an eager copy of a pinned hugetlb page
/// at fork (`copy_hugetlb_page_range`).
pub const HUGETLB_NEW_ANON_RMAP: u32 = 26;

/// `io_ring_exit_work()`: the kworker that tears down a closed io_uring ring, releasing its
/// registered buffers for the process that pinned them.
pub const RING_EXIT_WORK: u32 = 27;

/// Tracepoint `filemap:mm_filemap_delete_from_page_cache`: a folio leaves a file's page cache
/// (truncate, punch hole, MADV_REMOVE, invalidation, eviction). The one point every removal
/// path passes, the batch one of truncate included.
pub const PAGE_CACHE_DELETE: u32 = 28;
/// `madvise_do_behavior` (7.2: madvise, process_madvise and io_uring all come through it) /
/// `do_madvise` (6.1, 6.12): a process discards or frees anonymous memory.
pub const MADVISE: u32 = 29;

/// `kvm_gmem_ioctl()` (kvm.ko, only with guest_memfd's in-place conversion series): its
/// -EAGAIN is a shared-to-private conversion refused because a page is pinned.
pub const GMEM_IOCTL: u32 = 30;

/// Number of hooks defined above.
pub const COUNT: u32 = 31;
