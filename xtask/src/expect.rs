//! Per-kernel expectations of the VM matrix: which symbol each hook must attach to, whether a
//! workload must make it fire, the struct layout BTF must yield, and what doctor must say.
//! The values are those of the exact Debian builds `scripts/setup.sh` installs (its `KERNELS`
//! list), and every matrix run checks them against the guest kernel's own BTF and kallsyms.

/// What must be true of one hook on one kernel.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// Attached to this symbol and hit at least once by the workloads.
    Fires(&'static str),
    /// Attached to this symbol; no workload available in the guest calls it (the reason).
    AttachedOnly(&'static str, &'static str),
    /// The kernel has none of the hook's candidates (inlined or not in this version).
    Absent,
}

pub struct Kernel {
    pub name: &'static str,
    pub release_prefix: &'static str,
    pub hooks: &'static [(&'static str, Expect)],
    pub layout: &'static [(&'static str, u64)],
    pub foll_source: &'static str,
    pub foll_values: &'static [(&'static str, u64)],
    pub behaviours: &'static [(&'static str, &'static str)],
    /// Lower bounds on the in-kernel filters' verdicts over the workloads (doctor's
    /// `watch.verdicts`).
    pub verdicts_min: &'static [(&'static str, u64)],
    /// Upper bounds: what must stay silent on this kernel.
    pub verdicts_max: &'static [(&'static str, u64)],
    /// Exactly the findings `pinwatch audit` must report over the workloads:
    /// (hazard, outcome, pinner — for an untrack, its origin —, filesystem, pages), `-` for none
    /// (a pin pinwatch did not see; no file). Every other workload (anonymous, shmem,
    /// read-only, short-term pins; unpinned writeback) must stay silent.
    pub findings: &'static [Finding],
    /// Write faults that must be seen reusing a pinned page in place (counted, not findings):
    /// the proof that a silent pinned-cow row is silent because the kernel did the right thing.
    pub pinned_reuses_min: u64,
    /// Exactly the findings of `pinwatch audit --for 12s` started while a VFIO file pin taken
    /// before it is held (6.1 grants it), then written back.
    pub preexisting: &'static [Finding],
    /// Exactly the findings, with their page sizes, of the audit over an xfs file read back in
    /// 2 MiB folios, pinned by VFIO and written back (xtask/src/verify/page_sizes.rs).
    pub large_folios: &'static [SizedFinding],
    /// Hazards `pinwatch doctor` cannot observe as an unprivileged user holding only the
    /// systemd unit's capabilities, under Debian's perf_event_paranoid=3 (perf events refused).
    pub blind_with_caps_only: &'static [&'static str],
    /// Exactly the findings of the audit over the guest_memfd pass's three runs (16 pages
    /// pinned then 8 punched; 20 pinned, released, then 10 punched; 24 never pinned, 12
    /// punched): none where the kernel has no guest_memfd.
    pub gmem: &'static [Finding],
}

/// Writeback of pinned folios whose pin pinwatch never saw: still reported, unattributed.
const CLEANED_UNDER_AN_OLD_PIN: &[Finding] =
    &[("pinned-folio-cleaned", "unattributed", "-", "ext4", 16)];

/// 7.2 grants io_uring's pins of guest_memfd's host mapping (both pinned runs), and the punch
/// while pinned drops 8 pinned pages from its page cache; the punch after unregistering and the
/// run that never pinned are silent.
const GMEM_7_2: &[Finding] = &[
    ("guest-memfd-pin", "granted", "io_uring", "guest_memfd", 16),
    ("guest-memfd-pin", "granted", "io_uring", "guest_memfd", 20),
    (
        "pinned-page-discarded",
        "attributed",
        "io_uring",
        "guest_memfd",
        8,
    ),
];

pub type Finding = (&'static str, &'static str, &'static str, &'static str, u64);
/// A finding and the page size it reports (`None`: the hazard has none).
pub type SizedFinding = (Finding, Option<u64>);

/// 6.1 grants VFIO's pin of 1024 xfs pages held in two 2 MiB folios, and the msync cleans both
/// folios under it: 1024 base pages, not 2. A read-only pin of a MAP_PRIVATE xfs file in 2 MiB
/// folios keeps the page-cache folios pinned, and each write copies a pinned page: the pin
/// count is the large folio's, read on its head.
const LARGE_FOLIOS_6_1: &[SizedFinding] = &[
    (("longterm-file-pin", "granted", "vfio", "xfs", 1024), None),
    (
        ("pinned-folio-cleaned", "attributed", "vfio", "xfs", 1024),
        Some(2 << 20),
    ),
    (("pinned-cow", "copied", "vfio", "-", 1024), None),
];
/// 6.5+ refuses the shared pin (nothing pinned is cleaned): VFIO pins in batches of 512 pages
/// (one page of page pointers) and stops at the first refused batch. The private pages are
/// unshared at pin time.
const LARGE_FOLIOS_6_5_ON: &[SizedFinding] = &[
    (("longterm-file-pin", "refused", "vfio", "xfs", 512), None),
    (("pinned-cow", "unshared", "vfio", "-", 1024), None),
];

/// 6.1: VFIO keeps its long-term pin of 16 ext4 MAP_SHARED pages, and the msync that follows
/// cleans them under the pin; io_uring pins the same kind of buffer and releases it in the same
/// system call (its own EOPNOTSUPP check). And rebinding virtio-pci to the device whose BAR the
/// workload mapped through sysfs `resource4` (4 pages) zaps the mapping (`revoke_iomem`), which
/// frees its memtype on the spot.
/// The `discard` workloads' ext4 scenarios (workloads/src/discard/scenarios.rs, run by
/// `workloads all`) each pin a MAP_SHARED ext4 file with VFIO: all 43 pages of the file
/// truncated while pinned, all 57 of the one truncated after the unpin, and the first 32 of the
/// 58-page one truncated beyond them. 6.1 grants every pin, and the truncates write nothing
/// back: no pinned folio is cleaned.
const DISCARD_TRUNCATED_PINNED_6_1: Finding = ("longterm-file-pin", "granted", "vfio", "ext4", 43);
const DISCARD_TRUNCATED_AFTER_UNPIN_6_1: Finding =
    ("longterm-file-pin", "granted", "vfio", "ext4", 57);
const DISCARD_TRUNCATED_OUTSIDE_6_1: Finding = ("longterm-file-pin", "granted", "vfio", "ext4", 32);
/// 6.5+ refuse the same three pins with EFAULT (each below VFIO's 512-page batch, so the whole
/// request is the refused batch); the truncates that follow then discard nothing pinned.
const DISCARD_TRUNCATED_PINNED_6_5_ON: Finding =
    ("longterm-file-pin", "refused", "vfio", "ext4", 43);
const DISCARD_TRUNCATED_AFTER_UNPIN_6_5_ON: Finding =
    ("longterm-file-pin", "refused", "vfio", "ext4", 57);
const DISCARD_TRUNCATED_OUTSIDE_6_5_ON: Finding =
    ("longterm-file-pin", "refused", "vfio", "ext4", 32);

/// The `discard` scenarios that take memory from under a live pin, each found with its own page
/// count, attributed to the pin (workloads/src/discard/scenarios.rs): a memfd punched (3),
/// truncated (5) and MADV_REMOVEd (6) under io_uring's pin, and anonymous memory
/// MADV_DONTNEEDed under io_uring's (7) and VFIO's (9). Every control stays silent: the same
/// discards after the unpin or outside the pinned range, of memory never pinned, MADV_FREE of
/// pinned memory (the kernel keeps it) and MADV_DONTNEED of a pinned MAP_SHARED memfd (the
/// folio stays in the page cache). On every kernel.
const DISCARDED_UNDER_A_PIN: [Finding; 5] = [
    (
        "pinned-page-discarded",
        "attributed",
        "io_uring",
        "tmpfs",
        3,
    ),
    (
        "pinned-page-discarded",
        "attributed",
        "io_uring",
        "tmpfs",
        5,
    ),
    (
        "pinned-page-discarded",
        "attributed",
        "io_uring",
        "tmpfs",
        6,
    ),
    ("pinned-page-discarded", "attributed", "io_uring", "-", 7),
    ("pinned-page-discarded", "attributed", "vfio", "-", 9),
];
/// 6.1 only: the ext4 file VFIO pinned (granted) truncated under the pin: 11 pinned pages
/// dropped from its page cache through truncate's batch path.
const DISCARD_TRUNCATED_UNDER_VFIO_6_1: Finding =
    ("pinned-page-discarded", "attributed", "vfio", "ext4", 11);

const FINDINGS_6_1: &[Finding] = &[
    ("longterm-file-pin", "granted", "vfio", "ext4", 16),
    ("pinned-folio-cleaned", "attributed", "vfio", "ext4", 16),
    (
        "longterm-file-pin",
        "released-by-caller",
        "io_uring",
        "ext4",
        16,
    ),
    EARLY_UNTRACK_BY_REBIND,
    PIN_THEN_FORK,
    PINNED_PRIVATE_FILE_COW,
    UNSHARED_6_1,
    PIN_THEN_FORK_DONTFORK,
    EARLY_UNTRACK_BY_VFIO_ZAP,
    AGAIN_AT_MUNMAP_SYSFS,
    AGAIN_AT_MUNMAP_VFIO,
    DISCARD_TRUNCATED_PINNED_6_1,
    DISCARD_TRUNCATED_AFTER_UNPIN_6_1,
    DISCARD_TRUNCATED_OUTSIDE_6_1,
    DISCARD_TRUNCATED_UNDER_VFIO_6_1,
    DISCARDED_UNDER_A_PIN[0],
    DISCARDED_UNDER_A_PIN[1],
    DISCARDED_UNDER_A_PIN[2],
    DISCARDED_UNDER_A_PIN[3],
    DISCARDED_UNDER_A_PIN[4],
];
/// All three: io_uring registers 16 anonymous pages, then forks. The kernel copies the pinned
/// pages for the child at fork…
/// 6.1 only: a read-only VFIO pin of a read-faulted ext4 MAP_PRIVATE mapping pins the
/// page-cache pages themselves; the 16 writes that follow each copy a pinned page. From 6.2 the
/// pin unshares first and the writes reuse the pinned anonymous copies (silent).
const PINNED_PRIVATE_FILE_COW: Finding = ("pinned-cow", "copied", "vfio", "-", 16);
/// A read-only VFIO pin of 16 anonymous pages shared with a fork child unshares (copies) each
/// page before pinning it, on every kernel. From 6.2 the MAP_PRIVATE file pin above unshares its
/// 16 page-cache pages too (one finding per process and pinner: 32).
const UNSHARED_6_1: Finding = ("pinned-cow", "unshared", "vfio", "-", 16);
const UNSHARED_6_2_ON: Finding = ("pinned-cow", "unshared", "vfio", "-", 32);
/// 6.1 only: vfio-pci maps a BAR with io_remap_pfn_range over the whole VMA (VM_PAT); clearing
/// memory-enable through the config region zaps it (zap_vma_ptes) and frees its memtype while
/// the 1-page VMA stays mapped. 6.12 and 7.2 insert PFNs without VM_PAT: silent.
const EARLY_UNTRACK_BY_VFIO_ZAP: Finding = (
    "early-pfn-untrack",
    "untracked-while-mapped",
    "vfio-pci-bar-zap",
    "anon_inode",
    1,
);
/// …and the munmap that follows each early untrack untracks the same VMA again.
const AGAIN_AT_MUNMAP_SYSFS: Finding = (
    "early-pfn-untrack",
    "untracked-again-at-munmap",
    "munmap",
    "sysfs",
    4,
);
const AGAIN_AT_MUNMAP_VFIO: Finding = (
    "early-pfn-untrack",
    "untracked-again-at-munmap",
    "munmap",
    "anon_inode",
    1,
);
const PIN_THEN_FORK: Finding = ("fork-with-pins", "eager-copy", "io_uring", "-", 16);
/// …and with MADV_DONTFORK on the buffer: nothing copied, reported as protected.
const PIN_THEN_FORK_DONTFORK: Finding = ("fork-with-pins", "protected", "io_uring", "-", 16);
const EARLY_UNTRACK_BY_REBIND: Finding = (
    "early-pfn-untrack",
    "untracked-while-mapped",
    "revoke-iomem",
    "sysfs",
    4,
);
/// 6.5+: GUP refuses both registrations with EFAULT, so nothing pinned is ever cleaned.
/// 6.12 still untracks PFNs from the zap path.
const FINDINGS_6_12: &[Finding] = &[
    ("longterm-file-pin", "refused", "vfio", "ext4", 16),
    ("longterm-file-pin", "refused", "io_uring", "ext4", 16),
    EARLY_UNTRACK_BY_REBIND,
    PIN_THEN_FORK,
    UNSHARED_6_2_ON,
    PIN_THEN_FORK_DONTFORK,
    AGAIN_AT_MUNMAP_SYSFS,
    DISCARD_TRUNCATED_PINNED_6_5_ON,
    DISCARD_TRUNCATED_AFTER_UNPIN_6_5_ON,
    DISCARD_TRUNCATED_OUTSIDE_6_5_ON,
    DISCARDED_UNDER_A_PIN[0],
    DISCARDED_UNDER_A_PIN[1],
    DISCARDED_UNDER_A_PIN[2],
    DISCARDED_UNDER_A_PIN[3],
    DISCARDED_UNDER_A_PIN[4],
];
/// 7.2 keeps the memtype until the last VMA goes: the rebind zap untracks nothing.
const FINDINGS_7_2: &[Finding] = &[
    ("longterm-file-pin", "refused", "vfio", "ext4", 16),
    ("longterm-file-pin", "refused", "io_uring", "ext4", 16),
    PIN_THEN_FORK,
    UNSHARED_6_2_ON,
    PIN_THEN_FORK_DONTFORK,
    DISCARD_TRUNCATED_PINNED_6_5_ON,
    DISCARD_TRUNCATED_AFTER_UNPIN_6_5_ON,
    DISCARD_TRUNCATED_OUTSIDE_6_5_ON,
    DISCARDED_UNDER_A_PIN[0],
    DISCARDED_UNDER_A_PIN[1],
    DISCARDED_UNDER_A_PIN[2],
    DISCARDED_UNDER_A_PIN[3],
    DISCARDED_UNDER_A_PIN[4],
];

/// msync writes back 16 dirty ext4 pages that nobody pins (the `msync` workload): each
/// folio_mkclean must be classified, proving the BTF layout reached the eBPF globals.
const CLASSIFIED_UNPINNED: (&str, u64) = ("mkclean_unpinned", 16);
/// 6.1 grants VFIO a long-term writable pin of 16 ext4 MAP_SHARED pages; the msync that follows
/// cleans exactly those pinned folios. Nothing is refused there.
const GRANTED_FILE_PIN: [(&str, u64); 2] = [CLASSIFIED_UNPINNED, ("mkclean_pinned", 16)];
const NOTHING_REFUSED: [(&str, u64); 2] = [("pin_failed", 0), ("dirty_tracking_needed", 0)];
/// 6.5+ refuses the io_uring and the VFIO registration of ext4 MAP_SHARED buffers with EFAULT,
/// each after vma_needs_dirty_tracking answered true…
const REFUSED_FILE_PINS: [(&str, u64); 3] = [
    CLASSIFIED_UNPINNED,
    ("pin_failed", 2),
    ("dirty_tracking_needed", 2),
];
/// …so no pinned folio is ever cleaned.
const NO_PINNED_CLEAN: [(&str, u64); 1] = [("mkclean_pinned", 0)];

use Expect::{Absent, AttachedOnly, Fires};

const FORK_TP: Expect = Fires("sched:sched_process_fork");
const EXIT_TP: Expect = Fires("sched:sched_process_exit");
/// Every truncate of a cached file passes it (the workloads truncate files).
const PAGE_CACHE_TP: Expect = Fires("filemap:mm_filemap_delete_from_page_cache");
/// Callers of these exist only in drivers the cloud kernels do not build or the guest lacks.
const NO_UNLOCKED_CALLER: &str = "callers are media/RDMA/acrn drivers absent from the guest";
/// 6.1's io_uring pins with pin_user_pages and its O_DIRECT takes FOLL_GET references.
const NO_FAST_PIN_CALLER_6_1: &str =
    "io_uring uses pin_user_pages and O_DIRECT get_user_pages_fast on 6.1";
/// From 6.12, io_uring and the block layer unpin whole folios (unpin_user_folio).
const NO_PAGE_UNPIN_CALLER: &str =
    "io_uring and O_DIRECT unpin whole folios (unpin_user_folio) here; other callers are drivers";
/// udmabuf releases folio by folio; unpin_folios serves memfd_pin_folios' error path.
const NO_FOLIOS_CALLER: &str =
    "udmabuf unpins one folio at a time; unpin_folios serves memfd_pin_folios failures";
/// Before 7.2, VFIO type1 unpins page by page; the remaining caller is RDMA umem release.
/// The workloads doctor watches fork no pinned hugetlb memory: the huge-pages pass does
/// (xtask/src/verify/page_sizes.rs), and its findings prove the hook fired there.
const HUGETLB_FORK_ELSEWHERE: &str =
    "no pinned hugetlb memory is forked in these workloads; the huge-pages pass forks some";
const NO_RANGE_CALLER: &str = "VFIO unpins page by page before 7.2; the other caller is RDMA umem";

pub const KERNELS: &[Kernel] = &[
    Kernel {
        name: "6.1",
        release_prefix: "6.1.",
        hooks: &[
            ("pin_user_pages", Fires("pin_user_pages")),
            (
                "pin_user_pages_fast",
                AttachedOnly("pin_user_pages_fast", NO_FAST_PIN_CALLER_6_1),
            ),
            ("pin_user_pages_remote", Fires("pin_user_pages_remote")),
            (
                "pin_user_pages_unlocked",
                AttachedOnly("pin_user_pages_unlocked", NO_UNLOCKED_CALLER),
            ),
            ("gup_fast", Fires("internal_get_user_pages_fast")),
            ("gup_slow", Fires("__gup_longterm_locked")),
            ("unpin_user_page", Fires("unpin_user_page")),
            ("unpin_user_pages", Fires("unpin_user_pages")),
            (
                "unpin_user_pages_dirty_lock",
                Fires("unpin_user_pages_dirty_lock"),
            ),
            (
                "unpin_user_page_range_dirty_lock",
                AttachedOnly("unpin_user_page_range_dirty_lock", NO_RANGE_CALLER),
            ),
            ("unpin_folio", Absent),
            ("unpin_folios", Absent),
            ("unpin_user_folio", Absent),
            ("folio_mkclean", Fires("folio_mkclean")),
            ("do_wp_page", Fires("do_wp_page")),
            ("wp_page_copy", Fires("wp_page_copy")),
            ("copy_page_range", Fires("copy_page_range")),
            ("new_anon_rmap", Fires("page_add_new_anon_rmap")),
            (
                "hugetlb_new_anon_rmap",
                AttachedOnly("hugepage_add_new_anon_rmap", HUGETLB_FORK_ELSEWHERE),
            ),
            ("ring_exit_work", Fires("io_ring_exit_work")),
            ("vma_needs_dirty_tracking", Absent),
            ("pfn_track", Fires("track_pfn_remap")),
            ("pfn_untrack", Fires("untrack_pfn")),
            ("zap_single_vma", Fires("zap_page_range_single")),
            ("unmap_mapping_range", Fires("unmap_mapping_range")),
            ("check_vma_flags", Fires("check_vma_flags")),
            ("process_fork", FORK_TP),
            ("process_exit", EXIT_TP),
            ("page_cache_delete", PAGE_CACHE_TP),
            ("madvise", Fires("do_madvise")),
            ("kvm_gmem_ioctl", Absent),
        ],
        layout: &[
            ("folio_flags", 0),
            ("folio_refcount", 52),
            ("folio_pincount", 88),
            ("pg_head_bit", 16),
            ("folio_order", 81),
            ("page_tail", 8),
            ("page_struct_size", 64),
            ("anon_vma_root", 0),
            ("vma_flags", 32),
            ("vma_file", 112),
            ("vm_fault_flags", 40),
            ("vm_fault_page", 80),
            ("vm_fault_address", 24),
            ("zap_vma_arg", 0),
        ],
        foll_source: "legacy-defines",
        foll_values: &[
            ("FOLL_WRITE", 0x1),
            ("FOLL_LONGTERM", 0x10000),
            ("FOLL_PIN", 0x40000),
        ],
        behaviours: &[
            ("longterm-file-pin", "granted"),
            ("pinned-folio-cleaned", "present"),
            ("fork-with-pins", "present"),
            ("pinned-cow", "present"),
            ("early-pfn-untrack", "present"),
            ("pinned-page-discarded", "present"),
            ("guest-memfd-pin", "absent"),
        ],
        verdicts_min: &GRANTED_FILE_PIN,
        verdicts_max: &NOTHING_REFUSED,
        findings: FINDINGS_6_1,
        pinned_reuses_min: 0,
        preexisting: CLEANED_UNDER_AN_OLD_PIN,
        large_folios: LARGE_FOLIOS_6_1,
        // pin_user_pages_remote takes 7 arguments: 6.1's trampolines refuse it, so it needs a
        // kprobe, which paranoid=3 refuses without CAP_SYS_ADMIN. Every hazard it feeds is blind.
        // pin_user_pages_remote (VFIO's pins) takes 8 arguments on 6.1: a kprobe, refused.
        // Every hazard that follows pins is blind without it.
        blind_with_caps_only: &[
            "fork-with-pins",
            "guest-memfd-pin",
            "longterm-file-pin",
            "pinned-cow",
            "pinned-folio-cleaned",
            "pinned-page-discarded",
        ],
        gmem: &[],
    },
    Kernel {
        name: "6.12",
        release_prefix: "6.12.",
        hooks: &[
            ("pin_user_pages", Fires("pin_user_pages")),
            ("pin_user_pages_fast", Fires("pin_user_pages_fast")),
            ("pin_user_pages_remote", Fires("pin_user_pages_remote")),
            (
                "pin_user_pages_unlocked",
                AttachedOnly("pin_user_pages_unlocked", NO_UNLOCKED_CALLER),
            ),
            ("gup_fast", Fires("gup_fast_fallback")),
            ("gup_slow", Fires("__gup_longterm_locked")),
            (
                "unpin_user_page",
                AttachedOnly("unpin_user_page", NO_PAGE_UNPIN_CALLER),
            ),
            ("unpin_user_pages", Fires("unpin_user_pages")),
            (
                "unpin_user_pages_dirty_lock",
                Fires("unpin_user_pages_dirty_lock"),
            ),
            (
                "unpin_user_page_range_dirty_lock",
                AttachedOnly("unpin_user_page_range_dirty_lock", NO_RANGE_CALLER),
            ),
            ("unpin_folio", Fires("unpin_folio")),
            (
                "unpin_folios",
                AttachedOnly("unpin_folios", NO_FOLIOS_CALLER),
            ),
            ("unpin_user_folio", Fires("unpin_user_folio")),
            ("folio_mkclean", Fires("folio_mkclean")),
            ("do_wp_page", Fires("do_wp_page")),
            ("wp_page_copy", Absent),
            ("copy_page_range", Fires("copy_page_range")),
            ("new_anon_rmap", Fires("folio_add_new_anon_rmap")),
            (
                "hugetlb_new_anon_rmap",
                AttachedOnly("hugetlb_add_new_anon_rmap", HUGETLB_FORK_ELSEWHERE),
            ),
            ("ring_exit_work", Fires("io_ring_exit_work")),
            (
                "vma_needs_dirty_tracking",
                Fires("vma_needs_dirty_tracking"),
            ),
            ("pfn_track", Fires("track_pfn_remap")),
            ("pfn_untrack", Fires("untrack_pfn")),
            ("zap_single_vma", Fires("zap_page_range_single")),
            ("unmap_mapping_range", Fires("unmap_mapping_range")),
            ("check_vma_flags", Fires("check_vma_flags")),
            ("process_fork", FORK_TP),
            ("process_exit", EXIT_TP),
            ("page_cache_delete", PAGE_CACHE_TP),
            ("madvise", Fires("do_madvise")),
            ("kvm_gmem_ioctl", Absent),
        ],
        layout: &[
            ("folio_flags", 0),
            ("folio_refcount", 52),
            ("folio_pincount", 92),
            ("pg_head_bit", 6),
            ("folio_order", 64),
            ("page_tail", 8),
            ("page_struct_size", 64),
            ("anon_vma_root", 0),
            ("vma_flags", 32),
            ("vma_file", 128),
            ("vm_fault_flags", 40),
            ("vm_fault_page", 80),
            ("vm_fault_address", 24),
            ("zap_vma_arg", 0),
        ],
        foll_source: "btf",
        foll_values: &[
            ("FOLL_WRITE", 0x1),
            ("FOLL_TOUCH", 0x10000),
            ("FOLL_LONGTERM", 0x100),
            ("FOLL_PIN", 0x80000),
        ],
        behaviours: &[
            ("longterm-file-pin", "refused"),
            ("pinned-folio-cleaned", "present"),
            ("fork-with-pins", "present"),
            ("pinned-cow", "present"),
            ("early-pfn-untrack", "present"),
            ("pinned-page-discarded", "present"),
            ("guest-memfd-pin", "absent"),
        ],
        verdicts_min: &REFUSED_FILE_PINS,
        verdicts_max: &NO_PINNED_CLEAN,
        findings: FINDINGS_6_12,
        pinned_reuses_min: 16,
        preexisting: &[],
        large_folios: LARGE_FOLIOS_6_5_ON,
        blind_with_caps_only: &[],
        gmem: &[],
    },
    Kernel {
        name: "7.2",
        release_prefix: "7.2.",
        hooks: &[
            ("pin_user_pages", Fires("pin_user_pages")),
            ("pin_user_pages_fast", Fires("pin_user_pages_fast")),
            ("pin_user_pages_remote", Fires("pin_user_pages_remote")),
            (
                "pin_user_pages_unlocked",
                AttachedOnly("pin_user_pages_unlocked", NO_UNLOCKED_CALLER),
            ),
            ("gup_fast", Fires("gup_fast_fallback")),
            ("gup_slow", Fires("__gup_longterm_locked")),
            (
                "unpin_user_page",
                AttachedOnly("unpin_user_page", NO_PAGE_UNPIN_CALLER),
            ),
            ("unpin_user_pages", Fires("unpin_user_pages")),
            (
                "unpin_user_pages_dirty_lock",
                Fires("unpin_user_pages_dirty_lock"),
            ),
            (
                "unpin_user_page_range_dirty_lock",
                Fires("unpin_user_page_range_dirty_lock"),
            ),
            ("unpin_folio", Fires("unpin_folio")),
            (
                "unpin_folios",
                AttachedOnly("unpin_folios", NO_FOLIOS_CALLER),
            ),
            ("unpin_user_folio", Fires("unpin_user_folio")),
            ("folio_mkclean", Fires("folio_mkclean")),
            ("do_wp_page", Fires("do_wp_page")),
            ("wp_page_copy", Absent),
            ("copy_page_range", Fires("copy_page_range")),
            ("new_anon_rmap", Fires("folio_add_new_anon_rmap")),
            (
                "hugetlb_new_anon_rmap",
                AttachedOnly("hugetlb_add_new_anon_rmap", HUGETLB_FORK_ELSEWHERE),
            ),
            ("ring_exit_work", Fires("io_ring_exit_work")),
            (
                "vma_needs_dirty_tracking",
                Fires("vma_needs_dirty_tracking"),
            ),
            ("pfn_track", Fires("pfnmap_track")),
            ("pfn_untrack", Fires("pfnmap_untrack")),
            ("zap_single_vma", Fires("zap_vma_range_batched")),
            ("unmap_mapping_range", Fires("unmap_mapping_range")),
            ("check_vma_flags", Fires("check_vma_flags")),
            ("process_fork", FORK_TP),
            ("process_exit", EXIT_TP),
            ("page_cache_delete", PAGE_CACHE_TP),
            ("madvise", Fires("madvise_do_behavior")),
            ("kvm_gmem_ioctl", Absent),
        ],
        layout: &[
            ("folio_flags", 0),
            ("folio_refcount", 52),
            ("folio_pincount", 92),
            ("pg_head_bit", 6),
            ("folio_order", 64),
            ("page_tail", 8),
            ("page_struct_size", 64),
            ("anon_vma_root", 0),
            ("vma_flags", 32),
            ("vma_file", 88),
            ("vm_fault_flags", 40),
            ("vm_fault_page", 80),
            ("vm_fault_address", 24),
            ("zap_vma_arg", 1),
            ("madvise_behavior", 8),
        ],
        foll_source: "btf",
        foll_values: &[
            ("FOLL_WRITE", 0x1),
            ("FOLL_TOUCH", 0x10000),
            ("FOLL_LONGTERM", 0x100),
            ("FOLL_PIN", 0x80000),
        ],
        behaviours: &[
            ("longterm-file-pin", "refused"),
            ("pinned-folio-cleaned", "present"),
            ("fork-with-pins", "present"),
            ("pinned-cow", "present"),
            ("early-pfn-untrack", "fixed"),
            ("pinned-page-discarded", "present"),
            ("guest-memfd-pin", "granted"),
        ],
        verdicts_min: &REFUSED_FILE_PINS,
        verdicts_max: &NO_PINNED_CLEAN,
        findings: FINDINGS_7_2,
        pinned_reuses_min: 16,
        preexisting: &[],
        large_folios: LARGE_FOLIOS_6_5_ON,
        blind_with_caps_only: &[],
        gmem: GMEM_7_2,
    },
];

pub fn kernel(name: &str) -> Option<&'static Kernel> {
    KERNELS.iter().find(|k| k.name == name)
}
