//! `pin-many`: many long-term pins taken in many separate pin calls and held, to load a
//! watcher's per-pin state (ledger size, memory, event throughput). IORING_REGISTER_BUFFERS
//! pins each iovec with its own pin_user_pages call, so R rings of N iovecs make R x N calls.
//!
//! stdout: `pinned pages=<R*N*P> calls=<R*N> secs=<s> rate=<calls/s>` once every ring is
//! registered, `unpinned pages=<R*N*P> secs=<s> rate=<calls/s>` once every ring is
//! unregistered; the times cover only the registration (unregistration) phase, the buffers
//! are mapped and populated before it. stderr: `pinned ring i/R` as each ring is registered.

use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::ptr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::iouring::{self, IORING_MAX_REG_BUFFERS, MAX_IOVEC_LEN};
use crate::sys::{self, Mapping};
use crate::timed::secs_and_rate;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// io_uring rings, each registering its own anonymous buffer.
    #[arg(long, default_value_t = 16)]
    pub rings: usize,
    /// Fixed buffers (iovecs) registered per ring, one pin call each (kernel limit 16384).
    #[arg(long, default_value_t = IORING_MAX_REG_BUFFERS)]
    pub iovecs: usize,
    /// 4 KiB pages per iovec.
    #[arg(long, default_value_t = 1)]
    pub pages: usize,
    /// Register each ring's iovecs in descending address order: no pin call then starts where
    /// the last one ended, so the kernel cannot gather the calls into runs (one record per call).
    #[arg(long)]
    pub descending: bool,
    /// Seconds to hold the pins before unregistering. SIGTERM or SIGINT end the hold early
    /// (the rings are still unregistered and the figures printed).
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
    pub hold_secs: f64,
}

/// The validated sizes.
#[derive(Debug, PartialEq)]
struct Plan {
    /// Bytes of each ring's buffer.
    ring_len: usize,
    /// Pages pinned over all rings.
    pages: u64,
    /// Pin calls (iovecs) over all rings.
    calls: u64,
    hold: Duration,
}

fn plan(args: &Args) -> Result<Plan> {
    ensure!(args.rings >= 1, "--rings must be at least 1");
    ensure!(
        (1..=IORING_MAX_REG_BUFFERS).contains(&args.iovecs),
        "--iovecs must be 1..={IORING_MAX_REG_BUFFERS} (the kernel's limit per registration), \
         not {}",
        args.iovecs
    );
    let iovec_len = sys::pages_len(args.pages)?;
    ensure!(
        iovec_len <= MAX_IOVEC_LEN,
        "--pages {} makes a {iovec_len}-byte iovec; the kernel refuses iovecs over 1 GiB",
        args.pages
    );
    let ring_len = iovec_len
        .checked_mul(args.iovecs)
        .context("--iovecs x --pages overflows")?;
    ensure!(
        args.hold_secs.is_finite() && args.hold_secs >= 0.0,
        "--hold-secs must be a finite number of at least 0, not {}",
        args.hold_secs
    );
    let hold = Duration::try_from_secs_f64(args.hold_secs).context("--hold-secs is too large")?;
    let calls = u64::try_from(args.rings)?
        .checked_mul(u64::try_from(args.iovecs)?)
        .context("--rings x --iovecs overflows")?;
    let pages = calls
        .checked_mul(u64::try_from(args.pages)?)
        .context("--rings x --iovecs x --pages overflows")?;
    Ok(Plan {
        ring_len,
        pages,
        calls,
        hold,
    })
}

pub fn run(args: &Args) -> Result<String> {
    let plan = plan(args)?;
    // Blocked from the start, so a SIGTERM at any point lands in the hold's wait and the rings
    // are unregistered by this program instead of by the kernel at exit.
    let stop = StopSignals::block()?;
    let mut bufs = Vec::with_capacity(args.rings);
    let mut iovecs = Vec::with_capacity(args.rings);
    for i in 1..=args.rings {
        let buf = Mapping::anon(plan.ring_len).with_context(|| format!("buffer of ring {i}"))?;
        // Written first so registration pins present pages instead of faulting them in.
        buf.write_pages(0x70);
        let mut ring_iovecs = iouring::page_iovecs(&buf, args.pages)?;
        if args.descending {
            ring_iovecs.reverse();
        }
        iovecs.push(ring_iovecs);
        bufs.push(buf);
    }

    let start = Instant::now();
    let mut rings = Vec::with_capacity(args.rings);
    for (i, ring_iovecs) in iovecs.iter().enumerate() {
        let n = i + 1;
        let ring = iouring::setup().with_context(|| format!("io_uring_setup for ring {n}"))?;
        iouring::register(&ring, ring_iovecs)
            .map_err(iouring::register_error)
            .with_context(|| format!("ring {n}/{}", args.rings))?;
        eprintln!("pinned ring {n}/{}", args.rings);
        rings.push(ring);
    }
    let pinning = start.elapsed();
    println!(
        "pinned pages={} calls={} {}",
        plan.pages,
        plan.calls,
        secs_and_rate(plan.calls, pinning)
    );
    io::stdout().flush().context("flush stdout")?;

    if let Some(signal) = stop.wait(plan.hold)? {
        eprintln!("hold ended early by signal {signal}");
    }

    let start = Instant::now();
    for (i, ring) in rings.iter().enumerate() {
        iouring::unregister(ring)
            .with_context(|| format!("IORING_UNREGISTER_BUFFERS of ring {}", i + 1))?;
    }
    let unpinning = start.elapsed();
    println!(
        "unpinned pages={} {}",
        plan.pages,
        secs_and_rate(plan.calls, unpinning)
    );
    drop(rings);
    for buf in bufs {
        buf.unmap()?;
    }
    Ok(format!("ok pages={} calls={}", plan.pages, plan.calls))
}

/// SIGTERM and SIGINT, blocked so that they end the hold (sigtimedwait) rather than kill the
/// process: a harness stops a long hold with SIGTERM and still wants the unpin figures and the
/// `ok` status.
struct StopSignals(libc::sigset_t);

impl StopSignals {
    fn block() -> Result<Self> {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the set it is given; sigaddset then only modifies it.
        let set = unsafe {
            sys::cvt(libc::sigemptyset(set.as_mut_ptr())).context("sigemptyset")?;
            sys::cvt(libc::sigaddset(set.as_mut_ptr(), libc::SIGTERM)).context("sigaddset")?;
            sys::cvt(libc::sigaddset(set.as_mut_ptr(), libc::SIGINT)).context("sigaddset")?;
            set.assume_init()
        };
        // SAFETY: `set` is an initialised signal set; the old mask is not asked for (NULL).
        sys::cvt(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, ptr::null_mut()) })
            .context("sigprocmask(SIG_BLOCK, SIGTERM|SIGINT)")?;
        Ok(Self(set))
    }

    /// Waits `hold`, or until one of the signals arrives (returned).
    fn wait(&self, hold: Duration) -> Result<Option<libc::c_int>> {
        let Some(deadline) = Instant::now().checked_add(hold) else {
            bail!("--hold-secs is too large");
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = libc::timespec {
                tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: left.subsec_nanos().into(),
            };
            // SAFETY: the set and the timeout are live and initialised; no siginfo is asked
            // for (NULL).
            match sys::cvt(unsafe { libc::sigtimedwait(&self.0, ptr::null_mut(), &timeout) }) {
                Ok(signal) => return Ok(Some(signal)),
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("sigtimedwait"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::PAGE_SIZE;

    fn args(rings: usize, iovecs: usize, pages: usize, hold_secs: f64) -> Args {
        Args {
            rings,
            iovecs,
            pages,
            descending: false,
            hold_secs,
        }
    }

    #[test]
    fn plans_the_defaults() {
        assert_eq!(
            plan(&args(16, 16384, 1, 10.0)).unwrap(),
            Plan {
                ring_len: 16384 * PAGE_SIZE,
                pages: 262_144,
                calls: 262_144,
                hold: Duration::from_secs(10),
            }
        );
        let small = plan(&args(2, 100, 3, 0.0)).unwrap();
        assert_eq!((small.calls, small.pages), (200, 600));
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(plan(&args(0, 1, 1, 1.0)).is_err());
        assert!(plan(&args(1, 0, 1, 1.0)).is_err());
        assert!(plan(&args(1, 16385, 1, 1.0)).is_err());
        assert!(plan(&args(1, 1, 0, 1.0)).is_err());
        assert!(plan(&args(1, 1, 262_145, 1.0)).is_err());
        assert!(plan(&args(1, 1, 262_144, 1.0)).is_ok());
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(plan(&args(1, 1, 1, bad)).is_err(), "{bad}");
        }
    }
}
