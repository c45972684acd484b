//! Plant, substation and building actors, and their local control laws.
//!
//! - [`law`]: pure control laws (PI with anti-windup, setpoint ramps, mode
//!   selection, command validation). No IO, no clock: time comes in each tick.
//! - [`actuator`]: does a valve follow its commands (a stuck valve, a failed
//!   actuator)? Pure, like the laws.
//! - [`plausibility`]: range, rate-of-change and stuck-value checks of every
//!   reading before a law sees it; implausible readings become findings.
//! - [`node`]: the actor that hosts one node's controller: it takes ticks (a
//!   scan's readings) and commands in order, and keeps its state in sled.
//! - [`supervisor`]: one supervisor per gateway; restarts a failed actor from
//!   its saved state while the others carry on. [`Actors`] is the small public
//!   handle the gateway uses; raw actor references never leave this crate.

pub mod actuator;
pub mod law;
pub mod node;
pub mod plausibility;
pub mod supervisor;

pub use actuator::ValveFault;
pub use law::{Controller, LinkState, NodeConfig, TickInput, TickOutput};
pub use plausibility::Finding;
pub use supervisor::{Actors, ControlError};
