//! A job runner as build systems and CI gates run them: one short-lived worker per job, each
//! registering io_uring fixed buffers in a `MAP_SHARED` file of its own and exiting at once,
//! reaped before the next starts. Under `pinwatch audit -- job-runner` every worker's pin must
//! be reported, though each is gone long before its events are read.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::{iouring, sys};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Jobs to run, one after another.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Directory for the jobs' files (`job-<n>.dat`, on a dirty-tracked filesystem).
    #[arg(long)]
    pub dir: PathBuf,
    /// Run the jobs as threads of this process instead of forked workers.
    #[arg(long)]
    pub threads: bool,
}

pub fn run(args: &Args) -> Result<String> {
    let mut outcomes = Vec::with_capacity(args.jobs);
    for n in 0..args.jobs {
        let job = iouring_job(args, n);
        if args.threads {
            let outcome = std::thread::spawn(move || iouring::run(&job))
                .join()
                .map_err(|_| anyhow::anyhow!("job {n} panicked"))??;
            outcomes.push(outcome);
        } else {
            let worker = sys::fork_child(move || match iouring::run(&job) {
                Ok(_) => 0,
                Err(_) => 1,
            })?;
            worker
                .wait()
                .with_context(|| format!("worker of job {n}"))?;
            outcomes.push("exited 0".to_owned());
        }
    }
    // Only now: a file deleted between jobs would hand its inode to the next job's file, and two
    // jobs would pin what looks like one file.
    for n in 0..args.jobs {
        let _ = std::fs::remove_file(job_file(args, n));
    }
    if outcomes.len() != args.jobs {
        bail!("{} of {} jobs ran", outcomes.len(), args.jobs);
    }
    Ok(format!(
        "ok {} jobs as {} (last: {})",
        args.jobs,
        if args.threads { "threads" } else { "workers" },
        outcomes.last().map_or("none", String::as_str)
    ))
}

fn job_file(args: &Args, n: usize) -> PathBuf {
    args.dir.join(format!("job-{n}.dat"))
}

/// One job: 16 pages of its own file, registered and unregistered (refused on 6.5+).
fn iouring_job(args: &Args, n: usize) -> iouring::Args {
    iouring::Args {
        pages: sys::DEFAULT_PAGES,
        file: Some(job_file(args, n)),
        fork: false,
        dontfork: false,
        memfd: false,
        huge: None,
        release: iouring::Release::Unregister,
        released_flag: None,
        linger_ms: 0,
        odirect_from: None,
        held_flag: None,
        hold_ms: 0,
        comm: None,
    }
}
