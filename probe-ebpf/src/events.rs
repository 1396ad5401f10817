//! The detailed-event path: a ring buffer for records, an in-flight table that carries a
//! long-term pin from its entry to its return, and a watch list of tasks whose unpins matter.

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns,
        generated::bpf_get_smp_processor_id,
    },
    macros::map,
    maps::{HashMap, RingBuf, StackTrace},
};
use probe_common::{
    event::{Header, PinEvent},
    filter,
};

use crate::{counters, layout};

/// Sized at load time by the runtime (`loader::RING_BUFFER_BYTES`); a storm beyond it is counted
/// (`RINGBUF_FULL`), not lost silently.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Long-term pins between their entry and their return, by pid_tgid.
#[map]
pub static INFLIGHT: HashMap<u64, PinEvent> = HashMap::with_max_entries(4096, 0);

/// Tasks holding long-term pins they were granted, with the pages not yet unpinned.
#[map]
pub static WATCH_UNPIN: HashMap<u64, u64> = HashMap::with_max_entries(4096, 0);

/// Kernel stacks of pin callers, symbolized in userspace to name the pinner.
#[map]
pub static STACKS: StackTrace = StackTrace::with_max_entries(1024, 0);

#[inline(always)]
pub fn header(kind: u32) -> Header {
    Header {
        kind,
        // SAFETY: helpers without preconditions.
        cpu: unsafe { bpf_get_smp_processor_id() },
        ts_ns: unsafe { bpf_ktime_get_ns() },
        pid_tgid: bpf_get_current_pid_tgid(),
        task_start_ns: layout::task_start_ns(),
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        syscall: layout::current_syscall(),
        // SAFETY: the helper has no preconditions.
        cgroup_id: unsafe { aya_ebpf::helpers::generated::bpf_get_current_cgroup_id() },
    }
}

/// Copies `record` into the ring buffer, counting a full buffer instead of failing silently.
#[inline(always)]
pub fn emit<T: 'static>(record: &T) {
    if EVENTS.output::<T>(record, 0).is_err() {
        counters::filtered(filter::RINGBUF_FULL);
    }
}
