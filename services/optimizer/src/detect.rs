//! The optimizer's own detectors: suspected leaks (located on the utility's
//! network layout), pump trips and plant trips. Pure: they take telemetry
//! snapshots (node, kind, network time, readings) and return events; the core
//! turns events into alarms.
//!
//! - **Leak.** The make-up water fed at the pressure-holding point(s) and the
//!   plants' mass balance (supply flow − return flow) are compared with their
//!   learned baselines. An excess above [`LeakConfig::min_leak_kg_s`] (or four
//!   standard deviations of the learned noise) on two plant samples at least
//!   [`LeakConfig::confirm_ms`] apart raises `leak_suspected`. The leak is
//!   located by comparing every plant's and substation's primary supply and
//!   return pressures just after the onset with their last reading before it
//!   (within [`LeakConfig::baseline_window_ms`]): the junction whose nodes lost
//!   the most pressure (above the network-wide median loss) is the leak's
//!   neighbourhood, and of the pipes meeting there the one whose other end lost
//!   the most is named. The alarm clears when the excess falls below half the
//!   threshold on two samples `confirm_ms` apart.
//! - **Pump trip.** A plant or substation whose pump reports stopped
//!   (`pump_running` < 0.5) while it should run (the control laws always
//!   command it on).
//! - **Plant trip.** A plant whose pump runs but whose heat output fell below
//!   70 % of its usual level (the larger of its learned mean and its highest
//!   healthy reading of the last 15 min) with its supply more than 5 K below its
//!   setpoint (or below 85 % with the supply more than 10 K below), on two
//!   samples `confirm_ms` apart; cleared when its heat is back to 90 % or its
//!   supply within 2 K of its setpoint.

use std::collections::{BTreeMap, VecDeque};

use model::{Metric, Network, NodeId, NodeKind, Reading};

use crate::alarms::LeakSection;

/// The utility's view of the network (its GIS): junctions, pipes between
/// them, and which plant or substation hangs where. Not the simulated state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layout {
    junctions: Vec<String>,
    /// (pipe id, from junction, to junction), indices into `junctions`.
    pipes: Vec<(String, usize, usize)>,
    /// Junction of each plant and substation.
    node_at: BTreeMap<NodeId, usize>,
}

impl Layout {
    /// The layout of a network file: its explicit junctions and pipes, or for
    /// a network of private pipes one junction per plant and substation and a
    /// pipe `<substation>.pipe` from each substation's plant.
    pub fn of(net: &Network) -> Self {
        let mut l = Layout::default();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut junction = |l: &mut Layout, id: &str| -> usize {
            *index.entry(id.to_string()).or_insert_with(|| {
                l.junctions.push(id.to_string());
                l.junctions.len() - 1
            })
        };
        if net.is_star() {
            for p in &net.plants {
                let j = junction(&mut l, p.id.as_str());
                l.node_at.insert(p.id.clone(), j);
            }
            for s in &net.substations {
                let a = junction(&mut l, s.plant.as_str());
                let b = junction(&mut l, s.id.as_str());
                l.pipes.push((format!("{}.pipe", s.id), a, b));
                l.node_at.insert(s.id.clone(), b);
            }
        } else {
            for j in &net.junctions {
                junction(&mut l, j.id.as_str());
            }
            for p in &net.pipes {
                let a = junction(&mut l, p.from.as_str());
                let b = junction(&mut l, p.to.as_str());
                l.pipes.push((p.id.to_string(), a, b));
            }
            for p in &net.plants {
                if let Some(j) = &p.junction {
                    let j = junction(&mut l, j.as_str());
                    l.node_at.insert(p.id.clone(), j);
                }
            }
            for s in &net.substations {
                if let Some(j) = &s.junction {
                    let j = junction(&mut l, j.as_str());
                    l.node_at.insert(s.id.clone(), j);
                }
            }
        }
        l
    }

    pub fn pipe_count(&self) -> usize {
        self.pipes.len()
    }

    /// Picks the leaking section from per-node pressure deficits (Pa, positive:
    /// lost pressure). `None` if no node of the layout has a deficit.
    pub fn locate(&self, deficits: &BTreeMap<NodeId, f64>, leak_kg_s: f64) -> Option<LeakSection> {
        let mut at: Vec<Option<f64>> = vec![None; self.junctions.len()];
        for (node, d) in deficits {
            if let Some(&j) = self.node_at.get(node) {
                at[j] = Some(at[j].map_or(*d, |x: f64| x.max(*d)));
            }
        }
        let (leak_j, deficit) = at
            .iter()
            .enumerate()
            .filter_map(|(j, d)| d.map(|d| (j, d)))
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        // Pipes meeting at the junction, best first: the one whose other end
        // lost the most pressure (ends without a meter count as losing nothing).
        let mut incident: Vec<(usize, f64)> = self
            .pipes
            .iter()
            .enumerate()
            .filter(|(_, p)| p.1 == leak_j || p.2 == leak_j)
            .map(|(i, p)| {
                let other = if p.1 == leak_j { p.2 } else { p.1 };
                (i, at[other].unwrap_or(f64::NEG_INFINITY))
            })
            .collect();
        incident.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let &(best, _) = incident.first()?;
        let (pipe_id, a, b) = &self.pipes[best];
        let nodes = self
            .node_at
            .iter()
            .filter(|(_, j)| **j == *a || **j == *b)
            .map(|(n, _)| n.to_string())
            .collect();
        Some(LeakSection {
            pipe_id: pipe_id.clone(),
            from_junction: self.junctions[*a].clone(),
            to_junction: self.junctions[*b].clone(),
            junction: self.junctions[leak_j].clone(),
            nodes,
            alternatives: incident[1..]
                .iter()
                .map(|(i, _)| self.pipes[*i].0.clone())
                .collect(),
            leak_kg_s,
            deficit_pa: deficit,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LeakConfig {
    /// Smallest excess of make-up (or mass balance) that counts, kg/s.
    pub min_leak_kg_s: f64,
    /// A suspicion holds this long (two samples at least) before it is raised, ms.
    pub confirm_ms: i64,
    /// Time constant of the make-up baseline, ms.
    pub baseline_tau_ms: i64,
    /// How old the last pressure reading before the onset may be, ms.
    pub baseline_window_ms: i64,
}

impl Default for LeakConfig {
    fn default() -> Self {
        Self {
            min_leak_kg_s: 0.5,
            confirm_ms: 60_000,
            baseline_tau_ms: 3_600_000,
            baseline_window_ms: 10 * 60_000,
        }
    }
}

/// One node's pressure sample: network time, supply and return gauge pressure, Pa.
type PressureSample = (i64, Option<f64>, Option<f64>);

/// Pressure samples kept per node, at most.
const MAX_PRESSURE_SAMPLES: usize = 64;

/// An exponentially weighted mean and variance over network time.
#[derive(Clone, Debug, Default, PartialEq)]
struct Ewma {
    mean: f64,
    var: f64,
    time_ms: Option<i64>,
}

impl Ewma {
    fn update(&mut self, x: f64, time_ms: i64, tau_ms: i64) {
        match self.time_ms {
            None => {
                self.mean = x;
                self.var = 0.0;
            }
            Some(t) => {
                let dt = (time_ms - t).max(0) as f64;
                let a = 1.0 - (-dt / tau_ms.max(1) as f64).exp();
                let d = x - self.mean;
                self.mean += a * d;
                self.var = (1.0 - a) * (self.var + a * d * d);
            }
        }
        self.time_ms = Some(time_ms);
    }
}

#[derive(Clone, Debug, PartialEq)]
enum LeakPhase {
    Quiet,
    /// Excess seen first at `onset_ms`; the last quiet plant sample was at `before_ms`.
    Pending {
        onset_ms: i64,
        before_ms: i64,
    },
    Raised {
        below_since: Option<i64>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum LeakEvent {
    Raise {
        network_ms: i64,
        leak_kg_s: f64,
        /// `None` when no layout (or no pressure reading) is available.
        section: Option<LeakSection>,
    },
    Clear {
        network_ms: i64,
    },
}

#[derive(Clone, Debug, Default)]
struct PlantFlows {
    /// Network time of the plant's sample.
    time_ms: i64,
    makeup_kg_s: Option<f64>,
    supply_kg_s: Option<f64>,
    return_kg_s: Option<f64>,
}

pub struct LeakDetector {
    cfg: LeakConfig,
    layout: Option<Layout>,
    plants: BTreeMap<NodeId, PlantFlows>,
    makeup: Ewma,
    balance: Ewma,
    /// Per node: (time, supply Pa, return Pa), oldest first.
    pressures: BTreeMap<NodeId, VecDeque<PressureSample>>,
    phase: LeakPhase,
    last_quiet_ms: Option<i64>,
}

impl LeakDetector {
    pub fn new(cfg: LeakConfig, layout: Option<Layout>) -> Self {
        Self {
            cfg,
            layout,
            plants: BTreeMap::new(),
            makeup: Ewma::default(),
            balance: Ewma::default(),
            pressures: BTreeMap::new(),
            phase: LeakPhase::Quiet,
            last_quiet_ms: None,
        }
    }

    /// Whether a leak is suspected now.
    pub fn raised(&self) -> bool {
        matches!(self.phase, LeakPhase::Raised { .. })
    }

    /// Takes one snapshot; returns what changed.
    pub fn observe(
        &mut self,
        node: &NodeId,
        kind: NodeKind,
        time_ms: i64,
        readings: &[Reading],
    ) -> Option<LeakEvent> {
        let get = |m: Metric| {
            readings
                .iter()
                .find(|r| r.metric == m)
                .map(|r| r.value)
                .filter(|v| v.is_finite())
        };
        if kind == NodeKind::Building {
            return None;
        }
        let (ps, pr) = (get(Metric::SupplyPressurePa), get(Metric::ReturnPressurePa));
        if ps.is_some() || pr.is_some() {
            let q = self.pressures.entry(node.clone()).or_default();
            if q.back().is_none_or(|b| b.0 < time_ms) {
                q.push_back((time_ms, ps, pr));
                // Keep what a baseline window and the time since onset need.
                let keep_from = time_ms - 2 * self.cfg.baseline_window_ms;
                while q.len() > MAX_PRESSURE_SAMPLES || q.front().is_some_and(|f| f.0 < keep_from) {
                    q.pop_front();
                }
            }
        }
        if kind != NodeKind::Plant {
            return None;
        }
        self.plants.insert(
            node.clone(),
            PlantFlows {
                time_ms,
                makeup_kg_s: get(Metric::MakeupFlowKgS),
                supply_kg_s: get(Metric::FlowKgS),
                return_kg_s: get(Metric::ReturnFlowKgS),
            },
        );
        self.evaluate(time_ms)
    }

    /// The network's make-up water and mass balance (sums over the plants
    /// that meter them), kg/s, and the oldest and newest sample time they
    /// come from.
    fn signals(&self) -> (Option<f64>, Option<f64>, i64, i64) {
        let sum = |acc: Option<f64>, x: f64| Some(acc.unwrap_or(0.0) + x);
        let (mut makeup, mut balance) = (None, None);
        let (mut oldest, mut newest) = (i64::MAX, i64::MIN);
        for p in self.plants.values() {
            let b = p.supply_kg_s.zip(p.return_kg_s).map(|(s, r)| s - r);
            if p.makeup_kg_s.is_some() || b.is_some() {
                oldest = oldest.min(p.time_ms);
                newest = newest.max(p.time_ms);
            }
            if let Some(m) = p.makeup_kg_s {
                makeup = sum(makeup, m);
            }
            if let Some(b) = b {
                balance = sum(balance, b);
            }
        }
        (makeup, balance, oldest, newest)
    }

    fn evaluate(&mut self, t: i64) -> Option<LeakEvent> {
        let (makeup, balance, oldest, newest) = self.signals();
        if makeup.is_none() && balance.is_none() {
            return None;
        }
        let excess_of = |e: &Ewma, x: Option<f64>| {
            x.filter(|_| e.time_ms.is_some())
                .map(|x| x - e.mean)
                .unwrap_or(0.0)
        };
        let excess = excess_of(&self.makeup, makeup).max(excess_of(&self.balance, balance));
        let noise = self.makeup.var.max(self.balance.var).sqrt();
        let threshold = self.cfg.min_leak_kg_s.max(4.0 * noise);
        match self.phase.clone() {
            LeakPhase::Quiet => {
                if excess > threshold {
                    self.phase = LeakPhase::Pending {
                        // Plants sample at their own instants: the excess is
                        // known by the newest sample, and quiet was known up
                        // to the oldest sample of the last quiet evaluation.
                        onset_ms: newest,
                        before_ms: self.last_quiet_ms.unwrap_or(oldest - 1),
                    };
                } else {
                    let tau = self.cfg.baseline_tau_ms;
                    if let Some(m) = makeup {
                        self.makeup.update(m, t, tau);
                    }
                    if let Some(b) = balance {
                        self.balance.update(b, t, tau);
                    }
                    self.last_quiet_ms = Some(oldest);
                }
                None
            }
            LeakPhase::Pending {
                onset_ms,
                before_ms,
            } => {
                if excess <= threshold {
                    self.phase = LeakPhase::Quiet;
                    return None;
                }
                if t - onset_ms < self.cfg.confirm_ms {
                    return None;
                }
                self.phase = LeakPhase::Raised { below_since: None };
                let deficits = self.deficits(onset_ms, before_ms);
                tracing::info!(onset_ms, before_ms, deficits = ?deficits, "leak: pressure deficits per node, Pa");
                let section = self
                    .layout
                    .as_ref()
                    .and_then(|l| l.locate(&deficits, excess));
                Some(LeakEvent::Raise {
                    network_ms: t,
                    leak_kg_s: excess,
                    section,
                })
            }
            LeakPhase::Raised { below_since } => {
                if excess >= 0.5 * threshold {
                    self.phase = LeakPhase::Raised { below_since: None };
                    return None;
                }
                match below_since {
                    None => {
                        self.phase = LeakPhase::Raised {
                            below_since: Some(t),
                        };
                        None
                    }
                    Some(s) if t - s >= self.cfg.confirm_ms => {
                        self.phase = LeakPhase::Quiet;
                        self.last_quiet_ms = Some(oldest);
                        Some(LeakEvent::Clear { network_ms: t })
                    }
                    Some(_) => None,
                }
            }
        }
    }

    /// Per node: pressure lost across the onset: the node's last reading at or
    /// before `before_ms` (the last quiet plant sample) minus its first at or
    /// after `onset_ms`, the two closest to the step, so that what the control
    /// loops moved meanwhile counts little. The larger of the supply and
    /// return sides, each above its median over all nodes (what every node
    /// lost alike is not local).
    fn deficits(&self, onset_ms: i64, before_ms: i64) -> BTreeMap<NodeId, f64> {
        let from = before_ms - self.cfg.baseline_window_ms;
        let side = |pick: fn(&PressureSample) -> Option<f64>| {
            let mut out: BTreeMap<NodeId, f64> = BTreeMap::new();
            for (node, q) in &self.pressures {
                let before = q
                    .iter()
                    .rev()
                    .filter(|s| s.0 <= before_ms && s.0 >= from)
                    .find_map(pick);
                let after = q.iter().filter(|s| s.0 >= onset_ms).find_map(pick);
                if let (Some(before), Some(after)) = (before, after) {
                    out.insert(node.clone(), before - after);
                }
            }
            let mut v: Vec<f64> = out.values().copied().collect();
            v.sort_by(f64::total_cmp);
            let median = v.get(v.len() / 2).copied().unwrap_or(0.0);
            for d in out.values_mut() {
                *d -= median;
            }
            out
        };
        let supply = side(|s| s.1);
        let ret = side(|s| s.2);
        let mut out = supply;
        for (n, d) in ret {
            let e = out.entry(n).or_insert(d);
            *e = e.max(d);
        }
        out
    }
}

/// Pump and plant trips.
#[derive(Clone, Debug, PartialEq)]
pub enum TripEvent {
    Raise {
        kind: &'static str,
        node: NodeId,
        network_ms: i64,
        message: String,
    },
    Clear {
        kind: &'static str,
        node: NodeId,
        network_ms: i64,
    },
}

pub const PUMP_TRIP: &str = "pump_trip";
pub const PLANT_TRIP: &str = "plant_trip";

#[derive(Clone, Debug, Default)]
struct PlantTrack {
    heat: Ewma,
    /// Healthy heat readings of the last [`PEAK_WINDOW_MS`]: (time, W).
    recent: VecDeque<(i64, f64)>,
    /// Since when the heat has been collapsed.
    low_since: Option<i64>,
    tripped: bool,
}

/// Learns each plant's heat output and watches the pumps.
#[derive(Default)]
pub struct TripDetector {
    plants: BTreeMap<NodeId, PlantTrack>,
    pumps_stopped: BTreeMap<NodeId, bool>,
    confirm_ms: i64,
    /// Heat each plant was last ordered to make by the dispatch, W: a plant
    /// turned down on purpose has not tripped.
    orders_w: BTreeMap<NodeId, f64>,
}

/// Time constant of a plant's learned heat output, ms.
const HEAT_TAU_MS: i64 = 30 * 60_000;
/// A plant's output has collapsed when its heat is below the first share of
/// its learned level with the supply more than the second below its setpoint
/// (a tripped plant's supply falls toward its return with the plant's 10 min
/// time constant: about 4 min), or below the third share with the supply
/// more than the fourth below (about 2.5 min).
const COLLAPSE: [(f64, f64); 2] = [(0.7, 5.0), (0.85, 10.0)];
/// A tripped plant has recovered when its heat is back to this share of its
/// learned level, or its supply within `RECOVERED_WITHIN_K` of its setpoint.
const HEAT_RECOVERED_SHARE: f64 = 0.9;
const RECOVERED_WITHIN_K: f64 = 2.0;
/// A plant's usual output is the larger of its learned mean and its highest
/// healthy reading this recent (a plant ramping up is ahead of its mean), ms.
const PEAK_WINDOW_MS: i64 = 15 * 60_000;
/// Healthy readings kept per plant, at most.
const MAX_RECENT: usize = 64;
/// Learned heat below this is no level to collapse from, W.
const MIN_LEARNED_HEAT_W: f64 = 100_000.0;

impl TripDetector {
    pub fn new(confirm_ms: i64) -> Self {
        Self {
            confirm_ms,
            ..Default::default()
        }
    }

    /// The heat the optimizer now orders from each plant (none: the plant is
    /// not dispatched). Output is then judged against the lower of its usual
    /// level and its order.
    pub fn set_orders(&mut self, orders_w: impl IntoIterator<Item = (NodeId, f64)>) {
        self.orders_w = orders_w.into_iter().collect();
    }

    /// Carries an alarm active from before a restart, so that the detector
    /// clears it when the node recovers.
    pub fn resume(&mut self, kind: &str, node: &NodeId) {
        match kind {
            PUMP_TRIP => {
                self.pumps_stopped.insert(node.clone(), true);
            }
            PLANT_TRIP => self.plants.entry(node.clone()).or_default().tripped = true,
            _ => {}
        }
    }

    /// Takes one snapshot. `pump_should_run`: the node's pump is commanded on.
    pub fn observe(
        &mut self,
        node: &NodeId,
        kind: NodeKind,
        time_ms: i64,
        readings: &[Reading],
        pump_should_run: bool,
    ) -> Vec<TripEvent> {
        let get = |m: Metric| {
            readings
                .iter()
                .find(|r| r.metric == m)
                .map(|r| r.value)
                .filter(|v| v.is_finite())
        };
        let mut out = Vec::new();
        if kind == NodeKind::Building {
            return out;
        }
        let running = get(Metric::PumpRunning).map(|r| r >= 0.5);
        if let Some(running) = running {
            let stopped = !running && pump_should_run;
            let was = self
                .pumps_stopped
                .insert(node.clone(), stopped)
                .unwrap_or(false);
            if stopped && !was {
                let what = if kind == NodeKind::Plant {
                    "circulation"
                } else {
                    "secondary"
                };
                out.push(TripEvent::Raise {
                    kind: PUMP_TRIP,
                    node: node.clone(),
                    network_ms: time_ms,
                    message: format!("{what} pump of {node} stopped while commanded on"),
                });
            } else if !stopped && was {
                out.push(TripEvent::Clear {
                    kind: PUMP_TRIP,
                    node: node.clone(),
                    network_ms: time_ms,
                });
            }
        }
        if kind != NodeKind::Plant {
            return out;
        }
        let (Some(heat), Some(supply), Some(setpoint)) = (
            get(Metric::HeatW),
            get(Metric::SupplyTempC),
            get(Metric::SetpointC),
        ) else {
            return out;
        };
        let confirm = self.confirm_ms;
        let p = self.plants.entry(node.clone()).or_default();
        let usual = p
            .recent
            .iter()
            .filter(|(t, _)| time_ms - t <= PEAK_WINDOW_MS)
            .map(|(_, h)| *h)
            .fold(p.heat.mean, f64::max);
        let usual = self.orders_w.get(node).map_or(usual, |o| usual.min(*o));
        let learned = p.heat.time_ms.is_some() && usual >= MIN_LEARNED_HEAT_W;
        let collapsed = learned
            && running != Some(false)
            && COLLAPSE
                .iter()
                .any(|(share, k)| heat < share * usual && supply < setpoint - k);
        if collapsed {
            let since = *p.low_since.get_or_insert(time_ms);
            if !p.tripped && time_ms - since >= confirm {
                p.tripped = true;
                out.push(TripEvent::Raise {
                    kind: PLANT_TRIP,
                    node: node.clone(),
                    network_ms: time_ms,
                    message: format!(
                        "plant {node} delivers {:.1} MW against its usual {:.1} MW, supply {supply:.1} °C against a setpoint of {setpoint:.1} °C",
                        heat / 1e6,
                        usual / 1e6
                    ),
                });
            }
        } else {
            p.low_since = None;
            // Resumed after a restart with nothing learned: any output counts.
            let recovered = (p.heat.time_ms.is_none() && heat >= MIN_LEARNED_HEAT_W)
                || heat >= HEAT_RECOVERED_SHARE * usual
                || supply >= setpoint - RECOVERED_WITHIN_K
                || running == Some(false);
            if p.tripped && recovered {
                p.tripped = false;
                out.push(TripEvent::Clear {
                    kind: PLANT_TRIP,
                    node: node.clone(),
                    network_ms: time_ms,
                });
            }
            // Learn the usual output only while the plant is healthy.
            if !p.tripped && running != Some(false) {
                p.heat.update(heat, time_ms, HEAT_TAU_MS);
                p.recent.push_back((time_ms, heat));
                while p.recent.len() > MAX_RECENT
                    || p.recent
                        .front()
                        .is_some_and(|(t, _)| time_ms - t > PEAK_WINDOW_MS)
                {
                    p.recent.pop_front();
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
