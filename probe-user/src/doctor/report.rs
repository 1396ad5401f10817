//! The doctor report: plain data, serialized as JSON or rendered as tables.

use serde::Serialize;

use super::cost::ProgramCost;
use crate::{
    counters::{Losses, Verdicts},
    kernel::{caps::Capabilities, flags::FollFlags, layout::Layout},
    observability::{HazardStatus, HookStatus},
    session::Methods,
};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub kernel: KernelInfo,
    pub capabilities: Capabilities,
    pub methods: Methods,
    pub layout: Layout,
    pub foll_flags: FollFlags,
    pub hooks: Vec<HookStatus>,
    pub hazards: Vec<HazardStatus>,
    /// Present when doctor watched a command or a time span.
    pub watch: Option<Watch>,
    pub verdict: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct KernelInfo {
    pub release: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Watch {
    pub command: Option<crate::text::UserText>,
    pub exit_status: Option<i32>,
    pub seconds: f64,
    /// What the in-kernel filters decided over the watch.
    pub verdicts: Verdicts,
    /// What never reached userspace over the watch.
    pub losses: Losses,
    /// Per-program cost from the kernel's BPF statistics (programs that ran).
    pub program_costs: Vec<ProgramCost>,
    /// Why `program_costs` is empty when the statistics could not be enabled.
    pub program_costs_unavailable: Option<String>,
}
