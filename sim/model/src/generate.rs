//! A generator of city-scale networks: "three sources, one network".
//!
//! Substations are scattered over a city whose area grows with their number;
//! a junction sits at each. The primary network is the minimum spanning tree
//! of the junctions (the trunk and branches a utility would lay) plus extra
//! pipes to near neighbours that close loops (the mesh that lets one source
//! back up another). Three plants stand at the west, east and south edges with
//! design capacities in the ratio 20 : 12 : 12 of the total load, like the
//! city in `DOMAIN.md`; cities of 160 substations and more get one plant per
//! 40 substations in all, the others inside the city, weighted like the third. Pipes are sized for about 1.5 m/s at the design flow
//! they carry along the tree from the plant that feeds them; pumps are rated
//! for the longest path. Each plant feeds a region of the tree whose design
//! load matches its share of the capacity (nearest plant by path, each plant
//! handicapped by a distance found iteratively): a plant placed beside the
//! densest districts must not own more load than it can make, or it runs out
//! of heat in the first cold wave while its neighbours idle. About 20 buildings hang on each substation (3,000–9,000 m²,
//! light to heavy construction), two in five estates have floor heating, and
//! one building in forty is a priority customer (school, hospital).
//!
//! Deterministic: the same `(substations, seed)` gives the same network.

use crate::network::{
    Building, Emitter, Junction, Network, NetworkError, Pipe, Plant, PressureHolding, PumpRating,
    Substation, Weather,
};
use crate::{NodeId, PlantKind, WATER_CP_J_KG_K};

/// Most substations a generated network may have (the largest city platform
/// in `DOMAIN.md` monitors 3,323).
pub const MAX_SUBSTATIONS: usize = 3_323;
/// Seed of the embedded `city` sample.
pub const CITY_SEED: u64 = 20_261_115;
/// Substations of the embedded `city` sample (one CHP plant's 124 in `DOMAIN.md`).
pub const CITY_SUBSTATIONS: usize = 124;

/// Standard inner diameters of pre-insulated pipes, m (DN80 … DN1400).
const DIAMETERS_M: [f64; 17] = [
    0.0825, 0.1071, 0.1325, 0.1603, 0.2101, 0.263, 0.3127, 0.3444, 0.3938, 0.4954, 0.5958, 0.695,
    0.7954, 0.894, 0.994, 1.194, 1.392,
];
const DESIGN_VELOCITY_M_S: f64 = 1.5;
const RHO: f64 = 960.0;
const PLANT_SUPPLY_C: f64 = 110.0;
const PLANT_RETURN_C: f64 = 55.0;
/// Temperature sensors' noise in generated networks, K (a class A Pt100
/// through a 16-bit input reads to about ±0.1 K).
pub const SENSOR_NOISE_K: f64 = 0.05;
/// Design capacity weights of the first three plants (further plants weigh as the third).
const PLANT_WEIGHTS: [f64; 3] = [20.0, 12.0, 12.0];
/// Share of the smaller region's design flow a tie line between two plants
/// carries at the design velocity: the share of the design load a
/// utility plans to keep through a source's outage (60-70 % is the usual
/// guaranteed share; a trip rarely falls on the design day).
pub const BACKUP_SHARE: f64 = 0.7;
/// Tie lines from each plant to its nearest other plants (three plants: a
/// ring, which survives the loss of any one tie).
const TIES_PER_PLANT: usize = 2;
/// Substations per plant beyond the first three plants.
const PLANT_EVERY: usize = 40;

/// SplitMix64: small, seeded, good enough for layouts.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

fn id(s: String) -> NodeId {
    // Generated ids are built from [a-z0-9-] only.
    NodeId::new(s).unwrap_or_else(|_| unreachable!("generated ids are valid"))
}

/// A city network of `substations` substations (1 ..= 3,323), seeded.
pub fn city(substations: usize, seed: u64) -> Result<Network, NetworkError> {
    if !(1..=MAX_SUBSTATIONS).contains(&substations) {
        return Err(NetworkError::Invalid {
            element: "generator".into(),
            problem: format!(
                "substations = {substations} is outside 1..{MAX_SUBSTATIONS}: the generator builds networks of 1 to {MAX_SUBSTATIONS} substations"
            ),
        });
    }
    let mut rng = Rng(seed);
    let n = substations;
    // About 0.5 km² per substation.
    let side_m = (n as f64 * 0.5e6).sqrt().max(1_500.0);
    let mut xy: Vec<(f64, f64)> = (0..n)
        .map(|_| (rng.range(0.0, side_m), rng.range(0.0, side_m)))
        .collect();
    // Plants at the west, east and south edges; larger cities get one more
    // plant per PLANT_EVERY substations, inside the city (a utility's
    // platform of 3,323 substations counts 385 sources).
    let n_plants = 3.max(n / PLANT_EVERY);
    xy.extend([
        (-0.08 * side_m, 0.55 * side_m),
        (1.08 * side_m, 0.45 * side_m),
        (0.5 * side_m, -0.08 * side_m),
    ]);
    for _ in 3..n_plants {
        xy.push((rng.range(0.0, side_m), rng.range(0.0, side_m)));
    }
    let weights: Vec<f64> = (0..n_plants)
        .map(|p| PLANT_WEIGHTS.get(p).copied().unwrap_or(PLANT_WEIGHTS[2]))
        .collect();
    let weight_sum: f64 = weights.iter().sum();
    let shares: Vec<f64> = weights.iter().map(|w| w / weight_sum).collect();
    let nj = xy.len();
    let dist = |a: usize, b: usize| {
        let (dx, dy) = (xy[a].0 - xy[b].0, xy[a].1 - xy[b].1);
        (dx * dx + dy * dy).sqrt().max(50.0)
    };

    // Buildings and loads.
    let mut subs = Vec::with_capacity(n);
    let mut load_w = vec![0.0; nj];
    for (i, load) in load_w.iter_mut().enumerate().take(n) {
        let floor = rng.unit() < 0.4;
        let count = 15 + (rng.next() % 11) as usize;
        let buildings: Vec<Building> = (0..count)
            .map(|b| {
                let capacity = [110_000.0, 165_000.0, 260_000.0][(rng.next() % 3) as usize];
                Building {
                    id: id(format!("c{:04}-b{:02}", i + 1, b + 1)),
                    floor_area_m2: (rng.range(3_000.0, 9_000.0) / 100.0).round() * 100.0,
                    design_heat_w: None,
                    heat_capacity_j_k_m2: capacity,
                    emitter: if floor {
                        Emitter::FloorHeating
                    } else {
                        Emitter::Radiator
                    },
                    priority: rng.unit() < 0.025,
                    exposed_flat_share: crate::network::DEFAULT_EXPOSED_FLAT_SHARE,
                    exposed_flat_offset_k: crate::network::DEFAULT_EXPOSED_FLAT_OFFSET_K,
                }
            })
            .collect();
        *load = buildings.iter().map(Building::design_heat_w).sum();
        subs.push((floor, buildings));
    }

    // Minimum spanning tree (Prim, O(n²)) plus loop-closing pipes.
    let mut in_tree = vec![false; nj];
    let mut best = vec![(f64::INFINITY, usize::MAX); nj];
    let mut edges: Vec<(usize, usize)> = Vec::with_capacity(nj + nj / 3);
    best[n] = (0.0, usize::MAX);
    for _ in 0..nj {
        let u = (0..nj)
            .filter(|&v| !in_tree[v])
            .min_by(|&a, &b| best[a].0.total_cmp(&best[b].0))
            .unwrap_or(0);
        in_tree[u] = true;
        if best[u].1 != usize::MAX {
            edges.push((best[u].1, u));
        }
        for v in 0..nj {
            if !in_tree[v] && dist(u, v) < best[v].0 {
                best[v] = (dist(u, v), u);
            }
        }
    }
    let tree_edges = edges.len();
    let mut adjacent: std::collections::HashSet<(usize, usize)> =
        edges.iter().map(|&(a, b)| (a.min(b), a.max(b))).collect();
    for u in 0..n {
        if rng.unit() >= 0.3 {
            continue;
        }
        let nearest = (0..n)
            .filter(|&v| v != u && !adjacent.contains(&(u.min(v), u.max(v))))
            .min_by(|&a, &b| dist(u, a).total_cmp(&dist(u, b)));
        if let Some(v) = nearest {
            adjacent.insert((u.min(v), u.max(v)));
            edges.push((u, v));
        }
    }

    // Which plant feeds each junction along the tree, and the design flow
    // each tree pipe carries.
    let mut tree_adj = vec![Vec::new(); nj];
    for (k, &(a, b)) in edges.iter().enumerate().take(tree_edges) {
        tree_adj[a].push((b, k));
        tree_adj[b].push((a, k));
    }
    // Each plant feeds the junctions nearest to it along the tree, but a
    // plant's region should match its intended share of the capacity
    // (20 : 12 : 12 ...): a plant handicapped by an extra distance gives
    // junctions up to its neighbours. Whole subtrees change hands at once, so
    // the shares are met only roughly; the best assignment found is kept and
    // each plant is then built for the region it actually feeds.
    let total_load_w: f64 = load_w.iter().sum();
    let share_gap = |regions: &Regions| {
        let owned = owned_load(&regions.owner, &load_w, n_plants);
        (0..n_plants)
            .map(|p| owned[p] / total_load_w.max(1.0) - shares[p])
            .collect::<Vec<_>>()
    };
    let worst = |gap: &[f64]| gap.iter().map(|g| g.abs()).fold(0.0, f64::max);
    let mut handicap_m = vec![0.0; n_plants];
    let mut regions = assign_regions(&tree_adj, &handicap_m, n, n_plants, &dist);
    let mut gap = share_gap(&regions);
    let mut best = (worst(&gap), handicap_m.clone());
    for round in 0..REGION_ROUNDS {
        if best.0 <= REGION_TOLERANCE {
            break;
        }
        let step_m = side_m * 0.5 / (1.0 + round as f64 * 0.1);
        for (h, g) in handicap_m.iter_mut().zip(&gap) {
            *h = (*h + step_m * g).max(0.0);
        }
        let least = handicap_m.iter().copied().fold(f64::INFINITY, f64::min);
        handicap_m.iter_mut().for_each(|h| *h -= least);
        regions = assign_regions(&tree_adj, &handicap_m, n, n_plants, &dist);
        gap = share_gap(&regions);
        if worst(&gap) < best.0 {
            best = (worst(&gap), handicap_m.clone());
        }
    }
    let regions = assign_regions(&tree_adj, &best.1, n, n_plants, &dist);
    // Each plant's share of the design load it feeds.
    let region_share: Vec<f64> = owned_load(&regions.owner, &load_w, n_plants)
        .iter()
        .map(|q| q / total_load_w.max(1.0))
        .collect();
    let Regions {
        owner,
        parent_edge,
        order,
    } = regions;
    let design_flow = |heat_w: f64| heat_w / (WATER_CP_J_KG_K * (PLANT_SUPPLY_C - PLANT_RETURN_C));
    let mut carried = load_w.iter().map(|&q| design_flow(q)).collect::<Vec<_>>();
    let mut edge_flow = vec![0.0; edges.len()];
    for &u in order.iter().rev() {
        let k = parent_edge[u];
        if k == usize::MAX {
            continue;
        }
        edge_flow[k] += carried[u];
        let (a, b) = edges[k];
        let up = if a == u { b } else { a };
        carried[up] += carried[u];
    }
    let size = |flow_kg_s: f64| {
        let d = (4.0 * flow_kg_s / (RHO * std::f64::consts::PI * DESIGN_VELOCITY_M_S)).sqrt();
        DIAMETERS_M
            .iter()
            .copied()
            .find(|&dn| dn >= d)
            .unwrap_or(DIAMETERS_M[DIAMETERS_M.len() - 1])
    };
    let mut diameters: Vec<f64> = edges
        .iter()
        .enumerate()
        .map(|(k, &(a, b))| {
            if k < tree_edges {
                size(edge_flow[k])
            } else {
                // A loop pipe: like the smaller branch it joins.
                let branch = |u: usize| {
                    tree_adj[u]
                        .iter()
                        .map(|&(_, e)| size(edge_flow[e]))
                        .fold(f64::INFINITY, f64::min)
                };
                branch(a).min(branch(b)).min(DIAMETERS_M[6])
            }
        })
        .collect();

    // Tie lines ("three sources, one network": the sources back each other
    // up, `DOMAIN.md`): each plant's junction is joined to its nearest other
    // plants' by a trunk sized for BACKUP_SHARE of the smaller of the two
    // regions' design flows, so that its neighbours can feed a district
    // through its plant's trip. The tree alone joins regions through leaf
    // pipes of DN80 to DN300 that carry almost nothing (found on the city:
    // with `chp-east` out and its pump stopped, its 38 substations had 0-1 kPa
    // and 5 % of their design flow while the other plants' pumps ran at
    // 1.7 MPa). A tie stays closed while both its plants run: left open, it
    // put the plants' pumps in parallel with nothing between them, and
    // whichever pushed a little harder took all the flow, the others' check
    // valves shut, from one 300 s step to the next. Appended after the other
    // pipes: their ids do not move.
    let ties_from = edges.len();
    let region_flow = |p: usize| design_flow(region_share[p] * total_load_w);
    for p in 0..n_plants {
        let mut others: Vec<usize> = (0..n_plants).filter(|&q| q != p).collect();
        others.sort_by(|&a, &b| dist(n + p, n + a).total_cmp(&dist(n + p, n + b)));
        for &q in others.iter().take(TIES_PER_PLANT) {
            let key = (n + p.min(q), n + p.max(q));
            let d = size(BACKUP_SHARE * region_flow(p).min(region_flow(q)));
            if !edges[ties_from..]
                .iter()
                .any(|&(a, b)| (a.min(b), a.max(b)) == key)
            {
                edges.push(key);
                diameters.push(d);
            }
        }
    }

    // Pumps: head for the longest path at design flow (λ ≈ 0.02, both pipes)
    // plus 2.5 bar for the farthest substation (the mesh and part loads move flows).
    let mut drop_pa = vec![0.0; nj];
    for &u in &order {
        let k = parent_edge[u];
        if k == usize::MAX {
            continue;
        }
        let (a, b) = edges[k];
        let up = if a == u { b } else { a };
        let d = diameters[k];
        let v = edge_flow[k] / (RHO * std::f64::consts::PI * d * d / 4.0);
        drop_pa[u] = drop_pa[up] + 2.0 * 0.02 * dist(a, b) / d * RHO * v * v / 2.0;
    }
    let worst_pa = drop_pa.iter().copied().fold(0.0, f64::max);
    // Capped where pumps stop being plausible (very long paths mean the
    // layout needs more plants; `docs/network-format.md`).
    let head_m = ((worst_pa + 2.5e5) / (RHO * 9.81)).clamp(30.0, 160.0);
    let total_w: f64 = load_w.iter().sum();

    let junction_id = |j: usize| {
        if j < n {
            id(format!("j{:04}", j + 1))
        } else {
            id(format!("j-plant-{}", j - n + 1))
        }
    };
    // One big CHP plant, a second CHP plant, and a gas boiler house for the
    // peaks and as backup ("three sources, one network").
    let plant_names = ["chp-west", "chp-east", "boiler-south"];
    let plant_kinds = [PlantKind::Chp, PlantKind::Chp, PlantKind::GasBoiler];
    let plants: Vec<Plant> = (0..n_plants)
        .map(|p| {
            // 30 % above the region's design load; at least 1 MW.
            let capacity_w = (region_share[p] * total_w * 1.3 / 1.0e6).ceil().max(1.0) * 1.0e6;
            let flow_m3_h = (design_flow(region_share[p] * total_w) / RHO * 3600.0).max(1.0);
            let kind = plant_kinds.get(p).copied().unwrap_or(PlantKind::GasBoiler);
            Plant {
                kind,
                min_load_w: kind.typical_min_load_share() * capacity_w,
                ramp_w_per_s: Some(kind.typical_ramp_share_per_min() * capacity_w / 60.0),
                id: id(plant_names
                    .get(p)
                    .map_or_else(|| format!("plant-{:03}", p + 1), |n| n.to_string())),
                capacity_w,
                design_supply_temp_c: PLANT_SUPPLY_C,
                design_return_temp_c: PLANT_RETURN_C,
                pump_dp_pa: 1.0e5,
                heat_price_yuan_per_gj: match kind {
                    // The second CHP plant sells at a higher negotiated price.
                    PlantKind::Chp if p > 0 => 26.0,
                    _ => kind.typical_price_yuan_per_gj(),
                },
                junction: Some(junction_id(n + p)),
                x_m: None,
                y_m: None,
                pump: Some(PumpRating {
                    shutoff_head_m: (head_m * 1.25).ceil(),
                    rated_flow_m3_h: flow_m3_h.ceil(),
                    rated_head_m: head_m.ceil(),
                }),
                solar: None,
            }
        })
        .collect();
    let substations = subs
        .into_iter()
        .enumerate()
        .map(|(i, (floor, buildings))| {
            let p = owner[i].min(n_plants - 1);
            Substation {
                id: id(format!("c{:04}", i + 1)),
                plant: plants[p].id.clone(),
                group: if floor { "floor" } else { "radiator" }.to_string(),
                junction: Some(junction_id(i)),
                x_m: None,
                y_m: None,
                pipe_length_m: None,
                pipe_inner_diameter_m: None,
                pipe_loss_w_m_k: 0.37,
                ground_temp_c: 5.0,
                secondary_design_supply_temp_c: if floor { 45.0 } else { 75.0 },
                secondary_design_return_temp_c: if floor { 35.0 } else { 50.0 },
                valve_kv_m3_h: None,
                buildings,
            }
        })
        .collect();
    let junctions = (0..nj)
        .map(|j| Junction {
            id: junction_id(j),
            x_m: xy[j].0.round(),
            y_m: xy[j].1.round(),
        })
        .collect();
    let pipes = edges
        .iter()
        .enumerate()
        .map(|(k, &(a, b))| Pipe {
            id: id(format!("p{:04}", k + 1)),
            from: junction_id(a),
            to: junction_id(b),
            length_m: (dist(a, b) * 1.2).round(),
            inner_diameter_m: diameters[k],
            roughness_m: 5.0e-5,
            loss_w_m_k: 0.3 + 0.4 * diameters[k],
            ground_temp_c: 5.0,
            tie: k >= ties_from,
        })
        .collect();
    let net = Network {
        name: if substations_is_city(n, seed) {
            "city".to_string()
        } else {
            format!("city-{n}-{seed}")
        },
        start_time_ms: 1_794_672_000_000, // 2026-11-15T00:00+08:00, the season's start
        outdoor_design_temp_c: -9.0,
        weather: Weather::tianjin(seed),
        initial_room_temp_c: 18.0,
        sensor_noise_k: SENSOR_NOISE_K,
        plants,
        substations,
        junctions,
        pipes,
        pressure_holding: Some(PressureHolding {
            junction: junction_id(n),
            pressure_pa: 3.0e5,
            makeup_capacity_kg_s: (0.01 * design_flow(total_w)).max(5.0),
            vessel_gas_m3: 50.0,
            low_pressure_trip_pa: 1.0e5,
        }),
    };
    net.validate()?;
    Ok(net)
}

/// Rounds of handicap adjustment when matching plant regions to capacities.
const REGION_ROUNDS: usize = 200;
/// Gap between a plant's region load share and its intended capacity share
/// at which the search stops.
const REGION_TOLERANCE: f64 = 0.02;

/// Which plant feeds each junction along the tree, the tree edge toward it,
/// and the junctions in order of distance from their plant.
struct Regions {
    owner: Vec<usize>,
    parent_edge: Vec<usize>,
    order: Vec<usize>,
}

/// Nearest plant along the tree, each plant starting `handicap_m[p]` behind.
fn assign_regions(
    tree_adj: &[Vec<(usize, usize)>],
    handicap_m: &[f64],
    n: usize,
    n_plants: usize,
    dist: &dyn Fn(usize, usize) -> f64,
) -> Regions {
    let nj = tree_adj.len();
    let mut path_m = vec![f64::INFINITY; nj];
    let mut owner = vec![usize::MAX; nj];
    let mut parent_edge = vec![usize::MAX; nj];
    let mut heap = std::collections::BinaryHeap::new();
    for p in 0..n_plants {
        path_m[n + p] = handicap_m[p];
        owner[n + p] = p;
        heap.push((std::cmp::Reverse((handicap_m[p] * 1000.0) as u64), n + p));
    }
    let mut order = Vec::with_capacity(nj);
    let mut done = vec![false; nj];
    while let Some((std::cmp::Reverse(_), u)) = heap.pop() {
        if done[u] {
            continue;
        }
        done[u] = true;
        order.push(u);
        for &(v, k) in &tree_adj[u] {
            // A plant junction always belongs to its own plant.
            if v >= n {
                continue;
            }
            let d = path_m[u] + dist(u, v);
            if d < path_m[v] {
                path_m[v] = d;
                owner[v] = owner[u];
                parent_edge[v] = k;
                heap.push((std::cmp::Reverse((d * 1000.0) as u64), v));
            }
        }
    }
    Regions {
        owner,
        parent_edge,
        order,
    }
}

/// Design load in each plant's region, W.
fn owned_load(owner: &[usize], load_w: &[f64], n_plants: usize) -> Vec<f64> {
    let mut owned = vec![0.0; n_plants];
    for (j, &q) in load_w.iter().enumerate() {
        if let Some(o) = owned.get_mut(owner[j]) {
            *o += q;
        }
    }
    owned
}

fn substations_is_city(n: usize, seed: u64) -> bool {
    n == CITY_SUBSTATIONS && seed == CITY_SEED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_city_has_three_plants_a_meshed_network_and_about_2500_buildings() {
        let net = Network::sample("city").unwrap();
        assert_eq!(net.name, "city");
        assert_eq!(net.plants.len(), 3);
        assert_eq!(net.substations.len(), 124);
        let buildings: usize = net.substations.iter().map(|s| s.buildings.len()).sum();
        assert!((2_200..=2_800).contains(&buildings), "{buildings}");
        // Meshed: more pipes than a tree needs.
        assert!(net.pipes.len() > net.junctions.len() - 1 + 20);
        let caps: Vec<f64> = net.plants.iter().map(|p| p.capacity_w).collect();
        // Roughly 20 : 12 : 12 (each plant is built for the region it feeds).
        let total: f64 = caps.iter().sum();
        for (cap, weight) in caps.iter().zip([20.0, 12.0, 12.0]) {
            assert!((cap / total - weight / 44.0).abs() < 0.03, "{caps:?}");
        }
        assert!(net.substations.iter().any(|s| s.group == "floor"));
        assert!(
            net.substations
                .iter()
                .flat_map(|s| &s.buildings)
                .any(|b| b.priority)
        );
        // Deterministic.
        assert_eq!(net, city(CITY_SUBSTATIONS, CITY_SEED).unwrap());
        // Round trip through the file format.
        assert_eq!(Network::from_toml(&net.to_toml()).unwrap(), net);
    }

    #[test]
    fn each_plant_feeds_a_region_as_large_as_its_capacity() {
        for (n, seed) in [(CITY_SUBSTATIONS, CITY_SEED), (300, 7), (60, 11)] {
            let net = city(n, seed).unwrap();
            let total_w: f64 = net.substations.iter().map(Substation::design_heat_w).sum();
            let capacity_w: f64 = net.plants.iter().map(|p| p.capacity_w).sum();
            for plant in &net.plants {
                let region_w: f64 = net
                    .substations
                    .iter()
                    .filter(|s| s.plant == plant.id)
                    .map(Substation::design_heat_w)
                    .sum();
                let (region, share) = (region_w / total_w, plant.capacity_w / capacity_w);
                // Capacities are rounded up to whole MW.
                assert!(
                    (region - share).abs() <= 0.01,
                    "{n} substations, seed {seed}: {} feeds {:.3} of the load with {:.3} of the capacity",
                    plant.id,
                    region,
                    share
                );
            }
        }
    }

    #[test]
    fn sizes_range_from_one_to_the_largest_platform_and_no_further() {
        for n in [1, 2, 50, 500] {
            let net = city(n, 7).unwrap();
            assert_eq!(net.substations.len(), n);
            assert_eq!(net.plants.len(), 3.max(n / 40));
        }
        let err = city(0, 7).unwrap_err().to_string();
        assert!(err.contains("outside 1..3323"), "{err}");
        let err = city(3_324, 7).unwrap_err().to_string();
        assert!(err.contains("outside 1..3323"), "{err}");
    }
}
