//! `cargo xtask bench`: pinwatch's overhead on the kernel's hot memory paths, measured inside
//! guests (6.12 and 6.1 by default) against no probes and against bpftrace counting the same
//! functions, plus the per-program cost from the kernel's BPF statistics. It prints figures and
//! writes them to a results file; it asserts nothing about speed (targets are reported, met or
//! not).

use std::{collections::BTreeMap, fmt::Write as _, fs, path::Path};

use anyhow::{Context as _, Result, bail};

use crate::{expect, guest, prometheus, qemu};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Kernels to measure (default: 6.12 and 6.1).
    #[arg(long = "kernel", value_name = "NAME")]
    kernels: Vec<String>,
    /// Rounds of the three modes; the order of modes rotates each round.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seconds each workload runs in each mode and round.
    #[arg(long, default_value_t = 2)]
    seconds: u32,
    /// Where the results go (Markdown), relative to the workspace.
    #[arg(long, default_value = "bench/results.md")]
    out: String,
    /// Seconds one guest may run before it is killed.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
}

const DEFAULT_KERNELS: [&str; 2] = ["6.12", "6.1"];
const WORKLOADS: [&str; 4] = ["fork-cow", "msync", "iouring", "odirect"];
/// pinwatch's target: at least this fraction of the no-probe throughput on every workload.
const TARGET_RATIO: f64 = 0.99;

pub fn run(root: &Path, args: BenchArgs) -> Result<()> {
    if args.rounds == 0 || args.seconds == 0 {
        bail!("--rounds and --seconds must be at least 1");
    }
    let kernels: Vec<String> = if args.kernels.is_empty() {
        DEFAULT_KERNELS.iter().map(|k| (*k).to_owned()).collect()
    } else {
        args.kernels
    };
    let binaries = guest::build_binaries(root)?;
    let mut report = String::new();
    for name in &kernels {
        let kernel = expect::kernel(name).with_context(|| format!("unknown kernel {name}"))?;
        let dir = guest::cache_dir().join("kernels").join(kernel.name);
        let work = root.join("target/bench").join(kernel.name);
        let initrd = guest::initramfs(&dir, &binaries, &work, guest::Extras::Bench)?;
        eprintln!(
            "xtask bench: kernel {name}, {} rounds x {} workloads x 3 modes x {}s",
            args.rounds,
            WORKLOADS.len(),
            args.seconds
        );
        let booted = qemu::boot(&qemu::Guest {
            vmlinuz: &dir.join("vmlinuz"),
            initrd: &initrd,
            work: &work,
            timeout_secs: args.timeout,
            metrics_port: prometheus::free_port()?,
            run: qemu::Run::Bench {
                rounds: args.rounds,
                seconds: args.seconds,
            },
        })?;
        eprintln!("xtask bench: kernel {name} needed {} boot(s)", booted.boots);
        let results = parse(&booted.output)?;
        let section = render(&results);
        println!("{section}");
        report.push_str(&section);
    }
    let header = format!(
        "# pinwatch benchmark results\n\n\
         Measured {} with `cargo xtask bench --rounds {} --seconds {}` (see README, \
         \"Benchmarks\"). Each guest runs under QEMU TCG with one vCPU: absolute rates are \
         emulated, ratios within one run are what to read.\n\n",
        today()?,
        args.rounds,
        args.seconds
    );
    let path = root.join(&args.out);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(&path, header + &report).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("xtask bench: results written to {}", path.display());
    Ok(())
}

fn today() -> Result<String> {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .context("running date")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// What one guest reported.
#[derive(Debug, Default)]
struct Results {
    release: String,
    /// (workload, mode) → rate per round.
    rates: BTreeMap<(String, String), BTreeMap<u32, f64>>,
    /// Program name → phase → (run_cnt, run_time_ns), summed over programs of that name.
    programs: BTreeMap<String, BTreeMap<String, (u64, u64)>>,
    /// Kernel-side drops and decode errors the daemon reported at the end of each round.
    daemon_rounds: Vec<String>,
    bpftrace_probes: usize,
    /// Lines that said a workload or mode failed.
    failures: Vec<String>,
}

/// `key=value` pairs of a line.
fn fields(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

fn parse(output: &str) -> Result<Results> {
    let mut r = Results::default();
    for line in output.lines() {
        if let Some(rel) = line.strip_prefix("PINWATCH-RESULT release ") {
            r.release = rel.trim().to_owned();
        }
        let Some(rest) = line.strip_prefix("PINWATCH-BENCH ") else {
            continue;
        };
        let f = fields(rest);
        if let Some(n) = rest.strip_prefix("bpftrace-probes ") {
            r.bpftrace_probes = n.trim().parse().unwrap_or(0);
        } else if rest.starts_with("prog ") {
            let (Some(name), Some(phase)) = (f.get("name"), f.get("phase")) else {
                continue;
            };
            let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            let slot = r
                .programs
                .entry((*name).to_owned())
                .or_default()
                .entry((*phase).to_owned())
                .or_default();
            slot.0 += num("run_cnt");
            slot.1 += num("run_time_ns");
        } else if rest.starts_with("pinwatch-round ") {
            r.daemon_rounds.push(rest.to_owned());
        } else if rest.starts_with("stopped ") {
            if f.get("code").is_some_and(|c| *c != "0") {
                r.failures.push(rest.to_owned());
            }
        } else if let (Some(round), Some(mode), Some(workload)) =
            (f.get("round"), f.get("mode"), f.get("workload"))
        {
            match f.get("rate").and_then(|v| v.parse::<f64>().ok()) {
                Some(rate) => {
                    r.rates
                        .entry(((*workload).to_owned(), (*mode).to_owned()))
                        .or_default()
                        .insert(round.parse().unwrap_or(0), rate);
                }
                None => r.failures.push(rest.to_owned()),
            }
        }
    }
    if r.rates.is_empty() {
        bail!("the guest reported no measurement (see its console.log)");
    }
    Ok(r)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// Each round's rate in `mode` over the same round's rate without probes.
fn round_ratios(r: &Results, workload: &str, mode: &str) -> Vec<f64> {
    let key = |m: &str| (workload.to_owned(), m.to_owned());
    let (Some(base), Some(with)) = (r.rates.get(&key("none")), r.rates.get(&key(mode))) else {
        return Vec::new();
    };
    with.iter()
        .filter_map(|(round, rate)| base.get(round).map(|b| rate / b))
        .collect()
}

fn render(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Kernel {}\n", r.release);
    let _ = writeln!(
        s,
        "Throughput, median over rounds; ratio = the mode's rate / the no-probe rate in the same \
         round (per-round ratios in brackets). bpftrace counts the {} functions and tracepoints \
         pinwatch attached, with the same probe kinds.\n",
        r.bpftrace_probes
    );
    let _ = writeln!(
        s,
        "| workload | no probes (ops/s) | pinwatch ratio | bpftrace ratio | pinwatch ≥ {TARGET_RATIO} | pinwatch > bpftrace |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|:---:|:---:|");
    for w in WORKLOADS {
        let base = r
            .rates
            .get(&(w.to_owned(), "none".to_owned()))
            .and_then(|m| median(m.values().copied().collect()));
        let pw = round_ratios(r, w, "pinwatch");
        let bt = round_ratios(r, w, "bpftrace");
        let (pwm, btm) = (median(pw.clone()), median(bt.clone()));
        let show = |m: Option<f64>, all: &[f64]| match m {
            None => "n/a".to_owned(),
            Some(m) => format!(
                "{m:.3} [{}]",
                all.iter()
                    .map(|x| format!("{x:.3}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let verdict = |ok: Option<bool>| match ok {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        let _ = writeln!(
            s,
            "| {w} | {} | {} | {} | {} | {} |",
            base.map_or("n/a".to_owned(), |b| format!("{b:.0}")),
            show(pwm, &pw),
            show(btm, &bt),
            verdict(pwm.map(|p| p >= TARGET_RATIO)),
            verdict(pwm.zip(btm).map(|(p, b)| p > b)),
        );
    }
    let _ = writeln!(
        s,
        "\nThe daemon at the end of each round (kernel-side ring buffer drops, decode errors, \
         in-flight table full):\n"
    );
    for line in &r.daemon_rounds {
        let _ = writeln!(s, "- `{line}`");
    }
    render_programs(&mut s, r);
    if !r.failures.is_empty() {
        let _ = writeln!(s, "\nFailures reported by the guest:\n");
        for f in &r.failures {
            let _ = writeln!(s, "- `{f}`");
        }
    }
    s.push('\n');
    s
}

/// Per-program cost: the run count and time each phase added (snapshots are cumulative).
fn render_programs(s: &mut String, r: &Results) {
    let _ = writeln!(
        s,
        "\nPer-program cost from `kernel.bpf_stats_enabled` (ns per run, runs in brackets). Fast \
         path: fork+COW and msync storms on memory nobody pinned. Detailed path: write faults and \
         writeback on VFIO-pinned file pages (writeback of pinned folios happens on 6.1 only: \
         later kernels refuse the long-term pin). Programs that did not run are left out.\n"
    );
    let _ = writeln!(s, "| program | fast path | detailed path |");
    let _ = writeln!(s, "|---|---:|---:|");
    for (name, phases) in &r.programs {
        let at = |p: &str| phases.get(p).copied().unwrap_or_default();
        let delta = |from: (u64, u64), to: (u64, u64)| {
            (to.0.saturating_sub(from.0), to.1.saturating_sub(from.1))
        };
        let fast = delta(at("start"), at("fast"));
        let detailed = delta(at("fast"), at("detailed"));
        if fast.0 == 0 && detailed.0 == 0 {
            continue;
        }
        let cell = |(runs, ns): (u64, u64)| {
            if runs == 0 {
                "-".to_owned()
            } else {
                format!("{:.0} ({runs})", ns as f64 / runs as f64)
            }
        };
        let _ = writeln!(s, "| {name} | {} | {} |", cell(fast), cell(detailed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
PINWATCH-RESULT release 6.12.107+deb13-cloud-amd64
PINWATCH-BENCH bpftrace-probes 22
PINWATCH-BENCH round=1 mode=none workload=fork-cow workload storm: ok kind=fork-cow ops=100 secs=2.0 rate=50.0
PINWATCH-BENCH round=1 mode=pinwatch workload=fork-cow workload storm: ok kind=fork-cow ops=99 secs=2.0 rate=49.5
PINWATCH-BENCH round=1 mode=bpftrace workload=fork-cow workload storm: ok kind=fork-cow ops=90 secs=2.0 rate=45.0
PINWATCH-BENCH round=2 mode=none workload=fork-cow workload storm: ok kind=fork-cow ops=100 secs=2.0 rate=40.0
PINWATCH-BENCH round=2 mode=pinwatch workload=fork-cow workload storm: ok kind=fork-cow ops=100 secs=2.0 rate=40.0
PINWATCH-BENCH round=2 mode=bpftrace workload=msync workload storm: FAILED boom
PINWATCH-BENCH pinwatch-round round=1 pinwatch_ringbuf_drops_total 0
PINWATCH-BENCH stopped mode=bpftrace round=1 code=1
PINWATCH-BENCH prog phase=start id=5 type=26 name=fexit_do_wp_pa run_cnt=10 run_time_ns=1000
PINWATCH-BENCH prog phase=fast id=5 type=26 name=fexit_do_wp_pa run_cnt=110 run_time_ns=11000
PINWATCH-BENCH prog phase=detailed id=5 type=26 name=fexit_do_wp_pa run_cnt=120 run_time_ns=13000
PINWATCH-BENCH done";

    #[test]
    fn ratios_are_per_round_and_failures_are_kept() {
        let r = parse(OUTPUT).expect("parses");
        assert_eq!(r.release, "6.12.107+deb13-cloud-amd64");
        assert_eq!(r.bpftrace_probes, 22);
        assert_eq!(round_ratios(&r, "fork-cow", "pinwatch"), vec![0.99, 1.0]);
        assert_eq!(round_ratios(&r, "fork-cow", "bpftrace"), vec![0.9]);
        assert_eq!(r.failures.len(), 2, "{:?}", r.failures);
        let text = render(&r);
        assert!(
            text.contains("| fork-cow | 45 | 0.995 [0.990, 1.000] | 0.900 [0.900] | yes | yes |"),
            "{text}"
        );
        // fast: 100 runs, 10000 ns; detailed: 10 runs, 2000 ns.
        assert!(
            text.contains("| fexit_do_wp_pa | 100 (100) | 200 (10) |"),
            "{text}"
        );
        assert!(text.contains("Failures reported"));
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
