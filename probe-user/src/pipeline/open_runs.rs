//! Runs the kernel is still gathering (each task's `INFLIGHT` entry, see
//! `probe_common::event::PinRun`), read every tick: a task that pinned a storm and went idle has
//! its pages in the ledger within a tick, not at its next unpin or exit.
//!
//! A run grows while open and is sent once when flushed. What a read applied is remembered by
//! run, and taken off the run's record when it arrives: every call and page is applied exactly
//! once, whichever comes first.

use std::collections::HashMap;

use aya::maps::{HashMap as BpfHashMap, MapData};
use probe_common::event::{PinRun, TaskPins, UnpinRun, kind};

use crate::events::{self, Event, PAGE_SHIFT, RunId};

/// How long a run read while open is remembered once the kernel no longer shows it: its record
/// is in the ring buffer by then, or was lost with a full ring (counted as a drop).
const FORGET_NS: u64 = 60_000_000_000;

pub struct OpenRuns {
    map: BpfHashMap<MapData, u64, TaskPins>,
    applied: AppliedRuns,
}

/// What reads applied, by run.
#[derive(Default)]
struct AppliedRuns(HashMap<RunId, Applied>);

/// What reads applied of one run: calls and pages, and when it was last seen open.
#[derive(Default, Clone, Copy)]
struct Applied {
    calls: u64,
    pages: u64,
    seen_ns: u64,
}

impl OpenRuns {
    pub fn new(map: BpfHashMap<MapData, u64, TaskPins>) -> Self {
        Self {
            map,
            applied: AppliedRuns::default(),
        }
    }

    /// Sends what every open run gathered since the last read, as events ordered at the run's
    /// last call.
    pub fn read(&mut self, now: u64, mut sink: impl FnMut(Event)) {
        for entry in self.map.iter() {
            // An entry removed while iterating (its task exited) just ends the walk early.
            let Ok((pid_tgid, task)) = entry else { break };
            if let Some(pin) = self.applied.pin_growth(pid_tgid, &task, now) {
                sink(Event::Pin(pin));
            }
            if let Some(unpin) = self.applied.unpin_growth(pid_tgid, &task, now) {
                sink(Event::Unpin(unpin));
            }
        }
        self.applied
            .0
            .retain(|_, a| a.seen_ns.saturating_add(FORGET_NS) > now);
    }

    /// Takes what reads already applied off a run's record (`id` from
    /// [`events::run_id`]); false when nothing of it is left to apply.
    pub fn settle(&mut self, id: RunId, event: &mut Event) -> bool {
        self.applied.settle(id, event)
    }
}

impl AppliedRuns {
    fn pin_growth(&mut self, pid_tgid: u64, task: &TaskPins, now: u64) -> Option<events::Pin> {
        let run = &task.pins;
        let grew = self.grow(
            (pid_tgid, kind::PIN_RUN, run.first_ns),
            run.calls,
            run.pages,
            now,
        )?;
        let part = PinRun {
            start: run.start.wrapping_add(grew.0 << PAGE_SHIFT),
            calls: grew.1,
            pages: grew.2,
            ..*run
        };
        let mut header = task.call.header;
        header.ts_ns = run.last_ns;
        Some(events::pin_run(&header, &part))
    }

    fn unpin_growth(&mut self, pid_tgid: u64, task: &TaskPins, now: u64) -> Option<events::Unpin> {
        let run = &task.unpins;
        let grew = self.grow(
            (pid_tgid, kind::UNPIN_RUN, run.first_ns),
            run.calls,
            run.pages,
            now,
        )?;
        let part = UnpinRun {
            calls: grew.1,
            pages: grew.2,
            ..*run
        };
        let mut header = task.call.header;
        header.ts_ns = run.last_ns;
        Some(events::unpin_run(&header, &part))
    }

    /// Records that the run now has `calls` and `pages`; returns (pages applied before, calls
    /// and pages new since) when it grew.
    fn grow(&mut self, id: RunId, calls: u64, pages: u64, now: u64) -> Option<(u64, u64, u64)> {
        if calls == 0 {
            return None;
        }
        let applied = self.0.entry(id).or_default();
        applied.seen_ns = now;
        if calls <= applied.calls {
            return None;
        }
        let before = applied.pages;
        let grew = (
            before,
            calls - applied.calls,
            pages.saturating_sub(applied.pages),
        );
        applied.calls = calls;
        applied.pages = applied.pages.max(pages);
        Some(grew)
    }

    fn settle(&mut self, id: RunId, event: &mut Event) -> bool {
        let Some(applied) = self.0.remove(&id) else {
            return true;
        };
        match event {
            Event::Pin(pin) => {
                pin.calls = pin.calls.saturating_sub(applied.calls);
                let pages = u64::try_from(pin.ret)
                    .unwrap_or(0)
                    .saturating_sub(applied.pages);
                pin.start = pin.start.wrapping_add(applied.pages << PAGE_SHIFT);
                pin.ret = i64::try_from(pages).unwrap_or(i64::MAX);
                pin.nr_pages = pages;
                pin.calls > 0 || pages > 0
            }
            Event::Unpin(unpin) => {
                unpin.calls = unpin.calls.saturating_sub(applied.calls);
                unpin.pages = unpin.pages.saturating_sub(applied.pages);
                unpin.calls > 0 || unpin.pages > 0
            }
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use probe_common::event::{Header, PinEvent};

    use super::*;

    const TASK: u64 = (42 << 32) | 43;

    fn task(calls: u64, unpins: u64) -> TaskPins {
        TaskPins {
            call: PinEvent {
                header: Header {
                    pid_tgid: TASK,
                    ..Header::default()
                },
                ..PinEvent::default()
            },
            pins: PinRun {
                first_ns: 100,
                last_ns: 100 + calls,
                start: 0x10000,
                calls,
                pages: calls * 2,
                ..PinRun::default()
            },
            unpins: UnpinRun {
                first_ns: 500,
                last_ns: 600,
                calls: unpins,
                pages: unpins,
                ..UnpinRun::default()
            },
            ..TaskPins::default()
        }
    }

    /// The run's record as the kernel sends it when flushed: every call of the run.
    fn record(calls: u64) -> Event {
        let t = task(calls, 0);
        Event::Pin(events::pin_run(&t.call.header, &t.pins))
    }

    const PIN_RUN: RunId = (TASK, kind::PIN_RUN, 100);

    #[test]
    fn reads_apply_what_a_run_grew_and_its_record_only_the_rest() {
        let mut applied = AppliedRuns::default();
        let first = applied.pin_growth(TASK, &task(10, 0), 1).unwrap();
        assert_eq!((first.calls, first.ret, first.start), (10, 20, 0x10000));
        assert_eq!(first.at_ns, 110, "ordered at the run's last call");
        assert!(
            applied.pin_growth(TASK, &task(10, 0), 2).is_none(),
            "no growth"
        );
        let second = applied.pin_growth(TASK, &task(16, 0), 3).unwrap();
        assert_eq!((second.calls, second.ret), (6, 12));
        assert_eq!(
            second.start,
            0x10000 + (20 << PAGE_SHIFT),
            "contiguous after the first"
        );
        let mut rest = record(20);
        assert!(applied.settle(PIN_RUN, &mut rest));
        let Event::Pin(rest) = rest else { panic!() };
        assert_eq!((rest.calls, rest.ret, rest.nr_pages), (4, 8, 8));
        assert_eq!(rest.start, 0x10000 + (32 << PAGE_SHIFT));
        assert!(applied.0.is_empty(), "a settled run is forgotten");
    }

    #[test]
    fn a_record_whose_calls_were_all_read_is_dropped_and_one_never_read_is_whole() {
        let mut applied = AppliedRuns::default();
        applied.pin_growth(TASK, &task(20, 0), 1).unwrap();
        let mut all_read = record(20);
        assert!(!applied.settle(PIN_RUN, &mut all_read));
        let mut never_read = record(20);
        assert!(applied.settle(PIN_RUN, &mut never_read));
        assert_eq!(never_read, record(20));
    }

    #[test]
    fn unpin_runs_are_read_apart_from_pin_runs() {
        let mut applied = AppliedRuns::default();
        assert!(
            applied.pin_growth(TASK, &task(0, 7), 1).is_none(),
            "no pin run"
        );
        let unpin = applied.unpin_growth(TASK, &task(0, 7), 1).unwrap();
        assert_eq!((unpin.calls, unpin.pages, unpin.at_ns), (7, 7, 600));
        assert!(unpin.released_by.is_none());
        let t = task(0, 9);
        let mut record = Event::Unpin(events::unpin_run(&t.call.header, &t.unpins));
        assert!(applied.settle((TASK, kind::UNPIN_RUN, 500), &mut record));
        let Event::Unpin(rest) = record else { panic!() };
        assert_eq!((rest.calls, rest.pages), (2, 2));
    }
}
