//! Kernel constants pinwatch tests flags against, declared once for the eBPF programs and
//! userspace alike.
//!
//! Unlike struct offsets (the `layout` table, resolved from BTF at start) these are macros or
//! enumerators with the same value on every kernel pinwatch supports (6.1, 6.12, 7.2), so they are
//! compiled in. Each says where the kernel defines it and on which versions it holds.

/// `VM_SHARED` in `vm_area_struct.vm_flags`: a `MAP_SHARED` mapping. `include/linux/mm.h`
/// `#define VM_SHARED 0x00000008` on 6.1 and 6.12; `INIT_VM_FLAG(SHARED)` = `BIT(VMA_SHARED_BIT)`
/// with the same value on 7.2 (`mm.h:294-398`).
pub const VM_SHARED: u64 = 0x8;

/// `VM_PFNMAP` in `vm_flags`: a mapping of raw PFNs (`remap_pfn_range`), the only kind with a PAT
/// memtype to track. `include/linux/mm.h`, 0x400 on 6.1, 6.12 and (as `INIT_VM_FLAG(PFNMAP)`) 7.2.
pub const VM_PFNMAP: u64 = 0x400;

/// `VM_DONTCOPY` in `vm_flags`: set by `MADV_DONTFORK`, so fork does not copy the VMA.
/// `include/linux/mm.h`, 0x0002_0000 on 6.1, 6.12 and (as `INIT_VM_FLAG(DONTCOPY)`) 7.2.
pub const VM_DONTCOPY: u64 = 0x0002_0000;

/// `VM_PAT` in `vm_flags`: x86's `VM_ARCH_1`, a VM_PFNMAP VMA whose PAT memtype is tracked.
/// `include/linux/mm.h` 6.1 :348 and 6.12 :373; gone in 7.2 (v6.16 "mm: rewrite pfnmap tracking
/// and remove VM_PAT"), where no VMA carries the bit.
pub const VM_PAT: u64 = 0x0100_0000;

/// `FAULT_FLAG_WRITE` in `vm_fault.flags` (`enum fault_flag`, in BTF): a write fault.
/// `include/linux/mm_types.h` 6.1 :1012, 6.12 :1423, 7.2 :1794; the same value in all three.
pub const FAULT_FLAG_WRITE: u32 = 0x1;

/// `FAULT_FLAG_UNSHARE` in `vm_fault.flags`: a fault GUP issues to unshare a page before a
/// read-only long-term pin (never together with `FAULT_FLAG_WRITE`). `enum fault_flag`,
/// `include/linux/mm_types.h` 6.1 :1012-1023, 6.12 :1423-1435, 7.2 :1794-1806; 0x400 in all three.
pub const FAULT_FLAG_UNSHARE: u32 = 0x400;

/// `MMF_HAS_PINNED`: the bit of `mm_struct.flags` the first FOLL_PIN sets (never cleared).
/// 27 on 6.1 (`include/linux/sched/coredump.h:83`), 6.12 (`coredump.h:84`) and 7.2
/// (`include/linux/mm_types.h:1967`, in the first word of the `mm_flags_t` bitmap).
pub const MMF_HAS_PINNED_BIT: u32 = 27;

/// `GUP_PIN_COUNTING_BIAS`: a FOLL_PIN adds this to a small folio's `_refcount`, so it is
/// maybe-pinned when `_refcount >= 1024`. A macro since 5.7, invisible to BTF:
/// `include/linux/mm.h` 6.1 :1267, 6.12 :1583, 7.2 :2226, `1U << 10` in all three.
pub const GUP_PIN_COUNTING_BIAS: u32 = 1 << 10;

/// madvise behaviours (`include/uapi/asm-generic/mman-common.h`, the same in 6.1, 6.12, 7.2).
pub mod madv {
    /// Zaps the range: anonymous pages are freed, a refault maps a zero page.
    pub const DONTNEED: u32 = 4;
    /// Lazy free: reclaim may drop clean pages later, but keeps any whose refcount is raised
    /// (`try_to_unmap_one` wants `ref_count == 1 + map_count`), so never a pinned one.
    pub const FREE: u32 = 8;
    /// Punches the range out of a shmem or file mapping (`vfs_fallocate(PUNCH_HOLE)`): seen
    /// where the page cache drops the folio, not here.
    pub const REMOVE: u32 = 9;
    /// MADV_DONTNEED that also zaps VM_LOCKED ranges (5.18+).
    pub const DONTNEED_LOCKED: u32 = 24;
}
