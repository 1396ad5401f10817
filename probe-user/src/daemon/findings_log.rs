//! Findings as JSON lines, one object per finding with its wall-clock time: to stdout, or
//! appended to a file only its owner can read (paths and process names are sensitive).

use std::{
    fs::{File, OpenOptions},
    io::{LineWriter, Write},
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::SystemTime,
};

use serde::Serialize;

use crate::{error::Error, findings::Finding};

pub enum FindingsLog {
    Stdout,
    File {
        path: PathBuf,
        out: LineWriter<File>,
    },
}

#[derive(Serialize)]
struct Line<'a> {
    schema: u32,
    time: String,
    #[serde(flatten)]
    finding: &'a Finding,
}

impl FindingsLog {
    pub fn open(path: Option<&Path>) -> Result<Self, Error> {
        let Some(path) = path else {
            return Ok(FindingsLog::Stdout);
        };
        let error = |source| Error::FindingsLog {
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(error)?;
        // An existing file keeps its mode on open: tighten it.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(error)?;
        Ok(FindingsLog::File {
            path: path.to_owned(),
            out: LineWriter::new(file),
        })
    }

    pub fn write(&mut self, finding: &Finding) -> Result<(), Error> {
        let line = serde_json::to_string(&Line {
            schema: crate::findings::SCHEMA,
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            finding,
        })
        .expect("findings are plain data");
        match self {
            FindingsLog::Stdout => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}")
                    .and_then(|()| out.flush())
                    .map_err(Error::Output)
            }
            FindingsLog::File { path, out } => {
                writeln!(out, "{line}").map_err(|source| Error::FindingsLog {
                    path: path.clone(),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_file_is_private_even_if_it_existed() {
        let dir = std::env::temp_dir().join(format!("pinwatch-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("findings.jsonl");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _log = FindingsLog::open(Some(&path)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_log_is_a_findings_log_error() {
        let err = FindingsLog::open(Some(Path::new("/nonexistent/dir/findings.jsonl")))
            .err()
            .expect("cannot create a file in a missing directory");
        assert!(matches!(err, Error::FindingsLog { .. }));
        assert!(err.to_string().contains("/nonexistent/dir/findings.jsonl"));
    }
}
