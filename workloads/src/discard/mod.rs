//! `discard`: memory leaves the process that maps it while a long-term pin holds it (the
//! `pinned-page-discarded` hazard, issue 14). A punch hole, truncate or MADV_REMOVE of shmem or
//! a file removes its folios from the page cache whatever their refcount, and MADV_DONTNEED of
//! private anonymous memory unmaps its pages; the pin keeps the old pages alive, so the device
//! (or io_uring) and the process no longer share that memory: the process refaults new pages
//! (zeros), while DMA reads and writes the orphaned old ones.
//!
//! The workload maps `--pages` pages, fills them with a pattern, pins them (`--pinner`), then
//! takes the last `--discard-pages` away (`--discard`) at the time `--when` says. It reports
//! whether the call succeeded, what the process reads in the range afterwards, and, while the
//! pin still holds it, whether the pinner's writes and reads reach the process's pages. The
//! controls (`--when after-unpin|outside|never-pinned`, MADV_FREE of anonymous memory,
//! MADV_DONTNEED of a shared mapping) discard nothing that is pinned. The scenarios the VM matrix
//! runs, with their page counts, are in [`scenarios`].

mod memory;
mod pin;
pub(crate) mod scenarios;

use std::ops::Range;
use std::path::PathBuf;

use anyhow::{Result, bail, ensure};

use crate::divergence::{count, fill_all};
use crate::sys;
use memory::Memory;
use pin::Pin;

/// What the process writes into its memory before pinning.
const PATTERN: u8 = 0x5a;
/// What the pinner writes through the pin (io_uring READ_FIXED): neither the pattern nor zero.
const FILE_PATTERN: u8 = 0xe1;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The memory: a memfd (shmem), private anonymous memory, or a file (`--file`), the last
    /// two mapped MAP_SHARED.
    #[arg(long, value_enum, default_value_t = Kind::Memfd)]
    pub memory: Kind,
    /// With `--memory file`: the file, created afresh (truncated if it exists) and kept.
    #[arg(long, required_if_eq("memory", "file"))]
    pub file: Option<PathBuf>,
    /// Who holds the long-term pin: io_uring fixed buffers, or VFIO type1 DMA for QEMU's edu
    /// device (which then reads and writes the pinned pages).
    #[arg(long, value_enum, default_value_t = Pinner::IoUring)]
    pub pinner: Pinner,
    /// The call that takes the range away.
    #[arg(long, value_enum, default_value_t = Call::PunchHole)]
    pub discard: Call,
    /// When: while pinned (the hazard), after the pin was released, outside the pinned range
    /// (only the rest is pinned), or with nothing ever pinned.
    #[arg(long, value_enum, default_value_t = When::Pinned)]
    pub when: When,
    /// Size of the memory in 4 KiB pages.
    #[arg(long, default_value_t = 35)]
    pub pages: usize,
    /// Pages taken away, at the end of the memory.
    #[arg(long, default_value_t = 3)]
    pub discard_pages: usize,
    /// The file io_uring READ_FIXED reads into the registered buffer (created, then removed).
    #[arg(long, default_value = "/tmp/pinwatch-discard-read.dat")]
    pub read_file: PathBuf,
}

/// The memory discarded.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Memfd,
    Anon,
    File,
}

/// The long-term pinner.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinner {
    IoUring,
    Vfio,
}

/// The discarding call.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// fallocate(PUNCH_HOLE | KEEP_SIZE) of the range (memfd, file).
    PunchHole,
    /// ftruncate to the size before the range (memfd, file); the size is restored after.
    Truncate,
    /// madvise(MADV_REMOVE): a punch hole through the mapping (memfd, file).
    MadviseRemove,
    /// madvise(MADV_DONTNEED): discards private anonymous pages; of a shared mapping it only
    /// unmaps (the folio stays in the page cache).
    MadviseDontneed,
    /// madvise(MADV_FREE), then MADV_PAGEOUT to reclaim at once (anonymous memory): the kernel
    /// keeps pinned pages.
    MadviseFree,
}

/// When the discard happens relative to the pin.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Pinned,
    AfterUnpin,
    Outside,
    NeverPinned,
}

pub fn run(args: &Args) -> Result<String> {
    check(args)?;
    let (pages, kept, range) = layout(args);
    let memory = Memory::create(args.memory, args.file.as_deref(), pages)?;
    let fs = memory.fs()?;
    fill_all(&memory.map, PATTERN);
    let pinned = match args.when {
        When::Outside => kept.clone(),
        _ => 0..pages,
    };
    let mut pin = match args.when {
        When::NeverPinned => Pin::None,
        _ => match Pin::take(args.pinner, &memory.map, pinned, args.memory == Kind::File)? {
            Ok(pin) => pin,
            Err(pin::Unavailable(why)) => return Ok(format!("unavailable ({why})")),
        },
    };
    if args.when == When::AfterUnpin {
        pin.release()?;
    }
    let held = pin.held();
    let call = memory.discard(args.discard, range.clone());
    if args.discard == Call::Truncate {
        memory.restore_size()?;
    }
    let mut status = format!(
        "ok memory={} fs={fs} pinner={} discard={} when={} pages={pages} discarded={} pin={} \
         held-at-discard={} call={} range-zero={}/{} range-pattern={}/{} kept-pattern={}/{}",
        name(args.memory),
        name(args.pinner),
        name(args.discard),
        name(args.when),
        range.len(),
        pin.describe(),
        if held { "yes" } else { "no" },
        match &call {
            Ok(()) => "ok",
            Err(e) => sys::errno_name(e.raw_os_error().unwrap_or(0)),
        },
        count(&memory.map, range.clone(), 0),
        range.len(),
        count(&memory.map, range.clone(), PATTERN),
        range.len(),
        count(&memory.map, kept.clone(), PATTERN),
        kept.len(),
    );
    // The comparison needs the pin to cover the whole memory (`outside` pins only the head).
    if held && args.when == When::Pinned {
        let seen = pin.compare(&memory.map, kept, range, &args.read_file)?;
        status.push(' ');
        status.push_str(&seen);
    }
    pin.release()?;
    drop(pin);
    memory.finish()?;
    Ok(status)
}

/// Total pages, the kept head and the discarded tail.
fn layout(args: &Args) -> (usize, Range<usize>, Range<usize>) {
    let kept = args.pages - args.discard_pages;
    (args.pages, 0..kept, kept..args.pages)
}

/// Refuses combinations the kernel would reject for reasons other than the pin.
fn check(args: &Args) -> Result<()> {
    ensure!(
        (1..=args.pages).contains(&args.discard_pages),
        "--discard-pages {} must be between 1 and --pages {}",
        args.discard_pages,
        args.pages
    );
    let needs_file = matches!(
        args.discard,
        Call::PunchHole | Call::Truncate | Call::MadviseRemove
    );
    if needs_file && args.memory == Kind::Anon {
        bail!(
            "--discard {} needs a file (--memory memfd or file)",
            name(args.discard)
        );
    }
    if args.discard == Call::MadviseFree && args.memory != Kind::Anon {
        bail!("MADV_FREE applies to private anonymous memory only (--memory anon)");
    }
    if args.file.is_some() && args.memory != Kind::File {
        bail!("--file is for --memory file");
    }
    let kept = args.pages - args.discard_pages;
    if args.when == When::Outside {
        ensure!(kept > 0, "--when outside needs pages outside the range");
    }
    // The device's view compares the range with kept pages 0 and 1.
    if args.pinner == Pinner::Vfio && args.when == When::Pinned {
        ensure!(kept >= 2, "--pinner vfio needs at least 2 kept pages");
    }
    Ok(())
}

/// The command-line spelling of a value.
fn name(value: impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .map_or_else(|| "?".to_owned(), |v| v.get_name().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args as _, FromArgMatches as _};

    fn parse(argv: &[&str]) -> Result<Args> {
        let matches = Args::augment_args(clap::Command::new("discard"))
            .try_get_matches_from(std::iter::once("discard").chain(argv.iter().copied()))?;
        Ok(Args::from_arg_matches(&matches)?)
    }

    #[test]
    fn names_are_the_cli_spellings() {
        assert_eq!(name(Pinner::IoUring), "io-uring");
        assert_eq!(name(Call::MadviseDontneed), "madvise-dontneed");
        assert_eq!(name(When::NeverPinned), "never-pinned");
    }

    #[test]
    fn refuses_what_the_kernel_would_refuse_anyway() {
        let refused = |argv: &[&str]| check(&parse(argv).unwrap()).is_err();
        assert!(refused(&["--memory", "anon", "--discard", "punch-hole"]));
        assert!(refused(&["--memory", "memfd", "--discard", "madvise-free"]));
        assert!(refused(&["--pages", "4", "--discard-pages", "5"]));
        assert!(refused(&[
            "--pages",
            "4",
            "--discard-pages",
            "4",
            "--when",
            "outside"
        ]));
        assert!(refused(&[
            "--pinner",
            "vfio",
            "--pages",
            "4",
            "--discard-pages",
            "3"
        ]));
        assert!(!refused(&["--memory", "anon", "--discard", "madvise-free"]));
        assert!(parse(&["--memory", "file"]).is_err(), "--file is required");
    }

    #[test]
    fn the_range_is_the_tail() {
        let args = parse(&["--pages", "10", "--discard-pages", "3"]).unwrap();
        assert_eq!(layout(&args), (10, 0..7, 7..10));
    }
}
