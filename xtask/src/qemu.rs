//! Boots one guest under QEMU TCG and returns what it wrote to its result port (ttyS1).

use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// TCG only: KVM exists on these hosts but hangs under nested virtualisation.
/// The guest's init writes this line last; its absence means the guest died or hung.
const LAST_RESULT: &str = "PINWATCH-RESULT doctor-kprobe";

pub fn boot(vmlinuz: &Path, initrd: &Path, work: &Path, timeout_secs: u64) -> Result<String> {
    // About one TCG boot in 25 ends early with no output: one retry (DESIGN.md).
    match boot_once(vmlinuz, initrd, work, timeout_secs) {
        Ok(out) if out.contains(LAST_RESULT) => Ok(out),
        first => {
            eprintln!(
                "xtask: guest produced no result ({:?}); retrying once",
                first.as_ref().err()
            );
            boot_once(vmlinuz, initrd, work, timeout_secs)
        }
    }
}

fn boot_once(vmlinuz: &Path, initrd: &Path, work: &Path, timeout_secs: u64) -> Result<String> {
    let results = work.join("results.txt");
    let console = work.join("console.log");
    let _ = fs::remove_file(&results);
    let mut child = Command::new("qemu-system-x86_64")
        // q35 + intel-iommu for VFIO; with intel-iommu, qemu64 is the CPU seen stable under TCG.
        .args([
            "-accel", "tcg", "-machine", "q35", "-cpu", "qemu64", "-m", "1024", "-smp", "1",
        ])
        .args(["-nographic", "-no-reboot", "-nodefaults"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            "console=ttyS0 quiet panic=-1 oops=panic intel_iommu=on",
        ])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-serial")
        .arg(format!("file:{}", results.display()))
        // The IOMMU first, then the devices behind it. Without interrupt remapping the guest
        // loads vfio_iommu_type1 with allow_unsafe_interrupts=1.
        .args(["-device", "intel-iommu,intremap=off,caching-mode=on"])
        // QEMU's teaching device, bound to vfio-pci for the VFIO DMA-pin workloads.
        .args(["-device", "edu"])
        // A PCI device with a 64-bit MMIO BAR for the sysfs resourceN map/zap workload.
        .args(["-device", "virtio-rng-pci,disable-legacy=on"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting qemu-system-x86_64 (run scripts/setup.sh)")?;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > Duration::from_secs(timeout_secs) {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "guest still running after {timeout_secs}s (console: {})",
                console.display()
            );
        }
        thread::sleep(Duration::from_millis(200));
    };
    eprintln!(
        "xtask: guest {} finished in {:.0}s ({status})",
        vmlinuz.display(),
        start.elapsed().as_secs_f64()
    );
    fs::read_to_string(&results).with_context(|| format!("reading {}", results.display()))
}
