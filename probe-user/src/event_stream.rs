//! `pinwatch events`: every decoded event as one JSON object per line, filtered by process,
//! hazard and hook, for people who want the raw data under the findings.

use std::{
    io::{ErrorKind, Write as _},
    path::PathBuf,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use crate::{
    attach::MethodChoice,
    error::Error,
    events::Event,
    exit,
    hazards::Hazard,
    pipeline::{Observer, Pipeline, Target},
    session::Session,
};

pub struct Options {
    pub btf_path: PathBuf,
    pub method: MethodChoice,
    pub filter: Filter,
    pub pid: Option<u32>,
    pub duration: Option<Duration>,
    pub command: Vec<std::ffi::OsString>,
}

/// Which events are printed. Empty lists select everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub hazards: Vec<Hazard>,
    pub hooks: Vec<String>,
}

impl Filter {
    pub fn matches(&self, event: &Event) -> bool {
        let hazard =
            self.hazards.is_empty() || event.hazards().iter().any(|h| self.hazards.contains(h));
        let hook = self.hooks.is_empty() || self.hooks.iter().any(|h| h == event.hook());
        hazard && hook
    }
}

/// Prints matching events; stops at the first write error (a closed pipe ends the stream).
struct Printer {
    filter: Filter,
    out: std::io::StdoutLock<'static>,
    printed: u64,
    error: Option<std::io::Error>,
}

impl Observer for Printer {
    fn event(&mut self, event: &Event) {
        if self.error.is_some() || !self.filter.matches(event) {
            return;
        }
        let line = serde_json::to_string(event).expect("events are plain data");
        match writeln!(self.out, "{line}").and_then(|()| self.out.flush()) {
            Ok(()) => self.printed += 1,
            Err(e) => self.error = Some(e),
        }
    }
}

pub fn run(opts: &Options) -> Result<u8, Error> {
    let existing = opts.pid.map(Target::process).transpose()?;
    let stop = crate::signals::stop_on_signals()?;
    let tree = opts.pid.is_some() || !opts.command.is_empty();
    let programs = crate::loader::Programs::watching(tree);
    let mut session = Session::open(&opts.btf_path, opts.method, "events", programs)?;
    crate::observability::require_observable(&session)?;
    let mut pipeline = Pipeline::new(&mut session)?;
    let mut target = match existing {
        Some(process) => process,
        None if opts.command.is_empty() => Target::System,
        None => Target::spawn(&opts.command, true)?,
    };
    pipeline.watch_tree(target.root());
    let mut printer = Printer {
        filter: opts.filter.clone(),
        out: std::io::stdout().lock(),
        printed: 0,
        error: None,
    };
    let start = Instant::now();
    loop {
        pipeline.pump(&session, &mut printer);
        let done = target.ended()?.is_some()
            || opts.duration.is_some_and(|d| start.elapsed() >= d)
            || stop.load(Ordering::Relaxed);
        if done || printer.error.is_some() {
            break;
        }
        pipeline.wait();
    }
    pipeline.pump(&session, &mut printer);
    match printer.error {
        Some(e) if e.kind() != ErrorKind::BrokenPipe => Err(Error::Output(e)),
        _ => Ok(exit::OK),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Fork, Task};

    fn fork() -> Event {
        Event::Fork(Fork {
            at_ns: 1,
            task: Task {
                tgid: 1,
                tid: 1,
                start_ns: 0,
                comm: "x".into(),
                cgroup_id: 0,
            },
            child_pid: 2,
        })
    }

    #[test]
    fn filters_select_by_hazard_and_hook() {
        let all = Filter::default();
        assert!(all.matches(&fork()));
        let fork_hazard = Filter {
            hazards: vec![Hazard::ForkWithPins],
            hooks: vec![],
        };
        assert!(fork_hazard.matches(&fork()));
        let pfn = Filter {
            hazards: vec![Hazard::EarlyPfnUntrack],
            hooks: vec![],
        };
        assert!(!pfn.matches(&fork()));
        let hook = Filter {
            hazards: vec![],
            hooks: vec!["process_fork".into()],
        };
        assert!(hook.matches(&fork()));
        let both = Filter {
            hazards: vec![Hazard::ForkWithPins],
            hooks: vec!["folio_mkclean".into()],
        };
        assert!(!both.matches(&fork()), "both filters must match");
    }

    #[test]
    fn events_serialize_with_their_kind() {
        let json = serde_json::to_value(fork()).unwrap();
        assert_eq!(json["kind"], "fork");
        assert_eq!(json["child_pid"], 2);
        assert_eq!(json["task"]["comm"], "x");
    }
}
