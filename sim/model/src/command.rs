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
    /// Plant: heat output to make, W (economic dispatch). The plant's pump
    /// speed tracks it; 0 stops the plant's pump (the plant is not committed).
    SetHeatOutput {
        heat_w: f64,
    },
    /// Plant: the pump head to hold, Pa (the lead plant, which holds the
    /// differential pressure at the critical substation and takes the balance).
    SetPumpHead {
        head_pa: f64,
    },
}

/// Largest heat output a command may ask of a plant, W.
pub const MAX_HEAT_OUTPUT_W: f64 = 1.0e10;
/// Pump heads a command may ask of a plant, Pa.
pub const PUMP_HEAD_LIMITS_PA: (f64, f64) = (1.0e3, 3.0e6);

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::SetSupplyTemp { .. } => "set_supply_temp",
            Action::SetCurve { .. } => "set_curve",
            Action::SetOverride { .. } => "set_override",
            Action::ClearOverride => "clear_override",
            Action::SetHeatOutput { .. } => "set_heat_output",
            Action::SetPumpHead { .. } => "set_pump_head",
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
