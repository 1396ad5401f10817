//! The long-term pin a `discard` scenario holds (io_uring fixed buffers or a VFIO DMA mapping),
//! and how its holder's view of the memory is compared with the process's afterwards.

use std::io;
use std::ops::Range;
use std::path::Path;

use anyhow::{Context as _, Result};
use io_uring::IoUring;

use super::{FILE_PATTERN, PATTERN, Pinner};
use crate::divergence::{count, fill, page_is, read_fixed};
use crate::edu::{self, Edu};
use crate::sys::{self, Mapping, PAGE_SIZE};
use crate::vfio::{self, Session};

/// What the process writes into the first discarded page after the discard (a page of its own
/// again: a new one, if the old one was taken away).
const PROCESS_MARK: u8 = 0xd7;
/// Kept page 0 before the device copies the first discarded page into it.
const KEPT_MARK: u8 = 0x3c;
/// Kept page 1, which the device copies into the first discarded page.
const DEVICE_MARK: u8 = 0x96;

pub(super) enum Pin {
    /// Nothing was pinned (never, or refused).
    None,
    /// The kernel refused the pin with this errno (a file that needs dirty tracking).
    Refused(i32),
    IoUring {
        ring: Box<IoUring>,
        registered: bool,
    },
    Vfio {
        session: Session,
        len: usize,
        mapped: bool,
    },
}

/// No device to pin memory for (no edu device bound to VFIO): nothing to run.
pub(super) struct Unavailable(pub String);

impl Pin {
    /// Pins pages `pages` of `map` (from page 0) with `pinner`. A refusal of a regular file
    /// (EOPNOTSUPP from 6.1's io_uring, EFAULT from GUP on 6.5+) is a result, not an error.
    pub fn take(
        pinner: Pinner,
        map: &Mapping,
        pages: Range<usize>,
        regular_file: bool,
    ) -> Result<std::result::Result<Self, Unavailable>> {
        let (addr, len) = (
            map.addr().wrapping_add(pages.start * PAGE_SIZE),
            pages.len() * PAGE_SIZE,
        );
        let refused = |err: io::Error| match err.raw_os_error() {
            Some(errno) if regular_file && (errno == libc::EFAULT || errno == libc::EOPNOTSUPP) => {
                Ok(Pin::Refused(errno))
            }
            _ => Err(err),
        };
        Ok(Ok(match pinner {
            Pinner::IoUring => {
                let ring = IoUring::new(4).context("io_uring_setup")?;
                let iov = [libc::iovec {
                    iov_base: addr.cast(),
                    iov_len: len,
                }];
                // SAFETY: the memory stays mapped until the pin is released (`release`, called
                // before the mapping goes) or the ring is dropped.
                match unsafe { ring.submitter().register_buffers(&iov) } {
                    Ok(()) => Pin::IoUring {
                        ring: Box::new(ring),
                        registered: true,
                    },
                    Err(err) => refused(err).map_err(crate::iouring::register_error)?,
                }
            }
            Pinner::Vfio => {
                let Some(session) = Session::open(edu::VENDOR, edu::DEVICE)? else {
                    return Ok(Err(Unavailable(format!(
                        "no {:04x}:{:04x} device",
                        edu::VENDOR,
                        edu::DEVICE
                    ))));
                };
                match session.map_dma(addr, len) {
                    Ok(()) => Pin::Vfio {
                        session,
                        len,
                        mapped: true,
                    },
                    Err(err) => refused(err).context("VFIO_IOMMU_MAP_DMA")?,
                }
            }
        }))
    }

    /// `ok`, `none`, or `refused-<ERRNO>`.
    pub fn describe(&self) -> String {
        match self {
            Self::None => "none".to_owned(),
            Self::Refused(errno) => format!("refused-{}", sys::errno_name(*errno)),
            Self::IoUring { .. } | Self::Vfio { .. } => "ok".to_owned(),
        }
    }

    /// Whether pages are pinned now.
    pub fn held(&self) -> bool {
        matches!(
            self,
            Self::IoUring {
                registered: true,
                ..
            } | Self::Vfio { mapped: true, .. }
        )
    }

    /// Unpins (IORING_UNREGISTER_BUFFERS, VFIO_IOMMU_UNMAP_DMA); nothing if not held.
    pub fn release(&mut self) -> Result<()> {
        match self {
            Self::IoUring { ring, registered } if *registered => {
                ring.submitter()
                    .unregister_buffers()
                    .context("IORING_UNREGISTER_BUFFERS")?;
                *registered = false;
            }
            Self::Vfio {
                session,
                len,
                mapped,
            } if *mapped => {
                session.unmap_dma(*len).context("VFIO_IOMMU_UNMAP_DMA")?;
                *mapped = false;
            }
            _ => {}
        }
        Ok(())
    }

    /// Writes and reads through the pin, then compares with what the process's mapping shows
    /// (the pin must cover the whole mapping, `kept` then `range`). io_uring: a READ_FIXED of a
    /// file of [`FILE_PATTERN`] into the whole buffer; which pages does the process see it in?
    /// VFIO: the edu device copies the first page of `range` (where the process has just
    /// written a page of its own) into kept page 0, and kept page 1 into that page; did the
    /// device read the process's page, and does the process see the device's write?
    pub fn compare(
        &self,
        map: &Mapping,
        kept: Range<usize>,
        range: Range<usize>,
        read_file: &Path,
    ) -> Result<String> {
        match self {
            Self::IoUring {
                ring,
                registered: true,
            } => {
                let read = read_fixed(ring, map, read_file, FILE_PATTERN)?;
                Ok(format!(
                    "read-fixed={read} seen-kept={}/{} seen-range={}/{}",
                    count(map, kept.clone(), FILE_PATTERN),
                    kept.len(),
                    count(map, range.clone(), FILE_PATTERN),
                    range.len(),
                ))
            }
            Self::Vfio {
                session,
                mapped: true,
                ..
            } => device_view(session, map, range.start),
            _ => Ok(String::new()),
        }
    }
}

/// The edu device's view of page `page` (pinned by the VFIO mapping at [`vfio::IOVA`]) against
/// the process's: `dma-read=` what the device read there (`old-page`: the pattern the page held
/// before the discard; `process-page`: what the process wrote into it since), `dma-write-seen=`
/// whether the process sees what the device wrote there.
fn device_view(session: &Session, map: &Mapping, page: usize) -> Result<String> {
    let iova = |p: usize| vfio::IOVA + (p * PAGE_SIZE) as u64;
    let edu = Edu::open(session).context("driving the edu device")?;
    fill(map, page..page + 1, PROCESS_MARK);
    fill(map, 0..1, KEPT_MARK);
    fill(map, 1..2, DEVICE_MARK);
    edu.copy_page(iova(page), iova(0))?;
    let read = holds(
        map,
        0,
        &[(PATTERN, "old-page"), (PROCESS_MARK, "process-page")],
    );
    edu.copy_page(iova(1), iova(page))?;
    let seen = holds(map, page, &[(DEVICE_MARK, "yes"), (PROCESS_MARK, "no")]);
    Ok(format!("dma-read={read} dma-write-seen={seen}"))
}

/// The name of the first of `known` whose byte fills page `page`, else `other-<its first byte>`.
fn holds(map: &Mapping, page: usize, known: &[(u8, &str)]) -> String {
    known
        .iter()
        .find(|(byte, _)| page_is(map, page, *byte))
        .map_or_else(
            || format!("other-{:#04x}", map.page_byte(page).unwrap_or(0)),
            |(_, name)| (*name).to_owned(),
        )
}
