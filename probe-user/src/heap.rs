//! The daemon's heap: a long-running process must give memory back after start-up and after
//! storms, or its resident size shows the worst moment of its life rather than its state.
//!
//! glibc keeps freed memory for reuse, and raises its mmap threshold each time a large block is
//! freed, so later large blocks (the live-pin ledger growing, a storm's event batch) come from
//! the heap and stay resident after they are freed.

/// Fixes the mmap threshold (large blocks are mapped and unmapped, never kept) and limits the
/// allocator to two arenas (the daemon has two busy threads; glibc's default is eight per CPU).
pub fn tune_for_daemon() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before the threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Hands freed memory back to the kernel (after parsing BTF and kallsyms, after a storm).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
