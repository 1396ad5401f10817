//! The hostile-names pass (xtask/guest/init.sh): the io_uring workload names itself with an
//! escape sequence and a newline, and pins an ext4 MAP_SHARED file whose name holds a newline,
//! a screen-clearing escape and a byte that is not UTF-8. `pinwatch audit` must show both
//! escaped and forge no report line; `audit --json` must keep every byte (README, "Names are
//! anyone's choice").

use serde_json::Value;

use super::pass;
use crate::expect::Kernel;

/// What the guest passes to `--comm`; the kernel keeps its first 15 bytes as the comm.
const COMM_ARG: &[u8] = b"\x1b[31mEVIL\nFAKE-LINE";
const COMM: &[u8] = b"\x1b[31mEVIL\nFAKE-";
const PATH: &[u8] = b"/mnt/ext4/work/evil\n\x1b[2Jname\xff.dat";
/// The same as the human report must show them.
const COMM_SHOWN: &str = r"\e[31mEVIL\nFAKE-";
const PATH_SHOWN: &str = r"/mnt/ext4/work/evil\n\e[2Jname\xff.dat";

pub fn check(kernel: &Kernel, output: &str, fails: &mut Vec<String>) {
    let k = kernel.name;
    let report: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("PINWATCH-HOSTILE "))
        .collect();
    for f in report_problems(&report) {
        fails.push(format!("{k} hostile names, human report: {f}"));
    }
    let json = output
        .lines()
        .find_map(|l| l.strip_prefix("PINWATCH-RESULT audit-hostile "))
        .map(|r| pass("audit-hostile", r));
    match json {
        Some(Ok(p)) => {
            for f in json_problems(kernel, p.exit_code, &p.report) {
                fails.push(format!("{k} hostile names, --json: {f}"));
            }
        }
        other => fails.push(format!(
            "{k} hostile names: no JSON report ({:?})",
            other.map(|r| r.err())
        )),
    }
}

/// No raw control, bidi or undecodable character anywhere; the comm and the path escaped on
/// the finding's lines; no line starting with the text after the comm's newline.
fn report_problems(lines: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    if lines.is_empty() {
        problems.push("no report lines".to_owned());
    }
    let raw = |c: char| {
        c.is_control()
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{fffd}')
    };
    for line in lines.iter().filter(|l| l.chars().any(raw)) {
        problems.push(format!("raw control character or byte in {line:?}"));
    }
    for line in lines.iter().filter(|l| l.trim_start().starts_with("FAKE")) {
        problems.push(format!("forged line {line:?}"));
    }
    for shown in [
        format!("process  {COMM_SHOWN} (tgid "),
        format!("mapping  {PATH_SHOWN} on ext4 "),
    ] {
        if !lines.iter().any(|l| l.contains(&shown)) {
            problems.push(format!("no line shows {shown:?}"));
        }
    }
    problems
}

/// Exactly the io_uring file pin this kernel's table expects, with the exact comm (as the
/// kernel truncated it), path and command line.
fn json_problems(kernel: &Kernel, code: i64, report: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(&(hazard, outcome, pinner, fs, pages)) = kernel
        .findings
        .iter()
        .find(|f| f.0 == "longterm-file-pin" && f.2 == "io_uring")
    else {
        return vec!["expect.rs has no io_uring file pin for this kernel".to_owned()];
    };
    if code != 1 {
        problems.push(format!("exited {code} (expected 1)"));
    }
    let findings = report["findings"].as_array().map_or(&[][..], Vec::as_slice);
    let [f] = findings else {
        problems.push(format!("findings {findings:?} (expected one)"));
        return problems;
    };
    let got = (
        &f["hazard"],
        &f["outcome"],
        &f["pinner"],
        &f["mapping"]["fs"],
        &f["pages"],
    );
    if got
        != (
            &hazard.into(),
            &outcome.into(),
            &pinner.into(),
            &fs.into(),
            &pages.into(),
        )
    {
        problems.push(format!(
            "finding {got:?} (expected {hazard} {outcome} {pinner} {fs} {pages})"
        ));
    }
    let command = [
        b"/bin/pinwatch-workload iouring --comm ".as_slice(),
        COMM_ARG,
        b" --file ",
        PATH,
    ]
    .concat();
    for (what, value, want) in [
        ("process.comm", &f["process"]["comm"], COMM),
        ("mapping.path", &f["mapping"]["path"], PATH),
        ("watched.command", &report["watched"]["command"], &command),
    ] {
        let got = value.as_str().map(decode);
        if got.as_deref() != Some(want) {
            problems.push(format!(
                "{what} {value} decodes to {:?} (expected {:?})",
                got.map(|b| String::from_utf8_lossy(&b).into_owned()),
                String::from_utf8_lossy(want)
            ));
        }
    }
    problems
}

/// The bytes of a name in pinwatch's JSON (README, "Names are anyone's choice"): the string
/// itself, unless it holds `\x` and two hex digits from 80 to ff; then `\\` stands for a
/// backslash and `\xNN` for the byte NN.
fn decode(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let byte_escape = |i: usize| -> Option<u8> {
        let hex = b.get(i + 2..i + 4)?;
        let ok = b[i..].starts_with(b"\\x") && hex.iter().all(u8::is_ascii_hexdigit);
        u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16)
            .ok()
            .filter(|&v| ok && v >= 0x80)
    };
    if !(0..b.len()).any(|i| byte_escape(i).is_some()) {
        return b.to_vec();
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"\\\\") {
            out.push(b'\\');
            i += 2;
        } else if let Some(v) = byte_escape(i) {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expect;

    /// The guest output of a correct pinwatch on `kernel`, as init.sh writes it, with one
    /// replacement in the human report and one in the JSON.
    fn output(kernel: &str, human_edit: (&str, &str), json_edit: (&str, &str)) -> String {
        let outcome = if kernel == "6.1" {
            ("released-by-caller", "released-by-caller")
        } else {
            ("refused", "refused")
        };
        let json = serde_json::json!({
            "watched": {"command": "/bin/pinwatch-workload iouring --comm \u{1b}[31mEVIL\nFAKE-LINE \
                                    --file /mnt/ext4/work/evil\n\u{1b}[2Jname\\xff.dat"},
            "findings": [{
                "hazard": "longterm-file-pin", "outcome": outcome.0, "pinner": "io_uring",
                "pages": 16,
                "process": {"tgid": 9, "comm": "\u{1b}[31mEVIL\nFAKE-"},
                "mapping": {"fs": "ext4", "path": "/mnt/ext4/work/evil\n\u{1b}[2Jname\\xff.dat"},
            }],
        });
        let human = format!(
            r"pinwatch audit — kernel {kernel}, watched /bin/pinwatch-workload iouring --comm \e[31mEVIL\nFAKE-LINE --file {PATH_SHOWN} for 1.0s
workload iouring: refused errno=14 (EFAULT)

1. longterm-file-pin — {}
   process  {COMM_SHOWN} (tgid 9), pinner io_uring
   mapping  {PATH_SHOWN} on ext4 (dev 1:0, inode 12), 16 page(s)
",
            outcome.1
        );
        // As the guest's `sed 's/^/PINWATCH-HOSTILE /'`: every line, forged ones included.
        let mut out: String = human
            .replacen(human_edit.0, human_edit.1, 1)
            .lines()
            .map(|l| format!("PINWATCH-HOSTILE {l}\n"))
            .collect();
        let json = json.to_string().replacen(json_edit.0, json_edit.1, 1);
        out.push_str(&format!("PINWATCH-RESULT audit-hostile 1 {json}\n"));
        out
    }

    fn fails(kernel: &str, output: &str) -> Vec<String> {
        let mut fails = Vec::new();
        check(expect::kernel(kernel).unwrap(), output, &mut fails);
        fails
    }

    const SAME: (&str, &str) = ("", "");

    #[test]
    fn an_escaped_report_and_an_exact_json_pass_on_every_kernel() {
        for k in expect::KERNELS {
            let out = output(k.name, SAME, SAME);
            assert_eq!(fails(k.name, &out), Vec::<String>::new(), "{}", k.name);
        }
    }

    #[test]
    fn raw_names_and_forged_lines_fail() {
        // The comm printed as it is: a raw ESC, and a forged line after its newline.
        let human = (
            r"process  \e[31mEVIL\nFAKE- (tgid 9)",
            "process  \u{1b}[31mEVIL\nFAKE- (tgid 9)",
        );
        let printed = fails("6.12", &output("6.12", human, SAME));
        for want in ["raw control", "forged line", "no line shows"] {
            assert!(printed.iter().any(|f| f.contains(want)), "{printed:?}");
        }
        // The path's byte that is not UTF-8 printed raw (the host reads it as U+FFFD).
        let lossy = output("6.12", (r"name\xff.dat on", "name\u{fffd}.dat on"), SAME);
        assert!(
            fails("6.12", &lossy)
                .iter()
                .any(|f| f.contains("raw control"))
        );
        assert!(!fails("6.12", "").is_empty());
    }

    #[test]
    fn json_that_lost_a_byte_or_the_truncation_or_the_outcome_fails() {
        for edit in [
            (r#"name\\xff.dat"}"#, "name\u{fffd}.dat\"}"),
            (r#"FAKE-","#, r#"FAKE-LINE","#),
            (r#""refused""#, r#""granted""#),
            ("\"pages\":16", "\"pages\":32"),
        ] {
            let out = output("6.12", SAME, edit);
            assert_ne!(fails("6.12", &out), Vec::<String>::new(), "{edit:?}");
        }
    }

    #[test]
    fn names_decode_as_the_readme_says() {
        assert_eq!(decode("plain"), b"plain");
        assert_eq!(decode(r"a\x2db"), br"a\x2db", "a systemd escape stays text");
        assert_eq!(decode(r"a\xffb\\c"), b"a\xffb\\c");
        assert_eq!(decode(r"lit\\xff"), br"lit\xff");
    }
}
