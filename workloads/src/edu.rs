//! QEMU's `edu` device (1234:11e8) as a DMA engine, driven through VFIO: it copies up to one
//! page between guest memory, addressed by IOVA through the IOMMU, and its own 4 KiB buffer.
//! That is a real device reading and writing the pages a VFIO pin holds, so a workload can show
//! what the device sees after the process's mapping changed under the pin.
//!
//! Registers (QEMU `hw/misc/edu.c`): 0x00 identification (`0x010000ed`), 0x80 DMA source, 0x88
//! destination, 0x90 count, 0x98 command (bit 0 starts the transfer and reads 1 until it is
//! done; bit 1 set is buffer → RAM, clear is RAM → buffer). The buffer sits at device address
//! 0x40000. A transfer runs off a 100 ms timer of the machine's virtual clock. DMA needs bus
//! mastering, which vfio-pci leaves off until user space sets it.
//!
//! A transfer must end before the buffer's last byte: QEMU 10.0's range check (an older
//! `edu_check_range`) refuses one that reaches it, 0x40000 + 4096 included, with `hw_error`,
//! which aborts the whole machine. So a page moves in two halves through the buffer's first
//! half.

use std::fs::File;
use std::os::fd::AsFd as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};

use crate::sys::{Mapping, PAGE_SIZE};
use crate::vfio::{self, Session};

pub(crate) const VENDOR: u16 = 0x1234;
pub(crate) const DEVICE: u16 = 0x11e8;
const REG_ID: usize = 0x00;
/// What REG_ID reads on an edu device: major 1, minor 0, magic 0xed.
const ID: u32 = 0x0100_00ed;
const REG_DMA_SRC: usize = 0x80;
const REG_DMA_DST: usize = 0x88;
const REG_DMA_COUNT: usize = 0x90;
const REG_DMA_CMD: usize = 0x98;
const DMA_RUN: u32 = 0x1;
const DMA_TO_RAM: u32 = 0x2;
/// The device's own buffer (4 KiB), in its DMA address space.
const BUFFER: u32 = 0x4_0000;
/// Bytes per transfer: half a page, so that no transfer reaches the buffer's last byte.
const CHUNK: u32 = PAGE_SIZE as u32 / 2;
/// A transfer takes one 100 ms tick of the virtual clock; TCG may run it late.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The device's descriptor and its BAR0 (registers) mapped through VFIO. The mapping goes
/// before the descriptor.
pub(crate) struct Edu {
    regs: Mapping,
    _device: File,
}

impl Edu {
    /// Maps BAR0 of the session's device, checks it is an edu, and turns bus mastering on.
    pub(crate) fn open(session: &Session) -> Result<Self> {
        let device = session.device()?;
        let bar =
            vfio::region(&device, vfio::VFIO_PCI_BAR0_REGION_INDEX).context("BAR0 region info")?;
        let config = vfio::region(&device, vfio::VFIO_PCI_CONFIG_REGION_INDEX)
            .context("config region info")?;
        let regs = Mapping::map_at(device.as_fd(), PAGE_SIZE, bar.offset as libc::off_t)
            .context("mmap BAR0 through VFIO")?;
        let id = regs.read_u32(REG_ID)?;
        ensure!(id == ID, "not an edu device: identification {id:#x}");
        let at = config.offset + vfio::PCI_COMMAND;
        let command = vfio::config_read_u16(&device, at)?;
        vfio::config_write_u16(&device, at, command | vfio::PCI_COMMAND_MASTER)?;
        Ok(Self {
            regs,
            _device: device,
        })
    }

    /// Copies one page from `from` to `to` (IOVAs) through the device's buffer: device reads
    /// of `from`, then device writes of `to`, half a page at a time.
    pub(crate) fn copy_page(&self, from: u64, to: u64) -> Result<()> {
        for half in [0, CHUNK] {
            let (from, to) = (
                iova32(from + u64::from(half))?,
                iova32(to + u64::from(half))?,
            );
            self.transfer(from, BUFFER, 0)
                .context("edu DMA RAM -> device")?;
            self.transfer(BUFFER, to, DMA_TO_RAM)
                .context("edu DMA device -> RAM")?;
        }
        Ok(())
    }

    fn transfer(&self, src: u32, dst: u32, direction: u32) -> Result<()> {
        self.regs.write_u32(REG_DMA_SRC, src)?;
        self.regs.write_u32(REG_DMA_DST, dst)?;
        self.regs.write_u32(REG_DMA_COUNT, CHUNK)?;
        self.regs.write_u32(REG_DMA_CMD, DMA_RUN | direction)?;
        let start = Instant::now();
        while self.regs.read_u32(REG_DMA_CMD)? & DMA_RUN != 0 {
            if start.elapsed() > TIMEOUT {
                bail!("transfer {src:#x} -> {dst:#x} not done after {TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

/// The device's registers take 32-bit addresses (it masks DMA to 28 bits).
fn iova32(iova: u64) -> Result<u32> {
    u32::try_from(iova)
        .ok()
        .filter(|a| a & 0xf000_0000 == 0)
        .with_context(|| format!("IOVA {iova:#x} beyond the edu device's 28-bit DMA mask"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iovas_within_the_dma_mask() {
        assert_eq!(iova32(vfio::IOVA).unwrap(), 0x10_0000);
        assert!(iova32(1 << 28).is_err());
        assert!(iova32(1 << 32).is_err());
    }
}
