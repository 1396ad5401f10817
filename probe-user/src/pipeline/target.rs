//! What a watch is about and what ends it: a command pinwatch starts, a process already
//! running, or the whole system (only a duration or a signal ends that).

use std::{
    ffi::OsString,
    process::{Child, Command},
};

use crate::{error::Error, procfs, text::UserText};

pub enum Target {
    Command { child: Child, line: UserText },
    Process { pid: u32, start: u64 },
    System,
}

/// Why a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The command exited with this status (`None`: killed by a signal).
    Exited(Option<i32>),
    /// The watched process is gone.
    Gone,
}

impl Target {
    /// Checks `pid` before anything is loaded, so that a mistyped pid fails fast.
    pub fn process(pid: u32) -> Result<Self, Error> {
        let start = procfs::process_start(pid).ok_or(Error::NoSuchProcess(pid))?;
        Ok(Target::Process { pid, start })
    }

    /// Starts the command. With `stdout_to_stderr` its output goes to pinwatch's stderr, so that
    /// pinwatch's own stdout (JSON) stays parseable.
    pub fn spawn(command: &[OsString], stdout_to_stderr: bool) -> Result<Self, Error> {
        use std::os::fd::AsFd as _;
        let line = UserText::command_line(command);
        let spawn_error = |source| Error::Spawn {
            command: line.clone(),
            source,
        };
        let (program, args) = command.split_first().expect("a command has a program");
        let mut cmd = Command::new(program);
        cmd.args(args);
        if stdout_to_stderr {
            let stderr = std::io::stderr()
                .as_fd()
                .try_clone_to_owned()
                .map_err(spawn_error)?;
            cmd.stdout(stderr);
        }
        let child = cmd.spawn().map_err(spawn_error)?;
        Ok(Target::Command { child, line })
    }

    /// The root of the watched process tree (`None`: every process).
    pub fn root(&self) -> Option<u32> {
        match self {
            Target::Command { child, .. } => Some(child.id()),
            Target::Process { pid, .. } => Some(*pid),
            Target::System => None,
        }
    }

    /// What is watched, for people: a command line prints escaped.
    pub fn describe(&self) -> String {
        match self {
            Target::Command { line, .. } => line.to_string(),
            Target::Process { pid, .. } => format!("pid {pid}"),
            Target::System => "the whole system".to_owned(),
        }
    }

    /// Whether the command exited or the process is gone; never for the whole system.
    pub fn ended(&mut self) -> Result<Option<Ended>, Error> {
        match self {
            Target::Command { child, line } => {
                let status = child.try_wait().map_err(|source| Error::Spawn {
                    command: line.clone(),
                    source,
                })?;
                Ok(status.map(|s| Ended::Exited(s.code())))
            }
            Target::Process { pid, start } => {
                Ok((procfs::process_start(*pid) != Some(*start)).then_some(Ended::Gone))
            }
            Target::System => Ok(None),
        }
    }
}
