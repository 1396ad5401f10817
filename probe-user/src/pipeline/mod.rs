//! hooks → events → correlate → findings: the loop every watching command shares (`audit`,
//! `events`, `run`). The ring buffer is drained, each record decoded and enriched from the
//! running system, shown to the caller's [`Observer`], and queued for correlation.

mod open_runs;
mod source;
mod target;
mod tree;

use std::time::{Duration, Instant};

pub use source::EventSource;
pub use target::{Ended, Target};
pub use tree::ProcessTree;

use crate::{
    correlate::{Config, Correlator, Released},
    error::Error,
    events::Event,
    findings::Finding,
    procfs,
    session::Session,
};

/// The longest the ring buffer waits undrained (records wake the reader sooner), and so how
/// often the correlator's clock advances when nothing happens.
pub const POLL: Duration = Duration::from_millis(20);

/// What a command does with the stream, besides correlating it.
pub trait Observer {
    /// An event from a watched process, decoded and enriched.
    fn event(&mut self, _event: &Event) {}
    /// A long-term pin fully unpinned.
    fn released(&mut self, _pin: &Released) {}
}

/// An observer that only correlates.
impl Observer for () {}

pub struct Pipeline {
    source: EventSource,
    pub correlator: Correlator,
    tree: ProcessTree,
    next_prune: Instant,
}

/// Records decoded before they are correlated: bounds the reorder queue in a storm (the ring
/// refills while it is read) to a batch plus the reorder window.
const BATCH: usize = 4096;

/// How often pins of exited processes are looked for (one /proc read per pinning process).
const PRUNE: Duration = Duration::from_secs(1);

impl Pipeline {
    /// Takes the session's ring buffer and stack map. Every process is watched until
    /// [`Pipeline::watch_tree`] narrows it to one process tree.
    pub fn new(session: &mut Session) -> Result<Self, Error> {
        Ok(Self {
            source: EventSource::new(session)?,
            correlator: Correlator::new(Config::default(), session.foll_flags.clone()),
            tree: ProcessTree::new(None),
            next_prune: Instant::now() + PRUNE,
        })
    }

    /// Limits what observers see and which findings are returned to `root` and its
    /// descendants (`None`: the whole system). Called once the target's pid is known; the
    /// ring buffer was already open, so nothing the command did is missed.
    pub fn watch_tree(&mut self, root: Option<u32>) {
        self.tree = ProcessTree::new(root);
    }

    /// Drains every record available now and advances correlation to the current time.
    pub fn pump(&mut self, session: &Session, observer: &mut dyn Observer) {
        let Self {
            source,
            correlator,
            tree,
            next_prune,
        } = self;
        // Before the ring: a run's record drained below then carries only what this read did
        // not see.
        source.read_open_runs(&session.kallsyms, |event| {
            deliver(tree, observer, correlator, event);
        });
        loop {
            let taken = source.drain(&session.kallsyms, BATCH, |event| {
                deliver(tree, observer, correlator, event);
            });
            correlator.advance(procfs::monotonic_ns());
            if taken < BATCH {
                break;
            }
        }
        source.flush_kernel_log();
        let now = procfs::monotonic_ns();
        if Instant::now() >= *next_prune {
            *next_prune = Instant::now() + PRUNE;
            correlator.prune_exited(|tgid| procfs::process_start(tgid).is_some(), now);
        }
        for pin in correlator.take_released() {
            observer.released(&pin);
        }
    }

    /// Findings of watched processes whose last event is older than `quiet`: a registration
    /// pinned in several GUP calls has been merged into one finding by then.
    pub fn take_settled(&mut self, quiet: Duration) -> Vec<Finding> {
        let before = procfs::monotonic_ns().saturating_sub(quiet.as_nanos() as u64);
        let mut findings = self.correlator.take_settled(before);
        findings.retain(|f| self.tree.contains(f.process.tgid));
        resolve_paths(&mut findings);
        findings
    }

    /// Reads records and drops them undecoded (`run --bench-mode kernel-only`): the cost of the
    /// programs and the ring buffer without pinwatch's userspace.
    pub fn discard_records(&mut self, discard: bool) {
        self.source.discard = discard;
    }

    /// Blocks until records arrive or [`POLL`] passed.
    pub fn wait(&self) {
        self.source.wait(POLL);
    }

    pub fn decode_errors(&self) -> u64 {
        self.source.decode_errors
    }

    /// Applies everything still queued: the end of a watch.
    pub fn finish(self) -> (Vec<Finding>, crate::correlate::Summary, u64) {
        let Self {
            source,
            correlator,
            tree,
            ..
        } = self;
        let (mut findings, mut summary) = correlator.finish();
        findings.retain(|f| tree.contains(f.process.tgid));
        summary.processes.retain(|p| tree.contains(p.process.tgid));
        resolve_paths(&mut findings);
        (findings, summary, source.decode_errors)
    }
}

/// An event to the process tree, the observer (when it is watched), and the correlator.
fn deliver(
    tree: &mut ProcessTree,
    observer: &mut dyn Observer,
    correlator: &mut Correlator,
    event: Event,
) {
    tree.observe(&event);
    if tree.contains(event.task().tgid) {
        observer.event(&event);
    }
    correlator.push(event);
}

/// Files whose mapping was gone before pinwatch read /proc: found again by device and inode.
/// Cgroups are named the same way: the kernel's cgroup id is the directory's inode number.
fn resolve_paths(findings: &mut [Finding]) {
    for f in findings.iter_mut() {
        if let Some(m) = &mut f.mapping
            && m.path.is_none()
        {
            m.path = procfs::path_of(&m.dev, m.ino);
        }
        if f.process.cgroup.id != 0 {
            f.process.cgroup.path = procfs::cgroup_path(f.process.cgroup.id);
        }
    }
}
