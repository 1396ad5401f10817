//! The embedded eBPF object, loaded with this kernel's layout written into its globals.

use crate::kernel::{flags::FollFlags, layout::Layout};
use aya::{Ebpf, EbpfLoader};

/// Built by build.rs (aya-build) from the probe-ebpf crate.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/probe-ebpf"));

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("this pinwatch binary was built without its eBPF object (AYA_BUILD_SKIP was set)")]
    NoObject,
    #[error("loading the eBPF object: {0}")]
    Ebpf(#[from] aya::EbpfError),
    #[error(
        "{MAP_ENTRIES_VAR}: {0} (expected MAP=ENTRIES,…, with MAP one of {names} and ENTRIES at least 1)",
        names = probe_common::map::NAMES.join(", ")
    )]
    MapEntries(String),
}

/// Resizes pinwatch's own kernel maps: `PINWATCH_MAP_ENTRIES=INFLIGHT=65536,FORKING=8192`.
/// For hosts with more pinning threads than the defaults (4096 tasks per map) allow, and for
/// the tests that fill a map on purpose. A full map is counted either way
/// (`pinwatch_map_insert_failures_total`).
pub const MAP_ENTRIES_VAR: &str = "PINWATCH_MAP_ENTRIES";

/// Parses a `PINWATCH_MAP_ENTRIES` value into (map name, entries) pairs.
pub fn parse_map_entries(value: &str) -> Result<Vec<(&'static str, u32)>, LoadError> {
    value
        .split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            let (name, entries) = item
                .split_once('=')
                .ok_or_else(|| LoadError::MapEntries(format!("`{item}` has no `=`")))?;
            let name = probe_common::map::NAMES
                .iter()
                .find(|known| known.eq_ignore_ascii_case(name.trim()))
                .ok_or_else(|| LoadError::MapEntries(format!("no map named `{}`", name.trim())))?;
            match entries.trim().parse::<u32>() {
                Ok(n) if n > 0 => Ok((*name, n)),
                _ => Err(LoadError::MapEntries(format!(
                    "`{}` is not a positive entry count for {name}",
                    entries.trim()
                ))),
            }
        })
        .collect()
}

/// The event ring buffer. A storm of 200k records/s (~100 bytes each) fills 4 MiB in about
/// 200 ms: room for the reader's scheduling delays without dropping. It is kernel memory
/// charged to pinwatch, and mapped (read-only) into the daemon.
pub const RING_BUFFER_BYTES: u32 = 4 << 20;

/// What the programs do, fixed at load (read-only globals the verifier sees as constants).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Programs {
    /// Send every fork (`SPAWN` records): a command watches one process tree.
    pub track_spawns: bool,
    /// Return at once from every program: the benchmark's floor (`run --bench-mode floor`).
    pub idle: bool,
}

impl Programs {
    /// Observing programs; `tree` when the command watches one process tree.
    pub fn watching(tree: bool) -> Self {
        Self {
            track_spawns: tree,
            idle: false,
        }
    }
}

/// Parses the object and creates its maps; programs are loaded later, one by one, by the
/// attach ladder. Offsets BTF did not yield leave their group's `LAYOUT_VALID` bit clear, and the
/// programs then count without classifying.
pub fn load(layout: &Layout, foll: &FollFlags, programs: Programs) -> Result<Ebpf, LoadError> {
    if OBJECT.is_empty() {
        return Err(LoadError::NoObject);
    }
    let (valid, globals) = layout.globals(foll);
    let sizes = match std::env::var(MAP_ENTRIES_VAR) {
        Ok(value) => parse_map_entries(&value)?,
        Err(_) => Vec::new(),
    };
    let mut loader = EbpfLoader::new();
    loader.map_max_entries("EVENTS", RING_BUFFER_BYTES);
    for (name, entries) in sizes {
        loader.map_max_entries(name, entries);
    }
    loader.override_global(probe_common::layout::LAYOUT_VALID, &valid, true);
    let track_spawns = u32::from(programs.track_spawns);
    loader.override_global(probe_common::event::TRACK_SPAWNS, &track_spawns, true);
    let idle = u32::from(programs.idle);
    loader.override_global(probe_common::event::IDLE, &idle, true);
    let wakeup = RING_BUFFER_BYTES / 4;
    loader.override_global(probe_common::event::RING_WAKEUP_BYTES, &wakeup, true);
    for (name, value) in &globals {
        loader.override_global(name, value, true);
    }
    Ok(loader.load(OBJECT)?)
}

/// The raw object, for tests that inspect which programs it carries.
#[cfg(test)]
pub fn object_bytes() -> &'static [u8] {
    OBJECT
}

/// The object's `license` section is what the kernel checks before it grants GPL-only helpers;
/// it must also say what probe-ebpf's Cargo.toml says.
#[cfg(test)]
mod license_tests {
    use object::{Object as _, ObjectSection as _};

    /// The strings `license_is_gpl_compatible()` accepts (include/linux/license.h).
    const GPL_COMPATIBLE: [&str; 6] = [
        "GPL",
        "GPL v2",
        "GPL and additional rights",
        "Dual BSD/GPL",
        "Dual MIT/GPL",
        "Dual MPL/GPL",
    ];

    /// The object's license string, and the SPDX expression of probe-ebpf's Cargo.toml that says
    /// the same (the kernel's "GPL" is version 2: include/linux/module.h).
    const OBJECT_LICENSE: (&str, &str) = ("Dual MIT/GPL", "MIT OR GPL-2.0-only");

    /// The `license = "…"` of probe-ebpf's manifest.
    fn ebpf_crate_license() -> &'static str {
        include_str!("../../probe-ebpf/Cargo.toml")
            .lines()
            .find_map(|l| l.strip_prefix("license = "))
            .map(|v| v.trim().trim_matches('"'))
            .expect("probe-ebpf/Cargo.toml sets its own license")
    }

    #[test]
    fn the_ebpf_object_license_is_gpl_compatible_and_matches_its_crate() {
        let bytes = super::object_bytes();
        if bytes.is_empty() {
            eprintln!(
                "skipped: built with AYA_BUILD_SKIP=1, no eBPF object to read a license from"
            );
            return;
        }
        let elf = object::File::parse(bytes).expect("the eBPF object is ELF");
        let section = elf.section_by_name("license").expect("a `license` section");
        let data = section.data().expect("the license section's bytes");
        let license = data
            .strip_suffix(b"\0")
            .and_then(|s| std::str::from_utf8(s).ok())
            .unwrap_or_else(|| panic!("not a NUL-terminated string: {data:?}"));
        assert!(
            GPL_COMPATIBLE.contains(&license),
            "the kernel would refuse GPL-only helpers to a {license:?} object"
        );
        assert_eq!(license, OBJECT_LICENSE.0, "the object's license section");
        let declared = ebpf_crate_license();
        assert_eq!(
            declared, OBJECT_LICENSE.1,
            "the object says {license:?}; probe-ebpf/Cargo.toml must say the same"
        );
        assert!(
            declared.contains("MIT") && declared.contains("GPL"),
            "{declared}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_entries_name_known_maps_with_positive_sizes() {
        assert_eq!(
            parse_map_entries("forking=8, INFLIGHT=1,").unwrap(),
            [("FORKING", 8), ("INFLIGHT", 1)]
        );
        assert_eq!(parse_map_entries("").unwrap(), []);
        for bad in [
            "EVENTS=4",
            "INFLIGHT",
            "INFLIGHT=0",
            "INFLIGHT=-1",
            "INFLIGHT=x",
        ] {
            let err = parse_map_entries(bad).unwrap_err().to_string();
            assert!(err.starts_with("PINWATCH_MAP_ENTRIES: "), "{bad}: {err}");
            assert!(err.contains("FORKING"), "lists the maps: {err}");
        }
    }
}
