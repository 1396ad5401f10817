//! Process lifetime tracepoints: stable ABI on every kernel, no ladder needed.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use probe_common::hook;

use crate::counters;

#[tracepoint]
pub fn tracepoint_process_fork(ctx: TracePointContext) -> u32 {
    crate::cow::on_fork(&ctx);
    0
}

#[tracepoint]
pub fn tracepoint_process_exit(_ctx: TracePointContext) -> u32 {
    counters::entry(hook::PROCESS_EXIT);
    0
}
