//! `cargo xtask boots`: a boot loop that measures how often a kernel crashes under TCG before any
//! pinwatch code runs. The guest is the matrix's machine (same CPU model, devices and memory)
//! with a busybox init that reports and powers off, so a failure is QEMU's or the kernel's.

use std::{fs, path::Path, process::Command, time::Instant};

use anyhow::{Context as _, Result, bail};

use crate::{expect, guest, prometheus, qemu};

#[derive(clap::Args)]
pub struct BootsArgs {
    /// Kernels to boot (default: 6.12).
    #[arg(long = "kernel", value_name = "NAME")]
    kernels: Vec<String>,
    /// Boots per kernel.
    #[arg(long, default_value_t = 50)]
    count: u32,
    /// The QEMU CPU model (default: the matrix's, `qemu::CPU`).
    #[arg(long)]
    cpu: Option<String>,
    /// Seconds one boot may take before it counts as hung.
    #[arg(long, default_value_t = 180)]
    timeout: u64,
}

const INIT: &str = "#!/bin/busybox sh\n\
/bin/busybox mount -t proc proc /proc\n\
/bin/busybox mount -t devtmpfs devtmpfs /dev\n\
echo \"PINWATCH-BOOTED $(/bin/busybox uname -r)\" >/dev/ttyS1\n\
/bin/busybox poweroff -f\n";

pub fn run(root: &Path, args: BootsArgs) -> Result<()> {
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    if let Some(cpu) = &args.cpu {
        // SAFETY: set before any thread is started; qemu::cpu() reads it for every boot.
        unsafe { std::env::set_var("PINWATCH_QEMU_CPU", cpu) };
    }
    let kernels = if args.kernels.is_empty() {
        vec!["6.12".to_owned()]
    } else {
        args.kernels.clone()
    };
    let mut failed = 0;
    for name in &kernels {
        let kernel = expect::kernel(name).with_context(|| format!("unknown kernel {name}"))?;
        let work = root.join("target/boots").join(kernel.name);
        let initrd = minimal_initramfs(&work)?;
        let tally = boot_loop(kernel.name, &work, &initrd, &args)?;
        println!(
            "boots: kernel {} cpu {}: {} boots, {} clean, {} crashed, {} hung; median {:.1}s ({})",
            kernel.name,
            qemu::cpu(),
            args.count,
            tally.clean,
            tally.crashed.len(),
            tally.hung,
            tally.median_secs(),
            date()
        );
        for (i, why) in &tally.crashed {
            println!("  boot {i}: {why}");
        }
        failed += usize::from(tally.clean != args.count);
    }
    println!(
        "\nboots: {} passed, {failed} failed",
        kernels.len() - failed
    );
    if failed > 0 {
        bail!("{failed} kernel(s) did not boot cleanly every time");
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    clean: u32,
    hung: u32,
    crashed: Vec<(u32, String)>,
    seconds: Vec<f64>,
}

impl Tally {
    fn median_secs(&self) -> f64 {
        let mut s = self.seconds.clone();
        s.sort_by(f64::total_cmp);
        s.get(s.len() / 2).copied().unwrap_or(0.0)
    }
}

fn boot_loop(name: &str, work: &Path, initrd: &Path, args: &BootsArgs) -> Result<Tally> {
    let vmlinuz = guest::cache_dir()
        .join("kernels")
        .join(name)
        .join("vmlinuz");
    let mut tally = Tally::default();
    for i in 1..=args.count {
        let guest = qemu::Guest {
            vmlinuz: &vmlinuz,
            initrd,
            work,
            timeout_secs: args.timeout,
            metrics_port: prometheus::free_port()?,
            run: qemu::Run::Minimal,
        };
        let start = Instant::now();
        match qemu::boot_once(&guest) {
            Ok(out) if qemu::Run::Minimal.completed(&out) => {
                tally.clean += 1;
                tally.seconds.push(start.elapsed().as_secs_f64());
            }
            Ok(_) => {
                let why = qemu::guest_failure(&work.join("console.log"));
                let kept = work.join(format!("console.boot{i}.log"));
                fs::copy(work.join("console.log"), &kept)?;
                tally
                    .crashed
                    .push((i, format!("{why} (log: {})", kept.display())));
            }
            Err(e) => {
                eprintln!("boots: {name} boot {i}: {e:#}");
                tally.hung += 1;
            }
        }
        if i % 10 == 0 {
            eprintln!(
                "boots: {name}: {i}/{} done, {} crashed, {} hung",
                args.count,
                tally.crashed.len(),
                tally.hung
            );
        }
    }
    Ok(tally)
}

/// busybox and an init that reports the release and powers off.
fn minimal_initramfs(work: &Path) -> Result<std::path::PathBuf> {
    let tree = work.join("root");
    if tree.exists() {
        fs::remove_dir_all(&tree)?;
    }
    fs::create_dir_all(tree.join("bin"))?;
    fs::create_dir_all(tree.join("proc"))?;
    fs::create_dir_all(tree.join("dev"))?;
    fs::copy("/bin/busybox", tree.join("bin/busybox")).context("copying /bin/busybox")?;
    guest::write_script(&tree.join("init"), INIT)?;
    let archive = work.join("initramfs.cpio.gz");
    guest::pack(&tree, &archive)?;
    Ok(archive)
}

fn date() -> String {
    Command::new("date")
        .arg("+%F")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
