//! Counts the BPF programs, links and maps loaded in the kernel (the bpf syscall's id
//! iterators) and the legacy kprobe events in tracefs: what must be back to its baseline after
//! pinwatch is killed with SIGKILL.

use anyhow::Result;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {}

const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
const BPF_MAP_GET_NEXT_ID: libc::c_long = 12;
const BPF_LINK_GET_NEXT_ID: libc::c_long = 31;

/// `union bpf_attr` as the *_GET_NEXT_ID commands use it.
#[repr(C)]
#[derive(Default)]
struct NextId {
    start_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn count(cmd: libc::c_long) -> u64 {
    let mut attr = NextId::default();
    let mut n = 0;
    loop {
        // SAFETY: the bpf syscall reads start_id and writes next_id within `attr`.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                &mut attr as *mut NextId,
                size_of::<NextId>() as u32,
            )
        };
        if ret != 0 {
            return n;
        }
        n += 1;
        attr.start_id = attr.next_id;
    }
}

pub fn run(_args: &Args) -> Result<String> {
    let kprobe_events = std::fs::read_to_string("/sys/kernel/tracing/kprobe_events")
        .map(|t| t.lines().count())
        .unwrap_or(0);
    Ok(format!(
        "programs={} links={} maps={} kprobe_events={kprobe_events}",
        count(BPF_PROG_GET_NEXT_ID),
        count(BPF_LINK_GET_NEXT_ID),
        count(BPF_MAP_GET_NEXT_ID)
    ))
}
