//! Kernel struct layout, written by userspace from BTF before load (the globals of
//! `probe_common::kernel_facts!`).
//!
//! The statics start at 0 and live in .rodata (aya's `Global`: a volatile load, so the value
//! userspace wrote is read, not the initial 0 folded in); each group of offsets is used only
//! when its bit in `LAYOUT_VALID` says userspace resolved all of them.

use aya_ebpf::{Global, helpers::bpf_probe_read_kernel};
use probe_common::{
    event::{NEEDS_DIRTY_UNKNOWN, Syscall, VmaInfo, seen},
    kernel::{GUP_PIN_COUNTING_BIAS, MMF_HAS_PINNED_BIT},
    layout::valid,
};

/// One read-only `Global<u32>` per fact of the table, named as userspace writes it, plus
/// `LAYOUT_VALID`. Only the names are used here: where each value comes from is userspace's job.
macro_rules! globals {
    (
        btf { $( $(#[$doc:meta])* $global:ident => $field:ident in [$($group:ident),+]
            = $source:ident $args:tt; )* }
        foll { $( $(#[$fdoc:meta])* $fglobal:ident in [$($fgroup:ident),+]
            = $fsource:ident $fargs:tt; )* }
    ) => {
        /// Bit set of the `valid` groups whose facts userspace all resolved.
        #[unsafe(no_mangle)]
        static LAYOUT_VALID: Global<u32> = Global::new(0);
        $(
            $(#[$doc])*
            #[unsafe(no_mangle)]
            static $global: Global<u32> = Global::new(0);
        )*
        $(
            $(#[$fdoc])*
            #[unsafe(no_mangle)]
            static $fglobal: Global<u32> = Global::new(0);
        )*
    };
}

probe_common::kernel_facts!(globals);

#[inline(always)]
pub fn has(group: u32) -> bool {
    LAYOUT_VALID.load() & group == group
}

#[inline(always)]
fn read<T>(base: u64, offset: &Global<u32>) -> Option<T> {
    if base == 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel copes with any address; a bad one returns an error.
    unsafe { bpf_probe_read_kernel((base + offset.load() as u64) as *const T).ok() }
}

pub struct FolioPins {
    pub large: bool,
    pub refcount: u32,
    pub pincount: i32,
}

impl FolioPins {
    /// The kernel's own `folio_maybe_dma_pinned()`: a large folio is pinned when `_pincount > 0`,
    /// a small one when `_refcount >= GUP_PIN_COUNTING_BIAS` (which can be a false positive,
    /// hence "maybe").
    #[inline(always)]
    pub fn maybe_dma_pinned(&self) -> bool {
        if self.large {
            self.pincount > 0
        } else {
            self.refcount >= GUP_PIN_COUNTING_BIAS
        }
    }
}

#[inline(always)]
pub fn folio_pins(folio: u64) -> Option<FolioPins> {
    if !has(valid::FOLIO_PIN_TEST) {
        return None;
    }
    let flags: u64 = read(folio, &FOLIO_FLAGS_OFF)?;
    let large = flags & (1u64 << (PG_HEAD_BIT.load() & 63)) != 0;
    let refcount: u32 = read(folio, &FOLIO_REFCOUNT_OFF)?;
    let pincount: i32 = if large {
        read(folio, &FOLIO_PINCOUNT_OFF)?
    } else {
        0
    };
    Some(FolioPins {
        large,
        refcount,
        pincount,
    })
}

/// A field at a BTF-checked offset of a BTF-typed kernel pointer (an fentry argument, the
/// current task), by a direct load: the offset is a read-only global the verifier sees as a
/// constant, so it checks the access against the kernel's BTF and makes the load fault-tolerant.
/// Far cheaper than a `bpf_probe_read_kernel` call; only programs whose pointer the verifier
/// types from BTF may use it (kprobes go through [`read`]).
///
/// # Safety
/// `base` must be a BTF-typed pointer whose type has a field of type `T` at `offset`.
#[inline(always)]
unsafe fn load<T: Copy>(base: *const u8, offset: &Global<u32>) -> T {
    // SAFETY: per the contract; the verifier rejects the program otherwise.
    unsafe { core::ptr::read_volatile(base.wrapping_add(offset.load() as usize).cast::<T>()) }
}

/// [`folio_pins`] through a BTF-typed `struct folio *` (see [`load`]): the writeback hook's
/// per-folio test on fentry.
#[inline(always)]
pub fn folio_pins_btf(folio: *const u8) -> Option<FolioPins> {
    if !has(valid::FOLIO_PIN_TEST) || folio.is_null() {
        return None;
    }
    // SAFETY: `folio.flags`, `folio._refcount` and `folio._pincount`, per the layout's BTF.
    let flags: u64 = unsafe { load(folio, &FOLIO_FLAGS_OFF) };
    let large = flags & (1u64 << (PG_HEAD_BIT.load() & 63)) != 0;
    // SAFETY: as above.
    let refcount: u32 = unsafe { load(folio, &FOLIO_REFCOUNT_OFF) };
    let pincount: i32 = if large {
        // SAFETY: as above.
        unsafe { load(folio, &FOLIO_PINCOUNT_OFF) }
    } else {
        0
    };
    Some(FolioPins {
        large,
        refcount,
        pincount,
    })
}

/// The largest folio order: a 1 GiB (PUD) hugetlb page.
const MAX_FOLIO_ORDER: u64 = 18;

/// Base pages in a folio (`folio_nr_pages()`): 1 for a small folio, `1 << order` for a large
/// one; `None` when this kernel's layout is unknown.
#[inline(always)]
pub fn folio_pages(folio: u64) -> Option<u64> {
    if !has(valid::FOLIO_ORDER) {
        return None;
    }
    let flags: u64 = read(folio, &FOLIO_FLAGS_OFF)?;
    if flags & (1u64 << (PG_HEAD_BIT.load() & 63)) == 0 {
        return Some(1);
    }
    let order: u8 = read(folio, &FOLIO_ORDER_OFF)?;
    (u64::from(order) <= MAX_FOLIO_ORDER).then(|| 1u64 << order)
}

/// The folio a page belongs to (`page_folio()`): the page itself unless it is a tail page of a
/// large folio. Rather than decode the tail word (a head pointer on 6.1 and 6.12, re-encoded on
/// 7.2), the head is found where it must be: folios are naturally aligned in PFN space and the
/// vmemmap lays struct pages out in PFN order, so the head is the first page at an
/// order-aligned slot below the tail that is a head. `None` when that cannot be read.
#[inline(always)]
pub fn page_folio(page: u64) -> Option<u64> {
    if !has(valid::FOLIO_ORDER) {
        return None;
    }
    let tail: u64 = read(page, &PAGE_TAIL_OFF)?;
    if tail & 1 == 0 {
        return Some(page);
    }
    let stride = u64::from(PAGE_STRUCT_SIZE.load());
    let head_bit = 1u64 << (PG_HEAD_BIT.load() & 63);
    for order in 1..=MAX_FOLIO_ORDER {
        let slot = page & !((stride << order) - 1);
        let flags: u64 = read(slot, &FOLIO_FLAGS_OFF)?;
        if flags & head_bit != 0 {
            return Some(slot);
        }
    }
    None
}

/// A kernel pointer stored at `at` (an element of a `struct page **` array).
#[inline(always)]
pub fn read_ptr(at: u64) -> Option<u64> {
    // SAFETY: bpf_probe_read_kernel copes with any address; a bad one returns an error.
    let ptr: u64 = unsafe { bpf_probe_read_kernel(at as *const u64).ok()? };
    (ptr != 0).then_some(ptr)
}

/// `folio->mapping`, tag bits included.
#[inline(always)]
pub fn folio_mapping(folio: u64) -> Option<u64> {
    if !has(valid::PIN_OWNER) {
        return None;
    }
    read(folio, &FOLIO_MAPPING_OFF)
}

/// `anon_vma->root`: the same for a process and its fork children.
#[inline(always)]
pub fn anon_vma_root(anon_vma: u64) -> Option<u64> {
    if !has(valid::PIN_OWNER) {
        return None;
    }
    read(anon_vma, &ANON_VMA_ROOT_OFF).filter(|root: &u64| *root != 0)
}

/// Identity of an inode: (ino, dev, fs magic).
#[inline(always)]
fn inode_identity(inode: u64) -> Option<(u64, u32, u32)> {
    let ino: u64 = read(inode, &INODE_INO_OFF)?;
    let sb: u64 = read(inode, &INODE_SB_OFF)?;
    let dev: u32 = read(sb, &SB_DEV_OFF)?;
    let magic: u64 = read(sb, &SB_MAGIC_OFF)?;
    Some((ino, dev, magic as u32))
}

/// The VMA a pin walks: flags, where it starts, and the file behind it (0s when anonymous).
#[inline(always)]
pub fn vma_info(vma: u64) -> VmaInfo {
    let mut info = VmaInfo {
        needs_dirty: NEEDS_DIRTY_UNKNOWN,
        ..VmaInfo::default()
    };
    if !has(valid::VMA_FILE) {
        return info;
    }
    info.vm_flags = read(vma, &VMA_FLAGS_OFF).unwrap_or(0);
    info.vm_start = read(vma, &VMA_START_OFF).unwrap_or(0);
    info.vm_pgoff = read(vma, &VMA_PGOFF_OFF).unwrap_or(0);
    let file: u64 = read(vma, &VMA_FILE_OFF).unwrap_or(0);
    let inode: u64 = read(file, &FILE_INODE_OFF).unwrap_or(0);
    if let Some((ino, dev, magic)) = inode_identity(inode) {
        (info.ino, info.dev, info.fs_magic) = (ino, dev, magic);
    }
    info.seen = 1;
    info
}

/// Which argument of the single-VMA zap hook is its VMA (see `ZAP_VMA_ARG` in
/// `probe_common::kernel_facts!`); `None` when this kernel's zap function is unknown.
#[inline(always)]
pub fn zap_vma_arg() -> Option<usize> {
    has(valid::ZAP_VMA_ARG).then(|| ZAP_VMA_ARG.load() as usize)
}

/// `vm_flags` of a VMA, one read; `None` when unknown.
#[inline(always)]
pub fn vma_flags(vma: u64) -> Option<u64> {
    if !has(valid::VMA_FILE) {
        return None;
    }
    read(vma, &VMA_FLAGS_OFF)
}

/// `vm_end` of a VMA (0 when unknown).
#[inline(always)]
pub fn vma_end(vma: u64) -> u64 {
    if !has(valid::VMA_FILE) {
        return 0;
    }
    read(vma, &VMA_END_OFF).unwrap_or(0)
}

/// (ino, dev, magic, index) of a page-cache folio; `None` for anonymous or unreadable ones.
#[inline(always)]
pub fn folio_file(folio: u64) -> Option<(u64, u32, u32, u64)> {
    if !has(valid::FOLIO_FILE) {
        return None;
    }
    let mapping: u64 = read(folio, &FOLIO_MAPPING_OFF)?;
    // The low bits tag anon (1) and movable/KSM (2) mappings: not a file's address_space.
    if mapping & 3 != 0 {
        return None;
    }
    let host: u64 = read(mapping, &MAPPING_HOST_OFF)?;
    let (ino, dev, magic) = inode_identity(host)?;
    let index: u64 = read(folio, &FOLIO_INDEX_OFF)?;
    Some((ino, dev, magic, index))
}

/// `madvise_behavior.behavior` of a `struct madvise_behavior *` (7.2); `None` when unknown.
#[inline(always)]
pub fn madvise_behavior(behavior: u64) -> Option<u32> {
    if !has(valid::MADVISE_BEHAVIOR) {
        return None;
    }
    read(behavior, &MADVISE_BEHAVIOR_OFF)
}

/// Names the file of the first page a pin call returned in `pages` (a `struct page **`), for a
/// call that walked no VMA (GUP-fast): `vma` becomes `seen::FIRST_PAGE` with the page's
/// page-cache index as `vm_pgoff` at `start`. Written in place (the caller's record lives in a
/// map): the pin return programs have no stack to spare. Untouched for anonymous memory.
#[inline(always)]
pub fn name_first_page_file(vma: &mut VmaInfo, pages: u64, start: u64) {
    let Some(page) = read_ptr(pages) else {
        return;
    };
    let Some(folio) = page_folio(page) else {
        return;
    };
    let Some((ino, dev, fs_magic, index)) = folio_file(folio) else {
        return;
    };
    let within = (page - folio)
        .checked_div(u64::from(PAGE_STRUCT_SIZE.load()))
        .unwrap_or(0);
    vma.seen = seen::FIRST_PAGE;
    vma.needs_dirty = NEEDS_DIRTY_UNKNOWN;
    vma.vm_start = start;
    vma.vm_pgoff = index + within;
    vma.ino = ino;
    vma.dev = dev;
    vma.fs_magic = fs_magic;
}

/// Start time of the current thread group's leader (0 when unknown).
#[inline(always)]
pub fn task_start_ns() -> u64 {
    if !has(valid::TASK_START) {
        return 0;
    }
    // SAFETY: the helper has no preconditions and returns the current task.
    let task = unsafe { aya_ebpf::helpers::generated::bpf_get_current_task_btf() } as *const u8;
    // SAFETY: `task_struct.group_leader`, then its `start_time`, per the layout's BTF (`load`).
    let leader: *const u8 = unsafe { load(task, &TASK_GROUP_LEADER_OFF) };
    if leader.is_null() {
        return 0;
    }
    // SAFETY: as above.
    unsafe { load(leader, &TASK_START_TIME_OFF) }
}

/// The pid (thread id) of a task (0 when unknown).
#[inline(always)]
pub fn task_pid(task: u64) -> u32 {
    if !has(valid::TASK_START) {
        return 0;
    }
    read(task, &TASK_PID_OFF).unwrap_or(0)
}

/// (page, flags, address) of a `struct vm_fault`; `None` when unknown or unreadable.
#[inline(always)]
pub fn vm_fault(vmf: u64) -> Option<(u64, u32, u64)> {
    if !has(valid::VM_FAULT) {
        return None;
    }
    Some((
        read(vmf, &VM_FAULT_PAGE_OFF)?,
        read(vmf, &VM_FAULT_FLAGS_OFF)?,
        read(vmf, &VM_FAULT_ADDRESS_OFF)?,
    ))
}

/// Whether the current process has ever pinned (`MMF_HAS_PINNED`); false when unknown or for a
/// kernel thread. Two direct loads, like [`current_may_hold_pins`].
#[inline(always)]
pub fn current_has_pinned() -> bool {
    match current_mm() {
        Some(mm) if !mm.is_null() => {
            // SAFETY: as in `current_may_hold_pins`.
            let flags: u64 = unsafe { load(mm, &MM_FLAGS_OFF) };
            flags & (1 << MMF_HAS_PINNED_BIT) != 0
        }
        _ => false,
    }
}

/// Whether the current task may hold long-term pins or fault on pages its process pinned:
/// its process ever pinned (`MMF_HAS_PINNED`: GUP sets it on the mm it pins before faulting
/// anything in, and never clears it), or it has no mm of its own (a kernel thread releasing
/// pins for a process, such as io_uring's ring-exit worker). When the layout is unknown nothing
/// may be skipped, so the answer is yes. The gate of the hot paths: a process that never pinned
/// pays two reads and nothing more.
#[inline(always)]
pub fn current_may_hold_pins() -> bool {
    let Some(mm) = current_mm() else {
        return true;
    };
    if mm.is_null() {
        return true;
    }
    // SAFETY: the first word of `mm_struct.flags` (7.2: `__mm_flags`), per the layout's BTF.
    let flags: u64 = unsafe { load(mm, &MM_FLAGS_OFF) };
    flags & (1 << MMF_HAS_PINNED_BIT) != 0
}

/// Whether the current task may be a kernel thread (no mm of its own): yes when unknown.
#[inline(always)]
pub fn current_may_be_kernel_thread() -> bool {
    current_mm().is_none_or(|mm| mm.is_null())
}

/// The current task's `mm` (null for a kernel thread) by a direct load through the BTF-typed
/// task pointer (see [`load`]); `None` when this kernel's layout is unknown.
#[inline(always)]
fn current_mm() -> Option<*const u8> {
    if !has(valid::MM_FLAGS) {
        return None;
    }
    // SAFETY: the helper has no preconditions and returns the current task.
    let task = unsafe { aya_ebpf::helpers::generated::bpf_get_current_task_btf() } as *const u8;
    // SAFETY: `task_struct.mm`, per the layout's BTF.
    Some(unsafe { load(task, &TASK_MM_OFF) })
}

/// The current task's user registers (`task_pt_regs`), a BTF-typed `struct pt_regs *`.
#[inline(always)]
fn current_regs() -> *const u8 {
    // SAFETY: both helpers accept the current task from any tracing context.
    let regs = unsafe {
        aya_ebpf::helpers::generated::bpf_task_pt_regs(
            aya_ebpf::helpers::generated::bpf_get_current_task_btf(),
        )
    };
    regs as *const u8
}

/// The number of the user system call the current task is in (0 when unknown).
#[inline(always)]
pub fn current_syscall_nr() -> u64 {
    if !has(valid::PT_REGS) {
        return 0;
    }
    // SAFETY: `pt_regs.orig_ax`, per the layout's BTF (`load`).
    unsafe { load(current_regs(), &PT_REGS_ORIG_AX_OFF) }
}

/// The user system call the current task is in: six direct loads (`load`), paid by every
/// record's header.
#[inline(always)]
pub fn current_syscall() -> Syscall {
    if !has(valid::PT_REGS) {
        return Syscall::default();
    }
    let regs = current_regs();
    // SAFETY: `pt_regs` fields, per the layout's BTF (`load`).
    unsafe {
        Syscall {
            nr: load(regs, &PT_REGS_ORIG_AX_OFF),
            user_ip: load(regs, &PT_REGS_IP_OFF),
            user_sp: load(regs, &PT_REGS_SP_OFF),
            args: [
                load(regs, &PT_REGS_DI_OFF),
                load(regs, &PT_REGS_SI_OFF),
                load(regs, &PT_REGS_DX_OFF),
            ],
        }
    }
}

#[inline(always)]
pub fn foll_longterm() -> Option<u32> {
    has(valid::FOLL).then(|| FOLL_LONGTERM.load())
}
