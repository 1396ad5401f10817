//! GUP unpin entry points (`mm/gup.c`): the end of the pins `gup` watched, by the task that
//! took them or by someone releasing its memory (`owners`).

use probe_common::{
    event::{UnpinEvent, kind},
    hook,
};

use crate::{
    args::Args,
    batch, counters, entry_programs,
    events::{self, INFLIGHT},
    layout, owners,
};

/// What an unpin entry point releases: its first argument is the page (or folio) itself, or an
/// array of them; `count` is the count argument's position, `None` for one page.
struct UnpinArgs {
    array: bool,
    count: Option<usize>,
}

/// Unpins are hot (O_DIRECT unpins every request): an event only for a watched task (one that
/// holds pins it was granted: `TaskPins::watched`), or for memory a watched task pinned
/// (`owners`). A watched task pinned its own process's
/// memory, and a foreign release comes from a kernel thread or a thread of the owner, so a
/// process that never pinned pays a flag test, and one that never pinned long-term an array load.
#[inline(always)]
fn on_unpin<C: Args>(ctx: &C, hook: u32, at: UnpinArgs) {
    counters::entry(hook);
    if !layout::current_may_hold_pins() {
        return;
    }
    let pages = at.count.map_or(1, |n| ctx.arg_u64(n));
    // Most unpinning tasks (O_DIRECT) have no `INFLIGHT` entry, which an array load says.
    if let Some(task) = batch::current()
        && batch::watched(task)
    {
        // The ledger must hold every pin before this release; then the unpins gather, and go
        // at once when the task has nothing pinned left (an unregistration's end).
        batch::flush_pins(task);
        batch::add_unpin(task, hook, pages);
        // SAFETY: the current task's live entry.
        if unsafe { batch::release(task, pages) } {
            batch::flush_unpins(task);
            task.owner_mapping = 0;
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
    let Some(task) = INFLIGHT.get_ptr_mut(owner.pid_tgid) else {
        // Its owner exited.
        owners::forget(memory);
        return;
    };
    // SAFETY: the owner's live entry; `watched` is read and changed atomically.
    if !batch::watched(unsafe { &*task }) {
        // Its owner released everything already.
        owners::forget(memory);
        return;
    }
    emit_unpin(hook, pages, Some(owner));
    // SAFETY: as above.
    if unsafe { batch::release(task, pages) } {
        owners::forget(memory);
        // SAFETY: as above; a plain store its own programs only compare.
        unsafe { (*task).owner_mapping = 0 };
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
