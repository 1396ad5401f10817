//! What each eBPF program cost the kernel while doctor watched, from the kernel's own BPF
//! run-time statistics (BPF_ENABLE_STATS, 5.8+): runs and nanoseconds per run, per program.
//! Enabling them needs CAP_SYS_ADMIN; without it the report says why instead of guessing.

use std::os::fd::OwnedFd;

use aya::{Ebpf, sys::Stats};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ProgramCost {
    pub program: String,
    pub runs: u64,
    pub run_ns: u64,
    pub ns_per_run: f64,
}

/// Run-time statistics stay on while the returned descriptor is open.
pub fn enable() -> Result<OwnedFd, String> {
    aya::sys::enable_stats(Stats::RunTime)
        .map_err(|e| format!("kernel BPF statistics unavailable: {e} (needs CAP_SYS_ADMIN)"))
}

/// Programs that ran, most expensive in total first.
pub fn read(ebpf: &Ebpf) -> Vec<ProgramCost> {
    let mut costs: Vec<ProgramCost> = ebpf
        .programs()
        .filter_map(|(name, program)| {
            let info = program.info().ok()?;
            let runs = info.run_count();
            let run_ns = u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX);
            (runs > 0).then(|| ProgramCost {
                program: name.to_owned(),
                runs,
                run_ns,
                ns_per_run: run_ns as f64 / runs as f64,
            })
        })
        .collect();
    costs.sort_by_key(|c| std::cmp::Reverse(c.run_ns));
    costs
}
