//! The embedded eBPF object, loaded with this kernel's layout written into its globals.

use aya::{Ebpf, EbpfLoader};
use probe_common::layout as globals;

use crate::kernel::layout::{FolioPinTest, Layout};

/// Built by build.rs (aya-build) from the probe-ebpf crate.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/probe-ebpf"));

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("this pinwatch binary was built without its eBPF object (AYA_BUILD_SKIP was set)")]
    NoObject,
    #[error("loading the eBPF object: {0}")]
    Ebpf(#[from] aya::EbpfError),
}

/// Parses the object and creates its maps; programs are loaded later, one by one, by the
/// attach ladder. Without a complete folio layout the programs run but refuse to classify.
pub fn load(layout: &Layout) -> Result<Ebpf, LoadError> {
    if OBJECT.is_empty() {
        return Err(LoadError::NoObject);
    }
    let (valid, test) = match layout.folio_pin_test() {
        Some(test) => (1u32, test),
        None => (
            0u32,
            FolioPinTest {
                flags: 0,
                refcount: 0,
                pincount: 0,
                pg_head_bit: 0,
            },
        ),
    };
    let ebpf = EbpfLoader::new()
        .override_global(globals::LAYOUT_VALID, &valid, true)
        .override_global(globals::FOLIO_FLAGS_OFF, &test.flags, true)
        .override_global(globals::FOLIO_REFCOUNT_OFF, &test.refcount, true)
        .override_global(globals::FOLIO_PINCOUNT_OFF, &test.pincount, true)
        .override_global(globals::PG_HEAD_BIT, &test.pg_head_bit, true)
        .load(OBJECT)?;
    Ok(ebpf)
}

/// The raw object, for tests that inspect which programs it carries.
#[cfg(test)]
pub fn object_bytes() -> &'static [u8] {
    OBJECT
}
