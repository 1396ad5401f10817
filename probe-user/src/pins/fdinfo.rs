//! `/proc/PID/fdinfo/FD` of an io_uring fd: the ring's registered buffers, each pinned
//! long-term from registration until it is unregistered or the ring is freed.
//!
//! io_uring/fdinfo.c prints `UserBufs:\t<count>` and then one line per slot:
//! - 6.1 and 6.12: `%5u: 0x%llx/%u` (index, user address, length), from `ctx->user_bufs`;
//! - 6.13 and later (7.2): the same, or `%5u: <none>` for an empty slot of a sparse table
//!   (`ctx->buf_table`).
//!
//! The slots are listed only while fdinfo holds the ring's lock, which it only tries to take
//! (`mutex_trylock(&ctx->uring_lock)`): on 6.1 and 6.12 a busy ring prints the count and no
//! slots; on 7.2 the lock is tried around the whole io_uring part, and a busy ring prints no
//! `UserBufs:` line at all. Both cases read as "not listed", never as zero pages.

/// One registered buffer, as fdinfo lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Buffer {
    pub index: u32,
    pub addr: u64,
    pub len: u64,
}

impl Buffer {
    /// Pages the buffer spans: io_uring pins every page the range touches.
    pub fn pages(&self, page_size: u64) -> u64 {
        if self.len == 0 || page_size == 0 {
            return 0;
        }
        let first = self.addr / page_size;
        let end = self.addr.saturating_add(self.len).div_ceil(page_size);
        end - first
    }
}

/// The registered-buffer table of one ring.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ring {
    /// The ring's inode (`ino:`): one per ring, shared by every process holding an fd to it.
    pub ino: Option<u64>,
    /// `UserBufs:`: slots in the table.
    pub slots: u32,
    /// Slots listed (buffers and empty slots); fewer than `slots` when the ring was busy.
    pub listed: u32,
    pub buffers: Vec<Buffer>,
}

impl Ring {
    /// Every slot was listed: the pages are exact.
    pub fn complete(&self) -> bool {
        self.listed == self.slots
    }

    pub fn pages(&self, page_size: u64) -> u64 {
        self.buffers.iter().map(|b| b.pages(page_size)).sum()
    }
}

/// Parses an io_uring fdinfo text; `None` when it has no `UserBufs:` line (not an io_uring fd,
/// or a 7.2 ring whose lock was busy).
pub fn parse(text: &str) -> Option<Ring> {
    let ino = text
        .lines()
        .find_map(|l| l.strip_prefix("ino:"))
        .and_then(|v| v.trim().parse().ok());
    // The last `UserBufs:` line is the kernel's: on 6.1 the fixed files listed before it print
    // their names raw (`%s` of d_iname), so a file named like a buffer table can only come first.
    let at = text.rfind("\nUserBufs:")? + 1;
    let mut lines = text[at..].lines();
    let slots = lines
        .next()?
        .strip_prefix("UserBufs:")?
        .trim()
        .parse()
        .ok()?;
    let mut ring = Ring {
        ino,
        slots,
        ..Ring::default()
    };
    for line in lines {
        match slot(line) {
            Some(Slot::Buffer(b)) => ring.buffers.push(b),
            Some(Slot::Empty) => {}
            None => break,
        }
        ring.listed += 1;
    }
    Some(ring)
}

enum Slot {
    Buffer(Buffer),
    Empty,
}

/// `    0: 0x7f0000000000/151552` or `    3: <none>`.
fn slot(line: &str) -> Option<Slot> {
    let (index, rest) = line.trim_start().split_once(": ")?;
    let index = index.parse().ok()?;
    if rest == "<none>" {
        return Some(Slot::Empty);
    }
    let (addr, len) = rest.strip_prefix("0x")?.split_once('/')?;
    Some(Slot::Buffer(Buffer {
        index,
        addr: u64::from_str_radix(addr, 16).ok()?,
        len: len.parse().ok()?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 6.1 (io_uring/fdinfo.c `__io_uring_show_fdinfo`): one buffer of 37 pages.
    const V6_1: &str = "\
pos:\t0
flags:\t02000002
mnt_id:\t15
ino:\t1057
SqMask:\t0x7
SqHead:\t0
SqTail:\t0
CachedSqHead:\t0
CqMask:\t0xf
CqHead:\t0
CqTail:\t0
CachedCqTail:\t0
SQEs:\t0
CQEs:\t0
SqThread:\t-1
SqThreadCpu:\t-1
UserFiles:\t0
UserBufs:\t1
    0: 0x7f3a1c000000/151552
PollList:
CqOverflowList:
";

    /// 6.12: adds SqTotalTime/SqWorkTime; the buffer lines are unchanged.
    const V6_12: &str = "\
pos:\t0
flags:\t02000002
mnt_id:\t16
ino:\t2093
SqMask:\t0x7
SqHead:\t0
SqTail:\t0
CachedSqHead:\t0
CqMask:\t0xf
CqHead:\t0
CqTail:\t0
CachedCqTail:\t0
SQEs:\t0
CQEs:\t0
SqThread:\t-1
SqThreadCpu:\t-1
SqTotalTime:\t0
SqWorkTime:\t0
UserFiles:\t1
    0: data.bin
UserBufs:\t2
    0: 0x7f3a1c000000/8192
    1: 0x7f3a1c100800/4096
PollList:
CqOverflowList:
";

    /// 7.2 (`ctx->buf_table`): a sparse table prints `<none>` for its empty slots.
    const V7_2: &str = "\
pos:\t0
flags:\t02000002
mnt_id:\t16
ino:\t3001
SqMask:\t0x7
SqHead:\t0
SqTail:\t0
CachedSqHead:\t0
CqMask:\t0xf
CqHead:\t0
CqTail:\t0
CachedCqTail:\t0
SQEs:\t0
CQEs:\t0
SqThread:\t-1
SqThreadCpu:\t-1
SqTotalTime:\t0
SqWorkTime:\t0
UserFiles:\t0
UserBufs:\t3
    0: 0x7f3a1c000000/4096
    1: <none>
    2: 0x7f3a1c200000/2097152
PollList:
CqOverflowList:
";

    #[test]
    fn the_6_1_format_gives_exact_pages() {
        let ring = parse(V6_1).unwrap();
        assert_eq!(ring.ino, Some(1057));
        assert_eq!((ring.slots, ring.listed), (1, 1));
        assert!(ring.complete());
        assert_eq!(ring.pages(4096), 37);
    }

    #[test]
    fn the_6_12_format_counts_every_page_a_buffer_touches() {
        let ring = parse(V6_12).unwrap();
        assert_eq!(ring.buffers.len(), 2);
        // 8192 bytes from a page boundary: 2 pages; 4096 bytes from mid-page: 2 pages.
        assert_eq!(ring.pages(4096), 4);
        assert!(ring.complete());
    }

    #[test]
    fn the_7_2_format_skips_empty_slots() {
        let ring = parse(V7_2).unwrap();
        assert_eq!((ring.slots, ring.listed), (3, 3));
        assert_eq!(ring.buffers.len(), 2);
        assert_eq!(ring.buffers[1].index, 2);
        assert_eq!(ring.pages(4096), 1 + 512);
    }

    #[test]
    fn a_busy_ring_is_incomplete_not_empty() {
        // 6.1/6.12: the count without the slots (mutex_trylock failed).
        let busy = V6_1.replace("    0: 0x7f3a1c000000/151552\n", "");
        let ring = parse(&busy).unwrap();
        assert!(!ring.complete());
        assert_eq!(ring.pages(4096), 0);
        // 7.2: no io_uring part at all.
        assert_eq!(
            parse("pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t3001\n"),
            None
        );
    }

    #[test]
    fn a_file_named_like_a_buffer_table_cannot_forge_one() {
        // 6.1 prints fixed files' names raw: a name may hold newlines.
        let forged = V6_1.replace(
            "UserFiles:\t0\n",
            "UserFiles:\t1\n    0: x\nUserBufs:\t1\n    0: 0x1000/999999999\n",
        );
        let ring = parse(&forged).unwrap();
        assert_eq!(ring.pages(4096), 37);
    }

    #[test]
    fn zero_length_and_huge_page_sizes() {
        let b = Buffer {
            index: 0,
            addr: 0x200000,
            len: 0,
        };
        assert_eq!(b.pages(4096), 0);
        let b = Buffer { len: 4097, ..b };
        assert_eq!(b.pages(4096), 2);
        assert_eq!(b.pages(65536), 1);
    }
}
