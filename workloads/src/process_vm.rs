//! process_vm_readv/writev: the kernel pins the *remote* side's pages with
//! pin_user_pages_remote, both for ourselves and for a forked child.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result, ensure};

use crate::sys::{self, Child, DEFAULT_PAGES, Mapping};

const PATTERN: u8 = 0x70;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Buffer size in 4 KiB pages.
    #[arg(long, default_value_t = DEFAULT_PAGES)]
    pub pages: usize,
}

pub fn run(args: &Args) -> Result<String> {
    let len = sys::pages_len(args.pages)?;
    let src = Mapping::anon(len)?;
    src.write_pages(PATTERN);
    let dst = Mapping::anon(len)?;
    let (rx, tx) = pipe()?;
    let child = spawn_blocked_child(&rx, &tx)?;
    drop(rx);

    let me = libc::pid_t::try_from(std::process::id())?;
    transfer(me, &dst, src.addr(), false).context("process_vm_readv from self")?;
    ensure!(
        dst.page_byte(0) == Some(PATTERN),
        "self readv copied wrong data"
    );
    transfer(me, &src, dst.addr(), true).context("process_vm_writev to self")?;
    transfer(child.pid(), &dst, src.addr(), false).context("process_vm_readv from child")?;

    release_child(child, tx)?;
    Ok(format!("ok {len} bytes readv/writev self, readv child"))
}

pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: fds is a valid out-array of two ints.
    sys::cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }).context("pipe2")?;
    // SAFETY: pipe2 just returned these two fds and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The child keeps a copy of the buffer alive and sleeps in read(); it wakes
/// on our byte or on EOF if we die, so it can never outlive us for long.
pub(crate) fn spawn_blocked_child(rx: &OwnedFd, tx: &OwnedFd) -> Result<Child> {
    sys::fork_child(|| {
        let mut byte = 0u8;
        // SAFETY: closing the child's copy of the write end so EOF arrives
        // when the parent's copy goes; the OwnedFd is never used again here.
        unsafe { libc::close(tx.as_raw_fd()) };
        // SAFETY: byte is a valid one-byte buffer; rx is open in the child.
        unsafe { libc::read(rx.as_raw_fd(), (&raw mut byte).cast(), 1) };
        0
    })
}

/// Copies `local.len()` bytes between `local` (ours) and `remote` in `pid`.
fn transfer(pid: libc::pid_t, local: &Mapping, remote: *mut u8, write: bool) -> Result<()> {
    let local_iov = libc::iovec {
        iov_base: local.addr().cast(),
        iov_len: local.len(),
    };
    let remote_iov = libc::iovec {
        iov_base: remote.cast(),
        iov_len: local.len(),
    };
    let (l, r) = (&raw const local_iov, &raw const remote_iov);
    let ret = if write {
        // SAFETY: both iovecs are valid for the call; the kernel checks the
        // remote range against the target's address space.
        unsafe { libc::process_vm_writev(pid, l, 1, r, 1, 0) }
    } else {
        // SAFETY: as above; the local buffer is writable and unaliased.
        unsafe { libc::process_vm_readv(pid, l, 1, r, 1, 0) }
    };
    let done = usize::try_from(sys::cvt(ret)?)?;
    ensure!(
        done == local.len(),
        "partial transfer: {done} of {} bytes",
        local.len()
    );
    Ok(())
}

pub(crate) fn release_child(child: Child, tx: OwnedFd) -> Result<()> {
    let byte = 1u8;
    // SAFETY: byte is a valid one-byte buffer; tx is the open write end.
    sys::cvt(unsafe { libc::write(tx.as_raw_fd(), (&raw const byte).cast(), 1) })
        .context("wake child through pipe")?;
    child.wait().context("child blocked on pipe")
}
