//! Command line: clap definitions only; validation that clap cannot express lives here too.

use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};

use crate::{attach::MethodChoice, daemon, exit, hazards::Hazard, kernel::btf::VMLINUX_BTF};

#[derive(Debug, Parser)]
#[command(
    name = "pinwatch",
    version,
    about = "Observe DMA pinning hazards on the running Linux kernel with eBPF",
    long_about = "pinwatch watches the kernel's GUP pinning functions, writeback, COW faults, fork and \
                  PAT PFN tracking, and reports long-term writable pins of file mappings, pinned folios \
                  cleaned by writeback, pin-then-fork, COW of pinned pages, and early PFN untracking.",
    after_help = exit::HELP.as_str()
)]
pub struct Cli {
    /// Kernel BTF to read struct layout from.
    #[arg(long, global = true, value_name = "PATH", default_value = VMLINUX_BTF)]
    pub btf: PathBuf,

    /// Log level of pinwatch's own log on stderr (overrides RUST_LOG): error, warn, info,
    /// debug, trace or off. Default: info for `run`, warn for the others.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<log::LevelFilter>,

    #[command(subcommand)]
    pub command: Commands,
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Report what this kernel allows and what pinwatch can see on it.
    #[command(after_help = DOCTOR_EXAMPLES)]
    Doctor(DoctorArgs),
    /// Watch a command, a process or a time span and report the pinning hazards that occurred.
    #[command(after_help = AUDIT_EXAMPLES)]
    Audit(AuditArgs),
    /// Run as a daemon: export Prometheus metrics and log findings as JSON lines.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Stream the decoded kernel events as JSON lines (raw data under the findings).
    #[command(after_help = EVENTS_EXAMPLES)]
    Events(EventsArgs),
    /// List the Prometheus metrics `pinwatch run` exports, with their labels and help.
    #[command(after_help = METRICS_EXAMPLES)]
    Metrics(MetricsArgs),
    /// Who holds how many pinned pages now, by process and pinner, from /proc (no eBPF: pins
    /// taken before pinwatch started are listed too).
    #[command(after_help = PINS_EXAMPLES)]
    Pins(PinsArgs),
}

const PINS_EXAMPLES: &str = "\
Examples:
  pinwatch pins                 your own processes' pins (others' VmPin only)
  sudo pinwatch pins            every process's pins
  sudo pinwatch pins --json     one JSON object: processes, totals by pinner, what was unreadable

Sources: io_uring registered buffers from /proc/PID/fdinfo (exact pages); VFIO from VmLck
(mm->locked_vm, which mlock also counts: an upper bound); RDMA and unknown pinners from VmPin
(mm->pinned_vm: a charge). The kernel records no pin time: ages are the process's age, an
upper bound if that process pinned. Exit status 10 means something could not be read; the
report says what.";

#[derive(Debug, clap::Args)]
pub struct PinsArgs {
    /// Print the inventory as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

const RUN_EXAMPLES: &str = "\
Examples:
  sudo pinwatch run                                      metrics on http://127.0.0.1:9469/metrics, findings on stdout
  sudo pinwatch run --findings-log /var/log/pinwatch.jsonl   findings appended to a 0600 file
  sudo pinwatch run --listen 0.0.0.0:9469               serve every interface (must be asked for)
  sudo pinwatch run --listen [::1]:9469 --method kprobe

SIGTERM or SIGINT detaches every probe and exits 0; SIGHUP is logged and ignored (nothing
is reloaded). Packaging: packaging/pinwatch.service (systemd, capabilities instead of root)
and packaging/daemonset.yaml (Kubernetes).";

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Serve /metrics on this address; a port alone is not accepted, the interface must be named.
    #[arg(long, value_name = "ADDR:PORT", default_value = daemon::DEFAULT_LISTEN)]
    pub listen: std::net::SocketAddr,

    /// Append findings (JSON lines) to this file, created mode 0600, instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub findings_log: Option<PathBuf>,

    /// Which attach methods the ladder may use.
    #[arg(long, value_enum, default_value_t = MethodChoice::Auto)]
    pub method: MethodChoice,

    /// How much of its work pinwatch does, to measure its own cost (`cargo xtask bench`):
    /// kernel-only and floor observe nothing.
    #[arg(long, value_enum, default_value_t = daemon::BenchMode::Full)]
    pub bench_mode: daemon::BenchMode,
}

const EVENTS_EXAMPLES: &str = "\
Examples:
  sudo pinwatch events                                   every event, until Ctrl-C
  sudo pinwatch events --hazard fork-with-pins --for 1m  events that feed one hazard
  sudo pinwatch events --hook folio_mkclean --pid 4242   one hook, one process and its children
  sudo pinwatch events -- ./dma-test | jq .kind          a command's events, piped

Each line is one JSON object with a `kind` (pin, unpin, mkclean-pinned, pfn-untrack,
fork-copy, fork, pinned-cow), the task, and kernel monotonic timestamps in `at_ns`.
A watched command's own stdout goes to stderr, so stdout stays JSON.
Hooks are the names `pinwatch doctor` lists.";

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Only events from this process and its descendants.
    #[arg(long, value_name = "PID", conflicts_with = "command")]
    pub pid: Option<u32>,

    /// Only events that feed these hazards (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "HAZARD")]
    pub hazard: Vec<Hazard>,

    /// Only events sent by these hooks (comma-separated; names as in `pinwatch doctor`).
    #[arg(long, value_delimiter = ',', value_name = "HOOK", value_parser = parse_hook)]
    pub hook: Vec<String>,

    /// Stop after this long (e.g. 10s, 2m).
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Which attach methods the ladder may use.
    #[arg(long, value_enum, default_value_t = MethodChoice::Auto)]
    pub method: MethodChoice,

    /// Run this command and stream its (and its children's) events until it exits.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

const METRICS_EXAMPLES: &str = "\
Examples:
  pinwatch metrics            name, type, labels and help of every metric
  pinwatch metrics --names    names only (what dashboards and alert rules may use)";

#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    /// Print metric names only, one per line.
    #[arg(long)]
    pub names: bool,
}

const AUDIT_EXAMPLES: &str = "\
Examples:
  sudo pinwatch audit --for 30s                         watch the whole system for 30 seconds
  sudo pinwatch audit -- qemu-system-x86_64 -m 4G ...   watch a command and its children
  sudo pinwatch audit --json -- ./test-dma              one JSON object: kernel, findings, counts
  sudo pinwatch audit --pid 4242 --for 5m               a running process and its children
  sudo pinwatch audit --fail-on longterm-file-pin,pinned-folio-cleaned -- make test   a CI gate

Exit status 0 means no finding, 1 means findings were reported (with --fail-on: findings of
those hazards); see `pinwatch --help`. On a terminal a status line shows progress on stderr.
With --json, the watched command's own stdout goes to stderr, so stdout stays one JSON object.
Hazards doctor reports as unobservable on this kernel are listed, never silently absent.";

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,

    /// Which attach methods the ladder may use.
    #[arg(long, value_enum, default_value_t = MethodChoice::Auto)]
    pub method: MethodChoice,

    /// Watch for this long (e.g. 10s, 2m); with a command or --pid, stop early when it exits.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration, required_unless_present_any = ["command", "pid"])]
    pub duration: Option<Duration>,

    /// Watch this running process and its descendants, until it exits.
    #[arg(long, value_name = "PID", conflicts_with = "command")]
    pub pid: Option<u32>,

    /// Exit 1 only for findings of these hazards (comma-separated); others are still reported.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "HAZARD")]
    pub fail_on: Vec<Hazard>,

    /// No status line on stderr while watching.
    #[arg(long)]
    pub no_progress: bool,

    /// Run this command, watch it and its children, and stop when it exits.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

const DOCTOR_EXAMPLES: &str = "\
Examples:
  sudo pinwatch doctor                       attach every hook, report, detach
  sudo pinwatch doctor --json                the same as JSON (one object)
  sudo pinwatch doctor --watch 10s           also count hook hits for 10 seconds
  sudo pinwatch doctor -- ./my-dma-app -x    count hook hits while a command runs
  sudo pinwatch doctor --method kprobe       never use fentry (test the kprobe path)";

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Print the report as one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,

    /// Which attach methods the ladder may use.
    #[arg(long, value_enum, default_value_t = MethodChoice::Auto)]
    pub method: MethodChoice,

    /// Keep the hooks attached this long and report hit counts (e.g. 500ms, 10s, 2m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub watch: Option<Duration>,

    /// Run this command with every hook attached and report hit counts when it exits.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

fn parse_hook(name: &str) -> Result<String, String> {
    let known: Vec<&str> = crate::probes::HOOKS.iter().map(|h| h.name).collect();
    if known.contains(&name) {
        Ok(name.to_owned())
    } else {
        Err(format!("unknown hook (known: {})", known.join(", ")))
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let d =
        humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 500ms, 10s, 2m)"))?;
    if d.is_zero() {
        return Err("the duration must be greater than zero".to_owned());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_units_and_must_be_positive() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("0s").is_err());
    }

    /// Every `sudo pinwatch …` / `pinwatch …` example in the help parses as written.
    #[test]
    fn every_help_example_parses() {
        let mut seen = 0;
        for text in [
            DOCTOR_EXAMPLES,
            AUDIT_EXAMPLES,
            RUN_EXAMPLES,
            EVENTS_EXAMPLES,
            METRICS_EXAMPLES,
            PINS_EXAMPLES,
        ] {
            for line in text.lines() {
                let Some(at) = line.find("pinwatch ") else {
                    continue;
                };
                if !line.trim_start().starts_with("sudo pinwatch")
                    && !line.trim_start().starts_with("pinwatch")
                {
                    continue;
                }
                // The example ends where its explanation starts (two spaces) or at a pipe.
                let example = line[at..]
                    .split("  ")
                    .next()
                    .unwrap()
                    .split(" | ")
                    .next()
                    .unwrap();
                let words: Vec<&str> = example.split_whitespace().collect();
                if let Err(e) = Cli::try_parse_from(&words) {
                    panic!("example `{example}` does not parse: {e}");
                }
                seen += 1;
            }
        }
        assert!(seen >= 21, "only {seen} examples found");
    }

    /// The systemd unit and the DaemonSet run a command line that parses, and grant exactly
    /// the capabilities pinwatch documents using.
    #[test]
    fn packaging_runs_valid_commands_with_the_needed_capabilities() {
        use crate::kernel::caps::NEEDED;
        let needed: Vec<&str> = NEEDED.iter().map(|(name, _, _)| *name).collect();

        let unit = include_str!("../../packaging/pinwatch.service");
        let value = |key: &str| {
            unit.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("{key} missing from the unit"))
        };
        let exec: Vec<&str> = value("ExecStart=").split_whitespace().collect();
        assert!(exec[0].ends_with("/pinwatch"));
        let mut argv = vec!["pinwatch"];
        argv.extend(&exec[1..]);
        Cli::try_parse_from(&argv).expect("the unit's ExecStart parses");
        for key in ["AmbientCapabilities=", "CapabilityBoundingSet="] {
            let caps: Vec<&str> = value(key).split_whitespace().collect();
            assert_eq!(caps, needed, "{key}");
        }

        let daemonset = include_str!("../../packaging/daemonset.yaml");
        let json_after = |key: &str| -> Vec<String> {
            let line = daemonset
                .lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .unwrap_or_else(|| panic!("{key} missing from the DaemonSet"));
            serde_json::from_str(line.trim()).expect("a JSON-style list")
        };
        let mut argv = vec!["pinwatch".to_owned()];
        argv.extend(json_after("args:"));
        Cli::try_parse_from(&argv).expect("the DaemonSet's args parse");
        let added = json_after("add:");
        let wanted: Vec<String> = needed
            .iter()
            .map(|c| c.trim_start_matches("CAP_").to_owned())
            .collect();
        assert_eq!(added, wanted);
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
