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

/// Spare capacity the running plants must keep over the horizon's peak load
/// (losses included) for another to stand by: its district is then fed
/// through tie lines, which carry less than its own pump would.
pub const STANDBY_RESERVE_SHARE: f64 = 0.15;
/// The smaller spare that keeps a plant standing by once it does: it starts
/// again only when the others' spare falls under this (no start–stop at the
/// edge of [`STANDBY_RESERVE_SHARE`]: on the city in December the horizon's
/// peak wavered between 567 and 585 MW within 10 minutes, around the 570 MW
/// that the CHPs' 656 MW carry with 15 % to spare).
pub const STANDBY_KEEP_RESERVE_SHARE: f64 = 0.05;
/// A plant started again runs at least this long before it may stand by
/// again, ms (no start–stop cycles on a forecast that wavers).
pub const STANDBY_MIN_RUN_MS: i64 = 6 * 3_600_000;
/// A standby that ended sooner than this after it began was cut short (the
/// others could not carry the district after all), ms ...
pub const STANDBY_SHORT_MS: i64 = 3_600_000;
/// ... and the plant then runs at least this long before it stands by again,
/// ms (the city in December: the boiler stood by for 15 minutes every 6 h,
/// its neighbours' pumps unable to carry its district through the ties).
pub const STANDBY_MIN_RUN_AFTER_SHORT_MS: i64 = 24 * 3_600_000;

/// Nothing stands by for this long after a plant was last seen tripped,
/// ms: a tripped plant tried again counts as running before it has shown
/// that it heats.
pub const STANDBY_AFTER_TRIP_MS: i64 = 6 * 3_600_000;

/// What the standby rule knows of one plant.
#[derive(Clone, Debug, PartialEq)]
pub struct StandbyPlant {
    pub id: NodeId,
    pub price_yuan_per_gj: f64,
    /// What it can deliver, W.
    pub capacity_w: f64,
    /// Online and not tripped.
    pub available: bool,
    /// Tie lines join its junction to other plants' (they open while its
    /// pump stands still).
    pub tie_backed: bool,
    /// Standing by now.
    pub standing_by: bool,
    /// When it last started or stood by, network ms (`None`: not seen to).
    pub changed_ms: Option<i64>,
    /// Its last standby was cut short ([`STANDBY_SHORT_MS`]).
    pub cut_short: bool,
}

/// Which plants stand by (out of the dispatch, pump stopped) while the
/// others carry the load: in a network whose plants are joined by tie lines,
/// a dear plant need not run while the cheap ones can make the horizon's
/// peak (`peak_load_w`, losses included) with [`STANDBY_RESERVE_SHARE`] to
/// spare (one standing by keeps standing by down to
/// [`STANDBY_KEEP_RESERVE_SHARE`]); its tie lines open as its pump stops and its district is fed from
/// its neighbours (the city's gas boiler, 48 yuan/GJ against the CHPs'
/// 24.5–26, ran all week at about a quarter of the heat for the pressure of
/// its own district). Nothing stands by while a plant is out (tripped or
/// offline: its district already hangs on tie lines). The dearest go first;
/// one plant always runs; a plant
/// that started again runs [`STANDBY_MIN_RUN_MS`] before it may stand by
/// again ([`STANDBY_MIN_RUN_AFTER_SHORT_MS`] after a standby cut short),
/// while one standing by starts as soon as it is needed.
pub fn standby(plants: &[StandbyPlant], peak_load_w: f64, now_ms: i64) -> Vec<NodeId> {
    // With a plant out, its district already hangs on tie lines: no other
    // stands by.
    if !peak_load_w.is_finite() || peak_load_w < 0.0 || plants.iter().any(|p| !p.available) {
        return Vec::new();
    }
    let mut running_w: f64 = plants
        .iter()
        .filter(|p| p.available && p.capacity_w.is_finite())
        .map(|p| p.capacity_w.max(0.0))
        .sum();
    let mut running = plants.iter().filter(|p| p.available).count();
    let mut order: Vec<&StandbyPlant> = plants.iter().collect();
    order.sort_by(|a, b| {
        b.price_yuan_per_gj
            .total_cmp(&a.price_yuan_per_gj)
            .then(a.capacity_w.total_cmp(&b.capacity_w))
    });
    let mut out = Vec::new();
    for p in order {
        if running <= 1 {
            break;
        }
        let min_run_ms = if p.cut_short {
            STANDBY_MIN_RUN_AFTER_SHORT_MS
        } else {
            STANDBY_MIN_RUN_MS
        };
        let rested = p.standing_by || p.changed_ms.is_none_or(|t| now_ms - t >= min_run_ms);
        let rest_w = running_w - p.capacity_w.max(0.0);
        let reserve = if p.standing_by {
            STANDBY_KEEP_RESERVE_SHARE
        } else {
            STANDBY_RESERVE_SHARE
        };
        let need_w = (1.0 + reserve) * peak_load_w;
        // In merit order: a cheaper plant never stands by for a dearer one.
        if !(p.tie_backed && p.capacity_w.is_finite() && rested && rest_w >= need_w) {
            break;
        }
        running_w = rest_w;
        running -= 1;
        out.push(p.id.clone());
    }
    out
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
    fn a_dear_tie_backed_plant_stands_by_while_the_others_carry_the_peak() {
        let h = 3_600_000;
        let plant = |id: &str, price: f64, cap_mw: f64| StandbyPlant {
            id: NodeId::new(id).unwrap(),
            price_yuan_per_gj: price,
            capacity_w: cap_mw * 1e6,
            available: true,
            tie_backed: true,
            standing_by: false,
            changed_ms: None,
            cut_short: false,
        };
        // The city: 398 + 258 MW of CHPs, a 237 MW boiler.
        let city = vec![
            plant("chp-west", 24.5, 398.0),
            plant("chp-east", 26.0, 258.0),
            plant("boiler", 48.0, 237.0),
        ];
        let ids = |v: Vec<NodeId>| v.into_iter().map(|i| i.to_string()).collect::<Vec<_>>();
        // A mild day: 450 MW peak; the CHPs make 656 ≥ 1.15 · 450 = 517.5.
        assert_eq!(ids(standby(&city, 450.0e6, 0)), vec!["boiler"]);
        // 571 MW: 1.15 · 571 = 656.65 > 656, the boiler runs.
        assert!(standby(&city, 571.0e6, 0).is_empty());
        // 200 MW: the boiler and chp-east both stand by (398 ≥ 230).
        assert_eq!(ids(standby(&city, 200.0e6, 0)), vec!["boiler", "chp-east"]);
        // Never all: one plant runs, whatever the load.
        assert_eq!(standby(&city, 0.0, 0).len(), 2);
        // chp-east tripped: its district hangs on the tie lines, and the
        // boiler runs though chp-west alone could make the load.
        let mut tripped = city.clone();
        tripped[1].available = false;
        assert!(standby(&tripped, 300.0e6, 0).is_empty());
        // Without tie lines nothing stands by.
        let mut untied = city.clone();
        for p in &mut untied {
            p.tie_backed = false;
        }
        assert!(standby(&untied, 100.0e6, 0).is_empty());
        // In merit order only: the untied boiler runs, and chp-east (tied)
        // does not stand by in its place.
        untied[1].tie_backed = true;
        assert!(standby(&untied, 200.0e6, 0).is_empty());
        // Started 2 h ago: it runs 6 h before standing by again...
        let mut started = city.clone();
        started[2].changed_ms = Some(0);
        assert!(standby(&started, 450.0e6, 2 * h).is_empty());
        assert!(standby(&started, 200.0e6, 2 * h).is_empty());
        assert_eq!(ids(standby(&started, 450.0e6, 6 * h)), vec!["boiler"]);
        // After a standby cut short, it runs a day before standing by again.
        let mut short = started.clone();
        short[2].cut_short = true;
        assert!(standby(&short, 450.0e6, 6 * h).is_empty());
        assert_eq!(ids(standby(&short, 450.0e6, 24 * h)), vec!["boiler"]);
        // ...while one standing by stays so however recent.
        started[2].standing_by = true;
        assert_eq!(ids(standby(&started, 450.0e6, 2 * h)), vec!["boiler"]);
        // Standing by, it keeps standing by above 570 MW (656 / 1.15) up to
        // 624 MW (656 / 1.05), and starts again beyond.
        let mut resting = city.clone();
        resting[2].standing_by = true;
        assert_eq!(ids(standby(&resting, 585.0e6, 0)), vec!["boiler"]);
        assert!(standby(&resting, 625.0e6, 0).is_empty());
        assert!(standby(&city, 585.0e6, 0).is_empty());
        // Bad numbers: nothing stands by.
        assert!(standby(&city, f64::NAN, 0).is_empty());
        assert!(standby(&city, -1.0, 0).is_empty());
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
