//! Where to draw each plant, substation and pipe of a network (pure).
//!
//! Junction networks are drawn at their junctions' coordinates. Elsewhere a
//! plant or substation with `x_m`/`y_m` is drawn there; the others are laid
//! out: plants on a small circle around the origin, each plant's substations
//! on a circle around it, at a radius growing with their pipe length.

use std::collections::BTreeMap;

use model::Network;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Site {
    pub id: String,
    /// `plant` or `substation`.
    pub kind: &'static str,
    pub x_m: f64,
    pub y_m: f64,
    /// Substations: their plant; plants: none.
    pub plant: Option<String>,
    pub group: Option<String>,
    /// Plants: price of their heat, yuan/GJ.
    pub heat_price_yuan_per_gj: Option<f64>,
    pub capacity_w: Option<f64>,
    /// Substations: their buildings.
    pub buildings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Line {
    pub id: String,
    pub from: (f64, f64),
    pub to: (f64, f64),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Layout {
    pub network: String,
    pub sites: Vec<Site>,
    pub lines: Vec<Line>,
}

/// Default radius of a substation around its plant when its pipe length is unknown, m.
const DEFAULT_RADIUS_M: f64 = 1000.0;

pub fn layout(net: &Network) -> Layout {
    let junctions: BTreeMap<&str, (f64, f64)> = net
        .junctions
        .iter()
        .map(|j| (j.id.as_str(), (j.x_m, j.y_m)))
        .collect();
    let at_junction =
        |j: Option<&model::NodeId>| j.and_then(|j| junctions.get(j.as_str()).copied());
    let given = |x: Option<f64>, y: Option<f64>| x.zip(y);

    let mut sites = Vec::new();
    let mut plant_pos: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let n_plants = net.plants.len().max(1) as f64;
    for (i, p) in net.plants.iter().enumerate() {
        let pos = given(p.x_m, p.y_m)
            .or_else(|| at_junction(p.junction.as_ref()))
            .unwrap_or_else(|| {
                if net.plants.len() == 1 {
                    (0.0, 0.0)
                } else {
                    let a = std::f64::consts::TAU * i as f64 / n_plants;
                    (400.0 * a.cos(), 400.0 * a.sin())
                }
            });
        plant_pos.insert(p.id.to_string(), pos);
        sites.push(Site {
            id: p.id.to_string(),
            kind: "plant",
            x_m: pos.0,
            y_m: pos.1,
            plant: None,
            group: None,
            heat_price_yuan_per_gj: Some(p.heat_price_yuan_per_gj),
            capacity_w: Some(p.capacity_w),
            buildings: Vec::new(),
        });
    }
    let mut lines: Vec<Line> = net
        .pipes
        .iter()
        .filter_map(|p| {
            Some(Line {
                id: p.id.to_string(),
                from: *junctions.get(p.from.as_str())?,
                to: *junctions.get(p.to.as_str())?,
            })
        })
        .collect();
    let explicit = !net.pipes.is_empty();
    for (plant, pos) in &plant_pos {
        let subs: Vec<_> = net
            .substations
            .iter()
            .filter(|s| s.plant.as_str() == plant)
            .collect();
        let n = subs.len().max(1) as f64;
        for (i, s) in subs.iter().enumerate() {
            let xy = given(s.x_m, s.y_m)
                .or_else(|| at_junction(s.junction.as_ref()))
                .unwrap_or_else(|| {
                    let r = s.pipe_length_m.unwrap_or(DEFAULT_RADIUS_M);
                    let a = std::f64::consts::FRAC_PI_2 - std::f64::consts::TAU * i as f64 / n;
                    (pos.0 + r * a.cos(), pos.1 + r * a.sin())
                });
            if !explicit {
                lines.push(Line {
                    id: format!("{plant}-{}", s.id),
                    from: *pos,
                    to: xy,
                });
            }
            sites.push(Site {
                id: s.id.to_string(),
                kind: "substation",
                x_m: xy.0,
                y_m: xy.1,
                plant: Some(plant.clone()),
                group: Some(s.group.clone()),
                heat_price_yuan_per_gj: None,
                capacity_w: None,
                buildings: s.buildings.iter().map(|b| b.id.to_string()).collect(),
            });
        }
    }
    Layout {
        network: net.name.clone(),
        sites,
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_has_every_substation_at_its_coordinates_with_a_line_to_its_plant() {
        let net = Network::load("demo").expect("demo network");
        let l = layout(&net);
        let subs: Vec<_> = l.sites.iter().filter(|s| s.kind == "substation").collect();
        assert_eq!(subs.len(), net.substations.len());
        let s01 = subs.iter().find(|s| s.id == "s01").expect("s01");
        assert_eq!((s01.x_m, s01.y_m), (0.0, 800.0));
        assert_eq!(l.lines.len(), net.substations.len());
        assert!(l.lines.iter().all(|line| line.from == (0.0, 0.0)));
    }

    #[test]
    fn substations_without_coordinates_go_on_a_circle_around_their_plant() {
        let mut net = Network::load("demo").expect("demo network");
        for p in &mut net.plants {
            (p.x_m, p.y_m) = (None, None);
        }
        for s in &mut net.substations {
            (s.x_m, s.y_m) = (None, None);
        }
        let l = layout(&net);
        for (s, site) in net
            .substations
            .iter()
            .zip(l.sites.iter().filter(|s| s.kind == "substation"))
        {
            let r = site.x_m.hypot(site.y_m);
            let want = s.pipe_length_m.unwrap_or(DEFAULT_RADIUS_M);
            assert!((r - want).abs() < 1e-6, "{}: radius {r}, want {want}", s.id);
        }
    }

    #[test]
    fn ring_is_drawn_at_its_junctions_with_its_pipes() {
        let net = Network::load("ring").expect("ring network");
        let l = layout(&net);
        assert_eq!(l.lines.len(), net.pipes.len());
        let north = net
            .junctions
            .iter()
            .find(|j| j.id.as_str() == "j-north")
            .expect("j-north");
        let chp = l.sites.iter().find(|s| s.id == "chp-north").expect("chp");
        assert_eq!((chp.x_m, chp.y_m), (north.x_m, north.y_m));
    }
}
