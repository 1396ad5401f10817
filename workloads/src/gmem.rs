//! guest_memfd pinned by io_uring, then punched: the device and the process end up with
//! different memory. A KVM guest_memfd the host may mmap (7.2; 6.18+) is long-term pinned as
//! io_uring fixed buffers; `fallocate(PUNCH_HOLE)` of part of it succeeds while pinned, the
//! mapping then reads a fresh zero page, and a READ_FIXED into the registered buffer fills the
//! old page the pin still holds, which the process no longer sees. The controls punch after
//! the pin is released, or memory that was never pinned. The `fs=` it reports is the magic a
//! pin of this memory names: 7.2's guest_memfd has its own filesystem (`0x474d454d`), while
//! the 6.18.44 build host here gives it an anonymous inode (`0x9041934`, anon_inodefs), so the
//! magic alone does not tell guest_memfd on every kernel.

use std::fs::File;
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::path::PathBuf;

use anyhow::{Context as _, Result, ensure};
use io_uring::IoUring;

use crate::divergence::{count, fill_all, read_fixed};
use crate::kvm::{self, GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, GUEST_MEMFD_MAGIC};
use crate::sys::{self, DEFAULT_PAGES, Mapping, PAGE_SIZE};

/// What the process writes into its guest_memfd before pinning.
const PATTERN: u8 = 0x5a;
/// What the file read into the registered buffer holds: neither the pattern nor zero.
const FILE_PATTERN: u8 = 0xd7;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// guest_memfd size in 4 KiB pages.
    #[arg(long, default_value_t = DEFAULT_PAGES)]
    pub pages: usize,
    /// Pages punched, at the end of the range (the rest keep their pages: a comparison).
    #[arg(long, default_value_t = DEFAULT_PAGES / 2)]
    pub punch_pages: usize,
    /// When the punch comes: while pinned (the hazard), or one of the controls.
    #[arg(long, value_enum, default_value_t = Punch::Pinned)]
    pub punch: Punch,
    /// The file READ_FIXED reads into the registered buffer after a punch while pinned
    /// (created with the buffer's size, removed after).
    #[arg(long, default_value = "/tmp/pinwatch-gmem-read.dat")]
    pub read_file: PathBuf,
}

/// When the punch happens relative to the pin.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Punch {
    /// While io_uring holds the buffer registered.
    Pinned,
    /// After IORING_UNREGISTER_BUFFERS released it (control: nothing pinned is discarded).
    AfterUnregister,
    /// Without ever registering it (control).
    NeverPinned,
}

impl Punch {
    fn name(self) -> &'static str {
        match self {
            Self::Pinned => "pinned",
            Self::AfterUnregister => "after-unregister",
            Self::NeverPinned => "never-pinned",
        }
    }
}

pub fn run(args: &Args) -> Result<String> {
    ensure!(
        args.punch_pages <= args.pages,
        "--punch-pages {} exceeds --pages {}",
        args.punch_pages,
        args.pages
    );
    let len = sys::pages_len(args.pages)?;
    let vm = kvm::create_vm()?;
    let gmem = vm
        .guest_memfd(len, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED)
        .context("creating the guest_memfd")?;
    // The filesystem a pin of this memory will name (pinwatch reads the same magic at pin time).
    let fs = match kvm::fs_magic(&gmem).context("fstatfs on the guest_memfd")? {
        GUEST_MEMFD_MAGIC => "guest_memfd".to_owned(),
        other => format!("{other:#x}"),
    };
    let buf = Mapping::shared(gmem.as_fd(), len, 0).context("mmap guest_memfd MAP_SHARED")?;
    fill_all(&buf, PATTERN);
    let kept = 0..args.pages - args.punch_pages;
    let punched = kept.end..args.pages;

    let ring = IoUring::new(4).context("io_uring_setup")?;
    let whole = [libc::iovec {
        iov_base: buf.addr().cast(),
        iov_len: len,
    }];
    if args.punch != Punch::NeverPinned {
        // SAFETY: the buffer stays mapped until after the ring is dropped (unregistered) below.
        unsafe { ring.submitter().register_buffers(&whole) }
            .map_err(crate::iouring::register_error)?;
    }
    if args.punch == Punch::AfterUnregister {
        ring.submitter()
            .unregister_buffers()
            .context("IORING_UNREGISTER_BUFFERS")?;
    }

    let punch = punch_hole(&gmem, punched.start, punched.len());
    let mut status = format!(
        "ok mode={} pages={} punched={} fs={fs} punch={} \
         punched-read-zero={}/{} kept-read-pattern={}/{}",
        args.punch.name(),
        args.pages,
        punched.len(),
        match &punch {
            Ok(()) => "ok",
            Err(e) => sys::errno_name(e.raw_os_error().unwrap_or(0)),
        },
        count(&buf, punched.clone(), 0),
        punched.len(),
        count(&buf, kept.clone(), PATTERN),
        kept.len(),
    );
    if args.punch == Punch::Pinned {
        let read = read_fixed(&ring, &buf, &args.read_file, FILE_PATTERN)?;
        // The device's write reaches the pages the pin holds: the kept ones are still the
        // process's, the punched ones no longer are.
        status.push_str(&format!(
            " read-fixed={read} read-visible-kept={}/{} read-visible-punched={}/{}",
            count(&buf, kept.clone(), FILE_PATTERN),
            kept.len(),
            count(&buf, punched.clone(), FILE_PATTERN),
            punched.len(),
        ));
        ring.submitter()
            .unregister_buffers()
            .context("IORING_UNREGISTER_BUFFERS")?;
    }
    drop(ring);
    buf.unmap()?;
    Ok(status)
}

/// fallocate(PUNCH_HOLE | KEEP_SIZE) of `pages` pages from page `first` (guest_memfd refuses
/// a punch without KEEP_SIZE). Its result is the finding, so an error is returned, not raised.
fn punch_hole(gmem: &File, first: usize, pages: usize) -> std::io::Result<()> {
    let off = libc::off_t::try_from(first * PAGE_SIZE).map_err(std::io::Error::other)?;
    let len = libc::off_t::try_from(pages * PAGE_SIZE).map_err(std::io::Error::other)?;
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    // SAFETY: fallocate reads no user memory.
    sys::cvt(unsafe { libc::fallocate(gmem.as_raw_fd(), mode, off, len) })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punch_controls_are_named() {
        let names = [Punch::Pinned, Punch::AfterUnregister, Punch::NeverPinned].map(Punch::name);
        assert_eq!(names, ["pinned", "after-unregister", "never-pinned"]);
    }
}
