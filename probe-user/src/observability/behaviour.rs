//! What this kernel does about each hazard, read from which functions it has (never from its
//! version number). The symbols are the ones the fixing or hazard-creating changes introduced.

use serde::Serialize;

use crate::{hazards::Hazard, kernel::kallsyms::Kallsyms};

#[derive(Debug, Clone, Serialize)]
pub struct Behaviour {
    /// Short stable word: `granted`, `refused`, `present`, `fixed`, `unknown`.
    pub verdict: &'static str,
    pub detail: String,
}

pub fn of(hazard: Hazard, kallsyms: &Kallsyms) -> Behaviour {
    let has = |s: &str| kallsyms.resolve(s).is_some();
    match hazard {
        Hazard::LongtermFilePin if has("vma_needs_dirty_tracking") => behaviour(
            "refused",
            "GUP refuses FOLL_LONGTERM|FOLL_WRITE pins of file mappings that need dirty tracking \
             (vma_needs_dirty_tracking exists; EFAULT from check_vma_flags or GUP-fast); pinwatch reports each refusal",
        ),
        Hazard::LongtermFilePin => behaviour(
            "granted",
            "GUP grants long-term writable pins of dirty-tracked file mappings (no vma_needs_dirty_tracking); \
             VFIO gets them, io_uring pins then releases them by its own check",
        ),
        Hazard::PinnedFolioCleaned if has("vma_needs_dirty_tracking") => behaviour(
            "present",
            "folio_mkclean never consults pins; long-term file pins are refused here, so short-term pins \
             (O_DIRECT) and pins taken through other paths remain exposed",
        ),
        Hazard::PinnedFolioCleaned => behaviour(
            "present",
            "folio_mkclean cleans maybe-pinned folios; reachable through the long-term file pins this kernel grants",
        ),
        Hazard::ForkWithPins => behaviour(
            "present",
            "fork copies pinned anonymous pages eagerly for the child (MADV_DONTFORK ranges are skipped); \
             seen as a new anon rmap inside copy_page_range",
        ),
        Hazard::PinnedCow if has("wp_page_copy") => behaviour(
            "present",
            "COW and unshare faults go through do_wp_page; copies are visible as wp_page_copy",
        ),
        Hazard::PinnedCow => behaviour(
            "present",
            "COW and unshare faults go through do_wp_page (wp_page_copy is inlined; copies are seen as a new anon rmap)",
        ),
        Hazard::EarlyPfnUntrack if has("pfnmap_untrack") => behaviour(
            "fixed",
            "PAT memtypes are tracked per context until the last VMA sharing it is freed (pfnmap_untrack); \
             zaps never untrack",
        ),
        Hazard::EarlyPfnUntrack if has("untrack_pfn") => behaviour(
            "present",
            "untrack_pfn runs from the single-VMA zap path (zap_page_range_single -> unmap_single_vma) \
             while the VM_PFNMAP|VM_PAT vma stays mapped",
        ),
        Hazard::EarlyPfnUntrack => behaviour(
            "unknown",
            "no PAT tracking functions (not x86, or PAT compiled out)",
        ),
    }
}

fn behaviour(verdict: &'static str, detail: &str) -> Behaviour {
    Behaviour {
        verdict,
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(symbols: &[&str]) -> Kallsyms {
        let text: String = symbols
            .iter()
            .map(|s| format!("ffffffff81000000 T {s}\n"))
            .collect();
        Kallsyms::parse(&text, None)
    }

    #[test]
    fn longterm_file_pins_follow_vma_needs_dirty_tracking() {
        assert_eq!(
            of(
                Hazard::LongtermFilePin,
                &kernel(&["vma_needs_dirty_tracking"])
            )
            .verdict,
            "refused"
        );
        assert_eq!(
            of(Hazard::LongtermFilePin, &kernel(&["pin_user_pages"])).verdict,
            "granted"
        );
    }

    #[test]
    fn pfn_tracking_design_is_read_from_symbols() {
        assert_eq!(
            of(Hazard::EarlyPfnUntrack, &kernel(&["pfnmap_untrack"])).verdict,
            "fixed"
        );
        assert_eq!(
            of(Hazard::EarlyPfnUntrack, &kernel(&["untrack_pfn"])).verdict,
            "present"
        );
        assert_eq!(of(Hazard::EarlyPfnUntrack, &kernel(&[])).verdict, "unknown");
    }
}
