//! GUP pin and unpin entry points (`mm/gup.c`) and where a long-term pin meets its VMA.
//!
//! A long-term pin (FOLL_LONGTERM in the caller's flags) is carried in its task's `INFLIGHT`
//! entry from entry to return; `check_vma_flags` adds the VMA it walks and
//! `vma_needs_dirty_tracking` the kernel's verdict; the return emits one `PinEvent`, or adds the
//! call to the task's open batch (`batch`). Short-term pins (O_DIRECT…) only count.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::map, maps::LruHashMap};
use aya_log_ebpf::warn;
use probe_common::{
    event::{NEEDS_DIRTY_UNKNOWN, PinEvent, Syscall, UnpinEvent, VmaInfo, kind},
    filter, hook, map as maps,
};

use crate::{
    args::{Args, Ret},
    batch, counters, entry_programs,
    events::{self, WATCH_UNPIN},
    layout, owners, return_programs,
};

/// `FOLL_WRITE` is bit 0 on every kernel (legacy define and the 6.5+ enum alike).
const FOLL_WRITE: u32 = 1;

/// Argument positions of (start, nr_pages, gup_flags, pages) in each pin entry point.
struct PinArgs {
    start: usize,
    nr_pages: usize,
    gup_flags: usize,
    pages: usize,
}

#[inline(always)]
fn on_pin_entry<C: Args>(ctx: &C, hook: u32, at: PinArgs) {
    counters::entry(hook);
    let gup_flags = ctx.arg_u64(at.gup_flags) as u32;
    match layout::foll_longterm() {
        Some(longterm) if gup_flags & longterm != 0 => {}
        Some(_) => {
            counters::filtered(if gup_flags & FOLL_WRITE != 0 {
                filter::SHORT_TERM_PIN_WRITE
            } else {
                filter::SHORT_TERM_PIN_READ
            });
            return;
        }
        None => return,
    }
    if !events::armed() {
        return;
    }
    let Some(task) = batch::task_pins(ctx) else {
        return;
    };
    // A pin ends the task's unpin run: the ledger sees releases and pins in their order.
    batch::flush_unpins(task);
    let start = ctx.arg_u64(at.start);
    task.in_call = 1;
    if batch::joins(task, hook, gup_flags, start) {
        // The storm's common case: only the arguments are kept, no record is built.
        task.joining = 1;
        task.join_start = start;
        task.join_nr_pages = ctx.arg_u64(at.nr_pages);
        task.join_pages_array = ctx.arg_scalar(at.pages);
        task.join_vma = VmaInfo {
            needs_dirty: NEEDS_DIRTY_UNKNOWN,
            ..VmaInfo::default()
        };
        return;
    }
    batch::close_pins(task);
    task.joining = 0;
    let header = events::header(kind::PIN);
    task.call = PinEvent {
        header,
        hook,
        gup_flags,
        start,
        nr_pages: ctx.arg_u64(at.nr_pages),
        ret: 0,
        stack_id: pin_stack(ctx, &header.syscall, hook),
        vma: VmaInfo {
            needs_dirty: NEEDS_DIRTY_UNKNOWN,
            ..VmaInfo::default()
        },
        unwatched: 0,
        _pad: 0,
        pages_array: ctx.arg_scalar(at.pages),
    };
}

/// The stack of the last long-term pin of each task, with the system call (number, user
/// registers, first arguments) and hook it was taken in. A cache: LRU, so tasks that pinned once
/// and went on never fill it (the next walk is only slower).
#[map]
static LAST_PIN_STACK: LruHashMap<u64, (Syscall, u64, i64)> = LruHashMap::with_max_entries(4096, 0);

/// The kernel stack names the pinner, but walking it is the dearest thing a pin costs, and one
/// system call can pin 16,384 io_uring buffers (or a registration loop repeat the same call).
/// Pins made by the same task in the same system call (same number, user IP and SP, fd and
/// request) through the same hook come from the same driver path: they reuse its stack id.
#[inline(always)]
fn pin_stack<C: Args>(ctx: &C, syscall: &Syscall, hook: u32) -> i64 {
    let key = bpf_get_current_pid_tgid();
    // A task outside any user system call (a kernel thread) gets no cache: its registers
    // say nothing about the caller.
    let cacheable = syscall.user_ip != 0;
    if cacheable
        // SAFETY: a copy of this task's own entry.
        && let Some(&(last, last_hook, id)) = unsafe { LAST_PIN_STACK.get(key) }
        && last == *syscall
        && last_hook == u64::from(hook)
        && id >= 0
    {
        return id;
    }
    let id = ctx.stack_id();
    if id < 0 {
        // The pinner will be unnamed: every attempt's bucket held by another stack, or an
        // unwalkable stack.
        counters::insert_failed(maps::STACKS);
    }
    if cacheable
        && LAST_PIN_STACK
            .insert(key, (*syscall, u64::from(hook), id), 0)
            .is_err()
    {
        counters::insert_failed(maps::LAST_PIN_STACK);
    }
    id
}

/// The pin entry points return the number of pages pinned or a negative errno; a refusal of a
/// long-term file pin shows up here as -EFAULT on 6.5+. `pin_user_pages_fast` returns `int`, so
/// only the low 32 bits of the register are meaningful: compare them as `i32` (page counts of a
/// single call never reach 2^31).
#[inline(always)]
fn on_pin_return<C: Ret>(ctx: &C, hook: u32, at: PinArgs) {
    counters::ret(hook);
    let ret = ctx.ret_i64() as i32;
    if ret < 0 {
        counters::filtered(filter::PIN_FAILED);
    }
    // Short-term pins (O_DIRECT: one per I/O) were never put in flight. fexit still has the
    // flags, so they skip the lookup; a kretprobe does not, and looks.
    if let (Some(flags), Some(longterm)) =
        (ctx.entry_arg_u64(at.gup_flags), layout::foll_longterm())
        && flags as u32 & longterm == 0
    {
        return;
    }
    let key = bpf_get_current_pid_tgid();
    let Some(task) = batch::current() else {
        return;
    };
    if task.in_call == 0 {
        return;
    }
    task.in_call = 0;
    let joining = core::mem::take(&mut task.joining) != 0;
    if (if joining {
        task.pins.hook
    } else {
        task.call.hook
    }) != hook
    {
        return;
    }
    let owner = owners::Owner {
        pid_tgid: key,
        start_ns: task.call.header.task_start_ns,
    };
    if joining {
        if batch::may_join(task, i64::from(ret)) && watch_unpins(key, ret as u64) {
            owners::record(task.join_pages_array, owner);
            batch::join(task, ret as u64);
            return;
        }
        // It cannot join (refused, another VMA, the watch list full): the run ends here, and
        // this call is sent on its own, as if it had not tried.
        batch::close_pins(task);
        task.call = PinEvent {
            header: events::header(kind::PIN),
            hook,
            gup_flags: task.pins.gup_flags,
            start: task.join_start,
            nr_pages: task.join_nr_pages,
            ret: 0,
            stack_id: task.pins.stack_id,
            vma: task.join_vma,
            unwatched: 0,
            _pad: 0,
            pages_array: task.join_pages_array,
        };
    }
    let mut event = task.call;
    event.ret = i64::from(ret);
    // The record is stamped when the pin was granted; the rest of the header is the entry's.
    // SAFETY: the helper has no preconditions.
    event.header.ts_ns = unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() };
    let pages_array = core::mem::take(&mut event.pages_array);
    if ret > 0 && watch_unpins(key, ret as u64) {
        owners::record(pages_array, owner);
    } else if ret > 0 {
        event.unwatched = 1;
        counters::insert_failed(maps::WATCH_UNPIN);
        warn!(
            ctx,
            "WATCH_UNPIN full: unpins of {} pages pinned by tgid {} will not be seen",
            ret,
            key >> 32
        );
    }
    if !events::emit(&event) {
        counters::filtered(filter::RINGBUF_FULL_PIN_CALLS);
    }
    batch::open(task, &event);
}

/// Watches the task's unpins of what it was just granted: within the same system call they
/// mean "released by the caller"; later, they end the pin (userspace tracks live pins). False
/// when the watch list is full.
#[inline(always)]
fn watch_unpins(key: u64, pages: u64) -> bool {
    match WATCH_UNPIN.get_ptr_mut(key) {
        Some(remaining) => {
            // SAFETY: this task's own entry.
            unsafe { *remaining += pages };
            true
        }
        None => WATCH_UNPIN.insert(key, pages, 0).is_ok(),
    }
}

macro_rules! pin_hook {
    ($fentry:ident, $kprobe:ident, $fexit:ident, $kretprobe:ident, $hook:expr, $args:expr) => {
        const _: () = {
            #[inline(always)]
            fn entry<C: Args>(ctx: &C) {
                on_pin_entry(ctx, $hook, $args);
            }
            #[inline(always)]
            fn exit<C: Ret>(ctx: &C) {
                on_pin_return(ctx, $hook, $args);
            }
            entry_programs!($fentry, $kprobe, entry);
            return_programs!($fexit, $kretprobe, exit);
        };
    };
}

// 6.1: pin_user_pages(start, nr_pages, gup_flags, pages, vmas); later without vmas.
pin_hook!(
    fentry_pin_user_pages,
    kprobe_pin_user_pages,
    fexit_pin_user_pages,
    kretprobe_pin_user_pages,
    hook::PIN_USER_PAGES,
    PinArgs {
        start: 0,
        nr_pages: 1,
        gup_flags: 2,
        pages: 3
    }
);
pin_hook!(
    fentry_pin_user_pages_fast,
    kprobe_pin_user_pages_fast,
    fexit_pin_user_pages_fast,
    kretprobe_pin_user_pages_fast,
    hook::PIN_USER_PAGES_FAST,
    PinArgs {
        start: 0,
        nr_pages: 1,
        gup_flags: 2,
        pages: 3
    }
);
// pin_user_pages_remote(mm, start, nr_pages, gup_flags, pages, ...).
pin_hook!(
    fentry_pin_user_pages_remote,
    kprobe_pin_user_pages_remote,
    fexit_pin_user_pages_remote,
    kretprobe_pin_user_pages_remote,
    hook::PIN_USER_PAGES_REMOTE,
    PinArgs {
        start: 1,
        nr_pages: 2,
        gup_flags: 3,
        pages: 4
    }
);
// pin_user_pages_unlocked(start, nr_pages, pages, gup_flags).
pin_hook!(
    fentry_pin_user_pages_unlocked,
    kprobe_pin_user_pages_unlocked,
    fexit_pin_user_pages_unlocked,
    kretprobe_pin_user_pages_unlocked,
    hook::PIN_USER_PAGES_UNLOCKED,
    PinArgs {
        start: 0,
        nr_pages: 1,
        gup_flags: 3,
        pages: 2
    }
);

crate::counting_hook!(fentry_gup_fast, kprobe_gup_fast, hook::GUP_FAST);
crate::counting_hook!(fentry_gup_slow, kprobe_gup_slow, hook::GUP_SLOW);

/// `check_vma_flags(vma, gup_flags)`: the first VMA an in-flight long-term pin walks.
#[inline(always)]
fn on_check_vma_flags<C: Args>(ctx: &C) {
    counters::entry(hook::CHECK_VMA_FLAGS);
    let Some(vma) = walked_vma() else {
        return;
    };
    if vma.seen == 0 {
        let needs_dirty = vma.needs_dirty;
        *vma = layout::vma_info(ctx.arg_u64(0));
        vma.needs_dirty = needs_dirty;
    }
}

/// Where the current task's long-term pin in flight keeps the VMA its walk meets: its own record,
/// or the joining call's slot. `None` outside a long-term pin call.
#[inline(always)]
fn walked_vma() -> Option<&'static mut VmaInfo> {
    let task = batch::current()?;
    if task.in_call == 0 {
        return None;
    }
    Some(if task.joining != 0 {
        &mut task.join_vma
    } else {
        &mut task.call.vma
    })
}

entry_programs!(
    fentry_check_vma_flags,
    kprobe_check_vma_flags,
    on_check_vma_flags
);

/// `vma_needs_dirty_tracking()` returns bool: true means a long-term writable pin is refused.
#[inline(always)]
fn dirty_tracking_return<C: Ret>(ctx: &C) {
    counters::ret(hook::VMA_NEEDS_DIRTY_TRACKING);
    let needs = ctx.ret_i64() & 0xff != 0;
    if needs {
        counters::filtered(filter::DIRTY_TRACKING_NEEDED);
    }
    if let Some(vma) = walked_vma() {
        vma.needs_dirty = u32::from(needs);
    }
}
crate::counting_hook!(
    fentry_vma_needs_dirty_tracking,
    kprobe_vma_needs_dirty_tracking,
    hook::VMA_NEEDS_DIRTY_TRACKING
);
return_programs!(
    fexit_vma_needs_dirty_tracking,
    kretprobe_vma_needs_dirty_tracking,
    dirty_tracking_return
);

/// What an unpin entry point releases: its first argument is the page (or folio) itself, or an
/// array of them; `count` is the count argument's position, `None` for one page.
struct UnpinArgs {
    array: bool,
    count: Option<usize>,
}

/// Unpins are hot (O_DIRECT unpins every request): an event only for a task on the watch list,
/// or for memory a watched task pinned (`owners`). A watched task pinned its own process's
/// memory, and a foreign release comes from a kernel thread or a thread of the owner, so a
/// process that never pinned pays a flag test, not the watch list's lookup.
#[inline(always)]
fn on_unpin<C: Args>(ctx: &C, hook: u32, at: UnpinArgs) {
    counters::entry(hook);
    if !layout::current_may_hold_pins() {
        return;
    }
    let pages = at.count.map_or(1, |n| ctx.arg_u64(n));
    let key = bpf_get_current_pid_tgid();
    if let Some(remaining) = WATCH_UNPIN.get_ptr_mut(key) {
        let Some(task) = batch::current() else {
            emit_unpin(hook, pages, None);
            // SAFETY: valid map value owned by this task's entry.
            unsafe { release(key, remaining, pages) };
            return;
        };
        // The ledger must hold every pin before this release; then the unpins gather, and go
        // at once when the task has nothing pinned left (an unregistration's end).
        batch::flush_pins(task);
        batch::add_unpin(task, hook, pages);
        // SAFETY: as above.
        if unsafe { release(key, remaining, pages) } {
            batch::flush_unpins(task);
        }
        return;
    }
    // Someone else releasing memory a watched task pinned: a kworker, another thread.
    let first = if at.array {
        layout::read_ptr(ctx.arg_scalar(0))
    } else {
        Some(ctx.arg_scalar(0))
    };
    let Some((memory, owner)) = first.and_then(owners::of) else {
        return;
    };
    let Some(remaining) = WATCH_UNPIN.get_ptr_mut(owner.pid_tgid) else {
        // Its owner released everything already, or exited.
        owners::forget(memory);
        return;
    };
    emit_unpin(hook, pages, Some(owner));
    // SAFETY: valid map value of the owner's entry.
    if unsafe { release(owner.pid_tgid, remaining, pages) } {
        owners::forget(memory);
    }
}

#[inline(always)]
fn emit_unpin(hook: u32, pages: u64, owner: Option<owners::Owner>) {
    events::emit(&UnpinEvent {
        header: events::header(kind::UNPIN),
        hook,
        _pad: 0,
        pages,
        owner_pid_tgid: owner.map_or(0, |o| o.pid_tgid),
        owner_start_ns: owner.map_or(0, |o| o.start_ns),
    });
}

/// Takes `pages` off the watched task's remaining count; true when nothing is left (the entry
/// is gone).
///
/// # Safety
/// `remaining` is the live `WATCH_UNPIN` value of `key`.
#[inline(always)]
unsafe fn release(key: u64, remaining: *mut u64, pages: u64) -> bool {
    // SAFETY: per the contract.
    let left = unsafe { (*remaining).saturating_sub(pages) };
    if left == 0 {
        let _ = WATCH_UNPIN.remove(key);
        return true;
    }
    // SAFETY: as above.
    unsafe { *remaining = left };
    false
}

macro_rules! unpin_hook {
    ($fentry:ident, $kprobe:ident, $hook:expr, $array:expr, $count:expr) => {
        const _: () = {
            #[inline(always)]
            fn entry<C: Args>(ctx: &C) {
                on_unpin(
                    ctx,
                    $hook,
                    UnpinArgs {
                        array: $array,
                        count: $count,
                    },
                );
            }
            entry_programs!($fentry, $kprobe, entry);
        };
    };
}

unpin_hook!(
    fentry_unpin_user_page,
    kprobe_unpin_user_page,
    hook::UNPIN_USER_PAGE,
    false,
    None
);
unpin_hook!(
    fentry_unpin_user_pages,
    kprobe_unpin_user_pages,
    hook::UNPIN_USER_PAGES,
    true,
    Some(1)
);
unpin_hook!(
    fentry_unpin_user_pages_dirty_lock,
    kprobe_unpin_user_pages_dirty_lock,
    hook::UNPIN_USER_PAGES_DIRTY_LOCK,
    true,
    Some(1)
);
unpin_hook!(
    fentry_unpin_user_page_range_dirty_lock,
    kprobe_unpin_user_page_range_dirty_lock,
    hook::UNPIN_USER_PAGE_RANGE_DIRTY_LOCK,
    false,
    Some(1)
);
unpin_hook!(
    fentry_unpin_folio,
    kprobe_unpin_folio,
    hook::UNPIN_FOLIO,
    false,
    None
);
unpin_hook!(
    fentry_unpin_folios,
    kprobe_unpin_folios,
    hook::UNPIN_FOLIOS,
    true,
    Some(1)
);
unpin_hook!(
    fentry_unpin_user_folio,
    kprobe_unpin_user_folio,
    hook::UNPIN_USER_FOLIO,
    false,
    Some(1)
);
