//! `pinned-folio-cleaned`: writeback cleaning a folio under a pin, attributed to the pin that
//! covers its page-cache index when pinwatch saw it.

use super::*;

impl Correlator {
    pub(super) fn on_clean(&mut self, clean: &Mkclean) {
        let covers = |p: &&FilePin| {
            Some(p.file) == clean.file
                && (p.first_index..p.first_index.saturating_add(p.pages)).contains(&clean.index)
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
                p.pin.pinner.clone(),
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
            pages: 1,
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
