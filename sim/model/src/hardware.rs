//! Hardware vocabulary shared by the simulator and the gateway's drivers.

use serde::{Deserialize, Serialize};

/// Something a gateway can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actuator {
    /// Substation primary control valve opening, 0..1.
    PrimaryValve,
    /// Substation secondary circulation pump: 1 on, 0 off.
    SecondaryPump,
    /// Building balancing valve opening, 0..1.
    BalancingValve,
    /// Plant supply temperature setpoint, °C.
    PlantSupplySetpointC,
    /// Plant circulation pump: 1 on, 0 off.
    PlantPump,
    /// Plant circulation pump speed relative to its rating, 0..1.2.
    PlantPumpSpeed,
    /// Substation secondary pump speed relative to its rating, 0..1.2.
    SecondaryPumpSpeed,
}

impl Actuator {
    /// Values the actuator accepts.
    pub fn range(self) -> (f64, f64) {
        match self {
            Actuator::PrimaryValve
            | Actuator::SecondaryPump
            | Actuator::BalancingValve
            | Actuator::PlantPump => (0.0, 1.0),
            Actuator::PlantPumpSpeed | Actuator::SecondaryPumpSpeed => PUMP_SPEED_LIMITS,
            Actuator::PlantSupplySetpointC => crate::network::PLANT_SUPPLY_LIMITS_C,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Actuator::PrimaryValve => "primary_valve",
            Actuator::SecondaryPump => "secondary_pump",
            Actuator::BalancingValve => "balancing_valve",
            Actuator::PlantSupplySetpointC => "plant_supply_setpoint_c",
            Actuator::PlantPump => "plant_pump",
            Actuator::PlantPumpSpeed => "plant_pump_speed",
            Actuator::SecondaryPumpSpeed => "secondary_pump_speed",
        }
    }
}

/// Pump speeds a drive accepts, relative to the pump's rating.
pub const PUMP_SPEED_LIMITS: (f64, f64) = (0.0, 1.2);

/// One actuator value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActuatorWrite {
    pub actuator: Actuator,
    pub value: f64,
}

use crate::{Metric, NodeKind};

/// Sensors of each kind of device, in register order (the simulator's gRPC
/// hardware API reports them in this order too).
pub fn sensors(kind: NodeKind) -> &'static [Metric] {
    match kind {
        NodeKind::Plant => &[
            Metric::SupplyTempC,
            Metric::ReturnTempC,
            Metric::FlowKgS,
            Metric::HeatW,
            Metric::OutdoorTempC,
            Metric::PumpRunning,
            // The pump's head: supply minus return pressure at the plant.
            Metric::DiffPressurePa,
            Metric::ReturnFlowKgS,
            Metric::SupplyPressurePa,
            Metric::ReturnPressurePa,
            // Only the plant hosting its part's pressure-holding point has
            // these two; elsewhere they read as missing (NaN over Modbus).
            Metric::MakeupFlowKgS,
            Metric::HoldingPressurePa,
            // Only a solar thermal plant has these two.
            Metric::TankTempC,
            Metric::CollectorHeatW,
        ],
        NodeKind::Substation => &[
            Metric::SupplyTempC,
            Metric::ReturnTempC,
            Metric::FlowKgS,
            Metric::HeatW,
            Metric::SecondarySupplyTempC,
            Metric::SecondaryReturnTempC,
            Metric::SecondaryFlowKgS,
            Metric::OutdoorTempC,
            Metric::ValvePosition,
            Metric::DiffPressurePa,
            Metric::PumpRunning,
            Metric::SecondaryDiffPressurePa,
            Metric::SupplyPressurePa,
            Metric::ReturnPressurePa,
        ],
        NodeKind::Building => &[
            Metric::RoomTempC,
            Metric::BuildingFlowKgS,
            Metric::BuildingReturnTempC,
            Metric::HeatW,
            Metric::ValvePosition,
        ],
    }
}

/// Actuators of each kind of device, in register order.
pub fn actuators(kind: NodeKind) -> &'static [Actuator] {
    match kind {
        NodeKind::Plant => &[
            Actuator::PlantSupplySetpointC,
            Actuator::PlantPump,
            Actuator::PlantPumpSpeed,
        ],
        NodeKind::Substation => &[
            Actuator::PrimaryValve,
            Actuator::SecondaryPump,
            Actuator::SecondaryPumpSpeed,
        ],
        NodeKind::Building => &[Actuator::BalancingValve],
    }
}

/// The Modbus register map, the same for every site (see docs/modbus.md).
pub mod modbus {
    use super::*;

    /// Input register (FC 04) of the site clock: network time, Unix ms, as a
    /// big-endian u64 in four registers.
    pub const CLOCK_REGISTER: u16 = 100;
    /// Unit id of a site's plant or substation; its buildings follow from 2.
    pub const HEAD_UNIT: u8 = 1;
    /// Most buildings one site server can address (unit ids 2..=247).
    pub const MAX_BUILDINGS_PER_SITE: usize = 246;

    /// First input register (FC 04) of a sensor: two registers, an IEEE-754
    /// float32, high word first. A missing reading reads as NaN.
    pub fn sensor_register(kind: NodeKind, metric: Metric) -> Option<u16> {
        sensors(kind)
            .iter()
            .position(|m| *m == metric)
            .map(|i| 2 * i as u16)
    }

    /// First holding register (FC 03 / FC 16) of an actuator, as above.
    pub fn actuator_register(kind: NodeKind, actuator: Actuator) -> Option<u16> {
        actuators(kind)
            .iter()
            .position(|a| *a == actuator)
            .map(|i| 2 * i as u16)
    }

    pub fn encode_f32(v: f64) -> [u16; 2] {
        let b = (v as f32).to_bits();
        [(b >> 16) as u16, b as u16]
    }

    pub fn decode_f32(w: [u16; 2]) -> f64 {
        f32::from_bits((u32::from(w[0]) << 16) | u32::from(w[1])) as f64
    }

    pub fn encode_u64(v: u64) -> [u16; 4] {
        [
            (v >> 48) as u16,
            (v >> 32) as u16,
            (v >> 16) as u16,
            v as u16,
        ]
    }

    pub fn decode_u64(w: [u16; 4]) -> u64 {
        w.iter().fold(0u64, |acc, x| (acc << 16) | u64::from(*x))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn values_round_trip_through_registers() {
            assert_eq!(decode_f32(encode_f32(72.5)), 72.5);
            assert!(decode_f32(encode_f32(f64::NAN)).is_nan());
            assert_eq!(decode_u64(encode_u64(1_796_054_400_123)), 1_796_054_400_123);
            assert_eq!(
                sensor_register(NodeKind::Substation, Metric::SecondarySupplyTempC),
                Some(8)
            );
            assert_eq!(
                actuator_register(NodeKind::Substation, Actuator::SecondaryPump),
                Some(2)
            );
            assert_eq!(sensor_register(NodeKind::Building, Metric::FlowKgS), None);
            // Appended after the holding pressure (22): older registers keep their place.
            assert_eq!(
                sensor_register(NodeKind::Plant, Metric::TankTempC),
                Some(24)
            );
            assert_eq!(
                sensor_register(NodeKind::Plant, Metric::CollectorHeatW),
                Some(26)
            );
        }
    }
}
