//! The human-readable doctor report.

use std::fmt::Write as _;

use super::report::{Report, Watch};
use crate::{
    attach::Method,
    kernel::flags::FlagSource,
    observability::{HazardStatus, HookStatus},
};

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "pinwatch doctor — kernel {}\n", r.kernel.release);
    render_kernel(&mut out, r);
    render_hooks(&mut out, &r.hooks);
    render_hazards(&mut out, &r.hazards);
    if let Some(w) = &r.watch {
        render_watch(&mut out, w);
    }
    let _ = writeln!(out, "\n{}", r.verdict);
    out
}

/// What the kernel lets pinwatch do: privileges, BTF, attach methods, where FOLL_* came from.
fn render_kernel(out: &mut String, r: &Report) {
    let c = &r.capabilities;
    let _ = writeln!(out, "  root               {}", yes_no(c.root));
    if !c.root {
        let missing = c.missing();
        let _ = writeln!(
            out,
            "  capabilities       {}{}",
            if c.held.is_empty() {
                "none".to_owned()
            } else {
                c.held.join(", ")
            },
            if missing.is_empty() {
                String::new()
            } else {
                format!(" (missing: {})", missing.join(", "))
            }
        );
    }
    let _ = writeln!(out, "  BTF                {}", yes_no(c.btf));
    let _ = writeln!(
        out,
        "  lockdown           {}",
        c.lockdown
            .as_deref()
            .unwrap_or("unknown (securityfs not mounted)")
    );
    let _ = writeln!(out, "  kprobe PMU         {}", yes_no(c.kprobe_pmu));
    let _ = writeln!(
        out,
        "  fentry             {} — {}",
        yes_no(r.methods.fentry.available),
        r.methods.fentry.detail
    );
    let _ = writeln!(
        out,
        "  kprobe             {} — {}",
        yes_no(r.methods.kprobe.available),
        r.methods.kprobe.detail
    );
    let source = match r.foll_flags.source {
        FlagSource::Btf => "BTF enums",
        FlagSource::LegacyDefines => "pre-6.5 #define values (not in BTF)",
    };
    let _ = writeln!(out, "  FOLL_* flags       {source}\n");
}

/// Each hazard: whether it is observable here, and how this kernel behaves.
fn render_hazards(out: &mut String, hazards: &[HazardStatus]) {
    let _ = writeln!(
        out,
        "\n  {:<22} {:<11} {:<9} kernel behaviour",
        "hazard", "observable", "verdict"
    );
    for h in hazards {
        let _ = writeln!(
            out,
            "  {:<22} {:<11} {:<9} {}",
            h.id.id(),
            yes_no(h.observable),
            h.kernel_behaviour.verdict,
            h.kernel_behaviour.detail
        );
        if !h.missing.is_empty() {
            let _ = writeln!(out, "  {:<22} missing: {}", "", h.missing.join(", "));
        }
    }
}

/// What a watched command or time span cost.
fn render_watch(out: &mut String, w: &Watch) {
    let what = w
        .command
        .as_ref()
        .map_or_else(|| "(time span)".to_owned(), ToString::to_string);
    let status = w.exit_status.map_or("killed by a signal".to_owned(), |c| {
        format!("exit status {c}")
    });
    let _ = writeln!(out, "\n  watched {what} for {:.1}s, {status}", w.seconds);
    if let Some(why) = &w.program_costs_unavailable {
        let _ = writeln!(out, "  program cost: {why}");
    } else if !w.program_costs.is_empty() {
        let _ = writeln!(
            out,
            "\n  {:<40} {:>10} {:>10}   (kernel BPF statistics)",
            "program", "runs", "ns/run"
        );
        for c in &w.program_costs {
            let _ = writeln!(
                out,
                "  {:<40} {:>10} {:>10.0}",
                c.program, c.runs, c.ns_per_run
            );
        }
    }
}

fn render_hooks(out: &mut String, hooks: &[HookStatus]) {
    let _ = writeln!(
        out,
        "  {:<34} {:<8} {:<36} {:<14} {:>10}",
        "hook", "attached", "symbol", "method", "hits"
    );
    for h in hooks {
        let a = &h.attachment;
        let method = match (a.method, a.return_method) {
            (Some(m), Some(r)) => format!("{}+{}", m.name(), r.name()),
            (Some(m), None) => m.name().to_owned(),
            // The return program alone (`probes::Returns::Alone`).
            (None, Some(Method::Fentry)) => "fexit".to_owned(),
            (None, Some(r)) => format!("{} (return)", r.name()),
            (None, None) => "-".to_owned(),
        };
        let hits = h.hits.map_or("-".to_owned(), |n| n.to_string());
        let _ = writeln!(
            out,
            "  {:<34} {:<8} {:<36} {:<14} {:>10}",
            a.hook,
            yes_no(a.attached),
            a.symbol.as_deref().unwrap_or("-"),
            method,
            hits
        );
        if let (false, Some(reason)) = (a.attached, &a.reason) {
            let _ = writeln!(out, "  {:<34} ↳ {reason}", "");
        }
    }
    if hooks.iter().any(|h| h.hits.is_some()) {
        let _ = writeln!(
            out,
            "  (hits of do_wp_page, wp_page_copy, copy_page_range and the new-anon-rmap hooks \
             count only processes that ever pinned)"
        );
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}
