//! `pinned-folio-cleaned`: writeback cleaning a folio under a pin, attributed to the pin that
//! covers its page-cache index when pinwatch saw it.

use super::*;

impl Correlator {
    pub(super) fn on_clean(&mut self, clean: &Mkclean) {
        // Writeback cleans whole folios: a large one counts all its base pages. Unknown layout:
        // one page, as the kernel's own small folio would be.
        let pages = clean.pages.unwrap_or(1);
        let folio = clean.index..clean.index.saturating_add(pages);
        // A pin covers the folio when their page-cache ranges overlap (a pin may start inside
        // a large folio).
        let covers = |p: &&FilePin| {
            Some(p.file) == clean.file
                && p.first_index < folio.end
                && folio.start < p.first_index.saturating_add(p.pages)
        };
        let holder = self
            .active
            .iter()
            .chain(&self.pending)
            .find(covers)
            .cloned();
        let (outcome, process, pinner, gup_flags, mapping) = match &holder {
            Some(p) => (
                Outcome::Attributed,
                process(&p.pin.task),
                p.pin.pinner.to_string(),
                self.flags.decode(p.pin.gup_flags),
                Mapping::of(p.file, p.pin.path.clone()),
            ),
            None => (
                Outcome::Unattributed,
                process(&clean.task),
                "unknown (pinned before pinwatch was ready)".to_owned(),
                String::new(),
                clean
                    .file
                    .map_or_else(unknown_mapping, |f| Mapping::of(f, None)),
            ),
        };
        self.record(Finding {
            hazard: Hazard::PinnedFolioCleaned,
            outcome,
            process,
            pinner,
            pages,
            page_size: Some(pages << PAGE_SHIFT),
            folios: Some(1),
            mapping,
            gup_flags,
            first_ns: clean.at_ns,
            last_ns: clean.at_ns,
            advice: findings::advice(Hazard::PinnedFolioCleaned, outcome),
        });
    }
}

fn unknown_mapping() -> Mapping {
    Mapping {
        fs: "unknown",
        dev: String::new(),
        ino: 0,
        path: None,
    }
}
