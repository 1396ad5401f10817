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

    /// Bit offset of `member`, recursing into anonymous members.
    fn find_member(&self, strukt: &btf_rs::Struct, member: &str) -> Option<u32> {
        for m in &strukt.members {
            let name = self.btf.resolve_name(m).unwrap_or_default();
            if name == member {
                return Some(m.bit_offset());
            }
            if name.is_empty() {
                let inner = match self.btf.resolve_chained_type(m).ok()? {
                    Type::Struct(s) | Type::Union(s) => s,
                    _ => continue,
                };
                if let Some(bits) = self.find_member(&inner, member) {
                    return Some(m.bit_offset() + bits);
                }
            }
        }
        None
    }
}
