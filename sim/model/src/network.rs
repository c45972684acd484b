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
    /// Standard deviation of every temperature sensor's measurement noise, K:
    /// seeded by the weather seed, the sensor and the time, so a run replays
    /// exactly. Real sensors are never exact; a reading that repeats to the bit
    /// for hours is what a gateway takes for a stuck sensor. 0: exact readings.
    #[serde(default)]
    pub sensor_noise_k: f64,
    pub plants: Vec<Plant>,
    pub substations: Vec<Substation>,
    /// Explicit topology: junctions of the primary network. Leave out (with
    /// `pipes`) to describe each substation's own pipe pair to its plant instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub junctions: Vec<Junction>,
    /// Explicit topology: pipes between junctions, each a supply and return pair.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pipes: Vec<Pipe>,
    /// Where the network's static pressure is held (return side), and at what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pressure_holding: Option<PressureHolding>,
}

/// A junction of the primary network (a supply and a return node).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Junction {
    pub id: NodeId,
    /// Map position, m (east, north).
    #[serde(default)]
    pub x_m: f64,
    #[serde(default)]
    pub y_m: f64,
}

/// A pre-insulated supply/return pipe pair between two junctions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipe {
    pub id: NodeId,
    pub from: NodeId,
    pub to: NodeId,
    pub length_m: f64,
    pub inner_diameter_m: f64,
    /// Absolute roughness, m.
    #[serde(default = "default_roughness")]
    pub roughness_m: f64,
    /// Heat loss per metre and kelvin of each pipe of the pair, W/(m·K).
    #[serde(default = "default_pipe_loss")]
    pub loss_w_m_k: f64,
    #[serde(default = "default_ground_c")]
    pub ground_temp_c: f64,
    /// A tie line between two plants (联络线): kept closed while both plants
    /// run (each feeds its own district) and opened while either plant's pump
    /// stands still, so that the other carries its district. Both ends must
    /// carry a plant.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tie: bool,
}

/// The pressure-holding point (make-up water pressurisation) on the return side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PressureHolding {
    pub junction: NodeId,
    /// Static (gauge) pressure held on the return side, Pa.
    pub pressure_pa: f64,
    /// Most make-up water the pressurisation pumps can feed, kg/s.
    #[serde(default = "default_makeup_capacity")]
    pub makeup_capacity_kg_s: f64,
    /// Gas cushion of the expansion vessel at the held pressure, m³: water
    /// lost beyond the make-up capacity comes out of the vessel and the
    /// pressure falls as the gas expands (p·V = const).
    #[serde(default = "default_vessel_gas")]
    pub vessel_gas_m3: f64,
    /// Gauge pressure at the holding point below which the circulation pumps
    /// trip on loss of water, Pa. They restart 0.3 bar above it.
    #[serde(default = "default_low_pressure_trip")]
    pub low_pressure_trip_pa: f64,
}

/// Differential pressure a substation's secondary pump makes across its
/// buildings' circuits at rated speed with every valve open, Pa.
pub const SECONDARY_DESIGN_DP_PA: f64 = 50_000.0;

/// Defaults of the pressure-holding point, also used where a network names none.
pub const DEFAULT_MAKEUP_CAPACITY_KG_S: f64 = 10.0;
pub const DEFAULT_VESSEL_GAS_M3: f64 = 20.0;
pub const DEFAULT_LOW_PRESSURE_TRIP_PA: f64 = 1.0e5;
fn default_makeup_capacity() -> f64 {
    DEFAULT_MAKEUP_CAPACITY_KG_S
}
fn default_vessel_gas() -> f64 {
    DEFAULT_VESSEL_GAS_M3
}
fn default_low_pressure_trip() -> f64 {
    DEFAULT_LOW_PRESSURE_TRIP_PA
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weather {
    pub seed: u64,
    /// Mean outdoor temperature, °C (the yearly mean when `seasonal_amplitude_k` is set).
    pub mean_temp_c: f64,
    /// Half the peak-to-peak daily swing, K.
    pub daily_amplitude_k: f64,
    /// Standard deviation of the slow random deviation from the mean, K.
    pub variability_k: f64,
    /// Half the yearly swing of the daily mean, coldest in mid-January, K (0: no season).
    #[serde(default)]
    pub seasonal_amplitude_k: f64,
    /// Chance that a cold wave starts in any week (0: none).
    #[serde(default)]
    pub cold_wave_weekly_probability: f64,
    /// Typical depth of a cold wave below the usual temperature, K.
    #[serde(default = "default_wave_depth")]
    pub cold_wave_depth_k: f64,
    /// Latitude for the sun's path, degrees north.
    #[serde(default = "default_latitude")]
    pub latitude_deg: f64,
    /// Mean share of the clear-sky sunshine that clouds take away (0..1).
    #[serde(default = "default_cloudiness")]
    pub cloudiness: f64,
}

fn default_wave_depth() -> f64 {
    8.0
}
fn default_latitude() -> f64 {
    39.1
}
fn default_cloudiness() -> f64 {
    0.4
}

impl Default for Weather {
    fn default() -> Self {
        Self {
            seed: 1,
            mean_temp_c: -1.0,
            daily_amplitude_k: 4.0,
            variability_k: 3.0,
            seasonal_amplitude_k: 0.0,
            cold_wave_weekly_probability: 0.0,
            cold_wave_depth_k: default_wave_depth(),
            latitude_deg: default_latitude(),
            cloudiness: default_cloudiness(),
        }
    }
}

impl Weather {
    /// A Tianjin-like climate: yearly mean 12.9 °C swinging ±15.8 K (about −3 °C
    /// on mid-January days, +5 °C in mid-November and mid-March), ±4.5 K each
    /// day, and cold waves in a third of the weeks that take nights to about −15 °C.
    pub fn tianjin(seed: u64) -> Self {
        Self {
            seed,
            mean_temp_c: 12.9,
            daily_amplitude_k: 4.5,
            variability_k: 2.0,
            seasonal_amplitude_k: 15.8,
            cold_wave_weekly_probability: 0.35,
            cold_wave_depth_k: 8.0,
            latitude_deg: 39.1,
            cloudiness: 0.35,
        }
    }
}

/// What kind of heat source a plant is: it decides the typical minimum load,
/// ramp rate and price (see [`PlantKind::typical_min_load_share`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PlantKind {
    /// Combined heat and power: cheap heat (24.5 yuan/GJ negotiated), slow to
    /// ramp, and a minimum load of about 40 % while it runs.
    #[default]
    Chp,
    /// Gas boiler house: dear heat, fast, turns down to about 10 %.
    GasBoiler,
    /// Solar collector field with a storage tank: free heat when the sun has
    /// filled the tank; no minimum load, it idles while the tank is cold.
    /// Needs a `solar` table ([`SolarThermal`]).
    SolarThermal,
}

impl PlantKind {
    pub fn name(self) -> &'static str {
        match self {
            PlantKind::Chp => "chp",
            PlantKind::GasBoiler => "gas_boiler",
            PlantKind::SolarThermal => "solar_thermal",
        }
    }

    /// Typical minimum heat output while running, as a share of capacity.
    pub fn typical_min_load_share(self) -> f64 {
        match self {
            PlantKind::Chp => 0.4,
            PlantKind::GasBoiler => 0.1,
            PlantKind::SolarThermal => 0.0,
        }
    }

    /// Typical fastest change of heat output, share of capacity per minute.
    pub fn typical_ramp_share_per_min(self) -> f64 {
        match self {
            PlantKind::Chp => 0.01,
            PlantKind::GasBoiler => 0.1,
            // A mixing valve before the tank: any change at once.
            PlantKind::SolarThermal => 1.0,
        }
    }

    /// Typical heat price, yuan/GJ: CHP heat at the negotiated 24.5 yuan/GJ
    /// (DOMAIN.md); gas boiler heat about twice that (the `ring` sample's 48);
    /// solar heat burns no fuel: 0 (pumps' electricity is not booked).
    pub fn typical_price_yuan_per_gj(self) -> f64 {
        match self {
            PlantKind::Chp => 24.5,
            PlantKind::GasBoiler => 48.0,
            PlantKind::SolarThermal => 0.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "PlantFile")]
pub struct Plant {
    pub id: NodeId,
    /// Kind of heat source (default `chp`).
    pub kind: PlantKind,
    pub capacity_w: f64,
    /// Smallest heat output while the plant runs, W (default 0: no minimum).
    pub min_load_w: f64,
    /// Fastest change of heat output, W/s (default: unlimited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp_w_per_s: Option<f64>,
    pub design_supply_temp_c: f64,
    pub design_return_temp_c: f64,
    /// Differential pressure the plant's pumps keep at the substations, Pa.
    pub pump_dp_pa: f64,
    /// Price of the heat this plant produces, yuan/GJ (default: 24.5, and 0
    /// for `solar_thermal`, whose heat burns no fuel).
    pub heat_price_yuan_per_gj: f64,
    /// Explicit topology: the junction the plant feeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub junction: Option<NodeId>,
    /// Circulation pump: head at zero flow and at its rated flow, m, and the
    /// rated flow, m³/h. Default: 65 m / 50 m at the plant's design flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pump: Option<PumpRating>,
    /// Map position for drawing, m (east, north); the dashboard lays out
    /// plants without one itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_m: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y_m: Option<f64>,
    /// The collector field and storage tank of a `solar_thermal` plant (and
    /// of no other kind).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub solar: Option<SolarThermal>,
}

/// A plant as written in a file: [`Plant`] with its defaults, some of which
/// depend on the plant's kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlantFile {
    id: NodeId,
    #[serde(default)]
    kind: PlantKind,
    capacity_w: f64,
    #[serde(default)]
    min_load_w: f64,
    #[serde(default)]
    ramp_w_per_s: Option<f64>,
    #[serde(default = "default_plant_supply_c")]
    design_supply_temp_c: f64,
    #[serde(default = "default_plant_return_c")]
    design_return_temp_c: f64,
    #[serde(default = "default_dp_pa")]
    pump_dp_pa: f64,
    #[serde(default)]
    heat_price_yuan_per_gj: Option<f64>,
    #[serde(default)]
    junction: Option<NodeId>,
    #[serde(default)]
    pump: Option<PumpRating>,
    #[serde(default)]
    x_m: Option<f64>,
    #[serde(default)]
    y_m: Option<f64>,
    #[serde(default)]
    solar: Option<SolarThermal>,
}

impl From<PlantFile> for Plant {
    fn from(f: PlantFile) -> Self {
        let default_price = match f.kind {
            PlantKind::SolarThermal => PlantKind::SolarThermal.typical_price_yuan_per_gj(),
            // Every fuelled plant defaults to the CHP price (older files
            // relied on it for their boilers too).
            PlantKind::Chp | PlantKind::GasBoiler => default_price(),
        };
        Plant {
            id: f.id,
            kind: f.kind,
            capacity_w: f.capacity_w,
            min_load_w: f.min_load_w,
            ramp_w_per_s: f.ramp_w_per_s,
            design_supply_temp_c: f.design_supply_temp_c,
            design_return_temp_c: f.design_return_temp_c,
            pump_dp_pa: f.pump_dp_pa,
            heat_price_yuan_per_gj: f.heat_price_yuan_per_gj.unwrap_or(default_price),
            junction: f.junction,
            pump: f.pump,
            x_m: f.x_m,
            y_m: f.y_m,
            solar: f.solar,
        }
    }
}

/// The collector field and storage tank of a solar thermal plant.
///
/// The collectors heat the tank (fully mixed) by
/// `Q = A·(η₀·G − a₁·ΔT − a₂·ΔT²)`, never below 0, with `G` the global
/// horizontal irradiance times `irradiance_gain` (the collectors' tilt) and
/// `ΔT` the tank minus the outdoor temperature
/// (EN 12975 / ISO 9806 quadratic efficiency curve). The plant delivers from
/// the tank, at its supply setpoint or the tank temperature if colder: it
/// starts when the tank reaches the higher of `min_useful_temp_c` and the
/// network's return there plus `delivery_margin_k`, and stops half the
/// margin below that; meanwhile its pump stands still.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SolarThermal {
    /// Collector aperture area, m².
    pub collector_area_m2: f64,
    /// Optical (zero-loss) efficiency η₀.
    #[serde(default = "default_eta0")]
    pub eta0: f64,
    /// Linear heat-loss coefficient a₁, W/(m²·K).
    #[serde(default = "default_a1")]
    pub a1_w_m2_k: f64,
    /// Quadratic heat-loss coefficient a₂, W/(m²·K²).
    #[serde(default = "default_a2")]
    pub a2_w_m2_k2: f64,
    /// Irradiance on the collectors' plane over the global horizontal
    /// irradiance (default 1: flat on the ground). Collectors tilted south at
    /// about the latitude see roughly 1.8× on a clear mid-winter day at 39° N
    /// (the sun stands 27° high at noon); one factor stands for the whole day.
    #[serde(default = "default_irradiance_gain")]
    pub irradiance_gain: f64,
    /// Water volume of the storage tank, m³.
    pub tank_volume_m3: f64,
    /// Heat loss of the tank per kelvin above the outdoor air, W/K (default:
    /// a squat cylinder of the tank's volume with 0.3 W/(m²·K) insulation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tank_ua_w_k: Option<f64>,
    /// Hottest the tank gets, °C: beyond it the field stagnates and the heat
    /// it would add is dumped (and counted).
    #[serde(default = "default_tank_max_c")]
    pub tank_max_temp_c: f64,
    /// Coldest tank the plant delivers from, °C.
    #[serde(default = "default_tank_min_useful_c")]
    pub min_useful_temp_c: f64,
    /// How much hotter than the network's return the tank must be for the
    /// plant to start delivering, K; it stops half this margin below its
    /// start temperature.
    #[serde(default = "default_delivery_margin_k")]
    pub delivery_margin_k: f64,
    /// Tank temperature at the start of a fresh simulation, °C.
    #[serde(default = "default_tank_initial_c")]
    pub initial_tank_temp_c: f64,
}

/// Insulation of a storage tank's default UA, W/(m²·K).
pub const DEFAULT_TANK_INSULATION_W_M2_K: f64 = 0.3;

fn default_eta0() -> f64 {
    0.8
}
fn default_a1() -> f64 {
    3.5
}
fn default_a2() -> f64 {
    0.015
}
fn default_irradiance_gain() -> f64 {
    1.0
}
fn default_tank_max_c() -> f64 {
    95.0
}
fn default_tank_min_useful_c() -> f64 {
    60.0
}
fn default_delivery_margin_k() -> f64 {
    5.0
}
fn default_tank_initial_c() -> f64 {
    50.0
}

impl SolarThermal {
    /// Heat loss of the tank per kelvin, W/K: as given, or a cylinder as tall
    /// as it is wide (`V = π·D³/4`, surface `1.5·π·D²`) at
    /// [`DEFAULT_TANK_INSULATION_W_M2_K`].
    pub fn tank_ua_w_k(&self) -> f64 {
        self.tank_ua_w_k.unwrap_or_else(|| {
            let d = (4.0 * self.tank_volume_m3 / std::f64::consts::PI).cbrt();
            DEFAULT_TANK_INSULATION_W_M2_K * 1.5 * std::f64::consts::PI * d * d
        })
    }

    fn validate(&self, el: &str) -> Result<(), NetworkError> {
        check_range(
            el,
            "solar.collector_area_m2",
            self.collector_area_m2,
            1.0,
            1.0e6,
        )?;
        check_range(el, "solar.eta0", self.eta0, 0.1, 1.0)?;
        check_range(el, "solar.a1_w_m2_k", self.a1_w_m2_k, 0.0, 30.0)?;
        check_range(el, "solar.a2_w_m2_k2", self.a2_w_m2_k2, 0.0, 0.5)?;
        check_range(el, "solar.irradiance_gain", self.irradiance_gain, 0.0, 5.0)?;
        check_range(el, "solar.tank_volume_m3", self.tank_volume_m3, 0.1, 1.0e6)?;
        if let Some(ua) = self.tank_ua_w_k {
            check_range(el, "solar.tank_ua_w_k", ua, 0.0, 1.0e6)?;
        }
        // Unpressurised tanks stay below boiling.
        check_range(
            el,
            "solar.tank_max_temp_c",
            self.tank_max_temp_c,
            40.0,
            99.0,
        )?;
        check_range(
            el,
            "solar.min_useful_temp_c",
            self.min_useful_temp_c,
            20.0,
            self.tank_max_temp_c - 5.0,
        )?;
        check_range(
            el,
            "solar.delivery_margin_k",
            self.delivery_margin_k,
            0.5,
            30.0,
        )?;
        check_range(
            el,
            "solar.initial_tank_temp_c",
            self.initial_tank_temp_c,
            0.0,
            self.tank_max_temp_c,
        )?;
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PumpRating {
    pub shutoff_head_m: f64,
    pub rated_flow_m3_h: f64,
    pub rated_head_m: f64,
}

impl PumpRating {
    /// The head at `flow_m3_h` and relative `speed` by the affinity laws on
    /// the quadratic curve through the shut-off head and the rated point
    /// (the simulator's `PumpCurve`), m; never negative.
    pub fn head_m(&self, flow_m3_h: f64, speed: f64) -> f64 {
        let rated_m3_h = self.rated_flow_m3_h.max(1e-9);
        let c = (self.shutoff_head_m - self.rated_head_m) / (rated_m3_h * rated_m3_h);
        (self.shutoff_head_m * speed * speed - c * flow_m3_h * flow_m3_h.abs()).max(0.0)
    }
}

impl Plant {
    /// Mass flow at design load and design temperatures, kg/s.
    pub fn design_flow_kg_s(&self) -> f64 {
        self.capacity_w
            / (crate::WATER_CP_J_KG_K * (self.design_supply_temp_c - self.design_return_temp_c))
    }

    pub fn pump_rating(&self) -> PumpRating {
        self.pump.unwrap_or(PumpRating {
            shutoff_head_m: 65.0,
            rated_flow_m3_h: self.design_flow_kg_s() / 970.0 * 3600.0,
            rated_head_m: 50.0,
        })
    }
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
    /// Explicit topology: the junction the substation draws from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub junction: Option<NodeId>,
    /// Map position for drawing, m (east, north); the dashboard lays out
    /// substations without one itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_m: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y_m: Option<f64>,
    /// Without explicit topology: length of the substation's own supply (and
    /// return) pipe from its plant, m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipe_length_m: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipe_inner_diameter_m: Option<f64>,
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
    /// Share of the flats that are top-floor or gable-end flats, 0..1.
    #[serde(default = "default_exposed_share")]
    pub exposed_flat_share: f64,
    /// How much colder those flats run than the building's average at design
    /// conditions, K (utilities report 2 K: 16 °C where the average is 18 °C).
    #[serde(default = "default_exposed_offset")]
    pub exposed_flat_offset_k: f64,
}

pub const DEFAULT_EXPOSED_FLAT_SHARE: f64 = 0.2;
pub const DEFAULT_EXPOSED_FLAT_OFFSET_K: f64 = 2.0;
fn default_exposed_share() -> f64 {
    DEFAULT_EXPOSED_FLAT_SHARE
}
fn default_exposed_offset() -> f64 {
    DEFAULT_EXPOSED_FLAT_OFFSET_K
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

    /// Primary flow at design conditions when served by `plant`, kg/s: the
    /// design heat over the plant's design temperature drop (what the control
    /// valve is sized for).
    pub fn design_primary_flow_kg_s(&self, plant: &Plant) -> f64 {
        self.design_heat_w()
            / (crate::WATER_CP_J_KG_K * (plant.design_supply_temp_c - plant.design_return_temp_c))
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
fn default_roughness() -> f64 {
    5.0e-5
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
    #[error(
        "unknown sample network {0:?}: choose demo, ring, solar or city, or give a path to a .toml or .json file"
    )]
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
/// The `ring` sample network (explicit meshed topology, two plants).
pub const RING_TOML: &str = include_str!("../networks/ring.toml");
/// The `solar` sample network: `ring` with a solar thermal plant and its tank.
pub const SOLAR_TOML: &str = include_str!("../networks/solar.toml");

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
            "ring" => Self::from_toml(RING_TOML),
            "solar" => Self::from_toml(SOLAR_TOML),
            "city" => crate::generate::city(
                crate::generate::CITY_SUBSTATIONS,
                crate::generate::CITY_SEED,
            ),
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
        check_range("network", "sensor_noise_k", self.sensor_noise_k, 0.0, 2.0)?;
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
        let w = &self.weather;
        check_range(
            "network.weather",
            "seasonal_amplitude_k",
            w.seasonal_amplitude_k,
            0.0,
            40.0,
        )?;
        check_range(
            "network.weather",
            "cold_wave_weekly_probability",
            w.cold_wave_weekly_probability,
            0.0,
            1.0,
        )?;
        check_range(
            "network.weather",
            "cold_wave_depth_k",
            w.cold_wave_depth_k,
            0.0,
            30.0,
        )?;
        check_range(
            "network.weather",
            "latitude_deg",
            w.latitude_deg,
            -66.0,
            66.0,
        )?;
        check_range("network.weather", "cloudiness", w.cloudiness, 0.0, 1.0)?;
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
            check_range(&el, "min_load_w", p.min_load_w, 0.0, p.capacity_w)?;
            if let Some(r) = p.ramp_w_per_s {
                // At least a full swing in about a day, at most within a second.
                check_range(&el, "ramp_w_per_s", r, p.capacity_w * 1.0e-5, p.capacity_w)?;
            }
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
            match (p.kind, &p.solar) {
                (PlantKind::SolarThermal, None) => {
                    return Err(invalid(
                        &el,
                        "kind solar_thermal needs a solar table (collector_area_m2, tank_volume_m3, ...)",
                    ));
                }
                (PlantKind::SolarThermal, Some(solar)) => {
                    solar.validate(&el)?;
                    if p.min_load_w > 0.0 {
                        return Err(invalid(
                            &el,
                            format!(
                                "min_load_w = {}: a solar_thermal plant has no minimum load (it idles while its tank is cold); leave it out",
                                p.min_load_w
                            ),
                        ));
                    }
                    if p.design_supply_temp_c > solar.tank_max_temp_c {
                        return Err(invalid(
                            &el,
                            format!(
                                "design_supply_temp_c = {} is above solar.tank_max_temp_c = {}: the plant supplies from its tank",
                                p.design_supply_temp_c, solar.tank_max_temp_c
                            ),
                        ));
                    }
                }
                (_, Some(_)) => {
                    return Err(invalid(
                        &el,
                        format!(
                            "has a solar table but kind = {}: only a solar_thermal plant has one",
                            p.kind.name()
                        ),
                    ));
                }
                (_, None) => {}
            }
        }
        for p in &self.plants {
            if let Some(r) = p.pump {
                let el = format!("plant {}", p.id);
                check_range(&el, "pump.shutoff_head_m", r.shutoff_head_m, 1.0, 500.0)?;
                check_range(
                    &el,
                    "pump.rated_head_m",
                    r.rated_head_m,
                    0.5,
                    r.shutoff_head_m - 0.1,
                )?;
                check_range(&el, "pump.rated_flow_m3_h", r.rated_flow_m3_h, 0.1, 1.0e6)?;
            }
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
            if self.pipes.is_empty() {
                let (Some(len), Some(dia)) = (s.pipe_length_m, s.pipe_inner_diameter_m) else {
                    return Err(invalid(
                        &el,
                        "needs pipe_length_m and pipe_inner_diameter_m (its pipe to the plant), or give the network [[junctions]] and [[pipes]] and the substation a junction",
                    ));
                };
                check_range(&el, "pipe_length_m", len, 1.0, 1.0e5)?;
                check_range(&el, "pipe_inner_diameter_m", dia, 0.01, 2.0)?;
                if s.junction.is_some() {
                    return Err(invalid(
                        &el,
                        "has a junction but the network has no [[pipes]]",
                    ));
                }
            } else if s.pipe_length_m.is_some() || s.pipe_inner_diameter_m.is_some() {
                return Err(invalid(
                    &el,
                    "pipe_length_m / pipe_inner_diameter_m describe a private pipe; with [[pipes]] give the substation a junction instead",
                ));
            }
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
                check_range(&bel, "exposed_flat_share", b.exposed_flat_share, 0.0, 1.0)?;
                check_range(
                    &bel,
                    "exposed_flat_offset_k",
                    b.exposed_flat_offset_k,
                    0.0,
                    10.0,
                )?;
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
        self.validate_topology(&mut seen)
    }

    /// Checks the explicit topology (if any): ids, references, ranges,
    /// connectivity, a supply for every substation.
    fn validate_topology(&self, seen: &mut HashSet<NodeId>) -> Result<(), NetworkError> {
        if self.pipes.is_empty() {
            if !self.junctions.is_empty() {
                return Err(invalid("network", "has [[junctions]] but no [[pipes]]"));
            }
            for p in &self.plants {
                if p.junction.is_some() {
                    return Err(invalid(
                        format!("plant {}", p.id),
                        "has a junction but the network has no [[pipes]]",
                    ));
                }
            }
            if let Some(ph) = &self.pressure_holding {
                check_range(
                    "pressure_holding",
                    "pressure_pa",
                    ph.pressure_pa,
                    0.5e5,
                    2.5e6,
                )?;
                if !self.plants.iter().any(|p| p.id == ph.junction) {
                    return Err(invalid(
                        "pressure_holding",
                        format!(
                            "junction {} is not a plant of this network (without [[junctions]] the plants are the only junctions besides substations)",
                            ph.junction
                        ),
                    ));
                }
            }
            return Ok(());
        }
        let mut index = std::collections::HashMap::new();
        for (i, j) in self.junctions.iter().enumerate() {
            let el = format!("junction {}", j.id);
            if !seen.insert(j.id.clone()) {
                return Err(invalid(&el, format!("id {} is used twice", j.id)));
            }
            if !(j.x_m.is_finite() && j.y_m.is_finite()) {
                return Err(invalid(&el, "x_m / y_m must be finite"));
            }
            index.insert(j.id.clone(), i);
        }
        let mut adj = vec![Vec::new(); self.junctions.len()];
        for p in &self.pipes {
            let el = format!("pipe {}", p.id);
            if !seen.insert(p.id.clone()) {
                return Err(invalid(&el, format!("id {} is used twice", p.id)));
            }
            let (Some(&a), Some(&b)) = (index.get(&p.from), index.get(&p.to)) else {
                let missing = if index.contains_key(&p.from) {
                    &p.to
                } else {
                    &p.from
                };
                return Err(invalid(
                    &el,
                    format!("junction {missing} does not exist (a dangling pipe)"),
                ));
            };
            if a == b {
                return Err(invalid(&el, "starts and ends at the same junction"));
            }
            check_range(&el, "length_m", p.length_m, 0.1, 1.0e5)?;
            check_range(&el, "inner_diameter_m", p.inner_diameter_m, 0.01, 2.0)?;
            check_range(&el, "roughness_m", p.roughness_m, 0.0, 0.01)?;
            check_range(&el, "loss_w_m_k", p.loss_w_m_k, 0.0, 10.0)?;
            check_range(&el, "ground_temp_c", p.ground_temp_c, -30.0, 40.0)?;
            adj[a].push(b);
            adj[b].push(a);
        }
        let junction_of = |el: &str, j: &Option<NodeId>| -> Result<usize, NetworkError> {
            let j = j
                .as_ref()
                .ok_or_else(|| invalid(el, "needs a junction (the network has [[pipes]])"))?;
            index
                .get(j)
                .copied()
                .ok_or_else(|| invalid(el, format!("junction {j} does not exist")))
        };
        let mut sources = Vec::new();
        for p in &self.plants {
            sources.push(junction_of(&format!("plant {}", p.id), &p.junction)?);
        }
        for p in self.pipes.iter().filter(|p| p.tie) {
            for end in [&p.from, &p.to] {
                if index.get(end).is_none_or(|j| !sources.contains(j)) {
                    return Err(invalid(
                        format!("pipe {}", p.id),
                        format!(
                            "is a tie line but no plant stands at its end {end}: a tie joins two plants' junctions (set tie = false for an ordinary pipe)"
                        ),
                    ));
                }
            }
        }
        let mut reached = vec![false; self.junctions.len()];
        let mut stack = sources.clone();
        for &s in &sources {
            reached[s] = true;
        }
        while let Some(v) = stack.pop() {
            for &w in &adj[v] {
                if !reached[w] {
                    reached[w] = true;
                    stack.push(w);
                }
            }
        }
        for s in &self.substations {
            let el = format!("substation {}", s.id);
            let j = junction_of(&el, &s.junction)?;
            if !reached[j] {
                return Err(invalid(
                    &el,
                    format!(
                        "no supply: junction {} is not connected to any plant",
                        self.junctions[j].id
                    ),
                ));
            }
        }
        if let Some(i) = reached.iter().position(|r| !r) {
            return Err(invalid(
                format!("junction {}", self.junctions[i].id),
                "is not connected to any plant (an island)",
            ));
        }
        if let Some(ph) = &self.pressure_holding {
            check_range(
                "pressure_holding",
                "pressure_pa",
                ph.pressure_pa,
                0.5e5,
                2.5e6,
            )?;
            check_range(
                "pressure_holding",
                "makeup_capacity_kg_s",
                ph.makeup_capacity_kg_s,
                0.0,
                1.0e3,
            )?;
            check_range(
                "pressure_holding",
                "vessel_gas_m3",
                ph.vessel_gas_m3,
                0.1,
                1.0e4,
            )?;
            check_range(
                "pressure_holding",
                "low_pressure_trip_pa",
                ph.low_pressure_trip_pa,
                0.0,
                ph.pressure_pa,
            )?;
            if !index.contains_key(&ph.junction) {
                return Err(invalid(
                    "pressure_holding",
                    format!("junction {} does not exist", ph.junction),
                ));
            }
        }
        Ok(())
    }

    /// True when the network is described as private pipe pairs from plants to
    /// substations (no explicit [[junctions]] / [[pipes]]).
    pub fn is_star(&self) -> bool {
        self.pipes.is_empty()
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
    fn a_pump_curve_passes_its_shutoff_and_rated_heads_and_scales_with_speed() {
        let r = PumpRating {
            shutoff_head_m: 127.0,
            rated_flow_m3_h: 3228.0,
            rated_head_m: 102.0,
        };
        assert_eq!(r.head_m(0.0, 1.0), 127.0);
        assert!((r.head_m(3228.0, 1.0) - 102.0).abs() < 1e-9);
        // Twice the speed: four times the shut-off head.
        assert_eq!(r.head_m(0.0, 2.0), 508.0);
        // Far beyond the curve: no head, never a negative one.
        assert_eq!(r.head_m(100_000.0, 1.0), 0.0);
    }

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
            (
                demo_text_with("min_load_w = 1.6e6", "min_load_w = 20.0e6"),
                "plant plant-a: min_load_w = 20000000 is outside 0..16000000",
            ),
            (
                demo_text_with(
                    "min_load_w = 1.6e6",
                    "min_load_w = 1.6e6\nramp_w_per_s = 0.0",
                ),
                "plant plant-a: ramp_w_per_s = 0 is outside 160..16000000",
            ),
            (demo_text_with("kind = \"chp\"", "kind = \"nuclear\""), ""),
        ];
        for (text, want) in cases {
            let err = Network::from_toml(&text).unwrap_err().to_string();
            if want.is_empty() {
                assert!(
                    err.contains("nuclear")
                        && err.contains("gas_boiler")
                        && err.contains("solar_thermal"),
                    "{err}"
                );
            } else {
                assert_eq!(err, want);
            }
        }
    }

    #[test]
    fn old_plant_entries_default_to_a_chp_without_limits() {
        let text =
            DEMO_TOML
                .replacen("kind = \"chp\"\n", "", 1)
                .replacen("min_load_w = 1.6e6\n", "", 1);
        let net = Network::from_toml(&text).unwrap();
        let p = &net.plants[0];
        assert_eq!(p.kind, PlantKind::Chp);
        assert_eq!(p.min_load_w, 0.0);
        assert_eq!(p.ramp_w_per_s, None);
        let city = crate::generate::city(20, 1).unwrap();
        let kinds: Vec<PlantKind> = city.plants.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            [PlantKind::Chp, PlantKind::Chp, PlantKind::GasBoiler]
        );
        // The big CHP plant: 40 % minimum load, 1 % of capacity a minute.
        let w = &city.plants[0];
        assert!((w.min_load_w - 0.4 * w.capacity_w).abs() < 1e-6);
        assert!((w.ramp_w_per_s.unwrap() - w.capacity_w / 6000.0).abs() < 1e-6);
        assert!(city.plants[2].heat_price_yuan_per_gj > city.plants[0].heat_price_yuan_per_gj);
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

    fn ring_text_with(from: &str, to: &str) -> String {
        assert!(RING_TOML.contains(from), "ring.toml lacks {from:?}");
        RING_TOML.replacen(from, to, 1)
    }

    #[test]
    fn topology_refusals_name_the_element_and_the_problem() {
        assert!(Network::sample("ring").is_ok());
        let cases = [
            (
                ring_text_with("to = \"j-east\"", "to = \"j-nowhere\""),
                "pipe p-n-e: junction j-nowhere does not exist (a dangling pipe)",
            ),
            (
                ring_text_with("length_m = 1250.0", "length_m = -3.0"),
                "pipe p-n-e: length_m = -3 is outside 0.1..100000",
            ),
            (
                ring_text_with("length_m = 1250.0", "length_m = 1250.0\ntie = true"),
                "pipe p-n-e: is a tie line but no plant stands at its end j-east: a tie joins two plants' junctions (set tie = false for an ordinary pipe)",
            ),
            (
                ring_text_with(
                    "junction = \"j-north\"\npressure_pa",
                    "junction = \"j-x\"\npressure_pa",
                ),
                "pressure_holding: junction j-x does not exist",
            ),
            (
                // Cut both pipes to the centre: r4 has no supply.
                ring_text_with(
                    "from = \"j-centre\"\nto = \"j-north\"",
                    "from = \"j-west\"\nto = \"j-north\"",
                )
                .replacen(
                    "from = \"j-centre\"\nto = \"j-south-east\"",
                    "from = \"j-east\"\nto = \"j-south-east\"",
                    1,
                ),
                "substation r4: no supply: junction j-centre is not connected to any plant",
            ),
            (
                format!("{RING_TOML}\n[[junctions]]\nid = \"j-lonely\"\n"),
                "junction j-lonely: is not connected to any plant (an island)",
            ),
            (
                ring_text_with("junction = \"j-east\"", "pipe_length_m = 100.0"),
                "substation r1: pipe_length_m / pipe_inner_diameter_m describe a private pipe; with [[pipes]] give the substation a junction instead",
            ),
        ];
        for (text, want) in cases {
            let err = Network::from_toml(&text).unwrap_err().to_string();
            assert_eq!(err, want);
        }
    }

    fn solar_text_with(from: &str, to: &str) -> String {
        assert!(SOLAR_TOML.contains(from), "solar.toml lacks {from:?}");
        SOLAR_TOML.replacen(from, to, 1)
    }

    #[test]
    fn the_solar_sample_has_a_free_solar_plant_with_its_tank() {
        let net = Network::sample("solar").unwrap();
        let p = net.plant(&NodeId::new("solar-east").unwrap()).unwrap();
        assert_eq!(p.kind, PlantKind::SolarThermal);
        // No price given: solar heat is free; the others keep theirs.
        assert_eq!(p.heat_price_yuan_per_gj, 0.0);
        assert_eq!(net.plants[0].heat_price_yuan_per_gj, 24.5);
        let s = p.solar.as_ref().unwrap();
        assert_eq!((s.eta0, s.a1_w_m2_k, s.a2_w_m2_k2), (0.8, 3.5, 0.015));
        assert_eq!(s.tank_ua_w_k(), 60.0);
        // Defaults: EN 12975 flat plate, 95 °C tank, useful from 60 °C.
        let bare = solar_text_with("eta0 = 0.8\na1_w_m2_k = 3.5\na2_w_m2_k2 = 0.015\n", "")
            .replacen("tank_ua_w_k = 60.0\n", "", 1)
            .replacen("tank_max_temp_c = 95.0\n", "", 1)
            .replacen("min_useful_temp_c = 60.0\n", "", 1);
        let net = Network::from_toml(&bare).unwrap();
        let s = net.plants[2].solar.clone().unwrap();
        assert_eq!((s.eta0, s.a1_w_m2_k, s.a2_w_m2_k2), (0.8, 3.5, 0.015));
        assert_eq!((s.tank_max_temp_c, s.min_useful_temp_c), (95.0, 60.0));
        // 200 m³ as a cylinder as tall as wide: D = (4·200/π)^⅓ = 6.338 m,
        // surface 1.5·π·D² = 189.3 m², at 0.3 W/m²K: 56.8 W/K.
        assert!((s.tank_ua_w_k() - 56.8).abs() < 0.1, "{}", s.tank_ua_w_k());
        // A file states its price: kept.
        let priced = solar_text_with(
            "kind = \"solar_thermal\"",
            "kind = \"solar_thermal\"\nheat_price_yuan_per_gj = 3.0",
        );
        assert_eq!(
            Network::from_toml(&priced).unwrap().plants[2].heat_price_yuan_per_gj,
            3.0
        );
        let again = Network::from_toml(&net.to_toml()).unwrap();
        assert_eq!(net, again);
    }

    #[test]
    fn solar_refusals_name_the_plant_and_the_field() {
        let cases = [
            (
                solar_text_with("collector_area_m2 = 10000.0", "collector_area_m2 = 0.0"),
                "plant solar-east: solar.collector_area_m2 = 0 is outside 1..1000000",
            ),
            (
                solar_text_with("eta0 = 0.8", "eta0 = 1.3"),
                "plant solar-east: solar.eta0 = 1.3 is outside 0.1..1",
            ),
            (
                solar_text_with("a1_w_m2_k = 3.5", "a1_w_m2_k = -1.0"),
                "plant solar-east: solar.a1_w_m2_k = -1 is outside 0..30",
            ),
            (
                solar_text_with("a2_w_m2_k2 = 0.015", "a2_w_m2_k2 = nan"),
                "plant solar-east: solar.a2_w_m2_k2 = NaN is outside 0..0.5",
            ),
            (
                solar_text_with("tank_volume_m3 = 200.0", "tank_volume_m3 = 0.0"),
                "plant solar-east: solar.tank_volume_m3 = 0 is outside 0.1..1000000",
            ),
            (
                solar_text_with("tank_ua_w_k = 60.0", "tank_ua_w_k = -5.0"),
                "plant solar-east: solar.tank_ua_w_k = -5 is outside 0..1000000",
            ),
            (
                solar_text_with("tank_max_temp_c = 95.0", "tank_max_temp_c = 120.0"),
                "plant solar-east: solar.tank_max_temp_c = 120 is outside 40..99",
            ),
            (
                solar_text_with("min_useful_temp_c = 60.0", "min_useful_temp_c = 92.0"),
                "plant solar-east: solar.min_useful_temp_c = 92 is outside 20..90",
            ),
            (
                solar_text_with("delivery_margin_k = 5.0", "delivery_margin_k = 0.0"),
                "plant solar-east: solar.delivery_margin_k = 0 is outside 0.5..30",
            ),
            (
                solar_text_with("initial_tank_temp_c = 55.0", "initial_tank_temp_c = 97.0"),
                "plant solar-east: solar.initial_tank_temp_c = 97 is outside 0..95",
            ),
            (
                solar_text_with(
                    "design_supply_temp_c = 70.0",
                    "design_supply_temp_c = 110.0",
                ),
                "plant solar-east: design_supply_temp_c = 110 is above solar.tank_max_temp_c = 95: the plant supplies from its tank",
            ),
            (
                solar_text_with(
                    "capacity_w = 4.0e6",
                    "capacity_w = 4.0e6\nmin_load_w = 1.0e6",
                ),
                "plant solar-east: min_load_w = 1000000: a solar_thermal plant has no minimum load (it idles while its tank is cold); leave it out",
            ),
            (
                {
                    let i = SOLAR_TOML.find("[plants.solar]").unwrap();
                    let j = SOLAR_TOML.find("[[substations]]").unwrap();
                    format!("{}{}", &SOLAR_TOML[..i], &SOLAR_TOML[j..])
                },
                "plant solar-east: kind solar_thermal needs a solar table (collector_area_m2, tank_volume_m3, ...)",
            ),
            (
                solar_text_with("kind = \"solar_thermal\"", "kind = \"gas_boiler\""),
                "plant solar-east: has a solar table but kind = gas_boiler: only a solar_thermal plant has one",
            ),
        ];
        for (text, want) in cases {
            let err = Network::from_toml(&text).unwrap_err().to_string();
            assert_eq!(err, want);
        }
        let err = Network::from_toml(&solar_text_with("tank_volume_m3", "tank_volume"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `tank_volume`"), "{err}");
    }

    #[test]
    fn round_trips_through_toml() {
        let net = Network::sample("demo").unwrap();
        let again = Network::from_toml(&net.to_toml()).unwrap();
        assert_eq!(net, again);
    }
}
