//! The ring buffer and the stacks its events refer to: records in, enriched events out.

use aya::maps::{MapData, RingBuf, StackTraceMap};

use crate::{
    counters::CounterError,
    error::Error,
    events::{self, Event},
    kernel::kallsyms::Kallsyms,
    pinner, procfs,
    session::Session,
};

pub struct EventSource {
    ring: RingBuf<MapData>,
    stacks: StackTraceMap<MapData>,
    pub decode_errors: u64,
}

impl EventSource {
    pub fn new(session: &mut Session) -> Result<Self, Error> {
        let mut take = |name: &'static str| {
            session
                .ebpf
                .take_map(name)
                .ok_or(CounterError::MissingMap(name))
        };
        let ring = RingBuf::try_from(take("EVENTS")?).map_err(Error::Map)?;
        let stacks = StackTraceMap::try_from(take("STACKS")?).map_err(Error::Map)?;
        Ok(Self {
            ring,
            stacks,
            decode_errors: 0,
        })
    }

    /// Decodes and enriches (pinner, path, MADV_DONTFORK) every record available now.
    pub fn drain(&mut self, kallsyms: &Kallsyms, mut sink: impl FnMut(Event)) {
        while let Some(item) = self.ring.next() {
            let decoded = events::decode(&item);
            drop(item);
            match decoded {
                Ok(mut event) => {
                    enrich(&self.stacks, kallsyms, &mut event);
                    sink(event);
                }
                Err(_) => self.decode_errors += 1,
            }
        }
    }
}

fn enrich(stacks: &StackTraceMap<MapData>, kallsyms: &Kallsyms, event: &mut Event) {
    match event {
        Event::Pin(pin) => {
            pin.pinner = pinner::name(&frames(stacks, kallsyms, pin.stack_id));
            pin.path = file_path(pin);
            pin.dontfork = procfs::dontfork_at(pin.task.tgid, pin.start);
        }
        Event::PfnUntrack(untrack) => {
            untrack.via = pinner::zap_origin(&frames(stacks, kallsyms, untrack.stack_id));
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
