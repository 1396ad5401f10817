//! pinwatch as a library: everything the `pinwatch` binary runs. The binary (`main.rs`) only
//! parses and maps exit codes; the library also serves the fuzz targets (`fuzz/`). Its modules
//! by layer, in data-flow order:

// Foundations: exit codes, text that may hold any bytes, the hazards' names, /proc, logs.
pub mod exit;
pub mod hazards;
pub mod heap;
pub mod logging;
pub mod procfs;
pub mod signals;
pub mod text;

// The kernel and pinwatch's hooks into it: facts read from BTF and kallsyms, the attach table,
// loading and attaching, the kernel's counters, an open session and what it can observe.
pub mod attach;
pub mod counters;
pub mod kernel;
pub mod loader;
pub mod observability;
pub mod probes;
pub mod session;

// Events: ring-buffer records decoded, their pinners named.
pub mod discard_call;
pub mod events;
pub mod pinner;

// Correlation: one rule per hazard, and the findings they make.
pub mod correlate;
pub mod findings;

// The loop every watching command shares (ring buffer → enrich → correlate → observers).
pub mod pipeline;

// The surfaces: doctor, audit, the events stream, the daemon, the pins inventory (/proc only);
// the command line; the errors they end with.
pub mod audit;
pub mod cli;
pub mod daemon;
pub mod doctor;
pub mod error;
pub mod event_stream;
pub mod pins;
