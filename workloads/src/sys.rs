//! Small shared wrappers around raw syscalls: owned mappings, fork/wait and
//! errno naming. Kept here so each workload module only shows the kernel
//! operation it exists to trigger.

use std::fs::{File, OpenOptions};
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::ptr::{self, NonNull};

use anyhow::{Context, Result, bail, ensure};

/// x86_64 base page size; the guests are x86_64 and the workloads reason in
/// 4 KiB pages (O_DIRECT alignment, udmabuf sizes).
pub const PAGE_SIZE: usize = 4096;
/// A PMD-sized page: the default hugetlb page and a THP on x86-64.
pub const HUGE_PAGE_SIZE: usize = 2 << 20;

/// Default buffer size for the `--pages` flags.
pub const DEFAULT_PAGES: usize = 16;

/// Turns the C convention "-1 means errno is set" into an `io::Result`.
pub fn cvt<T: PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Byte length of `pages` pages, rejecting 0 (mmap refuses empty ranges).
pub fn pages_len(pages: usize) -> Result<usize> {
    ensure!(pages > 0, "--pages must be at least 1");
    pages
        .checked_mul(PAGE_SIZE)
        .with_context(|| format!("{pages} pages overflow usize"))
}

/// Symbolic name for the errnos these workloads can plausibly hit, so logs
/// are readable without errno tables inside the initramfs.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOTTY => "ENOTTY",
        libc::ENOSPC => "ENOSPC",
        libc::ESRCH => "ESRCH",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => "?",
    }
}

/// Human-readable wait status, used in child-failure errors.
pub fn describe_status(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("stopped or unknown wait status {status:#x}")
    }
}

/// Names the calling thread (prctl PR_SET_NAME): its `comm`, which the kernel truncates to
/// 15 bytes. Any bytes but NUL: escape sequences, newlines, invalid UTF-8.
pub fn set_comm(name: &std::ffi::OsStr) -> Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let name = std::ffi::CString::new(name.as_bytes()).context("a name holds no NUL byte")?;
    // SAFETY: PR_SET_NAME reads a NUL-terminated string (at most 16 bytes) from this live
    // CString; the other arguments are unused.
    cvt(unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) })?;
    Ok(())
}

/// Creates (or resizes) `path` to `len` bytes with ftruncate and maps it
/// MAP_SHARED read-write. The file handle is returned because some callers
/// need it afterwards (fsync, truncate).
pub fn map_file(path: &Path, len: usize) -> Result<(File, Mapping)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    let size = u64::try_from(len).context("file size does not fit u64")?;
    file.set_len(size)
        .with_context(|| format!("ftruncate {} to {len} bytes", path.display()))?;
    let map = Mapping::shared(file.as_fd(), len, 0)
        .with_context(|| format!("mmap MAP_SHARED {}", path.display()))?;
    Ok((file, map))
}

/// An owned `mmap` region, unmapped on drop. Pages are accessed through raw
/// volatile loads/stores: the memory may be device memory or shared with a
/// forked child, and every access must really reach the page tables.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Private anonymous read-write memory (page-aligned by construction).
    pub fn anon(len: usize) -> Result<Self> {
        Self::map(len, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, None, 0)
            .with_context(|| format!("mmap anonymous {len} bytes"))
    }

    /// Private anonymous memory in hugetlb pages of the default size (2 MiB): `len` must be a
    /// multiple of it, and the pages must be reserved (`/proc/sys/vm/nr_hugepages`).
    pub fn anon_hugetlb(len: usize) -> Result<Self> {
        ensure!(
            len.is_multiple_of(HUGE_PAGE_SIZE),
            "hugetlb memory comes in 2 MiB pages, not {len} bytes"
        );
        Self::map(
            len,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB,
            None,
            0,
        )
        .with_context(|| {
            format!("mmap {len} bytes of hugetlb memory (are enough huge pages reserved?)")
        })
    }

    /// Private anonymous memory aligned to 2 MiB and advised MADV_HUGEPAGE, so its first
    /// touch faults in transparent huge pages where the kernel has them to give.
    pub fn anon_thp(len: usize) -> Result<Self> {
        let mut map = Self::anon(len + HUGE_PAGE_SIZE)?;
        let head = map.addr().align_offset(HUGE_PAGE_SIZE);
        if head > 0 {
            map.unmap_front(head)?;
        }
        let tail = map.len - len;
        if tail > 0 {
            // SAFETY: the last `tail` bytes lie inside this mapping, which then stops before them.
            munmap(unsafe { map.ptr.add(len) }, tail)?;
            map.len = len;
        }
        map.madvise(libc::MADV_HUGEPAGE)
            .context("madvise(MADV_HUGEPAGE)")?;
        Ok(map)
    }

    /// How many of this mapping's pages belong to large (compound) folios, from the page table
    /// (`/proc/self/pagemap`, PFNs need CAP_SYS_ADMIN) and the kernel's page flags
    /// (`/proc/kpageflags`, KPF_COMPOUND_HEAD and KPF_COMPOUND_TAIL). Unmapped pages count as
    /// small.
    pub fn pages_in_large_folios(&self) -> Result<usize> {
        use std::os::unix::fs::FileExt as _;
        const PRESENT: u64 = 1 << 63;
        const PFN: u64 = (1 << 55) - 1;
        const COMPOUND: u64 = (1 << 15) | (1 << 16);
        let pagemap = std::fs::File::open("/proc/self/pagemap").context("open pagemap")?;
        let flags = std::fs::File::open("/proc/kpageflags").context("open kpageflags")?;
        let mut large = 0;
        let mut word = [0u8; 8];
        for page in 0..self.len / PAGE_SIZE {
            let vpn = (self.addr() as usize / PAGE_SIZE + page) as u64;
            pagemap
                .read_exact_at(&mut word, vpn * 8)
                .context("reading pagemap")?;
            let entry = u64::from_ne_bytes(word);
            if entry & PRESENT == 0 {
                continue;
            }
            let pfn = entry & PFN;
            ensure!(pfn != 0, "pagemap hides PFNs (not CAP_SYS_ADMIN)");
            flags
                .read_exact_at(&mut word, pfn * 8)
                .context("reading kpageflags")?;
            if u64::from_ne_bytes(word) & COMPOUND != 0 {
                large += 1;
            }
        }
        Ok(large)
    }

    /// Kilobytes of this mapping backed by transparent huge pages (`AnonHugePages` in smaps).
    pub fn thp_kb(&self) -> Result<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").context("reading smaps")?;
        let start = format!("{:x}-", self.addr() as usize);
        let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&start));
        ensure!(lines.next().is_some(), "mapping {start} not in smaps");
        // The entry's fields ("Key:   value") run until the next entry's header line.
        let kb = lines
            .take_while(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|k| k.ends_with(':'))
            })
            .find_map(|l| l.strip_prefix("AnonHugePages:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        Ok(kb)
    }

    /// MAP_SHARED read-write mapping of `fd` at `offset`.
    pub fn shared(fd: BorrowedFd<'_>, len: usize, offset: libc::off_t) -> io::Result<Self> {
        Self::map(len, libc::MAP_SHARED, Some(fd), offset)
    }

    /// A shared mapping of `len` bytes at `offset` of a device file (a VFIO region).
    pub fn map_at(fd: BorrowedFd<'_>, len: usize, offset: libc::off_t) -> io::Result<Self> {
        Self::map(len, libc::MAP_SHARED, Some(fd), offset)
    }

    /// A copy-on-write (MAP_PRIVATE) mapping of a file placed one page past a 2 MiB boundary, so
    /// that no part of it can be mapped by a PMD: large page-cache folios are then mapped by
    /// PTEs, and a write to one goes through the write-protect fault (`do_wp_page`) rather than
    /// a PMD split and a fresh COW fault.
    pub fn private_off_pmd(fd: BorrowedFd<'_>, len: usize) -> Result<Self> {
        let span = len + HUGE_PAGE_SIZE + PAGE_SIZE;
        // SAFETY: a fresh PROT_NONE reservation; nothing Rust owns can be replaced.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                span,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        ensure!(
            base != libc::MAP_FAILED,
            "reserving {span} bytes: {}",
            io::Error::last_os_error()
        );
        let base = base as usize;
        let start = base.next_multiple_of(HUGE_PAGE_SIZE) + PAGE_SIZE;
        // SAFETY: MAP_FIXED over our own reservation only.
        let addr = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_FIXED,
                fd.as_raw_fd(),
                0,
            )
        };
        ensure!(
            addr != libc::MAP_FAILED,
            "mmap MAP_PRIVATE|MAP_FIXED: {}",
            io::Error::last_os_error()
        );
        // The rest of the reservation, before and after the file mapping, goes.
        // SAFETY: both ranges lie in the reservation and outside the file mapping.
        unsafe {
            libc::munmap(base as *mut libc::c_void, start - base);
            libc::munmap(
                (start + len) as *mut libc::c_void,
                base + span - start - len,
            );
        }
        let ptr = NonNull::new(addr.cast()).context("mmap returned NULL")?;
        Ok(Self { ptr, len })
    }

    /// A copy-on-write (MAP_PRIVATE) mapping of a file.
    pub fn private(fd: BorrowedFd<'_>, len: usize) -> io::Result<Self> {
        Self::map(len, libc::MAP_PRIVATE, Some(fd), 0)
    }

    fn map(
        len: usize,
        flags: libc::c_int,
        fd: Option<BorrowedFd<'_>>,
        offset: libc::off_t,
    ) -> io::Result<Self> {
        let raw_fd = fd.map_or(-1, |fd| fd.as_raw_fd());
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: a NULL hint without MAP_FIXED makes the kernel choose a
        // fresh range, so no memory Rust already owns can be replaced.
        let addr = unsafe { libc::mmap(ptr::null_mut(), len, prot, flags, raw_fd, offset) };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(addr.cast()).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(Self { ptr, len })
    }

    pub fn addr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Stores `value` into the first byte of every page, forcing a write
    /// fault (allocation, COW or dirtying) on each one.
    pub fn write_pages(&self, value: u8) {
        for off in (0..self.len).step_by(PAGE_SIZE) {
            // SAFETY: off < len, so the byte lies inside this live read-write
            // mapping; volatile keeps the compiler from merging the stores.
            unsafe { self.addr().add(off).write_volatile(value) };
        }
    }

    /// Loads the first u32 of every page (read faults) and folds them so the
    /// caller can feed the result to `black_box`.
    pub fn read_pages(&self) -> u32 {
        (0..self.len)
            .step_by(PAGE_SIZE)
            .map(|off| self.read_u32_unchecked(off))
            .fold(0, u32::wrapping_add)
    }

    /// One volatile aligned u32 load, e.g. a single MMIO register read.
    pub fn read_u32(&self, off: usize) -> Result<u32> {
        ensure!(off.is_multiple_of(4), "unaligned u32 read at {off:#x}");
        ensure!(
            off + 4 <= self.len,
            "u32 read at {off:#x} beyond {:#x}",
            self.len
        );
        Ok(self.read_u32_unchecked(off))
    }

    /// One volatile aligned u32 store, e.g. a single MMIO register write.
    pub fn write_u32(&self, off: usize, value: u32) -> Result<()> {
        ensure!(off.is_multiple_of(4), "unaligned u32 write at {off:#x}");
        ensure!(
            off + 4 <= self.len,
            "u32 write at {off:#x} beyond {:#x}",
            self.len
        );
        // SAFETY: a 4-aligned offset inside the mapping (checked above); mmap results are
        // page-aligned.
        unsafe { self.addr().add(off).cast::<u32>().write_volatile(value) };
        Ok(())
    }

    fn read_u32_unchecked(&self, off: usize) -> u32 {
        // SAFETY: callers pass page-start or checked, 4-aligned offsets
        // inside the mapping, and mmap results are page-aligned.
        unsafe { self.addr().add(off).cast::<u32>().read_volatile() }
    }

    /// First byte of the page at `page`, for content checks.
    pub fn page_byte(&self, page: usize) -> Option<u8> {
        let off = page.checked_mul(PAGE_SIZE).filter(|off| *off < self.len)?;
        // SAFETY: off < len was checked just above.
        Some(unsafe { self.addr().add(off).read_volatile() })
    }

    pub fn madvise(&self, advice: libc::c_int) -> io::Result<()> {
        // SAFETY: the range is exactly this live mapping; the advice values
        // used here never free memory Rust code still references.
        cvt(unsafe { libc::madvise(self.addr().cast(), self.len, advice) })?;
        Ok(())
    }

    /// madvise of `pages` pages from page `first` of this mapping. Advice that discards memory
    /// (MADV_DONTNEED, MADV_REMOVE, MADV_FREE) is fine: every access to a mapping goes through
    /// raw volatile loads and stores, so no Rust reference to the memory can dangle.
    pub fn madvise_pages(&self, first: usize, pages: usize, advice: libc::c_int) -> io::Result<()> {
        let (off, len) = (first * PAGE_SIZE, pages * PAGE_SIZE);
        if off.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: the range lies inside this live mapping (checked above).
        cvt(unsafe { libc::madvise(self.addr().add(off).cast(), len, advice) })?;
        Ok(())
    }

    /// munmaps the leading `len` bytes only (a partial munmap that splits
    /// the VMA) and keeps owning the remainder.
    pub fn unmap_front(&mut self, len: usize) -> Result<()> {
        ensure!(
            len.is_multiple_of(PAGE_SIZE),
            "partial munmap of {len} bytes is not page-aligned"
        );
        ensure!(
            len < self.len,
            "partial munmap of {len} bytes would unmap everything"
        );
        munmap(self.ptr, len)?;
        // SAFETY: len < self.len, so the new start stays inside the old
        // allocation and is non-null.
        self.ptr = unsafe { self.ptr.add(len) };
        self.len -= len;
        Ok(())
    }

    /// Explicit munmap that reports failure instead of ignoring it in Drop.
    pub fn unmap(self) -> Result<()> {
        let this = ManuallyDrop::new(self);
        munmap(this.ptr, this.len)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Error paths only; explicit unmap() reports failures.
        let _ = munmap(self.ptr, self.len);
    }
}

fn munmap(ptr: NonNull<u8>, len: usize) -> Result<()> {
    // SAFETY: ptr/len describe (part of) a mapping owned by a Mapping that
    // stops referring to this range right after this call.
    cvt(unsafe { libc::munmap(ptr.as_ptr().cast(), len) })
        .with_context(|| format!("munmap {len} bytes at {ptr:p}"))?;
    Ok(())
}

/// A forked child; killed and reaped on drop if never waited for, so error
/// paths in the parent never leave a blocked child behind.
pub struct Child {
    pid: libc::pid_t,
    reaped: bool,
}

/// Forks; the child runs `body` and `_exit`s with its return value.
pub fn fork_child(body: impl FnOnce() -> i32) -> Result<Child> {
    // SAFETY: the workload binary is single-threaded, so the child is a
    // consistent copy and may run ordinary Rust code before _exit.
    let pid = cvt(unsafe { libc::fork() }).context("fork")?;
    if pid == 0 {
        let code = catch_unwind(AssertUnwindSafe(body)).unwrap_or(101);
        // SAFETY: _exit skips atexit handlers and stdio flushing that belong
        // to the parent's copy of the process state.
        unsafe { libc::_exit(code) };
    }
    Ok(Child { pid, reaped: false })
}

impl Child {
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Reaps the child and fails unless it exited with status 0.
    pub fn wait(mut self) -> Result<()> {
        let status = self
            .reap()
            .with_context(|| format!("waitpid {}", self.pid))?;
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            return Ok(());
        }
        bail!("child {} {}", self.pid, describe_status(status))
    }

    fn reap(&mut self) -> io::Result<libc::c_int> {
        let mut status = 0;
        loop {
            // SAFETY: pid is our own unreaped child; status is a valid out-pointer.
            match cvt(unsafe { libc::waitpid(self.pid, &raw mut status, 0) }) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
                Ok(_) => break,
            }
        }
        self.reaped = true;
        Ok(status)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        // SAFETY: pid is our unreaped child, so it cannot have been recycled.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let _ = self.reap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(libc::EFAULT), "EFAULT");
        assert_eq!(errno_name(95), "EOPNOTSUPP");
        assert_eq!(errno_name(-4242), "?");
    }

    #[test]
    fn pages_len_checks() {
        assert_eq!(pages_len(16).unwrap(), 65536);
        assert!(pages_len(0).is_err());
        assert!(pages_len(usize::MAX).is_err());
    }

    #[test]
    fn describes_wait_status() {
        assert_eq!(describe_status(3 << 8), "exited with status 3");
        assert_eq!(describe_status(libc::SIGSEGV), "killed by signal 11");
    }

    #[test]
    fn cvt_maps_minus_one() {
        assert!(cvt(-1i32).is_err());
        assert_eq!(cvt(7isize).unwrap(), 7);
    }
}
