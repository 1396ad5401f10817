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

/// Label set → value of one query's result vector.
pub type Samples = BTreeMap<BTreeMap<String, String>, f64>;

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
        let config_path = work.join("prometheus.yml");
        fs::write(&config_path, config)?;
        let port = free_port()?;
        let log = fs::File::create(work.join("prometheus.log"))?;
        let child = Command::new("prometheus")
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
        let body = ureq::get(format!("{}/api/v1/query", self.api))
            .query("query", promql)
            .call()
            .with_context(|| format!("querying prometheus: {promql}"))?
            .body_mut()
            .read_to_string()?;
        let json: Value = serde_json::from_str(&body)?;
        if json["status"] != "success" {
            bail!("prometheus refused {promql}: {body}");
        }
        let mut samples = Samples::new();
        for item in json["data"]["result"].as_array().into_iter().flatten() {
            let labels = item["metric"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| *k != "__name__")
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            let value = item["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN);
            samples.insert(labels, value);
        }
        Ok(samples)
    }
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
