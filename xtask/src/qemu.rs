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
    Bench {
        rounds: u32,
        seconds: u32,
        clock: Clock,
    },
    /// A busybox init that reports and powers off at once (`cargo xtask boots`).
    Minimal,
    /// The README's main job: doctor's hazards, the audit report and the daemon's findings
    /// over the real workloads (`cargo xtask vm --show`).
    Show,
}

impl Run {
    /// The line that says the guest finished.
    pub fn completed(self, output: &str) -> bool {
        output.contains(self.last_line())
    }

    /// The guest writes this line last; its absence means the guest died or hung.
    fn last_line(self) -> &'static str {
        match self {
            Self::Tests => "PINWATCH-RESULT doctor-kprobe",
            Self::Bench { .. } => "PINWATCH-BENCH done",
            Self::Minimal => "PINWATCH-BOOTED",
            Self::Show => "PINWATCH-SHOW-DONE",
        }
    }

    /// Kernel command-line words the guest's init reads (`KEY=value` words reach it as
    /// environment variables).
    fn cmdline(self) -> String {
        match self {
            Self::Tests | Self::Minimal => String::new(),
            Self::Show => " pinwatch.show".to_owned(),
            Self::Bench {
                rounds,
                seconds,
                clock,
            } => {
                format!(
                    " pinwatch.bench ROUNDS={rounds} SECS={seconds} CLOCK={}",
                    clock.name()
                )
            }
        }
    }
}

/// How guest time passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Clock {
    /// Guest time counts instructions (`-icount shift=0,sleep=off`: one instruction a
    /// nanosecond, idle time skipped): figures repeat whatever else the host runs.
    Icount,
    /// Guest time follows the host's clock (TCG's default).
    Wall,
}

impl Clock {
    pub fn name(self) -> &'static str {
        match self {
            Self::Icount => "icount",
            Self::Wall => "wall",
        }
    }

    fn qemu_args(self) -> &'static [&'static str] {
        match self {
            Self::Icount => &["-icount", "shift=0,sleep=off"],
            Self::Wall => &[],
        }
    }
}

/// Guest memory: 250k live pinned pages (1 GiB) must fit beside the kernel and pinwatch.
const MEMORY_MIB: &str = "2048";

/// The guests' CPU model: `qemu64` without CMPXCHG16B. QEMU 7.2's TCG (Debian bookworm) computes
/// EFLAGS for an unlocked `cmpxchg16b` from a stale lazy-flags state (no `gen_update_cc_op`
/// before its helper; fixed in QEMU 8.0 by 5f0dd8cd33cb, "target/i386: Inline cmpxchg16b"), so
/// garbage such as DF or TF can land in EFLAGS. Debian's 6.12 branches on ZF right after SLUB's
/// per-CPU `cmpxchg16b %gs:(%rsi)` and crashed about one boot in seven: double faults in
/// `__kmalloc_noprof`, "Wrong slab cache" under fork storms. Without the CX16 CPUID bit the
/// kernel never executes the instruction (`this_cpu_cmpxchg16b_emu`). README, "TCG and the CPU
/// model", has the figures; `cargo xtask boots` reproduces them; `PINWATCH_QEMU_CPU` overrides
/// the model, for that experiment.
pub const CPU: &str = "qemu64,-cx16";

/// TCG occasionally ends a boot early (about 1 boot in 25 before the CPU model above). Up to five
/// attempts keep the results coming, each retry logged with the guest's panic line, but a
/// kernel that needed more than [`MAX_CLEAN_BOOTS`] boots fails the matrix: a retry must stay
/// the exception, visible in the output, never the way tests pass.
const ATTEMPTS: u32 = 5;
pub const MAX_CLEAN_BOOTS: u32 = 2;

/// The guest's daemon port, forwarded to `metrics_port` on the host's loopback.
const GUEST_METRICS_PORT: u16 = 9469;

/// The CPU model in force: [`CPU`] unless `PINWATCH_QEMU_CPU` names another.
pub fn cpu() -> String {
    std::env::var("PINWATCH_QEMU_CPU").unwrap_or_else(|_| CPU.to_owned())
}

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

/// A guest's complete output and how many boots it took to get it.
pub struct Booted {
    pub output: String,
    pub boots: u32,
}

/// Boots until the guest writes its last line, at most [`ATTEMPTS`] times.
pub fn boot(guest: &Guest) -> Result<Booted> {
    let mut last = None;
    for attempt in 1..=ATTEMPTS {
        match boot_once(guest) {
            Ok(output) if output.contains(guest.run.last_line()) => {
                return Ok(Booted {
                    output,
                    boots: attempt,
                });
            }
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
    last.expect("at least one attempt").map(|output| Booted {
        output,
        boots: ATTEMPTS,
    })
}

/// The first line of a guest panic or oops in its console log, if any.
pub fn guest_failure(console: &Path) -> String {
    let log = fs::read_to_string(console).unwrap_or_default();
    log.lines()
        .find(|l| l.contains("Kernel panic") || l.contains("Oops") || l.contains("BUG:"))
        .map_or_else(
            || "the guest stopped early (no panic logged)".to_owned(),
            |l| l.trim().to_owned(),
        )
}

pub fn boot_once(guest: &Guest) -> Result<String> {
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
    let mut child = crate::child::dies_with_parent(&mut Command::new("qemu-system-x86_64"))
        // q35 + intel-iommu for VFIO; the CPU model is the one proven stable under TCG.
        .args(["-accel", "tcg", "-machine", "q35", "-cpu", &cpu()])
        .args(["-m", MEMORY_MIB, "-smp", "1"])
        .args(match run {
            Run::Bench { clock, .. } => clock.qemu_args(),
            _ => &[],
        })
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
    // Lossy: a byte that is not UTF-8 (a hostile name printed raw by a regression) must fail
    // its check, visible as U+FFFD, not abort the matrix.
    let bytes = fs::read(&results).with_context(|| format!("reading {}", results.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
