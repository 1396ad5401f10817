//! The human-readable audit report.

use std::fmt::Write as _;

use super::Report;

/// Processes listed in the text summary.
const RANKED: usize = 10;

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let what = r.watched.command.as_deref().unwrap_or("the whole system");
    let _ = writeln!(
        out,
        "pinwatch audit — kernel {}, watched {what} for {:.1}s",
        r.kernel, r.watched.seconds
    );
    if r.watched.interrupted {
        let _ = writeln!(out, "(interrupted)");
    }
    if r.findings.is_empty() {
        let _ = writeln!(out, "\nNo findings.");
    }
    for (i, f) in r.findings.iter().enumerate() {
        let _ = writeln!(out, "\n{}. {} — {:?}", i + 1, f.hazard, f.outcome);
        let _ = writeln!(
            out,
            "   process  {} (tgid {}), pinner {}",
            f.process.comm, f.process.tgid, f.pinner
        );
        let path = f
            .mapping
            .path
            .as_deref()
            .unwrap_or("(path no longer resolvable)");
        let _ = writeln!(
            out,
            "   mapping  {} on {} (dev {}, inode {}), {} page(s)",
            path, f.mapping.fs, f.mapping.dev, f.mapping.ino, f.pages
        );
        if !f.gup_flags.is_empty() {
            let _ = writeln!(out, "   flags    {}", f.gup_flags);
        }
        let _ = writeln!(out, "   advice   {}", f.advice);
    }
    if !r.processes.is_empty() {
        let _ = writeln!(out, "\nProcesses by long-term pinned pages:");
        let _ = writeln!(
            out,
            "  {:>8}  {:>8}  {:>8}  command",
            "pinned", "held", "tgid"
        );
        for p in r.processes.iter().take(RANKED) {
            let _ = writeln!(
                out,
                "  {:>8}  {:>8}  {:>8}  {}",
                p.pinned_pages, p.held_pages, p.process.tgid, p.process.comm
            );
        }
        if r.processes.len() > RANKED {
            let _ = writeln!(
                out,
                "  … and {} more (--json lists all)",
                r.processes.len() - RANKED
            );
        }
    }
    let c = &r.counts;
    let _ = writeln!(
        out,
        "\n{} event(s), {} long-term pin(s) ({} harmless), {} lost, {} undecodable",
        c.correlation.events,
        c.correlation.longterm_pins,
        c.correlation.harmless_pins,
        c.events_lost,
        c.decode_errors
    );
    if !r.unobservable.is_empty() {
        let ids: Vec<&str> = r.unobservable.iter().map(|h| h.id()).collect();
        let _ = writeln!(out, "not observable on this kernel: {}", ids.join(", "));
    }
    if !r.fail_on.is_empty() {
        let ids: Vec<&str> = r.fail_on.iter().map(|h| h.id()).collect();
        let failing = r.failing().count();
        let _ = writeln!(
            out,
            "--fail-on {}: {failing} finding(s) fail the audit",
            ids.join(",")
        );
    }
    out
}
