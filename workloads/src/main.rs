//! pinwatch-workload: tiny root-only programs, one per subcommand, that each
//! perform one real kernel operation pinwatch's probes should observe.
//! Runs as a static binary inside a busybox initramfs in QEMU guests.

mod all;
mod as_user;
mod bpf_objects;
mod bpftrace_script;
mod churn;
mod devmem;
mod discard;
mod divergence;
mod edu;
mod fill_map;
mod fork_cow;
mod gmem;
mod iouring;
mod job_runner;
mod kvm;
mod mixed;
mod msync;
mod odirect;
mod pci_sysfs;
mod pin_many;
mod process_vm;
mod storm;
mod sys;
mod timed;
mod truncate;
mod udmabuf;
mod unsupported;
mod vfio;
mod xdp_umem;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "pinwatch-workload",
    about = "Exercise kernel GUP/pinning paths for pinwatch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a command as an unprivileged user with only the given capabilities (ambient).
    AsUser(as_user::Args),
    /// Count the BPF programs, links and maps in the kernel, and legacy kprobe events.
    BpfObjects(bpf_objects::Args),
    /// Fill pinwatch's named kernel maps with foreign entries (tests of a full map).
    FillMap(fill_map::Args),
    /// Register/unregister io_uring fixed buffers (long-term pin).
    Iouring(iouring::Args),
    /// Pin a KVM guest_memfd with io_uring, then punch a hole in it (exit 3 without guest_memfd).
    Gmem(gmem::Args),
    /// Pin memfd, anonymous or file memory (io_uring, VFIO), then discard part of it while
    /// pinned (punch hole, truncate, MADV_REMOVE, MADV_DONTNEED), or one of the controls.
    Discard(discard::Args),
    /// Run jobs in short-lived forked workers (or threads), each pinning a file of its own.
    JobRunner(job_runner::Args),
    /// Dirty a shared file mapping and msync(MS_SYNC) it.
    Msync(msync::Args),
    /// fork() and write on both sides to take COW faults.
    ForkCow(fork_cow::Args),
    /// O_DIRECT pread/pwrite of a whole file.
    Odirect(odirect::Args),
    /// process_vm_readv/writev on self and on a forked child.
    ProcessVm(process_vm::Args),
    /// Map /dev/mem, fork, then partially munmap.
    Devmem(devmem::Args),
    /// Map a PCI BAR via sysfs, then rebind the driver to revoke it.
    PciSysfs(pci_sysfs::Args),
    /// Create and close a udmabuf from a sealed memfd.
    Udmabuf(udmabuf::Args),
    /// Register an AF_XDP UMEM (long-term pin_user_pages) and close the socket.
    XdpUmem(xdp_umem::Args),
    /// Map anon or file memory for device DMA through VFIO type1 (long-term pin).
    Vfio(vfio::Args),
    /// ftruncate a file to 0 while it is still mapped.
    Truncate(truncate::Args),
    /// Run every workload with defaults, files inside --dir.
    All(all::Args),
    /// Benchmark driver: run one kernel hot path in a loop for --seconds, print its rate.
    Storm(storm::Args),
    /// Long-term pin many pages in many separate pin calls (io_uring rings) and hold them.
    PinMany(pin_many::Args),
    /// Write a bpftrace script counting the functions pinwatch attached, from
    /// `pinwatch doctor --json` on stdin (the benchmark's comparison mode).
    BpftraceScript(bpftrace_script::Args),
}

impl Command {
    /// The `<name>` printed in `workload <name>: ...` lines.
    fn name(&self) -> &'static str {
        match self {
            Self::AsUser(_) => "as-user",
            Self::BpfObjects(_) => "bpf-objects",
            Self::FillMap(_) => "fill-map",
            Self::Iouring(_) => "iouring",
            Self::Gmem(_) => "gmem",
            Self::Discard(_) => "discard",
            Self::JobRunner(_) => "job-runner",
            Self::Msync(_) => "msync",
            Self::ForkCow(_) => "fork-cow",
            Self::Odirect(_) => "odirect",
            Self::ProcessVm(_) => "process-vm",
            Self::Devmem(_) => "devmem",
            Self::PciSysfs(_) => "pci-sysfs",
            Self::Udmabuf(_) => "udmabuf",
            Self::XdpUmem(_) => "xdp-umem",
            Self::Vfio(_) => "vfio",
            Self::Truncate(_) => "truncate",
            Self::All(_) => "all",
            Self::Storm(_) => "storm",
            Self::PinMany(_) => "pin-many",
            Self::BpftraceScript(_) => "bpftrace-script",
        }
    }

    /// Runs one workload and returns its status text ("ok ...", "refused ...").
    fn run(&self) -> Result<String> {
        match self {
            Self::AsUser(args) => as_user::run(args),
            Self::BpfObjects(args) => bpf_objects::run(args),
            Self::FillMap(args) => fill_map::run(args),
            Self::Iouring(args) => iouring::run(args),
            Self::Gmem(args) => gmem::run(args),
            Self::Discard(args) => discard::run(args),
            Self::JobRunner(args) => job_runner::run(args),
            Self::Msync(args) => msync::run(args),
            Self::ForkCow(args) => fork_cow::run(args),
            Self::Odirect(args) => odirect::run(args),
            Self::ProcessVm(args) => process_vm::run(args),
            Self::Devmem(args) => devmem::run(args),
            Self::PciSysfs(args) => pci_sysfs::run(args),
            Self::Udmabuf(args) => udmabuf::run(args),
            Self::XdpUmem(args) => xdp_umem::run(args),
            Self::Vfio(args) => vfio::run(args),
            Self::Truncate(args) => truncate::run(args),
            Self::All(args) => all::run(args),
            Self::Storm(args) => storm::run(args),
            Self::PinMany(args) => pin_many::run(args),
            Self::BpftraceScript(args) => bpftrace_script::run(args),
        }
    }
}

/// Failures print the full anyhow context chain on one line, in the same
/// shape `all` uses, and exit 1; a kernel without what the workload needs is no failure of it:
/// `unsupported <reason>` on stdout, exit 3.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let name = cli.command.name();
    match cli.command.run() {
        // A command whose stdout is data (a script) reports on stderr.
        Ok(status) if matches!(cli.command, Command::BpftraceScript(_)) => {
            eprintln!("workload {name}: {status}");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            println!("workload {name}: {status}");
            ExitCode::SUCCESS
        }
        Err(ref err) if let Some(missing) = unsupported::reason(err) => {
            println!("workload {name}: unsupported {missing}");
            ExitCode::from(unsupported::EXIT_UNSUPPORTED)
        }
        Err(err) => {
            eprintln!("workload {name}: FAILED {err:#}");
            ExitCode::FAILURE
        }
    }
}
