//! The benchmark's figures as Markdown: per kernel and clock, each mode's throughput ratio, the
//! cost over the floor, the daemon's CPU per record, and the targets, met or not.

use std::fmt::Write as _;

use super::parse::Results;

/// The storms, the realistic mix and the discard storms, in the order of the tables.
pub const WORKLOADS: [&str; 8] = [
    "fork-cow",
    "msync",
    "iouring",
    "odirect",
    "mixed",
    "page-cache-churn",
    "madvise-churn",
    "madvise-churn-pinner",
];
/// The modes that are compared with no probes, in the order of the columns.
const MODES: [&str; 4] = ["floor", "kernel-only", "pinwatch", "bpftrace"];
/// Storms run by processes that never pinned: pinwatch must cost them almost only the floor.
const NEVER_PINNED: [&str; 4] = ["fork-cow", "msync", "page-cache-churn", "madvise-churn"];
/// Storms whose cost over no probes may be at most [`MAX_COST_OVER_FLOOR`] × the floor's.
const FLOOR_BOUND: [&str; 5] = [
    "fork-cow",
    "msync",
    "odirect",
    "page-cache-churn",
    "madvise-churn",
];
const MAX_COST_OVER_FLOOR: f64 = 1.2;
const MAX_COST_OVER_FLOOR_NEVER_PINNED: f64 = 1.05;
/// The io_uring storm registers this many single-page buffers a system call (`storm --pages`),
/// then unregisters them: one cycle is two system calls and this many operations.
const IOURING_PAGES_PER_CYCLE: f64 = 256.0;
const IOURING_MIN_RATIO: f64 = 0.9;
/// At most two records per system call: four per register + unregister cycle.
const IOURING_MAX_RECORDS_PER_CYCLE: f64 = 4.0;
const MIXED_MIN_RATIO: f64 = 0.99;
/// Clock ticks per second of the guests' `/proc/PID/stat` (`CLK_TCK`).
const CLK_TCK: f64 = 100.0;

pub fn median(mut v: Vec<f64>) -> Option<f64> {
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
pub fn round_ratios(r: &Results, workload: &str, mode: &str) -> Vec<f64> {
    let (Some(base), Some(with)) = (r.rounds(workload, "none"), r.rounds(workload, mode)) else {
        return Vec::new();
    };
    with.iter()
        .filter_map(|(round, s)| base.get(round).map(|b| s.rate / b.rate))
        .collect()
}

/// The extra time per operation a ratio means, as a fraction of the no-probe time.
fn cost(ratio: f64) -> f64 {
    1.0 / ratio - 1.0
}

/// Per round: pinwatch's cost over no probes divided by the floor's (1.0: pinwatch costs
/// exactly what its attachments cost). Rounds where the floor cost nothing measurable are
/// left out.
pub fn cost_over_floor(r: &Results, workload: &str) -> Vec<f64> {
    round_ratios(r, workload, "pinwatch")
        .into_iter()
        .zip(round_ratios(r, workload, "floor"))
        .filter(|(_, floor)| cost(*floor) > 0.001)
        .map(|(full, floor)| cost(full) / cost(floor))
        .collect()
}

fn show(all: &[f64]) -> String {
    match median(all.to_vec()) {
        None => "n/a".to_owned(),
        Some(m) => format!(
            "{m:.3} [{}]",
            all.iter()
                .map(|x| format!("{x:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Round-to-round spread of the no-probe rate: (max − min) / median. Under `icount` the same
/// work should give the same figure whatever ran before it.
fn spread(r: &Results, workload: &str) -> Option<f64> {
    let rates: Vec<f64> = r
        .rounds(workload, "none")?
        .values()
        .map(|s| s.rate)
        .collect();
    let (min, max) = rates
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
    Some((max - min) / median(rates)?)
}

pub fn section(r: &Results, clock: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Kernel {}, {clock} clock\n", r.release);
    let _ = writeln!(
        s,
        "Ratio = the mode's rate / the no-probe rate of the same round; median, then every round \
         in brackets. floor: pinwatch's attachments, every program returning at once. \
         kernel-only: pinwatch's programs, records read and discarded. bpftrace counts the {} \
         functions and tracepoints pinwatch attached, with the same probe kinds. cost/floor: \
         pinwatch's extra time per operation over the floor's (1.0 = the attachments alone).\n",
        r.bpftrace_probes
    );
    let _ = writeln!(
        s,
        "| workload | no probes (ops/s) | spread | floor | kernel-only | pinwatch | bpftrace | cost/floor |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for w in WORKLOADS {
        let base = r
            .rounds(w, "none")
            .and_then(|m| median(m.values().map(|s| s.rate).collect()));
        let cells: Vec<String> = MODES.iter().map(|m| show(&round_ratios(r, w, m))).collect();
        let _ = writeln!(
            s,
            "| {w} | {} | {} | {} | {} |",
            base.map_or("n/a".to_owned(), |b| format!("{b:.0}")),
            spread(r, w).map_or("n/a".to_owned(), |x| format!("{:.1}%", x * 100.0)),
            cells.join(" | "),
            show(&cost_over_floor(r, w)),
        );
    }
    daemon_table(&mut s, r);
    let _ = writeln!(s, "\nThe daemon at the end of each round:\n");
    for line in &r.daemon_rounds {
        let _ = writeln!(s, "- `{line}`");
    }
    programs_table(&mut s, r);
    if !r.failures.is_empty() {
        let _ = writeln!(s, "\nFailures reported by the guest:\n");
        for f in &r.failures {
            let _ = writeln!(s, "- `{f}`");
        }
    }
    s.push('\n');
    s
}

/// The daemon in full mode: records per operation, its CPU per million records, drops (summed
/// over rounds), and the kernel-only mode's drops.
fn daemon_table(s: &mut String, r: &Results) {
    let _ = writeln!(
        s,
        "\nThe daemon per workload (full mode, all rounds summed; CPU is user + system time of \
         `pinwatch run`):\n"
    );
    let _ = writeln!(
        s,
        "| workload | records per 1000 ops | daemon CPU ms per million records | drops | drops (kernel-only) |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    for w in WORKLOADS {
        let sum = |mode: &str| {
            r.rounds(w, mode).map(|rounds| {
                rounds.values().fold((0u64, 0u64, 0u64, 0u64), |acc, smp| {
                    let d = smp.daemon.unwrap_or_default();
                    (
                        acc.0 + smp.ops,
                        acc.1 + d.records,
                        acc.2 + d.ticks,
                        acc.3 + d.drops,
                    )
                })
            })
        };
        let Some((ops, records, ticks, drops)) = sum("pinwatch") else {
            continue;
        };
        let per_k = if ops > 0 {
            format!("{:.2}", records as f64 * 1000.0 / ops as f64)
        } else {
            "n/a".to_owned()
        };
        let cpu = if records > 0 {
            format!(
                "{:.0}",
                ticks as f64 * 1000.0 / CLK_TCK / records as f64 * 1e6
            )
        } else {
            "-".to_owned()
        };
        let ko_drops = sum("kernel-only").map_or("n/a".to_owned(), |t| t.3.to_string());
        let _ = writeln!(s, "| {w} | {per_k} | {cpu} | {drops} | {ko_drops} |");
    }
}

/// Per-program cost: the run count and time each phase added (snapshots are cumulative).
fn programs_table(s: &mut String, r: &Results) {
    let _ = writeln!(
        s,
        "\nPer-program cost from `kernel.bpf_stats_enabled` (ns per run, runs in brackets). Fast \
         path: fork+COW and msync storms on memory nobody pinned. Detailed path: write faults and \
         writeback on VFIO-pinned file pages (writeback of pinned folios happens on 6.1 only: \
         later kernels refuse the long-term pin). Pin storms: io_uring registrations of \
         single-page buffers and O_DIRECT reads. Discards: the page-cache-churn and madvise-churn \
         storms (processes that never pinned). By a pinner: the madvise-churn-pinner storm (each \
         MADV_DONTNEED an event, no pin in its range). Programs that did not run are left out.\n"
    );
    let _ = writeln!(
        s,
        "| program | fast path | detailed path | pin storms | discards | by a pinner |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
    for (name, phases) in &r.programs {
        let at = |p: &str| phases.get(p).copied().unwrap_or_default();
        let delta = |from: (u64, u64), to: (u64, u64)| {
            (to.0.saturating_sub(from.0), to.1.saturating_sub(from.1))
        };
        let fast = delta(at("start"), at("fast"));
        let detailed = delta(at("fast"), at("detailed"));
        // Runs without a phase (results taken before it existed) show it as not run.
        let after = |from: &str, to: &str| {
            if phases.contains_key(to) {
                delta(at(from), at(to))
            } else {
                (0, 0)
            }
        };
        let storms = after("detailed", "storms");
        let discards = after("storms", "discards");
        let pinner = after("discards", "pinner");
        if [fast, detailed, storms, discards, pinner]
            .iter()
            .all(|p| p.0 == 0)
        {
            continue;
        }
        let cell = |(runs, ns): (u64, u64)| {
            if runs == 0 {
                "-".to_owned()
            } else {
                format!("{:.0} ({runs})", ns as f64 / runs as f64)
            }
        };
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {} | {} |",
            cell(fast),
            cell(detailed),
            cell(storms),
            cell(discards),
            cell(pinner)
        );
    }
}

/// One target of issue 12, checked against one run.
pub struct Verdict {
    pub target: String,
    pub met: Option<bool>,
    pub figure: String,
}

/// The targets for one kernel, from the run whose clock is the reference (`icount`).
pub fn targets(r: &Results) -> Vec<Verdict> {
    let mut out = Vec::new();
    let med = |v: Vec<f64>| median(v);
    for w in WORKLOADS {
        let (p, b) = (
            med(round_ratios(r, w, "pinwatch")),
            med(round_ratios(r, w, "bpftrace")),
        );
        out.push(Verdict {
            target: format!("{w}: pinwatch's ratio above bpftrace's"),
            met: p.zip(b).map(|(p, b)| p > b),
            figure: format!("{} vs {}", fmt(p), fmt(b)),
        });
    }
    for w in FLOOR_BOUND {
        let bound = if NEVER_PINNED.contains(&w) {
            MAX_COST_OVER_FLOOR_NEVER_PINNED
        } else {
            MAX_COST_OVER_FLOOR
        };
        let c = med(cost_over_floor(r, w));
        out.push(Verdict {
            target: format!("{w}: cost over no probes at most {bound}× the floor's"),
            met: c.map(|c| c <= bound),
            figure: format!("{}×", fmt(c)),
        });
    }
    out.extend(iouring_targets(r));
    out.push(min_ratio(r, "mixed", MIXED_MIN_RATIO));
    out
}

/// pinwatch's median ratio on `workload` is at least `min`.
fn min_ratio(r: &Results, workload: &str, min: f64) -> Verdict {
    let ratio = median(round_ratios(r, workload, "pinwatch"));
    Verdict {
        target: format!("{workload}: ratio at least {min}"),
        met: ratio.map(|x| x >= min),
        figure: fmt(ratio),
    }
}

/// The io_uring storm's targets: no drops, few records per registration, a high ratio.
fn iouring_targets(r: &Results) -> Vec<Verdict> {
    let mut out = Vec::new();
    let iouring = r.rounds("iouring", "pinwatch");
    let (ops, records, drops) = iouring.map_or((0, 0, 0), |rounds| {
        rounds.values().fold((0, 0, 0), |acc, s| {
            let d = s.daemon.unwrap_or_default();
            (acc.0 + s.ops, acc.1 + d.records, acc.2 + d.drops)
        })
    });
    out.push(Verdict {
        target: "iouring: no drops at full storm rate".to_owned(),
        met: iouring.map(|_| drops == 0),
        figure: format!("{drops} dropped"),
    });
    let per_cycle = (ops > 0).then(|| records as f64 / (ops as f64 / IOURING_PAGES_PER_CYCLE));
    out.push(Verdict {
        target: format!(
            "iouring: at most 2 records per system call ({IOURING_MAX_RECORDS_PER_CYCLE} per \
             register + unregister cycle)"
        ),
        met: per_cycle.map(|x| x <= IOURING_MAX_RECORDS_PER_CYCLE),
        figure: format!("{} records a cycle", fmt(per_cycle)),
    });
    out.push(min_ratio(r, "iouring", IOURING_MIN_RATIO));
    out
}

fn fmt(x: Option<f64>) -> String {
    x.map_or("n/a".to_owned(), |x| format!("{x:.3}"))
}

/// The targets table: one row per target, one column per kernel.
pub fn targets_table(kernels: &[(String, Vec<Verdict>)]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Targets (issue 12), from the icount runs\n");
    let header: Vec<&str> = kernels.iter().map(|(k, _)| k.as_str()).collect();
    let _ = writeln!(s, "| target | {} |", header.join(" | "));
    let _ = writeln!(s, "|---|{}", ":---:|".repeat(kernels.len()));
    let Some((_, first)) = kernels.first() else {
        return s;
    };
    for (i, v) in first.iter().enumerate() {
        let cells: Vec<String> = kernels
            .iter()
            .map(|(_, vs)| {
                vs.get(i).map_or("n/a".to_owned(), |v| {
                    let mark = match v.met {
                        Some(true) => "met",
                        Some(false) => "**missed**",
                        None => "n/a",
                    };
                    format!("{mark} ({})", v.figure)
                })
            })
            .collect();
        let _ = writeln!(s, "| {} | {} |", v.target, cells.join(" | "));
    }
    s.push('\n');
    s
}
