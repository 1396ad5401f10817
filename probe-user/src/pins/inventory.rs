//! The inventory: what each process holds pinned now, by pinner, built from facts read from
//! /proc (pure: `scan.rs` reads, this decides). Every number says where it came from and
//! whether it is exact or only a charge that bounds it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{fd_kind::FdKind, fdinfo::Ring, status::Status};
use crate::{pinner::Pinner, text::UserText};

/// Where a page count comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// io_uring's registered buffers listed in fdinfo: exact pages.
    Fdinfo,
    /// `VmPin` (mm->pinned_vm): pages a pinner charged, not which.
    VmPin,
    /// `VmLck` (mm->locked_vm): VFIO's charge mixed with mlock.
    VmLck,
}

impl Source {
    /// The id, as in JSON and metric labels.
    pub fn id(self) -> &'static str {
        match self {
            Source::Fdinfo => "fdinfo",
            Source::VmPin => "vm_pin",
            Source::VmLck => "vm_lck",
        }
    }
}

/// One fd's facts: what it is and, for a ring, its buffer table (`None`: stayed busy).
#[derive(Debug, Clone)]
pub struct FdFact {
    pub fd: u32,
    pub kind: FdKind,
    pub ring: Option<Ring>,
}

/// One process as read from /proc; `fds` is `Err(reason)` when its fds could not be read.
#[derive(Debug, Clone)]
pub struct ProcessFacts {
    pub tgid: u32,
    pub start_ticks: u64,
    pub status: Status,
    pub fds: Result<Vec<FdFact>, String>,
}

/// How to turn ticks and pages into seconds and sizes.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Unix time of boot (`btime` in /proc/stat).
    pub boot_unix: u64,
    /// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
    pub ticks_per_second: u64,
    /// Unix time of the read.
    pub now_unix: f64,
    pub page_size: u64,
}

/// One ring held by a process.
#[derive(Debug, Clone, Serialize)]
pub struct RingView {
    pub fd: u32,
    pub ino: Option<u64>,
    pub buffers: usize,
    pub pages: u64,
    /// Every buffer slot was listed; false when the ring stayed busy (its lock taken).
    pub complete: bool,
}

/// Pages one pinner holds in one process.
#[derive(Debug, Clone, Serialize)]
pub struct Holding {
    pub pinner: Pinner,
    pub source: Source,
    pub pages: u64,
    /// Exactly these pages are pinned; false: a charge that bounds them from above.
    pub exact: bool,
    /// The pin is at most this old, if this process took it (the process's age); the kernel
    /// does not record when a pin was taken.
    pub age_at_most_seconds: f64,
    pub note: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rings: Vec<RingView>,
}

/// A process holding pins.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessPins {
    pub tgid: u32,
    pub comm: UserText,
    /// Start time in clock ticks after boot: with the tgid, the process's identity.
    pub start_ticks: u64,
    pub started_at_unix: f64,
    pub vm_pin_pages: Option<u64>,
    pub vm_lck_pages: Option<u64>,
    pub holdings: Vec<Holding>,
}

/// Pages by pinner and source over every process (a ring held by several processes counted once).
#[derive(Debug, Clone, Serialize)]
pub struct PinnerTotal {
    pub pinner: Pinner,
    pub source: Source,
    pub pages: u64,
    pub processes: usize,
    pub exact: bool,
}

/// A process whose fds could not be read: its io_uring and VFIO pins are not listed.
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    pub tgid: u32,
    pub comm: UserText,
    pub reason: String,
}

const RING_NOTE: &str = "io_uring registered buffers listed in fdinfo";
const BUSY_NOTE: &str =
    "io_uring registered buffers; a ring stayed busy, its buffers are not all listed";
const VFIO_NOTE: &str =
    "VmLck: VFIO type1 charges its DMA mappings to locked_vm, which mlock() also counts";
const IOMMUFD_NOTE: &str =
    "iommufd: pages are charged to the user, not the process; VmLck shown as a bound only";
const RDMA_NOTE: &str = "VmPin: RDMA registrations charge pinned_vm, which io_uring also charges";
const UNKNOWN_NOTE: &str = "VmPin with no io_uring or RDMA fd: charged by a ring created here and passed away, or a pinner pinwatch does not know";
const UNREADABLE_NOTE: &str = "VmPin of a process whose fds could not be read: pinner unknown";

/// A process's holdings, from its facts.
pub fn holdings(facts: &ProcessFacts, age: f64, page_size: u64) -> Vec<Holding> {
    let hold = |pinner, source, pages, exact, note| Holding {
        pinner,
        source,
        pages,
        exact,
        age_at_most_seconds: age,
        note,
        rings: Vec::new(),
    };
    let vm_pin = facts.status.vm_pin_pages.unwrap_or(0);
    let vm_lck = facts.status.vm_lck_pages.unwrap_or(0);
    let fds = match &facts.fds {
        Ok(fds) => fds,
        Err(_) if vm_pin > 0 => {
            return vec![hold(
                Pinner::Unknown,
                Source::VmPin,
                vm_pin,
                false,
                UNREADABLE_NOTE,
            )];
        }
        Err(_) => return Vec::new(),
    };
    let has = |kind: FdKind| fds.iter().any(|f| f.kind == kind);
    let mut out: Vec<Holding> = ring_holding(fds, page_size)
        .into_iter()
        .map(|h| Holding {
            age_at_most_seconds: age,
            ..h
        })
        .collect();
    if vm_lck > 0 && has(FdKind::Vfio) {
        out.push(hold(Pinner::Vfio, Source::VmLck, vm_lck, false, VFIO_NOTE));
    } else if vm_lck > 0 && has(FdKind::Iommufd) {
        out.push(hold(
            Pinner::Vfio,
            Source::VmLck,
            vm_lck,
            false,
            IOMMUFD_NOTE,
        ));
    }
    if vm_pin > 0 && has(FdKind::Rdma) {
        out.push(hold(Pinner::Rdma, Source::VmPin, vm_pin, false, RDMA_NOTE));
    } else if vm_pin > 0 && !has(FdKind::IoUring) {
        out.push(hold(
            Pinner::Unknown,
            Source::VmPin,
            vm_pin,
            false,
            UNKNOWN_NOTE,
        ));
    }
    out
}

/// The io_uring holding: its rings' buffers; `None` when no ring holds any (and none was busy).
fn ring_holding(fds: &[FdFact], page_size: u64) -> Option<Holding> {
    let rings = ring_views(fds, page_size);
    if !rings.iter().any(|r| r.pages > 0 || !r.complete) {
        return None;
    }
    let complete = rings.iter().all(|r| r.complete);
    Some(Holding {
        pinner: Pinner::IoUring,
        source: Source::Fdinfo,
        pages: rings.iter().map(|r| r.pages).sum(),
        exact: complete,
        age_at_most_seconds: 0.0,
        note: if complete { RING_NOTE } else { BUSY_NOTE },
        rings,
    })
}

fn ring_views(fds: &[FdFact], page_size: u64) -> Vec<RingView> {
    fds.iter()
        .filter(|f| f.kind == FdKind::IoUring)
        .map(|f| match &f.ring {
            Some(ring) => RingView {
                fd: f.fd,
                ino: ring.ino,
                buffers: ring.buffers.len(),
                pages: ring.pages(page_size),
                complete: ring.complete(),
            },
            None => RingView {
                fd: f.fd,
                ino: None,
                buffers: 0,
                pages: 0,
                complete: false,
            },
        })
        .collect()
}

/// The processes that hold pins, and those whose fds could not be read.
pub fn build(facts: Vec<ProcessFacts>, clock: &Clock) -> (Vec<ProcessPins>, Vec<Unreadable>) {
    let mut processes = Vec::new();
    let mut unreadable = Vec::new();
    for f in facts {
        let started =
            clock.boot_unix as f64 + f.start_ticks as f64 / clock.ticks_per_second.max(1) as f64;
        let age = (clock.now_unix - started).max(0.0);
        let comm = UserText::from(f.status.name.as_str());
        if let Err(reason) = &f.fds {
            unreadable.push(Unreadable {
                tgid: f.tgid,
                comm: comm.clone(),
                reason: reason.clone(),
            });
        }
        let holdings = holdings(&f, age, clock.page_size);
        if holdings.is_empty() {
            continue;
        }
        processes.push(ProcessPins {
            tgid: f.tgid,
            comm,
            start_ticks: f.start_ticks,
            started_at_unix: started,
            vm_pin_pages: f.status.vm_pin_pages,
            vm_lck_pages: f.status.vm_lck_pages,
            holdings,
        });
    }
    (processes, unreadable)
}

/// Totals by (pinner, source). A ring is counted once however many processes hold it (fork,
/// SCM_RIGHTS); charges are per mm, so per process.
pub fn totals(processes: &[ProcessPins]) -> Vec<PinnerTotal> {
    let mut by: BTreeMap<(Pinner, Source), PinnerTotal> = BTreeMap::new();
    let mut rings_seen = std::collections::BTreeSet::new();
    for p in processes {
        for h in &p.holdings {
            let total = by.entry((h.pinner, h.source)).or_insert(PinnerTotal {
                pinner: h.pinner,
                source: h.source,
                pages: 0,
                processes: 0,
                exact: true,
            });
            total.processes += 1;
            total.exact &= h.exact;
            if h.rings.is_empty() {
                total.pages += h.pages;
            }
            for r in &h.rings {
                if r.ino.is_none_or(|ino| rings_seen.insert(ino)) {
                    total.pages += r.pages;
                }
            }
        }
    }
    by.into_values().collect()
}

#[cfg(test)]
mod tests;
