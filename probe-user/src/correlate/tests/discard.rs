//! `pinned-page-discarded` and `guest-memfd-pin`: discards attributed to the live pin that holds
//! the page, silence where no pin holds it any more, and guest_memfd pins told apart by their
//! filesystem.

use super::*;
use crate::{discard_call::DiscardCall, events::Madvise, findings::GUEST_MEMFD_MAGIC};

use Hazard::{GuestMemfdPin as GMP, PinnedPageDiscarded as PPD};

const FALLOCATE_PUNCH: Syscall = Syscall {
    nr: 285,
    user_ip: 0x4000,
    user_sp: 0x7ff0,
    args: [5, 0x3, 0],
};

/// A pin of 16 pages of a memfd (tmpfs, MAP_SHARED) at page-cache index 0 by process 42.
fn memfd_pin(at: u64) -> Event {
    pin(PinSpec {
        magic: Some(TMPFS),
        ..spec(at)
    })
}

/// Page-cache folio `index` of the pinned file (dev 1, ino 12), removed by `by` in `syscall`.
fn removed(at: u64, by: Task, index: u64, syscall: Syscall) -> Event {
    Event::PageCacheDiscard(PinnedFolio {
        at_ns: at * MS,
        task: by,
        syscall,
        stack_id: None,
        file: Some(FileId {
            dev: 1,
            ino: 12,
            fs_magic: TMPFS,
        }),
        index,
        large: false,
        pages: Some(1),
        refcount: 1026,
        pincount: 0,
    })
}

fn dontneed(at: u64, start: u64, pages: u64) -> Event {
    Event::MadviseDiscard(Madvise {
        at_ns: at * MS,
        task: task(42, 1),
        syscall: Syscall {
            nr: 28,
            args: [start, pages << 12, 4],
            ..Syscall::default()
        },
        start,
        len: pages << 12,
        behavior: 4,
    })
}

fn discards(events: Vec<Event>) -> (Vec<Finding>, Stats) {
    let (findings, summary) = fed(events).finish();
    let discarded = findings
        .into_iter()
        .filter(|f| f.hazard == PPD || f.hazard == GMP)
        .collect();
    (discarded, summary.stats)
}

#[test]
fn a_punch_under_a_live_pin_is_attributed_to_it_and_merged() {
    let punches = (0..8).map(|i| removed(20 + i, task(42, 1), 4 + i, FALLOCATE_PUNCH));
    let (found, _) = discards(std::iter::once(memfd_pin(10)).chain(punches).collect());
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(
        (f.outcome, f.pages, f.pinner),
        (Attributed, 8, Some(Pinner::Vfio))
    );
    assert_eq!(
        f.cause,
        Cause::Discard {
            call: DiscardCall::PunchHole
        }
    );
    assert_eq!(f.mapping.as_ref().map(|m| m.fs), Some("tmpfs"));
}

#[test]
fn another_process_truncating_a_pinned_file_is_reported_for_the_pinner() {
    let truncate = Syscall {
        nr: 77,
        ..Syscall::default()
    };
    let (found, _) = discards(vec![memfd_pin(10), removed(20, task(7, 5), 15, truncate)]);
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].process.tgid, found[0].outcome), (42, Attributed));
}

#[test]
fn discards_outside_the_pin_or_after_its_release_are_not_attributed() {
    let (found, _) = discards(vec![
        memfd_pin(10),
        // Index 16 is past the 16 pinned pages: whatever holds it, not this pin.
        removed(20, task(42, 1), 16, FALLOCATE_PUNCH),
        unpin(30, task(42, 1), call(2), 16),
        removed(40, task(42, 1), 3, FALLOCATE_PUNCH),
    ]);
    assert_eq!(found.len(), 1, "merged: both unattributed {found:?}");
    assert_eq!((found[0].outcome, found[0].pages), (Unattributed, 2));
    assert_eq!(found[0].pinner, None);
}

#[test]
fn the_last_close_of_an_unlinked_pinned_file_is_counted_not_reported() {
    let exit = Syscall {
        nr: 231,
        ..Syscall::default()
    };
    let (found, stats) = discards(vec![memfd_pin(10), removed(20, task(42, 1), 3, exit)]);
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(stats.discards_at_last_close, 1);
}

#[test]
fn dontneed_discards_only_the_pinned_private_pages_it_covers() {
    let private = |at| {
        pin(PinSpec {
            magic: None,
            vm_flags: PRIVATE,
            ..spec(at)
        })
    };
    let cases: Vec<(&str, Vec<Event>, Vec<u64>)> = vec![
        (
            "4 pages inside the 16 pinned",
            vec![private(10), dontneed(20, 0x7000_2000, 4)],
            vec![4],
        ),
        (
            "a range overlapping the pin's end: 2 pinned pages of 8",
            vec![private(10), dontneed(20, 0x7000_e000, 8)],
            vec![2],
        ),
        (
            "outside the pinned range",
            vec![private(10), dontneed(20, 0x7001_0000, 8)],
            vec![],
        ),
        (
            "a shared mapping only loses its page tables",
            vec![memfd_pin(10), dontneed(20, 0x7000_0000, 16)],
            vec![],
        ),
        (
            "after the pin was released",
            vec![
                private(10),
                unpin(15, task(42, 1), call(2), 16),
                dontneed(20, 0x7000_0000, 16),
            ],
            vec![],
        ),
    ];
    for (name, events, want) in cases {
        let (found, _) = discards(events);
        let pages: Vec<u64> = found.iter().map(|f| f.pages).collect();
        assert_eq!(pages, want, "{name}");
        assert!(found.iter().all(|f| f.outcome == Attributed), "{name}");
    }
}

#[test]
fn guest_memfd_pins_are_told_apart_by_their_filesystem() {
    let gmem = pin(PinSpec {
        magic: Some(GUEST_MEMFD_MAGIC),
        ..spec(10)
    });
    let (found, _) = discards(vec![gmem, memfd_pin(20)]);
    assert_eq!(found.len(), 1, "the memfd pin is not one: {found:?}");
    let f = &found[0];
    assert_eq!((f.hazard, f.outcome, f.pages), (GMP, Granted, 16));
    assert_eq!(f.mapping.as_ref().map(|m| m.fs), Some("guest_memfd"));
}

/// guest_memfd's ioctl answering -EAGAIN to `request` (x86-64 ioctl, fd 9).
fn gmem_again(at: u64, request: u64) -> Event {
    Event::GmemIoctlAgain(crate::events::GmemIoctl {
        at_ns: at * MS,
        task: task(42, 1),
        syscall: Syscall {
            nr: 16,
            args: [9, request, 0x7ff0_0000],
            ..Syscall::default()
        },
        ret: -11,
    })
}

#[test]
fn a_refused_conversion_is_a_finding_for_the_pinner_and_other_eagains_are_not() {
    // _IOWR(KVMIO, 0xd2, 48 bytes): the series' KVM_SET_MEMORY_ATTRIBUTES2, size unchecked.
    let set_attributes2 = 0xc030_aed2;
    let (found, _) = discards(vec![memfd_pin(10), gmem_again(20, set_attributes2)]);
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!((f.hazard, f.outcome), (GMP, ConversionRefused));
    assert_eq!(f.pinner, Some(Pinner::Vfio), "the process's one pinner");
    assert_eq!(f.cause, Cause::Conversion { errno: -11 });
    // Another KVM ioctl (KVM_SET_USER_MEMORY_REGION2, 0xc0a0ae49) answering -EAGAIN is not one.
    let (found, _) = discards(vec![gmem_again(20, 0xc0a0_ae49)]);
    assert!(found.is_empty(), "{found:?}");
}
