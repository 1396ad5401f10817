//! Who pinned, and what untracked a PFN mapping: named from the symbolized kernel stack of the
//! call. For a pin, the first frame of a known pinning subsystem wins; frames inside GUP itself
//! are skipped.

use std::sync::Arc;

use serde::Serialize;

/// The kernel subsystem that pinned. Ids are stable: metric labels, JSON and expectations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Pinner {
    #[serde(rename = "io_uring")]
    IoUring,
    #[serde(rename = "vfio")]
    Vfio,
    #[serde(rename = "af_xdp")]
    AfXdp,
    #[serde(rename = "rdma")]
    Rdma,
    #[serde(rename = "udmabuf")]
    Udmabuf,
    #[serde(rename = "process_vm")]
    ProcessVm,
    #[serde(rename = "o_direct")]
    ODirect,
    #[serde(rename = "vhost")]
    Vhost,
    #[serde(rename = "kvm")]
    Kvm,
    /// No known subsystem on the stack (or no stack): [`Named::caller`] says who called GUP.
    #[serde(rename = "unknown")]
    Unknown,
}

impl Pinner {
    pub const ALL: [Pinner; 10] = [
        Pinner::IoUring,
        Pinner::Vfio,
        Pinner::AfXdp,
        Pinner::Rdma,
        Pinner::Udmabuf,
        Pinner::ProcessVm,
        Pinner::ODirect,
        Pinner::Vhost,
        Pinner::Kvm,
        Pinner::Unknown,
    ];

    /// The id, as in metric labels and JSON: the kernel subsystem's own name.
    pub fn id(self) -> &'static str {
        match self {
            Pinner::IoUring => "io_uring",
            Pinner::Vfio => "vfio",
            Pinner::AfXdp => "af_xdp",
            Pinner::Rdma => "rdma",
            Pinner::Udmabuf => "udmabuf",
            Pinner::ProcessVm => "process_vm",
            Pinner::ODirect => "o_direct",
            Pinner::Vhost => "vhost",
            Pinner::Kvm => "kvm",
            Pinner::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Pinner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// A pin call's stack, named: the pinner, and for an unknown one the first kernel function
/// outside GUP that called it (shared: a clone is a reference count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub pinner: Pinner,
    pub caller: Option<Arc<str>>,
}

/// (substring of a kernel function name, pinner), checked in order.
const PINNERS: &[(&str, Pinner)] = &[
    ("io_uring", Pinner::IoUring),
    ("io_sqe_buffer", Pinner::IoUring),
    ("io_pin_pages", Pinner::IoUring),
    ("vfio", Pinner::Vfio),
    ("vaddr_get_pfns", Pinner::Vfio),
    ("xdp_umem", Pinner::AfXdp),
    ("xsk_", Pinner::AfXdp),
    ("ib_umem", Pinner::Rdma),
    ("udmabuf", Pinner::Udmabuf),
    ("memfd_pin", Pinner::Udmabuf),
    ("process_vm_rw", Pinner::ProcessVm),
    ("iomap_dio", Pinner::ODirect),
    ("__blockdev_direct_IO", Pinner::ODirect),
    ("bio_iov_iter_get_pages", Pinner::ODirect),
    ("vhost", Pinner::Vhost),
    ("kvm", Pinner::Kvm),
];

/// GUP's own frames: never the pinner.
fn is_gup(frame: &str) -> bool {
    frame.contains("pin_user_pages") || frame.contains("gup") || frame.contains("get_user_pages")
}

/// The pinner for a stack, innermost frame first. Only the callers of GUP count: frames inside
/// it (and our own probe's) name nobody.
pub fn name<S: AsRef<str>>(frames: &[S]) -> Named {
    let frames: Vec<&str> = frames.iter().map(AsRef::as_ref).collect();
    let outside_gup = frames.iter().rposition(|f| is_gup(f)).map_or(0, |i| i + 1);
    let frames = &frames[outside_gup..];
    for frame in frames {
        if let Some(&(_, pinner)) = PINNERS.iter().find(|(needle, _)| frame.contains(needle)) {
            return Named {
                pinner,
                caller: None,
            };
        }
    }
    Named {
        pinner: Pinner::Unknown,
        caller: frames.iter().find(|f| !is_gup(f)).map(|&f| f.into()),
    }
}

/// What untracked a VMA's PAT memtype: the subsystem that started a single-VMA zap (the
/// early, hazardous path), or the VMA's own munmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UntrackOrigin {
    /// `revoke_iomem`: a driver claimed a region a process had mapped through /dev/mem or sysfs.
    RevokeIomem,
    /// vfio-pci zapped a BAR mapping (memory decoding disabled, reset).
    VfioPciBarZap,
    /// RDMA uverbs disassociated a device's mappings.
    RdmaDisassociate,
    /// A driver called `zap_vma_ptes`.
    ZapVmaPtes,
    /// `unmap_mapping_range` from a caller pinwatch does not name.
    UnmapMappingRange,
    Madvise,
    /// A zap from a caller pinwatch does not name.
    Zap,
    /// The munmap of the VMA (not a zap).
    Munmap,
}

impl UntrackOrigin {
    pub fn id(self) -> &'static str {
        match self {
            UntrackOrigin::RevokeIomem => "revoke-iomem",
            UntrackOrigin::VfioPciBarZap => "vfio-pci-bar-zap",
            UntrackOrigin::RdmaDisassociate => "rdma-disassociate",
            UntrackOrigin::ZapVmaPtes => "zap-vma-ptes",
            UntrackOrigin::UnmapMappingRange => "unmap-mapping-range",
            UntrackOrigin::Madvise => "madvise",
            UntrackOrigin::Zap => "zap",
            UntrackOrigin::Munmap => "munmap",
        }
    }

    /// For people.
    pub fn description(self) -> &'static str {
        match self {
            UntrackOrigin::RevokeIomem => "revoke_iomem (a driver claimed the region)",
            UntrackOrigin::VfioPciBarZap => "vfio-pci (BAR zap)",
            UntrackOrigin::RdmaDisassociate => "rdma uverbs disassociate",
            UntrackOrigin::ZapVmaPtes => "zap_vma_ptes (driver)",
            UntrackOrigin::UnmapMappingRange => "unmap_mapping_range",
            UntrackOrigin::Madvise => "madvise",
            UntrackOrigin::Zap => "a zap from an unnamed caller",
            UntrackOrigin::Munmap => "munmap",
        }
    }
}

/// Kernel functions that start a single-VMA zap of a VM_PFNMAP mapping, innermost first.
const ZAP_ORIGINS: &[(&str, UntrackOrigin)] = &[
    ("revoke_iomem", UntrackOrigin::RevokeIomem),
    // revoke_iomem tail-calls unmap_mapping_range, so its own frame is usually missing; its
    // caller is __request_region (kernel/resource.c) or get_free_mem_region.
    ("__request_region", UntrackOrigin::RevokeIomem),
    ("get_free_mem_region", UntrackOrigin::RevokeIomem),
    ("vfio_pci", UntrackOrigin::VfioPciBarZap),
    ("uverbs", UntrackOrigin::RdmaDisassociate),
    ("zap_vma_ptes", UntrackOrigin::ZapVmaPtes),
    ("unmap_mapping", UntrackOrigin::UnmapMappingRange),
    ("madvise", UntrackOrigin::Madvise),
];

/// What started a zap, from the stack of the untrack it caused.
pub fn zap_origin<S: AsRef<str>>(frames: &[S]) -> UntrackOrigin {
    // The outermost known origin explains the most: search from the outside in.
    for &(needle, origin) in ZAP_ORIGINS {
        if frames.iter().any(|f| f.as_ref().contains(needle)) {
            return origin;
        }
    }
    UntrackOrigin::Zap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zap_origins_prefer_the_subsystem_over_the_mm_helper() {
        let revoke = [
            "untrack_pfn",
            "unmap_single_vma",
            "zap_page_range_single",
            "unmap_mapping_range",
            "revoke_iomem",
        ];
        assert_eq!(zap_origin(&revoke), UntrackOrigin::RevokeIomem);
        assert_eq!(
            zap_origin(&["untrack_pfn", "unmap_mapping_range"]),
            UntrackOrigin::UnmapMappingRange
        );
        assert_eq!(zap_origin::<&str>(&[]), UntrackOrigin::Zap);
    }

    #[test]
    fn known_subsystems_are_named_from_their_frames() {
        let cases: &[(&[&str], &str)] = &[
            (
                &[
                    "pin_user_pages",
                    "io_sqe_buffer_register",
                    "__io_uring_register",
                ],
                "io_uring",
            ),
            (
                &[
                    "pin_user_pages_fast",
                    "io_pin_pages",
                    "io_sqe_buffers_register",
                ],
                "io_uring",
            ),
            (
                &[
                    "pin_user_pages_remote",
                    "vaddr_get_pfns",
                    "vfio_pin_pages_remote",
                ],
                "vfio",
            ),
            (
                &["pin_user_pages", "xdp_umem_reg", "xsk_setsockopt"],
                "af_xdp",
            ),
            (
                &["pin_user_pages_remote", "process_vm_rw_core.constprop.0"],
                "process_vm",
            ),
            (
                &["pin_user_pages_fast", "some_driver_ioctl", "do_syscall_64"],
                "unknown (some_driver_ioctl)",
            ),
            (&[], "unknown"),
        ];
        for (frames, want) in cases {
            let named = name(frames);
            let shown = match named.caller {
                Some(caller) => format!("{} ({caller})", named.pinner),
                None => named.pinner.to_string(),
            };
            assert_eq!(shown, *want, "{frames:?}");
        }
    }

    #[test]
    fn ids_are_their_json_names() {
        for pinner in Pinner::ALL {
            assert_eq!(serde_json::to_value(pinner).unwrap(), pinner.id());
        }
        for (_, origin) in ZAP_ORIGINS {
            assert_eq!(serde_json::to_value(origin).unwrap(), origin.id());
        }
        assert_eq!(
            serde_json::to_value(UntrackOrigin::Munmap).unwrap(),
            UntrackOrigin::Munmap.id()
        );
    }
}
