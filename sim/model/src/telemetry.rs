//! Telemetry: what actors measure and send up, batched per gateway.

use serde::{Deserialize, Serialize};

use crate::NodeId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Plant,
    Substation,
    Building,
}

/// Who drives a node's main control loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Following setpoints from the central optimizer.
    Optimizer,
    /// Optimizer silent for too long: local weather-compensated curve (the start-up mode).
    #[default]
    Fallback,
    /// Manual override from the control room, with an expiry.
    Override,
    /// Sensors the loop needs have failed: predetermined safe output.
    Safe,
}

/// Measured or derived quantities. SI units: °C, kg/s, W, Pa, fraction 0..1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    SupplyTempC,
    ReturnTempC,
    FlowKgS,
    HeatW,
    SecondarySupplyTempC,
    SecondaryReturnTempC,
    SecondaryFlowKgS,
    RoomTempC,
    OutdoorTempC,
    ValvePosition,
    SetpointC,
    DiffPressurePa,
    PumpRunning,
    BuildingFlowKgS,
    BuildingReturnTempC,
    /// Substation: differential pressure the secondary pump makes across the buildings' circuits.
    SecondaryDiffPressurePa,
}

impl Metric {
    pub const ALL: [Metric; 16] = [
        Metric::SupplyTempC,
        Metric::ReturnTempC,
        Metric::FlowKgS,
        Metric::HeatW,
        Metric::SecondarySupplyTempC,
        Metric::SecondaryReturnTempC,
        Metric::SecondaryFlowKgS,
        Metric::RoomTempC,
        Metric::OutdoorTempC,
        Metric::ValvePosition,
        Metric::SetpointC,
        Metric::DiffPressurePa,
        Metric::PumpRunning,
        Metric::BuildingFlowKgS,
        Metric::BuildingReturnTempC,
        Metric::SecondaryDiffPressurePa,
    ];

    /// The range a plausible value of this metric lies in; values outside are
    /// refused at the wire edge.
    pub fn plausible_range(self) -> (f64, f64) {
        match self {
            Metric::SupplyTempC
            | Metric::ReturnTempC
            | Metric::SecondarySupplyTempC
            | Metric::SecondaryReturnTempC
            | Metric::BuildingReturnTempC
            | Metric::SetpointC => (-50.0, 200.0),
            Metric::RoomTempC | Metric::OutdoorTempC => (-60.0, 70.0),
            Metric::FlowKgS | Metric::SecondaryFlowKgS | Metric::BuildingFlowKgS => (-1.0e5, 1.0e5),
            Metric::HeatW => (-1.0e10, 1.0e10),
            Metric::ValvePosition | Metric::PumpRunning => (0.0, 1.0),
            Metric::DiffPressurePa | Metric::SecondaryDiffPressurePa => (-1.0e7, 1.0e7),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::SupplyTempC => "supply_temp_c",
            Metric::ReturnTempC => "return_temp_c",
            Metric::FlowKgS => "flow_kg_s",
            Metric::HeatW => "heat_w",
            Metric::SecondarySupplyTempC => "secondary_supply_temp_c",
            Metric::SecondaryReturnTempC => "secondary_return_temp_c",
            Metric::SecondaryFlowKgS => "secondary_flow_kg_s",
            Metric::RoomTempC => "room_temp_c",
            Metric::OutdoorTempC => "outdoor_temp_c",
            Metric::ValvePosition => "valve_position",
            Metric::SetpointC => "setpoint_c",
            Metric::DiffPressurePa => "diff_pressure_pa",
            Metric::PumpRunning => "pump_running",
            Metric::BuildingFlowKgS => "building_flow_kg_s",
            Metric::BuildingReturnTempC => "building_return_temp_c",
            Metric::SecondaryDiffPressurePa => "secondary_diff_pressure_pa",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub metric: Metric,
    pub value: f64,
}

impl Reading {
    pub fn new(metric: Metric, value: f64) -> Self {
        Self { metric, value }
    }
}

/// Readings of one actor at one instant of network time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActorSnapshot {
    pub actor_id: NodeId,
    /// Network time, Unix milliseconds.
    pub time_ms: i64,
    pub mode: Mode,
    pub readings: Vec<Reading>,
}

impl ActorSnapshot {
    pub fn get(&self, metric: Metric) -> Option<f64> {
        self.readings
            .iter()
            .find(|r| r.metric == metric)
            .map(|r| r.value)
    }
}

/// A gateway's unit of durable telemetry: numbered 1, 2, 3, … without gaps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TelemetryBatch {
    pub seq: u64,
    pub snapshots: Vec<ActorSnapshot>,
}

impl TelemetryBatch {
    /// Number of samples (readings) in the batch.
    pub fn sample_count(&self) -> usize {
        self.snapshots.iter().map(|s| s.readings.len()).sum()
    }
}
