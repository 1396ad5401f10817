//! Pin storms gathered in the kernel: each task's runs of joined pin calls and of unpins, kept in
//! its `INFLIGHT` entry and sent as one record each (`probe_common::event::PinRun`, `UnpinRun`).
//!
//! A run belongs to one task and is only written by it, so no lock is needed: the task's own
//! programs flush it (the next unpin, a pin that does not join, fork, exit) and userspace reads
//! it while open without writing.

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::map,
    maps::Array,
};
use aya_log_ebpf::warn;
use probe_common::{
    event::{
        NEEDS_DIRTY_UNKNOWN, PinCall, PinRun, PinRunEvent, TaskPins, UnpinRunEvent, VmaInfo, kind,
        seen,
    },
    loss, map as maps,
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

/// The value a task's entry starts from, copied by the map update (no 900-byte value on the
/// 512-byte BPF stack).
// SAFETY: `TaskPins` is integers and arrays of them: all zeroes is a valid value.
static EMPTY: TaskPins = unsafe { core::mem::zeroed() };

/// Tasks with an `INFLIGHT` entry, counted by slot (thread id modulo the array's size): a task
/// whose slot counts 0 has none, which the hottest callers (every unpin by a process that pinned
/// short-term, every exit) learn from an array load the verifier inlines, without the hash
/// lookup. Collisions only cost that lookup.
#[map]
static PINNING_TASKS: Array<u64> = Array::with_max_entries(TASK_SLOTS, 0);

const TASK_SLOTS: u32 = 1 << 16;

#[inline(always)]
fn slot(pid_tgid: u64) -> Option<*mut u64> {
    PINNING_TASKS.get_ptr_mut((pid_tgid as u32) % TASK_SLOTS)
}

/// Adds `delta` to the task's slot: tasks sharing a slot run on other CPUs.
#[inline(always)]
fn count_task(pid_tgid: u64, delta: i64) {
    if let Some(slot) = slot(pid_tgid) {
        // SAFETY: a valid, aligned array slot.
        unsafe { atomic_add(slot, delta) };
    }
}

/// `*at += delta`, atomically, without the old value: the BPF backend then emits a plain
/// atomic add (`lock xadd`), which every kernel's verifier accepts (core's atomic types need
/// compare-and-swap, which the target lacks).
///
/// # Safety
/// `at` is valid and 8-byte aligned (a map value's field).
#[inline(always)]
unsafe fn atomic_add(at: *mut u64, delta: i64) {
    // SAFETY: per the contract.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            at,
            delta as u64,
        )
    };
}

/// Watches the task's unpins of the `pages` it was just granted: within the same system call
/// they mean "released by the caller"; later, they end the pin (userspace tracks live pins).
#[inline(always)]
pub fn watch(task: &mut TaskPins, pages: u64) {
    // SAFETY: a field of the task's map value.
    unsafe { atomic_add(&raw mut task.watched, pages as i64) };
}

/// Whether the task's unpins are watched (it holds pages it was granted).
#[inline(always)]
pub fn watched(task: &TaskPins) -> bool {
    // SAFETY: a field of the task's map value; a kworker may change it (`release`).
    unsafe { core::ptr::read_volatile(&raw const task.watched) != 0 }
}

/// Takes `pages` off the watched count of `task` (the current task's, or a releasing kworker's
/// view of its owner's); true when nothing is left. Releasing more than was watched (pins taken
/// before pinwatch started) leaves 0, not a debt: the correction is an atomic add too, so a
/// pin granted meanwhile is not lost.
///
/// # Safety
/// `task` is a live `INFLIGHT` value.
#[inline(always)]
pub unsafe fn release(task: *mut TaskPins, pages: u64) -> bool {
    // SAFETY: per the contract.
    unsafe {
        let watched = &raw mut (*task).watched;
        atomic_add(watched, (pages as i64).wrapping_neg());
        let left = core::ptr::read_volatile(watched) as i64;
        if left < 0 {
            atomic_add(watched, left.wrapping_neg());
        }
        left <= 0
    }
}

/// Whether a fault of the current task happens inside its long-term GUP's walk (an unshare the
/// pin itself asked for).
#[inline(always)]
pub fn in_longterm_walk(task: &TaskPins) -> bool {
    task.walking != 0 && task.walk_syscall == layout::current_syscall()
}

/// Whether the task may have an `INFLIGHT` entry (false means certainly not).
#[inline(always)]
fn may_have_entry(pid_tgid: u64) -> bool {
    // SAFETY: a valid array slot, read once.
    slot(pid_tgid).is_some_and(|slot| unsafe { core::ptr::read_volatile(slot) } != 0)
}

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
    count_task(key, 1);
    // SAFETY: as above.
    INFLIGHT
        .get_ptr_mut(key)
        .map(|entry| unsafe { &mut *entry })
}

/// The task exits: its entry goes, after its open runs (nothing gathered is lost at exit).
#[inline(always)]
pub fn remove_current() {
    let key = bpf_get_current_pid_tgid();
    let Some(task) = entry_of(key) else {
        return;
    };
    flush_pins(task);
    flush_unpins(task);
    if INFLIGHT.remove(key).is_ok() {
        count_task(key, -1);
    }
}

/// The current task's entry if it has one (it pinned long-term before).
#[inline(always)]
pub fn current() -> Option<&'static mut TaskPins> {
    entry_of(bpf_get_current_pid_tgid())
}

/// The entry of task `key` if it has one; the slot test first.
#[inline(always)]
fn entry_of(key: u64) -> Option<&'static mut TaskPins> {
    if !may_have_entry(key) {
        return None;
    }
    // SAFETY: as in `task_pins`.
    INFLIGHT
        .get_ptr_mut(key)
        .map(|entry| unsafe { &mut *entry })
}

/// Whether a granted call joins the task's open batch: the same entry point, flags and system
/// call, starting where the batch ended, and it walked no VMA or the batch's own. The system
/// call is read last: the other tests are loads.
#[inline(always)]
pub fn joins(task: &TaskPins, hook: u32, call: &PinCall, walked: &VmaInfo) -> bool {
    task.join_at != 0
        && call.start == task.join_at
        && task.pins.hook == hook
        && task.pins.gup_flags == call.gup_flags
        && (walked.seen == 0 || *walked == task.pins.vma)
        && task.pins.syscall == layout::current_syscall()
}

/// Opens a batch after `task.call`, the pin just sent on its own, if it is a granted pin of
/// memory whose pins are all alike (anonymous, or reached without a VMA walk): later calls may
/// join it. File pins are never joined: each is judged on its own (`longterm-file-pin`).
#[inline(always)]
pub fn open(task: &mut TaskPins) {
    let pin = &task.call;
    // A page-cache page named by its first page (GUP-fast: shmem, memfd) batches like
    // anonymous memory; only a walked file VMA is judged call by call.
    let anonymous = pin.vma.seen != seen::VMA || pin.vma.ino == 0;
    if pin.ret <= 0 || !anonymous {
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

/// Adds a joining call that started at `start` and was granted `pages` to the run.
#[inline(always)]
pub fn join(task: &mut TaskPins, start: u64, pages: u64) {
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if task.pins.calls == 0 {
        task.pins.first_ns = now;
        task.pins.start = start;
    }
    task.pins.calls += 1;
    task.pins.pages += pages;
    task.pins.last_ns = now;
    task.join_at = start + (pages << PAGE_SHIFT);
}

/// Records the VMA a long-term GUP of the current task walks (`check_vma_flags`): the first of
/// each system call's walk, since a pin's return takes it. Faults from here to that return are
/// the pin's own (`walking`).
#[inline(always)]
pub fn walked(task: &mut TaskPins, vma: u64) {
    let syscall = layout::current_syscall();
    task.walking = 1;
    if task.walk.seen != 0 && task.walk_syscall == syscall {
        return;
    }
    task.walk = layout::vma_info(vma);
    task.walk_end = layout::vma_end(vma);
    task.walk_syscall = syscall;
}

/// Takes the VMA the pin call starting at `start` walked, if any (`seen` 0 when none), and ends
/// the walk: a walk left by a long-term GUP no pin hook saw (another system call, another
/// range) is dropped.
#[inline(always)]
pub fn take_walk(task: &mut TaskPins, start: u64) -> VmaInfo {
    task.walking = 0;
    let mut walk = task.walk;
    if walk.seen == 0 {
        walk.needs_dirty = NEEDS_DIRTY_UNKNOWN;
        return walk;
    }
    task.walk.seen = 0;
    let ours = walk.vm_start <= start
        && start < task.walk_end
        && task.walk_syscall == layout::current_syscall();
    if !ours {
        return VmaInfo {
            needs_dirty: NEEDS_DIRTY_UNKNOWN,
            ..VmaInfo::default()
        };
    }
    walk
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
        counters::lost_n(loss::RINGBUF_DROPPED_PIN_CALLS, task.pins.calls);
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
/// unpin the pins): before a fork, whose rule reads the ledger.
#[inline(always)]
pub fn flush_current() {
    if let Some(task) = current() {
        flush_pins(task);
        flush_unpins(task);
    }
}
