//! The attach ladder: for each hook, the first candidate symbol the kernel has, attached with
//! fentry/fexit where the kernel allows it, else kprobe/kretprobe. Every attempt is recorded so
//! doctor can say exactly why a hook is missing.

use aya::{
    Btf, Ebpf,
    programs::{FEntry, FExit, KProbe, RawTracePoint, TracePoint},
};
use serde::Serialize;

mod error;

pub use error::{AttachError, Refusal};

use crate::{
    kernel::{
        btf::KernelBtf,
        kallsyms::{Kallsyms, Symbol},
    },
    probes::{AttachPoint, Hook, Returns},
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
            AttachPoint::Tracepoint { category, name } => {
                self.attach_tracepoint(hook, category, name)
            }
            AttachPoint::Function {
                candidates,
                returns,
            } => self.attach_function(hook, candidates, returns),
        }
    }

    /// Raw tracepoint first (a BPF link: no perf event, so no perf_event_paranoid limit), then
    /// the perf tracepoint. `--method kprobe` keeps to perf-event attachment throughout.
    fn attach_tracepoint(&mut self, hook: &'static Hook, category: &str, name: &str) -> Attachment {
        let mut refusals = Vec::new();
        if self.choice != MethodChoice::Kprobe {
            let raw = program::<RawTracePoint>(self.ebpf, &format!("raw_tracepoint_{}", hook.name))
                .and_then(|p| {
                    p.load()?;
                    Ok(p.attach(name).map(drop)?)
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
                Err(error) => refusals.push(Refusal {
                    kind: "raw-tracepoint",
                    error,
                }),
            }
        }
        let result = program::<TracePoint>(self.ebpf, &format!("tracepoint_{}", hook.name))
            .and_then(|p| {
                p.load()?;
                Ok(p.attach(category, name).map(drop)?)
            });
        let attached = result.is_ok();
        if let Err(error) = result {
            refusals.push(Refusal {
                kind: "tracepoint",
                error,
            });
        }
        Attachment {
            hook: hook.name,
            attached,
            symbol: Some(format!("{category}:{name}")),
            method: attached.then_some(Method::Tracepoint),
            return_method: None,
            reason: reason(&refusals),
        }
    }

    fn attach_function(
        &mut self,
        hook: &'static Hook,
        candidates: &'static [&'static str],
        returns: Returns,
    ) -> Attachment {
        let Some((candidate, symbol)) = self.kallsyms.resolve_first(candidates) else {
            return Attachment {
                hook: hook.name,
                attached: false,
                symbol: None,
                method: None,
                return_method: None,
                reason: Some(AttachError::NotInKallsyms { candidates }.to_string()),
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
            reason: reason(&notes),
        }
    }

    /// A hook whose return program needs no entry ([`Returns::Alone`]): fexit alone, else a
    /// kprobe and a kretprobe (the entry carries the arguments the kretprobe lacks). Returns
    /// (entry method, return method).
    fn return_alone(
        &mut self,
        stem: &str,
        symbol: &Symbol,
        notes: &mut Vec<Refusal>,
    ) -> (Option<Method>, Option<Method>) {
        if self.choice != MethodChoice::Kprobe
            && self.rung(Method::Fentry, stem, symbol, Side::Return, notes)
        {
            return (None, Some(Method::Fentry));
        }
        if self.choice != MethodChoice::Fentry
            && self.rung(Method::Kprobe, stem, symbol, Side::Entry, notes)
            && self.rung(Method::Kprobe, stem, symbol, Side::Return, notes)
        {
            return (Some(Method::Kprobe), Some(Method::Kprobe));
        }
        (None, None)
    }

    /// fentry/fexit first (cheaper, BTF-typed), then kprobe/kretprobe.
    fn ladder(
        &mut self,
        stem: &str,
        symbol: &Symbol,
        side: Side,
        notes: &mut Vec<Refusal>,
    ) -> Option<Method> {
        if self.choice != MethodChoice::Kprobe
            && self.rung(Method::Fentry, stem, symbol, side, notes)
        {
            return Some(Method::Fentry);
        }
        if self.choice != MethodChoice::Fentry
            && self.rung(Method::Kprobe, stem, symbol, side, notes)
        {
            return Some(Method::Kprobe);
        }
        None
    }

    /// One rung of the ladder: `method`'s program for `side` (fentry or fexit, kprobe or
    /// kretprobe), unless the method failed its trial. A failure is noted; true on success.
    fn rung(
        &mut self,
        method: Method,
        stem: &str,
        symbol: &Symbol,
        side: Side,
        notes: &mut Vec<Refusal>,
    ) -> bool {
        let (works, kind) = if method == Method::Fentry {
            (self.fentry_works, side.fentry_kind())
        } else {
            (self.kprobe_works, side.kprobe_kind())
        };
        let result = match (works, method) {
            (false, _) => Err(AttachError::MethodUnavailable),
            (true, Method::Fentry) => self.try_fentry(stem, symbol, side),
            (true, _) => self.try_kprobe(stem, symbol, side),
        };
        match result {
            Ok(()) => true,
            Err(error) => {
                notes.push(Refusal { kind, error });
                false
            }
        }
    }

    fn try_fentry(&mut self, stem: &str, symbol: &Symbol, side: Side) -> Result<(), AttachError> {
        if symbol.module.is_some() {
            return Err(AttachError::ModuleFunction);
        }
        if !self.kernel_btf.has_function(&symbol.name) {
            return Err(AttachError::NoBtfFunction {
                symbol: symbol.name.clone(),
            });
        }
        let btf = self.aya_btf.ok_or(AttachError::NoKernelBtf)?;
        let name = format!("{}_{stem}", side.fentry_kind());
        match side {
            Side::Entry => {
                let p = program::<FEntry>(self.ebpf, &name)?;
                p.load(&symbol.name, btf)?;
                Ok(p.attach().map(drop)?)
            }
            Side::Return => {
                let p = program::<FExit>(self.ebpf, &name)?;
                p.load(&symbol.name, btf)?;
                Ok(p.attach().map(drop)?)
            }
        }
    }

    fn try_kprobe(&mut self, stem: &str, symbol: &Symbol, side: Side) -> Result<(), AttachError> {
        if symbol.traceable == Some(false) {
            return Err(AttachError::Notrace {
                symbol: symbol.name.clone(),
            });
        }
        let p = program::<KProbe>(self.ebpf, &format!("{}_{stem}", side.kprobe_kind()))?;
        p.load()?;
        Ok(p.attach(&symbol.name, 0).map(drop)?)
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

/// What doctor says of a hook's failed attempts, in order (`None` when there were none).
fn reason(refusals: &[Refusal]) -> Option<String> {
    (!refusals.is_empty()).then(|| {
        refusals
            .iter()
            .map(Refusal::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// A typed handle on one program of the embedded object.
pub fn program<'e, P>(ebpf: &'e mut Ebpf, name: &str) -> Result<&'e mut P, AttachError>
where
    &'e mut P: TryFrom<&'e mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let program = ebpf
        .program_mut(name)
        .ok_or_else(|| AttachError::ProgramMissing {
            name: name.to_owned(),
        })?;
    Ok(program.try_into()?)
}
