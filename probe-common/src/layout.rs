//! Names of the eBPF globals that carry kernel struct layout, resolved from BTF at start.
//!
//! Rust eBPF has no CO-RE relocations (aya issue 349), so userspace reads offsets from
//! `/sys/kernel/btf/vmlinux` and writes them into these globals before the programs load.
//! The eBPF side declares a `static` of the same name for each; `LAYOUT_VALID` stays 0 unless
//! every offset a classification needs was found, and the programs then refuse to classify.

/// 1 when the folio fields below were all resolved.
pub const LAYOUT_VALID: &str = "LAYOUT_VALID";
/// Byte offset of `folio.flags` (a `memdesc_flags_t` wrapping the word on 7.2).
pub const FOLIO_FLAGS_OFF: &str = "FOLIO_FLAGS_OFF";
/// Byte offset of `folio._refcount`.
pub const FOLIO_REFCOUNT_OFF: &str = "FOLIO_REFCOUNT_OFF";
/// Byte offset of `folio._pincount` (88 on 6.1 where it lives in the first tail page, 92 later).
pub const FOLIO_PINCOUNT_OFF: &str = "FOLIO_PINCOUNT_OFF";
/// Bit number of `PG_head` in `enum pageflags` (16 on 6.1, 6 on 6.12+).
pub const PG_HEAD_BIT: &str = "PG_HEAD_BIT";

/// `GUP_PIN_COUNTING_BIAS`: a small folio is maybe-pinned when `_refcount >= 1024`.
/// A macro in every kernel since 5.7, not visible in BTF; unchanged since.
pub const GUP_PIN_COUNTING_BIAS: u32 = 1 << 10;
