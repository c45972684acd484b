//! Transport delays of the primary network: how long water takes from a plant
//! to a substation. Pure: no IO.
//!
//! The layout (pipe volumes, which junction each plant and substation sits
//! on) comes from the network description the optimizer is given; the flows
//! come from telemetry (each substation's measured primary flow). Water is
//! taken to travel from each plant along the path of least water volume (a
//! shortest-path tree per plant, Dijkstra on pipe volumes); each substation is
//! served by its own district's plant (the `plant` of the network
//! description: the asset register's word on which plant feeds it) while that
//! plant is available, otherwise by the available plant it is nearest to in
//! volume, and a pipe carries the flows of all the substations downstream of
//! it in that plant's tree. The
//! delay of a substation is then the sum over its path of volume·ρ / flow.
//! Without explicit topology each substation's own pipe is its path.
//!
//! The planner uses a plant's delay (the flow-weighted mean over the
//! substations it serves) to set its supply temperature for time t from the
//! demand forecast at t + delay.

use std::collections::{BTreeMap, BinaryHeap, HashMap};

use model::{Network, NodeId};

/// Density of primary water, kg/m³.
const RHO_KG_M3: f64 = 960.0;
/// Flow below which a substation counts as taking no water, kg/s.
const MIN_FLOW_KG_S: f64 = 0.01;
/// Longest delay reported, s (stagnant water: a day).
pub const MAX_DELAY_S: f64 = 86_400.0;

/// The parts of a network that water travels through.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// Pipes as (junction a, junction b, water volume m³), junctions by index.
    pipes: Vec<(usize, usize, f64)>,
    n_junctions: usize,
    plants: Vec<(NodeId, usize)>,
    substations: Vec<Site>,
}

/// A substation as the layout sees it.
#[derive(Clone, Debug, PartialEq)]
struct Site {
    id: NodeId,
    junction: usize,
    /// The plant whose district it belongs to, by the network description.
    district: Option<NodeId>,
}

/// One substation's delay from the plant that serves it.
#[derive(Clone, Debug, PartialEq)]
pub struct SubstationDelay {
    pub plant: NodeId,
    pub delay_s: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Delays {
    pub substations: BTreeMap<NodeId, SubstationDelay>,
    /// Per plant: the flow-weighted mean delay to the substations it serves, s.
    pub plants: BTreeMap<NodeId, f64>,
}

/// A plant's shortest-path tree: its id, each junction's distance (m³) and
/// the (junction, pipe) it is reached through.
type Tree = (NodeId, Vec<f64>, Vec<Option<(usize, usize)>>);

#[derive(PartialEq)]
struct Entry(f64, usize);
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Min-heap on the distance.
        o.0.total_cmp(&self.0).then(o.1.cmp(&self.1))
    }
}

fn area(d_m: f64) -> f64 {
    std::f64::consts::PI / 4.0 * d_m * d_m
}

impl Layout {
    /// The layout of a (validated) network description.
    pub fn of(net: &Network) -> Self {
        if net.pipes.is_empty() {
            // Private pipes: junction 0 stands for every plant, substation k
            // sits on junction k+1 at the end of its own pipe.
            let mut pipes = Vec::new();
            let mut substations = Vec::new();
            let plant_index: HashMap<&NodeId, usize> = net
                .plants
                .iter()
                .enumerate()
                .map(|(k, p)| (&p.id, k))
                .collect();
            let np = net.plants.len();
            for (k, s) in net.substations.iter().enumerate() {
                let j = np + k;
                let from = plant_index.get(&s.plant).copied().unwrap_or(0);
                let vol =
                    area(s.pipe_inner_diameter_m.unwrap_or(0.1)) * s.pipe_length_m.unwrap_or(0.0);
                pipes.push((from, j, vol));
                substations.push(Site {
                    id: s.id.clone(),
                    junction: j,
                    district: Some(s.plant.clone()),
                });
            }
            return Self {
                pipes,
                n_junctions: np + net.substations.len(),
                plants: net
                    .plants
                    .iter()
                    .enumerate()
                    .map(|(k, p)| (p.id.clone(), k))
                    .collect(),
                substations,
            };
        }
        let index: HashMap<&NodeId, usize> = net
            .junctions
            .iter()
            .enumerate()
            .map(|(k, j)| (&j.id, k))
            .collect();
        let at = |id: &Option<NodeId>| id.as_ref().and_then(|j| index.get(j).copied());
        Self {
            pipes: net
                .pipes
                .iter()
                .filter_map(|p| {
                    Some((
                        *index.get(&p.from)?,
                        *index.get(&p.to)?,
                        area(p.inner_diameter_m) * p.length_m,
                    ))
                })
                .collect(),
            n_junctions: net.junctions.len(),
            plants: net
                .plants
                .iter()
                .filter_map(|p| Some((p.id.clone(), at(&p.junction)?)))
                .collect(),
            substations: net
                .substations
                .iter()
                .filter_map(|s| {
                    Some(Site {
                        id: s.id.clone(),
                        junction: at(&s.junction)?,
                        district: Some(s.plant.clone()),
                    })
                })
                .collect(),
        }
    }

    /// Delays at the given measured primary flows (kg/s per substation; a
    /// substation without a reading takes no water), with the `unavailable`
    /// plants (tripped, standing by) feeding nobody.
    ///
    /// A substation is its own district's plant's while that plant is
    /// available: nearness in volume alone is no guide in a meshed network
    /// (found on the city: 30 of the boiler's 32 substations and 37 of
    /// `chp-west`'s 54 lay nearer in volume to `chp-east`, so the boiler's
    /// floor loop saw 2 substations with pressure to spare and let its
    /// dispatch fall from 217 to 71 MW in a cold spell while its district
    /// sat at 30–100 kPa with every valve wide open and rooms fell to
    /// 15.6 °C).
    pub fn delays(&self, flows_kg_s: &BTreeMap<NodeId, f64>, unavailable: &[NodeId]) -> Delays {
        let nj = self.n_junctions;
        let mut adj: Vec<Vec<(usize, usize)>> = vec![Vec::new(); nj];
        for (k, &(a, b, _)) in self.pipes.iter().enumerate() {
            if a < nj && b < nj {
                adj[a].push((b, k));
                adj[b].push((a, k));
            }
        }
        // A shortest-path tree (by volume) from each available plant.
        let trees: Vec<Tree> = self
            .plants
            .iter()
            .filter(|(id, _)| !unavailable.contains(id))
            .map(|(id, src)| {
                let mut dist = vec![f64::INFINITY; nj];
                let mut via = vec![None; nj];
                let mut heap = BinaryHeap::new();
                if *src < nj {
                    dist[*src] = 0.0;
                    heap.push(Entry(0.0, *src));
                }
                while let Some(Entry(d, u)) = heap.pop() {
                    if d > dist[u] {
                        continue;
                    }
                    for &(v, k) in &adj[u] {
                        let nd = d + self.pipes[k].2;
                        if nd < dist[v] {
                            dist[v] = nd;
                            via[v] = Some((u, k));
                            heap.push(Entry(nd, v));
                        }
                    }
                }
                (id.clone(), dist, via)
            })
            .collect();
        // Each substation to its nearest plant; its flow down that tree.
        let mut served: Vec<(NodeId, usize, usize, f64)> = Vec::new();
        let mut pipe_flow: HashMap<(usize, usize), f64> = HashMap::new();
        for site in &self.substations {
            let j = &site.junction;
            let reaches = |tr: &Tree| tr.1.get(*j).is_some_and(|d| d.is_finite());
            let own = trees
                .iter()
                .position(|tr| site.district.as_ref() == Some(&tr.0) && reaches(tr));
            let nearest = || {
                trees
                    .iter()
                    .enumerate()
                    .filter(|(_, tr)| reaches(tr))
                    .min_by(|a, b| a.1.1[*j].total_cmp(&b.1.1[*j]))
                    .map(|(t, _)| t)
            };
            let Some(t) = own.or_else(nearest) else {
                continue;
            };
            let sid = &site.id;
            let m = flows_kg_s.get(sid).copied().unwrap_or(0.0).max(0.0);
            let mut v = *j;
            while let Some((u, k)) = trees[t].2[v] {
                *pipe_flow.entry((t, k)).or_default() += m;
                v = u;
            }
            served.push((sid.clone(), *j, t, m));
        }
        let mut out = Delays::default();
        let mut weighted: BTreeMap<NodeId, (f64, f64)> = BTreeMap::new();
        for (sid, j, t, m) in served {
            let mut delay = 0.0;
            let mut v = j;
            while let Some((u, k)) = trees[t].2[v] {
                let f = pipe_flow.get(&(t, k)).copied().unwrap_or(0.0);
                delay += if f > MIN_FLOW_KG_S {
                    self.pipes[k].2 * RHO_KG_M3 / f
                } else {
                    MAX_DELAY_S
                };
                v = u;
            }
            let delay = delay.min(MAX_DELAY_S);
            let plant = trees[t].0.clone();
            let e = weighted.entry(plant.clone()).or_default();
            e.0 += m * delay;
            e.1 += m;
            out.substations.insert(
                sid,
                SubstationDelay {
                    plant,
                    delay_s: delay,
                },
            );
        }
        for (plant, (md, m)) in weighted {
            if m > MIN_FLOW_KG_S {
                out.plants.insert(plant, md / m);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn site(s: &str, junction: usize, district: Option<&str>) -> Site {
        Site {
            id: id(s),
            junction,
            district: district.map(id),
        }
    }

    #[test]
    fn private_pipes_give_volume_over_flow() {
        let net = Network::sample("demo").unwrap();
        let layout = Layout::of(&net);
        let s = &net.substations[0];
        let vol = area(s.pipe_inner_diameter_m.unwrap()) * s.pipe_length_m.unwrap();
        let flows = BTreeMap::from([(s.id.clone(), 20.0)]);
        let d = layout.delays(&flows, &[]);
        let got = d.substations[&s.id].delay_s;
        // V·ρ/ṁ by hand.
        assert!((got - vol * 960.0 / 20.0).abs() < 1e-9, "{got}");
        assert_eq!(d.substations[&s.id].plant, net.plants[0].id);
        // Only s01 flows: the plant's weighted delay is s01's.
        assert!((d.plants[&net.plants[0].id] - got).abs() < 1e-9);
        // A substation without flow: stagnant water, the longest delay.
        assert_eq!(d.substations[&net.substations[1].id].delay_s, MAX_DELAY_S);
    }

    #[test]
    fn a_trunk_carries_the_flows_of_everything_downstream() {
        // Plant P on j0; trunk j0–j1 (1 m³); branches j1–j2 (0.5 m³) to A and
        // j1–j3 (0.2 m³) to B. A takes 10 kg/s, B 30 kg/s.
        let layout = Layout {
            pipes: vec![(0, 1, 1.0), (1, 2, 0.5), (1, 3, 0.2)],
            n_junctions: 4,
            plants: vec![(id("p"), 0)],
            substations: vec![site("a", 2, None), site("b", 3, None)],
        };
        let flows = BTreeMap::from([(id("a"), 10.0), (id("b"), 30.0)]);
        let d = layout.delays(&flows, &[]);
        // Trunk: 960 kg / 40 kg/s = 24 s. A: + 480/10 = 48 s. B: + 192/30 = 6.4 s.
        assert!((d.substations[&id("a")].delay_s - 72.0).abs() < 1e-9);
        assert!((d.substations[&id("b")].delay_s - 30.4).abs() < 1e-9);
        // Flow-weighted: (10·72 + 30·30.4)/40 = 40.8 s.
        assert!((d.plants[&id("p")] - 40.8).abs() < 1e-9);
    }

    #[test]
    fn each_substation_is_served_by_its_nearest_available_plant() {
        // p on j0, q on j2, a on j1 nearer to p (0.1 m³) than to q (0.3 m³).
        let layout = Layout {
            pipes: vec![(0, 1, 0.1), (1, 2, 0.3)],
            n_junctions: 3,
            plants: vec![(id("p"), 0), (id("q"), 2)],
            substations: vec![site("a", 1, None)],
        };
        let flows = BTreeMap::from([(id("a"), 9.6)]);
        let d = layout.delays(&flows, &[]);
        assert_eq!(d.substations[&id("a")].plant, id("p"));
        assert!((d.substations[&id("a")].delay_s - 10.0).abs() < 1e-9);
        // p tripped: q serves a through 0.3 m³: 30 s.
        let d = layout.delays(&flows, &[id("p")]);
        assert_eq!(d.substations[&id("a")].plant, id("q"));
        assert!((d.substations[&id("a")].delay_s - 30.0).abs() < 1e-9);
        // The ring sample lays out without losing anyone.
        let ring = Network::sample("ring").unwrap();
        let l = Layout::of(&ring);
        assert_eq!(l.substations.len(), ring.substations.len());
        assert_eq!(l.plants.len(), ring.plants.len());
    }

    #[test]
    fn a_substation_is_its_districts_plants_while_that_plant_runs() {
        // p on j0, q on j2; a on j1 nearer to p (0.1 m³) but of q's district.
        let layout = Layout {
            pipes: vec![(0, 1, 0.1), (1, 2, 0.3)],
            n_junctions: 3,
            plants: vec![(id("p"), 0), (id("q"), 2)],
            substations: vec![site("a", 1, Some("q"))],
        };
        let flows = BTreeMap::from([(id("a"), 9.6)]);
        let d = layout.delays(&flows, &[]);
        assert_eq!(d.substations[&id("a")].plant, id("q"));
        // Through q's 0.3 m³: 288 kg / 9.6 kg/s = 30 s.
        assert!((d.substations[&id("a")].delay_s - 30.0).abs() < 1e-9);
        // q out (tripped or standing by): the nearest available plant.
        let d = layout.delays(&flows, &[id("q")]);
        assert_eq!(d.substations[&id("a")].plant, id("p"));
        assert!((d.substations[&id("a")].delay_s - 10.0).abs() < 1e-9);
    }

    #[test]
    fn the_citys_substations_are_served_by_their_own_districts_plants() {
        let city = Network::sample("city").unwrap();
        let d = Layout::of(&city).delays(&BTreeMap::new(), &[]);
        assert_eq!(d.substations.len(), city.substations.len());
        for s in &city.substations {
            assert_eq!(d.substations[&s.id].plant, s.plant, "{}", s.id);
        }
    }
}
