//! Names of the eBPF globals that carry kernel struct layout, resolved from BTF at start.
//!
//! Rust eBPF has no CO-RE relocations (aya issue 349), so userspace reads offsets from
//! `/sys/kernel/btf/vmlinux` and writes them into these globals before the programs load.
//! The eBPF side declares a `static` of the same name for each; `LAYOUT_VALID` stays 0 unless
//! every offset a classification needs was found, and the programs then refuse to classify.

/// Bit set of the groups below whose offsets were all resolved ([`valid`]).
pub const LAYOUT_VALID: &str = "LAYOUT_VALID";

/// Bits of `LAYOUT_VALID`: each group is used only when all of its offsets are known.
pub mod valid {
    /// `folio_maybe_dma_pinned()`: folio flags, refcount, pincount, PG_head.
    pub const FOLIO_PIN_TEST: u32 = 1 << 0;
    /// VMA → file → inode → superblock identity (vm_flags, vm_start, vm_pgoff, vm_file, f_inode,
    /// i_ino, i_sb, s_dev, s_magic).
    pub const VMA_FILE: u32 = 1 << 1;
    /// folio → mapping → host inode, and the folio's index.
    pub const FOLIO_FILE: u32 = 1 << 2;
    /// task → group_leader → start_time.
    pub const TASK_START: u32 = 1 << 3;
    /// FOLL_LONGTERM value (BTF enum on 6.5+, legacy define before).
    pub const FOLL: u32 = 1 << 4;
    /// pt_regs orig_ax, ip, sp (the user side of the current system call).
    pub const PT_REGS: u32 = 1 << 5;
    /// task → mm → flags (MMF_HAS_PINNED).
    pub const MM_FLAGS: u32 = 1 << 6;
    /// vm_fault page, flags, address.
    pub const VM_FAULT: u32 = 1 << 7;
    /// A folio's size and a page's folio: flags (PG_head), the order byte, the tail word and
    /// `sizeof(struct page)`.
    pub const FOLIO_ORDER: u32 = 1 << 8;
    /// The memory a pinned page belongs to: folio mapping, anon_vma root.
    pub const PIN_OWNER: u32 = 1 << 9;
    /// Which argument of the single-VMA zap function the VMA is.
    pub const ZAP_VMA_ARG: u32 = 1 << 10;
}
/// The position of the `struct vm_area_struct *` among the arguments of the function the
/// single-VMA zap hook attaches to: 0 for `zap_page_range_single(vma, …)` (6.1, 6.12), 1 for
/// `zap_vma_range_batched(tlb, vma, …)` (7.2).
pub const ZAP_VMA_ARG: &str = "ZAP_VMA_ARG";
/// Byte offset of `folio.flags` (a `memdesc_flags_t` wrapping the word on 7.2).
pub const FOLIO_FLAGS_OFF: &str = "FOLIO_FLAGS_OFF";
/// Byte offset of `folio._refcount`.
pub const FOLIO_REFCOUNT_OFF: &str = "FOLIO_REFCOUNT_OFF";
/// Byte offset of `folio._pincount` (88 on 6.1 where it lives in the first tail page, 92 later).
pub const FOLIO_PINCOUNT_OFF: &str = "FOLIO_PINCOUNT_OFF";
/// Bit number of `PG_head` in `enum pageflags` (16 on 6.1, 6 on 6.12+).
pub const PG_HEAD_BIT: &str = "PG_HEAD_BIT";
/// Byte offset of a large folio's order: `folio._folio_order` (81 on 6.1), then the low byte of
/// `folio._flags_1` from 6.6 on (64 on 6.12 and 7.2; `folio_order()` reads `_flags_1 & 0xff`).
pub const FOLIO_ORDER_OFF: &str = "FOLIO_ORDER_OFF";
/// Byte offset of the word whose bit 0 marks a tail page: `page.compound_head` (6.1, 6.12),
/// `page.compound_info` (7.2).
pub const PAGE_TAIL_OFF: &str = "PAGE_TAIL_OFF";
/// `sizeof(struct page)`: the stride of the vmemmap (64 on every kernel pinwatch supports).
pub const PAGE_STRUCT_SIZE: &str = "PAGE_STRUCT_SIZE";

pub const VMA_FLAGS_OFF: &str = "VMA_FLAGS_OFF";
pub const VMA_START_OFF: &str = "VMA_START_OFF";
pub const VMA_END_OFF: &str = "VMA_END_OFF";
pub const VMA_PGOFF_OFF: &str = "VMA_PGOFF_OFF";
pub const VMA_FILE_OFF: &str = "VMA_FILE_OFF";
pub const FILE_INODE_OFF: &str = "FILE_INODE_OFF";
pub const INODE_INO_OFF: &str = "INODE_INO_OFF";
pub const INODE_SB_OFF: &str = "INODE_SB_OFF";
pub const SB_DEV_OFF: &str = "SB_DEV_OFF";
pub const SB_MAGIC_OFF: &str = "SB_MAGIC_OFF";
pub const FOLIO_MAPPING_OFF: &str = "FOLIO_MAPPING_OFF";
pub const FOLIO_INDEX_OFF: &str = "FOLIO_INDEX_OFF";
pub const MAPPING_HOST_OFF: &str = "MAPPING_HOST_OFF";
/// `anon_vma.root` (0 on every kernel tested).
pub const ANON_VMA_ROOT_OFF: &str = "ANON_VMA_ROOT_OFF";
pub const TASK_GROUP_LEADER_OFF: &str = "TASK_GROUP_LEADER_OFF";
pub const TASK_START_TIME_OFF: &str = "TASK_START_TIME_OFF";
/// `task_struct.pid`: the child's pid in the raw `sched_process_fork` tracepoint.
pub const TASK_PID_OFF: &str = "TASK_PID_OFF";
pub const PT_REGS_ORIG_AX_OFF: &str = "PT_REGS_ORIG_AX_OFF";
pub const PT_REGS_IP_OFF: &str = "PT_REGS_IP_OFF";
pub const PT_REGS_SP_OFF: &str = "PT_REGS_SP_OFF";
/// x86-64 syscall argument registers: di, si, dx.
pub const PT_REGS_DI_OFF: &str = "PT_REGS_DI_OFF";
pub const PT_REGS_SI_OFF: &str = "PT_REGS_SI_OFF";
pub const PT_REGS_DX_OFF: &str = "PT_REGS_DX_OFF";
pub const VM_FAULT_PAGE_OFF: &str = "VM_FAULT_PAGE_OFF";
pub const VM_FAULT_FLAGS_OFF: &str = "VM_FAULT_FLAGS_OFF";
pub const VM_FAULT_ADDRESS_OFF: &str = "VM_FAULT_ADDRESS_OFF";
pub const TASK_MM_OFF: &str = "TASK_MM_OFF";
pub const MM_FLAGS_OFF: &str = "MM_FLAGS_OFF";
/// Value of FOLL_LONGTERM on this kernel (0x10000 on 6.1, 0x100 from 6.5).
pub const FOLL_LONGTERM: &str = "FOLL_LONGTERM";
