//! Checks of the `pinwatch run` pass: the guest's own scrape (promtool-checked), the findings
//! log, and what the host's Prometheus server stored from the same daemon.

use std::{collections::BTreeMap, io::Write as _, path::Path, process::Command};

use serde_json::Value;

use crate::{
    expect::Kernel,
    prometheus::{Samples, Server},
};

pub struct Daemon {
    pub status: String,
    /// The guest's scrape of /metrics, as served.
    pub metrics: String,
    /// The findings log at the time of that scrape, one JSON object per line.
    pub findings: Vec<Value>,
}

pub fn parse(output: &str) -> Option<Daemon> {
    let status = output
        .lines()
        .find_map(|l| l.strip_prefix("PINWATCH-RESULT daemon "))?
        .to_owned();
    let lines = |prefix: &str| -> Vec<&str> {
        output
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .collect()
    };
    Some(Daemon {
        status,
        metrics: lines("PINWATCH-METRICS ").join("\n") + "\n",
        findings: lines("PINWATCH-FINDING ")
            .into_iter()
            .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
            .collect(),
    })
}

/// One sample of the text exposition format: name, labels, value.
pub type Sample = (String, BTreeMap<String, String>, f64);

/// The samples of a text-format scrape (comments skipped). Label values are pinwatch's own
/// (no escaped quotes), which keeps this parser small.
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|kv| !kv.is_empty())
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_owned(), v.trim_matches('"').to_owned()))
                })
                .collect();
            Some((name.to_owned(), labels, value.parse().ok()?))
        })
        .collect()
}

/// Sum of a metric's samples whose labels include `want`.
pub fn sum(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

/// Pages per (hazard, outcome) of the kernel's expected findings.
fn expected_pages(kernel: &Kernel) -> BTreeMap<(String, String), f64> {
    let mut pages = BTreeMap::new();
    for (hazard, outcome, _, _, n) in kernel.findings {
        *pages
            .entry(((*hazard).to_owned(), (*outcome).to_owned()))
            .or_default() += *n as f64;
    }
    pages
}

pub fn check(kernel: &Kernel, daemon: &Daemon, work: &Path, fails: &mut Vec<String>) {
    let k = format!("{} run", kernel.name);
    if !daemon.status.starts_with("0 up=1 log-mode=600") {
        fails.push(format!(
            "{k}: daemon status `{}` (want exit 0 on SIGTERM, /metrics up, findings log mode 600)",
            daemon.status
        ));
    }
    promtool_check(&k, &daemon.metrics, work, fails);
    let s = samples(&daemon.metrics);
    // The findings log and the finding metrics agree, finding by finding.
    let mut logged: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for f in &daemon.findings {
        let key = (
            f["hazard"].as_str().unwrap_or("?").to_owned(),
            f["outcome"].as_str().unwrap_or("?").to_owned(),
        );
        let e = logged.entry(key).or_default();
        e.0 += 1.0;
        e.1 += f["pages"].as_f64().unwrap_or(f64::NAN);
        if f["time"].as_str().is_none() {
            fails.push(format!("{k}: a logged finding has no time: {f}"));
        }
        // Running unprivileged with the unit's capabilities, pinwatch still names files and
        // cgroups (CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH) and pinners (CAP_SYSLOG).
        if f["mapping"]["fs"] == "ext4" && f["mapping"]["path"].is_null() {
            fails.push(format!("{k}: an ext4 finding without a path: {f}"));
        }
        if f["process"]["cgroup"]["path"].is_null() {
            fails.push(format!("{k}: a finding without a cgroup path: {f}"));
        }
    }
    let expected = expected_pages(kernel);
    let mut keys: Vec<&(String, String)> = expected.keys().chain(logged.keys()).collect();
    keys.sort();
    keys.dedup();
    for (hazard, outcome) in keys {
        let labels = [("hazard", hazard.as_str()), ("outcome", outcome.as_str())];
        let count = sum(&s, "pinwatch_findings_total", &labels);
        let pages = sum(&s, "pinwatch_finding_pages_total", &labels);
        let (log_count, log_pages) = logged
            .get(&(hazard.clone(), outcome.clone()))
            .copied()
            .unwrap_or_default();
        let want = expected.get(&(hazard.clone(), outcome.clone())).copied();
        if count != log_count || pages != log_pages {
            fails.push(format!(
                "{k}: {hazard}/{outcome}: metrics say {count} findings, {pages} pages; the log {log_count}, {log_pages}"
            ));
        }
        if want != Some(pages) {
            fails.push(format!(
                "{k}: {hazard}/{outcome}: {pages} pages in pinwatch_finding_pages_total (expected {})",
                want.unwrap_or(0.0)
            ));
        }
    }
    for (name, want) in [
        ("pinwatch_ringbuf_drops_total", 0.0),
        ("pinwatch_event_decode_errors_total", 0.0),
        ("pinwatch_map_insert_failures_total", 0.0),
        ("pinwatch_correlation_evictions_total", 0.0),
        // Every workload exited: no pages may still count as pinned.
        ("pinwatch_live_pinned_pages", 0.0),
    ] {
        let got = sum(&s, name, &[]);
        if got != want {
            fails.push(format!("{k}: {name} = {got} (expected {want})"));
        }
    }
    let nonzero = [
        (
            "pinwatch_pins_total",
            vec![
                ("longterm", "true"),
                ("result", "granted"),
                ("pinner", "vfio"),
            ],
        ),
        (
            "pinwatch_pins_total",
            vec![("longterm", "true"), ("pinner", "io_uring")],
        ),
        ("pinwatch_pins_total", vec![("longterm", "false")]),
        ("pinwatch_unpinned_pages_total", vec![("pinner", "vfio")]),
        ("pinwatch_pin_age_seconds_count", vec![("pinner", "vfio")]),
        ("pinwatch_forks_with_pins_total", vec![]),
        ("pinwatch_fork_copied_pages_total", vec![]),
        ("pinwatch_hook_calls_total", vec![("hook", "folio_mkclean")]),
        ("pinwatch_events_total", vec![("kind", "pin")]),
        ("pinwatch_build_info", vec![]),
    ];
    for (name, labels) in &nonzero {
        if sum(&s, name, labels) <= 0.0 {
            fails.push(format!("{k}: {name}{labels:?} is 0 (expected > 0)"));
        }
    }
    let reused = sum(
        &s,
        "pinwatch_pinned_page_faults_total",
        &[("result", "reused")],
    );
    if reused < kernel.pinned_reuses_min as f64 {
        fails.push(format!(
            "{k}: pinned page faults reused = {reused} (expected >= {})",
            kernel.pinned_reuses_min
        ));
    }
    for (name, labels, value) in &s {
        if name == "pinwatch_hazard_observable" && *value != 1.0 {
            fails.push(format!("{k}: {name}{labels:?} = {value}"));
        }
    }
}

/// `promtool check metrics` on the scrape, as served.
fn promtool_check(at: &str, metrics: &str, work: &Path, fails: &mut Vec<String>) {
    let path = work.join("metrics.prom");
    if let Err(e) = std::fs::write(&path, metrics) {
        fails.push(format!("{at}: writing {}: {e}", path.display()));
        return;
    }
    let run = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .expect("piped")
                .write_all(metrics.as_bytes())?;
            child.wait_with_output()
        });
    match run {
        Ok(out) if out.status.success() => {}
        Ok(out) => fails.push(format!(
            "{at}: promtool check metrics failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => fails.push(format!(
            "{at}: cannot run promtool (scripts/setup.sh installs it): {e}"
        )),
    }
}

/// What the host's Prometheus stored from the guest's daemon agrees with the guest's scrape.
pub fn check_prometheus(
    kernel: &Kernel,
    daemon: &Daemon,
    server: &Server,
    fails: &mut Vec<String>,
) {
    let k = format!("{} prometheus", kernel.name);
    let name = kernel.name;
    let up = server.query(&format!("max_over_time(up{{kernel=\"{name}\"}}[1h])"));
    match up {
        Ok(v) if v.values().any(|x| *x == 1.0) => {}
        Ok(v) => fails.push(format!(
            "{k}: the daemon was never up for Prometheus ({v:?})"
        )),
        Err(e) => fails.push(format!("{k}: {e:#}")),
    }
    // What the alert rules compute: each expected finding is a rise Prometheus saw.
    match server.query(&format!(
        "sum by (hazard, outcome) (increase(pinwatch_findings_total{{kernel=\"{name}\"}}[1h]))"
    )) {
        Ok(rises) => {
            for (hazard, outcome) in expected_pages(kernel).keys() {
                let rose = rises.iter().any(|(l, v)| {
                    l.get("hazard") == Some(hazard) && l.get("outcome") == Some(outcome) && *v > 0.0
                });
                if !rose {
                    fails.push(format!(
                        "{k}: increase(pinwatch_findings_total) shows no {hazard}/{outcome} finding ({rises:?})"
                    ));
                }
            }
        }
        Err(e) => fails.push(format!("{k}: {e:#}")),
    }
    let scraped = samples(&daemon.metrics);
    for metric in [
        "pinwatch_finding_pages_total",
        "pinwatch_fork_copied_pages_total",
    ] {
        let stored: Samples = match server.query(&format!(
            "max by (hazard, outcome) (max_over_time({metric}{{kernel=\"{name}\"}}[1h]))"
        )) {
            Ok(s) => s,
            Err(e) => {
                fails.push(format!("{k}: {e:#}"));
                continue;
            }
        };
        let total: f64 = stored.values().sum();
        let want = sum(&scraped, metric, &[]);
        if total != want || (want > 0.0 && stored.is_empty()) {
            fails.push(format!(
                "{k}: Prometheus stored {metric} = {total} ({stored:?}); the guest's scrape says {want}"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_parse_names_labels_and_values() {
        let text = "# HELP x y\n# TYPE x counter\nx{a=\"1\",b=\"two words\"} 3\ny 4.5\n";
        let s = samples(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].1["b"], "two words");
        assert_eq!(sum(&s, "x", &[("a", "1")]), 3.0);
        assert_eq!(sum(&s, "x", &[("a", "2")]), 0.0);
        assert_eq!(sum(&s, "y", &[]), 4.5);
    }
}
