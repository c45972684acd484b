//! Economic dispatch across plants over the planning horizon. Pure: no IO.
//!
//! At each step `t` of the horizon the plants together make the forecast
//! demand plus the network's losses, at least cost:
//!
//! ```text
//! minimize   Σ_t Σ_p price_p · x[p,t] · dt  +  penalty · Σ_t u[t] · dt  +  ε · Σ_t s[t] · dt
//! subject to Σ_p x[p,t] + u[t] − s[t] = demand[t] · (1 + loss_share)
//!            min_p ≤ x[p,t] ≤ cap_p            (plant p committed at t; else x[p,t] = 0)
//!            |x[p,t] − x[p,t−1]| ≤ ramp_p · dt (committed at t−1 and t; at t = 0 from its output now)
//!            u, s ≥ 0
//! ```
//!
//! `u` is demand that cannot be served (more than the available capacity, or
//! ramps too slow to follow), `s` heat the minimum loads force beyond demand.
//! Both keep the problem feasible whatever the input, and both are reported:
//! unserved heat is an alarm. The linear program is solved with Clarabel (an
//! interior-point conic solver); a tiny quadratic term makes the optimum
//! unique when two plants cost the same.
//!
//! Commitment (which plants run at a step) is decided before the LP, in merit
//! order: the cheapest available plants until their capacities cover the
//! step's load. A tripped plant is not available: its capacity is 0 and the
//! others pick up its load.

use clarabel::algebra::CscMatrix;
use clarabel::solver::{
    DefaultSettingsBuilder, DefaultSolver, IPSolver, NonnegativeConeT, SolverStatus, ZeroConeT,
};
use model::NodeId;

/// Cost of a GJ of demand left unserved, yuan (far above any heat price).
pub const UNSERVED_PENALTY_YUAN_PER_GJ: f64 = 10_000.0;
/// Cost of a GJ of heat forced out beyond demand by minimum loads, yuan (on top of its price).
const SPILL_PENALTY_YUAN_PER_GJ: f64 = 1.0;
/// Largest horizon accepted, steps.
pub const MAX_STEPS: usize = 400;
/// Most plants accepted.
pub const MAX_PLANTS: usize = 64;
/// Below this, in W, heat counts as none (solver tolerance).
const TOLERANCE_W: f64 = 1.0e3;

/// What the dispatch knows of one plant.
#[derive(Clone, Debug, PartialEq)]
pub struct PlantSpec {
    pub id: NodeId,
    pub capacity_w: f64,
    pub min_load_w: f64,
    /// Fastest change of heat output, W/s; `None`: unlimited.
    pub ramp_w_per_s: Option<f64>,
    pub price_yuan_per_gj: f64,
    /// False when the plant has tripped or is offline: it takes no load.
    pub available: bool,
    /// Heat it makes now, W (the start of its ramp), if known.
    pub output_w: Option<f64>,
    /// Runs at every step while available (at least its minimum load), even
    /// when cheaper plants could carry the load: in a meshed network a plant
    /// whose pump stops can leave substations without pressure.
    pub must_run: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DispatchInput {
    pub plants: Vec<PlantSpec>,
    /// Heat the substations will take at each step, W.
    pub demand_w: Vec<f64>,
    /// Network losses as a share of the substations' heat.
    pub loss_share: f64,
    /// Length of one step, s.
    pub step_s: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dispatch {
    /// Heat per plant (in input order) per step, W.
    pub heat_w: Vec<Vec<f64>>,
    /// Whether each plant runs at each step.
    pub committed: Vec<Vec<bool>>,
    /// Load (demand + losses) that could not be served at each step, W.
    pub unserved_w: Vec<f64>,
    /// Heat beyond the load that minimum loads force out at each step, W.
    pub spilled_w: Vec<f64>,
    /// Cost of the plants' heat over the horizon, yuan.
    pub cost_yuan: f64,
    /// The solver's verdict (`Solved` or `AlmostSolved`).
    pub status: String,
}

impl Dispatch {
    /// The largest unserved load over the horizon, W.
    pub fn max_unserved_w(&self) -> f64 {
        self.unserved_w.iter().fold(0.0, |a, &b| a.max(b))
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DispatchError {
    #[error("dispatch input: {0}")]
    Invalid(String),
    #[error("dispatch solver failed: {0}")]
    Solver(String),
}

fn check(input: &DispatchInput) -> Result<(), DispatchError> {
    let bad = |m: String| Err(DispatchError::Invalid(m));
    if input.plants.is_empty() || input.plants.len() > MAX_PLANTS {
        return bad(format!(
            "plants: {} given, 1..{MAX_PLANTS} accepted",
            input.plants.len()
        ));
    }
    if input.demand_w.is_empty() || input.demand_w.len() > MAX_STEPS {
        return bad(format!(
            "demand_w: {} steps given, 1..{MAX_STEPS} accepted",
            input.demand_w.len()
        ));
    }
    if !(input.step_s.is_finite() && (1.0..=86_400.0).contains(&input.step_s)) {
        return bad(format!("step_s {} is outside 1..86400", input.step_s));
    }
    if !(input.loss_share.is_finite() && (0.0..=1.0).contains(&input.loss_share)) {
        return bad(format!("loss_share {} is outside 0..1", input.loss_share));
    }
    if let Some(d) = input.demand_w.iter().find(|d| !d.is_finite()) {
        return bad(format!("demand_w {d} is not a number"));
    }
    for p in &input.plants {
        let ok = p.capacity_w.is_finite()
            && p.capacity_w >= 0.0
            && p.min_load_w.is_finite()
            && (0.0..=p.capacity_w).contains(&p.min_load_w)
            && p.price_yuan_per_gj.is_finite()
            && p.price_yuan_per_gj >= 0.0
            && p.ramp_w_per_s.is_none_or(|r| r.is_finite() && r > 0.0)
            && p.output_w.is_none_or(f64::is_finite);
        if !ok {
            return bad(format!(
                "plant {}: capacity_w, min_load_w (0..capacity), price and ramp must be finite and not negative",
                p.id
            ));
        }
    }
    Ok(())
}

/// Which plants run at each step: the cheapest available ones until what
/// they can make at that step covers the step's load (all available plants if
/// even they fall short), and every available must-run plant. What a running plant can make at step `t` is its
/// capacity, or less while it is still ramping up from its output now.
pub fn commit(plants: &[PlantSpec], load_w: &[f64], step_s: f64) -> Vec<Vec<bool>> {
    let mut order: Vec<usize> = (0..plants.len())
        .filter(|&p| plants[p].available && plants[p].capacity_w > 0.0)
        .collect();
    order.sort_by(|&a, &b| {
        plants[a]
            .price_yuan_per_gj
            .total_cmp(&plants[b].price_yuan_per_gj)
            .then(plants[b].capacity_w.total_cmp(&plants[a].capacity_w))
    });
    let mut committed = vec![vec![false; load_w.len()]; plants.len()];
    for (t, &load) in load_w.iter().enumerate() {
        let mut cap = 0.0;
        for &p in &order {
            if cap >= load && cap > 0.0 {
                break;
            }
            committed[p][t] = true;
            let pl = &plants[p];
            cap += match (pl.output_w, pl.ramp_w_per_s) {
                (Some(now), Some(r)) => pl
                    .capacity_w
                    .min(now.max(pl.min_load_w) + r * step_s * (t + 1) as f64),
                _ => pl.capacity_w,
            };
        }
        for &p in &order {
            if plants[p].must_run {
                committed[p][t] = true;
            }
        }
    }
    committed
}

/// Solves the dispatch over the horizon.
pub fn dispatch(input: &DispatchInput) -> Result<Dispatch, DispatchError> {
    check(input)?;
    let np = input.plants.len();
    let nt = input.demand_w.len();
    let load_w: Vec<f64> = input
        .demand_w
        .iter()
        .map(|d| d.max(0.0) * (1.0 + input.loss_share))
        .collect();
    let committed = commit(&input.plants, &load_w, input.step_s);
    // Scaled units: MW and hours, so that the solver sees numbers near 1.
    let dt_h = input.step_s / 3600.0;
    const MW: f64 = 1.0e6;
    // Variables: x[p,t] at p·nt + t, then u[t], then s[t].
    let nx = np * nt;
    let n = nx + 2 * nt;
    let xi = |p: usize, t: usize| p * nt + t;
    let ui = |t: usize| nx + t;
    let si = |t: usize| nx + nt + t;
    // 1 MW for an hour is 3.6 GJ.
    let mut q = vec![0.0; n];
    for (p, plant) in input.plants.iter().enumerate() {
        for t in 0..nt {
            q[xi(p, t)] = plant.price_yuan_per_gj * 3.6 * dt_h;
        }
    }
    for t in 0..nt {
        q[ui(t)] = UNSERVED_PENALTY_YUAN_PER_GJ * 3.6 * dt_h;
        q[si(t)] = SPILL_PENALTY_YUAN_PER_GJ * 3.6 * dt_h;
    }
    let p_mat =
        CscMatrix::new_from_triplets(n, n, (0..n).collect(), (0..n).collect(), vec![1.0e-6; n]);
    // Equality rows first (zero cone), then inequalities (A·x ≤ b as nonnegative slacks).
    let (mut ri, mut ci, mut vi, mut b) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut row = 0;
    for (t, &load) in load_w.iter().enumerate() {
        for p in 0..np {
            ri.push(row);
            ci.push(xi(p, t));
            vi.push(1.0);
        }
        ri.extend([row, row]);
        ci.extend([ui(t), si(t)]);
        vi.extend([1.0, -1.0]);
        b.push(load / MW);
        row += 1;
    }
    let n_eq = row;
    let mut le = |ri: &mut Vec<usize>,
                  ci: &mut Vec<usize>,
                  vi: &mut Vec<f64>,
                  b: &mut Vec<f64>,
                  terms: &[(usize, f64)],
                  rhs: f64| {
        for &(c, v) in terms {
            ri.push(row);
            ci.push(c);
            vi.push(v);
        }
        b.push(rhs);
        row += 1;
    };
    for (p, plant) in input.plants.iter().enumerate() {
        for t in 0..nt {
            let x = xi(p, t);
            let (lo, hi) = if committed[p][t] {
                (plant.min_load_w / MW, plant.capacity_w / MW)
            } else {
                (0.0, 0.0)
            };
            le(&mut ri, &mut ci, &mut vi, &mut b, &[(x, 1.0)], hi);
            le(&mut ri, &mut ci, &mut vi, &mut b, &[(x, -1.0)], -lo);
            let Some(r) = plant.ramp_w_per_s else {
                continue;
            };
            let step = r * input.step_s / MW;
            if t == 0 {
                // From the output now, unless that is outside what the plant
                // may do at step 0 (starting up, or below its minimum).
                if let Some(now) = plant.output_w.map(|w| w / MW)
                    && committed[p][0]
                    && now >= lo - step
                    && now <= hi + step
                {
                    le(&mut ri, &mut ci, &mut vi, &mut b, &[(x, 1.0)], now + step);
                    le(&mut ri, &mut ci, &mut vi, &mut b, &[(x, -1.0)], step - now);
                }
            } else if committed[p][t] && committed[p][t - 1] {
                let prev = xi(p, t - 1);
                le(
                    &mut ri,
                    &mut ci,
                    &mut vi,
                    &mut b,
                    &[(x, 1.0), (prev, -1.0)],
                    step,
                );
                le(
                    &mut ri,
                    &mut ci,
                    &mut vi,
                    &mut b,
                    &[(x, -1.0), (prev, 1.0)],
                    step,
                );
            }
        }
    }
    for t in 0..nt {
        le(&mut ri, &mut ci, &mut vi, &mut b, &[(ui(t), -1.0)], 0.0);
        le(&mut ri, &mut ci, &mut vi, &mut b, &[(si(t), -1.0)], 0.0);
    }
    let m = row;
    let a_mat = CscMatrix::new_from_triplets(m, n, ri, ci, vi);
    let cones = [ZeroConeT(n_eq), NonnegativeConeT(m - n_eq)];
    let settings = DefaultSettingsBuilder::default()
        .verbose(false)
        .max_iter(200)
        .build()
        .map_err(|e| DispatchError::Solver(format!("settings: {e}")))?;
    let mut solver = DefaultSolver::new(&p_mat, &q, &a_mat, &b, &cones, settings)
        .map_err(|e| DispatchError::Solver(format!("problem set-up: {e}")))?;
    solver.solve();
    let status = solver.solution.status;
    if !matches!(status, SolverStatus::Solved | SolverStatus::AlmostSolved) {
        return Err(DispatchError::Solver(format!(
            "status {status:?} (the problem has slack for unserved and spilled heat, so this is numerical)"
        )));
    }
    let x = &solver.solution.x;
    let clean = |v: f64| {
        let w = v * MW;
        if w.abs() < TOLERANCE_W { 0.0 } else { w }
    };
    let heat_w: Vec<Vec<f64>> = (0..np)
        .map(|p| {
            (0..nt)
                .map(|t| {
                    if committed[p][t] {
                        clean(x[xi(p, t)]).max(0.0)
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect();
    let unserved_w: Vec<f64> = (0..nt).map(|t| clean(x[ui(t)]).max(0.0)).collect();
    let spilled_w: Vec<f64> = (0..nt).map(|t| clean(x[si(t)]).max(0.0)).collect();
    let cost_yuan = input
        .plants
        .iter()
        .zip(&heat_w)
        .map(|(p, h)| h.iter().sum::<f64>() * input.step_s / 1.0e9 * p.price_yuan_per_gj)
        .sum();
    Ok(Dispatch {
        heat_w,
        committed,
        unserved_w,
        spilled_w,
        cost_yuan,
        status: format!("{status:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plant(id: &str, cap_mw: f64, min_mw: f64, price: f64) -> PlantSpec {
        PlantSpec {
            id: NodeId::new(id).unwrap(),
            capacity_w: cap_mw * 1e6,
            min_load_w: min_mw * 1e6,
            ramp_w_per_s: None,
            price_yuan_per_gj: price,
            available: true,
            output_w: None,
            must_run: false,
        }
    }

    fn input(plants: Vec<PlantSpec>, demand_mw: &[f64]) -> DispatchInput {
        DispatchInput {
            plants,
            demand_w: demand_mw.iter().map(|d| d * 1e6).collect(),
            loss_share: 0.0,
            step_s: 3600.0,
        }
    }

    fn near(a: f64, b_mw: f64) -> bool {
        (a - b_mw * 1e6).abs() < 5.0e3
    }

    #[test]
    fn cheapest_plant_first_up_to_its_capacity() {
        let d = dispatch(&input(
            vec![
                plant("boiler", 12.0, 0.0, 48.0),
                plant("chp", 20.0, 0.0, 24.5),
            ],
            &[10.0, 25.0],
        ))
        .unwrap();
        // 10 MW: the CHP alone; the boiler is not even committed.
        assert!(near(d.heat_w[1][0], 10.0) && d.heat_w[0][0] == 0.0, "{d:?}");
        assert!(!d.committed[0][0]);
        // 25 MW: the CHP full (20), the boiler the rest (5).
        assert!(
            near(d.heat_w[1][1], 20.0) && near(d.heat_w[0][1], 5.0),
            "{d:?}"
        );
        // Cost: (10 + 20) MWh · 3.6 GJ/MWh · 24.5 + 5 MWh · 3.6 · 48 = 2646 + 864.
        assert!((d.cost_yuan - 3510.0).abs() < 2.0, "{}", d.cost_yuan);
        assert_eq!(d.max_unserved_w(), 0.0);
    }

    #[test]
    fn a_committed_plant_runs_at_least_at_its_minimum_load() {
        // 25 MW needs both; the boiler's minimum is 8 MW, so the CHP gives 17, not 20.
        let d = dispatch(&input(
            vec![
                plant("chp", 20.0, 8.0, 24.5),
                plant("boiler", 12.0, 8.0, 48.0),
            ],
            &[25.0],
        ))
        .unwrap();
        assert!(
            near(d.heat_w[0][0], 17.0) && near(d.heat_w[1][0], 8.0),
            "{d:?}"
        );
        // Below the CHP's minimum: it still makes 8 MW; 3 MW are spilled.
        let d = dispatch(&input(vec![plant("chp", 20.0, 8.0, 24.5)], &[5.0])).unwrap();
        assert!(
            near(d.heat_w[0][0], 8.0) && near(d.spilled_w[0], 3.0),
            "{d:?}"
        );
    }

    #[test]
    fn a_must_run_plant_stays_at_its_minimum_when_the_cheap_one_could_do_it_all() {
        let mut boiler = plant("boiler", 12.0, 1.2, 48.0);
        boiler.must_run = true;
        let d = dispatch(&input(vec![plant("chp", 20.0, 0.0, 24.5), boiler], &[10.0])).unwrap();
        assert!(d.committed[1][0]);
        assert!(
            near(d.heat_w[1][0], 1.2) && near(d.heat_w[0][0], 8.8),
            "{d:?}"
        );
        // Tripped, it runs no more.
        let mut inp = input(
            vec![
                plant("chp", 20.0, 0.0, 24.5),
                plant("boiler", 12.0, 1.2, 48.0),
            ],
            &[10.0],
        );
        inp.plants[1].must_run = true;
        inp.plants[1].available = false;
        let d = dispatch(&inp).unwrap();
        assert!(!d.committed[1][0] && near(d.heat_w[0][0], 10.0), "{d:?}");
    }

    #[test]
    fn ramp_limits_bind_and_the_dear_plant_covers_the_gap() {
        // The CHP makes 10 MW now and ramps 1 MW per hour (at 3600 s steps);
        // demand jumps to 14 MW: the CHP can give 11, 12, 13; the boiler the rest.
        let mut chp = plant("chp", 20.0, 0.0, 24.5);
        chp.ramp_w_per_s = Some(1.0e6 / 3600.0);
        chp.output_w = Some(10.0e6);
        let d = dispatch(&input(
            vec![chp, plant("boiler", 12.0, 0.0, 48.0)],
            &[14.0, 14.0, 14.0],
        ))
        .unwrap();
        for (t, want) in [11.0, 12.0, 13.0].into_iter().enumerate() {
            assert!(near(d.heat_w[0][t], want), "step {t}: {d:?}");
            assert!(near(d.heat_w[1][t], 14.0 - want), "step {t}: {d:?}");
        }
    }

    #[test]
    fn a_tripped_plant_takes_no_load_and_the_others_pick_it_up() {
        let mut chp = plant("chp", 20.0, 0.0, 24.5);
        let plants = |chp: PlantSpec| {
            vec![
                chp,
                plant("chp2", 12.0, 0.0, 26.0),
                plant("boiler", 12.0, 0.0, 48.0),
            ]
        };
        let d = dispatch(&input(plants(chp.clone()), &[18.0])).unwrap();
        assert!(near(d.heat_w[0][0], 18.0), "{d:?}");
        chp.available = false;
        let d = dispatch(&input(plants(chp), &[18.0])).unwrap();
        assert_eq!(d.heat_w[0][0], 0.0);
        assert!(
            near(d.heat_w[1][0], 12.0) && near(d.heat_w[2][0], 6.0),
            "{d:?}"
        );
    }

    #[test]
    fn demand_above_capacity_is_served_as_far_as_possible_and_reported() {
        let mut inp = input(
            vec![
                plant("chp", 20.0, 0.0, 24.5),
                plant("boiler", 12.0, 0.0, 48.0),
            ],
            &[30.0],
        );
        // 10 % losses: 33 MW to make, 32 MW available.
        inp.loss_share = 0.1;
        let d = dispatch(&inp).unwrap();
        assert!(
            near(d.heat_w[0][0], 20.0) && near(d.heat_w[1][0], 12.0),
            "{d:?}"
        );
        assert!(near(d.max_unserved_w(), 1.0), "{d:?}");
        // Every plant down: nothing is made, all 33 MW are unserved.
        for p in inp.plants.iter_mut() {
            p.available = false;
        }
        let d = dispatch(&inp).unwrap();
        assert!(d.heat_w.iter().flatten().all(|&h| h == 0.0), "{d:?}");
        assert!(near(d.max_unserved_w(), 33.0), "{d:?}");
    }

    #[test]
    fn bad_input_is_refused_naming_the_field() {
        let mut inp = input(vec![plant("chp", 20.0, 25.0, 24.5)], &[10.0]);
        let err = dispatch(&inp).unwrap_err().to_string();
        assert!(
            err.contains("plant chp") && err.contains("min_load_w"),
            "{err}"
        );
        inp.plants[0].min_load_w = 0.0;
        inp.demand_w = vec![f64::NAN];
        assert!(dispatch(&inp).unwrap_err().to_string().contains("demand_w"));
        inp.demand_w = vec![];
        assert!(dispatch(&inp).unwrap_err().to_string().contains("demand_w"));
    }
}
