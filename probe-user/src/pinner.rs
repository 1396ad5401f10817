//! Who pinned: named from the symbolized kernel stack of the pin call. The first frame that
//! belongs to a known pinning subsystem wins; frames inside GUP itself are skipped.

/// (substring of a kernel function name, pinner name), checked in order.
const PINNERS: &[(&str, &str)] = &[
    ("io_uring", "io_uring"),
    ("io_sqe_buffer", "io_uring"),
    ("io_pin_pages", "io_uring"),
    ("vfio", "vfio"),
    ("vaddr_get_pfns", "vfio"),
    ("xdp_umem", "af_xdp"),
    ("xsk_", "af_xdp"),
    ("ib_umem", "rdma"),
    ("udmabuf", "udmabuf"),
    ("memfd_pin", "udmabuf"),
    ("process_vm_rw", "process_vm"),
    ("iomap_dio", "o_direct"),
    ("__blockdev_direct_IO", "o_direct"),
    ("bio_iov_iter_get_pages", "o_direct"),
    ("vhost", "vhost"),
    ("kvm", "kvm"),
];

/// GUP's own frames: never the pinner.
fn is_gup(frame: &str) -> bool {
    frame.contains("pin_user_pages") || frame.contains("gup") || frame.contains("get_user_pages")
}

/// The pinner for a stack, innermost frame first; `unknown (<first caller>)` otherwise. Only
/// the callers of GUP count: frames inside it (and our own probe's) name nobody.
pub fn name<S: AsRef<str>>(frames: &[S]) -> String {
    let frames: Vec<&str> = frames.iter().map(AsRef::as_ref).collect();
    let outside_gup = frames.iter().rposition(|f| is_gup(f)).map_or(0, |i| i + 1);
    let frames = &frames[outside_gup..];
    for frame in frames {
        if let Some((_, pinner)) = PINNERS.iter().find(|(needle, _)| frame.contains(needle)) {
            return (*pinner).to_owned();
        }
    }
    match frames.iter().find(|f| !is_gup(f)) {
        Some(caller) => format!("unknown ({caller})"),
        None => "unknown".to_owned(),
    }
}

/// Kernel functions that start a single-VMA zap of a VM_PFNMAP mapping, innermost first.
const ZAP_ORIGINS: &[(&str, &str)] = &[
    ("revoke_iomem", "revoke_iomem (a driver claimed the region)"),
    // revoke_iomem tail-calls unmap_mapping_range, so its own frame is usually missing; its
    // caller is __request_region (kernel/resource.c) or get_free_mem_region.
    (
        "__request_region",
        "revoke_iomem (a driver claimed the region)",
    ),
    (
        "get_free_mem_region",
        "revoke_iomem (a driver claimed the region)",
    ),
    ("vfio_pci", "vfio-pci (BAR zap)"),
    ("uverbs", "rdma uverbs disassociate"),
    ("zap_vma_ptes", "zap_vma_ptes (driver)"),
    ("unmap_mapping", "unmap_mapping_range"),
    ("madvise", "madvise"),
];

/// What started a zap, from the stack of the untrack it caused.
pub fn zap_origin<S: AsRef<str>>(frames: &[S]) -> String {
    // The outermost known origin explains the most: search from the outside in.
    for (needle, origin) in ZAP_ORIGINS {
        if frames.iter().any(|f| f.as_ref().contains(needle)) {
            return (*origin).to_owned();
        }
    }
    "zap".to_owned()
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
        assert_eq!(
            zap_origin(&revoke),
            "revoke_iomem (a driver claimed the region)"
        );
        assert_eq!(
            zap_origin(&["untrack_pfn", "unmap_mapping_range"]),
            "unmap_mapping_range"
        );
        assert_eq!(zap_origin::<&str>(&[]), "zap");
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
            assert_eq!(name(frames), *want, "{frames:?}");
        }
    }
}
