//! The optimizer's own detectors: suspected leaks (located on the utility's
//! network layout), pump trips and plant trips. Pure: they take telemetry
//! snapshots (node, kind, network time, readings) and return events; the core
//! turns events into alarms.
//!
//! - **Leak.** The make-up water fed at the pressure-holding point(s) and the
//!   plants' mass balance (supply flow − return flow) are compared with their
//!   learned baselines. An excess above [`LeakConfig::min_leak_kg_s`] (or four
//!   standard deviations of the learned noise) in a plant's sample, still
//!   there in a sample of the same plant at least [`LeakConfig::confirm_ms`]
//!   later, raises `leak_suspected`. The leak is located by a survey of
//!   every plant's and substation's pressures just after the onset against
//!   their last reading before it (within [`LeakConfig::baseline_window_ms`]):
//!   each node's differential pressure (supply − return, which a district
//!   sinking as a whole leaves alone) changed beyond what the plants' heads
//!   explain (`Response`, learned by least squares over the quiet steps
//!   before), in the node's own noise; the search starts where the most
//!   pressure was lost among the nodes that stand out and walks toward the
//!   plants across the region that lost alike (a hole costs every node
//!   beyond it about as much); of the pipes meeting at the junction found,
//!   one reaching nearer the plants is named. Without enough quiet steps yet
//!   the survey works in pascals (each side's loss above the median). When
//!   the readings across the onset are not in from every node the leak is
//!   raised at once and located once they are, at most 30 min later
//!   ([`LeakEvent::Located`]).
//!   The location is withheld (the alarm is raised on `network`, with the
//!   best guess in its message) when the mark is less than
//!   [`LeakConfig::locate_margin`] times the survey's noise floor (the
//!   largest score the same survey finds across quiet steps) and the found
//!   junction and a neighbour are not marked together that many times
//!   above the floor of such pairs ([`Layout::pair_mark`]). The
//!   alarm clears when the excess falls below half the threshold on two
//!   samples `confirm_ms` apart.
//! - **Pump trip.** A plant or substation whose pump reports stopped
//!   (`pump_running` < 0.5) while it should run: a substation's always, a
//!   plant's unless the dispatch's order in force stops it (0 W of heat).
//! - **Plant trip.** A plant whose pump runs and carries water but whose heat
//!   output fell below 70 % of its usual level (the larger of its learned
//!   mean and its highest healthy reading of the last 15 min, or the
//!   dispatch's heat order in force when the collapse began if lower) with
//!   its supply more than 5 K below its setpoint (or below 85 % with the
//!   supply more than 10 K below), on two samples `confirm_ms` apart with the
//!   supply not rising between them; or whose outlet, over 10 K short of its
//!   setpoint, cools by at least 1 K per minute on two samples in a row
//!   (whatever its flow: a plant whose pump another plant's overpowers has
//!   no heat reading to judge). Cleared when its heat is back to 90 % or its
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
    /// Each plant's nameplate heat output (the asset register), W.
    plant_capacity_w: BTreeMap<NodeId, f64>,
}

impl Layout {
    /// The layout of a network file: its explicit junctions and pipes, or for
    /// a network of private pipes one junction per plant and substation and a
    /// pipe `<substation>.pipe` from each substation's plant.
    pub fn of(net: &Network) -> Self {
        let mut l = Layout {
            plant_capacity_w: net
                .plants
                .iter()
                .map(|p| (p.id.clone(), p.capacity_w))
                .collect(),
            ..Layout::default()
        };
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

    /// Each plant's nameplate heat output, W.
    pub fn plant_capacities_w(&self) -> &BTreeMap<NodeId, f64> {
        &self.plant_capacity_w
    }

    /// Per junction, the largest value of the nodes hanging there.
    fn per_junction(&self, values: &BTreeMap<NodeId, f64>) -> Vec<Option<f64>> {
        let mut at: Vec<Option<f64>> = vec![None; self.junctions.len()];
        for (node, v) in values {
            if let Some(&j) = self.node_at.get(node) {
                at[j] = Some(at[j].map_or(*v, |x: f64| x.max(*v)));
            }
        }
        at
    }

    pub fn pipe_count(&self) -> usize {
        self.pipes.len()
    }

    /// Picks the leaking section from per-node pressure deficits (positive:
    /// lost pressure). `None` if no node of the layout has a deficit.
    pub fn locate(&self, deficits: &BTreeMap<NodeId, f64>, leak_kg_s: f64) -> Option<LeakSection> {
        self.locate_fed(deficits, None, None, leak_kg_s)
    }

    /// The largest score (in `sign`: 1 for a loss of differential
    /// pressure, −1 for a gain) that two neighbouring nodes both reach: two
    /// nodes at one junction, or the most marked nodes of two junctions a
    /// pipe joins; with `at` (a junction's name), only pairs at that
    /// junction. A hole costs the nodes beyond it about alike, so it marks
    /// neighbours together, where a node's own noise marks one node (a
    /// district's swing that the plants' pressures do not explain marks its
    /// nodes together too: the null surveys' floor takes that in).
    pub fn pair_mark(
        &self,
        scores: &BTreeMap<NodeId, (f64, f64)>,
        sign: f64,
        at: Option<&str>,
    ) -> f64 {
        let only = match at {
            Some(name) => match self.junctions.iter().position(|j| j == name) {
                Some(j) => Some(j),
                None => return 0.0,
            },
            None => None,
        };
        let mut marks: Vec<Vec<f64>> = vec![Vec::new(); self.junctions.len()];
        for (n, d) in scores {
            if let Some(&j) = self.node_at.get(n) {
                marks[j].push(sign * d.0);
            }
        }
        for m in &mut marks {
            m.sort_by(|a, b| b.total_cmp(a));
        }
        let wanted = |j: usize| only.is_none_or(|o| o == j);
        let within = marks
            .iter()
            .enumerate()
            .filter(|(j, m)| wanted(*j) && m.len() >= 2)
            .map(|(_, m)| m[1]);
        let across = self
            .pipes
            .iter()
            .filter(|p| wanted(p.1) || wanted(p.2))
            .filter_map(|p| Some(marks[p.1].first()?.min(*marks[p.2].first()?)));
        within.chain(across).fold(0.0, f64::max)
    }

    /// As [`Self::locate`], knowing how near each node is to the plants
    /// along the flow on the side that lost (`levels`: its supply pressure
    /// before the leak for a supply-side loss, minus its return pressure
    /// for a return-side one; higher is nearer), and where to start: the
    /// node whose loss stood out the most (in its own noise; by default the
    /// junction that lost the most).
    ///
    /// A hole costs every node beyond it (fed through it on the supply
    /// side, sending its water through it on the return side) about as much
    /// as its own junction, sometimes more once their valves have opened,
    /// while the nodes nearer the plants lose less. So from the junction that
    /// stands out the search walks toward the plants while a neighbour
    /// lost at least 90 % of what the junction did: the junction
    /// found is the nearest-to-the-plants end of the region that lost alike.
    /// Of the pipes meeting there those reaching nearer the plants come
    /// first (the water reaching a supply-side hole comes through them).
    pub fn locate_fed(
        &self,
        deficits: &BTreeMap<NodeId, f64>,
        levels: Option<&BTreeMap<NodeId, f64>>,
        start: Option<&NodeId>,
        leak_kg_s: f64,
    ) -> Option<LeakSection> {
        let at = self.per_junction(deficits);
        let largest = at
            .iter()
            .enumerate()
            .filter_map(|(j, d)| d.map(|d| (j, d)))
            .max_by(|a, b| a.1.total_cmp(&b.1))?
            .0;
        let mut leak_j = start
            .and_then(|n| self.node_at.get(n).copied())
            .filter(|j| at[*j].is_some())
            .unwrap_or(largest);
        // A junction's nearness to the plants: its nodes' highest level.
        let level_at = levels.map(|l| self.per_junction(l)).unwrap_or_default();
        let level = |j: usize| level_at.get(j).copied().flatten();
        // Walk toward the plants across the region that lost alike (each
        // step to a nearer junction, so it ends).
        while let (Some(d), Some(l)) = (at[leak_j], level(leak_j)) {
            let next = self
                .pipes
                .iter()
                .filter_map(|p| match (p.1 == leak_j, p.2 == leak_j) {
                    (true, _) => Some(p.2),
                    (_, true) => Some(p.1),
                    _ => None,
                })
                .filter_map(|k| Some((k, at[k]?, level(k)?)))
                .filter(|(_, dk, lk)| d > 0.0 && *dk >= WALK_SHARE * d && *lk > l)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            match next {
                Some((k, _, _)) => leak_j = k,
                None => break,
            }
        }
        let deficit = at[leak_j].unwrap_or(0.0);
        let here = level(leak_j);
        // Pipes meeting at the junction, best first: those reaching nearer
        // the plants, then the one whose other end lost the most (ends
        // without a meter count as losing nothing and as nearer nothing).
        let mut incident: Vec<(usize, bool, f64)> = self
            .pipes
            .iter()
            .enumerate()
            .filter(|(_, p)| p.1 == leak_j || p.2 == leak_j)
            .map(|(i, p)| {
                let other = if p.1 == leak_j { p.2 } else { p.1 };
                let feeds = here.zip(level(other)).is_some_and(|(h, o)| o > h);
                (i, feeds, at[other].unwrap_or(f64::NEG_INFINITY))
            })
            .collect();
        incident.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.total_cmp(&a.2)).then(a.0.cmp(&b.0)));
        let &(best, _, _) = incident.first()?;
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
                .map(|(i, _, _)| self.pipes[*i].0.clone())
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
    /// A leak is located only where its pressure mark (the largest deficit)
    /// is at least this many times the survey's noise floor (the largest
    /// deficit the same survey finds between two quiet readings, median over
    /// the last few pairs before the onset); otherwise the location is
    /// withheld.
    pub locate_margin: f64,
}

impl Default for LeakConfig {
    fn default() -> Self {
        Self {
            min_leak_kg_s: 0.5,
            confirm_ms: 60_000,
            baseline_tau_ms: 3_600_000,
            baseline_window_ms: 10 * 60_000,
            locate_margin: 3.0,
        }
    }
}

/// One node's pressure sample: network time, supply and return gauge
/// pressure, Pa, and its primary flow, kg/s.
type PressureSample = (i64, Option<f64>, Option<f64>, Option<f64>);

/// A node whose own flow moved by more than this share of it (or by more
/// than twice the leak) between the survey's two readings is left out of the
/// survey: its pressures then tell of its own pump or valve (a plant's pump
/// started, stopped or overpowered), not of the leak.
const FLOW_MOVE_SHARE: f64 = 0.25;

/// The survey's search for the hole starts among the nodes that stand out at
/// least this share of the strongest mark.
const START_SHARE: f64 = 0.5;

/// Walking from the junction that lost the most toward the plants, a
/// neighbour that lost at least this share of what the junction did lost
/// alike (see [`Layout::locate_fed`]).
const WALK_SHARE: f64 = 0.9;

/// Pressure samples kept per node, at most: the quiet steps of a survey
/// (the null surveys and the response's fit) and a few more.
const MAX_PRESSURE_SAMPLES: usize = NULL_SURVEYS + FIT_PAIRS + 12;
/// Pressure samples kept per node however old, at least.
const MIN_PRESSURE_SAMPLES: usize = 2 * NULL_SURVEYS + 4;
/// Pressure samples older than this are dropped (once there are more than
/// [`MIN_PRESSURE_SAMPLES`]): a response learned over longer may no longer
/// hold (plants started or stopped, tie lines opened), ms.
const PRESSURE_HISTORY_MS: i64 = 6 * 3_600_000;
/// The least noise floor of a survey in σ.
const MIN_FLOOR_SIGMA: f64 = 2.5;

/// A survey of fewer than this share of the nodes read before the onset
/// locates nothing.
const MIN_SURVEYED_SHARE: f64 = 0.75;
/// Fewer nodes than this in a survey side have no median worth taking out.
const MIN_SURVEYED: usize = 3;
/// Quiet reading pairs whose null surveys give the noise floor, at most.
const NULL_SURVEYS: usize = 4;
/// A pending leak whose first plant has sent nothing newer is confirmed by
/// another plant's sample this many confirmation periods after the onset (up
/// to twice as many).
const SILENT_CONFIRMS: i64 = 10;

/// An exponentially weighted mean and variance over network time.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Ewma {
    mean: f64,
    var: f64,
    time_ms: Option<i64>,
}

impl Locating {
    fn complete(&self) -> bool {
        self.covered.len() as f64 >= LOCATE_COVERAGE * self.known.len() as f64
    }
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

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
enum LeakPhase {
    Quiet,
    /// Excess seen first at `onset_ms` in a sample of `plant`; the last
    /// quiet plant sample was at `before_ms`.
    Pending {
        onset_ms: i64,
        before_ms: i64,
        plant: NodeId,
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
        /// `None` when no layout (or no pressure reading) is available, or
        /// when the location is withheld.
        section: Option<LeakSection>,
        /// The location withheld: the pressures moved between quiet readings
        /// about as much as the leak moved them.
        withheld: Option<Box<Withheld>>,
        /// The location is not surveyed yet: (nodes whose readings across
        /// the onset are in, nodes read before it). A [`LeakEvent::Located`]
        /// follows.
        locating: Option<(usize, usize)>,
    },
    /// A leak raised before its pressure readings were in, located now
    /// (network time: the newer of the raise and the reading that
    /// completed the survey).
    Located {
        network_ms: i64,
        leak_kg_s: f64,
        section: Option<LeakSection>,
        withheld: Option<Box<Withheld>>,
    },
    Clear {
        network_ms: i64,
    },
}

/// A leak location not trusted: the best guess (none when too few nodes were
/// read in step with the others to survey), its pressure mark and the
/// survey's noise floor, both in `unit`.
#[derive(Clone, Debug, PartialEq)]
pub struct Withheld {
    pub guess: Option<LeakSection>,
    pub mark: f64,
    pub noise: f64,
    /// In σ: the best guess's junction and a neighbour marked together
    /// ([`Layout::pair_mark`]), and the null surveys' floor of that.
    pub pair: Option<(f64, f64)>,
    pub unit: MarkUnit,
}

/// Whether a location is trusted: its mark (the start node's score, or its
/// deficit in pascals) at least `margin` times the null surveys' floor, or,
/// in σ, its junction and a neighbour marked together at least `margin`
/// times the floor of such pairs. Either alone can carry it: a hole at a
/// leaf junction marks one node; one that feeds a district marks its
/// neighbours alike, each less clearly than a lone reading can stray. With
/// no floor (no null survey) the location stands.
fn located_trusted(single: (f64, Option<f64>), pair: Option<(f64, f64)>, margin: f64) -> bool {
    let (mark, floor) = single;
    floor.is_none_or(|n| mark >= margin * n)
        || pair.is_some_and(|(mark, floor)| mark >= margin * floor)
}

/// What a survey's deficits are measured in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkUnit {
    /// Pascals lost beyond the median of all nodes (before a pressure
    /// response could be learned).
    Pa,
    /// Pressure lost beyond what the plants' pressures explain, in each
    /// node's own noise.
    Sigma,
}

impl MarkUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            MarkUnit::Pa => "Pa",
            MarkUnit::Sigma => "σ",
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct PlantFlows {
    /// Network time of the plant's sample.
    time_ms: i64,
    makeup_kg_s: Option<f64>,
    supply_kg_s: Option<f64>,
    return_kg_s: Option<f64>,
}

/// A raised leak waiting for its pressure readings before it is located.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Locating {
    plant: NodeId,
    before_ms: i64,
    onset_ms: i64,
    /// Network time of the raise.
    raised_ms: i64,
    leak_kg_s: f64,
    /// Nodes read before the onset, and those of them read after it.
    known: std::collections::BTreeSet<NodeId>,
    covered: std::collections::BTreeSet<NodeId>,
}

/// A leak is located once this share of the nodes read before its onset
/// have been read after it too (all of them: a node left out may be the one
/// at the hole)...
const LOCATE_COVERAGE: f64 = 1.0;
/// ...or this long after its onset (network time of any node), ms. In a
/// lockstep season on the `city` the gateways' telemetry reaches the
/// optimizer up to a few steps apart: surveyed at the raise, half of the
/// nodes (and a plant, without which nothing is learned) were missing.
const LOCATE_WAIT_MS: i64 = 30 * 60_000;

/// What a [`LeakDetector`] has learned and where it stands, to be saved and
/// given to the detector of a restarted optimizer
/// ([`LeakDetector::restore`]): without it a restart at a leak's onset blinds
/// the detector, its make-up baseline learned again from the leaking water
/// and no pressure reading from before the onset to locate the hole with
/// (found on the city: the optimizer of a season resumed at the day a leak
/// began raised nothing at all).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LeakMemory {
    plants: BTreeMap<NodeId, PlantFlows>,
    makeup: Ewma,
    balance: Ewma,
    /// Per node: (time, supply Pa, return Pa, flow kg/s), oldest first.
    pressures: BTreeMap<NodeId, VecDeque<PressureSample>>,
    phase: LeakPhase,
    last_quiet_ms: Option<i64>,
    locating: Option<Locating>,
}

pub struct LeakDetector {
    cfg: LeakConfig,
    layout: Option<Layout>,
    state: LeakMemory,
}

impl LeakDetector {
    pub fn new(cfg: LeakConfig, layout: Option<Layout>) -> Self {
        Self {
            cfg,
            layout,
            state: LeakMemory {
                plants: BTreeMap::new(),
                makeup: Ewma::default(),
                balance: Ewma::default(),
                pressures: BTreeMap::new(),
                phase: LeakPhase::Quiet,
                last_quiet_ms: None,
                locating: None,
            },
        }
    }

    /// What it has learned and where it stands.
    pub fn memory(&self) -> LeakMemory {
        self.state.clone()
    }

    /// Carries on from a memory saved by an earlier detector (of the same
    /// network). Readings older than the history kept are dropped as new
    /// ones come, and a baseline after a long gap is learned again, as
    /// without a restart.
    pub fn restore(&mut self, mut m: LeakMemory) {
        for samples in m.pressures.values_mut() {
            let excess = samples.len().saturating_sub(MAX_PRESSURE_SAMPLES);
            samples.drain(..excess);
        }
        self.state = m;
    }

    /// Whether a leak is suspected now.
    pub fn raised(&self) -> bool {
        matches!(self.state.phase, LeakPhase::Raised { .. })
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
            let q = self.state.pressures.entry(node.clone()).or_default();
            if q.back().is_none_or(|b| b.0 < time_ms) {
                q.push_back((time_ms, ps, pr, get(Metric::FlowKgS)));
                let keep_from = time_ms - PRESSURE_HISTORY_MS;
                while q.len() > MAX_PRESSURE_SAMPLES
                    || (q.len() > MIN_PRESSURE_SAMPLES
                        && q.front().is_some_and(|f| f.0 < keep_from))
                {
                    q.pop_front();
                }
            }
        }
        if let Some(ev) = self.locate_pending(node, time_ms) {
            return Some(ev);
        }
        if kind != NodeKind::Plant {
            return None;
        }
        self.state.plants.insert(
            node.clone(),
            PlantFlows {
                time_ms,
                makeup_kg_s: get(Metric::MakeupFlowKgS),
                supply_kg_s: get(Metric::FlowKgS),
                return_kg_s: get(Metric::ReturnFlowKgS),
            },
        );
        self.evaluate(node, time_ms)
    }

    /// The network's make-up water and mass balance (sums over the plants
    /// that meter them), kg/s, and the oldest and newest sample time they
    /// come from.
    fn signals(&self) -> (Option<f64>, Option<f64>, i64, i64) {
        let sum = |acc: Option<f64>, x: f64| Some(acc.unwrap_or(0.0) + x);
        let (mut makeup, mut balance) = (None, None);
        let (mut oldest, mut newest) = (i64::MAX, i64::MIN);
        for p in self.state.plants.values() {
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

    /// Evaluates after a sample of `plant` taken at network time `t`.
    fn evaluate(&mut self, plant: &NodeId, t: i64) -> Option<LeakEvent> {
        let (makeup, balance, oldest, _newest) = self.signals();
        if makeup.is_none() && balance.is_none() {
            return None;
        }
        let excess_of = |e: &Ewma, x: Option<f64>| {
            x.filter(|_| e.time_ms.is_some())
                .map(|x| x - e.mean)
                .unwrap_or(0.0)
        };
        let excess =
            excess_of(&self.state.makeup, makeup).max(excess_of(&self.state.balance, balance));
        let noise = self.state.makeup.var.max(self.state.balance.var).sqrt();
        let threshold = self.cfg.min_leak_kg_s.max(4.0 * noise);
        match self.state.phase.clone() {
            LeakPhase::Quiet => {
                if excess > threshold {
                    self.state.phase = LeakPhase::Pending {
                        // Plants sample at their own instants, and their
                        // telemetry may arrive hours apart (a lockstep run
                        // whose clock outruns the delivery): the excess is
                        // known from the sample that showed it, and quiet was
                        // known up to the oldest sample of the last quiet
                        // evaluation.
                        onset_ms: t,
                        before_ms: self.state.last_quiet_ms.unwrap_or(oldest - 1).min(t - 1),
                        plant: plant.clone(),
                    };
                } else {
                    let tau = self.cfg.baseline_tau_ms;
                    if let Some(m) = makeup {
                        self.state.makeup.update(m, t, tau);
                    }
                    if let Some(b) = balance {
                        self.state.balance.update(b, t, tau);
                    }
                    self.state.last_quiet_ms = Some(oldest);
                }
                None
            }
            LeakPhase::Pending {
                onset_ms,
                before_ms,
                plant: first,
            } => {
                if excess <= threshold {
                    self.state.phase = LeakPhase::Quiet;
                    return None;
                }
                // Confirmed by a later sample of the plant that showed the
                // excess (another plant's clock may run far ahead of it), or
                // by another plant's sample taken a while after the onset, but
                // not so long after that its clock runs apart from the first
                // plant's (the first plant silent since, its gateway lost).
                let waited = t - onset_ms;
                let silent = SILENT_CONFIRMS * self.cfg.confirm_ms;
                let confirmed = (*plant == first && waited >= self.cfg.confirm_ms)
                    || (silent..=2 * silent).contains(&waited);
                if !confirmed {
                    return None;
                }
                self.state.phase = LeakPhase::Raised { below_since: None };
                // Telemetry arrives gateway by gateway: a survey needs the
                // readings across the onset of (nearly) every node.
                let locating = self.layout.as_ref().map(|_| {
                    let from = before_ms - self.cfg.baseline_window_ms;
                    let mut l = Locating {
                        plant: first.clone(),
                        before_ms,
                        onset_ms,
                        raised_ms: t,
                        leak_kg_s: excess,
                        known: Default::default(),
                        covered: Default::default(),
                    };
                    for (n, q) in &self.state.pressures {
                        if q.iter().any(|s| s.0 >= from && s.0 <= before_ms) {
                            l.known.insert(n.clone());
                            if q.back().is_some_and(|s| s.0 >= onset_ms) {
                                l.covered.insert(n.clone());
                            }
                        }
                    }
                    l
                });
                if let Some(l) = locating.filter(|l| !l.complete()) {
                    let counts = (l.covered.len(), l.known.len());
                    self.state.locating = Some(l);
                    return Some(LeakEvent::Raise {
                        network_ms: t,
                        leak_kg_s: excess,
                        section: None,
                        withheld: None,
                        locating: Some(counts),
                    });
                }
                let (section, withheld) = self.locate(&first, before_ms, onset_ms, excess);
                Some(LeakEvent::Raise {
                    network_ms: t,
                    leak_kg_s: excess,
                    section,
                    withheld,
                    locating: None,
                })
            }
            LeakPhase::Raised { below_since } => {
                if excess >= 0.5 * threshold {
                    self.state.phase = LeakPhase::Raised { below_since: None };
                    return None;
                }
                match below_since {
                    None => {
                        self.state.phase = LeakPhase::Raised {
                            below_since: Some(t),
                        };
                        None
                    }
                    Some(s) if t - s >= self.cfg.confirm_ms => {
                        self.state.phase = LeakPhase::Quiet;
                        self.state.locating = None;
                        self.state.last_quiet_ms = Some(oldest);
                        Some(LeakEvent::Clear { network_ms: t })
                    }
                    Some(_) => None,
                }
            }
        }
    }

    /// A pending location: surveyed once (nearly) every node read before the
    /// onset has been read after it, or [`LOCATE_WAIT_MS`] after the onset.
    fn locate_pending(&mut self, node: &NodeId, time_ms: i64) -> Option<LeakEvent> {
        let l = self.state.locating.as_mut()?;
        if time_ms >= l.onset_ms && l.known.contains(node) {
            l.covered.insert(node.clone());
        }
        if !l.complete() && time_ms < l.onset_ms + LOCATE_WAIT_MS {
            return None;
        }
        let l = self.state.locating.take()?;
        let (section, withheld) = self.locate(&l.plant, l.before_ms, l.onset_ms, l.leak_kg_s);
        Some(LeakEvent::Located {
            // The reading that completed the survey may be older than the
            // raise (a gateway behind the others).
            network_ms: time_ms.max(l.raised_ms),
            leak_kg_s: l.leak_kg_s,
            section,
            withheld,
        })
    }

    /// Surveys the pressures across a leak's onset and names its section,
    /// or withholds it (see [`Self::survey`]).
    fn locate(
        &self,
        first: &NodeId,
        before_ms: i64,
        onset_ms: i64,
        excess: f64,
    ) -> (Option<LeakSection>, Option<Box<Withheld>>) {
        let survey = self.survey(first, before_ms, onset_ms, excess);
        let (guess, mark, sign) = match survey.unit {
            MarkUnit::Sigma => self.locate_sigma(&survey, excess),
            MarkUnit::Pa => {
                let losses: BTreeMap<NodeId, f64> = survey
                    .deficits
                    .iter()
                    .map(|(n, d)| (n.clone(), d.1))
                    .collect();
                let g = self.layout.as_ref().and_then(|l| l.locate(&losses, excess));
                let mark = g.as_ref().map_or(0.0, |g| g.deficit_pa);
                (g, mark, 1.0)
            }
        };
        let unit = survey.unit;
        // In σ the floor is at least what a node's own noise reaches
        // routinely: with a few nodes surveyed (the ring's four substations)
        // the null surveys' largest score can be a fraction of one σ.
        let noise = survey.noise.map(|n| match unit {
            MarkUnit::Sigma => n.max(MIN_FLOOR_SIGMA),
            MarkUnit::Pa => n,
        });
        // The located junction and a neighbour marked together (in σ).
        let pair = match (unit, &guess, self.layout.as_ref(), survey.pair_noise) {
            (MarkUnit::Sigma, Some(g), Some(l), Some(floor)) => Some((
                l.pair_mark(&survey.deficits, sign, Some(&g.junction)),
                floor.max(MIN_FLOOR_SIGMA),
            )),
            _ => None,
        };
        tracing::info!(onset_ms, before_ms, deficits = ?survey.deficits, noise, mark, pair = ?pair, unit = unit.as_str(), "leak: pressure deficits per node (score, Pa)");
        let trusted = located_trusted((mark, noise), pair, self.cfg.locate_margin);
        let withhold = |guess| {
            Some(Box::new(Withheld {
                guess,
                mark,
                noise: noise.unwrap_or(0.0),
                pair,
                unit,
            }))
        };
        match guess {
            Some(g) if !trusted => (None, withhold(Some(g))),
            // A layout, but too few nodes read in step with the others
            // across the onset to survey.
            None if self.layout.is_some() && survey.deficits.is_empty() => (None, withhold(None)),
            g => (g, None),
        }
    }

    /// Locates a leak from a survey in σ: the strongest score (either sign)
    /// says which side lost water (a node that lost differential pressure:
    /// supply side; gained it: return side); the search for the hole starts
    /// at the node that lost the most pressure among those whose loss stands
    /// out at least [`START_SHARE`] as much, since the hole's junction loses
    /// the most but a node with a noisy reading can show as much by chance;
    /// then [`Layout::locate_fed`]. The mark is the start node's score: a
    /// node that lost much but stood out little (a drifting reading) is no
    /// trusted location.
    fn locate_sigma(&self, survey: &Survey, leak_kg_s: f64) -> (Option<LeakSection>, f64, f64) {
        let Some((_, strongest)) = survey
            .deficits
            .iter()
            .max_by(|a, b| a.1.0.abs().total_cmp(&b.1.0.abs()))
        else {
            return (None, 0.0, 1.0);
        };
        let (strongest, sign) = (strongest.0.abs(), strongest.0.signum());
        let Some((start, mark)) = survey
            .deficits
            .iter()
            .filter(|(_, d)| sign * d.0 >= START_SHARE * strongest)
            .max_by(|a, b| (sign * a.1.1).total_cmp(&(sign * b.1.1)))
            .map(|(n, d)| (n, sign * d.0))
        else {
            return (None, 0.0, sign);
        };
        let losses: BTreeMap<NodeId, f64> = survey
            .deficits
            .iter()
            .map(|(n, d)| (n.clone(), sign * d.1))
            .collect();
        // Nearness to the plants along the flow on the side that lost.
        let levels: BTreeMap<NodeId, f64> = survey
            .before
            .iter()
            .filter_map(|(n, b)| {
                let level = if sign > 0.0 { b[0] } else { b[1].map(|r| -r) };
                Some((n.clone(), level?))
            })
            .collect();
        let guess = self
            .layout
            .as_ref()
            .and_then(|l| l.locate_fed(&losses, Some(&levels), Some(start), leak_kg_s));
        (guess, mark, sign)
    }

    /// Each node's readings on either side of a step: its last reading at or
    /// before `before_ms` (no older than the baseline window) and its first
    /// at or after `after_ms` (and at or before `after_until_ms`), the two
    /// closest to the step, so that what the control loops moved meanwhile
    /// counts little. Left out: a node whose reading on either side is more
    /// than a quarter of the step away from the others' (their median time),
    /// read at another point of a swing than they were (on the ring a node
    /// read 50 s late across a 60 kPa swing "lost" 71 kPa; in lockstep, a
    /// whole physics step earlier).
    fn across(&self, before_ms: i64, after_ms: i64, after_until_ms: i64) -> Vec<Across<'_>> {
        let from = before_ms - self.cfg.baseline_window_ms;
        let mut read: Vec<Across<'_>> = Vec::new();
        for (node, q) in &self.state.pressures {
            let before = q.iter().rev().find(|s| s.0 <= before_ms && s.0 >= from);
            let after = q.iter().find(|s| s.0 >= after_ms && s.0 <= after_until_ms);
            if let (Some(b), Some(a)) = (before, after) {
                read.push((node, b, a));
            }
        }
        let slack = ((after_ms - before_ms) / 4).max(1);
        let median_time = |f: fn(&Across<'_>) -> i64| {
            let mut t: Vec<i64> = read.iter().map(f).collect();
            t.sort_unstable();
            t.get(t.len() / 2).copied().unwrap_or(0)
        };
        let (tb, ta) = (median_time(|r| r.1.0), median_time(|r| r.2.0));
        read.retain(|(_, b, a)| (b.0 - tb).abs() <= slack && (a.0 - ta).abs() <= slack);
        read
    }

    /// What every node's supply and return pressures lost across a step
    /// (see [`Self::across`]), raw, and what each plant's head (supply −
    /// return pressure: the regressors of [`Response`]) lost. Left out of the
    /// nodes: a node whose own flow moved (see [`FLOW_MOVE_SHARE`];
    /// `leak_kg_s` is the leak's estimate); a plant's head counts as a
    /// regressor whatever its flow did.
    fn step(
        &self,
        before_ms: i64,
        after_ms: i64,
        after_until_ms: i64,
        leak_kg_s: f64,
        plants: &[NodeId],
    ) -> Step {
        let read = self.across(before_ms, after_ms, after_until_ms);
        let lost = |b: Option<f64>, a: Option<f64>| b.zip(a).map(|(b, a)| b - a);
        let dp = |s: &PressureSample| s.1.zip(s.2).map(|(ps, pr)| ps - pr);
        let regressors = plants
            .iter()
            .map(|p| {
                read.iter()
                    .find(|r| r.0 == p)
                    .and_then(|(_, b, a)| lost(dp(b), dp(a)))
            })
            .collect();
        let nodes = read
            .iter()
            .filter(|(_, b, a)| {
                !b.3.zip(a.3).is_some_and(|(fb, fa)| {
                    (fa - fb).abs()
                        > (FLOW_MOVE_SHARE * fb.abs().max(fa.abs())).max(2.0 * leak_kg_s.abs())
                })
            })
            .map(|(n, b, a)| {
                (
                    (*n).clone(),
                    NodeStep {
                        lost: [lost(b.1, a.1), lost(b.2, a.2)],
                        before: [b.1, b.2],
                    },
                )
            })
            .collect();
        Step { regressors, nodes }
    }

    /// The pressure survey of a leak whose onset `plant` showed at
    /// `onset_ms`, after its last quiet sample at `before_ms`.
    ///
    /// Quiet steps: consecutive samples of `plant` before `before_ms`, each
    /// leaving as long as the real survey's step before `before_ms` (so that
    /// every node has its "after" reading as in the real survey, and the leak
    /// never counts as quiet). The last [`NULL_SURVEYS`] of them are the null
    /// surveys; up to [`FIT_PAIRS`] before those fit the [`Response`] of
    /// every node's differential pressure to the plants' heads. With a
    /// response the survey scores each node in its own noise (σ); without
    /// one (too few quiet steps yet) in pascals, what every node lost alike
    /// taken out.
    ///
    /// The noise floor: the largest score (either sign) the same survey finds
    /// across each null step (no water lost), median over them. Why: under
    /// the dispatch the plants' pump loops move every pressure of the
    /// network by tens of kPa from one step to the next, each district with
    /// its own plant, and each gateway reads at its own instant; a leak is
    /// located only where its mark stands well above what the survey finds
    /// where no water was lost.
    fn survey(&self, plant: &NodeId, before_ms: i64, onset_ms: i64, leak_kg_s: f64) -> Survey {
        let plants: Vec<NodeId> = self.state.plants.keys().cloned().collect();
        let gap_ms = (onset_ms - before_ms).max(0);
        let times: Vec<i64> = self
            .state
            .pressures
            .get(plant)
            .map(|q| {
                q.iter()
                    .map(|s| s.0)
                    .filter(|t| *t <= before_ms - gap_ms)
                    .collect()
            })
            .unwrap_or_default();
        let quiet: Vec<Step> = times
            .windows(2)
            .rev()
            .take(NULL_SURVEYS + FIT_PAIRS)
            .map(|w| self.step(w[0], w[1], before_ms, leak_kg_s, &plants))
            .collect();
        let (nulls, fit) = quiet.split_at(quiet.len().min(NULL_SURVEYS));
        let leak = self.step(before_ms, onset_ms, i64::MAX, leak_kg_s, &plants);
        let response = Response::fit(fit, &plants).filter(|_| leak.regressors().is_some());
        let response = response.as_ref();
        let mut floors: Vec<f64> = nulls
            .iter()
            .filter(|s| response.is_none() || s.regressors().is_some())
            .filter_map(|s| {
                // In σ either sign is a mark (a supply or a return hole); in
                // pascals only a loss is.
                score(s, response)
                    .into_values()
                    .map(|d| if response.is_some() { d.0.abs() } else { d.0 })
                    .reduce(f64::max)
                    .map(|d| d.max(0.0))
            })
            .collect();
        floors.sort_by(f64::total_cmp);
        let mut pair_floors: Vec<f64> = match (response, self.layout.as_ref()) {
            (Some(r), Some(layout)) => nulls
                .iter()
                .filter(|s| s.regressors().is_some())
                .map(|s| {
                    let z = score(s, Some(r));
                    layout
                        .pair_mark(&z, 1.0, None)
                        .max(layout.pair_mark(&z, -1.0, None))
                })
                .collect(),
            _ => Vec::new(),
        };
        pair_floors.sort_by(f64::total_cmp);
        // Too few of the nodes read before the onset read in step with the
        // others across it (on the ring at one reading a minute, under
        // swinging pumps, three of six): one node read at another point of a
        // swing would be the mark.
        let from = before_ms - self.cfg.baseline_window_ms;
        // The plants count only in pascals (in σ their heads explain them).
        let counted = |n: &NodeId| response.is_none() || !plants.contains(n);
        let known = self
            .state
            .pressures
            .iter()
            .filter(|(n, q)| counted(n) && q.iter().any(|s| s.0 >= from && s.0 <= before_ms))
            .count();
        let mut deficits = score(&leak, response);
        if (deficits.keys().filter(|n| counted(n)).count() as f64)
            < MIN_SURVEYED_SHARE * known as f64
        {
            deficits.clear();
        }
        Survey {
            deficits,
            before: leak
                .nodes
                .iter()
                .map(|(n, s)| (n.clone(), s.before))
                .collect(),
            noise: floors.get(floors.len() / 2).copied(),
            pair_noise: pair_floors.get(pair_floors.len() / 2).copied(),
            unit: if response.is_some() {
                MarkUnit::Sigma
            } else {
                MarkUnit::Pa
            },
        }
    }
}

/// A node and its pressure samples on either side of a step.
type Across<'a> = (&'a NodeId, &'a PressureSample, &'a PressureSample);

/// A node's supply and return pressure lost across a step, and before it,
/// Pa.
struct NodeStep {
    lost: [Option<f64>; 2],
    before: [Option<f64>; 2],
}

impl NodeStep {
    /// Differential pressure (supply − return) lost.
    fn dp_lost(&self) -> Option<f64> {
        self.lost[0].zip(self.lost[1]).map(|(s, r)| s - r)
    }
}

/// What every node lost across one step, raw, Pa.
struct Step {
    /// Each plant's head (supply − return pressure) lost, in the order of
    /// the plants; `None` where a plant was not read in step with the others.
    regressors: Vec<Option<f64>>,
    nodes: BTreeMap<NodeId, NodeStep>,
}

impl Step {
    /// Every plant's head lost, if every plant was read.
    fn regressors(&self) -> Option<Vec<f64>> {
        if self.regressors.is_empty() {
            return None;
        }
        self.regressors.iter().copied().collect()
    }
}

/// A survey's outcome: per node its score in `unit` (positive: it lost
/// differential pressure, as around a supply-side hole; negative: it gained,
/// as around a return-side hole) and what it lost beyond what was expected,
/// Pa; each node's supply and return pressure before the leak; the noise
/// floor in `unit`.
struct Survey {
    deficits: BTreeMap<NodeId, (f64, f64)>,
    before: BTreeMap<NodeId, [Option<f64>; 2]>,
    noise: Option<f64>,
    /// In σ: the null surveys' floor of [`Layout::pair_mark`] (either sign,
    /// anywhere), median over them.
    pair_noise: Option<f64>,
    unit: MarkUnit,
}

/// Quiet steps the pressure response is fitted on, at most.
const FIT_PAIRS: usize = 48;
/// A response is fitted from at least this many quiet steps (and three per
/// plant); before that the survey works in pascals.
const MIN_FIT_PAIRS: usize = 12;
/// Ridge weight per quiet step on the standardized regressors: keeps a
/// plant whose head barely moved from being given a large coefficient.
const RIDGE: f64 = 1e-3;
/// Least noise a node's residual is given, Pa: about a pressure
/// transmitter's resolution, so that a node that followed the plants almost
/// exactly does not turn a few pascals into many σ.
const MIN_NOISE_PA: f64 = 100.0;

/// How each node's differential pressure follows the plants' heads from one
/// step to the next: the pumps (the lead's head loop, the other plants' heat
/// loops) move each district's pressures with its own plant. Learned by
/// least squares (ridge) over quiet steps, per node, with the noise left
/// over: what a step's readings would have lost without a leak, and how far
/// each node strays from that.
///
/// Differential pressures, not supply or return pressures: a district whose
/// static pressure is held weakly (far from the pressure-holding point, its
/// tie lines shut) sinks as a whole when it loses water, supply and return
/// alike, by 100 kPa and more on the `city`; that says which district leaks,
/// not where. A hole lowers the supply pressure around it (and everywhere
/// fed through it) more than the return pressure: the differential pressure
/// falls there; a hole in the return lowers the return pressure around it
/// (and everywhere whose water passes it): the differential pressure rises.
struct Response {
    /// Each regressor's spread over the quiet steps, Pa (+1: none is zero).
    scale: Vec<f64>,
    /// Per node: coefficients on the standardized regressors and the
    /// residual's root mean square, Pa.
    fits: BTreeMap<NodeId, (Vec<f64>, f64)>,
}

impl Response {
    /// `None` with too few quiet steps with every plant read.
    /// The plants' own nodes are not fitted: their heads are the
    /// regressors, explained exactly, so their noise would be nil and any
    /// shift of the median a mark.
    fn fit(steps: &[Step], plants: &[NodeId]) -> Option<Response> {
        let rows: Vec<(Vec<f64>, &Step)> = steps
            .iter()
            .filter_map(|s| Some((s.regressors()?, s)))
            .collect();
        let k = rows.first().map_or(0, |r| r.0.len());
        let min_rows = MIN_FIT_PAIRS.max(3 * k);
        if k == 0 || rows.len() < min_rows {
            return None;
        }
        let n = rows.len() as f64;
        let scale: Vec<f64> = (0..k)
            .map(|j| {
                let mean = rows.iter().map(|r| r.0[j]).sum::<f64>() / n;
                (rows.iter().map(|r| (r.0[j] - mean).powi(2)).sum::<f64>() / n).sqrt() + 1.0
            })
            .collect();
        let z: Vec<Vec<f64>> = rows
            .iter()
            .map(|r| r.0.iter().zip(&scale).map(|(x, s)| x / s).collect())
            .collect();
        let nodes: std::collections::BTreeSet<&NodeId> =
            rows.iter().flat_map(|r| r.1.nodes.keys()).collect();
        let mut fits: BTreeMap<NodeId, (Vec<f64>, f64)> = BTreeMap::new();
        for node in nodes.into_iter().filter(|n| !plants.contains(n)) {
            let obs: Vec<(&[f64], f64)> = rows
                .iter()
                .zip(&z)
                .filter_map(|(r, z)| Some((z.as_slice(), r.1.nodes.get(node)?.dp_lost()?)))
                .collect();
            if obs.len() < min_rows {
                continue;
            }
            // Normal equations with the ridge on the diagonal.
            let mut a = vec![0.0; k * k];
            let mut b = vec![0.0; k];
            for (x, y) in &obs {
                for i in 0..k {
                    b[i] += x[i] * y;
                    for j in 0..k {
                        a[i * k + j] += x[i] * x[j];
                    }
                }
            }
            for i in 0..k {
                a[i * k + i] += RIDGE * obs.len() as f64;
            }
            if let Some(beta) = solve_spd(a, b, k) {
                fits.insert(node.clone(), (beta, MIN_NOISE_PA));
            }
        }
        // The noise left over: each quiet step's residuals, less what every
        // node shared (their median), root mean square per node. (Their
        // median size instead, robust to a few turbulent steps, lowered
        // every node's σ and raised the null surveys' floor more than the
        // marks: the week's leak fell from 3.1 to 2.4 times its floor.)
        let mut response = Response { scale, fits };
        let mut sum_sq: BTreeMap<NodeId, (f64, usize)> = BTreeMap::new();
        for (_, s) in &rows {
            let res = response.residuals(s);
            let Some(m) = median(res.values().copied()) else {
                continue;
            };
            for (node, r) in res {
                let e = sum_sq.entry(node).or_default();
                e.0 += (r - m).powi(2);
                e.1 += 1;
            }
        }
        for (node, (sq, count)) in sum_sq {
            if let Some(fit) = response.fits.get_mut(&node) {
                fit.1 = (sq / count.max(1) as f64).sqrt().max(MIN_NOISE_PA);
            }
        }
        Some(response)
    }

    /// Each fitted node's differential pressure lost beyond what the
    /// plants' heads explain, Pa (nothing without every regressor).
    fn residuals(&self, step: &Step) -> BTreeMap<NodeId, f64> {
        let Some(x) = step.regressors() else {
            return BTreeMap::new();
        };
        let z: Vec<f64> = x.iter().zip(&self.scale).map(|(x, s)| x / s).collect();
        step.nodes
            .iter()
            .filter_map(|(node, s)| {
                let (beta, _) = self.fits.get(node)?;
                let expected: f64 = beta.iter().zip(&z).map(|(b, z)| b * z).sum();
                Some((node.clone(), s.dp_lost()? - expected))
            })
            .collect()
    }
}

/// Per node: (score, Pa). With a response, the differential pressure lost
/// beyond what it expected, less what every node lost alike (the median), in
/// the node's own noise (σ; negative: gained). Without one, in pascals, the
/// larger side's loss: supply and return pressure lost, each less its median
/// over all nodes (what every node lost alike, such as a change of the lead
/// plant's head, is not local). Fewer than [`MIN_SURVEYED`] nodes (on a
/// side) give nothing.
fn score(step: &Step, response: Option<&Response>) -> BTreeMap<NodeId, (f64, f64)> {
    let centred = |lost: BTreeMap<NodeId, f64>| -> BTreeMap<NodeId, f64> {
        if lost.len() < MIN_SURVEYED {
            return BTreeMap::new();
        }
        let m = median(lost.values().copied()).unwrap_or(0.0);
        lost.into_iter().map(|(n, l)| (n, l - m)).collect()
    };
    match response {
        Some(r) => centred(r.residuals(step))
            .into_iter()
            .map(|(node, pa)| {
                let noise = r.fits.get(&node).map_or(MIN_NOISE_PA, |f| f.1);
                (node, (pa / noise, pa))
            })
            .collect(),
        None => {
            let mut out: BTreeMap<NodeId, (f64, f64)> = BTreeMap::new();
            for side in 0..2 {
                let lost = step
                    .nodes
                    .iter()
                    .filter_map(|(n, s)| Some((n.clone(), s.lost[side]?)))
                    .collect();
                for (node, pa) in centred(lost) {
                    let e = out.entry(node).or_insert((pa, pa));
                    if pa > e.0 {
                        *e = (pa, pa);
                    }
                }
            }
            out
        }
    }
}

/// The median of some values (the upper one of an even count).
fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// Solves `a x = b` for a small symmetric positive definite `a` (k × k, row
/// major) by Cholesky; `None` if `a` is not positive definite.
fn solve_spd(mut a: Vec<f64>, mut b: Vec<f64>, k: usize) -> Option<Vec<f64>> {
    for j in 0..k {
        let mut d = a[j * k + j];
        for p in 0..j {
            d -= a[j * k + p] * a[j * k + p];
        }
        if !d.is_finite() || d <= 0.0 {
            return None;
        }
        let d = d.sqrt();
        a[j * k + j] = d;
        for i in j + 1..k {
            let mut s = a[i * k + j];
            for p in 0..j {
                s -= a[i * k + p] * a[j * k + p];
            }
            a[i * k + j] = s / d;
        }
    }
    for i in 0..k {
        for p in 0..i {
            b[i] -= a[i * k + p] * b[p];
        }
        b[i] /= a[i * k + i];
    }
    for i in (0..k).rev() {
        for p in i + 1..k {
            b[i] -= a[p * k + i] * b[p];
        }
        b[i] /= a[i * k + i];
    }
    Some(b)
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

/// A collapse of a plant's output seen first at `since_ms`, with the supply
/// temperature and the level it was judged against then.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Collapse {
    since_ms: i64,
    supply_c: f64,
    usual_w: f64,
}

#[derive(Clone, Debug, Default)]
struct PlantTrack {
    heat: Ewma,
    /// Learned flow through the plant while healthy, kg/s.
    flow: Ewma,
    /// Healthy heat readings of the last [`PEAK_WINDOW_MS`]: (time, W).
    recent: VecDeque<(i64, f64)>,
    /// The collapse under way, if any.
    low: Option<Collapse>,
    /// The last supply reading: (network time, °C).
    last_supply: Option<(i64, f64)>,
    /// The last heat reading: (network time, W).
    last_heat: Option<(i64, f64)>,
    tripped: bool,
    /// Its pump was last seen stopped.
    seen_stopped: bool,
    /// When its pump was seen running again after a stop, network ms.
    restart_ms: Option<i64>,
}

/// What the optimizer's dispatch last ordered a plant (the order in force).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PlantOrder {
    /// Make this much heat (the pump speed tracks it); 0 stops the pump.
    Heat { heat_w: f64 },
    /// The lead plant: hold a pump head and take the balance.
    Head,
}

/// Learns each plant's heat output and watches the pumps.
#[derive(Default)]
pub struct TripDetector {
    plants: BTreeMap<NodeId, PlantTrack>,
    pumps_stopped: BTreeMap<NodeId, bool>,
    confirm_ms: i64,
    /// The dispatch's order in force per plant and the network time it was
    /// issued: a plant turned down on purpose has not tripped, a pump ordered
    /// off has not tripped either.
    orders: BTreeMap<NodeId, (PlantOrder, i64)>,
    /// Per plant: network time its pump was last ordered on again after an
    /// order to stop (it starts at the gateway's next scan).
    pump_on_since: BTreeMap<NodeId, i64>,
    /// Per plant: its heat orders of the last [`PEAK_WINDOW_MS`] (and the one
    /// in force before them): (network time, W), oldest first.
    heat_orders: BTreeMap<NodeId, VecDeque<(i64, f64)>>,
    /// Per plant: its nameplate heat output, where known, W.
    capacity_w: BTreeMap<NodeId, f64>,
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
/// A plant carrying less than this share of its learned flow is not
/// circulating (its pump overpowered by another plant's, its check valve
/// shut): its heat and its stagnant supply reading say nothing about its
/// heat source, so it is no plant trip.
const MIN_FLOW_SHARE: f64 = 0.1;
/// A tripped heat source's supply falls toward its return; one that rises by
/// more than this between two samples is ramping up or recovering, K.
const SUPPLY_RISING_K: f64 = 0.2;
/// Supply within this of the return: no heat put in at all (a trip that has
/// run its course, nothing left to fall), K.
const NO_LIFT_K: f64 = 2.0;
/// A plant's heat source has failed when its outlet, more than the larger
/// `COLLAPSE` shortfall below its setpoint, cools at least this fast between
/// samples, K per minute of network time, on two samples in a row. A tripped
/// heat source's outlet falls toward the return with the plant's 10 min time
/// constant: 5 K/min at first, still over 1.5 K/min after 12 min. A burner
/// holding its setpoint warms standing water (a plant whose pump another
/// plant's overpowers), and a plant short of capacity cools as fast as its
/// load grows, far slower. This needs no heat reading, which says little
/// while the dispatch's heat loop speeds the pump up as the heat falls (the
/// flow then carries the boiler's stored heat out for minutes) or while the
/// plant's flow flips between 0 and full from one scan to the next.
const COOLING_K_PER_MIN: f64 = 1.0;
/// The lead plant's heat rising by more than this share between samples
/// (more than sensor noise moves it): it is taking on flow (see `taking_on`
/// in [`TripDetector::observe`]), and a fast-cooling outlet is no trip
/// (found on the interconnected city:
/// `chp-west`, taking over `chp-east`'s district through the interconnectors
/// at 1 % of its capacity a minute, was raised tripped twice and held out of
/// the dispatch for four hours).
const HEAT_RISING_SHARE: f64 = 0.005;
/// A plant's pump ordered on again is given this long to be seen running
/// (the gateway starts it at its next scan, and the order is stamped with the
/// network's newest time, which may be ahead of the plant's): two of the
/// season runs' 300 s lockstep steps (found on the city: `boiler-south`,
/// started again after its trip hold, was raised as a pump trip from the
/// readings of the step before its gateway had the order), ms.
const PUMP_START_GRACE_MS: i64 = 10 * 60_000;
/// A plant whose pump was seen stopped and runs again (a trip cleared, the
/// dispatch starting it) is not judged by its heat this long (a fast-cooling
/// outlet still counts): a CHP plant
/// ramps at 1 % of its capacity a minute, so its heat stays far below any
/// usual level for the better part of an hour, and the first flush of cold
/// water through it cools its outlet fast (found on the city: `chp-east`,
/// its trip cleared, was raised tripped again at once and stopped by the
/// dispatch for the rest of the week), ms.
pub const RESTART_GRACE_MS: i64 = 90 * 60_000;
/// A plant started again whose outlet is still within [`NO_LIFT_K`] of its
/// return this long after, while it circulates, has not got its heat source
/// back, grace or not: a CHP plant ramping from nothing at 1 % of its
/// capacity a minute lifts its water by several kelvin by then (found on the
/// city: `chp-east`, tried again after its trip hold with its source still
/// out, pumped 1,270 kg/s of 20 °C water into the network for the whole
/// 90 min grace, then again after the next hold), ms.
pub const RESTART_LIFT_MS: i64 = 15 * 60_000;
/// A plant making at least this share of its nameplate heat is at its
/// capacity, not tripped, however fast its outlet cools: more flow than its
/// source can heat (found on the city: `boiler-south` at 224 of its 237 MW,
/// its outlet 16 K under the setpoint and falling, was raised tripped and
/// stopped for two hours). A tripped source's heat falls below this within
/// a minute or so.
pub const AT_CAPACITY_SHARE: f64 = 0.9;

impl TripDetector {
    pub fn new(confirm_ms: i64) -> Self {
        Self {
            confirm_ms,
            ..Default::default()
        }
    }

    /// The plants' nameplate heat outputs, W (see [`AT_CAPACITY_SHARE`]).
    pub fn with_capacities(mut self, capacity_w: BTreeMap<NodeId, f64>) -> Self {
        self.capacity_w = capacity_w;
        self
    }

    /// An order the dispatch sent a plant at network time `network_ms`; it
    /// stays in force until the next one. A heat order lowers the level the
    /// plant's output is judged against (the lower of its usual level and
    /// its order, taken when a collapse begins); a heat order of 0 stops its
    /// pump on purpose.
    pub fn order(&mut self, plant: &NodeId, order: PlantOrder, network_ms: i64) {
        let off = |o: Option<&(PlantOrder, i64)>| matches!(o, Some((PlantOrder::Heat { heat_w }, _)) if *heat_w <= 0.0);
        let was_off = off(self.orders.get(plant));
        self.orders.insert(plant.clone(), (order, network_ms));
        let h = self.heat_orders.entry(plant.clone()).or_default();
        match order {
            PlantOrder::Heat { heat_w } => h.push_back((network_ms, heat_w)),
            PlantOrder::Head => h.clear(),
        }
        // Keep the window, the order in force at its start, and a bound.
        while h.len() > MAX_RECENT || (h.len() > 1 && h[1].0 <= network_ms - PEAK_WINDOW_MS) {
            h.pop_front();
        }
        if was_off && !off(self.orders.get(plant)) {
            self.pump_on_since.insert(plant.clone(), network_ms);
        }
    }

    /// Whether the dispatch wants the plant's pump running at `time_ms`:
    /// not while a heat order of 0 is in force, nor within
    /// [`PUMP_START_GRACE_MS`] of an order that starts it again.
    fn plant_pump_ordered_on(&self, plant: &NodeId, time_ms: i64) -> bool {
        let off = matches!(
            self.orders.get(plant),
            Some((PlantOrder::Heat { heat_w }, _)) if *heat_w <= 0.0
        );
        let starting = self
            .pump_on_since
            .get(plant)
            .is_some_and(|t| time_ms < t + PUMP_START_GRACE_MS.max(self.confirm_ms));
        !off && !starting
    }

    /// The highest heat order in force at any time of the last
    /// [`PEAK_WINDOW_MS`] up to `time_ms`, W (none for the lead or an
    /// undispatched plant). The highest, not the latest: the dispatch starts
    /// its ramps from what a plant measures, so a tripped plant's order
    /// follows its output down within a round or two, and judging the plant
    /// against that would put the alarm off until the order stopped falling
    /// (15.7 and 20 min of network time on the ring).
    fn heat_order_w(&self, plant: &NodeId, time_ms: i64) -> Option<f64> {
        if !matches!(self.orders.get(plant), Some((PlantOrder::Heat { .. }, _))) {
            return None;
        }
        let h = self.heat_orders.get(plant)?;
        let start = time_ms - PEAK_WINDOW_MS;
        let in_force_at_start = h.iter().rev().find(|(t, _)| *t <= start);
        h.iter()
            .filter(|(t, _)| *t > start && *t <= time_ms)
            .chain(in_force_at_start)
            .map(|(_, w)| *w)
            .reduce(f64::max)
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
        let pump_should_run = pump_should_run
            && (kind != NodeKind::Plant || self.plant_pump_ordered_on(node, time_ms));
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
        let order_w = self.heat_order_w(node, time_ms);
        let holds_head = matches!(self.orders.get(node), Some((PlantOrder::Head, _)));
        let at_capacity = self
            .capacity_w
            .get(node)
            .is_some_and(|c| heat >= AT_CAPACITY_SHARE * c);
        let p = self.plants.entry(node.clone()).or_default();
        let usual = p
            .recent
            .iter()
            .filter(|(t, _)| time_ms - t <= PEAK_WINDOW_MS)
            .map(|(_, h)| *h)
            .fold(p.heat.mean, f64::max);
        // Judged against the orders in force when the collapse began (the
        // highest of the last 15 min): the dispatch answering the lost
        // output with a lower order delays nothing.
        let usual = match p.low {
            Some(c) => c.usual_w,
            None => order_w.map_or(usual, |o| usual.min(o)),
        };
        let flow = get(Metric::FlowKgS);
        let circulating = match (flow, p.flow.time_ms) {
            (Some(f), Some(_)) => f >= MIN_FLOW_SHARE * p.flow.mean,
            _ => true,
        };
        let learned = p.heat.time_ms.is_some() && usual >= MIN_LEARNED_HEAT_W;
        let last_supply = p.last_supply.replace((time_ms, supply));
        let last_heat = p.last_heat.replace((time_ms, heat));
        // The plant holding the head takes on whatever water the network
        // sends it: its heat rising while its outlet cools is its source
        // ramping behind the flow it took over (a neighbour tripped), not a
        // lost source, whose heat falls with its outlet.
        let taking_on = holds_head
            && last_heat.is_some_and(|(t, h)| t < time_ms && heat > h * (1.0 + HEAT_RISING_SHARE));
        let shortfall_k = COLLAPSE.iter().map(|(_, k)| *k).fold(0.0, f64::max);
        let cooling = !taking_on
            && supply < setpoint - shortfall_k
            && last_supply.is_some_and(|(t, s)| {
                t < time_ms && (s - supply) / ((time_ms - t) as f64 / 60_000.0) >= COOLING_K_PER_MIN
            });
        let heat_lost = circulating
            && learned
            && COLLAPSE
                .iter()
                .any(|(share, k)| heat < share * usual && supply < setpoint - k);
        match running {
            Some(false) => p.seen_stopped = true,
            Some(true) if p.seen_stopped => {
                p.seen_stopped = false;
                p.restart_ms = Some(time_ms);
            }
            _ => {}
        }
        let restarting = p.restart_ms.is_some_and(|t| time_ms - t < RESTART_GRACE_MS);
        let still_cold = restarting
            && circulating
            && p.restart_ms.is_some_and(|t| time_ms - t >= RESTART_LIFT_MS)
            && get(Metric::ReturnTempC).is_some_and(|r| supply - r < NO_LIFT_K);
        // The grace spares a restart's low heat only: an outlet cooling fast,
        // or one not lifted at all, is a trip even then.
        let collapsed = running != Some(false)
            && !at_capacity
            && ((heat_lost && !restarting) || cooling || still_cold);
        if collapsed {
            let no_lift = get(Metric::ReturnTempC).is_some_and(|r| supply - r < NO_LIFT_K);
            match p.low {
                // A supply rising again is a plant ramping up or recovering,
                // not a lost heat source: the collapse starts over from here.
                Some(c) if supply > c.supply_c + SUPPLY_RISING_K && !no_lift => {
                    p.low = Some(Collapse {
                        since_ms: time_ms,
                        supply_c: supply,
                        usual_w: c.usual_w,
                    });
                }
                Some(c) => {
                    if !p.tripped && time_ms - c.since_ms >= confirm {
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
                }
                None => {
                    p.low = Some(Collapse {
                        since_ms: time_ms,
                        supply_c: supply,
                        usual_w: usual,
                    });
                }
            }
        } else {
            p.low = None;
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
            // Learn the usual output only while the plant is healthy and
            // circulating.
            if !p.tripped && running != Some(false) && circulating {
                p.heat.update(heat, time_ms, HEAT_TAU_MS);
                if let Some(f) = flow {
                    p.flow.update(f, time_ms, HEAT_TAU_MS);
                }
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
