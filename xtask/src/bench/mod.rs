//! `cargo xtask bench`: pinwatch's overhead on the kernel's hot memory paths, measured inside
//! guests (6.1, 6.12 and 7.2) in five modes rotated in the same boot: no probes, the floor
//! (pinwatch's attachments doing nothing), kernel-only, full, and bpftrace counting the same
//! functions; plus the per-program cost from the kernel's BPF statistics. Each kernel runs
//! twice: under `-icount` (guest time counts instructions, so a figure does not depend on what
//! else the host does, and the kernels run side by side) and on the wall clock as a
//! cross-check. It prints figures and writes them to a results file; it asserts nothing about
//! speed (targets are reported, met or not).

mod parse;
mod render;

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};

use crate::{expect, guest, prometheus, qemu};
use parse::parse;
use render::{WORKLOADS, section, targets, targets_table};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Kernels to measure (default: 6.1, 6.12 and 7.2).
    #[arg(long = "kernel", value_name = "NAME")]
    kernels: Vec<String>,
    /// Clocks to measure with (default: icount, then wall).
    #[arg(long = "clock", value_enum, value_name = "CLOCK")]
    clocks: Vec<qemu::Clock>,
    /// Rounds of the modes; the order of modes rotates each round.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seconds (guest time) each workload runs in each mode and round.
    #[arg(long, default_value_t = 2)]
    seconds: u32,
    /// Where the results go (Markdown), relative to the workspace.
    #[arg(long, default_value = "bench/results.md")]
    out: String,
    /// Seconds one guest may run before it is killed.
    #[arg(long, default_value_t = 5400)]
    timeout: u64,
    /// Boot nothing: render the results file from the guests' outputs of earlier runs
    /// (`target/bench/<kernel>/<clock>/results.txt`), for example an icount run and a wall-clock
    /// run taken later on a quiet host.
    #[arg(long)]
    report_only: bool,
}

const DEFAULT_KERNELS: [&str; 3] = ["6.1", "6.12", "7.2"];
const DEFAULT_CLOCKS: [qemu::Clock; 2] = [qemu::Clock::Icount, qemu::Clock::Wall];

/// One guest of the run: a kernel under one clock.
struct Job {
    kernel: String,
    clock: qemu::Clock,
    vmlinuz: PathBuf,
    initrd: PathBuf,
    work: PathBuf,
}

pub fn run(root: &Path, args: BenchArgs) -> Result<()> {
    if args.rounds == 0 || args.seconds == 0 {
        bail!("--rounds and --seconds must be at least 1");
    }
    let jobs = plan(root, &args)?;
    let outputs = if args.report_only {
        jobs.iter().map(|job| (job, earlier_output(job))).collect()
    } else {
        run_jobs(&jobs, &args)
    };
    report(root, &args, outputs)
}

/// What a guest of an earlier run wrote.
fn earlier_output(job: &Job) -> Result<String> {
    let path = job.work.join("results.txt");
    fs::read_to_string(&path)
        .with_context(|| format!("reading {} (run the benchmark first)", path.display()))
}

/// One job per kernel and clock, each kernel's image built once (unless only reporting).
fn plan(root: &Path, args: &BenchArgs) -> Result<Vec<Job>> {
    let kernels: Vec<String> = if args.kernels.is_empty() {
        DEFAULT_KERNELS.iter().map(|k| (*k).to_owned()).collect()
    } else {
        args.kernels.clone()
    };
    let clocks = if args.clocks.is_empty() {
        DEFAULT_CLOCKS.to_vec()
    } else {
        args.clocks.clone()
    };
    let kernel_dirs = kernels
        .iter()
        .map(|k| expect::kernel(k).with_context(|| format!("unknown kernel {k}")))
        .collect::<Result<Vec<_>>>()?;
    let binaries = if args.report_only {
        None
    } else {
        Some(guest::build_binaries(root)?)
    };
    let mut jobs = Vec::new();
    for (name, kernel) in kernels.iter().zip(kernel_dirs) {
        let dir = guest::cache_dir().join("kernels").join(kernel.name);
        let images = root.join("target/bench").join(kernel.name);
        let initrd = match &binaries {
            Some(binaries) => guest::initramfs(&dir, binaries, &images, guest::Extras::Bench)?,
            None => PathBuf::new(),
        };
        for clock in &clocks {
            jobs.push(Job {
                kernel: name.clone(),
                clock: *clock,
                vmlinuz: dir.join("vmlinuz"),
                initrd: initrd.clone(),
                work: images.join(clock.name()),
            });
        }
    }
    eprintln!(
        "xtask bench: {} guests ({} kernels x {} clocks), {} rounds x {} workloads x 5 modes x {}s; \
         icount guests run side by side, wall-clock guests one at a time",
        jobs.len(),
        kernels.len(),
        clocks.len(),
        args.rounds,
        WORKLOADS.len(),
        args.seconds
    );
    Ok(jobs)
}

/// Runs the jobs: icount guests are deterministic whatever else runs, so all at once;
/// wall-clock guests measure time, so each runs alone.
fn run_jobs<'j>(jobs: &'j [Job], args: &BenchArgs) -> Vec<(&'j Job, Result<String>)> {
    let (icount, wall): (Vec<&Job>, Vec<&Job>) =
        jobs.iter().partition(|j| j.clock == qemu::Clock::Icount);
    let mut outputs: Vec<(&Job, Result<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = icount
            .iter()
            .map(|job| (*job, scope.spawn(|| bench_guest(job, args))))
            .collect();
        handles
            .into_iter()
            .map(|(job, h)| (job, h.join().expect("a bench thread does not panic")))
            .collect()
    });
    for job in wall {
        outputs.push((job, bench_guest(job, args)));
    }
    outputs
}

/// Writes the results file (targets from the icount runs, then every run's section) and fails
/// if a guest gave no results.
fn report(root: &Path, args: &BenchArgs, outputs: Vec<(&Job, Result<String>)>) -> Result<()> {
    let mut sections = String::new();
    let mut verdicts = Vec::new();
    let mut failed = Vec::new();
    for (job, output) in outputs {
        let results = match output.and_then(|o| parse(&o)) {
            Ok(r) => r,
            Err(e) => {
                eprintln!(
                    "xtask bench: kernel {} ({}) failed: {e:#}",
                    job.kernel,
                    job.clock.name()
                );
                failed.push(format!("{} ({})", job.kernel, job.clock.name()));
                continue;
            }
        };
        if job.clock == qemu::Clock::Icount {
            verdicts.push((job.kernel.clone(), targets(&results)));
        }
        let text = section(&results, job.clock.name());
        println!("{text}");
        sections.push_str(&text);
    }
    let how = if args.report_only {
        "Rendered {date} by `cargo xtask bench --report-only` from the guests' outputs of earlier \
         `cargo xtask bench --rounds {rounds} --seconds {seconds}` runs (see README, \
         \"Benchmarks\", and bench/README.md for when each was taken)."
    } else {
        "Measured {date} with `cargo xtask bench --rounds {rounds} --seconds {seconds}` (see \
         README, \"Benchmarks\")."
    };
    let header = format!(
        "# pinwatch benchmark results\n\n{} Each guest runs under QEMU TCG with one vCPU: \
         absolute rates are emulated, ratios within one run are what to read. Under the icount \
         clock guest time counts instructions (`-icount shift=0,sleep=off`): the figures do not \
         depend on the host's load; the wall clock is the cross-check.\n\n",
        how.replace("{date}", &today()?)
            .replace("{rounds}", &args.rounds.to_string())
            .replace("{seconds}", &args.seconds.to_string())
    );
    if sections.is_empty() {
        bail!(
            "no results from {}: {} left as it was",
            failed.join(", "),
            args.out
        );
    }
    let path = root.join(&args.out);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(&path, header + &targets_table(&verdicts) + &sections)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("xtask bench: results written to {}", path.display());
    if !failed.is_empty() {
        bail!("no results from {}", failed.join(", "));
    }
    Ok(())
}

/// Boots one benchmark guest and returns its output.
fn bench_guest(job: &Job, args: &BenchArgs) -> Result<String> {
    fs::create_dir_all(&job.work)?;
    eprintln!(
        "xtask bench: kernel {} ({} clock) starting",
        job.kernel,
        job.clock.name()
    );
    let booted = qemu::boot(&qemu::Guest {
        vmlinuz: &job.vmlinuz,
        initrd: &job.initrd,
        work: &job.work,
        timeout_secs: args.timeout,
        metrics_port: prometheus::free_port()?,
        run: qemu::Run::Bench {
            rounds: args.rounds,
            seconds: args.seconds,
            clock: job.clock,
        },
    })?;
    eprintln!(
        "xtask bench: kernel {} ({} clock) needed {} boot(s)",
        job.kernel,
        job.clock.name(),
        booted.boots
    );
    Ok(booted.output)
}

fn today() -> Result<String> {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .context("running date")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::parse::parse;
    use super::render::*;

    const OUTPUT: &str = "\
PINWATCH-RESULT release 6.12.107+deb13-cloud-amd64
PINWATCH-BENCH bpftrace-probes 22
PINWATCH-BENCH round=1 mode=none workload=fork-cow workload storm: ok kind=fork-cow ops=100 secs=2.0 rate=50.0
PINWATCH-BENCH round=1 mode=floor workload=fork-cow workload storm: ok kind=fork-cow ops=100 secs=2.0 rate=45.0 before_ticks=10 before_records=0 before_drops=0 after_ticks=10 after_records=0 after_drops=0
PINWATCH-BENCH round=1 mode=pinwatch workload=fork-cow workload storm: ok kind=fork-cow ops=99 secs=2.0 rate=40.0 before_ticks=100 before_records=5 before_drops=1 after_ticks=120 after_records=2005 after_drops=1
PINWATCH-BENCH round=1 mode=bpftrace workload=fork-cow workload storm: ok kind=fork-cow ops=90 secs=2.0 rate=45.0
PINWATCH-BENCH round=2 mode=none workload=fork-cow workload storm: ok kind=fork-cow ops=100 secs=2.0 rate=40.0
PINWATCH-BENCH round=2 mode=floor workload=fork-cow workload storm: ok kind=fork-cow ops=100 secs=2.0 rate=32.0
PINWATCH-BENCH round=2 mode=pinwatch workload=fork-cow workload storm: ok kind=fork-cow ops=100 secs=2.0 rate=32.0
PINWATCH-BENCH round=2 mode=bpftrace workload=msync workload storm: FAILED boom
PINWATCH-BENCH pinwatch-round round=1 mode=pinwatch pinwatch_ringbuf_drops_total 0
PINWATCH-BENCH stopped mode=bpftrace round=1 code=1
PINWATCH-BENCH prog phase=start id=5 type=26 name=fexit_do_wp_pa run_cnt=10 run_time_ns=1000
PINWATCH-BENCH prog phase=fast id=5 type=26 name=fexit_do_wp_pa run_cnt=110 run_time_ns=11000
PINWATCH-BENCH prog phase=detailed id=5 type=26 name=fexit_do_wp_pa run_cnt=120 run_time_ns=13000
PINWATCH-BENCH prog phase=start id=7 type=17 name=raw_tracepoint_page_cache_delete run_cnt=0 run_time_ns=0
PINWATCH-BENCH prog phase=fast id=7 type=17 name=raw_tracepoint_page_cache_delete run_cnt=0 run_time_ns=0
PINWATCH-BENCH prog phase=detailed id=7 type=17 name=raw_tracepoint_page_cache_delete run_cnt=0 run_time_ns=0
PINWATCH-BENCH prog phase=storms id=7 type=17 name=raw_tracepoint_page_cache_delete run_cnt=4 run_time_ns=800
PINWATCH-BENCH prog phase=discards id=7 type=17 name=raw_tracepoint_page_cache_delete run_cnt=1004 run_time_ns=150800
PINWATCH-BENCH prog phase=pinner id=7 type=17 name=raw_tracepoint_page_cache_delete run_cnt=1006 run_time_ns=151400
PINWATCH-BENCH done";

    #[test]
    fn ratios_costs_and_daemon_figures_are_per_round() {
        let r = parse(OUTPUT).expect("parses");
        assert_eq!(r.release, "6.12.107+deb13-cloud-amd64");
        assert_eq!(r.bpftrace_probes, 22);
        assert_eq!(round_ratios(&r, "fork-cow", "pinwatch"), vec![0.8, 0.8]);
        assert_eq!(round_ratios(&r, "fork-cow", "bpftrace"), vec![0.9]);
        // Round 1: pinwatch costs 0.25 per op, the floor 1/9; round 2 both 0.25.
        let c = cost_over_floor(&r, "fork-cow");
        assert!(
            (c[0] - 2.25).abs() < 1e-9 && (c[1] - 1.0).abs() < 1e-9,
            "{c:?}"
        );
        assert_eq!(r.failures.len(), 2, "{:?}", r.failures);
        let text = section(&r, "icount");
        assert!(
            text.contains("## Kernel 6.12.107+deb13-cloud-amd64, icount clock"),
            "{text}"
        );
        assert!(
            text.contains("| fork-cow | 45 | 22.2% | 0.850 [0.900, 0.800] | n/a | 0.800 [0.800, 0.800] | 0.900 [0.900] | 1.625 [2.250, 1.000] |"),
            "{text}"
        );
        // 2000 records over 99 + 100 ops; 20 ticks (200 ms) for 2000 records.
        assert!(
            text.contains("| fork-cow | 10050.25 | 100000 | 0 | n/a |"),
            "{text}"
        );
        // fast: 100 runs, 10000 ns; detailed: 10 runs, 2000 ns; no later phase.
        assert!(
            text.contains("| fexit_do_wp_pa | 100 (100) | 200 (10) | - | - | - |"),
            "{text}"
        );
        // storms: 4 runs, 800 ns; discards: 1000 runs, 150000 ns; by a pinner: 2 runs, 600 ns.
        assert!(
            text.contains(
                "| raw_tracepoint_page_cache_delete | - | - | 200 (4) | 150 (1000) | 300 (2) |"
            ),
            "{text}"
        );
        assert!(text.contains("Failures reported"));
        let verdicts = targets(&r);
        let first = &verdicts[0];
        assert_eq!(first.met, Some(false), "{}", first.figure);
        let table = targets_table(&[("6.12".to_owned(), verdicts)]);
        assert!(
            table.contains(
                "| fork-cow: pinwatch's ratio above bpftrace's | **missed** (0.800 vs 0.900) |"
            ),
            "{table}"
        );
    }

    #[test]
    fn no_measurement_is_an_error() {
        assert!(parse("PINWATCH-BENCH done").is_err());
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
