//! An open observation session: privileges checked, kernel BTF read, layout resolved, the eBPF
//! object loaded with it, and every hook through the attach ladder. Doctor and audit both start
//! here; dropping the session detaches everything.

use std::path::Path;

use aya::Ebpf;
use serde::Serialize;

use crate::{
    attach::{self, Attacher, Attachment, MethodChoice},
    error::Error,
    kernel::{
        btf::KernelBtf, caps::Capabilities, flags::FollFlags, kallsyms::Kallsyms, layout::Layout,
    },
    loader,
    probes::HOOKS,
};

pub struct Session {
    pub capabilities: Capabilities,
    pub methods: Methods,
    pub layout: Layout,
    pub foll_flags: FollFlags,
    pub kallsyms: Kallsyms,
    pub ebpf: Ebpf,
    pub attachments: Vec<Attachment>,
    /// When the programs were armed: every hook attached, observation complete from here on
    /// (wall clock, for people and metrics).
    pub ready_at: std::time::SystemTime,
}

/// Attach methods, each tested by attaching a program, not assumed.
#[derive(Debug, Clone, Serialize)]
pub struct Methods {
    pub fentry: Trial,
    pub kprobe: Trial,
}

#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    pub available: bool,
    pub detail: String,
}

/// The function used to test each attach method: present on every kernel pinwatch supports,
/// traceable, and in BTF.
const TRIAL_FUNCTION: &str = "folio_mkclean";

impl Session {
    /// `command` names the subcommand in the not-root hint; `programs` says what the programs
    /// do (every fork sent, for a command that watches one process tree; idle, for the floor).
    pub fn open(
        btf_path: &Path,
        method: MethodChoice,
        command: &'static str,
        programs: loader::Programs,
    ) -> Result<Self, Error> {
        let capabilities = Capabilities::probe();
        if !capabilities.privileged() {
            return Err(Error::NotPrivileged { command });
        }
        let kernel_btf = KernelBtf::load(btf_path)?;
        let layout = Layout::resolve(&kernel_btf);
        let foll_flags = FollFlags::resolve(&kernel_btf);
        let kallsyms = Kallsyms::read().map_err(Error::Kallsyms)?;
        let aya_btf = aya::Btf::parse_file(btf_path, aya::Endianness::default()).ok();
        let methods = trial_methods(&layout, &foll_flags, &capabilities, aya_btf.as_ref())?;
        let mut ebpf = loader::load(&layout, &foll_flags, programs)?;
        let attachments = {
            let mut attacher = Attacher {
                ebpf: &mut ebpf,
                kallsyms: &kallsyms,
                kernel_btf: &kernel_btf,
                aya_btf: aya_btf.as_ref(),
                choice: method,
                fentry_works: methods.fentry.available,
                kprobe_works: methods.kprobe.available,
            };
            HOOKS.iter().map(|hook| attacher.attach(hook)).collect()
        };
        arm(&mut ebpf)?;
        let ready_at = std::time::SystemTime::now();
        log::info!(
            since:% = humantime::format_rfc3339_millis(ready_at);
            "ready: every hook attached, observing; pins taken before this are reported as pinned before pinwatch was ready"
        );
        Ok(Self {
            capabilities,
            methods,
            layout,
            foll_flags,
            kallsyms,
            ebpf,
            attachments,
            ready_at,
        })
    }
}

/// Lets the programs start correlations and emit records: called once every hook is attached,
/// so no event is judged on half the hooks (a pin seen without its VMA hook would be no file
/// pin, and its writeback blamed on a pin "before pinwatch").
fn arm(ebpf: &mut Ebpf) -> Result<(), Error> {
    let map = ebpf
        .map_mut("ARMED")
        .ok_or(crate::counters::CounterError::MissingMap("ARMED"))?;
    let mut armed = aya::maps::Array::<_, u32>::try_from(map).map_err(Error::Map)?;
    armed.set(0, 1, 0).map_err(Error::Map)
}

/// Tests fentry and kprobe by attaching a counting program to `TRIAL_FUNCTION` in a throw-away
/// instance of the object (so the real ladder can still load its own programs).
fn trial_methods(
    layout: &Layout,
    foll: &FollFlags,
    caps: &Capabilities,
    btf: Option<&aya::Btf>,
) -> Result<Methods, Error> {
    let mut ebpf = loader::load(layout, foll, loader::Programs::default())?;
    let fentry = match btf {
        None => Err(attach::AttachError::NoKernelBtf),
        Some(btf) => attach::program::<aya::programs::FEntry>(&mut ebpf, "fentry_folio_mkclean")
            .and_then(|p| {
                p.load(TRIAL_FUNCTION, btf)?;
                Ok(p.attach().map(drop)?)
            }),
    };
    let kprobe = attach::program::<aya::programs::KProbe>(&mut ebpf, "kprobe_folio_mkclean")
        .and_then(|p| {
            p.load()?;
            Ok(p.attach(TRIAL_FUNCTION, 0).map(drop)?)
        });
    Ok(Methods {
        fentry: trial(fentry, "fentry (BPF trampoline on ftrace)", None),
        kprobe: trial(
            kprobe,
            "kprobe",
            (!caps.kprobe_pmu && !caps.kprobe_events)
                .then_some("this kernel has no kprobe PMU and no kprobe_events: it was built without CONFIG_KPROBES"),
        ),
    })
}

fn trial(result: Result<(), attach::AttachError>, what: &str, explanation: Option<&str>) -> Trial {
    match result {
        Ok(()) => Trial {
            available: true,
            detail: format!("{what} attached to {TRIAL_FUNCTION}"),
        },
        Err(e) => Trial {
            available: false,
            detail: match explanation {
                Some(why) => format!("{why} ({e})"),
                None => format!("{what} refused on {TRIAL_FUNCTION}: {e}"),
            },
        },
    }
}
