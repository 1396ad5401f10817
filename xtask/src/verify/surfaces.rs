//! Checks of the surfaces besides doctor and the daemon: `pinwatch events`, `audit --pid`,
//! `audit --fail-on`, and the refusal without privileges, each over a real io_uring
//! pin-then-fork workload in the guest.

use serde_json::Value;

use super::{Pass, pass};
use crate::expect::Kernel;

pub fn check(kernel: &Kernel, output: &str, fails: &mut Vec<String>) {
    let k = kernel.name;
    let result = |tag: &str| super::result(output, tag).map(str::to_owned);
    // events: JSON lines, only kinds that feed fork-with-pins, the fork copy among them.
    match result("events") {
        Some(code) if code.trim() == "0" => {}
        other => fails.push(format!("{k} events: exited {other:?} (expected 0)")),
    }
    let events: Vec<Value> = output
        .lines()
        .filter_map(|l| l.strip_prefix("PINWATCH-EVENT "))
        .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
        .collect();
    for e in &events {
        if !matches!(
            e["kind"].as_str(),
            Some("pin" | "unpin" | "fork" | "fork-copy")
        ) {
            fails.push(format!("{k} events --hazard fork-with-pins printed {e}"));
        }
    }
    for kind in ["pin", "fork", "fork-copy"] {
        if !events.iter().any(|e| e["kind"] == kind) {
            fails.push(format!(
                "{k} events: no `{kind}` event among {}",
                events.len()
            ));
        }
    }
    // audit --pid: the process's own fork-with-pins finding, ranked by pinned pages.
    match result("audit-pid").map(|r| pass("audit-pid", &r)) {
        Some(Ok(p)) => check_audit_pid(k, &p, fails),
        other => fails.push(format!(
            "{k} audit --pid: no result ({:?})",
            other.map(|r| r.err())
        )),
    }
    // --fail-on hazards the workload does not trigger: findings reported, exit 0.
    match result("audit-fail-on").map(|r| pass("audit-fail-on", &r)) {
        Some(Ok(p)) => {
            if p.exit_code != 0 || !has_eager_copy(&p.report) {
                fails.push(format!(
                    "{k} audit --fail-on: exited {} with findings {} (expected 0, with the fork finding)",
                    p.exit_code, p.report["findings"]
                ));
            }
        }
        other => fails.push(format!(
            "{k} audit --fail-on: no result ({:?})",
            other.map(|r| r.err())
        )),
    }
    match result("unprivileged") {
        Some(code) if code.trim() == "3" => {}
        other => fails.push(format!(
            "{k}: pinwatch without capabilities exited {other:?} (expected 3)"
        )),
    }
}

fn has_eager_copy(report: &Value) -> bool {
    report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|f| {
            f["hazard"] == "fork-with-pins"
                && f["outcome"] == "eager-copy"
                && f["pinner"] == "io_uring"
        })
}

fn check_audit_pid(k: &str, p: &Pass, fails: &mut Vec<String>) {
    let r = &p.report;
    if p.exit_code != 1 || !has_eager_copy(r) {
        fails.push(format!(
            "{k} audit --pid: exited {} with findings {} (expected 1, io_uring eager copy)",
            p.exit_code, r["findings"]
        ));
    }
    if r["watched"]["pid"].as_u64().is_none() || r["watched"]["interrupted"] != false {
        fails.push(format!("{k} audit --pid: watched {}", r["watched"]));
    }
    let top = &r["processes"][0];
    if top["pinned_pages"].as_u64().unwrap_or(0) < 16 || top["process"]["comm"] != "pinwatch-worklo"
    {
        fails.push(format!("{k} audit --pid: ranking {}", r["processes"]));
    }
}

/// The unit's capabilities alone: exactly the expected hazards are blind, doctor names the
/// paranoid level as the reason, and the remedy is applied only then.
pub fn check_capabilities(kernel: &Kernel, output: &str, fails: &mut Vec<String>) {
    let k = kernel.name;
    let Some(Ok(p)) = output
        .lines()
        .find_map(|l| l.strip_prefix("PINWATCH-RESULT caps-doctor "))
        .map(|r| pass("caps-doctor", r))
    else {
        fails.push(format!("{k}: no caps-doctor result"));
        return;
    };
    let mut blind: Vec<&str> = p.report["hazards"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h["observable"] == false)
        .filter_map(|h| h["id"].as_str())
        .collect();
    blind.sort_unstable();
    let mut want = kernel.blind_with_caps_only.to_vec();
    want.sort_unstable();
    let want_code = if want.is_empty() { 0 } else { 6 };
    if blind != want || p.exit_code != want_code {
        fails.push(format!(
            "{k}: with the unit's capabilities doctor exited {} blind to {blind:?} (expected {want_code}, {want:?}): {}",
            p.exit_code, p.report["verdict"]
        ));
    }
    let remedied = output.contains("PINWATCH-RESULT caps-remedy");
    let explained = p.report["verdict"]
        .as_str()
        .is_some_and(|v| v.contains("perf_event_paranoid"));
    let degraded = !want.is_empty();
    if remedied != degraded || explained != degraded {
        fails.push(format!(
            "{k}: perf_event_paranoid remedy applied: {remedied}, explained by doctor: {explained}"
        ));
    }
    if p.report["capabilities"]["root"] != false {
        fails.push(format!("{k}: caps-doctor ran as root"));
    }
}

/// SIGKILL leaves the kernel as it was; SIGINT ends an audit with its report.
pub fn check_faults(kernel: &Kernel, output: &str, fails: &mut Vec<String>) {
    let k = kernel.name;
    for method in ["auto", "kprobe"] {
        let tag = format!("PINWATCH-RESULT sigkill-{method} ");
        let Some(line) = output.lines().find_map(|l| l.strip_prefix(&tag)) else {
            fails.push(format!("{k}: no sigkill-{method} result"));
            continue;
        };
        let counts: Vec<&str> = line
            .split(" | ")
            .map(|part| part.trim().trim_start_matches("workload bpf-objects: "))
            .collect();
        let programs = |s: &str| -> u64 {
            s.split_whitespace()
                .find_map(|kv| kv.strip_prefix("programs="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        match counts[..] {
            [before, during, after] if before == after && programs(during) > programs(before) => {}
            _ => fails.push(format!(
                "{k}: SIGKILL of `pinwatch run --method {method}`: before | during | after = {line}"
            )),
        }
    }
    match output
        .lines()
        .find_map(|l| l.strip_prefix("PINWATCH-RESULT audit-interrupted "))
        .map(|r| pass("audit-interrupted", r))
    {
        Some(Ok(p)) if p.exit_code == 0 && p.report["watched"]["interrupted"] == true => {}
        Some(Ok(p)) => fails.push(format!(
            "{k}: SIGINT audit exited {} with watched {}",
            p.exit_code, p.report["watched"]
        )),
        other => fails.push(format!(
            "{k}: no audit-interrupted report ({:?})",
            other.map(|r| r.err())
        )),
    }
}
