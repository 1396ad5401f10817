//! What every timed workload shares: a loop that runs steps until a duration has passed, the
//! rate line it reports, and the scratch files it leaves nothing of.

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

/// `secs=<elapsed, 3 decimals> rate=<count per second, 1 decimal>`, shared with `pin-many`.
pub(crate) fn secs_and_rate(count: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    // u64 to f64 loses precision only beyond 2^53 operations.
    let rate = if secs > 0.0 { count as f64 / secs } else { 0.0 };
    format!("secs={secs:.3} rate={rate:.1}")
}

/// Runs `step` (given the round number, returning the ops it did) until `duration` has passed,
/// reading the clock after every step. At least one step runs, so `ops` is never a bare 0
/// from a deadline that passed during setup. Returns the ops and the time the loop took.
pub(crate) fn drive(
    duration: Duration,
    mut step: impl FnMut(u64) -> Result<u64>,
) -> Result<(u64, Duration)> {
    let start = Instant::now();
    let mut ops = 0u64;
    let mut round = 0u64;
    loop {
        ops += step(round).with_context(|| format!("round {round}"))?;
        round += 1;
        let elapsed = start.elapsed();
        if elapsed >= duration {
            return Ok((ops, elapsed));
        }
    }
}

/// A file in --dir that the storm creates; removed at the end, and on error paths by Drop.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(dir: &Path, name: &str) -> Result<Self> {
        fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(Self(dir.join(name)))
    }

    /// Removes the file, reporting failure (Drop only tries).
    pub(crate) fn remove(self) -> Result<()> {
        fs::remove_file(&self.0).with_context(|| format!("remove {}", self.0.display()))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // After remove() succeeded this fails with ENOENT, which is fine.
        let _ = fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drive_runs_at_least_once_and_sums() {
        let mut rounds = Vec::new();
        let (ops, _) = drive(Duration::ZERO, |r| {
            rounds.push(r);
            Ok(7)
        })
        .unwrap();
        assert_eq!((ops, rounds), (7, vec![0]));
        let (ops, elapsed) = drive(Duration::from_millis(20), |_| Ok(1)).unwrap();
        assert!(ops > 1 && elapsed >= Duration::from_millis(20));
        assert!(drive(Duration::ZERO, |_| anyhow::bail!("boom")).is_err());
    }
}
