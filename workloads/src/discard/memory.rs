//! The memory a `discard` scenario maps, and the calls that take part of it away.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd};
use std::path::Path;

use anyhow::{Context as _, Result};

use super::{Call, Kind};
use crate::sys::{self, Mapping, PAGE_SIZE};

/// tmpfs/shmem (memfd), ext4 and xfs superblock magics (include/uapi/linux/magic.h).
const TMPFS_MAGIC: i64 = 0x0102_1994;
const EXT4_MAGIC: i64 = 0xEF53;
const XFS_MAGIC: i64 = 0x5846_5342;

/// A mapping of `pages` pages and the file behind it, if any.
pub(super) struct Memory {
    pub map: Mapping,
    file: Option<File>,
    pages: usize,
}

impl Memory {
    /// `pages` pages of `kind`, mapped read-write (MAP_SHARED for a file, MAP_PRIVATE for anon).
    pub fn create(kind: Kind, path: Option<&Path>, pages: usize) -> Result<Self> {
        let len = sys::pages_len(pages)?;
        let (map, file) = match kind {
            Kind::Anon => (Mapping::anon(len)?, None),
            Kind::Memfd => {
                let memfd = memfd(len)?;
                let map = Mapping::shared(memfd.as_fd(), len, 0).context("mmap memfd")?;
                (map, Some(memfd))
            }
            Kind::File => {
                let path = path.context("--memory file needs --file")?;
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(path)
                    .with_context(|| format!("create {}", path.display()))?;
                file.set_len(len as u64)
                    .with_context(|| format!("ftruncate {} to {len} bytes", path.display()))?;
                let map = Mapping::shared(file.as_fd(), len, 0)
                    .with_context(|| format!("mmap MAP_SHARED {}", path.display()))?;
                (map, Some(file))
            }
        };
        Ok(Self { map, file, pages })
    }

    /// The filesystem a pin of this memory names: `-` for anonymous memory.
    pub fn fs(&self) -> Result<String> {
        let Some(file) = &self.file else {
            return Ok("-".to_owned());
        };
        let magic = crate::kvm::fs_magic(file).context("fstatfs")?;
        Ok(match magic {
            TMPFS_MAGIC => "tmpfs".to_owned(),
            EXT4_MAGIC => "ext4".to_owned(),
            XFS_MAGIC => "xfs".to_owned(),
            other => format!("{other:#x}"),
        })
    }

    /// Takes pages `range` (the tail of the mapping) away with `call`. The kernel's answer is
    /// the result, so it is returned, not raised.
    pub fn discard(&self, call: Call, range: Range<usize>) -> io::Result<()> {
        let (first, pages) = (range.start, range.len());
        match call {
            Call::PunchHole => self.fallocate_punch(first, pages),
            Call::Truncate => self.set_pages(first),
            Call::MadviseRemove => self.map.madvise_pages(first, pages, libc::MADV_REMOVE),
            Call::MadviseDontneed => self.map.madvise_pages(first, pages, libc::MADV_DONTNEED),
            // MADV_FREE only marks the pages lazily freeable; MADV_PAGEOUT then reclaims them at
            // once, which discards lazy-free pages nobody else holds. A pinned page is kept.
            Call::MadviseFree => {
                self.map.madvise_pages(first, pages, libc::MADV_FREE)?;
                self.map.madvise_pages(first, pages, libc::MADV_PAGEOUT)
            }
        }
    }

    /// After a truncate: the file's old size again, so the tail can be read through the mapping
    /// (beyond EOF it would SIGBUS); the truncated pages come back as holes, read as zeros.
    pub fn restore_size(&self) -> Result<()> {
        self.set_pages(self.pages)
            .context("ftruncate back to the original size")
    }

    fn set_pages(&self, pages: usize) -> io::Result<()> {
        let file = self.file.as_ref().ok_or(io::ErrorKind::Unsupported)?;
        file.set_len((pages * PAGE_SIZE) as u64)
    }

    /// fallocate(PUNCH_HOLE | KEEP_SIZE) of `pages` pages from page `first`.
    fn fallocate_punch(&self, first: usize, pages: usize) -> io::Result<()> {
        let file = self.file.as_ref().ok_or(io::ErrorKind::Unsupported)?;
        let off = libc::off_t::try_from(first * PAGE_SIZE).map_err(io::Error::other)?;
        let len = libc::off_t::try_from(pages * PAGE_SIZE).map_err(io::Error::other)?;
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        // SAFETY: fallocate reads no user memory.
        sys::cvt(unsafe { libc::fallocate(file.as_raw_fd(), mode, off, len) })?;
        Ok(())
    }

    /// Unmaps and closes. A file stays (as the other workloads' files do): a watcher may still
    /// name it from its path after the process ended.
    pub fn finish(self) -> Result<()> {
        self.map.unmap()?;
        drop(self.file);
        Ok(())
    }
}

/// A memfd of `len` bytes, unsealed (truncation must stay possible).
fn memfd(len: usize) -> Result<File> {
    // SAFETY: the name is a valid NUL-terminated C string.
    let fd =
        sys::cvt(unsafe { libc::memfd_create(c"pinwatch-discard".as_ptr(), libc::MFD_CLOEXEC) })
            .context("memfd_create")?;
    // SAFETY: memfd_create just returned this fd and nothing else owns it.
    let memfd = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    memfd.set_len(len as u64).context("ftruncate memfd")?;
    Ok(memfd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::divergence::{count, fill_all};

    #[test]
    fn memfd_discards_read_zero_and_names_tmpfs() {
        for call in [Call::PunchHole, Call::Truncate, Call::MadviseRemove] {
            let memory = Memory::create(Kind::Memfd, None, 4).unwrap();
            assert_eq!(memory.fs().unwrap(), "tmpfs");
            fill_all(&memory.map, 0x5a);
            memory.discard(call, 3..4).unwrap();
            if call == Call::Truncate {
                memory.restore_size().unwrap();
            }
            assert_eq!(count(&memory.map, 0..3, 0x5a), 3, "{call:?}");
            assert_eq!(count(&memory.map, 3..4, 0), 1, "{call:?}");
            memory.finish().unwrap();
        }
    }

    #[test]
    fn dontneed_keeps_shared_pages_and_drops_anonymous_ones() {
        let shared = Memory::create(Kind::Memfd, None, 2).unwrap();
        fill_all(&shared.map, 0x5a);
        shared.discard(Call::MadviseDontneed, 1..2).unwrap();
        assert_eq!(count(&shared.map, 0..2, 0x5a), 2);
        let anon = Memory::create(Kind::Anon, None, 2).unwrap();
        assert_eq!(anon.fs().unwrap(), "-");
        fill_all(&anon.map, 0x5a);
        anon.discard(Call::MadviseDontneed, 1..2).unwrap();
        assert_eq!(count(&anon.map, 1..2, 0), 1);
    }

    #[test]
    fn a_file_is_created_afresh_and_kept() {
        let path = std::env::temp_dir().join(format!("pinwatch-discard-{}", std::process::id()));
        let memory = Memory::create(Kind::File, Some(&path), 2).unwrap();
        assert!(path.exists());
        memory.discard(Call::Truncate, 1..2).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), PAGE_SIZE as u64);
        memory.restore_size().unwrap();
        memory.finish().unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            2 * PAGE_SIZE as u64
        );
        let again = Memory::create(Kind::File, Some(&path), 1).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), PAGE_SIZE as u64);
        again.finish().unwrap();
        std::fs::remove_file(&path).unwrap();
    }
}
