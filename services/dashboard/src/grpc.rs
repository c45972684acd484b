//! The gRPC edge: calls the optimizer's ControlRoomService and the simulator's
//! SimulatorService, and converts their messages into the dashboard's own
//! types (`crate::view`) before anything else sees them.

use std::collections::BTreeMap;
use std::time::Duration;

use proto::v1;
use proto::v1::control_room_service_client::ControlRoomServiceClient;
use proto::v1::simulator_service_client::SimulatorServiceClient;
use tonic::transport::Channel;

use crate::history::{Readings, Sample};
use crate::view::{
    AlarmView, ClockView, CurveError, CurveView, FaultRequest, FaultView, GatewayView, NodeView,
    Snapshot,
};

#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("bad address {addr}: {source}")]
    Address {
        addr: String,
        source: tonic::transport::Error,
    },
    #[error("{0}")]
    Call(String),
    #[error("no simulator configured: start the dashboard with --simulator")]
    NoSimulator,
    #[error("{0}")]
    Invalid(String),
}

fn call_error(s: tonic::Status) -> EdgeError {
    match s.code() {
        // The request was wrong: say why, as the service put it.
        tonic::Code::InvalidArgument | tonic::Code::NotFound | tonic::Code::FailedPrecondition => {
            EdgeError::Invalid(s.message().to_string())
        }
        code => EdgeError::Call(format!("{code:?}: {}", s.message())),
    }
}

const CALL_TIMEOUT: Duration = Duration::from_secs(5);

fn channel(addr: &str) -> Result<Channel, EdgeError> {
    Ok(observe::grpc::endpoint(addr)
        .map_err(|source| EdgeError::Address {
            addr: addr.to_string(),
            source,
        })?
        .timeout(CALL_TIMEOUT)
        .connect_lazy())
}

#[derive(Clone)]
pub struct Clients {
    optimizer: ControlRoomServiceClient<Channel>,
    simulator: Option<SimulatorServiceClient<Channel>>,
}

fn mode_name(m: i32) -> &'static str {
    match proto::convert::mode("mode", m) {
        Ok(model::Mode::Optimizer) => "optimizer",
        Ok(model::Mode::Fallback) => "fallback",
        Ok(model::Mode::Override) => "override",
        Ok(model::Mode::Safe) => "safe",
        Err(_) => "unknown",
    }
}

fn kind_name(k: i32) -> &'static str {
    match proto::convert::node_kind("kind", k) {
        Ok(model::NodeKind::Plant) => "plant",
        Ok(model::NodeKind::Substation) => "substation",
        Ok(model::NodeKind::Building) => "building",
        Err(_) => "unknown",
    }
}

fn severity_name(s: i32) -> &'static str {
    match v1::Severity::try_from(s) {
        Ok(v1::Severity::Info) => "info",
        Ok(v1::Severity::Warning) => "warning",
        Ok(v1::Severity::Critical) => "critical",
        _ => "unknown",
    }
}

fn alarm_state_name(s: i32) -> &'static str {
    match v1::AlarmState::try_from(s) {
        Ok(v1::AlarmState::Raised) => "raised",
        Ok(v1::AlarmState::Acknowledged) => "acknowledged",
        Ok(v1::AlarmState::Cleared) => "cleared",
        _ => "unknown",
    }
}

/// Fault kinds the simulator panel offers, by wire value and name.
const FAULT_KINDS: [(v1::FaultKind, &str); 9] = [
    (v1::FaultKind::StuckValve, "stuck_valve"),
    (v1::FaultKind::SensorFrozen, "sensor_frozen"),
    (v1::FaultKind::SensorOffset, "sensor_offset"),
    (v1::FaultKind::PumpTrip, "pump_trip"),
    (v1::FaultKind::PlantTrip, "plant_trip"),
    (v1::FaultKind::SensorDrift, "sensor_drift"),
    (v1::FaultKind::SensorNoise, "sensor_noise"),
    (v1::FaultKind::SensorDropout, "sensor_dropout"),
    (v1::FaultKind::PlantDerate, "plant_derate"),
];

pub fn fault_kind_names() -> Vec<&'static str> {
    FAULT_KINDS.iter().map(|(_, n)| *n).collect()
}

fn fault_kind_name(k: i32) -> &'static str {
    FAULT_KINDS
        .iter()
        .find(|(w, _)| *w as i32 == k)
        .map_or("unknown", |(_, n)| *n)
}

fn metric_name(m: i32) -> Option<&'static str> {
    proto::convert::metric("metric", m)
        .ok()
        .map(model::Metric::name)
}

fn metric_by_name(name: &str) -> Option<model::Metric> {
    model::Metric::ALL.into_iter().find(|m| m.name() == name)
}

/// Index of the offending point in a curve refusal ("point 2: ..."), if any.
pub fn offending_point(message: &str) -> Option<usize> {
    let at = message.find("point ")?;
    let digits: String = message[at + 6..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn curve_view(c: &v1::CurveVersion) -> CurveView {
    let curve = c.curve.clone().unwrap_or_default();
    CurveView {
        group: c.group.clone(),
        version: c.version,
        points: curve
            .points
            .iter()
            .map(|p| (p.outdoor_temp_c, p.supply_temp_c))
            .collect(),
        min_supply_temp_c: curve.min_supply_temp_c,
        max_supply_temp_c: curve.max_supply_temp_c,
        author: c.author.clone(),
        reason: c.reason.clone(),
        created_at_ms: c.created_at_ms,
    }
}

impl Clients {
    pub fn new(optimizer: &str, simulator: Option<&str>) -> Result<Self, EdgeError> {
        Ok(Self {
            optimizer: proto::control_room_client(channel(optimizer)?),
            simulator: simulator
                .map(|a| channel(a).map(SimulatorServiceClient::new))
                .transpose()?,
        })
    }

    pub fn has_simulator(&self) -> bool {
        self.simulator.is_some()
    }

    fn sim(&self) -> Result<SimulatorServiceClient<Channel>, EdgeError> {
        self.simulator.clone().ok_or(EdgeError::NoSimulator)
    }

    pub async fn snapshot(&self) -> Result<Snapshot, EdgeError> {
        let s = self
            .optimizer
            .clone()
            .get_network_state(v1::GetNetworkStateRequest {})
            .await
            .map_err(call_error)?
            .into_inner();
        Ok(Snapshot {
            now_ms: s.now_ms,
            active_alarms: s.active_alarms,
            gateways: s
                .gateways
                .iter()
                .map(|g| GatewayView {
                    gateway_id: g.gateway_id.clone(),
                    online: g.online,
                    last_seen_ms: g.last_seen_ms,
                    last_stored_seq: g.last_stored_seq,
                    batches_stored: g.batches_stored,
                    samples_stored: g.samples_stored,
                })
                .collect(),
            nodes: s
                .nodes
                .iter()
                .map(|n| NodeView {
                    node_id: n.node_id.clone(),
                    kind: kind_name(n.kind),
                    parent_id: Some(n.parent_id.clone()).filter(|p| !p.is_empty()),
                    gateway_id: n.gateway_id.clone(),
                    group: Some(n.group.clone()).filter(|g| !g.is_empty()),
                    online: n.online,
                    mode: mode_name(n.mode),
                    reading_time_ms: n.reading_time_ms,
                    readings: n
                        .readings
                        .iter()
                        .filter_map(|r| metric_name(r.metric).map(|k| (k.to_string(), r.value)))
                        .collect::<BTreeMap<_, _>>(),
                    commanded_setpoint_c: n.commanded_setpoint_c,
                })
                .collect(),
        })
    }

    /// Stored snapshots of one gateway from `from_seq`: (last seq read, (node, sample)).
    pub async fn stored_samples(
        &self,
        gateway_id: &str,
        from_seq: u64,
        limit: u32,
    ) -> Result<(Option<u64>, Vec<(String, Sample)>), EdgeError> {
        let r = self
            .optimizer
            .clone()
            .read_telemetry_snapshots(v1::ReadTelemetryRequest {
                gateway_id: gateway_id.to_string(),
                from_seq,
                limit,
            })
            .await
            .map_err(call_error)?
            .into_inner();
        let last = r.batches.last().map(|b| b.seq);
        let samples = r
            .batches
            .iter()
            .flat_map(|b| b.snapshots.iter())
            .map(|s| {
                let readings: BTreeMap<String, f64> = s
                    .readings
                    .iter()
                    .filter_map(|r| metric_name(r.metric).map(|k| (k.to_string(), r.value)))
                    .collect();
                (
                    s.actor_id.clone(),
                    Sample {
                        t_ms: s.time_ms,
                        mode: mode_name(s.mode),
                        setpoint_c: None,
                        readings: Readings::from_map(&readings),
                    },
                )
            })
            .collect();
        Ok((last, samples))
    }

    pub async fn alarms(&self, include_cleared: bool) -> Result<Vec<AlarmView>, EdgeError> {
        let r = self
            .optimizer
            .clone()
            .list_alarms(v1::ListAlarmsRequest { include_cleared })
            .await
            .map_err(call_error)?
            .into_inner();
        Ok(r.alarms.iter().map(alarm_view).collect())
    }

    /// The optimizer's latest plan over its horizon, for the plants page.
    pub async fn plan(&self) -> Result<serde_json::Value, EdgeError> {
        let p = self
            .optimizer
            .clone()
            .get_plan(v1::GetPlanRequest {})
            .await
            .map_err(call_error)?
            .into_inner();
        Ok(serde_json::json!({
            "planned_at_ms": p.planned_at_ms,
            "mode": p.mode,
            "step_ms": p.step_ms,
            "plants": p.plants.iter().map(|pl| serde_json::json!({
                "plant_id": pl.plant_id,
                "kind": pl.kind,
                "available": pl.available,
                "lead": pl.lead,
                "delay_s": pl.delay_s,
                "price_yuan_per_gj": pl.price_yuan_per_gj,
                "heat_w": pl.heat_w,
                "supply_temp_c": pl.supply_temp_c,
            })).collect::<Vec<_>>(),
            "demand_w": p.demand_w,
            "unserved_w": p.unserved_w,
            "loss_share": p.loss_share,
            "cost_yuan": p.cost_yuan,
            "critical_substation_id": p.critical_substation_id,
            "critical_diff_pressure_pa": p.critical_diff_pressure_pa,
            "diff_pressure_target_pa": p.diff_pressure_target_pa,
            "lead_plant_id": p.lead_plant_id,
            "head_setpoint_pa": p.head_setpoint_pa,
            "weather_forecast": p.weather_forecast,
            "note": p.note,
            "room_target_c": p.room_target_c,
            "curve_sun_k": p.curve_sun_k,
        }))
    }

    pub async fn ack_alarm(&self, alarm_id: u64, user: &str) -> Result<AlarmView, EdgeError> {
        let a = self
            .optimizer
            .clone()
            .ack_alarm(v1::AckAlarmRequest {
                alarm_id,
                user: user.to_string(),
            })
            .await
            .map_err(call_error)?
            .into_inner();
        Ok(alarm_view(&a))
    }

    pub async fn curve(&self, group: &str) -> Result<(CurveView, Vec<CurveView>), EdgeError> {
        let mut c = self.optimizer.clone();
        let current = c
            .get_curve(v1::GetCurveRequest {
                group: group.to_string(),
            })
            .await
            .map_err(call_error)?
            .into_inner();
        let history = c
            .curve_history(v1::CurveHistoryRequest {
                group: group.to_string(),
            })
            .await
            .map_err(call_error)?
            .into_inner();
        Ok((
            curve_view(&current),
            history.versions.iter().map(curve_view).collect(),
        ))
    }

    /// Saves a curve; a refusal comes back as a `CurveError` naming the point.
    pub async fn set_curve(
        &self,
        group: &str,
        points: &[(f64, f64)],
        limits_c: (f64, f64),
        author: &str,
        reason: &str,
    ) -> Result<Result<CurveView, CurveError>, EdgeError> {
        let req = v1::SetCurveRequest {
            group: group.to_string(),
            curve: Some(v1::SupplyCurve {
                points: points
                    .iter()
                    .map(|&(o, s)| v1::CurvePoint {
                        outdoor_temp_c: o,
                        supply_temp_c: s,
                    })
                    .collect(),
                min_supply_temp_c: limits_c.0,
                max_supply_temp_c: limits_c.1,
            }),
            author: author.to_string(),
            reason: reason.to_string(),
        };
        match self.optimizer.clone().set_curve(req).await {
            Ok(r) => Ok(Ok(curve_view(r.get_ref()))),
            Err(s) if s.code() == tonic::Code::InvalidArgument => Ok(Err(CurveError {
                point_index: offending_point(s.message()),
                error: s.message().to_string(),
            })),
            Err(s) => Err(call_error(s)),
        }
    }

    /// Overrides a plant's or substation's supply setpoint for `duration_s`
    /// network seconds, or clears the override (`supply_temp_c` = `None`).
    pub async fn set_override(
        &self,
        node_id: &str,
        supply_temp_c: Option<f64>,
        duration_s: u32,
        author: &str,
        reason: &str,
    ) -> Result<String, EdgeError> {
        let mut c = self.optimizer.clone();
        let r = match supply_temp_c {
            Some(t) => {
                c.set_override(v1::SetOverrideRequest {
                    node_id: node_id.to_string(),
                    supply_temp_c: t,
                    duration_s,
                    author: author.to_string(),
                    reason: reason.to_string(),
                })
                .await
            }
            None => {
                c.clear_override(v1::ClearOverrideRequest {
                    node_id: node_id.to_string(),
                    author: author.to_string(),
                    reason: reason.to_string(),
                })
                .await
            }
        };
        Ok(r.map_err(call_error)?.into_inner().command_id)
    }

    pub async fn sim_state(&self) -> Result<(ClockView, Vec<FaultView>, Vec<String>), EdgeError> {
        let mut c = self.sim()?;
        let clock = c
            .get_clock(v1::GetClockRequest {})
            .await
            .map_err(call_error)?
            .into_inner();
        let faults = c
            .list_faults(v1::ListFaultsRequest {})
            .await
            .map_err(call_error)?
            .into_inner();
        let devices = c
            .list_devices(v1::ListDevicesRequest {})
            .await
            .map_err(call_error)?
            .into_inner();
        Ok((
            clock_view(&clock),
            faults.faults.iter().map(fault_view).collect(),
            devices.devices.into_iter().map(|d| d.device_id).collect(),
        ))
    }

    pub async fn inject_fault(&self, f: &FaultRequest) -> Result<FaultView, EdgeError> {
        let kind = FAULT_KINDS
            .iter()
            .find(|(_, n)| *n == f.kind)
            .map(|(w, _)| *w)
            .ok_or_else(|| EdgeError::Invalid(format!("kind: unknown fault kind {:?}", f.kind)))?;
        let metric = match f.metric.as_deref().filter(|m| !m.is_empty()) {
            None => v1::Metric::Unspecified as i32,
            Some(name) => v1::Metric::from(
                metric_by_name(name)
                    .ok_or_else(|| EdgeError::Invalid(format!("metric: unknown {name:?}")))?,
            ) as i32,
        };
        let s = self
            .sim()?
            .inject_fault(v1::InjectFaultRequest {
                fault: Some(v1::Fault {
                    kind: kind as i32,
                    device_id: f.device_id.clone(),
                    metric,
                    magnitude: f.magnitude.unwrap_or(0.0),
                }),
            })
            .await
            .map_err(call_error)?
            .into_inner();
        Ok(fault_view(&s))
    }

    pub async fn clear_fault(&self, fault_id: u64) -> Result<FaultView, EdgeError> {
        let s = self
            .sim()?
            .clear_fault(v1::ClearFaultRequest { fault_id })
            .await
            .map_err(call_error)?
            .into_inner();
        Ok(fault_view(&s))
    }

    pub async fn set_clock(
        &self,
        speed: Option<f64>,
        paused: Option<bool>,
    ) -> Result<ClockView, EdgeError> {
        let s = self
            .sim()?
            .set_clock(v1::SetClockRequest { speed, paused })
            .await
            .map_err(call_error)?
            .into_inner();
        Ok(clock_view(&s))
    }

    /// Shifts the outdoor temperature by `offset_k` (a cold snap is negative).
    pub async fn set_weather(&self, outdoor_offset_k: f64) -> Result<(f64, f64), EdgeError> {
        let s = self
            .sim()?
            .set_weather(v1::SetWeatherRequest { outdoor_offset_k })
            .await
            .map_err(call_error)?
            .into_inner();
        Ok((s.outdoor_temp_c, s.outdoor_offset_k))
    }
}

fn alarm_view(a: &v1::Alarm) -> AlarmView {
    AlarmView {
        alarm_id: a.alarm_id,
        kind: a.kind.clone(),
        node_id: a.node_id.clone(),
        severity: severity_name(a.severity),
        state: alarm_state_name(a.state),
        message: a.message.clone(),
        raised_at_ms: a.raised_at_ms,
        acknowledged_at_ms: a.acknowledged_at_ms,
        acknowledged_by: a.acknowledged_by.clone(),
        cleared_at_ms: a.cleared_at_ms,
    }
}

fn clock_view(c: &v1::ClockState) -> ClockView {
    ClockView {
        time_ms: c.time_ms,
        speed: c.speed,
        paused: c.paused,
    }
}

fn fault_view(s: &v1::FaultState) -> FaultView {
    let f = s.fault.clone().unwrap_or_default();
    FaultView {
        fault_id: s.fault_id,
        kind: fault_kind_name(f.kind),
        device_id: f.device_id,
        metric: metric_name(f.metric),
        magnitude: f.magnitude,
        active: s.active,
        injected_at_ms: s.injected_at_ms,
        cleared_at_ms: s.cleared_at_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_offending_point_in_a_refusal() {
        assert_eq!(
            offending_point(
                "curve: point 2: supply_temp_c 140 is outside the curve's limits 40..120 °C"
            ),
            Some(2)
        );
        assert_eq!(offending_point("curve has 1 points"), None);
    }

    #[test]
    fn fault_kinds_round_trip_by_name() {
        for (wire, name) in FAULT_KINDS {
            assert_eq!(fault_kind_name(wire as i32), name);
        }
    }
}
