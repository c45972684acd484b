//! Counterflow heat exchanger by effectiveness–NTU.

use model::WATER_CP_J_KG_K;

/// Result of one heat exchanger evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HxOutlet {
    pub heat_w: f64,
    pub hot_out_c: f64,
    pub cold_out_c: f64,
}

/// Counterflow exchanger: `NTU = UA/C_min`, `Cr = C_min/C_max`,
/// `ε = (1 − e^(−NTU(1−Cr))) / (1 − Cr·e^(−NTU(1−Cr)))` (`ε = NTU/(1+NTU)` at Cr = 1),
/// `Q = ε·C_min·(T_hot,in − T_cold,in)`.
pub fn counterflow(
    ua_w_k: f64,
    hot_in_c: f64,
    hot_flow_kg_s: f64,
    cold_in_c: f64,
    cold_flow_kg_s: f64,
) -> HxOutlet {
    let c_hot = hot_flow_kg_s.max(0.0) * WATER_CP_J_KG_K;
    let c_cold = cold_flow_kg_s.max(0.0) * WATER_CP_J_KG_K;
    if c_hot < 1e-6 || c_cold < 1e-6 || ua_w_k <= 0.0 || hot_in_c <= cold_in_c {
        return HxOutlet {
            heat_w: 0.0,
            hot_out_c: hot_in_c,
            cold_out_c: cold_in_c,
        };
    }
    let c_min = c_hot.min(c_cold);
    let cr = c_min / c_hot.max(c_cold);
    let ntu = ua_w_k / c_min;
    let eff = effectiveness(ntu, cr);
    let heat_w = eff * c_min * (hot_in_c - cold_in_c);
    HxOutlet {
        heat_w,
        hot_out_c: hot_in_c - heat_w / c_hot,
        cold_out_c: cold_in_c + heat_w / c_cold,
    }
}

pub fn effectiveness(ntu: f64, cr: f64) -> f64 {
    if (1.0 - cr).abs() < 1e-9 {
        ntu / (1.0 + ntu)
    } else {
        let e = (-ntu * (1.0 - cr)).exp();
        (1.0 - e) / (1.0 - cr * e)
    }
}

/// UA of a plate exchanger at part flow, with equal film resistances on both
/// sides, each scaling with flow^0.8: `UA = 2·UA₀ / ((ṁ_h0/ṁ_h)^0.8 + (ṁ_c0/ṁ_c)^0.8)`.
pub fn ua_at_flow(
    ua_design_w_k: f64,
    hot_flow_kg_s: f64,
    hot_design_kg_s: f64,
    cold_flow_kg_s: f64,
    cold_design_kg_s: f64,
) -> f64 {
    if hot_flow_kg_s <= 1e-9 || cold_flow_kg_s <= 1e-9 {
        return 0.0;
    }
    let rh = (hot_design_kg_s / hot_flow_kg_s).powf(0.8);
    let rc = (cold_design_kg_s / cold_flow_kg_s).powf(0.8);
    2.0 * ua_design_w_k / (rh + rc)
}

/// Log-mean temperature difference of a counterflow exchanger.
pub fn lmtd(hot_in_c: f64, hot_out_c: f64, cold_in_c: f64, cold_out_c: f64) -> f64 {
    log_mean(hot_in_c - cold_out_c, hot_out_c - cold_in_c)
}

/// Logarithmic mean of two positive temperature differences, `(d1 − d2)/ln(d1/d2)`
/// (their common value when equal; 0 when either is not positive).
pub fn log_mean(d1: f64, d2: f64) -> f64 {
    if d1 <= 0.0 || d2 <= 0.0 {
        0.0
    } else if (d1 - d2).abs() < 1e-9 {
        d1
    } else {
        (d1 - d2) / (d1 / d2).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_point_round_trips_through_lmtd() {
        // Design 110/55 primary, 75/50 secondary, 1 MW.
        let q = 1.0e6;
        let m_h = q / (WATER_CP_J_KG_K * 55.0);
        let m_c = q / (WATER_CP_J_KG_K * 25.0);
        let ua = q / lmtd(110.0, 55.0, 50.0, 75.0);
        let out = counterflow(ua, 110.0, m_h, 50.0, m_c);
        assert!((out.heat_w - q).abs() / q < 1e-9, "{out:?}");
        assert!((out.hot_out_c - 55.0).abs() < 1e-6);
        assert!((out.cold_out_c - 75.0).abs() < 1e-6);
    }

    #[test]
    fn effectiveness_matches_hand_values() {
        // NTU 1, Cr 0.5: e = exp(-0.5) = 0.606531; ε = 0.393469/0.696735 = 0.564733.
        assert!((effectiveness(1.0, 0.5) - 0.564733).abs() < 1e-6);
        // Balanced: NTU 2, Cr 1: ε = 2/3.
        assert!((effectiveness(2.0, 1.0) - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn energy_balances_on_both_sides() {
        let out = counterflow(20_000.0, 95.0, 3.0, 45.0, 5.0);
        let hot = 3.0 * WATER_CP_J_KG_K * (95.0 - out.hot_out_c);
        let cold = 5.0 * WATER_CP_J_KG_K * (out.cold_out_c - 45.0);
        assert!((hot - out.heat_w).abs() < 1e-6 && (cold - out.heat_w).abs() < 1e-6);
        assert_eq!(counterflow(20_000.0, 95.0, 0.0, 45.0, 5.0).heat_w, 0.0);
    }
}
