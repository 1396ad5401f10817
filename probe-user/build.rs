//! Builds the eBPF object (probe-ebpf, nightly, bpfel-unknown-none) into OUT_DIR for
//! `include_bytes_aligned!`. With `AYA_BUILD_SKIP=1` (lint-only runs) an empty placeholder is
//! written instead and the binary reports that it carries no eBPF object.
use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let root = std::path::Path::new(&manifest_dir)
        .parent()
        .ok_or_else(|| anyhow!("probe-user has no parent directory"))?;
    println!(
        "cargo:rerun-if-changed={}",
        root.join("probe-common").display()
    );
    let skip =
        std::env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        let out = std::path::PathBuf::from(std::env::var("OUT_DIR").context("OUT_DIR")?);
        std::fs::write(out.join("probe-ebpf"), b"").context("writing the placeholder object")?;
    }
    let ebpf_dir = root.join("probe-ebpf");
    let ebpf_dir = ebpf_dir.to_str().ok_or_else(|| anyhow!("non-UTF-8 path"))?;
    let package = aya_build::Package {
        name: "probe-ebpf",
        root_dir: ebpf_dir,
        ..Default::default()
    };
    // aya-build relays the nested cargo's stderr as `cargo:warning` lines: ~40 "Compiling …"
    // lines on every fresh build. Quiet cargo keeps only what matters (compiler diagnostics and
    // errors, which aya-build relays either way).
    // SAFETY: build scripts are single-threaded here; the nested cargo inherits the variable.
    unsafe { std::env::set_var("CARGO_TERM_QUIET", "true") };
    aya_build::build_ebpf([package], aya_build::Toolchain::default())
}
