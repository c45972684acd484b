//! The simulated world as hardware sees it: devices with sensors and actuators,
//! faults that break them, weather, and a step function.

use std::collections::BTreeMap;

use model::{Actuator, ActuatorWrite, Metric, Network, NodeId, NodeKind, Reading};
use physics::engine::Side;
use physics::{Engine, State, WeatherModel};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DeviceRef {
    Plant(usize),
    Substation(usize),
    Building(usize, usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    StuckValve,
    SensorFrozen,
    SensorOffset,
    PumpTrip,
    PlantTrip,
    /// The sensor's error grows by `magnitude` per hour since injection.
    SensorDrift,
    /// Seeded Gaussian noise with standard deviation `magnitude`.
    SensorNoise,
    /// The reading is missing.
    SensorDropout,
    /// The plant keeps `magnitude` (0 < m ≤ 1) of its capacity.
    PlantDerate,
    /// A hole of `magnitude` mm² in the supply pipe `device` (a pipe id).
    SupplyLeak,
    /// A hole of `magnitude` mm² in the return pipe `device`.
    ReturnLeak,
    /// The supply pipe `device` bursts; its section is isolated after
    /// `magnitude` minutes (0: only when the fault is cleared).
    PipeBurst,
    /// The isolation valves of pipe section `device` are closed.
    SectionIsolated,
    /// `magnitude` kg/s drawn illegally from building `device`'s heating.
    IllegalDraining,
}

impl FaultKind {
    /// Faults aimed at a pipe (by pipe id) rather than a device.
    pub fn is_pipe(self) -> bool {
        matches!(
            self,
            FaultKind::SupplyLeak
                | FaultKind::ReturnLeak
                | FaultKind::PipeBurst
                | FaultKind::SectionIsolated
        )
    }

    fn is_sensor(self) -> bool {
        matches!(
            self,
            FaultKind::SensorFrozen
                | FaultKind::SensorOffset
                | FaultKind::SensorDrift
                | FaultKind::SensorNoise
                | FaultKind::SensorDropout
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub kind: FaultKind,
    pub device: NodeId,
    /// For sensor faults: the sensor.
    pub metric: Option<Metric>,
    /// For sensor offsets: the offset in the sensor's unit.
    #[serde(default)]
    pub magnitude: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    pub id: u64,
    pub fault: Fault,
    pub active: bool,
    pub injected_at_ms: i64,
    pub cleared_at_ms: Option<i64>,
    /// For frozen sensors: the value they keep reporting.
    pub frozen_value: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorldError {
    #[error("device {0} does not exist")]
    UnknownDevice(String),
    #[error(
        "pipe {0} does not exist (pipe faults name a pipe id; in networks of private pipes, `<substation>.pipe`)"
    )]
    UnknownPipe(String),
    #[error("device {device} ({kind:?}) has no actuator {actuator}")]
    NoSuchActuator {
        device: String,
        kind: NodeKind,
        actuator: &'static str,
    },
    #[error("device {device} ({kind:?}) has no sensor {metric}")]
    NoSuchSensor {
        device: String,
        kind: NodeKind,
        metric: &'static str,
    },
    #[error("fault {kind:?} does not apply to device {device} ({device_kind:?})")]
    FaultNotApplicable {
        kind: FaultKind,
        device: String,
        device_kind: NodeKind,
    },
    #[error("fault {kind:?} needs {what}")]
    FaultIncomplete { kind: FaultKind, what: &'static str },
    #[error("fault {0} does not exist")]
    UnknownFault(u64),
    #[error("fault {0} is already cleared")]
    AlreadyCleared(u64),
    #[error("saved state does not fit this network: {0}")]
    Snapshot(String),
}

/// Everything needed to resume a simulation where it stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub network: String,
    pub state: State,
    pub faults: Vec<FaultRecord>,
    pub next_fault_id: u64,
    pub weather_offset_k: f64,
    /// Where the scenario (if any) stands.
    #[serde(default)]
    pub scenario: crate::scenario::Progress,
    /// The season so far (absent in snapshots older than the scorecard).
    #[serde(default)]
    pub scorecard: Option<crate::scorecard::Scorecard>,
}

#[derive(Clone)]
pub struct World {
    net: Network,
    engine: Engine,
    weather: WeatherModel,
    devices: BTreeMap<NodeId, DeviceRef>,
    faults: Vec<FaultRecord>,
    next_fault_id: u64,
    scenario: Option<std::sync::Arc<crate::scenario::Scenario>>,
    scenario_progress: crate::scenario::Progress,
    scorecard: crate::scorecard::Scorecard,
    /// What the scenario did since the last [`World::drain_scenario_log`].
    scenario_log: Vec<Result<String, WorldError>>,
}

impl World {
    pub fn new(net: Network) -> Self {
        let engine = Engine::new(&net);
        let weather = WeatherModel::new(net.weather.clone());
        let mut devices = BTreeMap::new();
        for (i, p) in net.plants.iter().enumerate() {
            devices.insert(p.id.clone(), DeviceRef::Plant(i));
        }
        for (i, s) in net.substations.iter().enumerate() {
            devices.insert(s.id.clone(), DeviceRef::Substation(i));
            for (j, b) in s.buildings.iter().enumerate() {
                devices.insert(b.id.clone(), DeviceRef::Building(i, j));
            }
        }
        let mut w = Self {
            net,
            engine,
            weather,
            devices,
            faults: Vec::new(),
            next_fault_id: 1,
            scenario: None,
            scenario_progress: crate::scenario::Progress::default(),
            scenario_log: Vec::new(),
            scorecard: crate::scorecard::Scorecard::new(0),
        };
        w.scorecard = crate::scorecard::Scorecard::new(w.engine.state.time_ms);
        w.engine.state.outdoor_c = w.weather.outdoor_temp_c(w.engine.state.time_ms);
        w
    }

    /// Replaces the weather (e.g. with an EPW file's), keeping the operator's offset.
    pub fn set_weather(&mut self, mut weather: WeatherModel) {
        weather.offset_k = self.weather.offset_k;
        self.weather = weather;
        self.engine.state.outdoor_c = self.weather.outdoor_temp_c(self.engine.state.time_ms);
    }

    pub fn network(&self) -> &Network {
        &self.net
    }

    pub fn time_ms(&self) -> i64 {
        self.engine.state.time_ms
    }

    pub fn state(&self) -> &State {
        &self.engine.state
    }

    /// The physical state, for controllers running in-process (the standalone
    /// season); processes go through actuators and faults instead.
    pub fn state_mut(&mut self) -> &mut State {
        &mut self.engine.state
    }

    pub fn outdoor_temp_c(&self) -> f64 {
        self.engine.state.outdoor_c
    }

    pub fn weather_offset_k(&self) -> f64 {
        self.weather.offset_k
    }

    pub fn set_weather_offset_k(&mut self, k: f64) {
        self.weather.offset_k = k;
    }

    /// The forecast product issued now (network time): `horizon_h` hourly
    /// points from the first full hour after now. The temperature carries the
    /// seeded forecast error that grows with lead time
    /// (`physics::weather::Forecaster`); the sunshine is the weather's own.
    pub fn forecast(&self, horizon_h: u32) -> (i64, Vec<model::forecast::RawPoint>) {
        const HOUR_MS: i64 = 3_600_000;
        let issued = self.time_ms();
        let forecaster = physics::weather::Forecaster::new(self.net.weather.seed);
        let first = issued.div_euclid(HOUR_MS) * HOUR_MS + HOUR_MS;
        let points = (0..i64::from(horizon_h))
            .map(|k| {
                let t = first + k * HOUR_MS;
                model::forecast::RawPoint {
                    time_ms: t,
                    outdoor_temp_c: forecaster.temp_c(&self.weather, issued, t),
                    solar_w_m2: Some(self.weather.ghi_w_m2(t).max(0.0)),
                }
            })
            .collect();
        (issued, points)
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            network: self.net.name.clone(),
            state: self.engine.state.clone(),
            faults: self.faults.clone(),
            next_fault_id: self.next_fault_id,
            weather_offset_k: self.weather.offset_k,
            scenario: self.scenario_progress.clone(),
            scorecard: Some(self.scorecard.clone()),
        }
    }

    /// The season so far, from the simulated truth.
    pub fn scorecard(&self) -> &crate::scorecard::Scorecard {
        &self.scorecard
    }

    pub fn restore(&mut self, snap: Snapshot) -> Result<(), WorldError> {
        if snap.network != self.net.name {
            return Err(WorldError::Snapshot(format!(
                "it was taken on network {:?}, this is {:?}",
                snap.network, self.net.name
            )));
        }
        self.engine
            .restore(snap.state)
            .map_err(WorldError::Snapshot)?;
        self.faults = snap.faults;
        self.next_fault_id = snap.next_fault_id;
        self.weather.offset_k = snap.weather_offset_k;
        self.scenario_progress = snap.scenario;
        self.scorecard = snap
            .scorecard
            .unwrap_or_else(|| crate::scorecard::Scorecard::new(self.engine.state.time_ms));
        Ok(())
    }

    /// Advances the world by `dt_s` seconds of network time. A hydraulic
    /// failure keeps the previous flows for the step and is returned.
    pub fn step(&mut self, dt_s: f64) -> Result<(), physics::engine::EngineError> {
        let t_mid = self.engine.state.time_ms + (dt_s * 500.0) as i64;
        let outdoor = self.weather.outdoor_temp_c(t_mid);
        let sun = self.weather.ghi_w_m2(t_mid);
        let stepped = self.engine.step(dt_s, outdoor, sun);
        let unhealthy: std::collections::BTreeSet<&str> = self
            .faults
            .iter()
            .filter(|f| f.active && !f.fault.kind.is_pipe())
            .filter(|f| {
                matches!(
                    self.devices.get(&f.fault.device),
                    Some(DeviceRef::Substation(_) | DeviceRef::Building(..))
                )
            })
            .map(|f| f.fault.device.as_str())
            .collect();
        self.scorecard
            .record(&self.net, &self.engine.state, dt_s, &unhealthy);
        if let Some(s) = self.scenario.clone() {
            let mut progress = std::mem::take(&mut self.scenario_progress);
            let start_ms = self.net.start_time_ms;
            let done = s.apply_due(self, start_ms, &mut progress);
            self.scenario_progress = progress;
            self.scenario_log.extend(done);
        }
        stepped
    }

    /// Plays `scenario` from now on (events already due fire at the next
    /// step); it is checked against this world first.
    pub fn set_scenario(
        &mut self,
        scenario: crate::scenario::Scenario,
    ) -> Result<(), crate::scenario::ScenarioError> {
        scenario.validate(self)?;
        self.scenario = Some(std::sync::Arc::new(scenario));
        Ok(())
    }

    /// What the scenario did since the last call.
    pub fn drain_scenario_log(&mut self) -> Vec<Result<String, WorldError>> {
        std::mem::take(&mut self.scenario_log)
    }

    fn device(&self, id: &str) -> Result<(NodeId, DeviceRef), WorldError> {
        let node = NodeId::new(id).map_err(|_| WorldError::UnknownDevice(id.to_string()))?;
        let d = *self
            .devices
            .get(&node)
            .ok_or_else(|| WorldError::UnknownDevice(id.to_string()))?;
        Ok((node, d))
    }

    fn kind(d: DeviceRef) -> NodeKind {
        match d {
            DeviceRef::Plant(_) => NodeKind::Plant,
            DeviceRef::Substation(_) => NodeKind::Substation,
            DeviceRef::Building(..) => NodeKind::Building,
        }
    }

    /// Every device with its kind, sensors and actuators.
    pub fn devices(&self) -> Vec<(NodeId, NodeKind, &'static [Metric], &'static [Actuator])> {
        self.devices
            .iter()
            .map(|(id, d)| {
                (
                    id.clone(),
                    Self::kind(*d),
                    Self::sensors_of(*d),
                    Self::actuators_of(*d),
                )
            })
            .collect()
    }

    fn sensors_of(d: DeviceRef) -> &'static [Metric] {
        model::hardware::sensors(Self::kind(d))
    }

    fn actuators_of(d: DeviceRef) -> &'static [Actuator] {
        model::hardware::actuators(Self::kind(d))
    }

    /// The true physical value behind a sensor.
    fn true_value(&self, d: DeviceRef, m: Metric) -> f64 {
        let st = &self.engine.state;
        let b2f = |b: bool| if b { 1.0 } else { 0.0 };
        match d {
            DeviceRef::Plant(i) => {
                let p = &st.plants[i];
                match m {
                    Metric::SupplyTempC => p.supply_temp_c,
                    Metric::ReturnTempC => p.return_temp_c,
                    Metric::FlowKgS => p.flow_kg_s,
                    Metric::HeatW => p.heat_w,
                    Metric::OutdoorTempC => st.outdoor_c,
                    Metric::PumpRunning => b2f(p.pump_running),
                    Metric::DiffPressurePa => p.head_pa,
                    Metric::ReturnFlowKgS => p.flow_kg_s - self.plant_makeup_kg_s(i).unwrap_or(0.0),
                    Metric::SupplyPressurePa => {
                        self.junction_pressure(self.engine.plant_junction(i), true)
                    }
                    Metric::ReturnPressurePa => {
                        self.junction_pressure(self.engine.plant_junction(i), false)
                    }
                    Metric::MakeupFlowKgS => self.plant_makeup_kg_s(i).unwrap_or(f64::NAN),
                    Metric::HoldingPressurePa => self
                        .plant_holding(i)
                        .map_or(f64::NAN, |h| st.holdings[h].pressure_pa),
                    // Only a solar thermal plant has a tank and collectors.
                    Metric::TankTempC => p.solar.as_ref().map_or(f64::NAN, |s| s.tank_temp_c),
                    Metric::CollectorHeatW => {
                        p.solar.as_ref().map_or(f64::NAN, |s| s.collector_heat_w)
                    }
                    _ => f64::NAN,
                }
            }
            DeviceRef::Substation(i) => {
                let s = &st.substations[i];
                match m {
                    Metric::SupplyTempC => s.primary_supply_c,
                    Metric::ReturnTempC => s.primary_return_c,
                    Metric::FlowKgS => s.primary_flow_kg_s,
                    Metric::HeatW => s.heat_w,
                    Metric::SecondarySupplyTempC => s.secondary_supply_c,
                    Metric::SecondaryReturnTempC => s.secondary_return_c,
                    Metric::SecondaryFlowKgS => s.secondary_flow_kg_s,
                    Metric::OutdoorTempC => st.outdoor_c,
                    Metric::ValvePosition => s.valve_position,
                    Metric::DiffPressurePa => s.diff_pressure_pa,
                    Metric::PumpRunning => b2f(s.pump_running),
                    Metric::SecondaryDiffPressurePa => s.secondary_dp_pa,
                    Metric::SupplyPressurePa => {
                        self.junction_pressure(self.engine.substation_junction(i), true)
                    }
                    Metric::ReturnPressurePa => {
                        self.junction_pressure(self.engine.substation_junction(i), false)
                    }
                    _ => f64::NAN,
                }
            }
            DeviceRef::Building(i, j) => {
                let b = &st.substations[i].buildings[j];
                match m {
                    Metric::RoomTempC => b.air_c,
                    Metric::BuildingFlowKgS => b.flow_kg_s,
                    Metric::BuildingReturnTempC => b.return_c,
                    Metric::HeatW => b.heat_w,
                    Metric::ValvePosition => b.valve_position,
                    _ => f64::NAN,
                }
            }
        }
    }

    /// The pressure-holding point plant `i` hosts, if any (index into the state's holdings).
    fn plant_holding(&self, i: usize) -> Option<usize> {
        let h = self.engine.holding_at(self.engine.plant_junction(i)?)?;
        (h < self.engine.state.holdings.len()).then_some(h)
    }

    /// Make-up water fed at plant `i`, kg/s, if it hosts a pressure-holding point.
    fn plant_makeup_kg_s(&self, i: usize) -> Option<f64> {
        self.plant_holding(i)
            .map(|h| self.engine.state.holdings[h].makeup_kg_s)
    }

    /// Supply or return gauge pressure at a junction, Pa (NaN if unknown).
    fn junction_pressure(&self, j: Option<usize>, supply: bool) -> f64 {
        let st = &self.engine.state;
        let v = if supply {
            &st.supply_pressure_pa
        } else {
            &st.return_pressure_pa
        };
        j.and_then(|j| v.get(j).copied()).unwrap_or(f64::NAN)
    }

    /// What the device's sensors report now, sensor faults included. A sensor
    /// the device does not have in this network (make-up flow at a plant
    /// without the pressure-holding point) is missing, not NaN.
    pub fn read_sensors(&self, device: &str) -> Result<Vec<Reading>, WorldError> {
        let (id, d) = self.device(device)?;
        let now = self.time_ms();
        Ok(Self::sensors_of(d)
            .iter()
            .filter_map(|&m| {
                let mut v = self.true_value(d, m);
                if !v.is_finite() {
                    return None;
                }
                if self.net.sensor_noise_k > 0.0 && m.is_temperature() {
                    v += self.net.sensor_noise_k
                        * seeded_normal(self.net.weather.seed, sensor_key(id.as_str(), m), now);
                }
                for f in self
                    .faults
                    .iter()
                    .filter(|f| f.active && f.fault.device == id && f.fault.metric == Some(m))
                {
                    match f.fault.kind {
                        FaultKind::SensorFrozen => v = f.frozen_value.unwrap_or(v),
                        FaultKind::SensorOffset => v += f.fault.magnitude,
                        FaultKind::SensorDrift => {
                            v += f.fault.magnitude * (now - f.injected_at_ms).max(0) as f64 / 3.6e6
                        }
                        FaultKind::SensorNoise => {
                            v += f.fault.magnitude * seeded_normal(self.net.weather.seed, f.id, now)
                        }
                        FaultKind::SensorDropout => return None,
                        _ => {}
                    }
                }
                Some(Reading::new(m, v))
            })
            .collect())
    }

    /// Sets actuators; all writes are checked before any is applied.
    pub fn write_actuators(
        &mut self,
        device: &str,
        writes: &[ActuatorWrite],
    ) -> Result<(), WorldError> {
        let (_, d) = self.device(device)?;
        for w in writes {
            if !Self::actuators_of(d).contains(&w.actuator) {
                return Err(WorldError::NoSuchActuator {
                    device: device.to_string(),
                    kind: Self::kind(d),
                    actuator: w.actuator.name(),
                });
            }
        }
        let st = &mut self.engine.state;
        for w in writes {
            match (d, w.actuator) {
                (DeviceRef::Plant(i), Actuator::PlantSupplySetpointC) => {
                    st.plants[i].supply_setpoint_c = w.value
                }
                (DeviceRef::Plant(i), Actuator::PlantPump) => st.plants[i].pump_on = w.value >= 0.5,
                (DeviceRef::Plant(i), Actuator::PlantPumpSpeed) => {
                    st.plants[i].pump_speed = w.value
                }
                (DeviceRef::Substation(i), Actuator::SecondaryPumpSpeed) => {
                    st.substations[i].pump_speed = w.value
                }
                (DeviceRef::Substation(i), Actuator::PrimaryValve) => {
                    st.substations[i].valve_command = w.value
                }
                (DeviceRef::Substation(i), Actuator::SecondaryPump) => {
                    st.substations[i].pump_on = w.value >= 0.5
                }
                (DeviceRef::Building(i, j), Actuator::BalancingValve) => {
                    st.substations[i].buildings[j].valve_command = w.value
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The commanded value of every actuator of a device.
    pub fn read_actuators(&self, device: &str) -> Result<Vec<ActuatorWrite>, WorldError> {
        let (_, d) = self.device(device)?;
        let st = &self.engine.state;
        let f = |b: bool| if b { 1.0 } else { 0.0 };
        let w = |actuator, value| ActuatorWrite { actuator, value };
        Ok(match d {
            DeviceRef::Plant(i) => vec![
                w(
                    Actuator::PlantSupplySetpointC,
                    st.plants[i].supply_setpoint_c,
                ),
                w(Actuator::PlantPump, f(st.plants[i].pump_on)),
                w(Actuator::PlantPumpSpeed, st.plants[i].pump_speed),
            ],
            DeviceRef::Substation(i) => vec![
                w(Actuator::PrimaryValve, st.substations[i].valve_command),
                w(Actuator::SecondaryPump, f(st.substations[i].pump_on)),
                w(Actuator::SecondaryPumpSpeed, st.substations[i].pump_speed),
            ],
            DeviceRef::Building(i, j) => vec![w(
                Actuator::BalancingValve,
                st.substations[i].buildings[j].valve_command,
            )],
        })
    }

    pub fn faults(&self) -> &[FaultRecord] {
        &self.faults
    }

    pub fn inject_fault(&mut self, fault: Fault) -> Result<FaultRecord, WorldError> {
        if fault.kind.is_pipe() {
            return self.inject_pipe_fault(fault);
        }
        let (_, d) = self.device(fault.device.as_str())?;
        let kind = Self::kind(d);
        let not_applicable = || WorldError::FaultNotApplicable {
            kind: fault.kind,
            device: fault.device.to_string(),
            device_kind: kind,
        };
        let applicable = match fault.kind {
            FaultKind::StuckValve => kind != NodeKind::Plant,
            FaultKind::PumpTrip => kind != NodeKind::Building,
            FaultKind::PlantTrip | FaultKind::PlantDerate => kind == NodeKind::Plant,
            FaultKind::IllegalDraining => kind == NodeKind::Building,
            k => k.is_sensor(),
        };
        if !applicable {
            return Err(not_applicable());
        }
        let mut frozen_value = None;
        if fault.kind == FaultKind::IllegalDraining
            && !(fault.magnitude.is_finite() && fault.magnitude > 0.0 && fault.magnitude <= 5.0)
        {
            return Err(WorldError::FaultIncomplete {
                kind: fault.kind,
                what: "a magnitude in (0, 5]: the water drawn, kg/s",
            });
        }
        if fault.kind == FaultKind::PlantDerate
            && !(fault.magnitude.is_finite() && fault.magnitude > 0.0 && fault.magnitude <= 1.0)
        {
            return Err(WorldError::FaultIncomplete {
                kind: fault.kind,
                what: "a magnitude in (0, 1]: the share of capacity left",
            });
        }
        if fault.kind.is_sensor() {
            let m = fault.metric.ok_or(WorldError::FaultIncomplete {
                kind: fault.kind,
                what: "a sensor (metric)",
            })?;
            if !Self::sensors_of(d).contains(&m) {
                return Err(WorldError::NoSuchSensor {
                    device: fault.device.to_string(),
                    kind,
                    metric: m.name(),
                });
            }
            if matches!(fault.kind, FaultKind::SensorOffset | FaultKind::SensorDrift)
                && !(fault.magnitude.is_finite() && fault.magnitude != 0.0)
            {
                return Err(WorldError::FaultIncomplete {
                    kind: fault.kind,
                    what: "a finite, non-zero magnitude",
                });
            }
            if fault.kind == FaultKind::SensorNoise
                && !(fault.magnitude.is_finite() && fault.magnitude > 0.0)
            {
                return Err(WorldError::FaultIncomplete {
                    kind: fault.kind,
                    what: "a positive magnitude (the noise's standard deviation)",
                });
            }
            frozen_value = Some(self.true_value(d, m));
        }
        self.apply_fault_flag(d, fault.kind, true, fault.magnitude);
        let rec = FaultRecord {
            id: self.next_fault_id,
            fault,
            active: true,
            injected_at_ms: self.time_ms(),
            cleared_at_ms: None,
            frozen_value,
        };
        self.next_fault_id += 1;
        self.faults.push(rec.clone());
        Ok(rec)
    }

    pub fn clear_fault(&mut self, id: u64) -> Result<FaultRecord, WorldError> {
        let now = self.time_ms();
        let idx = self
            .faults
            .iter()
            .position(|f| f.id == id)
            .ok_or(WorldError::UnknownFault(id))?;
        if !self.faults[idx].active {
            return Err(WorldError::AlreadyCleared(id));
        }
        self.faults[idx].active = false;
        self.faults[idx].cleared_at_ms = Some(now);
        let rec = self.faults[idx].clone();
        if rec.fault.kind.is_pipe() {
            self.apply_pipe_faults(&rec.fault.device);
            return Ok(rec);
        }
        let (_, d) = self.device(rec.fault.device.as_str())?;
        match self.faults.iter().rev().find(|f| {
            f.active && f.fault.device == rec.fault.device && f.fault.kind == rec.fault.kind
        }) {
            // Another active fault of the same kind keeps its effect.
            Some(other) => {
                let m = other.fault.magnitude;
                self.apply_fault_flag(d, rec.fault.kind, true, m)
            }
            None => self.apply_fault_flag(d, rec.fault.kind, false, 0.0),
        }
        Ok(rec)
    }

    fn apply_fault_flag(&mut self, d: DeviceRef, kind: FaultKind, on: bool, magnitude: f64) {
        let st = &mut self.engine.state;
        match (kind, d) {
            (FaultKind::StuckValve, DeviceRef::Substation(i)) => st.substations[i].valve_stuck = on,
            (FaultKind::StuckValve, DeviceRef::Building(i, j)) => {
                st.substations[i].buildings[j].valve_stuck = on
            }
            (FaultKind::PumpTrip, DeviceRef::Substation(i)) => st.substations[i].pump_tripped = on,
            (FaultKind::PumpTrip, DeviceRef::Plant(i)) => st.plants[i].pump_tripped = on,
            (FaultKind::PlantTrip, DeviceRef::Plant(i)) => st.plants[i].tripped = on,
            (FaultKind::PlantDerate, DeviceRef::Plant(i)) => {
                st.plants[i].capacity_factor = if on { magnitude } else { 1.0 }
            }
            (FaultKind::IllegalDraining, DeviceRef::Building(i, j)) => {
                st.substations[i].buildings[j].drain_kg_s = if on { magnitude } else { 0.0 }
            }
            _ => {}
        }
    }
}

impl World {
    fn inject_pipe_fault(&mut self, fault: Fault) -> Result<FaultRecord, WorldError> {
        let pipe = self
            .engine
            .pipe_index(fault.device.as_str())
            .ok_or_else(|| WorldError::UnknownPipe(fault.device.to_string()))?;
        let area_mm2 = self.engine.pipe_area_m2(pipe) * 1.0e6;
        match fault.kind {
            FaultKind::SupplyLeak | FaultKind::ReturnLeak
                if !(fault.magnitude.is_finite()
                    && fault.magnitude > 0.0
                    && fault.magnitude <= area_mm2) =>
            {
                return Err(WorldError::FaultIncomplete {
                    kind: fault.kind,
                    what: "a magnitude in (0, pipe cross-section]: the hole's area, mm²",
                });
            }
            FaultKind::PipeBurst
                if !(fault.magnitude.is_finite()
                    && (0.0..=10_080.0).contains(&fault.magnitude)) =>
            {
                return Err(WorldError::FaultIncomplete {
                    kind: fault.kind,
                    what: "a magnitude in 0..10080: minutes until the section is isolated (0: when cleared)",
                });
            }
            _ => {}
        }
        let rec = FaultRecord {
            id: self.next_fault_id,
            fault,
            active: true,
            injected_at_ms: self.time_ms(),
            cleared_at_ms: None,
            frozen_value: None,
        };
        self.next_fault_id += 1;
        self.faults.push(rec.clone());
        self.apply_pipe_faults(&rec.fault.device);
        Ok(rec)
    }

    /// Sets a pipe's leaks and isolation from the active faults aimed at it
    /// (the latest of each kind wins).
    fn apply_pipe_faults(&mut self, pipe_id: &NodeId) {
        let Some(pipe) = self.engine.pipe_index(pipe_id.as_str()) else {
            return;
        };
        let area_m2 = self.engine.pipe_area_m2(pipe);
        let active = |kind: FaultKind| {
            self.faults
                .iter()
                .rev()
                .find(|f| f.active && f.fault.kind == kind && &f.fault.device == pipe_id)
                .cloned()
        };
        let supply = active(FaultKind::SupplyLeak);
        let ret = active(FaultKind::ReturnLeak);
        let burst = active(FaultKind::PipeBurst);
        let isolated = active(FaultKind::SectionIsolated).is_some();
        self.engine.clear_leak(pipe, Side::Supply);
        self.engine.clear_leak(pipe, Side::Return);
        if let Some(r) = ret {
            self.engine
                .set_leak(pipe, Side::Return, r.fault.magnitude * 1.0e-6, None);
        }
        let burst_isolated = match (&burst, &supply) {
            (Some(b), _) => {
                let isolate_at = (b.fault.magnitude > 0.0)
                    .then(|| b.injected_at_ms + (b.fault.magnitude * 60_000.0) as i64);
                self.engine.set_leak(
                    pipe,
                    Side::Supply,
                    physics::engine::BURST_AREA_SHARE * area_m2,
                    isolate_at,
                );
                isolate_at.is_some_and(|t| self.time_ms() >= t)
            }
            (None, Some(s)) => {
                self.engine
                    .set_leak(pipe, Side::Supply, s.fault.magnitude * 1.0e-6, None);
                false
            }
            (None, None) => false,
        };
        self.engine.state.pipes[pipe].isolated = isolated || burst_isolated;
    }
}

/// A sensor's own key for its measurement noise (FNV-1a of device and metric).
fn sensor_key(device: &str, m: Metric) -> u64 {
    device
        .bytes()
        .chain([0])
        .chain(m.name().bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// A standard normal value determined by (seed, fault, time): replayable noise
/// (Box–Muller on two hashed uniforms).
fn seeded_normal(seed: u64, fault_id: u64, time_ms: i64) -> f64 {
    let mix = |mut x: u64| {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    };
    let h = mix(seed ^ mix(fault_id ^ mix(time_ms as u64)));
    let u1 = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let u2 = ((mix(h) >> 11) as f64) / (1u64 << 53) as f64;
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        World::new(Network::sample("demo").unwrap())
    }

    fn read(w: &World, dev: &str, m: Metric) -> f64 {
        w.read_sensors(dev)
            .unwrap()
            .iter()
            .find(|r| r.metric == m)
            .unwrap()
            .value
    }

    #[test]
    fn the_forecast_is_hourly_from_the_next_full_hour_and_near_the_truth_early() {
        let w = world();
        let now = w.time_ms();
        let (issued, pts) = w.forecast(72);
        assert_eq!(issued, now);
        assert_eq!(pts.len(), 72);
        let h = 3_600_000;
        assert!(pts[0].time_ms > now && pts[0].time_ms - now <= h);
        assert_eq!(pts[0].time_ms % h, 0);
        assert!(pts.windows(2).all(|p| p[1].time_ms - p[0].time_ms == h));
        // Error σ grows 1/24 K per hour of lead: within 1 h it is below 0.5 K.
        let truth = w.weather.outdoor_temp_c(pts[0].time_ms);
        assert!((pts[0].outdoor_temp_c - truth).abs() < 0.5);
        assert!(pts.iter().all(|p| p.solar_w_m2.is_some_and(|s| s >= 0.0)));
        // Validated by the same rules as any forecast.
        assert!(model::Forecast::new("sim", issued, &pts).is_ok());
    }

    #[test]
    fn actuators_move_the_physics() {
        let mut w = world();
        w.write_actuators(
            "s01",
            &[ActuatorWrite {
                actuator: Actuator::PrimaryValve,
                value: 1.0,
            }],
        )
        .unwrap();
        for _ in 0..30 {
            w.step(10.0).unwrap();
        }
        assert!((read(&w, "s01", Metric::ValvePosition) - 1.0).abs() < 1e-9);
        assert!(read(&w, "s01", Metric::HeatW) > 0.0);
        let err = w
            .write_actuators(
                "s01-b01",
                &[ActuatorWrite {
                    actuator: Actuator::PrimaryValve,
                    value: 1.0,
                }],
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "device s01-b01 (Building) has no actuator primary_valve"
        );
        assert_eq!(
            w.read_sensors("nope").unwrap_err().to_string(),
            "device nope does not exist"
        );
    }

    #[test]
    fn sensor_faults_change_readings_and_clear() {
        let mut w = world();
        for _ in 0..10 {
            w.step(10.0).unwrap();
        }
        let f = w
            .inject_fault(Fault {
                kind: FaultKind::SensorOffset,
                device: NodeId::new("s02-b03").unwrap(),
                metric: Some(Metric::RoomTempC),
                magnitude: 5.0,
            })
            .unwrap();
        let truth = w.state().substations[1].buildings[2].air_c;
        assert!((read(&w, "s02-b03", Metric::RoomTempC) - truth - 5.0).abs() < 1e-9);
        w.clear_fault(f.id).unwrap();
        assert!((read(&w, "s02-b03", Metric::RoomTempC) - truth).abs() < 1e-9);
        assert_eq!(
            w.clear_fault(f.id).unwrap_err(),
            WorldError::AlreadyCleared(f.id)
        );
    }

    #[test]
    fn temperature_sensors_carry_the_networks_seeded_noise() {
        let mut net = Network::sample("demo").unwrap();
        net.sensor_noise_k = 0.05;
        let mut w = World::new(net.clone());
        let mut replay = World::new(net);
        let (mut errors, mut last) = (Vec::new(), None);
        for _ in 0..400 {
            w.step(60.0).unwrap();
            replay.step(60.0).unwrap();
            let st = w.state();
            let truth = st.substations[1].buildings[2].air_c;
            let room = read(&w, "s02-b03", Metric::RoomTempC);
            // Replayable: the same seed, sensor and time read the same.
            assert_eq!(room, read(&replay, "s02-b03", Metric::RoomTempC));
            // Each sensor its own noise: two rooms never err alike.
            let other = read(&w, "s02-b04", Metric::RoomTempC);
            let other_truth = st.substations[1].buildings[3].air_c;
            assert_ne!(room - truth, other - other_truth);
            // Never the same bits twice in a row.
            assert_ne!(Some(room), last);
            last = Some(room);
            errors.push(room - truth);
            // Only temperatures: flows and positions read exactly.
            let flow = read(&w, "s02", Metric::FlowKgS);
            assert_eq!(flow, st.substations[1].primary_flow_kg_s);
        }
        let n = errors.len() as f64;
        let mean = errors.iter().sum::<f64>() / n;
        let sd = (errors.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((sd - 0.05).abs() < 0.01, "sd {sd}");
    }

    #[test]
    fn a_network_without_sensor_noise_reads_its_truth_exactly() {
        let mut w = world();
        w.step(60.0).unwrap();
        assert_eq!(w.net.sensor_noise_k, 0.0);
        let truth = w.state().substations[1].buildings[2].air_c;
        assert_eq!(read(&w, "s02-b03", Metric::RoomTempC), truth);
    }

    fn sensor_fault(kind: FaultKind, dev: &str, m: Metric, magnitude: f64) -> Fault {
        Fault {
            kind,
            device: NodeId::new(dev).unwrap(),
            metric: Some(m),
            magnitude,
        }
    }

    #[test]
    fn drift_grows_with_time_noise_is_seeded_and_dropout_removes_the_reading() {
        let mut w = world();
        w.inject_fault(sensor_fault(
            FaultKind::SensorDrift,
            "s01",
            Metric::SecondarySupplyTempC,
            2.0,
        ))
        .unwrap();
        let noise = w
            .inject_fault(sensor_fault(
                FaultKind::SensorNoise,
                "s02-b01",
                Metric::RoomTempC,
                0.5,
            ))
            .unwrap();
        w.inject_fault(sensor_fault(
            FaultKind::SensorDropout,
            "s03",
            Metric::SecondarySupplyTempC,
            0.0,
        ))
        .unwrap();
        // Two hours later the drift is 4 K.
        for _ in 0..720 {
            w.step(10.0).unwrap();
        }
        let truth = w.state().substations[0].secondary_supply_c;
        assert!((read(&w, "s01", Metric::SecondarySupplyTempC) - truth - 4.0).abs() < 1e-9);
        assert!(
            !w.read_sensors("s03")
                .unwrap()
                .iter()
                .any(|r| r.metric == Metric::SecondarySupplyTempC)
        );
        assert_eq!(
            w.read_sensors("s03").unwrap().len(),
            model::hardware::sensors(NodeKind::Substation).len() - 1
        );
        // Noise: same seed, fault and time give the same value; over many
        // instants its spread is the magnitude.
        let samples: Vec<f64> = (0..4000)
            .map(|t| 0.5 * seeded_normal(w.net.weather.seed, noise.id, t * 1000))
            .collect();
        assert_eq!(seeded_normal(1, 2, 3), seeded_normal(1, 2, 3));
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        let sd =
            (samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / samples.len() as f64).sqrt();
        assert!(
            mean.abs() < 0.03 && (sd - 0.5).abs() < 0.03,
            "mean {mean}, sd {sd}"
        );
    }

    #[test]
    fn a_derated_plant_delivers_less_and_recovers_when_cleared() {
        let mut w = world();
        for s in w.engine.state.substations.iter_mut() {
            s.valve_command = 1.0;
        }
        for _ in 0..360 {
            w.step(10.0).unwrap();
        }
        let full = read(&w, "plant-a", Metric::HeatW);
        let f = w
            .inject_fault(Fault {
                kind: FaultKind::PlantDerate,
                device: NodeId::new("plant-a").unwrap(),
                metric: None,
                magnitude: 0.5,
            })
            .unwrap();
        for _ in 0..360 {
            w.step(10.0).unwrap();
        }
        let derated = read(&w, "plant-a", Metric::HeatW);
        // The plant sets its supply temperature from the return it saw last
        // step, so it may exceed its limit by what the return moved since.
        assert!(derated <= 0.5 * 16.0e6 * (1.0 + 1e-4), "{derated}");
        assert!(derated < full, "{derated} vs {full}");
        w.clear_fault(f.id).unwrap();
        assert_eq!(w.state().plants[0].capacity_factor, 1.0);
        let bad = w.inject_fault(Fault {
            kind: FaultKind::PlantDerate,
            device: NodeId::new("plant-a").unwrap(),
            metric: None,
            magnitude: 1.5,
        });
        assert!(matches!(bad, Err(WorldError::FaultIncomplete { .. })));
    }

    #[test]
    fn faults_on_missing_or_wrong_devices_are_refused() {
        let mut w = world();
        let f = |kind, dev: &str, metric| Fault {
            kind,
            device: NodeId::new(dev).unwrap(),
            metric,
            magnitude: 1.0,
        };
        assert_eq!(
            w.inject_fault(f(FaultKind::PumpTrip, "s99", None))
                .unwrap_err()
                .to_string(),
            "device s99 does not exist"
        );
        assert_eq!(
            w.inject_fault(f(FaultKind::PlantTrip, "s01", None))
                .unwrap_err()
                .to_string(),
            "fault PlantTrip does not apply to device s01 (Substation)"
        );
        assert_eq!(
            w.inject_fault(f(FaultKind::SensorFrozen, "s01", Some(Metric::RoomTempC)))
                .unwrap_err()
                .to_string(),
            "device s01 (Substation) has no sensor room_temp_c"
        );
        assert!(w.faults().is_empty());
    }

    #[test]
    fn pump_trip_stops_heat_and_snapshot_restores() {
        let mut w = world();
        let rec = w
            .inject_fault(Fault {
                kind: FaultKind::PumpTrip,
                device: NodeId::new("s03").unwrap(),
                metric: None,
                magnitude: 0.0,
            })
            .unwrap();
        w.step(10.0).unwrap();
        assert_eq!(read(&w, "s03", Metric::HeatW), 0.0);
        assert_eq!(read(&w, "s03", Metric::PumpRunning), 0.0);
        let snap = w.snapshot();
        let mut again = world();
        again.restore(snap.clone()).unwrap();
        assert_eq!(again.snapshot(), snap);
        again.clear_fault(rec.id).unwrap();
        again.step(10.0).unwrap();
        assert_eq!(read(&again, "s03", Metric::PumpRunning), 1.0);
    }

    #[test]
    fn a_solar_plant_reports_its_tank_and_collectors_and_its_heat_costs_nothing() {
        let net = Network::sample("solar").unwrap();
        let mut w = World::new(net.clone());
        let has =
            |w: &World, dev: &str, m| w.read_sensors(dev).unwrap().iter().any(|r| r.metric == m);
        // A day in 10-minute steps under the network's own (partly cloudy) weather.
        let (mut sunniest_w, mut solar_j, mut fuel_cost) = (0.0_f64, 0.0, 0.0);
        for _ in 0..144 {
            w.step(600.0).unwrap();
            let k = 2;
            let s = w.state().plants[k].solar.clone().unwrap();
            assert_eq!(read(&w, "solar-east", Metric::TankTempC), s.tank_temp_c);
            assert_eq!(
                read(&w, "solar-east", Metric::CollectorHeatW),
                s.collector_heat_w
            );
            assert_eq!(
                read(&w, "solar-east", Metric::HeatW),
                w.state().plants[k].heat_w
            );
            sunniest_w = sunniest_w.max(s.collector_heat_w);
            solar_j += w.state().plants[k].heat_w.max(0.0) * 600.0;
            for (p, ps) in net.plants.iter().zip(&w.state().plants).take(2) {
                fuel_cost += ps.heat_w.max(0.0) * 600.0 / 1e9 * p.heat_price_yuan_per_gj;
            }
        }
        assert!(sunniest_w > 1.0e6, "collectors never above {sunniest_w} W");
        assert!(solar_j > 0.0, "the solar plant never delivered");
        // Fuelled plants have no tank or collectors: those readings are missing.
        assert!(!has(&w, "chp-north", Metric::TankTempC));
        assert!(!has(&w, "boiler-south", Metric::CollectorHeatW));
        // The scorecard books the solar heat, at no cost.
        let card = w.scorecard();
        let solar_booked: f64 = card.days.iter().map(|d| d.plant_j[2]).sum();
        assert!((solar_booked - solar_j).abs() < 1e-6 * solar_j);
        assert!((card.cost_yuan - fuel_cost).abs() < 1e-6 * fuel_cost);
        assert!(
            card.worst_energy_residual <= 1e-3,
            "{}",
            card.worst_energy_residual
        );
    }

    #[test]
    fn a_leak_shows_as_make_up_at_the_holding_plant_and_a_pressure_loss_nearby() {
        let mut w = World::new(Network::sample("ring").unwrap());
        for _ in 0..60 {
            w.step(10.0).unwrap();
        }
        // chp-north hosts the ring's pressure-holding point; boiler-south does not.
        let has = |dev: &str, m| w.read_sensors(dev).unwrap().iter().any(|r| r.metric == m);
        assert!(has("chp-north", Metric::MakeupFlowKgS));
        assert!(!has("boiler-south", Metric::MakeupFlowKgS));
        assert!(!has("boiler-south", Metric::HoldingPressurePa));
        assert!((read(&w, "chp-north", Metric::HoldingPressurePa) - 2.5e5).abs() < 1.0);
        assert!(read(&w, "chp-north", Metric::MakeupFlowKgS).abs() < 1e-6);
        let sup = |w: &World, d| read(w, d, Metric::SupplyPressurePa);
        let before: Vec<f64> = ["r1", "r2", "r3", "r4"]
            .iter()
            .map(|d| sup(&w, d))
            .collect();
        assert!(
            before
                .iter()
                .all(|p| *p > read(&w, "r1", Metric::ReturnPressurePa))
        );
        w.inject_fault(Fault {
            kind: FaultKind::SupplyLeak,
            device: NodeId::new("p-e-se").unwrap(),
            metric: None,
            magnitude: 200.0,
        })
        .unwrap();
        for _ in 0..6 {
            w.step(10.0).unwrap();
        }
        let makeup = read(&w, "chp-north", Metric::MakeupFlowKgS);
        assert!(makeup > 1.0, "make-up {makeup}");
        // The plant returns less than it sends: the make-up fed there.
        let gap =
            read(&w, "chp-north", Metric::FlowKgS) - read(&w, "chp-north", Metric::ReturnFlowKgS);
        assert!((gap - makeup).abs() < 1e-9);
        // The hole sits at j-south-east (r2): r2 lost the most supply pressure.
        let lost: Vec<f64> = ["r1", "r2", "r3", "r4"]
            .iter()
            .zip(&before)
            .map(|(d, b)| b - sup(&w, d))
            .collect();
        assert!(
            lost[1] > lost[0] && lost[1] > lost[2] && lost[1] > lost[3],
            "{lost:?}"
        );
    }

    #[test]
    fn pipe_faults_leak_burst_isolate_and_refuse_unknown_pipes() {
        let mut w = World::new(Network::sample("ring").unwrap());
        let fault = |kind, device: &str, magnitude| Fault {
            kind,
            device: NodeId::new(device).unwrap(),
            metric: None,
            magnitude,
        };
        let err = w
            .inject_fault(fault(FaultKind::SupplyLeak, "p-nowhere", 100.0))
            .unwrap_err();
        assert!(matches!(err, WorldError::UnknownPipe(_)), "{err}");
        let err = w
            .inject_fault(fault(FaultKind::SupplyLeak, "p-n-e", 1.0e9))
            .unwrap_err();
        assert!(err.to_string().contains("mm²"), "{err}");
        let err = w
            .inject_fault(fault(FaultKind::IllegalDraining, "r1", 1.0))
            .unwrap_err();
        assert!(
            matches!(err, WorldError::FaultNotApplicable { .. }),
            "{err}"
        );

        let leak = w
            .inject_fault(fault(FaultKind::SupplyLeak, "p-e-se", 200.0))
            .unwrap();
        for _ in 0..12 {
            w.step(10.0).unwrap();
        }
        let st = w.state();
        assert!(st.balance.leak_kg_s > 1.0 && st.holdings[0].makeup_kg_s > 1.0);
        w.clear_fault(leak.id).unwrap();
        w.step(10.0).unwrap();
        assert!(w.state().balance.leak_kg_s == 0.0);

        let iso = w
            .inject_fault(fault(FaultKind::SectionIsolated, "p-c-n", 0.0))
            .unwrap();
        w.step(10.0).unwrap();
        let k = w.engine.pipe_index("p-c-n").unwrap();
        assert!(w.state().pipes[k].isolated);
        w.clear_fault(iso.id).unwrap();
        assert!(!w.state().pipes[k].isolated);

        let burst = w
            .inject_fault(fault(FaultKind::PipeBurst, "p-c-se", 1.0))
            .unwrap();
        w.step(10.0).unwrap();
        let k = w.engine.pipe_index("p-c-se").unwrap();
        assert!(!w.state().pipes[k].isolated);
        for _ in 0..6 {
            w.step(10.0).unwrap();
        }
        assert!(
            w.state().pipes[k].isolated,
            "isolated one minute after the burst"
        );
        w.clear_fault(burst.id).unwrap();
        assert!(!w.state().pipes[k].isolated && w.state().leaks.is_empty());

        let drain = w
            .inject_fault(fault(FaultKind::IllegalDraining, "r1-b01", 0.3))
            .unwrap();
        w.step(10.0).unwrap();
        assert!((w.state().substations[0].secondary_makeup_kg_s - 0.3).abs() < 1e-9);
        w.clear_fault(drain.id).unwrap();
        assert_eq!(w.state().substations[0].buildings[0].drain_kg_s, 0.0);
    }
}
