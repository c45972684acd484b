//! The shared vocabulary of heatnet: node identities, the network description and
//! its validation, telemetry, commands, supply curves and limits.
//!
//! This crate does no IO and knows nothing of protobuf, sled or the network: every
//! other crate speaks in these types, and `proto` converts them to and from the wire.

pub mod command;
pub mod curve;
pub mod forecast;
pub mod generate;
pub mod hardware;
pub mod id;
pub mod network;
pub mod telemetry;

pub use command::{Action, Command, CommandOutcome, CommandResult};
pub use curve::{CurveError, CurvePoint, SupplyCurve};
pub use forecast::{Forecast, ForecastError, ForecastPoint};
pub use hardware::{Actuator, ActuatorWrite};
pub use id::{IdError, NodeId};
pub use network::{Building, Emitter, Network, NetworkError, Plant, PlantKind, Substation};
pub use telemetry::{ActorSnapshot, Metric, Mode, NodeKind, Reading, TelemetryBatch};

/// Specific heat capacity of water used for heat balances, J/(kg·K).
///
/// Between 40 and 130 °C the true value varies by less than 1.5 %; the
/// thermo-hydraulic engine uses temperature-dependent properties where it matters.
pub const WATER_CP_J_KG_K: f64 = 4186.0;

/// Standard gravity, m/s² (pump heads in metres to pressures).
pub const GRAVITY_M_S2: f64 = 9.80665;

/// Indoor temperature a building's design heat load is reckoned for, °C: at
/// the network's `outdoor_design_temp_c` a building loses its design heat.
pub const DESIGN_ROOM_TEMP_C: f64 = 20.0;

/// Indoor temperature every home must reach, °C.
pub const COMFORT_MIN_ROOM_TEMP_C: f64 = 18.0;
