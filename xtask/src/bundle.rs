//! Debian's bpftrace inside the guest, for the benchmark's comparison mode.
//!
//! The initramfs has only busybox and static binaries, and bpftrace is dynamically linked (it
//! embeds LLVM and clang as shared libraries). So the binary goes in with its whole
//! shared-library closure, each file at the absolute path the host's loader resolved it to
//! (`ldd`): the ELF interpreter at its `PT_INTERP` path (/lib64/ld-linux-x86-64.so.2) and the
//! libraries under /lib/x86_64-linux-gnu, which Debian's ld.so searches by default, so the guest
//! needs no /etc/ld.so.cache.
//!
//! What else bpftrace 0.17 reads at run time, for the probes the benchmark uses (kfunc/kretfunc,
//! kprobe and tracepoint probes updating `count()` maps), is all provided by the guest's kernel
//! and init, not by files copied here:
//! - /sys/kernel/btf/vmlinux (and /sys/kernel/btf/MODULE) for kfunc arguments; with BTF present
//!   it never looks for kernel headers or unpacks kheaders.
//! - tracefs: `available_filter_functions` must be readable, or kfunc support is reported
//!   missing; `available_events` and `events/*/*/id` for tracepoints. bpftrace and libbcc use
//!   /sys/kernel/debug/tracing if it exists (debugfs mounted), else /sys/kernel/tracing, which
//!   the guest's init mounts.
//! - /dev/null (bpftrace aborts with a `BUG:` without it; the guest mounts devtmpfs).
//! - /proc (kallsyms, mounts, self/exe), /sys/devices/system/cpu/{online,possible},
//!   /sys/bus/event_source/devices/kprobe/type, and /sys/kernel/security/lockdown (only to
//!   warn; a missing file is fine).
//!
//! Clang runs only for programs with C definitions, `#include`s or tracepoint `args`; plain
//! counting needs none of them, so no headers or clang resource directory are bundled.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

/// Where Debian's bpftrace package installs the binary.
const BPFTRACE: &str = "/usr/bin/bpftrace";

/// Copies /usr/bin/bpftrace and every shared library it loads into the initramfs root `tree`,
/// at the same absolute paths (real file contents, symlinks followed; directories created).
pub fn bpftrace(tree: &Path) -> Result<()> {
    let binary = Path::new(BPFTRACE);
    if !binary.exists() {
        bail!("bpftrace not installed: run scripts/setup.sh bench");
    }
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd (from libc-bin) on /usr/bin/bpftrace")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Parse first: a missing library is the likelier failure and has the more useful message.
    let libraries = parse_ldd(&text).context("reading ldd's output for /usr/bin/bpftrace")?;
    if !out.status.success() {
        bail!(
            "ldd /usr/bin/bpftrace failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    for file in std::iter::once(binary.to_path_buf()).chain(libraries) {
        let to = tree.join(file.strip_prefix("/").unwrap_or(&file));
        let dir = to.parent().context("bundle path has no parent")?;
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // fs::copy follows symlinks (/lib64 is one on merged-/usr hosts, and so is the loader
        // itself), so the guest gets the real contents, with their permission bits.
        fs::copy(&file, &to)
            .with_context(|| format!("copying {} to {}", file.display(), to.display()))?;
    }
    Ok(())
}

/// The files `ldd` lists, in its order without duplicates: `name => /path (addr)` lines give
/// the path, a bare `/path (addr)` line is the ELF interpreter, and the vDSO (`linux-vdso.so.1
/// (addr)`, no file) is skipped. A `not found` library is an error.
fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let path = match line.split_once("=>") {
            Some((name, target)) => {
                let target = target.trim();
                if target.starts_with("not found") {
                    bail!(
                        "{} needs {}, which is not installed: run scripts/setup.sh bench",
                        BPFTRACE,
                        name.trim()
                    );
                }
                match target.split_whitespace().next() {
                    Some(p) if p.starts_with('/') => p,
                    // Old glibc prints the vDSO as `linux-vdso.so.1 =>  (addr)`.
                    Some(p) if p.starts_with('(') => continue,
                    _ => bail!("unexpected ldd line: {line}"),
                }
            }
            None => match line.split_whitespace().next() {
                Some(p) if p.starts_with('/') => p,
                Some(p) if p.starts_with("linux-vdso") || p.starts_with("linux-gate") => continue,
                _ if line == "statically linked" => continue,
                _ => bail!("unexpected ldd line: {line}"),
            },
        };
        let path = PathBuf::from(path);
        if !files.contains(&path) {
            files.push(path);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd5a9d2000)\n\
            \tlibbpf.so.1 => /lib/x86_64-linux-gnu/libbpf.so.1 (0x00007f6fe9ec4000)\n\
            \tlibLLVM-14.so.1 => /lib/x86_64-linux-gnu/libLLVM-14.so.1 (0x00007f6fe1200000)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f6fe101e000)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f6fe9f33000)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f6fe101e000)\n";
        let files = parse_ldd(text).unwrap();
        let want: Vec<PathBuf> = [
            "/lib/x86_64-linux-gnu/libbpf.so.1",
            "/lib/x86_64-linux-gnu/libLLVM-14.so.1",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib64/ld-linux-x86-64.so.2",
        ]
        .into_iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(files, want);

        // The old vDSO form has an arrow and no path.
        assert!(
            parse_ldd("\tlinux-vdso.so.1 =>  (0x00007ffd5a9d2000)\n")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn missing_library_says_how_to_fix_it() {
        let text = "\tlibbpf.so.1 => /lib/x86_64-linux-gnu/libbpf.so.1 (0x1)\n\
            \tlibLLVM-14.so.1 => not found\n";
        let err = format!("{:#}", parse_ldd(text).unwrap_err());
        assert!(err.contains("libLLVM-14.so.1"), "{err}");
        assert!(err.contains("scripts/setup.sh bench"), "{err}");
    }

    #[test]
    fn rejects_unknown_lines() {
        assert!(parse_ldd("\tsomething odd\n").is_err());
    }

    /// The bundle alone runs bpftrace, with nothing of the host around it. Needs root (chroot)
    /// and `scripts/setup.sh bench`:
    /// `cargo test -p xtask bundle -- --ignored --nocapture`.
    #[test]
    #[ignore = "needs root and the bpftrace package"]
    fn bundle_runs_in_an_empty_chroot() {
        let tree = std::env::temp_dir().join(format!("pinwatch-bundle-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tree);
        bpftrace(&tree).unwrap();
        let out = Command::new("chroot")
            .arg(&tree)
            .args([BPFTRACE, "--version"])
            .output()
            .unwrap();
        let size = Command::new("du").arg("-sb").arg(&tree).output().unwrap();
        let _ = fs::remove_dir_all(&tree);
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!(
            "chroot output: {stdout:?} stderr: {:?}; bundle bytes: {}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&size.stdout)
                .split_whitespace()
                .next()
                .unwrap_or("?")
        );
        assert!(out.status.success(), "{}", out.status);
        assert!(stdout.starts_with("bpftrace v"), "{stdout}");
    }
}
