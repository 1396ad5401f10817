//! /dev/mem mapping: a VM_PFNMAP mapping with PAT tracking, duplicated by
//! fork (track_pfn_copy) and torn down piecewise by a partial munmap.

use std::fs::OpenOptions;
use std::hint::black_box;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{Context, Result, ensure};

use crate::sys::{self, Mapping, PAGE_SIZE};

/// Low RAM below 1 MiB: STRICT_DEVMEM allows it (reads as zeros on x86).
const DEVMEM_OFFSET: libc::off_t = 0x1000;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Pages to map at /dev/mem offset 0x1000; at least 2 so the first-page
    /// munmap is partial.
    #[arg(long, default_value_t = 2)]
    pub pages: usize,
}

pub fn run(args: &Args) -> Result<String> {
    ensure!(
        args.pages >= 2,
        "--pages must be >= 2 so the first munmap is partial"
    );
    let len = sys::pages_len(args.pages)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_SYNC)
        .open("/dev/mem")
        .context("open /dev/mem O_RDWR|O_SYNC")?;
    let mut map = Mapping::shared(file.as_fd(), len, DEVMEM_OFFSET)
        .with_context(|| format!("mmap /dev/mem {len} bytes at {DEVMEM_OFFSET:#x}"))?;
    black_box(map.read_pages());
    let child = sys::fork_child(|| {
        black_box(map.read_pages());
        0
    })?;
    child.wait().context("child reading the /dev/mem mapping")?;
    map.unmap_front(PAGE_SIZE)
        .context("partial munmap of the first page")?;
    map.unmap().context("munmap of the remaining pages")?;
    Ok(format!(
        "ok mapped/partial/unmapped ({} pages at {DEVMEM_OFFSET:#x})",
        args.pages
    ))
}
