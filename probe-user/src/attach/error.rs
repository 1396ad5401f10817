//! Why one attach attempt failed: typed, so callers and tests match on the cause; the words
//! doctor prints come from `Display`.

use std::{fmt, sync::Arc};

use aya::programs::ProgramError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AttachError {
    #[error(
        "not in this kernel: none of {} is an out-of-line function in kallsyms (inlined, renamed or not built)",
        .candidates.join(", ")
    )]
    NotInKallsyms { candidates: &'static [&'static str] },
    /// The method failed its trial at session start (doctor's method table says why).
    #[error("unavailable on this kernel")]
    MethodUnavailable,
    #[error("module functions are attached with kprobes")]
    ModuleFunction,
    #[error("{symbol} has no BTF FUNC (compiler clone or not described)")]
    NoBtfFunction { symbol: String },
    #[error("kernel BTF could not be parsed by the loader")]
    NoKernelBtf,
    /// Kprobes on Debian kernels refuse notrace functions (CONFIG_KPROBE_EVENTS_ON_NOTRACE unset).
    #[error("{symbol} is notrace (not in available_filter_functions)")]
    Notrace { symbol: String },
    #[error("program {name} missing from the eBPF object (build mismatch)")]
    ProgramMissing { name: String },
    /// The kernel refused to load or attach the program: the source keeps the errno and the
    /// verifier's log.
    #[error("{}", describe(source))]
    Refused {
        #[source]
        source: Arc<ProgramError>,
    },
}

impl From<ProgramError> for AttachError {
    fn from(source: ProgramError) -> Self {
        Self::Refused {
            source: Arc::new(source),
        }
    }
}

/// One failed attempt: which program kind was tried (`fentry`, `fexit`, `kprobe`,
/// `kretprobe`, `raw-tracepoint`, `tracepoint`) and why it failed.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub kind: &'static str,
    pub error: AttachError,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.error)
    }
}

/// aya's program errors with their causes (aya's own text omits the errno), without the empty
/// "Verifier output:" tail that attach errors carry.
fn describe(e: &ProgramError) -> String {
    let mut text = e
        .to_string()
        .trim_end()
        .trim_end_matches("Verifier output:")
        .trim_end_matches(['.', ' '])
        .to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_doctor_prints_them() {
        let not_here = Refusal {
            kind: "fexit",
            error: AttachError::NotInKallsyms {
                candidates: &["gup_fast_fallback", "internal_get_user_pages_fast"],
            },
        };
        assert_eq!(
            not_here.to_string(),
            "fexit: not in this kernel: none of gup_fast_fallback, internal_get_user_pages_fast \
             is an out-of-line function in kallsyms (inlined, renamed or not built)"
        );
        let refused = AttachError::from(ProgramError::SyscallError(aya::sys::SyscallError {
            call: "bpf_raw_tracepoint_open",
            io_error: std::io::Error::from_raw_os_error(524),
        }));
        let text = refused.to_string();
        assert!(
            text.starts_with("`bpf_raw_tracepoint_open` failed") && text.contains("os error 524"),
            "{text}"
        );
        assert!(matches!(refused, AttachError::Refused { .. }));
    }
}
