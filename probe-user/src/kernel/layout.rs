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

            /// This layout with one field, named as doctor prints it, set to `value`.
            #[cfg(test)]
            fn with(mut self, field: &str, value: Option<u32>) -> Self {
                match field {
                    $( stringify!($field) => self.$field = value, )*
                    _ => panic!("no layout field {field}"),
                }
                self
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
        }
    }

    #[test]
    fn a_complete_layout_validates_every_group() {
        let (bits, globals) = full().globals(&FollFlags::legacy());
        assert_eq!(bits, 0b111_1111_1111);
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
        // inode → super_block feeds file identity: file pins, cleaned folios, PFN ranges (VMA
        // group) are refused, fork and COW are not.
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
                Hazard::EarlyPfnUntrack
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

#[cfg(test)]
mod legacy;

/// The table gives every global the value the resolver it replaced gave: on this host's kernel
/// and on every BTF file `PINWATCH_EQUIVALENCE_BTF` lists (colon-separated; e.g. the `.BTF`
/// sections of the VM matrix's 6.1, 6.12 and 7.2 kernels), whole and with each field missing.
#[cfg(test)]
mod equivalence {
    use std::path::Path;

    use super::*;

    fn sorted(globals: (u32, Vec<(&'static str, u32)>)) -> (u32, Vec<(&'static str, u32)>) {
        let (bits, mut globals) = globals;
        globals.sort_unstable();
        (bits, globals)
    }

    fn assert_same(new: &Layout, old: &legacy::Layout, foll: &FollFlags, what: &str) {
        assert_eq!(
            serde_json::to_value(new).unwrap(),
            serde_json::to_value(old).unwrap(),
            "{what}: doctor's layout"
        );
        assert_eq!(
            sorted(new.globals(foll)),
            sorted(old.globals(foll)),
            "{what}: LAYOUT_VALID and globals"
        );
        assert_eq!(new.has_folio_pin_test(), old.has_folio_pin_test(), "{what}");
        for hazard in Hazard::ALL {
            let old_missing: Vec<&str> = super::HAZARD_NEEDS
                .iter()
                .filter(|(h, bit, _)| *h == hazard && old.globals(foll).0 & bit == 0)
                .map(|(_, _, what)| *what)
                .collect();
            assert_eq!(
                new.missing_for(hazard, foll),
                old_missing,
                "{what}: {hazard}"
            );
        }
    }

    fn check(path: &Path) -> bool {
        let Ok(btf) = KernelBtf::load(path) else {
            eprintln!("skipped {}: no readable BTF", path.display());
            return false;
        };
        let (new, old) = (Layout::resolve(&btf), legacy::Layout::resolve(&btf));
        let what = path.display().to_string();
        for foll in [
            FollFlags::resolve(&btf),
            FollFlags::legacy(),
            FollFlags {
                source: super::super::flags::FlagSource::Btf,
                values: Vec::new(),
            },
        ] {
            assert_same(&new, &old, &foll, &what);
            let fields = serde_json::to_value(&new).unwrap();
            for field in fields.as_object().unwrap().keys() {
                let new = new.clone().with(field, None);
                let mut json = serde_json::to_value(&old).unwrap();
                json[field] = serde_json::Value::Null;
                let old: legacy::Layout = serde_json::from_value(json).unwrap();
                assert_same(&new, &old, &foll, &format!("{what} without {field}"));
            }
        }
        eprintln!("{what}: {}", serde_json::to_string(&new).unwrap());
        true
    }

    #[test]
    fn the_table_resolves_every_global_as_the_old_resolver_did() {
        let mut paths = vec![super::super::btf::VMLINUX_BTF.to_owned()];
        if let Ok(more) = std::env::var("PINWATCH_EQUIVALENCE_BTF") {
            paths.extend(more.split(':').filter(|p| !p.is_empty()).map(str::to_owned));
        }
        let checked = paths.iter().filter(|p| check(Path::new(p))).count();
        eprintln!("{checked} of {} BTF files compared", paths.len());
        assert_eq!(
            Layout::default().globals(&FollFlags::legacy()).0,
            legacy::Layout::default().globals(&FollFlags::legacy()).0
        );
    }
}
