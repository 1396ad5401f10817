//! Privilege and facility checks that run before anything is loaded. Each one reads or tries;
//! none assumes from a version number.

use std::path::Path;

use serde::Serialize;

/// What the kernel and our privileges allow, before any program is loaded.
#[derive(Debug, Clone, Serialize)]
pub struct Capabilities {
    pub root: bool,
    pub btf: bool,
    /// `none`, `integrity` or `confidentiality`; `None` without the lockdown LSM.
    pub lockdown: Option<String>,
    /// The kprobe PMU (`/sys/bus/event_source/devices/kprobe`) that BPF kprobes attach through.
    pub kprobe_pmu: bool,
    /// Legacy tracefs kprobe interface, the fallback aya uses without the PMU.
    pub kprobe_events: bool,
    /// ftrace function tracing (what fentry trampolines are built on).
    pub ftrace: bool,
}

impl Capabilities {
    pub fn probe() -> Self {
        Self {
            // SAFETY: geteuid has no preconditions and cannot fail.
            root: unsafe { libc::geteuid() } == 0,
            btf: Path::new(super::btf::VMLINUX_BTF).exists(),
            lockdown: std::fs::read_to_string("/sys/kernel/security/lockdown")
                .ok()
                .and_then(|s| parse_lockdown(&s)),
            kprobe_pmu: Path::new("/sys/bus/event_source/devices/kprobe/type").exists(),
            kprobe_events: tracefs_has("kprobe_events"),
            ftrace: tracefs_has("available_filter_functions"),
        }
    }
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
