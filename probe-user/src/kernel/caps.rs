//! Privilege and facility checks that run before anything is loaded. Each one reads or tries;
//! none assumes from a version number.

use std::path::Path;

use serde::Serialize;

/// What the kernel and our privileges allow, before any program is loaded.
#[derive(Debug, Clone, Serialize)]
pub struct Capabilities {
    pub root: bool,
    /// Effective capabilities pinwatch needs that this process holds, by name (all of them as
    /// root). Without root, CAP_BPF and CAP_PERFMON are the minimum to load and attach.
    pub held: Vec<&'static str>,
    pub btf: bool,
    /// `none`, `integrity` or `confidentiality`; `None` without the lockdown LSM.
    pub lockdown: Option<String>,
    /// The kprobe PMU (`/sys/bus/event_source/devices/kprobe`) that BPF kprobes attach through.
    pub kprobe_pmu: bool,
    /// Legacy tracefs kprobe interface, the fallback aya uses without the PMU.
    pub kprobe_events: bool,
    /// ftrace function tracing (what fentry trampolines are built on).
    pub ftrace: bool,
    /// `kernel.perf_event_paranoid`; Debian's kernels add level 3, which refuses every perf
    /// event (kprobes, perf tracepoints) to processes without CAP_SYS_ADMIN.
    pub perf_event_paranoid: Option<i32>,
}

impl Capabilities {
    pub fn probe() -> Self {
        Self {
            // SAFETY: geteuid has no preconditions and cannot fail.
            root: unsafe { libc::geteuid() } == 0,
            held: std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| effective_caps(&s))
                .map(|mask| held(mask))
                .unwrap_or_default(),
            btf: Path::new(super::btf::VMLINUX_BTF).exists(),
            lockdown: std::fs::read_to_string("/sys/kernel/security/lockdown")
                .ok()
                .and_then(|s| parse_lockdown(&s)),
            kprobe_pmu: Path::new("/sys/bus/event_source/devices/kprobe/type").exists(),
            kprobe_events: tracefs_has("kprobe_events"),
            ftrace: tracefs_has("available_filter_functions"),
            perf_event_paranoid: std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
                .ok()
                .and_then(|s| s.trim().parse().ok()),
        }
    }
}

/// What pinwatch uses each capability for; the systemd unit and the DaemonSet grant exactly
/// these (checked by a test).
pub const NEEDED: [(&str, u32, &str); 6] = [
    ("CAP_BPF", 39, "load eBPF programs and maps"),
    (
        "CAP_PERFMON",
        38,
        "attach kprobes, fentry and tracepoints; read kernel memory and stacks",
    ),
    (
        "CAP_SYS_RESOURCE",
        24,
        "raise RLIMIT_MEMLOCK on kernels that charge eBPF maps to it",
    ),
    (
        "CAP_SYSLOG",
        34,
        "read kernel addresses in /proc/kallsyms to name pinners",
    ),
    (
        "CAP_SYS_PTRACE",
        19,
        "read other processes' /proc maps to name pinned files",
    ),
    (
        "CAP_DAC_READ_SEARCH",
        2,
        "find files and cgroups by inode for reports",
    ),
];

impl Capabilities {
    /// Enough to load and attach: root, or CAP_BPF with CAP_PERFMON.
    pub fn privileged(&self) -> bool {
        self.root || (self.held.contains(&"CAP_BPF") && self.held.contains(&"CAP_PERFMON"))
    }

    /// Why perf events (kprobes, perf tracepoints) are refused to this process, if the
    /// paranoid level is the reason: Debian's level 3 without root.
    pub fn perf_events_refused(&self) -> Option<String> {
        (!self.root && self.perf_event_paranoid.is_some_and(|p| p >= 3)).then(|| {
            "kernel.perf_event_paranoid=3 (Debian's default) refuses perf events (kprobes, perf \
             tracepoints) without CAP_SYS_ADMIN: set it to 2 (sysctl -w kernel.perf_event_paranoid=2, \
             the upstream default) or grant CAP_SYS_ADMIN"
                .to_owned()
        })
    }

    /// Capabilities pinwatch would use that this process lacks (none as root).
    pub fn missing(&self) -> Vec<&'static str> {
        if self.root {
            return Vec::new();
        }
        NEEDED
            .iter()
            .map(|(name, _, _)| *name)
            .filter(|n| !self.held.contains(n))
            .collect()
    }
}

/// The `CapEff:` mask of a `/proc/PID/status` text.
pub fn effective_caps(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

fn held(mask: u64) -> Vec<&'static str> {
    NEEDED
        .iter()
        .filter(|(_, bit, _)| mask & (1 << bit) != 0)
        .map(|(name, _, _)| *name)
        .collect()
}

/// `none [integrity] confidentiality` → `integrity`.
pub fn parse_lockdown(text: &str) -> Option<String> {
    let start = text.find('[')? + 1;
    let end = start + text[start..].find(']')?;
    Some(text[start..end].to_owned())
}

fn tracefs_has(file: &str) -> bool {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .any(|dir| Path::new(dir).join(file).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_capabilities_are_read_by_name() {
        let status = "Name:\tpinwatch\nCapInh:\t0000000000000000\nCapEff:\t000000c000000000\n";
        let mask = effective_caps(status).unwrap();
        assert_eq!(held(mask), vec!["CAP_BPF", "CAP_PERFMON"]);
        let caps = Capabilities {
            root: false,
            held: held(mask),
            btf: true,
            lockdown: None,
            kprobe_pmu: true,
            kprobe_events: false,
            ftrace: false,
            perf_event_paranoid: Some(3),
        };
        assert!(caps.privileged());
        assert_eq!(caps.missing().len(), 4);
        assert!(
            caps.perf_events_refused()
                .unwrap()
                .contains("perf_event_paranoid=2")
        );
        let none = Capabilities {
            held: vec![],
            ..caps
        };
        assert!(!none.privileged());
    }

    #[test]
    fn lockdown_mode_is_the_bracketed_word() {
        assert_eq!(
            parse_lockdown("none [integrity] confidentiality\n").as_deref(),
            Some("integrity")
        );
        assert_eq!(
            parse_lockdown("[none] integrity confidentiality").as_deref(),
            Some("none")
        );
        assert_eq!(parse_lockdown("garbage"), None);
    }
}
