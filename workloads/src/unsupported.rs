//! The kernel lacks what a workload needs: an error of its own, so the process exits with a
//! status of its own ([`EXIT_UNSUPPORTED`]) that a script tells apart from a failure.

use std::fmt;

/// The exit status of a workload the running kernel cannot perform (not 1, a failure, nor 2,
/// clap's usage error).
pub const EXIT_UNSUPPORTED: u8 = 3;

/// What the kernel lacks, in words for the `workload <name>: unsupported ...` line.
#[derive(Debug)]
pub struct Unsupported(pub String);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unsupported {}

/// The reason, when `err` (anywhere in its chain) says the kernel lacks something.
pub fn reason(err: &anyhow::Error) -> Option<&Unsupported> {
    err.chain().find_map(|e| e.downcast_ref::<Unsupported>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn found_under_context() {
        let err = Err::<(), _>(Unsupported("no guest_memfd".into()))
            .context("creating the guest_memfd")
            .unwrap_err();
        assert_eq!(reason(&err).map(|u| u.0.as_str()), Some("no guest_memfd"));
        assert!(reason(&anyhow::anyhow!("plain failure")).is_none());
    }
}
