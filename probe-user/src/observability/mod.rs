//! What pinwatch can observe in an open session: each hook's attachment and hits, each
//! hazard's status, and the verdict. Doctor reports it; every watching command (audit, events,
//! run) refuses to start when nothing can be observed.

mod behaviour;
pub mod verdict;

use serde::Serialize;

pub use behaviour::Behaviour;
pub use verdict::Verdict;

use crate::{
    attach::{Attachment, Method},
    counters::Counters,
    hazards::Hazard,
    kernel::{caps::Capabilities, flags::FollFlags, kallsyms::Kallsyms, layout::Layout},
    probes::{HOOKS, Need},
    session::{Methods, Session},
};

#[derive(Debug, Clone, Serialize)]
pub struct HookStatus {
    #[serde(flatten)]
    pub attachment: Attachment,
    pub feeds: Vec<Hazard>,
    /// Entry hits while watching (`None` without `--watch`/command).
    pub hits: Option<u64>,
    pub returns: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HazardStatus {
    pub id: Hazard,
    pub observable: bool,
    /// Hooks the hazard needs that exist on this kernel but did not attach, or do not exist.
    pub missing: Vec<&'static str>,
    pub kernel_behaviour: Behaviour,
}

/// Per-hook and per-hazard status of an open session, and the verdict.
pub struct Assessment {
    pub hooks: Vec<HookStatus>,
    pub hazards: Vec<HazardStatus>,
    pub verdict: Verdict,
}

/// Assesses an open session; `counters`, read after a watch, give the hooks' hits.
pub fn assess(session: &Session, counters: Option<&Counters>) -> Assessment {
    let hooks = hook_statuses(session.attachments.clone(), counters);
    let hazards = hazard_statuses(
        &hooks,
        &session.layout,
        &session.foll_flags,
        &session.kallsyms,
    );
    let verdict = verdict_of(&hooks, &hazards, &session.capabilities, &session.methods);
    Assessment {
        hooks,
        hazards,
        verdict,
    }
}

/// The hazards of an open session, or the unobservable verdict as the error: what every
/// watching command checks before it starts.
pub fn require_observable(session: &Session) -> Result<Vec<HazardStatus>, Verdict> {
    let assessment = assess(session, None);
    if let Verdict::Unobservable { .. } = assessment.verdict {
        return Err(assessment.verdict);
    }
    Ok(assessment.hazards)
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

/// The verdict on these statuses: nothing observable when no kernel function hook attached
/// (tracepoints alone see no hazard), else which hazards are hidden.
fn verdict_of(
    hooks: &[HookStatus],
    hazards: &[HazardStatus],
    caps: &Capabilities,
    methods: &Methods,
) -> Verdict {
    let function_hooked = hooks.iter().any(|h| {
        h.attachment.attached
            && !matches!(
                h.attachment.method_family(),
                Some(Method::Tracepoint | Method::RawTracepoint)
            )
    });
    if !function_hooked {
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
        return Verdict::Unobservable { why };
    }
    let blind: Vec<Hazard> = hazards
        .iter()
        .filter(|h| !h.observable)
        .map(|h| h.id)
        .collect();
    if blind.is_empty() {
        return Verdict::Observable;
    }
    let hint = caps
        .perf_events_refused()
        .filter(|_| !methods.kprobe.available);
    Verdict::Degraded { blind, hint }
}
