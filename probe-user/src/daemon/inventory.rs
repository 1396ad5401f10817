//! The pins inventory of `pinwatch pins` (/proc, no eBPF) as gauges of the daemon: taken once
//! before the hooks are attached, so the pins that predate pinwatch are exported, and again
//! every [`INTERVAL`] on the pump's tick (a /proc walk is cheap, but not cheap enough for
//! every second on a host with thousands of processes).

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};

use super::catalog::family;
use crate::pins::Inventory;

/// How often the inventory is taken again after the first.
pub const INTERVAL: Duration = Duration::from_secs(30);

pub struct InventoryGauges {
    pages: IntGaugeVec,
    unreadable: IntGauge,
    /// (pinner, source) series ever set: kept at 0 once their pins are gone.
    seen: BTreeSet<(&'static str, &'static str)>,
    next: Instant,
}

fn opts(name: &str) -> Opts {
    Opts::new(name, family(name).help)
}

impl InventoryGauges {
    pub fn new(registry: &Registry) -> Self {
        let pages_name = "pinwatch_procfs_pinned_pages";
        let gauges = Self {
            pages: IntGaugeVec::new(opts(pages_name), family(pages_name).labels).expect("valid"),
            unreadable: IntGauge::with_opts(opts("pinwatch_procfs_unreadable_processes"))
                .expect("valid"),
            seen: BTreeSet::new(),
            next: Instant::now() + INTERVAL,
        };
        registry
            .register(Box::new(gauges.pages.clone()))
            .expect("metric names are unique");
        registry
            .register(Box::new(gauges.unreadable.clone()))
            .expect("metric names are unique");
        gauges
    }

    /// Takes the inventory again when it is due.
    pub fn refresh_if_due(&mut self, now: Instant) {
        if now >= self.next {
            self.next = now + INTERVAL;
            self.set(take().as_ref());
        }
    }

    /// Exports an inventory; `None` (/proc unreadable, already logged) keeps the last values.
    pub fn set(&mut self, inventory: Option<&Inventory>) {
        let Some(inv) = inventory else { return };
        for (pinner, source) in &self.seen {
            self.pages.with_label_values(&[pinner, source]).set(0);
        }
        for t in &inv.pinners {
            let key = (t.pinner.id(), t.source.id());
            self.seen.insert(key);
            let pages = i64::try_from(t.pages).unwrap_or(i64::MAX);
            self.pages.with_label_values(&[key.0, key.1]).set(pages);
        }
        self.unreadable.set(inv.unreadable.len() as i64);
    }
}

/// The inventory, or `None` with a warning: the daemon carries on without it.
pub fn take() -> Option<Inventory> {
    match crate::pins::take(std::path::Path::new("/proc")) {
        Ok(inv) => {
            if !inv.unreadable.is_empty() {
                log::warn!(
                    processes = inv.unreadable.len();
                    "pins inventory: some processes' fds could not be read (needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH)"
                );
            }
            Some(inv)
        }
        Err(e) => {
            log::warn!(error:% = e; "pins inventory not taken");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pins::inventory::{PinnerTotal, Source};

    fn inventory(pages: Option<u64>) -> Inventory {
        Inventory {
            schema: 2,
            kernel: "test".into(),
            taken_at_unix: 0.0,
            page_size: 4096,
            complete: true,
            processes: Vec::new(),
            pinners: pages
                .map(|pages| PinnerTotal {
                    pinner: crate::pinner::Pinner::IoUring,
                    source: Source::Fdinfo,
                    pages,
                    processes: 1,
                    exact: true,
                })
                .into_iter()
                .collect(),
            rings_busy: 0,
            unreadable: Vec::new(),
            cannot_see: &[],
        }
    }

    #[test]
    fn pins_that_end_drop_their_series_to_zero() {
        let registry = Registry::new();
        let mut gauges = InventoryGauges::new(&registry);
        gauges.set(Some(&inventory(Some(37))));
        let gauge = gauges.pages.with_label_values(&["io_uring", "fdinfo"]);
        let series = || gauge.get();
        assert_eq!(series(), 37);
        gauges.set(None);
        assert_eq!(series(), 37, "an inventory not taken keeps the last values");
        gauges.set(Some(&inventory(None)));
        assert_eq!(series(), 0);
    }
}
