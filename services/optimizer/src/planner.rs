//! The planning core: supply setpoints for every substation and plant. Pure:
//! it sees only telemetry-derived inputs, never the simulator.
//!
//! Substations: the group's supply curve at the measured outdoor temperature,
//! plus a bounded trim integrated from the coldest monitored room toward
//! [`TARGET_ROOM_C`] (just above 18 °C with a margin), so that homes are kept
//! warm enough instead of overheated. Plants: enough supply temperature to
//! serve the hottest substation setpoint through its heat exchanger.

use model::SupplyCurve;

/// Room temperature the trim aims the coldest room at, °C.
pub const TARGET_ROOM_C: f64 = 19.0;
/// Trim gain, K of supply per K of room error per hour.
pub const TRIM_GAIN_K_PER_K_H: f64 = 3.0;
/// The trim never exceeds this, K.
pub const MAX_TRIM_K: f64 = 10.0;
/// Primary supply above the hottest secondary setpoint, K (heat exchanger approach + losses).
pub const PLANT_MARGIN_K: f64 = 30.0;

/// What the planner knows of one substation.
#[derive(Clone, Debug, PartialEq)]
pub struct SubstationInput {
    pub outdoor_c: Option<f64>,
    pub coldest_room_c: Option<f64>,
    pub limits_c: (f64, f64),
    /// The trim carried from the previous interval, K.
    pub trim_k: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SubstationPlan {
    pub setpoint_c: f64,
    pub trim_k: f64,
}

/// One substation's setpoint for the next interval of `dt_h` hours.
pub fn plan_substation(
    curve: &SupplyCurve,
    s: &SubstationInput,
    dt_h: f64,
) -> Option<SubstationPlan> {
    let outdoor = s.outdoor_c?;
    let mut trim = s.trim_k;
    if let Some(room) = s.coldest_room_c {
        trim += TRIM_GAIN_K_PER_K_H * (TARGET_ROOM_C - room) * dt_h;
    }
    trim = trim.clamp(-MAX_TRIM_K, MAX_TRIM_K);
    let base = curve.supply_temp_c(outdoor);
    let (lo, hi) = (
        s.limits_c.0.max(curve.min_supply_temp_c()),
        s.limits_c.1.min(curve.max_supply_temp_c()),
    );
    let setpoint = (base + trim).clamp(lo, hi);
    // Do not keep integrating against a limit.
    let trim = setpoint - base;
    Some(SubstationPlan {
        setpoint_c: setpoint,
        trim_k: trim,
    })
}

/// A plant's supply setpoint given the substation setpoints it serves.
pub fn plan_plant(
    curve: &SupplyCurve,
    outdoor_c: Option<f64>,
    substation_setpoints_c: &[f64],
    limits_c: (f64, f64),
) -> f64 {
    let from_curve = outdoor_c.map_or(curve.max_supply_temp_c(), |t| curve.supply_temp_c(t));
    let needed = substation_setpoints_c
        .iter()
        .fold(f64::NEG_INFINITY, |a, &b| a.max(b))
        + PLANT_MARGIN_K;
    from_curve.max(needed).clamp(limits_c.0, limits_c.1)
}

#[cfg(test)]
mod tests {
    use model::CurvePoint;

    use super::*;

    fn curve() -> SupplyCurve {
        SupplyCurve::new(
            vec![
                CurvePoint {
                    outdoor_temp_c: -10.0,
                    supply_temp_c: 80.0,
                },
                CurvePoint {
                    outdoor_temp_c: 10.0,
                    supply_temp_c: 40.0,
                },
            ],
            35.0,
            85.0,
            (25.0, 95.0),
        )
        .unwrap()
    }

    #[test]
    fn cold_rooms_raise_and_warm_rooms_lower_the_setpoint() {
        let input = |room| SubstationInput {
            outdoor_c: Some(0.0),
            coldest_room_c: Some(room),
            limits_c: (25.0, 95.0),
            trim_k: 0.0,
        };
        let cold = plan_substation(&curve(), &input(17.0), 0.25).unwrap();
        // 3 K/(K·h) · 2 K · 0.25 h = 1.5 K above the curve's 60 °C.
        assert!((cold.setpoint_c - 61.5).abs() < 1e-9);
        let warm = plan_substation(&curve(), &input(23.0), 0.25).unwrap();
        assert!((warm.setpoint_c - 57.0).abs() < 1e-9);
        assert!(
            plan_substation(
                &curve(),
                &SubstationInput {
                    outdoor_c: None,
                    ..input(17.0)
                },
                0.25
            )
            .is_none()
        );
    }

    #[test]
    fn trim_is_bounded_and_does_not_wind_up_at_limits() {
        let mut trim = 0.0;
        for _ in 0..100 {
            let p = plan_substation(
                &curve(),
                &SubstationInput {
                    outdoor_c: Some(-10.0),
                    coldest_room_c: Some(10.0),
                    limits_c: (25.0, 95.0),
                    trim_k: trim,
                },
                1.0,
            )
            .unwrap();
            trim = p.trim_k;
            assert!(p.setpoint_c <= 85.0);
        }
        // At −10 °C the curve gives 80 and its max is 85: the trim stops at +5.
        assert!((trim - 5.0).abs() < 1e-9, "{trim}");
    }

    #[test]
    fn plant_serves_the_hottest_substation() {
        let c = SupplyCurve::new(
            vec![
                CurvePoint {
                    outdoor_temp_c: -7.0,
                    supply_temp_c: 110.0,
                },
                CurvePoint {
                    outdoor_temp_c: 10.0,
                    supply_temp_c: 70.0,
                },
            ],
            70.0,
            120.0,
            (50.0, 130.0),
        )
        .unwrap();
        // Curve at 10 °C: 70; hottest substation 55 + 30 = 85 wins.
        assert_eq!(
            plan_plant(&c, Some(10.0), &[40.0, 55.0], (50.0, 130.0)),
            85.0
        );
        assert_eq!(plan_plant(&c, Some(-7.0), &[40.0], (50.0, 130.0)), 110.0);
    }
}
