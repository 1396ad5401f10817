//! The release pass: io_uring buffers (64 pages) released by another thread, then by a kworker
//! when the ring is closed without unregistering, each scraped from the daemon while the
//! workload still lives (xtask/guest/init.sh). Each release must end its pin at once: no page
//! still counted live, the io_uring unpins counted, and nothing lost. Last, buffers held while
//! another thread does O_DIRECT into them (6.12+ pins and unpins them short-term): the
//! short-term unpins must not end the long-term pin.

use super::{
    daemon::{samples, sum},
    result,
};
use crate::expect::Kernel;

const PAGES: f64 = 64.0;

pub fn check(kernel: &Kernel, output: &str, fails: &mut Vec<String>) {
    let k = kernel.name;
    if result(output, "releases") != Some("0") {
        fails.push(format!(
            "{k} releases: daemon exited {:?} (expected 0)",
            result(output, "releases")
        ));
    }
    // (round, pages still live, io_uring pages unpinned so far)
    let rounds = [
        ("thread", 0.0, PAGES),
        ("close", 0.0, 2.0 * PAGES),
        ("held", PAGES, 2.0 * PAGES),
    ];
    for (how, live, unpinned) in rounds {
        let prefix = format!("PINWATCH-RELEASE-METRICS {how} ");
        let lines: Vec<&str> = output
            .lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .collect();
        if !lines.iter().all(|l| l.starts_with("alive=1 ")) || lines.is_empty() {
            fails.push(format!(
                "{k} release {how}: scraped {} lines, not all while the workload lived",
                lines.len()
            ));
            continue;
        }
        let text: String = lines
            .iter()
            .map(|l| format!("{}\n", l.trim_start_matches("alive=1 ")))
            .collect();
        let s = samples(&text);
        let checks = [
            ("pinwatch_live_pinned_pages", vec![], live),
            (
                "pinwatch_unpinned_pages_total",
                vec![("pinner", "io_uring")],
                unpinned,
            ),
            ("pinwatch_map_insert_failures_total", vec![], 0.0),
        ];
        for (name, labels, want) in checks {
            let got = sum(&s, name, &labels);
            if got != want {
                fails.push(format!(
                    "{k} release {how}: {name}{labels:?} = {got} while the workload lives (expected {want})"
                ));
            }
        }
    }
}
