//! pinwatch's own kernel maps whose inserts can fail, and the slots of the per-CPU
//! `MAP_INSERT_FAILURES` counter that counts each failure. A failed insert loses state (a pin
//! not tracked, unpins not watched, a fork or fault not classified), so it is never silent:
//! userspace exports it as `pinwatch_map_insert_failures_total{map}` and audit's
//! `counts.map_insert_failures`, and the eBPF side logs the rare ones through aya-log.

/// Long-term pins between their entry and their return.
pub const INFLIGHT: u32 = 0;
/// Tasks holding granted long-term pins whose unpins are watched.
pub const WATCH_UNPIN: u32 = 1;
/// The VMA each forking task is copying.
pub const FORKING: u32 = 2;
/// Write-protect faults in flight.
pub const WP_FAULTS: u32 = 3;
/// The last pin stack of each task (an LRU map: it evicts instead of failing when full).
pub const LAST_PIN_STACK: u32 = 4;
/// Tasks inside the single-VMA zap path.
pub const ZAPPING: u32 = 5;
/// Kernel stacks of pin callers (`bpf_get_stackid`: every attempt's bucket taken by another
/// stack, or a stack that could not be walked).
pub const STACKS: u32 = 6;
pub const COUNT: u32 = 7;

/// The maps' names in the eBPF object, by slot; metrics and JSON use them in lower case.
pub const NAMES: [&str; COUNT as usize] = [
    "INFLIGHT",
    "WATCH_UNPIN",
    "FORKING",
    "WP_FAULTS",
    "LAST_PIN_STACK",
    "ZAPPING",
    "STACKS",
];
