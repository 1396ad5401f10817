//! `pinwatch audit`: attach everything, watch a command (and its children), a running process
//! (and its children) or the whole system for a time span, correlate the kernel's events into
//! findings, and report them with a ranking of the processes that pinned.

mod progress;
pub mod render;

use std::{
    ffi::OsString,
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{
    attach::MethodChoice,
    correlate::{ProcessPins, Stats},
    counters::Counters,
    error::Error,
    exit,
    findings::Finding,
    hazards::Hazard,
    kernel,
    pipeline::{Ended, Pipeline, Target},
    session::Session,
    text::UserText,
};

pub struct Options {
    pub btf_path: PathBuf,
    pub method: MethodChoice,
    pub duration: Option<Duration>,
    pub command: Vec<OsString>,
    /// Watch this running process and its descendants until it exits.
    pub pid: Option<u32>,
    /// Exit 1 only for findings of these hazards (empty: any finding).
    pub fail_on: Vec<Hazard>,
    /// Show elapsed time, events and findings on stderr while watching.
    pub progress: bool,
    /// The report is JSON on stdout: the command's own output goes to stderr.
    pub json: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The JSON's version ([`crate::findings::SCHEMA`]).
    pub schema: u32,
    pub kernel: String,
    pub watched: Watched,
    pub findings: Vec<Finding>,
    /// Watched processes by long-term pinned pages, most first.
    pub processes: Vec<ProcessPins>,
    pub counts: Counts,
    /// Hazards this kernel does not let pinwatch observe: their absence from `findings` means
    /// nothing.
    pub unobservable: Vec<Hazard>,
    /// The hazards that decide the exit status (`--fail-on`); empty means all.
    pub fail_on: Vec<Hazard>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Watched {
    /// The command line, its arguments joined by spaces.
    pub command: Option<UserText>,
    pub pid: Option<u32>,
    pub exit_status: Option<i32>,
    pub seconds: f64,
    pub interrupted: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    #[serde(flatten)]
    pub correlation: Stats,
    pub decode_errors: u64,
    /// Records the kernel could not queue (ring buffer full).
    pub ringbuf_drops: u64,
    /// Long-term pin calls in those lost records (a run record stands for many calls).
    pub ringbuf_dropped_pin_calls: u64,
    /// Failed inserts into pinwatch's kernel maps, by map (every map listed, from 0).
    pub map_insert_failures: crate::counters::MapInsertFailures,
    /// Kernel events not correlated because hooks were still attaching (before `ready_at`).
    pub withheld_before_ready: u64,
}

impl Counts {
    /// Correlation's counts beside the kernel's: every loss in one place.
    fn of(correlation: Stats, decode_errors: u64, kernel: &Counters) -> Self {
        Self {
            correlation,
            decode_errors,
            ringbuf_drops: kernel.losses.ringbuf_drops,
            ringbuf_dropped_pin_calls: kernel.losses.ringbuf_dropped_pin_calls,
            map_insert_failures: kernel.map_insert_failures.clone(),
            withheld_before_ready: kernel.losses.withheld_before_ready,
        }
    }
}

pub fn run(opts: &Options) -> Result<(Report, u8), Error> {
    let existing = opts.pid.map(Target::process).transpose()?;
    // From the start: a Ctrl-C while the hooks attach still ends with a report.
    let stop = crate::signals::stop_on_signals()?;
    let tree = opts.pid.is_some() || !opts.command.is_empty();
    let programs = crate::loader::Programs::watching(tree);
    let mut session = Session::open(&opts.btf_path, opts.method, "audit", programs)?;
    let hazards = crate::observability::require_observable(&session)?;
    let unobservable = hazards
        .iter()
        .filter(|h| !h.observable)
        .map(|h| h.id)
        .collect();
    let mut pipeline = Pipeline::new(&mut session)?;
    let start = Instant::now();
    let mut target = match existing {
        Some(process) => process,
        None if opts.command.is_empty() => Target::System,
        None => Target::spawn(&opts.command, opts.json)?,
    };
    pipeline.watch_tree(target.root());
    let mut events = progress::EventCount::default();
    let ended = watch(
        opts,
        &session,
        &mut pipeline,
        &mut target,
        &mut events,
        &stop,
    )?;
    pipeline.pump(&session, &mut events);
    let (findings, summary, decode_errors) = pipeline.finish();
    let report = Report {
        schema: crate::findings::SCHEMA,
        kernel: kernel::release(),
        watched: Watched {
            command: (!opts.command.is_empty()).then(|| UserText::command_line(&opts.command)),
            pid: opts.pid,
            exit_status: match ended {
                Some(Ended::Exited(code)) => code,
                _ => None,
            },
            seconds: start.elapsed().as_secs_f64(),
            interrupted: stop.load(Ordering::Relaxed),
        },
        counts: Counts::of(
            summary.stats,
            decode_errors,
            &Counters::read(&session.ebpf)?,
        ),
        processes: summary.processes,
        unobservable,
        fail_on: opts.fail_on.clone(),
        findings,
    };
    let code = report.exit_code();
    Ok((report, code))
}

/// Pumps events, showing progress, until the target ends (`Some`), or the time is up or a
/// signal came (`None`).
fn watch(
    opts: &Options,
    session: &Session,
    pipeline: &mut Pipeline,
    target: &mut Target,
    events: &mut progress::EventCount,
    stop: &AtomicBool,
) -> Result<Option<Ended>, Error> {
    let start = Instant::now();
    let mut progress = progress::Progress::new(opts.progress, target.describe());
    let ended = loop {
        pipeline.pump(session, events);
        progress.show(
            start.elapsed(),
            events.0,
            pipeline.correlator.findings_so_far(),
        );
        if let Some(ended) = target.ended()? {
            break Some(ended);
        }
        let timed_out = opts.duration.is_some_and(|d| start.elapsed() >= d);
        if timed_out || stop.load(Ordering::Relaxed) {
            break None;
        }
        pipeline.wait();
    };
    progress.clear();
    Ok(ended)
}

impl Report {
    /// Findings that make the audit fail: those of the `--fail-on` hazards, or all.
    /// 1 when a finding of a `--fail-on` hazard (or any, without it) was made, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.failing().next().is_some() {
            exit::FINDINGS
        } else {
            exit::OK
        }
    }

    pub fn failing(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| self.fail_on.is_empty() || self.fail_on.contains(&f.hazard))
    }
}
