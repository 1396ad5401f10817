//! GUP `FOLL_*` flag values of the running kernel, so flags seen in events decode by name.
//!
//! Since v6.5 (the series that moved FOLL_* into `mm_types.h` and `mm/internal.h`) the flags are enums and
//! sit in BTF; they were also renumbered. Older kernels define them as macros, invisible to BTF:
//! for those we fall back to the values of the last macro-era kernels (6.1, `include/linux/mm.h`).

use serde::Serialize;

use super::btf::KernelBtf;

/// Where the values came from.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FlagSource {
    Btf,
    LegacyDefines,
}

/// Names in decoding order.
pub const NAMES: [&str; 12] = [
    "FOLL_WRITE",
    "FOLL_TOUCH",
    "FOLL_GET",
    "FOLL_FORCE",
    "FOLL_NOWAIT",
    "FOLL_NOFAULT",
    "FOLL_REMOTE",
    "FOLL_ANON",
    "FOLL_LONGTERM",
    "FOLL_PIN",
    "FOLL_FAST_ONLY",
    "FOLL_PCI_P2PDMA",
];

/// Pre-6.5 `#define` values (`include/linux/mm.h`; 6.1: lines 3087-3103).
const LEGACY: [(&str, u32); 11] = [
    ("FOLL_WRITE", 0x01),
    ("FOLL_TOUCH", 0x02),
    ("FOLL_GET", 0x04),
    ("FOLL_FORCE", 0x10),
    ("FOLL_NOWAIT", 0x20),
    ("FOLL_NOFAULT", 0x80),
    ("FOLL_REMOTE", 0x2000),
    ("FOLL_ANON", 0x8000),
    ("FOLL_LONGTERM", 0x10000),
    ("FOLL_PIN", 0x40000),
    ("FOLL_FAST_ONLY", 0x80000),
];

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FollFlags {
    pub source: FlagSource,
    pub values: Vec<(String, u32)>,
}

impl FollFlags {
    pub fn resolve(btf: &KernelBtf) -> Self {
        // FOLL_PIN is internal and present in every enum-era kernel: use it as the witness.
        if btf.enum_value("FOLL_PIN").is_none() {
            return Self::legacy();
        }
        let values = NAMES
            .iter()
            .filter_map(|n| Some(((*n).to_owned(), u32::try_from(btf.enum_value(n)?).ok()?)))
            .collect();
        Self {
            source: FlagSource::Btf,
            values,
        }
    }

    pub fn legacy() -> Self {
        let values = LEGACY.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect();
        Self {
            source: FlagSource::LegacyDefines,
            values,
        }
    }

    pub fn value(&self, name: &str) -> Option<u32> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// `0x10101` → `FOLL_WRITE|FOLL_LONGTERM|…`, unknown bits as hex.
    pub fn decode(&self, flags: u32) -> String {
        let mut rest = flags;
        let mut names: Vec<String> = Vec::new();
        for (name, value) in &self.values {
            if *value != 0 && flags & value == *value {
                names.push(name.clone());
                rest &= !value;
            }
        }
        if rest != 0 {
            names.push(format!("{rest:#x}"));
        }
        if names.is_empty() {
            "0".to_owned()
        } else {
            names.join("|")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_decodes_io_uring_flags_of_6_1() {
        // io_uring on 6.1 calls pin_user_pages(FOLL_WRITE|FOLL_LONGTERM) = 0x10001.
        assert_eq!(
            FollFlags::legacy().decode(0x10001),
            "FOLL_WRITE|FOLL_LONGTERM"
        );
    }

    #[test]
    fn unknown_bits_are_kept_as_hex() {
        assert_eq!(
            FollFlags::legacy().decode(0x40001 | 0x4000_0000),
            "FOLL_WRITE|FOLL_PIN|0x40000000"
        );
        assert_eq!(FollFlags::legacy().decode(0), "0");
    }

    #[test]
    fn enum_era_values_decode_differently() {
        let new = FollFlags {
            source: FlagSource::Btf,
            values: vec![
                ("FOLL_WRITE".into(), 0x1),
                ("FOLL_LONGTERM".into(), 0x100),
                ("FOLL_PIN".into(), 0x80000),
            ],
        };
        // 6.12 io_uring inside GUP-fast: 0x80101.
        assert_eq!(new.decode(0x80101), "FOLL_WRITE|FOLL_LONGTERM|FOLL_PIN");
        assert_eq!(new.value("FOLL_LONGTERM"), Some(0x100));
    }
}
