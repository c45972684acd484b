//! Room heat emitters: radiators and floor heating.

use model::{Emitter, WATER_CP_J_KG_K};

/// Rating of an emitter: heat `nominal_heat_w` at supply/return/room temperatures
/// `nominal`, and the exponent of its characteristic.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EmitterRating {
    pub nominal_heat_w: f64,
    pub nominal_lmtd_k: f64,
    pub exponent: f64,
}

impl EmitterRating {
    /// Rated so the building's design heat is given at its circuit's design
    /// temperatures with the room at 20 °C.
    pub fn new(kind: Emitter, design_heat_w: f64, supply_c: f64, return_c: f64) -> Self {
        let exponent = match kind {
            Emitter::Radiator => 1.3,
            Emitter::FloorHeating => 1.1,
        };
        Self {
            nominal_heat_w: design_heat_w,
            nominal_lmtd_k: room_lmtd(supply_c, return_c, 20.0),
            exponent,
        }
    }

    /// `Q = Q_nom·(ΔT_lm/ΔT_lm,nom)^n`.
    pub fn heat_w(&self, lmtd_k: f64) -> f64 {
        if lmtd_k <= 0.0 {
            0.0
        } else {
            self.nominal_heat_w * (lmtd_k / self.nominal_lmtd_k).powf(self.exponent)
        }
    }

    /// Heat given and return temperature for water entering at `inlet_c` with
    /// `flow_kg_s` into a room at `room_c`: solves
    /// `ṁ·c_p·(T_in − T_out) = Q_nom·(ΔT_lm(T_in, T_out, T_room)/ΔT_lm,nom)^n` for T_out by bisection.
    pub fn solve(&self, inlet_c: f64, flow_kg_s: f64, room_c: f64) -> (f64, f64) {
        if flow_kg_s <= 1e-9 || inlet_c <= room_c + 1e-6 {
            return (0.0, inlet_c);
        }
        let mc = flow_kg_s * WATER_CP_J_KG_K;
        let mut lo = room_c + 1e-9; // residual > 0 here
        let mut hi = inlet_c; // residual ≤ 0 here
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            let resid = mc * (inlet_c - mid) - self.heat_w(room_lmtd(inlet_c, mid, room_c));
            if resid > 0.0 {
                lo = mid;
            } else {
                hi = mid;
            }
            if hi - lo < 1e-7 {
                break;
            }
        }
        let t_out = 0.5 * (lo + hi);
        (mc * (inlet_c - t_out), t_out)
    }
}

/// Log-mean excess temperature of an emitter over its room.
pub fn room_lmtd(inlet_c: f64, outlet_c: f64, room_c: f64) -> f64 {
    crate::hx::log_mean(inlet_c - room_c, outlet_c - room_c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_its_rating_point() {
        let r = EmitterRating::new(Emitter::Radiator, 100_000.0, 75.0, 50.0);
        // ΔT_lm,nom = 25/ln(55/30) = 41.2449 K (hand).
        assert!((r.nominal_lmtd_k - 41.2449).abs() < 1e-3);
        let flow = 100_000.0 / (WATER_CP_J_KG_K * 25.0);
        let (q, t_out) = r.solve(75.0, flow, 20.0);
        assert!((q - 100_000.0).abs() < 1.0, "{q}");
        assert!((t_out - 50.0).abs() < 1e-3, "{t_out}");
    }

    #[test]
    fn part_load_follows_the_exponent() {
        let r = EmitterRating::new(Emitter::Radiator, 100_000.0, 75.0, 50.0);
        // Halving the log-mean excess gives 0.5^1.3 = 0.406126 of the rating.
        assert!((r.heat_w(r.nominal_lmtd_k / 2.0) / 100_000.0 - 0.406126).abs() < 1e-6);
        assert_eq!(r.solve(19.0, 1.0, 20.0), (0.0, 19.0));
    }
}
