//! O_DIRECT I/O: the block layer pins the user buffer for the DMA
//! (iov_iter_extract_pages / get_user_pages_fast).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};

use crate::sys::{self, DEFAULT_PAGES, Mapping, PAGE_SIZE};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// File to create and then access with O_DIRECT (the filesystem must
    /// support O_DIRECT; ramfs/rootfs does not).
    #[arg(long)]
    pub path: PathBuf,
    /// File size in 4 KiB pages; also the size of the single read/write.
    #[arg(long, default_value_t = DEFAULT_PAGES)]
    pub pages: usize,
}

pub fn run(args: &Args) -> Result<String> {
    let len = sys::pages_len(args.pages)?;
    create(&args.path, args.pages)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&args.path)
        .with_context(|| format!("open {} O_DIRECT", args.path.display()))?;
    // mmap'd memory is page-aligned, which satisfies O_DIRECT alignment.
    let buf = Mapping::anon(len)?;
    let read = transfer(&file, &buf, false, 0).context("O_DIRECT pread")?;
    let written = transfer(&file, &buf, true, 0).context("O_DIRECT pwrite")?;
    buf.unmap()?;
    Ok(format!("ok read {read} bytes, wrote {written} bytes"))
}

/// Fills the file with ordinary buffered writes and makes it durable, so the
/// O_DIRECT read has real blocks to fetch.
pub(crate) fn create(path: &Path, pages: usize) -> Result<()> {
    let mut file = File::create(path).with_context(|| format!("create {}", path.display()))?;
    let page = [0x6fu8; PAGE_SIZE];
    for _ in 0..pages {
        file.write_all(&page)
            .with_context(|| format!("write {}", path.display()))?;
    }
    file.sync_all()
        .with_context(|| format!("fsync {}", path.display()))
}

/// One pread or pwrite of the whole buffer at file offset `offset`; a short transfer is an error.
pub(crate) fn transfer(
    file: &File,
    buf: &Mapping,
    write: bool,
    offset: libc::off_t,
) -> Result<usize> {
    let fd = file.as_raw_fd();
    let ret = if write {
        // SAFETY: buf is a live mapping of buf.len() readable bytes.
        unsafe { libc::pwrite(fd, buf.addr().cast(), buf.len(), offset) }
    } else {
        // SAFETY: buf is a live mapping of buf.len() writable bytes that no
        // Rust reference aliases.
        unsafe { libc::pread(fd, buf.addr().cast(), buf.len(), offset) }
    };
    let done = usize::try_from(sys::cvt(ret)?)?;
    ensure!(
        done == buf.len(),
        "short transfer: {done} of {} bytes",
        buf.len()
    );
    Ok(done)
}
