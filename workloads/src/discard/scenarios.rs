//! The `discard` scenarios `workloads all` runs (and so every pass of the VM matrix), each with
//! its own count of discarded pages, so that a finding in an exact findings list names its
//! scenario by its page count. Every scenario maps `discarded + 32` pages (the 32 kept pages
//! come first; an `outside` control pins exactly them). Page counts:
//!
//! | discarded | pages | memory | pinner   | discard          | when         | what it shows |
//! |----------:|------:|--------|----------|------------------|--------------|---------------|
//! |  3 | 35 | memfd | io-uring | punch-hole       | pinned       | hazard: shmem punch removes pinned folios |
//! |  5 | 37 | memfd | io-uring | truncate         | pinned       | hazard: shmem truncate |
//! |  6 | 38 | memfd | io-uring | madvise-remove   | pinned       | hazard: MADV_REMOVE (a punch through the mapping) |
//! |  7 | 39 | anon  | io-uring | madvise-dontneed | pinned       | hazard: DONTNEED unmaps pinned anonymous pages |
//! |  9 | 41 | anon  | vfio     | madvise-dontneed | pinned       | hazard, with a real device's DMA on the orphans |
//! | 11 | 43 | ext4  | vfio     | truncate         | pinned       | hazard on 6.1 (pin granted); 6.5+ refuse the pin (EFAULT), then the truncate discards nothing pinned |
//! | 13 | 45 | memfd | io-uring | punch-hole       | after-unpin  | control |
//! | 14 | 46 | memfd | io-uring | punch-hole       | outside      | control (32 pages pinned) |
//! | 15 | 47 | memfd | -        | punch-hole       | never-pinned | control |
//! | 17 | 49 | anon  | io-uring | madvise-dontneed | after-unpin  | control |
//! | 18 | 50 | anon  | io-uring | madvise-dontneed | outside      | control (32 pages pinned) |
//! | 19 | 51 | anon  | -        | madvise-dontneed | never-pinned | control |
//! | 20 | 52 | anon  | vfio     | madvise-dontneed | after-unpin  | control |
//! | 21 | 53 | anon  | vfio     | madvise-dontneed | outside      | control (32 pages pinned) |
//! | 22 | 54 | anon  | io-uring | madvise-free     | pinned       | control: reclaim keeps pinned lazy-free pages |
//! | 23 | 55 | anon  | -        | madvise-free     | never-pinned | control: the same reclaim discards unpinned ones |
//! | 24 | 56 | memfd | io-uring | madvise-dontneed | pinned       | control: a shared folio stays in the page cache |
//! | 25 | 57 | ext4  | vfio     | truncate         | after-unpin  | control (6.1; 6.5+ refuse the pin) |
//! | 26 | 58 | ext4  | vfio     | truncate         | outside      | control (6.1, 32 pages pinned; 6.5+ refuse the pin) |
//! | 27 | 59 | ext4  | -        | truncate         | never-pinned | control |
//!
//! The ext4 scenarios pin a MAP_SHARED file with VFIO, which is itself the `longterm-file-pin`
//! hazard: granted on 6.1 (43, 57 and 32 pages), refused from 6.5.

use std::ffi::OsString;
use std::path::Path;

use super::{Call, Kind, Pinner, When, name};

/// Pages kept (not discarded) at the start of every scenario's memory.
pub(crate) const KEPT_PAGES: usize = 32;

/// One `discard` run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scenario {
    pub memory: Kind,
    pub pinner: Pinner,
    pub discard: Call,
    pub when: When,
    pub discarded: usize,
}

const fn s(memory: Kind, pinner: Pinner, discard: Call, when: When, discarded: usize) -> Scenario {
    Scenario {
        memory,
        pinner,
        discard,
        when,
        discarded,
    }
}

use Call::{MadviseDontneed, MadviseFree, MadviseRemove, PunchHole, Truncate};
use Kind::{Anon, File, Memfd};
use Pinner::{IoUring, Vfio};
use When::{AfterUnpin, NeverPinned, Outside, Pinned};

/// The table above, in the order `all` runs it.
pub(crate) const SCENARIOS: &[Scenario] = &[
    s(Memfd, IoUring, PunchHole, Pinned, 3),
    s(Memfd, IoUring, Truncate, Pinned, 5),
    s(Memfd, IoUring, MadviseRemove, Pinned, 6),
    s(Anon, IoUring, MadviseDontneed, Pinned, 7),
    s(Anon, Vfio, MadviseDontneed, Pinned, 9),
    s(File, Vfio, Truncate, Pinned, 11),
    s(Memfd, IoUring, PunchHole, AfterUnpin, 13),
    s(Memfd, IoUring, PunchHole, Outside, 14),
    s(Memfd, IoUring, PunchHole, NeverPinned, 15),
    s(Anon, IoUring, MadviseDontneed, AfterUnpin, 17),
    s(Anon, IoUring, MadviseDontneed, Outside, 18),
    s(Anon, IoUring, MadviseDontneed, NeverPinned, 19),
    s(Anon, Vfio, MadviseDontneed, AfterUnpin, 20),
    s(Anon, Vfio, MadviseDontneed, Outside, 21),
    s(Anon, IoUring, MadviseFree, Pinned, 22),
    s(Anon, IoUring, MadviseFree, NeverPinned, 23),
    s(Memfd, IoUring, MadviseDontneed, Pinned, 24),
    s(File, Vfio, Truncate, AfterUnpin, 25),
    s(File, Vfio, Truncate, Outside, 26),
    s(File, Vfio, Truncate, NeverPinned, 27),
];

impl Scenario {
    /// The `discard` flags of this scenario; a file lives in `dir`.
    pub(crate) fn argv(&self, dir: &Path) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec![
            "--memory".into(),
            name(self.memory).into(),
            "--pinner".into(),
            name(self.pinner).into(),
            "--discard".into(),
            name(self.discard).into(),
            "--when".into(),
            name(self.when).into(),
            "--pages".into(),
            (self.discarded + KEPT_PAGES).to_string().into(),
            "--discard-pages".into(),
            self.discarded.to_string().into(),
        ];
        if self.memory == File {
            argv.push("--file".into());
            argv.push(dir.join(format!("discard-{}.dat", self.discarded)).into());
        }
        argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every count a finding could carry names one scenario: the discarded pages, the pages
    /// mapped, and what an `outside` control pins (32, once per pinner and memory).
    #[test]
    fn page_counts_are_distinct() {
        let discarded: BTreeSet<usize> = SCENARIOS.iter().map(|s| s.discarded).collect();
        assert_eq!(discarded.len(), SCENARIOS.len());
        let pages: BTreeSet<usize> = SCENARIOS.iter().map(|s| s.discarded + KEPT_PAGES).collect();
        assert_eq!(pages.len(), SCENARIOS.len());
        assert!(discarded.is_disjoint(&pages));
        assert!(!discarded.contains(&KEPT_PAGES) && !pages.contains(&KEPT_PAGES));
    }

    #[test]
    fn every_scenario_parses_and_passes_the_checks() {
        use clap::{Args as _, FromArgMatches as _};
        for scenario in SCENARIOS {
            let argv = std::iter::once(OsString::from("discard"))
                .chain(scenario.argv(Path::new("/mnt/x")));
            let matches = super::super::Args::augment_args(clap::Command::new("discard"))
                .try_get_matches_from(argv)
                .unwrap();
            let args = super::super::Args::from_arg_matches(&matches).unwrap();
            super::super::check(&args).unwrap_or_else(|e| panic!("{scenario:?}: {e}"));
            assert_eq!(args.discard_pages, scenario.discarded);
        }
    }
}
