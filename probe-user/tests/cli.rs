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

fn has_kprobes() -> bool {
    std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists()
}

/// True when the test can run; otherwise says why it is skipped.
fn runs_if(condition: bool, why: &str) -> bool {
    if !condition {
        eprintln!("skipped: {why}");
    }
    condition
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The run exited with `code` and its stderr says every one of `phrases`.
fn fails_with(o: &Output, code: i32, phrases: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    for phrase in phrases {
        assert!(err.contains(phrase), "missing {phrase:?} in: {err}");
    }
}

#[test]
fn help_teaches_commands_examples_and_exit_codes() {
    let top = pinwatch(&["--help"]);
    assert_eq!(top.status.code(), Some(0));
    let text = stdout(&top);
    assert!(text.contains("doctor"), "{text}");
    assert!(
        text.contains("Exit status:") && text.contains("4  the kernel has no readable BTF"),
        "{text}"
    );

    let text = stdout(&pinwatch(&["doctor", "--help"]));
    assert!(
        text.contains("Examples:") && text.contains("--method kprobe") && text.contains("--watch"),
        "{text}"
    );
}

#[test]
fn audit_help_teaches_its_forms_and_requires_a_scope() {
    let text = stdout(&pinwatch(&["audit", "--help"]));
    assert!(
        text.contains("--for 30s")
            && text.contains("-- qemu-system-x86_64")
            && text.contains("--json"),
        "{text}"
    );
    fails_with(&pinwatch(&["audit"]), 2, &["--for <DURATION>"]);
}

#[test]
fn audit_on_a_host_without_kprobes_explains_and_fails() {
    if !runs_if(
        is_root() && !has_kprobes(),
        "needs root on a kernel without kprobes",
    ) {
        return;
    }
    fails_with(
        &pinwatch(&["audit", "--for", "1s"]),
        5,
        &["NOTHING CAN BE OBSERVED"],
    );
}

#[test]
fn unknown_flag_is_a_usage_error() {
    fails_with(
        &pinwatch(&["doctor", "--no-such-flag"]),
        2,
        &["--no-such-flag"],
    );
}

#[test]
fn bad_duration_is_a_usage_error_with_examples() {
    fails_with(
        &pinwatch(&["doctor", "--watch", "10"]),
        2,
        &["examples: 500ms, 10s, 2m"],
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
    fails_with(&o, 3, &["needs root", "sudo pinwatch doctor"]);
}

#[test]
fn missing_btf_is_its_own_error() {
    if !runs_if(
        is_root(),
        "the BTF check runs after the privilege check, which needs root",
    ) {
        return;
    }
    let o = pinwatch(&["--btf", "/nonexistent/vmlinux", "doctor"]);
    fails_with(
        &o,
        4,
        &[
            "no kernel BTF at /nonexistent/vmlinux",
            "CONFIG_DEBUG_INFO_BTF",
        ],
    );
}

#[test]
fn unreadable_btf_is_reported_as_a_btf_error() {
    if !runs_if(is_root(), "needs root") {
        return;
    }
    let bogus = std::env::temp_dir().join(format!("pinwatch-bogus-btf-{}", std::process::id()));
    std::fs::write(&bogus, b"this is not BTF").unwrap();
    let o = pinwatch(&["--btf", bogus.to_str().unwrap(), "doctor"]);
    std::fs::remove_file(&bogus).ok();
    fails_with(&o, 4, &["cannot parse kernel BTF"]);
}

/// This development host has no kprobes and refuses fentry (DESIGN.md): doctor must say so
/// plainly and exit 5. On a host where kprobes exist the test states why it does not apply.
#[test]
fn doctor_on_a_host_without_kprobes_explains_and_fails() {
    if !runs_if(
        is_root() && !has_kprobes(),
        "needs root on a kernel without kprobes",
    ) {
        return;
    }
    let o = pinwatch(&["doctor"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(5), "{out}");
    for phrase in [
        "NOTHING CAN BE OBSERVED",
        "built without CONFIG_KPROBES",
        "fentry is refused",
    ] {
        assert!(out.contains(phrase), "missing {phrase:?} in: {out}");
    }

    let json = pinwatch(&["doctor", "--json"]);
    assert_eq!(json.status.code(), Some(5));
    let report: serde_json::Value =
        serde_json::from_slice(&json.stdout).expect("doctor --json is one JSON object");
    assert_eq!(report["methods"]["kprobe"]["available"], false);
    let hooks = report["hooks"].as_array().expect("hooks");
    assert_eq!(hooks.len(), 26);
    assert!(hooks.iter().all(|h| h["attached"] == false));
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
    if !runs_if(is_root(), "needs root") {
        return;
    }
    fails_with(
        &pinwatch(&["doctor", "--", "/nonexistent/program"]),
        7,
        &["cannot run `/nonexistent/program`"],
    );
}
