//! msync(MS_SYNC) of a dirty shared file mapping: writeback walks and
//! write-protects the dirty pages (folio_mkclean) before I/O.

use std::io;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::sys::{self, DEFAULT_PAGES, Mapping};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// File to create (or resize) and map.
    #[arg(long)]
    pub path: PathBuf,
    /// File size in 4 KiB pages.
    #[arg(long, default_value_t = DEFAULT_PAGES)]
    pub pages: usize,
}

pub fn run(args: &Args) -> Result<String> {
    let len = sys::pages_len(args.pages)?;
    let (file, map) = sys::map_file(&args.path, len)?;
    map.write_pages(0x6d);
    sync(&map).context("msync(MS_SYNC)")?;
    map.unmap()?;
    file.sync_all()
        .with_context(|| format!("fsync {}", args.path.display()))?;
    Ok(format!("ok {} pages dirtied and synced", args.pages))
}

/// msync(MS_SYNC) of the whole mapping: writes the dirty pages back and waits for the I/O.
pub(crate) fn sync(map: &Mapping) -> io::Result<()> {
    // SAFETY: the range is exactly the live mapping owned by `map`.
    sys::cvt(unsafe { libc::msync(map.addr().cast(), map.len(), libc::MS_SYNC) })?;
    Ok(())
}
