//! The simulator's gRPC edge: `heatnet.v1.SimulatorService`.

use std::sync::{Arc, Mutex};

use proto::convert::{self, ConversionError};
use proto::v1;
use proto::v1::simulator_service_server::SimulatorService;
use tonic::{Request, Response, Status};

use crate::run::{AwaitError, Clock, Role};
use crate::world::{Fault, FaultKind, FaultRecord, World, WorldError};

/// Most devices one ReadSensors call may name.
pub const MAX_DEVICES_PER_READ: usize = 10_000;
/// Most devices one WriteActuatorsMany call may carry.
pub const MAX_DEVICES_PER_WRITE: usize = 10_000;
/// Longest forecast `GetForecast` gives, hours.
pub const MAX_FORECAST_HORIZON_H: u32 = 240;
/// The source name of the simulator's forecast product.
pub const FORECAST_SOURCE: &str = "sim-forecaster";

#[derive(Clone)]
pub struct SimulatorGrpc {
    pub(crate) world: Arc<Mutex<World>>,
    pub(crate) clock: Arc<Clock>,
}

/// Maps a world refusal to the status a client can act on.
fn status(e: WorldError) -> Status {
    let msg = e.to_string();
    match e {
        WorldError::UnknownDevice(_) | WorldError::UnknownPipe(_) | WorldError::UnknownFault(_) => {
            Status::not_found(msg)
        }
        WorldError::AlreadyCleared(_) => Status::failed_precondition(msg),
        WorldError::Snapshot(_) => Status::internal(msg),
        _ => Status::invalid_argument(msg),
    }
}

fn lock(world: &Mutex<World>) -> Result<std::sync::MutexGuard<'_, World>, Status> {
    world.lock().map_err(|_| {
        Status::internal("simulator state is poisoned by an earlier panic; restart the simulator")
    })
}

fn fault_kind(raw: i32) -> Result<FaultKind, ConversionError> {
    match v1::FaultKind::try_from(raw) {
        Ok(v1::FaultKind::StuckValve) => Ok(FaultKind::StuckValve),
        Ok(v1::FaultKind::SensorFrozen) => Ok(FaultKind::SensorFrozen),
        Ok(v1::FaultKind::SensorOffset) => Ok(FaultKind::SensorOffset),
        Ok(v1::FaultKind::PumpTrip) => Ok(FaultKind::PumpTrip),
        Ok(v1::FaultKind::PlantTrip) => Ok(FaultKind::PlantTrip),
        Ok(v1::FaultKind::SensorDrift) => Ok(FaultKind::SensorDrift),
        Ok(v1::FaultKind::SensorNoise) => Ok(FaultKind::SensorNoise),
        Ok(v1::FaultKind::SensorDropout) => Ok(FaultKind::SensorDropout),
        Ok(v1::FaultKind::PlantDerate) => Ok(FaultKind::PlantDerate),
        Ok(v1::FaultKind::SupplyLeak) => Ok(FaultKind::SupplyLeak),
        Ok(v1::FaultKind::ReturnLeak) => Ok(FaultKind::ReturnLeak),
        Ok(v1::FaultKind::PipeBurst) => Ok(FaultKind::PipeBurst),
        Ok(v1::FaultKind::SectionIsolated) => Ok(FaultKind::SectionIsolated),
        Ok(v1::FaultKind::IllegalDraining) => Ok(FaultKind::IllegalDraining),
        Ok(v1::FaultKind::Unspecified) => Err(ConversionError::Unspecified {
            field: "fault.kind".into(),
        }),
        Err(_) => Err(ConversionError::UnknownEnum {
            field: "fault.kind".into(),
            value: raw,
        }),
    }
}

fn fault_kind_to_wire(k: FaultKind) -> v1::FaultKind {
    match k {
        FaultKind::StuckValve => v1::FaultKind::StuckValve,
        FaultKind::SensorFrozen => v1::FaultKind::SensorFrozen,
        FaultKind::SensorOffset => v1::FaultKind::SensorOffset,
        FaultKind::PumpTrip => v1::FaultKind::PumpTrip,
        FaultKind::PlantTrip => v1::FaultKind::PlantTrip,
        FaultKind::SensorDrift => v1::FaultKind::SensorDrift,
        FaultKind::SensorNoise => v1::FaultKind::SensorNoise,
        FaultKind::SensorDropout => v1::FaultKind::SensorDropout,
        FaultKind::PlantDerate => v1::FaultKind::PlantDerate,
        FaultKind::SupplyLeak => v1::FaultKind::SupplyLeak,
        FaultKind::ReturnLeak => v1::FaultKind::ReturnLeak,
        FaultKind::PipeBurst => v1::FaultKind::PipeBurst,
        FaultKind::SectionIsolated => v1::FaultKind::SectionIsolated,
        FaultKind::IllegalDraining => v1::FaultKind::IllegalDraining,
    }
}

fn fault_from_wire(f: Option<&v1::Fault>) -> Result<Fault, ConversionError> {
    let f = f.ok_or(ConversionError::MissingField {
        field: "fault".into(),
    })?;
    let kind = fault_kind(f.kind)?;
    let metric = if f.metric == 0 {
        None
    } else {
        Some(convert::metric("fault.metric", f.metric)?)
    };
    Ok(Fault {
        kind,
        device: convert::node_id("fault.device_id", &f.device_id)?,
        metric,
        magnitude: if f.magnitude.is_finite() {
            f.magnitude
        } else {
            return Err(ConversionError::OutOfRange {
                field: "fault.magnitude".into(),
                value: f.magnitude,
                reason: "not a finite number".into(),
            });
        },
    })
}

fn fault_to_wire(r: &FaultRecord) -> v1::FaultState {
    v1::FaultState {
        fault_id: r.id,
        fault: Some(v1::Fault {
            kind: fault_kind_to_wire(r.fault.kind) as i32,
            device_id: r.fault.device.to_string(),
            metric: r
                .fault
                .metric
                .map(|m| v1::Metric::from(m) as i32)
                .unwrap_or(0),
            magnitude: r.fault.magnitude,
        }),
        active: r.active,
        injected_at_ms: r.injected_at_ms,
        cleared_at_ms: r.cleared_at_ms.unwrap_or(0),
    }
}

#[tonic::async_trait]
impl SimulatorService for SimulatorGrpc {
    async fn list_devices(
        &self,
        _req: Request<v1::ListDevicesRequest>,
    ) -> Result<Response<v1::ListDevicesResponse>, Status> {
        let w = lock(&self.world)?;
        let devices = w
            .devices()
            .into_iter()
            .map(|(id, kind, sensors, actuators)| v1::Device {
                device_id: id.to_string(),
                kind: v1::NodeKind::from(kind) as i32,
                sensors: sensors
                    .iter()
                    .map(|m| v1::Metric::from(*m) as i32)
                    .collect(),
                actuators: actuators
                    .iter()
                    .map(|a| v1::Actuator::from(*a) as i32)
                    .collect(),
            })
            .collect();
        Ok(Response::new(v1::ListDevicesResponse { devices }))
    }

    async fn read_sensors(
        &self,
        req: Request<v1::ReadSensorsRequest>,
    ) -> Result<Response<v1::ReadSensorsResponse>, Status> {
        let req = req.into_inner();
        if req.device_ids.is_empty() {
            return Err(Status::invalid_argument("device_ids: missing"));
        }
        if req.device_ids.len() > MAX_DEVICES_PER_READ {
            return Err(Status::invalid_argument(format!(
                "device_ids: {} devices, at most {MAX_DEVICES_PER_READ} per call",
                req.device_ids.len()
            )));
        }
        let w = lock(&self.world)?;
        let mut devices = Vec::with_capacity(req.device_ids.len());
        for id in &req.device_ids {
            let readings = w.read_sensors(id).map_err(status)?;
            devices.push(v1::DeviceReadings {
                device_id: id.clone(),
                readings: readings.into_iter().map(v1::Reading::from).collect(),
            });
        }
        Ok(Response::new(v1::ReadSensorsResponse {
            time_ms: w.time_ms(),
            devices,
        }))
    }

    async fn write_actuators(
        &self,
        req: Request<v1::WriteActuatorsRequest>,
    ) -> Result<Response<v1::WriteActuatorsResponse>, Status> {
        let req = req.into_inner();
        let writes = req
            .writes
            .iter()
            .enumerate()
            .map(|(i, w)| convert::actuator_write(&format!("writes[{i}]"), w))
            .collect::<Result<Vec<_>, _>>()?;
        lock(&self.world)?
            .write_actuators(&req.device_id, &writes)
            .map_err(status)?;
        Ok(Response::new(v1::WriteActuatorsResponse {}))
    }

    async fn write_actuators_many(
        &self,
        req: Request<v1::WriteActuatorsManyRequest>,
    ) -> Result<Response<v1::WriteActuatorsManyResponse>, Status> {
        let req = req.into_inner();
        if req.devices.len() > MAX_DEVICES_PER_WRITE {
            return Err(Status::invalid_argument(format!(
                "devices: {} devices, at most {MAX_DEVICES_PER_WRITE} per call",
                req.devices.len()
            )));
        }
        // Every write is checked before any is applied: a malformed request
        // changes nothing.
        let writes = req
            .devices
            .iter()
            .enumerate()
            .map(|(d, dev)| {
                dev.writes
                    .iter()
                    .enumerate()
                    .map(|(i, w)| convert::actuator_write(&format!("devices[{d}].writes[{i}]"), w))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut w = lock(&self.world)?;
        let outcomes = req
            .devices
            .iter()
            .zip(&writes)
            .map(|(dev, writes)| v1::DeviceWriteOutcome {
                device_id: dev.device_id.clone(),
                error: w
                    .write_actuators(&dev.device_id, writes)
                    .err()
                    .map_or_else(String::new, |e| e.to_string()),
            })
            .collect();
        Ok(Response::new(v1::WriteActuatorsManyResponse { outcomes }))
    }

    async fn read_actuators(
        &self,
        req: Request<v1::ReadActuatorsRequest>,
    ) -> Result<Response<v1::ReadActuatorsResponse>, Status> {
        let values = lock(&self.world)?
            .read_actuators(&req.into_inner().device_id)
            .map_err(status)?;
        Ok(Response::new(v1::ReadActuatorsResponse {
            values: values.into_iter().map(v1::ActuatorWrite::from).collect(),
        }))
    }

    async fn inject_fault(
        &self,
        req: Request<v1::InjectFaultRequest>,
    ) -> Result<Response<v1::FaultState>, Status> {
        let fault = fault_from_wire(req.get_ref().fault.as_ref())?;
        let rec = lock(&self.world)?.inject_fault(fault).map_err(status)?;
        tracing::warn!(fault_id = rec.id, device_id = %rec.fault.device, kind = ?rec.fault.kind, "fault injected");
        Ok(Response::new(fault_to_wire(&rec)))
    }

    async fn clear_fault(
        &self,
        req: Request<v1::ClearFaultRequest>,
    ) -> Result<Response<v1::FaultState>, Status> {
        let rec = lock(&self.world)?
            .clear_fault(req.get_ref().fault_id)
            .map_err(status)?;
        tracing::info!(fault_id = rec.id, device_id = %rec.fault.device, "fault cleared");
        Ok(Response::new(fault_to_wire(&rec)))
    }

    async fn list_faults(
        &self,
        _req: Request<v1::ListFaultsRequest>,
    ) -> Result<Response<v1::ListFaultsResponse>, Status> {
        let w = lock(&self.world)?;
        Ok(Response::new(v1::ListFaultsResponse {
            faults: w.faults().iter().map(fault_to_wire).collect(),
        }))
    }

    async fn get_clock(
        &self,
        _req: Request<v1::GetClockRequest>,
    ) -> Result<Response<v1::ClockState>, Status> {
        let time_ms = lock(&self.world)?.time_ms();
        Ok(Response::new(self.clock.to_wire(time_ms)))
    }

    async fn set_clock(
        &self,
        req: Request<v1::SetClockRequest>,
    ) -> Result<Response<v1::ClockState>, Status> {
        let req = req.into_inner();
        if let Some(speed) = req.speed {
            let speed = convert::in_range("speed", speed, crate::run::SPEED_LIMITS)?;
            self.clock.set_speed(speed);
        }
        if let Some(paused) = req.paused {
            self.clock.set_paused(paused);
        }
        let time_ms = lock(&self.world)?.time_ms();
        Ok(Response::new(self.clock.to_wire(time_ms)))
    }

    async fn set_weather(
        &self,
        req: Request<v1::SetWeatherRequest>,
    ) -> Result<Response<v1::WeatherState>, Status> {
        let offset = convert::in_range(
            "outdoor_offset_k",
            req.get_ref().outdoor_offset_k,
            (-40.0, 40.0),
        )?;
        let mut w = lock(&self.world)?;
        w.set_weather_offset_k(offset);
        tracing::info!(outdoor_offset_k = offset, "weather offset set");
        Ok(Response::new(v1::WeatherState {
            outdoor_temp_c: w.outdoor_temp_c(),
            outdoor_offset_k: offset,
        }))
    }

    async fn await_step(
        &self,
        req: Request<v1::AwaitStepRequest>,
    ) -> Result<Response<v1::ClockState>, Status> {
        let req = req.into_inner();
        let party = model::NodeId::new(&req.gateway_id)
            .map_err(|e| Status::invalid_argument(format!("gateway_id: {e}")))?;
        let role = if req.planner {
            Role::Planner
        } else {
            Role::Gateway
        };
        let step = self
            .clock
            .await_step(party.as_str(), req.done_step, role)
            .await
            .map_err(|e| match e {
                AwaitError::Full => Status::resource_exhausted(e.to_string()),
                AwaitError::Role { .. } => Status::failed_precondition(e.to_string()),
            })?;
        let time_ms = lock(&self.world)?.time_ms();
        let mut state = self.clock.to_wire(time_ms);
        // A planner's answer is the step to plan on (or its own again).
        state.steps = step;
        Ok(Response::new(state))
    }

    async fn get_scorecard(
        &self,
        _req: Request<v1::GetScorecardRequest>,
    ) -> Result<Response<v1::Scorecard>, Status> {
        let w = lock(&self.world)?;
        Ok(Response::new(scorecard_to_wire(
            w.network(),
            w.scorecard(),
            w.state().hydraulic_failures,
        )))
    }

    async fn get_forecast(
        &self,
        req: Request<v1::SimForecastRequest>,
    ) -> Result<Response<v1::SimForecastResponse>, Status> {
        let h = req.get_ref().horizon_h;
        let horizon_h = match h {
            0 => 72,
            1..=MAX_FORECAST_HORIZON_H => h,
            _ => {
                return Err(Status::invalid_argument(format!(
                    "horizon_h: {h} is out of range: allowed 1..{MAX_FORECAST_HORIZON_H} (0: 72)"
                )));
            }
        };
        let (issued_at_ms, points) = lock(&self.world)?.forecast(horizon_h);
        Ok(Response::new(v1::SimForecastResponse {
            source: FORECAST_SOURCE.into(),
            issued_at_ms,
            points: points.iter().map(v1::ForecastPoint::from).collect(),
        }))
    }
}

fn scorecard_to_wire(
    net: &model::Network,
    c: &crate::scorecard::Scorecard,
    hydraulic_failures: u64,
) -> v1::Scorecard {
    let gj = |j: f64| j / 1.0e9;
    v1::Scorecard {
        network: net.name.clone(),
        start_ms: c.start_ms,
        time_ms: c.time_ms,
        steps: c.steps,
        building_hours: c.building_hours,
        healthy_building_hours: c.healthy_hours,
        comfort_share: c.comfort_share(),
        comfort_share_all: c.comfort_share_all(),
        exposed_flat_comfort_share: c.exposed_flat_comfort_share(),
        overheated_building_hours: c.overheated_hours,
        min_room_temp_c: if c.min_room_c.is_finite() {
            c.min_room_c
        } else {
            0.0
        },
        coldest_building: c.coldest_building.clone(),
        coldest_at_ms: c.coldest_at_ms,
        mean_room_temp_c: c.mean_room_c(),
        heat_produced_gj: gj(c.produced_j),
        heat_delivered_gj: gj(c.delivered_j),
        heat_lost_gj: gj(c.lost_j),
        heat_cost_yuan: c.cost_yuan,
        peak_load_w: c.peak_w,
        peak_at_ms: c.peak_at_ms,
        worst_energy_residual: c.worst_energy_residual,
        hydraulic_failures,
        days: c
            .days
            .iter()
            .map(|d| v1::ScorecardDay {
                day_start_ms: d.day_start_ms,
                outdoor_mean_c: d.outdoor_mean_c(),
                outdoor_min_c: d.outdoor_min_c,
                comfort_share: d.comfort_share(),
                min_room_temp_c: d.min_room_c,
                mean_room_temp_c: d.mean_room_c(),
                heat_produced_gj: gj(d.produced_j),
                heat_cost_yuan: d.cost_yuan,
                peak_load_w: d.peak_w,
                overheated_building_hours: d.overheated_hours,
                plant_heat_gj: d.plant_j.iter().map(|j| gj(*j)).collect(),
            })
            .collect(),
        plants: net.plants.iter().map(|p| p.id.to_string()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> SimulatorGrpc {
        let net = model::Network::sample("demo").unwrap();
        SimulatorGrpc {
            world: Arc::new(Mutex::new(World::new(net))),
            clock: Arc::new(Clock::new(1.0, false, None)),
        }
    }

    fn valve(device: &str, value: f64) -> v1::WriteActuatorsRequest {
        v1::WriteActuatorsRequest {
            device_id: device.into(),
            writes: vec![v1::ActuatorWrite {
                actuator: v1::Actuator::PrimaryValve as i32,
                value,
            }],
        }
    }

    async fn valve_of(svc: &SimulatorGrpc, device: &str) -> f64 {
        let values = svc
            .read_actuators(Request::new(v1::ReadActuatorsRequest {
                device_id: device.into(),
            }))
            .await
            .unwrap()
            .into_inner()
            .values;
        values
            .iter()
            .find(|w| w.actuator == v1::Actuator::PrimaryValve as i32)
            .map(|w| w.value)
            .unwrap()
    }

    #[tokio::test]
    async fn many_devices_are_written_in_one_request_each_on_its_own() {
        let svc = service();
        let many = |devices| Request::new(v1::WriteActuatorsManyRequest { devices });
        let out = svc
            .write_actuators_many(many(vec![
                valve("s01", 0.4),
                valve("nope", 0.5),
                valve("s02", 0.6),
            ]))
            .await
            .unwrap()
            .into_inner()
            .outcomes;
        let ids: Vec<&str> = out.iter().map(|o| o.device_id.as_str()).collect();
        assert_eq!(ids, ["s01", "nope", "s02"]);
        assert!(
            out[0].error.is_empty() && out[2].error.is_empty(),
            "{out:?}"
        );
        assert!(out[1].error.contains("nope"), "{out:?}");
        assert_eq!(valve_of(&svc, "s01").await, 0.4);
        assert_eq!(valve_of(&svc, "s02").await, 0.6);
        // A malformed write refuses the whole request, naming it, and
        // changes nothing.
        let mut bad = valve("s02", 0.7);
        bad.writes[0].actuator = v1::Actuator::Unspecified as i32;
        let err = svc
            .write_actuators_many(many(vec![valve("s01", 0.3), bad]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("devices[1].writes[0]"), "{err:?}");
        assert_eq!(valve_of(&svc, "s01").await, 0.4);
        // So does one over the limit.
        let err = svc
            .write_actuators_many(many(vec![valve("s01", 0.3); MAX_DEVICES_PER_WRITE + 1]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert_eq!(valve_of(&svc, "s01").await, 0.4);
    }
}
