//! Findings as the expectation tables name them, and the audit reports that carry them.

use serde_json::Value;

use super::{pass, result, s};

/// A finding as the expectation tables write it: `hazard outcome who fs pages`, where `who` is
/// the pinner or, for an untrack, what untracked it, and `-` stands for none (a pin pinwatch did
/// not see; no file).
pub fn finding_key(f: &Value) -> String {
    let who = f["pinner"]
        .as_str()
        .or_else(|| f["cause"]["untrack"]["origin"].as_str())
        .unwrap_or("-");
    let fs = f["mapping"]["fs"].as_str().unwrap_or("-");
    format!(
        "{} {} {who} {fs} {}",
        s(f, "hazard"),
        s(f, "outcome"),
        f["pages"]
    )
}

/// `got` (as [`finding_key`]s) against an expectation table, in any order: `None` when they
/// are the same, else both sorted, for the failure message.
pub fn findings_differ(
    mut got: Vec<String>,
    expected: &[crate::expect::Finding],
) -> Option<(Vec<String>, Vec<String>)> {
    let mut want: Vec<String> = expected
        .iter()
        .map(|(h, o, p, fs, n)| format!("{h} {o} {p} {fs} {n}"))
        .collect();
    got.sort();
    want.sort();
    (got != want).then_some((got, want))
}

/// The JSON report of an audit pass that must exit 1 (it found something), or why not.
pub fn report_with_findings(output: &str, tag: &str) -> std::result::Result<Value, String> {
    match result(output, tag).map(|r| pass(tag, r)) {
        Some(Ok(p)) if p.exit_code == 1 => Ok(p.report),
        other => Err(format!(
            "{tag}: {:?} (expected exit 1 with findings)",
            other.map(|r| r.map(|p| p.exit_code).map_err(|e| e.to_string()))
        )),
    }
}
