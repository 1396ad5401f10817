//! Copy-on-write after fork: both the child and the parent write every
//! page, so each side takes write-protect faults (do_wp_page).

use anyhow::{Context, Result};

use crate::sys::{self, DEFAULT_PAGES, Mapping};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Buffer size in 4 KiB pages.
    #[arg(long, default_value_t = DEFAULT_PAGES)]
    pub pages: usize,
    /// How many fork/write cycles to run.
    #[arg(long, default_value_t = 2)]
    pub rounds: u32,
}

pub fn run(args: &Args) -> Result<String> {
    let map = Mapping::anon(sys::pages_len(args.pages)?)?;
    // Populate first so fork shares real pages instead of the zero page.
    map.write_pages(1);
    for round in 0..args.rounds {
        cow_round(&map).with_context(|| format!("round {round}"))?;
    }
    map.unmap()?;
    Ok(format!("ok {} rounds x {} pages", args.rounds, args.pages))
}

/// One fork: the child writes every page and exits, then the parent writes every page (the
/// write-protected PTEs fork left behind fault on both sides).
pub(crate) fn cow_round(map: &Mapping) -> Result<()> {
    let child = sys::fork_child(|| {
        map.write_pages(2);
        0
    })?;
    child.wait().context("child writing COW pages")?;
    map.write_pages(3);
    Ok(())
}
