//! The errors `main` maps to exit codes. Library modules have their own typed errors; this is
//! the edge where they meet the user.

use crate::{counters::CounterError, exit, kernel::btf::BtfError, loader::LoadError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "pinwatch needs root, or at least CAP_BPF and CAP_PERFMON (packaging/pinwatch.service grants \
         what it uses), to load eBPF programs; try: sudo pinwatch {command}"
    )]
    NotPrivileged { command: &'static str },
    #[error("{0}")]
    Btf(#[from] BtfError),
    #[error("{0}")]
    Load(#[from] LoadError),
    #[error("{0}")]
    Counters(#[from] CounterError),
    #[error("reading /proc/kallsyms: {0}")]
    Kallsyms(std::io::Error),
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: crate::text::UserText,
        source: std::io::Error,
    },
    #[error("writing the report: {0}")]
    Output(std::io::Error),
    #[error("{0}")]
    Unobservable(#[from] crate::observability::verdict::Verdict),
    #[error("opening an eBPF map: {0}")]
    Map(aya::maps::MapError),
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("no running process has pid {0} (--pid)")]
    NoSuchProcess(u32),
    #[error("cannot serve metrics on {addr}: {source} (choose another address with --listen)")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the findings log {path}: {source}")]
    FindingsLog {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the metrics server failed: {0}")]
    Serve(std::io::Error),
    #[error("{0}")]
    Pins(#[from] crate::pins::scan::ScanError),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::NotPrivileged { .. } => exit::NO_PRIVILEGE,
            Error::Btf(_) => exit::NO_BTF,
            Error::Load(LoadError::Ebpf(e)) if is_permission(e) => exit::NO_PRIVILEGE,
            Error::Load(LoadError::MapEntries(_)) => exit::USAGE,
            Error::Unobservable(verdict) => verdict.exit_code(),
            Error::NoSuchProcess(_) => exit::USAGE,
            Error::Listen { .. } => exit::LISTEN,
            Error::FindingsLog { .. } => exit::OUTPUT,
            Error::Load(_)
            | Error::Map(_)
            | Error::Signals(_)
            | Error::Counters(_)
            | Error::Kallsyms(_)
            | Error::Spawn { .. }
            | Error::Serve(_)
            | Error::Pins(_)
            | Error::Output(_) => exit::RUNTIME,
        }
    }
}

/// Whether the kernel refused a load for lack of privilege (EPERM, EACCES): the system call's
/// own error, found down the chain of causes, not guessed from the message.
fn is_permission(e: &aya::EbpfError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = cause {
        if error
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
        {
            return true;
        }
        cause = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use aya::{EbpfError, maps::MapError};

    use super::*;

    fn map_create_failed(errno: i32) -> Error {
        Error::Load(LoadError::Ebpf(EbpfError::MapError(
            MapError::CreateError {
                name: "EVENTS".to_owned(),
                io_error: std::io::Error::from_raw_os_error(errno),
            },
        )))
    }

    #[test]
    fn a_load_refused_for_privilege_exits_as_not_privileged() {
        assert_eq!(
            map_create_failed(libc::EPERM).exit_code(),
            exit::NO_PRIVILEGE
        );
        assert_eq!(
            map_create_failed(libc::EACCES).exit_code(),
            exit::NO_PRIVILEGE
        );
        assert_eq!(map_create_failed(libc::ENOMEM).exit_code(), exit::RUNTIME);
    }
}
