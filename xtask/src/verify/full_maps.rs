//! Checks of the full-map pass: pinwatch's kernel maps made small (`PINWATCH_MAP_ENTRIES`) and
//! filled with foreign keys, then the workloads. Every failed insert must be counted by map in
//! the daemon's metrics and audit's counts, and the kernel's aya-log warning must reach the
//! process's own log.

use super::{
    daemon::{samples, sum},
    pass,
};
use crate::expect::Kernel;

/// Maps whose inserts the workloads make fail once full; `last_pin_stack` is an LRU cache and
/// must never fail (it evicts).
const FAILING: [&str; 4] = ["forking", "wp_faults", "zapping", "stacks"];

pub fn check(kernel: &Kernel, output: &str, fails: &mut Vec<String>) {
    let k = kernel.name;
    let lines = |prefix: &str| -> Vec<String> {
        output
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(str::to_owned)
            .collect()
    };
    let result = |tag: &str| super::result(output, tag).map(str::to_owned);
    match result("full-maps") {
        Some(r) if r.starts_with("0 workload fill-map: filled ") => {}
        other => fails.push(format!("{k} full maps: daemon or filler failed: {other:?}")),
    }
    let metrics = samples(&lines("PINWATCH-FULL-MAPS ").join("\n"));
    let failures = |map: &str| {
        sum(
            &metrics,
            "pinwatch_map_insert_failures_total",
            &[("map", map)],
        )
    };
    for map in FAILING {
        if failures(map) <= 0.0 {
            fails.push(format!(
                "{k} full maps: pinwatch_map_insert_failures_total{{map=\"{map}\"}} = {} (expected > 0)",
                failures(map)
            ));
        }
    }
    if failures("last_pin_stack") != 0.0 || failures("inflight") != 0.0 {
        fails.push(format!(
            "{k} full maps: last_pin_stack (LRU) failed {} times, inflight (not filled) {} (expected 0)",
            failures("last_pin_stack"),
            failures("inflight")
        ));
    }
    let daemon_log = lines("PINWATCH-FULL-MAPS-LOG ");
    // RUST_LOG=info,probe_user=debug: levelled, structured records (key=value fields).
    if !daemon_log.iter().any(|l| {
        l.contains("DEBUG probe_user::daemon: hook attached hook=") && l.contains(" method=")
    }) {
        fails.push(format!(
            "{k} full maps: RUST_LOG=info,probe_user=debug shows no structured debug record"
        ));
    }
    if !daemon_log
        .iter()
        .any(|l| l.contains("WARN") && l.contains("FORKING full: eager copies"))
    {
        fails.push(format!(
            "{k} full maps: the kernel's aya-log warning is not in the daemon's log ({} lines)",
            daemon_log.len()
        ));
    }
    check_inflight(
        k,
        result("full-inflight"),
        &lines("PINWATCH-FULL-INFLIGHT-LOG "),
        fails,
    );
    match result("bad-map-entries") {
        Some(r) if r.starts_with("2 pinwatch: PINWATCH_MAP_ENTRIES: no map named `NO_SUCH_MAP`") => {}
        other => fails.push(format!(
            "{k}: PINWATCH_MAP_ENTRIES=NO_SUCH_MAP=1 gave {other:?} (expected exit 2 naming the map)"
        )),
    }
}

/// The audit with INFLIGHT full: its counts name the map, and its stderr has the kernel's line.
fn check_inflight(k: &str, result: Option<String>, log: &[String], fails: &mut Vec<String>) {
    let report = match result.map(|r| pass("full-inflight", &r)) {
        Some(Ok(p)) => p.report,
        other => {
            fails.push(format!(
                "{k} full inflight: no audit result ({:?})",
                other.map(|r| r.err())
            ));
            return;
        }
    };
    let counts = &report["counts"];
    if counts["map_insert_failures"]["inflight"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        fails.push(format!(
            "{k} full inflight: counts.map_insert_failures = {} (expected inflight > 0)",
            counts["map_insert_failures"]
        ));
    }
    if counts["longterm_pins"] != 0 {
        fails.push(format!(
            "{k} full inflight: {} long-term pins decoded although none could be carried",
            counts["longterm_pins"]
        ));
    }
    if !log
        .iter()
        .any(|l| l.contains("INFLIGHT full: a long-term pin by tgid"))
    {
        fails.push(format!(
            "{k} full inflight: the kernel's aya-log warning is not on audit's stderr ({log:?})"
        ));
    }
}
