//! Memory taken away under a long-term pin (issue 14): what the workloads themselves saw.
//!
//! * The `discard` scenarios of `workloads all` (workloads/src/discard/scenarios.rs), as the
//!   main audit pass ran them: one `PINWATCH-DISCARD` line each (xtask/guest/init.sh). Every
//!   one must have run (`ok ...`); its fields (did the call succeed while pinned, what the
//!   process reads afterwards, what the pinner's writes and reads reach) are printed.
//! * The guest_memfd pass: one audit over three `gmem` runs (`audit-gmem`), and each run's exit
//!   status and output (`gmem-<mode>`): 0, or 3 where the kernel has no guest_memfd.
//!
//! The main audit's findings (`Kernel::findings`) include the discard scenarios'; the guest_memfd
//! audit's are exactly `Kernel::gmem`.

use super::{pass, result};
use crate::expect::Kernel;

/// `workloads all` runs this many discard scenarios (`SCENARIOS` in
/// workloads/src/discard/scenarios.rs).
const DISCARD_SCENARIOS: usize = 20;
/// The guest_memfd pass's modes, in the order it runs them.
const GMEM_MODES: [&str; 3] = ["pinned", "after-unregister", "never-pinned"];

pub fn check(kernel: &Kernel, output: &str, fails: &mut Vec<String>) {
    let k = kernel.name;
    let lines: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("PINWATCH-DISCARD "))
        .collect();
    for line in &lines {
        eprintln!("xtask: {k} discard: {line}");
    }
    if lines.len() != DISCARD_SCENARIOS {
        fails.push(format!(
            "{k} discard: {} scenario results (expected {DISCARD_SCENARIOS})",
            lines.len()
        ));
    }
    for line in lines.iter().filter(|l| !l.starts_with("ok ")) {
        fails.push(format!("{k} discard: {line}"));
    }
    check_gmem(kernel, output, fails);
}

fn check_gmem(kernel: &Kernel, output: &str, fails: &mut Vec<String>) {
    let k = kernel.name;
    match result(output, "audit-gmem").map(|r| pass("audit-gmem", r)) {
        None => fails.push(format!("{k}: no audit-gmem result")),
        Some(Err(e)) => fails.push(format!("{k}: {e:#}")),
        Some(Ok(audit)) => {
            let r = &audit.report;
            if r["watched"]["exit_status"].as_i64() != Some(0) {
                fails.push(format!(
                    "{k} audit-gmem: the audited runs exited {}",
                    r["watched"]["exit_status"]
                ));
            }
            let findings: Vec<String> = r["findings"]
                .as_array()
                .into_iter()
                .flatten()
                .map(super::finding_key)
                .collect();
            eprintln!(
                "xtask: {k} audit-gmem: exit {}, findings {findings:?}",
                audit.exit_code
            );
            if let Some((got, want)) = super::findings_differ(findings, kernel.gmem) {
                fails.push(format!(
                    "{k} audit-gmem: findings {got:?} (expected {want:?})"
                ));
            }
        }
    }
    for mode in GMEM_MODES {
        let tag = format!("gmem-{mode}");
        let Some(rest) = result(output, &tag) else {
            fails.push(format!("{k}: no {tag} result"));
            continue;
        };
        eprintln!("xtask: {k} {tag}: {rest}");
        let (code, out) = rest.split_once(' ').unwrap_or((rest, ""));
        let ran = code == "0" && out.contains("workload gmem: ok ");
        let unsupported = code == "3" && out.contains("workload gmem: unsupported ");
        if !ran && !unsupported {
            fails.push(format!(
                "{k} {tag}: exit {code} `{}` (expected 0 and ok, or 3 and unsupported)",
                out.trim()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gmem_output(code: &str, line: &str) -> String {
        let audit = r#"{"watched":{"command":"sh","exit_status":0},"findings":[]}"#;
        let mut out = format!("PINWATCH-RESULT audit-gmem 0 {audit}\n");
        for mode in GMEM_MODES {
            out.push_str(&format!("PINWATCH-RESULT gmem-{mode} {code} {line} \n"));
        }
        out
    }

    fn discard_lines(status: &str) -> String {
        (0..DISCARD_SCENARIOS)
            .map(|_| format!("PINWATCH-DISCARD {status} memory=memfd\n"))
            .collect()
    }

    #[test]
    fn every_scenario_and_mode_must_report() {
        let kernel = crate::expect::kernel("6.12").unwrap();
        let good = discard_lines("ok") + &gmem_output("0", "workload gmem: ok mode=pinned");
        let mut fails = Vec::new();
        check(kernel, &good, &mut fails);
        assert!(fails.is_empty(), "{fails:?}");

        let unsupported = discard_lines("ok")
            + &gmem_output("3", "workload gmem: unsupported no guest_memfd (ENOTTY)");
        let mut fails = Vec::new();
        check(kernel, &unsupported, &mut fails);
        assert!(fails.is_empty(), "{fails:?}");

        let broken = discard_lines("unavailable (no 1234:11e8 device)")
            + &gmem_output("1", "workload gmem: FAILED io_uring_setup");
        let mut fails = Vec::new();
        check(kernel, &broken, &mut fails);
        assert_eq!(
            fails.len(),
            DISCARD_SCENARIOS + GMEM_MODES.len(),
            "{fails:?}"
        );

        let mut fails = Vec::new();
        check(kernel, "", &mut fails);
        assert_eq!(fails.len(), 2 + GMEM_MODES.len(), "{fails:?}");
    }

    #[test]
    fn the_guest_memfd_audit_must_find_exactly_its_kernels_findings() {
        // 7.2 has guest_memfd: an audit that found nothing there is a failure.
        let kernel = crate::expect::kernel("7.2").unwrap();
        let silent = discard_lines("ok") + &gmem_output("0", "workload gmem: ok mode=pinned");
        let mut fails = Vec::new();
        check(kernel, &silent, &mut fails);
        assert_eq!(fails.len(), 1, "{fails:?}");
        assert!(fails[0].contains("audit-gmem: findings"), "{fails:?}");
    }
}
