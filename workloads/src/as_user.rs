//! Runs a command as an unprivileged user holding only the given capabilities, the way systemd
//! runs a unit with `User=` and `AmbientCapabilities=`: proves pinwatch's packaged capability
//! set is enough (and that without it pinwatch refuses cleanly).

use std::{ffi::CString, os::unix::ffi::OsStrExt as _};

use anyhow::{Context, Result, bail};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// User (and group) id to run as.
    #[arg(long, default_value_t = 65534)]
    pub uid: u32,
    /// Capabilities to keep, comma-separated names without CAP_ (bpf,perfmon,…); none if empty.
    #[arg(long, value_delimiter = ',')]
    pub caps: Vec<String>,
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Capability numbers (include/uapi/linux/capability.h).
fn cap_number(name: &str) -> Result<u32> {
    Ok(match name.to_ascii_lowercase().trim_start_matches("cap_") {
        "dac_read_search" => 2,
        "sys_ptrace" => 19,
        "sys_admin" => 21,
        "sys_resource" => 24,
        "syslog" => 34,
        "perfmon" => 38,
        "bpf" => 39,
        other => bail!("unknown capability {other}"),
    })
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Returns only if exec failed.
pub fn run(args: &Args) -> Result<String> {
    let caps: Vec<u32> = args
        .caps
        .iter()
        .filter(|c| !c.is_empty())
        .map(|c| cap_number(c))
        .collect::<Result<_>>()?;
    let mut data = [CapData::default(); 2];
    for &cap in &caps {
        let (word, bit) = ((cap / 32) as usize, 1u32 << (cap % 32));
        data[word].effective |= bit;
        data[word].permitted |= bit;
        data[word].inheritable |= bit;
    }
    let program = CString::new(args.command[0].as_bytes())?;
    let argv: Vec<CString> = args
        .command
        .iter()
        .map(|a| CString::new(std::ffi::OsStr::new(a).as_bytes()))
        .collect::<Result<_, _>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    // SAFETY: plain syscalls on this process's own credentials, with valid pointers; the argv
    // array is NULL-terminated and outlives execv.
    unsafe {
        check(
            libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0),
            "PR_SET_KEEPCAPS",
        )?;
        check(libc::setgroups(0, std::ptr::null()), "setgroups")?;
        check(libc::setresgid(args.uid, args.uid, args.uid), "setresgid")?;
        check(libc::setresuid(args.uid, args.uid, args.uid), "setresuid")?;
        let header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        check(
            libc::syscall(libc::SYS_capset, &header, data.as_ptr()) as i32,
            "capset",
        )?;
        for &cap in &caps {
            check(
                libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE, cap, 0, 0),
                "PR_CAP_AMBIENT_RAISE",
            )?;
        }
        libc::execv(program.as_ptr(), argv_ptrs.as_ptr());
    }
    Err(std::io::Error::last_os_error()).with_context(|| format!("exec {}", args.command[0]))
}

fn check(ret: i32, what: &str) -> Result<()> {
    if ret < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| what.to_owned());
    }
    Ok(())
}
