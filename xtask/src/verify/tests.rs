//! The verifier on synthetic guest output: a matching report passes, each kind of mismatch fails.

use super::*;
use crate::expect;

/// A guest output where every hook of `kernel` behaves as expected, via `edit` mutated.
fn output(kernel: &Kernel, method: &str, edit: impl Fn(&mut Value)) -> String {
    let hooks: Vec<Value> = kernel
        .hooks
        .iter()
        .map(|(name, e)| match e {
            Expect::Absent => serde_json::json!({"hook": name, "attached": false, "symbol": null, "method": null, "return_method": null, "hits": 0, "returns": 0}),
            Expect::Fires(sym) | Expect::AttachedOnly(sym, _) => {
                let tracepoint = sym.contains(':');
                let m = match (tracepoint, method) {
                    (true, "kprobe") => "tracepoint",
                    (true, _) => "raw-tracepoint",
                    (false, m) => m,
                };
                let hits = u64::from(matches!(e, Expect::Fires(_)));
                serde_json::json!({"hook": name, "attached": true, "symbol": sym, "method": m, "return_method": null, "hits": hits, "returns": 0})
            }
        })
        .collect();
    let layout: serde_json::Map<String, Value> = kernel
        .layout
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).into()))
        .collect();
    let values: Vec<Value> = kernel
        .foll_values
        .iter()
        .map(|(n, v)| serde_json::json!([n, v]))
        .collect();
    let hazards: Vec<Value> = kernel
        .behaviours
        .iter()
        .map(|(id, v)| serde_json::json!({"id": id, "observable": true, "kernel_behaviour": {"verdict": v}}))
        .collect();
    let verdicts: serde_json::Map<String, Value> = kernel
        .verdicts_min
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).into()))
        .chain(
            kernel
                .verdicts_max
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).into())),
        )
        .chain([("mkclean_unclassified".to_owned(), 0.into())])
        .collect();
    let costs: Vec<Value> = ["folio_mkclean", "do_wp_page", "copy_page_range"]
        .map(|h| serde_json::json!({"program": format!("fentry_{h}"), "runs": 10, "run_ns": 1000, "ns_per_run": 100.0}))
        .into();
    let mut report = serde_json::json!({
        "hooks": hooks, "layout": layout, "hazards": hazards,
        "foll_flags": {"source": kernel.foll_source, "values": values},
        "watch": {"exit_status": 0, "verdicts": verdicts, "program_costs_unavailable": null,
                  "program_costs": costs},
        "verdict": "OK",
    });
    edit(&mut report);
    let findings: Vec<Value> = kernel
        .findings
        .iter()
        .map(|(h, o, p, fs, n)| serde_json::json!({"hazard": h, "outcome": o, "pinner": p, "mapping": {"fs": fs, "path": "/mnt/x"}, "pages": n, "process": {"cgroup": {"path": "/"}}}))
        .collect();
    let preexisting: Vec<Value> = kernel
        .preexisting
        .iter()
        .map(|(h, o, p, fs, n)| serde_json::json!({"hazard": h, "outcome": o, "pinner": p, "mapping": {"fs": fs, "path": "/mnt/y"}, "pages": n, "process": {"cgroup": {"path": "/"}}}))
        .collect();
    let zeros = serde_json::json!({"ringbuf_drops": 0, "ringbuf_dropped_pin_calls": 0, "decode_errors": 0, "map_insert_failures": {"inflight": 0, "forking": 0, "wp_faults": 0, "last_pin_stack": 0, "zapping": 0, "stacks": 0}, "evicted_pins": 0, "evicted_file_pins": 0, "pinned_reuses": kernel.pinned_reuses_min});
    let audit = serde_json::json!({"watched": {"command": "w", "exit_status": 0}, "counts": zeros, "findings": findings});
    let held =
        serde_json::json!({"watched": {"command": null}, "counts": zeros, "findings": preexisting});
    let audit_line = format!(
        "PINWATCH-RESULT audit {} {audit}\nPINWATCH-RESULT audit-preexisting {} {held}\n",
        u8::from(!kernel.findings.is_empty()),
        u8::from(!kernel.preexisting.is_empty())
    );
    let release = format!("{}99-test", kernel.release_prefix);
    audit_line
        + &format!(
            "PINWATCH-RESULT release {release}\nPINWATCH-REPORT OK: every hazard is observable on this kernel.\n\
         PINWATCH-RESULT doctor-auto 0 {report}\nPINWATCH-RESULT doctor-kprobe 0 {}\n",
            report
                .to_string()
                .replace("\"fentry\"", "\"kprobe\"")
                .replace("\"raw-tracepoint\"", "\"tracepoint\"")
        )
}

fn fails_for(kernel: &Kernel, edit: impl Fn(&mut Value)) -> Vec<String> {
    let out = output(kernel, "fentry", edit);
    check(kernel, &parse(&out).unwrap())
}

fn hook_mut<'a>(report: &'a mut Value, name: &str) -> &'a mut Value {
    report["hooks"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|h| h["hook"] == name)
        .unwrap()
}

#[test]
fn a_report_matching_every_expectation_passes() {
    for kernel in expect::KERNELS {
        assert_eq!(
            fails_for(kernel, |_| {}),
            Vec::<String>::new(),
            "{}",
            kernel.name
        );
    }
}

#[test]
fn a_hook_that_never_fired_fails() {
    let k = expect::kernel("6.12").unwrap();
    let fails = fails_for(k, |r| hook_mut(r, "folio_mkclean")["hits"] = 0.into());
    assert!(
        fails
            .iter()
            .any(|f| f.contains("folio_mkclean (folio_mkclean) attached but never fired")),
        "{fails:?}"
    );
}

#[test]
fn the_wrong_symbol_of_a_ladder_fails() {
    let k = expect::kernel("7.2").unwrap();
    let fails = fails_for(k, |r| {
        hook_mut(r, "pfn_untrack")["symbol"] = "untrack_pfn".into()
    });
    assert!(
        fails
            .iter()
            .any(|f| f.contains("pfn_untrack expected attached to pfnmap_untrack")),
        "{fails:?}"
    );
}

#[test]
fn kprobe_fallback_needs_a_recorded_fentry_refusal() {
    let k = expect::kernel("6.1").unwrap();
    let silent = fails_for(k, |r| hook_mut(r, "do_wp_page")["method"] = "kprobe".into());
    assert!(
        silent
            .iter()
            .any(|f| f.contains("do_wp_page attached with kprobe")),
        "{silent:?}"
    );
    let explained = fails_for(k, |r| {
        let h = hook_mut(r, "do_wp_page");
        h["method"] = "kprobe".into();
        h["reason"] = "fentry: too many arguments".into();
    });
    assert!(explained.is_empty(), "{explained:?}");
}

#[test]
fn wrong_offsets_flags_and_behaviours_fail() {
    let k = expect::kernel("6.1").unwrap();
    let fails = fails_for(k, |r| {
        r["layout"]["folio_pincount"] = 92.into();
        r["foll_flags"]["source"] = "btf".into();
        r["hazards"][0]["kernel_behaviour"]["verdict"] = "refused".into();
        r["watch"]["verdicts"]["mkclean_unclassified"] = 3.into();
    });
    for needle in [
        "layout.folio_pincount",
        "FOLL_* source",
        "longterm-file-pin",
        "unclassified",
    ] {
        assert!(
            fails.iter().any(|f| f.contains(needle)),
            "{needle}: {fails:?}"
        );
    }
}

#[test]
fn a_missing_pass_or_wrong_kernel_fails() {
    let k = expect::kernel("6.12").unwrap();
    let out = output(k, "fentry", |_| {}).replace("6.12.99-test", "6.1.0-test");
    let cut: String = out
        .lines()
        .filter(|l| !l.contains("doctor-kprobe"))
        .map(|l| format!("{l}\n"))
        .collect();
    let fails = check(k, &parse(&cut).unwrap());
    assert!(
        fails.iter().any(|f| f.contains("booted 6.1.0-test")),
        "{fails:?}"
    );
    assert!(
        fails
            .iter()
            .any(|f| f.contains("no doctor --method kprobe result")),
        "{fails:?}"
    );
}

#[test]
fn audit_findings_must_match_exactly() {
    let k = expect::kernel("6.1").unwrap();
    let out = output(k, "fentry", |_| {});
    let missing = out.replacen("\"outcome\":\"granted\"", "\"outcome\":\"refused\"", 1);
    let fails = check(k, &parse(&missing).unwrap());
    assert!(
        fails.iter().any(|f| f.contains("6.1 audit: findings")),
        "{fails:?}"
    );
}

#[test]
fn every_kernel_lists_every_hook_once() {
    let names: Vec<&str> = expect::KERNELS[0].hooks.iter().map(|(n, _)| *n).collect();
    for k in expect::KERNELS {
        let these: Vec<&str> = k.hooks.iter().map(|(n, _)| *n).collect();
        assert_eq!(these, names, "{}", k.name);
    }
}

#[test]
fn missing_bpf_statistics_fail_the_pass() {
    let k = expect::kernel("7.2").unwrap();
    let fails = fails_for(k, |r| {
        r["watch"]["program_costs"] = serde_json::json!([]);
        r["watch"]["program_costs_unavailable"] = "needs CAP_SYS_ADMIN".into();
    });
    assert!(
        fails.iter().any(|f| f.contains("needs CAP_SYS_ADMIN")),
        "{fails:?}"
    );
    let fails = fails_for(k, |r| {
        r["watch"]["program_costs"][1]["runs"] = 0.into();
    });
    assert!(
        fails.iter().any(|f| f.contains("do_wp_page programs")),
        "{fails:?}"
    );
}
