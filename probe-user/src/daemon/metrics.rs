//! The Prometheus metrics `pinwatch run` exports. One `pinwatch_` prefix, base units, `_total`
//! counters, and bounded labels only: hook, method, hazard, outcome, kernel-side pinner names
//! (io_uring, vfio…: a handful of kernel subsystems), never pids, addresses or paths.
//!
//! Kernel-side counters are cumulative per-CPU sums; they reach Prometheus counters as the
//! difference from the previous read, so a counter never goes backwards.

use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use super::catalog::family;
use crate::{
    attach::Attachment,
    correlate::{Correlator, Released, Stats},
    counters::Counters,
    events::Event,
    findings::{Finding, Outcome},
    hazards::Hazard,
    kernel::flags::FollFlags,
    observability::HazardStatus,
    pinner::Pinner,
    pipeline::Observer,
    probes::HOOKS,
};

/// Pin lifetimes span a registration torn down at once to a VM that runs for months.
const PIN_AGE_BUCKETS: [f64; 12] = [
    0.001,
    0.01,
    0.1,
    1.0,
    10.0,
    60.0,
    600.0,
    3600.0,
    21600.0,
    86400.0,
    604_800.0,
    2_592_000.0,
];

/// `source` labels of `pinwatch_pinned_page_discards_total`.
const DISCARD_SOURCES: [&str; 3] = ["page-cache", "madvise", "unclassified"];

/// Pinner label of pins the kernel counts without a stack (short-term pins are not traced).
const UNATTRIBUTED: &str = "unattributed";

pub struct Metrics {
    registry: Registry,
    foll_write: u32,
    pins: IntCounterVec,
    unpinned_pages: IntCounterVec,
    live_pinned_pages: IntGaugeVec,
    pin_age: HistogramVec,
    findings: IntCounterVec,
    finding_pages: IntCounterVec,
    pinned_folio_cleans: IntCounterVec,
    pinned_page_discards: IntCounterVec,
    forks_with_pins: IntCounter,
    fork_copied_pages: IntCounter,
    pinned_page_faults: IntCounterVec,
    pfn_untracks: IntCounterVec,
    pfn_tracks: IntCounter,
    hook_attached: IntGaugeVec,
    hook_calls: IntCounterVec,
    hazard_observable: IntGaugeVec,
    events: IntCounterVec,
    decode_errors: IntCounter,
    ringbuf_drops: IntCounter,
    ringbuf_dropped_pin_calls: IntCounter,
    map_insert_failures: IntCounterVec,
    withheld_before_ready: IntCounter,
    ready_time: prometheus::Gauge,
    correlation_entries: IntGaugeVec,
    correlation_limit: IntGauge,
    correlation_evictions: IntCounterVec,
    build_info: IntGaugeVec,
    /// Previous kernel counter and correlation totals, for deltas.
    last_kernel: Counters,
    last_stats: Stats,
    last_decode_errors: u64,
    /// Pinners the live-pages gauge has a series for.
    pinners: std::collections::BTreeSet<Pinner>,
    /// Series already looked up, so that a record costs no label hashing (see [`SeriesCache`]).
    series: SeriesCache,
}

/// The per-record series, resolved once each: `with_label_values` hashes every label and takes
/// a lock, which in a pin storm cost more than correlating the record. The keys are few
/// (record kinds, pinners × writable × result), so a short list searched by key
/// beats a map.
#[derive(Default)]
struct SeriesCache {
    events: Vec<(&'static str, IntCounter)>,
    pins: Vec<(PinSeries, IntCounter)>,
    /// pinner → (`pinwatch_unpinned_pages_total`, `pinwatch_pin_age_seconds`) series.
    released: Vec<(Pinner, (IntCounter, prometheus::Histogram))>,
}

/// (pinner, writable, granted): the labels of a `pinwatch_pins_total` series.
type PinSeries = (Pinner, bool, bool);

/// The entry of `list` whose key `matches`, made by `make` the first time.
fn cached<K, V>(
    list: &mut Vec<(K, V)>,
    matches: impl Fn(&K) -> bool,
    make: impl FnOnce() -> (K, V),
) -> &V {
    let at = match list.iter().position(|(k, _)| matches(k)) {
        Some(at) => at,
        None => {
            list.push(make());
            list.len() - 1
        }
    };
    &list[at].1
}

fn opts(name: &str) -> Opts {
    Opts::new(name, family(name).help)
}

impl Metrics {
    pub fn new(flags: &FollFlags, kernel: &str) -> Self {
        let counter_vec =
            |name| IntCounterVec::new(opts(name), family(name).labels).expect("valid");
        let gauge_vec = |name| IntGaugeVec::new(opts(name), family(name).labels).expect("valid");
        let counter = |name| IntCounter::with_opts(opts(name)).expect("valid");
        let m = Self {
            registry: Registry::new(),
            foll_write: flags.value("FOLL_WRITE").unwrap_or(1),
            pins: counter_vec("pinwatch_pins_total"),
            unpinned_pages: counter_vec("pinwatch_unpinned_pages_total"),
            live_pinned_pages: gauge_vec("pinwatch_live_pinned_pages"),
            pin_age: HistogramVec::new(
                HistogramOpts::new(
                    "pinwatch_pin_age_seconds",
                    family("pinwatch_pin_age_seconds").help,
                )
                .buckets(PIN_AGE_BUCKETS.to_vec()),
                family("pinwatch_pin_age_seconds").labels,
            )
            .expect("valid"),
            findings: counter_vec("pinwatch_findings_total"),
            finding_pages: counter_vec("pinwatch_finding_pages_total"),
            pinned_folio_cleans: counter_vec("pinwatch_pinned_folio_cleans_total"),
            pinned_page_discards: counter_vec("pinwatch_pinned_page_discards_total"),
            forks_with_pins: counter("pinwatch_forks_with_pins_total"),
            fork_copied_pages: counter("pinwatch_fork_copied_pages_total"),
            pinned_page_faults: counter_vec("pinwatch_pinned_page_faults_total"),
            pfn_untracks: counter_vec("pinwatch_pfn_untracks_total"),
            pfn_tracks: counter("pinwatch_pfn_tracks_total"),
            hook_attached: gauge_vec("pinwatch_hook_attached"),
            hook_calls: counter_vec("pinwatch_hook_calls_total"),
            hazard_observable: gauge_vec("pinwatch_hazard_observable"),
            events: counter_vec("pinwatch_events_total"),
            decode_errors: counter("pinwatch_event_decode_errors_total"),
            ringbuf_drops: counter("pinwatch_ringbuf_drops_total"),
            ringbuf_dropped_pin_calls: counter("pinwatch_ringbuf_dropped_pin_calls_total"),
            map_insert_failures: counter_vec("pinwatch_map_insert_failures_total"),
            withheld_before_ready: counter("pinwatch_withheld_before_ready_total"),
            ready_time: prometheus::Gauge::with_opts(opts("pinwatch_ready_time_seconds"))
                .expect("valid"),
            correlation_entries: gauge_vec("pinwatch_correlation_entries"),
            correlation_limit: IntGauge::with_opts(opts("pinwatch_correlation_max_entries"))
                .expect("valid"),
            correlation_evictions: counter_vec("pinwatch_correlation_evictions_total"),
            build_info: gauge_vec("pinwatch_build_info"),
            last_kernel: Counters::default(),
            last_stats: Stats::default(),
            last_decode_errors: 0,
            pinners: std::collections::BTreeSet::new(),
            series: SeriesCache::default(),
        };
        m.register_all();
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), kernel])
            .set(1);
        m.create_zero_series();
        m
    }

    /// Series that must exist before the first event, so that rate() and alerts see zero.
    fn create_zero_series(&self) {
        let m = self;
        for result in ["copied", "reused"] {
            m.pinned_page_faults.with_label_values(&[result]).reset();
        }
        for path in ["zap", "unmap"] {
            m.pfn_untracks.with_label_values(&[path]).reset();
        }
        for slot in 0..probe_common::map::COUNT {
            m.map_insert_failures
                .with_label_values(&[crate::counters::map_label(slot)])
                .reset();
        }
        for source in DISCARD_SOURCES {
            m.pinned_page_discards.with_label_values(&[source]).reset();
        }
        for classified in ["true", "false"] {
            m.pinned_folio_cleans
                .with_label_values(&[classified])
                .reset();
        }
        for hazard in Hazard::ALL {
            for outcome in Outcome::of(hazard) {
                let labels = [hazard.id(), outcome.id()];
                m.findings.with_label_values(&labels).reset();
                m.finding_pages.with_label_values(&labels).reset();
            }
        }
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.pins.clone()),
            Box::new(self.unpinned_pages.clone()),
            Box::new(self.live_pinned_pages.clone()),
            Box::new(self.pin_age.clone()),
            Box::new(self.findings.clone()),
            Box::new(self.finding_pages.clone()),
            Box::new(self.pinned_folio_cleans.clone()),
            Box::new(self.pinned_page_discards.clone()),
            Box::new(self.forks_with_pins.clone()),
            Box::new(self.fork_copied_pages.clone()),
            Box::new(self.pinned_page_faults.clone()),
            Box::new(self.pfn_untracks.clone()),
            Box::new(self.pfn_tracks.clone()),
            Box::new(self.hook_attached.clone()),
            Box::new(self.hook_calls.clone()),
            Box::new(self.hazard_observable.clone()),
            Box::new(self.events.clone()),
            Box::new(self.decode_errors.clone()),
            Box::new(self.ringbuf_drops.clone()),
            Box::new(self.ringbuf_dropped_pin_calls.clone()),
            Box::new(self.map_insert_failures.clone()),
            Box::new(self.withheld_before_ready.clone()),
            Box::new(self.ready_time.clone()),
            Box::new(self.correlation_entries.clone()),
            Box::new(self.correlation_limit.clone()),
            Box::new(self.correlation_evictions.clone()),
            Box::new(self.build_info.clone()),
        ];
        for c in collectors {
            self.registry.register(c).expect("metric names are unique");
        }
        // The client library's standard process_* metrics (resident memory, CPU, open fds),
        // as every exporter has them: pinwatch's own footprint.
        self.registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process metrics are registered once");
    }

    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    /// Which hooks are attached, how, and which hazards that makes observable.
    /// When observation began (every hook attached).
    pub fn ready(&self, at: std::time::SystemTime) {
        let secs = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.ready_time.set(secs);
    }

    pub fn attachments(&self, attachments: &[Attachment], hazards: &[HazardStatus]) {
        for a in attachments {
            let method = a.method_family().map_or("none", |m| m.name());
            self.hook_attached
                .with_label_values(&[a.hook, method])
                .set(i64::from(a.attached));
        }
        for h in hazards {
            self.hazard_observable
                .with_label_values(&[h.id.id()])
                .set(i64::from(h.observable));
        }
    }

    pub fn finding(&self, f: &Finding) {
        let labels = [f.hazard.id(), f.outcome.id()];
        self.findings.with_label_values(&labels).inc();
        self.finding_pages
            .with_label_values(&labels)
            .inc_by(f.pages);
    }

    /// Kernel-side counters, as deltas since the last read.
    pub fn kernel_counters(&mut self, now: &Counters) {
        let last = &self.last_kernel;
        let delta = |now: u64, before: u64| now.saturating_sub(before);
        for hook in HOOKS {
            let calls = delta(now.hits(hook.id), last.hits(hook.id));
            self.hook_calls
                .with_label_values(&[hook.name])
                .inc_by(calls);
            if hook.name == "pfn_track" {
                self.pfn_tracks.inc_by(calls);
            }
        }
        let (f, l) = (&now.verdicts, &last.verdicts);
        let short = [
            ("true", f.short_term_pins_write, l.short_term_pins_write),
            ("false", f.short_term_pins_read, l.short_term_pins_read),
        ];
        for (writable, now, before) in short {
            self.pins
                .with_label_values(&[UNATTRIBUTED, "false", writable, "called"])
                .inc_by(delta(now, before));
        }
        self.pinned_folio_cleans
            .with_label_values(&["true"])
            .inc_by(delta(f.mkclean_pinned, l.mkclean_pinned));
        self.pinned_folio_cleans
            .with_label_values(&["false"])
            .inc_by(delta(f.mkclean_unclassified, l.mkclean_unclassified));
        let discards = [
            (f.discard_pinned, l.discard_pinned),
            (f.madvise_discard_by_pinner, l.madvise_discard_by_pinner),
            (f.discard_unclassified, l.discard_unclassified),
        ];
        for (source, (now, before)) in DISCARD_SOURCES.iter().zip(discards) {
            self.pinned_page_discards
                .with_label_values(&[source])
                .inc_by(delta(now, before));
        }
        let (lost, before) = (&now.losses, &last.losses);
        self.ringbuf_drops
            .inc_by(delta(lost.ringbuf_drops, before.ringbuf_drops));
        self.ringbuf_dropped_pin_calls.inc_by(delta(
            lost.ringbuf_dropped_pin_calls,
            before.ringbuf_dropped_pin_calls,
        ));
        self.withheld_before_ready.inc_by(delta(
            lost.withheld_before_ready,
            before.withheld_before_ready,
        ));
        for (map, failures) in &now.map_insert_failures {
            let before = last.map_insert_failures.get(map).copied().unwrap_or(0);
            self.map_insert_failures
                .with_label_values(&[map])
                .inc_by(delta(*failures, before));
        }
        self.last_kernel = now.clone();
    }

    /// The correlator's state: table sizes, evictions, live pinned pages by pinner.
    pub fn correlation(&mut self, correlator: &Correlator, decode_errors: u64) {
        for (table, size) in correlator.table_sizes() {
            self.correlation_entries
                .with_label_values(&[table])
                .set(size as i64);
        }
        self.correlation_limit.set(correlator.max_entries() as i64);
        let stats = correlator.stats();
        for (table, now, before) in [
            (
                "live-pins",
                stats.evicted_pins,
                self.last_stats.evicted_pins,
            ),
            (
                "file-pins",
                stats.evicted_file_pins,
                self.last_stats.evicted_file_pins,
            ),
            (
                "pinned-file-ranges",
                stats.evicted_file_ranges,
                self.last_stats.evicted_file_ranges,
            ),
        ] {
            self.correlation_evictions
                .with_label_values(&[table])
                .inc_by(now.saturating_sub(before));
        }
        self.last_stats = stats.clone();
        self.decode_errors
            .inc_by(decode_errors.saturating_sub(self.last_decode_errors));
        self.last_decode_errors = decode_errors;
        // Pinners whose pins are all gone drop to 0 rather than vanish: the gauge stays honest.
        let live = correlator.live_pages_by_pinner();
        for pinner in &self.pinners {
            if !live.contains_key(pinner) {
                self.live_pinned_pages
                    .with_label_values(&[pinner.id()])
                    .set(0);
            }
        }
        for (pinner, pages) in live {
            self.live_pinned_pages
                .with_label_values(&[pinner.id()])
                .set(pages as i64);
            self.pinners.insert(pinner);
        }
    }

    /// The text exposition format, as served on /metrics.
    pub fn render(registry: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .expect("encoding into memory cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Observer for Metrics {
    fn event(&mut self, event: &Event) {
        let kind = event.kind();
        let events = &self.events;
        cached(
            &mut self.series.events,
            |k| *k == kind,
            || (kind, events.with_label_values(&[kind])),
        )
        .inc();
        match event {
            Event::Pin(pin) => {
                let writable = pin.gup_flags & self.foll_write != 0;
                let granted = pin.ret > 0;
                let pins = &self.pins;
                let key = (pin.pinner, writable, granted);
                let series = cached(
                    &mut self.series.pins,
                    |k: &PinSeries| *k == key,
                    || {
                        let labels = [
                            pin.pinner.id(),
                            "true",
                            if writable { "true" } else { "false" },
                            if granted { "granted" } else { "failed" },
                        ];
                        (key, pins.with_label_values(&labels))
                    },
                );
                series.inc_by(pin.calls);
                // The live-pages series of a pinner exists from its first pin on.
                if self.pinners.insert(pin.pinner) {
                    self.live_pinned_pages
                        .with_label_values(&[pin.pinner.id()])
                        .set(0);
                }
            }
            Event::ForkCopy(copy) => self.fork_copied_pages.inc_by(copy.pages),
            Event::Fork(_) => self.forks_with_pins.inc(),
            Event::Spawn(_) => {}
            Event::PinnedCow(cow) => {
                let result = if cow.copied { "copied" } else { "reused" };
                self.pinned_page_faults.with_label_values(&[result]).inc();
            }
            Event::PfnUntrack(untrack) => {
                let path = if untrack.from_zap { "zap" } else { "unmap" };
                self.pfn_untracks.with_label_values(&[path]).inc();
            }
            Event::Unpin(_)
            | Event::MkcleanPinned(_)
            | Event::PageCacheDiscard(_)
            | Event::MadviseDiscard(_)
            | Event::GmemIoctlAgain(_) => {}
        }
    }

    fn released(&mut self, pin: &Released) {
        let (unpinned, age) = (&self.unpinned_pages, &self.pin_age);
        let (pages, held) = cached(
            &mut self.series.released,
            |k| *k == pin.pinner,
            || {
                let label = [pin.pinner.id()];
                (
                    pin.pinner,
                    (
                        unpinned.with_label_values(&label),
                        age.with_label_values(&label),
                    ),
                )
            },
        );
        pages.inc_by(pin.pages);
        held.observe(pin.held_ns as f64 / 1e9);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::catalog::CATALOG;

    /// Every pinwatch family served is in the catalog with its type, the finding series exist
    /// from the start (at 0, so the first finding is an increase), and the process's own
    /// footprint is there too. Label-keyed families appear with their first series.
    #[test]
    fn the_registry_serves_the_catalog() {
        let mut metrics = Metrics::new(&FollFlags::legacy(), "6.1.0-test");
        metrics.kernel_counters(&Counters::default());
        let text = Metrics::render(&metrics.registry());
        let mut served = 0;
        for line in text.lines().filter(|l| l.starts_with("# TYPE pinwatch_")) {
            let mut words = line.split_whitespace().skip(2);
            let (name, kind) = (words.next().unwrap(), words.next().unwrap());
            assert!(
                CATALOG.iter().any(|f| f.name == name && f.kind == kind),
                "{name} ({kind}) not in the catalog"
            );
            served += 1;
        }
        assert!(served >= 15, "only {served} families served:\n{text}");
        assert!(text.contains("process_resident_memory_bytes"));
        assert!(text.contains(
            "pinwatch_findings_total{hazard=\"longterm-file-pin\",outcome=\"granted\"} 0"
        ));
        assert!(text.contains("pinwatch_hook_calls_total{hook=\"folio_mkclean\"} 0"));
    }
}

#[cfg(test)]
#[path = "record_cost.rs"]
mod record_cost;
