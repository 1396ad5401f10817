//! The inventory built from samples of /proc: holdings per process and pinner, totals, and
//! rings shared by several processes.

use super::*;
use crate::pins::fdinfo::Buffer;

const PAGE: u64 = 4096;

fn ring(ino: u64, pages: u64) -> Ring {
    Ring {
        ino: Some(ino),
        slots: 1,
        listed: 1,
        buffers: vec![Buffer {
            index: 0,
            addr: 0x7f00_0000_0000,
            len: pages * PAGE,
        }],
    }
}

fn process(tgid: u32, vm_pin: u64, vm_lck: u64, fds: Result<Vec<FdFact>, String>) -> ProcessFacts {
    ProcessFacts {
        tgid,
        start_ticks: 500,
        status: Status {
            name: format!("p{tgid}"),
            vm_pin_pages: Some(vm_pin),
            vm_lck_pages: Some(vm_lck),
        },
        fds,
    }
}

fn io_uring_fd(fd: u32, ring: Option<Ring>) -> FdFact {
    FdFact {
        fd,
        kind: FdKind::IoUring,
        ring,
    }
}

const CLOCK: Clock = Clock {
    boot_unix: 1_000_000,
    ticks_per_second: 100,
    now_unix: 1_000_105.0,
    page_size: PAGE,
};

#[test]
fn io_uring_buffers_are_exact_and_aged_by_their_process() {
    let facts = process(7, 37, 0, Ok(vec![io_uring_fd(3, Some(ring(11, 37)))]));
    let (procs, unreadable) = build(vec![facts], &CLOCK);
    assert!(unreadable.is_empty());
    let h = &procs[0].holdings;
    assert_eq!(
        h.len(),
        1,
        "VmPin is io_uring's own charge: not a second holding"
    );
    assert_eq!(
        (h[0].pinner, h[0].source, h[0].pages, h[0].exact),
        (Pinner::IoUring, Source::Fdinfo, 37, true)
    );
    // Started 5 s after boot, read 105 s after boot: at most 100 s old.
    assert_eq!(h[0].age_at_most_seconds, 100.0);
    assert_eq!(procs[0].started_at_unix, 1_000_005.0);
}

#[test]
fn a_busy_ring_makes_the_holding_inexact() {
    let facts = process(7, 37, 0, Ok(vec![io_uring_fd(3, None)]));
    let (procs, _) = build(vec![facts], &CLOCK);
    let h = &procs[0].holdings[0];
    assert!(!h.exact);
    assert!(!h.rings[0].complete);
}

#[test]
fn vfio_is_bounded_by_vm_lck_and_mlock_alone_is_not_listed() {
    let vfio = FdFact {
        fd: 4,
        kind: FdKind::Vfio,
        ring: None,
    };
    let (procs, _) = build(
        vec![
            process(8, 0, 256, Ok(vec![vfio])),
            process(9, 0, 64, Ok(vec![])),
        ],
        &CLOCK,
    );
    assert_eq!(
        procs.len(),
        1,
        "a process that only mlock()s holds no DMA pin"
    );
    let h = &procs[0].holdings[0];
    assert_eq!(
        (h.pinner, h.source, h.pages, h.exact),
        (Pinner::Vfio, Source::VmLck, 256, false)
    );
}

#[test]
fn unreadable_processes_are_named_and_their_vm_pin_kept() {
    let denied = || Err("permission denied".to_owned());
    let (procs, unreadable) = build(
        vec![process(10, 12, 0, denied()), process(11, 0, 0, denied())],
        &CLOCK,
    );
    assert_eq!(unreadable.len(), 2);
    assert_eq!(procs.len(), 1);
    let h = &procs[0].holdings[0];
    assert_eq!(
        (h.pinner, h.source, h.pages),
        (Pinner::Unknown, Source::VmPin, 12)
    );
}

#[test]
fn a_ring_shared_by_two_processes_is_counted_once() {
    let facts = vec![
        process(20, 37, 0, Ok(vec![io_uring_fd(3, Some(ring(11, 37)))])),
        process(21, 0, 0, Ok(vec![io_uring_fd(5, Some(ring(11, 37)))])),
        process(22, 5, 0, Ok(vec![io_uring_fd(3, Some(ring(12, 5)))])),
    ];
    let (procs, _) = build(facts, &CLOCK);
    assert_eq!(procs.len(), 3);
    let t = totals(&procs);
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].pages, t[0].processes, t[0].exact), (42, 3, true));
}

#[test]
fn vm_pin_without_a_known_pinner_fd_is_unknown() {
    let (procs, _) = build(vec![process(30, 9, 0, Ok(vec![]))], &CLOCK);
    let h = &procs[0].holdings[0];
    assert_eq!(
        (h.pinner, h.source, h.pages),
        (Pinner::Unknown, Source::VmPin, 9)
    );
    let rdma = FdFact {
        fd: 6,
        kind: FdKind::Rdma,
        ring: None,
    };
    let (procs, _) = build(vec![process(31, 9, 0, Ok(vec![rdma]))], &CLOCK);
    assert_eq!(procs[0].holdings[0].pinner, Pinner::Rdma);
}
