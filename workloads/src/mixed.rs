//! `storm mixed`: an ordinary busy host rather than one hot path, for the figure an operator
//! cares about. A build-like process forks and execs a small program and writes and fsyncs a
//! small file, step after step; beside it, a storage service reads through io_uring into
//! registered (long-term pinned) anonymous buffers and with O_DIRECT. The build process is
//! forked before the service pins anything, so, like a real build, it never pinned; the two
//! take turns over a pipe so each round does the same work in every mode.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use io_uring::{IoUring, opcode, types};

use crate::odirect;
use crate::sys::{self, Mapping, PAGE_SIZE};
use crate::timed::{Scratch, drive};

/// Registered buffers the service reads into, one io_uring read each per round.
const FIXED_BUFFERS: usize = 4;
/// Pages per read (64 KiB), for the io_uring reads and the O_DIRECT one.
const READ_PAGES: usize = 16;
/// Bytes of the object file each build step writes and fsyncs.
const OBJECT_BYTES: usize = 16 * 1024;
/// Object files the build cycles through (overwritten, so the directory stays small).
const OBJECTS: u64 = 8;
/// The program each build step runs: busybox's `true`, in the guests and on Debian.
const PROGRAM: &str = "/bin/busybox";

/// Runs rounds until `duration` passed; ops = rounds (one build step and its reads).
pub fn storm(dir: &Path, pages: usize, duration: Duration) -> Result<(u64, Duration)> {
    let data = Scratch::new(dir, "storm-mixed.dat")?;
    let file_pages = pages.max(FIXED_BUFFERS * READ_PAGES);
    odirect::create(&data.0, file_pages)?;
    let build = Builder::spawn(dir)?;
    let service = Service::new(&data.0, file_pages)?;
    let counted = drive(duration, |round| {
        build.request()?;
        service.round(round)?;
        build.wait_done()?;
        Ok(1)
    });
    let stopped = build.stop();
    let counted = counted?;
    stopped?;
    drop(service);
    data.remove()?;
    Ok(counted)
}

/// The storage service: a ring with registered buffers, and a buffer for O_DIRECT reads.
/// Fields drop in order: the ring (unregistering its buffers) before the mappings.
struct Service {
    file: File,
    ring: IoUring,
    fixed: Mapping,
    direct: Mapping,
    /// Reads that fit in the file, each [`READ_PAGES`] long.
    slots: u64,
}

impl Service {
    fn new(path: &Path, file_pages: usize) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .with_context(|| format!("open {} O_DIRECT", path.display()))?;
        let read_len = READ_PAGES * PAGE_SIZE;
        let fixed = Mapping::anon(FIXED_BUFFERS * read_len)?;
        let direct = Mapping::anon(read_len)?;
        // Populated first, so the pins and reads find present pages.
        fixed.write_pages(0x11);
        direct.write_pages(0x22);
        let ring = IoUring::new(8).context("io_uring_setup")?;
        let iovecs: Vec<libc::iovec> = (0..FIXED_BUFFERS)
            .map(|i| libc::iovec {
                // SAFETY: inside the mapping (i < FIXED_BUFFERS).
                iov_base: unsafe { fixed.addr().add(i * read_len) }.cast(),
                iov_len: read_len,
            })
            .collect();
        // SAFETY: the buffers stay mapped for as long as the ring (both live in `Self`; the
        // ring is dropped, unregistering them, before the mapping is unmapped).
        unsafe { ring.submitter().register_buffers(&iovecs) }.context("IORING_REGISTER_BUFFERS")?;
        Ok(Self {
            file,
            ring,
            fixed,
            direct,
            slots: u64::try_from(file_pages / READ_PAGES)?,
        })
    }

    /// File offset of the `n`th read of the run, cycling through the file.
    fn offset(&self, n: u64) -> Result<u64> {
        Ok((n % self.slots) * u64::try_from(READ_PAGES * PAGE_SIZE)?)
    }

    /// One io_uring read into each registered buffer, then one O_DIRECT pread.
    fn round(&self, round: u64) -> Result<()> {
        let read_len = READ_PAGES * PAGE_SIZE;
        let fd = types::Fd(self.file.as_raw_fd());
        let base = round * (FIXED_BUFFERS as u64 + 1);
        {
            // SAFETY: one submitter at a time: `round` takes `&self` and nothing else touches
            // the ring while it runs.
            let mut sq = unsafe { self.ring.submission_shared() };
            for i in 0..FIXED_BUFFERS {
                // SAFETY: inside the registered mapping.
                let buf = unsafe { self.fixed.addr().add(i * read_len) };
                let read =
                    opcode::ReadFixed::new(fd, buf, u32::try_from(read_len)?, u16::try_from(i)?)
                        .offset(self.offset(base + i as u64)?)
                        .build()
                        .user_data(i as u64);
                // SAFETY: the buffer and the fd outlive the read, which completes below.
                unsafe { sq.push(&read) }.map_err(|_| anyhow::anyhow!("submission queue full"))?;
            }
        }
        self.ring
            .submit_and_wait(FIXED_BUFFERS)
            .context("io_uring_enter")?;
        // SAFETY: one completion reader, as for the submissions.
        let cq = unsafe { self.ring.completion_shared() };
        let mut completed = 0;
        for cqe in cq {
            ensure!(
                usize::try_from(cqe.result()).ok() == Some(read_len),
                "io_uring read {} returned {}",
                cqe.user_data(),
                cqe.result()
            );
            completed += 1;
        }
        ensure!(
            completed == FIXED_BUFFERS,
            "{completed} of {FIXED_BUFFERS} reads completed"
        );
        let offset = libc::off_t::try_from(self.offset(base + FIXED_BUFFERS as u64)?)?;
        odirect::transfer(&self.file, &self.direct, false, offset)?;
        Ok(())
    }
}

/// The build: a child process that runs one step per byte it reads, and answers with a byte.
struct Builder {
    pid: libc::pid_t,
    to_child: File,
    from_child: File,
}

impl Builder {
    fn spawn(dir: &Path) -> Result<Self> {
        let (request_rx, request_tx) = pipe()?;
        let (done_rx, done_tx) = pipe()?;
        // SAFETY: the child only runs `serve` (fork, exec, file writes) and exits with _exit.
        let pid = sys::cvt(unsafe { libc::fork() })?;
        if pid == 0 {
            drop((request_tx, done_rx));
            let code = match serve(dir, request_rx, done_tx) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("mixed build process: {e:#}");
                    1
                }
            };
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(code) };
        }
        Ok(Self {
            pid,
            to_child: request_tx,
            from_child: done_rx,
        })
    }

    fn request(&self) -> Result<()> {
        (&self.to_child)
            .write_all(&[1])
            .context("asking the build process for a step")
    }

    fn wait_done(&self) -> Result<()> {
        let mut byte = [0u8; 1];
        (&self.from_child)
            .read_exact(&mut byte)
            .context("the build process died")
    }

    /// Closes the request pipe (the child then exits) and reaps the child.
    fn stop(self) -> Result<()> {
        let Self { pid, to_child, .. } = self;
        drop(to_child);
        wait_ok(pid, "the build process")
    }
}

/// The build process's loop: a step per request byte, until the pipe closes.
fn serve(dir: &Path, mut requests: File, mut done: File) -> Result<()> {
    let mut byte = [0u8; 1];
    let object = vec![0x7fu8; OBJECT_BYTES];
    let mut step = 0u64;
    while requests.read(&mut byte).context("reading a request")? == 1 {
        run_program()?;
        let path = dir.join(format!("storm-mixed-{}.o", step % OBJECTS));
        let mut out = File::create(&path).with_context(|| format!("create {}", path.display()))?;
        out.write_all(&object)
            .with_context(|| format!("write {}", path.display()))?;
        out.sync_all()
            .with_context(|| format!("fsync {}", path.display()))?;
        done.write_all(&[1]).context("answering a request")?;
        step += 1;
    }
    for n in 0..OBJECTS.min(step) {
        let _ = std::fs::remove_file(dir.join(format!("storm-mixed-{n}.o")));
    }
    Ok(())
}

/// fork + exec of `busybox true`, as a build runs its tools, and its exit status checked.
fn run_program() -> Result<()> {
    let program = c"/bin/busybox";
    let argv = [c"true".as_ptr(), std::ptr::null()];
    // SAFETY: the child calls only async-signal-safe functions (execv, _exit).
    let pid = sys::cvt(unsafe { libc::fork() })?;
    if pid == 0 {
        // SAFETY: NUL-terminated strings and a NULL-terminated argv; _exit if execv returns.
        unsafe {
            libc::execv(program.as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
    }
    wait_ok(pid, PROGRAM)
}

/// Waits for `pid`; an error unless it exited with status 0.
fn wait_ok(pid: libc::pid_t, what: &str) -> Result<()> {
    let mut status = 0;
    // SAFETY: waits for our own child.
    sys::cvt(unsafe { libc::waitpid(pid, &raw mut status, 0) })?;
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("{what} ended with wait status {status:#x}");
    }
    Ok(())
}

fn pipe() -> Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: two ints for the kernel to fill.
    sys::cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: fresh descriptors, owned from here on.
    Ok(unsafe {
        use std::os::fd::FromRawFd as _;
        (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1]))
    })
}
