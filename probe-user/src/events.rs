//! Ring-buffer bytes → typed events. Nothing from aya or the wire layout leaks past this module,
//! and no input makes it panic: short or unknown records are errors.

use probe_common::event::{
    self as wire, CowEvent, ForkCopyEvent, ForkEvent, GmemIoctlEvent, Header, MadviseEvent,
    PfnUntrackEvent, PinEvent, PinRunEvent, PinnedFolioEvent, UnpinEvent, UnpinRunEvent, kind,
};

use crate::{
    hazards::Hazard,
    pinner::{Pinner, UntrackOrigin},
    probes,
    text::UserText,
};

mod runs;
pub use runs::{RunId, pin_run, run_id, unpin_run};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than its {need}-byte layout")]
    Short { len: usize, need: usize },
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
}

/// The process (thread group) an event came from. `start_ns` tells reused tgids apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Task {
    pub tgid: u32,
    pub tid: u32,
    pub start_ns: u64,
    /// The thread's name (`comm`), as the kernel keeps it: up to 15 bytes anyone may set.
    pub comm: UserText,
    pub cgroup_id: u64,
}

/// A file as the kernel names it: superblock device, inode number, filesystem magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct FileId {
    pub dev: u32,
    pub ino: u64,
    pub fs_magic: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Vma {
    pub flags: u64,
    pub start: u64,
    pub pgoff: u64,
    pub file: Option<FileId>,
    /// The kernel's own `vma_needs_dirty_tracking()` answer, where it was asked.
    pub needs_dirty_tracking: Option<bool>,
}

/// What a pinned range maps: shared or private, and where in which file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backing {
    /// MAP_SHARED: MADV_DONTNEED only unmaps it (the page stays in the file).
    pub shared: bool,
    /// The file (device in `s_dev` encoding, inode) and the page-cache index of the pin's first
    /// page; `None` for anonymous memory.
    pub file: Option<(u32, u64, u64)>,
}

impl Backing {
    /// From the VMA the kernel walked for a pin starting at `start`.
    pub fn of_vma(vma: &Vma, start: u64) -> Self {
        Self {
            shared: vma.flags & probe_common::kernel::VM_SHARED != 0,
            file: vma.file.map(|f| {
                let index = vma
                    .pgoff
                    .saturating_add(start.saturating_sub(vma.start) >> PAGE_SHIFT);
                (f.dev, f.ino, index)
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pin {
    pub at_ns: u64,
    pub task: Task,
    #[serde(serialize_with = "syscall")]
    pub syscall: wire::Syscall,
    pub hook: &'static str,
    pub gup_flags: u32,
    pub start: u64,
    pub nr_pages: u64,
    /// Pages pinned, or a negative errno.
    pub ret: i64,
    #[serde(skip)]
    pub stack_id: Option<u32>,
    pub vma: Option<Vma>,
    /// Who pinned (io_uring, vfio…), named from the kernel stack by the runtime once per stack.
    pub pinner: Pinner,
    /// For an unknown pinner: the first caller of GUP on the stack (shared by every pin from it).
    pub caller: Option<std::sync::Arc<str>>,
    /// Path of the mapped file, resolved by the runtime while the process lives.
    pub path: Option<UserText>,
    /// Whether the pinned range is MADV_DONTFORK, read by the runtime while the process lives.
    pub dontfork: Option<bool>,
    /// The memory the pin holds, for the rules that meet it again later (a discard): from the
    /// VMA the kernel walked, else read by the runtime from smaps while the process lives.
    #[serde(skip)]
    pub backing: Option<Backing>,
    /// Pin calls this event stands for: 1, or a run of granted calls the kernel gathered after
    /// the task's previous pin event (`ret` their pages, contiguous from `start`).
    pub calls: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unpin {
    pub at_ns: u64,
    /// The task whose pin ends: the one that pinned the memory.
    pub task: Task,
    /// Who released it when that was another task (a kworker tearing down an io_uring ring,
    /// another thread): the pin still ends for `task`.
    pub released_by: Option<Task>,
    pub hook: &'static str,
    #[serde(serialize_with = "syscall")]
    pub syscall: wire::Syscall,
    pub pages: u64,
    /// Unpin calls this event stands for (the kernel gathers a task's unpins of its own pins).
    pub calls: u64,
}

/// A maybe-DMA-pinned page-cache folio, cleaned by writeback or removed from its file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PinnedFolio {
    pub at_ns: u64,
    pub task: Task,
    /// The system call the task was in (what truncated or punched, for a removal).
    #[serde(serialize_with = "syscall")]
    pub syscall: wire::Syscall,
    #[serde(skip)]
    pub stack_id: Option<u32>,
    pub file: Option<FileId>,
    /// Page-cache index of the folio.
    pub index: u64,
    pub large: bool,
    /// Base pages in the folio, when this kernel's layout says.
    pub pages: Option<u64>,
    pub refcount: u32,
    pub pincount: i32,
}

/// madvise discarding anonymous memory by a process that has pinned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Madvise {
    pub at_ns: u64,
    pub task: Task,
    #[serde(serialize_with = "syscall")]
    pub syscall: wire::Syscall,
    pub start: u64,
    pub len: u64,
    pub behavior: u32,
}

/// guest_memfd's ioctl refused with -EAGAIN (the in-place conversion series).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GmemIoctl {
    pub at_ns: u64,
    pub task: Task,
    /// The user's ioctl: its request is `args[1]`.
    #[serde(serialize_with = "syscall")]
    pub syscall: wire::Syscall,
    pub ret: i64,
}

/// PAT memtype released for a VM_PFNMAP range.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PfnUntrack {
    pub at_ns: u64,
    pub task: Task,
    /// Released from inside the single-VMA zap path, i.e. while the VMA stays mapped.
    pub from_zap: bool,
    /// The VMA, where the kernel passed one (6.1/6.12 `untrack_pfn`).
    pub vma: Option<Vma>,
    pub vm_end: u64,
    pub pfn: u64,
    #[serde(skip)]
    pub stack_id: Option<u32>,
    /// What started the zap (revoke_iomem, vfio-pci…), named from the stack by the runtime.
    pub origin: UntrackOrigin,
    pub path: Option<UserText>,
}

/// log2 of the base page size (x86-64: 4 KiB); `pages` everywhere count base pages.
pub const PAGE_SHIFT: u64 = 12;

/// Pages of one VMA copied eagerly for a child at fork (they were maybe-DMA-pinned).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ForkCopy {
    pub at_ns: u64,
    pub task: Task,
    pub vm_start: u64,
    pub vm_end: u64,
    /// Base pages copied.
    pub pages: u64,
    /// Bytes of each copied page (4096, or the hugetlb page's size), when known.
    pub page_size: Option<u64>,
}

/// A process that has ever pinned forked `child_pid`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fork {
    pub at_ns: u64,
    pub task: Task,
    pub child_pid: u32,
}

/// A process that never pinned forked (sent only while a process tree is watched): how the
/// tree learns its members from the kernel, in order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Spawn {
    pub at_ns: u64,
    pub task: Task,
    pub child_pid: u32,
}

/// A write or unshare fault (`do_wp_page`) on a maybe-DMA-pinned page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PinnedCow {
    pub at_ns: u64,
    pub task: Task,
    #[serde(serialize_with = "syscall")]
    pub syscall: wire::Syscall,
    pub address: u64,
    pub fault_flags: u32,
    /// The fault copied the page: the pin keeps a page the process no longer maps there.
    pub copied: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Event {
    Pin(Pin),
    Unpin(Unpin),
    MkcleanPinned(PinnedFolio),
    PageCacheDiscard(PinnedFolio),
    MadviseDiscard(Madvise),
    GmemIoctlAgain(GmemIoctl),
    PfnUntrack(PfnUntrack),
    ForkCopy(ForkCopy),
    Fork(Fork),
    Spawn(Spawn),
    PinnedCow(PinnedCow),
}

impl Event {
    pub fn at_ns(&self) -> u64 {
        match self {
            Event::Pin(e) => e.at_ns,
            Event::Unpin(e) => e.at_ns,
            Event::MkcleanPinned(e) | Event::PageCacheDiscard(e) => e.at_ns,
            Event::MadviseDiscard(e) => e.at_ns,
            Event::GmemIoctlAgain(e) => e.at_ns,
            Event::PfnUntrack(e) => e.at_ns,
            Event::ForkCopy(e) => e.at_ns,
            Event::Fork(e) => e.at_ns,
            Event::Spawn(e) => e.at_ns,
            Event::PinnedCow(e) => e.at_ns,
        }
    }

    /// The kernel hook (a `probes::HOOKS` name) whose program sent the event.
    pub fn hook(&self) -> &'static str {
        match self {
            Event::Pin(e) => e.hook,
            Event::Unpin(e) => e.hook,
            Event::MkcleanPinned(_) => "folio_mkclean",
            Event::PageCacheDiscard(_) => "page_cache_delete",
            Event::MadviseDiscard(_) => "madvise",
            Event::GmemIoctlAgain(_) => "kvm_gmem_ioctl",
            Event::PfnUntrack(_) => "pfn_untrack",
            Event::ForkCopy(_) => "copy_page_range",
            Event::Fork(_) | Event::Spawn(_) => "process_fork",
            Event::PinnedCow(_) => "do_wp_page",
        }
    }

    /// The event's kind, as `kind` in its JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Pin(_) => "pin",
            Event::Unpin(_) => "unpin",
            Event::MkcleanPinned(_) => "mkclean-pinned",
            Event::PageCacheDiscard(_) => "page-cache-discard",
            Event::MadviseDiscard(_) => "madvise-discard",
            Event::GmemIoctlAgain(_) => "gmem-ioctl-again",
            Event::PfnUntrack(_) => "pfn-untrack",
            Event::ForkCopy(_) => "fork-copy",
            Event::Fork(_) => "fork",
            Event::Spawn(_) => "spawn",
            Event::PinnedCow(_) => "pinned-cow",
        }
    }

    /// The hazards this kind of event feeds: what `pinwatch events --hazard` selects on.
    pub fn hazards(&self) -> &'static [Hazard] {
        use Hazard::*;
        match self {
            Event::Pin(_) => &[
                LongtermFilePin,
                PinnedFolioCleaned,
                ForkWithPins,
                PinnedCow,
                PinnedPageDiscarded,
                GuestMemfdPin,
            ],
            Event::Unpin(_) => &[
                LongtermFilePin,
                PinnedFolioCleaned,
                ForkWithPins,
                PinnedPageDiscarded,
            ],
            Event::MkcleanPinned(_) => &[PinnedFolioCleaned],
            Event::PageCacheDiscard(_) | Event::MadviseDiscard(_) => &[PinnedPageDiscarded],
            Event::GmemIoctlAgain(_) => &[GuestMemfdPin],
            Event::PfnUntrack(_) => &[EarlyPfnUntrack],
            Event::ForkCopy(_) | Event::Fork(_) => &[ForkWithPins],
            Event::PinnedCow(_) => &[PinnedCow],
            Event::Spawn(_) => &[],
        }
    }

    pub fn task(&self) -> &Task {
        match self {
            Event::Pin(e) => &e.task,
            Event::Unpin(e) => &e.task,
            Event::MkcleanPinned(e) | Event::PageCacheDiscard(e) => &e.task,
            Event::MadviseDiscard(e) => &e.task,
            Event::GmemIoctlAgain(e) => &e.task,
            Event::PfnUntrack(e) => &e.task,
            Event::ForkCopy(e) => &e.task,
            Event::Fork(e) => &e.task,
            Event::Spawn(e) => &e.task,
            Event::PinnedCow(e) => &e.task,
        }
    }
}

pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let header: Header = read(bytes)?;
    Ok(match header.kind {
        kind::PIN => Event::Pin(pin(read(bytes)?)),
        kind::UNPIN => Event::Unpin(unpin(read(bytes)?)),
        kind::PIN_RUN => {
            let r: PinRunEvent = read(bytes)?;
            Event::Pin(pin_run(&r.header, &r.run))
        }
        kind::UNPIN_RUN => {
            let r: UnpinRunEvent = read(bytes)?;
            Event::Unpin(unpin_run(&r.header, &r.run))
        }
        kind::MKCLEAN_PINNED => Event::MkcleanPinned(pinned_folio(read(bytes)?)),
        kind::PAGE_CACHE_DISCARD => Event::PageCacheDiscard(pinned_folio(read(bytes)?)),
        kind::MADVISE_DISCARD => {
            let m: MadviseEvent = read(bytes)?;
            Event::MadviseDiscard(Madvise {
                at_ns: m.header.ts_ns,
                task: task(&m.header),
                syscall: m.header.syscall,
                start: m.start,
                len: m.len,
                behavior: m.behavior,
            })
        }
        kind::GMEM_IOCTL_AGAIN => {
            let g: GmemIoctlEvent = read(bytes)?;
            Event::GmemIoctlAgain(GmemIoctl {
                at_ns: g.header.ts_ns,
                task: task(&g.header),
                syscall: g.header.syscall,
                ret: g.ret,
            })
        }
        kind::PFN_UNTRACK => Event::PfnUntrack(pfn_untrack(read(bytes)?)),
        kind::FORK_COPY => Event::ForkCopy(fork_copy(read(bytes)?)),
        kind::PINNED_COW => Event::PinnedCow(pinned_cow(read(bytes)?)),
        kind::FORK => {
            let f: ForkEvent = read(bytes)?;
            Event::Fork(Fork {
                at_ns: f.header.ts_ns,
                task: task(&f.header),
                child_pid: f.child_pid,
            })
        }
        kind::SPAWN => {
            let f: ForkEvent = read(bytes)?;
            Event::Spawn(Spawn {
                at_ns: f.header.ts_ns,
                task: task(&f.header),
                child_pid: f.child_pid,
            })
        }
        other => return Err(DecodeError::UnknownKind(other)),
    })
}

/// An unpin by the task that pinned, or by another task (`released_by`) for the owner the
/// kernel matched by memory.
fn unpin(u: UnpinEvent) -> Unpin {
    let releaser = task(&u.header);
    let (task, released_by) = if u.owner_pid_tgid == 0 {
        (releaser, None)
    } else {
        // The kernel knows the owner's ids, not its name.
        let owner = Task {
            tgid: (u.owner_pid_tgid >> 32) as u32,
            tid: u.owner_pid_tgid as u32,
            start_ns: u.owner_start_ns,
            comm: UserText::from(&b""[..]),
            cgroup_id: 0,
        };
        (owner, Some(releaser))
    };
    Unpin {
        at_ns: u.header.ts_ns,
        task,
        released_by,
        hook: hook_name(u.hook),
        syscall: u.header.syscall,
        pages: u.pages,
        calls: 1,
    }
}

fn fork_copy(c: ForkCopyEvent) -> ForkCopy {
    ForkCopy {
        at_ns: c.header.ts_ns,
        task: task(&c.header),
        vm_start: c.vm_start,
        vm_end: c.vm_end,
        pages: c.pages,
        page_size: (c.copy_pages > 0).then_some(c.copy_pages << PAGE_SHIFT),
    }
}

fn pinned_cow(c: CowEvent) -> PinnedCow {
    PinnedCow {
        at_ns: c.header.ts_ns,
        task: task(&c.header),
        syscall: c.header.syscall,
        address: c.address,
        fault_flags: c.fault_flags,
        copied: c.copied != 0,
    }
}

fn hook_name(id: u32) -> &'static str {
    probes::HOOKS
        .iter()
        .find(|h| h.id == id)
        .map_or("unknown", |h| h.name)
}

/// The system call identity as JSON: number, return address, stack pointer, first arguments.
fn syscall<S: serde::Serializer>(value: &wire::Syscall, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct as _;
    let mut out = s.serialize_struct("Syscall", 4)?;
    out.serialize_field("nr", &value.nr)?;
    out.serialize_field("user_ip", &value.user_ip)?;
    out.serialize_field("user_sp", &value.user_sp)?;
    out.serialize_field("args", &value.args)?;
    out.end()
}

/// Copies a plain-old-data wire struct out of `bytes`.
fn read<T: Copy>(bytes: &[u8]) -> Result<T, DecodeError> {
    let need = size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::Short {
            len: bytes.len(),
            need,
        });
    }
    // SAFETY: the length was checked; T is a #[repr(C)] struct of integers and integer arrays
    // (probe_common::event), valid for every bit pattern; read_unaligned needs no alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

fn task(h: &Header) -> Task {
    let len = h.comm.iter().position(|&b| b == 0).unwrap_or(h.comm.len());
    Task {
        tgid: (h.pid_tgid >> 32) as u32,
        tid: h.pid_tgid as u32,
        start_ns: h.task_start_ns,
        comm: UserText::from(&h.comm[..len]),
        cgroup_id: h.cgroup_id,
    }
}

/// The VMA a pin walked; `None` when it walked none (a first page's file is [`first_page`]'s).
fn vma(v: wire::VmaInfo) -> Option<Vma> {
    (v.seen == wire::seen::VMA).then(|| Vma {
        flags: v.vm_flags,
        start: v.vm_start,
        pgoff: v.vm_pgoff,
        file: (v.ino != 0).then_some(FileId {
            dev: v.dev,
            ino: v.ino,
            fs_magic: v.fs_magic,
        }),
        needs_dirty_tracking: match v.needs_dirty {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        },
    })
}

/// What a GUP-fast pin holds when its first page is a file's page-cache page (shmem, memfd),
/// named in the kernel from that page at `start`. A page-cache page pinned long-term is mapped
/// shared: from 6.2 a private file mapping is unshared to anonymous copies before the pin.
fn first_page(v: &wire::VmaInfo, start: u64) -> Option<Backing> {
    (v.seen == wire::seen::FIRST_PAGE && v.ino != 0).then(|| Backing {
        shared: true,
        file: Some((
            v.dev,
            v.ino,
            v.vm_pgoff
                .saturating_add(start.saturating_sub(v.vm_start) >> PAGE_SHIFT),
        )),
    })
}

fn pfn_untrack(e: PfnUntrackEvent) -> PfnUntrack {
    PfnUntrack {
        at_ns: e.header.ts_ns,
        task: task(&e.header),
        from_zap: e.from_zap != 0,
        vma: vma(e.vma),
        vm_end: e.vm_end,
        pfn: e.pfn,
        stack_id: u32::try_from(e.stack_id).ok(),
        origin: UntrackOrigin::Zap,
        path: None,
    }
}

fn pin(p: PinEvent) -> Pin {
    let vma = vma(p.vma);
    Pin {
        at_ns: p.header.ts_ns,
        task: task(&p.header),
        syscall: p.header.syscall,
        hook: hook_name(p.hook),
        gup_flags: p.gup_flags,
        start: p.start,
        nr_pages: p.nr_pages,
        ret: p.ret,
        stack_id: u32::try_from(p.stack_id).ok(),
        vma,
        pinner: Pinner::Unknown,
        caller: None,
        path: None,
        dontfork: None,
        backing: first_page(&p.vma, p.start),
        calls: 1,
    }
}

fn pinned_folio(m: PinnedFolioEvent) -> PinnedFolio {
    PinnedFolio {
        at_ns: m.header.ts_ns,
        task: task(&m.header),
        syscall: m.header.syscall,
        stack_id: u32::try_from(m.stack_id).ok(),
        file: (m.ino != 0).then_some(FileId {
            dev: m.dev,
            ino: m.ino,
            fs_magic: m.fs_magic,
        }),
        index: m.index,
        large: m.large != 0,
        pages: (m.pages > 0).then_some(u64::from(m.pages)),
        refcount: m.refcount,
        pincount: m.pincount,
    }
}

/// Wire records as bytes, for tests here and in the correlator.
#[cfg(test)]
pub fn bytes_of<T: Copy>(value: &T) -> Vec<u8> {
    // SAFETY: T is a plain #[repr(C)] wire struct; viewing it as bytes is always valid.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()).to_vec() }
}

#[cfg(test)]
mod tests;
