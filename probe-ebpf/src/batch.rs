//! Pin storms gathered in the kernel: each task's runs of joined pin calls and of unpins, kept in
//! its `INFLIGHT` entry and sent as one record each (`probe_common::event::PinRun`, `UnpinRun`).
//!
//! A run belongs to one task and is only written by it, so no lock is needed: the task's own
//! programs flush it (the next unpin, a pin that does not join, fork, exit) and userspace reads
//! it while open without writing.

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
};
use aya_log_ebpf::warn;
use probe_common::{
    event::{PinEvent, PinRun, PinRunEvent, TaskPins, UnpinRun, UnpinRunEvent, kind},
    filter, map as maps,
};

use crate::{
    counters,
    events::{self, INFLIGHT},
    layout,
};

/// log2 of the base page size: runs are contiguous in base pages.
const PAGE_SHIFT: u64 = 12;

/// `BPF_NOEXIST`: a task's entry is created once, never overwritten.
const BPF_NOEXIST: u64 = 1;

/// The value a task's entry starts from, copied by the map update (no 700-byte value on the
/// 512-byte BPF stack).
static EMPTY: TaskPins = TaskPins {
    call: PinEvent {
        header: probe_common::event::Header {
            kind: 0,
            cpu: 0,
            ts_ns: 0,
            pid_tgid: 0,
            task_start_ns: 0,
            comm: [0; 16],
            syscall: NO_SYSCALL,
            cgroup_id: 0,
        },
        hook: 0,
        gup_flags: 0,
        start: 0,
        nr_pages: 0,
        ret: 0,
        stack_id: 0,
        vma: EMPTY_VMA,
        unwatched: 0,
        _pad: 0,
        pages_array: 0,
    },
    pins: PinRun {
        hook: 0,
        gup_flags: 0,
        syscall: NO_SYSCALL,
        stack_id: 0,
        vma: EMPTY_VMA,
        first_ns: 0,
        last_ns: 0,
        start: 0,
        calls: 0,
        pages: 0,
    },
    unpins: UnpinRun {
        hook: 0,
        _pad: 0,
        syscall: NO_SYSCALL,
        first_ns: 0,
        last_ns: 0,
        calls: 0,
        pages: 0,
    },
    join_at: 0,
    in_call: 0,
    joining: 0,
    join_start: 0,
    join_nr_pages: 0,
    join_pages_array: 0,
    join_vma: EMPTY_VMA,
};

const NO_SYSCALL: probe_common::event::Syscall = probe_common::event::Syscall {
    nr: 0,
    user_ip: 0,
    user_sp: 0,
    args: [0; 3],
};

const EMPTY_VMA: probe_common::event::VmaInfo = probe_common::event::VmaInfo {
    seen: 0,
    needs_dirty: probe_common::event::NEEDS_DIRTY_UNKNOWN,
    vm_flags: 0,
    vm_start: 0,
    vm_pgoff: 0,
    ino: 0,
    dev: 0,
    fs_magic: 0,
};

/// The current task's entry, created on its first long-term pin; `None` (counted and logged)
/// when `INFLIGHT` is full.
#[inline(always)]
pub fn task_pins<C: EbpfContext>(ctx: &C) -> Option<&'static mut TaskPins> {
    let key = bpf_get_current_pid_tgid();
    if let Some(entry) = INFLIGHT.get_ptr_mut(key) {
        // SAFETY: this task's own entry: only this task writes it, and it lives until the
        // task's exit removes it.
        return Some(unsafe { &mut *entry });
    }
    // By reference, deliberately: the helper reads the value from the global's own map; a copy
    // would not fit on the stack.
    #[allow(clippy::needless_borrows_for_generic_args)]
    let inserted = INFLIGHT.insert(key, &EMPTY, BPF_NOEXIST);
    if inserted.is_err() {
        counters::insert_failed(maps::INFLIGHT);
        // Rare by construction (one entry per task that pins long-term).
        warn!(
            ctx,
            "INFLIGHT full: a long-term pin by tgid {} is not tracked",
            key >> 32
        );
        return None;
    }
    // SAFETY: as above.
    INFLIGHT
        .get_ptr_mut(key)
        .map(|entry| unsafe { &mut *entry })
}

/// The current task's entry if it has one (it pinned long-term before).
#[inline(always)]
pub fn current() -> Option<&'static mut TaskPins> {
    // SAFETY: as in `task_pins`.
    INFLIGHT
        .get_ptr_mut(bpf_get_current_pid_tgid())
        .map(|entry| unsafe { &mut *entry })
}

/// Whether a call entering with these facts joins the task's open batch.
#[inline(always)]
pub fn joins(task: &TaskPins, hook: u32, gup_flags: u32, start: u64) -> bool {
    task.join_at != 0
        && start == task.join_at
        && task.pins.hook == hook
        && task.pins.gup_flags == gup_flags
        && task.pins.syscall == layout::current_syscall()
}

/// Opens a batch after `pin`, a granted pin of memory whose pins are all alike (anonymous, or
/// reached without a VMA walk): later calls may join it. File pins are never joined: each is
/// judged on its own (`longterm-file-pin`).
#[inline(always)]
pub fn open(task: &mut TaskPins, pin: &PinEvent) {
    let anonymous = pin.vma.seen == 0 || pin.vma.ino == 0;
    if pin.ret <= 0 || pin.unwatched != 0 || !anonymous {
        task.join_at = 0;
        return;
    }
    task.pins = PinRun {
        hook: pin.hook,
        gup_flags: pin.gup_flags,
        syscall: pin.header.syscall,
        stack_id: pin.stack_id,
        vma: pin.vma,
        first_ns: 0,
        last_ns: 0,
        start: 0,
        calls: 0,
        pages: 0,
    };
    task.join_at = pin.start + ((pin.ret as u64) << PAGE_SHIFT);
}

/// Whether the joining call that returned `pages` stays in the run: granted, and it walked no
/// VMA or the batch's own.
#[inline(always)]
pub fn may_join(task: &TaskPins, pages: i64) -> bool {
    pages > 0 && (task.join_vma.seen == 0 || task.join_vma == task.pins.vma)
}

/// Adds the joining call, granted `pages`, to the run.
#[inline(always)]
pub fn join(task: &mut TaskPins, pages: u64) {
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if task.pins.calls == 0 {
        task.pins.first_ns = now;
        task.pins.start = task.join_start;
    }
    task.pins.calls += 1;
    task.pins.pages += pages;
    task.pins.last_ns = now;
    task.join_at = task.join_start + (pages << PAGE_SHIFT);
}

/// Sends the pin run, if any; the batch stays open.
#[inline(always)]
pub fn flush_pins(task: &mut TaskPins) {
    if task.pins.calls == 0 {
        return;
    }
    let mut header = events::header(kind::PIN_RUN);
    header.syscall = task.pins.syscall;
    if !events::emit(&PinRunEvent {
        header,
        run: task.pins,
    }) {
        counters::filtered_n(filter::RINGBUF_FULL_PIN_CALLS, task.pins.calls);
    }
    task.pins.calls = 0;
    task.pins.pages = 0;
    task.pins.first_ns = 0;
}

/// Sends the pin run and closes the batch: the next call opens its own.
#[inline(always)]
pub fn close_pins(task: &mut TaskPins) {
    flush_pins(task);
    task.join_at = 0;
}

/// Adds an unpin of `pages` by the task of its own pins; a different system call or entry point
/// sends the run before and starts another.
#[inline(always)]
pub fn add_unpin(task: &mut TaskPins, hook: u32, pages: u64) {
    let syscall = layout::current_syscall();
    if task.unpins.calls != 0 && (task.unpins.hook != hook || task.unpins.syscall != syscall) {
        flush_unpins(task);
    }
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if task.unpins.calls == 0 {
        task.unpins.hook = hook;
        task.unpins.syscall = syscall;
        task.unpins.first_ns = now;
    }
    task.unpins.calls += 1;
    task.unpins.pages += pages;
    task.unpins.last_ns = now;
}

/// Sends the unpin run, if any.
#[inline(always)]
pub fn flush_unpins(task: &mut TaskPins) {
    if task.unpins.calls == 0 {
        return;
    }
    let mut header = events::header(kind::UNPIN_RUN);
    header.syscall = task.unpins.syscall;
    events::emit(&UnpinRunEvent {
        header,
        run: task.unpins,
    });
    task.unpins.calls = 0;
    task.unpins.pages = 0;
    task.unpins.first_ns = 0;
}

/// Sends both runs of the current task (at most one is ever open: a pin flushes the unpins, an
/// unpin the pins): before a fork or an exit, whose rules read the ledger.
#[inline(always)]
pub fn flush_current() {
    if let Some(task) = current() {
        flush_pins(task);
        flush_unpins(task);
    }
}
