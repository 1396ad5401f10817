//! One way to read arguments and return values from either attach method, so each hook's logic
//! is written once and wrapped twice (fentry/fexit and kprobe/kretprobe).

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_probe_read_kernel, generated::bpf_get_func_arg},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
};

use crate::{
    layout::{self, FolioPins},
    stacks,
};

pub trait Args: EbpfContext {
    /// The `n`th argument as a raw 64-bit register value (0 when unavailable).
    fn arg_u64(&self, n: usize) -> u64;
    /// The `n`th argument as a plain number the program may mask or follow with probe reads.
    /// fentry types each argument from BTF: a `struct folio *` cannot be masked, and loading a
    /// `struct page **` is refused outright ("type PTR is not a struct"), so pointers that are
    /// only ever read through `bpf_probe_read_kernel` come through here.
    fn arg_scalar(&self, n: usize) -> u64 {
        self.arg_u64(n)
    }
    /// The `n`th argument where `n` is only known at run time (a global): the verifier refuses
    /// a load at a computed context offset, so fentry asks `bpf_get_func_arg` and a kprobe
    /// probe-reads the register's slot.
    fn arg_at(&self, n: usize) -> u64;
    /// The pin test of the `struct folio *` in argument `n` (`None` when unknown).
    fn folio_pins(&self, n: usize) -> Option<FolioPins> {
        layout::folio_pins(self.arg_u64(n))
    }
    /// Id of the current kernel stack in `STACKS`, negative when it could not be taken.
    fn stack_id(&self) -> i64 {
        stacks::take(self)
    }
}

impl Args for FEntryContext {
    fn arg_u64(&self, n: usize) -> u64 {
        self.arg(n)
    }
    fn folio_pins(&self, n: usize) -> Option<FolioPins> {
        // fentry's arguments are BTF-typed: direct loads instead of probe reads.
        layout::folio_pins_btf(self.arg::<*const u8>(n))
    }
    fn arg_scalar(&self, n: usize) -> u64 {
        trampoline_arg(self, n).unwrap_or(0)
    }
    fn arg_at(&self, n: usize) -> u64 {
        self.arg_scalar(n)
    }
}

/// Where the x86-64 calling convention's argument registers sit in `struct pt_regs`, in u64
/// slots: di, si, dx, cx, r8, r9.
const PT_REGS_ARG_SLOTS: [usize; 6] = [14, 13, 12, 11, 9, 8];

impl Args for ProbeContext {
    fn arg_u64(&self, n: usize) -> u64 {
        self.arg(n).unwrap_or(0)
    }
    fn arg_at(&self, n: usize) -> u64 {
        let Some(&slot) = PT_REGS_ARG_SLOTS.get(n) else {
            return 0;
        };
        // SAFETY: a kprobe context is the traced task's `struct pt_regs`; the probe read
        // checks the address.
        unsafe { bpf_probe_read_kernel((self.as_ptr() as *const u64).wrapping_add(slot)) }
            .unwrap_or(0)
    }
}

/// Argument `n` of a trampoline program (fentry, fexit) untyped, through `bpf_get_func_arg`,
/// which the verifier inlines into a load: no type check and no helper call, where a probe
/// read of the context slot would cost one.
#[inline(always)]
fn trampoline_arg<C: EbpfContext>(ctx: &C, n: usize) -> Option<u64> {
    let mut value = 0u64;
    // SAFETY: `ctx` is the program's own context; the helper writes one u64 to `value`, and
    // fails (nonzero) for an `n` past the traced function's arguments.
    let failed = unsafe { bpf_get_func_arg(ctx.as_ptr(), n as u32, &raw mut value) };
    (failed == 0).then_some(value)
}

pub trait Ret: EbpfContext {
    /// The traced function's return value, sign-extended.
    fn ret_i64(&self) -> i64;
    /// The `n`th argument the function was called with: fexit has them, a kretprobe does not.
    fn entry_arg_u64(&self, n: usize) -> Option<u64>;
    /// The `n`th argument as a plain number (see [`Args::arg_scalar`]).
    fn entry_arg_scalar(&self, n: usize) -> Option<u64>;
}

impl Ret for FExitContext {
    fn ret_i64(&self) -> i64 {
        self.ret().unwrap_or(0)
    }
    fn entry_arg_u64(&self, n: usize) -> Option<u64> {
        Some(self.arg(n))
    }
    fn entry_arg_scalar(&self, n: usize) -> Option<u64> {
        trampoline_arg(self, n)
    }
}

impl Ret for RetProbeContext {
    fn ret_i64(&self) -> i64 {
        self.ret()
    }
    fn entry_arg_u64(&self, _n: usize) -> Option<u64> {
        None
    }
    fn entry_arg_scalar(&self, _n: usize) -> Option<u64> {
        None
    }
}

/// Defines `fentry_<hook>` and `kprobe_<hook>` that both call `$body(&ctx)` unless the programs
/// are idle (the benchmark's floor, see [`crate::idle`]). Bodies must be
/// `#[inline(always)]`: the verifier refuses context reads at offsets it cannot see as constants.
#[macro_export]
macro_rules! entry_programs {
    ($fentry:ident, $kprobe:ident, $body:path) => {
        #[aya_ebpf::macros::fentry]
        pub fn $fentry(ctx: aya_ebpf::programs::FEntryContext) -> i32 {
            if !$crate::idle() {
                $body(&ctx);
            }
            0
        }

        #[aya_ebpf::macros::kprobe]
        pub fn $kprobe(ctx: aya_ebpf::programs::ProbeContext) -> u32 {
            if !$crate::idle() {
                $body(&ctx);
            }
            0
        }
    };
}

/// Defines `fexit_<hook>` and `kretprobe_<hook>` that both call `$body(&ctx)` unless idle.
#[macro_export]
macro_rules! return_programs {
    ($fexit:ident, $kretprobe:ident, $body:path) => {
        #[aya_ebpf::macros::fexit]
        pub fn $fexit(ctx: aya_ebpf::programs::FExitContext) -> i32 {
            if !$crate::idle() {
                $body(&ctx);
            }
            0
        }

        #[aya_ebpf::macros::kretprobe]
        pub fn $kretprobe(ctx: aya_ebpf::programs::RetProbeContext) -> u32 {
            if !$crate::idle() {
                $body(&ctx);
            }
            0
        }
    };
}

/// A hook whose entry only counts: defines a counting function and its two programs.
#[macro_export]
macro_rules! counting_hook {
    ($fentry:ident, $kprobe:ident, $hook:expr) => {
        const _: () = {
            #[inline(always)]
            fn count<C>(_ctx: &C) {
                $crate::counters::entry($hook);
            }
            $crate::entry_programs!($fentry, $kprobe, count);
        };
    };
}
