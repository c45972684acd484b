//! Commands from the optimizer or the control room to an actor, and their answers.

use serde::{Deserialize, Serialize};

use crate::{NodeId, SupplyCurve};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub command_id: String,
    pub actor_id: NodeId,
    /// Monotonic per actor; an actor refuses a command older than the last applied.
    pub version: u64,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Substation: secondary supply temperature. Plant: primary supply temperature.
    SetSupplyTemp {
        supply_temp_c: f64,
    },
    /// The curve to fall back on when the optimizer is silent.
    SetCurve {
        curve: SupplyCurve,
        curve_version: u64,
    },
    /// Manual override until `expires_at_ms` (network time).
    SetOverride {
        supply_temp_c: f64,
        expires_at_ms: i64,
    },
    ClearOverride,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::SetSupplyTemp { .. } => "set_supply_temp",
            Action::SetCurve { .. } => "set_curve",
            Action::SetOverride { .. } => "set_override",
            Action::ClearOverride => "clear_override",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CommandOutcome {
    Accepted,
    Rejected { reason: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    pub command_id: String,
    pub outcome: CommandOutcome,
}
