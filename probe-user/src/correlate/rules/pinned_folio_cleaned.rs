//! `pinned-folio-cleaned`: writeback cleaning a folio under a pin, attributed to the
//! long-term file pin that covers its page-cache index when pinwatch saw it.

use super::super::rule::{Context, Rule};
use crate::{
    events::{Event, PAGE_SHIFT, PinnedFolio},
    findings::{Cause, Finding, Mapping, Outcome},
    hazards::Hazard,
};

pub(super) struct PinnedFolioCleaned;

impl Rule for PinnedFolioCleaned {
    fn on_event(&mut self, event: &Event, cx: &mut Context<'_>) {
        if let Event::MkcleanPinned(clean) = event {
            let finding = finding(clean, cx);
            cx.findings.record(finding);
        }
    }
}

fn finding(clean: &PinnedFolio, cx: &Context<'_>) -> Finding {
    // Writeback cleans whole folios: a large one counts all its base pages. Unknown layout:
    // one page, as the kernel's own small folio would be.
    let pages = clean.pages.unwrap_or(1);
    let folio = clean.index..clean.index.saturating_add(pages);
    let holder = clean
        .file
        .and_then(|file| cx.file_pins.covering(file, &folio));
    let cleaned = |outcome, task, cause| Finding {
        pages,
        page_size: Some(pages << PAGE_SHIFT),
        folios: Some(1),
        ..Finding::new(
            Hazard::PinnedFolioCleaned,
            outcome,
            task,
            clean.at_ns,
            cause,
        )
    };
    match holder {
        Some(p) => {
            let gup_flags = Some(cx.flags.decode(p.pin.gup_flags));
            Finding {
                pinner: Some(p.pin.pinner),
                mapping: Some(Mapping::of(p.file, p.pin.path.clone())),
                ..cleaned(
                    Outcome::Attributed,
                    &p.pin.task,
                    Cause::Writeback { gup_flags },
                )
            }
        }
        None => Finding {
            mapping: clean.file.map(|f| Mapping::of(f, None)),
            ..cleaned(
                Outcome::Unattributed,
                &clean.task,
                Cause::Writeback { gup_flags: None },
            )
        },
    }
}
