//! Reads the guest's result lines and checks them against `expect.rs`.

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::expect::{Expect, Kernel};

/// One `pinwatch doctor --json` pass inside the guest.
pub struct Pass {
    pub method: String,
    pub exit_code: i64,
    pub report: Value,
}

pub struct Results {
    pub release: String,
    pub passes: Vec<Pass>,
}

/// Lines are `PINWATCH-RESULT release <uname -r>` and `PINWATCH-RESULT doctor-<m> <code> <json>`.
pub fn parse(output: &str) -> Result<Results> {
    let mut release = None;
    let mut passes = Vec::new();
    for line in output
        .lines()
        .filter_map(|l| l.strip_prefix("PINWATCH-RESULT "))
    {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        if tag == "release" {
            release = Some(rest.trim().to_owned());
        } else if let Some(method) = tag.strip_prefix("doctor-") {
            let (code, json) = rest.split_once(' ').unwrap_or((rest, ""));
            let report = serde_json::from_str(json)
                .with_context(|| format!("doctor-{method} JSON: {json:.200}"))?;
            passes.push(Pass {
                method: method.to_owned(),
                exit_code: code.parse().unwrap_or(-1),
                report,
            });
        }
    }
    Ok(Results {
        release: release.context("the guest reported no kernel release")?,
        passes,
    })
}

/// Prints the live hook table of each pass (the README's main job).
pub fn show(kernel: &Kernel, results: &Results) {
    println!("\n=== kernel {} ({})", kernel.name, results.release);
    for pass in &results.passes {
        println!(
            "--- pinwatch doctor --method {} (exit {})",
            pass.method, pass.exit_code
        );
        for hook in hooks(&pass.report) {
            println!(
                "  {:<34} {:<5} {:<34} {:<10} {:>8} {:>8}",
                s(hook, "hook"),
                hook["attached"].as_bool().unwrap_or(false),
                s(hook, "symbol"),
                method_of(hook),
                hook["hits"].as_u64().map_or("-".into(), |n| n.to_string()),
                hook["returns"]
                    .as_u64()
                    .map_or("-".into(), |n| n.to_string()),
            );
        }
        for hz in pass.report["hazards"].as_array().into_iter().flatten() {
            println!(
                "  hazard {:<22} observable={} {}",
                s(hz, "id"),
                hz["observable"],
                s(&hz["kernel_behaviour"], "verdict")
            );
        }
        println!("  watch: {}", pass.report["watch"]);
        println!("  verdict: {}", s(&pass.report, "verdict"));
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
    let filters = &r["watch"]["filters"];
    for (name, min) in kernel.filters_min {
        if filters[name].as_u64().unwrap_or(0) < *min {
            fails.push(format!(
                "{at}: filter counter {name} = {} (expected >= {min})",
                filters[name]
            ));
        }
    }
    if filters["mkclean_unclassified"].as_u64() != Some(0) {
        fails.push(format!(
            "{at}: {} folio_mkclean calls unclassified (layout globals not applied?)",
            filters["mkclean_unclassified"]
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

/// `--method kprobe` must use kprobes only; `auto` must prefer fentry and fall back to kprobe
/// only with a recorded fentry refusal (6.1's trampolines take at most 6 arguments, say).
fn check_method(at: &str, name: &str, hook: &Value, pass: &str, fails: &mut Vec<String>) {
    let method = hook["method"].as_str().unwrap_or("-");
    let reason = s(hook, "reason");
    let ok = match (pass, method) {
        (_, "tracepoint") => true,
        ("kprobe", m) => m == "kprobe",
        (_, "fentry") => true,
        (_, "kprobe") => reason.contains("fentry:"),
        _ => false,
    };
    if !ok {
        fails.push(format!("{at}: {name} attached with {method} ({reason})"));
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
        _ => "-".to_owned(),
    }
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("-")
}
