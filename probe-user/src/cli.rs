//! Command line: clap definitions only; validation that clap cannot express lives here too.

use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};

use crate::{attach::MethodChoice, exit, kernel::btf::VMLINUX_BTF};

#[derive(Debug, Parser)]
#[command(
    name = "pinwatch",
    version,
    about = "Observe DMA pinning hazards on the running Linux kernel with eBPF",
    long_about = "pinwatch watches the kernel's GUP pinning functions, writeback, COW faults, fork and \
                  PAT PFN tracking, and reports long-term writable pins of file mappings, pinned folios \
                  cleaned by writeback, pin-then-fork, COW of pinned pages, and early PFN untracking.",
    after_help = exit::HELP
)]
pub struct Cli {
    /// Kernel BTF to read struct layout from.
    #[arg(long, global = true, value_name = "PATH", default_value = VMLINUX_BTF)]
    pub btf: PathBuf,

    #[command(subcommand)]
    pub command: Commands,
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Report what this kernel allows and what pinwatch can see on it.
    #[command(after_help = DOCTOR_EXAMPLES)]
    Doctor(DoctorArgs),
    /// Watch a command or a time span and report the pinning hazards that occurred.
    #[command(after_help = AUDIT_EXAMPLES)]
    Audit(AuditArgs),
}

const AUDIT_EXAMPLES: &str = "\
Examples:
  sudo pinwatch audit --for 30s                         watch the whole system for 30 seconds
  sudo pinwatch audit -- qemu-system-x86_64 -m 4G ...   watch a command and its children
  sudo pinwatch audit --json -- ./test-dma              one JSON object: kernel, findings, counts

Exit status 0 means no finding, 1 means findings were reported; see `pinwatch --help`.
Hazards doctor reports as unobservable on this kernel are listed, never silently absent.";

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,

    /// Which attach methods the ladder may use.
    #[arg(long, value_enum, default_value_t = MethodChoice::Auto)]
    pub method: MethodChoice,

    /// Watch for this long (e.g. 10s, 2m); with a command, stop early when it exits.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration, required_unless_present = "command")]
    pub duration: Option<Duration>,

    /// Run this command, watch it and its children, and stop when it exits.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
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
    pub command: Vec<String>,
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

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
