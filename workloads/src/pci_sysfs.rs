//! sysfs PCI BAR mapping revoked by a driver bind: the probe's
//! request_region calls revoke_iomem, which zaps our user mapping through
//! unmap_mapping_range on the iomem address_space.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

use crate::sys::Mapping;

const PCI_DEVICES: &str = "/sys/bus/pci/devices";
const PCI_DRIVERS: &str = "/sys/bus/pci/drivers";

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// PCI vendor id (hex, as in sysfs).
    #[arg(long, default_value = "0x1af4", value_parser = parse_hex_id)]
    pub vendor: u16,
    /// PCI device id (hex, as in sysfs).
    #[arg(long, default_value = "0x1044", value_parser = parse_hex_id)]
    pub device: u16,
    /// BAR number: maps /sys/bus/pci/devices/<bdf>/resource<bar>.
    #[arg(long, default_value_t = 4)]
    pub bar: u8,
    /// Bytes to map (explicit: lseek(SEEK_END) on resource files may be 0).
    #[arg(long, default_value_t = 16384)]
    pub size: usize,
    /// Driver to bind afterwards if the device had none at start.
    #[arg(long, default_value = "virtio-pci")]
    pub driver: String,
}

/// Parses a sysfs id file such as "0x1af4\n" (the 0x prefix is optional).
pub fn parse_hex_id(text: &str) -> Result<u16> {
    let trimmed = text.trim();
    let digits = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed);
    u16::from_str_radix(digits, 16).with_context(|| format!("bad hex PCI id {trimmed:?}"))
}

pub fn run(args: &Args) -> Result<String> {
    let bdf = find_device(args.vendor, args.device)?;
    // Checked before unbinding so a device without this BAR is left alone.
    let resource = device_dir(&bdf).join(format!("resource{}", args.bar));
    ensure!(resource.exists(), "{} does not exist", resource.display());
    let bound = current_driver(&bdf);
    if bound.is_some() {
        write_sysfs(&device_dir(&bdf).join("driver/unbind"), &bdf)?;
    }
    let driver = bound.unwrap_or_else(|| args.driver.clone());
    let mapped = map_bar(&resource, args.size);
    // Rebind even if mapping failed, so a failed run leaves the device usable.
    let (file, map) = first_error(mapped, bind(&bdf, &driver))?;
    map.unmap().context("munmap BAR after rebind")?;
    drop(file);
    Ok(format!(
        "ok mapped, rebound {driver}, unmapped ({bdf} bar{})",
        args.bar
    ))
}

pub(crate) fn device_dir(bdf: &str) -> PathBuf {
    Path::new(PCI_DEVICES).join(bdf)
}

/// BDF (directory name) of the first device whose vendor/device ids match.
pub(crate) fn find_device(vendor: u16, device: u16) -> Result<String> {
    let entries = fs::read_dir(PCI_DEVICES).with_context(|| format!("read_dir {PCI_DEVICES}"))?;
    for entry in entries {
        let dir = entry
            .with_context(|| format!("read_dir {PCI_DEVICES}"))?
            .path();
        if read_id(&dir.join("vendor"))? == vendor && read_id(&dir.join("device"))? == device {
            let name = dir.file_name().context("device dir without a name")?;
            return Ok(name.to_string_lossy().into_owned());
        }
    }
    bail!("no PCI device {vendor:04x}:{device:04x} under {PCI_DEVICES}")
}

fn read_id(path: &Path) -> Result<u16> {
    let text = fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    parse_hex_id(&text).with_context(|| format!("parse {}", path.display()))
}

/// Name of the bound driver: basename of the `driver` symlink, if any.
pub(crate) fn current_driver(bdf: &str) -> Option<String> {
    let target = fs::read_link(device_dir(bdf).join("driver")).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// Maps the BAR and reads one register so the PTE is really populated.
fn map_bar(path: &Path, size: usize) -> Result<(File, Mapping)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_SYNC)
        .open(path)
        .with_context(|| format!("open {} O_RDWR|O_SYNC", path.display()))?;
    let map = Mapping::shared(file.as_fd(), size, 0)
        .with_context(|| format!("mmap {size} bytes of {}", path.display()))?;
    std::hint::black_box(map.read_u32(0)?);
    Ok((file, map))
}

/// The mapping result, unless it or the rebind failed; keeps both messages
/// when both failed.
fn first_error<T>(mapped: Result<T>, rebound: Result<()>) -> Result<T> {
    match (mapped, rebound) {
        (Ok(value), Ok(())) => Ok(value),
        (Ok(_), Err(err)) | (Err(err), Ok(())) => Err(err),
        (Err(err), Err(bind)) => Err(err.context(format!("and the rebind failed too: {bind:#}"))),
    }
}

fn bind(bdf: &str, driver: &str) -> Result<()> {
    let path = Path::new(PCI_DRIVERS).join(driver).join("bind");
    if !path.exists() {
        bail!(
            "cannot rebind {bdf}: {} does not exist (driver not loaded?)",
            path.display()
        );
    }
    write_sysfs(&path, bdf)
}

/// sysfs attribute writes must be a single write(); fs::write does one for
/// short strings.
pub(crate) fn write_sysfs(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).with_context(|| format!("write {value:?} to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sysfs_ids() {
        assert_eq!(parse_hex_id("0x1af4\n").unwrap(), 0x1af4);
        assert_eq!(parse_hex_id("1044").unwrap(), 0x1044);
        assert_eq!(parse_hex_id("0XFFFF").unwrap(), 0xffff);
        assert!(parse_hex_id("0x").is_err());
        assert!(parse_hex_id("0x10000").is_err());
        assert!(parse_hex_id("virtio").is_err());
    }
}
