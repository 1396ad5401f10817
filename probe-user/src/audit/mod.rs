//! `pinwatch audit`: attach everything, watch a command (and its children) or a time span,
//! correlate the kernel's events into findings, and report them.

pub mod render;

use std::{
    collections::HashSet,
    path::PathBuf,
    process::{Child, Command},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use aya::maps::{MapData, RingBuf, StackTraceMap};
use serde::Serialize;

use crate::{
    attach::MethodChoice,
    correlate::{Config, Correlator, Stats},
    counters::Counters,
    doctor,
    error::Error,
    events::{self, Event},
    exit,
    findings::Finding,
    hazards::Hazard,
    kernel::{self, kallsyms::Kallsyms},
    pinner, procfs,
    session::Session,
};

pub struct Options {
    pub btf_path: PathBuf,
    pub method: MethodChoice,
    pub duration: Option<Duration>,
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub kernel: String,
    pub watched: Watched,
    pub findings: Vec<Finding>,
    pub counts: Counts,
    /// Hazards this kernel does not let pinwatch observe: their absence from `findings` means
    /// nothing.
    pub unobservable: Vec<Hazard>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Watched {
    pub command: Option<String>,
    pub exit_status: Option<i32>,
    pub seconds: f64,
    pub interrupted: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    #[serde(flatten)]
    pub correlation: Stats,
    pub decode_errors: u64,
    /// Detailed events the kernel could not queue (ring buffer full).
    pub events_lost: u64,
    /// Long-term pins not tracked (in-flight table full).
    pub pins_untracked: u64,
}

/// How often the ring buffer is drained and the correlator's clock advanced.
const POLL: Duration = Duration::from_millis(20);

pub fn run(opts: &Options) -> Result<(Report, u8), Error> {
    let mut session = Session::open(&opts.btf_path, opts.method, "audit")?;
    let (_, hazards, verdict, code) = doctor::assess(&session, None);
    if code == exit::UNOBSERVABLE {
        return Err(Error::Unobservable(verdict));
    }
    let unobservable = hazards
        .iter()
        .filter(|h| !h.observable)
        .map(|h| h.id)
        .collect();
    let mut source = EventSource::new(&mut session)?;
    let stop = stop_on_signals()?;
    let start = Instant::now();
    let mut child = spawn(&opts.command)?;
    let root = child.as_ref().map(Child::id);
    let mut correlator = Correlator::new(Config::default(), session.foll_flags.clone());
    let mut tree = ProcessTree::new(root);
    let exit_status = loop {
        source.drain(&session.kallsyms, &mut correlator, &mut tree);
        correlator.advance(procfs::monotonic_ns());
        if let Some(c) = child.as_mut()
            && let Some(status) = c
                .try_wait()
                .map_err(|source| spawn_error(&opts.command, source))?
        {
            break status.code();
        }
        let timed_out = opts.duration.is_some_and(|d| start.elapsed() >= d);
        if timed_out || stop.load(Ordering::Relaxed) {
            break None;
        }
        std::thread::sleep(POLL);
    };
    source.drain(&session.kallsyms, &mut correlator, &mut tree);
    let (mut findings, correlation) = correlator.finish();
    findings.retain(|f| tree.contains(f.process.tgid));
    resolve_paths(&mut findings);
    let filters = Counters::read(&session.ebpf)?.filters;
    let report = Report {
        kernel: kernel::release(),
        watched: Watched {
            command: (!opts.command.is_empty()).then(|| opts.command.join(" ")),
            exit_status,
            seconds: start.elapsed().as_secs_f64(),
            interrupted: stop.load(Ordering::Relaxed),
        },
        counts: Counts {
            correlation,
            decode_errors: source.decode_errors,
            events_lost: filters.ringbuf_full,
            pins_untracked: filters.inflight_full,
        },
        unobservable,
        findings,
    };
    let code = if report.findings.is_empty() {
        exit::OK
    } else {
        exit::FINDINGS
    };
    Ok((report, code))
}

/// Files whose mapping was gone before pinwatch read /proc: found again by device and inode.
/// Cgroups are named the same way: the kernel's cgroup id is the directory's inode number.
fn resolve_paths(findings: &mut [Finding]) {
    for f in findings.iter_mut() {
        if f.mapping.path.is_none() && f.mapping.ino != 0 {
            f.mapping.path = procfs::path_of(&f.mapping.dev, f.mapping.ino);
        }
        if f.process.cgroup.id != 0 {
            f.process.cgroup.path = procfs::cgroup_path(f.process.cgroup.id);
        }
    }
}

/// The ring buffer and the stacks its pin events refer to.
struct EventSource {
    ring: RingBuf<MapData>,
    stacks: StackTraceMap<MapData>,
    decode_errors: u64,
    /// `PINWATCH_DEBUG_EVENTS=1`: every decoded event on stderr (until `pinwatch events` exists).
    debug: bool,
}

impl EventSource {
    fn new(session: &mut Session) -> Result<Self, Error> {
        let take = |session: &mut Session, name: &'static str| {
            session
                .ebpf
                .take_map(name)
                .ok_or(crate::counters::CounterError::MissingMap(name))
        };
        let ring = RingBuf::try_from(take(session, "EVENTS")?).map_err(Error::Map)?;
        let stacks = StackTraceMap::try_from(take(session, "STACKS")?).map_err(Error::Map)?;
        Ok(Self {
            ring,
            stacks,
            decode_errors: 0,
            debug: std::env::var_os("PINWATCH_DEBUG_EVENTS").is_some(),
        })
    }

    /// Decodes, enriches (pinner, path, process tree) and queues every record available now.
    fn drain(&mut self, kallsyms: &Kallsyms, correlator: &mut Correlator, tree: &mut ProcessTree) {
        while let Some(item) = self.ring.next() {
            let decoded = events::decode(&item);
            drop(item);
            match decoded {
                Ok(mut event) => {
                    match &mut event {
                        Event::Pin(pin) => {
                            pin.pinner =
                                pinner::name(&frames(&self.stacks, kallsyms, pin.stack_id));
                            pin.path = file_path(pin);
                            pin.dontfork = procfs::dontfork_at(pin.task.tgid, pin.start);
                        }
                        Event::PfnUntrack(untrack) => {
                            untrack.via = pinner::zap_origin(&frames(
                                &self.stacks,
                                kallsyms,
                                untrack.stack_id,
                            ));
                            if let Some(vma) = &untrack.vma {
                                untrack.path = procfs::mapped_path(untrack.task.tgid, vma.start);
                            }
                        }
                        Event::Unpin(_)
                        | Event::MkcleanPinned(_)
                        | Event::ForkCopy(_)
                        | Event::Fork(_)
                        | Event::PinnedCow(_) => {}
                    }
                    tree.observe(&event);
                    if self.debug {
                        eprintln!("pinwatch event: {event:?}");
                    }
                    correlator.push(event);
                }
                Err(_) => self.decode_errors += 1,
            }
        }
    }
}

/// The path of a pin's file, read from /proc while the process lives, kept only if it still
/// names the same inode: the address may already be reused by another mapping.
fn file_path(pin: &events::Pin) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let file = pin.vma.as_ref()?.file?;
    let path = procfs::mapped_path(pin.task.tgid, pin.start)?;
    (std::fs::metadata(&path).ok()?.ino() == file.ino).then_some(path)
}

/// Symbolized frames of a stack taken by the eBPF programs, innermost first.
fn frames<'k>(
    stacks: &StackTraceMap<MapData>,
    kallsyms: &'k Kallsyms,
    stack_id: Option<u32>,
) -> Vec<&'k str> {
    let Some(trace) = stack_id.and_then(|id| stacks.get(&id, 0).ok()) else {
        return Vec::new();
    };
    trace
        .frames()
        .iter()
        .filter_map(|f| kallsyms.symbolize(f.ip))
        .collect()
}

/// The watched command and its descendants, learnt while they live (events carry tgids).
struct ProcessTree {
    root: Option<u32>,
    members: HashSet<u32>,
    strangers: HashSet<u32>,
}

impl ProcessTree {
    fn new(root: Option<u32>) -> Self {
        Self {
            root,
            members: root.into_iter().collect(),
            strangers: HashSet::new(),
        }
    }

    fn observe(&mut self, event: &Event) {
        let tgid = event.task().tgid;
        let Some(root) = self.root else { return };
        if self.members.contains(&tgid) || self.strangers.contains(&tgid) {
            return;
        }
        if procfs::descends_from(tgid, root) {
            self.members.insert(tgid);
        } else {
            self.strangers.insert(tgid);
        }
    }

    /// Without a command every process is watched.
    fn contains(&self, tgid: u32) -> bool {
        self.root.is_none() || self.members.contains(&tgid)
    }
}

fn spawn(command: &[String]) -> Result<Option<Child>, Error> {
    let Some((program, args)) = command.split_first() else {
        return Ok(None);
    };
    Command::new(program)
        .args(args)
        .spawn()
        .map(Some)
        .map_err(|source| spawn_error(command, source))
}

fn spawn_error(command: &[String], source: std::io::Error) -> Error {
    Error::Spawn {
        command: command.join(" "),
        source,
    }
}

/// SIGINT/SIGTERM end the watch early; the report is still printed.
fn stop_on_signals() -> Result<Arc<AtomicBool>, Error> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&flag)).map_err(Error::Signals)?;
    }
    Ok(flag)
}
