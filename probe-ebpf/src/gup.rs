//! GUP pin entry points (`mm/gup.c`) and where a long-term pin meets its VMA.
//!
//! A long-term pin (FOLL_LONGTERM in the caller's flags) is judged at its return: fexit sees
//! the arguments (a kprobe entry carries them to a kretprobe). `check_vma_flags` keeps the VMA
//! the call walks and `vma_needs_dirty_tracking` the kernel's verdict in the task's `INFLIGHT`
//! entry; the return emits one `PinEvent`, or adds the call to the task's open batch (`batch`).
//! Short-term pins (O_DIRECT…) only count. Their release is `unpin`.

use aya_ebpf::{EbpfContext, helpers::bpf_get_current_pid_tgid, macros::map, maps::LruHashMap};
use probe_common::{
    event::{PinCall, PinEvent, Syscall, TaskPins, kind, seen},
    hook, loss, map as maps, verdict,
};

use crate::{
    args::{Args, Ret},
    batch, counters, entry_programs, events, layout, owners, return_programs,
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

impl PinArgs {
    #[inline(always)]
    fn read<C: Args>(&self, ctx: &C) -> PinCall {
        PinCall {
            start: ctx.arg_u64(self.start),
            nr_pages: ctx.arg_u64(self.nr_pages),
            pages_array: ctx.arg_scalar(self.pages),
            gup_flags: ctx.arg_u64(self.gup_flags) as u32,
            stack_id: -1,
        }
    }

    /// The arguments as the return program sees them: fexit has them, a kretprobe does not.
    #[inline(always)]
    fn at_return<C: Ret>(&self, ctx: &C) -> Option<PinCall> {
        Some(PinCall {
            start: ctx.entry_arg_u64(self.start)?,
            nr_pages: ctx.entry_arg_u64(self.nr_pages)?,
            pages_array: ctx.entry_arg_scalar(self.pages)?,
            gup_flags: ctx.entry_arg_u64(self.gup_flags)? as u32,
            stack_id: -1,
        })
    }
}

/// Whether a pin with these flags is long-term (and pinwatch knows the flag); short-term pins
/// (O_DIRECT: one per I/O) are only counted.
#[inline(always)]
fn longterm(gup_flags: u32) -> bool {
    match layout::foll_longterm() {
        Some(longterm) if gup_flags & longterm != 0 => true,
        Some(_) => {
            counters::verdict(if gup_flags & FOLL_WRITE != 0 {
                verdict::SHORT_TERM_PIN_WRITE
            } else {
                verdict::SHORT_TERM_PIN_READ
            });
            false
        }
        None => false,
    }
}

/// The kprobe entry carries a long-term pin's arguments and stack to its kretprobe, which has
/// neither. Under fentry there is no entry program: fexit sees the arguments, and its stack is
/// the same trampoline's.
#[inline(always)]
fn on_pin_entry<C: Args>(ctx: &C, hook: u32, at: PinArgs) {
    counters::entry(hook);
    let mut call = at.read(ctx);
    if !longterm(call.gup_flags) || !events::armed() {
        return;
    }
    let Some(task) = batch::task_pins(ctx) else {
        return;
    };
    call.stack_id = pin_stack(ctx, &layout::current_syscall(), hook) as i32;
    task.entry = call;
    task.in_call = 1;
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
fn pin_stack<C: EbpfContext>(ctx: &C, syscall: &Syscall, hook: u32) -> i64 {
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
    let id = crate::stacks::take(ctx);
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
    let arguments = at.at_return(ctx);
    if arguments.is_some() {
        // The return program alone (fexit): it counts the call too.
        counters::entry(hook);
    }
    counters::ret(hook);
    let ret = ctx.ret_i64() as i32;
    if ret < 0 {
        counters::verdict(verdict::PIN_FAILED);
    }
    let (task, call) = match arguments {
        Some(call) => {
            if !longterm(call.gup_flags) || !events::armed() {
                return;
            }
            let Some(task) = batch::task_pins(ctx) else {
                return;
            };
            (task, call)
        }
        None => {
            // A kretprobe: its entry said whether this is a long-term pin worth following.
            let Some(task) = batch::current() else {
                return;
            };
            if core::mem::take(&mut task.in_call) == 0 {
                return;
            }
            let call = task.entry;
            (task, call)
        }
    };
    pin_returned(ctx, task, hook, call, ret);
}

/// A long-term pin call returned `ret`: it joins the task's open batch (the storm's common
/// case: no record), or it is sent on its own and may open one.
#[inline(always)]
fn pin_returned<C: EbpfContext>(
    ctx: &C,
    task: &'static mut TaskPins,
    hook: u32,
    call: PinCall,
    ret: i32,
) {
    let key = bpf_get_current_pid_tgid();
    // A pin ends the task's unpin run: the ledger sees releases and pins in their order.
    batch::flush_unpins(task);
    let walked = batch::take_walk(task, call.start);
    if ret > 0 && batch::joins(task, hook, &call, &walked) {
        hold(task, key, &call, ret as u64);
        batch::join(task, call.start, ret as u64);
        return;
    }
    // It cannot join (another call, refused, another VMA): the run ends here, and this call is
    // sent on its own. Built in the task's entry: no room on the stack.
    batch::close_pins(task);
    task.call = PinEvent {
        header: events::header(kind::PIN),
        hook,
        gup_flags: call.gup_flags,
        start: call.start,
        nr_pages: call.nr_pages,
        ret: i64::from(ret),
        stack_id: i64::from(call.stack_id),
        vma: walked,
        pages_array: 0,
    };
    // GUP-fast walks no VMA: a page-cache page pinned that way (shmem, memfd) is named by its
    // first page, so that a later removal from its file can be traced back to this pin.
    if task.call.vma.seen == seen::NONE && ret > 0 {
        layout::name_first_page_file(&mut task.call.vma, call.pages_array, call.start);
    }
    if call.stack_id < 0 {
        task.call.stack_id = pin_stack(ctx, &task.call.header.syscall, hook);
    }
    if ret > 0 {
        hold(task, key, &call, ret as u64);
    }
    if !events::emit(&task.call) {
        counters::lost(loss::RINGBUF_DROPPED_PIN_CALLS);
    }
    batch::open(task);
}

/// The task (`key`) holds the `pages` its call was granted: their unpins are watched, and
/// their memory's owner recorded for a release by someone else. `task.call` is this task's
/// last pin sent on its own (the batch's opener, or this call): its header has the process's
/// start time.
#[inline(always)]
fn hold(task: &mut TaskPins, key: u64, call: &PinCall, pages: u64) {
    batch::watch(task, pages);
    let owner = owners::Owner {
        pid_tgid: key,
        start_ns: task.call.header.task_start_ns,
    };
    owners::record(task, call.pages_array, owner);
}

/// A pin entry point's programs: `fexit_<hook>` alone under fentry; `kprobe_<hook>` and
/// `kretprobe_<hook>` under kprobes (see `probes::Returns::Alone` in userspace).
macro_rules! pin_hook {
    ($kprobe:ident, $fexit:ident, $kretprobe:ident, $hook:expr, $args:expr) => {
        const _: () = {
            #[aya_ebpf::macros::kprobe]
            pub fn $kprobe(ctx: aya_ebpf::programs::ProbeContext) -> u32 {
                if !$crate::idle() {
                    on_pin_entry(&ctx, $hook, $args);
                }
                0
            }
            #[inline(always)]
            fn exit<C: Ret>(ctx: &C) {
                on_pin_return(ctx, $hook, $args);
            }
            return_programs!($fexit, $kretprobe, exit);
        };
    };
}

// 6.1: pin_user_pages(start, nr_pages, gup_flags, pages, vmas); later without vmas.
pin_hook!(
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

/// `check_vma_flags(vma, gup_flags)`: a VMA a long-term GUP walks, kept in the task's entry
/// for the pin call's return (`batch::walked`).
#[inline(always)]
fn on_check_vma_flags<C: Args>(ctx: &C) {
    counters::entry(hook::CHECK_VMA_FLAGS);
    let gup_flags = ctx.arg_u64(1) as u32;
    if !layout::foll_longterm().is_some_and(|longterm| gup_flags & longterm != 0) {
        return;
    }
    if let Some(task) = batch::task_pins(ctx) {
        batch::walked(task, ctx.arg_u64(0));
    }
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
        counters::verdict(verdict::DIRTY_TRACKING_NEEDED);
    }
    // Asked by a long-term GUP's walk (`check_vma_flags` runs first), or by mmap and mprotect
    // (`vma_wants_writenotify`) with no walk in progress.
    if let Some(task) = batch::current()
        && task.walk.seen != 0
    {
        task.walk.needs_dirty = u32::from(needs);
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
