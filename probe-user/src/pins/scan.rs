//! Reads the facts the inventory is built from: every process's status, start time and the
//! fds that belong to pinners, from /proc, without eBPF. What cannot be read is recorded as
//! such (another user's fds need CAP_DAC_READ_SEARCH to list and CAP_SYS_PTRACE to follow:
//! `proc_fd_permission` and `ptrace_may_access` in fs/proc), never read as "no pins".

use std::{
    io::ErrorKind,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use super::{
    fd_kind::{FdKind, classify},
    fdinfo,
    inventory::{Clock, FdFact, ProcessFacts},
    status,
};

/// Why the inventory could not be taken at all.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot list the processes in {path}: {source}")]
    List {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the boot time (btime) from {0}")]
    BootTime(PathBuf),
}

/// A busy ring's lock is tried this many times before its buffers are reported as not listed.
const RING_TRIES: usize = 5;
const RING_RETRY: Duration = Duration::from_millis(20);

/// Reads every process under `proc` (normally `/proc`).
pub fn scan(proc: &Path) -> Result<(Vec<ProcessFacts>, Clock), ScanError> {
    let clock = clock(proc)?;
    let list = |source| ScanError::List {
        path: proc.to_path_buf(),
        source,
    };
    let mut facts = Vec::new();
    for entry in std::fs::read_dir(proc).map_err(list)? {
        let Some(tgid) = entry
            .ok()
            .and_then(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        else {
            continue;
        };
        // A process that exits while it is read is simply not there any more.
        if let Some(f) = process(&proc.join(tgid.to_string()), tgid, clock.page_size) {
            facts.push(f);
        }
    }
    facts.sort_by_key(|f| f.tgid);
    Ok((facts, clock))
}

/// One process's facts; `None` once it is gone or a zombie (its mm and fds are released).
fn process(dir: &Path, tgid: u32, page_size: u64) -> Option<ProcessFacts> {
    let text = |name: &str| std::fs::read(dir.join(name)).ok();
    let stat = String::from_utf8_lossy(&text("stat")?).into_owned();
    let start_ticks = crate::procfs::start_in_stat(&stat)?;
    let status = status::parse(&String::from_utf8_lossy(&text("status")?), page_size / 1024);
    // Kernel threads have no mm and their fd tables pin nothing.
    status.vm_pin_pages?;
    let fds = match pinner_fds(dir) {
        Ok(fds) => Ok(fds),
        Err(e) if e.kind() == ErrorKind::NotFound => return None,
        Err(e) => Err(unreadable(&e)),
    };
    Some(ProcessFacts {
        tgid,
        start_ticks,
        status,
        fds,
    })
}

fn unreadable(e: &std::io::Error) -> String {
    if e.kind() == ErrorKind::PermissionDenied {
        "permission denied: listing and following another user's fds needs CAP_DAC_READ_SEARCH \
         and CAP_SYS_PTRACE (or root)"
            .to_owned()
    } else {
        e.to_string()
    }
}

/// The fds of pinners in `dir/fd`, with each ring's buffer table.
fn pinner_fds(dir: &Path) -> std::io::Result<Vec<FdFact>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir.join("fd"))? {
        let entry = entry?;
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let target = match std::fs::read_link(entry.path()) {
            Ok(t) => t,
            // Closed since the directory was listed.
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let Some(kind) = classify(target.as_os_str().as_bytes()) else {
            continue;
        };
        let ring = match kind {
            FdKind::IoUring => ring(&dir.join("fdinfo").join(fd.to_string()))?,
            _ => None,
        };
        out.push(FdFact { fd, kind, ring });
    }
    out.sort_by_key(|f| f.fd);
    Ok(out)
}

/// A ring's buffer table, tried again while the ring is busy; `None` if it stayed busy.
fn ring(path: &Path) -> std::io::Result<Option<fdinfo::Ring>> {
    for _ in 0..RING_TRIES {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match fdinfo::parse(&String::from_utf8_lossy(&text)) {
            Some(ring) if ring.complete() => return Ok(Some(ring)),
            _ => std::thread::sleep(RING_RETRY),
        }
    }
    Ok(None)
}

fn clock(proc: &Path) -> Result<Clock, ScanError> {
    let stat_path = proc.join("stat");
    let boot_unix = std::fs::read_to_string(&stat_path)
        .ok()
        .and_then(|s| btime(&s))
        .ok_or(ScanError::BootTime(stat_path))?;
    // SAFETY: sysconf only reads a configuration value.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    Ok(Clock {
        boot_unix,
        ticks_per_second: u64::try_from(ticks).unwrap_or(100),
        now_unix: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        page_size: u64::try_from(page).unwrap_or(4096),
    })
}

/// `btime <unix seconds>` in /proc/stat.
pub fn btime(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_time_is_read_from_proc_stat() {
        assert_eq!(
            btime("cpu  1 2 3\nintr 5\nbtime 1764201600\nprocesses 9\n"),
            Some(1_764_201_600)
        );
        assert_eq!(btime("cpu 1\n"), None);
    }

    /// This test process holds a ring with a registered buffer: the real /proc lists it.
    #[test]
    fn a_ring_this_process_holds_is_found_with_its_pages() {
        let Some(_ring) = crate::pins::test_ring::Held::new(3) else {
            eprintln!("skipped: io_uring unavailable here");
            return;
        };
        let me = std::process::id();
        let facts = process(&Path::new("/proc").join(me.to_string()), me, 4096).unwrap();
        let fds = facts.fds.unwrap();
        let rings: Vec<_> = fds.iter().filter_map(|f| f.ring.as_ref()).collect();
        assert!(rings.iter().any(|r| r.pages(4096) == 3), "{rings:?}");
    }
}
