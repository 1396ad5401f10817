//! The doctor report: plain data, serialized as JSON or rendered as tables.

use serde::Serialize;

use super::{behaviour::Behaviour, cost::ProgramCost};
use crate::{
    attach::Attachment,
    counters::FilterCounts,
    hazards::Hazard,
    kernel::{caps::Capabilities, flags::FollFlags, layout::Layout},
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
pub struct HookStatus {
    #[serde(flatten)]
    pub attachment: Attachment,
    pub feeds: Vec<Hazard>,
    /// Entry hits while watching (`None` without `--watch`/command).
    pub hits: Option<u64>,
    pub returns: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HazardStatus {
    pub id: Hazard,
    pub observable: bool,
    /// Hooks the hazard needs that exist on this kernel but did not attach, or do not exist.
    pub missing: Vec<&'static str>,
    pub kernel_behaviour: Behaviour,
}

#[derive(Debug, Clone, Serialize)]
pub struct Watch {
    pub command: Option<crate::text::UserText>,
    pub exit_status: Option<i32>,
    pub seconds: f64,
    pub filters: FilterCounts,
    /// Per-program cost from the kernel's BPF statistics (programs that ran).
    pub program_costs: Vec<ProgramCost>,
    /// Why `program_costs` is empty when the statistics could not be enabled.
    pub program_costs_unavailable: Option<String>,
}
