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
    /// Plant: flow coming back from the network (differs from the supply
    /// flow by the make-up water fed at the plant), kg/s.
    ReturnFlowKgS,
    /// Plant or substation: gauge pressure of the primary supply at the node, Pa.
    SupplyPressurePa,
    /// Plant or substation: gauge pressure of the primary return at the node, Pa.
    ReturnPressurePa,
    /// Plant hosting the pressure-holding point: make-up water fed, kg/s.
    MakeupFlowKgS,
    /// Plant hosting the pressure-holding point: the pressure held, Pa.
    HoldingPressurePa,
    /// Solar thermal plant: temperature of its storage tank, °C.
    TankTempC,
    /// Solar thermal plant: heat its collectors put into the tank, W.
    CollectorHeatW,
}

impl Metric {
    pub const ALL: [Metric; 23] = [
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
        Metric::ReturnFlowKgS,
        Metric::SupplyPressurePa,
        Metric::ReturnPressurePa,
        Metric::MakeupFlowKgS,
        Metric::HoldingPressurePa,
        Metric::TankTempC,
        Metric::CollectorHeatW,
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
            | Metric::SetpointC
            | Metric::TankTempC => (-50.0, 200.0),
            Metric::RoomTempC | Metric::OutdoorTempC => (-60.0, 70.0),
            Metric::FlowKgS
            | Metric::SecondaryFlowKgS
            | Metric::BuildingFlowKgS
            | Metric::ReturnFlowKgS => (-1.0e5, 1.0e5),
            // Make-up pumps feed water in; a few hundred kg/s is a burst main.
            Metric::MakeupFlowKgS => (-1.0, 1.0e4),
            // Gauge pressures: no network runs above 100 bar; a drained pipe
            // reads down to vacuum, a simulated one a little below.
            Metric::SupplyPressurePa | Metric::ReturnPressurePa | Metric::HoldingPressurePa => {
                (-1.0e6, 1.0e7)
            }
            Metric::HeatW | Metric::CollectorHeatW => (-1.0e10, 1.0e10),
            Metric::ValvePosition | Metric::PumpRunning => (0.0, 1.0),
            Metric::DiffPressurePa | Metric::SecondaryDiffPressurePa => (-1.0e7, 1.0e7),
        }
    }

    /// A temperature measured by a sensor (the setpoint echo is not one).
    pub fn is_temperature(self) -> bool {
        matches!(
            self,
            Metric::SupplyTempC
                | Metric::ReturnTempC
                | Metric::SecondarySupplyTempC
                | Metric::SecondaryReturnTempC
                | Metric::RoomTempC
                | Metric::OutdoorTempC
                | Metric::BuildingReturnTempC
                | Metric::TankTempC
        )
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
            Metric::ReturnFlowKgS => "return_flow_kg_s",
            Metric::SupplyPressurePa => "supply_pressure_pa",
            Metric::ReturnPressurePa => "return_pressure_pa",
            Metric::MakeupFlowKgS => "makeup_flow_kg_s",
            Metric::HoldingPressurePa => "holding_pressure_pa",
            Metric::TankTempC => "tank_temp_c",
            Metric::CollectorHeatW => "collector_heat_w",
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
