//! VFIO type1 DMA mapping: VFIO_IOMMU_MAP_DMA long-term pins the user range with
//! `pin_user_pages_remote(FOLL_LONGTERM [|FOLL_WRITE])` (vaddr_get_pfns in vfio_iommu_type1) and
//! UNMAP_DMA unpins it. Pinning an ext4 MAP_SHARED mapping writable is granted on 6.1 and refused
//! with EFAULT on 6.5+; on 6.1 a following msync cleans the pinned folios (folio_mkclean).
//!
//! Needs an IOMMU and a device bound to vfio-pci: the VM matrix uses QEMU's `edu` device
//! (1234:11e8) behind an emulated intel-iommu.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

use crate::pci_sysfs::{self, parse_hex_id};
use crate::process_vm;
use crate::sys::{self, DEFAULT_PAGES, Mapping};

// _IO(VFIO_TYPE = ';', VFIO_BASE + n) from uapi/linux/vfio.h.
const VFIO_GET_API_VERSION: libc::c_ulong = 0x3b64;
const VFIO_SET_IOMMU: libc::c_ulong = 0x3b66;
const VFIO_GROUP_GET_STATUS: libc::c_ulong = 0x3b67;
const VFIO_GROUP_SET_CONTAINER: libc::c_ulong = 0x3b68;
const VFIO_IOMMU_MAP_DMA: libc::c_ulong = 0x3b71;
const VFIO_IOMMU_UNMAP_DMA: libc::c_ulong = 0x3b72;
const VFIO_GROUP_GET_DEVICE_FD: libc::c_ulong = 0x3b6a;
const VFIO_DEVICE_GET_REGION_INFO: libc::c_ulong = 0x3b6c;
/// Region indexes of vfio-pci devices: BAR0 is 0, the config space 7.
pub(crate) const VFIO_PCI_BAR0_REGION_INDEX: u32 = 0;
pub(crate) const VFIO_PCI_CONFIG_REGION_INDEX: u32 = 7;
/// PCI_COMMAND register, its memory-space-enable and its bus-master-enable bits.
pub(crate) const PCI_COMMAND: u64 = 0x4;
const PCI_COMMAND_MEMORY: u16 = 0x2;
pub(crate) const PCI_COMMAND_MASTER: u16 = 0x4;
const VFIO_API_VERSION: libc::c_int = 0;
const VFIO_TYPE1V2_IOMMU: libc::c_ulong = 3;
const VFIO_GROUP_FLAGS_VIABLE: u32 = 1;
pub(crate) const VFIO_DMA_MAP_FLAG_READ: u32 = 1;
pub(crate) const VFIO_DMA_MAP_FLAG_WRITE: u32 = 2;
/// Device-visible address of the mapping; any page-aligned value the IOMMU accepts (below
/// 2^28: QEMU's `edu` device masks its DMA addresses to 28 bits).
pub(crate) const IOVA: u64 = 0x10_0000;

#[repr(C)]
struct GroupStatus {
    argsz: u32,
    flags: u32,
}

#[repr(C)]
struct DmaMap {
    argsz: u32,
    flags: u32,
    vaddr: u64,
    iova: u64,
    size: u64,
}

#[repr(C)]
struct DmaUnmap {
    argsz: u32,
    flags: u32,
    iova: u64,
    size: u64,
}

#[repr(C)]
#[derive(Default)]
pub(crate) struct RegionInfo {
    argsz: u32,
    flags: u32,
    index: u32,
    cap_offset: u32,
    pub size: u64,
    pub offset: u64,
}

const _: () = assert!(size_of::<RegionInfo>() == 32);
const _: () = assert!(size_of::<GroupStatus>() == 8);
const _: () = assert!(size_of::<DmaMap>() == 32);
const _: () = assert!(size_of::<DmaUnmap>() == 24);

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Buffer size in 4 KiB pages.
    #[arg(long, default_value_t = DEFAULT_PAGES)]
    pub pages: usize,
    /// Map this file MAP_SHARED instead of anonymous memory, and msync it while pinned.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Map for device reads only (a read-only long-term pin).
    #[arg(long)]
    pub read_only: bool,
    /// With --file: map it MAP_PRIVATE, fault it in by reading, pin, then write to it. On 6.1
    /// the pin holds the page-cache pages and each write copies a pinned page (COW); from 6.2 a
    /// read-only long-term pin unshares first and the writes reuse the pinned copies.
    #[arg(long, requires = "file")]
    pub private: bool,
    /// With --file: fill the file and drop it from the page cache first, then map it with
    /// MADV_HUGEPAGE, so the first fault reads it back in PMD-sized (2 MiB) folios where the
    /// filesystem supports large folios (xfs; ext4 from 6.16).
    #[arg(long, requires = "file")]
    pub large_folios: bool,
    /// Share the buffer with a fork child (blocked until the end) before pinning it: a read-only
    /// long-term pin must first unshare every page (FAULT_FLAG_UNSHARE copies).
    #[arg(long, conflicts_with = "file")]
    pub share_with_child: bool,
    /// Instead of DMA: mmap BAR0 through VFIO, touch it, then clear memory-enable in the config
    /// space. vfio-pci zaps the BAR mapping (on 6.1 the BAR VMA carries VM_PAT and the zap frees
    /// its memtype while it stays mapped); then munmap.
    #[arg(long, conflicts_with_all = ["file", "share_with_child"])]
    pub bar_zap: bool,
    /// Seconds to hold the pin before writing the file back (a pin older than a watcher).
    #[arg(long, default_value_t = 0)]
    pub hold: u64,
    /// With --file: hold the pin until this file exists (at most 5 minutes), then write back
    /// (a pin taken while a watcher is still starting, written back once it is ready).
    #[arg(long, requires = "file")]
    pub writeback_after: Option<PathBuf>,
    /// With --file: how many times to dirty and write back the pinned pages (each writeback
    /// cleans every pinned folio: a storm of pinned-folio-cleaned events where the pin is
    /// granted).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub writebacks: u32,
    /// PCI vendor id of the device to bind to vfio-pci.
    #[arg(long, default_value = "0x1234", value_parser = parse_hex_id)]
    pub vendor: u16,
    /// PCI device id of the device to bind to vfio-pci.
    #[arg(long, default_value = "0x11e8", value_parser = parse_hex_id)]
    pub device: u16,
}

pub fn run(args: &Args) -> Result<String> {
    let Ok(bdf) = pci_sysfs::find_device(args.vendor, args.device) else {
        return Ok(format!(
            "unavailable (no {:04x}:{:04x} device)",
            args.vendor, args.device
        ));
    };
    bind_vfio(&bdf)?;
    let container = open_container(&bdf)?;
    if args.bar_zap {
        return bar_zap(&container, &bdf);
    }
    let len = sys::pages_len(args.pages)?;
    let (file, map) = match &args.file {
        Some(path) if args.private => {
            map_private(path, len, args.large_folios).map(|(f, m)| (Some(f), m))?
        }
        Some(path) if args.large_folios => {
            map_large_folios(path, len).map(|(f, m)| (Some(f), m))?
        }
        Some(path) => sys::map_file(path, len).map(|(f, m)| (Some(f), m))?,
        None => (None, Mapping::anon(len)?),
    };
    if args.private {
        map.read_pages();
    } else {
        map.write_pages(0x76);
    }
    // Whether the kernel really read the file back in large folios.
    let large = if args.large_folios {
        format!(" in_large_folios={}", map.pages_in_large_folios()?)
    } else {
        String::new()
    };
    let sharing = if args.share_with_child {
        let (rx, tx) = process_vm::pipe()?;
        let child = process_vm::spawn_blocked_child(&rx, &tx)?;
        Some((child, tx))
    } else {
        None
    };
    let kind = match (&args.file, args.private, args.share_with_child) {
        (Some(_), true, _) => "private file",
        (Some(_), false, _) => "file",
        (None, _, true) => "anon shared with a child",
        (None, _, false) => "anon",
    };
    let flags = VFIO_DMA_MAP_FLAG_READ
        | if args.read_only {
            0
        } else {
            VFIO_DMA_MAP_FLAG_WRITE
        };
    if let Err(e) = map_dma(&container.fd, &map, flags) {
        let errno = e.raw_os_error().unwrap_or(0);
        ensure!(
            args.file.is_some() && errno == libc::EFAULT,
            "VFIO_IOMMU_MAP_DMA ({kind}): {e}"
        );
        return Ok(format!(
            "refused errno={errno} ({}) pinned_at={:.3}{large}",
            sys::errno_name(errno),
            unix_seconds()
        ));
    }
    let pinned_at = unix_seconds();
    if args.private {
        // Write faults on the pinned, read-only mapped pages: COW (6.1) or reuse (6.2+).
        map.write_pages(0x78);
    } else if file.is_some() {
        std::thread::sleep(std::time::Duration::from_secs(args.hold));
        if let Some(flag) = &args.writeback_after {
            wait_for(flag)?;
        }
        // Dirty the pinned pages again and write them back: writeback cleans pinned folios.
        for round in 0..args.writebacks {
            map.write_pages(0x77 ^ round as u8);
            // SAFETY: the range is exactly the live mapping owned by `map`.
            sys::cvt(unsafe { libc::msync(map.addr().cast(), map.len(), libc::MS_SYNC) })
                .context("msync")?;
        }
    }
    unmap_dma(&container.fd, map.len()).context("VFIO_IOMMU_UNMAP_DMA")?;
    if let Some((child, tx)) = sharing {
        process_vm::release_child(child, tx)?;
    }
    map.unmap()?;
    let writebacks = if file.is_some() && !args.private {
        format!(", {} writebacks", args.writebacks)
    } else {
        String::new()
    };
    Ok(format!(
        "ok mapped+unmapped {} pages for DMA ({kind}, {}{writebacks}) pinned_at={pinned_at:.3}{large}",
        args.pages,
        if args.read_only { "ro" } else { "rw" }
    ))
}

/// Wall-clock seconds: when the pin was granted, to compare with a watcher's readiness.
fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn wait_for(flag: &std::path::Path) -> Result<()> {
    for _ in 0..3000 {
        if flag.exists() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    anyhow::bail!("{} did not appear within 5 minutes", flag.display())
}

/// A file of `len` bytes written through write(2), synced and evicted from the page cache, then
/// mapped MAP_SHARED with MADV_HUGEPAGE: the kernel's fault-around readahead then reads it in
/// PMD-order folios (`do_sync_mmap_readahead`, VM_HUGEPAGE), where the filesystem allows.
fn map_large_folios(path: &Path, len: usize) -> Result<(File, Mapping)> {
    use std::os::fd::AsFd as _;
    let file = written_file(path, len, 0x4c)?;
    evict(&file, path)?;
    let map = Mapping::shared(file.as_fd(), len, 0)
        .with_context(|| format!("mmap MAP_SHARED {}", path.display()))?;
    map.madvise(libc::MADV_HUGEPAGE)
        .context("madvise(MADV_HUGEPAGE)")?;
    Ok((file, map))
}

/// A file of `len` bytes written through write(2), then mapped MAP_PRIVATE; with
/// `large_folios`, evicted and advised as [`map_large_folios`] does, so that the reads that fault
/// it in bring 2 MiB folios, and mapped off the PMD grid so that PTEs map them.
fn map_private(path: &Path, len: usize, large_folios: bool) -> Result<(File, Mapping)> {
    use std::os::fd::AsFd as _;
    let file = written_file(path, len, 0x70)?;
    if large_folios {
        evict(&file, path)?;
    }
    let map = if large_folios {
        let map = Mapping::private_off_pmd(file.as_fd(), len)?;
        map.madvise(libc::MADV_HUGEPAGE)
            .context("madvise(MADV_HUGEPAGE)")?;
        map
    } else {
        Mapping::private(file.as_fd(), len).context("mmap MAP_PRIVATE")?
    };
    Ok((file, map))
}

/// Writes `file` back and drops it from the page cache: the next access reads it again.
fn evict(file: &File, path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd as _;
    file.sync_all()
        .with_context(|| format!("fsync {}", path.display()))?;
    // SAFETY: fadvise on an open descriptor of ours; no memory is passed.
    let err = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    ensure!(
        err == 0,
        "posix_fadvise(DONTNEED) {}: errno {err}",
        path.display()
    );
    Ok(())
}

/// `path` created afresh with `len` bytes of `byte`, written through write(2).
fn written_file(path: &Path, len: usize, byte: u8) -> Result<File> {
    use std::io::Write as _;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    file.write_all(&vec![byte; len])
        .with_context(|| format!("write {}", path.display()))?;
    Ok(file)
}

/// Binds the device to vfio-pci through driver_override, unless it already is.
fn bind_vfio(bdf: &str) -> Result<()> {
    match pci_sysfs::current_driver(bdf).as_deref() {
        Some("vfio-pci") => return Ok(()),
        Some(_) => pci_sysfs::write_sysfs(&pci_sysfs::device_dir(bdf).join("driver/unbind"), bdf)?,
        None => {}
    }
    pci_sysfs::write_sysfs(
        &pci_sysfs::device_dir(bdf).join("driver_override"),
        "vfio-pci",
    )?;
    pci_sysfs::write_sysfs(Path::new("/sys/bus/pci/drivers_probe"), bdf)?;
    ensure!(
        pci_sysfs::current_driver(bdf).as_deref() == Some("vfio-pci"),
        "{bdf} did not bind to vfio-pci (is the vfio-pci module loaded?)"
    );
    Ok(())
}

/// The container, and the group that must stay open while anything is mapped.
struct Container {
    fd: File,
    group: File,
}

/// Maps BAR0, faults it in, disables memory decoding (vfio-pci zaps every BAR mapping), then
/// re-enables it and unmaps.
fn bar_zap(container: &Container, bdf: &str) -> Result<String> {
    let device = device_fd(container, bdf)?;
    let bar = region(&device, VFIO_PCI_BAR0_REGION_INDEX).context("BAR0 region info")?;
    let config = region(&device, VFIO_PCI_CONFIG_REGION_INDEX).context("config region info")?;
    let map = Mapping::map_at(
        std::os::fd::AsFd::as_fd(&device),
        4096,
        bar.offset as libc::off_t,
    )
    .context("mmap BAR0 through VFIO")?;
    let before = map.read_u32(0)?;
    let command = config_read_u16(&device, config.offset + PCI_COMMAND)?;
    config_write_u16(
        &device,
        config.offset + PCI_COMMAND,
        command & !PCI_COMMAND_MEMORY,
    )?;
    config_write_u16(
        &device,
        config.offset + PCI_COMMAND,
        command | PCI_COMMAND_MEMORY,
    )?;
    map.unmap()?;
    Ok(format!(
        "ok BAR0 mapped (read {before:#x}), zapped by memory-disable, unmapped"
    ))
}

/// The device's own descriptor (regions, config space), from its group.
fn device_fd(container: &Container, bdf: &str) -> Result<File> {
    let name = std::ffi::CString::new(bdf)?;
    let fd = ioctl(
        &container.group,
        VFIO_GROUP_GET_DEVICE_FD,
        name.as_ptr() as libc::c_ulong,
    )
    .context("VFIO_GROUP_GET_DEVICE_FD")?;
    // SAFETY: the ioctl just returned this descriptor and nothing else owns it.
    Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

pub(crate) fn region(device: &File, index: u32) -> io::Result<RegionInfo> {
    let mut info = RegionInfo {
        argsz: size_of::<RegionInfo>() as u32,
        index,
        ..RegionInfo::default()
    };
    ioctl(
        device,
        VFIO_DEVICE_GET_REGION_INFO,
        (&raw mut info) as libc::c_ulong,
    )?;
    Ok(info)
}

pub(crate) fn config_read_u16(device: &File, offset: u64) -> Result<u16> {
    use std::os::unix::fs::FileExt as _;
    let mut bytes = [0u8; 2];
    device
        .read_exact_at(&mut bytes, offset)
        .context("read PCI_COMMAND")?;
    Ok(u16::from_le_bytes(bytes))
}

pub(crate) fn config_write_u16(device: &File, offset: u64, value: u16) -> Result<()> {
    use std::os::unix::fs::FileExt as _;
    device
        .write_all_at(&value.to_le_bytes(), offset)
        .context("write PCI_COMMAND")
}

fn open_container(bdf: &str) -> Result<Container> {
    let group_link = std::fs::read_link(pci_sysfs::device_dir(bdf).join("iommu_group"))
        .with_context(|| format!("{bdf} has no IOMMU group (boot with intel_iommu=on)"))?;
    let group_id = group_link
        .file_name()
        .context("IOMMU group link without a name")?;
    let group_path = Path::new("/dev/vfio").join(group_id);
    let container = open_rw(Path::new("/dev/vfio/vfio"))?;
    let group = open_rw(&group_path)?;
    ensure!(
        ioctl(&container, VFIO_GET_API_VERSION, 0)? == VFIO_API_VERSION,
        "unexpected VFIO API version"
    );
    let mut status = GroupStatus {
        argsz: size_of::<GroupStatus>() as u32,
        flags: 0,
    };
    ioctl(
        &group,
        VFIO_GROUP_GET_STATUS,
        (&raw mut status) as libc::c_ulong,
    )
    .context("VFIO_GROUP_GET_STATUS")?;
    if status.flags & VFIO_GROUP_FLAGS_VIABLE == 0 {
        bail!(
            "IOMMU group {} is not viable (other devices not bound to vfio-pci)",
            group_path.display()
        );
    }
    let fd = container.as_raw_fd();
    ioctl(
        &group,
        VFIO_GROUP_SET_CONTAINER,
        (&raw const fd) as libc::c_ulong,
    )
    .context("VFIO_GROUP_SET_CONTAINER")?;
    ioctl(&container, VFIO_SET_IOMMU, VFIO_TYPE1V2_IOMMU)
        .context("VFIO_SET_IOMMU (without interrupt remapping, load vfio_iommu_type1 allow_unsafe_interrupts=1)")?;
    Ok(Container {
        fd: container,
        group,
    })
}

fn map_dma(container: &File, map: &Mapping, flags: u32) -> io::Result<()> {
    map_dma_range(container, map.addr(), map.len(), flags)
}

/// VFIO_IOMMU_MAP_DMA of `len` bytes at `addr` to [`IOVA`]: type1 long-term pins them
/// (`pin_user_pages_remote`) until the matching unmap.
fn map_dma_range(container: &File, addr: *mut u8, len: usize, flags: u32) -> io::Result<()> {
    let req = DmaMap {
        argsz: size_of::<DmaMap>() as u32,
        flags,
        vaddr: addr as u64,
        iova: IOVA,
        size: len as u64,
    };
    ioctl(
        container,
        VFIO_IOMMU_MAP_DMA,
        (&raw const req) as libc::c_ulong,
    )
    .map(drop)
}

fn unmap_dma(container: &File, len: usize) -> io::Result<()> {
    let mut req = DmaUnmap {
        argsz: size_of::<DmaUnmap>() as u32,
        flags: 0,
        iova: IOVA,
        size: len as u64,
    };
    ioctl(
        container,
        VFIO_IOMMU_UNMAP_DMA,
        (&raw mut req) as libc::c_ulong,
    )
    .map(drop)
}

/// A device bound to vfio-pci in a type1 container: what another workload needs to pin memory
/// for it (`discard`) and to drive it.
pub(crate) struct Session {
    bdf: String,
    container: Container,
}

impl Session {
    /// Binds the `vendor:device` PCI device to vfio-pci and sets up its container; `None` when
    /// there is no such device.
    pub(crate) fn open(vendor: u16, device: u16) -> Result<Option<Self>> {
        let Ok(bdf) = pci_sysfs::find_device(vendor, device) else {
            return Ok(None);
        };
        bind_vfio(&bdf)?;
        let container = open_container(&bdf)?;
        Ok(Some(Self { bdf, container }))
    }

    /// Maps `len` bytes at `addr` for device reads and writes at [`IOVA`] (a long-term,
    /// writable pin). The error is the kernel's: a refusal is a result.
    pub(crate) fn map_dma(&self, addr: *mut u8, len: usize) -> io::Result<()> {
        let flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
        map_dma_range(&self.container.fd, addr, len, flags)
    }

    /// Unmaps (and unpins) the `len` bytes mapped at [`IOVA`].
    pub(crate) fn unmap_dma(&self, len: usize) -> io::Result<()> {
        unmap_dma(&self.container.fd, len)
    }

    /// The device's own descriptor: its regions (BARs, config space).
    pub(crate) fn device(&self) -> Result<File> {
        device_fd(&self.container, &self.bdf)
    }
}

fn open_rw(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))
}

fn ioctl(file: &File, request: libc::c_ulong, arg: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: every caller passes either an integer argument or a pointer to a live, correctly
    // sized #[repr(C)] struct that the request expects.
    sys::cvt(unsafe { libc::ioctl(file.as_raw_fd(), request, arg) })
}
