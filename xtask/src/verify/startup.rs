//! The start-up pass: a VFIO file pin taken while `pinwatch run` is still attaching its hooks,
//! written back once the daemon is ready. The pin must not be judged on half the hooks: its
//! findings are exactly those of a pin older than pinwatch (`Kernel::preexisting`: on 6.1 the
//! writeback of its folios, unattributed, "pinned before pinwatch was ready"; nothing where the
//! kernel refuses the pin), and readiness must be observable (log line, metric).

use super::{daemon::samples, daemon::sum, finding_key, findings_differ, result};
use crate::expect::Kernel;

pub fn check(kernel: &Kernel, output: &str, fails: &mut Vec<String>) {
    let k = kernel.name;
    let Some(status) = result(output, "startup") else {
        fails.push(format!("{k} start-up: no result"));
        return;
    };
    if !status.starts_with("0 workload vfio: ") {
        fails.push(format!("{k} start-up: daemon or workload failed: {status}"));
    }
    let metrics = samples(
        &output
            .lines()
            .filter_map(|l| l.strip_prefix("PINWATCH-STARTUP-METRICS "))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let ready = sum(&metrics, "pinwatch_ready_time_seconds", &[]);
    let pinned = status
        .split_whitespace()
        .find_map(|w| w.strip_prefix("pinned_at="))
        .and_then(|t| t.parse::<f64>().ok());
    match pinned {
        Some(at) if ready > 0.0 && at < ready => {}
        other => {
            fails.push(format!(
                "{k} start-up: the pin ({other:?}) was not taken before the daemon was ready ({ready}): scenario not exercised"
            ));
            return;
        }
    }
    let got = output
        .lines()
        .filter_map(|l| l.strip_prefix("PINWATCH-STARTUP-FINDING "))
        .map(|l| finding_key(&serde_json::from_str(l).unwrap_or_default()))
        .collect();
    if let Some((got, want)) = findings_differ(got, kernel.preexisting) {
        fails.push(format!(
            "{k} start-up: findings {got:?} (expected {want:?}: a pin from before pinwatch was ready)"
        ));
    }
    if !output
        .lines()
        .filter_map(|l| l.strip_prefix("PINWATCH-STARTUP-LOG "))
        .any(|l| l.contains("INFO  probe_user::session: ready: every hook attached"))
    {
        fails.push(format!("{k} start-up: the daemon's log has no ready line"));
    }
}
