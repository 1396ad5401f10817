//! What correlation counted besides findings: events, pins, and every eviction.

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub events: u64,
    pub longterm_pins: u64,
    /// Long-term pins of memory that needs no dirty tracking (anon, shmem, hugetlb, private).
    pub harmless_pins: u64,
    /// Pins dropped from the full live-pin ledger (oldest first).
    pub evicted_pins: u64,
    /// Dirty-tracked file pins dropped from their full tables (oldest first).
    pub evicted_file_pins: u64,
    /// Pinned file ranges `pinned-page-discarded` attributes to, dropped from its full table
    /// (oldest first).
    pub evicted_file_ranges: u64,
    /// Pinned page-cache folios freed with their file's last reference (close, munmap or exit
    /// of an unlinked file): no process maps them any more, so not a finding.
    pub discards_at_last_close: u64,
    /// Write faults that reused a pinned page in place (the safe outcome).
    pub pinned_reuses: u64,
    /// Processes not ranked in the summary because the tally was full.
    pub untallied_processes: u64,
}
