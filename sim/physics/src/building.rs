//! Building thermal model: two nodes (room air with furnishings, and the
//! building's thermal mass), stepped implicitly so any step length is stable.
//!
//! ```text
//! C_a·dT_a/dt = Q_heat + Q_int − H_ao·(T_a − T_o) − H_am·(T_a − T_m)
//! C_m·dT_m/dt = H_am·(T_a − T_m) − H_mo·(T_m − T_o)
//! ```
//! The conductances are split from the building's total loss coefficient
//! `H = Q_design/(20 °C − T_o,design)`: 30 % direct (windows, ventilation), the
//! rest through the envelope behind the mass, with `H_am = 10·H`; so in steady
//! state `H_ao + H_am·H_mo/(H_am + H_mo) = H`.

use serde::{Deserialize, Serialize};

/// Heat capacity of room air and furnishings per m² of floor, J/(K·m²).
pub const AIR_CAPACITY_J_K_M2: f64 = 15_000.0;
/// Internal gains (people, appliances) per m² of floor, W/m².
pub const INTERNAL_GAINS_W_M2: f64 = 3.0;
/// Effective solar aperture per m² of floor (window share × g-value × orientation), m²/m².
pub const SOLAR_APERTURE_M2_M2: f64 = 0.03;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BuildingThermal {
    pub h_ao_w_k: f64,
    pub h_am_w_k: f64,
    pub h_mo_w_k: f64,
    pub c_air_j_k: f64,
    pub c_mass_j_k: f64,
    pub gains_w: f64,
    /// Effective area through which global horizontal sunshine heats the rooms, m².
    #[serde(default)]
    pub solar_aperture_m2: f64,
}

impl BuildingThermal {
    pub fn new(
        design_heat_w: f64,
        outdoor_design_c: f64,
        floor_area_m2: f64,
        capacity_j_k_m2: f64,
    ) -> Self {
        let h = design_heat_w / (model::DESIGN_ROOM_TEMP_C - outdoor_design_c);
        let h_ao = 0.3 * h;
        let h_am = 10.0 * h;
        // h_am·h_mo/(h_am + h_mo) = 0.7·h  ⇒  h_mo = 0.7·h·h_am/(h_am − 0.7·h)
        let h_mo = 0.7 * h * h_am / (h_am - 0.7 * h);
        Self {
            h_ao_w_k: h_ao,
            h_am_w_k: h_am,
            h_mo_w_k: h_mo,
            c_air_j_k: AIR_CAPACITY_J_K_M2 * floor_area_m2,
            c_mass_j_k: capacity_j_k_m2 * floor_area_m2,
            gains_w: INTERNAL_GAINS_W_M2 * floor_area_m2,
            solar_aperture_m2: SOLAR_APERTURE_M2_M2 * floor_area_m2,
        }
    }

    /// Total steady loss coefficient, W/K.
    pub fn h_total_w_k(&self) -> f64 {
        self.h_ao_w_k + self.h_am_w_k * self.h_mo_w_k / (self.h_am_w_k + self.h_mo_w_k)
    }

    /// Backward-Euler step: returns (air, mass) temperatures after `dt_s`.
    /// `heat_w` includes every gain from outside the building's own model
    /// (emitters, sunshine); internal gains are added here.
    pub fn step(
        &self,
        air_c: f64,
        mass_c: f64,
        heat_w: f64,
        outdoor_c: f64,
        dt_s: f64,
    ) -> (f64, f64) {
        let a11 = self.c_air_j_k / dt_s + self.h_ao_w_k + self.h_am_w_k;
        let a12 = -self.h_am_w_k;
        let a21 = -self.h_am_w_k;
        let a22 = self.c_mass_j_k / dt_s + self.h_am_w_k + self.h_mo_w_k;
        let b1 = self.c_air_j_k / dt_s * air_c + heat_w + self.gains_w + self.h_ao_w_k * outdoor_c;
        let b2 = self.c_mass_j_k / dt_s * mass_c + self.h_mo_w_k * outdoor_c;
        let det = a11 * a22 - a12 * a21;
        ((b1 * a22 - a12 * b2) / det, (a11 * b2 - a21 * b1) / det)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_state_matches_the_loss_coefficient() {
        let b = BuildingThermal::new(270_000.0, -7.0, 6000.0, 165_000.0);
        assert!((b.h_total_w_k() - 10_000.0).abs() < 1e-6);
        // Long steps converge to the steady state: T = T_o + (Q + gains)/H.
        let (mut a, mut m) = (10.0, 10.0);
        for _ in 0..200 {
            (a, m) = b.step(a, m, 250_000.0 - b.gains_w, -5.0, 86_400.0);
        }
        assert!((a - 20.0).abs() < 1e-6, "{a}");
    }

    #[test]
    fn cools_with_the_building_time_constant() {
        // Without heat, the mass cools toward outdoors with τ ≈ C_m/H_mo-ish; check monotone
        // cooling and that one hour cools a medium building by well under 1 K from 20 °C at 0 °C.
        let b = BuildingThermal::new(270_000.0, -7.0, 6000.0, 165_000.0);
        let (mut a, mut m) = (20.0, 20.0);
        for _ in 0..360 {
            let (a2, m2) = b.step(a, m, 0.0, 0.0, 10.0);
            assert!(a2 <= a + 1e-9 && m2 <= m + 1e-9);
            (a, m) = (a2, m2);
        }
        assert!(a > 18.0 && a < 20.0, "{a}");
    }
}
