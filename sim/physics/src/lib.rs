//! Thermal and hydraulic models of a district heating network: plants, primary
//! pipes, substation heat exchangers, secondary circuits, radiators and rooms.
//!
//! Pure and deterministic: time enters as a step length, weather as a seeded
//! function of time, faults as flags on the state. Every formula names its
//! source and is checked against hand calculations in the tests beside it.
//!
//! Scope today (issue 2): each substation hangs on its plant through its own
//! supply/return pipe pair at the plant's pump differential pressure; pipes lose
//! heat exponentially to the ground; transport delay and meshed hydraulics come
//! with the full thermo-hydraulic engine (issue 3).

pub mod building;
pub mod engine;
pub mod hx;
pub mod hydraulics;
pub mod pipe;
pub mod plug;
pub mod radiator;
pub mod solar;
pub mod sparse;
pub mod steady;
pub mod water;
pub mod weather;

pub use engine::{BuildingState, Engine, PlantState, State, SubstationState};
pub use weather::WeatherModel;

/// Density of hot water used for valve flow, kg/m³ (≈ 80 °C).
pub const WATER_DENSITY_KG_M3: f64 = 972.0;
