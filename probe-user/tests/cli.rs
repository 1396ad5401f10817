//! The errors a user can hit from the command line, each with its message and exit code.
//! These run on the development host, which (DESIGN.md) has BTF but no kprobes and refuses
//! fentry; the real-kernel behaviour is covered by `cargo xtask vm`.

use std::process::{Command, Output};

fn pinwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pinwatch"))
        .args(args)
        .output()
        .expect("run pinwatch")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_teaches_commands_examples_and_exit_codes() {
    let top = pinwatch(&["--help"]);
    assert_eq!(top.status.code(), Some(0));
    let text = String::from_utf8_lossy(&top.stdout);
    assert!(text.contains("doctor"), "{text}");
    assert!(
        text.contains("Exit status:") && text.contains("4  the kernel has no readable BTF"),
        "{text}"
    );

    let doctor = pinwatch(&["doctor", "--help"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        text.contains("Examples:") && text.contains("--method kprobe") && text.contains("--watch"),
        "{text}"
    );
}

#[test]
fn audit_help_teaches_its_forms_and_requires_a_scope() {
    let help = pinwatch(&["audit", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("--for 30s")
            && text.contains("-- qemu-system-x86_64")
            && text.contains("--json"),
        "{text}"
    );
    let bare = pinwatch(&["audit"]);
    assert_eq!(bare.status.code(), Some(2));
    assert!(
        stderr(&bare).contains("--for <DURATION>"),
        "{}",
        stderr(&bare)
    );
}

#[test]
fn audit_on_a_host_without_kprobes_explains_and_fails() {
    let kprobes = std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists();
    if !is_root() || kprobes {
        eprintln!("skipped: needs root on a kernel without kprobes");
        return;
    }
    let o = pinwatch(&["audit", "--for", "1s"]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("NOTHING CAN BE OBSERVED"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let o = pinwatch(&["doctor", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--no-such-flag"), "{}", stderr(&o));
}

#[test]
fn bad_duration_is_a_usage_error_with_examples() {
    let o = pinwatch(&["doctor", "--watch", "10"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("examples: 500ms, 10s, 2m"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn not_root_is_refused_with_a_hint() {
    // As root, drop to nobody with setpriv; as a normal user, we already are one.
    let o = if is_root() {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                env!("CARGO_BIN_EXE_pinwatch"),
                "doctor",
            ])
            .output()
            .expect("run setpriv (util-linux)")
    } else {
        pinwatch(&["doctor"])
    };
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("needs root") && stderr(&o).contains("sudo pinwatch doctor"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn missing_btf_is_its_own_error() {
    if !is_root() {
        eprintln!("skipped: the BTF check runs after the privilege check, which needs root");
        return;
    }
    let o = pinwatch(&["--btf", "/nonexistent/vmlinux", "doctor"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no kernel BTF at /nonexistent/vmlinux"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("CONFIG_DEBUG_INFO_BTF"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unreadable_btf_is_reported_as_a_btf_error() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let bogus = std::env::temp_dir().join(format!("pinwatch-bogus-btf-{}", std::process::id()));
    std::fs::write(&bogus, b"this is not BTF").unwrap();
    let o = pinwatch(&["--btf", bogus.to_str().unwrap(), "doctor"]);
    std::fs::remove_file(&bogus).ok();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot parse kernel BTF"),
        "{}",
        stderr(&o)
    );
}

/// This development host has no kprobes and refuses fentry (DESIGN.md): doctor must say so
/// plainly and exit 5. On a host where kprobes exist the test states why it does not apply.
#[test]
fn doctor_on_a_host_without_kprobes_explains_and_fails() {
    let kprobes = std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists();
    if !is_root() || kprobes {
        eprintln!(
            "skipped: needs root on a kernel without kprobes (kprobe PMU present: {kprobes})"
        );
        return;
    }
    let o = pinwatch(&["doctor"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(5), "{out}");
    assert!(out.contains("NOTHING CAN BE OBSERVED"), "{out}");
    assert!(out.contains("built without CONFIG_KPROBES"), "{out}");
    assert!(out.contains("fentry is refused"), "{out}");

    let json = pinwatch(&["doctor", "--json"]);
    assert_eq!(json.status.code(), Some(5));
    let report: serde_json::Value =
        serde_json::from_slice(&json.stdout).expect("doctor --json is one JSON object");
    assert_eq!(report["methods"]["kprobe"]["available"], false);
    assert_eq!(report["hooks"].as_array().map(Vec::len), Some(26));
    assert!(
        report["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["attached"] == false)
    );
    for hazard in [
        "longterm-file-pin",
        "pinned-folio-cleaned",
        "fork-with-pins",
        "pinned-cow",
        "early-pfn-untrack",
    ] {
        let h = report["hazards"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["id"] == hazard)
            .expect(hazard);
        assert_eq!(h["observable"], false, "{hazard}");
    }
}

#[test]
fn a_command_that_cannot_start_is_a_runtime_error() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let o = pinwatch(&["doctor", "--", "/nonexistent/program"]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot run `/nonexistent/program`"),
        "{}",
        stderr(&o)
    );
}
