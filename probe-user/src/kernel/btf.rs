//! Queries on the kernel's BTF (`/sys/kernel/btf/vmlinux`) through the `btf-rs` parser.

use std::path::{Path, PathBuf};

use btf_rs::{Btf, BtfType, Type};
use fallible_iterator::FallibleIterator as _;

/// Where the running kernel exposes its own type information.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("no kernel BTF at {path} (the kernel needs CONFIG_DEBUG_INFO_BTF=y)")]
    Missing { path: PathBuf },
    #[error("cannot parse kernel BTF at {path}: {source}")]
    Parse {
        path: PathBuf,
        source: btf_rs::Error,
    },
}

/// A parsed BTF blob with the few queries pinwatch needs.
pub struct KernelBtf {
    btf: Btf,
}

impl KernelBtf {
    pub fn load(path: &Path) -> Result<Self, BtfError> {
        if !path.exists() {
            return Err(BtfError::Missing {
                path: path.to_owned(),
            });
        }
        let btf = Btf::from_file(path).map_err(|source| BtfError::Parse {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self { btf })
    }

    /// Byte offset of `member` in `struct_name`, looking through anonymous structs and unions
    /// (the kernel nests most fields of `struct page`/`folio` in them).
    pub fn member_offset(&self, struct_name: &str, member: &str) -> Option<u32> {
        let strukt = self.struct_by_name(struct_name)?;
        self.find_member(&strukt, member).map(|bits| bits / 8)
    }

    /// Size in bytes of a named struct.
    pub fn struct_size(&self, struct_name: &str) -> Option<u32> {
        self.struct_by_name(struct_name).map(|s| s.size() as u32)
    }

    /// Value of an enumerator, searched in every enum (named or anonymous): the FOLL_* flags
    /// live in an anonymous enum on 6.5+.
    pub fn enum_value(&self, enumerator: &str) -> Option<u64> {
        let mut types = self.btf.type_iter();
        // A type that fails to decode ends the scan: the answer is then "unknown".
        while let Ok(Some(ty)) = types.next() {
            let found = match ty {
                Type::Enum(e) => e
                    .members
                    .iter()
                    .find(|m| self.named(*m, enumerator))
                    .map(|m| u64::from(m.val())),
                Type::Enum64(e) => e
                    .members
                    .iter()
                    .find(|m| self.named(*m, enumerator))
                    .map(|m| m.val()),
                _ => None,
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// Whether the kernel has a BTF `FUNC` of that name, the precondition for fentry.
    pub fn has_function(&self, name: &str) -> bool {
        self.btf
            .resolve_types_by_name(name)
            .is_ok_and(|types| types.iter().any(|t| matches!(t, Type::Func(_))))
    }

    fn named(&self, ty: &dyn BtfType, name: &str) -> bool {
        self.btf.resolve_name(ty).is_ok_and(|n| n == name)
    }

    fn struct_by_name(&self, name: &str) -> Option<btf_rs::Struct> {
        let types = self.btf.resolve_types_by_name(name).ok()?;
        types.into_iter().find_map(|t| match t {
            // Skip forward-declared empties: the real definition has members.
            Type::Struct(s) if !s.members.is_empty() => Some(s),
            _ => None,
        })
    }

    /// The struct or union a member's type names, through const/volatile/typedef: 6.1 wraps
    /// `vm_fault`'s first fields in an anonymous `const struct`.
    fn aggregate_of(&self, member: &btf_rs::Member) -> Option<btf_rs::Struct> {
        let mut ty = self.btf.resolve_chained_type(member).ok()?;
        for _ in 0..8 {
            ty = match ty {
                Type::Struct(s) | Type::Union(s) => return Some(s),
                Type::Const(ref q) | Type::Volatile(ref q) | Type::Restrict(ref q) => {
                    self.btf.resolve_chained_type(q).ok()?
                }
                Type::Typedef(ref t) => self.btf.resolve_chained_type(t).ok()?,
                _ => return None,
            };
        }
        None
    }

    /// Bit offset of `member`, recursing into anonymous members.
    fn find_member(&self, strukt: &btf_rs::Struct, member: &str) -> Option<u32> {
        for m in &strukt.members {
            let name = self.btf.resolve_name(m).unwrap_or_default();
            if name == member {
                return Some(m.bit_offset());
            }
            if name.is_empty() {
                let Some(inner) = self.aggregate_of(m) else {
                    continue;
                };
                if let Some(bits) = self.find_member(&inner, member) {
                    return Some(m.bit_offset() + bits);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal BTF blob builder: enough kinds to model `struct folio`'s anonymous unions.
    struct Blob {
        types: Vec<u8>,
        strings: Vec<u8>,
    }

    impl Blob {
        fn new() -> Self {
            Self {
                types: Vec::new(),
                strings: vec![0],
            }
        }
        fn name(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            off
        }
        fn words(&mut self, words: &[u32]) {
            for w in words {
                self.types.extend_from_slice(&w.to_le_bytes());
            }
        }
        fn int(&mut self, name: &str) {
            let n = self.name(name);
            self.words(&[n, 1 << 24, 4, 32]);
        }
        /// Members are (name, type id, bit offset).
        fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) {
            let n = self.name(name);
            self.words(&[n, (4 << 24) | members.len() as u32, size]);
            for (m, ty, bits) in members {
                let mn = self.name(m);
                self.words(&[mn, *ty, *bits]);
            }
        }
        /// BTF_KIND_CONST (10) of type `ty`.
        fn konst(&mut self, ty: u32) {
            self.words(&[0, 10 << 24, ty]);
        }
        fn enumeration(&mut self, name: &str, values: &[(&str, u32)]) {
            let n = self.name(name);
            self.words(&[n, (6 << 24) | values.len() as u32, 4]);
            for (v, val) in values {
                let vn = self.name(v);
                self.words(&[vn, *val]);
            }
        }
        fn bytes(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&0xeb9f_u16.to_le_bytes());
            out.extend_from_slice(&[1, 0]);
            for w in [
                24u32,
                0,
                self.types.len() as u32,
                self.types.len() as u32,
                self.strings.len() as u32,
            ] {
                out.extend_from_slice(&w.to_le_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    /// `struct folio { int flags; union { struct { int pad; int _refcount; }; }; }` plus
    /// an anonymous enum holding FOLL_PIN and a named one holding PG_head.
    fn sample() -> KernelBtf {
        let mut b = Blob::new();
        b.int("int"); // 1
        b.strukt("", 8, &[("pad", 1, 0), ("_refcount", 1, 32)]); // 2
        b.strukt("folio", 16, &[("flags", 1, 0), ("", 2, 64)]); // 3
        b.enumeration("pageflags", &[("PG_locked", 0), ("PG_head", 6)]); // 4
        b.enumeration("", &[("FOLL_WRITE", 1), ("FOLL_PIN", 0x80000)]); // 5
        KernelBtf {
            btf: Btf::from_bytes(&b.bytes()).expect("valid synthetic BTF"),
        }
    }

    #[test]
    fn members_inside_anonymous_aggregates_add_their_offsets() {
        let btf = sample();
        assert_eq!(btf.member_offset("folio", "flags"), Some(0));
        assert_eq!(btf.member_offset("folio", "_refcount"), Some(12));
        assert_eq!(btf.member_offset("folio", "_pincount"), None);
        assert_eq!(btf.member_offset("no_such_struct", "flags"), None);
        assert_eq!(btf.struct_size("folio"), Some(16));
    }

    /// `struct vm_fault { const struct { long vma; long address; }; int flags; }` as in 6.1.
    #[test]
    fn members_inside_const_anonymous_structs_are_found() {
        let mut b = Blob::new();
        b.int("int"); // 1
        b.strukt("", 16, &[("vma", 1, 0), ("address", 1, 64)]); // 2
        b.konst(2); // 3
        b.strukt("vm_fault", 24, &[("", 3, 0), ("flags", 1, 128)]); // 4
        let btf = KernelBtf {
            btf: Btf::from_bytes(&b.bytes()).unwrap(),
        };
        assert_eq!(btf.member_offset("vm_fault", "address"), Some(8));
        assert_eq!(btf.member_offset("vm_fault", "flags"), Some(16));
    }

    #[test]
    fn enumerators_are_found_in_named_and_anonymous_enums() {
        let btf = sample();
        assert_eq!(btf.enum_value("PG_head"), Some(6));
        assert_eq!(btf.enum_value("FOLL_PIN"), Some(0x80000));
        assert_eq!(btf.enum_value("FOLL_NOPE"), None);
    }

    #[test]
    fn flags_fall_back_to_legacy_values_without_the_enum() {
        let mut b = Blob::new();
        b.int("int");
        let btf = KernelBtf {
            btf: Btf::from_bytes(&b.bytes()).unwrap(),
        };
        assert_eq!(
            super::super::flags::FollFlags::resolve(&btf),
            super::super::flags::FollFlags::legacy()
        );
        assert_eq!(
            super::super::flags::FollFlags::resolve(&sample()).value("FOLL_PIN"),
            Some(0x80000)
        );
    }

    #[test]
    fn missing_file_is_reported_as_missing() {
        let err = KernelBtf::load(Path::new("/nonexistent/btf"))
            .err()
            .expect("error");
        assert!(matches!(err, BtfError::Missing { .. }), "{err}");
    }
}
