//! `cargo xtask dashboard-snapshot`: renders the shipped Grafana dashboard (dashboards/
//! pinwatch.json) from the metrics a real Prometheus stored during `cargo xtask vm`, as HTML
//! with one SVG chart per panel laid out by the panels' own grid positions, and has headless
//! Chromium take the picture the README shows. Grafana itself is not packaged for Debian; this
//! evaluates every panel's own PromQL, legend format and layout.

use std::{collections::BTreeMap, fmt::Write as _, fs, path::Path, process::Command};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::prometheus::{Labels, Server};

/// Pixel width of one of Grafana's 24 grid columns, and height of one grid row.
const COLUMN: f64 = 66.0;
const ROW: f64 = 30.0;
const PALETTE: [&str; 8] = [
    "#73bf69", "#f2cc0c", "#5794f2", "#ff9830", "#f2495c", "#b877d9", "#8ab8ff", "#fade2a",
];

pub fn run(root: &Path) -> Result<()> {
    let dashboard: Value =
        serde_json::from_str(&fs::read_to_string(root.join("dashboards/pinwatch.json"))?)?;
    let server = Server::reopen(&root.join("target/vm/prometheus"))?;
    let (start, end) = data_window(&server)?;
    let html = render(&dashboard, &server, start, end)?;
    let out_dir = root.join("target/snapshot");
    fs::create_dir_all(&out_dir)?;
    let page = out_dir.join("dashboard.html");
    fs::write(&page, html)?;
    let height = page_height(&dashboard);
    let png = root.join("dashboards/screenshot.png");
    let status = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            out_dir.join("chromium").display()
        ))
        .arg(format!(
            "--window-size={},{height}",
            (24.0 * COLUMN) as u32 + 16
        ))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .status()
        .context("running chromium (scripts/setup.sh snapshot installs it)")?;
    if !status.success() {
        bail!("chromium failed: {status}");
    }
    println!("dashboard-snapshot: {} ({})", png.display(), page.display());
    Ok(())
}

/// The span over which pinwatch series exist in the stored data (Unix seconds).
fn data_window(server: &Server) -> Result<(f64, f64)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs_f64();
    // Six hours at a 2 s step stays under Prometheus' 11,000 points per series.
    let series = server.query_range("pinwatch_build_info", now - 21_600.0, now, 2.0)?;
    let times: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(t, _)| *t))
        .collect();
    let (Some(start), Some(end)) = (
        times.iter().copied().reduce(f64::min),
        times.iter().copied().reduce(f64::max),
    ) else {
        bail!("no pinwatch data in the last six hours: run `cargo xtask vm` first");
    };
    Ok((start - 10.0, end))
}

/// Grafana's variables, as a full-range view of every instance would set them.
fn substitute(expr: &str, range: f64) -> String {
    expr.replace("$instance", ".*")
        .replace("$__rate_interval", "15s")
        .replace("$__range", &format!("{}s", range.ceil() as u64))
}

fn legend(format: &str, labels: &BTreeMap<String, String>) -> String {
    let mut out = format.to_owned();
    for (k, v) in labels {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    if out.is_empty() {
        labels.values().cloned().collect::<Vec<_>>().join(" ")
    } else {
        out
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn page_height(d: &Value) -> u32 {
    let bottom = d["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            p["gridPos"]["y"].as_f64().unwrap_or(0.0) + p["gridPos"]["h"].as_f64().unwrap_or(0.0)
        })
        .fold(0.0, f64::max);
    (bottom * ROW + 70.0) as u32
}

fn render(d: &Value, server: &Server, start: f64, end: f64) -> Result<String> {
    let mut body = String::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_f64().unwrap_or(0.0) * COLUMN,
            g["y"].as_f64().unwrap_or(0.0) * ROW + 48.0,
            g["w"].as_f64().unwrap_or(24.0) * COLUMN - 8.0,
            g["h"].as_f64().unwrap_or(8.0) * ROW - 8.0,
        );
        let title = escape(p["title"].as_str().unwrap_or(""));
        if p["type"] == "row" {
            let _ = write!(
                body,
                "<div class=row style='left:{x}px;top:{y}px;width:{w}px'>{title}</div>"
            );
            continue;
        }
        let content = match p["type"].as_str() {
            Some("timeseries") => timeseries(p, server, start, end, w, h - 30.0)?,
            Some("stat") => stat(p, server, start, end)?,
            _ => table(p, server, start, end)?,
        };
        let _ = write!(
            body,
            "<div class=panel style='left:{x}px;top:{y}px;width:{w}px;height:{h}px'><div class=title>{title}</div>{content}</div>"
        );
    }
    Ok(format!(
        "<!doctype html><html><head><meta charset=utf-8><style>
body{{margin:0;background:#111217;color:#ccccdc;font:12px Inter,Helvetica,Arial,sans-serif}}
h1{{font-size:18px;font-weight:500;margin:12px 8px}} h1 span{{color:#8e8e8e;font-size:12px;margin-left:12px}}
.panel{{position:absolute;background:#181b1f;border:1px solid #2c3235;border-radius:2px;overflow:hidden;box-sizing:border-box;padding:4px 8px}}
.row{{position:absolute;font-size:14px;font-weight:500;padding:6px 0}}
.title{{font-weight:500;height:20px;white-space:nowrap;overflow:hidden}}
.stats{{display:flex;flex-wrap:wrap;gap:4px}} .stat{{flex:1 1 150px;padding:6px;border-radius:2px;color:#fff}}
.stat b{{display:block;font-size:22px}} table{{width:100%;border-collapse:collapse}} td,th{{text-align:left;padding:2px 4px;border-bottom:1px solid #2c3235}}
.legend{{font-size:11px;max-height:60px;overflow:hidden}} .legend i{{display:inline-block;width:10px;height:3px;margin-right:4px;vertical-align:middle}}
</style></head><body><h1>{}<span>Prometheus data from the VM matrix (6.1, 6.12, 7.2), rendered from dashboards/pinwatch.json</span></h1>{body}</body></html>",
        escape(d["title"].as_str().unwrap_or("pinwatch"))
    ))
}

fn targets(p: &Value) -> Vec<(String, String)> {
    p["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["expr"].as_str().unwrap_or_default().to_owned(),
                t["legendFormat"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn timeseries(p: &Value, server: &Server, start: f64, end: f64, w: f64, h: f64) -> Result<String> {
    let step = ((end - start) / 240.0).max(1.0);
    let mut series = Vec::new();
    for (expr, format) in targets(p) {
        for (labels, points) in
            server.query_range(&substitute(&expr, end - start), start, end, step)?
        {
            let points: Vec<(f64, f64)> =
                points.into_iter().filter(|(_, v)| v.is_finite()).collect();
            series.push((legend(&format, &labels), points));
        }
    }
    let chart_h = (h - 64.0).max(40.0);
    let max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, v)| *v))
        .fold(0.0, f64::max);
    let top = if max > 0.0 { max * 1.1 } else { 1.0 };
    let (left, plot_w) = (44.0, w - 60.0);
    let sx = |t: f64| left + (t - start) / (end - start) * plot_w;
    let sy = |v: f64| chart_h - v / top * (chart_h - 4.0);
    let mut svg = format!("<svg width={w} height={chart_h}>");
    for i in 0..=3 {
        let v = top * f64::from(i) / 3.0;
        let _ = write!(
            svg,
            "<line x1={left} x2={} y1={y} y2={y} stroke='#2c3235'/><text x=0 y={} fill='#8e8e8e' font-size=10>{}</text>",
            left + plot_w,
            sy(v) + 3.0,
            short(v),
            y = sy(v)
        );
    }
    let mut legend_html = String::new();
    for (i, (name, points)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        // A gap of more than a few steps (the daemon was not running) breaks the line.
        for segment in points.chunk_by(|a, b| b.0 - a.0 <= 3.0 * step) {
            let path: Vec<String> = segment
                .iter()
                .map(|(t, v)| format!("{:.1},{:.1}", sx(*t), sy(*v)))
                .collect();
            let _ = write!(
                svg,
                "<polyline fill=none stroke='{color}' stroke-width=1.5 points='{}'/>",
                path.join(" ")
            );
        }
        let last = points.last().map_or(0.0, |(_, v)| *v);
        let peak = points.iter().map(|(_, v)| *v).fold(0.0, f64::max);
        let _ = write!(
            legend_html,
            "<div><i style='background:{color}'></i>{} <span style='color:#8e8e8e'>last {} max {}</span></div>",
            escape(name),
            short(last),
            short(peak)
        );
    }
    if series.is_empty() {
        legend_html = "<div style='color:#8e8e8e'>No data</div>".to_owned();
    }
    svg.push_str("</svg>");
    Ok(format!("{svg}<div class=legend>{legend_html}</div>"))
}

fn instant(p: &Value, server: &Server, start: f64, end: f64) -> Result<Vec<(String, Labels, f64)>> {
    let mut rows = Vec::new();
    for (expr, format) in targets(p) {
        for (labels, v) in server.query_at(&substitute(&expr, end - start), Some(end))? {
            rows.push((legend(&format, &labels), labels, v));
        }
    }
    Ok(rows)
}

fn stat(p: &Value, server: &Server, start: f64, end: f64) -> Result<String> {
    let steps = &p["fieldConfig"]["defaults"]["thresholds"]["steps"];
    let color = |v: f64| {
        let mut c = "#73bf69";
        for s in steps.as_array().into_iter().flatten() {
            if s["value"].as_f64().is_none_or(|t| v >= t) {
                c = match s["color"].as_str() {
                    Some("red") => "#c4162a",
                    Some("green") => "#37872d",
                    _ => "#37872d",
                };
            }
        }
        c
    };
    let mut out = String::from("<div class=stats>");
    let rows = instant(p, server, start, end)?;
    for (name, _, v) in &rows {
        let _ = write!(
            out,
            "<div class=stat style='background:{}'>{}<b>{}</b></div>",
            color(*v),
            escape(name),
            short(v.round())
        );
    }
    if rows.is_empty() {
        out.push_str("<div style='color:#8e8e8e'>No data</div>");
    }
    out.push_str("</div>");
    Ok(out)
}

fn table(p: &Value, server: &Server, start: f64, end: f64) -> Result<String> {
    let rows = instant(p, server, start, end)?;
    let columns: Vec<String> = rows
        .first()
        .map(|(_, l, _)| l.keys().cloned().collect())
        .unwrap_or_default();
    let mut out = String::from("<table><tr>");
    for c in &columns {
        let _ = write!(out, "<th>{}</th>", escape(c));
    }
    out.push_str("<th>value</th></tr>");
    for (_, labels, v) in rows.iter().take(14) {
        out.push_str("<tr>");
        for c in &columns {
            let _ = write!(
                out,
                "<td>{}</td>",
                escape(labels.get(c).map_or("", String::as_str))
            );
        }
        let _ = write!(out, "<td>{}</td></tr>", short(*v));
    }
    out.push_str("</table>");
    Ok(out)
}

/// 1234 → 1.23K, 0.5 → 0.5.
fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.2}K", v / 1e3)
    } else if a == a.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grafana_variables_and_legends_are_filled_in() {
        assert_eq!(
            substitute(
                r#"rate(x{instance=~"$instance"}[$__rate_interval]) + increase(y[$__range])"#,
                90.5
            ),
            r#"rate(x{instance=~".*"}[15s]) + increase(y[91s])"#
        );
        let labels: BTreeMap<String, String> =
            [("hazard".to_owned(), "pinned-cow".to_owned())].into();
        assert_eq!(legend("{{hazard}} now", &labels), "pinned-cow now");
        assert_eq!(legend("", &labels), "pinned-cow");
        assert_eq!(short(1234.0), "1.23K");
        assert_eq!(short(3.0), "3");
    }
}
