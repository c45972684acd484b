//! The dynamic network engine: parameters derived from the network
//! description, the evolving state (serializable, so a simulator can snapshot
//! and resume), and one time step.
//!
//! Every network — private pipe pairs or an explicit meshed graph with several
//! plants — runs on the same [`steady::Graph`]: a supply and a return node per
//! junction, a supply and a return pipe per pipe pair, a circulation pump per
//! plant (return → supply) and a control valve per substation (supply →
//! return). Each step:
//! 1. valves move toward their commands at their stroke speed;
//! 2. leaks (pressure-dependent orifices), illegal draining (secondary
//!    make-up taken from the primary return) and the make-up water at each
//!    pressure-holding point are settled; a holding point that cannot keep up
//!    loses pressure as its expansion vessel empties, and below the trip
//!    pressure the circulation pumps of that part stop (loss of water);
//! 3. the hydraulics are solved (global gradient algorithm, warm-started from
//!    the previous step; substations and plants have check valves);
//! 4. temperatures travel with the water: supply nodes in flow order, each
//!    pipe a plug-flow pipe cooling to the ground, junctions mixing what flows
//!    in; substations exchange heat (ε-NTU) with their secondary circuits and
//!    buildings; then the return side the same way, and the plants heat what
//!    comes back (a solar thermal plant from its storage tank, which its
//!    collectors charge: [`crate::solar`]);
//! 5. the energy and mass bookkeeping of the whole network and the solar
//!    plants' tanks is closed and kept in [`Balance`].

use model::{Network, WATER_CP_J_KG_K};
use serde::{Deserialize, Serialize};

use crate::WATER_DENSITY_KG_M3;
use crate::building::BuildingThermal;
use crate::hx::{self, counterflow};
use crate::hydraulics::{Link, LinkKind, Options, Problem, PumpCurve, SolveError, Solver};
use crate::plug::{PipeSpec, PlugPipe};
use crate::radiator::EmitterRating;
use crate::solar::{self, Tank};
use crate::steady::{self, Graph};
use crate::water::Water;

/// Full valve stroke time, s: a valve moves at most 1/STROKE per second.
pub const VALVE_STROKE_S: f64 = 60.0;
/// Time constant with which a plant's supply temperature follows its setpoint, s.
pub const PLANT_TIME_CONSTANT_S: f64 = 600.0;
/// Hottest supply a plant makes to hold its minimum load, °C.
pub const PLANT_MAX_SUPPLY_C: f64 = model::network::PLANT_SUPPLY_LIMITS_C.1;
/// Time constant with which stagnant secondary water approaches room temperature, s.
const STAGNANT_TIME_CONSTANT_S: f64 = 1_800.0;
/// Temperature of make-up water (city water), °C.
pub const MAKEUP_TEMP_C: f64 = 10.0;
/// Discharge coefficient of a leak opening (sharp-edged orifice).
pub const LEAK_DISCHARGE_COEFFICIENT: f64 = 0.6;
/// Atmospheric pressure, Pa; network pressures are gauge pressures.
pub const ATMOSPHERE_PA: f64 = 101_325.0;
/// Pumps tripped on low pressure restart this far above the trip pressure, Pa.
pub const LOW_PRESSURE_RESTART_PA: f64 = 0.3e5;
/// Make-up a substation feeds its secondary circuit from the primary return, kg/s.
pub const SECONDARY_MAKEUP_KG_S: f64 = 0.5;
/// Water a secondary circuit can lose before its pump trips on low pressure, kg.
pub const SECONDARY_RESERVE_KG: f64 = 500.0;
/// Share of a pipe's cross-section a burst opens.
pub const BURST_AREA_SHARE: f64 = 0.25;
/// What a closed isolation valve pair or a check valve still passes, as Kv, m³/h.
pub(crate) const CLOSED_KV_M3_H: f64 = 0.01;
/// Links whose water temperature moved more than this get fresh properties, K.
const WATER_REFRESH_K: f64 = 2.0;
/// Networks with this many substations step them on several threads…
const PARALLEL_FROM_SUBSTATIONS: usize = 48;
/// …on at most this many.
const MAX_THREADS: usize = 8;
/// Design opening of substation control valves when the file gives no Kv.
const DESIGN_VALVE_OPENING: f64 = 0.7;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("hydraulics failed at t={time_ms} ms ({error}); flows of the previous step were kept")]
    Hydraulics { time_ms: i64, error: SolveError },
}

#[derive(Clone, Debug)]
struct PlantParams {
    capacity_w: f64,
    min_load_w: f64,
    ramp_w_per_s: Option<f64>,
    junction: usize,
    pump: PumpCurve,
    solar: Option<SolarParams>,
}

#[derive(Clone, Debug)]
struct SolarParams {
    spec: model::network::SolarThermal,
    tank: Tank,
    /// The plant's flow at design load, kg/s: what its pump moves when it starts.
    design_flow_kg_s: f64,
}

#[derive(Clone, Debug)]
struct PipeParams {
    spec: PipeSpec,
    roughness_m: f64,
    a: usize,
    b: usize,
    /// A tie line: the plants standing at its ends (open while any of their
    /// pumps stands still). Empty for an ordinary pipe.
    tie_plants: Vec<usize>,
}

#[derive(Clone, Debug)]
struct SubstationParams {
    junction: usize,
    kv_m3_h: f64,
    ua_design_w_k: f64,
    primary_design_kg_s: f64,
    secondary_design_kg_s: f64,
    buildings: Vec<BuildingParams>,
}

#[derive(Clone, Debug)]
struct BuildingParams {
    /// Top-floor and gable-end flats: `T = T_out + r·(T_air − T_out)`.
    exposed_ratio: f64,
    thermal: BuildingThermal,
    emitter: EmitterRating,
    design_flow_kg_s: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlantState {
    pub supply_setpoint_c: f64,
    pub supply_temp_c: f64,
    pub return_temp_c: f64,
    pub flow_kg_s: f64,
    pub heat_w: f64,
    pub pump_on: bool,
    /// Pump speed relative to its rating (1 = rated).
    #[serde(default = "one")]
    pub pump_speed: f64,
    /// Whether the pump actually runs (on, not tripped, pressure held).
    #[serde(default)]
    pub pump_running: bool,
    /// Fault: the plant produces no heat.
    pub tripped: bool,
    /// Fault: the pump does not run whatever it is told.
    pub pump_tripped: bool,
    /// Fault: share of the capacity available (1 when healthy).
    #[serde(default = "one")]
    pub capacity_factor: f64,
    /// The pump's head: supply minus return pressure at the plant, Pa.
    #[serde(default)]
    pub head_pa: f64,
    /// Heat the plant put into the water at its last step, W: the reference of
    /// its ramp limit (none yet: the next step is not ramp-limited).
    #[serde(default)]
    pub output_w: Option<f64>,
    /// A solar thermal plant's collectors and tank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solar: Option<SolarState>,
}

/// A solar thermal plant's field and storage tank.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SolarState {
    /// Temperature of the (fully mixed) tank, °C.
    pub tank_temp_c: f64,
    /// Heat the collectors put into the tank over the last step, W.
    pub collector_heat_w: f64,
    /// Heat the tank lost to the outdoor air over the last step, W.
    pub tank_loss_w: f64,
    /// Heat dumped at stagnation over the last step (tank full), W.
    pub dumped_w: f64,
    /// Heat dumped at stagnation since the start, J.
    pub dumped_total_j: f64,
    /// Whether the plant delivers from the tank (its pump may run) this step.
    pub delivering: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubstationState {
    pub valve_command: f64,
    pub valve_position: f64,
    pub valve_stuck: bool,
    pub pump_on: bool,
    pub pump_tripped: bool,
    /// Whether the secondary pump actually runs (on, not tripped, circuit full).
    #[serde(default)]
    pub pump_running: bool,
    /// Secondary pump speed relative to its rating.
    #[serde(default = "one")]
    pub pump_speed: f64,
    /// Differential pressure the secondary pump makes across the buildings, Pa.
    #[serde(default)]
    pub secondary_dp_pa: f64,
    pub primary_supply_c: f64,
    pub primary_return_c: f64,
    pub primary_flow_kg_s: f64,
    pub diff_pressure_pa: f64,
    pub secondary_supply_c: f64,
    pub secondary_return_c: f64,
    pub secondary_flow_kg_s: f64,
    pub heat_w: f64,
    /// Make-up fed to the secondary circuit from the primary return, kg/s.
    #[serde(default)]
    pub secondary_makeup_kg_s: f64,
    /// Water the secondary circuit is missing, kg.
    #[serde(default)]
    pub secondary_deficit_kg: f64,
    /// The secondary pump stopped on low pressure (loss of water).
    #[serde(default)]
    pub secondary_low_pressure: bool,
    pub buildings: Vec<BuildingState>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BuildingState {
    pub valve_command: f64,
    pub valve_position: f64,
    pub valve_stuck: bool,
    pub air_c: f64,
    pub mass_c: f64,
    pub heat_w: f64,
    pub flow_kg_s: f64,
    pub return_c: f64,
    /// Fault: water drawn illegally from the heating circuit, kg/s.
    #[serde(default)]
    pub drain_kg_s: f64,
    /// Temperature of the colder top-floor and gable-end flats, °C.
    #[serde(default)]
    pub exposed_flat_c: f64,
}

/// One supply/return pipe pair: its water and flows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PipeState {
    pub supply: PlugPipe,
    #[serde(rename = "return")]
    pub ret: PlugPipe,
    /// Flow in the supply pipe, kg/s, positive from `from` to `to`.
    pub supply_flow_kg_s: f64,
    /// Flow in the return pipe, kg/s, positive from `to` back to `from`.
    pub return_flow_kg_s: f64,
    /// Supply and return outlet temperatures over the last step, °C.
    pub supply_outlet_c: f64,
    pub return_outlet_c: f64,
    /// The section's isolation valves are closed (both pipes).
    pub isolated: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Supply,
    Return,
}

/// A hole in a pipe: water leaves at the pipe's downstream junction (`to` on
/// the supply side, `from` on the return side) through an orifice,
/// `ṁ = C_d·A·√(2ρ·p)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Leak {
    pub pipe: usize,
    pub side: Side,
    pub area_m2: f64,
    /// Network time at which the section is isolated (a burst's crew), ms.
    pub isolate_at_ms: Option<i64>,
    /// Outflow over the last step, kg/s.
    pub flow_kg_s: f64,
}

/// A pressure-holding point and its part of the network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HoldingState {
    pub junction: String,
    /// Gauge pressure held now, Pa.
    pub pressure_pa: f64,
    /// Water the part is missing (taken from the expansion vessel), kg.
    pub deficit_kg: f64,
    /// Make-up water fed over the last step, kg/s.
    pub makeup_kg_s: f64,
    /// Water lost from the part (leaks, secondary make-up), kg/s.
    pub loss_kg_s: f64,
    /// The circulation pumps of this part stopped on low pressure.
    pub pumps_tripped: bool,
}

/// Energy and mass bookkeeping of the last step, network-wide.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Balance {
    pub heat_produced_w: f64,
    pub heat_delivered_w: f64,
    pub heat_lost_w: f64,
    /// Enthalpy leaving with leaks and secondary make-up, W (above 0 °C).
    pub water_out_w: f64,
    /// Enthalpy entering with make-up water, W (above 0 °C).
    pub water_in_w: f64,
    /// Change of the heat held in the pipes, W.
    pub storage_w: f64,
    /// Heat the solar plants put into the water, W (part of `heat_produced_w`,
    /// taken from their tanks).
    #[serde(default)]
    pub solar_heat_w: f64,
    /// Heat the solar collectors put into the tanks, W.
    #[serde(default)]
    pub collector_heat_w: f64,
    /// Heat the tanks lost to the outdoor air, W.
    #[serde(default)]
    pub tank_loss_w: f64,
    /// Heat dumped by stagnating solar fields (tanks full), W.
    #[serde(default)]
    pub solar_dumped_w: f64,
    /// Change of the heat held in the tanks, W.
    #[serde(default)]
    pub tank_storage_w: f64,
    /// |in − out − storage| over the gross flow of energy, the tanks
    /// included: in = fuelled plants' heat + collector heat + make-up water,
    /// out = delivered + pipe and tank losses + dumped + water leaving,
    /// storage = pipes + tanks.
    pub energy_residual: f64,
    /// Largest node mass imbalance of the hydraulic solution, kg/s.
    pub mass_residual_kg_s: f64,
    pub leak_kg_s: f64,
    pub makeup_kg_s: f64,
}

/// Everything that evolves, at one instant of network time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub time_ms: i64,
    pub outdoor_c: f64,
    pub plants: Vec<PlantState>,
    pub substations: Vec<SubstationState>,
    #[serde(default)]
    pub pipes: Vec<PipeState>,
    #[serde(default)]
    pub leaks: Vec<Leak>,
    #[serde(default)]
    pub holdings: Vec<HoldingState>,
    /// Per junction: supply and return temperatures, °C, and pressures, Pa.
    #[serde(default)]
    pub supply_temp_c: Vec<f64>,
    #[serde(default)]
    pub return_temp_c: Vec<f64>,
    #[serde(default)]
    pub supply_pressure_pa: Vec<f64>,
    #[serde(default)]
    pub return_pressure_pa: Vec<f64>,
    /// Flows of every hydraulic link (warm start of the next solve), kg/s.
    #[serde(default)]
    pub link_flows_kg_s: Vec<f64>,
    #[serde(default)]
    pub balance: Balance,
    /// Steps whose hydraulics failed (previous flows were kept).
    #[serde(default)]
    pub hydraulic_failures: u64,
}

#[derive(Clone, Debug)]
pub struct Engine {
    graph: Graph,
    plants: Vec<PlantParams>,
    pipes: Vec<PipeParams>,
    substations: Vec<SubstationParams>,
    /// Pipes touching each junction.
    incident: Vec<Vec<usize>>,
    solver: Option<Solver>,
    /// Per substation: the slope of the secondary balance at the last step
    /// (a solver hint, not state: a restored engine starts again from −1).
    secondary_slope: Vec<f64>,
    /// The leak nodes the solver's topology was analysed with.
    solver_leaks: Vec<usize>,
    /// Water properties per hydraulic link, with the temperature they are for.
    link_water: Vec<Water>,
    pub state: State,
}

/// Where the network's first hydraulic node of each kind sits.
fn sn(j: usize) -> usize {
    2 * j
}
fn rn(j: usize) -> usize {
    2 * j + 1
}

impl Engine {
    /// Whether this engine can run the network dynamically (every valid network).
    pub fn supports(net: &Network) -> Result<(), String> {
        net.validate().map_err(|e| e.to_string())
    }

    /// A fresh engine at the network's start time: the network in operation at
    /// its design temperatures, only the rooms at their initial temperature.
    pub fn new(net: &Network) -> Self {
        let graph = Graph::of(net);
        let nj = graph.junctions.len();
        let design = steady::solve(net, &steady::Conditions::default()).ok();
        let t_sup0 = net
            .plants
            .iter()
            .map(|p| p.design_supply_temp_c)
            .fold(f64::NEG_INFINITY, f64::max);
        let t_ret0 = net
            .plants
            .iter()
            .map(|p| p.design_return_temp_c)
            .sum::<f64>()
            / net.plants.len().max(1) as f64;
        let plants: Vec<PlantParams> = net
            .plants
            .iter()
            .enumerate()
            .map(|(k, p)| {
                let r = p.pump_rating();
                PlantParams {
                    capacity_w: p.capacity_w,
                    min_load_w: p.min_load_w,
                    ramp_w_per_s: p.ramp_w_per_s,
                    junction: graph.plant_at[k],
                    pump: PumpCurve::from_rated(
                        r.shutoff_head_m,
                        r.rated_flow_m3_h,
                        r.rated_head_m,
                    ),
                    solar: p.solar.as_ref().map(|spec| SolarParams {
                        spec: spec.clone(),
                        tank: Tank::of(spec),
                        design_flow_kg_s: p.design_flow_kg_s(),
                    }),
                }
            })
            .collect();
        let pipes: Vec<PipeParams> = graph
            .pipes
            .iter()
            .map(|gp| PipeParams {
                spec: PipeSpec {
                    length_m: gp.length_m,
                    diameter_m: gp.diameter_m,
                    loss_w_m_k: gp.loss_w_m_k,
                    ground_c: gp.ground_c,
                    density_kg_m3: WATER_DENSITY_KG_M3,
                },
                roughness_m: gp.roughness_m,
                a: gp.a,
                b: gp.b,
                tie_plants: if gp.tie {
                    (0..graph.plant_at.len())
                        .filter(|&k| graph.plant_at[k] == gp.a || graph.plant_at[k] == gp.b)
                        .collect()
                } else {
                    Vec::new()
                },
            })
            .collect();
        let mut incident = vec![Vec::new(); nj];
        for (k, p) in pipes.iter().enumerate() {
            incident[p.a].push(k);
            if p.b != p.a {
                incident[p.b].push(k);
            }
        }
        let t0 = net.initial_room_temp_c;
        let mut substations = Vec::new();
        let mut sub_states = Vec::new();
        for (i, s) in net.substations.iter().enumerate() {
            let plant = net.plant(&s.plant).unwrap_or(&net.plants[0]);
            let q0 = s.design_heat_w();
            let (ts0, tr0) = (
                s.secondary_design_supply_temp_c,
                s.secondary_design_return_temp_c,
            );
            let (tp0, tpr0) = (plant.design_supply_temp_c, plant.design_return_temp_c);
            let m_p0 = s.design_primary_flow_kg_s(plant);
            let m_s0 = q0 / (WATER_CP_J_KG_K * (ts0 - tr0));
            let ua0 = q0 / hx::lmtd(tp0, tpr0, tr0, ts0);
            // Sized so the design flow passes at the design opening under the
            // differential pressure the design calculation finds there.
            let design_dp_pa = design
                .as_ref()
                .and_then(|d| d.substations.get(i))
                .map(|r| r.diff_pressure_pa)
                .filter(|dp| *dp > 1.0e3)
                .unwrap_or(plant.pump_dp_pa);
            let kv = s.valve_kv_m3_h.unwrap_or_else(|| {
                m_p0 / WATER_DENSITY_KG_M3 * 3600.0
                    / DESIGN_VALVE_OPENING
                    / (design_dp_pa / 1.0e5).sqrt()
            });
            let buildings: Vec<BuildingParams> = s
                .buildings
                .iter()
                .map(|b| {
                    let qb = b.design_heat_w();
                    let span_k = model::DESIGN_ROOM_TEMP_C - net.outdoor_design_temp_c;
                    BuildingParams {
                        exposed_ratio: ((span_k - b.exposed_flat_offset_k) / span_k)
                            .clamp(0.0, 1.0),
                        thermal: BuildingThermal::new(
                            qb,
                            net.outdoor_design_temp_c,
                            b.floor_area_m2,
                            b.heat_capacity_j_k_m2,
                        ),
                        emitter: EmitterRating::new(b.emitter, qb, ts0, tr0),
                        design_flow_kg_s: qb / (WATER_CP_J_KG_K * (ts0 - tr0)),
                    }
                })
                .collect();
            sub_states.push(SubstationState {
                valve_command: DESIGN_VALVE_OPENING,
                valve_position: DESIGN_VALVE_OPENING,
                valve_stuck: false,
                pump_on: true,
                pump_tripped: false,
                pump_running: true,
                pump_speed: 1.0,
                secondary_dp_pa: model::network::SECONDARY_DESIGN_DP_PA,
                primary_supply_c: tp0,
                primary_return_c: tpr0,
                primary_flow_kg_s: 0.0,
                diff_pressure_pa: 0.0,
                secondary_supply_c: t0,
                secondary_return_c: t0,
                secondary_flow_kg_s: 0.0,
                heat_w: 0.0,
                secondary_makeup_kg_s: 0.0,
                secondary_deficit_kg: 0.0,
                secondary_low_pressure: false,
                buildings: s
                    .buildings
                    .iter()
                    .map(|_| BuildingState {
                        valve_command: 1.0,
                        valve_position: 1.0,
                        valve_stuck: false,
                        air_c: t0,
                        mass_c: t0,
                        heat_w: 0.0,
                        flow_kg_s: 0.0,
                        return_c: t0,
                        drain_kg_s: 0.0,
                        exposed_flat_c: t0,
                    })
                    .collect(),
            });
            substations.push(SubstationParams {
                junction: graph.substation_at[i],
                kv_m3_h: kv,
                ua_design_w_k: ua0,
                primary_design_kg_s: m_p0,
                secondary_design_kg_s: m_s0,
                buildings,
            });
        }
        let plant_states = net
            .plants
            .iter()
            .map(|p| {
                let solar = p.solar.as_ref().map(|s| SolarState {
                    tank_temp_c: s.initial_tank_temp_c,
                    collector_heat_w: 0.0,
                    tank_loss_w: 0.0,
                    dumped_w: 0.0,
                    dumped_total_j: 0.0,
                    delivering: s.initial_tank_temp_c
                        >= s.min_useful_temp_c
                            .max(p.design_return_temp_c + s.delivery_margin_k),
                });
                // A solar plant delivers its tank's water, or idles.
                let supply_c = match &solar {
                    Some(s) if s.delivering => p.design_supply_temp_c.min(s.tank_temp_c),
                    Some(_) => p.design_return_temp_c,
                    None => p.design_supply_temp_c,
                };
                PlantState {
                    supply_setpoint_c: p.design_supply_temp_c,
                    supply_temp_c: supply_c,
                    return_temp_c: p.design_return_temp_c,
                    flow_kg_s: 0.0,
                    heat_w: 0.0,
                    pump_on: true,
                    pump_speed: 1.0,
                    pump_running: solar.as_ref().is_none_or(|s| s.delivering),
                    tripped: false,
                    pump_tripped: false,
                    capacity_factor: 1.0,
                    head_pa: 0.0,
                    output_w: None,
                    solar,
                }
            })
            .collect();
        let pipe_states = pipes
            .iter()
            .map(|p| PipeState {
                supply: PlugPipe::filled(&p.spec, t_sup0),
                ret: PlugPipe::filled(&p.spec, t_ret0),
                supply_outlet_c: t_sup0,
                return_outlet_c: t_ret0,
                ..PipeState::default()
            })
            .collect();
        let holdings = graph
            .holdings
            .iter()
            .map(|h| HoldingState {
                junction: graph.junctions[h.junction].to_string(),
                pressure_pa: h.pressure_pa,
                deficit_kg: 0.0,
                makeup_kg_s: 0.0,
                loss_kg_s: 0.0,
                pumps_tripped: false,
            })
            .collect();
        let holding_p = graph.holdings.first().map_or(0.0, |h| h.pressure_pa);
        let n_links = 2 * pipes.len() + plants.len() + substations.len();
        Self {
            plants,
            pipes,
            substations,
            incident,
            solver: None,
            solver_leaks: Vec::new(),
            secondary_slope: vec![-1.0; net.substations.len()],
            link_water: vec![Water::at(0.5 * (t_sup0 + t_ret0)); n_links],
            state: State {
                time_ms: net.start_time_ms,
                outdoor_c: 0.0,
                plants: plant_states,
                substations: sub_states,
                pipes: pipe_states,
                leaks: Vec::new(),
                holdings,
                supply_temp_c: vec![t_sup0; nj],
                return_temp_c: vec![t_ret0; nj],
                supply_pressure_pa: vec![holding_p; nj],
                return_pressure_pa: vec![holding_p; nj],
                link_flows_kg_s: Vec::new(),
                balance: Balance::default(),
                hydraulic_failures: 0,
            },
            graph,
        }
    }

    /// Replaces the evolving state with a saved one, if it fits this network.
    pub fn restore(&mut self, state: State) -> Result<(), String> {
        let nj = self.graph.junctions.len();
        let fits = state.plants.len() == self.plants.len()
            && state.substations.len() == self.substations.len()
            && state
                .substations
                .iter()
                .zip(&self.substations)
                .all(|(s, p)| s.buildings.len() == p.buildings.len())
            && state
                .plants
                .iter()
                .zip(&self.plants)
                .all(|(s, p)| s.solar.is_some() == p.solar.is_some())
            && state.pipes.len() == self.pipes.len()
            && state.holdings.len() == self.graph.holdings.len()
            && state.supply_temp_c.len() == nj
            && state.return_temp_c.len() == nj
            && state.supply_pressure_pa.len() == nj
            && state.return_pressure_pa.len() == nj
            && state.leaks.iter().all(|l| l.pipe < self.pipes.len());
        if !fits {
            return Err(
                "saved state does not match the network's plants, pipes, substations and buildings (saved by another version or for another network)".into(),
            );
        }
        self.state = state;
        Ok(())
    }

    /// Index of a pipe (or, for networks of private pipes, of the pipe pair
    /// feeding a substation, named `<substation>.pipe`).
    pub fn pipe_index(&self, id: &str) -> Option<usize> {
        self.graph.pipes.iter().position(|p| p.id.as_str() == id)
    }

    /// Junction (index into the state's per-junction vectors) of plant `k`.
    pub fn plant_junction(&self, k: usize) -> Option<usize> {
        self.plants.get(k).map(|p| p.junction)
    }

    /// Junction (index into the state's per-junction vectors) of substation `i`.
    pub fn substation_junction(&self, i: usize) -> Option<usize> {
        self.substations.get(i).map(|s| s.junction)
    }

    /// The pressure-holding point (index into `State::holdings`) at junction `j`, if any.
    pub fn holding_at(&self, j: usize) -> Option<usize> {
        self.graph.holdings.iter().position(|h| h.junction == j)
    }

    /// Ids of the pipes, in state order.
    pub fn pipe_ids(&self) -> impl Iterator<Item = &str> {
        self.graph.pipes.iter().map(|p| p.id.as_str())
    }

    /// Opens a leak of `area_m2` in a pipe (replacing one on the same pipe and side).
    pub fn set_leak(&mut self, pipe: usize, side: Side, area_m2: f64, isolate_at_ms: Option<i64>) {
        self.clear_leak(pipe, side);
        self.state.leaks.push(Leak {
            pipe,
            side,
            area_m2,
            isolate_at_ms,
            flow_kg_s: 0.0,
        });
    }

    pub fn clear_leak(&mut self, pipe: usize, side: Side) {
        self.state
            .leaks
            .retain(|l| !(l.pipe == pipe && l.side == side));
    }

    /// Cross-section of a pipe, m² (a burst opens a share of it).
    pub fn pipe_area_m2(&self, pipe: usize) -> f64 {
        self.pipes.get(pipe).map_or(0.0, |p| p.spec.area_m2())
    }

    /// Advances the network by `dt_s` seconds under the given outdoor
    /// temperature and global horizontal sunshine (W/m²). A hydraulic failure
    /// keeps the previous flows for this step and is returned after the step.
    pub fn step(&mut self, dt_s: f64, outdoor_c: f64, ghi_w_m2: f64) -> Result<(), EngineError> {
        let nj = self.graph.junctions.len();
        let n_pipes = self.pipes.len();
        let np = self.plants.len();
        let st = &mut self.state;
        st.outdoor_c = outdoor_c;
        let max_valve_move = dt_s / VALVE_STROKE_S;
        let end_ms = st.time_ms + (dt_s * 1000.0).round() as i64;

        // 1. Valves move.
        for ss in st.substations.iter_mut() {
            if !ss.valve_stuck {
                ss.valve_position +=
                    (ss.valve_command - ss.valve_position).clamp(-max_valve_move, max_valve_move);
            }
            for bs in ss.buildings.iter_mut() {
                if !bs.valve_stuck {
                    bs.valve_position += (bs.valve_command - bs.valve_position)
                        .clamp(-max_valve_move, max_valve_move);
                }
            }
        }

        // 2. Water leaving the network: timed isolations, and secondary
        //    make-up for illegal draining, taken from the primary return.
        for leak in &st.leaks {
            if leak.isolate_at_ms.is_some_and(|t| end_ms >= t) {
                st.pipes[leak.pipe].isolated = true;
            }
        }
        let mut demand = vec![0.0; 2 * nj + 1];
        for (sp, ss) in self.substations.iter().zip(st.substations.iter_mut()) {
            let drain: f64 = ss.buildings.iter().map(|b| b.drain_kg_s.max(0.0)).sum();
            let want = drain + ss.secondary_deficit_kg / dt_s;
            let makeup = want.min(SECONDARY_MAKEUP_KG_S);
            ss.secondary_deficit_kg = (ss.secondary_deficit_kg + (drain - makeup) * dt_s).max(0.0);
            ss.secondary_makeup_kg_s = makeup;
            if ss.secondary_deficit_kg > SECONDARY_RESERVE_KG {
                ss.secondary_low_pressure = true;
            } else if ss.secondary_deficit_kg < 0.5 * SECONDARY_RESERVE_KG {
                ss.secondary_low_pressure = false;
            }
            demand[rn(sp.junction)] += makeup;
        }

        // 3. Hydraulics. Nodes: supply and return per junction, then the
        //    atmosphere (0 Pa gauge) that leaks discharge into.
        let atmosphere = 2 * nj;
        for (pp, ps) in self.plants.iter().zip(st.plants.iter_mut()) {
            // A solar plant's pump stands still while its tank is too cold.
            ps.pump_running = ps.pump_on
                && !ps.pump_tripped
                && !st.holdings[self.graph.part_of[pp.junction]].pumps_tripped
                && ps.solar.as_ref().is_none_or(|s| s.delivering);
        }
        let closed = LinkKind::Valve {
            kv_m3_h: CLOSED_KV_M3_H,
            opening: 1.0,
        };
        let mut links = Vec::with_capacity(self.link_water.len() + st.leaks.len());
        for (k, p) in self.pipes.iter().enumerate() {
            // A tie line opens while a plant at its ends stands still.
            let tie_closed =
                !p.tie_plants.is_empty() && p.tie_plants.iter().all(|&i| st.plants[i].pump_running);
            let kind = if st.pipes[k].isolated || tie_closed {
                closed
            } else {
                LinkKind::Pipe {
                    length_m: p.spec.length_m,
                    diameter_m: p.spec.diameter_m,
                    roughness_m: p.roughness_m,
                    minor_loss: 0.0,
                }
            };
            let ts = 0.5 * (st.supply_temp_c[p.a] + st.supply_temp_c[p.b]);
            let tr = 0.5 * (st.return_temp_c[p.a] + st.return_temp_c[p.b]);
            links.push((sn(p.a), sn(p.b), kind, ts));
            links.push((rn(p.b), rn(p.a), kind, tr));
        }
        for (pp, ps) in self.plants.iter().zip(&st.plants) {
            let kind = if ps.pump_running {
                LinkKind::Pump {
                    curve: pp.pump,
                    speed: ps.pump_speed.clamp(0.0, 1.2),
                }
            } else {
                closed
            };
            let j = pp.junction;
            links.push((rn(j), sn(j), kind, st.return_temp_c[j]));
        }
        for (sp, ss) in self.substations.iter().zip(&st.substations) {
            let j = sp.junction;
            let kind = LinkKind::Valve {
                kv_m3_h: sp.kv_m3_h,
                opening: ss.valve_position,
            };
            links.push((sn(j), rn(j), kind, st.supply_temp_c[j]));
        }
        let mut links: Vec<Link> = links
            .into_iter()
            .zip(self.link_water.iter_mut())
            .map(|((from, to, kind, temp_c), water)| {
                if (water.temp_c - temp_c).abs() > WATER_REFRESH_K {
                    *water = Water::at(temp_c);
                }
                Link {
                    from,
                    to,
                    kind,
                    water: *water,
                }
            })
            .collect();
        let first_leak = links.len();
        let mut leak_nodes = Vec::with_capacity(st.leaks.len());
        for leak in &st.leaks {
            let p = &self.pipes[leak.pipe];
            let (node, temp_c) = match leak.side {
                Side::Supply => (sn(p.b), st.supply_temp_c[p.b]),
                Side::Return => (rn(p.a), st.return_temp_c[p.a]),
            };
            leak_nodes.push(node);
            let water = Water::at(temp_c);
            let kind = if st.pipes[leak.pipe].isolated {
                closed
            } else {
                LinkKind::Valve {
                    kv_m3_h: orifice_kv_m3_h(leak.area_m2, water.density_kg_m3),
                    opening: 1.0,
                }
            };
            links.push(Link {
                from: node,
                to: atmosphere,
                kind,
                water,
            });
        }
        if leak_nodes != self.solver_leaks {
            // Leaks change the topology: analyse it again.
            self.solver = None;
            self.solver_leaks = leak_nodes;
            st.link_flows_kg_s.truncate(first_leak);
            if st.link_flows_kg_s.len() == first_leak {
                st.link_flows_kg_s.resize(links.len(), 0.0);
            }
        }
        let mut problem = Problem {
            node_count: 2 * nj + 1,
            links,
            fixed_pressure_pa: self
                .graph
                .holdings
                .iter()
                .zip(&st.holdings)
                .map(|(h, s)| (rn(h.junction), s.pressure_pa))
                .chain(std::iter::once((atmosphere, 0.0)))
                .collect(),
            demand_kg_s: demand,
        };
        let first_valve = 2 * n_pipes + np;
        let mut failure = None;
        let solved = solve_with_check_valves(
            &mut self.solver,
            &mut problem,
            2 * n_pipes,
            st.link_flows_kg_s.as_slice(),
        );
        let mass_residual = match solved {
            Ok(sol) => {
                for j in 0..nj {
                    st.supply_pressure_pa[j] = sol.pressure_pa[sn(j)];
                    st.return_pressure_pa[j] = sol.pressure_pa[rn(j)];
                }
                st.link_flows_kg_s = sol.flow_kg_s;
                sol.max_imbalance_kg_s
            }
            Err(error) => {
                st.hydraulic_failures += 1;
                failure = Some(EngineError::Hydraulics {
                    time_ms: st.time_ms,
                    error,
                });
                if st.link_flows_kg_s.len() != problem.links.len() {
                    st.link_flows_kg_s = vec![0.0; problem.links.len()];
                }
                f64::NAN
            }
        };
        let q = &st.link_flows_kg_s;
        for (k, ps) in st.pipes.iter_mut().enumerate() {
            ps.supply_flow_kg_s = q[2 * k];
            ps.return_flow_kg_s = q[2 * k + 1];
        }
        for (i, leak) in st.leaks.iter_mut().enumerate() {
            leak.flow_kg_s = q[first_leak + i].max(0.0);
        }
        let leak_kg_s: f64 = st.leaks.iter().map(|l| l.flow_kg_s).sum();

        // Pressure holding: what each part lost comes in at its holding node,
        // from the make-up pumps up to their capacity and from the expansion
        // vessel beyond; the vessel's pressure sets the next step's.
        let mut part_loss = vec![0.0; self.graph.holdings.len()];
        for (sp, ss) in self.substations.iter().zip(&st.substations) {
            part_loss[self.graph.part_of[sp.junction]] += ss.secondary_makeup_kg_s;
        }
        for (leak, &node) in st.leaks.iter().zip(&self.solver_leaks) {
            part_loss[self.graph.part_of[node / 2]] += leak.flow_kg_s;
        }
        for (h, (hp, hs)) in self
            .graph
            .holdings
            .iter()
            .zip(st.holdings.iter_mut())
            .enumerate()
        {
            let loss = part_loss[h];
            let makeup = (loss + hs.deficit_kg / dt_s).min(hp.makeup_capacity_kg_s);
            hs.deficit_kg = (hs.deficit_kg + (loss - makeup) * dt_s).max(0.0);
            hs.makeup_kg_s = makeup;
            hs.loss_kg_s = loss;
            let gas_m3 = hp.vessel_gas_m3 + hs.deficit_kg / WATER_DENSITY_KG_M3;
            hs.pressure_pa =
                (hp.pressure_pa + ATMOSPHERE_PA) * hp.vessel_gas_m3 / gas_m3 - ATMOSPHERE_PA;
            if hs.pressure_pa < hp.low_pressure_trip_pa {
                hs.pumps_tripped = true;
            } else if hs.pressure_pa >= hp.low_pressure_trip_pa + LOW_PRESSURE_RESTART_PA {
                hs.pumps_tripped = false;
            }
        }

        // 4. Temperatures: supply side.
        let heat_before: f64 = st
            .pipes
            .iter()
            .map(|p| p.supply.heat_content_j(0.0) + p.ret.heat_content_j(0.0))
            .sum();
        let mut sources = vec![(0.0, 0.0); nj];
        for (k, pp) in self.plants.iter().enumerate() {
            let f = q[2 * n_pipes + k];
            let ps = &mut st.plants[k];
            if f > 0.0 && pp.solar.is_none() {
                // The outlet was set for the last step's flow (or crept to the
                // setpoint while the pump stood still): this step's flow is
                // lifted by the capacity at most (found on the city: pumps
                // restarting or taking over flow put 460-510 MW into the
                // network for a step from plants of 237-398 MW).
                let max_w = pp.capacity_w * ps.capacity_factor;
                let most_c = ps.return_temp_c + max_w / (f * WATER_CP_J_KG_K);
                ps.supply_temp_c = ps.supply_temp_c.min(most_c.max(ps.return_temp_c));
            }
            if f > 0.0 {
                sources[pp.junction].0 += f;
                sources[pp.junction].1 += f * st.plants[k].supply_temp_c;
            }
        }
        for (i, sp) in self.substations.iter().enumerate() {
            let f = q[first_valve + i];
            if f < 0.0 {
                // Through a closed check valve: return water into the supply.
                sources[sp.junction].0 += -f;
                sources[sp.junction].1 += -f * st.return_temp_c[sp.junction];
            }
        }
        let mut lost_j = propagate(
            Side::Supply,
            &self.pipes,
            &self.incident,
            &mut st.pipes,
            &sources,
            &st.supply_pressure_pa,
            &mut st.supply_temp_c,
            dt_s,
        );

        // Substations and their buildings: independent of each other once the
        // supply side is known, so large networks spread them over threads
        // (the result does not depend on how: each substation is computed alone).
        for (i, (sp, ss)) in self
            .substations
            .iter()
            .zip(st.substations.iter_mut())
            .enumerate()
        {
            let j = sp.junction;
            ss.primary_flow_kg_s = q[first_valve + i].max(0.0);
            ss.primary_supply_c = st.supply_temp_c[j];
            ss.diff_pressure_pa = st.supply_pressure_pa[j] - st.return_pressure_pa[j];
            ss.pump_running = ss.pump_on && !ss.pump_tripped && !ss.secondary_low_pressure;
        }
        let work = |sp: &SubstationParams, ss: &mut SubstationState, slope: &mut f64| {
            secondary_step(sp, ss, ss.primary_flow_kg_s, dt_s, slope);
            for (bp, bs) in sp.buildings.iter().zip(ss.buildings.iter_mut()) {
                let sun_w = bp.thermal.solar_aperture_m2 * ghi_w_m2.max(0.0);
                let (a, m) =
                    bp.thermal
                        .step(bs.air_c, bs.mass_c, bs.heat_w + sun_w, outdoor_c, dt_s);
                bs.air_c = a;
                bs.mass_c = m;
                bs.exposed_flat_c = outdoor_c + bp.exposed_ratio * (a - outdoor_c);
            }
        };
        let mut jobs: Vec<(&SubstationParams, &mut SubstationState, &mut f64)> = self
            .substations
            .iter()
            .zip(st.substations.iter_mut())
            .zip(self.secondary_slope.iter_mut())
            .map(|((sp, ss), slope)| (sp, ss, slope))
            .collect();
        let threads = if jobs.len() >= PARALLEL_FROM_SUBSTATIONS {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
        } else {
            1
        };
        if threads > 1 {
            let per = jobs.len().div_ceil(threads);
            std::thread::scope(|scope| {
                for chunk in jobs.chunks_mut(per) {
                    scope.spawn(|| {
                        for (sp, ss, slope) in chunk.iter_mut() {
                            work(sp, ss, slope);
                        }
                    });
                }
            });
        } else {
            for (sp, ss, slope) in jobs.iter_mut() {
                work(sp, ss, slope);
            }
        }
        let mut sources = vec![(0.0, 0.0); nj];
        let mut delivered_w = 0.0;
        for (sp, ss) in self.substations.iter().zip(&st.substations) {
            delivered_w += ss.heat_w;
            sources[sp.junction].0 += ss.primary_flow_kg_s;
            sources[sp.junction].1 += ss.primary_flow_kg_s * ss.primary_return_c;
        }
        for (k, pp) in self.plants.iter().enumerate() {
            let f = q[2 * n_pipes + k];
            if f < 0.0 {
                // Back through a stopped plant: supply water into the return.
                sources[pp.junction].0 += -f;
                sources[pp.junction].1 += -f * st.supply_temp_c[pp.junction];
            }
        }
        let mut water_in_w = 0.0;
        for (hp, hs) in self.graph.holdings.iter().zip(&st.holdings) {
            // The holding node takes in what its part loses (make-up and vessel).
            let j = hp.junction;
            sources[j].0 += hs.loss_kg_s;
            sources[j].1 += hs.loss_kg_s * MAKEUP_TEMP_C;
            water_in_w += hs.loss_kg_s * WATER_CP_J_KG_K * MAKEUP_TEMP_C;
        }
        lost_j += propagate(
            Side::Return,
            &self.pipes,
            &self.incident,
            &mut st.pipes,
            &sources,
            &st.return_pressure_pa,
            &mut st.return_temp_c,
            dt_s,
        );

        // Plants heat what comes back.
        let mut produced_w = 0.0;
        let mut tanks = TankBooks::default();
        for (k, (pp, ps)) in self.plants.iter().zip(st.plants.iter_mut()).enumerate() {
            let m = q[2 * n_pipes + k].max(0.0);
            ps.flow_kg_s = m;
            let t_back = st.return_temp_c[pp.junction];
            ps.head_pa = st.supply_pressure_pa[pp.junction] - st.return_pressure_pa[pp.junction];
            if m > 1e-9 {
                ps.return_temp_c = t_back;
                ps.heat_w = m * WATER_CP_J_KG_K * (ps.supply_temp_c - t_back);
            } else {
                ps.heat_w = 0.0;
            }
            produced_w += ps.heat_w;
            if let Some(sp) = &pp.solar {
                tanks.add(solar_plant_step(
                    sp,
                    pp.capacity_w,
                    ps,
                    m,
                    t_back,
                    outdoor_c,
                    ghi_w_m2,
                    dt_s,
                ));
                continue;
            }
            // The supply temperature of the next step follows the setpoint
            // (first order), limited by the available capacity.
            let target = if ps.tripped {
                ps.return_temp_c
            } else {
                ps.supply_setpoint_c
            };
            let k_follow = 1.0 - (-dt_s / PLANT_TIME_CONSTANT_S).exp();
            let mut t_sup = ps.supply_temp_c + (target - ps.supply_temp_c) * k_follow;
            if m > 1e-9 {
                let mcp = m * WATER_CP_J_KG_K;
                let max_w = pp.capacity_w * ps.capacity_factor;
                if ps.tripped {
                    // A trip is sudden: no ramp, the water cools as it circulates.
                    t_sup = t_sup.min(ps.return_temp_c + max_w / mcp);
                } else {
                    // Heat output: ramp-limited, at least the minimum load while
                    // running, at most the capacity, and never hotter than the
                    // highest supply temperature the plant can make.
                    let min_w = if ps.pump_running {
                        pp.min_load_w.min(max_w)
                    } else {
                        0.0
                    };
                    let want_w = mcp * (t_sup - ps.return_temp_c);
                    let q = limit_heat_w(want_w, ps.output_w, min_w, max_w, pp.ramp_w_per_s, dt_s);
                    t_sup = (ps.return_temp_c + q / mcp).min(PLANT_MAX_SUPPLY_C.max(t_sup));
                }
                ps.output_w = Some(mcp * (t_sup - ps.return_temp_c));
            }
            ps.supply_temp_c = t_sup;
        }

        // 5. Bookkeeping.
        let mut water_out_w = 0.0;
        for leak in &st.leaks {
            let p = &self.pipes[leak.pipe];
            let t = match leak.side {
                Side::Supply => st.supply_temp_c[p.b],
                Side::Return => st.return_temp_c[p.a],
            };
            water_out_w += leak.flow_kg_s * WATER_CP_J_KG_K * t;
        }
        for (sp, ss) in self.substations.iter().zip(&st.substations) {
            water_out_w +=
                ss.secondary_makeup_kg_s * WATER_CP_J_KG_K * st.return_temp_c[sp.junction];
        }
        let heat_after: f64 = st
            .pipes
            .iter()
            .map(|p| p.supply.heat_content_j(0.0) + p.ret.heat_content_j(0.0))
            .sum();
        let lost_w = lost_j / dt_s;
        let storage_w = (heat_after - heat_before) / dt_s;
        // The solar plants' heat came out of their tanks: inside the books,
        // the collectors feed in and the tanks lose, dump and store.
        let fuel_w = produced_w - tanks.delivered_w;
        let residual = fuel_w + tanks.collector_w + water_in_w
            - delivered_w
            - lost_w
            - water_out_w
            - storage_w
            - tanks.loss_w
            - tanks.dumped_w
            - tanks.storage_w;
        let gross = fuel_w.abs()
            + tanks.collector_w
            + water_in_w
            + delivered_w
            + lost_w
            + water_out_w
            + tanks.loss_w
            + tanks.dumped_w;
        st.balance = Balance {
            heat_produced_w: produced_w,
            heat_delivered_w: delivered_w,
            heat_lost_w: lost_w,
            water_out_w,
            water_in_w,
            storage_w,
            solar_heat_w: tanks.delivered_w,
            collector_heat_w: tanks.collector_w,
            tank_loss_w: tanks.loss_w,
            solar_dumped_w: tanks.dumped_w,
            tank_storage_w: tanks.storage_w,
            energy_residual: residual.abs() / gross.max(1.0),
            mass_residual_kg_s: mass_residual,
            leak_kg_s,
            makeup_kg_s: st.holdings.iter().map(|h| h.makeup_kg_s).sum(),
        };
        st.time_ms = end_ms;
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// What the solar plants' tanks did over a step, W.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct TankBooks {
    delivered_w: f64,
    collector_w: f64,
    loss_w: f64,
    dumped_w: f64,
    storage_w: f64,
}

impl TankBooks {
    fn add(&mut self, o: TankBooks) {
        self.delivered_w += o.delivered_w;
        self.collector_w += o.collector_w;
        self.loss_w += o.loss_w;
        self.dumped_w += o.dumped_w;
        self.storage_w += o.storage_w;
    }
}

/// A solar thermal plant after the water came back (`m` kg/s at `t_back_c`,
/// its heat `ps.heat_w` already drawn this step): the collectors charge the
/// tank (yield at the tank's temperature), the tank gives the heat drawn,
/// loses to the outdoor air and stagnates at its maximum; then the plant
/// decides the next step. It starts delivering when the tank reaches the
/// higher of its minimum useful temperature and the return plus
/// `delivery_margin_k`, and stops half the margin below that; it supplies at
/// its setpoint or the tank temperature if colder, at most its capacity and
/// the heat the tank holds above the return; while idle its pump stands still.
#[allow(clippy::too_many_arguments)]
fn solar_plant_step(
    sp: &SolarParams,
    capacity_w: f64,
    ps: &mut PlantState,
    m: f64,
    t_back_c: f64,
    outdoor_c: f64,
    ghi_w_m2: f64,
    dt_s: f64,
) -> TankBooks {
    let Some(mut ss) = ps.solar.take() else {
        return TankBooks::default();
    };
    // Its return sensor sits in the network's return at the junction: it
    // reads the water there whether the plant's pump runs or not.
    ps.return_temp_c = t_back_c;
    let before_c = ss.tank_temp_c;
    let collector_w = solar::collector_heat_w(&sp.spec, ghi_w_m2, before_c, outdoor_c);
    let tank = solar::tank_step(&sp.tank, before_c, outdoor_c, collector_w - ps.heat_w, dt_s);
    ss.tank_temp_c = tank.temp_c;
    ss.collector_heat_w = collector_w;
    ss.tank_loss_w = tank.loss_j / dt_s;
    ss.dumped_w = tank.dumped_j / dt_s;
    ss.dumped_total_j += tank.dumped_j;
    let on_c = sp
        .spec
        .min_useful_temp_c
        .max(t_back_c + sp.spec.delivery_margin_k);
    let off_c = on_c - 0.5 * sp.spec.delivery_margin_k;
    let hot_enough = if ss.delivering {
        tank.temp_c >= off_c
    } else {
        tank.temp_c >= on_c
    };
    ss.delivering = hot_enough && !ps.tripped;
    if ss.delivering {
        let m_next = if m > 1e-9 { m } else { sp.design_flow_kg_s };
        let mcp = m_next * WATER_CP_J_KG_K;
        let target_c = ps.supply_setpoint_c.min(tank.temp_c);
        let max_w = (capacity_w * ps.capacity_factor)
            .min(sp.tank.heat_above_j(tank.temp_c, t_back_c) / dt_s)
            .max(0.0);
        let q = (mcp * (target_c - t_back_c)).clamp(0.0, max_w);
        ps.supply_temp_c = t_back_c + q / mcp;
        ps.output_w = Some(q);
    } else {
        ps.supply_temp_c = t_back_c;
        ps.output_w = Some(0.0);
    }
    let books = TankBooks {
        delivered_w: ps.heat_w,
        collector_w,
        loss_w: ss.tank_loss_w,
        dumped_w: ss.dumped_w,
        storage_w: sp.tank.heat_above_j(tank.temp_c, before_c) / dt_s,
    };
    ps.solar = Some(ss);
    books
}

/// The heat a plant puts into the water this step, W: what its supply
/// temperature would give (`want_w`), moved from the previous output by at most
/// `ramp_w_per_s·dt_s` (no previous output: unlimited), then kept within
/// `min_w..=max_w` (the capacity wins over the minimum load, the minimum load
/// over the ramp: a plant below its minimum is brought up to it).
pub fn limit_heat_w(
    want_w: f64,
    prev_w: Option<f64>,
    min_w: f64,
    max_w: f64,
    ramp_w_per_s: Option<f64>,
    dt_s: f64,
) -> f64 {
    let ramped = match (prev_w, ramp_w_per_s) {
        (Some(prev), Some(r)) => {
            let step = r * dt_s;
            want_w.clamp(prev - step, prev + step)
        }
        _ => want_w,
    };
    ramped.max(min_w).min(max_w).max(0.0)
}

/// Kv of an orifice of `area_m2`: `ṁ = C_d·A·√(2ρ·Δp)` written as
/// `Q = Kv·√(Δp / 1 bar)` with Q in m³/h.
fn orifice_kv_m3_h(area_m2: f64, density_kg_m3: f64) -> f64 {
    LEAK_DISCHARGE_COEFFICIENT * area_m2.max(0.0) * (2.0e5 / density_kg_m3).sqrt() * 3600.0
}

/// Solves the hydraulics; a substation valve or a plant pump that would pass
/// water backwards is closed (its check valve) and the network solved again.
fn solve_with_check_valves(
    solver: &mut Option<Solver>,
    problem: &mut Problem,
    first_checked: usize,
    start: &[f64],
) -> Result<crate::hydraulics::Solution, SolveError> {
    if solver.is_none() {
        *solver = Some(Solver::new(problem)?);
    }
    let Some(s) = solver.as_mut() else {
        unreachable!("the solver was just prepared")
    };
    let opts = Options::default();
    let warm = (start.len() == problem.links.len()).then_some(start);
    let mut sol = s.solve(problem, &opts, warm)?;
    for _ in 0..3 {
        let mut closed_any = false;
        for k in first_checked..problem.links.len() {
            if sol.flow_kg_s[k] < -1e-6 {
                let link = &mut problem.links[k];
                let closed = LinkKind::Valve {
                    kv_m3_h: CLOSED_KV_M3_H,
                    opening: 1.0,
                };
                if link.kind != closed {
                    link.kind = closed;
                    closed_any = true;
                }
            }
        }
        if !closed_any {
            break;
        }
        let flows = sol.flow_kg_s.clone();
        sol = s.solve(problem, &opts, Some(&flows))?;
    }
    Ok(sol)
}

/// Moves the water of one side (supply or return) through its pipes for one
/// step: junctions in flow order, each mixing what flows in (pipes and the
/// given external `sources` as (kg/s, kg/s·°C)), each pipe a plug-flow pipe.
/// Updates the junction temperatures and returns the heat lost to the ground, J.
#[allow(clippy::too_many_arguments)]
fn propagate(
    side: Side,
    params: &[PipeParams],
    incident: &[Vec<usize>],
    pipes: &mut [PipeState],
    sources: &[(f64, f64)],
    pressure_pa: &[f64],
    temp_c: &mut [f64],
    dt_s: f64,
) -> f64 {
    let nj = temp_c.len();
    // Forward direction of each pipe on this side, and its signed flow.
    let ends = |k: usize| match side {
        Side::Supply => (params[k].a, params[k].b),
        Side::Return => (params[k].b, params[k].a),
    };
    let flow = |p: &PipeState| match side {
        Side::Supply => p.supply_flow_kg_s,
        Side::Return => p.return_flow_kg_s,
    };
    // Upstream and downstream of each pipe this step.
    let dir: Vec<Option<(usize, usize)>> = (0..params.len())
        .map(|k| {
            let f = flow(&pipes[k]);
            let (a, b) = ends(k);
            if f > 0.0 {
                Some((a, b))
            } else if f < 0.0 {
                Some((b, a))
            } else {
                None
            }
        })
        .collect();
    let mut waiting = vec![0usize; nj];
    for d in dir.iter().flatten() {
        waiting[d.1] += 1;
    }
    let mut mix: Vec<(f64, f64)> = sources.to_vec();
    let mut done = vec![false; nj];
    let mut stepped = vec![false; params.len()];
    let mut lost = 0.0;
    let mut ready: Vec<usize> = (0..nj).filter(|&j| waiting[j] == 0).collect();
    // Highest pressure first among the ready ones (popped from the back).
    ready.sort_by(|&x, &y| pressure_pa[x].total_cmp(&pressure_pa[y]));
    let mut left = nj;
    let mut step_pipe =
        |k: usize, inlet_c: f64, pipes: &mut [PipeState], mix: &mut [(f64, f64)]| -> usize {
            let (_, to) = dir[k].unwrap_or_else(|| ends(k));
            let f = flow(&pipes[k]).abs();
            let forward = flow(&pipes[k]) >= 0.0;
            let ps = &mut pipes[k];
            let plug = match side {
                Side::Supply => &mut ps.supply,
                Side::Return => &mut ps.ret,
            };
            let (out, l) = plug.step_directed(&params[k].spec, inlet_c, f, forward, dt_s);
            match side {
                Side::Supply => ps.supply_outlet_c = out,
                Side::Return => ps.return_outlet_c = out,
            }
            lost += l;
            mix[to].0 += f;
            mix[to].1 += f * out;
            to
        };
    while left > 0 {
        let j = match ready.pop() {
            Some(j) => j,
            None => {
                // A loop of (numerically tiny) flows: take the highest pressure
                // junction left and let its unsettled inflows in at the
                // temperatures their sources had.
                let j = (0..nj)
                    .filter(|&j| !done[j])
                    .max_by(|&x, &y| pressure_pa[x].total_cmp(&pressure_pa[y]))
                    .unwrap_or(0);
                for &k in &incident[j] {
                    if let Some((from, to)) = dir[k]
                        && to == j
                        && !stepped[k]
                    {
                        stepped[k] = true;
                        step_pipe(k, temp_c[from], pipes, &mut mix);
                    }
                }
                j
            }
        };
        if done[j] {
            continue;
        }
        done[j] = true;
        left -= 1;
        if mix[j].0 > 1e-12 {
            temp_c[j] = mix[j].1 / mix[j].0;
        }
        for &k in &incident[j] {
            if let Some((from, to)) = dir[k]
                && from == j
                && !stepped[k]
            {
                stepped[k] = true;
                step_pipe(k, temp_c[j], pipes, &mut mix);
                waiting[to] -= 1;
                if waiting[to] == 0 && !done[to] {
                    ready.push(to);
                }
            }
        }
    }
    // Still water cools where it stands.
    for (k, _) in stepped.iter().enumerate().filter(|(_, s)| !**s) {
        let (a, _) = ends(k);
        step_pipe(k, temp_c[a], pipes, &mut mix);
    }
    lost
}

/// The secondary circuit of a substation: building flows from the pump and
/// balancing valves, then the exchanger and the emitters settled together.
fn secondary_step(
    sp: &SubstationParams,
    ss: &mut SubstationState,
    m_p: f64,
    dt_s: f64,
    slope_hint: &mut f64,
) {
    // The secondary pump, `Δp = H₀·s² − c·Q²`, feeds the buildings' circuits
    // in parallel, each passing `Q_i = x_i·Q_i,0·√(Δp/Δp₀)` (linear valve at
    // opening x_i, design flow Q_i,0 at the design Δp₀). With Q = G·√Δp this
    // closes to `Δp = H₀·s² / (1 + c·G²)`; the pump is rated so that at full
    // speed with every valve open it makes Δp₀ and its head there is 30 %
    // below shut-off: c·G₀² = 3/7, H₀ = Δp₀·10/7.
    let dp0 = model::network::SECONDARY_DESIGN_DP_PA;
    let design: f64 = sp.buildings.iter().map(|b| b.design_flow_kg_s).sum();
    let open: f64 = sp
        .buildings
        .iter()
        .zip(ss.buildings.iter())
        .map(|(bp, bs)| bp.design_flow_kg_s * bs.valve_position.clamp(0.0, 1.0))
        .sum();
    let r = if design > 0.0 { open / design } else { 0.0 };
    let speed = if ss.pump_running {
        ss.pump_speed
            .clamp(0.0, model::hardware::PUMP_SPEED_LIMITS.1)
    } else {
        0.0
    };
    ss.secondary_dp_pa = dp0 * (10.0 / 7.0) * speed * speed / (1.0 + 3.0 / 7.0 * r * r);
    let flow_scale = (ss.secondary_dp_pa / dp0).sqrt();
    let mut m_s = 0.0;
    for (bp, bs) in sp.buildings.iter().zip(ss.buildings.iter_mut()) {
        bs.flow_kg_s = bp.design_flow_kg_s * bs.valve_position.clamp(0.0, 1.0) * flow_scale;
        m_s += bs.flow_kg_s;
    }
    ss.secondary_flow_kg_s = m_s;
    if m_s > 1e-9 && m_p > 1e-9 {
        // The secondary supply temperature T solves g(T) = T_hx(T_ret(T)) − T = 0:
        // the emitters set the return from the supply, the exchanger the
        // supply from the return. g falls with T; secant steps from the last
        // step's value, kept in a bracket, converge in a few evaluations.
        let ua = hx::ua_at_flow(
            sp.ua_design_w_k,
            m_p,
            sp.primary_design_kg_s,
            m_s,
            sp.secondary_design_kg_s,
        );
        let t_primary = ss.primary_supply_c;
        let eval = |t_sup: f64, ss: &mut SubstationState| {
            let mut mix = 0.0;
            for (bp, bs) in sp.buildings.iter().zip(ss.buildings.iter_mut()) {
                let (q, t_out) = bp
                    .emitter
                    .solve_near(t_sup, bs.flow_kg_s, bs.air_c, bs.return_c);
                bs.heat_w = q;
                bs.return_c = t_out;
                mix += bs.flow_kg_s * t_out;
            }
            let t_ret = mix / m_s;
            let out = counterflow(ua, t_primary, m_p, t_ret, m_s);
            (out.cold_out_c - t_sup, t_ret, out)
        };
        let mut x0 = ss
            .secondary_supply_c
            .clamp(ss.secondary_return_c.min(t_primary), t_primary);
        let (mut g0, mut t_ret, mut out) = eval(x0, ss);
        let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
        // The slope the last step ended with is a good first guess (g' lies in (−1, 0)).
        let mut x1 = x0 - g0 / slope_hint.clamp(-1.0, -1e-3);
        for _ in 0..40 {
            if g0 > 0.0 {
                lo = lo.max(x0);
            } else {
                hi = hi.min(x0);
            }
            if g0.abs() < 1e-4 {
                break;
            }
            if !(x1 > lo && x1 < hi) {
                x1 = if lo.is_finite() && hi.is_finite() {
                    0.5 * (lo + hi)
                } else {
                    x0 + g0
                };
            }
            let (g1, tr, o) = eval(x1, ss);
            (t_ret, out) = (tr, o);
            let slope = (g1 - g0) / (x1 - x0);
            let next = if slope < 0.0 && slope.is_finite() {
                *slope_hint = slope;
                x1 - g1 / slope
            } else {
                x1 + g1
            };
            (x0, g0) = (x1, g1);
            x1 = next;
        }
        ss.secondary_supply_c = x0;
        ss.secondary_return_c = t_ret;
        ss.heat_w = out.heat_w;
        ss.primary_return_c = out.hot_out_c;
    } else {
        // No exchange: no heat; still water drifts toward the rooms' temperature.
        let room =
            ss.buildings.iter().map(|b| b.air_c).sum::<f64>() / ss.buildings.len().max(1) as f64;
        let k = (-dt_s / STAGNANT_TIME_CONSTANT_S).exp();
        ss.secondary_supply_c = room + (ss.secondary_supply_c - room) * k;
        ss.secondary_return_c = room + (ss.secondary_return_c - room) * k;
        ss.heat_w = 0.0;
        ss.primary_return_c = ss.primary_supply_c;
        for bs in ss.buildings.iter_mut() {
            bs.heat_w = 0.0;
            bs.return_c = ss.secondary_return_c;
        }
    }
}

#[cfg(test)]
mod tests;
