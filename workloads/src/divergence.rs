//! How a process and the holder of a long-term pin can be seen to disagree about memory: the
//! process's view, page by page through its mapping, and a write through the pin (an io_uring
//! READ_FIXED into a registered buffer, which the kernel copies into the pages the
//! registration pinned, whatever the mapping now shows). Shared by the workloads that take
//! memory away from under a pin (`gmem`, `discard`).

use std::fs::File;
use std::ops::Range;
use std::os::fd::AsRawFd as _;
use std::path::Path;

use anyhow::{Context as _, Result, ensure};
use io_uring::{IoUring, opcode, types};

use crate::sys::{Mapping, PAGE_SIZE};

/// Writes `value` into every byte of pages `pages` of the mapping (each faulted in and written).
pub(crate) fn fill(buf: &Mapping, pages: Range<usize>, value: u8) {
    let bytes = pages.start * PAGE_SIZE..(pages.end * PAGE_SIZE).min(buf.len());
    if bytes.is_empty() {
        return;
    }
    // SAFETY: the range lies inside this live read-write mapping (clamped to its length).
    unsafe { buf.addr().add(bytes.start).write_bytes(value, bytes.len()) };
}

/// Writes `value` into every byte of the mapping.
pub(crate) fn fill_all(buf: &Mapping, value: u8) {
    fill(buf, 0..buf.len() / PAGE_SIZE, value);
}

/// How many of `pages` hold `value` in every byte, as the process sees them now.
pub(crate) fn count(buf: &Mapping, pages: Range<usize>, value: u8) -> usize {
    pages.filter(|&page| page_is(buf, page, value)).count()
}

/// Whether every byte of page `page` holds `value` (false beyond the mapping).
pub(crate) fn page_is(buf: &Mapping, page: usize, value: u8) -> bool {
    if (page + 1) * PAGE_SIZE > buf.len() {
        return false;
    }
    (0..PAGE_SIZE).all(|off| {
        // SAFETY: page is inside the mapping (checked above) and off < PAGE_SIZE; volatile, as
        // the kernel or a device writes the memory behind the compiler's back.
        unsafe { buf.addr().add(page * PAGE_SIZE + off).read_volatile() == value }
    })
}

/// Creates `path` holding `buf.len()` bytes of `value` and reads it whole with one
/// IORING_OP_READ_FIXED into registered buffer 0 (`buf`, registered whole): the kernel copies
/// into the pages the registration pinned. Removes the file and returns the bytes read.
pub(crate) fn read_fixed(ring: &IoUring, buf: &Mapping, path: &Path, value: u8) -> Result<i32> {
    std::fs::write(path, vec![value; buf.len()])
        .with_context(|| format!("creating {}", path.display()))?;
    let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let read = opcode::ReadFixed::new(
        types::Fd(file.as_raw_fd()),
        buf.addr(),
        u32::try_from(buf.len())?,
        0,
    )
    .offset(0)
    .build();
    // SAFETY: one submitter; the buffer is registered and mapped, the fd open, until the read
    // completes below.
    unsafe { ring.submission_shared().push(&read) }
        .map_err(|_| anyhow::anyhow!("submission queue full"))?;
    ring.submit_and_wait(1).context("io_uring_enter")?;
    // SAFETY: one completion reader, as for the submission.
    let result = unsafe { ring.completion_shared() }
        .next()
        .context("no completion for READ_FIXED")?
        .result();
    std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    ensure!(result >= 0, "READ_FIXED failed: errno {}", -result);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_whole_pages_only() {
        let buf = Mapping::anon(3 * PAGE_SIZE).unwrap();
        fill_all(&buf, 0x5a);
        // SAFETY: inside the mapping (the last byte of page 1).
        unsafe { buf.addr().add(2 * PAGE_SIZE - 1).write(0) };
        assert_eq!(count(&buf, 0..3, 0x5a), 2);
        assert_eq!(count(&buf, 1..2, 0x5a), 0);
        assert_eq!(count(&buf, 0..3, 0), 0);
        assert!(!page_is(&buf, 3, 0x5a));
    }

    #[test]
    fn fills_a_range_of_pages() {
        let buf = Mapping::anon(4 * PAGE_SIZE).unwrap();
        fill_all(&buf, 1);
        fill(&buf, 2..4, 7);
        fill(&buf, 3..9, 8);
        assert_eq!(count(&buf, 0..4, 1), 2);
        assert!(page_is(&buf, 2, 7) && page_is(&buf, 3, 8));
    }
}
