//! udmabuf: UDMABUF_CREATE turns memfd pages into a dma-buf, pinning them
//! (memfd_pin_folios on newer kernels, shmem page refs on 6.1).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result};

use crate::sys::{self, DEFAULT_PAGES};

/// _IOW('u', 0x42, struct udmabuf_create)
const UDMABUF_CREATE: libc::c_ulong = 0x4018_7542;
const UDMABUF_FLAGS_CLOEXEC: u32 = 0x01;

/// struct udmabuf_create (uapi/linux/udmabuf.h).
#[repr(C)]
struct UdmabufCreate {
    memfd: u32,
    flags: u32,
    offset: u64,
    size: u64,
}

const _: () = assert!(size_of::<UdmabufCreate>() == 24);

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// dma-buf size in 4 KiB pages.
    #[arg(long, default_value_t = DEFAULT_PAGES)]
    pub pages: usize,
}

pub fn run(args: &Args) -> Result<String> {
    let dev = match OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/udmabuf")
    {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok("unavailable (no /dev/udmabuf)".into());
        }
        other => other.context("open /dev/udmabuf")?,
    };
    let len = sys::pages_len(args.pages)?;
    let memfd = sealed_memfd(len)?;
    let dmabuf = create(&dev, &memfd, len).context("ioctl(UDMABUF_CREATE)")?;
    // Closing the dma-buf releases the pins; then the device and memfd.
    drop(dmabuf);
    drop(dev);
    drop(memfd);
    Ok(format!(
        "ok dma-buf of {} pages created and closed",
        args.pages
    ))
}

/// udmabuf requires a memfd sealed against shrinking, so the pinned range
/// cannot be truncated away underneath the dma-buf.
pub(crate) fn sealed_memfd(len: usize) -> Result<File> {
    // SAFETY: the name is a valid NUL-terminated C string.
    let fd = sys::cvt(unsafe { libc::memfd_create(c"pinwatch".as_ptr(), libc::MFD_ALLOW_SEALING) })
        .context("memfd_create")?;
    // SAFETY: memfd_create just returned this fd and nothing else owns it.
    let mut memfd = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    memfd
        .set_len(u64::try_from(len)?)
        .context("ftruncate memfd")?;
    memfd.write_all(&vec![0x75; len]).context("write memfd")?;
    // SAFETY: F_ADD_SEALS takes an int flag set; memfd is open.
    sys::cvt(unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) })
        .context("fcntl(F_ADD_SEALS, F_SEAL_SHRINK)")?;
    Ok(memfd)
}

fn create(dev: &File, memfd: &File, len: usize) -> Result<OwnedFd> {
    let req = UdmabufCreate {
        memfd: u32::try_from(memfd.as_raw_fd())?,
        flags: UDMABUF_FLAGS_CLOEXEC,
        offset: 0,
        size: u64::try_from(len)?,
    };
    // SAFETY: req is a live udmabuf_create matching the size encoded in the
    // ioctl number; the kernel only reads it.
    let fd = sys::cvt(unsafe { libc::ioctl(dev.as_raw_fd(), UDMABUF_CREATE, &raw const req) })?;
    // SAFETY: the ioctl returned a new dma-buf fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
