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
            nominal_lmtd_k: room_lmtd(supply_c, return_c, model::DESIGN_ROOM_TEMP_C),
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
    /// `ṁ·c_p·(T_in − T_out) = Q_nom·(ΔT_lm(T_in, T_out, T_room)/ΔT_lm,nom)^n` for T_out.
    pub fn solve(&self, inlet_c: f64, flow_kg_s: f64, room_c: f64) -> (f64, f64) {
        self.solve_near(inlet_c, flow_kg_s, room_c, 0.5 * (inlet_c + room_c))
    }

    /// [`EmitterRating::solve`] starting from a guess of the return
    /// temperature (the last step's): Newton's method on the residual, kept
    /// inside a shrinking bracket, so it is as safe as bisection and usually
    /// done in three or four iterations.
    pub fn solve_near(
        &self,
        inlet_c: f64,
        flow_kg_s: f64,
        room_c: f64,
        guess_c: f64,
    ) -> (f64, f64) {
        if flow_kg_s <= 1e-9 || inlet_c <= room_c + 1e-6 {
            return (0.0, inlet_c);
        }
        let mc = flow_kg_s * WATER_CP_J_KG_K;
        let a = inlet_c - room_c;
        // Residual r(T) = ṁc(T_in − T) − Q(T), falling in T; r > 0 at the room
        // temperature, r ≤ 0 at the inlet temperature.
        let residual = |t: f64| {
            let b = t - room_c;
            if b <= 0.0 {
                return (mc * (inlet_c - t), -mc);
            }
            // ΔT_lm = (a − b)/ln(a/b) and dΔT_lm/db = (a/b − 1 − ln(a/b))/ln(a/b)²
            // (→ a and 1/2 when b → a), with one logarithm.
            let (l, dl_db) = if (a - b).abs() < 1e-6 * a {
                (0.5 * (a + b), 0.5)
            } else {
                let ln = (a / b).ln();
                ((a - b) / ln, (a / b - 1.0 - ln) / (ln * ln))
            };
            let q = self.heat_w(l);
            let dq_dt = self.exponent * q / l * dl_db;
            (mc * (inlet_c - t) - q, -mc - dq_dt)
        };
        let (mut lo, mut hi) = (room_c + 1e-9, inlet_c);
        let mut t = guess_c.clamp(lo, hi);
        let tolerance_w = 1e-7 * mc * a;
        // Newton safeguarded as in `rtsafe` (Numerical Recipes §9.4): bisect
        // when Newton would leave the bracket or is not halving the residual.
        let mut step_old = hi - lo;
        for _ in 0..100 {
            let (r, dr) = residual(t);
            if r.abs() <= tolerance_w {
                break;
            }
            if r > 0.0 {
                lo = t;
            } else {
                hi = t;
            }
            if hi - lo < 1e-7 {
                t = 0.5 * (lo + hi);
                break;
            }
            let newton = t - r / dr;
            let newton_ok =
                dr < 0.0 && newton > lo && newton < hi && (2.0 * r).abs() <= (step_old * dr).abs();
            let next = if newton_ok { newton } else { 0.5 * (lo + hi) };
            step_old = (next - t).abs();
            t = next;
        }
        (mc * (inlet_c - t), t)
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

    /// Plain bisection on the same balance, as the reference.
    fn bisect(e: &EmitterRating, inlet: f64, flow: f64, room: f64) -> f64 {
        let mc = flow * WATER_CP_J_KG_K;
        let (mut lo, mut hi) = (room + 1e-9, inlet);
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if mc * (inlet - mid) > e.heat_w(room_lmtd(inlet, mid, room)) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }

    #[test]
    fn newton_from_any_guess_finds_the_balance_bisection_finds() {
        let r = EmitterRating::new(Emitter::Radiator, 100_000.0, 75.0, 50.0);
        let f = EmitterRating::new(Emitter::FloorHeating, 100_000.0, 45.0, 35.0);
        let cases = [
            (75.0, 0.95, 20.0),
            (60.0, 0.1, 16.0),
            (40.0, 3.0, 22.0),
            (30.0, 0.01, 18.0),
        ];
        for e in [r, f] {
            for (inlet, flow, room) in cases {
                let want = bisect(&e, inlet, flow, room);
                for guess in [room, 0.5 * (inlet + room), inlet, -50.0, 500.0] {
                    let (q, t) = e.solve_near(inlet, flow, room, guess);
                    assert!(
                        (t - want).abs() < 1e-5,
                        "{inlet} {flow} {room} from {guess}: {t} vs {want}"
                    );
                    assert!((q - flow * WATER_CP_J_KG_K * (inlet - t)).abs() < 1e-6);
                    if t - room > 1e-3 {
                        // Water side and room side agree.
                        let room_side = e.heat_w(room_lmtd(inlet, t, room));
                        assert!((q - room_side).abs() < 1e-3 * q, "{q} vs {room_side}");
                    }
                }
            }
        }
    }
}
