//! io_uring fixed buffers: IORING_REGISTER_BUFFERS long-term pins the buffer
//! (pin_user_pages with FOLL_LONGTERM) until IORING_UNREGISTER_BUFFERS.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{Context, Result, ensure};

use crate::sys::{self, DEFAULT_PAGES, Mapping, PAGE_SIZE};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Buffer size in 4 KiB pages.
    #[arg(long, default_value_t = DEFAULT_PAGES)]
    pub pages: usize,
    /// Use a MAP_SHARED mapping of this file as the buffer (file-backed
    /// long-term pins are refused by the kernel: reported, not an error).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// While registered, fork a child that writes the buffer (pin-then-fork).
    #[arg(long)]
    pub fork: bool,
    /// madvise(MADV_DONTFORK) the buffer before registering.
    #[arg(long)]
    pub dontfork: bool,
    /// Use a MAP_SHARED mapping of a memfd (shmem: no dirty tracking, the correct backing for
    /// DMA buffers): registration must succeed on every kernel.
    #[arg(long, conflicts_with = "file")]
    pub memfd: bool,
    /// Back the anonymous buffer with huge pages: `hugetlb` (MAP_HUGETLB, reserved 2 MiB pages)
    /// or `thp` (2 MiB-aligned, MADV_HUGEPAGE). `--pages` must then cover whole 2 MiB pages.
    #[arg(long, value_enum, conflicts_with_all = ["file", "memfd"])]
    pub huge: Option<Huge>,
    /// Milliseconds to keep the buffer registered before forking (lets a watcher look at it).
    #[arg(long, default_value_t = 0)]
    pub hold_ms: u64,
    /// Release the buffers as a ring's owner may: `unregister` (this thread), `thread` (another
    /// thread unregisters them) or `close` (close the ring: the kernel releases them from a
    /// kworker).
    #[arg(long, value_enum, default_value_t = Release::Unregister)]
    pub release: Release,
    /// After the release, create this file and keep the process alive `--linger-ms` (a watcher
    /// can check the pin ended while its process lives).
    #[arg(long)]
    pub released_flag: Option<PathBuf>,
    /// While registered, another thread reads and writes this file (created with the buffer's
    /// size) with O_DIRECT into the registered buffer: short-term pins and unpins of memory a
    /// long-term pin holds, which must not end it.
    #[arg(long)]
    pub odirect_from: Option<PathBuf>,
    /// While registered (after `--odirect-from`), create this file and keep the buffers
    /// registered `--hold-ms` more (a watcher can check they still count as pinned).
    #[arg(long)]
    pub held_flag: Option<PathBuf>,
    /// Milliseconds to stay alive after the release.
    #[arg(long, default_value_t = 0)]
    pub linger_ms: u64,
    /// Name this process before pinning (prctl PR_SET_NAME; the kernel keeps 15 bytes), as a
    /// hostile process would: escape sequences, newlines, any bytes.
    #[arg(long)]
    pub comm: Option<OsString>,
}

/// Huge pages behind an anonymous buffer.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Huge {
    Hugetlb,
    Thp,
}

/// Who releases the registered buffers.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    Unregister,
    Thread,
    Close,
}

const RING_ENTRIES: u32 = 4;
const IORING_REGISTER_BUFFERS: libc::c_uint = 0;
/// The kernel refuses a registration of more iovecs than this (io_uring/rsrc.c).
pub(crate) const IORING_MAX_REG_BUFFERS: usize = 1 << 14;
/// The kernel refuses a single fixed buffer longer than 1 GiB (io_buffer_validate).
pub(crate) const MAX_IOVEC_LEN: usize = 1 << 30;
const IORING_UNREGISTER_BUFFERS: libc::c_uint = 1;

/// struct io_sqring_offsets (uapi); 6.1 names the last field resv2.
#[repr(C)]
#[derive(Default)]
struct SqringOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    flags: u32,
    dropped: u32,
    array: u32,
    resv1: u32,
    user_addr: u64,
}

/// struct io_cqring_offsets (uapi).
#[repr(C)]
#[derive(Default)]
struct CqringOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    overflow: u32,
    cqes: u32,
    flags: u32,
    resv1: u32,
    user_addr: u64,
}

/// struct io_uring_params (uapi); zeroed means "no setup flags".
#[repr(C)]
#[derive(Default)]
struct IoUringParams {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    sq_off: SqringOffsets,
    cq_off: CqringOffsets,
}

const _: () = assert!(size_of::<SqringOffsets>() == 40);
const _: () = assert!(size_of::<CqringOffsets>() == 40);
const _: () = assert!(size_of::<IoUringParams>() == 120);

pub fn run(args: &Args) -> Result<String> {
    if let Some(name) = &args.comm {
        sys::set_comm(name).context("prctl(PR_SET_NAME)")?;
    }
    let buf = buffer(args)?;
    // Whether the kernel had huge pages to give: a THP buffer may fall back to small pages.
    let thp = match args.huge {
        Some(Huge::Thp) => format!(", thp={}kB", buf.thp_kb()?),
        _ => String::new(),
    };
    if args.dontfork {
        buf.madvise(libc::MADV_DONTFORK)
            .context("madvise(MADV_DONTFORK)")?;
    }
    let ring = setup().context("io_uring_setup")?;
    let whole = libc::iovec {
        iov_base: buf.addr().cast(),
        iov_len: buf.len(),
    };
    if let Err(err) = register(&ring, &[whole]) {
        return refusal(args, err);
    }
    if let Some(path) = &args.odirect_from {
        odirect_from_thread(path, &buf)?;
    }
    if let Some(flag) = &args.held_flag {
        std::fs::write(flag, b"").with_context(|| format!("creating {}", flag.display()))?;
        std::thread::sleep(std::time::Duration::from_millis(args.hold_ms));
    }
    if args.fork {
        std::thread::sleep(std::time::Duration::from_millis(args.hold_ms));
        fork_while_pinned(&buf, args.dontfork)?;
    }
    match args.release {
        Release::Unregister => unregister(&ring).context("IORING_UNREGISTER_BUFFERS")?,
        Release::Thread => std::thread::scope(|s| s.spawn(|| unregister(&ring)).join())
            .map_err(|_| anyhow::anyhow!("the unregistering thread panicked"))?
            .context("IORING_UNREGISTER_BUFFERS from another thread")?,
        Release::Close => {}
    }
    drop(ring);
    if let Some(flag) = &args.released_flag {
        std::fs::write(flag, b"").with_context(|| format!("creating {}", flag.display()))?;
    }
    std::thread::sleep(std::time::Duration::from_millis(args.linger_ms));
    buf.unmap()?;
    Ok(format!(
        "ok registered+unregistered {} pages ({}{thp})",
        args.pages,
        mode(args)
    ))
}

/// Anonymous private memory, or a shared file mapping with `--file`; every
/// page is written first so registration pins populated pages.
fn buffer(args: &Args) -> Result<Mapping> {
    let len = sys::pages_len(args.pages)?;
    let buf = match &args.file {
        Some(path) => sys::map_file(path, len)?.1,
        None if args.memfd => {
            let memfd = crate::udmabuf::sealed_memfd(len)?;
            Mapping::shared(std::os::fd::AsFd::as_fd(&memfd), len, 0).context("mmap memfd")?
        }
        None => match args.huge {
            Some(Huge::Hugetlb) => Mapping::anon_hugetlb(len)?,
            Some(Huge::Thp) => Mapping::anon_thp(len)?,
            None => Mapping::anon(len)?,
        },
    };
    buf.write_pages(0x5a);
    Ok(buf)
}

/// File-backed buffers are expected to be refused (EOPNOTSUPP on 6.1,
/// EFAULT on 6.12+); that outcome is the point of the `--file` run.
fn refusal(args: &Args, err: io::Error) -> Result<String> {
    match err.raw_os_error() {
        Some(errno) if args.file.is_some() && is_expected_refusal(errno) => Ok(format!(
            "refused errno={errno} ({})",
            sys::errno_name(errno)
        )),
        _ => Err(register_error(err)),
    }
}

/// The context for a failed IORING_REGISTER_BUFFERS. ENOMEM there usually is the pinned-memory
/// accounting against RLIMIT_MEMLOCK, which only applies without CAP_IPC_LOCK.
pub(crate) fn register_error(err: io::Error) -> anyhow::Error {
    let what = if err.raw_os_error() == Some(libc::ENOMEM) {
        "IORING_REGISTER_BUFFERS: ENOMEM, over the locked-memory limit or out of memory \
         (raise RLIMIT_MEMLOCK or run as root)"
    } else {
        "IORING_REGISTER_BUFFERS"
    };
    anyhow::Error::new(err).context(what)
}

/// `buf` cut into consecutive iovecs of `pages_per_iovec` pages (a tail too short for a whole
/// iovec is left out). IORING_REGISTER_BUFFERS pins each iovec with its own pin_user_pages
/// call, so the iovec count is the pin-call count.
pub(crate) fn page_iovecs(buf: &Mapping, pages_per_iovec: usize) -> Result<Vec<libc::iovec>> {
    ensure!(pages_per_iovec > 0, "an iovec needs at least one page");
    let len = pages_per_iovec
        .checked_mul(PAGE_SIZE)
        .context("iovec length overflows usize")?;
    Ok((0..buf.len() / len)
        .map(|i| libc::iovec {
            iov_base: buf.addr().wrapping_add(i * len).cast(),
            iov_len: len,
        })
        .collect())
}

fn is_expected_refusal(errno: i32) -> bool {
    errno == libc::EOPNOTSUPP || errno == libc::EFAULT
}

fn mode(args: &Args) -> String {
    let mut mode = String::from(match (args.file.is_some(), args.memfd, args.huge) {
        (true, _, _) => "file",
        (false, true, _) => "memfd",
        (false, false, Some(Huge::Hugetlb)) => "anon-hugetlb",
        (false, false, Some(Huge::Thp)) => "anon-thp",
        (false, false, None) => "anon",
    });
    if args.fork {
        mode.push_str("+fork");
    }
    match args.release {
        Release::Unregister => {}
        Release::Thread => mode.push_str("+unregistered-by-thread"),
        Release::Close => mode.push_str("+ring-closed"),
    }
    if args.dontfork {
        mode.push_str("+dontfork");
    }
    mode
}

/// A ring of RING_ENTRIES entries with no setup flags; only used for registrations.
pub(crate) fn setup() -> io::Result<OwnedFd> {
    let mut params = IoUringParams::default();
    // SAFETY: params is a live, correctly sized io_uring_params that the
    // kernel reads and fills in during the call.
    let ret = sys::cvt(unsafe {
        libc::syscall(libc::SYS_io_uring_setup, RING_ENTRIES, &raw mut params)
    })?;
    let fd = i32::try_from(ret).map_err(io::Error::other)?;
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// IORING_REGISTER_BUFFERS: the kernel pins every iovec (pin_user_pages, FOLL_LONGTERM), one
/// call per iovec, until they are unregistered or the ring is closed.
pub(crate) fn register(ring: &OwnedFd, iovecs: &[libc::iovec]) -> io::Result<()> {
    let nr_iovecs = libc::c_uint::try_from(iovecs.len()).map_err(io::Error::other)?;
    // SAFETY: the kernel reads `nr_iovecs` iovecs from this live slice. It only pins the memory
    // they describe (EFAULT if unmapped) and writes to it only for fixed-buffer reads, which
    // these workloads never submit.
    sys::cvt(unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring.as_raw_fd(),
            IORING_REGISTER_BUFFERS,
            iovecs.as_ptr(),
            nr_iovecs,
        )
    })?;
    Ok(())
}

/// IORING_UNREGISTER_BUFFERS: unpins every registered buffer of the ring.
pub(crate) fn unregister(ring: &OwnedFd) -> io::Result<()> {
    let no_args: libc::c_uint = 0;
    // SAFETY: UNREGISTER_BUFFERS takes no argument pointer (NULL, 0).
    sys::cvt(unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring.as_raw_fd(),
            IORING_UNREGISTER_BUFFERS,
            std::ptr::null::<libc::c_void>(),
            no_args,
        )
    })?;
    Ok(())
}

/// O_DIRECT into the registered buffer from another thread of this process: the block layer
/// pins and unpins it for each I/O, short-term, while the registration keeps it pinned.
fn odirect_from_thread(path: &std::path::Path, buf: &Mapping) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    crate::odirect::create(path, buf.len() / PAGE_SIZE)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .with_context(|| format!("open {} O_DIRECT", path.display()))?;
    // The mapping itself is not Sync (raw memory): the thread gets its address.
    let (addr, len) = (buf.addr() as usize, buf.len());
    let fd = file.as_raw_fd();
    std::thread::scope(|s| {
        s.spawn(move || -> Result<()> {
            // SAFETY: `buf` outlives the scope; nothing else touches it meanwhile.
            let done = unsafe { libc::pread(fd, addr as *mut libc::c_void, len, 0) };
            ensure!(sys::cvt(done)? as usize == len, "short O_DIRECT pread");
            // SAFETY: as above.
            let done = unsafe { libc::pwrite(fd, addr as *const libc::c_void, len, 0) };
            ensure!(sys::cvt(done)? as usize == len, "short O_DIRECT pwrite");
            Ok(())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the O_DIRECT thread panicked"))?
    })
}

/// Forks while the pages are pinned: the kernel must copy pinned anon pages
/// eagerly at fork, and both sides then write. With MADV_DONTFORK the child
/// has no such mapping, so it must not touch it.
fn fork_while_pinned(buf: &Mapping, dontfork: bool) -> Result<()> {
    let child = sys::fork_child(|| {
        if !dontfork {
            buf.write_pages(0xc1);
        }
        0
    })?;
    child.wait().context("child writing the pinned buffer")?;
    buf.write_pages(0xa5);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_takes_any_bytes_and_the_kernel_keeps_15() {
        use std::os::unix::ffi::OsStrExt as _;
        let name = std::ffi::OsStr::from_bytes(b"\x1b[31mEVIL\nFAKE-LINE\xff");
        let comm = std::thread::spawn(move || {
            sys::set_comm(name).unwrap();
            std::fs::read("/proc/thread-self/comm").unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(comm, b"\x1b[31mEVIL\nFAKE-\n");
        // Not UTF-8 on the command line either.
        use clap::{Args as _, FromArgMatches as _};
        let argv = [OsString::from("iouring"), "--comm".into(), name.into()];
        let matches = Args::augment_args(clap::Command::new("iouring"))
            .try_get_matches_from(argv)
            .unwrap();
        let args = Args::from_arg_matches(&matches).unwrap();
        assert_eq!(args.comm.as_deref(), Some(name));
    }

    #[test]
    fn expected_refusals() {
        assert!(is_expected_refusal(libc::EOPNOTSUPP));
        assert!(is_expected_refusal(libc::EFAULT));
        assert!(!is_expected_refusal(libc::ENOMEM));
    }

    #[test]
    fn enomem_names_the_memlock_limit() {
        let err = register_error(io::Error::from_raw_os_error(libc::ENOMEM));
        assert!(format!("{err:#}").contains("raise RLIMIT_MEMLOCK or run as root"));
        let err = register_error(io::Error::from_raw_os_error(libc::EFAULT));
        assert!(!format!("{err:#}").contains("RLIMIT_MEMLOCK"));
    }

    #[test]
    fn iovecs_cover_whole_groups_of_pages() {
        let buf = Mapping::anon(5 * PAGE_SIZE).unwrap();
        let iovecs = page_iovecs(&buf, 2).unwrap();
        assert_eq!(iovecs.len(), 2);
        assert_eq!(iovecs[0].iov_base, buf.addr().cast());
        assert_eq!(
            iovecs[1].iov_base,
            buf.addr().wrapping_add(2 * PAGE_SIZE).cast()
        );
        assert!(iovecs.iter().all(|iov| iov.iov_len == 2 * PAGE_SIZE));
        assert_eq!(page_iovecs(&buf, 1).unwrap().len(), 5);
        assert!(page_iovecs(&buf, 0).is_err());
    }
}
