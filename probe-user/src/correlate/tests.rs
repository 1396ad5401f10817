//! Synthetic event streams through the correlator. Times are in ms for readability.

use probe_common::event::Syscall;

use super::*;
use crate::{
    events::{Backing, FileId, PinnedFolio, Task, Vma},
    findings::{Cause, Outcome},
    hazards::Hazard,
    pinner::{Pinner, UntrackOrigin},
};

const MS: u64 = 1_000_000;
const EXT4: u32 = 0xef53;
const TMPFS: u32 = 0x0102_1994;
const WRITE_LONGTERM: u32 = 0x10001; // 6.1 values
const READ_LONGTERM: u32 = 0x10000;
const SHARED: u64 = 0xfb; // VM_READ|VM_WRITE|VM_SHARED|VM_MAY*
const PRIVATE: u64 = 0x73;

fn task(tgid: u32, start: u64) -> Task {
    Task {
        tgid,
        tid: tgid,
        start_ns: start,
        comm: format!("p{tgid}").into(),
        cgroup_id: 1,
    }
}

fn call(request: u64) -> Syscall {
    Syscall {
        nr: 16,
        user_ip: 0x4000,
        user_sp: 0x7ff0,
        args: [3, request, 0x1000],
    }
}

struct PinSpec {
    at: u64,
    task: Task,
    flags: u32,
    vm_flags: u64,
    magic: Option<u32>,
    verdict: Option<bool>,
    ret: i64,
    syscall: Syscall,
    dontfork: bool,
}

fn spec(at: u64) -> PinSpec {
    PinSpec {
        at,
        task: task(42, 1),
        flags: WRITE_LONGTERM,
        vm_flags: SHARED,
        magic: Some(EXT4),
        verdict: None,
        ret: 16,
        syscall: call(1),
        dontfork: false,
    }
}

fn pin(s: PinSpec) -> Event {
    let vma = Vma {
        flags: s.vm_flags,
        start: 0x7000_0000,
        pgoff: 0,
        file: s.magic.map(|fs_magic| FileId {
            dev: 1,
            ino: 12,
            fs_magic,
        }),
        needs_dirty_tracking: s.verdict,
    };
    Event::Pin(Pin {
        at_ns: s.at * MS,
        task: s.task,
        syscall: s.syscall,
        hook: "pin_user_pages_remote",
        gup_flags: s.flags,
        start: 0x7000_0000,
        nr_pages: 16,
        ret: s.ret,
        stack_id: None,
        // As the pipeline fills it from the VMA.
        backing: Some(Backing::of_vma(&vma, 0x7000_0000)),
        vma: Some(vma),
        pinner: Pinner::Vfio,
        caller: None,
        path: Some("/mnt/ext4/vm.img".into()),
        dontfork: Some(s.dontfork),
        calls: 1,
    })
}

fn unpin(at: u64, task: Task, syscall: Syscall, pages: u64) -> Event {
    Event::Unpin(Unpin {
        at_ns: at * MS,
        task,
        released_by: None,
        hook: "unpin_user_pages",
        syscall,
        pages,
        calls: 1,
    })
}

fn clean(at: u64, index: u64) -> Event {
    large_clean(at, index, 1)
}

/// A pinned folio of `pages` base pages at page-cache `index` cleaned by writeback.
fn large_clean(at: u64, index: u64, pages: u64) -> Event {
    Event::MkcleanPinned(PinnedFolio {
        at_ns: at * MS,
        task: task(7, 5),
        syscall: Syscall::default(),
        stack_id: None,
        file: Some(FileId {
            dev: 1,
            ino: 12,
            fs_magic: EXT4,
        }),
        index,
        large: pages > 1,
        pages: Some(pages),
        refcount: 1025,
        pincount: i32::from(pages > 1),
    })
}

/// (hazard, outcome, pages) of one finding.
type Brief = (Hazard, Outcome, u64);

/// Runs a stream (pushed in the given order, `now` advancing to each event's time) and returns
/// (hazard, outcome, pages) of every finding.
fn run(events: Vec<Event>) -> (Vec<Brief>, Stats) {
    let (findings, summary) = fed(events).finish();
    (
        findings
            .iter()
            .map(|f| (f.hazard, f.outcome, f.pages))
            .collect(),
        summary.stats,
    )
}

use Hazard::{LongtermFilePin as LFP, PinnedFolioCleaned as PFC};
use Outcome::*;

#[test]
fn longterm_file_pin_outcomes() {
    let sixteen_unpins = |at: u64| (0..16u64).map(move |i| unpin(at + i, task(42, 1), call(1), 1));
    let cases: Vec<(&str, Vec<Event>, Vec<Brief>)> = vec![
        (
            "6.12+ refuses: EFAULT with the kernel's verdict",
            vec![pin(PinSpec {
                ret: -14,
                verdict: Some(true),
                ..spec(10)
            })],
            vec![(LFP, Refused, 16)],
        ),
        (
            "6.1 grants and the caller keeps it",
            vec![pin(spec(10))],
            vec![(LFP, Granted, 16)],
        ),
        (
            "6.1 io_uring: unpinned within the same syscall",
            std::iter::once(pin(spec(10)))
                .chain(sixteen_unpins(11))
                .collect(),
            vec![(LFP, ReleasedByCaller, 16)],
        ),
        (
            "a later unmap (another ioctl request) does not make it released-by-caller",
            vec![pin(spec(10)), unpin(20, task(42, 1), call(2), 16)],
            vec![(LFP, Granted, 16)],
        ),
        (
            "pid reuse: the same tgid with another start time is another process",
            std::iter::once(pin(spec(10)))
                .chain((0..16u64).map(|i| unpin(11 + i, task(42, 2), call(1), 1)))
                .collect(),
            vec![(LFP, Granted, 16)],
        ),
        (
            "an unpin delivered before its pin (other CPU) is reordered",
            vec![unpin(12, task(42, 1), call(1), 16), pin(spec(10))],
            vec![(LFP, ReleasedByCaller, 16)],
        ),
    ];
    for (name, events, want) in cases {
        assert_eq!(run(events).0, want, "{name}");
    }
}

#[test]
fn correct_uses_stay_silent() {
    let cases: Vec<(&str, PinSpec)> = vec![
        (
            "tmpfs/memfd/shmem",
            PinSpec {
                magic: Some(TMPFS),
                ..spec(10)
            },
        ),
        (
            "anonymous memory",
            PinSpec {
                magic: None,
                ..spec(10)
            },
        ),
        (
            "MAP_PRIVATE file",
            PinSpec {
                vm_flags: PRIVATE,
                ..spec(10)
            },
        ),
        (
            "read-only pin",
            PinSpec {
                flags: READ_LONGTERM,
                ..spec(10)
            },
        ),
        (
            "the kernel says no dirty tracking",
            PinSpec {
                verdict: Some(false),
                ..spec(10)
            },
        ),
    ];
    for (name, s) in cases {
        let (findings, stats) = run(vec![pin(s)]);
        assert_eq!(findings, vec![], "{name}");
        assert_eq!(stats.harmless_pins, 1, "{name}");
    }
}

#[test]
fn cleaned_pinned_folios_are_attributed_to_their_pin() {
    let mut events = vec![pin(spec(10))];
    events.extend((0..16u64).map(|i| clean(12 + i, i)));
    let (findings, _) = run(events);
    assert_eq!(findings, vec![(PFC, Attributed, 16), (LFP, Granted, 16)]);
}

#[test]
fn large_folios_count_their_base_pages_and_their_folios() {
    // The pin covers page-cache indexes 0..16: a 2 MiB folio holding them is cleaned twice, and
    // a 64 KiB folio that starts before the pin's range ends (overlap, not containment).
    let mut c = Correlator::new(Config::default(), FollFlags::legacy());
    for e in [
        pin(spec(10)),
        large_clean(12, 0, 512),
        large_clean(13, 0, 512),
        large_clean(14, 8, 16),
        large_clean(15, 16, 512),
    ] {
        c.push(e);
    }
    let (findings, _) = c.finish();
    let cleans: Vec<(Outcome, u64, Option<u64>, Option<u64>)> = findings
        .iter()
        .filter(|f| f.hazard == PFC)
        .map(|f| (f.outcome, f.pages, f.folios, f.page_size))
        .collect();
    assert_eq!(
        cleans,
        [
            (Attributed, 1024, Some(2), Some(2 << 20)),
            (Attributed, 16, Some(1), Some(64 << 10)),
            (Unattributed, 512, Some(1), Some(2 << 20)),
        ]
    );
}

#[test]
fn a_clean_outside_the_pinned_range_or_before_any_pin_is_unattributed() {
    let (findings, _) = run(vec![clean(5, 3), pin(spec(10)), clean(12, 99)]);
    assert_eq!(findings, vec![(PFC, Unattributed, 2), (LFP, Granted, 16)]);
}

#[test]
fn a_clean_delivered_before_its_pin_is_still_attributed() {
    let (findings, _) = run(vec![clean(12, 0), pin(spec(10))]);
    assert_eq!(findings, vec![(PFC, Attributed, 1), (LFP, Granted, 16)]);
}

#[test]
fn an_unpinned_pin_no_longer_owns_its_pages() {
    let (findings, _) = run(vec![
        pin(spec(10)),
        unpin(200, task(42, 1), call(2), 16),
        clean(300, 0),
    ]);
    assert_eq!(findings, vec![(LFP, Granted, 16), (PFC, Unattributed, 1)]);
}

#[test]
fn full_tables_evict_the_oldest_and_count_it() {
    let pins: Vec<Event> = (0..10)
        .map(|i| {
            pin(PinSpec {
                task: task(100 + i, 1),
                ..spec(10)
            })
        })
        .collect();
    let (findings, stats) = run(pins);
    // Ten pins into tables of eight: the live-pin ledger and the file-pin table each drop two.
    assert_eq!((stats.evicted_pins, stats.evicted_file_pins), (2, 2));
    assert_eq!(findings.len(), 8);
}

#[test]
fn findings_carry_what_an_engineer_needs() {
    let mut c = Correlator::new(Config::default(), FollFlags::legacy());
    c.push(pin(PinSpec {
        ret: -14,
        verdict: Some(true),
        ..spec(10)
    }));
    let (findings, _) = c.finish();
    let f = &findings[0];
    assert_eq!(
        (
            f.process.tgid,
            f.process.comm.as_bytes(),
            f.process.start_ns
        ),
        (42, b"p42".as_slice(), 1)
    );
    assert_eq!(
        (f.pinner, f.mapping.as_ref().map(|m| (m.fs, m.path.clone()))),
        (
            Some(Pinner::Vfio),
            Some(("ext4", Some("/mnt/ext4/vm.img".into())))
        )
    );
    assert_eq!(
        f.cause,
        Cause::Pin {
            gup_flags: "FOLL_WRITE|FOLL_LONGTERM".into(),
            caller: None
        }
    );
    assert!(f.advice.contains("memfd"));
}

#[test]
fn pins_of_one_registration_in_several_calls_make_one_finding() {
    let half = |at| pin(PinSpec { ret: 8, ..spec(at) });
    let (findings, _) = run(vec![half(10), half(11)]);
    assert_eq!(findings, vec![(LFP, Granted, 16)]);
}

/// A call decoded after its process exited has no path (it is read from /proc): it still joins
/// its registration's finding, which keeps the path it has.
#[test]
fn a_call_whose_path_was_unreadable_joins_its_registration() {
    let mut c = Correlator::new(Config::default(), FollFlags::legacy());
    let mut second = pin(PinSpec { ret: 8, ..spec(11) });
    if let Event::Pin(p) = &mut second {
        p.path = None;
    }
    c.push(second);
    c.push(pin(PinSpec { ret: 8, ..spec(10) }));
    let (findings, _) = c.finish();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].pages, 16);
    let path = findings[0].mapping.as_ref().and_then(|m| m.path.clone());
    assert_eq!(path, Some("/mnt/ext4/vm.img".into()));
}

fn untrack(at: u64, from_zap: bool, with_vma: bool) -> Event {
    Event::PfnUntrack(crate::events::PfnUntrack {
        at_ns: at * MS,
        task: task(42, 1),
        from_zap,
        vma: with_vma.then_some(Vma {
            flags: 0x0d04_44bb,
            start: 0x7000_0000,
            pgoff: 0,
            file: None,
            needs_dirty_tracking: None,
        }),
        vm_end: 0x7000_4000,
        pfn: 0xfebf0,
        stack_id: None,
        origin: UntrackOrigin::RevokeIomem,
        path: Some("/sys/bus/pci/devices/0000:00:02.0/resource4".into()),
    })
}

#[test]
fn pfn_untracks_are_findings_only_from_the_zap_path() {
    let cases: Vec<(&str, Event, Vec<Brief>)> = vec![
        (
            "6.1/6.12 zap of a VM_PAT vma",
            untrack(10, true, true),
            vec![(Hazard::EarlyPfnUntrack, UntrackedWhileMapped, 4)],
        ),
        (
            "munmap/exit untrack (normal end of life)",
            untrack(10, false, true),
            vec![],
        ),
        (
            "7.2 pfnmap_untrack: no VMA, last user gone",
            untrack(10, false, false),
            vec![],
        ),
    ];
    for (name, event, want) in cases {
        assert_eq!(run(vec![event]).0, want, "{name}");
    }
}

fn fork_copy(at: u64, pages: u64) -> Event {
    sized_fork_copy(at, pages, Some(4096))
}

/// Eager copies of `pages` base pages in pages of `page_size` bytes.
fn sized_fork_copy(at: u64, pages: u64, page_size: Option<u64>) -> Event {
    Event::ForkCopy(crate::events::ForkCopy {
        at_ns: at * MS,
        task: task(42, 1),
        vm_start: 0x7000_0000,
        vm_end: 0x7001_0000,
        pages,
        page_size,
    })
}

fn fork(at: u64) -> Event {
    Event::Fork(crate::events::Fork {
        at_ns: at * MS,
        task: task(42, 1),
        child_pid: 43,
    })
}

fn anon_pin(at: u64) -> Event {
    pin(PinSpec {
        magic: None,
        ..spec(at)
    })
}

/// A correlator with short windows, `events` pushed in the given order with `now` advancing to
/// each event's time.
fn fed(events: Vec<Event>) -> Correlator {
    let mut c = Correlator::new(
        Config {
            reorder_ns: 5 * MS,
            settle_ns: 100 * MS,
            max_pins: 8,
            max_live_pins: 8,
        },
        FollFlags::legacy(),
    );
    for e in events {
        let now = e.at_ns();
        c.push(e);
        c.advance(now);
    }
    c
}

mod discard;
mod fork_cow;
mod ledger;
