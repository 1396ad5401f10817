//! The watched process and its descendants, learnt from the kernel's own fork records.
//!
//! While a tree is watched the programs send every fork (`FORK` from processes that pinned,
//! `SPAWN` from the others), and the ring buffer delivers a parent's fork record before
//! anything its child does. So a child joins the tree when its fork is read, even if it pinned
//! and exited long before userspace got to its events: a job runner's short-lived workers under
//! `audit -- CMD` keep their findings. `/proc` is only asked about processes no fork record
//! introduced (descendants that existed before the watch began, under `--pid`).

use std::collections::HashSet;

use crate::{events::Event, procfs};

pub struct ProcessTree {
    root: Option<u32>,
    members: HashSet<u32>,
    strangers: HashSet<u32>,
}

impl ProcessTree {
    pub fn new(root: Option<u32>) -> Self {
        Self {
            root,
            members: root.into_iter().collect(),
            strangers: HashSet::new(),
        }
    }

    pub fn observe(&mut self, event: &Event) {
        let Some(root) = self.root else { return };
        let tgid = event.task().tgid;
        if !self.members.contains(&tgid) && !self.strangers.contains(&tgid) {
            if procfs::descends_from(tgid, root) {
                self.members.insert(tgid);
            } else {
                self.strangers.insert(tgid);
            }
        }
        let child = match event {
            Event::Fork(f) => f.child_pid,
            Event::Spawn(s) => s.child_pid,
            _ => return,
        };
        // A recycled pid may have been a stranger before: the fork record is the truth now.
        // The root's own fork record comes from pinwatch (or whoever started it): it stays.
        if child == root {
            return;
        }
        if self.members.contains(&tgid) {
            self.strangers.remove(&child);
            self.members.insert(child);
        } else {
            self.members.remove(&child);
            self.strangers.insert(child);
        }
    }

    /// Without a root every process is watched.
    pub fn contains(&self, tgid: u32) -> bool {
        self.root.is_none() || self.members.contains(&tgid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Fork, Spawn, Task, Unpin};

    fn task(tgid: u32) -> Task {
        Task {
            tgid,
            tid: tgid,
            start_ns: 0,
            comm: "job".into(),
            cgroup_id: 0,
        }
    }

    fn spawn(parent: u32, child: u32) -> Event {
        Event::Spawn(Spawn {
            at_ns: 1,
            task: task(parent),
            child_pid: child,
        })
    }

    fn activity(tgid: u32) -> Event {
        Event::Unpin(Unpin {
            at_ns: 2,
            task: task(tgid),
            released_by: None,
            syscall: Default::default(),
            hook: "unpin_user_pages",
            pages: 1,
            calls: 1,
        })
    }

    /// Pids far above any live process: /proc knows none of them, as for children that
    /// exited before their events were read.
    const ROOT: u32 = 4_000_000;

    #[test]
    fn children_and_grandchildren_join_from_fork_records_after_they_exited() {
        let mut tree = ProcessTree::new(Some(ROOT));
        for event in [
            spawn(ROOT, ROOT + 1),
            spawn(ROOT + 1, ROOT + 2),
            activity(ROOT + 2),
            Event::Fork(Fork {
                at_ns: 3,
                task: task(ROOT + 2),
                child_pid: ROOT + 3,
            }),
            activity(ROOT + 3),
        ] {
            tree.observe(&event);
        }
        for member in [ROOT, ROOT + 1, ROOT + 2, ROOT + 3] {
            assert!(tree.contains(member), "{member}");
        }
    }

    #[test]
    fn strangers_and_their_children_stay_out_until_a_member_forks_their_pid() {
        let mut tree = ProcessTree::new(Some(ROOT));
        tree.observe(&activity(ROOT + 10));
        tree.observe(&spawn(ROOT + 10, ROOT + 11));
        assert!(!tree.contains(ROOT + 10) && !tree.contains(ROOT + 11));
        // The stranger's pid is recycled by a member's child.
        tree.observe(&spawn(ROOT, ROOT + 11));
        assert!(tree.contains(ROOT + 11));
        // And recycled again by a stranger's child.
        tree.observe(&spawn(ROOT + 10, ROOT + 11));
        assert!(!tree.contains(ROOT + 11));
    }

    #[test]
    fn the_root_stays_a_member_whoever_forked_it() {
        let mut tree = ProcessTree::new(Some(ROOT));
        tree.observe(&spawn(ROOT - 1, ROOT));
        assert!(tree.contains(ROOT));
    }

    #[test]
    fn without_a_root_everyone_is_watched() {
        let mut tree = ProcessTree::new(None);
        tree.observe(&spawn(1, 2));
        assert!(tree.contains(7));
    }
}
