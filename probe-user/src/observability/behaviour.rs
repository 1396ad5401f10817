//! What this kernel does about each hazard, read from which functions it has (never from its
//! version number). The symbols are the ones the fixing or hazard-creating changes introduced.

use serde::Serialize;

use crate::{hazards::Hazard, kernel::kallsyms::Kallsyms};

#[derive(Debug, Clone, Serialize)]
pub struct Behaviour {
    /// Short stable word: `granted`, `refused`, `present`, `fixed`, `absent`, `unknown`.
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
        Hazard::PinnedPageDiscarded => behaviour(
            "present",
            "truncate, punch hole and MADV_REMOVE drop page-cache folios whatever their refcount \
             (find_lock_entries never checks it), and MADV_DONTNEED zaps pinned anonymous pages: the \
             device keeps the old page. Reclaim and migration skip pinned folios",
        ),
        Hazard::GuestMemfdPin => guest_memfd(&has),
    }
}

/// guest_memfd lives in kvm.ko: its functions are in kallsyms only while kvm is loaded.
/// - `kvm_gmem_ioctl`: the in-place conversion series ("guest_memfd: In-place conversion
///   support") gives guest_memfd its own ioctl, and refuses a conversion with -EAGAIN while any
///   extra reference, a pin included, is held.
/// - `kvm_gmem_fault_user_mapping` (6.18+): host mmap of guest_memfd, so GUP can pin it.
/// - `kvm_gmem_create`: guest_memfd exists, but without host mmap nothing can pin it.
fn guest_memfd(has: &dyn Fn(&str) -> bool) -> Behaviour {
    if has("kvm_gmem_ioctl") {
        behaviour(
            "refused",
            "guest_memfd converts shared memory to private in place and refuses the conversion \
             (-EAGAIN) while the page is pinned (kvm_gmem_ioctl); long-term pins of its mmap are granted",
        )
    } else if has("kvm_gmem_fault_user_mapping") {
        behaviour(
            "granted",
            "long-term pins of guest_memfd's host mmap are granted (GUEST_MEMFD_FLAG_MMAP); no in-place \
             shared-to-private conversion (no kvm_gmem_ioctl); a punch hole drops pinned pages",
        )
    } else if has("kvm_gmem_create") {
        behaviour(
            "absent",
            "guest_memfd exists but cannot be mapped by the host (no kvm_gmem_fault_user_mapping): \
             nothing can pin it",
        )
    } else if has("kvm_vm_ioctl") {
        behaviour(
            "absent",
            "kvm is loaded without guest_memfd (KVM_CREATE_GUEST_MEMFD answers ENOTTY)",
        )
    } else {
        behaviour(
            "unknown",
            "kvm is not loaded: guest_memfd's functions live in kvm.ko (load kvm to know)",
        )
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

    #[test]
    fn guest_memfd_behaviour_is_read_from_kvm_symbols() {
        let verdict = |symbols: &[&str]| of(Hazard::GuestMemfdPin, &kernel(symbols)).verdict;
        assert_eq!(verdict(&[]), "unknown", "kvm not loaded");
        assert_eq!(verdict(&["kvm_vm_ioctl"]), "absent", "6.1");
        assert_eq!(verdict(&["kvm_vm_ioctl", "kvm_gmem_create"]), "absent");
        assert_eq!(
            verdict(&["kvm_gmem_create", "kvm_gmem_fault_user_mapping"]),
            "granted",
            "7.2"
        );
        assert_eq!(
            verdict(&[
                "kvm_gmem_create",
                "kvm_gmem_fault_user_mapping",
                "kvm_gmem_ioctl"
            ]),
            "refused",
            "the in-place conversion series"
        );
    }
}
