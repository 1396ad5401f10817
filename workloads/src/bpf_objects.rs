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
    /// The name is the program's function name from its BTF where it has one (the kernel's own
    /// name is cut at 15 bytes: `raw_tracepoint_` for every raw tracepoint program).
    /// The kernel only counts runs while sysctl kernel.bpf_stats_enabled=1 (or while someone
    /// holds a BPF_ENABLE_STATS fd); otherwise run_cnt and run_time_ns stay 0.
    #[arg(long)]
    pub programs: bool,
}

const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
pub const BPF_MAP_GET_NEXT_ID: libc::c_long = 12;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
pub const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_BTF_GET_FD_BY_ID: libc::c_long = 19;
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
    /// The kernel's name of the program: up to the first NUL (the kernel only allows
    /// [A-Za-z0-9_.]), at most 15 bytes.
    fn name(&self) -> String {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.name.len());
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }

    fn line(&self, full_name: Option<&str>) -> String {
        format!(
            "PROG id={} type={} name={} run_cnt={} run_time_ns={}",
            self.id,
            self.prog_type,
            full_name.map_or_else(|| self.name(), str::to_owned),
            self.run_cnt,
            self.run_time_ns
        )
    }
}

/// `struct bpf_func_info`: where a function starts and its `BTF_KIND_FUNC` type.
#[repr(C)]
#[derive(Default)]
struct FuncInfo {
    insn_off: u32,
    type_id: u32,
}

/// `struct bpf_btf_info` (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
#[allow(dead_code)] // Laid out for the kernel; only some fields are read.
struct BtfInfo {
    btf: u64,
    btf_size: u32,
    id: u32,
    name: u64,
    name_len: u32,
    kernel_btf: u32,
}

const _: () = assert!(size_of::<BtfInfo>() == 32);

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

/// An fd for the object `id` from a *_GET_FD_BY_ID command, or None when it is gone.
fn fd_by_id(cmd: libc::c_long, id: u32) -> Result<Option<OwnedFd>> {
    let mut attr = IdAttr {
        start_id: id,
        ..IdAttr::default()
    };
    // SAFETY: the *_GET_FD_BY_ID commands only read the id and open_flags from `attr`.
    let fd = match unsafe { bpf(cmd, &mut attr) } {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("bpf command {cmd} for id {id}")),
    };
    let fd = i32::try_from(fd).context("bpf returned an fd beyond i32")?;
    // SAFETY: the kernel just returned this fd and nothing else owns it; dropping it closes it.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// BPF_OBJ_GET_INFO_BY_FD into `info`.
///
/// # Safety
///
/// `T` must be the info struct of the object's kind (or a prefix of it), and any pointer in it
/// must be valid for the kernel to write the arrays it asks for.
unsafe fn obj_info<T>(fd: &OwnedFd, info: &mut T) -> io::Result<()> {
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd().cast_unsigned(),
        info_len: u32::try_from(size_of::<T>()).map_err(io::Error::other)?,
        info: std::ptr::from_mut(info) as u64,
    };
    // SAFETY: attr.info points at `info`, live and writable for info_len bytes; the kernel
    // writes at most that many bytes there (and the arrays the caller vouched for).
    unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    Ok(())
}

/// The program's info and its function name from BTF (None without BTF, or when reading it
/// failed), or None when it was unloaded since its id was listed.
fn prog_info(id: u32) -> Result<Option<(ProgInfo, Option<String>)>> {
    let Some(fd) = fd_by_id(BPF_PROG_GET_FD_BY_ID, id)? else {
        return Ok(None);
    };
    let mut func = FuncInfo::default();
    let mut info = ProgInfo {
        nr_func_info: 1,
        func_info_rec_size: u32::try_from(size_of::<FuncInfo>())?,
        func_info: (&raw mut func) as u64,
        ..ProgInfo::default()
    };
    // SAFETY: ProgInfo is a prefix of struct bpf_prog_info; func_info points at one live
    // bpf_func_info record, which is all nr_func_info = 1 lets the kernel write.
    if unsafe { obj_info(&fd, &mut info) }.is_ok() {
        // The kernel wrote how many records the program has; the first was copied if any.
        let name = (info.btf_id != 0 && info.nr_func_info > 0)
            .then(|| func_name(info.btf_id, func.type_id).ok().flatten())
            .flatten();
        return Ok(Some((info, name)));
    }
    // Without the function record: the kernel's own name.
    let mut info = ProgInfo::default();
    // SAFETY: ProgInfo is a prefix of struct bpf_prog_info; its pointers are 0.
    unsafe { obj_info(&fd, &mut info) }
        .with_context(|| format!("BPF_OBJ_GET_INFO_BY_FD of program {id}"))?;
    Ok(Some((info, None)))
}

/// The name of type `type_id` in the BTF object `btf_id` (a program's `BTF_KIND_FUNC`).
fn func_name(btf_id: u32, type_id: u32) -> Result<Option<String>> {
    let Some(fd) = fd_by_id(BPF_BTF_GET_FD_BY_ID, btf_id)? else {
        return Ok(None);
    };
    let mut info = BtfInfo::default();
    // SAFETY: BtfInfo is struct bpf_btf_info; its pointers are 0, so the kernel only fills in
    // the sizes.
    unsafe { obj_info(&fd, &mut info) }.context("BPF_OBJ_GET_INFO_BY_FD of a BTF object")?;
    let mut data = vec![0u8; usize::try_from(info.btf_size)?];
    let mut info = BtfInfo {
        btf: data.as_mut_ptr() as u64,
        btf_size: u32::try_from(data.len())?,
        ..BtfInfo::default()
    };
    // SAFETY: info.btf points at `data`, live and writable for btf_size bytes, the most the
    // kernel copies.
    unsafe { obj_info(&fd, &mut info) }.context("BPF_OBJ_GET_INFO_BY_FD of a BTF object")?;
    Ok(btf_type_name(&data, type_id))
}

/// The name of type `type_id` in raw BTF (`struct btf_header`, the types, the strings), or
/// None if the data is not BTF this parser knows (kinds up to `BTF_KIND_ENUM64`).
fn btf_type_name(data: &[u8], type_id: u32) -> Option<String> {
    let u32_at = |off: usize| -> Option<u32> {
        Some(u32::from_le_bytes(data.get(off..off + 4)?.try_into().ok()?))
    };
    if data.get(..2)? != 0xeb9f_u16.to_le_bytes() {
        return None;
    }
    let hdr_len = usize::try_from(u32_at(4)?).ok()?;
    let (type_off, type_len) = (u32_at(8)?, u32_at(12)?);
    let (str_off, str_len) = (u32_at(16)?, u32_at(20)?);
    let types = hdr_len + usize::try_from(type_off).ok()?;
    let types_end = types + usize::try_from(type_len).ok()?;
    let strings = hdr_len + usize::try_from(str_off).ok()?;
    let strings_end = strings + usize::try_from(str_len).ok()?;
    // Type ids count from 1 (0 is void).
    let mut off = types;
    for id in 1.. {
        if off + 12 > types_end {
            return None;
        }
        let (name_off, info) = (u32_at(off)?, u32_at(off + 4)?);
        if id == type_id {
            let start = strings + usize::try_from(name_off).ok()?;
            let name = data.get(start..strings_end)?;
            let end = name.iter().position(|&b| b == 0)?;
            return String::from_utf8(name[..end].to_vec())
                .ok()
                .filter(|n| !n.is_empty());
        }
        let vlen = usize::try_from(info & 0xffff).ok()?;
        // What follows `struct btf_type` for each kind (include/uapi/linux/btf.h).
        let extra = match (info >> 24) & 0x1f {
            // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
            2 | 7..=12 | 16 | 18 => 0,
            // INT, VAR, DECL_TAG
            1 | 14 | 17 => 4,
            // ARRAY
            3 => 12,
            // STRUCT, UNION, DATASEC, ENUM64
            4 | 5 | 15 | 19 => 12 * vlen,
            // ENUM, FUNC_PROTO
            6 | 13 => 8 * vlen,
            _ => return None,
        };
        off += 12 + extra;
    }
    None
}

pub fn run(args: &Args) -> Result<String> {
    if args.programs {
        for id in ids(BPF_PROG_GET_NEXT_ID) {
            if let Some((info, name)) = prog_info(id)? {
                println!("{}", info.line(name.as_deref()));
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
            info.line(None),
            "PROG id=5 type=26 name=fexit_do_wp_pa run_cnt=110 run_time_ns=11000"
        );
        assert_eq!(
            info.line(Some("fexit_do_wp_page")),
            "PROG id=5 type=26 name=fexit_do_wp_page run_cnt=110 run_time_ns=11000"
        );
        info.name = [b'x'; 16];
        assert_eq!(info.name(), "x".repeat(16));
    }

    /// Raw BTF of: 1 INT "int", 2 FUNC_PROTO (one parameter), 3 FUNC "raw_tracepoint_long".
    fn btf() -> Vec<u8> {
        let strings = b"\0int\0raw_tracepoint_long\0x\0";
        let mut types: Vec<u32> = Vec::new();
        types.extend([1, 1 << 24, 4, 32]); // INT "int", size 4, 32 bits
        types.extend([0, (13 << 24) | 1, 1, 25, 1]); // FUNC_PROTO returning int, param x: int
        types.extend([5, 12 << 24, 2]); // FUNC "raw_tracepoint_long"
        let types: Vec<u8> = types.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut data = vec![0x9f, 0xeb, 1, 0];
        for w in [
            24,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            data.extend(w.to_le_bytes());
        }
        data.extend(types);
        data.extend(strings);
        data
    }

    #[test]
    fn btf_names_by_type_id() {
        let data = btf();
        assert_eq!(btf_type_name(&data, 1).as_deref(), Some("int"));
        assert_eq!(btf_type_name(&data, 2), None, "a prototype has no name");
        assert_eq!(
            btf_type_name(&data, 3).as_deref(),
            Some("raw_tracepoint_long")
        );
        assert_eq!(btf_type_name(&data, 4), None);
        assert_eq!(btf_type_name(&data[..30], 3), None, "cut short");
        let mut bad = data.clone();
        bad[0] = 0;
        assert_eq!(btf_type_name(&bad, 3), None, "no magic");
    }
}
