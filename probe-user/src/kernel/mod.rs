//! What the running kernel offers: its BTF (struct layout, enum values), its symbols, and what
//! it lets us attach. Everything is discovered by trying or reading, never by version number.

pub mod btf;
pub mod caps;
pub mod flags;
pub mod kallsyms;
pub mod layout;
pub mod source;

/// `uname -r` of the running kernel.
pub fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}
