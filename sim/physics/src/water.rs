//! Properties of liquid water from IAPWS-IF97 (the `seuif97` implementation),
//! valid for district heating water from 5 to 150 °C.

/// Pressure at which properties are evaluated when the caller has none, Pa.
/// 1 MPa keeps water liquid up to 179 °C; between 0.3 and 2.5 MPa the liquid
/// properties that matter here change by less than 0.1 %.
pub const REFERENCE_PRESSURE_PA: f64 = 1.0e6;
/// Temperatures the properties are evaluated over, °C.
pub const VALID_TEMP_C: (f64, f64) = (5.0, 150.0);
/// Standard gravity, m/s².
pub const G_M_S2: f64 = 9.806_65;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Water {
    pub temp_c: f64,
    pub density_kg_m3: f64,
    pub cp_j_kg_k: f64,
    pub viscosity_pa_s: f64,
}

impl Water {
    /// Liquid water at `temp_c` (clamped to 5..150 °C) and the reference pressure.
    pub fn at(temp_c: f64) -> Self {
        let t = temp_c.clamp(VALID_TEMP_C.0, VALID_TEMP_C.1);
        let p_mpa = REFERENCE_PRESSURE_PA / 1.0e6;
        Self {
            temp_c: t,
            density_kg_m3: seuif97::pt(p_mpa, t, seuif97::OD),
            cp_j_kg_k: seuif97::pt(p_mpa, t, seuif97::OCP) * 1000.0,
            viscosity_pa_s: seuif97::pt(p_mpa, t, seuif97::ODV),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_values() {
        // Reference values for liquid water near 1 MPa (IAPWS-IF97 / IAPWS 2008 viscosity):
        // 20 °C: ρ 998.6 kg/m³, μ 1.0013 mPa·s; 80 °C: ρ 972.2, μ 0.3543 mPa·s;
        // 130 °C: ρ 935.2, μ 0.2131 mPa·s, c_p 4.263 kJ/(kg·K).
        let cases = [
            (20.0, 998.6, 1.0013e-3),
            (80.0, 972.2, 0.3543e-3),
            (130.0, 935.2, 0.2131e-3),
        ];
        for (t, rho, mu) in cases {
            let w = Water::at(t);
            assert!((w.density_kg_m3 - rho).abs() < 0.1, "{t}: {w:?}");
            assert!((w.viscosity_pa_s - mu).abs() / mu < 1e-3, "{t}: {w:?}");
        }
        assert!((Water::at(130.0).cp_j_kg_k - 4263.0).abs() < 1.0);
        // Viscosity falls by a factor of almost 5 between 20 and 130 °C: a table that
        // stops at 100 °C would be badly wrong here.
        assert!(Water::at(20.0).viscosity_pa_s / Water::at(130.0).viscosity_pa_s > 4.6);
        assert_eq!(Water::at(500.0).temp_c, 150.0);
    }
}
