//! Per-CPU counters: the only thing hot paths touch. Userspace sums the CPUs at read time.

use aya_ebpf::{macros::map, maps::PerCpuArray};
use probe_common::{MAX_HOOKS, loss, map as maps, verdict};

/// Entry hits per hook id.
#[map]
static HOOK_HITS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_HOOKS, 0);

/// Return hits per hook id (only hooks with a return program).
#[map]
static HOOK_RETURNS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_HOOKS, 0);

/// What the in-kernel filters decided, by `probe_common::verdict` slot.
#[map]
static VERDICTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(verdict::COUNT, 0);

/// What userspace will never get, by `probe_common::loss` slot.
#[map]
static LOSSES: PerCpuArray<u64> = PerCpuArray::with_max_entries(loss::COUNT, 0);

/// Failed inserts into pinwatch's own maps, by `probe_common::map` slot.
#[map]
static MAP_INSERT_FAILURES: PerCpuArray<u64> = PerCpuArray::with_max_entries(maps::COUNT, 0);

#[inline(always)]
fn bump(map: &PerCpuArray<u64>, slot: u32) {
    if let Some(counter) = map.get_ptr_mut(slot) {
        // SAFETY: the pointer is this CPU's slot of a per-CPU array; nothing else writes it
        // while this program runs (programs are not preempted on the same CPU).
        unsafe { *counter += 1 }
    }
}

#[inline(always)]
pub fn entry(hook: u32) {
    bump(&HOOK_HITS, hook);
}

#[inline(always)]
pub fn ret(hook: u32) {
    bump(&HOOK_RETURNS, hook);
}

/// Counts a filter's verdict (`probe_common::verdict`).
#[inline(always)]
pub fn verdict(slot: u32) {
    bump(&VERDICTS, slot);
}

/// Counts a loss (`probe_common::loss`).
#[inline(always)]
pub fn lost(slot: u32) {
    bump(&LOSSES, slot);
}

/// Adds `n` to a loss slot.
#[inline(always)]
pub fn lost_n(slot: u32, n: u64) {
    if let Some(counter) = LOSSES.get_ptr_mut(slot) {
        // SAFETY: as in `bump`.
        unsafe { *counter += n }
    }
}

/// An insert into one of pinwatch's maps failed (full, or no memory): counted, never silent.
#[inline(always)]
pub fn insert_failed(map: u32) {
    bump(&MAP_INSERT_FAILURES, map);
}
