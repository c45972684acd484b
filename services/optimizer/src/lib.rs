//! The central optimizer.
//!
//! - [`ingest`]: durable, deduplicated telemetry storage with group commit:
//!   a batch is acknowledged only after it is flushed to sled.
//! - [`alarms`]: alarm lifecycle (raised, acknowledged, cleared), persisted.
//! - [`curves`]: supply curves per substation group, versioned with who, when, why.
//! - [`forecast`]: weather forecast issues (bounded history), outdoor temperature
//!   observed in telemetry, the planner's look ahead and the error by lead time.
//! - [`audit`]: every control-room write, accepted or refused, who, when, what, why.
//! - [`planner`]: the pure planning core: setpoints from curves, weather and
//!   the coldest rooms. No IO.
//! - [`detect`]: pure detectors: suspected leaks located on the network
//!   layout, pump trips, plant trips.
//! - [`ledger`]: hours below 18 °C per building and day, persisted.
//! - [`watch`]: feeds every stored snapshot to the detectors and the ledger,
//!   and turns detections into alarms.
//! - [`core`]: registry, live network state, sessions and command fan-out.
//! - [`grpc`]: the `AgentService` and `ControlRoomService` edge.
//! - [`lockstep`]: the optimizer as a planner on the simulator's lockstep
//!   clock (season runs: every step waits for its round and its commands).
//! - [`metrics`]: Prometheus gauges read at scrape time.
//! - [`run`]: the process.

pub mod ahead;
pub mod alarms;
pub mod audit;
pub mod core;
pub mod curves;
pub mod demand;
pub mod detect;
pub mod dispatch;
pub mod forecast;
pub mod grpc;
pub mod ingest;
pub mod ledger;
pub mod lockstep;
pub mod metrics;
pub mod planner;
pub mod retention;
pub mod run;
pub mod schedule;
pub mod transport;
pub mod watch;

pub use run::{OptimizerConfig, run};

/// Scaffolding shared by the tests that open a store.
#[cfg(test)]
pub(crate) mod testing {
    use store::StoreConfig;

    /// An emptied scratch directory `heatnet-<name>-<pid>` in the temp dir.
    pub fn scratch_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("heatnet-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// The optimizer's store configuration with a small cache.
    pub fn store_config() -> StoreConfig {
        StoreConfig {
            kind: "optimizer".into(),
            identity: "central".into(),
            cache_bytes: 1 << 20,
            ..Default::default()
        }
    }
}
