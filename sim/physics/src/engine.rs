//! The network engine: parameters derived from the network description, the
//! evolving state (serializable, so a simulator can snapshot and resume), and
//! one time step.

use model::{Network, WATER_CP_J_KG_K};
use serde::{Deserialize, Serialize};

use crate::WATER_DENSITY_KG_M3;
use crate::building::BuildingThermal;
use crate::hx::{self, counterflow};
use crate::plug::{PipeSpec, PlugPipe};
use crate::radiator::EmitterRating;

/// Full valve stroke time, s: a valve moves at most 1/STROKE per second.
pub const VALVE_STROKE_S: f64 = 60.0;
/// Time constant with which a plant's supply temperature follows its setpoint, s.
pub const PLANT_TIME_CONSTANT_S: f64 = 600.0;
/// Time constant with which stagnant secondary water approaches room temperature, s.
const STAGNANT_TIME_CONSTANT_S: f64 = 1_800.0;

#[derive(Clone, Debug)]
struct PlantParams {
    capacity_w: f64,
    pump_dp_pa: f64,
}

#[derive(Clone, Debug)]
struct SubstationParams {
    plant: usize,
    /// The substation's supply pipe (and its identical return pipe).
    pipe: PipeSpec,
    kv_m3_h: f64,
    ua_design_w_k: f64,
    primary_design_kg_s: f64,
    secondary_design_kg_s: f64,
    buildings: Vec<BuildingParams>,
}

#[derive(Clone, Debug)]
struct BuildingParams {
    thermal: BuildingThermal,
    emitter: EmitterRating,
    design_flow_kg_s: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlantState {
    pub supply_setpoint_c: f64,
    pub supply_temp_c: f64,
    pub return_temp_c: f64,
    pub flow_kg_s: f64,
    pub heat_w: f64,
    pub pump_on: bool,
    /// Fault: the plant produces no heat.
    pub tripped: bool,
    /// Fault: the pump does not run whatever it is told.
    pub pump_tripped: bool,
    /// Fault: share of the capacity available (1 when healthy).
    #[serde(default = "one")]
    pub capacity_factor: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubstationState {
    pub valve_command: f64,
    pub valve_position: f64,
    pub valve_stuck: bool,
    pub pump_on: bool,
    pub pump_tripped: bool,
    pub primary_supply_c: f64,
    pub primary_return_c: f64,
    pub primary_flow_kg_s: f64,
    pub diff_pressure_pa: f64,
    pub secondary_supply_c: f64,
    pub secondary_return_c: f64,
    pub secondary_flow_kg_s: f64,
    pub heat_w: f64,
    pub buildings: Vec<BuildingState>,
    /// Water in the primary supply pipe from the plant (transport delay).
    #[serde(default)]
    pub supply_pipe: PlugPipe,
    /// Water in the primary return pipe back to the plant.
    #[serde(default)]
    pub return_pipe: PlugPipe,
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
}

/// Everything that evolves, at one instant of network time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub time_ms: i64,
    pub outdoor_c: f64,
    pub plants: Vec<PlantState>,
    pub substations: Vec<SubstationState>,
}

#[derive(Clone, Debug)]
pub struct Engine {
    plants: Vec<PlantParams>,
    substations: Vec<SubstationParams>,
    pub state: State,
}

impl Engine {
    /// Whether this engine can run the network dynamically. Today it runs
    /// networks described as private pipe pairs from plants to substations;
    /// explicit meshed topologies are solved in steady state by
    /// [`crate::steady`] only.
    pub fn supports(net: &Network) -> Result<(), String> {
        if net.is_star() {
            Ok(())
        } else {
            Err(format!(
                "network {} has an explicit [[pipes]] topology: the dynamic simulator does not run meshed networks yet (use `heatnet sim steady` for a steady state)",
                net.name
            ))
        }
    }

    /// A fresh engine at the network's start time, rooms at their initial temperature.
    pub fn new(net: &Network) -> Self {
        let plants: Vec<PlantParams> = net
            .plants
            .iter()
            .map(|p| PlantParams {
                capacity_w: p.capacity_w,
                pump_dp_pa: p.pump_dp_pa,
            })
            .collect();
        let mut substations = Vec::new();
        let mut sub_states = Vec::new();
        for s in &net.substations {
            let plant_idx = net.plants.iter().position(|p| p.id == s.plant).unwrap_or(0);
            let plant = &net.plants[plant_idx];
            let q0 = s.design_heat_w();
            let (ts0, tr0) = (
                s.secondary_design_supply_temp_c,
                s.secondary_design_return_temp_c,
            );
            let (tp0, tpr0) = (plant.design_supply_temp_c, plant.design_return_temp_c);
            let m_p0 = q0 / (WATER_CP_J_KG_K * (tp0 - tpr0));
            let m_s0 = q0 / (WATER_CP_J_KG_K * (ts0 - tr0));
            let ua0 = q0 / hx::lmtd(tp0, tpr0, tr0, ts0);
            let kv = s.valve_kv_m3_h.unwrap_or_else(|| {
                m_p0 / WATER_DENSITY_KG_M3 * 3600.0 / 0.7 / (plant.pump_dp_pa / 1.0e5).sqrt()
            });
            let buildings: Vec<BuildingParams> = s
                .buildings
                .iter()
                .map(|b| {
                    let qb = b.design_heat_w();
                    BuildingParams {
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
            let t0 = net.initial_room_temp_c;
            let pipe = PipeSpec {
                // The dynamic engine runs private-pipe networks only (see `Engine::supports`).
                length_m: s.pipe_length_m.unwrap_or(1.0),
                diameter_m: s.pipe_inner_diameter_m.unwrap_or(0.1),
                loss_w_m_k: s.pipe_loss_w_m_k,
                ground_c: s.ground_temp_c,
                density_kg_m3: WATER_DENSITY_KG_M3,
            };
            sub_states.push(SubstationState {
                // A fresh simulation starts with the network in operation at its
                // design temperatures; only the rooms start cold.
                supply_pipe: PlugPipe::filled(&pipe, tp0),
                return_pipe: PlugPipe::filled(&pipe, tpr0),
                valve_command: 0.5,
                valve_position: 0.5,
                valve_stuck: false,
                pump_on: true,
                pump_tripped: false,
                primary_supply_c: tp0,
                primary_return_c: tpr0,
                primary_flow_kg_s: 0.0,
                diff_pressure_pa: 0.0,
                secondary_supply_c: t0,
                secondary_return_c: t0,
                secondary_flow_kg_s: 0.0,
                heat_w: 0.0,
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
                    })
                    .collect(),
            });
            substations.push(SubstationParams {
                plant: plant_idx,
                pipe,
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
            .map(|p| PlantState {
                supply_setpoint_c: p.design_supply_temp_c,
                supply_temp_c: p.design_supply_temp_c,
                return_temp_c: p.design_return_temp_c,
                flow_kg_s: 0.0,
                heat_w: 0.0,
                pump_on: true,
                tripped: false,
                pump_tripped: false,
                capacity_factor: 1.0,
            })
            .collect();
        Self {
            plants,
            substations,
            state: State {
                time_ms: net.start_time_ms,
                outdoor_c: 0.0,
                plants: plant_states,
                substations: sub_states,
            },
        }
    }

    /// Replaces the evolving state with a saved one, if it fits this network.
    pub fn restore(&mut self, state: State) -> Result<(), String> {
        let fits = state.plants.len() == self.plants.len()
            && state.substations.len() == self.substations.len()
            && state
                .substations
                .iter()
                .zip(&self.substations)
                .all(|(s, p)| s.buildings.len() == p.buildings.len());
        if !fits {
            return Err(
                "saved state does not match the network's plants, substations and buildings".into(),
            );
        }
        self.state = state;
        Ok(())
    }

    /// Advances the network by `dt_s` seconds under the given outdoor
    /// temperature and global horizontal sunshine (W/m²).
    pub fn step(&mut self, dt_s: f64, outdoor_c: f64, ghi_w_m2: f64) {
        let sun = |bp: &BuildingParams| bp.thermal.solar_aperture_m2 * ghi_w_m2.max(0.0);
        let st = &mut self.state;
        st.outdoor_c = outdoor_c;
        let max_valve_move = dt_s / VALVE_STROKE_S;
        let mut plant_flow = vec![0.0; self.plants.len()];
        let mut plant_return_heat = vec![0.0; self.plants.len()]; // Σ ṁ·T of returns

        for (sp, ss) in self.substations.iter().zip(st.substations.iter_mut()) {
            let plant = &st.plants[sp.plant];
            let plant_pump = plant.pump_on && !plant.pump_tripped;
            ss.diff_pressure_pa = if plant_pump {
                self.plants[sp.plant].pump_dp_pa
            } else {
                0.0
            };
            if !ss.valve_stuck {
                ss.valve_position +=
                    (ss.valve_command - ss.valve_position).clamp(-max_valve_move, max_valve_move);
            }
            // Linear valve: ṁ = ρ·Kv·x/3600·√(Δp / 1 bar).
            let m_p = WATER_DENSITY_KG_M3 * sp.kv_m3_h * ss.valve_position / 3600.0
                * (ss.diff_pressure_pa / 1.0e5).max(0.0).sqrt();
            ss.primary_flow_kg_s = m_p;
            // The water reaching the substation left the plant one residence time ago.
            ss.primary_supply_c = ss
                .supply_pipe
                .step(&sp.pipe, plant.supply_temp_c, m_p, dt_s)
                .0;

            // Secondary circuit: the pump holds the differential pressure, so each
            // building's flow is its design flow times its balancing valve opening.
            let pump = ss.pump_on && !ss.pump_tripped;
            let mut m_s = 0.0;
            for (bp, bs) in sp.buildings.iter().zip(ss.buildings.iter_mut()) {
                if !bs.valve_stuck {
                    bs.valve_position += (bs.valve_command - bs.valve_position)
                        .clamp(-max_valve_move, max_valve_move);
                }
                bs.flow_kg_s = if pump {
                    bp.design_flow_kg_s * bs.valve_position
                } else {
                    0.0
                };
                m_s += bs.flow_kg_s;
            }
            ss.secondary_flow_kg_s = m_s;

            if m_s > 1e-9 {
                // Fixed point on the secondary supply temperature: radiators set the
                // return, the exchanger sets the supply.
                let ua = hx::ua_at_flow(
                    sp.ua_design_w_k,
                    m_p,
                    sp.primary_design_kg_s,
                    m_s,
                    sp.secondary_design_kg_s,
                );
                let mut t_sup = ss.secondary_supply_c;
                let mut out = counterflow(ua, ss.primary_supply_c, m_p, ss.secondary_return_c, m_s);
                let mut t_ret = ss.secondary_return_c;
                for _ in 0..50 {
                    let mut mix = 0.0;
                    for (bp, bs) in sp.buildings.iter().zip(ss.buildings.iter_mut()) {
                        let (q, t_out) = bp.emitter.solve(t_sup, bs.flow_kg_s, bs.air_c);
                        bs.heat_w = q;
                        bs.return_c = t_out;
                        mix += bs.flow_kg_s * t_out;
                    }
                    t_ret = mix / m_s;
                    out = counterflow(ua, ss.primary_supply_c, m_p, t_ret, m_s);
                    let next = out.cold_out_c;
                    let done = (next - t_sup).abs() < 1e-4;
                    t_sup = 0.5 * t_sup + 0.5 * next;
                    if done {
                        break;
                    }
                }
                ss.secondary_supply_c = t_sup;
                ss.secondary_return_c = t_ret;
                ss.heat_w = out.heat_w;
                ss.primary_return_c = out.hot_out_c;
            } else {
                // No circulation: no heat; stagnant water drifts toward the rooms' temperature.
                let room = ss.buildings.iter().map(|b| b.air_c).sum::<f64>()
                    / ss.buildings.len().max(1) as f64;
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

            for (bp, bs) in sp.buildings.iter().zip(ss.buildings.iter_mut()) {
                let (a, m) =
                    bp.thermal
                        .step(bs.air_c, bs.mass_c, bs.heat_w + sun(bp), outdoor_c, dt_s);
                bs.air_c = a;
                bs.mass_c = m;
            }

            let back = ss
                .return_pipe
                .step(&sp.pipe, ss.primary_return_c, m_p, dt_s)
                .0;
            plant_flow[sp.plant] += m_p;
            plant_return_heat[sp.plant] += m_p * back;
        }

        for (i, (pp, ps)) in self.plants.iter().zip(st.plants.iter_mut()).enumerate() {
            let m = plant_flow[i];
            ps.flow_kg_s = m;
            if m > 1e-9 {
                ps.return_temp_c = plant_return_heat[i] / m;
            }
            // Supply temperature follows the setpoint (first order), limited by capacity.
            let target = if ps.tripped {
                ps.return_temp_c
            } else {
                ps.supply_setpoint_c
            };
            let k = 1.0 - (-dt_s / PLANT_TIME_CONSTANT_S).exp();
            let mut t_sup = ps.supply_temp_c + (target - ps.supply_temp_c) * k;
            if m > 1e-9 {
                let max_t =
                    ps.return_temp_c + pp.capacity_w * ps.capacity_factor / (m * WATER_CP_J_KG_K);
                t_sup = t_sup.min(max_t);
                ps.heat_w = (m * WATER_CP_J_KG_K * (t_sup - ps.return_temp_c)).max(0.0);
            } else {
                ps.heat_w = 0.0;
            }
            ps.supply_temp_c = t_sup;
        }
        st.time_ms += (dt_s * 1000.0).round() as i64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_heats_rooms_and_balances_heat() {
        let net = Network::sample("demo").unwrap();
        let mut e = Engine::new(&net);
        for s in e.state.substations.iter_mut() {
            s.valve_command = 1.0;
        }
        e.state.plants[0].supply_setpoint_c = 105.0;
        for _ in 0..(6 * 360) {
            e.step(10.0, -2.0, 0.0);
        }
        let st = &e.state;
        let warm = st
            .substations
            .iter()
            .flat_map(|s| &s.buildings)
            .all(|b| b.air_c > 17.0);
        assert!(
            warm,
            "rooms did not warm: {:?}",
            st.substations
                .iter()
                .flat_map(|s| s.buildings.iter().map(|b| b.air_c))
                .collect::<Vec<_>>()
        );
        for s in &st.substations {
            // Exchanger balance: primary heat = secondary heat = sum of building heat.
            let primary =
                s.primary_flow_kg_s * WATER_CP_J_KG_K * (s.primary_supply_c - s.primary_return_c);
            let secondary = s.secondary_flow_kg_s
                * WATER_CP_J_KG_K
                * (s.secondary_supply_c - s.secondary_return_c);
            let rooms: f64 = s.buildings.iter().map(|b| b.heat_w).sum();
            assert!(
                (primary - s.heat_w).abs() / s.heat_w < 1e-6,
                "{primary} vs {}",
                s.heat_w
            );
            assert!(
                (secondary - s.heat_w).abs() / s.heat_w < 1e-3,
                "{secondary} vs {}",
                s.heat_w
            );
            assert!(
                (rooms - s.heat_w).abs() / s.heat_w < 1e-3,
                "{rooms} vs {}",
                s.heat_w
            );
        }
        assert!(st.plants[0].heat_w > 0.0);
    }

    #[test]
    fn closed_valves_and_stopped_pumps_deliver_no_heat() {
        let net = Network::sample("demo").unwrap();
        let mut e = Engine::new(&net);
        e.state.substations[0].pump_tripped = true;
        e.state.substations[1].valve_command = 0.0;
        e.state.substations[1].valve_position = 0.0;
        e.step(10.0, 0.0, 0.0);
        assert_eq!(e.state.substations[0].heat_w, 0.0);
        assert_eq!(e.state.substations[1].primary_flow_kg_s, 0.0);
        assert_eq!(e.state.substations[1].heat_w, 0.0);
    }

    #[test]
    fn a_plant_supply_step_reaches_each_substation_one_residence_time_later() {
        let mut net = Network::sample("demo").unwrap();
        // Transport is under test, not capacity: let the plant follow its setpoint freely.
        net.plants[0].capacity_w = 1.0e9;
        let mut e = Engine::new(&net);
        for s in e.state.substations.iter_mut() {
            s.valve_command = 1.0;
            s.valve_position = 1.0;
        }
        let dt = 10.0;
        // Settle at 90 °C, then step the plant to 110 °C.
        e.state.plants[0].supply_setpoint_c = 90.0;
        for _ in 0..3000 {
            e.step(dt, 0.0, 0.0);
        }
        e.state.plants[0].supply_setpoint_c = 110.0;
        let mut crossed = vec![None; net.substations.len()];
        let mut plant_crossed = None;
        for i in 1..=3000 {
            e.step(dt, 0.0, 0.0);
            if plant_crossed.is_none() && e.state.plants[0].supply_temp_c > 100.0 {
                plant_crossed = Some(i as f64 * dt);
            }
            for (k, s) in e.state.substations.iter().enumerate() {
                if crossed[k].is_none() && s.primary_supply_c > 100.0 {
                    crossed[k] = Some(i as f64 * dt);
                }
            }
        }
        // Once the plant's supply crosses 100 °C, the water needs its residence
        // time ρ·A·L/ṁ to reach each substation.
        let plant_half = plant_crossed.expect("the plant never reached 100 °C");
        for (k, sub) in net.substations.iter().enumerate() {
            let p = &e.substations[k].pipe;
            let tau = p.mass_kg() / e.state.substations[k].primary_flow_kg_s;
            let t = crossed[k].unwrap_or_else(|| panic!("{}: the step never arrived", sub.id));
            // Heat loss makes the arriving water slightly cooler: allow a few minutes late.
            assert!(
                t >= plant_half + tau - dt && t <= plant_half + tau + 300.0,
                "{}: arrived at {t} s, expected {} s",
                sub.id,
                plant_half + tau
            );
        }
        // The far substation (3.3 km) sees it over an hour after the near one (0.8 km).
        assert!(
            crossed[4].unwrap() - crossed[0].unwrap() > 3600.0,
            "{crossed:?}"
        );
    }

    #[test]
    fn stuck_valves_do_not_move() {
        let net = Network::sample("demo").unwrap();
        let mut e = Engine::new(&net);
        e.state.substations[0].valve_stuck = true;
        e.state.substations[0].valve_command = 1.0;
        e.state.substations[1].valve_command = 1.0;
        e.step(30.0, 0.0, 0.0);
        assert_eq!(e.state.substations[0].valve_position, 0.5);
        assert!((e.state.substations[1].valve_position - 1.0).abs() < 1e-12);
    }
}
