//! The attach ladder: for each hook, the first candidate symbol the kernel has, attached with
//! fentry/fexit where the kernel allows it, else kprobe/kretprobe. Every attempt is recorded so
//! doctor can say exactly why a hook is missing.

use aya::{
    Btf, Ebpf,
    programs::{FEntry, FExit, KProbe, RawTracePoint, TracePoint},
};
use serde::Serialize;

use crate::{
    kernel::{
        btf::KernelBtf,
        kallsyms::{Kallsyms, Symbol},
    },
    probes::{Hook, Returns, Target},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    Fentry,
    Kprobe,
    /// A raw tracepoint (BPF link, no perf event).
    RawTracepoint,
    /// A classic tracepoint through perf_event_open.
    Tracepoint,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Fentry => "fentry",
            Method::Kprobe => "kprobe",
            Method::RawTracepoint => "raw-tracepoint",
            Method::Tracepoint => "tracepoint",
        }
    }
}

/// Which attach methods the ladder may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MethodChoice {
    /// fentry and raw tracepoints where the kernel allows them, else kprobes and perf tracepoints.
    #[default]
    Auto,
    /// fentry only for functions (tracepoints as in auto).
    Fentry,
    /// Perf events only: kprobes and perf tracepoints (never fentry or raw tracepoints).
    Kprobe,
}

/// The outcome for one hook.
#[derive(Debug, Clone, Serialize)]
pub struct Attachment {
    pub hook: &'static str,
    pub attached: bool,
    /// The kernel symbol (or `category:name` tracepoint) that won.
    pub symbol: Option<String>,
    pub method: Option<Method>,
    /// Method of the return program, for hooks that have one.
    pub return_method: Option<Method>,
    /// Why it is not attached, or why a better method lost.
    pub reason: Option<String>,
}

impl Attachment {
    /// How the hook is attached: the entry's method, or the return program's for a hook that
    /// has none.
    pub fn method_family(&self) -> Option<Method> {
        self.method.or(self.return_method)
    }
}

pub struct Attacher<'a> {
    pub ebpf: &'a mut Ebpf,
    pub kallsyms: &'a Kallsyms,
    pub kernel_btf: &'a KernelBtf,
    pub aya_btf: Option<&'a Btf>,
    pub choice: MethodChoice,
    /// Results of doctor's method trials: a method that failed its trial is not retried per hook.
    pub fentry_works: bool,
    pub kprobe_works: bool,
}

/// Which kind of program: the entry or the return side of a function.
#[derive(Clone, Copy)]
enum Side {
    Entry,
    Return,
}

impl Attacher<'_> {
    pub fn attach(&mut self, hook: &'static Hook) -> Attachment {
        match hook.target {
            Target::Tracepoint { category, name } => self.attach_tracepoint(hook, category, name),
            Target::Function {
                candidates,
                returns,
            } => self.attach_function(hook, candidates, returns),
        }
    }

    /// Raw tracepoint first (a BPF link: no perf event, so no perf_event_paranoid limit), then
    /// the perf tracepoint. `--method kprobe` keeps to perf-event attachment throughout.
    fn attach_tracepoint(&mut self, hook: &'static Hook, category: &str, name: &str) -> Attachment {
        let mut refusal = None;
        if self.choice != MethodChoice::Kprobe {
            let raw = program::<RawTracePoint>(self.ebpf, &format!("raw_tracepoint_{}", hook.name))
                .and_then(|p| {
                    p.load().map_err(describe)?;
                    p.attach(name).map(drop).map_err(describe)
                });
            match raw {
                Ok(()) => {
                    return Attachment {
                        hook: hook.name,
                        attached: true,
                        symbol: Some(format!("{category}:{name}")),
                        method: Some(Method::RawTracepoint),
                        return_method: None,
                        reason: None,
                    };
                }
                Err(e) => refusal = Some(format!("raw-tracepoint: {e}")),
            }
        }
        let result = program::<TracePoint>(self.ebpf, &format!("tracepoint_{}", hook.name))
            .and_then(|p| {
                p.load().map_err(describe)?;
                p.attach(category, name).map(drop).map_err(describe)
            });
        let reason = match (&result, refusal) {
            (Ok(()), refusal) => refusal,
            (Err(e), Some(r)) => Some(format!("{r}; tracepoint: {e}")),
            (Err(e), None) => Some(e.clone()),
        };
        Attachment {
            hook: hook.name,
            attached: result.is_ok(),
            symbol: Some(format!("{category}:{name}")),
            method: result.is_ok().then_some(Method::Tracepoint),
            return_method: None,
            reason,
        }
    }

    fn attach_function(
        &mut self,
        hook: &'static Hook,
        candidates: &[&str],
        returns: Returns,
    ) -> Attachment {
        let Some((candidate, symbol)) = self.kallsyms.resolve_first(candidates) else {
            return Attachment {
                hook: hook.name,
                attached: false,
                symbol: None,
                method: None,
                return_method: None,
                reason: Some(format!(
                    "not in this kernel: none of {} is an out-of-line function in kallsyms (inlined, renamed or not built)",
                    candidates.join(", ")
                )),
            };
        };
        let symbol = symbol.clone();
        let stem = hook.program_stem(candidate);
        let mut notes = Vec::new();
        let (method, return_method) = if returns == Returns::Alone {
            self.return_alone(stem, &symbol, &mut notes)
        } else {
            let method = self.ladder(stem, &symbol, Side::Entry, &mut notes);
            let return_method = if returns == Returns::AfterEntry && method.is_some() {
                self.ladder(stem, &symbol, Side::Return, &mut notes)
            } else {
                None
            };
            (method, return_method)
        };
        let attached = match returns {
            Returns::No => method.is_some(),
            Returns::AfterEntry => method.is_some() && return_method.is_some(),
            Returns::Alone => return_method.is_some(),
        };
        Attachment {
            hook: hook.name,
            attached,
            symbol: Some(symbol.name.clone()),
            method,
            return_method,
            reason: (!notes.is_empty()).then(|| notes.join("; ")),
        }
    }

    /// A hook whose return program needs no entry ([`Returns::Alone`]): fexit alone, else a
    /// kprobe and a kretprobe (the entry carries the arguments the kretprobe lacks). Returns
    /// (entry method, return method).
    fn return_alone(
        &mut self,
        stem: &str,
        symbol: &Symbol,
        notes: &mut Vec<String>,
    ) -> (Option<Method>, Option<Method>) {
        if self.choice != MethodChoice::Kprobe {
            if !self.fentry_works {
                notes.push("fexit: unavailable on this kernel".to_owned());
            } else {
                match self.try_fentry(stem, symbol, Side::Return) {
                    Ok(()) => return (None, Some(Method::Fentry)),
                    Err(e) => notes.push(format!("fexit: {e}")),
                }
            }
        }
        if self.choice == MethodChoice::Fentry {
            return (None, None);
        }
        if !self.kprobe_works {
            notes.push("kprobe: unavailable on this kernel".to_owned());
            return (None, None);
        }
        let entry = self.try_kprobe(stem, symbol, Side::Entry);
        let ret = entry.and_then(|()| self.try_kprobe(stem, symbol, Side::Return));
        match ret {
            Ok(()) => (Some(Method::Kprobe), Some(Method::Kprobe)),
            Err(e) => {
                notes.push(format!("kprobe: {e}"));
                (None, None)
            }
        }
    }

    /// fentry/fexit first (cheaper, BTF-typed), then kprobe/kretprobe.
    fn ladder(
        &mut self,
        stem: &str,
        symbol: &Symbol,
        side: Side,
        notes: &mut Vec<String>,
    ) -> Option<Method> {
        if self.choice != MethodChoice::Kprobe && !self.fentry_works {
            notes.push(format!(
                "{}: unavailable on this kernel",
                side.fentry_kind()
            ));
        } else if self.choice != MethodChoice::Kprobe {
            match self.try_fentry(stem, symbol, side) {
                Ok(()) => return Some(Method::Fentry),
                Err(e) => notes.push(format!("{}: {e}", side.fentry_kind())),
            }
        }
        if self.choice != MethodChoice::Fentry && !self.kprobe_works {
            notes.push(format!(
                "{}: unavailable on this kernel",
                side.kprobe_kind()
            ));
        } else if self.choice != MethodChoice::Fentry {
            match self.try_kprobe(stem, symbol, side) {
                Ok(()) => return Some(Method::Kprobe),
                Err(e) => notes.push(format!("{}: {e}", side.kprobe_kind())),
            }
        }
        None
    }

    fn try_fentry(&mut self, stem: &str, symbol: &Symbol, side: Side) -> Result<(), String> {
        if symbol.module.is_some() {
            return Err("module functions are attached with kprobes".into());
        }
        if !self.kernel_btf.has_function(&symbol.name) {
            return Err(format!(
                "{} has no BTF FUNC (compiler clone or not described)",
                symbol.name
            ));
        }
        let btf = self.aya_btf.ok_or("kernel BTF unavailable to the loader")?;
        let name = format!("{}_{stem}", side.fentry_kind());
        match side {
            Side::Entry => {
                let p = program::<FEntry>(self.ebpf, &name)?;
                p.load(&symbol.name, btf).map_err(describe)?;
                p.attach().map(drop).map_err(describe)
            }
            Side::Return => {
                let p = program::<FExit>(self.ebpf, &name)?;
                p.load(&symbol.name, btf).map_err(describe)?;
                p.attach().map(drop).map_err(describe)
            }
        }
    }

    fn try_kprobe(&mut self, stem: &str, symbol: &Symbol, side: Side) -> Result<(), String> {
        if symbol.traceable == Some(false) {
            // Kprobes on Debian kernels refuse notrace functions (CONFIG_KPROBE_EVENTS_ON_NOTRACE unset).
            return Err(format!(
                "{} is notrace (not in available_filter_functions)",
                symbol.name
            ));
        }
        let p = program::<KProbe>(self.ebpf, &format!("{}_{stem}", side.kprobe_kind()))?;
        p.load().map_err(describe)?;
        p.attach(&symbol.name, 0).map(drop).map_err(describe)
    }
}

impl Side {
    fn fentry_kind(self) -> &'static str {
        match self {
            Side::Entry => "fentry",
            Side::Return => "fexit",
        }
    }

    fn kprobe_kind(self) -> &'static str {
        match self {
            Side::Entry => "kprobe",
            Side::Return => "kretprobe",
        }
    }
}

/// aya's program errors with their causes (aya's own text omits the errno), without the empty
/// "Verifier output:" tail that attach errors carry.
pub fn describe(e: aya::programs::ProgramError) -> String {
    let mut text = e
        .to_string()
        .trim_end()
        .trim_end_matches("Verifier output:")
        .trim_end_matches(['.', ' '])
        .to_owned();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// A typed handle on one program of the embedded object.
pub fn program<'e, P>(ebpf: &'e mut Ebpf, name: &str) -> Result<&'e mut P, String>
where
    &'e mut P: TryFrom<&'e mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let program = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the eBPF object (build mismatch)"))?;
    program.try_into().map_err(describe)
}
