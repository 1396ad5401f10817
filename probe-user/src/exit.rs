//! Exit codes: one per kind of failure a user can hit. [`TABLE`] is the single source: the
//! constants, their docs and `pinwatch --help` are generated from it, and a test checks that the
//! README's "Exit status" table says exactly the same, row by row.

use std::{process::ExitCode, sync::LazyLock};

/// One exit code and what it means, as the README's table and `--help` show it (Markdown: help
/// drops the backticks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub code: u8,
    pub meaning: &'static str,
}

/// Declares each code as a constant documented by its meaning, and [`TABLE`] with every row.
macro_rules! exit_codes {
    ($($name:ident = $code:literal: $meaning:literal;)+) => {
        $(
            #[doc = $meaning]
            pub const $name: u8 = $code;
        )+
        /// Every exit code pinwatch uses, in order.
        pub const TABLE: &[Status] = &[$(Status { code: $code, meaning: $meaning }),+];
    };
}

exit_codes! {
    OK = 0: "success (doctor: every hazard observable; run: stopped by SIGTERM or SIGINT)";
    FINDINGS = 1: "(audit) findings reported (of the `--fail-on` hazards, when given)";
    USAGE = 2: "bad command line, `--pid` names no running process, or a bad `PINWATCH_MAP_ENTRIES`";
    NO_PRIVILEGE = 3: "not privileged: run as root, or with at least CAP_BPF and CAP_PERFMON";
    NO_BTF = 4: "no readable kernel BTF (`/sys/kernel/btf/vmlinux`, `CONFIG_DEBUG_INFO_BTF=y`)";
    UNOBSERVABLE = 5: "nothing can be observed: no function hook attaches (no kprobes, fentry refused…)";
    DEGRADED = 6: "some hazards cannot be observed on this kernel: doctor names the missing hooks";
    RUNTIME = 7: "other run-time failure (eBPF load failure, a command that cannot start)";
    LISTEN = 8: "(run) the `--listen` address cannot be bound";
    OUTPUT = 9: "(run) the `--findings-log` file cannot be opened";
    INCOMPLETE = 10: "(pins) the inventory is incomplete: some processes' fds could not be read (other users' need CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH) or a ring stayed busy";
}

pub fn code(value: u8) -> ExitCode {
    ExitCode::from(value)
}

/// The table shown in `pinwatch --help`, generated from [`TABLE`].
pub static HELP: LazyLock<String> = LazyLock::new(|| {
    TABLE
        .iter()
        .fold(String::from("Exit status:"), |mut text, row| {
            text.push_str(&help_line(row));
            text
        })
});

/// One row of `--help`'s table, with its leading newline: `\n  3  not privileged: …`.
pub fn help_line(row: &Status) -> String {
    format!("\n  {}  {}", row.code, row.meaning.replace('`', ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_in_order() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(usize::from(row.code), i, "{row:?}");
        }
    }

    #[test]
    fn help_lists_every_row_once() {
        assert!(HELP.starts_with("Exit status:\n  0  success"), "{}", *HELP);
        assert_eq!(HELP.lines().count(), TABLE.len() + 1);
        assert!(HELP.contains("\n  8  (run) the --listen address cannot be bound"));
    }
}
