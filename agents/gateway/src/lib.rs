//! The edge gateway: hosts one plant's or substation's actors (and its
//! buildings'), reads and drives the hardware, keeps a durable telemetry outbox,
//! and links to the central optimizer.
//!
//! - [`config`]: the TOML configuration, checked on load.
//! - [`outbox`]: telemetry batches in sled, numbered without gaps, flushed
//!   before they count as stored, removed only once the optimizer acknowledges.
//! - [`link`]: registration and the session stream to the optimizer, with
//!   reconnects and replay.
//! - [`metrics`]: control accuracy as Prometheus metrics.
//! - [`run`]: the process: scan loop, health server, shutdown.

pub mod config;
pub mod link;
pub mod metrics;
pub mod outbox;
pub mod run;

pub use config::GatewayConfig;
pub use run::run;
