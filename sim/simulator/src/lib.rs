//! The simulator process: plays the physical network on a clock and looks like
//! hardware to the gateways.
//!
//! - [`world`]: devices, sensors and actuators over the physics engine, faults,
//!   weather; pure and synchronous.
//! - [`grpc`]: the `SimulatorService` edge (the only module that sees wire types).
//! - [`run`]: the process: clock loop, sled snapshots, server, shutdown.
//! - [`scenario`]: faults and weather changes at given times, from a file.
//! - [`scorecard`]: the season's comfort, heat and cost, kept from the truth at every step.
//! - [`season`]: a whole season standalone under a fixed curve (baseline and benchmark).

pub mod grpc;
pub mod modbus;
pub mod run;
pub mod scenario;
pub mod scorecard;
pub mod season;
pub mod world;

pub use run::{SimConfig, run};
pub use world::{Fault, FaultKind, FaultRecord, World, WorldError};
