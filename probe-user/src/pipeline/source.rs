//! The ring buffer and the stacks its events refer to: records in, enriched events out.

use std::collections::HashMap;

use aya::maps::{MapData, RingBuf, StackTraceMap};
use probe_common::kernel::VM_DONTCOPY;

use super::open_runs::OpenRuns;
use crate::{
    counters::CounterError,
    error::Error,
    events::{self, Event},
    kernel::kallsyms::Kallsyms,
    pinner::{self, UntrackOrigin},
    procfs,
    session::Session,
    text::UserText,
};

pub struct EventSource {
    ring: RingBuf<MapData>,
    open_runs: OpenRuns,
    stacks: Stacks,
    /// One pump's smaps reads, shared by the open runs and every drain of the ring after them.
    dontfork: DontforkRanges,
    pub decode_errors: u64,
    /// Drop records unread (see [`super::Pipeline::discard_records`]).
    pub discard: bool,
    kernel_log: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
}

/// The stack map and what its stacks were named. The programs take stacks without
/// `BPF_F_REUSE_STACKID`, so an id keeps naming the same stack for the whole session: a pin
/// storm from one call site symbolizes one stack, not one per event.
struct Stacks {
    map: StackTraceMap<MapData>,
    pinners: HashMap<u32, pinner::Named>,
    zap_origins: HashMap<u32, UntrackOrigin>,
}

/// VMAs by process, with when smaps was read (kernel monotonic ns), for pins whose VMA the
/// kernel did not walk (GUP-fast): a read serves the events that happened before it, and a later
/// event reads again (records keep arriving while a drain runs, and the mapping may have
/// changed since). Kept for one pump: a storm's open runs and the records drained after them are
/// served by one read of a process's smaps, which walks every page table it has.
type DontforkRanges = HashMap<u32, (u64, Option<Vec<procfs::SmapsVma>>)>;

impl EventSource {
    pub fn new(session: &mut Session) -> Result<Self, Error> {
        let mut take = |name: &'static str| {
            session
                .ebpf
                .take_map(name)
                .ok_or(CounterError::MissingMap(name))
        };
        let ring = RingBuf::try_from(take("EVENTS")?).map_err(Error::Map)?;
        let map = StackTraceMap::try_from(take("STACKS")?).map_err(Error::Map)?;
        let open_runs =
            OpenRuns::new(aya::maps::HashMap::try_from(take("INFLIGHT")?).map_err(Error::Map)?);
        // The programs' rare diagnostics (aya-log), relayed to pinwatch's own log.
        let kernel_log = aya_log::EbpfLogger::init(&mut session.ebpf)
            .inspect_err(|e| log::warn!("kernel-side log unavailable: {e}"))
            .ok();
        Ok(Self {
            ring,
            open_runs,
            stacks: Stacks {
                map,
                pinners: HashMap::new(),
                zap_origins: HashMap::new(),
            },
            dontfork: DontforkRanges::new(),
            decode_errors: 0,
            discard: false,
            kernel_log,
        })
    }

    /// Relays what the programs logged since the last call (aya-log records) to the log.
    pub fn flush_kernel_log(&mut self) {
        if let Some(logger) = &mut self.kernel_log {
            logger.flush();
        }
    }

    /// Sleeps until `timeout` passed, or the programs woke the reader because the ring buffer
    /// is filling (a storm is drained as it comes, before the ring is full and drops records).
    pub fn wait(&self, timeout: std::time::Duration) {
        use std::os::fd::AsRawFd as _;
        let mut fd = libc::pollfd {
            fd: self.ring.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd for the duration of the call. An error (EINTR) just ends
        // the wait early, like a record would.
        unsafe { libc::poll(&raw mut fd, 1, ms) };
    }

    /// Decodes and enriches (pinner, path, MADV_DONTFORK) every record available now.
    ///
    /// At most `max` records: in a storm the ring refills as fast as it is read, and the caller
    /// must correlate (and free) each batch before taking the next.
    pub fn drain(&mut self, kallsyms: &Kallsyms, max: usize, mut sink: impl FnMut(Event)) -> usize {
        let mut taken = 0;
        while taken < max
            && let Some(item) = self.ring.next()
        {
            taken += 1;
            if self.discard {
                continue;
            }
            let decoded = events::decode(&item);
            let run = events::run_id(&item);
            drop(item);
            match decoded {
                Ok(mut event) => {
                    if let Some(id) = run
                        && !self.open_runs.settle(id, &mut event)
                    {
                        // Every call of the run was applied while it was open.
                        continue;
                    }
                    enrich(&mut self.stacks, kallsyms, &mut self.dontfork, &mut event);
                    sink(event);
                }
                Err(_) => self.decode_errors += 1,
            }
        }
        taken
    }
}

impl EventSource {
    /// Sends, enriched, what the runs the kernel is still gathering grew since the last read
    /// (see [`OpenRuns`]). A pump starts here: the previous pump's smaps reads are dropped.
    pub fn read_open_runs(&mut self, kallsyms: &Kallsyms, mut sink: impl FnMut(Event)) {
        self.dontfork.clear();
        if self.discard {
            return;
        }
        let Self {
            open_runs,
            stacks,
            dontfork,
            ..
        } = self;
        open_runs.read(procfs::monotonic_ns(), |mut event| {
            enrich(stacks, kallsyms, dontfork, &mut event);
            sink(event);
        });
    }
}

fn enrich(
    stacks: &mut Stacks,
    kallsyms: &Kallsyms,
    dontfork: &mut DontforkRanges,
    event: &mut Event,
) {
    match event {
        Event::Pin(pin) => {
            let named = stacks.pinner(kallsyms, pin.stack_id);
            (pin.pinner, pin.caller) = (named.pinner, named.caller);
            pin.path = file_path(pin);
            (pin.dontfork, pin.backing) = mapping_of(pin, dontfork);
        }
        Event::PfnUntrack(untrack) => {
            untrack.origin = stacks.zap_origin(kallsyms, untrack.stack_id);
            if let Some(vma) = &untrack.vma {
                untrack.path = procfs::mapped_path(untrack.task.tgid, vma.start);
            }
        }
        Event::Unpin(_)
        | Event::MkcleanPinned(_)
        | Event::PageCacheDiscard(_)
        | Event::MadviseDiscard(_)
        | Event::GmemIoctlAgain(_)
        | Event::ForkCopy(_)
        | Event::Fork(_)
        | Event::Spawn(_)
        | Event::PinnedCow(_) => {}
    }
}

/// The path of a pin's file, read from /proc while the process lives, kept only if it still
/// names the same inode: the address may already be reused by another mapping.
fn file_path(pin: &events::Pin) -> Option<UserText> {
    use std::os::unix::fs::MetadataExt as _;
    let file = pin.vma.as_ref()?.file?;
    let path = procfs::mapped_path(pin.task.tgid, pin.start)?;
    (std::fs::metadata(path.as_path()).ok()?.ino() == file.ino).then_some(path)
}

/// MADV_DONTFORK and what the pin maps: from the VMA the kernel walked when the event carries
/// it; otherwise (the fast GUP path walks no VMA) from smaps, read once for a run of events of
/// the same process.
fn mapping_of(
    pin: &events::Pin,
    cache: &mut DontforkRanges,
) -> (Option<bool>, Option<events::Backing>) {
    if let Some(vma) = &pin.vma {
        let backing = events::Backing::of_vma(vma, pin.start);
        return (Some(vma.flags & VM_DONTCOPY != 0), Some(backing));
    }
    let read = || (procfs::monotonic_ns(), procfs::smaps_vmas(pin.task.tgid));
    let entry = cache.entry(pin.task.tgid).or_insert_with(read);
    if entry.0 < pin.at_ns {
        *entry = read();
    }
    let Some(vma) = entry
        .1
        .as_deref()
        .and_then(|v| procfs::vma_at(v, pin.start))
    else {
        // Gone already (a short-lived process): what the kernel named from the first page.
        return (None, pin.backing);
    };
    if pin.backing.is_some() {
        // The kernel named the file from the pinned page itself: exact, where smaps is a later
        // read of the address.
        return (Some(vma.dontfork), pin.backing);
    }
    let backing = events::Backing {
        shared: vma.shared,
        file: vma.file.map(|(dev, ino)| {
            let index = vma
                .pgoff
                .saturating_add(pin.start.saturating_sub(vma.range.start) >> events::PAGE_SHIFT);
            (dev, ino, index)
        }),
    };
    (Some(vma.dontfork), Some(backing))
}

impl Stacks {
    fn pinner(&mut self, kallsyms: &Kallsyms, stack_id: Option<u32>) -> pinner::Named {
        named(&mut self.pinners, &self.map, kallsyms, stack_id, |f| {
            pinner::name(f)
        })
    }

    fn zap_origin(&mut self, kallsyms: &Kallsyms, stack_id: Option<u32>) -> UntrackOrigin {
        named(&mut self.zap_origins, &self.map, kallsyms, stack_id, |f| {
            pinner::zap_origin(f)
        })
    }
}

/// `namer` applied to the stack's frames, once per stack id; a clone of the cached name
/// allocates nothing.
fn named<N: Clone>(
    cache: &mut HashMap<u32, N>,
    map: &StackTraceMap<MapData>,
    kallsyms: &Kallsyms,
    stack_id: Option<u32>,
    namer: fn(&[&str]) -> N,
) -> N {
    let Some(id) = stack_id else {
        return namer(&[]);
    };
    cache
        .entry(id)
        .or_insert_with(|| namer(&frames(map, kallsyms, id)))
        .clone()
}

/// Symbolized frames of a stack taken by the eBPF programs, innermost first.
fn frames<'k>(map: &StackTraceMap<MapData>, kallsyms: &'k Kallsyms, id: u32) -> Vec<&'k str> {
    let Ok(trace) = map.get(&id, 0) else {
        return Vec::new();
    };
    trace
        .frames()
        .iter()
        .filter_map(|f| kallsyms.symbolize(f.ip))
        .collect()
}
