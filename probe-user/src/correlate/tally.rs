//! Long-term pinning by process over a watch: pages pinned, and pages still held at its end.

use std::collections::HashMap;

use serde::Serialize;

use super::live::{self, ProcKey};
use crate::{events::Task, findings::Process};

/// Long-term pinning by one process over a watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessPins {
    pub process: Process,
    /// Pages pinned long-term during the watch, summed over pin calls.
    pub pinned_pages: u64,
    /// Pages still pinned when the watch ended (as far as pinwatch saw the unpins).
    pub held_pages: u64,
}

/// Bounded by `cap` processes; one it has no room for is counted by the caller.
pub(super) struct Tally {
    cap: usize,
    by_process: HashMap<ProcKey, ProcessPins>,
}

impl Tally {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            by_process: HashMap::new(),
        }
    }

    /// Adds `pages` pinned by `task`'s process; `false` when the tally had no room for it.
    pub fn pinned(&mut self, task: &Task, pages: u64) -> bool {
        if let Some(t) = self.by_process.get_mut(&live::key(task)) {
            t.pinned_pages = t.pinned_pages.saturating_add(pages);
            return true;
        }
        if self.by_process.len() >= self.cap {
            return false;
        }
        self.by_process.insert(
            live::key(task),
            ProcessPins {
                process: Process::of(task),
                pinned_pages: pages,
                held_pages: 0,
            },
        );
        true
    }

    /// The processes by pages still held (`held`, from the live-pin ledger), most pinned first.
    pub fn ranked(mut self, held: impl Iterator<Item = (ProcKey, u64)>) -> Vec<ProcessPins> {
        for (process, pages) in held {
            if let Some(t) = self.by_process.get_mut(&process) {
                t.held_pages = t.held_pages.saturating_add(pages);
            }
        }
        let mut processes: Vec<ProcessPins> = self.by_process.into_values().collect();
        processes.sort_by(|a, b| {
            (b.pinned_pages, b.held_pages, a.process.tgid).cmp(&(
                a.pinned_pages,
                a.held_pages,
                b.process.tgid,
            ))
        });
        processes
    }
}
