//! The errors a user can hit from the command line, each with its message and exit code.
//! Some only apply on a host like the development machines, which have BTF but no kprobes and
//! refuse fentry (README, "The two commands"); the real-kernel behaviour is covered by
//! `cargo xtask vm`.

use std::process::{Command, Output};

/// Runs pinwatch; a run that does not end within a minute is killed and fails the test (a
/// daemon that should have refused to start must not hang the suite).
fn pinwatch(args: &[&str]) -> Output {
    use std::{
        process::Stdio,
        time::{Duration, Instant},
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_pinwatch"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pinwatch");
    let start = Instant::now();
    while child.try_wait().expect("wait for pinwatch").is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("pinwatch {args:?} still running after 60s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect pinwatch output")
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
        text.contains("Exit status:") && text.contains("4  no readable kernel BTF"),
        "{text}"
    );

    let text = stdout(&pinwatch(&["doctor", "--help"]));
    assert!(
        text.contains("Examples:") && text.contains("--method kprobe") && text.contains("--watch"),
        "{text}"
    );
}

/// The rows of the README's "Exit status" table: `| code | meaning |` lines after the heading.
fn readme_exit_table() -> Vec<(u8, String)> {
    let readme = include_str!("../../README.md");
    let table = readme
        .split_once("Exit status:")
        .expect("README has an \"Exit status:\" table")
        .1;
    table
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with('|'))
        .skip(2) // the header and its |---| line
        .map(|l| {
            let cells = l.trim().trim_start_matches('|').trim_end_matches('|');
            let (code, meaning) = cells.split_once('|').expect("two cells");
            let code = code
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("code in {l}"));
            (code, meaning.trim().to_owned())
        })
        .collect()
}

/// The README, `--help` and the exit codes the binary returns all come from `exit::TABLE`: an
/// edit to one side only fails here.
#[test]
fn readme_and_help_exit_status_tables_match_the_code() {
    use probe_user::exit::{TABLE, help_line};
    let readme = readme_exit_table();
    for (i, row) in TABLE.iter().enumerate() {
        let documented = readme.get(i).map(|(c, m)| (*c, m.as_str()));
        assert_eq!(
            documented,
            Some((row.code, row.meaning)),
            "README's exit-status row {i} differs from probe-user/src/exit.rs"
        );
    }
    assert_eq!(
        readme.len(),
        TABLE.len(),
        "README has extra rows: {readme:?}"
    );

    let help = stdout(&pinwatch(&["--help"]));
    for row in TABLE {
        assert!(
            help.contains(&help_line(row)),
            "--help lacks row {row:?}: {help}"
        );
    }
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

/// The development hosts have no kprobes and refuse fentry (README, "The two commands"): doctor
/// must say so plainly and exit 5. On a host where kprobes exist the test states why it does not
/// apply.
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
    assert_eq!(hooks.len(), 31);
    // Tracepoints may attach (raw ones need neither kprobes nor ftrace); no function hook can.
    let function_hooks = hooks
        .iter()
        .filter(|h| !h["symbol"].as_str().is_some_and(|s| s.contains(':')));
    for h in function_hooks {
        assert_eq!(h["attached"], false, "{h}");
    }
    for hazard in [
        "longterm-file-pin",
        "pinned-folio-cleaned",
        "fork-with-pins",
        "pinned-cow",
        "early-pfn-untrack",
        "pinned-page-discarded",
        "guest-memfd-pin",
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

#[test]
fn every_subcommand_help_has_examples() {
    for command in ["doctor", "audit", "run", "events", "metrics"] {
        let o = pinwatch(&[command, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{command}");
        let text = stdout(&o);
        assert!(
            text.contains("Examples:") && text.contains(&format!("pinwatch {command}")),
            "{command} --help: {text}"
        );
    }
    let top = stdout(&pinwatch(&["--help"]));
    for command in ["doctor", "audit", "run", "events", "metrics"] {
        assert!(top.contains(command), "{top}");
    }
}

#[test]
fn a_busy_metrics_port_is_refused_before_anything_is_loaded() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    fails_with(
        &pinwatch(&["run", "--listen", &addr]),
        8,
        &["cannot serve metrics on", &addr, "--listen"],
    );
}

#[test]
fn a_listen_address_needs_an_interface() {
    fails_with(
        &pinwatch(&["run", "--listen", "9469"]),
        2,
        &["invalid socket address"],
    );
}

#[test]
fn an_unwritable_findings_log_is_its_own_error() {
    fails_with(
        &pinwatch(&[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--findings-log",
            "/nonexistent/findings.jsonl",
        ]),
        9,
        &["cannot open the findings log /nonexistent/findings.jsonl"],
    );
}

#[test]
fn the_daemon_on_a_host_without_kprobes_explains_and_fails() {
    if !runs_if(
        is_root() && !has_kprobes(),
        "needs root on a kernel without kprobes",
    ) {
        return;
    }
    fails_with(
        &pinwatch(&["run", "--listen", "127.0.0.1:0"]),
        5,
        &["NOTHING CAN BE OBSERVED"],
    );
}

#[test]
fn audit_of_a_pid_that_does_not_exist_is_a_usage_error() {
    fails_with(
        &pinwatch(&["audit", "--pid", "999999999"]),
        2,
        &["no running process has pid 999999999"],
    );
    fails_with(
        &pinwatch(&["audit", "--pid", "1", "--", "true"]),
        2,
        &["cannot be used with"],
    );
}

#[test]
fn unknown_hazards_and_hooks_list_the_known_ones() {
    fails_with(
        &pinwatch(&[
            "audit",
            "--for",
            "1s",
            "--fail-on",
            "longterm-file-pin,nope",
        ]),
        2,
        &["nope", "pinned-folio-cleaned"],
    );
    fails_with(
        &pinwatch(&["events", "--hook", "nope"]),
        2,
        &["unknown hook", "folio_mkclean"],
    );
}

#[test]
fn metrics_lists_the_catalog_with_prometheus_names() {
    let o = pinwatch(&["metrics", "--names"]);
    assert_eq!(o.status.code(), Some(0));
    let names: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    assert!(names.len() >= 20, "{names:?}");
    let described = stdout(&pinwatch(&["metrics"]));
    for name in &names {
        assert!(name.starts_with("pinwatch_"), "{name}");
        let counter = name.ends_with("_total");
        let line = described
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} not described"));
        assert_eq!(counter, line.contains("(counter)"), "{line}");
    }
}

/// The systemd unit is valid as systemd reads it (with the built binary in ExecStart).
#[test]
fn the_systemd_unit_verifies() {
    if !runs_if(
        std::path::Path::new("/usr/bin/systemd-analyze").exists(),
        "needs systemd-analyze",
    ) {
        return;
    }
    let unit = include_str!("../../packaging/pinwatch.service")
        .replace("/usr/local/bin/pinwatch", env!("CARGO_BIN_EXE_pinwatch"));
    let dir = std::env::temp_dir().join(format!("pinwatch-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pinwatch.service");
    std::fs::write(&path, unit).unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    std::fs::remove_dir_all(&dir).ok();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).trim().is_empty(), "warnings: {}", stderr(&o));
}

#[test]
fn a_bad_log_level_is_a_usage_error() {
    let o = pinwatch(&["--log-level", "loud", "doctor"]);
    fails_with(&o, 2, &["invalid value 'loud' for '--log-level <LEVEL>'"]);
}

#[test]
fn bad_map_entries_name_the_maps_and_are_a_usage_error() {
    if !runs_if(
        is_root(),
        "needs root: the maps are sized when the object loads",
    ) {
        return;
    }
    let o = Command::new(env!("CARGO_BIN_EXE_pinwatch"))
        .arg("doctor")
        .env("PINWATCH_MAP_ENTRIES", "FORKING=0")
        .output()
        .expect("run pinwatch");
    fails_with(
        &o,
        2,
        &[
            "PINWATCH_MAP_ENTRIES: `0` is not a positive entry count for FORKING",
            "INFLIGHT, FORKING, WP_FAULTS",
        ],
    );
}
