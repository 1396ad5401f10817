//! Kernel struct layout pinwatch's eBPF programs need, resolved from BTF.
//!
//! Each field is resolved on its own, so a kernel that renamed one field degrades only the
//! classification that reads it. The layouts differ across 6.1 / 6.12 / 7.2 (kernel-facts §3.2).

use serde::Serialize;

use super::btf::KernelBtf;

/// Offsets (bytes) and bit numbers, `None` when this kernel's BTF does not have them.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Layout {
    pub folio_flags: Option<u32>,
    pub folio_refcount: Option<u32>,
    pub folio_pincount: Option<u32>,
    pub pg_head_bit: Option<u32>,
    pub vma_flags: Option<u32>,
    pub vma_file: Option<u32>,
    pub vm_fault_flags: Option<u32>,
    pub vm_fault_page: Option<u32>,
}

impl Layout {
    pub fn resolve(btf: &KernelBtf) -> Self {
        Self {
            folio_flags: btf.member_offset("folio", "flags"),
            folio_refcount: btf.member_offset("folio", "_refcount"),
            folio_pincount: folio_pincount(btf),
            pg_head_bit: btf
                .enum_value("PG_head")
                .and_then(|v| u32::try_from(v).ok()),
            // 6.12 wraps vm_flags in a union with __vm_flags; 7.2 adds a bitmap view. Same word.
            vma_flags: btf.member_offset("vm_area_struct", "vm_flags"),
            vma_file: btf.member_offset("vm_area_struct", "vm_file"),
            vm_fault_flags: btf.member_offset("vm_fault", "flags"),
            vm_fault_page: btf.member_offset("vm_fault", "page"),
        }
    }

    /// The fields the in-kernel `folio_maybe_dma_pinned()` test reads, when all are known.
    pub fn folio_pin_test(&self) -> Option<FolioPinTest> {
        Some(FolioPinTest {
            flags: self.folio_flags?,
            refcount: self.folio_refcount?,
            pincount: self.folio_pincount?,
            pg_head_bit: self.pg_head_bit?,
        })
    }
}

/// Everything `probe-ebpf`'s `layout::folio_maybe_dma_pinned` needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolioPinTest {
    pub flags: u32,
    pub refcount: u32,
    pub pincount: u32,
    pub pg_head_bit: u32,
}

/// `folio._pincount` exists from 6.2 on (and as a folio alias on 6.1 Debian); older kernels keep
/// the count in the first tail page as `page.compound_pincount`, i.e. one `struct page` further.
fn folio_pincount(btf: &KernelBtf) -> Option<u32> {
    btf.member_offset("folio", "_pincount").or_else(|| {
        let in_tail = btf.member_offset("page", "compound_pincount")?;
        Some(btf.struct_size("page")? + in_tail)
    })
}
