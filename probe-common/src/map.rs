//! pinwatch's own kernel maps whose inserts can fail, and the slots of the per-CPU
//! `MAP_INSERT_FAILURES` counter that counts each failure. A failed insert loses state (a pin
//! not tracked, a fork or fault not classified), so it is never silent:
//! userspace exports it as `pinwatch_map_insert_failures_total{map}` and audit's
//! `counts.map_insert_failures`, and the eBPF side logs the rare ones through aya-log.

/// Each task's long-term pins, from its first to its exit (`TaskPins`): the calls gathered,
/// and the pages whose unpins are watched.
pub const INFLIGHT: u32 = 0;
/// The VMA each forking task is copying.
pub const FORKING: u32 = 1;
/// Write-protect faults in flight.
pub const WP_FAULTS: u32 = 2;
/// The last pin stack of each task (an LRU map: it evicts instead of failing when full).
pub const LAST_PIN_STACK: u32 = 3;
/// Tasks inside the single-VMA zap path.
pub const ZAPPING: u32 = 4;
/// Kernel stacks of pin callers (`bpf_get_stackid`: every attempt's bucket taken by another
/// stack, or a stack that could not be walked).
pub const STACKS: u32 = 5;
pub const COUNT: u32 = 6;

/// The maps' names in the eBPF object, by slot; metrics and JSON use them in lower case.
pub const NAMES: [&str; COUNT as usize] = [
    "INFLIGHT",
    "FORKING",
    "WP_FAULTS",
    "LAST_PIN_STACK",
    "ZAPPING",
    "STACKS",
];
