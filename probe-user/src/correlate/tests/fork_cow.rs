//! Pin-then-fork (eager copies, DONTFORK-protected forks) and COW or unshare faults on
//! pinned pages.

use super::*;

#[test]
fn forks_of_processes_holding_pins() {
    let dontfork_pin = |at| {
        pin(PinSpec {
            magic: None,
            dontfork: true,
            ..spec(at)
        })
    };
    let cases: Vec<(&str, Vec<Event>, Vec<Brief>)> = vec![
        (
            "pinned pages copied eagerly",
            vec![anon_pin(10), fork_copy(20, 16), fork(21)],
            vec![(Hazard::ForkWithPins, EagerCopy, 16)],
        ),
        (
            "MADV_DONTFORK pins held, nothing copied",
            vec![dontfork_pin(10), fork(21)],
            vec![(Hazard::ForkWithPins, Protected, 16)],
        ),
        (
            "pins not known to be DONTFORK and nothing copied: silent",
            vec![anon_pin(10), fork(21)],
            vec![],
        ),
        (
            "DONTFORK pins released before the fork: silent",
            vec![
                dontfork_pin(10),
                unpin(15, task(42, 1), call(9), 16),
                fork(21),
            ],
            vec![],
        ),
        (
            "copies of pins older than pinwatch",
            vec![fork_copy(20, 4), fork(21)],
            vec![(Hazard::ForkWithPins, EagerCopy, 4)],
        ),
        (
            "a fork with no copies and no pins: silent",
            vec![fork(21)],
            vec![],
        ),
    ];
    for (name, events, want) in cases {
        assert_eq!(run(events).0, want, "{name}");
    }
}

#[test]
fn eager_copies_name_the_pin_inside_the_copied_vma() {
    let mut c = Correlator::new(Config::default(), FollFlags::legacy());
    for e in [anon_pin(10), fork_copy(20, 16), fork(21)] {
        c.push(e);
    }
    let (findings, _) = c.finish();
    assert_eq!(findings[0].pinner, Some(Pinner::Vfio));
    let mut c = Correlator::new(Config::default(), FollFlags::legacy());
    c.push(fork_copy(20, 16));
    c.push(fork(21));
    assert_eq!(c.finish().0[0].pinner, None, "the pin was not seen");
}

#[test]
fn a_fork_reports_each_page_size_it_copied() {
    let mut c = Correlator::new(Config::default(), FollFlags::legacy());
    // Two VMAs of base pages, one of 2 MiB hugetlb pages, one whose folio order was unknown.
    for e in [
        anon_pin(10),
        fork_copy(20, 16),
        sized_fork_copy(20, 1024, Some(2 << 20)),
        fork_copy(20, 8),
        sized_fork_copy(20, 3, None),
        fork(21),
    ] {
        c.push(e);
    }
    let (findings, _) = c.finish();
    let got: Vec<(u64, Option<u64>, Option<Pinner>)> = findings
        .iter()
        .map(|f| (f.pages, f.page_size, f.pinner))
        .collect();
    // The pin seen in the first VMA names the fork's other copies too.
    assert_eq!(
        got,
        [
            (24, Some(4096), Some(Pinner::Vfio)),
            (1024, Some(2 << 20), Some(Pinner::Vfio)),
            (3, None, Some(Pinner::Vfio))
        ]
    );
    assert!(findings.iter().all(|f| f.outcome == EagerCopy));
}

fn cow(at: u64, address: u64, copied: bool) -> Event {
    fault(at, address, copied, 0x1)
}

fn fault(at: u64, address: u64, copied: bool, fault_flags: u32) -> Event {
    Event::PinnedCow(crate::events::PinnedCow {
        at_ns: at * MS,
        task: task(42, 1),
        syscall: call(1),
        address,
        fault_flags,
        copied,
    })
}

#[test]
fn unshares_issued_by_a_pin_are_attributed_to_it() {
    let unshare = |at, copied| fault(at, 0x7000_0000, copied, 0x480);
    let cases: Vec<(&str, Vec<Event>, Vec<Brief>)> = vec![
        (
            "two copying unshares, then their pin",
            vec![unshare(9, true), unshare(9, true), anon_pin(10)],
            vec![(Hazard::PinnedCow, Unshared, 2)],
        ),
        (
            "an unshare that reused the page is not a copy",
            vec![unshare(9, false), anon_pin(10)],
            vec![],
        ),
        (
            "an unshare whose pin never came",
            vec![unshare(9, true)],
            vec![(Hazard::PinnedCow, Unshared, 1)],
        ),
    ];
    for (name, events, want) in cases {
        assert_eq!(run(events).0, want, "{name}");
    }
}

#[test]
fn copies_of_pinned_pages_are_findings_and_reuses_are_counted() {
    let (findings, stats) = run(vec![
        anon_pin(10),
        cow(20, 0x7000_0000, true),
        cow(21, 0x7000_1000, true),
        cow(22, 0x7000_2000, false),
    ]);
    assert_eq!(findings, vec![(Hazard::PinnedCow, Copied, 2)]);
    assert_eq!(stats.pinned_reuses, 1);
}
