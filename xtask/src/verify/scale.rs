//! Checks of the scale pass: a storm of 278,528 long-term pin calls (17 io_uring rings of 16,384
//! single-page buffers) against the daemon, whose live-pin ledger holds 262,144.
//!
//! Every pin call must be accounted for: received (`pinwatch_pins_total{longterm="true"}`) plus
//! dropped inside lost records (`pinwatch_ringbuf_dropped_pin_calls_total`) equals the pin calls
//! the workload made, exactly. The storm registers its buffers in descending order, so no call
//! joins a run in the kernel: one record per call. A second storm in ascending order (4 rings) must
//! be gathered into runs: every call and page exact, in few ledger entries, the last run read while
//! still open. The ledger's limit must be hit, counted and exported; the daemon's memory with
//! 262,144 pinned pages tracked must stay under 64 MiB; it must stay alive through the storm and
//! exit 0 on SIGTERM; and the released pins must leave nothing live.

use super::daemon::{Sample, samples, sum};
use crate::expect::Kernel;

/// The scale pass's figures, as the guest reported them.
pub struct Scale {
    pub status: String,
    pub held: Vec<Sample>,
    pub released: Vec<Sample>,
    /// The VFIO writeback storm's status line and the scrape after it.
    pub clean_status: String,
    pub cleaned: Vec<Sample>,
    /// The storm gathered into runs: its status line and the scrapes while held and after.
    pub runs_status: String,
    pub runs_held: Vec<Sample>,
    pub runs_released: Vec<Sample>,
}

/// The runs storm: 4 rings of 16,384 contiguous single-page buffers.
const RUNS_CALLS: f64 = 4.0 * 16384.0;

/// Ledger entries the runs storm may take at most: a run is one entry per read while open,
/// nowhere near one per call.
const RUNS_MAX_ENTRIES: f64 = RUNS_CALLS / 16.0;

/// The writeback storm: 4,096 pinned pages written back 20 times.
const STORM_CLEANS: f64 = 4096.0 * 20.0;

const LEDGER_CAP: f64 = 262_144.0;
const RSS_LIMIT: f64 = 64.0 * 1024.0 * 1024.0;

pub fn parse(output: &str) -> Option<Scale> {
    let status = output
        .lines()
        .find_map(|l| l.strip_prefix("PINWATCH-RESULT scale "))?
        .to_owned();
    let scrape = |prefix: &str| {
        let text: Vec<&str> = output
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .collect();
        samples(&text.join("\n"))
    };
    let clean_status = output
        .lines()
        .find_map(|l| l.strip_prefix("PINWATCH-RESULT clean-storm "))
        .unwrap_or_default()
        .to_owned();
    let runs_status = output
        .lines()
        .find_map(|l| l.strip_prefix("PINWATCH-RESULT scale-runs "))
        .unwrap_or_default()
        .to_owned();
    Some(Scale {
        status,
        held: scrape("PINWATCH-SCALE-HELD "),
        released: scrape("PINWATCH-SCALE-RELEASED "),
        clean_status,
        cleaned: scrape("PINWATCH-SCALE-CLEANED "),
        runs_status,
        runs_held: scrape("PINWATCH-RUNS-HELD "),
        runs_released: scrape("PINWATCH-RUNS-RELEASED "),
    })
}

/// Long-term pin calls received, and those inside records the kernel dropped.
fn pin_calls(s: &[Sample]) -> (f64, f64) {
    (
        sum(s, "pinwatch_pins_total", &[("longterm", "true")]),
        sum(s, "pinwatch_ringbuf_dropped_pin_calls_total", &[]),
    )
}

/// `key=value` from the status line.
fn field(status: &str, key: &str) -> Option<f64> {
    status
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// What the scale pass showed, for the log: rate, drops, memory.
pub fn summary(kernel: &Kernel, scale: &Scale) -> String {
    let h = &scale.held;
    let cleaned = |s: &[Sample]| sum(s, "pinwatch_events_total", &[("kind", "mkclean-pinned")]);
    format!(
        "{} scale: {} pin calls at {:.0}/s; received {}, dropped {} (in {} records); {} live pages tracked, {} evicted; RSS {:.1} MiB; runs: {} calls in {} ledger entries; writeback storm: {} pinned-clean events",
        kernel.name,
        field(&scale.status, "calls").unwrap_or(0.0),
        field(&scale.status, "rate").unwrap_or(0.0),
        pin_calls(h).0,
        pin_calls(h).1,
        sum(h, "pinwatch_ringbuf_drops_total", &[]),
        sum(h, "pinwatch_live_pinned_pages", &[]),
        sum(h, "pinwatch_correlation_evictions_total", &[]),
        sum(h, "process_resident_memory_bytes", &[]) / 1048576.0,
        pin_calls(&scale.runs_held).0 - pin_calls(&scale.released).0,
        sum(
            &scale.runs_held,
            "pinwatch_correlation_entries",
            &[("table", "live-pins")]
        ),
        cleaned(&scale.cleaned) - cleaned(&scale.runs_released),
    )
}

pub fn check(kernel: &Kernel, scale: &Scale, fails: &mut Vec<String>) {
    let k = format!("{} scale", kernel.name);
    let mut fail = |what: String| fails.push(format!("{k}: {what}"));
    if !scale.status.starts_with("0 ") || !scale.status.contains(" ok ") {
        fail(format!(
            "status `{}` (want exit 0 on SIGTERM and the workload ok)",
            scale.status
        ));
        return;
    }
    let Some(calls) = field(&scale.status, "calls") else {
        return fail(format!("no call count in `{}`", scale.status));
    };
    let h = &scale.held;
    if h.is_empty() {
        return fail("no scrape while the pins were held (the daemon died?)".into());
    }
    let (received, dropped) = pin_calls(h);
    if received + dropped != calls {
        fail(format!(
            "{received} pin calls received + {dropped} dropped != {calls} pin calls made"
        ));
    }
    let cap = sum(h, "pinwatch_correlation_max_entries", &[]);
    if cap != LEDGER_CAP {
        fail(format!("ledger limit exported as {cap}, want {LEDGER_CAP}"));
    }
    // Each received pin is one ledger entry of one page: the ledger is full, the rest evicted.
    let live = sum(h, "pinwatch_live_pinned_pages", &[("pinner", "io_uring")]);
    let evicted = sum(h, "pinwatch_correlation_evictions_total", &[]);
    let entries = sum(h, "pinwatch_correlation_entries", &[("table", "live-pins")]);
    let want_live = received.min(LEDGER_CAP);
    if live != want_live || entries != want_live || evicted != received - want_live {
        fail(format!(
            "{live} live pages, {entries} ledger entries, {evicted} evictions; want {want_live}, {want_live}, {}",
            received - want_live
        ));
    }
    if live < 250_000.0 {
        fail(format!(
            "only {live} live pinned pages tracked (want ≥ 250,000)"
        ));
    }
    let rss = sum(h, "process_resident_memory_bytes", &[]);
    if rss <= 0.0 || rss >= RSS_LIMIT {
        fail(format!(
            "daemon RSS {:.1} MiB with {live} pinned pages tracked (limit 64 MiB)",
            rss / 1048576.0
        ));
    }
    let r = &scale.released;
    if r.is_empty() {
        return fail("no scrape after the pins were released (the daemon died?)".into());
    }
    let left = sum(r, "pinwatch_live_pinned_pages", &[]);
    if left != 0.0 {
        fail(format!(
            "{left} pinned pages still live after every ring was unregistered"
        ));
    }
    check_runs(scale, &mut fail);
    check_clean_storm(kernel, scale, &mut fail);
}

/// The storm in ascending order: gathered into runs, yet exact in calls and pages.
fn check_runs(scale: &Scale, fail: &mut impl FnMut(String)) {
    let (held, released) = (&scale.runs_held, &scale.runs_released);
    if !scale.runs_status.contains("pinned pages=65536") || held.is_empty() || released.is_empty() {
        return fail(format!(
            "runs storm: status `{}`, {} and {} samples (want 65,536 pages pinned, two scrapes)",
            scale.runs_status,
            held.len(),
            released.len()
        ));
    }
    let (received, dropped) = pin_calls(held);
    let before = pin_calls(&scale.released);
    let calls = received + dropped - before.0 - before.1;
    if calls != RUNS_CALLS {
        fail(format!(
            "runs storm: {calls} pin calls accounted (received + dropped), want {RUNS_CALLS}"
        ));
    }
    let live = sum(
        held,
        "pinwatch_live_pinned_pages",
        &[("pinner", "io_uring")],
    );
    if dropped == before.1 && live != RUNS_CALLS {
        fail(format!(
            "runs storm: {live} live pinned pages while held, want {RUNS_CALLS}"
        ));
    }
    let entries = sum(
        held,
        "pinwatch_correlation_entries",
        &[("table", "live-pins")],
    );
    if entries > RUNS_MAX_ENTRIES {
        fail(format!(
            "runs storm: {entries} ledger entries for {RUNS_CALLS} pin calls (want at most {RUNS_MAX_ENTRIES}: runs, not calls)"
        ));
    }
    let left = sum(released, "pinwatch_live_pinned_pages", &[]);
    if left != 0.0 {
        fail(format!(
            "runs storm: {left} pinned pages still live after every ring was unregistered"
        ));
    }
}

/// Pinned folios cleaned by writeback, counted in the kernel: each is a received event or a
/// counted drop. Only where the kernel grants the long-term file pin (6.1) are there any.
fn check_clean_storm(kernel: &Kernel, scale: &Scale, fail: &mut impl FnMut(String)) {
    let (r, c) = (&scale.runs_released, &scale.cleaned);
    if c.is_empty() {
        return fail("no scrape after the writeback storm (the daemon died?)".into());
    }
    let delta = |name: &str, labels: &[(&str, &str)]| sum(c, name, labels) - sum(r, name, labels);
    let cleans = delta(
        "pinwatch_pinned_folio_cleans_total",
        &[("classified", "true")],
    );
    let received = delta("pinwatch_events_total", &[("kind", "mkclean-pinned")]);
    let dropped = delta("pinwatch_ringbuf_drops_total", &[]);
    let granted = kernel
        .behaviours
        .contains(&("longterm-file-pin", "granted"));
    let status = &scale.clean_status;
    if granted {
        if !status.contains("ok mapped+unmapped 4096 pages") {
            fail(format!(
                "writeback storm status `{status}` (want the pin granted)"
            ));
        }
        // Writeback before the first msync may clean a pinned folio once more.
        if !(STORM_CLEANS..=STORM_CLEANS + 4096.0).contains(&cleans) {
            fail(format!(
                "{cleans} pinned folios cleaned, want {STORM_CLEANS} (+ at most 4096)"
            ));
        }
        if received + dropped != cleans {
            fail(format!(
                "{received} pinned-clean events received + {dropped} dropped != {cleans} cleaned"
            ));
        }
    } else if !status.contains("refused") || cleans != 0.0 || received != 0.0 {
        fail(format!(
            "writeback storm `{status}`: {cleans} pinned folios cleaned, {received} events (want the pin refused, none)"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scale(held: &str) -> Scale {
        Scale {
            status: "0 calls=278528 pinned pages=278528 calls=278528 secs=30.0 rate=9284.3 unpinned pages=278528 workload pin-many: ok pages=278528".into(),
            held: samples(held),
            released: samples(RELEASED),
            clean_status: "refused errno=14 (EFAULT)".into(),
            cleaned: samples("pinwatch_ringbuf_drops_total 528\n"),
            runs_status: "pinned pages=65536 calls=65536 secs=4.0 rate=16384.0 unpinned pages=65536".into(),
            runs_held: samples(RUNS_HELD_OK),
            runs_released: samples("pinwatch_live_pinned_pages{pinner=\"io_uring\"} 0\n"),
        }
    }

    const RELEASED: &str = "\
pinwatch_live_pinned_pages{pinner=\"io_uring\"} 0
pinwatch_pins_total{pinner=\"io_uring\",longterm=\"true\",writable=\"true\",result=\"granted\"} 278000
pinwatch_ringbuf_dropped_pin_calls_total 528
";

    const RUNS_HELD_OK: &str = "\
pinwatch_live_pinned_pages{pinner=\"io_uring\"} 65536
pinwatch_pins_total{pinner=\"io_uring\",longterm=\"true\",writable=\"true\",result=\"granted\"} 343536
pinwatch_pins_total{pinner=\"unattributed\",longterm=\"false\",writable=\"true\",result=\"called\"} 9
pinwatch_ringbuf_dropped_pin_calls_total 528
pinwatch_correlation_entries{table=\"live-pins\"} 300
";

    const HELD_OK: &str = "\
pinwatch_pins_total{pinner=\"io_uring\",longterm=\"true\",writable=\"true\",result=\"granted\"} 278000
pinwatch_ringbuf_drops_total 528
pinwatch_ringbuf_dropped_pin_calls_total 528
pinwatch_correlation_max_entries 262144
pinwatch_live_pinned_pages{pinner=\"io_uring\"} 262144
pinwatch_correlation_entries{table=\"live-pins\"} 262144
pinwatch_correlation_evictions_total{table=\"live-pins\"} 15856
process_resident_memory_bytes 40000000
";

    #[test]
    fn exact_accounting_passes() {
        let kernel = crate::expect::kernel("6.12").expect("known");
        let mut fails = Vec::new();
        check(kernel, &scale(HELD_OK), &mut fails);
        assert!(fails.is_empty(), "{fails:?}");
    }

    #[test]
    fn a_granted_writeback_storm_is_counted_exactly() {
        let kernel = crate::expect::kernel("6.1").expect("known");
        let mut s = scale(HELD_OK);
        s.clean_status = "ok mapped+unmapped 4096 pages for DMA (file, rw, 20 writebacks)".into();
        let cleaned = |received: u32, dropped: u32| {
            samples(&format!(
                "pinwatch_pinned_folio_cleans_total{{classified=\"true\"}} 81920\n\
                 pinwatch_events_total{{kind=\"mkclean-pinned\"}} {received}\n\
                 pinwatch_ringbuf_drops_total {dropped}\n"
            ))
        };
        s.runs_released = samples("pinwatch_ringbuf_drops_total 0\n");
        s.cleaned = cleaned(81_000, 920);
        let mut fails = Vec::new();
        check(kernel, &s, &mut fails);
        assert!(fails.is_empty(), "{fails:?}");
        s.cleaned = cleaned(81_000, 919);
        check(kernel, &s, &mut fails);
        assert_eq!(fails.len(), 1, "{fails:?}");
    }

    #[test]
    fn a_lost_event_a_miscount_or_too_much_memory_fails() {
        let kernel = crate::expect::kernel("6.12").expect("known");
        for (from, to) in [
            ("pin_calls_total 528", "pin_calls_total 527"),
            (
                "evictions_total{table=\"live-pins\"} 15856",
                "evictions_total{table=\"live-pins\"} 0",
            ),
            (
                "process_resident_memory_bytes 40000000",
                "process_resident_memory_bytes 70000000",
            ),
        ] {
            let mut fails = Vec::new();
            check(kernel, &scale(&HELD_OK.replace(from, to)), &mut fails);
            assert_eq!(fails.len(), 1, "{from} -> {to}: {fails:?}");
        }
    }

    #[test]
    fn a_runs_storm_must_be_exact_in_calls_and_pages_and_few_entries() {
        let kernel = crate::expect::kernel("6.12").expect("known");
        for (from, to) in [
            ("343536", "343535"),
            ("{pinner=\"io_uring\"} 65536", "{pinner=\"io_uring\"} 65535"),
            ("{table=\"live-pins\"} 300", "{table=\"live-pins\"} 65536"),
        ] {
            let mut s = scale(HELD_OK);
            s.runs_held = samples(&RUNS_HELD_OK.replace(from, to));
            let mut fails = Vec::new();
            check(kernel, &s, &mut fails);
            assert_eq!(fails.len(), 1, "{from} -> {to}: {fails:?}");
        }
        let mut s = scale(HELD_OK);
        s.runs_status = "error: ring 3/4: EAGAIN".into();
        let mut fails = Vec::new();
        check(kernel, &s, &mut fails);
        assert_eq!(fails.len(), 1, "{fails:?}");
    }
}
