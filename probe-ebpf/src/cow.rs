//! Copy-on-write and fork (`mm/memory.c`, `mm/rmap.c`).

use probe_common::hook;

use crate::counting_hook;

counting_hook!(fentry_do_wp_page, kprobe_do_wp_page, hook::DO_WP_PAGE);
counting_hook!(fentry_wp_page_copy, kprobe_wp_page_copy, hook::WP_PAGE_COPY);
counting_hook!(
    fentry_copy_page_range,
    kprobe_copy_page_range,
    hook::COPY_PAGE_RANGE
);
counting_hook!(
    fentry_new_anon_rmap,
    kprobe_new_anon_rmap,
    hook::NEW_ANON_RMAP
);
