//! Gateway configuration (TOML).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use control::NodeConfig;
use model::{NodeId, NodeKind};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub gateway_id: NodeId,
    /// Local state (sled) of this gateway only.
    pub data_dir: PathBuf,
    /// The optimizer's agent API, `host:port`.
    pub optimizer: String,
    /// gRPC health (and reflection) endpoint of this gateway.
    pub health_listen: SocketAddr,
    pub hardware: HardwareConfig,
    /// What paces the scans: a real-time period (default), or the simulator's
    /// lockstep clock.
    #[serde(default)]
    pub clock: ClockConfig,
    #[serde(default)]
    pub limits: Limits,
    /// The nodes this gateway hosts: its plant or substation, and its buildings.
    pub actors: Vec<NodeConfig>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "driver", rename_all = "snake_case", deny_unknown_fields)]
pub enum HardwareConfig {
    /// The simulator's gRPC hardware API at `address` (`host:port`).
    Simulator { address: String },
    /// A Modbus TCP site server (a PLC, or the simulator's) at `address`, with
    /// the unit id of every hosted actor's device (register map: docs/modbus.md).
    Modbus {
        address: SocketAddr,
        units: std::collections::BTreeMap<NodeId, u8>,
    },
}

/// What paces the gateway's scans.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClockConfig {
    /// Every `limits.scan_period_ms` of real time.
    #[default]
    Interval,
    /// Once per step of the simulator's lockstep clock at `simulator`
    /// (`host:port`): the simulator waits for this gateway's writes.
    ///
    /// While the optimizer is connected, a step is reported done only once at
    /// most `max_unacked_batches` of this gateway's batches wait for the
    /// optimizer's acknowledgement (waiting at most `ack_wait_ms` of real time
    /// per step): the simulator runs no faster than the optimizer stores
    /// telemetry, so the optimizer plans on readings at most that many steps
    /// old instead of falling hours behind.
    Lockstep {
        simulator: String,
        #[serde(default = "default_max_unacked_batches")]
        max_unacked_batches: u64,
        #[serde(default = "default_ack_wait_ms")]
        ack_wait_ms: u64,
    },
}

/// Lockstep: batches that may wait for the optimizer's acknowledgement when a
/// step is reported done (the one just written and the one before).
pub const DEFAULT_MAX_UNACKED_BATCHES: u64 = 1;
/// Lockstep: real time a step waits for acknowledgements at most, ms.
pub const DEFAULT_ACK_WAIT_MS: u64 = 1_500;

fn default_max_unacked_batches() -> u64 {
    DEFAULT_MAX_UNACKED_BATCHES
}

fn default_ack_wait_ms() -> u64 {
    DEFAULT_ACK_WAIT_MS
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Real time between two scans of the hardware, ms.
    pub scan_period_ms: u64,
    /// Optimizer silent this long (real time) ⇒ actors fall back on their local curves, ms.
    pub fallback_after_ms: u64,
    /// Heartbeat period on the session stream, ms.
    pub heartbeat_ms: u64,
    /// Batches sent but not yet acknowledged, at most.
    pub max_in_flight: usize,
    /// Batches kept in the outbox at most (condensed placeholders included);
    /// when full, new scans are not recorded (counted and logged) until the
    /// optimizer acknowledges.
    pub max_outbox_batches: u64,
    /// Disk budget of the outbox: encoded bytes of pending batches at most. At
    /// the budget the oldest data is condensed (see `outbox`), counted and
    /// raised as an `outbox_condensed` alarm.
    pub outbox_budget_bytes: u64,
    /// sled page cache, bytes.
    pub cache_bytes: u64,
    /// Free disk space, MiB, below which the gateway writes nothing (its
    /// scans go unrecorded, raised as a `disk_low` alarm; its actors control
    /// on): sled does not survive running out of space mid-write.
    pub min_free_mib: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            scan_period_ms: 1000,
            fallback_after_ms: 30_000,
            heartbeat_ms: 1000,
            max_in_flight: 64,
            max_outbox_batches: 5_000_000,
            outbox_budget_bytes: 256 << 20,
            cache_bytes: 4 << 20,
            min_free_mib: store::DEFAULT_MIN_FREE_BYTES >> 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read gateway configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("gateway configuration {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl GatewayConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let cfg: GatewayConfig = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        cfg.validate().map_err(invalid)?;
        Ok(cfg)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    pub fn validate(&self) -> Result<(), String> {
        let l = &self.limits;
        let within = |path: &str, v: u64, lo: u64, hi: u64| {
            if v < lo || v > hi {
                Err(format!("{path} = {v} is outside {lo}..{hi}"))
            } else {
                Ok(())
            }
        };
        let in_range =
            |name: &str, v: u64, lo: u64, hi: u64| within(&format!("limits.{name}"), v, lo, hi);
        in_range("scan_period_ms", l.scan_period_ms, 10, 600_000)?;
        in_range("fallback_after_ms", l.fallback_after_ms, 1_000, 86_400_000)?;
        in_range("heartbeat_ms", l.heartbeat_ms, 100, 60_000)?;
        in_range("max_in_flight", l.max_in_flight as u64, 1, 10_000)?;
        in_range("max_outbox_batches", l.max_outbox_batches, 10, 100_000_000)?;
        in_range(
            "outbox_budget_bytes",
            l.outbox_budget_bytes,
            4 << 10,
            1 << 40,
        )?;
        in_range("cache_bytes", l.cache_bytes, 1 << 20, 1 << 30)?;
        in_range("min_free_mib", l.min_free_mib, 0, 1 << 20)?;
        if let ClockConfig::Lockstep {
            max_unacked_batches,
            ack_wait_ms,
            ..
        } = &self.clock
        {
            within("clock.max_unacked_batches", *max_unacked_batches, 0, 10_000)?;
            within("clock.ack_wait_ms", *ack_wait_ms, 0, 600_000)?;
        }
        if self.actors.is_empty() {
            return Err("actors: the gateway hosts no actor".into());
        }
        let heads = self
            .actors
            .iter()
            .filter(|a| a.kind != NodeKind::Building)
            .count();
        let modbus = matches!(self.hardware, HardwareConfig::Modbus { .. });
        if heads == 0 || (modbus && heads != 1) {
            return Err(format!(
                "actors: a gateway hosts one plant or substation (several substations only on the simulator's hardware, not Modbus: one site server per gateway), found {heads}"
            ));
        }
        let mut sites = std::collections::HashSet::new();
        for a in &self.actors {
            if a.kind != NodeKind::Building {
                sites.insert(&a.id);
            }
        }
        for a in self.actors.iter().filter(|a| a.kind == NodeKind::Building) {
            if let Some(p) = a.parent.as_ref().filter(|p| !sites.contains(p)) {
                return Err(format!(
                    "actors: building {} belongs to substation {p}, which this gateway does not host",
                    a.id
                ));
            }
        }
        if heads > 1 && self.actors.iter().any(|a| a.kind == NodeKind::Plant) {
            return Err("actors: a plant's gateway hosts that plant alone".into());
        }
        if let HardwareConfig::Modbus { units, .. } = &self.hardware {
            for a in &self.actors {
                match units.get(&a.id) {
                    None => {
                        return Err(format!(
                            "hardware.units: no Modbus unit id for actor {}",
                            a.id
                        ));
                    }
                    Some(0) | Some(248..) => {
                        return Err(format!(
                            "hardware.units: unit id of {} must be 1..247",
                            a.id
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for a in &self.actors {
            if !seen.insert(&a.id) {
                return Err(format!("actors: {} is listed twice", a.id));
            }
            control::Controller::new(a)?;
        }
        Ok(())
    }
}
