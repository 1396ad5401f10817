//! What an open fd says about pinning, from its `/proc/PID/fd/N` link: the pinners whose
//! pins live as long as an fd does.

/// A pinner's fd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FdKind {
    /// An io_uring instance: its fdinfo lists the registered buffers.
    IoUring,
    /// A VFIO container or group (`/dev/vfio/vfio`, `/dev/vfio/N`) or device cdev
    /// (`/dev/vfio/devices/vfioN`): type1 DMA mappings are charged to `locked_vm`.
    Vfio,
    /// iommufd (`/dev/iommu`): charges the user's `locked_vm` by default, not the process's.
    Iommufd,
    /// An RDMA verbs device (`/dev/infiniband/uverbsN`): registrations are charged to
    /// `pinned_vm`.
    Rdma,
}

/// The kind of a fd from its link target; `None` for every fd that pins nothing by itself.
pub fn classify(target: &[u8]) -> Option<FdKind> {
    if target == b"anon_inode:[io_uring]" {
        Some(FdKind::IoUring)
    } else if target.starts_with(b"/dev/vfio/") {
        Some(FdKind::Vfio)
    } else if target == b"/dev/iommu" {
        Some(FdKind::Iommufd)
    } else if target.starts_with(b"/dev/infiniband/uverbs") {
        Some(FdKind::Rdma)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinners_are_known_by_their_device_or_anon_inode() {
        assert_eq!(classify(b"anon_inode:[io_uring]"), Some(FdKind::IoUring));
        assert_eq!(classify(b"/dev/vfio/vfio"), Some(FdKind::Vfio));
        assert_eq!(classify(b"/dev/vfio/12"), Some(FdKind::Vfio));
        assert_eq!(classify(b"/dev/vfio/devices/vfio0"), Some(FdKind::Vfio));
        assert_eq!(classify(b"/dev/iommu"), Some(FdKind::Iommufd));
        assert_eq!(classify(b"/dev/infiniband/uverbs0"), Some(FdKind::Rdma));
        assert_eq!(classify(b"anon_inode:[eventfd]"), None);
        assert_eq!(classify(b"/dev/vfio-not"), None);
        assert_eq!(classify(b"/tmp/anon_inode:[io_uring]"), None);
    }
}
