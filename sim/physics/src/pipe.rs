//! Steady heat loss of a buried pipe.

use model::WATER_CP_J_KG_K;

/// Outlet temperature of a pipe losing heat to the ground (steady state):
/// `T_out = T_g + (T_in − T_g)·exp(−U′·L / (ṁ·c_p))`.
/// With no flow the water sits at ground temperature.
pub fn outlet_temp_c(
    inlet_c: f64,
    ground_c: f64,
    loss_w_m_k: f64,
    length_m: f64,
    flow_kg_s: f64,
) -> f64 {
    if flow_kg_s <= 1e-9 {
        return ground_c;
    }
    ground_c + (inlet_c - ground_c) * (-loss_w_m_k * length_m / (flow_kg_s * WATER_CP_J_KG_K)).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_calculation() {
        // 1 km of DN200 (0.37 W/(m·K)), 10 kg/s at 100 °C, ground 5 °C:
        // exponent = 0.37·1000/(10·4186) = 0.0088390; T = 5 + 95·e^-0.0088390 = 99.1640 °C.
        let t = outlet_temp_c(100.0, 5.0, 0.37, 1000.0, 10.0);
        assert!((t - 99.1640).abs() < 0.001, "{t}");
        assert_eq!(outlet_temp_c(100.0, 5.0, 0.37, 1000.0, 0.0), 5.0);
    }
}
