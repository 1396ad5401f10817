//! Kernel struct layout pinwatch's eBPF programs need, resolved from BTF.
//!
//! Each fact of `probe_common::kernel_facts!` is resolved on its own, and the eBPF side uses a
//! group of facts only when all of them were found, so a kernel that renamed one field degrades
//! only what reads it. The layouts differ across 6.1 / 6.12 / 7.2 (each kernel's `layout` in
//! xtask/src/expect.rs).

use probe_common::layout::valid;
use serde::Serialize;

use super::{btf::KernelBtf, flags::FollFlags, source::source};
use crate::hazards::Hazard;

/// One fact of the table as the loader sees it: its eBPF global, the `valid` groups that read
/// it, and its value on this kernel (`None`: unknown).
struct Fact {
    global: &'static str,
    groups: u32,
    value: Option<u32>,
}

/// `Layout` (one field per `btf` fact, named as doctor prints it), its resolver, and every fact
/// with its groups and value, from the table.
macro_rules! layout {
    (
        btf { $( $(#[$doc:meta])* $global:ident => $field:ident in [$($group:ident),+]
            = $source:ident $args:tt; )* }
        foll { $( $(#[$fdoc:meta])* $fglobal:ident in [$($fgroup:ident),+]
            = foll($flag:literal); )* }
    ) => {
        /// Offsets (bytes) and bit numbers, `None` when this kernel's BTF does not have them.
        #[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
        pub struct Layout {
            $( $(#[$doc])* pub $field: Option<u32>, )*
        }

        impl Layout {
            /// Each `btf` fact from this kernel's BTF, on its own.
            pub fn resolve(btf: &KernelBtf) -> Self {
                Self {
                    $( $field: source!($source $args).resolve(btf), )*
                }
            }

            /// Every fact of the table, in its order; `foll` gives the flag values.
            fn facts(&self, foll: &FollFlags) -> Vec<Fact> {
                vec![
                    $( Fact {
                        global: stringify!($global),
                        groups: $(valid::$group)|+,
                        value: self.$field,
                    }, )*
                    $( Fact {
                        global: stringify!($fglobal),
                        groups: $(valid::$fgroup)|+,
                        value: foll.value($flag),
                    }, )*
                ]
            }
        }
    };
}

probe_common::kernel_facts!(layout);

impl Layout {
    /// Whether `folio_maybe_dma_pinned()` can be evaluated in the kernel.
    pub fn has_folio_pin_test(&self) -> bool {
        self.globals(&FollFlags::legacy()).0 & valid::FOLIO_PIN_TEST != 0
    }

    /// The `LAYOUT_VALID` bit set and every global to write into the eBPF object (0 stands in
    /// for an unknown fact; its groups' bits are then clear and the programs never read it).
    pub fn globals(&self, foll: &FollFlags) -> (u32, Vec<(&'static str, u32)>) {
        let facts = self.facts(foll);
        // A group is valid when some fact is read by it and none of its facts is unknown.
        let (read, unknown) = facts.iter().fold((0, 0), |(read, unknown), fact| {
            let missing = if fact.value.is_none() { fact.groups } else { 0 };
            (read | fact.groups, unknown | missing)
        });
        let globals = facts
            .iter()
            .map(|fact| (fact.global, fact.value.unwrap_or(0)))
            .collect();
        (read & !unknown, globals)
    }
}

/// The layout groups each hazard's programs read. Without one, those programs refuse to
/// classify (its `LAYOUT_VALID` bit is clear), so the hazard is refused with the group's name
/// instead of being reported from guesses.
const HAZARD_NEEDS: &[(Hazard, u32, &str)] = &[
    (
        Hazard::LongtermFilePin,
        valid::FOLL,
        "layout: FOLL_LONGTERM value",
    ),
    (
        Hazard::LongtermFilePin,
        valid::VMA_FILE,
        "layout: vma → file → inode → super_block",
    ),
    (
        Hazard::LongtermFilePin,
        valid::PT_REGS,
        "layout: pt_regs (which system call pinned)",
    ),
    (
        Hazard::PinnedFolioCleaned,
        valid::FOLIO_PIN_TEST,
        "layout: folio _refcount, _pincount, flags, PG_head",
    ),
    (
        Hazard::PinnedFolioCleaned,
        valid::FOLIO_FILE,
        "layout: folio → mapping → inode",
    ),
    (
        Hazard::ForkWithPins,
        valid::MM_FLAGS,
        "layout: task → mm → flags (MMF_HAS_PINNED)",
    ),
    (
        Hazard::ForkWithPins,
        valid::FOLL,
        "layout: FOLL_LONGTERM value",
    ),
    (
        Hazard::PinnedCow,
        valid::VM_FAULT,
        "layout: vm_fault page, flags, address",
    ),
    (
        Hazard::PinnedCow,
        valid::FOLIO_PIN_TEST,
        "layout: folio _refcount, _pincount, flags, PG_head",
    ),
    (
        Hazard::EarlyPfnUntrack,
        valid::VMA_FILE,
        "layout: vma flags and range",
    ),
    (
        Hazard::PinnedPageDiscarded,
        valid::FOLIO_PIN_TEST,
        "layout: folio _refcount, _pincount, flags, PG_head",
    ),
    (
        Hazard::PinnedPageDiscarded,
        valid::FOLIO_FILE,
        "layout: folio → mapping → host inode, index",
    ),
    (
        Hazard::GuestMemfdPin,
        valid::VMA_FILE,
        "layout: vma → file → inode → superblock magic",
    ),
];

impl Layout {
    /// What BTF did not give that `hazard` needs (empty: its programs can classify).
    pub fn missing_for(&self, hazard: Hazard, foll: &FollFlags) -> Vec<&'static str> {
        let (bits, _) = self.globals(foll);
        HAZARD_NEEDS
            .iter()
            .filter(|(h, bit, _)| *h == hazard && bits & bit == 0)
            .map(|(_, _, what)| *what)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Layout {
        Layout {
            folio_flags: Some(0),
            folio_refcount: Some(52),
            folio_pincount: Some(92),
            pg_head_bit: Some(6),
            folio_order: Some(64),
            page_tail: Some(8),
            page_struct_size: Some(64),
            folio_mapping: Some(24),
            folio_index: Some(32),
            mapping_host: Some(0),
            anon_vma_root: Some(0),
            vma_flags: Some(32),
            vma_start: Some(0),
            vma_end: Some(8),
            vma_pgoff: Some(120),
            vma_file: Some(128),
            file_inode: Some(40),
            inode_ino: Some(64),
            inode_sb: Some(40),
            sb_dev: Some(16),
            sb_magic: Some(96),
            task_group_leader: Some(1000),
            task_start_time: Some(2000),
            task_pid: Some(2400),
            task_mm: Some(3000),
            mm_flags: Some(904),
            pt_regs_orig_ax: Some(120),
            pt_regs_ip: Some(128),
            pt_regs_sp: Some(152),
            pt_regs_di: Some(112),
            pt_regs_si: Some(104),
            pt_regs_dx: Some(96),
            vm_fault_flags: Some(40),
            vm_fault_page: Some(80),
            vm_fault_address: Some(24),
            zap_vma_arg: Some(0),
            madvise_behavior: Some(8),
        }
    }

    #[test]
    fn a_complete_layout_validates_every_group() {
        let (bits, globals) = full().globals(&FollFlags::legacy());
        assert_eq!(bits, 0b1111_1111_1111);
        assert!(globals.contains(&("FOLL_LONGTERM", 0x10000)));
        assert!(globals.contains(&("FOLIO_PINCOUNT_OFF", 92)));
        let mut unique: Vec<_> = globals.iter().map(|(n, _)| *n).collect();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            globals.len(),
            "shared offsets are written once"
        );
    }

    #[test]
    fn a_missing_offset_refuses_exactly_the_hazards_that_read_it() {
        let foll = FollFlags::legacy();
        for hazard in Hazard::ALL {
            assert!(full().missing_for(hazard, &foll).is_empty(), "{hazard}");
        }
        // inode → super_block feeds file identity: file pins, cleaned or discarded folios, PFN
        // ranges and guest_memfd pins (VMA group) are refused, fork and COW are not.
        let layout = Layout {
            inode_sb: None,
            ..full()
        };
        let refused: Vec<Hazard> = Hazard::ALL
            .into_iter()
            .filter(|h| !layout.missing_for(*h, &foll).is_empty())
            .collect();
        assert_eq!(
            refused,
            [
                Hazard::LongtermFilePin,
                Hazard::PinnedFolioCleaned,
                Hazard::EarlyPfnUntrack,
                Hazard::PinnedPageDiscarded,
                Hazard::GuestMemfdPin,
            ]
        );
        let no_vm_fault = Layout {
            vm_fault_page: None,
            ..full()
        };
        assert_eq!(
            no_vm_fault.missing_for(Hazard::PinnedCow, &foll),
            ["layout: vm_fault page, flags, address"]
        );
        assert!(
            Layout::default()
                .missing_for(Hazard::ForkWithPins, &foll)
                .len()
                == 1
        );
    }

    #[test]
    fn a_missing_field_clears_only_its_groups() {
        let layout = Layout {
            inode_sb: None,
            ..full()
        };
        let (bits, globals) = layout.globals(&FollFlags::legacy());
        assert_eq!(bits & valid::VMA_FILE, 0);
        assert_eq!(bits & valid::FOLIO_FILE, 0);
        assert_ne!(bits & valid::FOLIO_PIN_TEST, 0);
        assert!(globals.contains(&("INODE_SB_OFF", 0)));
        assert!(layout.has_folio_pin_test());
        assert!(
            !Layout {
                pg_head_bit: None,
                ..full()
            }
            .has_folio_pin_test()
        );
    }
}

/// The table itself: each fact declared once, each read by some group, and the eBPF object
/// declaring exactly the globals it names.
#[cfg(test)]
mod table_tests {
    use std::collections::BTreeSet;

    use object::{Object as _, ObjectSection as _, ObjectSymbol as _, SymbolKind};
    use probe_common::event::{IDLE, RING_WAKEUP_BYTES, TRACK_SPAWNS};

    use super::*;

    /// Every `valid` bit.
    const ALL_GROUPS: u32 = 0b1111_1111_1111;

    fn facts() -> Vec<Fact> {
        Layout::default().facts(&FollFlags::legacy())
    }

    #[test]
    fn every_fact_is_declared_once_and_read_by_a_group() {
        let facts = facts();
        let globals: BTreeSet<&str> = facts.iter().map(|f| f.global).collect();
        assert_eq!(globals.len(), facts.len(), "a global named twice");
        assert!(!globals.contains(probe_common::layout::LAYOUT_VALID));
        for fact in &facts {
            assert_ne!(fact.groups, 0, "{} is read by no group", fact.global);
            assert_eq!(fact.groups & !ALL_GROUPS, 0, "{}", fact.global);
        }
        let read = facts.iter().fold(0, |bits, f| bits | f.groups);
        assert_eq!(read, ALL_GROUPS, "a `valid` group no fact belongs to");
        let fields = serde_json::to_value(Layout::default()).unwrap();
        let fields = fields.as_object().unwrap();
        assert!(fields.values().all(serde_json::Value::is_null));
        assert!(
            fields.len() < facts.len(),
            "FOLL_LONGTERM has no layout field"
        );
    }

    /// The globals the eBPF object declares in `.rodata` as `Global<u32>` (4-byte objects) are
    /// the table's, `LAYOUT_VALID` and the event module's switches: no more, no fewer.
    #[test]
    fn the_ebpf_object_declares_exactly_the_tables_globals() {
        let bytes = crate::loader::object_bytes();
        if bytes.is_empty() {
            eprintln!("skipped: built with AYA_BUILD_SKIP=1, no eBPF object to read");
            return;
        }
        let elf = object::File::parse(bytes).expect("the eBPF object is ELF");
        let rodata = elf.section_by_name(".rodata").expect("a .rodata section");
        let declared: BTreeSet<&str> = elf
            .symbols()
            .filter(|s| s.is_global() && s.kind() == SymbolKind::Data && s.size() == 4)
            .filter(|s| s.section_index() == Some(rodata.index()))
            .filter_map(|s| s.name().ok())
            .collect();
        let mut expected: BTreeSet<&str> = facts().iter().map(|f| f.global).collect();
        expected.insert(probe_common::layout::LAYOUT_VALID);
        expected.extend([IDLE, RING_WAKEUP_BYTES, TRACK_SPAWNS]);
        assert_eq!(declared, expected);
    }
}
