//! The typed attach table: every kernel hook, its candidate symbols in order, and the hazards
//! that depend on it. The eBPF programs for hook `x` are `fentry_x` / `kprobe_x` (entry),
//! `fexit_x` / `kretprobe_x` (return) or `tracepoint_x`; a hook whose return program sees all
//! it needs has no `fentry_x` (see [`Returns::Alone`]).

use probe_common::hook;

use crate::hazards::Hazard::{self, *};

/// What a hook attaches to.
#[derive(Debug, Clone, Copy)]
pub enum AttachPoint {
    /// A kernel function; the first candidate present in kallsyms wins.
    Function {
        candidates: &'static [&'static str],
        returns: Returns,
    },
    /// A stable tracepoint.
    Tracepoint {
        category: &'static str,
        name: &'static str,
    },
}

/// Whether a function hook has a return program, and whether it needs the entry's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returns {
    /// Entry program only.
    No,
    /// Entry and return programs.
    AfterEntry,
    /// The return program alone under fentry: fexit sees the arguments, so the call pays one
    /// program, not two. Under kprobes the kretprobe has none, and a kprobe entry carries them.
    Alone,
}

/// How much a hazard depends on a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Without it the hazard cannot be observed at all.
    Core,
    /// Used where the kernel has it (e.g. `wp_page_copy` exists only where not inlined).
    WhereAvailable,
}

#[derive(Debug, Clone, Copy)]
pub struct Hook {
    pub id: u32,
    pub name: &'static str,
    pub target: AttachPoint,
    pub feeds: &'static [(Hazard, Need)],
    /// Candidates whose arguments differ get their own programs: (symbol, program stem).
    pub variants: &'static [(&'static str, &'static str)],
}

impl Hook {
    /// The stem of the program names (`fentry_<stem>`…) for the candidate that won.
    pub fn program_stem(&self, candidate: &str) -> &'static str {
        self.variants
            .iter()
            .find(|(c, _)| *c == candidate)
            .map_or(self.name, |(_, stem)| stem)
    }
}

const fn func(candidates: &'static [&'static str]) -> AttachPoint {
    AttachPoint::Function {
        candidates,
        returns: Returns::No,
    }
}

const fn func_ret(candidates: &'static [&'static str]) -> AttachPoint {
    AttachPoint::Function {
        candidates,
        returns: Returns::AfterEntry,
    }
}

const fn func_ret_alone(candidates: &'static [&'static str]) -> AttachPoint {
    AttachPoint::Function {
        candidates,
        returns: Returns::Alone,
    }
}

const PINS_CORE: &[(Hazard, Need)] = &[
    (LongtermFilePin, Need::Core),
    (PinnedFolioCleaned, Need::WhereAvailable),
    (ForkWithPins, Need::WhereAvailable),
    (PinnedCow, Need::WhereAvailable),
    (PinnedPageDiscarded, Need::WhereAvailable),
    (GuestMemfdPin, Need::Core),
];
const PINS_EXTRA: &[(Hazard, Need)] = &[
    (LongtermFilePin, Need::WhereAvailable),
    (PinnedFolioCleaned, Need::WhereAvailable),
    (ForkWithPins, Need::WhereAvailable),
    (PinnedCow, Need::WhereAvailable),
    (PinnedPageDiscarded, Need::WhereAvailable),
    (GuestMemfdPin, Need::WhereAvailable),
];

pub const HOOKS: &[Hook] = &[
    Hook {
        id: hook::PIN_USER_PAGES,
        name: "pin_user_pages",
        target: func_ret_alone(&["pin_user_pages"]),
        feeds: PINS_CORE,
        variants: &[],
    },
    Hook {
        id: hook::PIN_USER_PAGES_FAST,
        name: "pin_user_pages_fast",
        target: func_ret_alone(&["pin_user_pages_fast"]),
        feeds: PINS_CORE,
        variants: &[],
    },
    Hook {
        id: hook::PIN_USER_PAGES_REMOTE,
        name: "pin_user_pages_remote",
        target: func_ret_alone(&["pin_user_pages_remote"]),
        feeds: PINS_CORE,
        variants: &[],
    },
    Hook {
        id: hook::PIN_USER_PAGES_UNLOCKED,
        name: "pin_user_pages_unlocked",
        target: func_ret_alone(&["pin_user_pages_unlocked"]),
        feeds: PINS_EXTRA,
        variants: &[],
    },
    // 6.12+ name first; 6.1 calls it internal_get_user_pages_fast (both static, kprobe-able).
    Hook {
        id: hook::GUP_FAST,
        name: "gup_fast",
        target: func(&["gup_fast_fallback", "internal_get_user_pages_fast"]),
        feeds: PINS_EXTRA,
        variants: &[],
    },
    Hook {
        id: hook::GUP_SLOW,
        name: "gup_slow",
        target: func(&["__gup_longterm_locked"]),
        feeds: PINS_EXTRA,
        variants: &[],
    },
    Hook {
        id: hook::UNPIN_USER_PAGE,
        name: "unpin_user_page",
        target: func(&["unpin_user_page"]),
        feeds: PINS_CORE,
        variants: &[],
    },
    Hook {
        id: hook::UNPIN_USER_PAGES,
        name: "unpin_user_pages",
        target: func(&["unpin_user_pages"]),
        feeds: PINS_CORE,
        variants: &[],
    },
    Hook {
        id: hook::UNPIN_USER_PAGES_DIRTY_LOCK,
        name: "unpin_user_pages_dirty_lock",
        target: func(&["unpin_user_pages_dirty_lock"]),
        feeds: PINS_CORE,
        variants: &[],
    },
    Hook {
        id: hook::UNPIN_USER_PAGE_RANGE_DIRTY_LOCK,
        name: "unpin_user_page_range_dirty_lock",
        target: func(&["unpin_user_page_range_dirty_lock"]),
        feeds: PINS_EXTRA,
        variants: &[],
    },
    // The folio unpin API (unpin_folio, unpin_folios, unpin_user_folio) is absent from 6.1.
    Hook {
        id: hook::UNPIN_FOLIO,
        name: "unpin_folio",
        target: func(&["unpin_folio"]),
        feeds: PINS_EXTRA,
        variants: &[],
    },
    Hook {
        id: hook::UNPIN_FOLIOS,
        name: "unpin_folios",
        target: func(&["unpin_folios"]),
        feeds: PINS_EXTRA,
        variants: &[],
    },
    Hook {
        id: hook::UNPIN_USER_FOLIO,
        name: "unpin_user_folio",
        target: func(&["unpin_user_folio"]),
        feeds: PINS_EXTRA,
        variants: &[],
    },
    Hook {
        id: hook::FOLIO_MKCLEAN,
        name: "folio_mkclean",
        target: func(&["folio_mkclean"]),
        feeds: &[(PinnedFolioCleaned, Need::Core)],
        variants: &[],
    },
    Hook {
        id: hook::DO_WP_PAGE,
        name: "do_wp_page",
        target: func_ret(&["do_wp_page"]),
        feeds: &[(PinnedCow, Need::Core)],
        variants: &[],
    },
    // Out of line on 6.1 only; inlined into do_wp_page from 6.12 on.
    Hook {
        id: hook::WP_PAGE_COPY,
        name: "wp_page_copy",
        target: func(&["wp_page_copy"]),
        feeds: &[(PinnedCow, Need::WhereAvailable)],
        variants: &[],
    },
    Hook {
        id: hook::COPY_PAGE_RANGE,
        name: "copy_page_range",
        target: func_ret(&["copy_page_range"]),
        feeds: &[(ForkWithPins, Need::Core)],
        variants: &[],
    },
    // The folio conversion renamed page_add_new_anon_rmap (6.1) to folio_add_new_anon_rmap (6.12+).
    Hook {
        id: hook::NEW_ANON_RMAP,
        name: "new_anon_rmap",
        target: func(&["folio_add_new_anon_rmap", "page_add_new_anon_rmap"]),
        feeds: &[
            (ForkWithPins, Need::Core),
            (PinnedCow, Need::WhereAvailable),
        ],
        variants: &[],
    },
    // hugetlb's own rmap entry point; the folio conversion renamed it (6.1 hugepage_…).
    Hook {
        id: hook::HUGETLB_NEW_ANON_RMAP,
        name: "hugetlb_new_anon_rmap",
        target: func(&["hugetlb_add_new_anon_rmap", "hugepage_add_new_anon_rmap"]),
        feeds: &[(ForkWithPins, Need::WhereAvailable)],
        variants: &[],
    },
    // The kworker that tears down a closed io_uring ring: its unpins end the ring owner's pins.
    Hook {
        id: hook::RING_EXIT_WORK,
        name: "ring_exit_work",
        target: func_ret(&["io_ring_exit_work"]),
        feeds: PINS_EXTRA,
        variants: &[],
    },
    // Exists from v6.5, where long-term writable pins of dirty-tracked file mappings are refused.
    Hook {
        id: hook::VMA_NEEDS_DIRTY_TRACKING,
        name: "vma_needs_dirty_tracking",
        target: func_ret(&["vma_needs_dirty_tracking"]),
        feeds: &[(LongtermFilePin, Need::WhereAvailable)],
        variants: &[],
    },
    // v6.16 "mm: rewrite pfnmap tracking and remove VM_PAT" replaced track_pfn_remap/untrack_pfn.
    Hook {
        id: hook::PFN_TRACK,
        name: "pfn_track",
        target: func(&["pfnmap_track", "track_pfn_remap"]),
        feeds: &[(EarlyPfnUntrack, Need::WhereAvailable)],
        variants: &[],
    },
    Hook {
        id: hook::PFN_UNTRACK,
        name: "pfn_untrack",
        target: func(&["pfnmap_untrack", "untrack_pfn"]),
        feeds: &[(EarlyPfnUntrack, Need::Core)],
        // pfnmap_untrack(pfn, size) takes no VMA: it has its own programs.
        variants: &[("pfnmap_untrack", "pfnmap_untrack")],
    },
    Hook {
        id: hook::ZAP_SINGLE_VMA,
        name: "zap_single_vma",
        // The return program ends the zap window that untrack calls are checked against.
        target: func_ret(&["zap_page_range_single", "zap_vma_range_batched"]),
        feeds: &[(EarlyPfnUntrack, Need::Core)],
        variants: &[],
    },
    Hook {
        id: hook::UNMAP_MAPPING_RANGE,
        name: "unmap_mapping_range",
        target: func(&["unmap_mapping_range"]),
        feeds: &[(EarlyPfnUntrack, Need::WhereAvailable)],
        variants: &[],
    },
    // Where a slow-path pin meets each VMA (all three kernels; static but kprobe-able).
    Hook {
        id: hook::CHECK_VMA_FLAGS,
        name: "check_vma_flags",
        target: func(&["check_vma_flags"]),
        // guest_memfd is never pinned by GUP-fast (not shmem): its pins walk the VMA.
        feeds: &[(LongtermFilePin, Need::Core), (GuestMemfdPin, Need::Core)],
        variants: &[],
    },
    Hook {
        id: hook::PROCESS_FORK,
        name: "process_fork",
        target: AttachPoint::Tracepoint {
            category: "sched",
            name: "sched_process_fork",
        },
        feeds: &[(ForkWithPins, Need::Core)],
        variants: &[],
    },
    Hook {
        id: hook::PROCESS_EXIT,
        name: "process_exit",
        target: AttachPoint::Tracepoint {
            category: "sched",
            name: "sched_process_exit",
        },
        feeds: &[(ForkWithPins, Need::WhereAvailable)],
        variants: &[],
    },
    // Every page-cache removal path (truncate's batch one included) fires it; the folio is its
    // argument, still in its file.
    Hook {
        id: hook::PAGE_CACHE_DELETE,
        name: "page_cache_delete",
        target: AttachPoint::Tracepoint {
            category: "filemap",
            name: "mm_filemap_delete_from_page_cache",
        },
        feeds: &[(PinnedPageDiscarded, Need::Core)],
        variants: &[],
    },
    // 7.2's madvise, process_madvise and io_uring madvise all reach madvise_do_behavior;
    // before it, do_madvise is the common entry (process_madvise refuses MADV_DONTNEED there).
    Hook {
        id: hook::MADVISE,
        name: "madvise",
        target: func(&["madvise_do_behavior", "do_madvise"]),
        feeds: &[(PinnedPageDiscarded, Need::Core)],
        variants: &[("madvise_do_behavior", "madvise_do_behavior")],
    },
    // Only with guest_memfd's in-place conversion series (not in 7.2): its -EAGAIN is a
    // conversion refused while a page is pinned. In kvm.ko, so kprobes only.
    Hook {
        id: hook::GMEM_IOCTL,
        name: "kvm_gmem_ioctl",
        target: func_ret_alone(&["kvm_gmem_ioctl"]),
        feeds: &[(GuestMemfdPin, Need::WhereAvailable)],
        variants: &[],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_dense_and_match_the_wire_count() {
        let mut ids: Vec<u32> = HOOKS.iter().map(|h| h.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..hook::COUNT).collect::<Vec<_>>());
    }

    #[test]
    fn every_hazard_has_a_core_hook() {
        for hazard in Hazard::ALL {
            let core = HOOKS
                .iter()
                .any(|h| h.feeds.contains(&(hazard, Need::Core)));
            assert!(core, "{hazard} has no core hook");
        }
    }

    #[test]
    fn names_are_unique() {
        for h in HOOKS {
            assert_eq!(
                HOOKS.iter().filter(|o| o.name == h.name).count(),
                1,
                "{}",
                h.name
            );
        }
    }
}

/// The embedded eBPF object must carry every program the table can ask for.
#[cfg(test)]
mod object_tests {
    use object::{Object as _, ObjectSymbol as _};

    use super::*;

    #[test]
    fn every_hook_has_its_programs_in_the_ebpf_object() {
        let bytes = crate::loader::object_bytes();
        assert!(
            !bytes.is_empty(),
            "built with AYA_BUILD_SKIP: no eBPF object to check"
        );
        let elf = object::File::parse(bytes).expect("the eBPF object is ELF");
        let names: Vec<String> = elf
            .symbols()
            .filter_map(|s| s.name().ok().map(str::to_owned))
            .collect();
        for hook in HOOKS {
            let wanted: Vec<String> = match hook.target {
                AttachPoint::Tracepoint { .. } => vec![
                    format!("tracepoint_{}", hook.name),
                    format!("raw_tracepoint_{}", hook.name),
                ],
                AttachPoint::Function { returns, .. } => {
                    let mut v = vec![format!("kprobe_{}", hook.name)];
                    if returns != Returns::Alone {
                        v.push(format!("fentry_{}", hook.name));
                    }
                    if returns != Returns::No {
                        v.extend([
                            format!("fexit_{}", hook.name),
                            format!("kretprobe_{}", hook.name),
                        ]);
                    }
                    v
                }
            };
            for w in wanted {
                assert!(
                    names.contains(&w),
                    "program {w} missing for hook {}",
                    hook.name
                );
            }
            if let AttachPoint::Function {
                returns: Returns::Alone,
                ..
            } = hook.target
            {
                let fentry = format!("fentry_{}", hook.name);
                assert!(
                    !names.contains(&fentry),
                    "{fentry}: a return-alone hook has no fentry program to load by mistake"
                );
            }
        }
    }
}
