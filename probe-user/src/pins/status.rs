//! `/proc/PID/status`: the name and the two memory counters pins are charged to, in pages.
//!
//! `VmPin` is `mm->pinned_vm` and `VmLck` is `mm->locked_vm`, both printed in kB by
//! `task_mem()` (fs/proc/task_mmu.c, the same on 6.1, 6.12 and 7.2). Who charges which, on
//! these kernels:
//! - `pinned_vm` (VmPin): io_uring registered buffers (io_uring/rsrc.c `io_account_mem`, on the
//!   mm of the task that created the ring, huge pages charged whole, a page shared by two
//!   buffers of one ring once; nothing at all when the creator had CAP_IPC_LOCK, as root has:
//!   the accounting helpers return early without `ctx->user`, and the 7.2 guest shows `VmPin: 0`
//!   for a root process holding 37 registered pages), RDMA memory registrations (drivers/infiniband/core/umem.c
//!   `ib_umem_get`), and on newer kernels io_uring zero-copy receive areas.
//! - `locked_vm` (VmLck): `mlock()`ed pages, and VFIO type1 DMA mappings
//!   (drivers/vfio/vfio_iommu_type1.c `vfio_lock_acct` → `__account_locked_vm`, on the mm of
//!   the task that mapped; pages already pinned by another mapping and PFN-mapped memory are
//!   not charged). The two cannot be told apart from /proc.
//!
//! Both are charges, not pins: they say how many pages a pinner accounted, not which.

/// What one status file says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// `Name:` (the kernel escapes it; pinwatch shows it escaped again).
    pub name: String,
    /// `VmPin:` in pages; `None` for a kernel thread (no mm, no `Vm*` lines).
    pub vm_pin_pages: Option<u64>,
    /// `VmLck:` in pages; `None` for a kernel thread.
    pub vm_lck_pages: Option<u64>,
}

/// Parses a status file's text; `page_kb` is the page size in kB.
pub fn parse(text: &str, page_kb: u64) -> Status {
    let mut status = Status::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key {
            "Name" => status.name = value.trim().to_owned(),
            "VmPin" => status.vm_pin_pages = kb(value).map(|k| k / page_kb.max(1)),
            "VmLck" => status.vm_lck_pages = kb(value).map(|k| k / page_kb.max(1)),
            _ => {}
        }
    }
    status
}

/// `       12 kB` → 12.
fn kb(value: &str) -> Option<u64> {
    value.trim().strip_suffix("kB")?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As task_mem() writes it (6.12; 6.1 and 7.2 have the same lines around these).
    const STATUS: &str = "\
Name:\tpinwatch-worklo
Umask:\t0022
State:\tS (sleeping)
Tgid:\t412
Pid:\t412
VmPeak:\t    8412 kB
VmSize:\t    8412 kB
VmLck:\t      16 kB
VmPin:\t     148 kB
VmHWM:\t    1200 kB
VmRSS:\t    1200 kB
Threads:\t1
";

    #[test]
    fn vm_pin_and_vm_lck_are_read_in_pages() {
        let s = parse(STATUS, 4);
        assert_eq!(s.name, "pinwatch-worklo");
        assert_eq!(s.vm_pin_pages, Some(37));
        assert_eq!(s.vm_lck_pages, Some(4));
    }

    #[test]
    fn a_kernel_thread_has_no_counters() {
        let s = parse("Name:\tkworker/0:1\nState:\tI (idle)\nTgid:\t17\n", 4);
        assert_eq!(s.name, "kworker/0:1");
        assert_eq!((s.vm_pin_pages, s.vm_lck_pages), (None, None));
    }

    #[test]
    fn malformed_values_are_unknown_not_zero() {
        let s = parse("VmPin:\tlots\nVmLck:\t12\n", 4);
        assert_eq!((s.vm_pin_pages, s.vm_lck_pages), (None, None));
    }
}
