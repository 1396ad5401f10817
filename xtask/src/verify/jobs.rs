//! The job-runner pass: `pinwatch audit -- pinwatch-workload job-runner`, whose workers each
//! pin an ext4 `MAP_SHARED` file with io_uring and exit before pinwatch reads their events.
//! Every job must be reported exactly as this kernel's table reports the io_uring file pin
//! (released by the caller on 6.1, refused from 6.5), once per worker process, or once per job
//! file when the jobs are threads of one process.

use std::collections::BTreeSet;

use super::{finding_key, report_with_findings};
use crate::expect::Kernel;

/// The guest runs this many jobs (xtask/guest/init.sh).
const JOBS: usize = 4;

pub fn check(kernel: &Kernel, output: &str, fails: &mut Vec<String>) {
    let k = kernel.name;
    let Some(&(hazard, outcome, pinner, fs, pages)) = kernel
        .findings
        .iter()
        .find(|f| f.0 == "longterm-file-pin" && f.2 == "io_uring")
    else {
        fails.push(format!("{k}: expect.rs has no io_uring file pin"));
        return;
    };
    let want = format!("{hazard} {outcome} {pinner} {fs} {pages}");
    for (tag, processes) in [("audit-jobs", JOBS), ("audit-jobs-threads", 1)] {
        let report = match report_with_findings(output, tag) {
            Ok(report) => report,
            Err(e) => {
                fails.push(format!("{k} {e}"));
                continue;
            }
        };
        let findings = report["findings"].as_array().map_or(&[][..], Vec::as_slice);
        let got: Vec<String> = findings.iter().map(finding_key).collect();
        if got != vec![want.clone(); JOBS] {
            fails.push(format!(
                "{k} {tag}: findings {got:?} (expected {JOBS} x {want})"
            ));
        }
        let tgids: BTreeSet<u64> = findings
            .iter()
            .filter_map(|f| f["process"]["tgid"].as_u64())
            .collect();
        if tgids.len() != processes {
            fails.push(format!(
                "{k} {tag}: findings from {} processes (expected {processes})",
                tgids.len()
            ));
        }
    }
}
