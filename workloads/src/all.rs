//! `all`: every workload in a fixed order with its CLI defaults, calling the
//! functions directly. Failures are collected rather than fatal, so one
//! missing device (udmabuf, a PCI id, /dev/mem policy) still lets the rest run.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};

use crate::{
    devmem, discard, fork_cow, iouring, msync, odirect, pci_sysfs, process_vm, truncate, udmabuf,
    vfio, xdp_umem,
};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Directory for the scratch files (created if missing).
    #[arg(long)]
    pub dir: PathBuf,
}

type Step = (&'static str, Box<dyn Fn() -> Result<String>>);

pub fn run(args: &Args) -> Result<String> {
    fs::create_dir_all(&args.dir).with_context(|| format!("create {}", args.dir.display()))?;
    let steps = steps(&args.dir)?;
    let mut failed = Vec::new();
    for (name, step) in &steps {
        match step() {
            Ok(status) => println!("workload {name}: {status}"),
            Err(err) => {
                println!("workload {name}: FAILED {err:#}");
                failed.push(*name);
            }
        }
    }
    ensure!(
        failed.is_empty(),
        "{} workload(s) failed: {}",
        failed.len(),
        failed.join(", ")
    );
    Ok(format!("ok {} workloads", steps.len()))
}

fn steps(dir: &Path) -> Result<Vec<Step>> {
    let path = |file: &str| [OsString::from("--path"), dir.join(file).into_os_string()];
    let io_file = [
        OsString::from("--file"),
        dir.join("iouring.dat").into_os_string(),
    ];
    let vfio_private = [
        OsString::from("--file"),
        dir.join("vfio-private.dat").into_os_string(),
        OsString::from("--private"),
        OsString::from("--read-only"),
    ];
    let vfio_file = [
        OsString::from("--file"),
        dir.join("vfio.dat").into_os_string(),
    ];
    let mut steps: Vec<Step> = vec![
        ("iouring", step(iouring::run, defaults(&[])?)),
        ("iouring", step(iouring::run, defaults(&["--fork".into()])?)),
        (
            "iouring",
            step(
                iouring::run,
                // Held long enough for a watcher to read the buffer's VmFlags before the fork.
                defaults(&[
                    "--fork".into(),
                    "--dontfork".into(),
                    "--hold-ms".into(),
                    "300".into(),
                ])?,
            ),
        ),
        ("iouring", step(iouring::run, defaults(&io_file)?)),
        (
            "iouring",
            step(iouring::run, defaults(&["--memfd".into()])?),
        ),
        // One 2 MiB huge page of a hugetlbfs file (mounted at /mnt/huge by the VM matrix guest).
        (
            "iouring",
            step(
                iouring::run,
                defaults(&[
                    "--pages".into(),
                    "512".into(),
                    "--file".into(),
                    "/mnt/huge/pinwatch.dat".into(),
                ])?,
            ),
        ),
        ("xdp-umem", step(xdp_umem::run, defaults(&[])?)),
        ("vfio", step(vfio::run, defaults(&[])?)),
        ("vfio", step(vfio::run, defaults(&["--read-only".into()])?)),
        ("vfio", step(vfio::run, defaults(&vfio_file)?)),
        ("vfio", step(vfio::run, defaults(&vfio_private)?)),
        ("vfio", step(vfio::run, defaults(&["--bar-zap".into()])?)),
        (
            "vfio",
            step(
                vfio::run,
                defaults(&["--read-only".into(), "--share-with-child".into()])?,
            ),
        ),
        ("msync", step(msync::run, defaults(&path("msync.dat"))?)),
        ("fork-cow", step(fork_cow::run, defaults(&[])?)),
        // Storms with no pin held (this process has pinned before: MMF_HAS_PINNED is set, so
        // pinwatch's fork path is exercised too). Every kernel must stay silent.
        (
            "fork-cow",
            step(
                fork_cow::run,
                defaults(&[
                    "--rounds".into(),
                    "20".into(),
                    "--pages".into(),
                    "64".into(),
                ])?,
            ),
        ),
        (
            "msync",
            step(
                msync::run,
                defaults(&[
                    OsString::from("--pages"),
                    "256".into(),
                    "--path".into(),
                    dir.join("storm.dat").into_os_string(),
                ])?,
            ),
        ),
        (
            "odirect",
            step(odirect::run, defaults(&path("odirect.dat"))?),
        ),
        ("process-vm", step(process_vm::run, defaults(&[])?)),
        ("devmem", step(devmem::run, defaults(&[])?)),
        ("pci-sysfs", step(pci_sysfs::run, defaults(&[])?)),
        ("udmabuf", step(udmabuf::run, defaults(&[])?)),
        (
            "truncate",
            step(truncate::run, defaults(&path("truncate.dat"))?),
        ),
    ];
    // Memory taken away under a long-term pin, and the controls (discard/scenarios.rs: each
    // scenario's page count is its own).
    for scenario in discard::scenarios::SCENARIOS {
        steps.push((
            "discard",
            step(discard::run, defaults(&scenario.argv(dir))?),
        ));
    }
    Ok(steps)
}

fn step<A: 'static>(run: fn(&A) -> Result<String>, args: A) -> Box<dyn Fn() -> Result<String>> {
    Box::new(move || run(&args))
}

/// Builds a workload's Args from its own clap defaults plus `extra` flags,
/// so `all` cannot drift from what the subcommand would use.
fn defaults<A: clap::Args + clap::FromArgMatches>(extra: &[OsString]) -> Result<A> {
    let cmd = A::augment_args(clap::Command::new("all"));
    let argv = std::iter::once(OsString::from("all")).chain(extra.iter().cloned());
    let matches = cmd.try_get_matches_from(argv)?;
    Ok(A::from_arg_matches(&matches)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_cli() {
        let io: iouring::Args = defaults(&["--fork".into()]).unwrap();
        assert_eq!(
            (io.pages, io.fork, io.dontfork, io.file),
            (16, true, false, None)
        );
        let pci: pci_sysfs::Args = defaults(&[]).unwrap();
        assert_eq!(
            (pci.vendor, pci.device, pci.bar, pci.size),
            (0x1af4, 0x1044, 4, 16384)
        );
        assert_eq!(devmem::Args::clone(&defaults(&[]).unwrap()).pages, 2);
    }

    #[test]
    fn builds_every_step() {
        let names: Vec<_> = steps(Path::new("/nonexistent"))
            .unwrap()
            .iter()
            .map(|s| s.0)
            .collect();
        let discards = discard::scenarios::SCENARIOS.len();
        assert_eq!(names.len(), 23 + discards);
        assert_eq!(names[..4], ["iouring"; 4]);
        assert!(names[23..].iter().all(|n| *n == "discard"));
    }
}
