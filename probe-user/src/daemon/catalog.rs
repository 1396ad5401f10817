//! The catalog of metrics `pinwatch run` exports: names, types, help and label names. The
//! registry in `metrics.rs` is built from it, `pinwatch metrics` prints it, and the dashboard
//! checks (`cargo xtask dashboards`) compare against it.

/// Metric name, help and label names: the one catalog `pinwatch metrics` prints and the
/// dashboards are checked against.
pub struct Family {
    pub name: &'static str,
    pub kind: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

pub const CATALOG: &[Family] = &[
    Family {
        name: "pinwatch_pins_total",
        kind: "counter",
        help: "GUP pin calls, by pinner, long-term or not, writable or not, and result (short-term pins are counted in the kernel without a pinner)",
        labels: &["pinner", "longterm", "writable", "result"],
    },
    Family {
        name: "pinwatch_unpinned_pages_total",
        kind: "counter",
        help: "Pages of long-term pins released by unpin, by pinner",
        labels: &["pinner"],
    },
    Family {
        name: "pinwatch_live_pinned_pages",
        kind: "gauge",
        help: "Pages held by live long-term pins pinwatch saw granted, by pinner",
        labels: &["pinner"],
    },
    Family {
        name: "pinwatch_pin_age_seconds",
        kind: "histogram",
        help: "How long long-term pins were held, observed when their last page is unpinned, by pinner",
        labels: &["pinner"],
    },
    Family {
        name: "pinwatch_findings_total",
        kind: "counter",
        help: "Findings reported, by hazard and outcome",
        labels: &["hazard", "outcome"],
    },
    Family {
        name: "pinwatch_finding_pages_total",
        kind: "counter",
        help: "Pages involved in findings, by hazard and outcome",
        labels: &["hazard", "outcome"],
    },
    Family {
        name: "pinwatch_pinned_folio_cleans_total",
        kind: "counter",
        help: "Folios writeback cleaned (folio_mkclean) while maybe DMA-pinned, by whether pinwatch could classify the folio",
        labels: &["classified"],
    },
    Family {
        name: "pinwatch_pinned_page_discards_total",
        kind: "counter",
        help: "Maybe DMA-pinned memory taken from processes, by source: page-cache folios removed (truncate, punch hole, MADV_REMOVE; \"page-cache\") and MADV_DONTNEED calls by processes that pinned (\"madvise\"), or page-cache removals pinwatch could not classify (\"unclassified\")",
        labels: &["source"],
    },
    Family {
        name: "pinwatch_forks_with_pins_total",
        kind: "counter",
        help: "Forks by processes that have pinned pages (MMF_HAS_PINNED)",
        labels: &[],
    },
    Family {
        name: "pinwatch_fork_copied_pages_total",
        kind: "counter",
        help: "Pinned anonymous pages copied eagerly for a child at fork",
        labels: &[],
    },
    Family {
        name: "pinwatch_pinned_page_faults_total",
        kind: "counter",
        help: "Write or unshare faults (do_wp_page) on maybe-DMA-pinned pages, by whether the page was copied or reused",
        labels: &["result"],
    },
    Family {
        name: "pinwatch_pfn_untracks_total",
        kind: "counter",
        help: "PAT memtype untracks of shared or PAT PFN mappings, by call path: from a zap (VMA still mapped) or from unmap",
        labels: &["call_path"],
    },
    Family {
        name: "pinwatch_pfn_tracks_total",
        kind: "counter",
        help: "PAT memtype track calls for PFN mappings (pfn_track hook)",
        labels: &[],
    },
    Family {
        name: "pinwatch_hook_attached",
        kind: "gauge",
        help: "1 when the hook is attached, by hook and attach method (0 with method=\"none\" when it is not)",
        labels: &["hook", "method"],
    },
    Family {
        name: "pinwatch_hook_calls_total",
        kind: "counter",
        help: "Calls of each hooked kernel function, counted in the kernel; the COW, fork and new-anonymous-page hooks count only calls by processes that ever pinned",
        labels: &["hook"],
    },
    Family {
        name: "pinwatch_hazard_observable",
        kind: "gauge",
        help: "1 when every hook the hazard needs is attached on this kernel",
        labels: &["hazard"],
    },
    Family {
        name: "pinwatch_events_total",
        kind: "counter",
        help: "Detailed events decoded from the ring buffer (a pin or unpin run is one event for many calls) or read from runs still open in the kernel, by kind",
        labels: &["kind"],
    },
    Family {
        name: "pinwatch_event_decode_errors_total",
        kind: "counter",
        help: "Ring-buffer records that could not be decoded",
        labels: &[],
    },
    Family {
        name: "pinwatch_ringbuf_drops_total",
        kind: "counter",
        help: "Detailed events the kernel could not queue because the ring buffer was full",
        labels: &[],
    },
    Family {
        name: "pinwatch_ringbuf_dropped_pin_calls_total",
        kind: "counter",
        help: "Long-term pin calls inside the records the ring buffer dropped (a run record stands for many calls): with pinwatch_pins_total{longterm=\"true\"}, every long-term pin call",
        labels: &[],
    },
    Family {
        name: "pinwatch_map_insert_failures_total",
        kind: "counter",
        help: "Failed inserts into pinwatch's own kernel maps (full), by map: state pinwatch lost (inflight: a pin not tracked; forking: a fork's copies not counted; wp_faults: a fault not classified; zapping: an untrack not classified; stacks: a pinner not named)",
        labels: &["map"],
    },
    Family {
        name: "pinwatch_withheld_before_ready_total",
        kind: "counter",
        help: "Kernel events not correlated because pinwatch was still attaching its hooks (before pinwatch_ready_time_seconds)",
        labels: &[],
    },
    Family {
        name: "pinwatch_ready_time_seconds",
        kind: "gauge",
        help: "Unix time when every hook was attached and observation began; pins older than this are reported as pinned before pinwatch was ready",
        labels: &[],
    },
    Family {
        name: "pinwatch_correlation_entries",
        kind: "gauge",
        help: "Entries in each correlation table",
        labels: &["table"],
    },
    Family {
        name: "pinwatch_correlation_max_entries",
        kind: "gauge",
        help: "The limit of the live-pin ledger (one entry per held long-term pin call), the table a host with many pins fills first",
        labels: &[],
    },
    Family {
        name: "pinwatch_correlation_evictions_total",
        kind: "counter",
        help: "Entries dropped from a full correlation table (oldest first), by table",
        labels: &["table"],
    },
    Family {
        name: "pinwatch_procfs_pinned_pages",
        kind: "gauge",
        help: "Pages pinned now as /proc shows them, without eBPF (pins from before pinwatch included), by pinner and source: fdinfo (io_uring registered buffers, exact), vm_lck (VFIO: locked_vm, mixed with mlock), vm_pin (pinned_vm charges); read before attaching and every 30 s",
        labels: &["pinner", "source"],
    },
    Family {
        name: "pinwatch_procfs_unreadable_processes",
        kind: "gauge",
        help: "Processes whose fds the last pins inventory could not read (missing CAP_SYS_PTRACE or CAP_DAC_READ_SEARCH): their io_uring and VFIO pins are missing from pinwatch_procfs_pinned_pages",
        labels: &[],
    },
    Family {
        name: "pinwatch_build_info",
        kind: "gauge",
        help: "Always 1: pinwatch's version and the kernel release it runs on",
        labels: &["version", "kernel"],
    },
];

/// `pinwatch metrics`: the catalog as text.
pub fn catalog(names_only: bool) -> String {
    let mut out = String::new();
    for f in CATALOG {
        if names_only {
            out += f.name;
            out += "\n";
        } else {
            let labels = if f.labels.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", f.labels.join(","))
            };
            out += &format!("{}{labels} ({})\n    {}\n", f.name, f.kind, f.help);
        }
    }
    out
}

pub fn family(name: &str) -> &'static Family {
    CATALOG
        .iter()
        .find(|f| f.name == name)
        .expect("every metric is in the catalog")
}
