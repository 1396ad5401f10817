//! PAT memtype tracking of VM_PFNMAP ranges and the zap paths (`arch/x86/mm/pat/memtype.c`,
//! `mm/memory.c`).

use probe_common::hook;

use crate::counting_hook;

counting_hook!(fentry_pfn_track, kprobe_pfn_track, hook::PFN_TRACK);
counting_hook!(fentry_pfn_untrack, kprobe_pfn_untrack, hook::PFN_UNTRACK);
counting_hook!(
    fentry_zap_single_vma,
    kprobe_zap_single_vma,
    hook::ZAP_SINGLE_VMA
);
counting_hook!(
    fentry_unmap_mapping_range,
    kprobe_unmap_mapping_range,
    hook::UNMAP_MAPPING_RANGE
);
