//! The resolver the `kernel_facts!` table replaced, kept until the table is proven to give
//! every global the same value (`super::equivalence`).

use probe_common::layout::valid;
use serde::{Deserialize, Serialize};

use crate::kernel::{btf::KernelBtf, flags::FollFlags};

/// The global names the old resolver wrote: the `&str` constants of `probe_common::layout`.
mod names {
    pub const ZAP_VMA_ARG: &str = "ZAP_VMA_ARG";
    pub const FOLIO_FLAGS_OFF: &str = "FOLIO_FLAGS_OFF";
    pub const FOLIO_REFCOUNT_OFF: &str = "FOLIO_REFCOUNT_OFF";
    pub const FOLIO_PINCOUNT_OFF: &str = "FOLIO_PINCOUNT_OFF";
    pub const PG_HEAD_BIT: &str = "PG_HEAD_BIT";
    pub const FOLIO_ORDER_OFF: &str = "FOLIO_ORDER_OFF";
    pub const PAGE_TAIL_OFF: &str = "PAGE_TAIL_OFF";
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
    pub const ANON_VMA_ROOT_OFF: &str = "ANON_VMA_ROOT_OFF";
    pub const TASK_GROUP_LEADER_OFF: &str = "TASK_GROUP_LEADER_OFF";
    pub const TASK_START_TIME_OFF: &str = "TASK_START_TIME_OFF";
    pub const TASK_PID_OFF: &str = "TASK_PID_OFF";
    pub const PT_REGS_ORIG_AX_OFF: &str = "PT_REGS_ORIG_AX_OFF";
    pub const PT_REGS_IP_OFF: &str = "PT_REGS_IP_OFF";
    pub const PT_REGS_SP_OFF: &str = "PT_REGS_SP_OFF";
    pub const PT_REGS_DI_OFF: &str = "PT_REGS_DI_OFF";
    pub const PT_REGS_SI_OFF: &str = "PT_REGS_SI_OFF";
    pub const PT_REGS_DX_OFF: &str = "PT_REGS_DX_OFF";
    pub const VM_FAULT_PAGE_OFF: &str = "VM_FAULT_PAGE_OFF";
    pub const VM_FAULT_FLAGS_OFF: &str = "VM_FAULT_FLAGS_OFF";
    pub const VM_FAULT_ADDRESS_OFF: &str = "VM_FAULT_ADDRESS_OFF";
    pub const TASK_MM_OFF: &str = "TASK_MM_OFF";
    pub const MM_FLAGS_OFF: &str = "MM_FLAGS_OFF";
    pub const FOLL_LONGTERM: &str = "FOLL_LONGTERM";
}

/// Offsets (bytes) and bit numbers, `None` when this kernel's BTF does not have them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Layout {
    pub folio_flags: Option<u32>,
    pub folio_refcount: Option<u32>,
    pub folio_pincount: Option<u32>,
    pub pg_head_bit: Option<u32>,
    pub folio_order: Option<u32>,
    pub page_tail: Option<u32>,
    pub page_struct_size: Option<u32>,
    pub folio_mapping: Option<u32>,
    pub folio_index: Option<u32>,
    pub mapping_host: Option<u32>,
    pub anon_vma_root: Option<u32>,
    pub vma_flags: Option<u32>,
    pub vma_start: Option<u32>,
    pub vma_end: Option<u32>,
    pub vma_pgoff: Option<u32>,
    pub vma_file: Option<u32>,
    pub file_inode: Option<u32>,
    pub inode_ino: Option<u32>,
    pub inode_sb: Option<u32>,
    pub sb_dev: Option<u32>,
    pub sb_magic: Option<u32>,
    pub task_group_leader: Option<u32>,
    pub task_start_time: Option<u32>,
    pub task_pid: Option<u32>,
    pub task_mm: Option<u32>,
    pub mm_flags: Option<u32>,
    pub pt_regs_orig_ax: Option<u32>,
    pub pt_regs_ip: Option<u32>,
    pub pt_regs_sp: Option<u32>,
    pub pt_regs_di: Option<u32>,
    pub pt_regs_si: Option<u32>,
    pub pt_regs_dx: Option<u32>,
    pub vm_fault_flags: Option<u32>,
    pub vm_fault_page: Option<u32>,
    pub vm_fault_address: Option<u32>,
    /// Where the VMA is among the single-VMA zap function's arguments (its prototype in BTF).
    pub zap_vma_arg: Option<u32>,
}

impl Layout {
    pub fn resolve(btf: &KernelBtf) -> Self {
        let m = |s: &str, f: &str| btf.member_offset(s, f);
        Self {
            folio_flags: m("folio", "flags"),
            folio_refcount: m("folio", "_refcount"),
            folio_pincount: folio_pincount(btf),
            pg_head_bit: btf
                .enum_value("PG_head")
                .and_then(|v| u32::try_from(v).ok()),
            // 6.6 moved the order from its own byte into the low byte of the first tail page's
            // flags (`folio_order()` reads `_flags_1 & 0xff`); little-endian, so at its offset.
            folio_order: m("folio", "_folio_order").or_else(|| m("folio", "_flags_1")),
            // 7.2 re-encoded compound_head as compound_info; bit 0 still marks a tail.
            page_tail: m("page", "compound_head").or_else(|| m("page", "compound_info")),
            page_struct_size: btf.struct_size("page"),
            folio_mapping: m("folio", "mapping"),
            // 7.2 renamed page.index to __folio_index; the folio keeps `index`.
            folio_index: m("folio", "index").or_else(|| m("folio", "__folio_index")),
            mapping_host: m("address_space", "host"),
            anon_vma_root: m("anon_vma", "root"),
            // 6.12 wraps vm_flags in a union with __vm_flags; 7.2 adds a bitmap view. Same word.
            vma_flags: m("vm_area_struct", "vm_flags"),
            vma_start: m("vm_area_struct", "vm_start"),
            vma_end: m("vm_area_struct", "vm_end"),
            vma_pgoff: m("vm_area_struct", "vm_pgoff"),
            vma_file: m("vm_area_struct", "vm_file"),
            file_inode: m("file", "f_inode"),
            inode_ino: m("inode", "i_ino"),
            inode_sb: m("inode", "i_sb"),
            sb_dev: m("super_block", "s_dev"),
            sb_magic: m("super_block", "s_magic"),
            task_group_leader: m("task_struct", "group_leader"),
            task_start_time: m("task_struct", "start_time"),
            task_pid: m("task_struct", "pid"),
            task_mm: m("task_struct", "mm"),
            // 7.2 turned it into a bitmap (mm_flags_t); the first word keeps the same bits.
            mm_flags: m("mm_struct", "flags").or_else(|| m("mm_struct", "__mm_flags")),
            pt_regs_orig_ax: m("pt_regs", "orig_ax"),
            pt_regs_ip: m("pt_regs", "ip"),
            pt_regs_sp: m("pt_regs", "sp"),
            pt_regs_di: m("pt_regs", "di"),
            pt_regs_si: m("pt_regs", "si"),
            pt_regs_dx: m("pt_regs", "dx"),
            vm_fault_flags: m("vm_fault", "flags"),
            vm_fault_page: m("vm_fault", "page"),
            vm_fault_address: m("vm_fault", "address"),
            // The zap hook's ladder, in its order (`probes`): the first function this kernel
            // has is the one attached.
            zap_vma_arg: if btf.has_function("zap_page_range_single") {
                Some(0)
            } else if btf.has_function("zap_vma_range_batched") {
                Some(1)
            } else {
                None
            },
        }
    }

    /// Whether `folio_maybe_dma_pinned()` can be evaluated in the kernel.
    pub fn has_folio_pin_test(&self) -> bool {
        self.globals(&FollFlags::legacy()).0 & valid::FOLIO_PIN_TEST != 0
    }

    /// The `LAYOUT_VALID` bit set and every global to write into the eBPF object (0 stands in
    /// for an unknown offset; its group's bit is then clear and the programs never read it).
    pub fn globals(&self, foll: &FollFlags) -> (u32, Vec<(&'static str, u32)>) {
        let groups: [(u32, Vec<Global>); 11] = [
            (
                valid::ZAP_VMA_ARG,
                vec![(names::ZAP_VMA_ARG, self.zap_vma_arg)],
            ),
            (
                valid::FOLIO_PIN_TEST,
                vec![
                    (names::FOLIO_FLAGS_OFF, self.folio_flags),
                    (names::FOLIO_REFCOUNT_OFF, self.folio_refcount),
                    (names::FOLIO_PINCOUNT_OFF, self.folio_pincount),
                    (names::PG_HEAD_BIT, self.pg_head_bit),
                ],
            ),
            (
                valid::FOLIO_ORDER,
                vec![
                    (names::FOLIO_FLAGS_OFF, self.folio_flags),
                    (names::PG_HEAD_BIT, self.pg_head_bit),
                    (names::FOLIO_ORDER_OFF, self.folio_order),
                    (names::PAGE_TAIL_OFF, self.page_tail),
                    (names::PAGE_STRUCT_SIZE, self.page_struct_size),
                ],
            ),
            (
                valid::PIN_OWNER,
                vec![
                    (names::FOLIO_MAPPING_OFF, self.folio_mapping),
                    (names::ANON_VMA_ROOT_OFF, self.anon_vma_root),
                ],
            ),
            (
                valid::VMA_FILE,
                vec![
                    (names::VMA_FLAGS_OFF, self.vma_flags),
                    (names::VMA_START_OFF, self.vma_start),
                    (names::VMA_END_OFF, self.vma_end),
                    (names::VMA_PGOFF_OFF, self.vma_pgoff),
                    (names::VMA_FILE_OFF, self.vma_file),
                    (names::FILE_INODE_OFF, self.file_inode),
                    (names::INODE_INO_OFF, self.inode_ino),
                    (names::INODE_SB_OFF, self.inode_sb),
                    (names::SB_DEV_OFF, self.sb_dev),
                    (names::SB_MAGIC_OFF, self.sb_magic),
                ],
            ),
            (
                valid::FOLIO_FILE,
                vec![
                    (names::FOLIO_MAPPING_OFF, self.folio_mapping),
                    (names::FOLIO_INDEX_OFF, self.folio_index),
                    (names::MAPPING_HOST_OFF, self.mapping_host),
                    (names::INODE_INO_OFF, self.inode_ino),
                    (names::INODE_SB_OFF, self.inode_sb),
                    (names::SB_DEV_OFF, self.sb_dev),
                    (names::SB_MAGIC_OFF, self.sb_magic),
                ],
            ),
            (
                valid::TASK_START,
                vec![
                    (names::TASK_GROUP_LEADER_OFF, self.task_group_leader),
                    (names::TASK_START_TIME_OFF, self.task_start_time),
                    (names::TASK_PID_OFF, self.task_pid),
                ],
            ),
            (
                valid::MM_FLAGS,
                vec![
                    (names::TASK_MM_OFF, self.task_mm),
                    (names::MM_FLAGS_OFF, self.mm_flags),
                ],
            ),
            (
                valid::VM_FAULT,
                vec![
                    (names::VM_FAULT_PAGE_OFF, self.vm_fault_page),
                    (names::VM_FAULT_FLAGS_OFF, self.vm_fault_flags),
                    (names::VM_FAULT_ADDRESS_OFF, self.vm_fault_address),
                ],
            ),
            (
                valid::FOLL,
                vec![(names::FOLL_LONGTERM, foll.value("FOLL_LONGTERM"))],
            ),
            (
                valid::PT_REGS,
                vec![
                    (names::PT_REGS_ORIG_AX_OFF, self.pt_regs_orig_ax),
                    (names::PT_REGS_IP_OFF, self.pt_regs_ip),
                    (names::PT_REGS_SP_OFF, self.pt_regs_sp),
                    (names::PT_REGS_DI_OFF, self.pt_regs_di),
                    (names::PT_REGS_SI_OFF, self.pt_regs_si),
                    (names::PT_REGS_DX_OFF, self.pt_regs_dx),
                ],
            ),
        ];
        let mut bits = 0;
        let mut globals: Vec<(&'static str, u32)> = Vec::new();
        for (bit, fields) in groups {
            if fields.iter().all(|(_, v)| v.is_some()) {
                bits |= bit;
            }
            for (name, value) in fields {
                if !globals.iter().any(|(n, _)| *n == name) {
                    globals.push((name, value.unwrap_or(0)));
                }
            }
        }
        (bits, globals)
    }
}

/// An eBPF global's name and its value, when BTF had it.
type Global = (&'static str, Option<u32>);

/// `folio._pincount` exists from 6.2 on (and as a folio alias on 6.1 Debian); older kernels keep
/// the count in the first tail page as `page.compound_pincount`, i.e. one `struct page` further.
fn folio_pincount(btf: &KernelBtf) -> Option<u32> {
    btf.member_offset("folio", "_pincount").or_else(|| {
        let in_tail = btf.member_offset("page", "compound_pincount")?;
        Some(btf.struct_size("page")? + in_tail)
    })
}
