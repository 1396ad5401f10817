//! What one benchmark guest reported: its `PINWATCH-BENCH` lines, parsed.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

/// The daemon's counters over one workload: CPU ticks (1/100 s), records decoded, drops.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct DaemonDelta {
    pub ticks: u64,
    pub records: u64,
    pub drops: u64,
}

/// One workload in one mode and round.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Sample {
    pub rate: f64,
    pub ops: u64,
    /// Only in the modes that run the daemon.
    pub daemon: Option<DaemonDelta>,
}

#[derive(Debug, Default)]
pub struct Results {
    pub release: String,
    /// (workload, mode) → sample per round.
    pub samples: BTreeMap<(String, String), BTreeMap<u32, Sample>>,
    /// Program name → phase → (run_cnt, run_time_ns), summed over programs of that name.
    pub programs: BTreeMap<String, BTreeMap<String, (u64, u64)>>,
    /// Kernel-side drops and decode errors the daemon reported at the end of each round.
    pub daemon_rounds: Vec<String>,
    pub bpftrace_probes: usize,
    /// Lines that said a workload or mode failed.
    pub failures: Vec<String>,
}

impl Results {
    pub fn rounds(&self, workload: &str, mode: &str) -> Option<&BTreeMap<u32, Sample>> {
        self.samples.get(&(workload.to_owned(), mode.to_owned()))
    }
}

/// `key=value` pairs of a line.
fn fields(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

fn daemon_delta(f: &BTreeMap<&str, &str>) -> Option<DaemonDelta> {
    let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok());
    let delta =
        |k: &str| Some(num(&format!("after_{k}"))?.saturating_sub(num(&format!("before_{k}"))?));
    Some(DaemonDelta {
        ticks: delta("ticks")?,
        records: delta("records")?,
        drops: delta("drops")?,
    })
}

pub fn parse(output: &str) -> Result<Results> {
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
                    let sample = Sample {
                        rate,
                        ops: f.get("ops").and_then(|v| v.parse().ok()).unwrap_or(0),
                        daemon: daemon_delta(&f),
                    };
                    r.samples
                        .entry(((*workload).to_owned(), (*mode).to_owned()))
                        .or_default()
                        .insert(round.parse().unwrap_or(0), sample);
                }
                None => r.failures.push(rest.to_owned()),
            }
        }
    }
    if r.samples.is_empty() {
        bail!("the guest reported no measurement (see its console.log)");
    }
    Ok(r)
}
