//! Who owns pinned memory, so that unpins made by someone else end the right pin.
//!
//! A pin is usually released by the task that took it, which its `INFLIGHT` entry watches
//! (`TaskPins::watched`). But io_uring releases a closed ring's buffers from a kworker, and any
//! thread of the process may unregister what another registered. Those unpins are matched by the memory itself: when a watched pin is
//! granted, the identity of its first page's memory (the `anon_vma` root of anonymous memory,
//! the `address_space` of a file) is recorded with the pinning task; an unpin by a task that is
//! not watched looks up the identity of the first page it releases.
//!
//! Short-term pins (O_DIRECT into the same memory: QEMU's disk I/O into guest RAM that VFIO
//! holds) are released the same way and must not end a long-term pin, so a foreign unpin counts
//! only from a release context: the kworker tearing down an io_uring ring
//! (`io_ring_exit_work`), or a thread of the owner's process inside a system call that releases
//! long-term pins (`io_uring_register`, `ioctl`).
//!
//! `OWNERS` is a cache (LRU): more distinct pinned memory objects alive at once than it holds
//! makes the oldest owners' foreign unpins unmatched, and those pins end when their process
//! exits, as before this cache existed. Nothing is paid on unpins until a pin was recorded.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::map,
    maps::{Array, LruHashMap},
};
use probe_common::{event::TaskPins, hook};

use crate::{
    args::{Args, Ret},
    counters, entry_programs, layout, return_programs,
};

/// Tasks inside a release context (`io_ring_exit_work`), by pid_tgid. An LRU: a kworker that
/// vanished inside one never fills it.
#[map]
static RELEASING: LruHashMap<u64, u32> = LruHashMap::with_max_entries(1024, 0);

/// x86-64 system calls in which a thread releases long-term pins it may not have taken.
const IOCTL: u64 = 16;
const IO_URING_REGISTER: u64 = 427;

/// The pinning task and its process's start time, by memory identity.
#[map]
static OWNERS: LruHashMap<u64, Owner> = LruHashMap::with_max_entries(4096, 0);

/// Slot 0 is set once an owner was recorded: until then unpins by unwatched tasks (every
/// O_DIRECT completion) skip the identity lookup.
#[map]
static OWNED: Array<u32> = Array::with_max_entries(1, 0);

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Owner {
    pub pid_tgid: u64,
    pub start_ns: u64,
}

/// Records who pinned the memory behind `pages`, a `struct page **` the pin call filled.
#[inline(always)]
pub fn record(task: &mut TaskPins, pages: u64, owner: Owner) {
    let Some(mapping) = layout::read_ptr(pages)
        .and_then(layout::page_folio)
        .and_then(layout::folio_mapping)
    else {
        return;
    };
    // A registration pins its buffers one call each, all in the same memory: only the first
    // call walks to its identity and looks it up.
    if mapping == task.owner_mapping {
        return;
    }
    let Some(key) = identity(mapping) else {
        return;
    };
    task.owner_mapping = mapping;
    // The lookup (lockless) spares a task that pinned this memory before the LRU's locked insert.
    // SAFETY: a copy of the value is compared at once.
    if unsafe { OWNERS.get(key) }
        .is_some_and(|known| known.pid_tgid == owner.pid_tgid && known.start_ns == owner.start_ns)
    {
        return;
    }
    // An LRU insert evicts instead of failing.
    let _ = OWNERS.insert(key, owner, 0);
    if let Some(owned) = OWNED.get_ptr_mut(0) {
        // SAFETY: a valid array slot; only ever set to 1.
        unsafe { *owned = 1 };
    }
}

/// The owner of the memory behind `page` (a page or a folio) released by the current task,
/// with the key to forget it by; `None` unless the current task releases it from a release
/// context (see the module's doc). The cheap questions come first: almost every unpin by an
/// unwatched task (O_DIRECT completions) is in no release context and never reads the page.
#[inline(always)]
pub fn of(page: u64) -> Option<(u64, Owner)> {
    if OWNED.get(0).is_none_or(|owned| *owned == 0) {
        return None;
    }
    let current = bpf_get_current_pid_tgid();
    // Only a kernel thread (no mm) can be inside `io_ring_exit_work`: a user task skips the
    // lookup and is asked for its system call instead.
    let tearing_down = layout::current_may_be_kernel_thread()
        // SAFETY: a lookup of the current task's key; the value is not dereferenced.
        && unsafe { RELEASING.get(current) }.is_some();
    if !tearing_down && !matches!(layout::current_syscall_nr(), IOCTL | IO_URING_REGISTER) {
        return None;
    }
    let key = memory_key(page)?;
    // SAFETY: a copy of the value is taken at once.
    let owner = unsafe { *OWNERS.get(key)? };
    let same_process = current >> 32 == owner.pid_tgid >> 32;
    (tearing_down || same_process).then_some((key, owner))
}

/// The current task entered (`true`) or left a release context.
#[inline(always)]
pub fn releasing(inside: bool) {
    let key = bpf_get_current_pid_tgid();
    if inside {
        // An LRU insert evicts instead of failing.
        let _ = RELEASING.insert(key, 1, 0);
    } else {
        let _ = RELEASING.remove(key);
    }
}

/// The pin ended (its owner unpinned everything, or exited): forget it.
#[inline(always)]
pub fn forget(key: u64) {
    let _ = OWNERS.remove(key);
}

/// Identity of the memory a page belongs to: the root `anon_vma` of anonymous memory (shared
/// by a process and its fork children), the `address_space` of page-cache memory.
#[inline(always)]
fn memory_key(page: u64) -> Option<u64> {
    identity(layout::folio_mapping(layout::page_folio(page)?)?)
}

/// The identity behind a folio's `mapping` word.
#[inline(always)]
fn identity(mapping: u64) -> Option<u64> {
    match mapping & 3 {
        0 if mapping != 0 => Some(mapping),
        // PAGE_MAPPING_ANON: the anon_vma, tagged.
        1 => layout::anon_vma_root(mapping & !3),
        // KSM and movable_ops pages: no owner to find.
        _ => None,
    }
}

#[inline(always)]
fn on_ring_exit_work<C: Args>(_ctx: &C) {
    counters::entry(hook::RING_EXIT_WORK);
    releasing(true);
}

#[inline(always)]
fn ring_exit_work_done<C: Ret>(_ctx: &C) {
    counters::ret(hook::RING_EXIT_WORK);
    releasing(false);
}

entry_programs!(
    fentry_ring_exit_work,
    kprobe_ring_exit_work,
    on_ring_exit_work
);
return_programs!(
    fexit_ring_exit_work,
    kretprobe_ring_exit_work,
    ring_exit_work_done
);
