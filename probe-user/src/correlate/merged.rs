//! The findings of a watch, each merged with the earlier one it repeats: one report line per
//! registration even when GUP pins a range in several calls.

use crate::findings::Finding;

#[derive(Default)]
pub(super) struct MergedFindings(Vec<Finding>);

impl MergedFindings {
    /// Adds a finding, or grows the one it repeats ([`Finding::same_as`]).
    pub fn record(&mut self, finding: Finding) {
        match self.0.iter_mut().find(|f| f.same_as(&finding)) {
            Some(existing) => existing.merge(finding),
            None => self.0.push(finding),
        }
    }

    /// Findings whose last event is older than `before_ns`, removed.
    pub fn take_older(&mut self, before_ns: u64) -> Vec<Finding> {
        let (due, keep) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|f| f.last_ns < before_ns);
        self.0 = keep;
        due
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn into_vec(self) -> Vec<Finding> {
        self.0
    }
}
