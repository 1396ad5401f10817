//! pinwatch as a library: everything the `pinwatch` binary runs, in data-flow order: the
//! kernel facts and hooks, the events they produce, correlation, findings, and the surfaces
//! (doctor, audit, events, the daemon). The binary (`main.rs`) only parses and maps exit codes;
//! the library also serves the fuzz targets (`fuzz/`).

pub mod attach;
pub mod audit;
pub mod cli;
pub mod correlate;
pub mod counters;
pub mod daemon;
pub mod doctor;
pub mod error;
pub mod events;
pub mod exit;
pub mod findings;
pub mod hazards;
pub mod heap;
pub mod kernel;
pub mod loader;
pub mod logging;
pub mod pinner;
pub mod pipeline;
pub mod probes;
pub mod procfs;
pub mod session;
pub mod stream;
pub mod text;
