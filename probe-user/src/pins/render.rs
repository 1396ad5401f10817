//! `pinwatch pins` as text: one line per holding, the totals by pinner, and what could not be
//! read, with where each number comes from.

use std::fmt::Write as _;

use super::{Inventory, inventory::Holding};

/// The report as an operator reads it.
pub fn render(inv: &Inventory) -> String {
    let mut out = format!(
        "Pinned pages now, as /proc shows them (kernel {}, {} KiB pages; no eBPF: pins from before pinwatch included)\n\n",
        inv.kernel,
        inv.page_size / 1024
    );
    if inv.processes.is_empty() {
        out += "No process holds pins pinwatch can see.\n";
    } else {
        out += &processes(inv);
        out += "\nBy pinner:\n";
        for t in &inv.pinners {
            let bound = if t.exact { "" } else { " (at most: a charge)" };
            let _ = writeln!(
                out,
                "  {:<10} {:>10} pages{bound}  from {}, {} process(es)",
                t.pinner.id(),
                t.pages,
                t.source.id(),
                t.processes
            );
        }
    }
    out += &unreadable(inv);
    out += "\nWhat this cannot see:\n";
    for line in super::CANNOT_SEE {
        let _ = writeln!(out, "  - {line}");
    }
    out
}

fn processes(inv: &Inventory) -> String {
    let mut out = format!(
        "  {:>7}  {:<16} {:<20} {:<10} {:>9}  {:<7} {:<14}  note\n",
        "tgid", "comm", "started", "pinner", "pages", "source", "age (max)"
    );
    for p in &inv.processes {
        let started = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(p.started_at_unix.max(0.0)),
        );
        for h in &p.holdings {
            let _ = writeln!(
                out,
                "  {:>7}  {:<16} {:<20} {:<10} {:>9}  {:<7} {:<14}  {}",
                p.tgid,
                p.comm.escaped(),
                started.to_string(),
                h.pinner.id(),
                pages(h),
                h.source.id(),
                age(h),
                h.note
            );
        }
    }
    out
}

fn pages(h: &Holding) -> String {
    if h.exact {
        h.pages.to_string()
    } else {
        format!("<={}", h.pages)
    }
}

/// The kernel keeps no pin time: the process's age bounds it (if this process pinned).
fn age(h: &Holding) -> String {
    let text =
        humantime::format_duration(std::time::Duration::from_secs(h.age_at_most_seconds as u64))
            .to_string();
    format!("<={}", text.split(' ').take(2).collect::<String>())
}

fn unreadable(inv: &Inventory) -> String {
    let mut out = String::new();
    if inv.rings_busy > 0 {
        let _ = writeln!(
            out,
            "\nINCOMPLETE: {} io_uring ring(s) stayed busy: their buffers are not all listed.",
            inv.rings_busy
        );
    }
    if inv.unreadable.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\nINCOMPLETE: the fds of {} process(es) could not be read ({}): their io_uring and VFIO pins \
         are not listed (VmPin still is, as pinner unknown).",
        inv.unreadable.len(),
        inv.unreadable[0].reason
    );
    for u in inv.unreadable.iter().take(10) {
        let _ = writeln!(out, "  {:>7}  {}", u.tgid, u.comm.escaped());
    }
    if inv.unreadable.len() > 10 {
        let _ = writeln!(
            out,
            "  … and {} more (--json lists all)",
            inv.unreadable.len() - 10
        );
    }
    out
}
