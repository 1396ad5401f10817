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
/// What the guest runs: the test passes, or the benchmark.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Run {
    Tests,
    Bench { rounds: u32, seconds: u32 },
}

impl Run {
    /// The guest writes this line last; its absence means the guest died or hung.
    fn last_line(self) -> &'static str {
        match self {
            Self::Tests => "PINWATCH-RESULT doctor-kprobe",
            Self::Bench { .. } => "PINWATCH-BENCH done",
        }
    }

    /// Kernel command-line words the guest's init reads (`KEY=value` words reach it as
    /// environment variables).
    fn cmdline(self) -> String {
        match self {
            Self::Tests => String::new(),
            Self::Bench { rounds, seconds } => {
                format!(" pinwatch.bench ROUNDS={rounds} SECS={seconds}")
            }
        }
    }
}

/// Guest memory: 250k live pinned pages (1 GiB) must fit beside the kernel and pinwatch.
const MEMORY_MIB: &str = "2048";

/// TCG occasionally ends a boot early or crashes a guest: about 1 boot in 25 ends early, and the
/// 6.12 guest double-faults now and then, even during early boot before pinwatch runs (q35 +
/// intel-iommu, qemu64). Up to five attempts, each retry logging the guest's panic line, so a
/// real regression still shows as the same failure five times.
const ATTEMPTS: u32 = 5;

/// The guest's daemon port, forwarded to `metrics_port` on the host's loopback.
const GUEST_METRICS_PORT: u16 = 9469;

/// One guest to boot: kernel, initramfs, working directory (console and result files), how
/// long it may run, and the host port its daemon's metrics are forwarded to.
pub struct Guest<'a> {
    pub vmlinuz: &'a Path,
    pub initrd: &'a Path,
    pub work: &'a Path,
    pub timeout_secs: u64,
    pub metrics_port: u16,
    pub run: Run,
}

pub fn boot(guest: &Guest) -> Result<String> {
    let mut last = None;
    for attempt in 1..=ATTEMPTS {
        match boot_once(guest) {
            Ok(out) if out.contains(guest.run.last_line()) => return Ok(out),
            outcome => {
                let console = guest.work.join("console.log");
                let why = match &outcome {
                    Err(e) => format!("{e:#}"),
                    Ok(_) => guest_failure(&console),
                };
                // The next attempt overwrites the log: keep this one for the post-mortem.
                let kept = guest.work.join(format!("console.attempt{attempt}.log"));
                let _ = fs::copy(&console, &kept);
                eprintln!(
                    "xtask: attempt {attempt}/{ATTEMPTS} produced no complete result: {why} (log: {})",
                    kept.display()
                );
                last = Some(outcome);
            }
        }
    }
    last.expect("at least one attempt")
}

/// The first line of a guest panic or oops in its console log, if any.
fn guest_failure(console: &Path) -> String {
    let log = fs::read_to_string(console).unwrap_or_default();
    log.lines()
        .find(|l| l.contains("Kernel panic") || l.contains("Oops") || l.contains("BUG:"))
        .map_or_else(
            || "the guest stopped early (no panic logged)".to_owned(),
            |l| l.trim().to_owned(),
        )
}

fn boot_once(guest: &Guest) -> Result<String> {
    let Guest {
        vmlinuz,
        initrd,
        work,
        timeout_secs,
        metrics_port,
        run,
    } = *guest;
    let results = work.join("results.txt");
    let console = work.join("console.log");
    let _ = fs::remove_file(&results);
    let mut child = Command::new("qemu-system-x86_64")
        // q35 + intel-iommu for VFIO; with intel-iommu, qemu64 is the CPU seen stable under TCG.
        .args([
            "-accel", "tcg", "-machine", "q35", "-cpu", "qemu64", "-m", MEMORY_MIB, "-smp", "1",
        ])
        .args(["-nographic", "-no-reboot", "-nodefaults"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 quiet panic=-1 oops=panic intel_iommu=on{}",
            run.cmdline()
        ))
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
        // User networking: the daemon's metrics port reaches the host's loopback only.
        .arg("-netdev")
        .arg(format!(
            "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{metrics_port}-10.0.2.15:{GUEST_METRICS_PORT}"
        ))
        .args(["-device", "virtio-net-pci,netdev=net0,disable-legacy=on"])
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
