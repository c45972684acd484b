//! Plant, substation and building actors, and their local control laws.
//!
//! - [`law`]: pure control laws (PI with anti-windup, setpoint ramps, mode
//!   selection, command validation). No IO, no clock: time comes in each tick.
//! - [`node`]: the actor that hosts one node's controller: it takes ticks (a
//!   scan's readings) and commands in order, and keeps its state in sled.
//! - [`supervisor`]: one supervisor per gateway; restarts a failed actor from
//!   its saved state while the others carry on. [`Actors`] is the small public
//!   handle the gateway uses; raw actor references never leave this crate.

pub mod law;
pub mod node;
pub mod supervisor;

pub use law::{Controller, LinkState, NodeConfig, TickInput, TickOutput};
pub use supervisor::{Actors, ControlError};
