//! Solar thermal plants: a flat-plate collector field and a fully mixed
//! storage tank.
//!
//! The collectors follow the quadratic efficiency curve of EN 12975 / ISO 9806,
//! `Q = A·(η₀·G − a₁·ΔT − a₂·ΔT²)`, never below 0 (the collector loop's pump
//! stops), with `G` the irradiance on the collectors' plane (the global
//! horizontal times the field's `irradiance_gain`) and `ΔT` the collectors'
//! mean temperature above the outdoor air,
//! taken as the tank's (the loop returns tank water warmed by a few kelvin).
//! The tank is one fully mixed volume losing `UA·(T − T_out)` to the outdoor
//! air; over a step with constant gains it relaxes exponentially toward its
//! equilibrium, which is integrated exactly (any step length is stable). A tank
//! that would pass its maximum stagnates: it stays at the maximum and the
//! excess is dumped (counted).

use model::WATER_CP_J_KG_K;
use model::network::SolarThermal;

use crate::WATER_DENSITY_KG_M3;

/// Heat a collector field puts into its loop, W:
/// `A·(η₀·G − a₁·ΔT − a₂·ΔT²)` with `G = irradiance_gain·GHI` and
/// `ΔT = mean_c − outdoor_c`, never below 0.
pub fn collector_heat_w(spec: &SolarThermal, ghi_w_m2: f64, mean_c: f64, outdoor_c: f64) -> f64 {
    let g = spec.irradiance_gain * ghi_w_m2.max(0.0);
    if g <= 0.0 {
        return 0.0;
    }
    let dt = mean_c - outdoor_c;
    let per_m2 = spec.eta0 * g - spec.a1_w_m2_k * dt - spec.a2_w_m2_k2 * dt * dt;
    (spec.collector_area_m2 * per_m2).max(0.0)
}

/// A storage tank's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tank {
    /// Heat capacity of its water, J/K.
    pub capacity_j_k: f64,
    /// Heat loss per kelvin above the ambient, W/K.
    pub ua_w_k: f64,
    /// Hottest it gets, °C.
    pub max_c: f64,
}

impl Tank {
    pub fn of(spec: &SolarThermal) -> Self {
        Self {
            capacity_j_k: spec.tank_volume_m3 * WATER_DENSITY_KG_M3 * WATER_CP_J_KG_K,
            ua_w_k: spec.tank_ua_w_k(),
            max_c: spec.tank_max_temp_c,
        }
    }

    /// Heat held above `reference_c`, J.
    pub fn heat_above_j(&self, temp_c: f64, reference_c: f64) -> f64 {
        self.capacity_j_k * (temp_c - reference_c)
    }
}

/// What one step did to a tank.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TankStep {
    /// Temperature at the end of the step, °C.
    pub temp_c: f64,
    /// Heat lost to the ambient over the step, J.
    pub loss_j: f64,
    /// Heat dumped at stagnation (the tank at its maximum), J.
    pub dumped_j: f64,
}

/// Steps a fully mixed tank at `temp_c` by `dt_s` under a constant net heat
/// flow `net_w` (collectors minus delivery) and losses `UA·(T − ambient_c)`:
/// `C·dT/dt = net − UA·(T − T_a)`, solved exactly:
/// `T(t) = T_eq + (T₀ − T_eq)·e^(−t/τ)`, `T_eq = T_a + net/UA`, `τ = C/UA`.
/// The loss is the integral `UA·∫(T − T_a)dt`. A tank that reaches its
/// maximum within the step stays there for the rest of it, losing
/// `UA·(T_max − T_a)`, and what comes in beyond that is dumped.
pub fn tank_step(tank: &Tank, temp_c: f64, ambient_c: f64, net_w: f64, dt_s: f64) -> TankStep {
    let c = tank.capacity_j_k;
    let (end_c, loss_j) = relax(tank, temp_c, ambient_c, net_w, dt_s);
    if end_c <= tank.max_c {
        return TankStep {
            temp_c: end_c,
            loss_j,
            dumped_j: 0.0,
        };
    }
    // When it reaches the maximum: T(t*) = T_max.
    let reach_s = if temp_c >= tank.max_c {
        0.0
    } else if tank.ua_w_k > 0.0 {
        let eq_c = ambient_c + net_w / tank.ua_w_k;
        c / tank.ua_w_k * ((temp_c - eq_c) / (tank.max_c - eq_c)).ln()
    } else {
        c * (tank.max_c - temp_c) / net_w
    }
    .clamp(0.0, dt_s);
    let (_, before_j) = relax(tank, temp_c, ambient_c, net_w, reach_s);
    let loss_j = before_j + tank.ua_w_k * (tank.max_c - ambient_c) * (dt_s - reach_s);
    TankStep {
        temp_c: tank.max_c,
        loss_j,
        dumped_j: (net_w * dt_s - loss_j - c * (tank.max_c - temp_c)).max(0.0),
    }
}

/// The tank's temperature after `dt_s` and its loss over them, J, without a maximum.
fn relax(tank: &Tank, temp_c: f64, ambient_c: f64, net_w: f64, dt_s: f64) -> (f64, f64) {
    let c = tank.capacity_j_k;
    if tank.ua_w_k > 0.0 {
        let tau_s = c / tank.ua_w_k;
        let eq_c = ambient_c + net_w / tank.ua_w_k;
        let decay = (-dt_s / tau_s).exp();
        let end_c = eq_c + (temp_c - eq_c) * decay;
        // ∫(T − T_a)dt over the step.
        let excess_k_s = (eq_c - ambient_c) * dt_s + (temp_c - eq_c) * tau_s * (1.0 - decay);
        (end_c, tank.ua_w_k * excess_k_s)
    } else {
        (temp_c + net_w * dt_s / c, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SolarThermal {
        SolarThermal {
            collector_area_m2: 1000.0,
            eta0: 0.8,
            a1_w_m2_k: 3.5,
            a2_w_m2_k2: 0.015,
            irradiance_gain: 1.0,
            tank_volume_m3: 100.0,
            tank_ua_w_k: Some(50.0),
            tank_max_temp_c: 95.0,
            min_useful_temp_c: 60.0,
            delivery_margin_k: 5.0,
            initial_tank_temp_c: 50.0,
        }
    }

    #[test]
    fn collector_yield_matches_the_efficiency_curve_by_hand() {
        let s = spec();
        // G = 800 W/m², tank 60 °C, outdoor 0 °C: ΔT = 60 K,
        // per m²: 0.8·800 − 3.5·60 − 0.015·3600 = 640 − 210 − 54 = 376 W.
        assert!((collector_heat_w(&s, 800.0, 60.0, 0.0) - 376_000.0).abs() < 1e-6);
        // Efficiency 376/800 = 0.47.
        // G = 400, ΔT = 70 K: 320 − 245 − 73.5 = 1.5 W/m².
        assert!((collector_heat_w(&s, 400.0, 60.0, -10.0) - 1_500.0).abs() < 1e-6);
        // Below the no-gain point the loop stops: 0, never negative.
        assert_eq!(collector_heat_w(&s, 300.0, 60.0, -10.0), 0.0);
        assert_eq!(collector_heat_w(&s, 0.0, 20.0, 20.0), 0.0);
        assert_eq!(collector_heat_w(&s, -5.0, 20.0, 20.0), 0.0);
        // At ΔT = 0 the optical efficiency alone: 0.8·500·1000.
        assert!((collector_heat_w(&s, 500.0, 5.0, 5.0) - 400_000.0).abs() < 1e-6);
        // A tilted field: 1.8 × 450 W/m² horizontal = 810 W/m² on the plane,
        // 0.8·810 − 3.5·60 − 54 = 384 W/m².
        let tilted = SolarThermal {
            irradiance_gain: 1.8,
            ..spec()
        };
        assert!((collector_heat_w(&tilted, 450.0, 60.0, 0.0) - 384_000.0).abs() < 1e-6);
    }

    #[test]
    fn tank_rises_by_the_net_heat_over_m_cp() {
        let s = SolarThermal {
            tank_ua_w_k: Some(0.0),
            ..spec()
        };
        let tank = Tank::of(&s);
        // 100 m³ · 972 kg/m³ · 4186 J/kgK = 406.88 MJ/K.
        assert!((tank.capacity_j_k - 406_879_200.0).abs() < 1.0);
        // 1 MW in, 0.4 MW out for an hour: 2.16 GJ / 406.88 MJ/K = 5.3087 K.
        let st = tank_step(&tank, 60.0, 0.0, 1.0e6 - 0.4e6, 3_600.0);
        assert!((st.temp_c - 65.308_7).abs() < 1e-3, "{}", st.temp_c);
        assert_eq!((st.loss_j, st.dumped_j), (0.0, 0.0));
        // Drawing more than comes in cools it the same way.
        let st = tank_step(&tank, 60.0, 0.0, -0.6e6, 3_600.0);
        assert!((st.temp_c - (60.0 - 5.308_7)).abs() < 1e-3);
    }

    #[test]
    fn an_idle_tank_decays_toward_the_ambient_with_its_time_constant() {
        let tank = Tank::of(&spec());
        // τ = C/UA = 406.88e6 / 50 = 8.1376e6 s (94 days). After one τ,
        // a tank 60 K above the ambient is 60/e = 22.07 K above.
        let tau = tank.capacity_j_k / tank.ua_w_k;
        let st = tank_step(&tank, 70.0, 10.0, 0.0, tau);
        assert!((st.temp_c - (10.0 + 60.0 / std::f64::consts::E)).abs() < 1e-9);
        // The loss is the heat the tank gave up.
        assert!((st.loss_j - tank.capacity_j_k * (70.0 - st.temp_c)).abs() < 1e-3);
        // Over a day: 60·e^(−86400/τ) = 59.3664 K; loss ≈ UA·ΔT·t = 50·60·86400 = 259 MJ.
        let st = tank_step(&tank, 70.0, 10.0, 0.0, 86_400.0);
        assert!((st.temp_c - 69.3664).abs() < 1e-3, "{}", st.temp_c);
        assert!((st.loss_j / 1e6 - 257.8).abs() < 0.5, "{}", st.loss_j);
        // Many short steps and one long one agree (exact integration).
        let mut t = 70.0;
        let mut loss = 0.0;
        for _ in 0..1440 {
            let s = tank_step(&tank, t, 10.0, 2.0e4, 60.0);
            t = s.temp_c;
            loss += s.loss_j;
        }
        let once = tank_step(&tank, 70.0, 10.0, 2.0e4, 86_400.0);
        assert!((t - once.temp_c).abs() < 1e-9);
        assert!((loss - once.loss_j).abs() < 1e-3 * once.loss_j);
        // Energy: what came in = stored + lost.
        assert!(
            (2.0e4 * 86_400.0 - tank.capacity_j_k * (once.temp_c - 70.0) - once.loss_j).abs() < 1.0
        );
    }

    #[test]
    fn a_full_tank_stagnates_and_counts_what_it_dumps() {
        let s = SolarThermal {
            tank_ua_w_k: Some(0.0),
            ..spec()
        };
        let tank = Tank::of(&s);
        // 94 °C plus 2 MW for an hour: 7.2 GJ / 406.88 MJ/K = 17.696 K → 111.7 °C;
        // held at 95 °C, 16.696 K · 406.88 MJ/K = 6.793 GJ dumped.
        let st = tank_step(&tank, 94.0, 0.0, 2.0e6, 3_600.0);
        assert_eq!(st.temp_c, 95.0);
        assert!((st.dumped_j - (7.2e9 - tank.capacity_j_k)).abs() < 1.0);
        // With losses (UA = 50 W/K, outdoor 5 °C): τ = 8.1376e6 s, T_eq =
        // 5 + 2e6/50 = 40005 °C; 94 → 95 °C takes τ·ln(39911/39910) = 203.9 s
        // (≈ C·1 K / 2 MW = 203.4 s), then it loses 50·90 = 4.5 kW held at 95 °C.
        let tank = Tank::of(&spec());
        let st = tank_step(&tank, 94.0, 5.0, 2.0e6, 3_600.0);
        let reach = tank.capacity_j_k / 50.0 * (39_911.0_f64 / 39_910.0).ln();
        assert!((reach - 203.9).abs() < 0.1, "{reach}");
        let loss = st.loss_j - 4_500.0 * (3_600.0 - reach);
        // Before it: about 50·89.5 W for 203.9 s.
        assert!((loss - 50.0 * 89.5 * reach).abs() < 5.0, "{loss}");
        assert!(
            (2.0e6 * 3_600.0 - tank.capacity_j_k - st.loss_j - st.dumped_j).abs() < 1e-3,
            "{st:?}"
        );
    }
}
