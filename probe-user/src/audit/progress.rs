//! One status line on a terminal while the audit watches: elapsed time, events, findings.
//! Redrawn in place on stderr, at most four times a second, and erased before the report.

use std::{
    io::{IsTerminal as _, Write as _},
    time::{Duration, Instant},
};

use crate::{events::Event, pipeline::Observer};

const REDRAW: Duration = Duration::from_millis(250);

pub struct Progress {
    enabled: bool,
    what: String,
    last: Option<Instant>,
}

impl Progress {
    /// Shown only when asked for and stderr is a terminal: logs and pipes stay clean.
    pub fn new(wanted: bool, what: String) -> Self {
        Self {
            enabled: wanted && std::io::stderr().is_terminal(),
            what,
            last: None,
        }
    }

    pub fn show(&mut self, elapsed: Duration, events: u64, findings: usize) {
        if !self.enabled || self.last.is_some_and(|t| t.elapsed() < REDRAW) {
            return;
        }
        self.last = Some(Instant::now());
        let line = status_line(&self.what, elapsed, events, findings);
        let _ = write!(std::io::stderr(), "\r\x1b[2K{line}");
    }

    pub fn clear(&self) {
        if self.enabled && self.last.is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

pub fn status_line(what: &str, elapsed: Duration, events: u64, findings: usize) -> String {
    format!(
        "watching {what}: {:.1}s, {events} event{}, {findings} finding{} so far (Ctrl-C ends the watch)",
        elapsed.as_secs_f64(),
        if events == 1 { "" } else { "s" },
        if findings == 1 { "" } else { "s" },
    )
}

/// Counts the watched processes' events.
#[derive(Default)]
pub struct EventCount(pub u64);

impl Observer for EventCount {
    fn event(&mut self, _event: &Event) {
        self.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_counts_in_words() {
        assert_eq!(
            status_line("pid 7", Duration::from_millis(1500), 1, 2),
            "watching pid 7: 1.5s, 1 event, 2 findings so far (Ctrl-C ends the watch)"
        );
    }
}
