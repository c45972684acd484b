//! Properties of liquid water from IAPWS-IF97 (the `seuif97` implementation),
//! valid for district heating water from 5 to 150 °C; density and viscosity
//! also from a table of IF97 values ([`hydraulic_properties`]) where they are
//! needed by the ten thousand.

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

/// Spacing of the table behind [`hydraulic_properties`], K.
const TABLE_STEP_K: f64 = 0.5;
/// Intervals of that table over [`VALID_TEMP_C`].
const TABLE_INTERVALS: usize = 290;

/// Per 0.5 K interval of 5..150 °C, the cubic `c0 + c1·u + c2·u² + c3·u³`
/// (u ∈ [0, 1] across the interval) of density and of viscosity.
struct Table {
    density: Vec<[f64; 4]>,
    viscosity: Vec<[f64; 4]>,
}

/// The table, built on first use from IAPWS-IF97 itself (about 600
/// evaluations, once per process).
fn table() -> &'static Table {
    static TABLE: std::sync::OnceLock<Table> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let p_mpa = REFERENCE_PRESSURE_PA / 1.0e6;
        // Samples at 4.5, 5, …, 150.5 °C: one outside each end, for the end
        // intervals' cubics (still liquid at 1 MPa).
        let at = |i: usize| VALID_TEMP_C.0 + (i as f64 - 1.0) * TABLE_STEP_K;
        let samples = TABLE_INTERVALS + 3;
        let rho: Vec<f64> = (0..samples)
            .map(|i| seuif97::pt(p_mpa, at(i), seuif97::OD))
            .collect();
        let mu: Vec<f64> = (0..samples)
            .map(|i| seuif97::pt(p_mpa, at(i), seuif97::ODV))
            .collect();
        // The cubic through the samples at u = −1, 0, 1, 2 (Lagrange, in powers of u).
        let cubic = |y: &[f64]| {
            let (ym, y0, y1, y2) = (y[0], y[1], y[2], y[3]);
            [
                y0,
                -ym / 3.0 - y0 / 2.0 + y1 - y2 / 6.0,
                ym / 2.0 - y0 + y1 / 2.0,
                -ym / 6.0 + y0 / 2.0 - y1 / 2.0 + y2 / 6.0,
            ]
        };
        Table {
            density: rho.windows(4).map(cubic).collect(),
            viscosity: mu.windows(4).map(cubic).collect(),
        }
    })
}

/// Density (kg/m³) and dynamic viscosity (Pa·s) of liquid water at `temp_c`
/// (clamped to 5..150 °C) and the reference pressure, as [`Water::at`] gives
/// them to within 2e-8 relative, from a table of IAPWS-IF97 values (0.5 K
/// steps, local cubics): a few multiplications instead of the full IF97
/// equations. For the hydraulics of the design calculation, which needs both
/// for every link in every round.
pub fn hydraulic_properties(temp_c: f64) -> (f64, f64) {
    let t = temp_c.clamp(VALID_TEMP_C.0, VALID_TEMP_C.1);
    let x = (t - VALID_TEMP_C.0) / TABLE_STEP_K;
    // The last interval also covers its right end (150 °C).
    let i = (x as usize).min(TABLE_INTERVALS - 1);
    let u = x - i as f64;
    let tab = table();
    let eval = |c: &[f64; 4]| c[0] + u * (c[1] + u * (c[2] + u * c[3]));
    (eval(&tab.density[i]), eval(&tab.viscosity[i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_matches_iapws_if97_within_2e_8_relative() {
        // Every 0.01 K from 5 to 150 °C (table points, interval middles and
        // everything between), and beyond the ends (clamped).
        let mut worst = (0.0f64, 0.0f64);
        for i in 0..=14_500 {
            let t = 5.0 + i as f64 * 0.01;
            let w = Water::at(t);
            let (rho, mu) = hydraulic_properties(t);
            worst.0 = worst.0.max((rho - w.density_kg_m3).abs() / w.density_kg_m3);
            worst.1 = worst
                .1
                .max((mu - w.viscosity_pa_s).abs() / w.viscosity_pa_s);
        }
        assert!(worst.0 < 2e-8 && worst.1 < 2e-8, "{worst:?}");
        for t in [-10.0, 4.999, 150.0, 150.001, 400.0] {
            let w = Water::at(t);
            let (rho, mu) = hydraulic_properties(t);
            assert!(
                (rho - w.density_kg_m3).abs() / w.density_kg_m3 < 2e-8,
                "{t}"
            );
            assert!(
                (mu - w.viscosity_pa_s).abs() / w.viscosity_pa_s < 2e-8,
                "{t}"
            );
        }
    }

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
