//! `pinwatch doctor`: what this kernel allows and what pinwatch can see on it. It tries every
//! attach for real, optionally watches a command or a time span, and reports per hook and per
//! hazard.

mod behaviour;
mod cost;
pub mod render;
pub mod report;

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use aya::Ebpf;

use crate::{
    attach::{self, Attachment, MethodChoice},
    counters::Counters,
    error::Error,
    exit,
    hazards::Hazard,
    kernel::{self, caps::Capabilities, flags::FollFlags, kallsyms::Kallsyms, layout::Layout},
    probes::{HOOKS, Need},
    session::{Methods, Session},
    text::UserText,
};
use report::{HazardStatus, HookStatus, KernelInfo, Report, Watch};

pub struct Options {
    pub btf_path: PathBuf,
    pub method: MethodChoice,
    pub watch: Option<Duration>,
    pub command: Vec<std::ffi::OsString>,
}

/// Runs the checks; returns the report and the exit code it implies.
pub fn run(opts: &Options) -> Result<(Report, u8), Error> {
    let session = Session::open(
        &opts.btf_path,
        opts.method,
        "doctor",
        crate::loader::Programs::default(),
    )?;
    let watched = watch(opts, &session.ebpf)?;
    let counters = watched.as_ref().map(|(_, c)| c);
    let (hooks, hazards, verdict, code) = assess(&session, counters);
    let Session {
        capabilities,
        methods,
        layout,
        foll_flags,
        ..
    } = session;
    let report = Report {
        kernel: KernelInfo {
            release: kernel::release(),
        },
        capabilities,
        methods,
        layout,
        foll_flags,
        hooks,
        hazards,
        watch: watched.map(|(w, _)| w),
        verdict,
    };
    Ok((report, code))
}

/// Per-hook and per-hazard status of an open session, the verdict, and its exit code.
pub fn assess(
    session: &Session,
    counters: Option<&Counters>,
) -> (Vec<HookStatus>, Vec<HazardStatus>, String, u8) {
    let hooks = hook_statuses(session.attachments.clone(), counters);
    let hazards = hazard_statuses(
        &hooks,
        &session.layout,
        &session.foll_flags,
        &session.kallsyms,
    );
    let (verdict, code) = verdict(&hooks, &hazards, &session.capabilities, &session.methods);
    (hooks, hazards, verdict, code)
}

/// The hazards of an open session, or the unobservable verdict as an error: what every
/// watching command (audit, events, run) checks before it starts.
pub fn require_observable(session: &Session) -> Result<Vec<HazardStatus>, Error> {
    let (_, hazards, verdict, code) = assess(session, None);
    if code == exit::UNOBSERVABLE {
        return Err(Error::Unobservable(verdict));
    }
    Ok(hazards)
}

/// Runs the command (or waits) with every hook attached, then reads the counters.
fn watch(opts: &Options, ebpf: &Ebpf) -> Result<Option<(Watch, Counters)>, Error> {
    if opts.command.is_empty() && opts.watch.is_none() {
        return Ok(None);
    }
    let stats = cost::enable();
    let start = Instant::now();
    let exit_status = match (&opts.command[..], opts.watch) {
        ([], None) => None,
        ([], Some(span)) => {
            std::thread::sleep(span);
            None
        }
        ([program, args @ ..], _) => {
            let status = Command::new(program)
                .args(args)
                .status()
                .map_err(|source| Error::Spawn {
                    command: UserText::command_line(&opts.command),
                    source,
                })?;
            status.code()
        }
    };
    let counters = Counters::read(ebpf)?;
    let watch = Watch {
        command: (!opts.command.is_empty()).then(|| UserText::command_line(&opts.command)),
        exit_status,
        seconds: start.elapsed().as_secs_f64(),
        filters: counters.filters.clone(),
        program_costs: stats
            .as_ref()
            .map_or_else(|_| Vec::new(), |_fd| cost::read(ebpf)),
        program_costs_unavailable: stats.err(),
    };
    Ok(Some((watch, counters)))
}

fn hook_statuses(attachments: Vec<Attachment>, counters: Option<&Counters>) -> Vec<HookStatus> {
    HOOKS
        .iter()
        .zip(attachments)
        .map(|(hook, attachment)| HookStatus {
            feeds: hook.feeds.iter().map(|(h, _)| *h).collect(),
            hits: counters.map(|c| c.hits(hook.id)),
            returns: counters.map(|c| c.returns(hook.id)),
            attachment,
        })
        .collect()
}

fn hazard_statuses(
    hooks: &[HookStatus],
    layout: &Layout,
    foll: &FollFlags,
    kallsyms: &Kallsyms,
) -> Vec<HazardStatus> {
    Hazard::ALL
        .iter()
        .map(|&hazard| {
            let mut missing: Vec<&'static str> = HOOKS
                .iter()
                .zip(hooks)
                .filter(|(hook, status)| {
                    let need = hook
                        .feeds
                        .iter()
                        .find(|(h, _)| *h == hazard)
                        .map(|(_, n)| *n);
                    let exists = status.attachment.symbol.is_some();
                    match need {
                        Some(Need::Core) => !status.attachment.attached,
                        Some(Need::WhereAvailable) => exists && !status.attachment.attached,
                        None => false,
                    }
                })
                .map(|(hook, _)| hook.name)
                .collect();
            missing.extend(layout.missing_for(hazard, foll));
            HazardStatus {
                id: hazard,
                observable: missing.is_empty(),
                missing,
                kernel_behaviour: behaviour::of(hazard, kallsyms),
            }
        })
        .collect()
}

fn verdict(
    hooks: &[HookStatus],
    hazards: &[HazardStatus],
    caps: &Capabilities,
    methods: &Methods,
) -> (String, u8) {
    if !hooks.iter().any(|h| {
        h.attachment.attached
            && !matches!(
                h.attachment.method,
                Some(attach::Method::Tracepoint | attach::Method::RawTracepoint)
            )
    }) {
        let mut why = Vec::new();
        if !methods.kprobe.available {
            why.push(format!(
                "kprobes are unavailable: {}",
                methods.kprobe.detail
            ));
        }
        if !methods.fentry.available {
            why.push(format!("fentry is refused: {}", methods.fentry.detail));
        }
        if caps.lockdown.as_deref() == Some("confidentiality") {
            why.push("lockdown=confidentiality forbids reading kernel memory from BPF".to_owned());
        }
        why.extend(caps.perf_events_refused());
        let text = format!(
            "NOTHING CAN BE OBSERVED on this kernel: no kernel function hook attached.\n  - {}\n\
             pinwatch needs a kernel with CONFIG_KPROBES=y or ftrace-based fentry (e.g. Debian's 6.1, 6.12, 7.2); \
             on this machine, use `cargo xtask vm` to run it inside real kernels under QEMU.",
            why.join("\n  - ")
        );
        return (text, exit::UNOBSERVABLE);
    }
    let blind: Vec<&str> = hazards
        .iter()
        .filter(|h| !h.observable)
        .map(|h| h.id.id())
        .collect();
    if blind.is_empty() {
        (
            "OK: every hazard is observable on this kernel.".to_owned(),
            exit::OK,
        )
    } else {
        let hint = match caps.perf_events_refused() {
            Some(why) if !methods.kprobe.available => format!("\n  - {why}"),
            _ => String::new(),
        };
        (
            format!(
                "DEGRADED: cannot observe {} (see the missing hooks above).{hint}",
                blind.join(", ")
            ),
            exit::DEGRADED,
        )
    }
}
