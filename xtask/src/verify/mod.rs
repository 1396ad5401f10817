//! Reads the guest's result lines and checks them against `expect.rs`.

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::expect::{Expect, Kernel};

pub mod daemon;
pub mod discards;
mod findings;
pub mod full_maps;
pub mod hostile;
pub mod jobs;
pub mod page_sizes;
pub mod pins;
pub mod releases;
pub mod scale;
pub mod startup;
pub mod surfaces;

pub use findings::{finding_key, findings_differ, report_with_findings};

/// One `pinwatch doctor --json` pass inside the guest.
pub struct Pass {
    pub method: String,
    pub exit_code: i64,
    pub report: Value,
}

pub struct Results {
    pub release: String,
    pub passes: Vec<Pass>,
    /// `pinwatch doctor`'s human report, as printed in the guest.
    pub report: Vec<String>,
    /// `pinwatch audit --json` over the workloads.
    pub audit: Option<Pass>,
    /// `pinwatch audit --json --for` around a pin taken before it started.
    pub audit_preexisting: Option<Pass>,
}

/// Lines are `PINWATCH-RESULT release <uname -r>`, `PINWATCH-RESULT doctor-<m> <code> <json>`
/// and `PINWATCH-REPORT <line of doctor's human report>`.
pub fn parse(output: &str) -> Result<Results> {
    let human = output
        .lines()
        .filter_map(|l| l.strip_prefix("PINWATCH-REPORT "))
        .map(str::to_owned)
        .collect();
    let mut release = None;
    let (mut audit, mut audit_preexisting) = (None, None);
    let mut passes = Vec::new();
    for line in output
        .lines()
        .filter_map(|l| l.strip_prefix("PINWATCH-RESULT "))
    {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "release" => release = Some(rest.trim().to_owned()),
            "audit" => audit = Some(pass(tag, rest)?),
            "audit-preexisting" => audit_preexisting = Some(pass(tag, rest)?),
            _ => {
                if let Some(method) = tag.strip_prefix("doctor-") {
                    passes.push(Pass {
                        method: method.to_owned(),
                        ..pass(tag, rest)?
                    });
                }
            }
        }
    }
    Ok(Results {
        release: release.context("the guest reported no kernel release")?,
        passes,
        report: human,
        audit,
        audit_preexisting,
    })
}

/// `<exit code> <json>` after a result tag.
/// pinwatch's kernel maps whose inserts can fail: audit lists every one.
const PROBE_MAPS: usize = probe_common::map::COUNT as usize;

fn pass(tag: &str, rest: &str) -> Result<Pass> {
    let (code, json) = rest.split_once(' ').unwrap_or((rest, ""));
    let report = serde_json::from_str(json).with_context(|| format!("{tag} JSON: {json:.200}"))?;
    Ok(Pass {
        method: tag.to_owned(),
        exit_code: code.parse().unwrap_or(-1),
        report,
    })
}

/// Prints what the guest's show pass wrote (the README's main job): the kernel's behaviour per
/// hazard, the audit's human report over the real workloads, and the daemon's finding series.
pub fn show(kernel: &Kernel, output: &str) {
    let release = output
        .lines()
        .find_map(|l| l.strip_prefix("PINWATCH-RESULT release "))
        .unwrap_or("?");
    println!("\n=== Debian {} (kernel {release}) ===\n", kernel.name);
    for line in output
        .lines()
        .filter_map(|l| l.strip_prefix("PINWATCH-SHOW "))
    {
        println!("{line}");
    }
}

/// Every mismatch, as one line each.
pub fn check(kernel: &Kernel, results: &Results) -> Vec<String> {
    let mut fails = Vec::new();
    let k = kernel.name;
    if !results.release.starts_with(kernel.release_prefix) {
        fails.push(format!(
            "{k}: booted {} (expected {}*)",
            results.release, kernel.release_prefix
        ));
    }
    if !results
        .report
        .iter()
        .any(|l| l.contains("OK: every hazard is observable"))
    {
        fails.push(format!(
            "{k}: doctor's human report does not say every hazard is observable"
        ));
    }
    match &results.audit {
        None => fails.push(format!("{k}: no audit result")),
        Some(audit) => check_audit(kernel, audit, kernel.findings, &mut fails),
    }
    match &results.audit_preexisting {
        None => fails.push(format!("{k}: no audit-preexisting result")),
        Some(audit) => check_audit(kernel, audit, kernel.preexisting, &mut fails),
    }
    for wanted in ["auto", "kprobe"] {
        match results.passes.iter().find(|p| p.method == wanted) {
            None => fails.push(format!("{k}: no doctor --method {wanted} result (guest crashed? see target/vm/{k}/console.log)")),
            Some(pass) => check_pass(kernel, pass, &mut fails),
        }
    }
    print_summary(kernel, results, &fails);
    fails
}

fn check_pass(kernel: &Kernel, pass: &Pass, fails: &mut Vec<String>) {
    let at = format!("{} --method {}", kernel.name, pass.method);
    let r = &pass.report;
    if pass.exit_code != 0 {
        fails.push(format!(
            "{at}: doctor exited {} ({})",
            pass.exit_code,
            s(r, "verdict")
        ));
    }
    check_costs(&at, &r["watch"], fails);
    if r["watch"]["exit_status"].as_i64() != Some(0) {
        fails.push(format!(
            "{at}: workloads exited {} (see console.log)",
            r["watch"]["exit_status"]
        ));
    }
    for (name, expect) in kernel.hooks {
        let Some(hook) = hooks(r).find(|h| h["hook"] == *name) else {
            fails.push(format!("{at}: hook {name} missing from the report"));
            continue;
        };
        check_hook(&at, name, *expect, hook, &pass.method, fails);
    }
    for hook in hooks(r) {
        if !kernel.hooks.iter().any(|(n, _)| hook["hook"] == *n) {
            fails.push(format!(
                "{at}: hook {} has no expectation for this kernel",
                s(hook, "hook")
            ));
        }
    }
    for (field, value) in kernel.layout {
        if r["layout"][field].as_u64() != Some(*value) {
            fails.push(format!(
                "{at}: layout.{field} = {} (expected {value})",
                r["layout"][field]
            ));
        }
    }
    check_flags(&at, kernel, r, fails);
    let verdicts = &r["watch"]["verdicts"];
    for (name, min) in kernel.verdicts_min {
        if verdicts[name].as_u64().unwrap_or(0) < *min {
            fails.push(format!(
                "{at}: verdict {name} = {} (expected >= {min})",
                verdicts[name]
            ));
        }
    }
    for (name, max) in kernel.verdicts_max {
        if verdicts[name].as_u64().unwrap_or(u64::MAX) > *max {
            fails.push(format!(
                "{at}: verdict {name} = {} (expected <= {max})",
                verdicts[name]
            ));
        }
    }
    if verdicts["mkclean_unclassified"].as_u64() != Some(0) {
        fails.push(format!(
            "{at}: {} folio_mkclean calls unclassified (layout globals not applied?)",
            verdicts["mkclean_unclassified"]
        ));
    }
    for (hazard, verdict) in kernel.behaviours {
        let found = r["hazards"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|h| h["id"] == *hazard);
        match found {
            Some(h) if h["kernel_behaviour"]["verdict"] == *verdict && h["observable"] == true => {}
            Some(h) => fails.push(format!(
                "{at}: hazard {hazard}: {} observable={} (expected {verdict}, observable)",
                h["kernel_behaviour"]["verdict"], h["observable"]
            )),
            None => fails.push(format!("{at}: hazard {hazard} missing")),
        }
    }
}

fn check_hook(
    at: &str,
    name: &str,
    expect: Expect,
    hook: &Value,
    pass: &str,
    fails: &mut Vec<String>,
) {
    let attached = hook["attached"].as_bool().unwrap_or(false);
    let symbol = hook["symbol"].as_str();
    let hits = hook["hits"].as_u64().unwrap_or(0);
    match expect {
        Expect::Absent => {
            if attached || symbol.is_some() {
                fails.push(format!(
                    "{at}: {name} expected absent, found {symbol:?} attached={attached}"
                ));
            }
        }
        Expect::Fires(want) | Expect::AttachedOnly(want, _) => {
            if !attached || symbol != Some(want) {
                fails.push(format!("{at}: {name} expected attached to {want}, got {symbol:?} attached={attached} ({})", s(hook, "reason")));
                return;
            }
            if matches!(expect, Expect::Fires(_)) && hits == 0 {
                fails.push(format!("{at}: {name} ({want}) attached but never fired"));
            }
            check_method(at, name, hook, pass, fails);
            if !hook["return_method"].is_null()
                && matches!(expect, Expect::Fires(_))
                && hook["returns"].as_u64() == Some(0)
            {
                fails.push(format!("{at}: {name} return program never fired"));
            }
        }
    }
}

/// The audit must report exactly the expected findings: (hazard, outcome, pinner, fs, pages).
fn check_audit(
    kernel: &Kernel,
    audit: &Pass,
    expected: &[crate::expect::Finding],
    fails: &mut Vec<String>,
) {
    let at = format!("{} {}", kernel.name, audit.method);
    let r = &audit.report;
    let want_code = if expected.is_empty() { 0 } else { 1 };
    if audit.exit_code != want_code {
        fails.push(format!(
            "{at}: exited {} (expected {want_code})",
            audit.exit_code
        ));
    }
    // Only an audit of a command has an exit status to check.
    let watched_command = !r["watched"]["command"].is_null();
    if watched_command && r["watched"]["exit_status"].as_i64() != Some(0) {
        fails.push(format!(
            "{at}: workloads exited {}",
            r["watched"]["exit_status"]
        ));
    }
    for f in r["findings"].as_array().into_iter().flatten() {
        if f["process"]["cgroup"]["path"].is_null() {
            fails.push(format!("{at}: {} without a cgroup path", s(f, "hazard")));
        }
        if f["mapping"]["fs"] == "ext4" && f["mapping"]["path"].is_null() {
            fails.push(format!("{at}: {} on ext4 without a path", s(f, "hazard")));
        }
    }
    for (map, failures) in r["counts"]["map_insert_failures"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if failures.as_u64() != Some(0) {
            fails.push(format!(
                "{at}: counts.map_insert_failures.{map} = {failures}"
            ));
        }
    }
    if r["counts"]["map_insert_failures"]
        .as_object()
        .is_none_or(|m| m.len() != PROBE_MAPS)
    {
        fails.push(format!(
            "{at}: counts.map_insert_failures lists {} (expected all {} maps)",
            r["counts"]["map_insert_failures"], PROBE_MAPS
        ));
    }
    for counter in [
        "ringbuf_drops",
        "ringbuf_dropped_pin_calls",
        "decode_errors",
        "evicted_pins",
        "evicted_file_pins",
    ] {
        if r["counts"][counter].as_u64() != Some(0) {
            fails.push(format!("{at}: counts.{counter} = {}", r["counts"][counter]));
        }
    }
    let reuses = r["counts"]["pinned_reuses"].as_u64().unwrap_or(0);
    if audit.method == "audit" && reuses < kernel.pinned_reuses_min {
        fails.push(format!(
            "{at}: counts.pinned_reuses = {reuses} (expected >= {})",
            kernel.pinned_reuses_min
        ));
    }
    let got = r["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(finding_key)
        .collect();
    if let Some((got, want)) = findings_differ(got, expected) {
        fails.push(format!("{at}: findings {got:?}, expected {want:?}"));
    }
}

/// `--method kprobe` must use kprobes only; `auto` must prefer fentry and fall back to kprobe
/// only with a recorded fentry refusal (6.1's trampolines take at most 6 arguments, say).
fn check_method(at: &str, name: &str, hook: &Value, pass: &str, fails: &mut Vec<String>) {
    // A hook attached by its return program alone (fexit) has no entry method.
    let method = hook["method"]
        .as_str()
        .or(hook["return_method"].as_str())
        .unwrap_or("-");
    let reason = s(hook, "reason");
    let ok = match (pass, method) {
        // Perf tracepoints only where kprobes are asked for; raw tracepoints otherwise.
        ("kprobe", m) if hook["symbol"].as_str().is_some_and(|s| s.contains(':')) => {
            m == "tracepoint"
        }
        (_, "raw-tracepoint") => true,
        ("kprobe", m) => m == "kprobe",
        (_, "fentry") => true,
        // fentry (or fexit, for a hook whose return program is alone) refused first.
        (_, "kprobe") => reason.contains("fentry:") || reason.contains("fexit:"),
        _ => false,
    };
    if !ok {
        fails.push(format!("{at}: {name} attached with {method} ({reason})"));
    }
}

/// The kernel's BPF statistics were on while the workloads ran, and the hottest hooks'
/// programs show runs and a cost per run.
fn check_costs(at: &str, watch: &Value, fails: &mut Vec<String>) {
    if !watch["program_costs_unavailable"].is_null() {
        fails.push(format!("{at}: {}", watch["program_costs_unavailable"]));
        return;
    }
    let costs = watch["program_costs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for hook in ["folio_mkclean", "do_wp_page", "copy_page_range"] {
        let ran = costs.iter().any(|c| {
            c["program"]
                .as_str()
                .is_some_and(|p| p.ends_with(&format!("_{hook}")))
                && c["runs"].as_u64().unwrap_or(0) > 0
                && c["ns_per_run"].as_f64().unwrap_or(0.0) > 0.0
        });
        if !ran {
            fails.push(format!(
                "{at}: no BPF run-time statistics for the {hook} programs"
            ));
        }
    }
}

fn check_flags(at: &str, kernel: &Kernel, r: &Value, fails: &mut Vec<String>) {
    let flags = &r["foll_flags"];
    if flags["source"] != kernel.foll_source {
        fails.push(format!(
            "{at}: FOLL_* source {} (expected {})",
            flags["source"], kernel.foll_source
        ));
    }
    for (name, value) in kernel.foll_values {
        let found = flags["values"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v[0] == *name)
            .and_then(|v| v[1].as_u64());
        if found != Some(*value) {
            fails.push(format!("{at}: {name} = {found:?} (expected {value:#x})"));
        }
    }
}

fn print_summary(kernel: &Kernel, results: &Results, fails: &[String]) {
    println!(
        "\n=== kernel {} ({}): {}",
        kernel.name,
        results.release,
        if fails.is_empty() { "PASS" } else { "FAIL" }
    );
    for pass in &results.passes {
        println!(
            "--- doctor --method {} (exit {})",
            pass.method, pass.exit_code
        );
        for hook in hooks(&pass.report) {
            let expect = kernel
                .hooks
                .iter()
                .find(|(n, _)| hook["hook"] == *n)
                .map(|(_, e)| *e);
            let note = match expect {
                Some(Expect::AttachedOnly(_, why)) => {
                    format!("attached, not exercised here: {why}")
                }
                Some(Expect::Absent) => "absent on this kernel (expected)".to_owned(),
                _ => String::new(),
            };
            println!(
                "  {:<34} {:<34} {:<18} hits {:>7}  {}",
                s(hook, "hook"),
                hook["symbol"].as_str().unwrap_or("-"),
                method_of(hook),
                hook["hits"].as_u64().unwrap_or(0),
                note
            );
        }
    }
}

fn hooks(report: &Value) -> impl Iterator<Item = &Value> {
    report["hooks"].as_array().into_iter().flatten()
}

fn method_of(hook: &Value) -> String {
    match (hook["method"].as_str(), hook["return_method"].as_str()) {
        (Some(m), Some(r)) => format!("{m}+{r}"),
        (Some(m), None) => m.to_owned(),
        (None, Some(r)) => format!("{r} (return only)"),
        (None, None) => "-".to_owned(),
    }
}

/// What follows `PINWATCH-RESULT <tag> ` on the guest's result port, if the guest wrote it.
pub fn result<'a>(output: &'a str, tag: &str) -> Option<&'a str> {
    let prefix = format!("PINWATCH-RESULT {tag} ");
    output.lines().find_map(|l| l.strip_prefix(prefix.as_str()))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("-")
}

#[cfg(test)]
mod tests;
