//! The correlator's windows and table sizes.

#[derive(Debug, Clone)]
pub struct Config {
    pub reorder_ns: u64,
    pub settle_ns: u64,
    /// Entries in each of the smaller tables (file pins, processes, reorder helpers).
    pub max_pins: usize,
    /// Entries in the live-pin ledger: one per granted long-term pin call still held.
    pub max_live_pins: usize,
}

/// 16 io_uring rings' worth of single-page buffers (16 × 16,384 pin calls) at 40 bytes each.
pub const DEFAULT_MAX_LIVE_PINS: usize = 1 << 18;

impl Default for Config {
    fn default() -> Self {
        Self {
            reorder_ns: 50_000_000,
            settle_ns: 1_000_000_000,
            max_pins: 65_536,
            max_live_pins: DEFAULT_MAX_LIVE_PINS,
        }
    }
}
