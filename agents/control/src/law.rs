//! Control laws of plants, substations and buildings. Pure and deterministic.

use model::{
    Action, Actuator, ActuatorWrite, Command, Metric, Mode, NodeKind, Reading, SupplyCurve,
};
use serde::{Deserialize, Serialize};

use crate::actuator::{ValveFault, ValveWatch};
use crate::plausibility::{Finding, SensorGuard};

/// Longest manual override accepted, ms (7 days).
pub const MAX_OVERRIDE_MS: i64 = 7 * 24 * 3_600_000;
/// Longest time step a tick may integrate over, s (a longer gap is treated as this).
const MAX_DT_S: f64 = 600.0;

/// What the gateway's link to the optimizer looks like at this tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkState {
    /// The optimizer has been heard from within the fallback window.
    pub optimizer_recent: bool,
}

/// One scan's worth of input for one actor.
#[derive(Clone, Debug)]
pub struct TickInput {
    /// Network time of the readings, Unix ms.
    pub time_ms: i64,
    /// The actor's device readings; `None` when the scan did not return the device.
    pub readings: Option<Vec<Reading>>,
    pub link: LinkState,
}

/// What one tick decided.
#[derive(Clone, Debug, PartialEq)]
pub struct TickOutput {
    pub writes: Vec<ActuatorWrite>,
    pub mode: Mode,
    /// Readings to report upstream (the plausible device readings plus the active setpoint).
    pub readings: Vec<Reading>,
    /// Readings withheld as implausible at this tick (active `sensor_implausible` alarms).
    pub implausible: Vec<Finding>,
    /// The node's valve not following its commands (an active `valve_stuck` alarm).
    pub valve_fault: Option<ValveFault>,
}

/// Static configuration of one actor, from the gateway's configuration file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub id: model::NodeId,
    pub kind: NodeKind,
    /// Buildings: their substation.
    #[serde(default)]
    pub parent: Option<model::NodeId>,
    /// Substations: supply-curve group.
    #[serde(default)]
    pub group: Option<String>,
    /// Plants and substations: accepted supply setpoint range, °C.
    #[serde(default)]
    pub supply_limits_c: Option<(f64, f64)>,
    /// Plants and substations: the curve to fall back on until the optimizer sends one.
    #[serde(default)]
    pub fallback_curve: Option<SupplyCurve>,
    /// Fastest setpoint change applied, K per minute of network time.
    #[serde(default = "default_rate")]
    pub max_setpoint_rate_k_per_min: f64,
    /// Substations: highest primary return temperature allowed, °C; above it the
    /// return limiter closes the primary valve (the lower of the two loops wins).
    #[serde(default)]
    pub return_limit_c: Option<f64>,
    /// Plants: pump head, substations: secondary differential pressure, Pa,
    /// held by the pump's speed. Absent: the pump runs at its rated speed.
    #[serde(default)]
    pub pump_dp_setpoint_pa: Option<f64>,
}

fn default_rate() -> f64 {
    2.0
}

/// Longest scan a loop's gains are tuned for by default, s. Temperature and
/// pressure processes settle within about a minute; a longer scan (a lockstep
/// simulation's 300 s steps, a slow bus) sees a process already settled, and
/// the full gain on it overshoots every scan: a valve banged between shut and
/// 80 % open at 300 s steps. Beyond this, the step's action is scaled by
/// `max_dt_s / dt_s`: a long scan moves the output no more than a scan of
/// `max_dt_s` would.
pub const SAMPLED_MAX_DT_S: f64 = 60.0;

fn default_max_dt_s() -> f64 {
    SAMPLED_MAX_DT_S
}

/// PI controller, positional form, with conditional integration (anti-windup).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pi {
    pub kp: f64,
    pub ti_s: f64,
    pub out_min: f64,
    pub out_max: f64,
    pub integral: f64,
    /// Scans longer than this act as if this long (see [`SAMPLED_MAX_DT_S`]).
    #[serde(default = "default_max_dt_s")]
    pub max_dt_s: f64,
    /// The proportional gain of the last step, after gain scheduling and
    /// long-scan scaling: [`Pi::track`] must use the gain the next step
    /// will, or the handed-over output is off by the difference.
    #[serde(default)]
    pub last_kp: Option<f64>,
}

impl Pi {
    pub fn new(kp: f64, ti_s: f64, out_min: f64, out_max: f64, initial_out: f64) -> Self {
        Self {
            kp,
            ti_s,
            out_min,
            out_max,
            integral: initial_out,
            max_dt_s: SAMPLED_MAX_DT_S,
            last_kp: None,
        }
    }

    /// The same loop tuned for scans up to `max_dt_s` (a slow loop whose
    /// process takes longer than [`SAMPLED_MAX_DT_S`] to settle).
    pub fn with_max_dt_s(mut self, max_dt_s: f64) -> Self {
        self.max_dt_s = max_dt_s;
        self
    }

    /// One step: returns the clamped output. The integral does not grow while
    /// the output is saturated in the direction of the error.
    pub fn step(&mut self, setpoint: f64, measured: f64, dt_s: f64) -> f64 {
        self.step_with_gain(setpoint, measured, dt_s, 1.0)
    }

    /// One step with the gain scaled by `gain` (gain scheduling).
    pub fn step_with_gain(&mut self, setpoint: f64, measured: f64, dt_s: f64, gain: f64) -> f64 {
        let long_scan = if dt_s > self.max_dt_s {
            self.max_dt_s / dt_s
        } else {
            1.0
        };
        let kp = self.kp * gain * long_scan;
        self.last_kp = Some(kp);
        let e = setpoint - measured;
        let p = kp * e;
        let candidate = self.integral + kp * dt_s / self.ti_s * e;
        let unsat = p + candidate;
        let saturating_high = unsat > self.out_max && e > 0.0;
        let saturating_low = unsat < self.out_min && e < 0.0;
        if !(saturating_high || saturating_low) {
            self.integral = candidate;
        }
        // Keep the integral itself inside the output range.
        self.integral = self.integral.clamp(self.out_min, self.out_max);
        (p + self.integral).clamp(self.out_min, self.out_max)
    }
}

impl Pi {
    /// Bumpless transfer: sets the integral so that the next output, at this
    /// error, equals `output` (the output another loop or mode produced),
    /// with the proportional gain of the last step (gain-scheduled, scaled
    /// for long scans; the nominal gain before any step). With the nominal
    /// gain instead, a loop whose scheduled gain is a tenth of it tracked
    /// far above the output and never took its valve back.
    pub fn track(&mut self, output: f64, setpoint: f64, measured: f64) {
        let p = self.last_kp.unwrap_or(self.kp) * (setpoint - measured);
        self.integral = (output - p).clamp(self.out_min, self.out_max);
    }
}

/// Moves `current` toward `target` by at most `rate_per_s·dt_s`.
pub fn ramp(current: f64, target: f64, rate_per_s: f64, dt_s: f64) -> f64 {
    let step = rate_per_s * dt_s;
    current + (target - current).clamp(-step, step)
}

fn get(readings: &[Reading], m: Metric) -> Option<f64> {
    readings.iter().find(|r| r.metric == m).map(|r| r.value)
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Override {
    pub supply_temp_c: f64,
    pub expires_at_ms: i64,
}

/// Where a plant's or substation's supply setpoint comes from, and the command
/// handling that changes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetpointSource {
    pub limits_c: (f64, f64),
    pub rate_k_per_s: f64,
    pub curve: SupplyCurve,
    pub curve_version: u64,
    pub optimizer_setpoint_c: Option<f64>,
    pub override_: Option<Override>,
    /// Version of the last command applied.
    pub last_version: u64,
    pub mode: Mode,
    /// The ramped setpoint the loop follows.
    pub active_c: Option<f64>,
    pub last_time_ms: Option<i64>,
}

impl SetpointSource {
    fn new(limits_c: (f64, f64), rate_k_per_min: f64, curve: SupplyCurve) -> Self {
        Self {
            limits_c,
            rate_k_per_s: rate_k_per_min / 60.0,
            curve,
            curve_version: 0,
            optimizer_setpoint_c: None,
            override_: None,
            last_version: 0,
            mode: Mode::Fallback,
            active_c: None,
            last_time_ms: None,
        }
    }

    /// Seconds since the previous tick (0 on the first), bounded.
    fn dt_s(&mut self, time_ms: i64) -> f64 {
        let dt = match self.last_time_ms {
            Some(t) if time_ms > t => ((time_ms - t) as f64 / 1000.0).min(MAX_DT_S),
            _ => 0.0,
        };
        if self.last_time_ms.is_none_or(|t| time_ms > t) {
            self.last_time_ms = Some(time_ms);
        }
        dt
    }

    /// Advances to this tick: picks the mode the setpoint comes from and moves
    /// the active setpoint toward it. Returns (dt, setpoint, mode); the caller
    /// settles the final mode with [`Self::set_mode`].
    fn advance(&mut self, input: &TickInput, readings: &[Reading]) -> (f64, f64, Mode) {
        let time_ms = input.time_ms;
        let dt_s = self.dt_s(time_ms);
        if let Some(o) = self.override_
            && time_ms >= o.expires_at_ms
        {
            tracing::info!(expired_at_ms = o.expires_at_ms, "override expired");
            self.override_ = None;
        }
        let (mode, target) = match (self.override_, self.optimizer_setpoint_c) {
            (Some(o), _) => (Mode::Override, o.supply_temp_c),
            (None, Some(sp)) if input.link.optimizer_recent => (Mode::Optimizer, sp),
            _ => {
                let t = match get(readings, Metric::OutdoorTempC) {
                    Some(t_out) => self.curve.supply_temp_c(t_out),
                    // No outdoor reading: hold what we have, else the curve's top (safe side).
                    None => self.active_c.unwrap_or(self.curve.max_supply_temp_c()),
                };
                (Mode::Fallback, t)
            }
        };
        let target = target.clamp(self.limits_c.0, self.limits_c.1);
        let active = match self.active_c {
            None => target,
            Some(a) => ramp(a, target, self.rate_k_per_s, dt_s),
        };
        self.active_c = Some(active);
        (dt_s, active, mode)
    }

    fn set_mode(&mut self, mode: Mode) {
        if mode != self.mode {
            tracing::info!(from = ?self.mode, to = ?mode, "mode change");
            self.mode = mode;
        }
    }

    /// Validates a command against this node's limits and applies it whole, or not at all.
    fn check_version(&self, cmd: &Command) -> Result<(), String> {
        if cmd.version <= self.last_version {
            return Err(format!(
                "stale command: version {} is not newer than the last applied version {}",
                cmd.version, self.last_version
            ));
        }
        Ok(())
    }

    fn command(&mut self, cmd: &Command) -> Result<(), String> {
        self.check_version(cmd)?;
        let (lo, hi) = self.limits_c;
        let check = |field: &str, t: f64| {
            if t.is_finite() && t >= lo && t <= hi {
                Ok(t)
            } else {
                Err(format!(
                    "{field} {t} °C is outside this node's limits {lo}..{hi} °C"
                ))
            }
        };
        match &cmd.action {
            Action::SetSupplyTemp { supply_temp_c } => {
                self.optimizer_setpoint_c = Some(check("supply_temp_c", *supply_temp_c)?);
            }
            Action::SetCurve {
                curve,
                curve_version,
            } => {
                let checked = SupplyCurve::new(
                    curve.points().to_vec(),
                    curve.min_supply_temp_c(),
                    curve.max_supply_temp_c(),
                    self.limits_c,
                )
                .map_err(|e| format!("curve: {e}"))?;
                self.curve = checked;
                self.curve_version = *curve_version;
            }
            Action::SetOverride {
                supply_temp_c,
                expires_at_ms,
            } => {
                let t = check("supply_temp_c", *supply_temp_c)?;
                let now = self.last_time_ms.unwrap_or(0);
                if *expires_at_ms <= now {
                    return Err(format!(
                        "override expires at {expires_at_ms} ms, which is not after the node's current time {now} ms"
                    ));
                }
                if *expires_at_ms - now > MAX_OVERRIDE_MS {
                    return Err(format!(
                        "override lasts {} h; at most {} h",
                        (*expires_at_ms - now) / 3_600_000,
                        MAX_OVERRIDE_MS / 3_600_000
                    ));
                }
                self.override_ = Some(Override {
                    supply_temp_c: t,
                    expires_at_ms: *expires_at_ms,
                });
            }
            Action::ClearOverride => self.override_ = None,
            Action::SetHeatOutput { .. } | Action::SetPumpHead { .. } => {
                return Err(format!(
                    "{} is for plants: this node takes supply temperatures only",
                    cmd.action.name()
                ));
            }
        }
        self.last_version = cmd.version;
        Ok(())
    }
}

/// Secondary supply temperature held by a PI loop on the primary control valve,
/// with an optional primary return-temperature limiter (min-select).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubstationCtl {
    pub source: SetpointSource,
    pub pi: Pi,
    /// Valve opening used when the supply sensor has failed.
    pub safe_valve: f64,
    pub last_valve: f64,
    /// Return limiter: reverse-acting PI on the primary return temperature.
    #[serde(default)]
    pub return_limit: Option<ReturnLimit>,
    #[serde(default)]
    pub guard: SensorGuard,
    /// Largest secondary flow seen, kg/s: the reference of the gain schedule.
    #[serde(default)]
    pub flow_ref_kg_s: f64,
    /// Secondary pump speed holding the secondary differential pressure.
    #[serde(default)]
    pub pump: Option<PumpDp>,
    /// Does the primary valve follow its commands?
    #[serde(default)]
    pub valve_watch: ValveWatch,
}

/// The loop gain of the secondary supply temperature on the primary valve
/// grows as the secondary flow falls (buildings throttling): the PI's gain is
/// scaled by the flow against the largest flow seen, so that the loop stays
/// stable at low load. Returns the scale, within [`MIN_GAIN_SCALE`, 1].
fn flow_gain(flow_ref_kg_s: &mut f64, readings: &[Reading]) -> f64 {
    match get(readings, Metric::SecondaryFlowKgS) {
        Some(m) if m > 0.0 => {
            *flow_ref_kg_s = flow_ref_kg_s.max(m);
            (m / *flow_ref_kg_s).clamp(MIN_GAIN_SCALE, 1.0)
        }
        _ => 1.0,
    }
}

/// Smallest scale of the substation loop's gain.
pub const MIN_GAIN_SCALE: f64 = 0.1;

/// Smallest valve opening the return limiter commands (keeps water, and so the
/// return measurement, moving).
pub const RETURN_LIMIT_MIN_VALVE: f64 = 0.05;
/// Primary flow below which the return temperature is not used, kg/s.
pub const MIN_FLOW_KG_S: f64 = 0.01;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReturnLimit {
    pub limit_c: f64,
    pub pi: Pi,
    /// The limiter drove the valve at the last tick.
    pub active: bool,
}

/// Plant supply temperature setpoint (the plant's own boiler control holds it) and pump.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlantCtl {
    pub source: SetpointSource,
    #[serde(default)]
    pub guard: SensorGuard,
    /// Pump speed holding the plant's head.
    #[serde(default)]
    pub pump: Option<PumpDp>,
    /// What the optimizer's dispatch asks of the pump; followed while the
    /// optimizer is heard from, else the configured loop (or rated speed) runs.
    #[serde(default)]
    pub dispatch: Option<PlantDispatch>,
    /// Pump speed written at the last tick (bumpless hand-overs).
    #[serde(default = "one")]
    pub last_speed: f64,
}

fn one() -> f64 {
    1.0
}

/// The optimizer's dispatch of a plant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlantDispatch {
    /// Make this much heat: the pump speed tracks the measured heat output
    /// (more flow at the plant's supply temperature, more heat), smoothed
    /// over [`HEAT_FILTER_TAU_S`] (`heat_seen_w`). 0: pump off.
    Heat {
        heat_w: f64,
        pi: Pi,
        #[serde(default)]
        heat_seen_w: Option<f64>,
    },
    /// The lead plant: hold this pump head and take the balance.
    Head(PumpDp),
}

/// Reset time of the heat-output loop, s: slow against the lead plant's head
/// loop (120 s), so that the two plants' pumps do not chase each other.
pub const HEAT_LOOP_TI_S: f64 = 900.0;
/// Gain of the heat-output loop: pump speed per unit of heat error relative
/// to the larger of the order and the measured heat.
pub const HEAT_LOOP_GAIN: f64 = 0.2;
/// Time constant over which the heat-output loop smooths the plant's heat
/// reading, s. Two plants joined by open tie lines near their pumps' shut-off
/// heads take the flow from each other on a small difference of speed: the
/// raw reading then swung between nothing and the whole load from one 300 s
/// step to the next, and the loop's proportional part, answering each swing
/// with a fifth of the pump's speed, kept the swing going (found on the city
/// with the gas boiler standing by: `chp-east` read 0, 185, 0, 157 MW on an
/// order of 103 MW, and the optimizer took the swings for a lost plant). The
/// smoothed reading passes a quarter of such a swing at 300 s steps.
pub const HEAT_FILTER_TAU_S: f64 = 600.0;
/// A dispatched plant whose supply is this far under its setpoint while it
/// carries water has its heat source at a limit; its heat loop then holds or
/// slows the pump, never speeds it up, K.
/// (Found on the city: `boiler-south` at its 237 MW nameplate, ordered more,
/// sped its pump up until its outlet fell 16 K under the setpoint, which
/// cooled its district and looked like a trip.)
pub const HEAT_LOOP_SOURCE_SHORT_K: f64 = 3.0;
/// A plant carries water, for that rule, while its flow at the setpoint's
/// lift would carry at least this share of its order.
pub const HEAT_LOOP_CIRCULATING_SHARE: f64 = 0.1;

impl PlantCtl {
    fn command(&mut self, cmd: &Command) -> Result<(), String> {
        match cmd.action {
            Action::SetHeatOutput { heat_w } => {
                self.source.check_version(cmd)?;
                if !(heat_w.is_finite()
                    && (0.0..=model::command::MAX_HEAT_OUTPUT_W).contains(&heat_w))
                {
                    return Err(format!(
                        "heat_w {heat_w} W is outside 0..{} W",
                        model::command::MAX_HEAT_OUTPUT_W
                    ));
                }
                match &mut self.dispatch {
                    Some(PlantDispatch::Heat { heat_w: h, .. }) => *h = heat_w,
                    _ => {
                        // 10 % heat error moves the speed by 2 %; bumpless from the speed now.
                        // Slow on purpose, and gentle at any scan: no long-scan scaling.
                        let pi = Pi::new(
                            HEAT_LOOP_GAIN / heat_w.max(1.0e6),
                            HEAT_LOOP_TI_S,
                            MIN_PUMP_SPEED,
                            model::hardware::PUMP_SPEED_LIMITS.1,
                            self.last_speed,
                        )
                        .with_max_dt_s(HEAT_LOOP_TI_S);
                        self.dispatch = Some(PlantDispatch::Heat {
                            heat_w,
                            pi,
                            heat_seen_w: None,
                        });
                    }
                }
            }
            Action::SetPumpHead { head_pa } => {
                self.source.check_version(cmd)?;
                let (lo, hi) = model::command::PUMP_HEAD_LIMITS_PA;
                if !(head_pa.is_finite() && (lo..=hi).contains(&head_pa)) {
                    return Err(format!("head_pa {head_pa} Pa is outside {lo}..{hi} Pa"));
                }
                match &mut self.dispatch {
                    Some(PlantDispatch::Head(pd)) => pd.setpoint_pa = head_pa,
                    _ => {
                        let mut pd = PumpDp::new(head_pa);
                        pd.pi.integral = self.last_speed;
                        pd.speed = self.last_speed;
                        self.dispatch = Some(PlantDispatch::Head(pd));
                    }
                }
            }
            _ => return self.source.command(cmd),
        }
        self.source.last_version = cmd.version;
        Ok(())
    }

    /// (pump on, pump speed if written) for this tick; `supply_sp_c`: the
    /// supply setpoint written this tick.
    fn pump(
        &mut self,
        readings: &[Reading],
        supply_sp_c: f64,
        link: LinkState,
        dt: f64,
    ) -> (f64, Option<f64>) {
        let running = get(readings, Metric::PumpRunning).is_none_or(|r| r >= 0.5);
        let head = get(readings, Metric::DiffPressurePa);
        let (on, speed) = match (&mut self.dispatch, link.optimizer_recent) {
            (
                Some(PlantDispatch::Heat {
                    heat_w,
                    pi,
                    heat_seen_w,
                }),
                true,
            ) => {
                if *heat_w <= 0.0 {
                    // Not committed: the pump stops; it restarts where it was.
                    pi.integral = self.last_speed;
                    *heat_seen_w = None;
                    (0.0, Some(self.last_speed))
                } else {
                    match get(readings, Metric::HeatW) {
                        Some(raw_w) if running => {
                            let alpha = 1.0 - (-dt.max(0.0) / HEAT_FILTER_TAU_S).exp();
                            let q = heat_seen_w.map_or(raw_w, |seen| seen + alpha * (raw_w - seen));
                            *heat_seen_w = Some(q);
                            // A heat source at its limit (capacity, ramp, a
                            // trip) leaves the supply under its setpoint:
                            // more flow brings no more heat, it only cools
                            // the network. The loop may then slow the pump,
                            // never speed it up. Only while the plant carries
                            // water: a plant whose pump another's overpowers
                            // reads a stagnant, cooling outlet and needs more
                            // speed (found on the ring). Holding, not slowing:
                            // an outlet also lags a rising flow for minutes
                            // (its 600 s approach), and a loop that slowed
                            // then cycled the ring's boiler around its order.
                            let at_limit = match (
                                get(readings, Metric::SupplyTempC),
                                get(readings, Metric::ReturnTempC),
                                get(readings, Metric::FlowKgS),
                            ) {
                                (Some(ts), Some(tr), Some(flow_kg_s)) => {
                                    ts < supply_sp_c - HEAT_LOOP_SOURCE_SHORT_K
                                        && flow_kg_s
                                            * model::WATER_CP_J_KG_K
                                            * (supply_sp_c - tr).max(1.0)
                                            >= HEAT_LOOP_CIRCULATING_SHARE * *heat_w
                                }
                                _ => false,
                            };
                            let target_w = if at_limit { heat_w.min(q) } else { *heat_w };
                            // The gain relative to the operating point: 10 %
                            // heat error moves the speed by 2 %, whatever the
                            // order the loop was first made for (found on the
                            // city: made for a 24 MW order, the loop swung
                            // `boiler-south`'s pump between its limits, its
                            // heat between 35 and 380 MW, from one 300 s scan
                            // to the next at 150 MW).
                            pi.kp = HEAT_LOOP_GAIN / heat_w.max(q).max(1.0e6);
                            let speed = pi.step(target_w, q, dt);
                            (
                                1.0,
                                Some(if at_limit {
                                    speed.min(self.last_speed)
                                } else {
                                    speed
                                }),
                            )
                        }
                        // No plausible heat reading or a stopped pump: hold the speed.
                        _ => {
                            pi.integral = self.last_speed;
                            *heat_seen_w = None;
                            (1.0, Some(self.last_speed))
                        }
                    }
                }
            }
            (Some(PlantDispatch::Head(pd)), true) => (1.0, Some(pd.step(head, running, dt))),
            (dispatch, _) => {
                // The optimizer is silent: the plant's own loop, or rated speed.
                let speed = match &mut self.pump {
                    Some(pump) => Some(pump.step(head, running, dt)),
                    None => dispatch.as_ref().map(|_| 1.0),
                };
                // Bumpless when the dispatch resumes.
                match dispatch {
                    Some(PlantDispatch::Heat { pi, .. }) => pi.integral = speed.unwrap_or(1.0),
                    Some(PlantDispatch::Head(pd)) => pd.pi.integral = speed.unwrap_or(1.0),
                    None => {}
                }
                (1.0, speed)
            }
        };
        if let Some(s) = speed {
            self.last_speed = s;
        }
        (on, speed)
    }
}

/// Slowest speed a pump loop commands (keeps the pump in its working range).
pub const MIN_PUMP_SPEED: f64 = 0.3;

/// A pump's speed held by a PI loop on a differential pressure: the plant's
/// head, or a substation's secondary differential pressure. Without a
/// plausible reading, or while the pump is stopped, the pump runs at its
/// rated speed and the loop follows it (bumpless when the reading returns).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PumpDp {
    pub setpoint_pa: f64,
    pub pi: Pi,
    pub speed: f64,
}

impl PumpDp {
    pub fn new(setpoint_pa: f64) -> Self {
        Self {
            setpoint_pa,
            // 10 % pressure error moves the speed by 2 %; reset in two minutes.
            pi: Pi::new(
                0.2 / setpoint_pa,
                120.0,
                MIN_PUMP_SPEED,
                model::hardware::PUMP_SPEED_LIMITS.1,
                1.0,
            ),
            speed: 1.0,
        }
    }

    pub fn step(&mut self, measured_pa: Option<f64>, running: bool, dt_s: f64) -> f64 {
        self.speed = match measured_pa {
            Some(dp) if running => self.pi.step(self.setpoint_pa, dp, dt_s),
            _ => {
                self.pi.integral = 1.0;
                1.0
            }
        };
        self.speed
    }
}

/// Balancing valve throttled when the building runs warm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BuildingCtl {
    pub valve: f64,
    pub last_time_ms: Option<i64>,
    pub mode: Mode,
    #[serde(default)]
    pub guard: SensorGuard,
    /// Does the balancing valve follow its commands?
    #[serde(default)]
    pub valve_watch: ValveWatch,
}

/// Room temperature above which a building's balancing valve starts to close, °C.
pub const BUILDING_THROTTLE_FROM_C: f64 = 21.0;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Controller {
    Plant(PlantCtl),
    Substation(SubstationCtl),
    Building(BuildingCtl),
}

impl Controller {
    /// A fresh controller for a configured node.
    pub fn new(cfg: &NodeConfig) -> Result<Self, String> {
        let curve_and_limits =
            |default_limits: (f64, f64)| -> Result<(SupplyCurve, (f64, f64)), String> {
                let limits = cfg.supply_limits_c.unwrap_or(default_limits);
                if !(limits.0.is_finite()
                    && limits.1.is_finite()
                    && limits.0 < limits.1
                    && limits.0 >= default_limits.0
                    && limits.1 <= default_limits.1)
                {
                    return Err(format!(
                        "{}: supply_limits_c {:?} must lie within {:?}",
                        cfg.id, limits, default_limits
                    ));
                }
                let curve = cfg
                    .fallback_curve
                    .clone()
                    .ok_or_else(|| format!("{}: fallback_curve is missing", cfg.id))?;
                let curve = SupplyCurve::new(
                    curve.points().to_vec(),
                    curve.min_supply_temp_c(),
                    curve.max_supply_temp_c(),
                    limits,
                )
                .map_err(|e| format!("{}: fallback_curve: {e}", cfg.id))?;
                Ok((curve, limits))
            };
        if !(cfg.max_setpoint_rate_k_per_min > 0.0 && cfg.max_setpoint_rate_k_per_min <= 60.0) {
            return Err(format!(
                "{}: max_setpoint_rate_k_per_min must be in (0, 60]",
                cfg.id
            ));
        }
        if let Some(dp) = cfg.pump_dp_setpoint_pa
            && !(cfg.kind != NodeKind::Building && dp.is_finite() && (1.0e3..=3.0e6).contains(&dp))
        {
            return Err(format!(
                "{}: pump_dp_setpoint_pa {dp} must be a plant's head or a substation's secondary differential pressure within 1000..3000000 Pa",
                cfg.id
            ));
        }
        if let Some(limit) = cfg.return_limit_c
            && !(cfg.kind == NodeKind::Substation
                && limit.is_finite()
                && (20.0..=120.0).contains(&limit))
        {
            return Err(format!(
                "{}: return_limit_c {limit} must be a substation's primary return limit within 20..120 °C",
                cfg.id
            ));
        }
        Ok(match cfg.kind {
            NodeKind::Substation => {
                let (curve, limits) = curve_and_limits(model::network::SECONDARY_SUPPLY_LIMITS_C)?;
                Controller::Substation(SubstationCtl {
                    source: SetpointSource::new(limits, cfg.max_setpoint_rate_k_per_min, curve),
                    pi: Pi::new(0.015, 180.0, 0.0, 1.0, 0.5),
                    safe_valve: 0.5,
                    last_valve: 0.5,
                    return_limit: cfg.return_limit_c.map(|limit_c| ReturnLimit {
                        limit_c,
                        pi: Pi::new(0.01, 600.0, RETURN_LIMIT_MIN_VALVE, 1.0, 1.0),
                        active: false,
                    }),
                    guard: SensorGuard::default(),
                    flow_ref_kg_s: 0.0,
                    pump: cfg.pump_dp_setpoint_pa.map(PumpDp::new),
                    valve_watch: ValveWatch::default(),
                })
            }
            NodeKind::Plant => {
                let (curve, limits) = curve_and_limits(model::network::PLANT_SUPPLY_LIMITS_C)?;
                Controller::Plant(PlantCtl {
                    source: SetpointSource::new(limits, cfg.max_setpoint_rate_k_per_min, curve),
                    guard: SensorGuard::default(),
                    pump: cfg.pump_dp_setpoint_pa.map(PumpDp::new),
                    dispatch: None,
                    last_speed: 1.0,
                })
            }
            NodeKind::Building => Controller::Building(BuildingCtl {
                valve: 1.0,
                last_time_ms: None,
                mode: Mode::Fallback,
                guard: SensorGuard::default(),
                valve_watch: ValveWatch::default(),
            }),
        })
    }

    pub fn kind(&self) -> NodeKind {
        match self {
            Controller::Plant(_) => NodeKind::Plant,
            Controller::Substation(_) => NodeKind::Substation,
            Controller::Building(_) => NodeKind::Building,
        }
    }

    pub fn mode(&self) -> Mode {
        match self {
            Controller::Plant(p) => p.source.mode,
            Controller::Substation(s) => s.source.mode,
            Controller::Building(b) => b.mode,
        }
    }

    pub fn tick(&mut self, input: &TickInput) -> TickOutput {
        let raw = input.readings.clone().unwrap_or_default();
        match self {
            Controller::Substation(s) => {
                let readings = s.guard.check(input.time_ms, raw);
                let (dt, sp, mode) = s.source.advance(input, &readings);
                let was_safe = s.source.mode == Mode::Safe;
                // A stopped secondary pump (tripped, e.g. on loss of water) leaves
                // the loop without a process to control: safe opening, no windup,
                // and a bumpless return when the pump runs again. The pump is
                // still commanded on, so it restarts as soon as it can.
                let pump_stopped = get(&readings, Metric::PumpRunning).is_some_and(|r| r < 0.5);
                let t_sup = get(&readings, Metric::SecondarySupplyTempC).filter(|_| !pump_stopped);
                let valve = match t_sup {
                    Some(t_sup) => {
                        s.source.set_mode(mode);
                        if was_safe {
                            // Bumpless: the loop takes over from the safe opening.
                            s.pi.track(s.last_valve, sp, t_sup);
                        }
                        let gain = flow_gain(&mut s.flow_ref_kg_s, &readings);
                        let supply_valve = s.pi.step_with_gain(sp, t_sup, dt, gain);
                        // The return temperature means something only while
                        // primary water flows; the limiter never closes the valve
                        // fully, so that it keeps measuring.
                        let t_ret = get(&readings, Metric::ReturnTempC).filter(|_| {
                            get(&readings, Metric::FlowKgS).is_some_and(|m| m > MIN_FLOW_KG_S)
                        });
                        match (&mut s.return_limit, t_ret) {
                            (Some(rl), Some(t_ret)) => {
                                // Override control with external reset: while the
                                // limiter is not in charge its reset follows the valve,
                                // so it takes over at once when the return passes the
                                // limit, and the loop not in charge never winds up.
                                if !rl.active || was_safe {
                                    rl.pi.integral = supply_valve;
                                }
                                // Reverse acting: a return above the limit closes the valve.
                                let limit_valve = rl.pi.step(rl.limit_c, t_ret, dt);
                                let limiting = limit_valve < supply_valve;
                                if limiting != rl.active {
                                    tracing::info!(
                                        return_temp_c = t_ret,
                                        limit_c = rl.limit_c,
                                        limiting,
                                        "return temperature limiter"
                                    );
                                    rl.active = limiting;
                                }
                                if limiting {
                                    s.pi.track(limit_valve, sp, t_sup);
                                    limit_valve
                                } else {
                                    supply_valve
                                }
                            }
                            _ => supply_valve,
                        }
                    }
                    None => {
                        if s.source.mode != Mode::Safe {
                            if pump_stopped {
                                tracing::warn!("secondary pump not running: valve to safe opening");
                            } else {
                                tracing::warn!(
                                    "secondary supply sensor missing or implausible: valve to safe opening"
                                );
                            }
                        }
                        s.source.set_mode(Mode::Safe);
                        s.safe_valve
                    }
                };
                s.last_valve = valve;
                let valve_fault = s.valve_watch.check(
                    input.time_ms,
                    get(&readings, Metric::ValvePosition),
                    valve,
                );
                let mut writes = vec![
                    (Actuator::PrimaryValve, valve),
                    (Actuator::SecondaryPump, 1.0),
                ];
                if let Some(pump) = &mut s.pump {
                    let dp = get(&readings, Metric::SecondaryDiffPressurePa);
                    writes.push((
                        Actuator::SecondaryPumpSpeed,
                        pump.step(dp, !pump_stopped, dt),
                    ));
                }
                let mut out = tick_output(
                    readings,
                    sp,
                    s.source.mode,
                    &writes,
                    s.guard.findings.clone(),
                );
                out.valve_fault = valve_fault;
                out
            }
            Controller::Plant(p) => {
                let readings = p.guard.check(input.time_ms, raw);
                let (dt, sp, mode) = p.source.advance(input, &readings);
                p.source.set_mode(mode);
                let (pump_on, speed) = p.pump(&readings, sp, input.link, dt);
                let mut writes = vec![
                    (Actuator::PlantSupplySetpointC, sp),
                    (Actuator::PlantPump, pump_on),
                ];
                if let Some(speed) = speed {
                    writes.push((Actuator::PlantPumpSpeed, speed));
                }
                tick_output(readings, sp, mode, &writes, p.guard.findings.clone())
            }
            Controller::Building(b) => {
                let readings = b.guard.check(input.time_ms, raw);
                let dt = match b.last_time_ms {
                    Some(t) if input.time_ms > t => {
                        ((input.time_ms - t) as f64 / 1000.0).min(MAX_DT_S)
                    }
                    _ => 0.0,
                };
                b.last_time_ms = Some(input.time_ms.max(b.last_time_ms.unwrap_or(0)));
                b.mode = if input.link.optimizer_recent {
                    Mode::Optimizer
                } else {
                    Mode::Fallback
                };
                // No plausible room reading: the valve holds where it is.
                if let Some(room) = get(&readings, Metric::RoomTempC) {
                    let target = (1.0 - 0.4 * (room - BUILDING_THROTTLE_FROM_C)).clamp(0.3, 1.0);
                    // Valves move slowly on purpose: a full stroke takes 10 minutes.
                    b.valve = ramp(b.valve, target, 1.0 / 600.0, dt);
                }
                let valve_fault = b.valve_watch.check(
                    input.time_ms,
                    get(&readings, Metric::ValvePosition),
                    b.valve,
                );
                TickOutput {
                    writes: vec![ActuatorWrite {
                        actuator: Actuator::BalancingValve,
                        value: b.valve,
                    }],
                    mode: b.mode,
                    readings,
                    implausible: b.guard.findings.clone(),
                    valve_fault,
                }
            }
        }
    }

    /// Validates and applies a command whole, or refuses it with the reason.
    pub fn command(&mut self, cmd: &Command) -> Result<(), String> {
        match self {
            Controller::Plant(p) => p.command(cmd),
            Controller::Substation(s) => s.source.command(cmd),
            Controller::Building(_) => Err(format!(
                "building {} takes no {} command: supply temperatures are set on its substation",
                cmd.actor_id,
                cmd.action.name()
            )),
        }
    }
}

/// What a plant or substation reports and writes after a tick.
fn tick_output(
    mut readings: Vec<Reading>,
    setpoint_c: f64,
    mode: Mode,
    writes: &[(Actuator, f64)],
    implausible: Vec<Finding>,
) -> TickOutput {
    readings.push(Reading::new(Metric::SetpointC, setpoint_c));
    TickOutput {
        writes: writes
            .iter()
            .map(|&(actuator, value)| ActuatorWrite { actuator, value })
            .collect(),
        mode,
        readings,
        implausible,
        valve_fault: None,
    }
}

#[cfg(test)]
mod tests;
