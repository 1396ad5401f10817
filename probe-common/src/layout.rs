//! The kernel facts the eBPF programs read from globals, each declared once in [`kernel_facts!`].
//!
//! Rust eBPF has no CO-RE relocations (aya issue 349), so userspace reads offsets from
//! `/sys/kernel/btf/vmlinux` and writes them into globals before the programs load. The table
//! below is the one place a fact is named: the eBPF side expands it to its `static`s, userspace
//! to its `Layout` (one field per fact, the name doctor prints), its BTF resolver and the globals
//! it writes. `LAYOUT_VALID` stays 0 unless every offset a classification needs was found, and
//! the programs then refuse to classify.

/// Bit set of the groups below whose offsets were all resolved ([`valid`]).
pub const LAYOUT_VALID: &str = "LAYOUT_VALID";

/// Bits of `LAYOUT_VALID`: a group is used only when all of its facts are known. Which facts
/// each group reads is said once, in [`kernel_facts!`].
pub mod valid {
    /// `folio_maybe_dma_pinned()`.
    pub const FOLIO_PIN_TEST: u32 = 1 << 0;
    /// A VMA's flags, range and the identity of the file behind it (VMA → file → inode →
    /// superblock).
    pub const VMA_FILE: u32 = 1 << 1;
    /// A page-cache folio's file and index (folio → mapping → host inode).
    pub const FOLIO_FILE: u32 = 1 << 2;
    /// A task's pid and its thread group leader's start time.
    pub const TASK_START: u32 = 1 << 3;
    /// The FOLL_LONGTERM value (BTF enum on 6.5+, legacy define before).
    pub const FOLL: u32 = 1 << 4;
    /// The user side of the current system call (`pt_regs`).
    pub const PT_REGS: u32 = 1 << 5;
    /// Whether the current process ever pinned (task → mm → flags, `MMF_HAS_PINNED`).
    pub const MM_FLAGS: u32 = 1 << 6;
    /// A fault's page, flags and address (`vm_fault`).
    pub const VM_FAULT: u32 = 1 << 7;
    /// A folio's size and a page's folio.
    pub const FOLIO_ORDER: u32 = 1 << 8;
    /// The memory a pinned page belongs to: folio mapping, anon_vma root.
    pub const PIN_OWNER: u32 = 1 << 9;
    /// Which argument of the single-VMA zap function the VMA is.
    pub const ZAP_VMA_ARG: u32 = 1 << 10;
    /// The behaviour in `struct madvise_behavior` (7.2's `madvise_do_behavior`).
    pub const MADVISE_BEHAVIOR: u32 = 1 << 11;
}

/// Every kernel fact carried by an eBPF global, declared once: calls `$callback!` with the table.
///
/// Two sections. `btf` facts are resolved from the kernel's BTF into a `Layout` field:
///
/// ```text
/// /// Where the fact comes from, per kernel.
/// GLOBAL_NAME => layout_field in [VALID_GROUP, …] = source(arguments);
/// ```
///
/// where `GLOBAL_NAME` is the eBPF global, `layout_field` the `Layout` field and doctor's JSON
/// name, the groups the [`valid`] bits that read it (a group is valid only when all its facts
/// are known), and the source one of:
/// - `member("struct", "field" | "fallback" …)`: byte offset of the first field the struct has
///   (looking through anonymous structs and unions);
/// - `enumerator("NAME")`: value of an enumerator of any enum;
/// - `size_of("struct")`: the struct's size;
/// - `arg_of("function" => position, …)`: the position given for the first function BTF has;
/// - `special(resolver)`: a function of the BTF in userspace's resolver, for what none of the
///   above can say.
///
/// `foll` facts are GUP flag values, taken from userspace's `FollFlags` (BTF enum or the
/// legacy defines): `GLOBAL_NAME in [VALID_GROUP, …] = foll("FOLL_NAME");`.
///
/// Offsets quoted per kernel are those of Debian's 6.1, 6.12 and 7.2 builds.
#[macro_export]
macro_rules! kernel_facts {
    ($callback:ident) => {
        $callback! {
            btf {
                /// `folio.flags`: 0 on 6.1, 6.12 and 7.2 (a `memdesc_flags_t` wrapping the word
                /// on 7.2).
                FOLIO_FLAGS_OFF => folio_flags in [FOLIO_PIN_TEST, FOLIO_ORDER]
                    = member("folio", "flags");
                /// `folio._refcount`: 52 on 6.1, 6.12 and 7.2.
                FOLIO_REFCOUNT_OFF => folio_refcount in [FOLIO_PIN_TEST]
                    = member("folio", "_refcount");
                /// `folio._pincount`: 92 from 6.2 on (6.12, 7.2); 88 on 6.1, where it lives in
                /// the first tail page (`page[1].compound_pincount`).
                FOLIO_PINCOUNT_OFF => folio_pincount in [FOLIO_PIN_TEST]
                    = special(folio_pincount);
                /// Bit number of `PG_head` in `enum pageflags`: 16 on 6.1, 6 on 6.12 and 7.2.
                PG_HEAD_BIT => pg_head_bit in [FOLIO_PIN_TEST, FOLIO_ORDER]
                    = enumerator("PG_head");
                /// A large folio's order: `folio._folio_order` (81 on 6.1), then from 6.6 on the
                /// low byte of `folio._flags_1` (64 on 6.12 and 7.2; `folio_order()` reads
                /// `_flags_1 & 0xff`, little-endian, so at its offset).
                FOLIO_ORDER_OFF => folio_order in [FOLIO_ORDER]
                    = member("folio", "_folio_order" | "_flags_1");
                /// The word whose bit 0 marks a tail page: `page.compound_head` (8 on 6.1 and
                /// 6.12), re-encoded as `page.compound_info` on 7.2 (8; bit 0 still marks a tail).
                PAGE_TAIL_OFF => page_tail in [FOLIO_ORDER]
                    = member("page", "compound_head" | "compound_info");
                /// `sizeof(struct page)`, the stride of the vmemmap: 64 on 6.1, 6.12 and 7.2.
                PAGE_STRUCT_SIZE => page_struct_size in [FOLIO_ORDER] = size_of("page");
                /// `folio.mapping` (low bits tag anon and KSM): 24 on 6.1, 6.12 and 7.2.
                FOLIO_MAPPING_OFF => folio_mapping in [PIN_OWNER, FOLIO_FILE]
                    = member("folio", "mapping");
                /// `folio.index`: 32 on 6.1, 6.12 and 7.2 (7.2 renamed `page.index` to
                /// `__folio_index`; the folio keeps `index`).
                FOLIO_INDEX_OFF => folio_index in [FOLIO_FILE]
                    = member("folio", "index" | "__folio_index");
                /// `address_space.host`: 0 on 6.1, 6.12 and 7.2.
                MAPPING_HOST_OFF => mapping_host in [FOLIO_FILE]
                    = member("address_space", "host");
                /// `anon_vma.root`: 0 on 6.1, 6.12 and 7.2.
                ANON_VMA_ROOT_OFF => anon_vma_root in [PIN_OWNER] = member("anon_vma", "root");
                /// `vm_area_struct.vm_flags`: 32 on 6.1; 6.12 wraps it in a union with
                /// `__vm_flags`, 7.2 adds a bitmap view (`flags`): the same word at 32.
                VMA_FLAGS_OFF => vma_flags in [VMA_FILE] = member("vm_area_struct", "vm_flags");
                /// `vm_area_struct.vm_start`: 0 on 6.1, 6.12 and 7.2.
                VMA_START_OFF => vma_start in [VMA_FILE] = member("vm_area_struct", "vm_start");
                /// `vm_area_struct.vm_end`: 8 on 6.1, 6.12 and 7.2.
                VMA_END_OFF => vma_end in [VMA_FILE] = member("vm_area_struct", "vm_end");
                /// `vm_area_struct.vm_pgoff`: 104 on 6.1, 120 on 6.12, 80 on 7.2.
                VMA_PGOFF_OFF => vma_pgoff in [VMA_FILE] = member("vm_area_struct", "vm_pgoff");
                /// `vm_area_struct.vm_file`: 112 on 6.1, 128 on 6.12, 88 on 7.2.
                VMA_FILE_OFF => vma_file in [VMA_FILE] = member("vm_area_struct", "vm_file");
                /// `file.f_inode`: 32 on 6.1, 40 on 6.12, 32 on 7.2.
                FILE_INODE_OFF => file_inode in [VMA_FILE] = member("file", "f_inode");
                /// `inode.i_ino`: 64 on 6.1, 6.12 and 7.2 (`u64` from 7.2, `unsigned long`
                /// before).
                INODE_INO_OFF => inode_ino in [VMA_FILE, FOLIO_FILE] = member("inode", "i_ino");
                /// `inode.i_sb`: 40 on 6.1, 6.12 and 7.2.
                INODE_SB_OFF => inode_sb in [VMA_FILE, FOLIO_FILE] = member("inode", "i_sb");
                /// `super_block.s_dev`: 16 on 6.1, 6.12 and 7.2.
                SB_DEV_OFF => sb_dev in [VMA_FILE, FOLIO_FILE] = member("super_block", "s_dev");
                /// `super_block.s_magic`: 96 on 6.1, 6.12 and 7.2.
                SB_MAGIC_OFF => sb_magic in [VMA_FILE, FOLIO_FILE]
                    = member("super_block", "s_magic");
                /// `task_struct.group_leader`: 2480 on 6.1, 2496 on 6.12, 2872 on 7.2.
                TASK_GROUP_LEADER_OFF => task_group_leader in [TASK_START]
                    = member("task_struct", "group_leader");
                /// `task_struct.start_time`: 2776 on 6.1 and 6.12, 3152 on 7.2.
                TASK_START_TIME_OFF => task_start_time in [TASK_START]
                    = member("task_struct", "start_time");
                /// `task_struct.pid`, the child's pid in the raw `sched_process_fork`
                /// tracepoint: 2416 on 6.1, 2432 on 6.12, 2808 on 7.2.
                TASK_PID_OFF => task_pid in [TASK_START] = member("task_struct", "pid");
                /// `task_struct.mm`: 2272 on 6.1, 2304 on 6.12, 2680 on 7.2.
                TASK_MM_OFF => task_mm in [MM_FLAGS] = member("task_struct", "mm");
                /// `mm_struct.flags`: 904 on 6.1, 1120 on 6.12; 7.2 turned it into a bitmap
                /// (`mm_flags_t __mm_flags`, 1504) whose first word keeps the same bits.
                MM_FLAGS_OFF => mm_flags in [MM_FLAGS]
                    = member("mm_struct", "flags" | "__mm_flags");
                /// `pt_regs.orig_ax` (the system call number): 120 on x86-64, every kernel.
                PT_REGS_ORIG_AX_OFF => pt_regs_orig_ax in [PT_REGS] = member("pt_regs", "orig_ax");
                /// `pt_regs.ip`: 128 on x86-64, every kernel.
                PT_REGS_IP_OFF => pt_regs_ip in [PT_REGS] = member("pt_regs", "ip");
                /// `pt_regs.sp`: 152 on x86-64, every kernel.
                PT_REGS_SP_OFF => pt_regs_sp in [PT_REGS] = member("pt_regs", "sp");
                /// `pt_regs.di`, the first system call argument: 112 on x86-64, every kernel.
                PT_REGS_DI_OFF => pt_regs_di in [PT_REGS] = member("pt_regs", "di");
                /// `pt_regs.si`, the second system call argument: 104 on x86-64, every kernel.
                PT_REGS_SI_OFF => pt_regs_si in [PT_REGS] = member("pt_regs", "si");
                /// `pt_regs.dx`, the third system call argument: 96 on x86-64, every kernel.
                PT_REGS_DX_OFF => pt_regs_dx in [PT_REGS] = member("pt_regs", "dx");
                /// `vm_fault.flags` (`enum fault_flag`): 40 on 6.1, 6.12 and 7.2.
                VM_FAULT_FLAGS_OFF => vm_fault_flags in [VM_FAULT] = member("vm_fault", "flags");
                /// `vm_fault.page`: 80 on 6.1, 6.12 and 7.2 (no `folio` member in any).
                VM_FAULT_PAGE_OFF => vm_fault_page in [VM_FAULT] = member("vm_fault", "page");
                /// `vm_fault.address`: 24 on 6.1 (inside an anonymous `const struct`), 6.12
                /// and 7.2.
                VM_FAULT_ADDRESS_OFF => vm_fault_address in [VM_FAULT]
                    = member("vm_fault", "address");
                /// Where the `struct vm_area_struct *` is among the arguments of the function
                /// the single-VMA zap hook attaches to, tried in the hook's order (`probes`):
                /// 0 for `zap_page_range_single(vma, …)` (6.1, 6.12), 1 for
                /// `zap_vma_range_batched(tlb, vma, …)` (7.2).
                ZAP_VMA_ARG => zap_vma_arg in [ZAP_VMA_ARG]
                    = arg_of("zap_page_range_single" => 0, "zap_vma_range_batched" => 1);
                /// `madvise_behavior.behavior`: 8 on 7.2; 6.1 and 6.12 have no such struct
                /// (their `do_madvise` takes the behaviour as an argument).
                MADVISE_BEHAVIOR_OFF => madvise_behavior in [MADVISE_BEHAVIOR]
                    = member("madvise_behavior", "behavior");
            }
            foll {
                /// FOLL_LONGTERM: 0x10000 on 6.1 (a `#define` in `include/linux/mm.h`, invisible
                /// to BTF), 0x100 from 6.5 on (an enumerator in BTF; 6.12, 7.2).
                FOLL_LONGTERM in [FOLL] = foll("FOLL_LONGTERM");
            }
        }
    };
}
