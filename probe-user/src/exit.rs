//! Exit codes: one per kind of failure a user can hit, documented in `--help` and the README.

use std::process::ExitCode;

/// Success; for `doctor`, every hazard is observable.
pub const OK: u8 = 0;
/// `audit`: findings were reported.
pub const FINDINGS: u8 = 1;
/// A bad command line (clap's own code), or an argument that names nothing (`--pid` of no
/// process).
pub const USAGE: u8 = 2;
/// Not root / missing CAP_BPF+CAP_PERFMON.
pub const NO_PRIVILEGE: u8 = 3;
/// The kernel has no BTF (or it cannot be read).
pub const NO_BTF: u8 = 4;
/// Nothing can be observed: no hook could be attached (no kprobes, fentry refused…).
pub const UNOBSERVABLE: u8 = 5;
/// Some hazards cannot be observed on this kernel; the others work.
pub const DEGRADED: u8 = 6;
/// Anything else that went wrong at run time (eBPF load failure, a command that cannot start).
pub const RUNTIME: u8 = 7;
/// `run`: the metrics address cannot be bound (in use, not local, not permitted).
pub const LISTEN: u8 = 8;
/// `run`: the findings log cannot be opened for appending.
pub const OUTPUT: u8 = 9;

pub fn code(value: u8) -> ExitCode {
    ExitCode::from(value)
}

/// The table shown in `pinwatch --help`.
pub const HELP: &str = "\
Exit status:
  0  success (doctor: every hazard observable)
  1  audit reported findings (of the --fail-on hazards, when given)
  2  bad command line, or --pid names no running process
  3  not privileged (run as root, or grant CAP_BPF, CAP_PERFMON, CAP_SYS_RESOURCE)
  4  the kernel has no readable BTF (/sys/kernel/btf/vmlinux; CONFIG_DEBUG_INFO_BTF=y)
  5  nothing can be observed on this kernel (no hook attaches)
  6  some hazards cannot be observed on this kernel (doctor says which)
  7  other run-time failure
  8  run: the --listen address cannot be bound
  9  run: the --findings-log file cannot be opened";
