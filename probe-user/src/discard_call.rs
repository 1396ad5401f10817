//! What discarded a pinned page: named from the system call the discarding task was in (its
//! number and arguments travel in every record's header) and, for madvise, its behaviour.

use probe_common::{event::Syscall, kernel::madv};
use serde::Serialize;

/// The call that took a pinned page from the memory its process maps. Ids are stable: JSON,
/// expectations and the README name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiscardCall {
    /// `fallocate(FALLOC_FL_PUNCH_HOLE)` (guest_memfd, shmem, ext4, xfs…).
    PunchHole,
    /// `fallocate(FALLOC_FL_ZERO_RANGE)`: the range's page cache is dropped first.
    ZeroRange,
    /// `fallocate(FALLOC_FL_COLLAPSE_RANGE` or `INSERT_RANGE)`: pages after the offset move.
    ShiftRange,
    /// `truncate`/`ftruncate` to a smaller size.
    Truncate,
    /// `open(O_TRUNC)`.
    OpenTruncate,
    /// `madvise(MADV_REMOVE)`: a punched hole through the mapping.
    MadviseRemove,
    /// `madvise(MADV_DONTNEED)`: anonymous pages zapped.
    MadviseDontneed,
    /// `madvise(MADV_DONTNEED_LOCKED)`.
    MadviseDontneedLocked,
    /// `process_madvise()` (7.2 allows MADV_DONTNEED on the caller's own memory).
    ProcessMadvise,
    /// An io_uring request (`IORING_OP_MADVISE`, `IORING_OP_FALLOCATE`…).
    IoUring,
    /// A write that invalidated the page cache over its range (O_DIRECT).
    DirectWrite,
    /// The file's last reference went (close, munmap or exit of an unlinked file): the page
    /// cache is freed with the inode. Not the hazard the process can see: it no longer maps it.
    LastClose,
    /// Another system call, or none (a kernel thread).
    Other,
}

/// x86-64 system call numbers (`arch/x86/entry/syscalls/syscall_64.tbl`).
mod nr {
    pub const WRITE: u64 = 1;
    pub const OPEN: u64 = 2;
    pub const CLOSE: u64 = 3;
    pub const MUNMAP: u64 = 11;
    pub const PWRITE64: u64 = 18;
    pub const WRITEV: u64 = 20;
    pub const MADVISE: u64 = 28;
    pub const EXIT: u64 = 60;
    pub const TRUNCATE: u64 = 76;
    pub const FTRUNCATE: u64 = 77;
    pub const UNLINK: u64 = 87;
    pub const EXIT_GROUP: u64 = 231;
    pub const OPENAT: u64 = 257;
    pub const UNLINKAT: u64 = 263;
    pub const FALLOCATE: u64 = 285;
    pub const PWRITEV: u64 = 296;
    pub const PWRITEV2: u64 = 328;
    pub const IO_URING_ENTER: u64 = 426;
    pub const PROCESS_MADVISE: u64 = 440;
}

/// `fallocate` modes (`include/uapi/linux/falloc.h`).
const FALLOC_FL_PUNCH_HOLE: u64 = 0x02;
const FALLOC_FL_COLLAPSE_RANGE: u64 = 0x08;
const FALLOC_FL_ZERO_RANGE: u64 = 0x10;
const FALLOC_FL_INSERT_RANGE: u64 = 0x20;
/// `O_TRUNC` (x86-64).
const O_TRUNC: u64 = 0o1000;

impl DiscardCall {
    /// The call a page-cache removal happened in.
    pub fn of_syscall(syscall: &Syscall) -> Self {
        let [_, a1, a2] = syscall.args;
        match syscall.nr {
            nr::FALLOCATE if a1 & FALLOC_FL_PUNCH_HOLE != 0 => DiscardCall::PunchHole,
            nr::FALLOCATE if a1 & FALLOC_FL_ZERO_RANGE != 0 => DiscardCall::ZeroRange,
            nr::FALLOCATE if a1 & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE) != 0 => {
                DiscardCall::ShiftRange
            }
            nr::TRUNCATE | nr::FTRUNCATE => DiscardCall::Truncate,
            nr::OPEN if a1 & O_TRUNC != 0 => DiscardCall::OpenTruncate,
            nr::OPENAT if a2 & O_TRUNC != 0 => DiscardCall::OpenTruncate,
            nr::MADVISE => Self::of_madvise(a2 as u32),
            nr::PROCESS_MADVISE => DiscardCall::ProcessMadvise,
            nr::IO_URING_ENTER => DiscardCall::IoUring,
            nr::WRITE | nr::PWRITE64 | nr::WRITEV | nr::PWRITEV | nr::PWRITEV2 => {
                DiscardCall::DirectWrite
            }
            nr::CLOSE | nr::MUNMAP | nr::EXIT | nr::EXIT_GROUP | nr::UNLINK | nr::UNLINKAT => {
                DiscardCall::LastClose
            }
            _ => DiscardCall::Other,
        }
    }

    /// The call of a madvise discard event: its behaviour, unless it came another way.
    pub fn of_madvise_event(syscall: &Syscall, behavior: u32) -> Self {
        match syscall.nr {
            nr::PROCESS_MADVISE => DiscardCall::ProcessMadvise,
            nr::IO_URING_ENTER => DiscardCall::IoUring,
            _ => Self::of_madvise(behavior),
        }
    }

    fn of_madvise(behavior: u32) -> Self {
        match behavior {
            madv::REMOVE => DiscardCall::MadviseRemove,
            madv::DONTNEED => DiscardCall::MadviseDontneed,
            madv::DONTNEED_LOCKED => DiscardCall::MadviseDontneedLocked,
            _ => DiscardCall::Other,
        }
    }

    pub fn id(self) -> &'static str {
        match self {
            DiscardCall::PunchHole => "punch-hole",
            DiscardCall::ZeroRange => "zero-range",
            DiscardCall::ShiftRange => "shift-range",
            DiscardCall::Truncate => "truncate",
            DiscardCall::OpenTruncate => "open-truncate",
            DiscardCall::MadviseRemove => "madvise-remove",
            DiscardCall::MadviseDontneed => "madvise-dontneed",
            DiscardCall::MadviseDontneedLocked => "madvise-dontneed-locked",
            DiscardCall::ProcessMadvise => "process-madvise",
            DiscardCall::IoUring => "io-uring",
            DiscardCall::DirectWrite => "direct-write",
            DiscardCall::LastClose => "last-close",
            DiscardCall::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(nr: u64, args: [u64; 3]) -> DiscardCall {
        DiscardCall::of_syscall(&Syscall {
            nr,
            args,
            ..Syscall::default()
        })
    }

    #[test]
    fn fallocate_modes_name_the_discard() {
        // fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, …)
        assert_eq!(call(285, [3, 0x03, 0]), DiscardCall::PunchHole);
        assert_eq!(call(285, [3, 0x10, 0]), DiscardCall::ZeroRange);
        assert_eq!(call(285, [3, 0x08, 0]), DiscardCall::ShiftRange);
        assert_eq!(call(285, [3, 0x00, 0]), DiscardCall::Other);
    }

    #[test]
    fn truncation_and_madvise_are_told_apart() {
        assert_eq!(call(77, [3, 0, 0]), DiscardCall::Truncate);
        assert_eq!(call(76, [0x7f00, 0, 0]), DiscardCall::Truncate);
        assert_eq!(call(257, [0, 0x7f00, 0o1001]), DiscardCall::OpenTruncate);
        assert_eq!(call(257, [0, 0x7f00, 0o1]), DiscardCall::Other);
        assert_eq!(call(28, [0x7f00, 4096, 9]), DiscardCall::MadviseRemove);
        assert_eq!(call(3, [3, 0, 0]), DiscardCall::LastClose);
    }

    #[test]
    fn a_madvise_event_names_its_way_in() {
        let syscall = |nr| Syscall {
            nr,
            ..Syscall::default()
        };
        assert_eq!(
            DiscardCall::of_madvise_event(&syscall(28), 4),
            DiscardCall::MadviseDontneed
        );
        assert_eq!(
            DiscardCall::of_madvise_event(&syscall(440), 4),
            DiscardCall::ProcessMadvise
        );
        assert_eq!(
            DiscardCall::of_madvise_event(&syscall(426), 24),
            DiscardCall::IoUring
        );
    }

    #[test]
    fn ids_are_their_json_names() {
        for call in [DiscardCall::PunchHole, DiscardCall::MadviseDontneedLocked] {
            assert_eq!(serde_json::to_value(call).unwrap(), call.id());
        }
    }
}
