//! The optimizer's planning round over the horizon, in optimizing mode: what
//! each plant makes and at what supply temperature, and which plant holds the
//! network's differential pressure. Pure: it sees telemetry-derived
//! observations and the network description, returns orders and the plan.
//!
//! Each round:
//! 1. every substation's demand model learns from its measured heat
//!    ([`crate::demand`]) and forecasts its heat over the horizon from the
//!    weather ahead (the forecast given to [`PlanState::set_forecast`], or
//!    persistence of the measured outdoor temperature);
//! 2. network losses are estimated from telemetry (plants' heat against the
//!    substations', smoothed) and added as a share;
//! 3. the economic dispatch ([`crate::dispatch`]) shares the load among the
//!    available plants; a plant that trips (no heat while it should make some,
//!    or a `plant_trip` alarm) is unavailable and the others take its load;
//! 4. the lead plant (the largest committed one) takes the balance and holds
//!    the pump head that keeps the critical substation (lowest measured
//!    differential pressure) at its target ([`crate::ahead::trim_head`]); the
//!    others are told their heat output;
//! 5. each plant's supply temperature is set for the weather its water meets
//!    one transport delay later ([`crate::transport`], [`crate::ahead`]).
//!
//! Without a network description (capacities, prices, pipes) there is no
//! dispatch: plants get supply temperatures only, with no delay.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use model::{Action, Network, NodeId, SupplyCurve};

use crate::ahead::{self, WeatherAhead};
use crate::demand::{Conditions, DemandModel, Lead};
use crate::dispatch::{self, DispatchInput, PlantSpec};
use crate::planner;
use crate::transport::{Delays, Layout};

/// Steps of the horizon.
pub const HORIZON_STEPS: usize = 24;
/// Length of one step, s.
pub const STEP_S: f64 = 3600.0;
/// Samples a demand model needs before its forecast is used (else persistence)…
pub const MIN_MODEL_SAMPLES: u64 = 24;
/// …and the time they must span, ms: a whole day, or the time-of-day terms
/// are guesses (found on the city: two hours of data forecast 2× the load).
pub const MIN_MODEL_SPAN_MS: i64 = 24 * 3_600_000;
/// Loss share assumed before telemetry says otherwise.
pub const DEFAULT_LOSS_SHARE: f64 = 0.05;
/// Smoothing of the loss estimate per round.
const LOSS_SMOOTHING: f64 = 0.1;
/// A plant's heat order is re-sent when it moves by this share of its capacity.
const RESEND_SHARE: f64 = 0.02;
/// The head setpoint is re-sent when it moves by this much, Pa.
const RESEND_HEAD_PA: f64 = 5_000.0;
/// Time constant with which measured substation heat is smoothed, ms.
pub const DEMAND_SMOOTHING_MS: f64 = 30.0 * 60_000.0;
/// A running plant's heat order moves by at most this share of its capacity a round.
pub const MAX_ORDER_STEP_SHARE: f64 = 0.05;
/// A plant seen tripped is left out of the dispatch this long, ms.
pub const TRIP_HOLD_MS: i64 = 2 * 3_600_000;
/// A plant held out after a trip, its pump standing still, whose outlet is
/// this much warmer than its return has its heat source back (a working
/// source keeps its standing water hot; a lost one lets it cool to the
/// return), K.
pub const SOURCE_BACK_LIFT_K: f64 = 10.0;
/// The least hold after a trip: the outlet of a source just lost takes about
/// half an hour to cool toward its return (its 10 min time constant), ms.
pub const MIN_TRIP_HOLD_MS: i64 = 30 * 60_000;
/// The hold of a plant whose standing outlet shows its source still out; it
/// is then tried blind (a sensor may mislead), ms.
pub const LONG_TRIP_HOLD_MS: i64 = 3 * TRIP_HOLD_MS;

/// How much warmer a plant's outlet stands than its return while its pump
/// stands still (`None` while it runs or without the readings), K.
fn standing_lift_k(p: &PlantObs) -> Option<f64> {
    match (p.pump_running, p.supply_temp_c, p.return_temp_c) {
        (Some(false), Some(s), Some(r)) => Some(s - r),
        _ => None,
    }
}

/// Whether a plant held out `held_ms` since it was last seen tripped is
/// tried again. Its pump standing still, its outlet tells whether its source
/// is back ([`SOURCE_BACK_LIFT_K`]): released then, after
/// [`MIN_TRIP_HOLD_MS`]; else held [`LONG_TRIP_HOLD_MS`]. Without that
/// reading it is tried after [`TRIP_HOLD_MS`] (found on the city: `chp-east`,
/// tried blind every 2 h of its 24 h trip, shut its tie lines each time and
/// pumped cold water into its district until it was found out again).
fn trip_hold_over(held_ms: i64, standing_lift_k: Option<f64>) -> bool {
    match standing_lift_k {
        Some(lift) if lift >= SOURCE_BACK_LIFT_K => held_ms >= MIN_TRIP_HOLD_MS,
        Some(_) => held_ms >= LONG_TRIP_HOLD_MS,
        None => held_ms >= TRIP_HOLD_MS,
    }
}

/// Share of its heat order below which a plant is taken as overpowered (its
/// pump cannot push water against another's head), not as at the limit of
/// what it can deliver.
pub const OVERPOWERED_SHARE: f64 = 0.1;

/// A plant short of its heat order is at the limit of its pump when it
/// measures at least this share of the head its pump makes at full speed at
/// the flow it carries.
pub const PUMP_AT_LIMIT_SHARE: f64 = 0.85;
/// ... or at the limit of its heat source when its supply is this far under
/// the setpoint its own control aims at, K (as the plant's heat loop judges
/// it: `control::law::HEAT_LOOP_SOURCE_SHORT_K`).
pub const SOURCE_SHORT_K: f64 = 3.0;
/// Water density for pump heads, kg/m³ (about 80 °C: within 1.5 % from 60
/// to 110 °C).
const PUMP_WATER_DENSITY_KG_M3: f64 = 970.0;

/// Whether a plant making less than its heat order does so at a limit: its
/// pump near its full-speed curve at the flow it carries, or its heat source
/// leaving the supply under its setpoint. A plant whose pump has head to
/// spare and whose supply is on its setpoint is short for another reason:
/// its loop is still turning, or another plant's pump pushes its water back
/// (found on the city with the gas boiler standing by and its ties joining
/// the two CHPs: the CHPs' pumps took the flow from each other round by
/// round, `chp-east` read 27 MW at 550 kPa, a third of what its pump makes
/// at full speed, was taken as able to deliver no more, and the boiler
/// started again at 430 MW of forecast peak, a third under the CHPs'
/// 656 MW). Without the readings to judge by, any shortfall counts.
fn at_a_limit(o: &PlantObs, plant: Option<&model::Plant>) -> bool {
    let source = match (o.supply_temp_c, o.supply_setpoint_c) {
        (Some(t), Some(sp)) if t.is_finite() && sp.is_finite() => t < sp - SOURCE_SHORT_K,
        _ => false,
    };
    let pump = match (o.head_pa, o.flow_kg_s, plant) {
        (Some(head_pa), Some(flow_kg_s), Some(p))
            if head_pa.is_finite() && flow_kg_s.is_finite() =>
        {
            let flow_m3_h = flow_kg_s.max(0.0) / PUMP_WATER_DENSITY_KG_M3 * 3600.0;
            let full_pa = p
                .pump_rating()
                .head_m(flow_m3_h, model::hardware::PUMP_SPEED_LIMITS.1)
                * PUMP_WATER_DENSITY_KG_M3
                * model::GRAVITY_M_S2;
            head_pa >= PUMP_AT_LIMIT_SHARE * full_pa
        }
        _ => true,
    };
    source || pump
}
/// Most forecast points kept.
pub const MAX_FORECAST_POINTS: usize = 1_000;

/// How the optimizer plans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PlanMode {
    /// Curve + room trims for substations; dispatch, delays and differential
    /// pressure for plants.
    #[default]
    Optimizing,
    /// The baseline most networks run: plain curve setpoints everywhere, no
    /// trims, no dispatch (each plant on its own curve).
    FixedCurve,
}

impl PlanMode {
    pub fn name(self) -> &'static str {
        match self {
            PlanMode::Optimizing => "optimizing",
            PlanMode::FixedCurve => "fixed_curve",
        }
    }
}

/// What telemetry says about one substation, with its planned setpoint.
#[derive(Clone, Debug)]
pub struct SubstationObs {
    pub id: NodeId,
    pub outdoor_c: Option<f64>,
    pub heat_w: Option<f64>,
    pub flow_kg_s: Option<f64>,
    pub diff_pressure_pa: Option<f64>,
    /// Primary valve opening, 0..1.
    pub valve_position: Option<f64>,
    /// This round's secondary setpoint and the group curve it came from.
    pub setpoint: Option<(f64, SupplyCurve)>,
}

/// What telemetry says about one plant.
#[derive(Clone, Debug)]
pub struct PlantObs {
    pub id: NodeId,
    /// Its gateway is connected.
    pub online: bool,
    pub outdoor_c: Option<f64>,
    pub heat_w: Option<f64>,
    pub head_pa: Option<f64>,
    pub supply_temp_c: Option<f64>,
    pub return_temp_c: Option<f64>,
    /// Water through its pump, kg/s.
    pub flow_kg_s: Option<f64>,
    /// The supply temperature its own control aims at, °C.
    pub supply_setpoint_c: Option<f64>,
    pub pump_running: Option<bool>,
    /// A `plant_trip` alarm is active.
    pub trip_alarm: bool,
    pub curve: Option<SupplyCurve>,
    pub limits_c: (f64, f64),
}

/// What one plant is told this round.
#[derive(Clone, Debug, PartialEq)]
pub struct PlantOrder {
    pub plant: NodeId,
    pub supply_temp_c: f64,
    /// Heat output or pump head, when it changed enough to send.
    pub dispatch: Option<Action>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PlantPlanView {
    pub id: NodeId,
    pub kind: String,
    pub available: bool,
    pub lead: bool,
    pub delay_s: Option<f64>,
    pub price_yuan_per_gj: f64,
    pub heat_w: Vec<f64>,
    pub supply_temp_c: Vec<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DemandModelView {
    pub substation: NodeId,
    pub samples: u64,
    pub mae_next_w: Option<f64>,
    pub mae_day_w: Option<f64>,
}

/// The latest plan, for the control room.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlanView {
    /// Network time of the round, Unix ms.
    pub planned_at_ms: i64,
    pub mode: String,
    pub step_ms: i64,
    pub plants: Vec<PlantPlanView>,
    /// Substations' forecast heat per step, W.
    pub demand_w: Vec<f64>,
    pub unserved_w: Vec<f64>,
    pub loss_share: f64,
    pub cost_yuan: f64,
    pub critical_substation: Option<NodeId>,
    pub critical_diff_pressure_pa: Option<f64>,
    pub diff_pressure_target_pa: f64,
    pub lead_plant: Option<NodeId>,
    pub head_setpoint_pa: Option<f64>,
    pub demand_models: Vec<DemandModelView>,
    /// The weather ahead came from a forecast (else persistence).
    pub weather_forecast: bool,
    /// Why part of the plan is missing, if it is.
    pub note: String,
    /// What each substation's coldest room is aimed at, °C (raised ahead of
    /// a shortage); none in fixed-curve mode.
    pub room_target_c: Option<f64>,
    /// How much milder the sun ahead makes the weather for the substations'
    /// curves, K ([`planner::sun_ahead_k`]); none in fixed-curve mode.
    pub curve_sun_k: Option<f64>,
}

/// The planner's memory between rounds.
pub struct PlanState {
    network: Option<Arc<Network>>,
    /// The substations' design primary flows ([`design_flows`]).
    design: DesignFlows,
    layout: Option<Layout>,
    dp_target_pa: f64,
    forecast: Vec<WeatherAhead>,
    demand: BTreeMap<NodeId, DemandModel>,
    loss_share: f64,
    /// The lead plant and the head it was last given.
    lead: Option<NodeId>,
    head_pa: Option<f64>,
    sent: BTreeMap<NodeId, Action>,
    /// Each substation's smoothed measured heat, W.
    heat_smoothed_w: BTreeMap<NodeId, f64>,
    /// When each plant's last order was sent, network ms.
    sent_at_ms: BTreeMap<NodeId, i64>,
    /// When each plant was last seen tripped, network ms.
    trip_seen_ms: BTreeMap<NodeId, i64>,
    /// When each plant was tried again after its trip hold, network ms.
    retried_ms: BTreeMap<NodeId, i64>,
    /// What plants were seen to deliver at most, W (below their nameplate).
    deliverable_w: BTreeMap<NodeId, f64>,
    /// Each plant's measured heat at the last round, W.
    last_heat_w: BTreeMap<NodeId, f64>,
    /// Plants whose floor has been considered once (see the floors).
    floors_started: BTreeSet<NodeId>,
    /// Non-lead plants' regional floors: the least heat dispatched so that
    /// the region each serves keeps its pressure (`ahead::next_floor`), W.
    floor_w: BTreeMap<NodeId, f64>,
    /// How far the rooms' aim is raised ahead of a shortage.
    preheat: planner::Preheat,
    /// Plants with tie lines at their junction (they may stand by).
    tie_backed: BTreeSet<NodeId>,
    /// Plants standing by ([`dispatch::standby`]).
    standing_by: BTreeSet<NodeId>,
    /// When a plant was last seen tripped (an alarm, no heat from a running
    /// pump, or held out after either), network ms: nothing stands by for
    /// [`dispatch::STANDBY_AFTER_TRIP_MS`] after.
    last_trip_ms: Option<i64>,
    /// Plants whose pump has been read once (a stopped one, first seen, may
    /// be standing by already).
    pumps_seen: BTreeSet<NodeId>,
    /// Plants whose last standby was cut short ([`dispatch::STANDBY_SHORT_MS`]).
    standby_cut_short: BTreeSet<NodeId>,
    /// The floor each plant standing by had when it stood by: it gets it
    /// back when it starts again, W.
    resume_floor_w: BTreeMap<NodeId, f64>,
    /// When each plant last stood by or started again, network ms.
    standby_changed_ms: BTreeMap<NodeId, i64>,
    view: Option<PlanView>,
}

/// What the planner has learned (demand models, losses, what plants can
/// deliver): saved now and then, restored however long the optimizer was
/// down.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LearnedMemory {
    demand: BTreeMap<NodeId, DemandModel>,
    loss_share: f64,
    deliverable_w: BTreeMap<NodeId, f64>,
}

/// What the planner decided lately (the lead and its head, regional floors,
/// standby, trips, preheating): saved every round, restored only after a
/// short outage ([`RESTORE_DISPATCH_WITHIN_MS`]); after a longer one the
/// plants are dispatched afresh from what is measured.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DispatchMemory {
    lead: Option<NodeId>,
    head_pa: Option<f64>,
    heat_smoothed_w: BTreeMap<NodeId, f64>,
    sent_at_ms: BTreeMap<NodeId, i64>,
    trip_seen_ms: BTreeMap<NodeId, i64>,
    retried_ms: BTreeMap<NodeId, i64>,
    last_heat_w: BTreeMap<NodeId, f64>,
    floors_started: BTreeSet<NodeId>,
    floor_w: BTreeMap<NodeId, f64>,
    preheat: planner::Preheat,
    standing_by: BTreeSet<NodeId>,
    last_trip_ms: Option<i64>,
    pumps_seen: BTreeSet<NodeId>,
    standby_cut_short: BTreeSet<NodeId>,
    resume_floor_w: BTreeMap<NodeId, f64>,
    standby_changed_ms: BTreeMap<NodeId, i64>,
}

/// The dispatch memory of a round this much older (or newer) than the first
/// round after a restart is not restored, network ms.
pub const RESTORE_DISPATCH_WITHIN_MS: i64 = 3_600_000;

/// What a round decided.
pub struct RoundOutcome {
    pub orders: Vec<PlantOrder>,
    /// Largest load that cannot be served over the horizon, W (an alarm).
    pub max_unserved_w: f64,
    /// Plants taken as tripped.
    pub tripped: Vec<NodeId>,
}

impl PlanState {
    pub fn new(network: Option<Arc<Network>>, dp_target_pa: f64) -> Self {
        Self {
            layout: network.as_deref().map(Layout::of),
            design: network.as_deref().map(design_flows).unwrap_or_default(),
            tie_backed: network.as_deref().map(tie_backed).unwrap_or_default(),
            network,
            dp_target_pa,
            forecast: Vec::new(),
            demand: BTreeMap::new(),
            loss_share: DEFAULT_LOSS_SHARE,
            lead: None,
            head_pa: None,
            sent: BTreeMap::new(),
            sent_at_ms: BTreeMap::new(),
            heat_smoothed_w: BTreeMap::new(),
            trip_seen_ms: BTreeMap::new(),
            retried_ms: BTreeMap::new(),
            deliverable_w: BTreeMap::new(),
            last_heat_w: BTreeMap::new(),
            floors_started: BTreeSet::new(),
            floor_w: BTreeMap::new(),
            preheat: planner::Preheat::default(),
            standing_by: BTreeSet::new(),
            resume_floor_w: BTreeMap::new(),
            standby_cut_short: BTreeSet::new(),
            pumps_seen: BTreeSet::new(),
            last_trip_ms: None,
            standby_changed_ms: BTreeMap::new(),
            view: None,
        }
    }

    pub fn learned(&self) -> LearnedMemory {
        LearnedMemory {
            demand: self.demand.clone(),
            loss_share: self.loss_share,
            deliverable_w: self.deliverable_w.clone(),
        }
    }

    /// Takes back what an earlier optimizer learned (before any round).
    pub fn restore_learned(&mut self, m: LearnedMemory) {
        self.demand = m.demand;
        if m.loss_share.is_finite() && (0.0..1.0).contains(&m.loss_share) {
            self.loss_share = m.loss_share;
        }
        self.deliverable_w = m
            .deliverable_w
            .into_iter()
            .filter(|(_, w)| w.is_finite() && *w > 0.0)
            .collect();
    }

    pub fn dispatch_memory(&self) -> DispatchMemory {
        DispatchMemory {
            lead: self.lead.clone(),
            head_pa: self.head_pa,
            heat_smoothed_w: self.heat_smoothed_w.clone(),
            sent_at_ms: self.sent_at_ms.clone(),
            trip_seen_ms: self.trip_seen_ms.clone(),
            retried_ms: self.retried_ms.clone(),
            last_heat_w: self.last_heat_w.clone(),
            floors_started: self.floors_started.clone(),
            floor_w: self.floor_w.clone(),
            preheat: self.preheat,
            standing_by: self.standing_by.clone(),
            last_trip_ms: self.last_trip_ms,
            pumps_seen: self.pumps_seen.clone(),
            standby_cut_short: self.standby_cut_short.clone(),
            resume_floor_w: self.resume_floor_w.clone(),
            standby_changed_ms: self.standby_changed_ms.clone(),
        }
    }

    /// Takes back what an earlier optimizer decided (before any round).
    /// Plants unknown to this network are left out.
    pub fn restore_dispatch(&mut self, m: DispatchMemory) {
        let known = |id: &NodeId| {
            self.network
                .as_ref()
                .is_none_or(|n| n.plants.iter().any(|p| &p.id == id))
        };
        self.lead = m.lead.filter(|l| known(l));
        self.head_pa = m.head_pa.filter(|h| h.is_finite() && *h > 0.0);
        self.heat_smoothed_w = m.heat_smoothed_w;
        self.sent_at_ms = m.sent_at_ms;
        self.trip_seen_ms = m.trip_seen_ms;
        self.retried_ms = m.retried_ms;
        self.last_heat_w = m.last_heat_w;
        self.floors_started = m.floors_started;
        self.floor_w = m.floor_w;
        self.preheat = m.preheat;
        self.standing_by = m.standing_by.into_iter().filter(|p| known(p)).collect();
        self.last_trip_ms = m.last_trip_ms;
        self.pumps_seen = m.pumps_seen;
        self.standby_cut_short = m.standby_cut_short;
        self.resume_floor_w = m.resume_floor_w;
        self.standby_changed_ms = m.standby_changed_ms;
    }

    /// The weather forecast to plan with (replaces the previous one).
    pub fn set_forecast(&mut self, points: Vec<WeatherAhead>) {
        let mut points = ahead::clean_forecast(points);
        points.truncate(MAX_FORECAST_POINTS);
        self.forecast = points;
    }

    /// How much milder the sun forecast ahead makes the weather for the
    /// substations' curves, K ([`planner::sun_ahead_k`]).
    pub fn sun_ahead_k(&self, now_ms: i64) -> f64 {
        planner::sun_ahead_k(&self.forecast, now_ms)
    }

    /// What the substations aim their coldest room at, °C: the target,
    /// raised ahead of a shortage the last round foresaw.
    pub fn room_target_c(&self) -> f64 {
        planner::TARGET_ROOM_C + self.preheat.raise_k()
    }

    /// What the substations of a plant's own district (by the network
    /// description) draw now, losses included, W; `None` without a network
    /// or a reading.
    fn district_draw_w(&self, plant: &NodeId, subs: &[SubstationObs]) -> Option<f64> {
        let draws: BTreeMap<NodeId, f64> = subs
            .iter()
            .filter_map(|s| Some((s.id.clone(), s.heat_w?)))
            .collect();
        self.district_w(plant, &draws)
    }

    /// The sum over a plant's own district (by the network description) of
    /// `per_substation_w`, losses included, W; `None` without a network or
    /// any value.
    fn district_w(&self, plant: &NodeId, per_substation_w: &BTreeMap<NodeId, f64>) -> Option<f64> {
        let net = self.network.as_ref()?;
        let values: Vec<f64> = net
            .substations
            .iter()
            .filter(|s| &s.plant == plant)
            .filter_map(|s| per_substation_w.get(&s.id).copied())
            .filter(|q| q.is_finite() && *q >= 0.0)
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() * (1.0 + self.loss_share))
    }

    pub fn view(&self) -> Option<&PlanView> {
        self.view.as_ref()
    }

    /// Forgets what was sent to a plant (its gateway reconnected: send again).
    pub fn forget_sent(&mut self, plant: &NodeId) {
        self.sent.remove(plant);
    }

    /// A fixed-curve round: each plant on its own curve at the measured outdoor temperature.
    pub fn fixed_curve(&mut self, now_ms: i64, plants: &[PlantObs]) -> Vec<PlantOrder> {
        let orders: Vec<PlantOrder> = plants
            .iter()
            .filter_map(|p| {
                let curve = p.curve.as_ref()?;
                let t = p.outdoor_c?;
                Some(PlantOrder {
                    plant: p.id.clone(),
                    supply_temp_c: curve.supply_temp_c(t).clamp(p.limits_c.0, p.limits_c.1),
                    dispatch: None,
                })
            })
            .collect();
        self.view = Some(PlanView {
            planned_at_ms: now_ms,
            mode: PlanMode::FixedCurve.name().into(),
            step_ms: (STEP_S * 1000.0) as i64,
            plants: orders
                .iter()
                .map(|o| PlantPlanView {
                    id: o.plant.clone(),
                    kind: String::new(),
                    available: true,
                    lead: false,
                    delay_s: None,
                    price_yuan_per_gj: 0.0,
                    heat_w: Vec::new(),
                    supply_temp_c: vec![o.supply_temp_c],
                })
                .collect(),
            diff_pressure_target_pa: self.dp_target_pa,
            note: "fixed-curve baseline: no dispatch, no trims".into(),
            ..Default::default()
        });
        orders
    }

    /// Whether a plant has nothing more to give its district: out of the
    /// dispatch, or its floor at what it can deliver (the lead then answers
    /// for its district).
    fn exhausted(&self, plant: &NodeId, available: bool) -> bool {
        let Some(nameplate) = self
            .network
            .as_ref()
            .and_then(|n| n.plant(plant))
            .map(|p| p.capacity_w)
        else {
            return true;
        };
        let cap = self
            .deliverable_w
            .get(plant)
            .map_or(nameplate, |d| d.min(nameplate));
        let floor = self.floor_w.get(plant).copied().unwrap_or(0.0);
        !available || floor >= 0.98 * cap
    }

    /// An optimizing round at network time `now_ms`.
    pub fn round(
        &mut self,
        now_ms: i64,
        plan_interval_ms: i64,
        subs: &[SubstationObs],
        plants: &[PlantObs],
    ) -> RoundOutcome {
        let step_ms = (STEP_S * 1000.0) as i64;
        let measured_out = plants
            .iter()
            .filter_map(|p| p.outdoor_c)
            .chain(subs.iter().filter_map(|s| s.outdoor_c))
            .next()
            .unwrap_or(0.0);
        let weather_now = ahead::weather_at(&self.forecast, measured_out, now_ms);
        // The horizon: step k covers [now + k·step, now + (k+1)·step); its
        // weather is taken at the middle.
        let times: Vec<i64> = (0..HORIZON_STEPS as i64)
            .map(|k| now_ms + k * step_ms + step_ms / 2)
            .collect();
        let path = |out: f64| -> Vec<Conditions> {
            times
                .iter()
                .map(|&t| {
                    let w = ahead::weather_at(&self.forecast, out, t);
                    Conditions {
                        time_ms: t,
                        outdoor_c: w.outdoor_c,
                        solar_w_m2: w.solar_w_m2,
                    }
                })
                .collect()
        };

        // 1. Demand models learn and forecast.
        let mut demand_w = vec![0.0; HORIZON_STEPS];
        // Substations whose demand model forecasts (a day of data).
        let mut forecasting = 0;
        // What each substation needs in the hour at hand: the more of its
        // model's forecast and what it draws (smoothed), W.
        let mut need_now_w: BTreeMap<NodeId, f64> = BTreeMap::new();
        let k_smooth = 1.0 - (-(plan_interval_ms as f64) / DEMAND_SMOOTHING_MS).exp();
        for s in subs {
            let out = s.outdoor_c.unwrap_or(measured_out);
            // The measured heat, smoothed: one reading swings with the valves
            // and the plants' own moves; orders must not chase it.
            let heat_w = s.heat_w.filter(|q| q.is_finite()).map(|q| {
                let e = self.heat_smoothed_w.entry(s.id.clone()).or_insert(q);
                *e += k_smooth * (q - *e);
                *e
            });
            let model = self.demand.entry(s.id.clone()).or_default();
            if let Some(q) = heat_w {
                model.observe(
                    &Conditions {
                        time_ms: now_ms,
                        outdoor_c: out,
                        solar_w_m2: weather_now.solar_w_m2,
                    },
                    q,
                );
            }
            let ahead_path = path(out);
            let forecast =
                if model.samples() >= MIN_MODEL_SAMPLES && model.span_ms() >= MIN_MODEL_SPAN_MS {
                    model.predict(&ahead_path)
                } else {
                    Vec::new()
                };
            let need_w = forecast
                .first()
                .copied()
                .into_iter()
                .chain(heat_w)
                .filter(|q| q.is_finite())
                .fold(0.0_f64, f64::max);
            need_now_w.insert(s.id.clone(), need_w);
            if forecast.len() == HORIZON_STEPS {
                forecasting += 1;
                for (d, f) in demand_w.iter_mut().zip(&forecast) {
                    *d += f;
                }
                // Score the next interval and the day ahead when they come.
                let next_t = now_ms + plan_interval_ms;
                let next = ahead::weather_at(&self.forecast, out, next_t);
                if let Some(p) = model
                    .predict(&[Conditions {
                        time_ms: next_t,
                        outdoor_c: next.outdoor_c,
                        solar_w_m2: next.solar_w_m2,
                    }])
                    .first()
                {
                    model.remember(Lead::Next, next_t, *p);
                }
                if let (Some(last), Some(c)) = (forecast.last(), ahead_path.last()) {
                    model.remember(Lead::Day, c.time_ms, *last);
                }
            } else if let Some(q) = heat_w {
                // Too young a model: persistence.
                for d in demand_w.iter_mut() {
                    *d += q.max(0.0);
                }
            }
        }

        // 2. Losses: what plants make beyond what substations take.
        let made: f64 = plants.iter().filter_map(|p| p.heat_w).sum();
        let taken: f64 = subs.iter().filter_map(|s| s.heat_w).sum();
        if taken > 1.0e5 && made > 0.0 {
            let share = ((made - taken) / taken).clamp(0.0, 0.5);
            self.loss_share += LOSS_SMOOTHING * (share - self.loss_share);
        }

        // Trips: an alarm, or a running pump with no heat put in. A plant
        // seen tripped stays out for a while (once stopped it cannot show
        // whether it would heat again), then is tried again.
        for p in plants {
            // A plant tried again after its hold is given time to lift its
            // water (`detect::RESTART_LIFT_MS`) before "no heat" counts.
            let retrying = self
                .retried_ms
                .get(&p.id)
                .is_some_and(|t| now_ms - t < crate::detect::RESTART_LIFT_MS);
            let no_heat = !retrying
                && p.pump_running == Some(true)
                && matches!((p.supply_temp_c, p.return_temp_c), (Some(s), Some(r)) if s - r < 0.5)
                && self.sent.get(&p.id).is_some_and(
                    |a| !matches!(a, Action::SetHeatOutput { heat_w } if *heat_w <= 0.0),
                );
            if p.trip_alarm || no_heat {
                self.trip_seen_ms.insert(p.id.clone(), now_ms);
                self.last_trip_ms = Some(now_ms);
            }
        }
        let expired: Vec<NodeId> = self
            .trip_seen_ms
            .iter()
            .filter(|(id, seen)| {
                let lift = plants
                    .iter()
                    .find(|p| &p.id == *id)
                    .and_then(standing_lift_k);
                trip_hold_over(now_ms - **seen, lift)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.trip_seen_ms.remove(&id);
            self.retried_ms.insert(id, now_ms);
        }
        self.retried_ms
            .retain(|_, t| now_ms - *t < crate::detect::RESTART_GRACE_MS);
        let tripped: Vec<NodeId> = plants
            .iter()
            .filter(|p| self.trip_seen_ms.contains_key(&p.id))
            .map(|p| p.id.clone())
            .collect();
        // A plant held out counts as seen tripped until it is tried again.
        if !tripped.is_empty() {
            self.last_trip_ms = Some(now_ms);
        }

        // Critical substation.
        let critical = ahead::critical(
            subs.iter()
                .filter_map(|s| Some((&s.id, s.diff_pressure_pa?))),
        )
        .map(|(id, dp)| (id.clone(), dp));

        // 3. Dispatch.
        let mut note = String::new();
        let mut view_plants: Vec<PlantPlanView> = Vec::new();
        let mut orders = Vec::new();
        let mut max_unserved_w = 0.0;
        let mut cost_yuan = 0.0;
        let mut unserved_w = Vec::new();
        let mut lead_plant = None;
        let net_plants: Vec<(&PlantObs, Option<&model::Plant>)> = plants
            .iter()
            .map(|p| (p, self.network.as_ref().and_then(|n| n.plant(&p.id))))
            .collect();
        // In a meshed network every available plant keeps its pump running
        // (at least at its minimum load): one plant's pump cannot carry a
        // network sized for several (found on the city: substations far from
        // the lone plant lost their pressure and rooms cooled).
        let must_run = self.network.as_ref().is_some_and(|n| !n.pipes.is_empty());
        // What each plant can really deliver through the network: one that
        // falls short of its heat order (its pump at full speed), or a lead
        // that cannot hold its head while a substation valve is wide open,
        // is taken to deliver what it measures; the estimate then relaxes by
        // 5 % of its nameplate a round. (Found on the city: the biggest plant's pump could not
        // push its nameplate heat through the mesh.)
        let most_open = subs
            .iter()
            .filter_map(|s| counted_valve(s, &self.design, self.dp_target_pa))
            .reduce(f64::max);
        for o in plants {
            let Some(q) = o.heat_w else {
                continue;
            };
            // A heat order gets two rounds to be reached (ramps, the PI).
            let settled = self
                .sent_at_ms
                .get(&o.id)
                .is_some_and(|t| now_ms - t >= 2 * plan_interval_ms);
            let nameplate = self
                .network
                .as_ref()
                .and_then(|n| n.plant(&o.id))
                .map_or(0.0, |p| p.capacity_w);
            // Still climbing toward its order (its slow heat loop): not at a
            // limit yet (found on the city: a boiler taken as able to give
            // only what it made while its pump was still speeding up held
            // its floor, and its district short, for days).
            let rising = self
                .last_heat_w
                .insert(o.id.clone(), q)
                .is_some_and(|prev| q > prev + 0.01 * nameplate);
            // A plant putting next to nothing into the water is not at a
            // limit of its heat source: its pump is overpowered by another's
            // (no flow), which its heat loop answers by speeding up (found on
            // the interconnected city: the boiler, overpowered for a round,
            // was taken as able to deliver 0 W and left out for days).
            let short = match self.sent.get(&o.id) {
                Some(Action::SetHeatOutput { heat_w }) if *heat_w > 0.0 => {
                    settled
                        && q < 0.9 * heat_w
                        && q >= OVERPOWERED_SHARE * heat_w
                        && !rising
                        && at_a_limit(o, self.network.as_ref().and_then(|n| n.plant(&o.id)))
                }
                Some(Action::SetPumpHead { head_pa }) => {
                    most_open.is_some_and(|v| v >= ahead::VALVE_WIDE_OPEN)
                        && (*head_pa >= ahead::HEAD_LIMITS_PA.1 - 1.0
                            || o.head_pa.is_some_and(|h| h < 0.95 * head_pa))
                        // Its pump at full speed: not a head order it is
                        // still climbing to (found on the city: a lead
                        // ordered 25 kPa more a round from 100 kPa, 150 kPa
                        // against 175 kPa, was taken as able to deliver only
                        // what it made, and the boiler started again).
                        && at_a_limit(o, self.network.as_ref().and_then(|n| n.plant(&o.id)))
                }
                _ => false,
            };
            if short {
                self.deliverable_w.insert(o.id.clone(), (q * 1.02).max(0.0));
            } else if let Some(c) = self.deliverable_w.get_mut(&o.id) {
                *c += 0.05 * nameplate;
                if *c >= nameplate {
                    self.deliverable_w.remove(&o.id);
                }
            }
        }
        // Standby: a dear plant with tie lines stops while the cheap ones
        // can carry the horizon's peak, and starts again when they cannot.
        // The forecast peak, and never less than what the plants make now
        // (a forecast that lags a cold spell must not keep a plant out).
        let peak_load_w =
            (demand_w.iter().fold(0.0_f64, |a, &b| a.max(b)) * (1.0 + self.loss_share)).max(made);
        let candidates: Vec<dispatch::StandbyPlant> = net_plants
            .iter()
            .filter_map(|(o, p)| {
                let p = (*p)?;
                Some(dispatch::StandbyPlant {
                    id: o.id.clone(),
                    price_yuan_per_gj: p.heat_price_yuan_per_gj,
                    capacity_w: self
                        .deliverable_w
                        .get(&o.id)
                        .map_or(p.capacity_w, |c| c.min(p.capacity_w)),
                    available: o.online && !tripped.contains(&o.id),
                    tie_backed: self.tie_backed.contains(&o.id),
                    standing_by: self.standing_by.contains(&o.id),
                    changed_ms: self.standby_changed_ms.get(&o.id).copied(),
                    cut_short: self.standby_cut_short.contains(&o.id),
                })
            })
            .collect();
        // A tie-backed plant first seen online with its pump stopped (the
        // optimizer restarted while it stood by) is taken as standing by:
        // the rule below then decides whether it starts, and it starts from
        // its district's draw instead of from nothing.
        for o in plants {
            // Judged once, on the first reading of its pump.
            if o.pump_running.is_none() || !self.pumps_seen.insert(o.id.clone()) {
                continue;
            }
            if self.tie_backed.contains(&o.id)
                && o.online
                && o.pump_running == Some(false)
                && !tripped.contains(&o.id)
                && self.standing_by.insert(o.id.clone())
            {
                self.standby_changed_ms.insert(o.id.clone(), now_ms);
            }
        }
        // Only on a forecast of every substation of the network: not while
        // the optimizer starts (a few substations reported, models young).
        let all_forecast = self
            .network
            .as_ref()
            .is_some_and(|n| forecasting >= n.substations.len());
        // Nor while a plant trips or is held out, and for 6 h after it is
        // tried again (the city's week: tried blind 6 h into its 24 h trip,
        // `chp-east` counted as running, and the boiler stood by for 15
        // minutes in the middle of the trip).
        let trip_quiet = self
            .last_trip_ms
            .is_none_or(|t| now_ms - t >= dispatch::STANDBY_AFTER_TRIP_MS);
        let standing_by: BTreeSet<NodeId> = if all_forecast && trip_quiet {
            dispatch::standby(&candidates, peak_load_w, now_ms)
                .into_iter()
                .collect()
        } else {
            BTreeSet::new()
        };
        for id in standing_by.symmetric_difference(&self.standing_by) {
            let stands = standing_by.contains(id);
            let since_ms = self.standby_changed_ms.insert(id.clone(), now_ms);
            if stands {
                // Its floor is for a pump that runs: kept for its start.
                if let Some(f) = self.floor_w.remove(id) {
                    self.resume_floor_w.insert(id.clone(), f);
                }
                self.floors_started.remove(id);
            } else {
                // Started again: its water is given time to lift before a
                // plant without heat counts as tripped.
                self.retried_ms.insert(id.clone(), now_ms);
                if since_ms.is_some_and(|t| now_ms - t < dispatch::STANDBY_SHORT_MS) {
                    self.standby_cut_short.insert(id.clone());
                } else {
                    self.standby_cut_short.remove(id);
                }
                // It takes its district back: its floor starts at what the
                // district draws now (losses included), or at the floor it
                // stood by with if that is more (found on the city in
                // December: started from the little it made in its first
                // minutes, 80 of the 158 MW it made before, its floor took
                // 5 h to climb back and its district's rooms fell to
                // 17.4 °C).
                let draw_w = self.district_draw_w(id, subs);
                let remembered = self.resume_floor_w.remove(id);
                let floor = match (remembered, draw_w) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                if let Some(f) = floor.filter(|f| *f > 0.0) {
                    self.floor_w.insert(id.clone(), f);
                    self.floors_started.insert(id.clone());
                }
            }
            tracing::info!(
                plant_id = %id,
                network_time_ms = now_ms,
                peak_load_w,
                standing_by = stands,
                "plant standby (its district fed through its tie lines while it stands by)"
            );
        }
        self.standing_by = standing_by;

        // Transport delays from the measured flows; a plant tripped or
        // standing by (its pump stopped, its district fed through the ties:
        // this round's decision above) feeds nobody.
        let flows: BTreeMap<NodeId, f64> = subs
            .iter()
            .filter_map(|s| Some((s.id.clone(), s.flow_kg_s?)))
            .collect();
        let out_of_service: Vec<NodeId> = tripped
            .iter()
            .chain(self.standing_by.iter())
            .cloned()
            .collect();
        let delays: Delays = self
            .layout
            .as_ref()
            .map(|l| l.delays(&flows, &out_of_service))
            .unwrap_or_default();

        // Regions: the substations each plant serves (its own district while
        // it runs, see `Layout::delays`), their critical pressure and most
        // open valve.
        let regions = regions(subs, &delays, &self.design, self.dp_target_pa);
        // A lead at its head limit (ordered the most, or its pump unable to
        // make what it is ordered) has nothing more to give: while the regions
        // it answers for are short, every other plant with pump to spare
        // raises its floor too, and none lowers it (found on the city: the
        // lead at full head, `chp-east` at what its pump could push, 33
        // substations short with their valves wide open, while the boiler's
        // pump idled at 110 kPa because its own district was warm).
        let lead_spent = self.lead.as_ref().is_some_and(|lead| {
            let measured = plants
                .iter()
                .find(|p| &p.id == lead)
                .and_then(|p| p.head_pa);
            self.head_pa.is_some_and(|h| {
                h >= ahead::HEAD_LIMITS_PA.1 - 1.0 || measured.is_some_and(|m| m < 0.95 * h)
            })
        });
        let spent_regions_short = lead_spent
            && self.lead.as_ref().is_some_and(|lead| {
                let available = |plant: &NodeId| {
                    !tripped.contains(plant) && plants.iter().any(|p| &p.id == plant && p.online)
                };
                let spent = |plant: &NodeId| self.exhausted(plant, available(plant));
                lead_view(&regions, lead, spent).is_some_and(|r| {
                    ahead::region_need(r.critical_dp_pa, r.most_open, self.dp_target_pa)
                        == ahead::RegionNeed::More
                })
            });
        for (o, p) in &net_plants {
            let Some(p) = p else {
                continue;
            };
            let region = regions.get(&o.id);
            if self.lead.as_ref() == Some(&o.id)
                || region.is_none()
                || tripped.contains(&o.id)
                || self.standing_by.contains(&o.id)
            {
                self.floor_w.remove(&o.id);
                continue;
            }
            let own = region.map_or(ahead::RegionNeed::Hold, |r| {
                ahead::region_need(r.critical_dp_pa, r.most_open, self.dp_target_pa)
            });
            let need = match own {
                _ if spent_regions_short => ahead::RegionNeed::More,
                ahead::RegionNeed::Less if lead_spent => ahead::RegionNeed::Hold,
                n => n,
            };
            let deliverable = self
                .deliverable_w
                .get(&o.id)
                .map_or(p.capacity_w, |c| c.min(p.capacity_w));
            // Bumpless: a plant first seen (the optimizer starting, or
            // restarting) keeps what it makes as its floor, which falls only
            // as its district shows pressure to spare (found on the city:
            // dropped at once to its economic minimum, the boiler's district
            // went cold for the hours its floor took to climb back).
            let first_sight = self.floors_started.insert(o.id.clone());
            let floor_w = self
                .floor_w
                .get(&o.id)
                .copied()
                .or(o.heat_w.filter(|q| first_sight && *q > 0.0));
            let ratchet = ahead::next_floor(floor_w, o.heat_w, need, p.capacity_w, deliverable);
            let district = ahead::district_floor(self.district_w(&o.id, &need_now_w), deliverable);
            match ratchet.into_iter().chain(district).reduce(f64::max) {
                Some(f) => self.floor_w.insert(o.id.clone(), f),
                None => self.floor_w.remove(&o.id),
            };
        }
        let specs: Vec<PlantSpec> = net_plants
            .iter()
            .filter_map(|(o, p)| {
                let p = (*p)?;
                let capacity_w = self
                    .deliverable_w
                    .get(&o.id)
                    .map_or(p.capacity_w, |c| c.min(p.capacity_w));
                let floor_w = self.floor_w.get(&o.id).copied().unwrap_or(0.0);
                Some(PlantSpec {
                    id: o.id.clone(),
                    capacity_w,
                    min_load_w: p.min_load_w.max(floor_w).min(capacity_w),
                    ramp_w_per_s: p.ramp_w_per_s,
                    price_yuan_per_gj: p.heat_price_yuan_per_gj,
                    available: o.online
                        && !tripped.contains(&o.id)
                        && !self.standing_by.contains(&o.id),
                    output_w: o.heat_w,
                    must_run,
                })
            })
            .collect();
        let dispatched = if specs.is_empty() {
            note = "no network description: plants get supply temperatures only".into();
            None
        } else {
            match dispatch::dispatch(&DispatchInput {
                plants: specs.clone(),
                demand_w: demand_w.clone(),
                loss_share: self.loss_share,
                step_s: STEP_S,
            }) {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::error!(error = %e, "dispatch failed: plants keep their last orders");
                    note = e.to_string();
                    None
                }
            }
        };
        // Rooms warmed ahead of a shortage of plant capacity: the forecast
        // load (losses included) over the available plants' nameplates. Not
        // the dispatch's own unserved load: that counts what plants were
        // last seen to deliver, which a pump fight or a slow heat loop lowers
        // for an hour on a mild day (found on the city's week: preheating
        // some ten times on mild days for 2–5 h each, 8–10 % more heat).
        let nameplate_w: f64 = net_plants
            .iter()
            .filter(|(o, _)| o.online && !tripped.contains(&o.id))
            .filter_map(|(_, p)| p.map(|p| p.capacity_w))
            .sum();
        let short_w: Vec<f64> = demand_w
            .iter()
            .map(|d| (d * (1.0 + self.loss_share) - nameplate_w).max(0.0))
            .collect();
        let was_k = self.preheat.raise_k();
        let preheat_k = if specs.is_empty() {
            self.preheat.update(now_ms, &[], &[])
        } else {
            self.preheat.update(now_ms, &short_w, &demand_w)
        };
        if (preheat_k > 0.0) != (was_k > 0.0) {
            tracing::info!(
                network_time_ms = now_ms,
                preheat_k,
                max_short_w = short_w.iter().fold(0.0_f64, |a, &b| a.max(b)),
                "room aim raised ahead of a shortage (0: back)"
            );
        }
        if let Some(d) = &dispatched {
            max_unserved_w = d.max_unserved_w();
            cost_yuan = d.cost_yuan;
            unserved_w = d.unserved_w.clone();
            // The lead: the plant that led before while it still runs, else
            // the largest (by nameplate) committed now. A stable lead keeps
            // its head loop; what it can deliver does not choose it.
            let nameplate = |id: &NodeId| {
                self.network
                    .as_ref()
                    .and_then(|n| n.plant(id))
                    .map_or(0.0, |p| p.capacity_w)
            };
            let committed_now: Vec<&PlantSpec> = specs
                .iter()
                .enumerate()
                .filter(|(k, _)| d.committed[*k].first() == Some(&true))
                .map(|(_, s)| s)
                .collect();
            lead_plant = committed_now
                .iter()
                .find(|s| self.lead.as_ref() == Some(&s.id))
                .or_else(|| {
                    committed_now
                        .iter()
                        .max_by(|a, b| nameplate(&a.id).total_cmp(&nameplate(&b.id)))
                })
                .map(|s| s.id.clone());
        }
        // 4. The lead's head from the critical substation and the most open valve.
        let lead_obs = lead_plant
            .as_ref()
            .and_then(|l| plants.iter().find(|p| &p.id == l));
        if self.lead != lead_plant {
            // A new lead starts from its own measured head.
            self.head_pa = None;
            self.lead = lead_plant.clone();
        }
        if let Some(lead) = lead_obs {
            let head = self
                .head_pa
                .or(lead.head_pa)
                .unwrap_or(ahead::HEAD_LIMITS_PA.0 * 4.0);
            // The lead answers for its own region and for every region whose
            // plant has nothing more to give (at its deliverable limit, or
            // out); the other regions are their plants' (floors above).
            let seen = lead_view(&regions, &lead.id, |plant| {
                self.exhausted(plant, specs.iter().any(|s| &s.id == plant && s.available))
            });
            let (critical_dp, open) = match seen {
                Some(r) => (r.critical_dp_pa, r.most_open),
                None => (critical.as_ref().map(|c| c.1), most_open),
            };
            let next = match critical_dp {
                Some(dp) => ahead::trim_head(head, dp, self.dp_target_pa, open),
                None => head.clamp(ahead::HEAD_LIMITS_PA.0, ahead::HEAD_LIMITS_PA.1),
            };
            let min_load_w = self
                .network
                .as_ref()
                .and_then(|n| n.plant(&lead.id))
                .map_or(0.0, |p| p.min_load_w);
            let next = ahead::hold_lead_flow(next, head, lead.heat_w, lead.head_pa, min_load_w);
            self.head_pa = Some(next);
        }

        // 5. Supply temperatures ahead of the delay, and the orders.
        let sub_sps: Vec<(&SupplyCurve, f64)> = subs
            .iter()
            .filter_map(|s| s.setpoint.as_ref().map(|(sp, c)| (c, *sp)))
            .collect();
        for (o, p) in &net_plants {
            let delay_s = delays.plants.get(&o.id).copied();
            let out_now = o.outdoor_c.unwrap_or(measured_out);
            let supply_at = |t_ms: i64| -> Option<f64> {
                let curve = o.curve.as_ref()?;
                let then = ahead::weather_at(
                    &self.forecast,
                    out_now,
                    t_ms + (delay_s.unwrap_or(0.0) * 1000.0) as i64,
                );
                Some(ahead::plant_supply_ahead(
                    curve,
                    o.limits_c,
                    &sub_sps,
                    out_now,
                    then.outdoor_c,
                ))
            };
            let supply_now = supply_at(now_ms);
            let supply_path: Vec<f64> = times.iter().filter_map(|&t| supply_at(t)).collect();
            let spec_index = specs.iter().position(|s| s.id == o.id);
            let heat_path = match (&dispatched, spec_index) {
                (Some(d), Some(i)) => d.heat_w[i].clone(),
                _ => Vec::new(),
            };
            let is_lead = lead_plant.as_ref() == Some(&o.id);
            let available = spec_index.is_none_or(|i| specs[i].available);
            // The order: the lead holds the head, the others make their heat.
            let dispatch = if dispatched.is_none() || !o.online {
                None
            } else if is_lead {
                self.head_pa.map(|h| Action::SetPumpHead { head_pa: h })
            } else {
                // Orders move by at most a share of the capacity a round, so
                // that plants and the lead do not chase each other.
                let cap = p.map_or(0.0, |p| p.capacity_w);
                heat_path.first().map(|&h| {
                    let h = match self.sent.get(&o.id) {
                        Some(Action::SetHeatOutput { heat_w: old }) if *old > 0.0 && h > 0.0 => {
                            let step = MAX_ORDER_STEP_SHARE * cap;
                            h.clamp(old - step, old + step)
                        }
                        _ => h,
                    };
                    Action::SetHeatOutput { heat_w: h }
                })
            };
            // One line per plant and round: what it made, its floor, and what
            // it is ordered (the trail behind a plant's swings).
            let (order_heat_w, order_head_pa) = match &dispatch {
                Some(Action::SetHeatOutput { heat_w }) => (Some(*heat_w), None),
                Some(Action::SetPumpHead { head_pa }) => (None, Some(*head_pa)),
                _ => (None, None),
            };
            tracing::info!(
                plant_id = %o.id,
                network_time_ms = now_ms,
                heat_w = o.heat_w,
                head_pa = o.head_pa,
                floor_w = self.floor_w.get(&o.id).copied(),
                deliverable_w = self.deliverable_w.get(&o.id).copied(),
                order_heat_w,
                order_head_pa,
                supply_sp_c = supply_now,
                tripped = tripped.contains(&o.id),
                "plant planned"
            );
            let dispatch = dispatch.filter(|a| {
                let cap = p.map_or(1.0e6, |p| p.capacity_w);
                match (self.sent.get(&o.id), a) {
                    (
                        Some(Action::SetHeatOutput { heat_w: old }),
                        Action::SetHeatOutput { heat_w: new },
                    ) => (old - new).abs() >= RESEND_SHARE * cap || (*old == 0.0) != (*new == 0.0),
                    (
                        Some(Action::SetPumpHead { head_pa: old }),
                        Action::SetPumpHead { head_pa: new },
                    ) => (old - new).abs() >= RESEND_HEAD_PA,
                    _ => true,
                }
            });
            if let Some(a) = &dispatch {
                self.sent.insert(o.id.clone(), a.clone());
                self.sent_at_ms.insert(o.id.clone(), now_ms);
            }
            if let Some(sp) = supply_now {
                orders.push(PlantOrder {
                    plant: o.id.clone(),
                    supply_temp_c: sp,
                    dispatch,
                });
            }
            view_plants.push(PlantPlanView {
                id: o.id.clone(),
                kind: p.map_or(String::new(), |p| p.kind.name().to_string()),
                available,
                lead: is_lead,
                delay_s,
                price_yuan_per_gj: p.map_or(0.0, |p| p.heat_price_yuan_per_gj),
                heat_w: heat_path,
                supply_temp_c: supply_path,
            });
        }
        if max_unserved_w > 0.0 {
            tracing::warn!(
                unserved_w = max_unserved_w,
                "forecast load above what the available plants can make"
            );
        }
        if !self.standing_by.is_empty() {
            let ids: Vec<&str> = self.standing_by.iter().map(NodeId::as_str).collect();
            if !note.is_empty() {
                note.push_str("; ");
            }
            note.push_str(&format!(
                "standing by: {} (district fed through the tie lines)",
                ids.join(", ")
            ));
        }
        self.view = Some(PlanView {
            planned_at_ms: now_ms,
            mode: PlanMode::Optimizing.name().into(),
            step_ms,
            plants: view_plants,
            demand_w,
            unserved_w,
            loss_share: self.loss_share,
            cost_yuan,
            critical_substation: critical.as_ref().map(|c| c.0.clone()),
            critical_diff_pressure_pa: critical.as_ref().map(|c| c.1),
            diff_pressure_target_pa: self.dp_target_pa,
            head_setpoint_pa: lead_plant.as_ref().and(self.head_pa),
            lead_plant,
            demand_models: self
                .demand
                .iter()
                .map(|(id, m)| DemandModelView {
                    substation: id.clone(),
                    samples: m.samples(),
                    mae_next_w: m.next.mae_w(),
                    mae_day_w: m.day.mae_w(),
                })
                .collect(),
            weather_forecast: !self.forecast.is_empty(),
            note,
            room_target_c: Some(self.room_target_c()),
            curve_sun_k: Some(self.sun_ahead_k(now_ms)),
        });
        RoundOutcome {
            orders,
            max_unserved_w,
            tripped,
        }
    }
}

/// The substations one plant serves, as the head and floor loops see them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Region {
    critical_dp_pa: Option<f64>,
    most_open: Option<f64>,
}

impl Region {
    fn merge(self, o: Region) -> Region {
        let min = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Region {
            critical_dp_pa: min(self.critical_dp_pa, o.critical_dp_pa),
            most_open: max(self.most_open, o.most_open),
        }
    }
}

/// A substation's valve as the pressure loops count it
/// ([`ahead::counted_valve`]), its flow measured against its design flow,
/// scaled up below the design outdoor temperature
/// ([`ahead::design_load_ratio`]).
fn counted_valve(s: &SubstationObs, design: &DesignFlows, dp_target_pa: f64) -> Option<f64> {
    let load_ratio = ahead::design_load_ratio(s.outdoor_c, design.outdoor_design_c);
    let flow_share = s
        .flow_kg_s
        .zip(design.flow_kg_s.get(&s.id))
        .map(|(f, d)| f / (d * load_ratio));
    ahead::counted_valve(
        s.valve_position,
        s.diff_pressure_pa,
        flow_share,
        dp_target_pa,
    )
}

/// Plants whose junction a tie line joins to another plant's.
fn tie_backed(net: &Network) -> BTreeSet<NodeId> {
    net.plants
        .iter()
        .filter(|p| {
            p.junction.as_ref().is_some_and(|j| {
                net.pipes
                    .iter()
                    .any(|pipe| pipe.tie && (&pipe.from == j || &pipe.to == j))
            })
        })
        .map(|p| p.id.clone())
        .collect()
}

/// The substations' design primary flows and the outdoor temperature they
/// are reckoned for.
#[derive(Clone, Debug, Default)]
struct DesignFlows {
    /// Each substation's design primary flow, kg/s ([`design_flows`]).
    flow_kg_s: BTreeMap<NodeId, f64>,
    outdoor_design_c: f64,
}

/// Each substation's design primary flow from the asset register: its design
/// heat over the serving plant's design temperature drop, as its valve was
/// sized. Substations without a usable design are left out.
fn design_flows(net: &Network) -> DesignFlows {
    DesignFlows {
        flow_kg_s: net
            .substations
            .iter()
            .filter_map(|s| {
                let flow = s.design_primary_flow_kg_s(net.plant(&s.plant)?);
                (flow.is_finite() && flow > 0.0).then(|| (s.id.clone(), flow))
            })
            .collect(),
        outdoor_design_c: net.outdoor_design_temp_c,
    }
}

/// Each plant's region, from the plant each substation is served by.
fn regions(
    subs: &[SubstationObs],
    delays: &Delays,
    design: &DesignFlows,
    dp_target_pa: f64,
) -> BTreeMap<NodeId, Region> {
    let mut out: BTreeMap<NodeId, Region> = BTreeMap::new();
    for s in subs {
        let Some(d) = delays.substations.get(&s.id) else {
            continue;
        };
        let one = Region {
            critical_dp_pa: s.diff_pressure_pa.filter(|v| v.is_finite()),
            most_open: counted_valve(s, design, dp_target_pa),
        };
        let r = out.entry(d.plant.clone()).or_default();
        *r = r.merge(one);
    }
    out
}

/// What the lead's head loop answers for: its own region and the regions of
/// plants that are `exhausted`. `None` without regions (no layout).
fn lead_view(
    regions: &BTreeMap<NodeId, Region>,
    lead: &NodeId,
    exhausted: impl Fn(&NodeId) -> bool,
) -> Option<Region> {
    regions
        .iter()
        .filter(|(plant, _)| *plant == lead || exhausted(plant))
        .map(|(_, r)| *r)
        .reduce(Region::merge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(id: &str, heat_mw: f64, dp: f64) -> SubstationObs {
        SubstationObs {
            id: NodeId::new(id).unwrap(),
            outdoor_c: Some(0.0),
            heat_w: Some(heat_mw * 1e6),
            flow_kg_s: Some(20.0),
            diff_pressure_pa: Some(dp),
            valve_position: Some(0.5),
            setpoint: None,
        }
    }

    fn plant_obs(net: &Network, k: usize, heat_mw: f64) -> PlantObs {
        let p = &net.plants[k];
        PlantObs {
            id: p.id.clone(),
            online: true,
            outdoor_c: Some(0.0),
            heat_w: Some(heat_mw * 1e6),
            head_pa: Some(4.0e5),
            supply_temp_c: Some(100.0),
            return_temp_c: Some(55.0),
            flow_kg_s: None,
            supply_setpoint_c: None,
            pump_running: Some(true),
            trip_alarm: false,
            curve: Some(
                SupplyCurve::new(
                    vec![
                        model::CurvePoint {
                            outdoor_temp_c: -7.0,
                            supply_temp_c: 110.0,
                        },
                        model::CurvePoint {
                            outdoor_temp_c: 10.0,
                            supply_temp_c: 70.0,
                        },
                    ],
                    70.0,
                    120.0,
                    (50.0, 130.0),
                )
                .unwrap(),
            ),
            limits_c: (50.0, 130.0),
        }
    }

    #[test]
    fn the_ring_is_dispatched_cheapest_first_and_the_boiler_takes_over_a_trip() {
        let net = Arc::new(Network::sample("ring").unwrap());
        let mut st = PlanState::new(Some(net.clone()), 50_000.0);
        // Ring: chp-north 20 MW (24.5 yuan/GJ), boiler-south 12 MW (48).
        let subs: Vec<SubstationObs> = net
            .substations
            .iter()
            .map(|s| sub(s.id.as_str(), 2.0, 80_000.0))
            .collect();
        let total = 2.0e6 * subs.len() as f64;
        // The boiler makes what it is told (its minimum, see below).
        let plants = vec![
            plant_obs(&net, 0, total / 1e6 - 1.2),
            plant_obs(&net, 1, 1.2),
        ];
        let out = st.round(1_000_000, 300_000, &subs, &plants);
        let v = st.view().unwrap().clone();
        assert_eq!(v.lead_plant.as_ref().map(NodeId::as_str), Some("chp-north"));
        // Persistence (young models): demand = measured heat.
        assert!((v.demand_w[0] - total).abs() < 1.0, "{:?}", v.demand_w);
        // The meshed ring keeps both pumps running: the dear boiler at the
        // least it may make, most of its own district's 2 MW (more than its
        // 1.2 MW minimum), while the CHP plant covers the rest at no less
        // than its own minimum.
        let district_w = ahead::DISTRICT_NEED_SHARE * 2.0e6 * (1.0 + st.loss_share);
        assert!(district_w > 1.2e6);
        assert!((v.plants[1].heat_w[0] - district_w).abs() < 1.0e4, "{v:?}");
        // The lead gets a head, the boiler a heat order.
        assert!(
            out.orders
                .iter()
                .any(|o| matches!(o.dispatch, Some(Action::SetPumpHead { .. })))
        );
        // The critical substation is well above 50 kPa: the head comes down.
        assert!(v.head_setpoint_pa.unwrap() < 4.0e5);
        // The CHP trips: the boiler takes what it can, the rest is unserved.
        let mut tripped = plants.clone();
        tripped[0].trip_alarm = true;
        let out = st.round(1_300_000, 300_000, &subs, &tripped);
        let v = st.view().unwrap().clone();
        assert_eq!(out.tripped.len(), 1);
        assert_eq!(
            v.lead_plant.as_ref().map(NodeId::as_str),
            Some("boiler-south")
        );
        assert_eq!(v.plants[0].heat_w[0], 0.0);
        // The alarm clears: the CHP stays out for the hold time, then returns.
        let out = st.round(1_300_000 + TRIP_HOLD_MS - 1, 300_000, &subs, &plants);
        assert_eq!(out.tripped.len(), 1);
        let out = st.round(1_300_000 + TRIP_HOLD_MS, 300_000, &subs, &plants);
        assert!(out.tripped.is_empty());
        let need = total * (1.0 + v.loss_share);
        if need > 12.0e6 {
            assert!(
                (out.max_unserved_w - (need - 12.0e6)).abs() < 1.0e4,
                "{}",
                out.max_unserved_w
            );
        }
    }

    /// The ring, a fresh plan, and the plant each substation is served by.
    fn ring_regions() -> (Arc<Network>, PlanState, BTreeMap<NodeId, NodeId>) {
        let net = Arc::new(Network::sample("ring").unwrap());
        let st = PlanState::new(Some(net.clone()), 50_000.0);
        let flows: BTreeMap<NodeId, f64> = net
            .substations
            .iter()
            .map(|s| (s.id.clone(), 20.0))
            .collect();
        let served = st
            .layout
            .as_ref()
            .unwrap()
            .delays(&flows, &[])
            .substations
            .into_iter()
            .map(|(s, d)| (s, d.plant))
            .collect();
        (net, st, served)
    }

    /// The city, its boiler's index, and how many substations its own
    /// district has.
    fn city_boiler() -> (Arc<Network>, usize, f64) {
        let net = Arc::new(Network::sample("city").unwrap());
        let boiler = net
            .plants
            .iter()
            .position(|p| p.id.as_str() == "boiler-south")
            .unwrap();
        let own = net
            .substations
            .iter()
            .filter(|s| s.plant == net.plants[boiler].id)
            .count() as f64;
        (net, boiler, own)
    }

    /// What the optimizer saves after its rounds (as JSON in sled), taken
    /// back by a restarted one: it carries on as if it had never stopped;
    /// without it a restarted planner knows no demand and runs every plant.
    #[test]
    fn a_restarted_planner_restored_from_its_saved_memory_decides_as_if_never_stopped() {
        let (net, boiler, _) = city_boiler();
        let boiler_id = net.plants[boiler].id.clone();
        let n = net.substations.len() as f64;
        let subs: Vec<SubstationObs> = net
            .substations
            .iter()
            .map(|s| sub(s.id.as_str(), 400.0 / n, 200_000.0))
            .collect();
        let plants: Vec<PlantObs> = (0..net.plants.len())
            .map(|k| plant_obs(&net, k, 400.0 / 3.0))
            .collect();
        let mut st = PlanState::new(Some(net.clone()), 50_000.0);
        let mut t = 1_000_000;
        for _ in 0..(MIN_MODEL_SPAN_MS / 300_000 + 3) {
            st.round(t, 300_000, &subs, &plants);
            t += 300_000;
        }
        assert!(st.standing_by.contains(&boiler_id), "{:?}", st.standing_by);
        let saved = (
            serde_json::to_string(&st.learned()).unwrap(),
            serde_json::to_string(&st.dispatch_memory()).unwrap(),
        );
        let mut back = PlanState::new(Some(net.clone()), 50_000.0);
        back.restore_learned(serde_json::from_str(&saved.0).unwrap());
        back.restore_dispatch(serde_json::from_str(&saved.1).unwrap());
        let mut fresh = PlanState::new(Some(net.clone()), 50_000.0);
        let temps = |out: RoundOutcome| -> Vec<(NodeId, f64)> {
            out.orders
                .into_iter()
                .map(|o| (o.plant, o.supply_temp_c))
                .collect()
        };
        for _ in 0..3 {
            let (a, b, c) = (
                st.round(t, 300_000, &subs, &plants),
                back.round(t, 300_000, &subs, &plants),
                fresh.round(t, 300_000, &subs, &plants),
            );
            assert_eq!(back.standing_by, st.standing_by);
            assert_eq!(back.floor_w, st.floor_w);
            assert_eq!(back.lead, st.lead);
            assert!(fresh.standing_by.is_empty());
            assert!(st.standing_by.contains(&boiler_id));
            assert_eq!(temps(a), temps(b));
            drop(c);
            // The same heat planned for every plant over the horizon.
            let heat = |p: &PlanState| -> Vec<(NodeId, Vec<f64>)> {
                p.view()
                    .unwrap()
                    .plants
                    .iter()
                    .map(|v| (v.id.clone(), v.heat_w.clone()))
                    .collect()
            };
            assert_eq!(heat(&back), heat(&st));
            assert_ne!(
                heat(&fresh),
                heat(&st),
                "a fresh planner planned as the restored one"
            );
            t += 300_000;
        }
        // A damaged or foreign memory is not taken whole.
        let mut odd = st.dispatch_memory();
        odd.standing_by
            .insert(NodeId::new("no-such-plant").unwrap());
        odd.head_pa = Some(f64::NAN);
        let mut back = PlanState::new(Some(net.clone()), 50_000.0);
        back.restore_dispatch(odd);
        assert_eq!(back.standing_by, st.standing_by);
        assert_eq!(back.head_pa, None);
    }

    #[test]
    fn the_citys_boiler_stands_by_while_the_chps_carry_the_load_and_starts_when_they_cannot() {
        let (net, boiler, south) = city_boiler();
        let mut st = PlanState::new(Some(net.clone()), 50_000.0);
        assert_eq!(st.tie_backed.len(), 3, "{:?}", st.tie_backed);
        let n = net.substations.len() as f64;
        let mut t = 1_000_000;
        let mut round = |st: &mut PlanState, total_mw: f64| {
            let subs: Vec<SubstationObs> = net
                .substations
                .iter()
                .map(|s| sub(s.id.as_str(), total_mw / n, 200_000.0))
                .collect();
            let plants: Vec<PlantObs> = (0..net.plants.len())
                .map(|k| plant_obs(&net, k, total_mw / 3.0))
                .collect();
            let out = st.round(t, 300_000, &subs, &plants);
            t += 300_000;
            out.orders
                .into_iter()
                .find(|o| o.plant == net.plants[boiler].id)
                .and_then(|o| o.dispatch)
        };
        // A mild day, 400 MW: the CHPs (656 MW) carry 1.15 × 420 MW
        // (losses included), but nothing stands by before every
        // substation's demand model forecasts (a day of data)...
        for _ in 0..(MIN_MODEL_SPAN_MS / 300_000) {
            round(&mut st, 400.0);
            assert!(st.standing_by.is_empty());
        }
        // Not within 6 h of a plant's trip...
        let now = 1_000_000 + MIN_MODEL_SPAN_MS / 300_000 * 300_000;
        st.last_trip_ms = Some(now - dispatch::STANDBY_AFTER_TRIP_MS + 300_000);
        assert_eq!(round(&mut st, 400.0), None);
        assert!(st.standing_by.is_empty());
        // ...then the boiler is told to stop, its floor kept for its start.
        let boiler_id = net.plants[boiler].id.clone();
        let boiler_cap = net.plants[boiler].capacity_w;
        st.floor_w.insert(boiler_id.clone(), 150.0e6);
        let order = round(&mut st, 400.0);
        assert_eq!(order, Some(Action::SetHeatOutput { heat_w: 0.0 }));
        assert!(st.standing_by.contains(&boiler_id));
        assert!(!st.floor_w.contains_key(&boiler_id));
        assert_eq!(st.resume_floor_w.get(&boiler_id), Some(&150.0e6));
        let note = &st.view().unwrap().note;
        assert!(note.contains("standing by: boiler-south"), "{note}");
        // Cold: 700 MW is more than the CHPs can make; it starts again as
        // soon as the (smoothed) demand shows it, with time to lift its
        // water before it can count as tripped.
        let mut order = None;
        for _ in 0..12 {
            order = round(&mut st, 700.0);
            if order.is_some() {
                break;
            }
        }
        assert!(
            matches!(order, Some(Action::SetHeatOutput { heat_w }) if heat_w > 0.0),
            "{order:?}"
        );
        assert!(st.standing_by.is_empty());
        assert!(st.retried_ms.contains_key(&net.plants[boiler].id));
        // It starts from what its district draws now, more than the floor
        // it stood by with (one step down: its district has pressure to
        // spare), not from what it makes in its first minutes.
        let draw_w = south * 700.0e6 / n * (1.0 + st.loss_share);
        assert!(draw_w > 150.0e6, "{draw_w}");
        let floor = st.floor_w.get(&boiler_id).copied();
        let want = draw_w - ahead::FLOOR_FALL_SHARE * boiler_cap;
        assert!(
            floor.is_some_and(|f| (f - want).abs() < 1.0),
            "{floor:?} vs {want}"
        );
        assert!(st.resume_floor_w.is_empty());
        // Stood by for less than an hour: cut short, it will run a day.
        assert!(st.standby_cut_short.contains(&boiler_id));
        // Mild again for the next 2 h (within 6 h of its start): it keeps
        // running.
        for _ in 0..24 {
            let order = round(&mut st, 400.0);
            assert!(
                !matches!(order, Some(Action::SetHeatOutput { heat_w }) if heat_w == 0.0),
                "{order:?}"
            );
            assert!(st.standing_by.is_empty());
        }
    }

    #[test]
    fn a_restarted_optimizer_starts_a_stopped_tie_backed_plant_from_its_districts_draw() {
        let (net, boiler, south) = city_boiler();
        let boiler_id = net.plants[boiler].id.clone();
        let n = net.substations.len() as f64;
        let subs: Vec<SubstationObs> = net
            .substations
            .iter()
            .map(|s| sub(s.id.as_str(), 400.0 / n, 200_000.0))
            .collect();
        // The boiler stood by under the optimizer before: its pump stopped.
        let mut plants: Vec<PlantObs> = (0..net.plants.len())
            .map(|k| plant_obs(&net, k, 200.0))
            .collect();
        plants[boiler].heat_w = Some(0.0);
        plants[boiler].pump_running = Some(false);
        let mut st = PlanState::new(Some(net.clone()), 50_000.0);
        let out = st.round(1_000_000, 300_000, &subs, &plants);
        // Its demand models young, the new optimizer starts it, from what
        // its district draws (one step down: pressure to spare) rather
        // than from nothing.
        assert!(st.standing_by.is_empty());
        let draw_w = south * 400.0e6 / n * (1.0 + st.loss_share);
        let want = draw_w - ahead::FLOOR_FALL_SHARE * net.plants[boiler].capacity_w;
        let floor = st.floor_w.get(&boiler_id).copied();
        assert!(
            floor.is_some_and(|f| (f - want).abs() < 1.0),
            "{floor:?} vs {want}"
        );
        let order = out.orders.iter().find(|o| o.plant == boiler_id);
        assert!(
            matches!(order.and_then(|o| o.dispatch.clone()), Some(Action::SetHeatOutput { heat_w }) if heat_w >= want - 1.0),
            "{order:?}"
        );
    }

    #[test]
    fn a_spent_lead_hands_its_short_region_to_a_plant_with_pump_to_spare() {
        let (net, mut st, served) = ring_regions();
        let (chp, boiler) = (net.plants[0].id.clone(), net.plants[1].id.clone());
        let boiler_cap = net.plants[1].capacity_w;
        // The lead's district is short, the boiler's has pressure to spare.
        let subs: Vec<SubstationObs> = net
            .substations
            .iter()
            .map(|s| {
                let dp = if served[&s.id] == chp {
                    20_000.0
                } else {
                    200_000.0
                };
                sub(s.id.as_str(), 1.0, dp)
            })
            .collect();
        let total_mw = net.substations.len() as f64;
        let plants = vec![plant_obs(&net, 0, total_mw - 1.2), plant_obs(&net, 1, 1.2)];
        // The lead has head to give: it is its job; the boiler's floor (what
        // it made when first seen: bumpless) falls, its district having
        // pressure to spare.
        st.round(1_000_000, 300_000, &subs, &plants);
        let v = st.view().unwrap().clone();
        assert_eq!(v.lead_plant.as_ref(), Some(&chp));
        assert!(v.head_setpoint_pa.unwrap() > 4.0e5, "{v:?}");
        let fallen = 1.2e6 - ahead::FLOOR_FALL_SHARE * boiler_cap;
        assert!(
            st.floor_w
                .get(&boiler)
                .is_some_and(|f| (f - fallen).abs() < 1.0),
            "{:?}",
            st.floor_w
        );
        // The lead at its head limit: the boiler's floor rises by a step.
        st.head_pa = Some(ahead::HEAD_LIMITS_PA.1);
        st.round(1_300_000, 300_000, &subs, &plants);
        let want = 1.2e6 + ahead::FLOOR_RISE_SHARE * boiler_cap;
        let floor = st.floor_w.get(&boiler).copied();
        assert!(
            floor.is_some_and(|f| (f - want).abs() < 1.0e4),
            "{floor:?} vs {want}"
        );
        // Its pump cannot make the head it is ordered (4 of 20 bar): spent
        // too; delivered, the boiler's floor rises again and does not fall
        // while the lead's region is short.
        let mut weak = plants.clone();
        weak[1].heat_w = Some(want);
        st.head_pa = Some(1.0e6);
        st.round(1_600_000, 300_000, &subs, &weak);
        let next = st.floor_w.get(&boiler).copied().unwrap_or(0.0);
        assert!(
            next > want + 0.9 * ahead::FLOOR_RISE_SHARE * boiler_cap,
            "{next}"
        );
    }

    #[test]
    fn a_wide_open_valve_short_of_its_design_flow_raises_its_plants_floor_at_any_pressure() {
        let (net, _, served) = ring_regions();
        let boiler = net.plants[1].id.clone();
        let boiler_cap = net.plants[1].capacity_w;
        let design = design_flows(&net);
        // The boiler's district reads 130 kPa, more than twice the target,
        // with its valves wide open; the CHP's district has room.
        let subs_at = |flow_share: f64, outdoor_c: f64| -> Vec<SubstationObs> {
            net.substations
                .iter()
                .map(|s| {
                    if served[&s.id] == boiler {
                        SubstationObs {
                            valve_position: Some(1.0),
                            flow_kg_s: Some(flow_share * design.flow_kg_s[&s.id]),
                            outdoor_c: Some(outdoor_c),
                            ..sub(s.id.as_str(), 1.0, 130_000.0)
                        }
                    } else {
                        sub(s.id.as_str(), 1.0, 200_000.0)
                    }
                })
                .collect()
        };
        let total_mw = net.substations.len() as f64;
        let plants = vec![plant_obs(&net, 0, total_mw - 1.2), plant_obs(&net, 1, 1.2)];
        // Half its design flow: short of pressure, whatever it reads; the
        // boiler's floor rises by a step (the city's boiler district).
        let mut st = PlanState::new(Some(net.clone()), 50_000.0);
        st.round(1_000_000, 300_000, &subs_at(0.5, 0.0), &plants);
        let want = 1.2e6 + ahead::FLOOR_RISE_SHARE * boiler_cap;
        let floor = st.floor_w.get(&boiler).copied();
        assert!(
            floor.is_some_and(|f| (f - want).abs() < 1.0e4),
            "{floor:?} vs {want}"
        );
        // Its design flow passes: more head would not warm it, and the
        // floor does not rise.
        let mut st = PlanState::new(Some(net.clone()), 50_000.0);
        st.round(1_000_000, 300_000, &subs_at(1.3, 0.0), &plants);
        let floor = st.floor_w.get(&boiler).copied().unwrap_or(0.0);
        assert!(floor <= 1.2e6 + 1.0, "{floor}");
        // Far below the design outdoor temperature the buildings ask for
        // more than their design heat: 1.3 times the design flow is short
        // of what they need there, and the floor rises again.
        let span_k = model::DESIGN_ROOM_TEMP_C - net.outdoor_design_temp_c;
        let cold_c = model::DESIGN_ROOM_TEMP_C - 1.6 * span_k;
        let mut st = PlanState::new(Some(net.clone()), 50_000.0);
        st.round(1_000_000, 300_000, &subs_at(1.3, cold_c), &plants);
        let floor = st.floor_w.get(&boiler).copied();
        assert!(
            floor.is_some_and(|f| (f - want).abs() < 1.0e4),
            "{floor:?} vs {want} at {cold_c} °C"
        );
    }

    #[test]
    fn a_starved_region_raises_its_plants_floor_and_not_the_leads_head() {
        let (net, mut st, served) = ring_regions();
        let boiler = net.plants[1].id.clone();
        let boiler_cap = net.plants[1].capacity_w;
        assert!(served.values().any(|p| *p == boiler), "{served:?}");
        // The boiler's district is short of pressure, the CHP's has plenty.
        let subs_at = |boiler_dp: f64| -> Vec<SubstationObs> {
            net.substations
                .iter()
                .map(|s| {
                    let dp = if served[&s.id] == boiler {
                        boiler_dp
                    } else {
                        200_000.0
                    };
                    sub(s.id.as_str(), 1.0, dp)
                })
                .collect()
        };
        let total_mw = net.substations.len() as f64;
        let mut boiler_mw = 1.2;
        let mut t = 1_000_000;
        let mut round = |st: &mut PlanState, dp: f64, boiler_mw: f64| {
            // The running lead makes at least its minimum load.
            let lead_mw = (total_mw - boiler_mw).max(net.plants[0].min_load_w / 1e6);
            let plants = vec![plant_obs(&net, 0, lead_mw), plant_obs(&net, 1, boiler_mw)];
            st.round(t, 300_000, &subs_at(dp), &plants);
            t += 300_000;
            st.view().unwrap().clone()
        };
        let v = round(&mut st, 20_000.0, boiler_mw);
        assert_eq!(v.lead_plant.as_ref(), Some(&net.plants[0].id));
        let first = v.plants[1].heat_w[0];
        // Its floor: what it makes plus a step of its nameplate.
        let want = 1.2e6 + ahead::FLOOR_RISE_SHARE * boiler_cap;
        assert!((first - want).abs() < 1.0e4, "{first} vs {want}");
        // The lead's own region has pressure to spare: its head comes down.
        assert!(v.head_setpoint_pa.unwrap() < 4.0e5, "{v:?}");
        // Not delivered yet: the floor holds.
        let v = round(&mut st, 20_000.0, boiler_mw);
        assert!((v.plants[1].heat_w[0] - first).abs() < 1.0e4);
        // Delivered, still short: one more step.
        boiler_mw = first / 1e6;
        let v = round(&mut st, 20_000.0, boiler_mw);
        let second = v.plants[1].heat_w[0];
        assert!((second - (first + ahead::FLOOR_RISE_SHARE * boiler_cap)).abs() < 1.0e4);
        // Pressure to spare: the floor falls slowly, down to most of what
        // its own district needs (its one substation, 1 MW), never below.
        boiler_mw = second / 1e6;
        let v = round(&mut st, 150_000.0, boiler_mw);
        let third = v.plants[1].heat_w[0];
        assert!((third - (second - ahead::FLOOR_FALL_SHARE * boiler_cap)).abs() < 1.0e4);
        for _ in 0..100 {
            round(&mut st, 150_000.0, boiler_mw);
        }
        let district_w = ahead::DISTRICT_NEED_SHARE * 1.0e6 * (1.0 + st.loss_share);
        assert_eq!(st.floor_w.len(), 1, "{:?}", st.floor_w);
        let floor = st.floor_w[&boiler];
        assert!((floor - district_w).abs() < 1.0, "{floor} vs {district_w}");
    }

    #[test]
    fn a_forecast_cold_wave_raises_the_plant_supply_ahead_of_the_delay() {
        let net = Arc::new(Network::sample("demo").unwrap());
        let mut st = PlanState::new(Some(net.clone()), 50_000.0);
        let subs: Vec<SubstationObs> = net
            .substations
            .iter()
            .map(|s| sub(s.id.as_str(), 1.0, 80_000.0))
            .collect();
        let plants = vec![plant_obs(&net, 0, 6.0)];
        let now = 10 * 3_600_000;
        let calm = st.round(now, 300_000, &subs, &plants).orders[0].supply_temp_c;
        // A front: −10 °C ten minutes from now, before the water arrives.
        st.set_forecast(vec![
            WeatherAhead {
                time_ms: now,
                outdoor_c: 0.0,
                solar_w_m2: 0.0,
            },
            WeatherAhead {
                time_ms: now + 600_000,
                outdoor_c: -10.0,
                solar_w_m2: 0.0,
            },
        ]);
        let cold = st.round(now + 300_000, 300_000, &subs, &plants).orders[0].supply_temp_c;
        let v = st.view().unwrap();
        let delay = v.plants[0].delay_s.unwrap();
        // Demo pipes at 20 kg/s: about an hour (V·ρ/ṁ, checked in `transport`).
        assert!(delay > 600.0 && delay < 4.0 * 3600.0, "{delay}");
        assert!(cold > calm + 5.0, "{calm} → {cold}");
        assert!(v.weather_forecast);
        // No sun in that forecast: the substations' curves read the outdoor
        // temperature as it is.
        assert_eq!(v.curve_sun_k, Some(0.0));
        // 400 W/m² over the next hours: read 6 K milder (0.015 K per W/m²).
        st.set_forecast(
            (0..4)
                .map(|h| WeatherAhead {
                    time_ms: now + h * 3_600_000,
                    outdoor_c: 0.0,
                    solar_w_m2: 400.0,
                })
                .collect(),
        );
        st.round(now + 600_000, 300_000, &subs, &plants);
        let sun_k = st.view().unwrap().curve_sun_k.unwrap();
        assert!((sun_k - 6.0).abs() < 1e-9, "{sun_k}");
        assert_eq!(st.sun_ahead_k(now + 600_000), sun_k);
    }

    #[test]
    fn the_fixed_curve_baseline_puts_each_plant_on_its_own_curve() {
        let net = Arc::new(Network::sample("ring").unwrap());
        let mut st = PlanState::new(Some(net.clone()), 50_000.0);
        let mut plants = vec![plant_obs(&net, 0, 9.0), plant_obs(&net, 1, 0.0)];
        plants[1].outdoor_c = Some(10.0);
        let orders = st.fixed_curve(5_000, &plants);
        // Curve −7 → 110, 10 → 70: 0 °C gives 110 − 7/17·40.
        assert!((orders[0].supply_temp_c - (110.0 - 7.0 / 17.0 * 40.0)).abs() < 1e-9);
        assert_eq!(orders[1].supply_temp_c, 70.0);
        assert!(orders.iter().all(|o| o.dispatch.is_none()));
        let v = st.view().unwrap();
        assert_eq!(v.mode, "fixed_curve");
        assert!(v.lead_plant.is_none() && v.plants.iter().all(|p| p.heat_w.is_empty()));
        // Its curves know no sun.
        assert_eq!(v.curve_sun_k, None);
    }

    /// The ring at 2 MW a substation of the CHP's district and 0.5 MW in
    /// the boiler's (its district floor under its 1.2 MW minimum), 80 kPa
    /// everywhere, after a first round with the CHP plant at 6.8 MW and the
    /// boiler at `boiler_mw`.
    fn ring_after_a_round(boiler_mw: f64) -> (PlanState, Vec<SubstationObs>, Vec<PlantObs>) {
        let net = Arc::new(Network::sample("ring").unwrap());
        let mut st = PlanState::new(Some(net.clone()), 50_000.0);
        let subs: Vec<SubstationObs> = net
            .substations
            .iter()
            .map(|s| {
                let mw = if s.plant == net.plants[1].id {
                    0.5
                } else {
                    2.0
                };
                sub(s.id.as_str(), mw, 80_000.0)
            })
            .collect();
        let plants = vec![plant_obs(&net, 0, 6.8), plant_obs(&net, 1, boiler_mw)];
        st.round(0, 300_000, &subs, &plants);
        (st, subs, plants)
    }

    #[test]
    fn a_plant_that_cannot_make_its_order_is_planned_at_what_it_delivers() {
        let (mut st, subs, mut plants) = ring_after_a_round(1.2);
        // Told its 1.2 MW minimum, the boiler makes only 0.6 MW: a round
        // later that is still its ramp; two rounds later it is what it can do.
        plants[1].heat_w = Some(0.6e6);
        st.round(300_000, 300_000, &subs, &plants);
        assert!((st.view().unwrap().plants[1].heat_w[0] - 1.2e6).abs() < 1.0e4);
        st.round(600_000, 300_000, &subs, &plants);
        let v = st.view().unwrap();
        assert!((v.plants[1].heat_w[0] - 0.612e6).abs() < 1.0e4, "{v:?}");
        // It delivers again: the estimate relaxes by 5 % of 12 MW a round.
        plants[1].heat_w = Some(0.612e6);
        st.round(900_000, 300_000, &subs, &plants);
        let v = st.view().unwrap();
        assert!((v.plants[1].heat_w[0] - 1.2e6).abs() < 1.0e4, "{v:?}");
    }

    #[test]
    fn a_tripped_plant_is_tried_again_when_its_standing_outlet_shows_its_source_back() {
        let min = 60_000;
        // Its pump stopped, its outlet 40 K above its return: the source is
        // back, tried after half an hour.
        assert!(!trip_hold_over(29 * min, Some(40.0)));
        assert!(trip_hold_over(30 * min, Some(40.0)));
        // Its standing water as cold as its return: the source is still out;
        // held 6 h, then tried blind.
        assert!(!trip_hold_over(2 * 60 * min, Some(0.5)));
        assert!(!trip_hold_over(6 * 60 * min - 1, Some(0.5)));
        assert!(trip_hold_over(6 * 60 * min, Some(0.5)));
        // Running, or without the readings: the 2 h hold.
        assert!(!trip_hold_over(2 * 60 * min - 1, None));
        assert!(trip_hold_over(2 * 60 * min, None));
        let net = Network::sample("ring").unwrap();
        let mut p = plant_obs(&net, 0, 0.0);
        assert_eq!(standing_lift_k(&p), None);
        p.pump_running = Some(false);
        assert_eq!(standing_lift_k(&p), Some(45.0));
    }

    #[test]
    fn a_plant_whose_pump_is_overpowered_keeps_its_order() {
        let (mut st, subs, mut plants) = ring_after_a_round(1.2);
        // Told its 1.2 MW minimum, the boiler puts in nothing: no water goes
        // through it against the CHP plant's head. It is not at the limit of
        // what it can make: its order stands while its pump speeds up.
        plants[1].heat_w = Some(0.0);
        for k in 1..4 {
            st.round(k * 300_000, 300_000, &subs, &plants);
            let v = st.view().unwrap();
            assert!(
                (v.plants[1].heat_w[0] - 1.2e6).abs() < 1.0e4,
                "round {k}: {v:?}"
            );
        }
    }

    #[test]
    fn a_plant_short_of_its_order_is_limited_only_by_its_pump_or_its_source() {
        // The ring's boiler: no pump rating given, so 65 m at shut-off,
        // 93.6 m at full speed (1.2): 890 kPa at its small flow.
        let full_pa = 65.0 * 1.44 * 970.0 * model::GRAVITY_M_S2;
        // (head, flow, supply, its setpoint, limited?)
        let cases = [
            // Head to spare, supply on its setpoint: another plant's pump or
            // its own loop, not a limit.
            (4.0e5, Some(3.2), 100.0, Some(100.0), false),
            // Its pump near full speed at its flow.
            (0.9 * full_pa, Some(3.2), 100.0, Some(100.0), true),
            (0.8 * full_pa, Some(3.2), 100.0, Some(100.0), false),
            // Its source short: the supply more than 3 K under its setpoint.
            (4.0e5, Some(3.2), 96.0, Some(100.0), true),
            (4.0e5, Some(3.2), 97.5, Some(100.0), false),
            // Without a flow reading the pump cannot be judged: limited.
            (4.0e5, None, 100.0, Some(100.0), true),
        ];
        for (k, (head_pa, flow, supply_c, setpoint_c, limited)) in cases.into_iter().enumerate() {
            let (mut st, subs, mut plants) = ring_after_a_round(1.2);
            // Told its 1.2 MW minimum, the boiler makes 0.6 MW for two rounds.
            plants[1].heat_w = Some(0.6e6);
            plants[1].head_pa = Some(head_pa);
            plants[1].flow_kg_s = flow;
            plants[1].supply_temp_c = Some(supply_c);
            plants[1].supply_setpoint_c = setpoint_c;
            st.round(300_000, 300_000, &subs, &plants);
            st.round(600_000, 300_000, &subs, &plants);
            let planned_w = st.view().unwrap().plants[1].heat_w[0];
            let want_w = if limited { 0.612e6 } else { 1.2e6 };
            assert!(
                (planned_w - want_w).abs() < 1.0e4,
                "case {k}: planned {planned_w} W, want {want_w} W"
            );
        }
    }

    #[test]
    fn a_plant_still_climbing_toward_its_order_is_not_taken_as_limited() {
        let (mut st, subs, mut plants) = ring_after_a_round(0.2);
        // Told its 1.2 MW minimum, the boiler climbs by 0.2 MW (more than
        // 1 % of its 12 MW) a round: still on its way, its order stands.
        for k in 1..4 {
            plants[1].heat_w = Some(0.2e6 + 0.2e6 * k as f64);
            st.round(k * 300_000, 300_000, &subs, &plants);
            let v = st.view().unwrap();
            assert!(
                (v.plants[1].heat_w[0] - 1.2e6).abs() < 1.0e4,
                "round {k}: {v:?}"
            );
        }
        // It stops climbing short of it: then it is at its limit.
        st.round(4 * 300_000, 300_000, &subs, &plants);
        let v = st.view().unwrap();
        assert!((v.plants[1].heat_w[0] - 0.816e6).abs() < 1.0e4, "{v:?}");
    }
}
