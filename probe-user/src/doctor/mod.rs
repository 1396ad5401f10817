//! `pinwatch doctor`: what this kernel allows and what pinwatch can see on it. It tries every
//! attach for real, optionally watches a command or a time span, and reports per hook and per
//! hazard.

mod cost;
pub mod render;
pub mod report;

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use aya::Ebpf;

use crate::{
    attach::MethodChoice,
    counters::Counters,
    error::Error,
    kernel,
    observability::{self, Assessment},
    session::Session,
    text::UserText,
};
use report::{KernelInfo, Report, Watch};

pub struct Options {
    pub btf_path: PathBuf,
    pub method: MethodChoice,
    pub watch: Option<Duration>,
    pub command: Vec<std::ffi::OsString>,
}

/// Runs the checks; returns the report and the exit code it implies.
pub fn run(opts: &Options) -> Result<(Report, u8), Error> {
    let session = Session::open(
        &opts.btf_path,
        opts.method,
        "doctor",
        crate::loader::Programs::default(),
    )?;
    let watched = watch(opts, &session.ebpf)?;
    let counters = watched.as_ref().map(|(_, c)| c);
    let Assessment {
        hooks,
        hazards,
        verdict,
    } = observability::assess(&session, counters);
    let code = verdict.exit_code();
    let Session {
        capabilities,
        methods,
        layout,
        foll_flags,
        ..
    } = session;
    let report = Report {
        kernel: KernelInfo {
            release: kernel::release(),
        },
        capabilities,
        methods,
        layout,
        foll_flags,
        hooks,
        hazards,
        watch: watched.map(|(w, _)| w),
        verdict: verdict.to_string(),
    };
    Ok((report, code))
}

/// Runs the command (or waits) with every hook attached, then reads the counters.
fn watch(opts: &Options, ebpf: &Ebpf) -> Result<Option<(Watch, Counters)>, Error> {
    if opts.command.is_empty() && opts.watch.is_none() {
        return Ok(None);
    }
    let stats = cost::enable();
    let start = Instant::now();
    let exit_status = match (&opts.command[..], opts.watch) {
        ([], None) => None,
        ([], Some(span)) => {
            std::thread::sleep(span);
            None
        }
        ([program, args @ ..], _) => {
            let status = Command::new(program)
                .args(args)
                .status()
                .map_err(|source| Error::Spawn {
                    command: UserText::command_line(&opts.command),
                    source,
                })?;
            status.code()
        }
    };
    let counters = Counters::read(ebpf)?;
    let watch = Watch {
        command: (!opts.command.is_empty()).then(|| UserText::command_line(&opts.command)),
        exit_status,
        seconds: start.elapsed().as_secs_f64(),
        verdicts: counters.verdicts.clone(),
        losses: counters.losses.clone(),
        program_costs: stats
            .as_ref()
            .map_or_else(|_| Vec::new(), |_fd| cost::read(ebpf)),
        program_costs_unavailable: stats.err(),
    };
    Ok(Some((watch, counters)))
}
