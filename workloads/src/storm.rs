//! `storm`: one kernel hot path in a tight loop until a deadline, for benchmarks that compare
//! the throughput with and without an observer attached. Setup (mapping, populating, creating
//! files) happens before the clock starts; the loop reads the clock after every iteration; the
//! result is one machine-readable status line: `ok kind=<kind> ops=<n> secs=<s> rate=<ops/s>`.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use crate::iouring::{self, IORING_MAX_REG_BUFFERS};
use crate::sys::{self, Mapping, PAGE_SIZE};
use crate::timed::{Scratch, drive, secs_and_rate};
use crate::{churn, fork_cow, msync, odirect};

/// Where the guests mount their ext4 scratch filesystem.
const DEFAULT_DIR: &str = "/mnt/ext4/work";

/// Pages per O_DIRECT read (64 KiB), a typical direct-I/O request size.
const ODIRECT_CHUNK_PAGES: usize = 16;

/// `--pages` of the hot-path storms: a 1 MiB buffer or file.
const DEFAULT_PAGES: usize = 256;
/// `--pages` of the discard storms: a small file, an allocator's 64 KiB chunk.
const DEFAULT_CHURN_PAGES: usize = 16;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The hot path to run.
    #[arg(value_enum)]
    pub kind: Kind,
    /// How long to run the loop, in seconds (setup and cleanup are not counted).
    #[arg(long, default_value_t = 3.0, allow_negative_numbers = true)]
    pub seconds: f64,
    /// Directory for the msync, odirect, mixed and page-cache-churn files (created if missing;
    /// odirect needs a filesystem with O_DIRECT, which ramfs and pre-6.6 tmpfs lack). The files
    /// are removed at the end.
    #[arg(long, default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
    /// Size of the buffer or file in 4 KiB pages (at most 16384 for iouring: one iovec a page)
    /// [default: 256; 16 for page-cache-churn and the madvise storms].
    #[arg(long)]
    pub pages: Option<usize>,
}

/// What one loop iteration does, and what `ops` counts.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// fork; the child writes every page and exits; the parent writes every page
    /// (do_wp_page). ops = COW-faulted page writes, 2 x pages a round.
    ForkCow,
    /// Dirty every page of a shared ext4 file mapping, msync(MS_SYNC) it (writeback,
    /// folio_mkclean). ops = pages cleaned.
    Msync,
    /// IORING_REGISTER_BUFFERS of one iovec a page (a long-term pin_user_pages call each),
    /// then IORING_UNREGISTER_BUFFERS. ops = pages pinned and unpinned.
    Iouring,
    /// O_DIRECT pread of 64 KiB at offsets cycling through the file (the block layer pins
    /// the buffer for each read). ops = pages read.
    Odirect,
    /// A busy host: a build-like process (fork and exec of `busybox true`, a 16 KiB file
    /// written and fsynced) beside a storage service reading through io_uring into registered
    /// buffers and with O_DIRECT. ops = rounds (one build step and five 64 KiB reads).
    Mixed,
    /// Write the pages into a file at offset 0 (one pwrite), then ftruncate it to 0: each
    /// round adds the pages to the page cache and removes them (on tmpfs, one order-0 folio
    /// each). ops = pages removed.
    PageCacheChurn,
    /// Write every page of an anonymous mapping (one fault each), then madvise(MADV_DONTNEED)
    /// it, as an allocator returns memory, in a process that never pinned. ops = pages
    /// discarded.
    MadviseChurn,
    /// madvise-churn in a process that holds an unrelated io_uring registration (a one-page
    /// long-term pin elsewhere, so MMF_HAS_PINNED is set): each madvise is a pinner's discard,
    /// over a range with no pin in it. ops = pages discarded.
    MadviseChurnPinner,
}

impl Kind {
    /// The name in the status line; the same spelling as on the command line.
    fn name(self) -> &'static str {
        match self {
            Self::ForkCow => "fork-cow",
            Self::Msync => "msync",
            Self::Iouring => "iouring",
            Self::Odirect => "odirect",
            Self::Mixed => "mixed",
            Self::PageCacheChurn => "page-cache-churn",
            Self::MadviseChurn => "madvise-churn",
            Self::MadviseChurnPinner => "madvise-churn-pinner",
        }
    }

    /// `--pages` when the flag is not given.
    fn default_pages(self) -> usize {
        match self {
            Self::PageCacheChurn | Self::MadviseChurn | Self::MadviseChurnPinner => {
                DEFAULT_CHURN_PAGES
            }
            _ => DEFAULT_PAGES,
        }
    }
}

pub fn run(args: &Args) -> Result<String> {
    let (duration, page_count) = validate(args)?;
    let len = sys::pages_len(page_count)?;
    let pages = u64::try_from(page_count)?;
    let (ops, elapsed) = match args.kind {
        Kind::ForkCow => fork_cow_storm(len, pages, duration)?,
        Kind::Msync => msync_storm(&args.dir, len, pages, duration)?,
        Kind::Iouring => iouring_storm(len, pages, duration)?,
        Kind::Odirect => odirect_storm(&args.dir, page_count, duration)?,
        Kind::Mixed => crate::mixed::storm(&args.dir, page_count, duration)?,
        Kind::PageCacheChurn => churn::page_cache(&args.dir, page_count, duration)?,
        Kind::MadviseChurn => churn::madvise(page_count, false, duration)?,
        Kind::MadviseChurnPinner => churn::madvise(page_count, true, duration)?,
    };
    Ok(format!(
        "ok kind={} ops={ops} {}",
        args.kind.name(),
        secs_and_rate(ops, elapsed)
    ))
}

/// Checks the flags and returns the loop's duration and the pages.
fn validate(args: &Args) -> Result<(Duration, usize)> {
    ensure!(
        args.seconds.is_finite() && args.seconds > 0.0,
        "--seconds must be a finite number above 0, not {}",
        args.seconds
    );
    let pages = args.pages.unwrap_or(args.kind.default_pages());
    ensure!(pages >= 1, "--pages must be at least 1");
    if args.kind == Kind::Iouring {
        ensure!(
            pages <= IORING_MAX_REG_BUFFERS,
            "--pages {pages} is over the kernel's limit of {IORING_MAX_REG_BUFFERS} iovecs a \
             registration (one iovec a page)"
        );
    }
    let duration = Duration::try_from_secs_f64(args.seconds).context("--seconds is too large")?;
    Ok((duration, pages))
}

fn fork_cow_storm(len: usize, pages: u64, duration: Duration) -> Result<(u64, Duration)> {
    let map = Mapping::anon(len)?;
    // Populated once, so every fork shares real pages instead of the zero page.
    map.write_pages(1);
    let counted = drive(duration, |_| {
        fork_cow::cow_round(&map)?;
        Ok(2 * pages)
    })?;
    map.unmap()?;
    Ok(counted)
}

fn msync_storm(dir: &Path, len: usize, pages: u64, duration: Duration) -> Result<(u64, Duration)> {
    let scratch = Scratch::new(dir, "storm-msync.dat")?;
    let (file, map) = sys::map_file(&scratch.0, len)?;
    // Allocate the page cache and the blocks before the clock starts: the loop then measures
    // dirtying and cleaning, not first-touch allocation.
    map.write_pages(0);
    msync::sync(&map).context("first msync(MS_SYNC)")?;
    let counted = drive(duration, |round| {
        // Any value will do (a store into a clean page faults and dirties it); varying it
        // keeps the file's content honest.
        map.write_pages(round as u8);
        msync::sync(&map).context("msync(MS_SYNC)")?;
        Ok(pages)
    })?;
    map.unmap()?;
    drop(file);
    scratch.remove()?;
    Ok(counted)
}

fn iouring_storm(len: usize, pages: u64, duration: Duration) -> Result<(u64, Duration)> {
    let buf = Mapping::anon(len)?;
    // Populated once, so registration pins present pages instead of faulting them in.
    buf.write_pages(0x5a);
    let iovecs = iouring::page_iovecs(&buf, 1)?;
    let ring = iouring::setup().context("io_uring_setup")?;
    let counted = drive(duration, |_| {
        iouring::register(&ring, &iovecs).map_err(iouring::register_error)?;
        iouring::unregister(&ring).context("IORING_UNREGISTER_BUFFERS")?;
        Ok(pages)
    })?;
    drop(ring);
    buf.unmap()?;
    Ok(counted)
}

fn odirect_storm(dir: &Path, pages: usize, duration: Duration) -> Result<(u64, Duration)> {
    let scratch = Scratch::new(dir, "storm-odirect.dat")?;
    odirect::create(&scratch.0, pages)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&scratch.0)
        .with_context(|| format!("open {} O_DIRECT", scratch.0.display()))?;
    let chunk_pages = pages.min(ODIRECT_CHUNK_PAGES);
    let chunks = pages / chunk_pages;
    // mmap'd memory is page-aligned, which satisfies O_DIRECT alignment; populated once so the
    // reads pin present pages.
    let buf = Mapping::anon(sys::pages_len(chunk_pages)?)?;
    buf.write_pages(0);
    let per_read = u64::try_from(chunk_pages)?;
    let counted = drive(duration, |round| {
        let offset = chunk_offset(round, chunks, chunk_pages)?;
        odirect::transfer(&file, &buf, false, offset)
            .with_context(|| format!("O_DIRECT pread at {offset}"))?;
        Ok(per_read)
    })?;
    buf.unmap()?;
    drop(file);
    scratch.remove()?;
    Ok(counted)
}

/// File offset of round `round`'s read: whole chunks in turn, wrapping at the end of the file
/// (a tail shorter than a chunk is never read).
fn chunk_offset(round: u64, chunks: usize, chunk_pages: usize) -> Result<libc::off_t> {
    ensure!(chunks > 0, "the file holds no whole chunk");
    let chunk = usize::try_from(round % u64::try_from(chunks)?)?;
    let offset = chunk * chunk_pages * PAGE_SIZE;
    libc::off_t::try_from(offset).context("file offset overflows off_t")
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    fn args(kind: Kind, seconds: f64, pages: usize) -> Args {
        Args {
            kind,
            seconds,
            dir: PathBuf::from(DEFAULT_DIR),
            pages: Some(pages),
        }
    }

    #[test]
    fn validates_seconds_and_pages() {
        assert_eq!(
            validate(&args(Kind::ForkCow, 1.5, 1)).unwrap(),
            (Duration::from_millis(1500), 1)
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(validate(&args(Kind::Msync, bad, 256)).is_err(), "{bad}");
        }
        assert!(validate(&args(Kind::ForkCow, 1.0, 0)).is_err());
        assert!(validate(&args(Kind::Iouring, 1.0, 16384)).is_ok());
        assert!(validate(&args(Kind::Iouring, 1.0, 16385)).is_err());
        assert!(validate(&args(Kind::Odirect, 1.0, 16385)).is_ok());
    }

    #[test]
    fn pages_default_per_kind() {
        let pages = |kind| {
            let a = Args {
                pages: None,
                ..args(kind, 1.0, 1)
            };
            validate(&a).unwrap().1
        };
        assert_eq!(pages(Kind::Iouring), 256);
        assert_eq!(pages(Kind::Mixed), 256);
        assert_eq!(pages(Kind::PageCacheChurn), 16);
        assert_eq!(pages(Kind::MadviseChurn), 16);
        assert_eq!(pages(Kind::MadviseChurnPinner), 16);
    }

    #[test]
    fn formats_secs_and_rate() {
        assert_eq!(
            secs_and_rate(12345, Duration::from_millis(3001)),
            "secs=3.001 rate=4113.6"
        );
        assert_eq!(secs_and_rate(0, Duration::ZERO), "secs=0.000 rate=0.0");
    }

    #[test]
    fn names_match_the_command_line() {
        for kind in Kind::value_variants() {
            assert_eq!(kind.to_possible_value().unwrap().get_name(), kind.name());
        }
    }

    #[test]
    fn offsets_cycle_through_whole_chunks() {
        let offsets: Vec<_> = (0..5).map(|r| chunk_offset(r, 3, 16).unwrap()).collect();
        assert_eq!(offsets, [0, 65536, 131072, 0, 65536]);
        assert!(chunk_offset(0, 0, 16).is_err());
    }
}
