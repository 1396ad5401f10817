//! The human-readable audit report.

use std::fmt::Write as _;

use super::Report;
use crate::{
    correlate::ProcessPins,
    events::PAGE_SHIFT,
    findings::{Cause, Finding},
};

/// The watched processes by long-term pinned pages, the first [`RANKED`] of them.
fn ranking(out: &mut String, processes: &[ProcessPins]) {
    if processes.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nProcesses by long-term pinned pages:");
    let _ = writeln!(
        out,
        "  {:>8}  {:>8}  {:>8}  command",
        "pinned", "held", "tgid"
    );
    for p in processes.iter().take(RANKED) {
        let _ = writeln!(
            out,
            "  {:>8}  {:>8}  {:>8}  {}",
            p.pinned_pages, p.held_pages, p.process.tgid, p.process.comm
        );
    }
    if processes.len() > RANKED {
        let _ = writeln!(
            out,
            "  … and {} more (--json lists all)",
            processes.len() - RANKED
        );
    }
}

/// One finding: what, who, where, why, and what to do.
fn finding(out: &mut String, n: usize, f: &Finding) {
    let _ = writeln!(out, "\n{n}. {} — {}", f.hazard, f.outcome.id());
    let pinner = match (f.pinner, &f.cause) {
        (Some(pinner), _) => format!(", pinner {pinner}"),
        (None, Cause::Untrack { .. }) => String::new(),
        (None, _) => ", pinner not seen (pinned before pinwatch was ready)".to_owned(),
    };
    let _ = writeln!(
        out,
        "   process  {} (tgid {}){pinner}",
        f.process.comm, f.process.tgid
    );
    match &f.mapping {
        // Anonymous memory (or a COW copy of it): no file to name.
        None => {
            let _ = writeln!(out, "   mapping  no file, {}", pages(f));
        }
        Some(m) => {
            let path = m.path.as_ref().map_or_else(
                || "(path no longer resolvable)".to_owned(),
                ToString::to_string,
            );
            let _ = writeln!(
                out,
                "   mapping  {path} on {} (dev {}, inode {}), {}",
                m.fs,
                m.dev,
                m.ino,
                pages(f)
            );
        }
    }
    let _ = writeln!(out, "   cause    {}", f.cause);
    let _ = writeln!(out, "   advice   {}", f.advice);
}

/// Processes listed in the text summary.
const RANKED: usize = 10;

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    // Names and paths are anyone's choice: they print escaped (`UserText`'s Display).
    let what = r
        .watched
        .command
        .as_ref()
        .map_or_else(|| "the whole system".to_owned(), ToString::to_string);
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
        finding(&mut out, i + 1, f);
    }
    ranking(&mut out, &r.processes);
    let c = &r.counts;
    let _ = writeln!(
        out,
        "\n{} event(s), {} long-term pin(s) ({} harmless), {} lost, {} undecodable",
        c.correlation.events,
        c.correlation.longterm_pins,
        c.correlation.harmless_pins,
        c.ringbuf_drops,
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

/// "16 page(s)", or with larger pages "1024 page(s) in 2 pages of 2 MiB".
fn pages(f: &Finding) -> String {
    match f.page_size {
        Some(size) if size > 1 << PAGE_SHIFT => {
            let count = (f.pages << PAGE_SHIFT) / size;
            let size = if size >= 1 << 30 {
                format!("{} GiB", size >> 30)
            } else if size >= 1 << 20 {
                format!("{} MiB", size >> 20)
            } else {
                format!("{} KiB", size >> 10)
            };
            format!("{} page(s) in {count} page(s) of {size}", f.pages)
        }
        _ => format!("{} page(s)", f.pages),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pinner::Pinner;
    use crate::{
        audit::{Counts, Watched},
        correlate::ProcessPins,
        findings::{Cgroup, Finding, Mapping, Outcome, Process, advice},
        hazards::Hazard,
        text::decode_json,
    };

    const COMM: &[u8] = b"\x1b[31mEVIL\nFAKE-";
    const PATH: &[u8] = b"/mnt/ext4/work/evil\n\x1b[2Jname\xff.dat";

    /// A process that named itself with an escape sequence and a newline, pinning a file whose
    /// name holds both and a byte that is not UTF-8.
    fn hostile_report() -> Report {
        let process = Process {
            tgid: 7,
            comm: COMM.into(),
            start_ns: 1,
            cgroup: Cgroup {
                id: 1,
                path: Some(b"/user.slice/\x1b]0;x\x07".as_slice().into()),
            },
        };
        let hazard = Hazard::LongtermFilePin;
        Report {
            schema: crate::findings::SCHEMA,
            kernel: "6.1.0".into(),
            watched: Watched {
                command: Some(b"/bin/w --comm \x1b[31mEVIL\nFAKE-LINE".as_slice().into()),
                pid: None,
                exit_status: Some(0),
                seconds: 1.0,
                interrupted: false,
            },
            findings: vec![Finding {
                hazard,
                outcome: Outcome::Refused,
                process: process.clone(),
                pinner: Some(Pinner::IoUring),
                cause: Cause::Pin {
                    gup_flags: "FOLL_WRITE|FOLL_LONGTERM".into(),
                    caller: None,
                },
                pages: 16,
                page_size: None,
                folios: None,
                mapping: Some(Mapping {
                    fs: "ext4",
                    dev: "1:0".into(),
                    ino: 12,
                    path: Some(PATH.into()),
                }),
                first_ns: 1,
                last_ns: 2,
                advice: advice(hazard, Outcome::Refused),
            }],
            processes: vec![ProcessPins {
                process,
                pinned_pages: 16,
                held_pages: 0,
            }],
            counts: Counts::default(),
            unobservable: vec![],
            fail_on: vec![],
        }
    }

    #[test]
    fn hostile_names_print_escaped_and_forge_no_line() {
        let text = render(&hostile_report());
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text}");
        assert!(
            text.contains(r"process  \e[31mEVIL\nFAKE- (tgid 7)"),
            "{text}"
        );
        assert!(
            text.contains(r"mapping  /mnt/ext4/work/evil\n\e[2Jname\xff.dat on ext4"),
            "{text}"
        );
        assert!(
            text.contains(r"watched /bin/w --comm \e[31mEVIL\nFAKE-LINE for"),
            "{text}"
        );
        assert!(text.contains(r"       16         0         7  \e[31mEVIL\nFAKE-"));
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with("FAKE")),
            "{text}"
        );
    }

    #[test]
    fn hostile_names_keep_their_bytes_in_json() {
        let json = serde_json::to_value(hostile_report()).unwrap();
        let finding = &json["findings"][0];
        let field = |v: &serde_json::Value| decode_json(v.as_str().unwrap());
        assert_eq!(finding["process"]["comm"], "\x1b[31mEVIL\nFAKE-");
        assert_eq!(field(&finding["process"]["comm"]), COMM);
        assert_eq!(field(&finding["mapping"]["path"]), PATH);
        // Not UTF-8: the byte as `\xff`, the newline and ESC as JSON escapes them.
        assert_eq!(
            finding["mapping"]["path"],
            "/mnt/ext4/work/evil\n\x1b[2Jname\\xff.dat"
        );
        assert_eq!(
            field(&finding["process"]["cgroup"]["path"]),
            b"/user.slice/\x1b]0;x\x07"
        );
    }

    #[test]
    fn pages_say_their_size_when_it_is_not_the_base_page() {
        let mut f = hostile_report().findings.remove(0);
        f.pages = 1024;
        assert_eq!(pages(&f), "1024 page(s)");
        f.page_size = Some(4096);
        assert_eq!(pages(&f), "1024 page(s)");
        f.page_size = Some(2 << 20);
        assert_eq!(pages(&f), "1024 page(s) in 2 page(s) of 2 MiB");
        f.pages = 262_144;
        f.page_size = Some(1 << 30);
        assert_eq!(pages(&f), "262144 page(s) in 1 page(s) of 1 GiB");
    }
}
