//! The network description: plants, substations and the buildings behind them.
//!
//! Written by people in TOML (or JSON), so every refusal names the element and
//! the problem. See `sim/model/networks/demo.toml` for a commented example.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::{IdError, NodeId, NodeKind};

/// Absolute limits of a substation's secondary supply setpoint, °C.
pub const SECONDARY_SUPPLY_LIMITS_C: (f64, f64) = (25.0, 95.0);
/// Absolute limits of a plant's supply setpoint, °C.
pub const PLANT_SUPPLY_LIMITS_C: (f64, f64) = (50.0, 130.0);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub name: String,
    /// Network time at which a fresh simulation starts, Unix ms.
    #[serde(default = "default_start_time_ms")]
    pub start_time_ms: i64,
    /// Outdoor temperature the network is designed for, °C.
    #[serde(default = "default_outdoor_design_c")]
    pub outdoor_design_temp_c: f64,
    #[serde(default)]
    pub weather: Weather,
    /// Initial room temperature of every building in a fresh simulation, °C.
    #[serde(default = "default_initial_room_c")]
    pub initial_room_temp_c: f64,
    pub plants: Vec<Plant>,
    pub substations: Vec<Substation>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weather {
    pub seed: u64,
    /// Mean outdoor temperature, °C.
    pub mean_temp_c: f64,
    /// Half the peak-to-peak daily swing, K.
    pub daily_amplitude_k: f64,
    /// Standard deviation of the slow random deviation from the mean, K.
    pub variability_k: f64,
}

impl Default for Weather {
    fn default() -> Self {
        Self {
            seed: 1,
            mean_temp_c: -1.0,
            daily_amplitude_k: 4.0,
            variability_k: 3.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plant {
    pub id: NodeId,
    pub capacity_w: f64,
    #[serde(default = "default_plant_supply_c")]
    pub design_supply_temp_c: f64,
    #[serde(default = "default_plant_return_c")]
    pub design_return_temp_c: f64,
    /// Differential pressure the plant's pumps keep at the substations, Pa.
    #[serde(default = "default_dp_pa")]
    pub pump_dp_pa: f64,
    /// Price of the heat this plant produces, yuan/GJ.
    #[serde(default = "default_price")]
    pub heat_price_yuan_per_gj: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Emitter {
    #[default]
    Radiator,
    FloorHeating,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Substation {
    pub id: NodeId,
    pub plant: NodeId,
    /// Supply-curve group the control room sets curves for.
    #[serde(default = "default_group")]
    pub group: String,
    /// Length of the primary supply (and return) pipe from the plant, m.
    pub pipe_length_m: f64,
    pub pipe_inner_diameter_m: f64,
    /// Heat loss of the pipe per metre and kelvin to the ground, W/(m·K).
    #[serde(default = "default_pipe_loss")]
    pub pipe_loss_w_m_k: f64,
    #[serde(default = "default_ground_c")]
    pub ground_temp_c: f64,
    #[serde(default = "default_sec_supply_c")]
    pub secondary_design_supply_temp_c: f64,
    #[serde(default = "default_sec_return_c")]
    pub secondary_design_return_temp_c: f64,
    /// Kv of the primary control valve, m³/h at 1 bar. Default: sized so the
    /// design flow passes at 70 % opening.
    #[serde(default)]
    pub valve_kv_m3_h: Option<f64>,
    pub buildings: Vec<Building>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Building {
    pub id: NodeId,
    pub floor_area_m2: f64,
    /// Heat load at the design outdoor temperature with rooms at 20 °C, W.
    /// Default: 45 W per m² of floor.
    #[serde(default)]
    pub design_heat_w: Option<f64>,
    /// Thermal capacity per m² of floor, J/(K·m²) (ISO 13790: light 110 k, medium 165 k, heavy 260 k).
    #[serde(default = "default_capacity")]
    pub heat_capacity_j_k_m2: f64,
    #[serde(default)]
    pub emitter: Emitter,
    /// Schools, hospitals: tracked individually.
    #[serde(default)]
    pub priority: bool,
}

impl Building {
    pub fn design_heat_w(&self) -> f64 {
        self.design_heat_w.unwrap_or(45.0 * self.floor_area_m2)
    }
}

impl Substation {
    pub fn design_heat_w(&self) -> f64 {
        self.buildings.iter().map(Building::design_heat_w).sum()
    }
}

fn default_start_time_ms() -> i64 {
    // 2026-12-01T00:00:00+08:00
    1_796_054_400_000
}
fn default_outdoor_design_c() -> f64 {
    -7.0
}
fn default_initial_room_c() -> f64 {
    16.0
}
fn default_plant_supply_c() -> f64 {
    110.0
}
fn default_plant_return_c() -> f64 {
    55.0
}
fn default_dp_pa() -> f64 {
    100_000.0
}
fn default_price() -> f64 {
    24.5
}
fn default_group() -> String {
    "default".to_string()
}
fn default_pipe_loss() -> f64 {
    0.37
}
fn default_ground_c() -> f64 {
    5.0
}
fn default_sec_supply_c() -> f64 {
    75.0
}
fn default_sec_return_c() -> f64 {
    50.0
}
fn default_capacity() -> f64 {
    165_000.0
}

/// Why a network description was refused. Each names the element and the problem.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("network file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("network file is not valid TOML: {0}")]
    Toml(String),
    #[error("network file is not valid JSON: {0}")]
    Json(String),
    #[error("unknown sample network {0:?}: choose demo, or give a path to a .toml or .json file")]
    UnknownSample(String),
    #[error("{element}: {problem}")]
    Invalid { element: String, problem: String },
    #[error("{element}: bad id: {source}")]
    BadId { element: String, source: IdError },
}

fn invalid(element: impl Into<String>, problem: impl Into<String>) -> NetworkError {
    NetworkError::Invalid {
        element: element.into(),
        problem: problem.into(),
    }
}

/// The `demo` sample network, embedded in every binary.
pub const DEMO_TOML: &str = include_str!("../networks/demo.toml");

impl Network {
    pub fn from_toml(text: &str) -> Result<Self, NetworkError> {
        let net: Network = toml::from_str(text).map_err(|e| NetworkError::Toml(e.to_string()))?;
        net.validate()?;
        Ok(net)
    }

    pub fn from_json(text: &str) -> Result<Self, NetworkError> {
        let net: Network =
            serde_json::from_str(text).map_err(|e| NetworkError::Json(e.to_string()))?;
        net.validate()?;
        Ok(net)
    }

    /// An embedded sample network by name.
    pub fn sample(name: &str) -> Result<Self, NetworkError> {
        match name {
            "demo" => Self::from_toml(DEMO_TOML),
            other => Err(NetworkError::UnknownSample(other.to_string())),
        }
    }

    /// `demo` (a sample name) or a path to a `.toml` / `.json` file.
    pub fn load(spec: &str) -> Result<Self, NetworkError> {
        if !spec.contains('/') && !spec.contains('.') {
            return Self::sample(spec);
        }
        let text = std::fs::read_to_string(spec).map_err(|source| NetworkError::Read {
            path: spec.to_string(),
            source,
        })?;
        if spec.ends_with(".json") {
            Self::from_json(&text)
        } else {
            Self::from_toml(&text)
        }
    }

    pub fn to_toml(&self) -> String {
        // A validated network always serializes.
        toml::to_string(self).unwrap_or_default()
    }

    /// Checks the description's consistency: unique ids, references, ranges.
    pub fn validate(&self) -> Result<(), NetworkError> {
        if self.plants.is_empty() {
            return Err(invalid(
                "network",
                "has no plant: add at least one [[plants]]",
            ));
        }
        if self.substations.is_empty() {
            return Err(invalid(
                "network",
                "has no substation: add at least one [[substations]]",
            ));
        }
        check_range(
            "network",
            "outdoor_design_temp_c",
            self.outdoor_design_temp_c,
            -50.0,
            10.0,
        )?;
        check_range(
            "network",
            "initial_room_temp_c",
            self.initial_room_temp_c,
            -20.0,
            35.0,
        )?;
        check_range(
            "network.weather",
            "mean_temp_c",
            self.weather.mean_temp_c,
            -40.0,
            30.0,
        )?;
        check_range(
            "network.weather",
            "daily_amplitude_k",
            self.weather.daily_amplitude_k,
            0.0,
            20.0,
        )?;
        check_range(
            "network.weather",
            "variability_k",
            self.weather.variability_k,
            0.0,
            20.0,
        )?;
        let mut seen = HashSet::new();
        let mut dup = |id: &NodeId, element: &str| {
            if seen.insert(id.clone()) {
                Ok(())
            } else {
                Err(invalid(element, format!("id {id} is used twice")))
            }
        };
        for p in &self.plants {
            let el = format!("plant {}", p.id);
            dup(&p.id, &el)?;
            check_range(&el, "capacity_w", p.capacity_w, 1.0, 1.0e10)?;
            check_range(
                &el,
                "design_supply_temp_c",
                p.design_supply_temp_c,
                50.0,
                150.0,
            )?;
            check_range(
                &el,
                "design_return_temp_c",
                p.design_return_temp_c,
                20.0,
                p.design_supply_temp_c - 5.0,
            )?;
            check_range(&el, "pump_dp_pa", p.pump_dp_pa, 1.0e4, 2.0e6)?;
            check_range(
                &el,
                "heat_price_yuan_per_gj",
                p.heat_price_yuan_per_gj,
                0.0,
                1.0e4,
            )?;
        }
        let plant_ids: HashSet<&NodeId> = self.plants.iter().map(|p| &p.id).collect();
        for s in &self.substations {
            let el = format!("substation {}", s.id);
            dup(&s.id, &el)?;
            if !plant_ids.contains(&s.plant) {
                return Err(invalid(
                    &el,
                    format!("plant {} does not exist: no supply", s.plant),
                ));
            }
            if s.group.is_empty() || s.group.len() > 64 {
                return Err(invalid(&el, "group must be 1 to 64 characters"));
            }
            check_range(&el, "pipe_length_m", s.pipe_length_m, 1.0, 1.0e5)?;
            check_range(
                &el,
                "pipe_inner_diameter_m",
                s.pipe_inner_diameter_m,
                0.01,
                2.0,
            )?;
            check_range(&el, "pipe_loss_w_m_k", s.pipe_loss_w_m_k, 0.0, 10.0)?;
            check_range(&el, "ground_temp_c", s.ground_temp_c, -30.0, 40.0)?;
            check_range(
                &el,
                "secondary_design_supply_temp_c",
                s.secondary_design_supply_temp_c,
                30.0,
                95.0,
            )?;
            check_range(
                &el,
                "secondary_design_return_temp_c",
                s.secondary_design_return_temp_c,
                20.0,
                s.secondary_design_supply_temp_c - 2.0,
            )?;
            if let Some(kv) = s.valve_kv_m3_h {
                check_range(&el, "valve_kv_m3_h", kv, 0.01, 1.0e4)?;
            }
            if s.buildings.is_empty() {
                return Err(invalid(&el, "has no buildings"));
            }
            for b in &s.buildings {
                let bel = format!("building {} (substation {})", b.id, s.id);
                dup(&b.id, &bel)?;
                check_range(&bel, "floor_area_m2", b.floor_area_m2, 10.0, 1.0e6)?;
                if let Some(q) = b.design_heat_w {
                    check_range(&bel, "design_heat_w", q, 100.0, 1.0e8)?;
                }
                check_range(
                    &bel,
                    "heat_capacity_j_k_m2",
                    b.heat_capacity_j_k_m2,
                    1.0e4,
                    1.0e6,
                )?;
            }
        }
        Ok(())
    }

    pub fn plant(&self, id: &NodeId) -> Option<&Plant> {
        self.plants.iter().find(|p| &p.id == id)
    }

    pub fn substation(&self, id: &NodeId) -> Option<&Substation> {
        self.substations.iter().find(|s| &s.id == id)
    }

    /// Every node with its kind and parent, plants first.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let mut out = Vec::new();
        for p in &self.plants {
            out.push(NodeInfo {
                id: p.id.clone(),
                kind: NodeKind::Plant,
                parent: None,
                gateway: p.id.clone(),
                group: None,
            });
        }
        for s in &self.substations {
            out.push(NodeInfo {
                id: s.id.clone(),
                kind: NodeKind::Substation,
                parent: None,
                gateway: s.id.clone(),
                group: Some(s.group.clone()),
            });
            for b in &s.buildings {
                out.push(NodeInfo {
                    id: b.id.clone(),
                    kind: NodeKind::Building,
                    parent: Some(s.id.clone()),
                    gateway: s.id.clone(),
                    group: None,
                });
            }
        }
        out
    }

    /// One gateway per plant and per substation; the gateway's id is its node's id.
    pub fn gateways(&self) -> BTreeMap<NodeId, Vec<NodeInfo>> {
        let mut map: BTreeMap<NodeId, Vec<NodeInfo>> = BTreeMap::new();
        for n in self.nodes() {
            map.entry(n.gateway.clone()).or_default().push(n);
        }
        map
    }

    /// Supply-curve groups with their substations.
    pub fn groups(&self) -> BTreeMap<String, Vec<NodeId>> {
        let mut map: BTreeMap<String, Vec<NodeId>> = BTreeMap::new();
        for s in &self.substations {
            map.entry(s.group.clone()).or_default().push(s.id.clone());
        }
        map
    }
}

/// A node as the control system sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: NodeId,
    pub kind: NodeKind,
    pub parent: Option<NodeId>,
    pub gateway: NodeId,
    pub group: Option<String>,
}

fn check_range(
    element: &str,
    field: &str,
    value: f64,
    lo: f64,
    hi: f64,
) -> Result<(), NetworkError> {
    if value.is_finite() && value >= lo && value <= hi {
        Ok(())
    } else {
        Err(invalid(
            element,
            format!("{field} = {value} is outside {lo}..{hi}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_is_valid_and_shaped_as_documented() {
        let net = Network::sample("demo").unwrap();
        assert_eq!(net.plants.len(), 1);
        assert_eq!(net.substations.len(), 6);
        let buildings: usize = net.substations.iter().map(|s| s.buildings.len()).sum();
        assert_eq!(buildings, 60);
        assert_eq!(net.gateways().len(), 7);
    }

    fn demo_text_with(from: &str, to: &str) -> String {
        assert!(DEMO_TOML.contains(from), "demo.toml lacks {from:?}");
        DEMO_TOML.replacen(from, to, 1)
    }

    #[test]
    fn refusals_name_the_element_and_the_problem() {
        let cases = [
            (
                demo_text_with("plant = \"plant-a\"", "plant = \"plant-x\""),
                "substation s01: plant plant-x does not exist: no supply",
            ),
            (
                demo_text_with("pipe_length_m = 800.0", "pipe_length_m = -5.0"),
                "substation s01: pipe_length_m = -5 is outside 1..100000",
            ),
            (
                demo_text_with("id = \"s02\"", "id = \"s01\""),
                "substation s01: id s01 is used twice",
            ),
            (
                demo_text_with("id = \"s01-b02\"", "id = \"s01-b01\""),
                "building s01-b01 (substation s01): id s01-b01 is used twice",
            ),
        ];
        for (text, want) in cases {
            let err = Network::from_toml(&text).unwrap_err().to_string();
            assert_eq!(err, want);
        }
    }

    #[test]
    fn unknown_fields_and_bad_ids_are_refused() {
        let err = Network::from_toml(&demo_text_with("pipe_length_m", "pipe_lenght_m"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `pipe_lenght_m`"), "{err}");
        let err = Network::from_toml(&demo_text_with("id = \"s03\"", "id = \"S 3\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("has character 'S'"), "{err}");
        assert!(matches!(
            Network::load("nosuch"),
            Err(NetworkError::UnknownSample(_))
        ));
    }

    #[test]
    fn round_trips_through_toml() {
        let net = Network::sample("demo").unwrap();
        let again = Network::from_toml(&net.to_toml()).unwrap();
        assert_eq!(net, again);
    }
}
