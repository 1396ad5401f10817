//! Children that must not outlive xtask: a run killed mid-way (Ctrl-C, a CI timeout) would
//! otherwise leave QEMU guests and Prometheus running, holding CPUs and the data directory the
//! next run starts afresh.

use std::{os::unix::process::CommandExt as _, process::Command};

/// Makes the child get SIGTERM when the thread that spawned it ends (`PR_SET_PDEATHSIG`): the
/// caller waits for it on that same thread.
pub fn dies_with_parent(command: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe, and the closure touches nothing else.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        })
    }
}
