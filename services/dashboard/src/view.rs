//! What the dashboard's JSON API returns: plain types of our own, converted
//! from the wire in `grpc`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    /// Wall-clock time of the optimizer, Unix ms.
    pub now_ms: i64,
    pub active_alarms: u32,
    pub gateways: Vec<GatewayView>,
    pub nodes: Vec<NodeView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct GatewayView {
    pub gateway_id: String,
    pub online: bool,
    pub last_seen_ms: i64,
    pub last_stored_seq: u64,
    pub batches_stored: u64,
    pub samples_stored: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct NodeView {
    pub node_id: String,
    pub kind: &'static str,
    pub parent_id: Option<String>,
    pub gateway_id: String,
    pub group: Option<String>,
    pub online: bool,
    pub mode: &'static str,
    /// Network time of the readings, Unix ms (0: none yet).
    pub reading_time_ms: i64,
    /// Latest readings by metric name (`supply_temp_c`, ...).
    pub readings: BTreeMap<String, f64>,
    pub commanded_setpoint_c: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AlarmView {
    pub alarm_id: u64,
    pub kind: String,
    pub node_id: String,
    pub severity: &'static str,
    pub state: &'static str,
    pub message: String,
    pub raised_at_ms: i64,
    pub acknowledged_at_ms: i64,
    pub acknowledged_by: String,
    pub cleared_at_ms: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct CurveView {
    pub group: String,
    pub version: u64,
    /// (outdoor °C, supply °C)
    pub points: Vec<(f64, f64)>,
    pub min_supply_temp_c: f64,
    pub max_supply_temp_c: f64,
    pub author: String,
    pub reason: String,
    pub created_at_ms: i64,
}

/// A curve the optimizer refused, with the offending point when it names one.
#[derive(Clone, Debug, Serialize)]
pub struct CurveError {
    pub error: String,
    pub point_index: Option<usize>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct CurveRequest {
    pub points: Vec<(f64, f64)>,
    pub min_supply_temp_c: f64,
    pub max_supply_temp_c: f64,
    pub author: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClockView {
    /// Network time, Unix ms.
    pub time_ms: i64,
    pub speed: f64,
    pub paused: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct FaultView {
    pub fault_id: u64,
    pub kind: &'static str,
    pub device_id: String,
    pub metric: Option<&'static str>,
    pub magnitude: f64,
    pub active: bool,
    pub injected_at_ms: i64,
    pub cleared_at_ms: i64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct FaultRequest {
    pub kind: String,
    pub device_id: String,
    pub metric: Option<String>,
    pub magnitude: Option<f64>,
}
