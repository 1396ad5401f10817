//! Reads the per-CPU counters the eBPF programs bump, summed over CPUs.

use aya::{Ebpf, maps::PerCpuArray};
use probe_common::{MAX_HOOKS, loss, map, verdict};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    #[error("eBPF map {0} is missing from the object")]
    MissingMap(&'static str),
    #[error("reading eBPF map {map}: {source}")]
    Read {
        map: &'static str,
        source: aya::maps::MapError,
    },
}

/// A snapshot of every counter.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    pub hook_hits: Vec<u64>,
    pub hook_returns: Vec<u64>,
    pub verdicts: Verdicts,
    pub losses: Losses,
    /// Failed inserts into pinwatch's own kernel maps, by map (lower-case name).
    pub map_insert_failures: MapInsertFailures,
}

/// Failed inserts by map, every map present (from 0), in `probe_common::map` order.
pub type MapInsertFailures = std::collections::BTreeMap<&'static str, u64>;

/// A map's name as metrics and JSON show it.
pub fn map_label(slot: u32) -> &'static str {
    const LABELS: [&str; map::COUNT as usize] = [
        "inflight",
        "forking",
        "wp_faults",
        "last_pin_stack",
        "zapping",
        "stacks",
    ];
    LABELS[slot as usize]
}

/// What the in-kernel filters decided.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdicts {
    pub mkclean_pinned: u64,
    pub mkclean_unpinned: u64,
    pub mkclean_unclassified: u64,
    pub pin_failed: u64,
    pub dirty_tracking_needed: u64,
    /// Short-term pin calls (O_DIRECT, process_vm…), writable and read-only.
    pub short_term_pins_write: u64,
    pub short_term_pins_read: u64,
    /// Maybe-DMA-pinned folios removed from a file's page cache (each sent as an event).
    pub discard_pinned: u64,
    /// Page-cache removals that could not be classified (perf tracepoint, unknown layout).
    pub discard_unclassified: u64,
    /// MADV_DONTNEED(_LOCKED) calls by processes that have pinned (each sent as an event).
    pub madvise_discard_by_pinner: u64,
    /// MADV_FREE calls by processes that have pinned: reclaim keeps pinned lazy-free pages.
    pub madvise_free_by_pinner: u64,
}

/// What the kernel side saw and userspace will never get: nothing is lost uncounted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Losses {
    /// Records lost to a full ring buffer.
    pub ringbuf_drops: u64,
    /// Long-term pin calls in those lost records (a run stands for many).
    pub ringbuf_dropped_pin_calls: u64,
    /// Records (or correlations) withheld while hooks were still attaching.
    pub withheld_before_ready: u64,
}

impl Counters {
    pub fn read(ebpf: &Ebpf) -> Result<Self, CounterError> {
        // Unpinned cleans are derived: calls minus the other verdicts. A folio cleaned while
        // the two maps are read makes it off by one until the next read, never for good.
        let hook_hits = sum_all(ebpf, "HOOK_HITS", MAX_HOOKS)?;
        let verdicts = sum_all(ebpf, "VERDICTS", verdict::COUNT)?;
        let losses = sum_all(ebpf, "LOSSES", loss::COUNT)?;
        let cleaned = hook_hits
            .get(probe_common::hook::FOLIO_MKCLEAN as usize)
            .copied()
            .unwrap_or(0);
        let mkclean_pinned = verdicts[verdict::MKCLEAN_PINNED as usize];
        let mkclean_unclassified = verdicts[verdict::MKCLEAN_UNCLASSIFIED as usize];
        Ok(Self {
            hook_returns: sum_all(ebpf, "HOOK_RETURNS", MAX_HOOKS)?,
            map_insert_failures: sum_all(ebpf, "MAP_INSERT_FAILURES", map::COUNT)?
                .into_iter()
                .enumerate()
                .map(|(slot, n)| (map_label(slot as u32), n))
                .collect(),
            hook_hits,
            verdicts: Verdicts {
                mkclean_pinned,
                mkclean_unpinned: cleaned
                    .saturating_sub(mkclean_pinned)
                    .saturating_sub(mkclean_unclassified),
                mkclean_unclassified,
                pin_failed: verdicts[verdict::PIN_FAILED as usize],
                dirty_tracking_needed: verdicts[verdict::DIRTY_TRACKING_NEEDED as usize],
                short_term_pins_write: verdicts[verdict::SHORT_TERM_PIN_WRITE as usize],
                short_term_pins_read: verdicts[verdict::SHORT_TERM_PIN_READ as usize],
                discard_pinned: verdicts[verdict::DISCARD_PINNED as usize],
                discard_unclassified: verdicts[verdict::DISCARD_UNCLASSIFIED as usize],
                madvise_discard_by_pinner: verdicts[verdict::MADVISE_DISCARD_BY_PINNER as usize],
                madvise_free_by_pinner: verdicts[verdict::MADVISE_FREE_BY_PINNER as usize],
            },
            losses: Losses {
                ringbuf_drops: losses[loss::RINGBUF_DROPS as usize],
                ringbuf_dropped_pin_calls: losses[loss::RINGBUF_DROPPED_PIN_CALLS as usize],
                withheld_before_ready: losses[loss::WITHHELD_BEFORE_READY as usize],
            },
        })
    }

    pub fn hits(&self, hook: u32) -> u64 {
        self.hook_hits.get(hook as usize).copied().unwrap_or(0)
    }

    pub fn returns(&self, hook: u32) -> u64 {
        self.hook_returns.get(hook as usize).copied().unwrap_or(0)
    }
}

fn sum_all(ebpf: &Ebpf, name: &'static str, slots: u32) -> Result<Vec<u64>, CounterError> {
    let map = ebpf.map(name).ok_or(CounterError::MissingMap(name))?;
    let array = PerCpuArray::<_, u64>::try_from(map)
        .map_err(|source| CounterError::Read { map: name, source })?;
    (0..slots)
        .map(|slot| {
            let values = array
                .get(&slot, 0)
                .map_err(|source| CounterError::Read { map: name, source })?;
            Ok(values.iter().sum())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_labels_are_the_object_names_in_lower_case() {
        for (slot, name) in map::NAMES.iter().enumerate() {
            assert_eq!(map_label(slot as u32), name.to_lowercase());
        }
    }
}
