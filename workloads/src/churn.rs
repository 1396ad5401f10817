//! The discard storms of `storm`: memory leaving a file or a process without anything pinned
//! in it, the common case that pinwatch's page-cache removal and madvise hooks must stay cheap
//! on. `page-cache-churn` fills a small file and truncates it to 0 (every folio removed from the
//! page cache, one tracepoint each); `madvise-churn` touches anonymous pages and drops them with
//! MADV_DONTNEED, as allocators return memory, in a process that never pinned or, with an
//! unrelated io_uring registration held, in one that did (`MMF_HAS_PINNED` set).

use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::iouring;
use crate::sys::{self, Mapping};
use crate::timed::{Scratch, drive};

/// Byte of the file's content (any will do).
const FILL: u8 = 0x70;

/// Rounds of one buffered write of `pages` pages at offset 0 and an ftruncate to 0, until
/// `duration` passed. ops = pages removed from the page cache (folios too where the file system
/// uses order-0 folios: tmpfs without `huge=`, ext4 before 6.16).
pub fn page_cache(dir: &Path, pages: usize, duration: Duration) -> Result<(u64, Duration)> {
    let scratch = Scratch::new(dir, "storm-page-cache.dat")?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&scratch.0)
        .with_context(|| format!("open {}", scratch.0.display()))?;
    let data = vec![FILL; sys::pages_len(pages)?];
    // One round before the clock: the inode and its mapping exist, the loop measures the churn.
    fill_and_truncate(&file, &data)?;
    let per_round = u64::try_from(pages)?;
    let counted = drive(duration, |_| {
        fill_and_truncate(&file, &data)?;
        Ok(per_round)
    })?;
    drop(file);
    scratch.remove()?;
    Ok(counted)
}

/// Puts `data` into the page cache at offset 0 (one write), then removes it (ftruncate to 0).
fn fill_and_truncate(file: &File, data: &[u8]) -> Result<()> {
    file.write_all_at(data, 0).context("pwrite at offset 0")?;
    file.set_len(0).context("ftruncate to 0")
}

/// Rounds of a write to each of `pages` anonymous pages (one fault each) and one
/// madvise(MADV_DONTNEED) of them all, until `duration` passed. With `pinner`, an io_uring
/// ring holds a one-page buffer of another mapping registered (long-term pinned) for the whole
/// loop: the process has pinned, the discarded range holds no pin. ops = pages discarded.
pub fn madvise(pages: usize, pinner: bool, duration: Duration) -> Result<(u64, Duration)> {
    // Pinned first, so that the discarded mapping is not the pinned one whatever the kernel
    // merges.
    let pin = pinner.then(UnrelatedPin::new).transpose()?;
    let map = Mapping::anon(sys::pages_len(pages)?)?;
    // One round before the clock (the mapping's VMA and page tables exist).
    churn(&map)?;
    let per_round = u64::try_from(pages)?;
    let counted = drive(duration, |_| {
        churn(&map)?;
        Ok(per_round)
    })?;
    map.unmap()?;
    drop(pin);
    Ok(counted)
}

/// Faults every page of `map` in, then gives them back.
fn churn(map: &Mapping) -> Result<()> {
    map.write_pages(1);
    map.madvise(libc::MADV_DONTNEED)
        .context("madvise(MADV_DONTNEED)")
}

/// A one-page anonymous buffer registered with an io_uring ring: a long-term pin that sets the
/// process's `MMF_HAS_PINNED`. Fields drop in order: the ring (releasing the pin) before the
/// buffer.
struct UnrelatedPin {
    _ring: OwnedFd,
    _buf: Mapping,
}

impl UnrelatedPin {
    fn new() -> Result<Self> {
        let buf = Mapping::anon(sys::pages_len(1)?)?;
        // Populated, so the registration pins a present page.
        buf.write_pages(0x5a);
        let iovecs = iouring::page_iovecs(&buf, 1)?;
        let ring = iouring::setup().context("io_uring_setup")?;
        iouring::register(&ring, &iovecs).map_err(iouring::register_error)?;
        Ok(Self {
            _ring: ring,
            _buf: buf,
        })
    }
}
