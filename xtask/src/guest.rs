//! The guest image: static pinwatch + workloads, busybox, the kernel's modules, an ext4 image.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

/// Where scripts/setup.sh caches kernels (same default, same override).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("PINWATCH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/pinwatch")
        })
}

pub struct Binaries {
    pub pinwatch: PathBuf,
    pub workload: PathBuf,
}

const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Statically linked, so they run in a busybox initramfs with no libc.
pub fn build_binaries(root: &Path) -> Result<Binaries> {
    let status = Command::new(env!("CARGO"))
        .current_dir(root)
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            GUEST_TARGET,
            "-p",
            "probe-user",
            "-p",
            "workloads",
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .status()
        .context("running cargo build for the guest binaries")?;
    if !status.success() {
        bail!("building the guest binaries failed");
    }
    let out = root.join("target").join(GUEST_TARGET).join("release");
    Ok(Binaries {
        pinwatch: out.join("pinwatch"),
        workload: out.join("pinwatch-workload"),
    })
}

/// What an image carries beyond the test passes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Extras {
    None,
    /// Debian's bpftrace and its libraries, for the benchmark's comparison mode.
    Bench,
}

/// Assembles `work/initramfs.cpio.gz` for the kernel cached in `kernel_dir`.
pub fn initramfs(
    kernel_dir: &Path,
    bin: &Binaries,
    work: &Path,
    extras: Extras,
) -> Result<PathBuf> {
    if !kernel_dir.join("ready").exists() {
        bail!(
            "kernel not cached in {}; run scripts/setup.sh kernels",
            kernel_dir.display()
        );
    }
    let tree = work.join("root");
    if tree.exists() {
        fs::remove_dir_all(&tree)?;
    }
    for dir in [
        "bin",
        "proc",
        "sys",
        "dev",
        "tmp",
        "mnt",
        "images",
        "lib/modules",
    ] {
        fs::create_dir_all(tree.join(dir))?;
    }
    copy(Path::new("/bin/busybox"), &tree.join("bin/busybox"))?;
    copy(&bin.pinwatch, &tree.join("bin/pinwatch"))?;
    copy(&bin.workload, &tree.join("bin/pinwatch-workload"))?;
    write_script(&tree.join("init"), include_str!("../guest/init.sh"))?;
    write_script(
        &tree.join("bin/run-workloads"),
        include_str!("../guest/run-workloads.sh"),
    )?;
    write_script(&tree.join("bin/bench"), include_str!("../guest/bench.sh"))?;
    if extras == Extras::Bench {
        crate::bundle::bpftrace(&tree)?;
    }
    copy(
        &kernel_dir.join("load-order"),
        &tree.join("lib/modules/load-order"),
    )?;
    for entry in fs::read_dir(kernel_dir.join("modules"))? {
        let entry = entry?;
        copy(
            &entry.path(),
            &tree.join("lib/modules").join(entry.file_name()),
        )?;
    }
    make_ext4_image(&tree.join("images/ext4.img"))?;
    make_xfs_image(&tree.join("images/xfs.img"))?;
    let archive = work.join("initramfs.cpio.gz");
    pack(&tree, &archive)?;
    Ok(archive)
}

/// Packs `tree` into a gzip'd newc cpio archive, the initramfs format.
pub fn pack(tree: &Path, archive: &Path) -> Result<()> {
    let script = format!(
        "cd '{}' && find . | cpio -o -H newc --quiet | gzip -1 > '{}'",
        tree.display(),
        archive.display()
    );
    run(
        Command::new("sh").args(["-c", &script]),
        "packing the initramfs",
    )
}

/// A 32 MiB ext4 filesystem, written onto the guest's RAM disk at boot.
fn make_ext4_image(path: &Path) -> Result<()> {
    let file = fs::File::create(path)?;
    file.set_len(32 << 20)?;
    run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "pinwatch"])
            .arg(path),
        "mkfs.ext4",
    )
}

/// A 32 MiB xfs filesystem (page-cache large folios on every kernel tested), written onto the
/// guest's second RAM disk at boot. mkfs.xfs refuses filesystems under 300 MB unless it runs
/// under fstests, which uses small ones all the time: its environment says so.
fn make_xfs_image(path: &Path) -> Result<()> {
    let file = fs::File::create(path)?;
    file.set_len(32 << 20)?;
    run(
        Command::new("mkfs.xfs")
            .args(["-q", "-f", "-L", "pinwatch"])
            .arg(path)
            .env("TEST_DIR", "/mnt/xfs")
            .env("TEST_DEV", "/dev/ram1")
            .env("QA_CHECK_FS", "1"),
        "mkfs.xfs",
    )
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

pub fn write_script(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed: {status}");
    }
    Ok(())
}
