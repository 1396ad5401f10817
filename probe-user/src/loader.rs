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
}

/// The event ring buffer. A storm of 200k records/s (~100 bytes each) fills 4 MiB in about
/// 200 ms: room for the reader's scheduling delays without dropping. It is kernel memory
/// charged to pinwatch, and mapped (read-only) into the daemon.
pub const RING_BUFFER_BYTES: u32 = 4 << 20;

/// Parses the object and creates its maps; programs are loaded later, one by one, by the
/// attach ladder. Offsets BTF did not yield leave their group's `LAYOUT_VALID` bit clear, and the
/// programs then count without classifying.
pub fn load(layout: &Layout, foll: &FollFlags) -> Result<Ebpf, LoadError> {
    if OBJECT.is_empty() {
        return Err(LoadError::NoObject);
    }
    let (valid, globals) = layout.globals(foll);
    let mut loader = EbpfLoader::new();
    loader.map_max_entries("EVENTS", RING_BUFFER_BYTES);
    loader.override_global(probe_common::layout::LAYOUT_VALID, &valid, true);
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
