//! The detailed-event path: the ring buffer records go through, their header, and `INFLIGHT`,
//! each task's long-term pins (`probe_common::event::TaskPins`: the calls gathered, the pages
//! whose unpins are watched).

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns,
        generated::bpf_get_smp_processor_id,
    },
    macros::map,
    maps::{Array, HashMap, RingBuf},
};
use probe_common::{
    event::{Header, TaskPins},
    loss,
};

use crate::{counters, layout};

/// Sized at load time by the runtime (`loader::RING_BUFFER_BYTES`); a storm beyond it is counted
/// (`RINGBUF_DROPS`), not lost silently.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Slot 0 is set by userspace once every hook is attached. Until then nothing starts a
/// correlation or emits a record: a pin whose VMA hook was not attached yet would be judged on
/// half the facts (no file pin reported, its writeback called "pinned before pinwatch").
#[map]
static ARMED: Array<u32> = Array::with_max_entries(1, 0);

/// True once userspace armed the programs; otherwise counts the withheld work.
#[inline(always)]
pub fn armed() -> bool {
    if ARMED.get(0).is_some_and(|armed| *armed != 0) {
        return true;
    }
    counters::lost(loss::WITHHELD_BEFORE_READY);
    false
}

/// Each task's long-term pins (`TaskPins`, by pid_tgid, from its first long-term pin to its
/// exit): the call between its entry and return, and the runs of calls and unpins not sent yet
/// (`batch`).
#[map]
pub static INFLIGHT: HashMap<u64, TaskPins> = HashMap::with_max_entries(4096, 0);

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

/// `bpf_ringbuf_query` and `bpf_ringbuf_output` flags (uapi `BPF_RB_*`).
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;

/// A quarter of the ring's size (`probe_common::event::RING_WAKEUP_BYTES`), written at load:
/// one ring query per record instead of two.
#[unsafe(no_mangle)]
static RING_WAKEUP_BYTES: aya_ebpf::Global<u32> = aya_ebpf::Global::new(0);

/// Copies `record` into the ring buffer, counting a full buffer instead of failing silently;
/// false when the ring was full (the caller counts what the record stood for).
///
/// The reader drains the ring on its own every 20 ms; a record wakes it early only once the
/// ring is a quarter full. Waking it for every record (the default) costs a context switch and
/// an IPI per event: in a storm, on the very CPUs doing the pinning.
#[inline(always)]
pub fn emit<T: 'static>(record: &T) -> bool {
    if !armed() {
        // Withheld, and counted as such (`BEFORE_READY`).
        return true;
    }
    let filling = EVENTS.query(BPF_RB_AVAIL_DATA) > u64::from(RING_WAKEUP_BYTES.load());
    let wakeup = if filling {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    if EVENTS.output::<T>(record, wakeup).is_err() {
        counters::lost(loss::RINGBUF_DROPS);
        return false;
    }
    true
}
