//! The verdict on an open session: everything observable, some hazards hidden, or nothing at
//! all; each with the exit code doctor ends with.

use std::fmt;

use crate::{exit, hazards::Hazard};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every hazard is observable.
    Observable,
    /// These hazards are hidden from pinwatch on this kernel; `hint` says why when perf events
    /// are refused.
    Degraded {
        blind: Vec<Hazard>,
        hint: Option<String>,
    },
    /// No kernel function hook attached (tracepoints alone see no hazard), for these reasons.
    Unobservable { why: Vec<String> },
}

impl Verdict {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Observable => exit::OK,
            Self::Degraded { .. } => exit::DEGRADED,
            Self::Unobservable { .. } => exit::UNOBSERVABLE,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Observable => f.write_str("OK: every hazard is observable on this kernel."),
            Self::Degraded { blind, hint } => {
                let ids: Vec<&str> = blind.iter().map(|h| h.id()).collect();
                write!(
                    f,
                    "DEGRADED: cannot observe {} (see the missing hooks above).",
                    ids.join(", ")
                )?;
                if let Some(why) = hint {
                    write!(f, "\n  - {why}")?;
                }
                Ok(())
            }
            Self::Unobservable { why } => write!(
                f,
                "NOTHING CAN BE OBSERVED on this kernel: no kernel function hook attached.\n  - {}\n\
                 pinwatch needs a kernel with CONFIG_KPROBES=y or ftrace-based fentry (e.g. Debian's 6.1, 6.12, 7.2); \
                 on this machine, use `cargo xtask vm` to run it inside real kernels under QEMU.",
                why.join("\n  - ")
            ),
        }
    }
}

/// `require_observable` returns the unobservable verdict as its error.
impl std::error::Error for Verdict {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_verdict_has_its_exit_code_and_words() {
        assert_eq!(Verdict::Observable.exit_code(), exit::OK);
        assert!(Verdict::Observable.to_string().starts_with("OK: "));
        let degraded = Verdict::Degraded {
            blind: vec![Hazard::PinnedCow, Hazard::ForkWithPins],
            hint: Some("perf_event_paranoid=3".to_owned()),
        };
        assert_eq!(degraded.exit_code(), exit::DEGRADED);
        assert_eq!(
            degraded.to_string(),
            format!(
                "DEGRADED: cannot observe {}, {} (see the missing hooks above).\n  - perf_event_paranoid=3",
                Hazard::PinnedCow.id(),
                Hazard::ForkWithPins.id()
            )
        );
        let none = Verdict::Unobservable {
            why: vec!["kprobes are unavailable: no kprobe_events".to_owned()],
        };
        assert_eq!(none.exit_code(), exit::UNOBSERVABLE);
        assert!(
            none.to_string()
                .starts_with("NOTHING CAN BE OBSERVED on this kernel: no kernel function hook attached.\n  - kprobes are unavailable: no kprobe_events\n")
        );
    }
}
