//! `pinwatch pins`: who holds how many pinned pages now, by process and pinner, read from
//! /proc without eBPF, so pins taken before pinwatch started are seen too. `pinwatch run` takes
//! the same inventory for its `pinwatch_procfs_pinned_pages` gauge.

pub mod fd_kind;
pub mod fdinfo;
pub mod inventory;
pub mod render;
pub mod scan;
pub mod status;
#[cfg(test)]
mod test_ring;

use std::path::Path;

use serde::Serialize;

use crate::exit;
use inventory::{PinnerTotal, ProcessPins, Unreadable};

/// What /proc cannot show, said in every report.
pub const CANNOT_SEE: &[&str] = &[
    "when a pin was taken: the kernel does not record it; ages are the holding process's age, an upper bound if it pinned",
    "which pages VmPin and VmLck stand for: they are charges (VFIO's locked_vm is mixed with mlock), exact only for io_uring",
    "short-term pins (O_DIRECT, process_vm_readv), pins held by the kernel itself, and pins charged to a user rather than a process (iommufd)",
    "pages pinned by drivers that charge nothing (udmabuf, some GPU drivers): `pinwatch run` sees them as they are pinned",
];

/// The inventory as `pinwatch pins --json` prints it.
#[derive(Debug, Serialize)]
pub struct Inventory {
    /// The JSON's version ([`crate::findings::SCHEMA`]).
    pub schema: u32,
    pub kernel: String,
    /// Unix time of the read.
    pub taken_at_unix: f64,
    pub page_size: u64,
    /// Every process's fds were read and every ring listed.
    pub complete: bool,
    pub processes: Vec<ProcessPins>,
    pub pinners: Vec<PinnerTotal>,
    /// Rings whose buffers stayed unlisted (the ring's lock was busy on every try).
    pub rings_busy: usize,
    pub unreadable: Vec<Unreadable>,
    pub cannot_see: &'static [&'static str],
}

/// Reads the inventory from `proc` (normally `/proc`).
pub fn take(proc: &Path) -> Result<Inventory, scan::ScanError> {
    let (facts, clock) = scan::scan(proc)?;
    let (processes, unreadable) = inventory::build(facts, &clock);
    let rings_busy = processes
        .iter()
        .flat_map(|p| &p.holdings)
        .flat_map(|h| &h.rings)
        .filter(|r| !r.complete)
        .count();
    Ok(Inventory {
        schema: crate::findings::SCHEMA,
        kernel: crate::kernel::release(),
        taken_at_unix: clock.now_unix,
        page_size: clock.page_size,
        complete: unreadable.is_empty() && rings_busy == 0,
        pinners: inventory::totals(&processes),
        processes,
        rings_busy,
        unreadable,
        cannot_see: CANNOT_SEE,
    })
}

/// `pinwatch pins`: the inventory and its exit code (incomplete when something was unreadable).
pub fn run() -> Result<(Inventory, u8), scan::ScanError> {
    let inv = take(Path::new("/proc"))?;
    let code = if inv.complete {
        exit::OK
    } else {
        exit::INCOMPLETE
    };
    Ok((inv, code))
}
