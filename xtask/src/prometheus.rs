//! A real Prometheus server (Debian's package) that scrapes each guest's `pinwatch run` through
//! QEMU's forwarded port, and the HTTP API queries the matrix checks it with.

use std::{
    collections::BTreeMap,
    fs,
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

pub struct Server {
    child: Child,
    api: String,
}

pub type Labels = BTreeMap<String, String>;
/// Label set → value of one query's result vector.
pub type Samples = BTreeMap<Labels, f64>;
/// One series of a range query: its labels and (Unix seconds, value) points.
pub type Series = (Labels, Vec<(f64, f64)>);

impl Server {
    /// Starts Prometheus with one scrape target per kernel (`kernel` label), every second.
    pub fn start(work: &Path, targets: &[(&str, u16)]) -> Result<Self> {
        fs::create_dir_all(work)?;
        let data = work.join("data");
        let _ = fs::remove_dir_all(&data);
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: pinwatch\n    static_configs:\n",
        );
        for (kernel, port) in targets {
            config += &format!(
                "      - targets: ['127.0.0.1:{port}']\n        labels: {{kernel: '{kernel}'}}\n"
            );
        }
        Self::launch(work, &config)
    }

    /// Serves what an earlier run stored (`target/vm/prometheus/data`), scraping nothing.
    pub fn reopen(work: &Path) -> Result<Self> {
        if !work.join("data").exists() {
            bail!(
                "no stored metrics in {}: run `cargo xtask vm` first",
                work.display()
            );
        }
        Self::launch(work, "global:\n  scrape_interval: 1m\nscrape_configs: []\n")
    }

    fn launch(work: &Path, config: &str) -> Result<Self> {
        let data = work.join("data");
        let config_path = work.join("prometheus.yml");
        fs::write(&config_path, config)?;
        let port = free_port()?;
        let log = fs::File::create(work.join("prometheus.log"))?;
        let child = crate::child::dies_with_parent(&mut Command::new("prometheus"))
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting prometheus (run scripts/setup.sh)")?;
        let server = Self {
            child,
            api: format!("http://127.0.0.1:{port}"),
        };
        server.wait_ready(work)?;
        Ok(server)
    }

    fn wait_ready(&self, work: &Path) -> Result<()> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if ureq::get(format!("{}/-/ready", self.api)).call().is_ok() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(250));
        }
        bail!(
            "prometheus not ready after 60s (see {})",
            work.join("prometheus.log").display()
        )
    }

    /// An instant PromQL query; the result vector by label set.
    pub fn query(&self, promql: &str) -> Result<Samples> {
        self.query_at(promql, None)
    }

    /// An instant query evaluated at `at` (Unix seconds), or now.
    pub fn query_at(&self, promql: &str, at: Option<f64>) -> Result<Samples> {
        let mut request = ureq::get(format!("{}/api/v1/query", self.api)).query("query", promql);
        if let Some(at) = at {
            request = request.query("time", format!("{at:.3}"));
        }
        let data = api_data(request, promql)?;
        let mut samples = Samples::new();
        for item in data["result"].as_array().into_iter().flatten() {
            samples.insert(labels(item), number(&item["value"][1]));
        }
        Ok(samples)
    }

    /// A range query: each series' (Unix seconds, value) points.
    pub fn query_range(
        &self,
        promql: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<Vec<Series>> {
        let request = ureq::get(format!("{}/api/v1/query_range", self.api))
            .query("query", promql)
            .query("start", format!("{start:.3}"))
            .query("end", format!("{end:.3}"))
            .query("step", format!("{step:.3}"));
        let data = api_data(request, promql)?;
        Ok(data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| {
                let points = item["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| (p[0].as_f64().unwrap_or(0.0), number(&p[1])))
                    .collect();
                (labels(item), points)
            })
            .collect())
    }
}

fn api_data(
    request: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
    promql: &str,
) -> Result<Value> {
    let body = request
        .call()
        .with_context(|| format!("querying prometheus: {promql}"))?
        .body_mut()
        .read_to_string()?;
    let mut json: Value = serde_json::from_str(&body)?;
    if json["status"] != "success" {
        bail!("prometheus refused {promql}: {body}");
    }
    Ok(json["data"].take())
}

fn labels(item: &Value) -> Labels {
    item["metric"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

fn number(v: &Value) -> f64 {
    v.as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
