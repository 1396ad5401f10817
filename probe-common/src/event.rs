//! Detailed events, sent through the `EVENTS` ring buffer. Rare by construction: long-term pins
//! (registration time), unpins of a task being watched right after a granted file pin, and
//! folios cleaned by writeback while maybe-DMA-pinned. Hot paths never reach here.
//!
//! Every record starts with a [`Header`]; `kind` says which struct follows. Layouts are fixed
//! with explicit padding and checked by size assertions on both sides.

/// Values of [`Header::kind`].
pub mod kind {
    pub const PIN: u32 = 1;
    pub const UNPIN: u32 = 2;
    pub const MKCLEAN_PINNED: u32 = 3;
    pub const PFN_UNTRACK: u32 = 4;
    pub const FORK_COPY: u32 = 5;
    pub const FORK: u32 = 6;
    pub const PINNED_COW: u32 = 7;
    /// A new process (a [`super::ForkEvent`]) forked by a process that never pinned, sent only
    /// while userspace watches a process tree (`TRACK_SPAWNS`).
    pub const SPAWN: u32 = 8;
    /// Granted long-term pin calls that joined the pin record before them ([`super::PinRun`]).
    pub const PIN_RUN: u32 = 9;
    /// Unpins by a watched task, gathered ([`super::UnpinRun`]).
    pub const UNPIN_RUN: u32 = 10;
    /// A maybe-DMA-pinned folio left a file's page cache ([`super::PinnedFolioEvent`]).
    pub const PAGE_CACHE_DISCARD: u32 = 11;
    /// A process that has pinned discarded anonymous memory ([`super::MadviseEvent`]).
    pub const MADVISE_DISCARD: u32 = 12;
    /// guest_memfd's ioctl returned -EAGAIN ([`super::GmemIoctlEvent`]).
    pub const GMEM_IOCTL_AGAIN: u32 = 13;
}

/// Name of the eBPF global that turns on [`kind::SPAWN`] records: nonzero while a command
/// watches one process tree (`audit -- CMD`, `--pid`), so that membership comes from the
/// kernel's own fork records, in order, even for children that pinned and exited before
/// userspace read their first event.
pub const TRACK_SPAWNS: &str = "TRACK_SPAWNS";

/// Name of the eBPF global that makes every program return at once, before it counts or reads
/// anything (`pinwatch run --cost floor`): the attachments' own cost (trampolines, kprobes)
/// with none of pinwatch's work, the floor the benchmark measures pinwatch against. Read-only
/// after load, so the verifier prunes the programs' bodies away.
pub const IDLE: &str = "IDLE";

/// Name of the eBPF global holding how full (bytes) the ring buffer may get before a record
/// wakes the reader: a quarter of its size, written at load with the size itself.
pub const RING_WAKEUP_BYTES: &str = "RING_WAKEUP_BYTES";

/// `Header::pid_tgid` is the kernel's `tgid << 32 | pid`; `task_start_ns` is the thread-group
/// leader's start time, so a reused tgid never merges with a dead process. `syscall` identifies
/// the user system call the kernel is serving (its number, and the user instruction and stack
/// pointers it will return to): equal values on a pin and an unpin mean "same system call".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub kind: u32,
    pub cpu: u32,
    pub ts_ns: u64,
    pub pid_tgid: u64,
    pub task_start_ns: u64,
    pub comm: [u8; 16],
    pub syscall: Syscall,
    /// cgroup v2 id of the task (the inode number of its cgroup directory).
    pub cgroup_id: u64,
}

/// The user registers of the system call in progress (`task_pt_regs(current)`): its number,
/// where it returns to, and its first three arguments (two ioctls from the same libc wrapper
/// differ in fd, request or argument).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Syscall {
    pub nr: u64,
    pub user_ip: u64,
    pub user_sp: u64,
    pub args: [u64; 3],
}

/// What pinwatch learned about the VMA a pin walked (slow path, `check_vma_flags`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmaInfo {
    /// What the fields below hold ([`seen`]).
    pub seen: u32,
    /// `vma_needs_dirty_tracking()`'s answer: 0 no, 1 yes, 2 not asked (the function does not
    /// exist before 6.5, or GUP never reached it).
    pub needs_dirty: u32,
    pub vm_flags: u64,
    pub vm_start: u64,
    pub vm_pgoff: u64,
    /// `vm_file->f_inode`: 0 for anonymous memory.
    pub ino: u64,
    pub dev: u32,
    /// `i_sb->s_magic` (EXT4 0xef53, XFS 0x58465342, TMPFS 0x01021994, HUGETLBFS 0x958458f6…).
    pub fs_magic: u32,
}

pub const NEEDS_DIRTY_UNKNOWN: u32 = 2;

/// Values of [`VmaInfo::seen`].
pub mod seen {
    /// Nothing captured.
    pub const NONE: u32 = 0;
    /// The VMA a long-term GUP walked (`check_vma_flags`): every field.
    pub const VMA: u32 = 1;
    /// No VMA was walked (GUP-fast), but the first pinned page is a file's page-cache page: its
    /// `ino`, `dev`, `fs_magic`, with `vm_start` the pin's start and `vm_pgoff` that page's
    /// index. `vm_flags` is unknown (0).
    pub const FIRST_PAGE: u32 = 2;
}

/// A long-term pin call returned (`ret` pages pinned, or a negative errno).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PinEvent {
    pub header: Header,
    /// `probe_common::hook` id of the entry point.
    pub hook: u32,
    /// The caller's gup_flags as passed to the entry point.
    pub gup_flags: u32,
    pub start: u64,
    pub nr_pages: u64,
    pub ret: i64,
    /// Kernel stack of the caller (`STACKS` map), negative when unavailable.
    pub stack_id: i64,
    pub vma: VmaInfo,
    /// Kernel side only: the `struct page **` the call fills, carried from entry to return
    /// (a kretprobe has no arguments); 0 in the record sent.
    pub pages_array: u64,
}

/// Granted long-term pin calls gathered in the kernel instead of one record each: a pin storm
/// (io_uring registers each buffer with its own call, VFIO maps in chunks) costs a record per
/// system call, not per call.
///
/// A granted pin of anonymous memory is sent as a [`PinEvent`] (findings need no wait) and
/// *opens a batch*. A later call of the same task joins it when it is the same system call,
/// entry point, flags and stack, starts where the batch's last call ended, is granted and walked
/// no other VMA. Joined calls add up here and travel as one [`PinRunEvent`] when the run is
/// flushed: at the task's next unpin, a call that does not join, fork and exit. Userspace also
/// reads open runs every tick from `INFLIGHT`, so a task that goes idle hides nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PinRun {
    pub hook: u32,
    pub gup_flags: u32,
    /// The system call every call of the run was made in (not the flush's).
    pub syscall: Syscall,
    pub stack_id: i64,
    /// The VMA the opening call walked (`seen` 0: none).
    pub vma: VmaInfo,
    /// When the first call joined (0: none yet); with the task, the run's identity.
    pub first_ns: u64,
    /// When the last call joined: a run read while open is ordered here.
    pub last_ns: u64,
    /// The first joined call's first address; the run's pages are contiguous from it.
    pub start: u64,
    pub calls: u64,
    pub pages: u64,
}

/// Unpins by a watched task of its own pins, gathered like [`PinRun`]: consecutive unpins in one
/// system call through one entry point. Sent when the task has nothing pinned left (the end of an
/// unregistration: no delay), before its next pin, on another system call or entry point, at
/// fork and exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnpinRun {
    pub hook: u32,
    pub _pad: u32,
    pub syscall: Syscall,
    pub first_ns: u64,
    pub last_ns: u64,
    pub calls: u64,
    pub pages: u64,
}

/// A [`PinRun`] sent; `header.syscall` is the run's, `header.ts_ns` when it was flushed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PinRunEvent {
    pub header: Header,
    pub run: PinRun,
}

/// An [`UnpinRun`] sent, like [`PinRunEvent`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnpinRunEvent {
    pub header: Header,
    pub run: UnpinRun,
}

/// A task's long-term pins in the kernel (`INFLIGHT`, by pid_tgid, kept from the task's first
/// long-term pin to its exit): the last call sent on its own, the runs not sent yet, and what a
/// pin call in progress gathers for its return.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskPins {
    /// The last pin call sent on its own record: the batch's opener, whose header names the
    /// task (read by userspace for runs read while open).
    pub call: PinEvent,
    pub pins: PinRun,
    pub unpins: UnpinRun,
    /// The address a call must start at to join `pins`; 0 while no batch is open.
    pub join_at: u64,
    /// 1 from a kprobe entry to its kretprobe, which has no arguments: `entry` carries them.
    /// fexit sees the arguments itself, so under fentry a pin has no entry program.
    pub in_call: u32,
    /// 1 from the first VMA a long-term GUP checks (`check_vma_flags`) to its pin call's
    /// return: faults in between (unshares) are the pin's own.
    pub walking: u32,
    pub entry: PinCall,
    /// The first VMA the long-term GUP in progress walked (`check_vma_flags`), where it ends,
    /// and the system call it was walked in; `walk.seen` is 0 once a pin's return took it.
    pub walk: VmaInfo,
    pub walk_end: u64,
    pub walk_syscall: Syscall,
    /// Pages the task was granted and has not released: its unpins are watched while nonzero.
    /// Changed only by atomic adds: a kworker releasing the task's memory (`owners`) takes
    /// pages off too.
    pub watched: u64,
    /// `folio->mapping` of the memory last recorded in `OWNERS` for this task: a registration's
    /// calls into the same memory skip the identity walk and the lookup. 0 once the task holds
    /// nothing (its owner entry may be forgotten).
    pub owner_mapping: u64,
}

/// A pin call's arguments, as every pin entry point takes them in some order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PinCall {
    pub start: u64,
    pub nr_pages: u64,
    /// The caller's `struct page **` (0 when it wants no pages back).
    pub pages_array: u64,
    pub gup_flags: u32,
    /// The stack id the kprobe entry took (the kretprobe's own stack is the return trampoline's).
    pub stack_id: i32,
}

#[cfg(feature = "user")]
// SAFETY: #[repr(C)] integers and arrays of them, valid for every bit pattern.
unsafe impl aya::Pod for TaskPins {}

/// Pages unpinned by a watched task, or released by another task (a kworker, another thread)
/// from memory a watched task pinned.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnpinEvent {
    pub header: Header,
    pub hook: u32,
    pub _pad: u32,
    pub pages: u64,
    /// The task that pinned the memory when someone else released it (0: the releasing task
    /// itself, `header`), and its process's start time.
    pub owner_pid_tgid: u64,
    pub owner_start_ns: u64,
}

/// A page-cache folio the kernel's own test calls maybe-DMA-pinned, met by writeback
/// (`folio_mkclean()`, [`kind::MKCLEAN_PINNED`]) or leaving the page cache
/// ([`kind::PAGE_CACHE_DISCARD`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PinnedFolioEvent {
    pub header: Header,
    pub folio: u64,
    /// Page-cache index of the folio in its file.
    pub index: u64,
    pub ino: u64,
    pub dev: u32,
    pub fs_magic: u32,
    pub refcount: u32,
    /// `_pincount` of a large folio; 0 for a small one (its pins live in `refcount`).
    pub pincount: i32,
    pub large: u32,
    /// Base pages in the folio (`folio_nr_pages()`); 0 when this kernel's layout is unknown.
    pub pages: u32,
    /// Kernel stack of a removal (what truncated or punched), negative when not taken.
    pub stack_id: i64,
}

/// madvise() discarding anonymous memory (`MADV_DONTNEED`, `MADV_DONTNEED_LOCKED`) by a process
/// whose mm has pinned (`MMF_HAS_PINNED`): userspace matches the range against its live pins.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MadviseEvent {
    pub header: Header,
    pub start: u64,
    pub len: u64,
    pub behavior: u32,
    pub _pad: u32,
}

/// `kvm_gmem_ioctl()` returned -EAGAIN: with the in-place conversion series, a conversion
/// (`KVM_SET_MEMORY_ATTRIBUTES2`) refused because a page holds an extra reference, a pin
/// included. The request is the user system call's (`header.syscall.args[1]`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GmemIoctlEvent {
    pub header: Header,
    pub ret: i64,
}

/// PAT memtype untracked for a VM_PFNMAP VMA: by `untrack_pfn` (6.1, 6.12; the VMA is known and
/// had `VM_PAT`) or by `pfnmap_untrack` (7.2; only the range is known).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PfnUntrackEvent {
    pub header: Header,
    /// 1 when called while this task was inside the single-VMA zap path.
    pub from_zap: u32,
    pub _pad: u32,
    /// `vm_end` of the VMA (0 when unknown); its start, flags and file are in `vma`.
    pub vm_end: u64,
    pub pfn: u64,
    pub size: u64,
    pub stack_id: i64,
    pub vma: VmaInfo,
}

/// `copy_page_range()` copied pages eagerly for the child (a new anon rmap inside it): the
/// kernel's answer to pinned anonymous pages at fork.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForkCopyEvent {
    pub header: Header,
    pub vm_start: u64,
    pub vm_end: u64,
    pub vm_flags: u64,
    /// Base (4 KiB) pages of the new anonymous folios mapped for the child while copying this
    /// VMA: 1 per eager copy of a small page, 512 per 2 MiB hugetlb page.
    pub pages: u64,
    /// Base pages in each copied folio: 1 for small pages (a pinned THP is split and copied
    /// page by page), the huge page's size for hugetlb; 0 when the folio's order is unknown.
    pub copy_pages: u64,
}

/// A process whose mm has ever pinned (`MMF_HAS_PINNED`) forked.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForkEvent {
    pub header: Header,
    pub child_pid: u32,
    pub _pad: u32,
}

/// `do_wp_page()` handled a write or unshare fault on a maybe-DMA-pinned page.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CowEvent {
    pub header: Header,
    pub address: u64,
    /// `vmf->flags` (FAULT_FLAG_WRITE 0x1, FAULT_FLAG_UNSHARE 0x400…).
    pub fault_flags: u32,
    /// 1 when the fault copied the page (the pin now holds a page the process no longer maps).
    pub copied: u32,
    pub refcount: u32,
    pub pincount: i32,
}

const _: () = assert!(size_of::<Header>() == 104);
const _: () = assert!(size_of::<CowEvent>() == 104 + 24);
const _: () = assert!(size_of::<ForkCopyEvent>() == 104 + 40);
const _: () = assert!(size_of::<ForkEvent>() == 104 + 8);
const _: () = assert!(size_of::<PfnUntrackEvent>() == 104 + 40 + 48);
const _: () = assert!(size_of::<VmaInfo>() == 48);
const _: () = assert!(size_of::<PinEvent>() == 104 + 40 + 48 + 8);
const _: () = assert!(size_of::<UnpinEvent>() == 104 + 32);
const _: () = assert!(size_of::<PinnedFolioEvent>() == 104 + 56);
const _: () = assert!(size_of::<MadviseEvent>() == 104 + 24);
const _: () = assert!(size_of::<GmemIoctlEvent>() == 104 + 8);
const _: () = assert!(size_of::<PinRun>() == 8 + 48 + 8 + 48 + 40);
const _: () = assert!(size_of::<UnpinRun>() == 8 + 48 + 32);
const _: () = assert!(size_of::<PinRunEvent>() == 104 + size_of::<PinRun>());
const _: () = assert!(size_of::<UnpinRunEvent>() == 104 + size_of::<UnpinRun>());

/// The largest record, for sizing reads.
pub const MAX_EVENT_SIZE: usize = size_of::<PinRunEvent>();
