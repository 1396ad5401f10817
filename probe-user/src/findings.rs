//! What pinwatch reports: one finding type with a stable hazard id, an outcome saying what the
//! kernel did, and everything an engineer needs to act.

use std::sync::Arc;

use probe_common::kernel::{FAULT_FLAG_UNSHARE, FAULT_FLAG_WRITE};
use serde::Serialize;

use crate::{
    discard_call::DiscardCall,
    events::{FileId, Task},
    hazards::Hazard,
    pinner::{Pinner, UntrackOrigin},
    text::UserText,
};

/// The version of the findings' JSON (findings log lines, audit reports). Bumped on any change
/// a consumer could trip on.
/// - 2: `pinner` is an id or null (not seen), `cause` per hazard replaces `gup_flags` and the
///   zap origin carried in `pinner`, `mapping` is null where there is no file, `counts` name
///   ring-buffer loss `ringbuf_drops` / `ringbuf_dropped_pin_calls`.
/// - 3: hazards `pinned-page-discarded` (cause `discard`) and `guest-memfd-pin`; `mapping.fs`
///   may be `guest_memfd`.
pub const SCHEMA: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The kernel granted the pin and the caller kept it.
    Granted,
    /// GUP refused the pin (EFAULT on 6.5+).
    Refused,
    /// Granted, then unpinned within the same system call (6.1 io_uring's own check).
    ReleasedByCaller,
    /// A pinned folio was cleaned (or discarded) and pinwatch saw the pin that holds it.
    Attributed,
    /// A pinned folio was cleaned (or discarded); its pin predates pinwatch or was not seen.
    Unattributed,
    /// PAT memtype freed by a zap while the VM_PFNMAP VMA stays mapped (6.1, 6.12).
    UntrackedWhileMapped,
    /// The munmap of a VMA untracked early untracks it again (VM_PAT is already gone).
    UntrackedAgainAtMunmap,
    /// Fork copied pinned anonymous pages for the child, one by one, at fork time.
    EagerCopy,
    /// Fork by a process holding pins in MADV_DONTFORK ranges: nothing copied, as intended.
    Protected,
    /// A COW or unshare fault copied a pinned page: device and process now see different pages.
    Copied,
    /// guest_memfd refused to convert shared memory to private (-EAGAIN): a page of the range
    /// holds an extra reference, such as a pin.
    ConversionRefused,
    /// A long-term pin unshared pages it found shared (with a fork child): the kernel copied
    /// them before pinning, so parent and child no longer share what the device sees.
    Unshared,
}

impl Outcome {
    /// The kebab-case id, as in JSON and metric labels.
    pub fn id(self) -> &'static str {
        match self {
            Outcome::Granted => "granted",
            Outcome::Refused => "refused",
            Outcome::ReleasedByCaller => "released-by-caller",
            Outcome::Attributed => "attributed",
            Outcome::Unattributed => "unattributed",
            Outcome::UntrackedWhileMapped => "untracked-while-mapped",
            Outcome::UntrackedAgainAtMunmap => "untracked-again-at-munmap",
            Outcome::EagerCopy => "eager-copy",
            Outcome::Protected => "protected",
            Outcome::Copied => "copied",
            Outcome::Unshared => "unshared",
            Outcome::ConversionRefused => "conversion-refused",
        }
    }

    /// The outcomes a hazard's findings can have: the metrics export each pair from the start,
    /// so that the first finding is an increase Prometheus (and every alert) can see.
    pub fn of(hazard: Hazard) -> &'static [Outcome] {
        use Outcome::*;
        match hazard {
            Hazard::LongtermFilePin => &[Granted, Refused, ReleasedByCaller],
            Hazard::PinnedFolioCleaned => &[Attributed, Unattributed],
            Hazard::ForkWithPins => &[EagerCopy, Protected],
            Hazard::PinnedCow => &[Copied, Unshared],
            Hazard::EarlyPfnUntrack => &[UntrackedWhileMapped, UntrackedAgainAtMunmap],
            Hazard::PinnedPageDiscarded => &[Attributed, Unattributed],
            Hazard::GuestMemfdPin => &[Granted, ConversionRefused],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Process {
    pub tgid: u32,
    pub comm: UserText,
    /// Boot-relative start time of the thread group (ns): with `tgid`, a unique identity.
    pub start_ns: u64,
    pub cgroup: Cgroup,
}

impl Process {
    /// The process of `task`; its cgroup path is resolved at report time.
    pub fn of(task: &Task) -> Self {
        Self {
            tgid: task.tgid,
            comm: task.comm.clone(),
            start_ns: task.start_ns,
            cgroup: Cgroup {
                id: task.cgroup_id,
                path: None,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cgroup {
    pub id: u64,
    /// Path below the cgroup2 mount, resolved at report time (`None` once the cgroup is gone).
    pub path: Option<UserText>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mapping {
    /// Filesystem type, from the superblock magic.
    pub fs: &'static str,
    /// Device of the filesystem, `major:minor`.
    pub dev: String,
    pub ino: u64,
    pub path: Option<UserText>,
}

impl Mapping {
    pub fn of(file: FileId, path: Option<UserText>) -> Self {
        Self {
            fs: fs_name(file.fs_magic),
            dev: format!("{}:{}", file.dev >> 20, file.dev & 0xf_ffff),
            ino: file.ino,
            path,
        }
    }

    /// Whether both name the same file. The path is not part of it: it is read from /proc while
    /// the process lives, so two calls into one file may differ only in whether it was read.
    pub fn same_file(&self, other: &Mapping) -> bool {
        (self.fs, &self.dev, self.ino) == (other.fs, &other.dev, other.ino)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub hazard: Hazard,
    pub outcome: Outcome,
    /// The pinning process (for an unattributed clean: the process that triggered writeback).
    pub process: Process,
    /// Who holds the pin; `None` when pinwatch did not see it (it predates pinwatch, or its
    /// event was lost) or the hazard involves no pin (`early-pfn-untrack`).
    pub pinner: Option<Pinner>,
    /// What the kernel did that makes it a finding, with that hazard's own details.
    pub cause: Cause,
    /// Base (4 KiB) pages concerned, whatever size of page or folio holds them.
    pub pages: u64,
    /// Bytes of each page or folio the kernel handled (4096; 2 MiB for a hugetlb page or a
    /// PMD-sized folio), when known. A finding has one page size: cleans or copies of several
    /// sizes are separate findings.
    pub page_size: Option<u64>,
    /// How many folios (or huge pages) the kernel handled, where it works in folios: copies at
    /// fork and folios cleaned by writeback.
    pub folios: Option<u64>,
    /// The file, where the memory is a file's (`None`: anonymous memory, a COW copy, a PFN
    /// mapping without a file).
    pub mapping: Option<Mapping>,
    pub first_ns: u64,
    pub last_ns: u64,
    pub advice: &'static str,
}

impl Finding {
    /// A finding of `hazard` with `outcome` by `task` at `at_ns`, before its rule says who
    /// pinned, how much and where.
    pub fn new(hazard: Hazard, outcome: Outcome, task: &Task, at_ns: u64, cause: Cause) -> Self {
        Self {
            hazard,
            outcome,
            process: Process::of(task),
            pinner: None,
            cause,
            pages: 0,
            page_size: None,
            folios: None,
            mapping: None,
            first_ns: at_ns,
            last_ns: at_ns,
            advice: advice(hazard, outcome),
        }
    }

    /// Whether `other` reports the same thing and can be merged into this one: one report line
    /// per registration even when GUP pins a range in several calls.
    pub fn same_as(&self, other: &Finding) -> bool {
        let same_file = match (&self.mapping, &other.mapping) {
            (Some(a), Some(b)) => a.same_file(b),
            (a, b) => a.is_none() && b.is_none(),
        };
        self.hazard == other.hazard
            && self.outcome == other.outcome
            && self.process == other.process
            && self.pinner == other.pinner
            && same_file
            && self.page_size == other.page_size
            && self.cause.kind() == other.cause.kind()
    }

    /// Merges `other`, the same as this one ([`Finding::same_as`]).
    pub fn merge(&mut self, other: Finding) {
        self.pages = self.pages.saturating_add(other.pages);
        self.folios = match (self.folios, other.folios) {
            (Some(a), Some(b)) => Some(a.saturating_add(b)),
            (a, b) => a.or(b),
        };
        self.first_ns = self.first_ns.min(other.first_ns);
        self.last_ns = self.last_ns.max(other.last_ns);
        if let (Some(mine), Some(theirs)) = (&mut self.mapping, other.mapping)
            && mine.path.is_none()
        {
            mine.path = theirs.path;
        }
        if let (Cause::Fork { forks }, Cause::Fork { forks: more }) = (&mut self.cause, other.cause)
        {
            *forks = forks.saturating_add(more);
        }
    }
}

/// What the kernel did, per hazard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// `longterm-file-pin`: a pin call with these GUP flags.
    Pin {
        gup_flags: String,
        /// For an unknown pinner: the first kernel function outside GUP on the call's stack.
        #[serde(skip_serializing_if = "Option::is_none")]
        caller: Option<Arc<str>>,
    },
    /// `pinned-folio-cleaned`: writeback write-protected the folio (`folio_mkclean`); the GUP
    /// flags of the pin that holds it, when pinwatch saw it.
    Writeback { gup_flags: Option<String> },
    /// `fork-with-pins`: the process forked, this many times.
    Fork { forks: u64 },
    /// `pinned-cow`: a fault on a pinned page.
    Fault { kind: FaultKind },
    /// `early-pfn-untrack`: what untracked the memtype.
    Untrack { origin: UntrackOrigin },
    /// `pinned-page-discarded`: the call that took the pinned pages from the process's memory.
    Discard { call: DiscardCall },
    /// `guest-memfd-pin`: guest_memfd refused a shared-to-private conversion
    /// (`KVM_SET_MEMORY_ATTRIBUTES2`) with this errno.
    Conversion { errno: i64 },
}

impl Cause {
    /// What tells two findings of one hazard apart beyond their outcome.
    fn kind(&self) -> Option<&'static str> {
        match self {
            Cause::Fault { kind } => Some(kind.id()),
            Cause::Untrack { origin } => Some(origin.id()),
            Cause::Discard { call } => Some(call.id()),
            Cause::Conversion { .. } => None,
            Cause::Pin { .. } | Cause::Writeback { .. } | Cause::Fork { .. } => None,
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Pin { gup_flags, caller } => {
                write!(f, "pin with {gup_flags}")?;
                match caller {
                    Some(caller) => write!(f, ", called from {caller}"),
                    None => Ok(()),
                }
            }
            Cause::Writeback {
                gup_flags: Some(flags),
            } => write!(f, "writeback (folio_mkclean) under a pin with {flags}"),
            Cause::Writeback { gup_flags: None } => f.write_str("writeback (folio_mkclean)"),
            Cause::Fork { forks: 1 } => f.write_str("a fork"),
            Cause::Fork { forks } => write!(f, "{forks} forks"),
            Cause::Fault { kind } => write!(f, "{} fault", kind.id()),
            Cause::Untrack { origin } => write!(f, "untracked by {}", origin.description()),
            Cause::Discard { call } => write!(f, "discarded by {}", call.id()),
            Cause::Conversion { errno } => write!(f, "conversion to private refused ({errno})"),
        }
    }
}

/// The kind of a fault on a pinned page (`vm_fault.flags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// `FAULT_FLAG_UNSHARE`: a read-only long-term pin unsharing a page it found shared.
    Unshare,
    /// `FAULT_FLAG_WRITE`: a write by the process.
    Write,
    /// Neither flag.
    Other,
}

impl FaultKind {
    pub fn of(fault_flags: u32) -> Self {
        if fault_flags & FAULT_FLAG_UNSHARE != 0 {
            FaultKind::Unshare
        } else if fault_flags & FAULT_FLAG_WRITE != 0 {
            FaultKind::Write
        } else {
            FaultKind::Other
        }
    }

    pub fn id(self) -> &'static str {
        match self {
            FaultKind::Unshare => "unshare",
            FaultKind::Write => "write",
            FaultKind::Other => "other",
        }
    }
}

/// Filesystem names of the superblock magics pinwatch meets (include/uapi/linux/magic.h).
pub fn fs_name(magic: u32) -> &'static str {
    match magic {
        0xef53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        0xf2f5_2010 => "f2fs",
        0x0102_1994 => "tmpfs",
        0x9584_58f6 => "hugetlbfs",
        0x8584_58f6 => "ramfs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        0x794c_7630 => "overlay",
        0x6265_6572 => "sysfs",
        0x0904_1934 => "anon_inode",
        GUEST_MEMFD_MAGIC => "guest_memfd",
        0x1cd1 => "devpts",
        _ => "other",
    }
}

/// `GUEST_MEMFD_MAGIC` (include/uapi/linux/magic.h, 6.18+): the superblock of KVM's guest_memfd
/// files.
pub const GUEST_MEMFD_MAGIC: u32 = 0x474d_454d;

/// Filesystems whose shared mappings need no dirty tracking: shmem (tmpfs, memfd) and hugetlbfs.
/// The kernel's own list in `vma_needs_dirty_tracking()` (6.5+); pinwatch uses it on older
/// kernels, where the function does not exist.
pub fn exempt_from_dirty_tracking(magic: u32) -> bool {
    matches!(fs_name(magic), "tmpfs" | "hugetlbfs")
}

pub fn advice(hazard: Hazard, outcome: Outcome) -> &'static str {
    match (hazard, outcome) {
        (Hazard::LongtermFilePin, Outcome::Refused) => {
            "the kernel refused a long-term writable pin of a dirty-tracked file: back DMA buffers with \
             memfd, tmpfs or hugetlbfs (QEMU: memory-backend-memfd instead of memory-backend-file,share=on)"
        }
        (Hazard::LongtermFilePin, _) => {
            "DMA into a dirty-tracked file mapping bypasses the filesystem (lost writes, fs corruption): \
             back DMA buffers with memfd, tmpfs or hugetlbfs, or upgrade to a kernel that refuses such pins (6.5+)"
        }
        (Hazard::PinnedFolioCleaned, _) => {
            "writeback cleaned a page that may still be DMA-pinned: later device writes are lost or dirty \
             the page behind the filesystem's back; stop pinning file-backed memory"
        }
        (Hazard::ForkWithPins, Outcome::Protected) => {
            "no action needed: the pinned ranges are MADV_DONTFORK, so the child does not inherit them"
        }
        (Hazard::ForkWithPins, _) => {
            "mark pinned ranges MADV_DONTFORK before forking (or pin after fork)"
        }
        (Hazard::PinnedCow, Outcome::Unshared) => {
            "a long-term pin found its pages shared (typically with a fork child) and the kernel copied \
             them first: parent and child no longer share that memory; pin before forking children, or \
             MADV_DONTFORK the buffer"
        }
        (Hazard::PinnedCow, _) => {
            "a pinned page was copied on write: the device no longer sees what the process writes; pin \
             MAP_SHARED or anonymous memory, never a MAP_PRIVATE file mapping (kernels from 6.2 unshare first)"
        }
        (Hazard::EarlyPfnUntrack, _) => "upgrade to a kernel with per-context PFN tracking (6.16+)",
        (Hazard::PinnedPageDiscarded, _) => {
            "a page was discarded while a device held it pinned: the device keeps reading and writing \
             the old page while the process sees a new one; unregister or unmap the DMA buffer (io_uring \
             unregister, VFIO_IOMMU_UNMAP_DMA) before punching, truncating or MADV_DONTNEED-ing its memory"
        }
        (Hazard::GuestMemfdPin, Outcome::ConversionRefused) => {
            "guest_memfd refused to make shared memory private because a page is still referenced, \
             typically pinned for DMA (io_uring, VFIO): release the device's pin of that range before \
             converting it"
        }
        (Hazard::GuestMemfdPin, _) => {
            "a long-term pin holds guest_memfd memory: the page cannot be converted from shared to \
             private while pinned, and a punch hole orphans it under the device; pin guest memory only \
             for as long as the DMA lasts, and release it before converting or discarding"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics_name_filesystems_and_exemptions() {
        assert_eq!(fs_name(0xef53), "ext4");
        assert_eq!(fs_name(0x5846_5342), "xfs");
        assert!(exempt_from_dirty_tracking(0x0102_1994));
        assert!(exempt_from_dirty_tracking(0x9584_58f6));
        assert!(
            !exempt_from_dirty_tracking(0x8584_58f6),
            "ramfs needs dirty tracking (6.12 refuses it)"
        );
        assert!(!exempt_from_dirty_tracking(0xef53));
    }

    #[test]
    fn outcome_ids_are_their_json_names() {
        for hazard in Hazard::ALL {
            for outcome in Outcome::of(hazard) {
                assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.id());
            }
        }
    }

    #[test]
    fn devices_print_as_major_minor() {
        let m = Mapping::of(
            FileId {
                dev: (1 << 20) | 3,
                ino: 9,
                fs_magic: 0xef53,
            },
            None,
        );
        assert_eq!((m.dev.as_str(), m.fs), ("1:3", "ext4"));
    }
}
