//! SIGINT and SIGTERM as a flag: watching commands end their watch early and still report.

use std::sync::{Arc, atomic::AtomicBool};

use crate::error::Error;

/// A flag SIGINT and SIGTERM set: the watch ends early, and the report is still printed.
pub fn stop_on_signals() -> Result<Arc<AtomicBool>, Error> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&flag)).map_err(Error::Signals)?;
    }
    Ok(flag)
}
