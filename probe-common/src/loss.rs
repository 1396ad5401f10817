//! Slots of the per-CPU `LOSSES` map: what the kernel side saw but userspace will never get.
//! With the records received, they account for every event.

/// A record was lost: the ring buffer was full.
pub const RINGBUF_DROPS: u32 = 0;
/// Pin calls inside records lost to a full ring buffer: one per lost pin record, a run's calls
/// per lost run record. With the pins received, they account for every long-term pin call.
pub const RINGBUF_DROPPED_PIN_CALLS: u32 = 1;
/// A record (or the state that leads to one) withheld because pinwatch was not ready: some
/// hook it depends on was still being attached (`ARMED` not yet set).
pub const WITHHELD_BEFORE_READY: u32 = 2;
pub const COUNT: u32 = 3;
