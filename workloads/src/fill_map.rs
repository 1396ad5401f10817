//! Fills pinwatch's own kernel maps with entries no task can own, so the next insert of the
//! programs fails the way it would on a host with more pinning tasks than the map holds. The
//! VM matrix runs it against maps made small on purpose (`PINWATCH_MAP_ENTRIES`) and checks that
//! every failure is counted, exported and logged.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result, bail};

use crate::bpf_objects::{BPF_MAP_GET_NEXT_ID, IdAttr, InfoAttr, bpf, ids};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Name of a map to fill (as in the eBPF object, e.g. FORKING); repeatable.
    #[arg(long = "name", required = true)]
    pub names: Vec<String>,
}

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_NOEXIST: u64 = 1;

/// Keys a task never has: `pid_tgid` is `tgid << 32 | pid`, and no tgid reaches 2^32 - 1.
const FOREIGN_KEY_BASE: u64 = 0xffff_ffff_0000_0000;

/// `struct bpf_map_info` up to its name (include/uapi/linux/bpf.h); the kernel fills a prefix.
#[repr(C)]
#[derive(Default)]
struct MapInfo {
    map_type: u32,
    id: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    name: [u8; 16],
}

/// `union bpf_attr` as BPF_MAP_UPDATE_ELEM uses it.
#[repr(C)]
#[derive(Default)]
struct UpdateAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

pub fn run(args: &Args) -> Result<String> {
    let mut filled = Vec::new();
    for id in ids(BPF_MAP_GET_NEXT_ID) {
        let Some((fd, info)) = open(id)? else {
            continue;
        };
        let name = name(&info.name);
        if args.names.iter().any(|n| n.as_str() == name) {
            let n = fill(&fd, &info).with_context(|| format!("filling {name} (map {id})"))?;
            filled.push(format!("{name}={n}/{}", info.max_entries));
        }
    }
    if filled.is_empty() {
        bail!("no loaded map is named {}", args.names.join(" or "));
    }
    Ok(format!("filled {}", filled.join(" ")))
}

fn name(raw: &[u8; 16]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// The map's fd and info, or None when it was freed since its id was listed.
fn open(id: u32) -> Result<Option<(OwnedFd, MapInfo)>> {
    let mut attr = IdAttr {
        start_id: id,
        ..IdAttr::default()
    };
    // SAFETY: BPF_MAP_GET_FD_BY_ID only reads map_id and open_flags from `attr`.
    let fd = match unsafe { bpf(BPF_MAP_GET_FD_BY_ID, &mut attr) } {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("BPF_MAP_GET_FD_BY_ID {id}")),
    };
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(i32::try_from(fd)?) };
    let mut info = MapInfo::default();
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd().cast_unsigned(),
        info_len: u32::try_from(size_of::<MapInfo>())?,
        info: (&raw mut info) as u64,
    };
    // SAFETY: attr.info points at `info`, writable for info_len bytes.
    unsafe { bpf(crate::bpf_objects::BPF_OBJ_GET_INFO_BY_FD, &mut attr) }
        .with_context(|| format!("BPF_OBJ_GET_INFO_BY_FD of map {id}"))?;
    Ok(Some((fd, info)))
}

/// Inserts foreign keys until the map refuses (full) or holds `max_entries` (an LRU map never
/// refuses: it evicts). Returns how many went in.
fn fill(fd: &OwnedFd, info: &MapInfo) -> Result<u32> {
    if info.key_size != 8 {
        bail!(
            "key size {} (only u64-keyed maps are filled)",
            info.key_size
        );
    }
    let value = vec![0u8; info.value_size as usize];
    let mut inserted = 0;
    for i in 0..u64::from(info.max_entries) {
        let key = FOREIGN_KEY_BASE + i;
        let mut attr = UpdateAttr {
            map_fd: fd.as_raw_fd().cast_unsigned(),
            key: (&raw const key) as u64,
            value: value.as_ptr() as u64,
            flags: BPF_NOEXIST,
            ..UpdateAttr::default()
        };
        // SAFETY: key and value point at key_size and value_size readable bytes.
        match unsafe { bpf(BPF_MAP_UPDATE_ELEM, &mut attr) } {
            Ok(_) => inserted += 1,
            Err(e) if e.raw_os_error() == Some(libc::E2BIG) => break,
            Err(e) => return Err(e).context("BPF_MAP_UPDATE_ELEM"),
        }
    }
    Ok(inserted)
}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use super::*;

    #[test]
    fn layouts_match_the_uapi() {
        assert_eq!(offset_of!(MapInfo, max_entries), 16);
        assert_eq!(offset_of!(MapInfo, name), 24);
        assert_eq!(size_of::<UpdateAttr>(), 32);
        assert_eq!(offset_of!(UpdateAttr, flags), 24);
        assert_eq!(name(b"WP_FAULTS\0\0\0\0\0\0\0"), "WP_FAULTS");
    }

    #[test]
    fn foreign_keys_are_no_task() {
        let max_tgid = 1u64 << 22; // PID_MAX_LIMIT on 64-bit
        assert!(FOREIGN_KEY_BASE >> 32 > max_tgid);
    }
}
