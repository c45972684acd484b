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
}

impl Actuator {
    /// Values the actuator accepts.
    pub fn range(self) -> (f64, f64) {
        match self {
            Actuator::PrimaryValve
            | Actuator::SecondaryPump
            | Actuator::BalancingValve
            | Actuator::PlantPump => (0.0, 1.0),
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
        }
    }
}

/// One actuator value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActuatorWrite {
    pub actuator: Actuator,
    pub value: f64,
}
