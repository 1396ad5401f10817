//! Developer tasks. `cargo xtask vm` is the real-kernel matrix: it boots Debian's 6.1, 6.12 and
//! 7.2 cloud kernels under QEMU (TCG), runs `pinwatch doctor` over real workloads inside each,
//! and checks every hook and offset against the per-kernel expectations in `expect.rs`.

mod bench;
mod boots;
mod bundle;
mod child;
mod dashboards;
mod expect;
mod guest;
mod prometheus;
mod qemu;
mod snapshot;
mod verify;

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "pinwatch developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Boot each test kernel under QEMU, run pinwatch over the workloads, verify the results.
    Vm(VmArgs),
    /// Check the Grafana dashboard and alert rules against the metrics pinwatch exports, and
    /// run promtool's rule checks and alert unit tests.
    Dashboards,
    /// Measure pinwatch's overhead inside guests (no probes vs pinwatch vs bpftrace) and the
    /// per-program cost, and write the figures to bench/results.md.
    Bench(bench::BenchArgs),
    /// Boot a kernel many times with a do-nothing init and count the crashes (TCG stability
    /// of the guests' CPU model; README, "TCG and the CPU model").
    Boots(boots::BootsArgs),
    /// Render dashboards/pinwatch.json from the metrics the last `vm` run stored, to
    /// dashboards/screenshot.png (headless Chromium).
    DashboardSnapshot,
}

#[derive(clap::Args)]
struct VmArgs {
    /// Kernels to run (default: all of 6.1, 6.12, 7.2).
    #[arg(long = "kernel", value_name = "NAME")]
    kernels: Vec<String>,
    /// Only show pinwatch's live report from the guest (the README's main job), do not verify.
    #[arg(long)]
    show: bool,
    /// Seconds one guest may run before it is killed.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Vm(args) => vm(args),
        Command::Bench(args) => bench::run(&workspace_root()?, args),
        Command::Boots(args) => boots::run(&workspace_root()?, args),
        Command::Dashboards => dashboards::check(&workspace_root()?),
        Command::DashboardSnapshot => snapshot::run(&workspace_root()?),
    }
}

fn vm(args: VmArgs) -> Result<()> {
    let root = workspace_root()?;
    let cache = guest::cache_dir();
    let kernels = if args.kernels.is_empty() {
        expect::KERNELS.iter().map(|k| k.name.to_owned()).collect()
    } else {
        args.kernels
    };
    let binaries = guest::build_binaries(&root)?;
    // One host port per kernel for its daemon's metrics; Prometheus scrapes them all.
    let ports: Vec<(&str, u16)> = kernels
        .iter()
        .map(|k| Ok((k.as_str(), prometheus::free_port()?)))
        .collect::<Result<_>>()?;
    let server = if args.show {
        None
    } else {
        Some(prometheus::Server::start(
            &root.join("target/vm/prometheus"),
            &ports,
        )?)
    };
    let mut failures = Vec::new();
    let mut failed_kernels = 0;
    let mut boots = Vec::new();
    for (name, port) in &ports {
        let kernel = expect::kernel(name).with_context(|| format!("unknown kernel {name}"))?;
        let dir = cache.join("kernels").join(kernel.name);
        let work = root.join("target/vm").join(kernel.name);
        let initrd = guest::initramfs(&dir, &binaries, &work, guest::Extras::None)?;
        let booted = qemu::boot(&qemu::Guest {
            vmlinuz: &dir.join("vmlinuz"),
            initrd: &initrd,
            work: &work,
            timeout_secs: args.timeout,
            metrics_port: *port,
            run: if args.show {
                qemu::Run::Show
            } else {
                qemu::Run::Tests
            },
        })?;
        boots.push((kernel.name, booted.boots));
        let output = booted.output;
        let Some(server) = &server else {
            verify::show(kernel, &output);
            continue;
        };
        let results = verify::parse(&output)
            .with_context(|| format!("kernel {name}: reading guest results"))?;
        let mut fails = verify::check(kernel, &results);
        if booted.boots > qemu::MAX_CLEAN_BOOTS {
            fails.push(format!(
                "{name}: needed {} boots (at most {} allowed; see target/vm/{name}/console.attempt*.log)",
                booted.boots,
                qemu::MAX_CLEAN_BOOTS
            ));
        }
        verify::surfaces::check(kernel, &output, &mut fails);
        verify::surfaces::check_capabilities(kernel, &output, &mut fails);
        verify::surfaces::check_faults(kernel, &output, &mut fails);
        verify::full_maps::check(kernel, &output, &mut fails);
        verify::jobs::check(kernel, &output, &mut fails);
        verify::page_sizes::check(kernel, &output, &mut fails);
        verify::releases::check(kernel, &output, &mut fails);
        verify::startup::check(kernel, &output, &mut fails);
        verify::pins::check(kernel, &output, &mut fails);
        verify::hostile::check(kernel, &output, &mut fails);
        verify::discards::check(kernel, &output, &mut fails);
        match verify::daemon::parse(&output) {
            None => fails.push(format!(
                "{name}: no daemon result (see target/vm/{name}/console.log)"
            )),
            Some(daemon) => {
                verify::daemon::check(kernel, &daemon, &work, &mut fails);
                verify::daemon::check_prometheus(kernel, &daemon, server, &mut fails);
            }
        }
        match verify::scale::parse(&output) {
            None => fails.push(format!("{name}: no scale result")),
            Some(scale) => {
                eprintln!("xtask: {}", verify::scale::summary(kernel, &scale));
                verify::scale::check(kernel, &scale, &mut fails);
            }
        }
        failed_kernels += usize::from(!fails.is_empty());
        failures.extend(fails);
    }
    let needed: Vec<String> = boots.iter().map(|(k, n)| format!("{k} {n}")).collect();
    eprintln!(
        "xtask: boots needed per kernel (CPU {}): {}",
        qemu::cpu(),
        needed.join(", ")
    );
    if args.show {
        return Ok(());
    }
    for f in &failures {
        eprintln!("  FAIL {f}");
    }
    // The plain closing line CI reads: one count per kernel.
    println!(
        "\nvm: {} passed, {failed_kernels} failed",
        kernels.len() - failed_kernels
    );
    if failed_kernels > 0 {
        anyhow::bail!("VM matrix failed: {} check(s)", failures.len());
    }
    Ok(())
}

fn workspace_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(PathBuf::from)
        .context("xtask has no parent directory")
}
