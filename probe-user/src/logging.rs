//! The process's own log: levelled records through the `log` facade, to stderr.
//!
//! `RUST_LOG` filters as usual (`RUST_LOG=debug`, `RUST_LOG=probe_user::daemon=trace`);
//! `--log-level` overrides it. Key-value fields are printed after the message (`key=value`).
//! Under systemd (stderr is the journal: `JOURNAL_STREAM` is set) records carry no timestamp,
//! since the journal stamps them, and start with the syslog priority prefix (`<3>` … `<7>`)
//! that journald turns into the record's priority. The kernel side's rare diagnostics (a map
//! full) arrive here through aya-log, with the eBPF module as their target.

use std::io::Write as _;

use log::{Level, LevelFilter};

/// Sets up the global logger once, before anything logs. `default` applies when neither
/// `RUST_LOG` nor `level` says otherwise.
pub fn init(level: Option<LevelFilter>, default: LevelFilter) {
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let mut builder = env_logger::Builder::new();
    builder.filter_level(default);
    builder.parse_env(env_logger::Env::default());
    if let Some(level) = level {
        builder.filter_level(level);
    }
    builder.format(move |buf, record| {
        if journal {
            write!(buf, "<{}>", syslog_priority(record.level()))?;
        } else {
            write!(buf, "{} ", buf.timestamp_millis())?;
        }
        write!(
            buf,
            "{:<5} {}: {}",
            record.level(),
            record.target(),
            record.args()
        )?;
        record
            .key_values()
            .visit(&mut KeyValues(buf))
            .map_err(std::io::Error::other)?;
        writeln!(buf)
    });
    // A second init (tests) keeps the first logger.
    let _ = builder.try_init();
}

/// sd-daemon(3) priorities: err, warning, info, debug.
fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Writes ` key=value` per field; values with spaces or quotes are quoted (Debug form).
struct KeyValues<'a, W>(&'a mut W);

impl<'kvs, W: std::io::Write> log::kv::VisitSource<'kvs> for KeyValues<'_, W> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        let text = value.to_string();
        let plain = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '=');
        let written = if plain {
            write!(self.0, " {key}={text}")
        } else {
            write!(self.0, " {key}={text:?}")
        };
        written.map_err(log::kv::Error::boxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_priorities_follow_sd_daemon() {
        assert_eq!(syslog_priority(Level::Error), 3);
        assert_eq!(syslog_priority(Level::Warn), 4);
        assert_eq!(syslog_priority(Level::Info), 6);
        assert_eq!(syslog_priority(Level::Trace), 7);
    }

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        let mut out = Vec::new();
        let fields: [(&str, &dyn log::kv::ToValue); 3] =
            [("hooks", &31), ("path", &"/a b"), ("ctl", &"x\ny")];
        let mut visitor = KeyValues(&mut out);
        for (k, v) in fields {
            log::kv::VisitSource::visit_pair(&mut visitor, k.into(), v.to_value()).unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            " hooks=31 path=\"/a b\" ctl=\"x\\ny\""
        );
    }
}
