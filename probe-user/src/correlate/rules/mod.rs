//! The correlation rules, one per hazard: adding a hazard is a file here and a line in [`all`].

use super::rule::Rule;

mod early_pfn_untrack;
mod fork_with_pins;
mod guest_memfd_pin;
mod longterm_file_pin;
mod pinned_cow;
mod pinned_folio_cleaned;
mod pinned_page_discarded;

/// Every rule, each with empty state. Order does not matter: no rule reads another's findings.
pub(super) fn all() -> Vec<Box<dyn Rule>> {
    vec![
        Box::new(longterm_file_pin::LongtermFilePin),
        Box::new(pinned_folio_cleaned::PinnedFolioCleaned),
        Box::new(fork_with_pins::ForkWithPins::default()),
        Box::new(pinned_cow::PinnedCow::default()),
        Box::new(early_pfn_untrack::EarlyPfnUntrack::default()),
        Box::new(pinned_page_discarded::PinnedPageDiscarded::default()),
        Box::new(guest_memfd_pin::GuestMemfdPin),
    ]
}
