//! Runs of pin calls and of unpins the kernel gathered (`kind::PIN_RUN`, `kind::UNPIN_RUN`) →
//! the same typed events one call makes, counted by `calls`.

use probe_common::event::{Header, PinRun, PinRunEvent, UnpinRun, UnpinRunEvent, kind};

use super::{Pin, Pinner, Unpin, first_page, hook_name, read, task, vma};

/// A run's identity: the task's pid_tgid, the run's record kind, and when its first call was
/// gathered.
pub type RunId = (u64, u32, u64);

/// The identity of a run record (`kind::PIN_RUN`, `kind::UNPIN_RUN`); `None` for any other.
pub fn run_id(bytes: &[u8]) -> Option<RunId> {
    let header: Header = read(bytes).ok()?;
    let first_ns = match header.kind {
        kind::PIN_RUN => read::<PinRunEvent>(bytes).ok()?.run.first_ns,
        kind::UNPIN_RUN => read::<UnpinRunEvent>(bytes).ok()?.run.first_ns,
        _ => return None,
    };
    Some((header.pid_tgid, header.kind, first_ns))
}

/// A run of joined pin calls, sent or read while open: `task` names the task, `run` what it
/// gathered (or the part of it not applied yet).
pub fn pin_run(task_header: &Header, run: &PinRun) -> Pin {
    Pin {
        at_ns: task_header.ts_ns,
        task: task(task_header),
        syscall: run.syscall,
        hook: hook_name(run.hook),
        gup_flags: run.gup_flags,
        start: run.start,
        nr_pages: run.pages,
        ret: i64::try_from(run.pages).unwrap_or(i64::MAX),
        stack_id: u32::try_from(run.stack_id).ok(),
        vma: vma(run.vma),
        pinner: Pinner::Unknown,
        caller: None,
        path: None,
        dontfork: None,
        backing: first_page(&run.vma, run.start),
        calls: run.calls,
    }
}

/// A run of a task's unpins of its own pins, like [`pin_run`].
pub fn unpin_run(task_header: &Header, run: &UnpinRun) -> Unpin {
    Unpin {
        at_ns: task_header.ts_ns,
        task: task(task_header),
        released_by: None,
        hook: hook_name(run.hook),
        syscall: run.syscall,
        pages: run.pages,
        calls: run.calls,
    }
}
