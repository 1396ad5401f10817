//! The hazards pinwatch reports. Ids are stable, kebab-case, and used by every surface.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Hazard {
    /// FOLL_LONGTERM|FOLL_WRITE pin of a MAP_SHARED mapping whose filesystem needs dirty tracking.
    LongtermFilePin,
    /// Writeback cleans (folio_mkclean) a folio that is maybe-DMA-pinned.
    PinnedFolioCleaned,
    /// A process holding pins forks (pinned anon pages are copied eagerly for the child).
    ForkWithPins,
    /// A COW or unshare fault (do_wp_page) hits a pinned page.
    PinnedCow,
    /// PAT memtype untracked from the zap path while the VM_PFNMAP vma stays mapped.
    EarlyPfnUntrack,
    /// A maybe-DMA-pinned page leaves the memory its process maps while the pin lives: dropped
    /// from its file's page cache (truncate, punch hole, MADV_REMOVE) or zapped by
    /// MADV_DONTNEED. The device keeps the old page; the process sees a new one.
    PinnedPageDiscarded,
    /// A long-term pin of guest_memfd memory: while it is held the page cannot change from
    /// shared to private (nor be punched out safely).
    GuestMemfdPin,
}

impl Hazard {
    pub const ALL: [Hazard; 7] = [
        Hazard::LongtermFilePin,
        Hazard::PinnedFolioCleaned,
        Hazard::ForkWithPins,
        Hazard::PinnedCow,
        Hazard::EarlyPfnUntrack,
        Hazard::PinnedPageDiscarded,
        Hazard::GuestMemfdPin,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Hazard::LongtermFilePin => "longterm-file-pin",
            Hazard::PinnedFolioCleaned => "pinned-folio-cleaned",
            Hazard::ForkWithPins => "fork-with-pins",
            Hazard::PinnedCow => "pinned-cow",
            Hazard::EarlyPfnUntrack => "early-pfn-untrack",
            Hazard::PinnedPageDiscarded => "pinned-page-discarded",
            Hazard::GuestMemfdPin => "guest-memfd-pin",
        }
    }
}

impl std::fmt::Display for Hazard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}
