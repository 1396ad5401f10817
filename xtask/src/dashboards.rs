//! `cargo xtask dashboards`: the shipped Grafana dashboard and alert rules only name metrics
//! pinwatch exports, the dashboard is importable with any Prometheus data source, and the rules
//! pass `promtool check rules` and their unit tests (`promtool test rules`).

use std::{collections::BTreeSet, fs, path::Path, process::Command};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// Suffixes Prometheus adds to a histogram's series.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

pub fn check(root: &Path) -> Result<()> {
    let exported = exported_metrics(root)?;
    let dir = root.join("dashboards");
    let mut problems = Vec::new();
    let mut files: Vec<_> = fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("json" | "yml")))
        .collect();
    files.sort();
    for path in &files {
        let text = fs::read_to_string(path)?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        for metric in metric_names(&text) {
            if !exported.contains(&base_name(&metric, &exported)) {
                problems.push(format!("{name}: {metric} is not a metric pinwatch exports"));
            }
        }
        if path.extension().is_some_and(|e| e == "json") {
            let dashboard: Value =
                serde_json::from_str(&text).with_context(|| format!("{name}: not JSON"))?;
            problems.extend(
                dashboard_problems(&dashboard)
                    .into_iter()
                    .map(|p| format!("{name}: {p}")),
            );
        }
    }
    let rules = dir.join("alerts.yml");
    promtool(&["check", "rules"], &rules, &mut problems)?;
    promtool(
        &["test", "rules"],
        &dir.join("alerts.test.yml"),
        &mut problems,
    )?;
    for p in &problems {
        eprintln!("  FAIL {p}");
    }
    if !problems.is_empty() {
        bail!("dashboards: {} problem(s)", problems.len());
    }
    println!(
        "dashboards: {} file(s) name only exported metrics; rules checked and unit-tested",
        files.len()
    );
    Ok(())
}

/// `pinwatch metrics --names`, from a fresh build.
fn exported_metrics(root: &Path) -> Result<BTreeSet<String>> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "probe-user"])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("building pinwatch failed");
    }
    let out = Command::new(root.join("target/debug/pinwatch"))
        .args(["metrics", "--names"])
        .output()
        .context("running pinwatch metrics --names")?;
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(str::to_owned)
        .collect())
}

/// Every `pinwatch_…` identifier in a text.
pub fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("pinwatch_") {
        let before_ok = at == 0
            || !rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[at..];
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if before_ok {
            names.insert(tail[..len].to_owned());
        }
        rest = &tail[len..];
    }
    names
}

/// A histogram's `_bucket`/`_sum`/`_count` series name their family.
pub fn base_name(metric: &str, exported: &BTreeSet<String>) -> String {
    HISTOGRAM_SUFFIXES
        .iter()
        .find_map(|s| metric.strip_suffix(s).filter(|b| exported.contains(*b)))
        .unwrap_or(metric)
        .to_owned()
}

/// Importability: a data-source variable, used by every panel and query.
pub fn dashboard_problems(d: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let vars = d["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !vars
        .iter()
        .any(|v| v["type"] == "datasource" && v["name"] == "datasource")
    {
        problems.push("no `datasource` template variable".to_owned());
    }
    for p in d["panels"].as_array().into_iter().flatten() {
        if p["type"] == "row" {
            continue;
        }
        let title = p["title"].as_str().unwrap_or("(untitled)");
        let uses_var = |v: &Value| v["uid"] == "${datasource}";
        if !uses_var(&p["datasource"]) {
            problems.push(format!("panel `{title}` does not use ${{datasource}}"));
        }
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("panel `{title}` has no query"));
        }
        for t in &targets {
            if !uses_var(&t["datasource"]) || t["expr"].as_str().is_none_or(str::is_empty) {
                problems.push(format!(
                    "panel `{title}`: a query without expr or ${{datasource}}"
                ));
            }
        }
    }
    problems
}

fn promtool(args: &[&str], file: &Path, problems: &mut Vec<String>) -> Result<()> {
    let out = Command::new("promtool")
        .args(args)
        .arg(file.file_name().context("a file")?)
        .current_dir(file.parent().context("a directory")?)
        .output()
        .context("running promtool (scripts/setup.sh installs it)")?;
    if !out.status.success() {
        problems.push(format!(
            "promtool {} {}: {}{}",
            args.join(" "),
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_are_found_in_expressions() {
        let names = metric_names(
            r#"sum(rate(pinwatch_pins_total{a="b"}[5m])) / x_pinwatch_not + histogram_quantile(0.5, pinwatch_pin_age_seconds_bucket)"#,
        );
        let want: BTreeSet<String> = ["pinwatch_pins_total", "pinwatch_pin_age_seconds_bucket"]
            .map(String::from)
            .into();
        assert_eq!(names, want);
    }

    #[test]
    fn histogram_series_map_to_their_family_only_when_it_exists() {
        let exported: BTreeSet<String> = ["pinwatch_pin_age_seconds".to_owned()].into();
        assert_eq!(
            base_name("pinwatch_pin_age_seconds_bucket", &exported),
            "pinwatch_pin_age_seconds"
        );
        assert_eq!(
            base_name("pinwatch_nope_count", &exported),
            "pinwatch_nope_count"
        );
    }

    #[test]
    fn panels_without_the_datasource_variable_are_reported() {
        let d = serde_json::json!({
            "templating": {"list": []},
            "panels": [{"type": "timeseries", "title": "t", "datasource": {"uid": "abc"},
                        "targets": [{"expr": "up", "datasource": {"uid": "abc"}}]}]
        });
        let problems = dashboard_problems(&d);
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn the_shipped_dashboard_is_importable() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards/pinwatch.json");
        let d: Value = serde_json::from_str(&fs::read_to_string(root).unwrap()).unwrap();
        assert_eq!(dashboard_problems(&d), Vec::<String>::new());
    }
}
