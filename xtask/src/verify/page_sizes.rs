//! Passes where the kernel works in pages larger than 4 KiB (xtask/guest/init.sh): findings
//! count base pages and say the page size the kernel handled.
//!
//! - `audit-huge`: io_uring pins two private hugetlb pages, then two THPs, and each process
//!   forks while they are pinned. Every kernel copies the pinned pages for the child eagerly:
//!   the hugetlb pages whole (`copy_hugetlb_page_range`), the THPs split and page by page
//!   (`copy_huge_pmd` → the PTE path).
//! - `audit-large-folios`: VFIO pins an xfs file read back in 2 MiB folios, dirties it and
//!   writes it back (cleaned under the pin on 6.1, refused later); then pins an xfs MAP_PRIVATE
//!   file in 2 MiB folios read-only and writes to it (each pinned page copied on 6.1, where the
//!   pin count is the large folio's; unshared at pin time later). `expect.rs`, `large_folios`.

use serde_json::Value;

use super::{finding_key, report_with_findings, result};
use crate::expect::{Kernel, SizedFinding};

/// Base pages in each buffer (`--pages 1024`: two 2 MiB pages).
const PAGES: u64 = 1024;
const HUGE: u64 = 2 << 20;
const BASE: u64 = 4096;

pub fn check(kernel: &Kernel, output: &str, fails: &mut Vec<String>) {
    let eager = ("fork-with-pins", "eager-copy", "io_uring", "-", PAGES);
    check_pass(
        kernel,
        output,
        "audit-huge",
        &[(eager, Some(HUGE)), (eager, Some(BASE))],
        fails,
    );
    // The THP half proves something only if the kernel really backed the buffer with THPs.
    let workloads = result(output, "huge-workloads").unwrap_or("");
    let thp_kb = workloads
        .split("thp=")
        .nth(1)
        .and_then(|v| v.split("kB").next())
        .and_then(|v| v.parse::<u64>().ok());
    if thp_kb != Some(PAGES * 4) {
        fails.push(format!(
            "{} audit-huge: the THP buffer had {thp_kb:?} kB of THPs (expected {}): {workloads}",
            kernel.name,
            PAGES * 4
        ));
    }
    check_pass(
        kernel,
        output,
        "audit-large-folios",
        kernel.large_folios,
        fails,
    );
    // Both files must really have been in large folios when pinned (the page flags say so).
    let workloads = result(output, "large-folio-workloads").unwrap_or("");
    let large = workloads
        .matches(&format!("in_large_folios={PAGES}"))
        .count();
    if large != 2 {
        fails.push(format!(
            "{} audit-large-folios: {large} of 2 files in large folios when pinned: {workloads}",
            kernel.name
        ));
    }
}

/// Exactly `want` (with page sizes), from a pass that must exit 1 (findings).
fn check_pass(
    kernel: &Kernel,
    output: &str,
    tag: &str,
    want: &[SizedFinding],
    fails: &mut Vec<String>,
) {
    let k = kernel.name;
    let report = match report_with_findings(output, tag) {
        Ok(report) => report,
        Err(e) => {
            fails.push(format!("{k} {e}"));
            return;
        }
    };
    let findings = report["findings"].as_array().map_or(&[][..], Vec::as_slice);
    let mut got: Vec<String> = findings.iter().map(sized_key).collect();
    got.sort();
    let mut want: Vec<String> = want
        .iter()
        .map(|((h, o, p, fs, n), size)| {
            format!("{h} {o} {p} {fs} {n} page_size={}", size_text(*size))
        })
        .collect();
    want.sort();
    if got != want {
        fails.push(format!("{k} {tag}: findings {got:?}, expected {want:?}"));
    }
}

fn sized_key(f: &Value) -> String {
    format!(
        "{} page_size={}",
        finding_key(f),
        size_text(f["page_size"].as_u64())
    )
}

fn size_text(size: Option<u64>) -> String {
    size.map_or_else(|| "unknown".to_owned(), |s| s.to_string())
}
