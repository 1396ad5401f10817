//! Counts the BPF programs, links and maps loaded in the kernel (the bpf syscall's id
//! iterators) and the legacy kprobe events in tracefs: what must be back to its baseline after
//! pinwatch is killed with SIGKILL. With `--programs`, also each program's kernel run
//! statistics, which is how a benchmark measures the cost of the probes themselves.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result};

use crate::sys;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Also print one line per loaded program, before the counts:
    /// `PROG id=<id> type=<prog_type number> name=<name> run_cnt=<runs> run_time_ns=<ns>`.
    /// The kernel only counts runs while sysctl kernel.bpf_stats_enabled=1 (or while someone
    /// holds a BPF_ENABLE_STATS fd); otherwise run_cnt and run_time_ns stay 0.
    #[arg(long)]
    pub programs: bool,
}

const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
pub const BPF_MAP_GET_NEXT_ID: libc::c_long = 12;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
pub const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_GET_NEXT_ID: libc::c_long = 31;

/// `union bpf_attr` as the *_GET_NEXT_ID and *_GET_FD_BY_ID commands use it (start_id and
/// prog_id share the first field).
#[repr(C)]
#[derive(Default)]
pub struct IdAttr {
    pub start_id: u32,
    pub next_id: u32,
    pub open_flags: u32,
}

/// `union bpf_attr` as BPF_OBJ_GET_INFO_BY_FD uses it.
#[repr(C)]
#[derive(Default)]
pub struct InfoAttr {
    pub bpf_fd: u32,
    pub info_len: u32,
    pub info: u64,
}

/// `struct bpf_prog_info` (include/uapi/linux/bpf.h), up to attach_btf_id (5.16+; 232 bytes).
/// The kernel copies min(its size, info_len) bytes, so older kernels fill a prefix and newer
/// ones leave their extra fields out. Bytes past the kernel's own struct must be zero, hence the
/// explicit padding field instead of implicit (uninitialised) padding. The pointer/count pairs
/// stay 0, so the kernel copies no arrays.
#[repr(C)]
#[derive(Default)]
#[allow(dead_code)] // Laid out for the kernel; only some fields are read.
struct ProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
    ifindex: u32,
    /// `gpl_compatible:1` and 31 bits of padding.
    gpl_compatible: u32,
    netns_dev: u64,
    netns_ino: u64,
    nr_jited_ksyms: u32,
    nr_jited_func_lens: u32,
    jited_ksyms: u64,
    jited_func_lens: u64,
    btf_id: u32,
    func_info_rec_size: u32,
    func_info: u64,
    nr_func_info: u32,
    nr_line_info: u32,
    line_info: u64,
    jited_line_info: u64,
    nr_jited_line_info: u32,
    line_info_rec_size: u32,
    jited_line_info_rec_size: u32,
    nr_prog_tags: u32,
    prog_tags: u64,
    run_time_ns: u64,
    run_cnt: u64,
    recursion_misses: u64,
    verified_insns: u32,
    attach_btf_obj_id: u32,
    attach_btf_id: u32,
    pad: u32,
}

const _: () = assert!(size_of::<ProgInfo>() == 232);

impl ProgInfo {
    /// The program's name: up to the first NUL (the kernel only allows [A-Za-z0-9_.]).
    fn name(&self) -> String {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.name.len());
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }

    fn line(&self) -> String {
        format!(
            "PROG id={} type={} name={} run_cnt={} run_time_ns={}",
            self.id,
            self.prog_type,
            self.name(),
            self.run_cnt,
            self.run_time_ns
        )
    }
}

/// bpf(2) with `attr` as the command's part of `union bpf_attr`.
///
/// # Safety
///
/// `attr` must have the layout `cmd` expects, and any pointer in it must be valid for the
/// kernel to write what `cmd` writes there.
pub unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    let size = u32::try_from(size_of::<T>()).map_err(io::Error::other)?;
    // SAFETY: forwarded from the caller; the kernel reads and writes `size` bytes of `attr`.
    sys::cvt(unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size) })
}

/// The ids a *_GET_NEXT_ID command walks, in increasing order; stops at the first error
/// (ENOENT past the last id).
pub fn ids(cmd: libc::c_long) -> Vec<u32> {
    let mut attr = IdAttr::default();
    let mut ids = Vec::new();
    // SAFETY: the *_GET_NEXT_ID commands read start_id and write next_id within `attr`.
    while unsafe { bpf(cmd, &mut attr) }.is_ok() {
        ids.push(attr.next_id);
        attr.start_id = attr.next_id;
    }
    ids
}

/// The program's info, or None when it was unloaded since its id was listed.
fn prog_info(id: u32) -> Result<Option<ProgInfo>> {
    let mut attr = IdAttr {
        start_id: id,
        ..IdAttr::default()
    };
    // SAFETY: BPF_PROG_GET_FD_BY_ID only reads prog_id and open_flags from `attr`.
    let fd = match unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) } {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("BPF_PROG_GET_FD_BY_ID {id}")),
    };
    let fd = i32::try_from(fd).context("bpf returned an fd beyond i32")?;
    // SAFETY: the kernel just returned this fd and nothing else owns it; dropping it closes it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut info = ProgInfo::default();
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd().cast_unsigned(),
        info_len: u32::try_from(size_of::<ProgInfo>())?,
        info: (&raw mut info) as u64,
    };
    // SAFETY: attr.info points at `info`, live and writable for info_len bytes; the kernel
    // writes at most that many bytes there and the length it filled into attr.info_len.
    unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }
        .with_context(|| format!("BPF_OBJ_GET_INFO_BY_FD of program {id}"))?;
    Ok(Some(info))
}

pub fn run(args: &Args) -> Result<String> {
    if args.programs {
        for id in ids(BPF_PROG_GET_NEXT_ID) {
            if let Some(info) = prog_info(id)? {
                println!("{}", info.line());
            }
        }
    }
    let kprobe_events = std::fs::read_to_string("/sys/kernel/tracing/kprobe_events")
        .map(|t| t.lines().count())
        .unwrap_or(0);
    Ok(format!(
        "programs={} links={} maps={} kprobe_events={kprobe_events}",
        ids(BPF_PROG_GET_NEXT_ID).len(),
        ids(BPF_LINK_GET_NEXT_ID).len(),
        ids(BPF_MAP_GET_NEXT_ID).len()
    ))
}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use super::*;

    /// Offsets from include/uapi/linux/bpf.h (checked with offsetof against the 6.x header).
    #[test]
    fn prog_info_matches_the_uapi_layout() {
        assert_eq!(offset_of!(ProgInfo, id), 4);
        assert_eq!(offset_of!(ProgInfo, tag), 8);
        assert_eq!(offset_of!(ProgInfo, jited_prog_insns), 24);
        assert_eq!(offset_of!(ProgInfo, load_time), 40);
        assert_eq!(offset_of!(ProgInfo, map_ids), 56);
        assert_eq!(offset_of!(ProgInfo, name), 64);
        assert_eq!(offset_of!(ProgInfo, ifindex), 80);
        assert_eq!(offset_of!(ProgInfo, netns_dev), 88);
        assert_eq!(offset_of!(ProgInfo, jited_ksyms), 112);
        assert_eq!(offset_of!(ProgInfo, btf_id), 128);
        assert_eq!(offset_of!(ProgInfo, func_info), 136);
        assert_eq!(offset_of!(ProgInfo, line_info), 152);
        assert_eq!(offset_of!(ProgInfo, nr_jited_line_info), 168);
        assert_eq!(offset_of!(ProgInfo, prog_tags), 184);
        assert_eq!(offset_of!(ProgInfo, run_time_ns), 192);
        assert_eq!(offset_of!(ProgInfo, run_cnt), 200);
        assert_eq!(offset_of!(ProgInfo, recursion_misses), 208);
        assert_eq!(offset_of!(ProgInfo, verified_insns), 216);
        assert_eq!(offset_of!(ProgInfo, attach_btf_id), 224);
        assert_eq!(align_of::<ProgInfo>(), 8);
        assert_eq!(size_of::<IdAttr>(), 12);
        assert_eq!(size_of::<InfoAttr>(), 16);
    }

    #[test]
    fn prog_line() {
        let mut info = ProgInfo {
            prog_type: 26,
            id: 5,
            run_cnt: 110,
            run_time_ns: 11000,
            ..ProgInfo::default()
        };
        info.name[..14].copy_from_slice(b"fexit_do_wp_pa");
        assert_eq!(
            info.line(),
            "PROG id=5 type=26 name=fexit_do_wp_pa run_cnt=110 run_time_ns=11000"
        );
        info.name = [b'x'; 16];
        assert_eq!(info.name(), "x".repeat(16));
    }
}
