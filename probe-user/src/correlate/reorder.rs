//! The reorder queue: events in kernel-time order, held for the reorder window.
//!
//! Records arrive almost in order (one ring buffer, filled in commit order; only programs on
//! different CPUs interleave), so the queue is a deque kept sorted by (time, arrival): an
//! in-order event is appended, a late one is inserted a few places from the back. A binary
//! heap moved each large event through log(n) slots on both push and pop; in a pin storm that
//! was half of the daemon's userspace work.

use std::collections::VecDeque;

use crate::events::Event;

#[derive(Default)]
pub struct ReorderQueue {
    /// (kernel time, arrival number, event), sorted by the first two.
    events: VecDeque<(u64, u64, Event)>,
    arrivals: u64,
}

impl ReorderQueue {
    pub fn push(&mut self, event: Event) {
        self.arrivals += 1;
        let key = (event.at_ns(), self.arrivals);
        // Arrival numbers only grow, so an event never goes before an equal-time one that
        // arrived first.
        let at = if self
            .events
            .back()
            .is_none_or(|last| (last.0, last.1) <= key)
        {
            self.events.len()
        } else {
            self.events.partition_point(|e| (e.0, e.1) <= key)
        };
        self.events.insert(at, (key.0, key.1, event));
    }

    /// The oldest event, if it is at least `window` older than `now`.
    pub fn pop_older(&mut self, now: u64, window: u64) -> Option<Event> {
        if self.events.front()?.0.saturating_add(window) > now {
            return None;
        }
        self.events.pop_front().map(|(_, _, event)| event)
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Gives memory back once a storm has drained.
    pub fn shrink(&mut self) {
        if self.events.capacity() > 4 * self.events.len().max(1024) {
            self.events.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Fork, Task};

    fn fork(at_ns: u64, child_pid: u32) -> Event {
        Event::Fork(Fork {
            at_ns,
            task: Task {
                tgid: 1,
                tid: 1,
                start_ns: 0,
                comm: "t".into(),
                cgroup_id: 0,
            },
            child_pid,
        })
    }

    fn drain(q: &mut ReorderQueue, now: u64) -> Vec<(u64, u32)> {
        std::iter::from_fn(|| q.pop_older(now, 5))
            .map(|e| match e {
                Event::Fork(f) => (f.at_ns, f.child_pid),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn late_events_are_put_in_time_order_and_ties_keep_arrival_order() {
        let mut q = ReorderQueue::default();
        for (at, id) in [(10, 1), (30, 2), (20, 3), (30, 4), (5, 5), (30, 6)] {
            q.push(fork(at, id));
        }
        assert_eq!(q.len(), 6);
        assert_eq!(drain(&mut q, 25), [(5, 5), (10, 1), (20, 3)]);
        assert_eq!(drain(&mut q, 34), []);
        assert_eq!(drain(&mut q, u64::MAX), [(30, 2), (30, 4), (30, 6)]);
        assert_eq!(q.len(), 0);
    }
}
