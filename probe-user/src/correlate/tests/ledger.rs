//! The ledger of live pins: releases with their age, pruning of exited processes, settled
//! findings handed out once, the per-process ranking, and saturation on extreme kernel values.

use super::*;

/// [`fed`], then advanced ten seconds past the stream: every window has closed.
fn settled(events: Vec<Event>) -> Correlator {
    let mut c = fed(events);
    c.advance(10_000 * MS);
    c
}

#[test]
fn unpins_release_live_pins_with_their_age() {
    let mut c = settled(vec![
        anon_pin(0),
        unpin(3_000, task(42, 1), call(9), 10),
        unpin(4_000, task(42, 1), call(9), 6),
    ]);
    let released = c.take_released();
    assert_eq!(released.len(), 1, "released once, when the last page goes");
    assert_eq!(released[0].pages, 16);
    assert_eq!(released[0].held_ns, 4_000 * MS);
    assert!(c.live_pages_by_pinner().is_empty());
    assert!(c.take_released().is_empty(), "taken once");
}

#[test]
fn a_release_by_another_task_ends_the_owners_pin() {
    // The kernel names the owner (thread 7 of process 42, its comm unknown there) and the
    // kworker that released its pages.
    let mut owner = task(42, 1);
    owner.tid = 7;
    owner.comm = crate::text::UserText::from(&b""[..]);
    let Event::Unpin(mut by_kworker) = unpin(3_000, owner, call(0), 16) else {
        unreachable!()
    };
    by_kworker.released_by = Some(task(9, 1));
    let mut c = settled(vec![anon_pin(0), Event::Unpin(by_kworker)]);
    assert!(c.live_pages_by_pinner().is_empty());
    let released = c.take_released();
    assert_eq!((released[0].pages, released[0].held_ns), (16, 3_000 * MS));
    // Not the caller giving its pin back in the same call: no finding comes of it.
    assert!(c.finish().0.is_empty());
}

#[test]
fn pins_of_exited_processes_are_released_by_pruning() {
    let mut c = settled(vec![anon_pin(0)]);
    assert_eq!(c.live_pages_by_pinner().values().sum::<u64>(), 16);
    c.prune_exited(|tgid| tgid != 42, 5_000 * MS);
    assert_eq!(c.live_pages_by_pinner().values().sum::<u64>(), 0);
    let released = c.take_released();
    assert_eq!((released[0].pages, released[0].held_ns), (16, 5_000 * MS));
    let mut alive = settled(vec![anon_pin(0)]);
    alive.prune_exited(|_| true, 5_000 * MS);
    assert_eq!(alive.live_pages_by_pinner().values().sum::<u64>(), 16);
}

#[test]
fn settled_findings_are_taken_once_and_processes_ranked() {
    let mut c = settled(vec![pin(spec(0))]);
    assert_eq!(c.take_settled(0).len(), 0, "nothing older than time 0");
    let taken = c.take_settled(u64::MAX);
    assert_eq!(taken.len(), 1);
    assert!(c.take_settled(u64::MAX).is_empty());
    let (_, summary) = c.finish();
    assert_eq!(summary.processes.len(), 1);
    assert_eq!(summary.processes[0].pinned_pages, 16);
    assert_eq!(summary.processes[0].held_pages, 16);
}

/// Found by the fuzzer: kernel-supplied offsets and counts near u64::MAX must not overflow.
#[test]
fn extreme_kernel_values_saturate_instead_of_overflowing() {
    let mut huge = spec(0);
    huge.ret = i64::MAX;
    let mut e = pin(huge);
    if let Event::Pin(p) = &mut e {
        p.start = u64::MAX;
        if let Some(vma) = &mut p.vma {
            vma.pgoff = u64::MAX;
            vma.start = 0;
        }
    }
    let (findings, _) = settled(vec![
        e,
        pin(PinSpec {
            ret: i64::MAX,
            ..spec(1)
        }),
    ])
    .finish();
    assert!(findings.iter().all(|f| f.pages > 0));
}

/// A registration storm as the kernel now sends it: the first call's pin, one run of the 255
/// calls that joined it, one run of the 256 unpins. Counts are by call, pages by page.
#[test]
fn runs_count_their_calls_and_hold_and_release_their_pages() {
    let mut opener = anon_pin(0);
    let mut run = anon_pin(1);
    if let (Event::Pin(first), Event::Pin(joined)) = (&mut opener, &mut run) {
        first.ret = 1;
        joined.ret = 255;
        joined.calls = 255;
        joined.vma = None;
    }
    let mut c = settled(vec![opener, run]);
    assert_eq!(c.live_pages_by_pinner().values().sum::<u64>(), 256);
    assert_eq!(c.stats().longterm_pins, 256, "one per pin call");
    assert_eq!(c.stats().harmless_pins, 256);
    let Event::Unpin(mut unpins) = unpin(3_000, task(42, 1), call(9), 256) else {
        unreachable!()
    };
    unpins.calls = 256;
    c.push(Event::Unpin(unpins));
    c.advance(20_000 * MS);
    assert!(c.live_pages_by_pinner().is_empty());
    let released: u64 = c.take_released().iter().map(|r| r.pages).sum();
    assert_eq!(released, 256);
}

/// Found by the fuzzer: a pin run's call count comes from the kernel, and the counts it adds to
/// must saturate, not overflow.
#[test]
fn run_call_counts_saturate() {
    let run = |at| {
        let mut e = anon_pin(at);
        if let Event::Pin(p) = &mut e {
            p.calls = u64::MAX;
        }
        e
    };
    let c = settled(vec![run(0), run(1)]);
    assert_eq!(c.stats().longterm_pins, u64::MAX);
    assert_eq!(c.stats().harmless_pins, u64::MAX);
}
