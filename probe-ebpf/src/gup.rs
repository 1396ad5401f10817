//! GUP pin and unpin entry points (`mm/gup.c`).

use probe_common::{filter, hook};

use crate::{args::Ret, counters, counting_hook, return_programs};

counting_hook!(
    fentry_pin_user_pages,
    kprobe_pin_user_pages,
    hook::PIN_USER_PAGES
);
counting_hook!(
    fentry_pin_user_pages_fast,
    kprobe_pin_user_pages_fast,
    hook::PIN_USER_PAGES_FAST
);
counting_hook!(
    fentry_pin_user_pages_remote,
    kprobe_pin_user_pages_remote,
    hook::PIN_USER_PAGES_REMOTE
);
counting_hook!(
    fentry_pin_user_pages_unlocked,
    kprobe_pin_user_pages_unlocked,
    hook::PIN_USER_PAGES_UNLOCKED
);
counting_hook!(fentry_gup_fast, kprobe_gup_fast, hook::GUP_FAST);
counting_hook!(fentry_gup_slow, kprobe_gup_slow, hook::GUP_SLOW);

counting_hook!(
    fentry_unpin_user_page,
    kprobe_unpin_user_page,
    hook::UNPIN_USER_PAGE
);
counting_hook!(
    fentry_unpin_user_pages,
    kprobe_unpin_user_pages,
    hook::UNPIN_USER_PAGES
);
counting_hook!(
    fentry_unpin_user_pages_dirty_lock,
    kprobe_unpin_user_pages_dirty_lock,
    hook::UNPIN_USER_PAGES_DIRTY_LOCK
);
counting_hook!(
    fentry_unpin_user_page_range_dirty_lock,
    kprobe_unpin_user_page_range_dirty_lock,
    hook::UNPIN_USER_PAGE_RANGE_DIRTY_LOCK
);
counting_hook!(fentry_unpin_folio, kprobe_unpin_folio, hook::UNPIN_FOLIO);
counting_hook!(fentry_unpin_folios, kprobe_unpin_folios, hook::UNPIN_FOLIOS);
counting_hook!(
    fentry_unpin_user_folio,
    kprobe_unpin_user_folio,
    hook::UNPIN_USER_FOLIO
);

/// The pin entry points return the number of pages pinned or a negative errno; a refusal of a
/// long-term file pin shows up here as -EFAULT on 6.5+. `pin_user_pages_fast` returns `int`, so
/// only the low 32 bits of the register are meaningful: compare them as `i32` (page counts of a
/// single call never reach 2^31).
macro_rules! pin_return {
    ($fexit:ident, $kretprobe:ident, $hook:expr) => {
        const _: () = {
            fn on_return<C: Ret>(ctx: &C) {
                counters::ret($hook);
                if (ctx.ret_i64() as i32) < 0 {
                    counters::filtered(filter::PIN_FAILED);
                }
            }
            return_programs!($fexit, $kretprobe, on_return);
        };
    };
}

pin_return!(
    fexit_pin_user_pages,
    kretprobe_pin_user_pages,
    hook::PIN_USER_PAGES
);
pin_return!(
    fexit_pin_user_pages_fast,
    kretprobe_pin_user_pages_fast,
    hook::PIN_USER_PAGES_FAST
);
pin_return!(
    fexit_pin_user_pages_remote,
    kretprobe_pin_user_pages_remote,
    hook::PIN_USER_PAGES_REMOTE
);
pin_return!(
    fexit_pin_user_pages_unlocked,
    kretprobe_pin_user_pages_unlocked,
    hook::PIN_USER_PAGES_UNLOCKED
);

/// `vma_needs_dirty_tracking()` returns bool: true means a long-term writable pin is refused.
fn dirty_tracking_return<C: Ret>(ctx: &C) {
    counters::ret(hook::VMA_NEEDS_DIRTY_TRACKING);
    if ctx.ret_i64() & 0xff != 0 {
        counters::filtered(filter::DIRTY_TRACKING_NEEDED);
    }
}

counting_hook!(
    fentry_vma_needs_dirty_tracking,
    kprobe_vma_needs_dirty_tracking,
    hook::VMA_NEEDS_DIRTY_TRACKING
);
return_programs!(
    fexit_vma_needs_dirty_tracking,
    kretprobe_vma_needs_dirty_tracking,
    dirty_tracking_return
);
