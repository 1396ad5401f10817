//! ftruncate of a file that is still mapped: truncation zaps the user PTEs
//! of the removed range (unmap_mapping_range) before freeing the pages.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::sys::{self, DEFAULT_PAGES};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// File to create, map and truncate.
    #[arg(long)]
    pub path: PathBuf,
    /// File size in 4 KiB pages before truncation.
    #[arg(long, default_value_t = DEFAULT_PAGES)]
    pub pages: usize,
}

pub fn run(args: &Args) -> Result<String> {
    let len = sys::pages_len(args.pages)?;
    let (file, map) = sys::map_file(&args.path, len)?;
    map.write_pages(0x74);
    file.set_len(0)
        .with_context(|| format!("ftruncate {} to 0 while mapped", args.path.display()))?;
    // The mapping is now beyond EOF: touching it would SIGBUS, so only unmap.
    map.unmap()?;
    Ok(format!(
        "ok {} pages mapped, truncated to 0 while mapped, unmapped",
        args.pages
    ))
}
