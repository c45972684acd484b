//! Steady-state hydraulics of a meshed network.
//!
//! Links are pipes (Darcy–Weisbach with Colebrook–White friction), control
//! valves (Kv with an opening) and pumps (quadratic head curve at a speed).
//! Nodes either hold a fixed pressure (the pressure-holding point, sources) or
//! take a mass flow out of the network (positive demand) or into it (negative).
//!
//! The solver is the global gradient algorithm (Todini & Pilati 1988) on mass
//! flows and pressures: each Newton step solves the graph-Laplacian system
//! `A·G⁻¹·Aᵀ·δp = rhs` for the free pressures by sparse Cholesky (or, when
//! asked, by conjugate gradients preconditioned with the last factorization
//! while it still fits), after which every node balance holds to solver
//! precision. It
//! refuses networks without a pressure reference or with islands, and reports
//! non-convergence as an error with its residuals, never a silent answer.

use crate::sparse::{Cholesky, CholeskyError, Symbolic};
use crate::water::{G_M_S2, Water};

/// Reynolds number below which flow is laminar.
pub const RE_LAMINAR: f64 = 2000.0;
/// Reynolds number above which Colebrook–White applies.
pub const RE_TURBULENT: f64 = 4000.0;

/// Darcy friction factor: 64/Re when laminar, Colebrook–White when turbulent
/// (solved by fixed-point iteration from the Swamee–Jain value), linearly
/// blended in between. `rel_roughness` is k/D.
pub fn friction_factor(re: f64, rel_roughness: f64) -> f64 {
    let re = re.abs();
    if re < 1e-9 {
        return f64::INFINITY;
    }
    if re <= RE_LAMINAR {
        return 64.0 / re;
    }
    if re < RE_TURBULENT {
        let lam = 64.0 / RE_LAMINAR;
        let turb = colebrook(RE_TURBULENT, rel_roughness);
        let t = (re - RE_LAMINAR) / (RE_TURBULENT - RE_LAMINAR);
        return lam + t * (turb - lam);
    }
    colebrook(re, rel_roughness)
}

/// Explicit Swamee–Jain approximation of Colebrook–White.
pub fn swamee_jain(re: f64, rel_roughness: f64) -> f64 {
    let a = (rel_roughness / 3.7 + 5.74 / re.powf(0.9)).log10();
    0.25 / (a * a)
}

/// Colebrook–White: `1/√λ = −2·log10(k/(3.7·D) + 2.51/(Re·√λ))`, solved for
/// `x = 1/√λ` by Newton's method from the Swamee–Jain value (within 1 %, so
/// two or three steps reach 1e-13; the fixed-point iteration it replaced took
/// five to ten logarithms for the same root).
pub fn colebrook(re: f64, rel_roughness: f64) -> f64 {
    colebrook_from(re, rel_roughness, f64::NAN).0
}

/// Colebrook–White by Newton's method from `start`, a guess of `1/√λ` (the
/// root at a nearby Reynolds number, where one logarithm then confirms it);
/// from the Swamee–Jain value when `start` is not a positive number or
/// leads nowhere. Returns λ and its `1/√λ`, the next call's start.
pub fn colebrook_from(re: f64, rel_roughness: f64, start: f64) -> (f64, f64) {
    let a = rel_roughness / 3.7;
    let b = 2.51 / re;
    let newton = |mut x: f64| {
        for _ in 0..50 {
            // F(x) = x + 2·log10(a + b·x) = 0, F′(x) = 1 + 2·b / ((a + b·x)·ln 10).
            let arg = a + b * x;
            let f = x + 2.0 * arg.log10();
            let df = 1.0 + 2.0 * b / (arg * std::f64::consts::LN_10);
            let step = f / df;
            x -= step;
            // Quadratic convergence: a step this small leaves an error of the
            // order of its square (below 1e-13), so no confirming step is taken.
            if step.abs() < 1e-7 * x.abs() {
                return x;
            }
        }
        f64::NAN
    };
    let mut x = if start > 0.0 && start.is_finite() {
        newton(start)
    } else {
        f64::NAN
    };
    // F is increasing and concave: from a start left of the root Newton
    // climbs to it; from far right its first step may leave the domain.
    if !(x > 0.0 && x.is_finite()) {
        x = newton(1.0 / swamee_jain(re, rel_roughness).sqrt());
    }
    (1.0 / (x * x), x)
}

/// A pump's head curve at full speed: `H = H₀ − c·Q·|Q|` (m, with Q in m³/s),
/// scaled by speed `s` as `H = H₀·s² − c·Q·|Q|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PumpCurve {
    pub shutoff_head_m: f64,
    pub c_s2_m5: f64,
}

impl PumpCurve {
    /// A curve through its shut-off head and a rated point (flow m³/h, head m).
    pub fn from_rated(shutoff_head_m: f64, rated_flow_m3_h: f64, rated_head_m: f64) -> Self {
        let q = rated_flow_m3_h / 3600.0;
        Self {
            shutoff_head_m,
            c_s2_m5: (shutoff_head_m - rated_head_m) / (q * q),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LinkKind {
    Pipe {
        length_m: f64,
        diameter_m: f64,
        roughness_m: f64,
        /// Sum of local loss coefficients (bends, fittings), dimensionless.
        minor_loss: f64,
    },
    /// Control valve: `Δp = 1 bar·(Q/(Kv·opening))²` with Q in m³/h (linear characteristic).
    Valve { kv_m3_h: f64, opening: f64 },
    /// Pump raising pressure from `from` to `to`.
    Pump { curve: PumpCurve, speed: f64 },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Link {
    pub from: usize,
    pub to: usize,
    pub kind: LinkKind,
    /// Water the link carries (properties at its temperature).
    pub water: Water,
}

/// Smallest valve opening used (a closed valve still leaks this much Kv).
pub const MIN_OPENING: f64 = 1e-4;
/// Smallest derivative of a link's pressure drop, Pa per kg/s (keeps Newton defined at zero flow).
const MIN_GRADIENT: f64 = 1e-3;

impl Link {
    /// A straight-line model `Δp ≈ c0 + c1·q` of the link at a typical flow,
    /// used once to start a cold solve from a plausible flow pattern.
    fn linear_model(&self) -> (f64, f64) {
        let rho = self.water.density_kg_m3;
        match self.kind {
            LinkKind::Pipe { diameter_m, .. } => {
                // Secant through 1 m/s.
                let q_ref = rho * std::f64::consts::PI * diameter_m * diameter_m / 4.0;
                (0.0, (self.drop_pa(q_ref).0 / q_ref).max(MIN_GRADIENT))
            }
            LinkKind::Valve { kv_m3_h, opening } => {
                // Secant through the flow that costs 1 bar.
                let q_ref = rho * kv_m3_h * opening.clamp(MIN_OPENING, 1.0) / 3600.0;
                (0.0, (1.0e5 / q_ref).max(MIN_GRADIENT))
            }
            LinkKind::Pump { curve, speed } => {
                // Tangent at half the zero-head flow.
                let q_half = rho
                    * 0.5
                    * (curve.shutoff_head_m * speed * speed / curve.c_s2_m5.max(1e-9)).sqrt();
                let (f, g) = self.drop_pa(q_half);
                (f - g * q_half, g)
            }
        }
    }

    /// Pressure drop from `from` to `to` at mass flow `q` (kg/s, positive from→to),
    /// and its derivative with respect to q (with the friction factor frozen).
    pub fn drop_pa(&self, q: f64) -> (f64, f64) {
        let mut none = f64::NAN;
        self.drop_pa_from(q, &mut none)
    }

    /// [`Link::drop_pa`] with a turbulent pipe's Colebrook–White solved from
    /// `friction_x` (its `1/√λ` at the last flow, NaN for none), which is
    /// updated: a flow that barely moved costs one logarithm instead of three
    /// or four. The answer is the same root (to 1e-13).
    pub fn drop_pa_from(&self, q: f64, friction_x: &mut f64) -> (f64, f64) {
        let rho = self.water.density_kg_m3;
        match self.kind {
            LinkKind::Pipe {
                length_m,
                diameter_m,
                roughness_m,
                minor_loss,
            } => {
                let area = std::f64::consts::PI * diameter_m * diameter_m / 4.0;
                let re = q.abs() * diameter_m / (area * self.water.viscosity_pa_s);
                let coef = 1.0 / (2.0 * rho * area * area);
                if re <= RE_LAMINAR {
                    // Hagen–Poiseuille: λ = 64/Re makes the drop linear in q.
                    let lin = 64.0 * self.water.viscosity_pa_s * area / diameter_m * length_m
                        / diameter_m
                        * coef;
                    let minor = minor_loss * coef;
                    let dp = lin * q + minor * q * q.abs();
                    return (dp, (lin + 2.0 * minor * q.abs()).max(MIN_GRADIENT));
                }
                let lambda = if re >= RE_TURBULENT {
                    let (lambda, x) = colebrook_from(re, roughness_m / diameter_m, *friction_x);
                    *friction_x = x;
                    lambda
                } else {
                    friction_factor(re, roughness_m / diameter_m)
                };
                let k = (lambda * length_m / diameter_m + minor_loss) * coef;
                (k * q * q.abs(), (2.0 * k * q.abs()).max(MIN_GRADIENT))
            }
            LinkKind::Valve { kv_m3_h, opening } => {
                let kv = kv_m3_h * opening.clamp(MIN_OPENING, 1.0);
                let c = 1.0e5 * (3600.0 / (rho * kv)).powi(2);
                (c * q * q.abs(), (2.0 * c * q.abs()).max(MIN_GRADIENT))
            }
            LinkKind::Pump { curve, speed } => {
                let qv = q / rho;
                let head = curve.shutoff_head_m * speed * speed - curve.c_s2_m5 * qv * qv.abs();
                let dp = -rho * G_M_S2 * head;
                let grad = 2.0 * G_M_S2 * curve.c_s2_m5 * qv.abs();
                (dp, grad.max(MIN_GRADIENT))
            }
        }
    }
}

/// A steady-state hydraulic problem.
#[derive(Clone, Debug, Default)]
pub struct Problem {
    pub node_count: usize,
    pub links: Vec<Link>,
    /// Nodes held at a fixed pressure, Pa.
    pub fixed_pressure_pa: Vec<(usize, f64)>,
    /// Mass flow leaving the network at each node, kg/s (negative: entering).
    pub demand_kg_s: Vec<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Solution {
    pub pressure_pa: Vec<f64>,
    pub flow_kg_s: Vec<f64>,
    pub iterations: usize,
    /// Largest node imbalance left, kg/s.
    pub max_imbalance_kg_s: f64,
    /// Largest link head-loss residual left, Pa.
    pub max_residual_pa: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SolveError {
    #[error("the network has no fixed-pressure node: give it a pressure-holding point")]
    NoReference,
    #[error("nodes {nodes:?} are not connected to any fixed-pressure node (an island)")]
    Island { nodes: Vec<usize> },
    #[error("link {link} joins node {node}, which does not exist")]
    BadLink { link: usize, node: usize },
    #[error("{what} is not a finite, valid number")]
    BadInput { what: String },
    #[error("linear solve failed: {0}")]
    Numerical(String),
    #[error(
        "no convergence after {iterations} iterations: node imbalance {max_imbalance_kg_s:.3e} kg/s, link residual {max_residual_pa:.3e} Pa"
    )]
    NotConverged {
        iterations: usize,
        max_imbalance_kg_s: f64,
        max_residual_pa: f64,
    },
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub max_iterations: usize,
    /// Converged when every link's pressure residual is below this, Pa…
    pub tolerance_pa: f64,
    /// …and the flows moved by less than this in the last iteration (Σ|δq|/Σ|q|).
    pub tolerance_rel_flow: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_iterations: 100,
            tolerance_pa: 0.1,
            tolerance_rel_flow: 1e-6,
        }
    }
}

impl Problem {
    /// The checks of [`Problem::check`] that depend on values, not on the
    /// topology: the fixed pressures and demands, and the fixed nodes.
    fn check_values(&self) -> Result<Vec<Option<f64>>, SolveError> {
        if self.fixed_pressure_pa.is_empty() {
            return Err(SolveError::NoReference);
        }
        let n = self.node_count;
        if self.demand_kg_s.len() != n {
            return Err(SolveError::BadInput {
                what: format!("demand list of {} for {n} nodes", self.demand_kg_s.len()),
            });
        }
        for (i, d) in self.demand_kg_s.iter().enumerate() {
            if !d.is_finite() {
                return Err(SolveError::BadInput {
                    what: format!("demand at node {i}"),
                });
            }
        }
        let mut fixed = vec![None; n];
        for &(node, p) in &self.fixed_pressure_pa {
            if node >= n || !p.is_finite() {
                return Err(SolveError::BadInput {
                    what: format!("fixed pressure at node {node}"),
                });
            }
            fixed[node] = Some(p);
        }
        Ok(fixed)
    }

    fn check(&self) -> Result<Vec<Option<f64>>, SolveError> {
        let fixed = self.check_values()?;
        let n = self.node_count;
        // Adjacency in compressed rows (no allocation per node).
        let mut ptr = vec![0usize; n + 1];
        for (k, l) in self.links.iter().enumerate() {
            for node in [l.from, l.to] {
                if node >= n {
                    return Err(SolveError::BadLink { link: k, node });
                }
                ptr[node + 1] += 1;
            }
        }
        for i in 0..n {
            ptr[i + 1] += ptr[i];
        }
        let mut fill = ptr.clone();
        let mut adj = vec![0usize; ptr[n]];
        for l in &self.links {
            adj[fill[l.from]] = l.to;
            fill[l.from] += 1;
            adj[fill[l.to]] = l.from;
            fill[l.to] += 1;
        }
        let mut seen = vec![false; n];
        let mut stack: Vec<usize> = self.fixed_pressure_pa.iter().map(|f| f.0).collect();
        for &s in &stack {
            seen[s] = true;
        }
        while let Some(v) = stack.pop() {
            for &w in &adj[ptr[v]..ptr[v + 1]] {
                if !seen[w] {
                    seen[w] = true;
                    stack.push(w);
                }
            }
        }
        let island: Vec<usize> = (0..n).filter(|&i| !seen[i]).collect();
        if !island.is_empty() {
            return Err(SolveError::Island { nodes: island });
        }
        Ok(fixed)
    }

    /// Solves for pressures and flows, starting from `start` flows if given.
    /// (Analyses the topology every call; keep a [`Solver`] to reuse it.)
    pub fn solve(&self, opts: &Options, start: Option<&[f64]>) -> Result<Solution, SolveError> {
        Solver::new(self)?.solve(self, opts, start)
    }
}

/// A solver prepared for one topology (nodes, link endpoints, fixed nodes):
/// the fill-reducing ordering and the structure of the factor are computed
/// once, then every solve only refactors numerically.
#[derive(Clone, Debug)]
pub struct Solver {
    node_count: usize,
    topology: Vec<(usize, usize)>,
    /// Each link's last Colebrook–White root `1/√λ` (NaN: none yet).
    friction_x: Vec<f64>,
    fixed_nodes: Vec<usize>,
    free: Vec<bool>,
    linear: Linear,
}

impl Solver {
    pub fn new(pb: &Problem) -> Result<Self, SolveError> {
        if pb.node_count > crate::sparse::MAX_VERTICES {
            return Err(SolveError::BadInput {
                what: format!("node count {}", pb.node_count),
            });
        }
        let fixed = pb.check()?;
        let free: Vec<bool> = fixed.iter().map(Option::is_none).collect();
        Ok(Self {
            node_count: pb.node_count,
            topology: pb.links.iter().map(|l| (l.from, l.to)).collect(),
            friction_x: vec![f64::NAN; pb.links.len()],
            fixed_nodes: pb.fixed_pressure_pa.iter().map(|f| f.0).collect(),
            linear: Linear::new(pb.node_count, &pb.links, &free),
            free,
        })
    }

    /// Reuse the last factorization while it still preconditions conjugate
    /// gradients well (a few iterations to full precision) instead of
    /// refactoring at every Newton step. Off by default; worth it when many
    /// solves follow each other with small changes (the design calculation's
    /// outer iterations). Each step is still solved to 1e-13 relative
    /// residual, so Newton's convergence is unchanged.
    pub fn reuse_factorization(&mut self, on: bool) {
        self.linear.reuse = on;
    }

    /// With [`Solver::reuse_factorization`]: the relative residual a linear
    /// solve on a reused factor must reach (default 1e-10), and the CG
    /// iterations it may take for that (default 3; one costs about a tenth
    /// of a factorization on a 2-D mesh). A looser tolerance makes the Newton
    /// step inexact (its forcing term): right while an outer iteration is far
    /// from its fixed point, so long as it is tightened at the end. The node
    /// balance the step leaves is this residual.
    pub fn set_linear_tolerance(&mut self, relative: f64, max_cg_iterations: usize) {
        self.linear.tolerance = relative.clamp(1e-14, 0.1);
        self.linear.max_cg = max_cg_iterations;
    }

    /// Numeric factorizations done so far, linear solves done by reusing
    /// one, and the CG iterations those took.
    pub fn factorizations(&self) -> (usize, usize, usize) {
        (
            self.linear.factorizations,
            self.linear.reused,
            self.linear.cg_iterations,
        )
    }

    /// Nonzeros of the Cholesky factor (a measure of fill).
    pub fn factor_nonzeros(&self) -> usize {
        self.linear.sym.l_nnz()
    }

    /// Solves `pb`, which must have the topology this solver was prepared for.
    pub fn solve(
        &mut self,
        pb: &Problem,
        opts: &Options,
        start: Option<&[f64]>,
    ) -> Result<Solution, SolveError> {
        match self.iterate(pb, opts, start, None)? {
            (s, true) => Ok(s),
            (s, false) => Err(SolveError::NotConverged {
                iterations: s.iterations,
                max_imbalance_kg_s: s.max_imbalance_kg_s,
                max_residual_pa: s.max_residual_pa,
            }),
        }
    }

    /// Like [`Solver::solve`], but after `opts.max_iterations` Newton steps
    /// without convergence it returns the last iterate and `false` instead of
    /// an error (its residuals are those before the last step). For callers
    /// that iterate an outer problem and check convergence themselves; they
    /// pass the last pressures with the last flows (`start_pressure_pa`), so
    /// that the residuals tested before a step describe that state (without
    /// them the free pressures start flat and a first step never converges).
    pub fn iterate(
        &mut self,
        pb: &Problem,
        opts: &Options,
        start: Option<&[f64]>,
        start_pressure_pa: Option<&[f64]>,
    ) -> Result<(Solution, bool), SolveError> {
        // The topology was checked (links, islands) when the solver was
        // prepared; what may differ now are the values.
        let fixed = pb.check_values()?;
        let same = pb.node_count == self.node_count
            && pb.links.len() == self.topology.len()
            && pb
                .links
                .iter()
                .zip(&self.topology)
                .all(|(l, t)| (l.from, l.to) == *t)
            && pb
                .fixed_pressure_pa
                .iter()
                .map(|f| f.0)
                .eq(self.fixed_nodes.iter().copied());
        if !same {
            return Err(SolveError::BadInput {
                what: "topology (links or fixed nodes differ from the one the solver was prepared for)".into(),
            });
        }
        let free = &self.free;
        let n = pb.node_count;
        let m = pb.links.len();
        let mean_fixed = pb.fixed_pressure_pa.iter().map(|f| f.1).sum::<f64>()
            / pb.fixed_pressure_pa.len() as f64;
        let mut p: Vec<f64> = match start_pressure_pa {
            Some(s) if s.len() == n && start.is_some() => {
                (0..n).map(|i| fixed[i].unwrap_or(s[i])).collect()
            }
            _ => (0..n).map(|i| fixed[i].unwrap_or(mean_fixed)).collect(),
        };
        let mut q: Vec<f64> = match start {
            Some(s) if s.len() == m => s.to_vec(),
            _ => vec![0.1; m],
        };
        let mut f = vec![0.0; m];
        let mut g = vec![0.0; m];
        let mut r = vec![0.0; m];
        let mut rhs = vec![0.0; n];
        let mut dp = vec![0.0; n];
        let mut last = (f64::INFINITY, f64::INFINITY);
        if start.is_none() {
            // Cold start: one exact solve of the linearized network from q = 0.
            rhs.iter_mut()
                .zip(&pb.demand_kg_s)
                .for_each(|(x, d)| *x = -*d);
            for (k, l) in pb.links.iter().enumerate() {
                let (c0, c1) = l.linear_model();
                g[k] = c1;
                r[k] = c0 - (p[l.from] - p[l.to]);
                rhs[l.from] += r[k] / c1;
                rhs[l.to] -= r[k] / c1;
            }
            self.linear.solve_free(&g, &mut rhs, &mut dp, free)?;
            for (k, l) in pb.links.iter().enumerate() {
                q[k] = (-r[k] + dp[l.from] - dp[l.to]) / g[k];
            }
            for i in 0..n {
                if free[i] {
                    p[i] += dp[i];
                }
            }
        }
        for it in 0..opts.max_iterations {
            link_drops(
                &pb.links,
                &q,
                &p,
                &mut self.friction_x,
                &mut f,
                &mut g,
                &mut r,
            );
            // Node balances s = Σout − Σin + demand (exact after the first step).
            rhs.iter_mut()
                .zip(&pb.demand_kg_s)
                .for_each(|(x, d)| *x = *d);
            for (k, l) in pb.links.iter().enumerate() {
                rhs[l.from] += q[k];
                rhs[l.to] -= q[k];
            }
            let imbalance = (0..n)
                .filter(|&i| free[i])
                .map(|i| rhs[i].abs())
                .fold(0.0, f64::max);
            let residual = r.iter().fold(0.0f64, |a, x| a.max(x.abs()));
            // rhs = −s + A·G⁻¹·r
            for x in rhs.iter_mut() {
                *x = -*x;
            }
            for (k, l) in pb.links.iter().enumerate() {
                let v = r[k] / g[k];
                rhs[l.from] += v;
                rhs[l.to] -= v;
            }
            self.linear.solve_free(&g, &mut rhs, &mut dp, free)?;
            // Σ|δq| / Σ|q| (as EPANET): a per-link ratio never settles on the
            // links of a mesh that carry almost nothing.
            let (mut sum_dq, mut sum_q) = (0.0f64, 0.0f64);
            for (k, l) in pb.links.iter().enumerate() {
                let dq = (-r[k] + dp[l.from] - dp[l.to]) / g[k];
                q[k] += dq;
                sum_dq += dq.abs();
                sum_q += q[k].abs();
            }
            let rel_change = sum_dq / sum_q.max(1e-12);
            for i in 0..n {
                if free[i] {
                    p[i] += dp[i];
                }
            }
            last = (imbalance, residual);
            if residual < opts.tolerance_pa && rel_change < opts.tolerance_rel_flow {
                let final_imbalance = node_imbalance(pb, &q, free);
                return Ok((
                    Solution {
                        pressure_pa: p,
                        flow_kg_s: q,
                        iterations: it + 1,
                        max_imbalance_kg_s: final_imbalance,
                        max_residual_pa: residual,
                    },
                    true,
                ));
            }
        }
        Ok((
            Solution {
                pressure_pa: p,
                flow_kg_s: q,
                iterations: opts.max_iterations,
                max_imbalance_kg_s: last.0,
                max_residual_pa: last.1,
            },
            false,
        ))
    }
}

/// Links from which [`link_drops`] shares its work with a second thread.
const PARALLEL_MIN_LINKS: usize = 8_000;

/// Each link's pressure drop `f`, its derivative `g` and its residual `r`
/// against the pressures `p`, at flows `q`. Every link is on its own, so a
/// large network's links are done in two halves on two threads, with the
/// same results.
fn link_drops(
    links: &[Link],
    q: &[f64],
    p: &[f64],
    friction_x: &mut [f64],
    f: &mut [f64],
    g: &mut [f64],
    r: &mut [f64],
) {
    let run = |links: &[Link],
               q: &[f64],
               friction_x: &mut [f64],
               f: &mut [f64],
               g: &mut [f64],
               r: &mut [f64]| {
        for (k, l) in links.iter().enumerate() {
            (f[k], g[k]) = l.drop_pa_from(q[k], &mut friction_x[k]);
            r[k] = f[k] - (p[l.from] - p[l.to]);
        }
    };
    let m = links.len();
    if m < PARALLEL_MIN_LINKS {
        run(links, q, friction_x, f, g, r);
        return;
    }
    let h = m / 2;
    let (l0, l1) = links.split_at(h);
    let (q0, q1) = q.split_at(h);
    let (x0, x1) = friction_x.split_at_mut(h);
    let (f0, f1) = f.split_at_mut(h);
    let (g0, g1) = g.split_at_mut(h);
    let (r0, r1) = r.split_at_mut(h);
    std::thread::scope(|scope| {
        scope.spawn(|| run(l1, q1, x1, f1, g1, r1));
        run(l0, q0, x0, f0, g0, r0);
    });
}

fn node_imbalance(pb: &Problem, q: &[f64], free: &[bool]) -> f64 {
    let mut s: Vec<f64> = pb.demand_kg_s.clone();
    for (k, l) in pb.links.iter().enumerate() {
        s[l.from] += q[k];
        s[l.to] -= q[k];
    }
    (0..s.len())
        .filter(|&i| free[i])
        .map(|i| s[i].abs())
        .fold(0.0, f64::max)
}

/// `A·G⁻¹·Aᵀ` over the free nodes, factored by sparse Cholesky. The matrix is a
/// weighted graph Laplacian with every component grounded at a fixed-pressure
/// node, hence symmetric positive definite; its ordering and structure are
/// analysed once per topology.
#[derive(Clone, Debug)]
struct Linear {
    /// Free index of each node (NONE for fixed nodes).
    map: Vec<usize>,
    sym: Symbolic,
    chol: Cholesky,
    values: Vec<f64>,
    /// Per link: value slots (ii, jj, ij), NONE where absent.
    slots: Vec<[usize; 3]>,
    b: Vec<f64>,
    /// Preconditioned CG on the last factor before refactoring.
    reuse: bool,
    factored: bool,
    factorizations: usize,
    reused: usize,
    /// CG work vectors (permuted numbering): x, r, z, p, A·p, b.
    cg: [Vec<f64>; 6],
    /// Each link's weight 1/g in the last factorization.
    factored_w: Vec<f64>,
    /// CG iterations done on reused factors.
    pub(crate) cg_iterations: usize,
    /// Relative residual CG must reach on a reused factor, and its iterations.
    tolerance: f64,
    max_cg: usize,
}

/// Most CG iterations on a reused factor before refactoring instead, by
/// default.
const MAX_CG_ITERATIONS: usize = 3;
/// Relative residual CG must reach with a reused factor by default (an
/// inexact Newton step this close keeps Newton's convergence)…
const CG_TOLERANCE: f64 = 1e-10;
/// …or this absolute one, kg/s: the linear residual is the node imbalance
/// the step leaves, and this is far below any a caller tests for.
const CG_ABS_TOLERANCE_KG_S: f64 = 1e-12;

const NONE: usize = usize::MAX;

impl Linear {
    fn new(n: usize, links: &[Link], free: &[bool]) -> Self {
        let mut map = vec![NONE; n];
        let mut nf = 0;
        for i in 0..n {
            if free[i] {
                map[i] = nf;
                nf += 1;
            }
        }
        let edges: Vec<(usize, usize)> = links
            .iter()
            .filter_map(|l| {
                let (a, b) = (map[l.from], map[l.to]);
                (a != NONE && b != NONE).then_some((a, b))
            })
            .collect();
        let sym = Symbolic::new(nf, &edges);
        let slot = |a: usize, b: usize| {
            if a == NONE || b == NONE {
                NONE
            } else {
                sym.slot(a, b).unwrap_or(NONE)
            }
        };
        let slots = links
            .iter()
            .map(|l| {
                let (a, b) = (map[l.from], map[l.to]);
                if a == b {
                    [NONE; 3]
                } else {
                    [slot(a, a), slot(b, b), slot(a, b)]
                }
            })
            .collect();
        let chol = Cholesky::new(&sym);
        Self {
            map,
            values: vec![0.0; sym.nnz()],
            sym,
            chol,
            slots,
            b: vec![0.0; nf],
            reuse: false,
            factored: false,
            factorizations: 0,
            reused: 0,
            cg: std::array::from_fn(|_| vec![0.0; nf]),
            factored_w: vec![0.0; links.len()],
            cg_iterations: 0,
            tolerance: CG_TOLERANCE,
            max_cg: MAX_CG_ITERATIONS,
        }
    }

    /// Grounds the fixed nodes' rows of `rhs`, then solves for the pressure corrections.
    fn solve_free(
        &mut self,
        g: &[f64],
        rhs: &mut [f64],
        dp: &mut [f64],
        free: &[bool],
    ) -> Result<(), SolveError> {
        for (x, &is_free) in rhs.iter_mut().zip(free) {
            if !is_free {
                *x = 0.0;
            }
        }
        self.solve(g, rhs, dp)
            .map_err(|e| SolveError::Numerical(e.to_string()))
    }

    /// Solves (A·G⁻¹·Aᵀ)·x = b over the free nodes (node-indexed; fixed nodes get 0).
    fn solve(
        &mut self,
        g: &[f64],
        b_nodes: &[f64],
        x_nodes: &mut [f64],
    ) -> Result<(), CholeskyError> {
        self.values.iter_mut().for_each(|v| *v = 0.0);
        // Largest relative change of a link weight since the last factorization:
        // with every weight within (1 ± δ) of the factored one, the factored
        // Laplacian M bounds the new one A by (1 − δ)·M ≤ A ≤ (1 + δ)·M, so
        // preconditioned CG gains a factor of about δ/2 per iteration.
        let mut delta = 0.0f64;
        for (k, s) in self.slots.iter().enumerate() {
            let w = 1.0 / g[k];
            delta = delta.max((w / self.factored_w[k] - 1.0).abs());
            if s[0] != NONE {
                self.values[s[0]] += w;
            }
            if s[1] != NONE {
                self.values[s[1]] += w;
            }
            if s[2] != NONE {
                self.values[s[2]] -= w;
            }
        }
        for (node, &f) in self.map.iter().enumerate() {
            if f != NONE {
                self.b[f] = b_nodes[node];
            }
        }
        // Try the old factor only when CG should reach its tolerance in time
        // (a failed attempt costs more than the factorization it avoids).
        let promising = delta < 1.0
            && (self.tolerance.ln() / (0.5 * delta).max(1e-300).ln()).ceil()
                <= self.max_cg as f64 + 1.0;
        if !(self.reuse && self.factored && promising && self.pcg()) {
            self.factored = false;
            self.chol.factor(&self.sym, &self.values)?;
            self.factored = true;
            self.factorizations += 1;
            for (fw, gk) in self.factored_w.iter_mut().zip(g) {
                *fw = 1.0 / gk;
            }
            self.chol.solve(&self.sym, &mut self.b);
        }
        for (node, &f) in self.map.iter().enumerate() {
            x_nodes[node] = if f == NONE { 0.0 } else { self.b[f] };
        }
        Ok(())
    }

    /// Conjugate gradients on the current values, preconditioned by the last
    /// factorization; on success `b` holds the solution. False when it does
    /// not reach its tolerance within its iterations.
    fn pcg(&mut self) -> bool {
        let n = self.sym.n();
        let perm = self.sym.perm();
        let [x, r, z, p, ap, bp] = &mut self.cg;
        for new in 0..n {
            bp[new] = self.b[perm[new]];
        }
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let b_norm = dot(bp, bp).sqrt();
        if b_norm == 0.0 {
            self.b.iter_mut().for_each(|v| *v = 0.0);
            self.reused += 1;
            return true;
        }
        // x₀ = M⁻¹·b, r₀ = b − A·x₀.
        x.copy_from_slice(bp);
        self.chol.solve_permuted(&self.sym, x);
        self.sym.mul_permuted(&self.values, x, ap);
        for i in 0..n {
            r[i] = bp[i] - ap[i];
        }
        let mut converged =
            dot(r, r).sqrt() <= (self.tolerance * b_norm).max(CG_ABS_TOLERANCE_KG_S);
        if !converged {
            z.copy_from_slice(r);
            self.chol.solve_permuted(&self.sym, z);
            p.copy_from_slice(z);
            let mut rz = dot(r, z);
            for _ in 0..self.max_cg {
                self.sym.mul_permuted(&self.values, p, ap);
                let pap = dot(p, ap);
                if !(pap > 0.0 && pap.is_finite()) {
                    return false;
                }
                self.cg_iterations += 1;
                let alpha = rz / pap;
                for i in 0..n {
                    x[i] += alpha * p[i];
                    r[i] -= alpha * ap[i];
                }
                if dot(r, r).sqrt() <= (self.tolerance * b_norm).max(CG_ABS_TOLERANCE_KG_S) {
                    converged = true;
                    break;
                }
                z.copy_from_slice(r);
                self.chol.solve_permuted(&self.sym, z);
                let rz_new = dot(r, z);
                let beta = rz_new / rz;
                rz = rz_new;
                for i in 0..n {
                    p[i] = z[i] + beta * p[i];
                }
            }
        }
        if converged {
            for new in 0..n {
                self.b[perm[new]] = x[new];
            }
            self.reused += 1;
        }
        converged
    }
}

#[cfg(test)]
mod tests;

/// A seeded meshed test network of about `junctions` nodes: a square grid of
/// pipes (100–300 m, DN250 mains along the first row and column, DN150
/// elsewhere) fed by two sources held at 6 and 5.8 bar at opposite corners,
/// every other node drawing 0.05–0.15 kg/s. For benchmarks and solver tests.
pub fn grid_problem(junctions: usize, seed: u64) -> Problem {
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
    let water = Water::at(90.0);
    let idx = |r: usize, c: usize| r * side + c;
    let mut links = Vec::with_capacity(2 * n);
    for r in 0..side {
        for c in 0..side {
            for (r2, c2) in [(r, c + 1), (r + 1, c)] {
                if r2 < side && c2 < side {
                    let main = r == 0 || c == 0 || r2 == side - 1 || c2 == side - 1;
                    links.push(Link {
                        from: idx(r, c),
                        to: idx(r2, c2),
                        kind: LinkKind::Pipe {
                            length_m: 100.0 + 200.0 * next(),
                            diameter_m: if main { 0.25 } else { 0.15 },
                            roughness_m: 5e-5,
                            minor_loss: 0.5,
                        },
                        water,
                    });
                }
            }
        }
    }
    let mut demand_kg_s: Vec<f64> = (0..n).map(|_| 0.05 + 0.1 * next()).collect();
    demand_kg_s[0] = 0.0;
    demand_kg_s[n - 1] = 0.0;
    Problem {
        node_count: n,
        links,
        fixed_pressure_pa: vec![(0, 600_000.0), (n - 1, 580_000.0)],
        demand_kg_s,
    }
}
