//! What the daemon's userspace spends per record of an io_uring registration storm: decode,
//! metrics and correlation of 256 single-page pins and their 256 unpins, over and over. A
//! benchmark, not a test: `cargo test -p probe-user --release -- --ignored --nocapture
//! record_cost` prints ns per record (run it under `valgrind --tool=callgrind` for instruction
//! counts that do not depend on the machine's load).

use std::time::Instant;

use probe_common::event::{Header, PinEvent, Syscall, UnpinEvent, kind};

use super::*;
use crate::{
    correlate::{Config, Correlator},
    events::{bytes_of, decode},
};

fn header(kind: u32, ts_ns: u64, nr: u64) -> Header {
    let mut comm = [0u8; 16];
    comm[..4].copy_from_slice(b"qemu");
    Header {
        kind,
        ts_ns,
        pid_tgid: (42 << 32) | 42,
        task_start_ns: 99,
        comm,
        syscall: Syscall {
            nr,
            user_ip: 0x4000,
            user_sp: 0x7ff0,
            args: [3, nr, 0],
        },
        ..Header::default()
    }
}

#[test]
#[ignore = "a benchmark: prints figures"]
fn record_cost() {
    const PAGES: u64 = 256;
    const CYCLES: u64 = 400;
    let mut metrics = Metrics::new(&FollFlags::legacy(), "6.12.0-bench");
    let mut correlator = Correlator::new(Config::default(), FollFlags::legacy());
    let mut ts = 1_000_000_000u64;
    let mut records = Vec::new();
    // A registration of one-page buffers, then its unregistration, one record a page.
    for n in 0..CYCLES * 2 * PAGES {
        ts += 1_000;
        let page = n % PAGES;
        records.push(if (n / PAGES).is_multiple_of(2) {
            bytes_of(&PinEvent {
                header: header(kind::PIN, ts, 427),
                hook: probe_common::hook::PIN_USER_PAGES_FAST,
                gup_flags: 0x101,
                start: 0x10_0000 + page * 4096,
                nr_pages: 1,
                ret: 1,
                stack_id: 1,
                ..PinEvent::default()
            })
        } else {
            bytes_of(&UnpinEvent {
                header: header(kind::UNPIN, ts, 428),
                hook: probe_common::hook::UNPIN_USER_PAGE,
                pages: 1,
                ..UnpinEvent::default()
            })
        });
    }
    let start = Instant::now();
    for (i, bytes) in records.iter().enumerate() {
        let event = decode(bytes).expect("decodes");
        metrics.event(&event);
        correlator.push(event);
        if i % 4096 == 4095 {
            correlator.advance(ts + 100_000_000);
            for pin in correlator.take_released() {
                metrics.released(&pin);
            }
        }
    }
    correlator.advance(u64::MAX / 2);
    for pin in correlator.take_released() {
        metrics.released(&pin);
    }
    let elapsed = start.elapsed();
    println!(
        "record_cost: {} records in {:.1} ms: {:.0} ns per record",
        records.len(),
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_nanos() as f64 / records.len() as f64
    );
}
