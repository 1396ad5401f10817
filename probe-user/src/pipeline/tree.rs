//! The watched process and its descendants, learnt while they live (events carry tgids).

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
        let tgid = event.task().tgid;
        let Some(root) = self.root else { return };
        if self.members.contains(&tgid) || self.strangers.contains(&tgid) {
            return;
        }
        if procfs::descends_from(tgid, root) {
            self.members.insert(tgid);
        } else {
            self.strangers.insert(tgid);
        }
    }

    /// Without a root every process is watched.
    pub fn contains(&self, tgid: u32) -> bool {
        self.root.is_none() || self.members.contains(&tgid)
    }
}
