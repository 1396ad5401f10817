//! Reads from /proc that name things the kernel events only identify by number.

use std::{os::unix::ffi::OsStrExt as _, path::Path};

use crate::text::UserText;

/// The path of the file mapped at `addr` in process `tgid`, if it is still mapped.
pub fn mapped_path(tgid: u32, addr: u64) -> Option<UserText> {
    let maps = std::fs::read(format!("/proc/{tgid}/maps")).ok()?;
    path_in_maps(&maps, addr)
}

/// `/proc/PID/maps` lines are `start-end perms offset dev inode path`. The path, padded to a
/// column, is the rest of the line byte for byte (any bytes but NUL, not always UTF-8), except
/// that the kernel writes a newline in it as `\012` (`seq_file_path(m, file, "\n")`,
/// fs/proc/task_mmu.c). A name that holds a literal `\012` reads back wrong here: callers
/// check the inode, and find the file by inode otherwise ([`path_of`]).
pub fn path_in_maps(maps: &[u8], addr: u64) -> Option<UserText> {
    maps.split(|&b| b == b'\n').find_map(|line| {
        let (range, mut rest) = next_field(line);
        let (start, end) = std::str::from_utf8(range).ok()?.split_once('-')?;
        let (start, end) = (
            u64::from_str_radix(start, 16).ok()?,
            u64::from_str_radix(end, 16).ok()?,
        );
        if !(start..end).contains(&addr) {
            return None;
        }
        for _ in 0..4 {
            rest = next_field(rest).1;
        }
        let path = rest.trim_ascii_start();
        (!path.is_empty()).then(|| unescape_newlines(path))
    })
}

/// The next space-separated field of a maps line, and what follows it.
fn next_field(line: &[u8]) -> (&[u8], &[u8]) {
    let line = line.trim_ascii_start();
    line.split_at(line.iter().position(|&b| b == b' ').unwrap_or(line.len()))
}

fn unescape_newlines(mut path: &[u8]) -> UserText {
    let mut out = Vec::with_capacity(path.len());
    while let Some((&first, tail)) = path.split_first() {
        match path.strip_prefix(b"\\012") {
            Some(after) => {
                out.push(b'\n');
                path = after;
            }
            None => {
                out.push(first);
                path = tail;
            }
        }
    }
    out.into()
}

/// A VMA as smaps describes it: its header line (range, sharing, file offset, device, inode)
/// and the flags pinwatch reads from `VmFlags:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmapsVma {
    pub range: std::ops::Range<u64>,
    /// `s` in the permissions: MAP_SHARED.
    pub shared: bool,
    /// `dc` in VmFlags: MADV_DONTFORK.
    pub dontfork: bool,
    /// The file's device in the kernel's encoding (`major << 20 | minor`, as `s_dev`) and
    /// inode; `None` for anonymous memory.
    pub file: Option<(u32, u64)>,
    /// File offset of the VMA's start, in pages.
    pub pgoff: u64,
}

/// Every VMA of `tgid`, from smaps (which walks every page table: read it once per batch).
pub fn smaps_vmas(tgid: u32) -> Option<Vec<SmapsVma>> {
    let smaps = read_text(format!("/proc/{tgid}/smaps"))?;
    Some(vmas_in_smaps(&smaps))
}

/// smaps: a maps-format header line per VMA, then `Key: value` lines ending with `VmFlags:`.
pub fn vmas_in_smaps(smaps: &str) -> Vec<SmapsVma> {
    let mut vmas = Vec::new();
    let mut open = None;
    for line in smaps.lines() {
        if let Some(vma) = maps_header(line) {
            open = Some(vma);
        } else if let Some(flags) = line.strip_prefix("VmFlags:")
            && let Some(mut vma) = open.take()
        {
            vma.dontfork = flags.split_whitespace().any(|f| f == "dc");
            vmas.push(vma);
        }
    }
    vmas
}

/// `start-end perms offset major:minor inode [path]` (fs/proc/task_mmu.c), all hexadecimal but
/// the inode.
fn maps_header(line: &str) -> Option<SmapsVma> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let range = u64::from_str_radix(start, 16).ok()?..u64::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
    let (major, minor) = fields.next()?.split_once(':')?;
    let dev = (u32::from_str_radix(major, 16).ok()? << 20) | u32::from_str_radix(minor, 16).ok()?;
    let ino: u64 = fields.next()?.parse().ok()?;
    Some(SmapsVma {
        range,
        shared: perms.as_bytes().get(3) == Some(&b's'),
        dontfork: false,
        file: (ino != 0).then_some((dev, ino)),
        pgoff: offset >> 12,
    })
}

/// The VMA holding `addr`.
pub fn vma_at(vmas: &[SmapsVma], addr: u64) -> Option<&SmapsVma> {
    vmas.iter().find(|vma| vma.range.contains(&addr))
}

/// Most directory entries searched for one inode: a report must not stall on a huge filesystem.
const MAX_WALK: usize = 200_000;

/// A path of inode `ino` on the filesystem mounted from device `dev` (`major:minor`), found by
/// walking its mount points; `None` when the file is gone or the walk limit is reached.
pub fn path_of(dev: &str, ino: u64) -> Option<UserText> {
    let mountinfo = read_text("/proc/self/mountinfo")?;
    let mut budget = MAX_WALK;
    mount_points(&mountinfo, dev).find_map(|mount| find_inode(Path::new(mount), ino, &mut budget))
}

/// Mount points of device `dev` in mountinfo text (field 3 is `major:minor`, field 5 the mount point).
pub fn mount_points<'a>(mountinfo: &'a str, dev: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    mountinfo.lines().filter_map(move |line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(2) == Some(&dev))
            .then(|| fields.get(4).copied())
            .flatten()
    })
}

fn find_inode(dir: &Path, ino: u64, budget: &mut usize) -> Option<UserText> {
    use std::os::unix::fs::MetadataExt as _;
    let root_dev = std::fs::symlink_metadata(dir).ok()?.dev();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            *budget = budget.checked_sub(1)?;
            let Ok(meta) = entry.metadata() else { continue };
            if meta.dev() != root_dev {
                continue;
            }
            if meta.ino() == ino && meta.is_file() {
                return Some(entry.path().into());
            }
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    None
}

/// The cgroup2 path of cgroup `id` (its directory's inode number) below `/sys/fs/cgroup`.
pub fn cgroup_path(id: u64) -> Option<UserText> {
    use std::os::unix::fs::MetadataExt as _;
    let root = Path::new("/sys/fs/cgroup");
    if std::fs::metadata(root).ok()?.ino() == id {
        return Some("/".into());
    }
    let mut budget = MAX_WALK;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            budget = budget.checked_sub(1)?;
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_dir() {
                continue;
            }
            if meta.ino() == id {
                return entry
                    .path()
                    .strip_prefix(root)
                    .ok()
                    .map(|p| UserText::from([b"/".as_slice(), p.as_os_str().as_bytes()].concat()));
            }
            stack.push(entry.path());
        }
    }
    None
}

/// Whether `tgid` is `root` or one of its descendants (following PPid while the chain lives).
pub fn descends_from(tgid: u32, root: u32) -> bool {
    let mut current = tgid;
    for _ in 0..64 {
        if current == root {
            return true;
        }
        match parent(current) {
            Some(p) if p > 1 => current = p,
            _ => return false,
        }
    }
    false
}

fn parent(tgid: u32) -> Option<u32> {
    let status = read_text(Path::new("/proc").join(tgid.to_string()).join("status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// A live process's start time (clock ticks since boot, `/proc/PID/stat` field 22): with the
/// pid, an identity that a recycled pid does not share. `None` once it is gone or a zombie.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = read_text(Path::new("/proc").join(pid.to_string()).join("stat"))?;
    start_in_stat(&stat)
}

/// A /proc file read for its numbers and flags. Names in it (comm in `stat` and `status`, paths
/// in `smaps` and `mountinfo`) need not be UTF-8: a process that names itself so must not
/// vanish from the tree or look exited, so the text is read lossily (only the names change).
fn read_text(path: impl AsRef<Path>) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Field 22 of a `/proc/PID/stat` line, unless the state (field 3) is zombie or dead. The
/// command name (field 2) may hold spaces and parentheses: fields are counted after its last `)`.
pub fn start_in_stat(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if matches!(state, "Z" | "X" | "x") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// The kernel's monotonic clock, the base of `bpf_ktime_get_ns()` timestamps.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_named_with_bytes_that_are_not_utf8_stays_alive_with_a_parent() {
        std::thread::spawn(|| {
            let name = c"\xff\x1b[2J) Z 1 2";
            // SAFETY: PR_SET_NAME reads a NUL-terminated string; the kernel keeps 15 bytes.
            assert_eq!(unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) }, 0);
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() } as u32;
            assert!(process_start(tid).is_some(), "looks exited");
            assert!(parent(tid).is_some(), "no parent: out of the watched tree");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn start_time_is_field_22_and_zombies_have_none() {
        let line = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 91 0 0 0 0 0 0 0 20 0 1 0 987654 1 2";
        assert_eq!(start_in_stat(line), Some(987_654));
        assert_eq!(start_in_stat(&line.replace(") S ", ") Z ")), None);
        assert_eq!(start_in_stat("garbage"), None);
    }

    const MAPS: &str = "\
55d0a000-55d0b000 r--p 00000000 08:01 1234 /usr/bin/qemu system
7f0000000000-7f0000010000 rw-s 00000000 01:00 12 /mnt/ext4/vm.img
7f0000010000-7f0000020000 rw-p 00000000 00:00 0
";

    #[test]
    fn smaps_vmas_carry_sharing_file_and_dontfork() {
        let smaps = "\
7f0000000000-7f0000010000 rw-s 00002000 00:01 12 /memfd:buf (deleted)
Size:                 64 kB
VmFlags: rd wr sh mr mw me ms sd
7f0000010000-7f0000020000 rw-p 00000000 00:00 0
Rss:                   0 kB
VmFlags: rd wr mr mw me dc ac sd
";
        let vmas = vmas_in_smaps(smaps);
        assert_eq!(vmas.len(), 2);
        let memfd = vma_at(&vmas, 0x7f0000004000).unwrap();
        assert!(memfd.shared && !memfd.dontfork);
        assert_eq!((memfd.file, memfd.pgoff), (Some((1, 12)), 2));
        let anon = vma_at(&vmas, 0x7f0000010000).unwrap();
        assert!(!anon.shared && anon.dontfork && anon.file.is_none());
        assert!(vma_at(&vmas, 0x1000).is_none());
        let ext4 = maps_header("7f00-7f10 r--s 00000000 fd:03 99 /a").unwrap();
        assert_eq!(ext4.file, Some(((0xfd << 20) | 3, 99)));
    }

    #[test]
    fn addresses_resolve_to_their_mapping_path() {
        let maps = MAPS.as_bytes();
        assert_eq!(
            path_in_maps(maps, 0x7f0000004000),
            Some("/mnt/ext4/vm.img".into())
        );
        assert_eq!(
            path_in_maps(maps, 0x55d0a010),
            Some("/usr/bin/qemu system".into())
        );
        assert_eq!(path_in_maps(maps, 0x7f0000010000), None, "anonymous");
        assert_eq!(path_in_maps(maps, 0x1000), None, "unmapped");
    }

    #[test]
    fn hostile_mapped_paths_read_back_byte_for_byte() {
        // As fs/proc/task_mmu.c writes them: the newline as \012, every other byte as it is.
        let maps = b"7f0000000000-7f0000010000 rw-s 00000000 01:00 12                         \
/mnt/ext4/work/evil\\012\x1b[2Jname\xff  two\tspaced.dat \n\
7f0000010000-7f0000020000 rw-s 00000000 01:00 13   /mnt/a\\01\n";
        let path = path_in_maps(maps, 0x7f0000000000).unwrap();
        assert_eq!(
            path.as_bytes(),
            b"/mnt/ext4/work/evil\n\x1b[2Jname\xff  two\tspaced.dat "
        );
        let short = path_in_maps(maps, 0x7f0000010000).unwrap();
        assert_eq!(short.as_bytes(), b"/mnt/a\\01", "not an escape: kept");
    }

    #[test]
    fn a_hostile_file_this_process_maps_is_named_exactly() {
        use std::os::{fd::AsRawFd as _, unix::ffi::OsStrExt as _};
        let dir = std::env::temp_dir().join(format!("pinwatch-maps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let name = std::ffi::OsStr::from_bytes(b"evil\n\x1b[2J  name\xff\\012.dat");
        let file_path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&file_path)
            .unwrap();
        file.set_len(4096).unwrap();
        // SAFETY: a fresh shared mapping of one page of a file this test owns, unmapped below.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(addr, libc::MAP_FAILED);
        let found = mapped_path(std::process::id(), addr as u64);
        // SAFETY: the mapping made above, not used after this.
        unsafe { libc::munmap(addr, 4096) };
        std::fs::remove_dir_all(&dir).ok();
        let mut want = file_path.as_os_str().as_bytes().to_vec();
        // A literal `\012` in a name reads back as a newline: the one ambiguity of maps,
        // which the inode check in the pipeline catches (then the name is found by inode).
        let at = want.len() - b"\\012.dat".len();
        want.splice(at..at + 4, [b'\n']);
        assert_eq!(found.map(|p| p.as_bytes().to_vec()), Some(want));
    }

    #[test]
    fn dontfork_is_read_from_the_vma_holding_the_address() {
        let smaps = "\
7f0000000000-7f0000010000 rw-p 00000000 00:00 0
Size:                 64 kB
VmFlags: rd wr mr mw me ac dc
7f0000010000-7f0000020000 rw-p 00000000 00:00 0
Size:                 64 kB
VmFlags: rd wr mr mw me ac
";
        let vmas = vmas_in_smaps(smaps);
        let dontfork = |addr| vma_at(&vmas, addr).map(|v| v.dontfork);
        assert_eq!(dontfork(0x7f0000001000), Some(true));
        assert_eq!(dontfork(0x7f0000011000), Some(false));
        assert_eq!(dontfork(0x1000), None);
    }

    #[test]
    fn mount_points_are_found_by_device() {
        let info = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 1:0 / /mnt/ext4 rw - ext4 /dev/ram0 rw
31 22 1:0 /sub /mnt/bind rw - ext4 /dev/ram0 rw
";
        assert_eq!(
            mount_points(info, "1:0").collect::<Vec<_>>(),
            ["/mnt/ext4", "/mnt/bind"]
        );
        assert_eq!(mount_points(info, "9:9").count(), 0);
    }

    #[test]
    fn an_inode_is_found_by_walking_its_mount() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = std::env::temp_dir().join(format!("pinwatch-walk-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        let file = dir.join("a/b/target.img");
        std::fs::write(&file, b"x").unwrap();
        let ino = std::fs::metadata(&file).unwrap().ino();
        let mut budget = 1000;
        let found = find_inode(&dir, ino, &mut budget);
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(found, Some(file.into()));
        let mut none = 0;
        assert_eq!(
            find_inode(Path::new("/"), ino, &mut none),
            None,
            "an exhausted budget stops the walk"
        );
    }

    #[test]
    fn the_own_cgroup_resolves_to_its_path() {
        use std::os::unix::fs::MetadataExt as _;
        let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") else {
            return;
        };
        let Some(rel) = own.lines().find_map(|l| l.strip_prefix("0::")) else {
            eprintln!("skipped: no cgroup2 hierarchy");
            return;
        };
        let dir = format!("/sys/fs/cgroup{}", rel.trim_end_matches('/'));
        let Ok(meta) = std::fs::metadata(&dir) else {
            eprintln!("skipped: cgroup2 not mounted at /sys/fs/cgroup");
            return;
        };
        let want = if rel == "/" {
            "/".to_owned()
        } else {
            rel.to_owned()
        };
        assert_eq!(cgroup_path(meta.ino()), Some(want.into()));
    }

    #[test]
    fn a_process_descends_from_itself_and_from_init_only_via_the_chain() {
        let me = std::process::id();
        assert!(descends_from(me, me));
        assert!(!descends_from(me, u32::MAX));
    }
}
