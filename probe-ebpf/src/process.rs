//! Process lifetime tracepoints: stable ABI on every kernel, no ladder needed. Each comes as
//! a raw tracepoint (a BPF link: no perf event, so CAP_BPF and CAP_PERFMON suffice even where
//! Debian's perf_event_paranoid=3 refuses perf_event_open) and as a classic perf tracepoint.

use aya_ebpf::{
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use probe_common::hook;

use crate::{batch, counters, layout};

/// `sched:sched_process_fork` runs in the parent after the copy; the child's pid is at byte 44
/// of the tracepoint record (common fields, parent_comm[16], parent_pid, child_comm[16]).
#[tracepoint]
pub fn tracepoint_process_fork(ctx: TracePointContext) -> u32 {
    if crate::idle() {
        return 0;
    }
    // SAFETY: the offset is inside the fixed sched_process_fork record.
    let child_pid: u32 = unsafe { ctx.read_at(44) }.unwrap_or(0);
    crate::fork::on_fork(child_pid);
    0
}

/// The same tracepoint raw: `TP_PROTO(struct task_struct *parent, struct task_struct *child)`.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn raw_tracepoint_process_fork(ctx: RawTracePointContext) -> i32 {
    if crate::idle() {
        return 0;
    }
    let child: u64 = ctx.arg(1);
    crate::fork::on_fork(layout::task_pid(child));
    0
}

#[tracepoint]
pub fn tracepoint_process_exit(_ctx: TracePointContext) -> u32 {
    if !crate::idle() {
        on_exit();
    }
    0
}

#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn raw_tracepoint_process_exit(_ctx: RawTracePointContext) -> i32 {
    if !crate::idle() {
        on_exit();
    }
    0
}

/// A task exits: its `INFLIGHT` entry goes with it. A task that exits holding pins (io_uring and
/// AF_XDP release them later from a kworker) would otherwise keep it for ever, and a
/// long-running host would fill the map with the dead. Almost no exiting task has an entry,
/// which an array load says (`batch::current`'s slot test): they pay no lookup.
#[inline(always)]
fn on_exit() {
    counters::entry(hook::PROCESS_EXIT);
    batch::remove_current();
}
