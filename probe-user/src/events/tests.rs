//! Decoding real wire layouts, and refusing short or unknown records.

use probe_common::{
    event::{PinRun, UnpinRun, VmaInfo},
    hook,
};

use super::*;

fn header(kind: u32) -> Header {
    let mut comm = [0u8; 16];
    comm[..4].copy_from_slice(b"qemu");
    Header {
        kind,
        ts_ns: 7,
        pid_tgid: (42 << 32) | 43,
        task_start_ns: 99,
        comm,
        ..Header::default()
    }
}

#[test]
fn a_pin_decodes_with_its_vma_and_task() {
    let wire = PinEvent {
        header: header(kind::PIN),
        hook: hook::PIN_USER_PAGES_REMOTE,
        gup_flags: 0x10001,
        start: 0x7000,
        nr_pages: 16,
        ret: 16,
        stack_id: 3,
        vma: VmaInfo {
            seen: 1,
            needs_dirty: 2,
            vm_flags: 0xfb,
            vm_start: 0x7000,
            vm_pgoff: 0,
            ino: 12,
            dev: 0x100000,
            fs_magic: 0xef53,
        },
        pages_array: 0,
    };
    let Event::Pin(pin) = decode(&bytes_of(&wire)).unwrap() else {
        panic!("not a pin")
    };
    assert_eq!(
        pin.task,
        Task {
            tgid: 42,
            tid: 43,
            start_ns: 99,
            comm: "qemu".into(),
            cgroup_id: 0,
        }
    );
    assert_eq!(pin.hook, "pin_user_pages_remote");
    assert_eq!(pin.stack_id, Some(3));
    let vma = pin.vma.unwrap();
    assert_eq!(
        vma.file,
        Some(FileId {
            dev: 0x100000,
            ino: 12,
            fs_magic: 0xef53
        })
    );
    assert_eq!(vma.needs_dirty_tracking, None);
}

#[test]
fn an_unseen_vma_and_missing_stack_are_absent() {
    let wire = PinEvent {
        header: header(kind::PIN),
        stack_id: -14,
        ..PinEvent::default()
    };
    let Event::Pin(pin) = decode(&bytes_of(&wire)).unwrap() else {
        panic!("not a pin")
    };
    assert_eq!(
        (pin.vma, pin.stack_id, pin.hook),
        (None, None, "pin_user_pages")
    );
}

#[test]
fn comm_keeps_its_exact_bytes_up_to_the_nul_or_all_16() {
    let cases: [(&[u8], &[u8]); 4] = [
        (b"qemu\0junk", b"qemu"),
        (b"\x1b[31mEVIL\nFAKE-", b"\x1b[31mEVIL\nFAKE-"),
        (b"bad\xff\xfeutf8", b"bad\xff\xfeutf8"),
        // The kernel NUL-terminates comm; a record without the NUL still decodes, whole.
        (b"0123456789abcdef", b"0123456789abcdef"),
    ];
    for (raw, want) in cases {
        let mut h = header(kind::FORK);
        h.comm = [0; 16];
        h.comm[..raw.len()].copy_from_slice(raw);
        let fork = ForkEvent {
            header: h,
            ..ForkEvent::default()
        };
        let event = decode(&bytes_of(&fork)).unwrap();
        assert_eq!(event.task().comm.as_bytes(), want, "{raw:?}");
    }
}

#[test]
fn short_and_unknown_records_are_errors_not_panics() {
    let pin = bytes_of(&PinEvent {
        header: header(kind::PIN),
        ..PinEvent::default()
    });
    assert_eq!(
        decode(&pin[..120]),
        Err(DecodeError::Short {
            len: 120,
            need: pin.len()
        })
    );
    assert!(matches!(decode(&[1, 2, 3]), Err(DecodeError::Short { .. })));
    assert_eq!(
        decode(&bytes_of(&header(77))),
        Err(DecodeError::UnknownKind(77))
    );
    for len in 0..pin.len() {
        let _ = decode(&pin[..len]);
    }
}

#[test]
fn a_pfn_untrack_from_the_zap_path_decodes() {
    let wire = PfnUntrackEvent {
        header: header(kind::PFN_UNTRACK),
        from_zap: 1,
        vm_end: 0x7000_4000,
        stack_id: -1,
        vma: VmaInfo {
            seen: 1,
            vm_flags: 0x0d04_44bb,
            vm_start: 0x7000_0000,
            ..VmaInfo::default()
        },
        ..PfnUntrackEvent::default()
    };
    let Event::PfnUntrack(u) = decode(&bytes_of(&wire)).unwrap() else {
        panic!()
    };
    assert!(u.from_zap);
    assert_eq!(
        (u.vma.unwrap().start, u.vm_end, u.stack_id),
        (0x7000_0000, 0x7000_4000, None)
    );
}

#[test]
fn a_cleaned_pinned_folio_decodes() {
    let wire = PinnedFolioEvent {
        header: header(kind::MKCLEAN_PINNED),
        index: 5,
        ino: 12,
        dev: 1,
        fs_magic: 0xef53,
        refcount: 1025,
        ..PinnedFolioEvent::default()
    };
    let Event::MkcleanPinned(m) = decode(&bytes_of(&wire)).unwrap() else {
        panic!()
    };
    assert_eq!((m.index, m.refcount, m.large), (5, 1025, false));
    assert!(m.file.is_some());
}

#[test]
fn a_pinned_folio_removed_from_the_page_cache_decodes_with_its_call() {
    let mut head = header(kind::PAGE_CACHE_DISCARD);
    head.syscall.nr = 285;
    let wire = PinnedFolioEvent {
        header: head,
        index: 7,
        ino: 12,
        dev: 1,
        fs_magic: 0x474d_454d,
        refcount: 1026,
        pages: 1,
        stack_id: 3,
        ..PinnedFolioEvent::default()
    };
    let Event::PageCacheDiscard(d) = decode(&bytes_of(&wire)).unwrap() else {
        panic!()
    };
    assert_eq!((d.index, d.pages, d.stack_id), (7, Some(1), Some(3)));
    assert_eq!(d.syscall.nr, 285);
}

#[test]
fn a_madvise_discard_decodes() {
    let wire = MadviseEvent {
        header: header(kind::MADVISE_DISCARD),
        start: 0x7000_0000,
        len: 8192,
        behavior: 4,
        _pad: 0,
    };
    let Event::MadviseDiscard(m) = decode(&bytes_of(&wire)).unwrap() else {
        panic!()
    };
    assert_eq!((m.start, m.len, m.behavior), (0x7000_0000, 8192, 4));
}

#[test]
fn an_unpin_by_another_task_ends_the_owners_pin() {
    let own = UnpinEvent {
        header: header(kind::UNPIN),
        hook: hook::UNPIN_USER_FOLIO,
        pages: 3,
        ..UnpinEvent::default()
    };
    let Event::Unpin(u) = decode(&bytes_of(&own)).unwrap() else {
        panic!()
    };
    assert_eq!((u.task.tgid, u.task.tid, u.pages), (42, 43, 3));
    assert!(u.released_by.is_none());
    // A kworker (tgid 9) releasing memory thread 51 of process 50 pinned.
    let mut by_kworker = own;
    by_kworker.header.pid_tgid = (9 << 32) | 9;
    by_kworker.owner_pid_tgid = (50 << 32) | 51;
    by_kworker.owner_start_ns = 1234;
    let Event::Unpin(u) = decode(&bytes_of(&by_kworker)).unwrap() else {
        panic!()
    };
    assert_eq!((u.task.tgid, u.task.tid, u.task.start_ns), (50, 51, 1234));
    assert_eq!(u.released_by.map(|t| t.tgid), Some(9));
}

/// Counts the heap allocations of the current thread (tests run on several threads).
mod allocations {
    use std::{
        alloc::{GlobalAlloc, Layout, System},
        cell::Cell,
    };

    thread_local! {
        static COUNT: Cell<u64> = const { Cell::new(0) };
    }

    pub struct Counting;

    // SAFETY: forwards to the system allocator; only counts.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
            // SAFETY: the caller's contract, passed on.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: as above.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;

    /// Allocations `f` made on this thread.
    pub fn during(f: impl FnOnce()) -> u64 {
        let before = COUNT.with(Cell::get);
        f();
        COUNT.with(Cell::get) - before
    }
}

/// A pin storm is decoded record by record: in the steady state a record must not allocate
/// (the task's comm is inline, the unnamed pinner shared).
#[test]
fn decoding_pin_and_unpin_records_allocates_nothing() {
    let pin = bytes_of(&PinEvent {
        header: header(kind::PIN),
        hook: hook::PIN_USER_PAGES_FAST,
        gup_flags: 0x100,
        start: 0x7000,
        nr_pages: 1,
        ret: 1,
        stack_id: 3,
        ..PinEvent::default()
    });
    let unpin = bytes_of(&UnpinEvent {
        header: header(kind::UNPIN),
        hook: hook::UNPIN_USER_PAGE,
        pages: 1,
        ..UnpinEvent::default()
    });
    // The first decode may initialise shared state (the unnamed pinner).
    drop(decode(&pin));
    let allocated = allocations::during(|| {
        for _ in 0..1000 {
            let decoded = (decode(&pin), decode(&unpin));
            assert!(decoded.0.is_ok() && decoded.1.is_ok());
            drop(decoded);
        }
    });
    assert_eq!(allocated, 0, "heap allocations while decoding 2000 records");
}

#[test]
fn a_pin_run_decodes_as_one_pin_of_its_calls_in_the_runs_system_call() {
    let run = PinRun {
        hook: hook::PIN_USER_PAGES_FAST,
        gup_flags: 0x10001,
        syscall: wire::Syscall {
            nr: 427,
            user_ip: 0x4000,
            ..wire::Syscall::default()
        },
        stack_id: 5,
        first_ns: 3,
        last_ns: 6,
        start: 0x10000,
        calls: 255,
        pages: 255,
        ..PinRun::default()
    };
    let wire = PinRunEvent {
        header: header(kind::PIN_RUN),
        run,
    };
    let bytes = bytes_of(&wire);
    let Event::Pin(pin) = decode(&bytes).unwrap() else {
        panic!("not a pin")
    };
    assert_eq!((pin.calls, pin.ret, pin.nr_pages), (255, 255, 255));
    assert_eq!((pin.start, pin.at_ns, pin.stack_id), (0x10000, 7, Some(5)));
    assert_eq!(
        pin.syscall.nr, 427,
        "the run's system call, not the flush's"
    );
    assert_eq!(pin.hook, "pin_user_pages_fast");
    assert!(pin.vma.is_none());
    assert_eq!(run_id(&bytes), Some(((42 << 32) | 43, kind::PIN_RUN, 3)));
    assert_eq!(
        decode(&bytes[..bytes.len() - 1]),
        Err(DecodeError::Short {
            len: bytes.len() - 1,
            need: bytes.len()
        })
    );
}

#[test]
fn an_unpin_run_decodes_as_one_unpin_of_the_task_itself() {
    let wire = UnpinRunEvent {
        header: header(kind::UNPIN_RUN),
        run: UnpinRun {
            hook: hook::UNPIN_USER_PAGE,
            first_ns: 11,
            calls: 256,
            pages: 256,
            ..UnpinRun::default()
        },
    };
    let bytes = bytes_of(&wire);
    let Event::Unpin(u) = decode(&bytes).unwrap() else {
        panic!("not an unpin")
    };
    assert_eq!((u.task.tgid, u.calls, u.pages), (42, 256, 256));
    assert!(u.released_by.is_none());
    assert_eq!(run_id(&bytes), Some(((42 << 32) | 43, kind::UNPIN_RUN, 11)));
    assert_eq!(run_id(&bytes_of(&UnpinEvent::default())), None);
}

#[test]
fn a_fast_pin_of_a_page_cache_page_is_named_by_its_first_page() {
    let wire = PinEvent {
        header: header(kind::PIN),
        start: 0x7000_3000,
        ret: 4,
        vma: VmaInfo {
            seen: probe_common::event::seen::FIRST_PAGE,
            vm_start: 0x7000_3000,
            vm_pgoff: 9,
            ino: 11,
            dev: 1,
            fs_magic: 0x0102_1994,
            ..VmaInfo::default()
        },
        ..PinEvent::default()
    };
    let Event::Pin(p) = decode(&bytes_of(&wire)).unwrap() else {
        panic!()
    };
    assert!(
        p.vma.is_none(),
        "no VMA was walked: no flags to judge it by"
    );
    let backing = p.backing.expect("the first page's file");
    assert_eq!((backing.shared, backing.file), (true, Some((1, 11, 9))));
}
