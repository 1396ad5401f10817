//! Wire types shared by `probe-ebpf` (kernel side) and `probe-user` (userspace).
//!
//! Everything here is `no_std`, `#[repr(C)]` or a plain integer constant, so both sides agree on
//! layout without serialization. One module per mechanism.
#![no_std]

pub mod event;
pub mod hook;
pub mod kernel;
pub mod layout;
pub mod loss;
pub mod map;
pub mod verdict;

/// Number of per-hook counter slots reserved in the `HOOK_HITS` / `HOOK_RETURNS` maps.
/// Larger than [`hook::COUNT`] so a new hook does not change the map's size.
pub const MAX_HOOKS: u32 = 64;

const _: () = assert!(hook::COUNT <= MAX_HOOKS);
