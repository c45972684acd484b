//! Steady-state design calculation of a whole network, as planners use it:
//! each substation draws a fixed heat with either a fixed return temperature or
//! a fixed flow; plants hold their supply temperatures and pump; the result is
//! every junction's pressures and temperatures and every pipe's flows and
//! outlet temperatures.
//!
//! The network becomes two hydraulic graphs of the same shape — supply and
//! return — joined at each plant by its circulation pump (return → supply). A
//! substation takes its flow out of the supply graph at its junction and puts
//! it back into the return graph there. The static pressure is held on the
//! return side (the pressure-holding point). Temperatures follow the flow:
//! water moves from high to low pressure along every pipe, so visiting nodes in
//! falling pressure is a topological order; each node mixes what flows in, each
//! pipe cools exponentially toward the ground. Flows and temperatures are
//! iterated to a fixed point when substations have a fixed return temperature
//! (their flow then depends on the supply temperature that reaches them).

use std::collections::BTreeMap;

use model::{Network, NodeId, WATER_CP_J_KG_K};
use serde::{Deserialize, Serialize};

use crate::hydraulics::{Link, LinkKind, Options, Problem, PumpCurve, SolveError, Solver};
use crate::pipe;
use crate::water::Water;

/// Static pressure held on the return side when the network file names none, Pa.
pub const DEFAULT_HOLDING_PRESSURE_PA: f64 = 2.0e5;
/// Outer iterations (flows ↔ temperatures) at most.
const MAX_OUTER: usize = 50;
/// How far the first (cold) hydraulic solve is settled before the outer
/// iterations take over; the answer is settled to [`Options::default`].
const COLD_TOLERANCE_PA: f64 = 1.0e5;
const COLD_TOLERANCE_REL_FLOW: f64 = 0.2;
/// Largest relative residual of an outer round's linear solve (its Newton
/// step's forcing term), and the CG iterations it may take on a reused factor.
const MAX_LINEAR_TOLERANCE: f64 = 0.05;
const MAX_CG_ITERATIONS: usize = 8;
/// Outer iterations remembered by the Anderson acceleration.
const ANDERSON_DEPTH: usize = 3;
/// Largest Anderson coefficient used (beyond it the last rounds say little
/// about the next one, and the plain step is taken).
const ANDERSON_MAX_GAMMA: f64 = 4.0;

/// The next iterate of Anderson acceleration from the history of `(G(x),
/// G(x) − x)`, oldest first: `G(x_k) − ΔG·γ` with γ minimising
/// `|f_k − ΔF·γ|` (normal equations, depth ≤ 3). The plain step `G(x_k)` when
/// the history is too short or the least-squares problem is degenerate.
fn anderson_step(history: &[(Vec<f64>, Vec<f64>)]) -> Vec<f64> {
    let Some((g_k, f_k)) = history.last() else {
        return Vec::new();
    };
    let m = history.len() - 1;
    if m == 0 {
        return g_k.clone();
    }
    let n = f_k.len();
    // Columns j: ΔF_j = f_{j+1} − f_j, ΔG_j = g_{j+1} − g_j.
    let df = |j: usize, i: usize| history[j + 1].1[i] - history[j].1[i];
    let mut a = [[0.0f64; ANDERSON_DEPTH]; ANDERSON_DEPTH];
    let mut b = [0.0f64; ANDERSON_DEPTH];
    for (i, &fi) in f_k.iter().enumerate() {
        let mut col = [0.0f64; ANDERSON_DEPTH];
        for (j, c) in col.iter_mut().enumerate().take(m) {
            *c = df(j, i);
        }
        for r in 0..m {
            b[r] += col[r] * fi;
            for c in 0..m {
                a[r][c] += col[r] * col[c];
            }
        }
    }
    // Gaussian elimination with partial pivoting, slightly regularised.
    let scale = (0..m).map(|r| a[r][r]).fold(0.0, f64::max);
    if !(scale > 0.0 && scale.is_finite()) {
        return g_k.clone();
    }
    for (r, row) in a.iter_mut().enumerate().take(m) {
        row[r] += 1e-12 * scale;
    }
    let mut gamma = b;
    for c in 0..m {
        let piv = (c..m)
            .max_by(|&x, &y| a[x][c].abs().total_cmp(&a[y][c].abs()))
            .unwrap_or(c);
        a.swap(c, piv);
        gamma.swap(c, piv);
        if a[c][c].abs() <= 1e-14 * scale {
            return g_k.clone();
        }
        let pivot_row = a[c];
        for r in (c + 1)..m {
            let f = a[r][c] / pivot_row[c];
            for (x, p) in a[r][c..m].iter_mut().zip(&pivot_row[c..m]) {
                *x -= f * p;
            }
            gamma[r] -= f * gamma[c];
        }
    }
    for c in (0..m).rev() {
        let mut v = gamma[c];
        for k in (c + 1)..m {
            v -= a[c][k] * gamma[k];
        }
        gamma[c] = v / a[c][c];
    }
    if gamma[..m]
        .iter()
        .any(|g| !g.is_finite() || g.abs() > ANDERSON_MAX_GAMMA)
    {
        return g_k.clone();
    }
    let mut next = g_k.clone();
    for j in 0..m {
        let (g_hi, g_lo) = (&history[j + 1].0, &history[j].0);
        for i in 0..n {
            next[i] -= gamma[j] * (g_hi[i] - g_lo[i]);
        }
    }
    next
}

/// A junction or pipe of the network graph, explicit or derived.
#[derive(Clone, Debug)]
pub(crate) struct GPipe {
    pub(crate) id: NodeId,
    pub(crate) a: usize,
    pub(crate) b: usize,
    pub(crate) length_m: f64,
    pub(crate) diameter_m: f64,
    pub(crate) roughness_m: f64,
    pub(crate) loss_w_m_k: f64,
    pub(crate) ground_c: f64,
    /// A tie line between two plants (`model::Pipe::tie`): closed in the
    /// design calculation, where every plant runs.
    pub(crate) tie: bool,
}

/// A pressure-holding point of one connected part of the network.
#[derive(Clone, Debug)]
pub(crate) struct Holding {
    pub(crate) junction: usize,
    pub(crate) pressure_pa: f64,
    pub(crate) makeup_capacity_kg_s: f64,
    pub(crate) vessel_gas_m3: f64,
    pub(crate) low_pressure_trip_pa: f64,
}

/// The network as a graph: explicit `[[junctions]]`/`[[pipes]]`, or for a
/// network described with private pipes, one junction per plant and per
/// substation and one pipe pair from each substation's plant to it.
#[derive(Clone, Debug)]
pub struct Graph {
    pub(crate) junctions: Vec<NodeId>,
    pub(crate) pipes: Vec<GPipe>,
    pub(crate) plant_at: Vec<usize>,
    pub(crate) substation_at: Vec<usize>,
    /// One pressure-holding point per connected part: the network's own
    /// where it names one, else at the part's first plant with the defaults.
    pub(crate) holdings: Vec<Holding>,
    /// Index into `holdings` of each junction's connected part.
    pub(crate) part_of: Vec<usize>,
}

/// FNV-1a, for the graph's index of junction ids: short keys, thousands of
/// look-ups, no adversary (std's SipHash and a `BTreeMap` of strings cost
/// milliseconds here).
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

type IdIndex<'a> = std::collections::HashMap<&'a str, usize, std::hash::BuildHasherDefault<Fnv>>;

impl Graph {
    pub fn of(net: &Network) -> Self {
        let mut junctions = Vec::new();
        let mut pipes = Vec::new();
        let mut index = IdIndex::default();
        let (plant_at, substation_at);
        if net.is_star() {
            for p in &net.plants {
                index.insert(p.id.as_str(), junctions.len());
                junctions.push(p.id.clone());
            }
            let mut at = Vec::new();
            for s in &net.substations {
                let j = junctions.len();
                junctions.push(s.id.clone());
                at.push(j);
                let a = index.get(s.plant.as_str()).copied().unwrap_or(0);
                pipes.push(GPipe {
                    id: NodeId::new(format!("{}.pipe", s.id)).unwrap_or_else(|_| s.id.clone()),
                    a,
                    b: j,
                    length_m: s.pipe_length_m.unwrap_or(1.0),
                    diameter_m: s.pipe_inner_diameter_m.unwrap_or(0.1),
                    roughness_m: 5.0e-5,
                    loss_w_m_k: s.pipe_loss_w_m_k,
                    ground_c: s.ground_temp_c,
                    tie: false,
                });
            }
            plant_at = (0..net.plants.len()).collect::<Vec<_>>();
            substation_at = at;
        } else {
            for j in &net.junctions {
                index.insert(j.id.as_str(), junctions.len());
                junctions.push(j.id.clone());
            }
            let at = |id: &Option<NodeId>| {
                id.as_ref()
                    .and_then(|j| index.get(j.as_str()))
                    .copied()
                    .unwrap_or(0)
            };
            for p in &net.pipes {
                pipes.push(GPipe {
                    id: p.id.clone(),
                    a: index.get(p.from.as_str()).copied().unwrap_or(0),
                    b: index.get(p.to.as_str()).copied().unwrap_or(0),
                    length_m: p.length_m,
                    diameter_m: p.inner_diameter_m,
                    roughness_m: p.roughness_m,
                    loss_w_m_k: p.loss_w_m_k,
                    ground_c: p.ground_temp_c,
                    tie: p.tie,
                });
            }
            plant_at = net.plants.iter().map(|p| at(&p.junction)).collect();
            substation_at = net.substations.iter().map(|s| at(&s.junction)).collect();
        }
        // Connected parts of the junction graph.
        let nj = junctions.len();
        let mut part_root: Vec<usize> = (0..nj).collect();
        fn root(p: &mut [usize], mut i: usize) -> usize {
            while p[i] != i {
                p[i] = p[p[i]];
                i = p[i];
            }
            i
        }
        for gp in &pipes {
            let (ra, rb) = (root(&mut part_root, gp.a), root(&mut part_root, gp.b));
            part_root[ra.max(rb)] = ra.min(rb);
        }
        let roots: Vec<usize> = (0..nj).map(|j| root(&mut part_root, j)).collect();
        let named = net.pressure_holding.as_ref().and_then(|ph| {
            junctions
                .iter()
                .position(|j| *j == ph.junction)
                .map(|j| (j, ph))
        });
        let mut holdings = Vec::new();
        // Holding index of each part, by the part's root junction.
        let mut part_index: Vec<Option<usize>> = vec![None; nj];
        if let Some((j, ph)) = named {
            part_index[roots[j]] = Some(0);
            holdings.push(Holding {
                junction: j,
                pressure_pa: ph.pressure_pa,
                makeup_capacity_kg_s: ph.makeup_capacity_kg_s,
                vessel_gas_m3: ph.vessel_gas_m3,
                low_pressure_trip_pa: ph.low_pressure_trip_pa,
            });
        }
        // Parts without a named point hold pressure at their first plant, or
        // their first junction if they have none (validation refuses that).
        let anchors = plant_at.iter().copied().chain(0..nj);
        for j in anchors {
            if part_index[roots[j]].is_none() {
                part_index[roots[j]] = Some(holdings.len());
                holdings.push(Holding {
                    junction: j,
                    pressure_pa: DEFAULT_HOLDING_PRESSURE_PA,
                    makeup_capacity_kg_s: model::network::DEFAULT_MAKEUP_CAPACITY_KG_S,
                    vessel_gas_m3: model::network::DEFAULT_VESSEL_GAS_M3,
                    low_pressure_trip_pa: model::network::DEFAULT_LOW_PRESSURE_TRIP_PA,
                });
            }
        }
        let part_of = roots.iter().map(|&r| part_index[r].unwrap_or(0)).collect();
        Self {
            junctions,
            pipes,
            plant_at,
            substation_at,
            holdings,
            part_of,
        }
    }
}

/// What a substation draws in the design case.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Draw {
    /// Fixed heat and fixed primary return temperature.
    HeatAndReturn { heat_w: f64, return_temp_c: f64 },
    /// Fixed heat and fixed primary flow.
    HeatAndFlow { heat_w: f64, flow_kg_s: f64 },
}

impl Draw {
    /// Primary return temperature of this draw when `supply_c` reaches the substation.
    pub fn return_temp_c(&self, supply_c: f64) -> f64 {
        match *self {
            Draw::HeatAndReturn { return_temp_c, .. } => return_temp_c,
            Draw::HeatAndFlow { heat_w, flow_kg_s } => {
                supply_c - heat_w / (WATER_CP_J_KG_K * flow_kg_s)
            }
        }
    }
}

/// Design conditions: plant supply temperatures and substation draws.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// Supply temperature per plant, °C (default: its design supply temperature).
    #[serde(default)]
    pub plants: BTreeMap<NodeId, PlantCondition>,
    /// Draw per substation (default: its design heat at its plant's design return temperature).
    #[serde(default)]
    pub substations: BTreeMap<NodeId, Draw>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlantCondition {
    pub supply_temp_c: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SteadyError {
    #[error("conditions name {kind} {id}, which the network does not have")]
    UnknownNode { kind: &'static str, id: String },
    #[error("substation {id}: {problem}")]
    BadDraw { id: String, problem: String },
    #[error("plant {id}: supply_temp_c {value} is outside 20..150 °C")]
    BadSupply { id: String, value: f64 },
    #[error("hydraulics: {0}")]
    Hydraulics(#[from] SolveError),
    #[error(
        "substation {id} cannot draw {heat_w} W with return at {return_temp_c} °C: only {supply_temp_c:.2} °C reaches it"
    )]
    TooCold {
        id: String,
        heat_w: f64,
        return_temp_c: f64,
        supply_temp_c: f64,
    },
    #[error("flows and temperatures did not settle after {0} iterations")]
    NotConverged(usize),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JunctionResult {
    pub id: String,
    pub supply_pressure_pa: f64,
    pub return_pressure_pa: f64,
    pub supply_temp_c: f64,
    pub return_temp_c: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PipeResult {
    pub id: String,
    pub from: String,
    pub to: String,
    /// Mass flow in the supply pipe, kg/s (positive from `from` to `to`).
    pub supply_flow_kg_s: f64,
    pub supply_outlet_temp_c: f64,
    /// Mass flow in the return pipe, kg/s (positive from `to` back to `from`).
    pub return_flow_kg_s: f64,
    pub return_outlet_temp_c: f64,
    pub heat_loss_w: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SubstationResult {
    pub id: String,
    pub flow_kg_s: f64,
    pub heat_w: f64,
    pub supply_temp_c: f64,
    pub return_temp_c: f64,
    /// Pressure difference between supply and return at the substation, Pa.
    pub diff_pressure_pa: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlantResult {
    pub id: String,
    pub flow_kg_s: f64,
    pub heat_w: f64,
    pub supply_temp_c: f64,
    pub return_temp_c: f64,
    pub pump_head_pa: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SteadyState {
    pub network: String,
    pub junctions: Vec<JunctionResult>,
    pub pipes: Vec<PipeResult>,
    pub substations: Vec<SubstationResult>,
    pub plants: Vec<PlantResult>,
    pub heat_produced_w: f64,
    pub heat_delivered_w: f64,
    pub heat_lost_w: f64,
    /// (produced − delivered − lost) / produced.
    pub energy_balance_error: f64,
    /// Largest node mass imbalance, kg/s.
    pub mass_balance_error_kg_s: f64,
    pub iterations: usize,
    /// Conditions a planner should look at (a pump pushed backwards, …).
    pub warnings: Vec<String>,
}

/// Solves the design steady state of `net` under `cond`.
pub fn solve(net: &Network, cond: &Conditions) -> Result<SteadyState, SteadyError> {
    for id in cond.plants.keys() {
        if net.plant(id).is_none() {
            return Err(SteadyError::UnknownNode {
                kind: "plant",
                id: id.to_string(),
            });
        }
    }
    for id in cond.substations.keys() {
        if net.substation(id).is_none() {
            return Err(SteadyError::UnknownNode {
                kind: "substation",
                id: id.to_string(),
            });
        }
    }
    let g = Graph::of(net);
    let inc = Incidence::of(&g);
    let mut orders = Orders::new(g.junctions.len());
    let nj = g.junctions.len();
    let supply_c: Vec<f64> = net
        .plants
        .iter()
        .map(|p| {
            cond.plants
                .get(&p.id)
                .map_or(p.design_supply_temp_c, |c| c.supply_temp_c)
        })
        .collect();
    for (p, &t) in net.plants.iter().zip(&supply_c) {
        if !(20.0..=150.0).contains(&t) {
            return Err(SteadyError::BadSupply {
                id: p.id.to_string(),
                value: t,
            });
        }
    }
    let draws: Vec<Draw> = net
        .substations
        .iter()
        .map(|s| {
            let plant_return = net.plant(&s.plant).map_or(55.0, |p| p.design_return_temp_c);
            cond.substations
                .get(&s.id)
                .copied()
                .unwrap_or(Draw::HeatAndReturn {
                    heat_w: s.design_heat_w(),
                    return_temp_c: plant_return,
                })
        })
        .collect();
    for (s, d) in net.substations.iter().zip(&draws) {
        let bad = |problem: &str| SteadyError::BadDraw {
            id: s.id.to_string(),
            problem: problem.to_string(),
        };
        match *d {
            Draw::HeatAndReturn {
                heat_w,
                return_temp_c,
            } => {
                if !(heat_w.is_finite() && heat_w >= 0.0) {
                    return Err(bad("heat_w must be a finite number ≥ 0"));
                }
                if !(5.0..=140.0).contains(&return_temp_c) {
                    return Err(bad("return_temp_c must be within 5..140 °C"));
                }
            }
            Draw::HeatAndFlow { heat_w, flow_kg_s } => {
                if !(heat_w.is_finite() && heat_w >= 0.0) {
                    return Err(bad("heat_w must be a finite number ≥ 0"));
                }
                if !(flow_kg_s.is_finite() && flow_kg_s > 0.0) {
                    return Err(bad("flow_kg_s must be a finite number > 0"));
                }
            }
        }
    }

    // Node numbering: junction j → supply node 2j, return node 2j+1.
    let (sn, rn) = (|j: usize| 2 * j, |j: usize| 2 * j + 1);
    let mut t_sup = vec![supply_c.iter().copied().fold(f64::NEG_INFINITY, f64::max); nj];
    let mut t_ret = vec![
        net.plants
            .iter()
            .map(|p| p.design_return_temp_c)
            .sum::<f64>()
            / net.plants.len() as f64;
        nj
    ];
    // The hydraulic problem's links (supply pipe, return pipe per pipe, then
    // the plants' pumps); their water and the demands change every round.
    let mut links = Vec::with_capacity(2 * g.pipes.len() + g.plant_at.len());
    for p in &g.pipes {
        let kind = if p.tie {
            LinkKind::Valve {
                kv_m3_h: crate::engine::CLOSED_KV_M3_H,
                opening: 1.0,
            }
        } else {
            LinkKind::Pipe {
                length_m: p.length_m,
                diameter_m: p.diameter_m,
                roughness_m: p.roughness_m,
                minor_loss: 0.0,
            }
        };
        let water = link_water(t_sup[p.a]);
        links.push(Link {
            from: sn(p.a),
            to: sn(p.b),
            kind,
            water,
        });
        links.push(Link {
            from: rn(p.b),
            to: rn(p.a),
            kind,
            water,
        });
    }
    for (k, plant) in net.plants.iter().enumerate() {
        let r = plant.pump_rating();
        let j = g.plant_at[k];
        links.push(Link {
            from: rn(j),
            to: sn(j),
            kind: LinkKind::Pump {
                curve: PumpCurve::from_rated(r.shutoff_head_m, r.rated_flow_m3_h, r.rated_head_m),
                speed: 1.0,
            },
            water: link_water(t_ret[j]),
        });
    }
    let mut problem = Problem {
        node_count: 2 * nj,
        links,
        fixed_pressure_pa: g
            .holdings
            .iter()
            .map(|h| (rn(h.junction), h.pressure_pa))
            .collect(),
        demand_kg_s: vec![0.0; 2 * nj],
    };
    let (mut new_sup, mut new_ret) = (t_sup.clone(), t_ret.clone());
    let mut flows: Vec<f64> = vec![0.0; draws.len()];
    let mut solver: Option<Solver> = None;
    let mut start: Option<Vec<f64>> = None;
    let mut start_p: Option<Vec<f64>> = None;
    let opts = Options::default();
    // The last hydraulic iterate's state, to report if nothing settles.
    let mut newton_steps = 0;
    let mut last_hydraulics = None;
    // G(x) and G(x) − x of the last outer iterations.
    let mut history: Vec<(Vec<f64>, Vec<f64>)> = Vec::with_capacity(ANDERSON_DEPTH + 1);
    for outer in 0..MAX_OUTER {
        // Substation flows from the current supply temperatures.
        let mut moved = 0.0f64;
        for (i, d) in draws.iter().enumerate() {
            let j = g.substation_at[i];
            let q = match *d {
                Draw::HeatAndFlow { flow_kg_s, .. } => flow_kg_s,
                Draw::HeatAndReturn {
                    heat_w,
                    return_temp_c,
                } => {
                    let dt = t_sup[j] - return_temp_c;
                    if dt <= 0.5 {
                        if outer > 2 {
                            return Err(SteadyError::TooCold {
                                id: net.substations[i].id.to_string(),
                                heat_w,
                                return_temp_c,
                                supply_temp_c: t_sup[j],
                            });
                        }
                        heat_w / (WATER_CP_J_KG_K * 0.5)
                    } else {
                        heat_w / (WATER_CP_J_KG_K * dt)
                    }
                }
            };
            moved = moved.max((q - flows[i]).abs() / q.max(1e-6));
            flows[i] = q;
        }

        // Hydraulics: the links' water at the current temperatures, the
        // substations' flows as demands.
        let n_pipes = g.pipes.len();
        for (k, p) in g.pipes.iter().enumerate() {
            problem.links[2 * k].water = link_water(0.5 * (t_sup[p.a] + t_sup[p.b]));
            problem.links[2 * k + 1].water = link_water(0.5 * (t_ret[p.a] + t_ret[p.b]));
        }
        for (k, &j) in g.plant_at.iter().enumerate() {
            problem.links[2 * n_pipes + k].water = link_water(t_ret[j]);
        }
        let demand = &mut problem.demand_kg_s;
        demand.iter_mut().for_each(|d| *d = 0.0);
        for (i, &q) in flows.iter().enumerate() {
            let j = g.substation_at[i];
            demand[sn(j)] += q;
            demand[rn(j)] -= q;
        }
        if solver.is_none() {
            let mut s = Solver::new(&problem)?;
            s.reuse_factorization(true);
            solver = Some(s);
        }
        let Some(s) = solver.as_mut() else {
            unreachable!()
        };
        // One Newton step per outer iteration once warm: flows, temperatures
        // and hydraulics settle together (each step is exact to first order in
        // what the last outer iteration moved). The cold start is settled
        // only roughly (flows within 20 %, 100 kPa: the linearised network and
        // one Newton step): the outer iterations go on from there, a Newton
        // step each.
        let inner = if start.is_some() {
            Options {
                max_iterations: 1,
                ..opts
            }
        } else {
            Options {
                tolerance_pa: COLD_TOLERANCE_PA,
                tolerance_rel_flow: COLD_TOLERANCE_REL_FLOW,
                ..opts
            }
        };
        // Inexact Newton: the linear solve need not be more exact than the
        // outer iteration is settled (what the substation flows moved), down
        // to 1e-10 at the end.
        s.set_linear_tolerance(moved.clamp(1e-10, MAX_LINEAR_TOLERANCE), MAX_CG_ITERATIONS);
        let (hyd, hyd_converged) =
            s.iterate(&problem, &inner, start.as_deref(), start_p.as_deref())?;
        if start.is_none() && !hyd_converged {
            return Err(SolveError::NotConverged {
                iterations: hyd.iterations,
                max_imbalance_kg_s: hyd.max_imbalance_kg_s,
                max_residual_pa: hyd.max_residual_pa,
            }
            .into());
        }
        newton_steps += hyd.iterations;
        last_hydraulics = (!hyd_converged).then_some((hyd.max_imbalance_kg_s, hyd.max_residual_pa));
        start = Some(hyd.flow_kg_s.clone());
        start_p = Some(hyd.pressure_pa.clone());

        // Temperatures, supply side then return side, each in falling pressure.
        new_sup.copy_from_slice(&t_sup);
        new_ret.copy_from_slice(&t_ret);
        let inputs = Flows {
            inc: &inc,
            q: &hyd.flow_kg_s,
            p: &hyd.pressure_pa,
            supply_c: &supply_c,
            draws: &draws,
            flows: &flows,
        };
        propagate(&inputs, &mut orders, &mut new_sup, &mut new_ret, None);
        let changed = new_sup
            .iter()
            .zip(&t_sup)
            .chain(new_ret.iter().zip(&t_ret))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        if outer > 0 && changed < 1e-6 && moved < 1e-9 && hyd_converged {
            t_sup.copy_from_slice(&new_sup);
            t_ret.copy_from_slice(&new_ret);
            return Ok(assemble(
                net,
                &g,
                &inc,
                &mut orders,
                &hyd.flow_kg_s,
                &hyd.pressure_pa,
                &t_sup,
                &t_ret,
                &supply_c,
                &draws,
                &flows,
                hyd.max_imbalance_kg_s,
                outer + 1,
            ));
        }
        // Next temperatures: Anderson acceleration (type II, depth
        // [`ANDERSON_DEPTH`]) of the fixed point x = G(x) over both sides'
        // junction temperatures. The plain iteration contracts by only about
        // a quarter per round (a warmer supply lowers the flow that cools
        // it); convergence is still judged on G(x) − x above.
        let gx: Vec<f64> = new_sup.iter().chain(&new_ret).copied().collect();
        let fx: Vec<f64> = gx
            .iter()
            .zip(t_sup.iter().chain(&t_ret))
            .map(|(g, x)| g - x)
            .collect();
        history.push((gx, fx));
        if history.len() > ANDERSON_DEPTH + 1 {
            history.remove(0);
        }
        let next = anderson_step(&history);
        t_sup.copy_from_slice(&next[..nj]);
        t_ret.copy_from_slice(&next[nj..]);
    }
    if let Some((max_imbalance_kg_s, max_residual_pa)) = last_hydraulics {
        return Err(SolveError::NotConverged {
            iterations: newton_steps,
            max_imbalance_kg_s,
            max_residual_pa,
        }
        .into());
    }
    Err(SteadyError::NotConverged(MAX_OUTER))
}

/// Water as the hydraulics need it: IAPWS-IF97 density and viscosity at
/// `temp_c` (from the table of [`crate::water::hydraulic_properties`], within
/// 2e-8 of [`Water::at`]); the heat capacity, which the hydraulics never
/// read, is the model's constant that this calculation's heat balances use.
fn link_water(temp_c: f64) -> Water {
    let t = temp_c.clamp(crate::water::VALID_TEMP_C.0, crate::water::VALID_TEMP_C.1);
    let (density_kg_m3, viscosity_pa_s) = crate::water::hydraulic_properties(t);
    Water {
        temp_c: t,
        density_kg_m3,
        cp_j_kg_k: WATER_CP_J_KG_K,
        viscosity_pa_s,
    }
}

/// What touches each junction, in index order: plants, substations, pipes.
/// Lets [`propagate`] visit only a junction's own elements (the sums keep the
/// order of a scan over all elements).
struct Incidence {
    plant_ptr: Vec<usize>,
    plants: Vec<usize>,
    sub_ptr: Vec<usize>,
    subs: Vec<usize>,
    pipe_ptr: Vec<usize>,
    pipes: Vec<usize>,
    /// Per pipe, compactly: its ends, and ground temperature, loss per metre
    /// and length for its outlet temperature.
    ends: Vec<(usize, usize)>,
    heat: Vec<(f64, f64, f64)>,
}

impl Incidence {
    fn of(g: &Graph) -> Self {
        let nj = g.junctions.len();
        let group = |items: &mut dyn Iterator<Item = (usize, usize)>| {
            let pairs: Vec<(usize, usize)> = items.collect();
            let mut ptr = vec![0usize; nj + 1];
            for &(j, _) in &pairs {
                ptr[j + 1] += 1;
            }
            for j in 0..nj {
                ptr[j + 1] += ptr[j];
            }
            let mut fill = ptr.clone();
            let mut out = vec![0usize; pairs.len()];
            // Pairs come in increasing element index, so each list stays sorted.
            for &(j, k) in &pairs {
                out[fill[j]] = k;
                fill[j] += 1;
            }
            (ptr, out)
        };
        let (plant_ptr, plants) =
            group(&mut g.plant_at.iter().copied().enumerate().map(|(k, j)| (j, k)));
        let (sub_ptr, subs) = group(
            &mut g
                .substation_at
                .iter()
                .copied()
                .enumerate()
                .map(|(i, j)| (j, i)),
        );
        let (pipe_ptr, pipes) = group(&mut g.pipes.iter().enumerate().flat_map(|(k, gp)| {
            // A pipe whose ends coincide is listed once.
            let b = (gp.b != gp.a).then_some((gp.b, k));
            std::iter::once((gp.a, k)).chain(b)
        }));
        Self {
            plant_ptr,
            plants,
            sub_ptr,
            subs,
            pipe_ptr,
            pipes,
            ends: g.pipes.iter().map(|gp| (gp.a, gp.b)).collect(),
            heat: g
                .pipes
                .iter()
                .map(|gp| (gp.ground_c, gp.loss_w_m_k, gp.length_m))
                .collect(),
        }
    }
}

/// Junctions in falling supply or return pressure (ties by index), kept
/// from round to round: pressures barely reorder once the flows settle, and
/// an adaptive sort of an almost sorted list is almost free.
struct Order(Vec<usize>);

impl Order {
    fn new(nj: usize) -> Self {
        Self((0..nj).collect())
    }

    /// Sorts by `p[2j + side]` falling (side 0: supply, 1: return).
    fn sort(&mut self, p: &[f64], side: usize) {
        // A total order (the index breaks ties): any sort gives the same list.
        self.0
            .sort_by(|&a, &b| p[2 * b + side].total_cmp(&p[2 * a + side]).then(a.cmp(&b)));
    }
}

/// The supply side's and the return side's [`Order`].
struct Orders {
    sup: Order,
    ret: Order,
}

impl Orders {
    fn new(nj: usize) -> Self {
        Self {
            sup: Order::new(nj),
            ret: Order::new(nj),
        }
    }
}

/// The inputs of both sides' temperatures.
struct Flows<'a> {
    inc: &'a Incidence,
    q: &'a [f64],
    p: &'a [f64],
    supply_c: &'a [f64],
    draws: &'a [Draw],
    flows: &'a [f64],
}

/// Junction temperatures on both sides (into `t_sup`, `t_ret`, which hold
/// the last ones: a junction nothing flows into keeps its own), and each pipe
/// pair's outlet temperatures when `outlets` is given. When the return side
/// does not read the supply temperatures (every substation returns at a
/// fixed temperature, no pump runs backwards) and no outlets are asked for,
/// the two sides are done at the same time, on two threads, with the same
/// results.
fn propagate(
    x: &Flows<'_>,
    orders: &mut Orders,
    t_sup: &mut [f64],
    t_ret: &mut [f64],
    outlets: Option<&mut [(f64, f64)]>,
) {
    let n_pipes = x.inc.ends.len();
    let independent = outlets.is_none()
        && t_sup.len() >= PARALLEL_MIN_JUNCTIONS
        && x.draws
            .iter()
            .all(|d| matches!(d, Draw::HeatAndReturn { .. }))
        && x.q[2 * n_pipes..].iter().all(|&f| f >= 0.0);
    let Orders { sup, ret } = orders;
    match outlets {
        None if independent => {
            // The return side's substations and pumps read no supply
            // temperature here: it gets the last ones, never looked at.
            let last_sup = t_sup.to_vec();
            std::thread::scope(|scope| {
                scope.spawn(|| propagate_return(x, ret, &last_sup, t_ret, None));
                propagate_supply(x, sup, t_sup, None);
            });
        }
        None => {
            propagate_supply(x, sup, t_sup, None);
            propagate_return(x, ret, t_sup, t_ret, None);
        }
        Some(o) => {
            propagate_supply(x, sup, t_sup, Some(&mut *o));
            propagate_return(x, ret, t_sup, t_ret, Some(o));
        }
    }
}

/// Junctions from which [`propagate`] does the two sides on two threads.
const PARALLEL_MIN_JUNCTIONS: usize = 2_000;

/// Supply side: inflows are the plants' pumps and supply pipes, in falling
/// pressure.
fn propagate_supply(
    x: &Flows<'_>,
    order: &mut Order,
    t_sup: &mut [f64],
    mut outlets: Option<&mut [(f64, f64)]>,
) {
    let (inc, q) = (x.inc, x.q);
    let n_pipes = inc.ends.len();
    order.sort(x.p, 0);
    for &j in &order.0 {
        let (mut mq, mut mqt) = (0.0, 0.0);
        for &k in &inc.plants[inc.plant_ptr[j]..inc.plant_ptr[j + 1]] {
            let f = q[2 * n_pipes + k].max(0.0);
            mq += f;
            mqt += f * x.supply_c[k];
        }
        for &k in &inc.pipes[inc.pipe_ptr[j]..inc.pipe_ptr[j + 1]] {
            let (a, b) = inc.ends[k];
            let f = q[2 * k];
            let (src, dst) = if f >= 0.0 { (a, b) } else { (b, a) };
            if dst == j && f.abs() > 0.0 {
                let (ground_c, loss_w_m_k, length_m) = inc.heat[k];
                let out = pipe::outlet_temp_c(t_sup[src], ground_c, loss_w_m_k, length_m, f.abs());
                if let Some(o) = outlets.as_deref_mut() {
                    o[k].0 = out;
                }
                mq += f.abs();
                mqt += f.abs() * out;
            }
        }
        if mq > 1e-12 {
            t_sup[j] = mqt / mq;
        }
    }
}

/// Return side: inflows are substations, return pipes, and any pump that
/// runs backwards (supply water falling back through a plant that cannot
/// lift), in falling pressure. `t_sup`: the supply temperatures.
fn propagate_return(
    x: &Flows<'_>,
    order: &mut Order,
    t_sup: &[f64],
    t_ret: &mut [f64],
    mut outlets: Option<&mut [(f64, f64)]>,
) {
    let (inc, q) = (x.inc, x.q);
    let n_pipes = inc.ends.len();
    order.sort(x.p, 1);
    for &j in &order.0 {
        let (mut mq, mut mqt) = (0.0, 0.0);
        for &k in &inc.plants[inc.plant_ptr[j]..inc.plant_ptr[j + 1]] {
            let f = q[2 * n_pipes + k];
            if f < 0.0 {
                mq += -f;
                mqt += -f * t_sup[j];
            }
        }
        for &i in &inc.subs[inc.sub_ptr[j]..inc.sub_ptr[j + 1]] {
            let t_back = x.draws[i].return_temp_c(t_sup[j]);
            mq += x.flows[i];
            mqt += x.flows[i] * t_back;
        }
        for &k in &inc.pipes[inc.pipe_ptr[j]..inc.pipe_ptr[j + 1]] {
            let (a, b) = inc.ends[k];
            let f = q[2 * k + 1]; // positive from b back to a
            let (src, dst) = if f >= 0.0 { (b, a) } else { (a, b) };
            if dst == j && f.abs() > 0.0 {
                let (ground_c, loss_w_m_k, length_m) = inc.heat[k];
                let out = pipe::outlet_temp_c(t_ret[src], ground_c, loss_w_m_k, length_m, f.abs());
                if let Some(o) = outlets.as_deref_mut() {
                    o[k].1 = out;
                }
                mq += f.abs();
                mqt += f.abs() * out;
            }
        }
        if mq > 1e-12 {
            t_ret[j] = mqt / mq;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    net: &Network,
    g: &Graph,
    inc: &Incidence,
    orders: &mut Orders,
    q: &[f64],
    p: &[f64],
    t_sup: &[f64],
    t_ret: &[f64],
    supply_c: &[f64],
    draws: &[Draw],
    flows: &[f64],
    mass_error: f64,
    iterations: usize,
) -> SteadyState {
    let mut outlets = vec![(0.0, 0.0); g.pipes.len()];
    let (mut sup, mut ret) = (t_sup.to_vec(), t_ret.to_vec());
    let inputs = Flows {
        inc,
        q,
        p,
        supply_c,
        draws,
        flows,
    };
    propagate(&inputs, orders, &mut sup, &mut ret, Some(&mut outlets));
    let n_pipes = g.pipes.len();
    let cp = WATER_CP_J_KG_K;
    let junctions = g
        .junctions
        .iter()
        .enumerate()
        .map(|(j, id)| JunctionResult {
            id: id.to_string(),
            supply_pressure_pa: p[2 * j],
            return_pressure_pa: p[2 * j + 1],
            supply_temp_c: t_sup[j],
            return_temp_c: t_ret[j],
        })
        .collect();
    let mut heat_lost_w = 0.0;
    let pipes = g
        .pipes
        .iter()
        .enumerate()
        .map(|(k, gp)| {
            let (fs, fr) = (q[2 * k], q[2 * k + 1]);
            let s_in = if fs >= 0.0 { t_sup[gp.a] } else { t_sup[gp.b] };
            let r_in = if fr >= 0.0 { t_ret[gp.b] } else { t_ret[gp.a] };
            let loss =
                fs.abs() * cp * (s_in - outlets[k].0) + fr.abs() * cp * (r_in - outlets[k].1);
            heat_lost_w += loss;
            PipeResult {
                id: gp.id.to_string(),
                from: g.junctions[gp.a].to_string(),
                to: g.junctions[gp.b].to_string(),
                supply_flow_kg_s: fs,
                supply_outlet_temp_c: outlets[k].0,
                return_flow_kg_s: fr,
                return_outlet_temp_c: outlets[k].1,
                heat_loss_w: loss,
            }
        })
        .collect();
    let mut heat_delivered_w = 0.0;
    let substations = net
        .substations
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let j = g.substation_at[i];
            let t_back = draws[i].return_temp_c(t_sup[j]);
            let heat = flows[i] * cp * (t_sup[j] - t_back);
            heat_delivered_w += heat;
            SubstationResult {
                id: s.id.to_string(),
                flow_kg_s: flows[i],
                heat_w: heat,
                supply_temp_c: t_sup[j],
                return_temp_c: t_back,
                diff_pressure_pa: p[2 * j] - p[2 * j + 1],
            }
        })
        .collect();
    let mut heat_produced_w = 0.0;
    let mut warnings = Vec::new();
    let plants = net
        .plants
        .iter()
        .enumerate()
        .map(|(k, plant)| {
            let j = g.plant_at[k];
            let f = q[2 * n_pipes + k];
            // A pump pushed backwards passes water but heats nothing.
            let heat = f.max(0.0) * cp * (supply_c[k] - t_ret[j]);
            if f < 0.0 {
                warnings.push(format!(
                    "plant {}: its pump cannot lift against the network: {:.1} kg/s flow back through it (raise its head, or lower the other plants')",
                    plant.id, -f
                ));
            }
            heat_produced_w += heat;
            PlantResult {
                id: plant.id.to_string(),
                flow_kg_s: f,
                heat_w: heat,
                supply_temp_c: supply_c[k],
                return_temp_c: t_ret[j],
                pump_head_pa: p[2 * j] - p[2 * j + 1],
            }
        })
        .collect();
    SteadyState {
        network: net.name.clone(),
        junctions,
        pipes,
        substations,
        plants,
        heat_produced_w,
        heat_delivered_w,
        heat_lost_w,
        energy_balance_error: (heat_produced_w - heat_delivered_w - heat_lost_w)
            / heat_produced_w.abs().max(1.0),
        mass_balance_error_kg_s: mass_error,
        iterations,
        warnings,
    }
}

#[cfg(test)]
mod tests;

/// A seeded meshed design network of about `junctions` junctions for
/// benchmarks and tests: a square grid of pipe pairs (100–300 m) fed by two
/// plants at opposite corners, a substation drawing 150–450 kW (one building)
/// at every other junction. Pipes are sized for about 1.5 m/s at the flow a
/// grid fed from its corners carries at their distance from the nearer plant
/// (DN80 at least); each plant can make 60 % of the load, and its pump lifts
/// 70 m at its share of the design flow. Valid by [`Network::validate`].
pub fn grid_network(junctions: usize, seed: u64) -> Network {
    use model::network::{Building, Junction, Pipe, Plant, PressureHolding, PumpRating};
    use model::{Emitter, PlantKind, Substation};
    let side = (junctions as f64).sqrt().ceil().max(2.0) as usize;
    let n = side * side;
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        // xorshift64*: deterministic, dependency-free.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    };
    let nid =
        |s: String| NodeId::new(s).unwrap_or_else(|_| unreachable!("generated ids are valid"));
    let jid = |j: usize| nid(format!("j{j:05}"));
    let corners = [0, n - 1];
    let heat_w: Vec<f64> = (0..n)
        .map(|j| {
            if corners.contains(&j) {
                0.0
            } else {
                (150_000.0 + 300_000.0 * next()).round()
            }
        })
        .collect();
    let total_w: f64 = heat_w.iter().sum();
    let (supply_c, return_c) = (110.0, 55.0);
    let flow_per_node = total_w / (n - 2) as f64 / (WATER_CP_J_KG_K * (supply_c - return_c));
    let half = n as f64 / 2.0;
    let mut pipes = Vec::with_capacity(2 * n);
    for r in 0..side {
        for c in 0..side {
            for (r2, c2) in [(r, c + 1), (r + 1, c)] {
                if r2 >= side || c2 >= side {
                    continue;
                }
                // Distance of the pipe from the nearer plant, and the flow the
                // nodes beyond it draw, shared by the pipes crossing that distance.
                let d = (r + c).min(2 * (side - 1) - r2 - c2) as f64;
                let beyond = (half - (d + 1.0) * (d + 2.0) / 2.0).max(1.0);
                let flow = flow_per_node * beyond / (2.0 * (d + 1.0)).min(side as f64);
                let area = flow / (960.0 * 1.5);
                let diameter_m = ((4.0 * area / std::f64::consts::PI).sqrt() * 100.0)
                    .ceil()
                    .max(8.0)
                    / 100.0;
                let (a, b) = (r * side + c, r2 * side + c2);
                pipes.push(Pipe {
                    id: nid(format!("p{a:05}-{b:05}")),
                    from: jid(a),
                    to: jid(b),
                    length_m: (100.0 + 200.0 * next()).round(),
                    inner_diameter_m: diameter_m,
                    roughness_m: 5.0e-5,
                    loss_w_m_k: 0.37,
                    ground_temp_c: 5.0,
                    tie: false,
                });
            }
        }
    }
    let design_flow_m3_h =
        0.5 * total_w / (WATER_CP_J_KG_K * (supply_c - return_c)) / 960.0 * 3600.0;
    let plants = corners
        .iter()
        .enumerate()
        .map(|(k, &j)| Plant {
            id: nid(format!("plant-{}", k + 1)),
            kind: PlantKind::Chp,
            capacity_w: 0.6 * total_w,
            min_load_w: 0.0,
            ramp_w_per_s: None,
            design_supply_temp_c: supply_c,
            design_return_temp_c: return_c,
            pump_dp_pa: 1.0e5,
            heat_price_yuan_per_gj: 24.5,
            junction: Some(jid(j)),
            pump: Some(PumpRating {
                shutoff_head_m: 90.0,
                rated_flow_m3_h: design_flow_m3_h.ceil(),
                rated_head_m: 70.0,
            }),
            x_m: None,
            y_m: None,
            solar: None,
        })
        .collect::<Vec<_>>();
    let substations = (0..n)
        .filter(|j| !corners.contains(j))
        .map(|j| {
            let (r, c) = (j / side, j % side);
            let plant = usize::from(r + c > side - 1);
            Substation {
                id: nid(format!("s{j:05}")),
                plant: plants[plant].id.clone(),
                group: "radiator".to_string(),
                junction: Some(jid(j)),
                x_m: None,
                y_m: None,
                pipe_length_m: None,
                pipe_inner_diameter_m: None,
                pipe_loss_w_m_k: 0.37,
                ground_temp_c: 5.0,
                secondary_design_supply_temp_c: 75.0,
                secondary_design_return_temp_c: 50.0,
                valve_kv_m3_h: None,
                buildings: vec![Building {
                    id: nid(format!("s{j:05}-b01")),
                    floor_area_m2: (heat_w[j] / 45.0).round(),
                    design_heat_w: Some(heat_w[j]),
                    heat_capacity_j_k_m2: 165_000.0,
                    emitter: Emitter::Radiator,
                    priority: false,
                    exposed_flat_share: model::network::DEFAULT_EXPOSED_FLAT_SHARE,
                    exposed_flat_offset_k: model::network::DEFAULT_EXPOSED_FLAT_OFFSET_K,
                }],
            }
        })
        .collect();
    Network {
        name: format!("grid-{n}-{seed}"),
        start_time_ms: 1_796_054_400_000,
        outdoor_design_temp_c: -7.0,
        weather: model::network::Weather::default(),
        initial_room_temp_c: 18.0,
        sensor_noise_k: 0.0,
        plants,
        substations,
        junctions: (0..n)
            .map(|j| Junction {
                id: jid(j),
                x_m: 200.0 * (j % side) as f64,
                y_m: 200.0 * (j / side) as f64,
            })
            .collect(),
        pipes,
        pressure_holding: Some(PressureHolding {
            junction: jid(0),
            pressure_pa: 3.0e5,
            makeup_capacity_kg_s: 50.0,
            vessel_gas_m3: 50.0,
            low_pressure_trip_pa: 1.0e5,
        }),
    }
}
