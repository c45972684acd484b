//! The planning core: supply setpoints for every substation and plant. Pure:
//! it sees only telemetry-derived inputs, never the simulator.
//!
//! Substations: the group's supply curve at the measured outdoor temperature
//! made milder by the sun the forecast gives over the next hours
//! ([`sun_ahead_k`]), plus a bounded trim integrated from the coldest
//! monitored room toward [`TARGET_ROOM_C`] (just above 18 °C with a margin),
//! so that homes are kept warm enough instead of overheated. Ahead of a shortage the plants cannot
//! make (a cold wave past their nameplates), the aim is raised for a while
//! ([`Preheat`]) so that the buildings' thermal mass stores the heat the
//! plants will lack. Plants: enough supply temperature to serve the hottest
//! substation setpoint through its heat exchanger.

use model::SupplyCurve;

use crate::ahead::{self, WeatherAhead};

/// Room temperature the trim aims the coldest room at, °C.
pub const TARGET_ROOM_C: f64 = 19.0;
/// Trim gain, K of supply per K of room error per hour.
pub const TRIM_GAIN_K_PER_K_H: f64 = 3.0;
/// The trim never raises the curve by more than this, K.
pub const MAX_TRIM_UP_K: f64 = 10.0;
/// The trim never lowers the curve by more than this, K. Wider than
/// [`MAX_TRIM_UP_K`]: a quality-regulation curve is drawn for a room at
/// 20 °C without sun or internal gains, so on mild, sunny days it sits well
/// above what rooms aimed at 19 °C need (found on the city's late season,
/// days 104–108: at 10 K, half the substations were held at the bound from
/// the afternoon to midnight with their coldest rooms at 19.2–19.9 °C).
pub const MAX_TRIM_DOWN_K: f64 = 20.0;
/// Outdoor-equivalent warming per W/m² of sunshine (global horizontal), K:
/// the curve is read at the outdoor temperature plus this times the sun
/// ahead. A quality-regulation curve knows no sun, yet a home with 3 % of
/// its floor area as effective glazing and a 45 W/m² design load at −9 °C
/// gains from 100 W/m² of sun what 1.9 K of milder weather would give; 1.5 K
/// (80 % of it) is taken, so that a sunny forecast never cuts more than the
/// sun gives and the coldest-room trim settles the rest. Found on the city's
/// late season (days 104–108): without it, the coldest rooms swung from
/// 18.9 °C in the night to 19.8 °C at midday, the trim answering each swing
/// hours late.
pub const SUN_K_PER_W_M2: f64 = 0.015;
/// The sun taken is the forecast's mean over this much ahead, ms: floor
/// heating and the buildings' mass give their heat hours after the supply
/// changes, so the supply is lowered ahead of the sun. (Reading the
/// forecast's outdoor temperature over the same lead as well did not help:
/// on days 20–24 and 104–108 the same heat, the coldest room 0.2–0.7 K
/// lower.)
pub const SUN_LEAD_MS: i64 = 2 * 3_600_000;
/// The sun never counts for more than this, K.
pub const MAX_SUN_K: f64 = 10.0;
/// The forecast's sun is taken this far before its first point and after
/// its last (hourly points, the first at the next full hour), ms.
pub const SUN_FORECAST_REACH_MS: i64 = 3_600_000;

/// Primary supply above the hottest secondary setpoint, K (heat exchanger approach + losses).
pub const PLANT_MARGIN_K: f64 = 30.0;
/// The room aim is raised by at most this ahead of a shortage, K: 19 + 2 =
/// 21 °C, under the 22 °C that counts as overheated.
pub const MAX_PREHEAT_K: f64 = 2.0;
/// Raise of the room aim per unit of the worst share of the forecast demand
/// that will go unserved, K: a 10 % shortage ahead raises it the full 2 K.
pub const PREHEAT_K_PER_SHORT_SHARE: f64 = 20.0;
/// A shortage smaller than this share of the demand is none (the forecast's
/// own noise).
pub const SHORT_SHARE_MIN: f64 = 0.01;
/// Preheating starts only for a shortage ahead at least this large: smaller
/// ones come and go with the forecast from one round to the next (found on
/// the city's week: the aim raised for 5–30 min some thirty times outside the
/// cold wave, each time ratcheting the trims up).
pub const PREHEAT_START_SHARE: f64 = 0.05;
/// Once started, preheating holds (its raise never falls) through the
/// shortage, until none has been foreseen for this long, ms.
pub const PREHEAT_HOLD_MS: i64 = 2 * 3_600_000;

/// How far to raise the room aim ahead of a shortage: heat the plants will
/// lack later is put into the buildings' thermal mass now, while they have
/// capacity to spare. A home at 21 °C coasts for hours through a cold spell
/// that one at 19 °C would feel at once (found on the city: in a cold wave
/// 11 K past the design temperature, all three plants at their nameplates,
/// the rooms sank under 18 °C for a day). It starts for a shortage ahead of
/// at least [`PREHEAT_START_SHARE`] while none is at hand (a shortage that
/// comes without warning, such as a plant trip, leaves nothing to store
/// beforehand), then holds, never falling, through the shortage, until none
/// has been foreseen for [`PREHEAT_HOLD_MS`]. Held through the shortage, the
/// raised aim keeps every substation drawing what the plants can make; let
/// fall back when the shortage came, the warm buildings' trims throttled
/// them and the plants made less while the rooms cooled (the city's cold
/// wave, 2.75 days: coldest day 94.9 % let fall, 97.1 % held, 93.4 % without
/// preheating).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Preheat {
    /// Since when no shortage has been foreseen while preheating, network ms.
    quiet_since_ms: Option<i64>,
    /// The raise in force, K.
    raise_k: f64,
}

impl Preheat {
    /// The raise in force, K.
    pub fn raise_k(&self) -> f64 {
        self.raise_k
    }

    /// The raise from this round's forecast over the horizon: the load the
    /// plants cannot make (`unserved_w`) and the demand (`demand_w`) per
    /// step, the first step the hour at hand; returns it.
    pub fn update(&mut self, now_ms: i64, unserved_w: &[f64], demand_w: &[f64]) -> f64 {
        let share = |k: usize| -> f64 {
            match (unserved_w.get(k), demand_w.get(k)) {
                (Some(u), Some(d)) if u.is_finite() && d.is_finite() && *d > 0.0 => {
                    (u / d).max(0.0)
                }
                _ => 0.0,
            }
        };
        let at_hand = share(0);
        let ahead = (1..unserved_w.len()).map(share).fold(0.0, f64::max);
        let wanted_k = (PREHEAT_K_PER_SHORT_SHARE * ahead).min(MAX_PREHEAT_K);
        let on = self.raise_k > 0.0;
        if at_hand.max(ahead) >= SHORT_SHARE_MIN {
            self.quiet_since_ms = None;
        } else if on {
            self.quiet_since_ms.get_or_insert(now_ms);
        }
        let quiet = self
            .quiet_since_ms
            .is_some_and(|t| now_ms - t >= PREHEAT_HOLD_MS);
        self.raise_k = if quiet {
            0.0
        } else if on {
            self.raise_k.max(wanted_k)
        } else if ahead >= PREHEAT_START_SHARE && at_hand < SHORT_SHARE_MIN {
            wanted_k
        } else {
            0.0
        };
        if self.raise_k == 0.0 {
            self.quiet_since_ms = None;
        }
        self.raise_k
    }
}

/// How much milder the sun forecast over the next [`SUN_LEAD_MS`] makes the
/// weather for the curve, K: [`SUN_K_PER_W_M2`] times its mean irradiance,
/// within 0..[`MAX_SUN_K`]. Without a forecast: 0 (the sun is not measured);
/// nor for times more than [`SUN_FORECAST_REACH_MS`] beyond the forecast's
/// points (a feed that stopped must not leave a noon sun standing through
/// the night).
pub fn sun_ahead_k(forecast: &[WeatherAhead], now_ms: i64) -> f64 {
    let (Some(first), Some(last)) = (forecast.first(), forecast.last()) else {
        return 0.0;
    };
    let covered = (first.time_ms - SUN_FORECAST_REACH_MS)..=(last.time_ms + SUN_FORECAST_REACH_MS);
    const SAMPLES: i64 = 8;
    let mean_w_m2 = (0..=SAMPLES)
        .map(|i| now_ms + i * SUN_LEAD_MS / SAMPLES)
        .filter(|t| covered.contains(t))
        .map(|t| ahead::weather_at(forecast, 0.0, t).solar_w_m2.max(0.0))
        .sum::<f64>()
        / (SAMPLES + 1) as f64;
    let k = SUN_K_PER_W_M2 * mean_w_m2;
    if k.is_finite() {
        k.clamp(0.0, MAX_SUN_K)
    } else {
        0.0
    }
}

/// What the planner knows of one substation.
#[derive(Clone, Debug, PartialEq)]
pub struct SubstationInput {
    pub outdoor_c: Option<f64>,
    /// How much milder the sun ahead makes the weather, K
    /// ([`sun_ahead_k`]).
    pub sun_k: f64,
    pub coldest_room_c: Option<f64>,
    /// What the coldest room is aimed at, °C ([`TARGET_ROOM_C`], raised
    /// ahead of a shortage by [`Preheat`]).
    pub target_room_c: f64,
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
        trim += TRIM_GAIN_K_PER_K_H * (s.target_room_c - room) * dt_h;
    }
    trim = trim.clamp(-MAX_TRIM_DOWN_K, MAX_TRIM_UP_K);
    let base = curve.supply_temp_c(outdoor + s.sun_k);
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
            sun_k: 0.0,
            coldest_room_c: Some(room),
            target_room_c: TARGET_ROOM_C,
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
    fn rooms_are_preheated_ahead_of_a_shortage_and_held_through_it() {
        let h = 3_600_000;
        let demand = [500.0e6; 24];
        let mut unserved = [0.0; 24];
        let mut p = Preheat::default();
        // Nothing short: no preheating.
        assert_eq!(p.update(0, &unserved, &demand), 0.0);
        // 4 % short in 12 hours: too small to start (the forecast's noise).
        unserved[12] = 20.0e6;
        assert_eq!(p.update(h / 4, &unserved, &demand), 0.0);
        // 7 % short: 20 K per share · 0.07 = 1.4 K.
        unserved[12] = 35.0e6;
        assert!((p.update(h / 2, &unserved, &demand) - 1.4).abs() < 1e-12);
        // Started, it holds when the shortage ahead shrinks or vanishes for
        // a while...
        unserved[12] = 10.0e6;
        assert!((p.update(h, &unserved, &demand) - 1.4).abs() < 1e-12);
        unserved[12] = 0.0;
        assert!((p.update(2 * h, &unserved, &demand) - 1.4).abs() < 1e-12);
        // ...and grows with it, to 2 K at most.
        unserved[13] = 100.0e6;
        assert_eq!(p.update(3 * h, &unserved, &demand), MAX_PREHEAT_K);
        assert_eq!(p.raise_k(), MAX_PREHEAT_K);
        // The shortage has come: held through it.
        let mut short = [60.0e6; 24];
        assert_eq!(p.update(4 * h, &short, &demand), MAX_PREHEAT_K);
        short[1..].fill(0.0);
        assert_eq!(p.update(8 * h, &short, &demand), MAX_PREHEAT_K);
        // None foreseen for 2 h after it: it stops.
        let none = [0.0; 24];
        assert_eq!(p.update(9 * h, &none, &demand), MAX_PREHEAT_K);
        assert_eq!(p.update(10 * h + h / 2, &none, &demand), MAX_PREHEAT_K);
        assert_eq!(p.update(11 * h, &none, &demand), 0.0);
        // And starts again only for a shortage of 5 % or more...
        let mut small = [0.0; 24];
        small[5] = 10.0e6;
        assert_eq!(p.update(12 * h, &small, &demand), 0.0);
        // ...and not when it is already at hand (a trip: nothing to store).
        let mut sudden = [100.0e6; 24];
        assert_eq!(p.update(13 * h, &sudden, &demand), 0.0);
        // Under 1 % at hand is no shortage at hand.
        sudden[0] = 4.0e6;
        assert_eq!(p.update(14 * h, &sudden, &demand), MAX_PREHEAT_K);
        // No demand forecast, mismatched or bad numbers: nothing.
        let mut p = Preheat::default();
        assert_eq!(p.update(0, &[], &[]), 0.0);
        assert_eq!(p.update(0, &[0.0, 1.0e9], &[0.0, 0.0]), 0.0);
        assert_eq!(p.update(0, &[0.0, f64::NAN], &[1.0, 1.0]), 0.0);
        assert_eq!(p.update(0, &[0.0, 1.0e9], &[1.0e9]), 0.0);
    }

    #[test]
    fn a_raised_aim_raises_the_setpoint() {
        let input = |target| SubstationInput {
            outdoor_c: Some(0.0),
            sun_k: 0.0,
            coldest_room_c: Some(19.0),
            target_room_c: target,
            limits_c: (25.0, 95.0),
            trim_k: 0.0,
        };
        let held = plan_substation(&curve(), &input(TARGET_ROOM_C), 0.25).unwrap();
        assert_eq!(held.setpoint_c, 60.0);
        let raised = plan_substation(&curve(), &input(TARGET_ROOM_C + 2.0), 0.25).unwrap();
        // 3 K/(K·h) · 2 K · 0.25 h.
        assert!((raised.setpoint_c - 61.5).abs() < 1e-9, "{raised:?}");
    }

    #[test]
    fn the_trim_lowers_the_curve_further_than_it_raises_it() {
        let settle = |outdoor_c, room| {
            let mut trim = 0.0;
            let mut setpoint = f64::NAN;
            for _ in 0..100 {
                let p = plan_substation(
                    &curve(),
                    &SubstationInput {
                        outdoor_c: Some(outdoor_c),
                        sun_k: 0.0,
                        coldest_room_c: Some(room),
                        target_room_c: TARGET_ROOM_C,
                        limits_c: (25.0, 95.0),
                        trim_k: trim,
                    },
                    1.0,
                )
                .unwrap();
                (trim, setpoint) = (p.trim_k, p.setpoint_c);
            }
            (trim, setpoint)
        };
        // At 0 °C the curve gives 60 °C: cold rooms raise it by 10 K at most,
        // warm ones lower it by 20 K at most.
        assert_eq!(settle(0.0, 10.0), (MAX_TRIM_UP_K, 70.0));
        assert_eq!(settle(0.0, 25.0), (-MAX_TRIM_DOWN_K, 40.0));
        // At 10 °C the curve gives 40 °C and its floor is 35 °C: the trim
        // stops at −5 K, not wound further.
        assert_eq!(settle(10.0, 25.0), (-5.0, 35.0));
    }

    /// Hourly forecast points from 0 ms: (outdoor °C, sun W/m²).
    fn forecast(points: &[(f64, f64)]) -> Vec<WeatherAhead> {
        points
            .iter()
            .enumerate()
            .map(|(h, &(outdoor_c, solar_w_m2))| WeatherAhead {
                time_ms: h as i64 * 3_600_000,
                outdoor_c,
                solar_w_m2,
            })
            .collect()
    }

    #[test]
    fn the_curve_is_read_at_the_outdoor_temperature_made_milder_by_the_sun_ahead() {
        // Sun rising from 0 to 400 W/m² over the first hour and staying
        // there: sampled every 15 min over the next 2 h, 0, 100, 200, 300 and
        // five times 400 W/m², a mean of 2,600/9 = 288.9 W/m²; at 0.015 K per
        // W/m², 4.33 K milder.
        let sunrise = forecast(&[(0.0, 0.0), (0.0, 400.0), (0.0, 400.0), (0.0, 0.0)]);
        let sun_k = sun_ahead_k(&sunrise, 0);
        assert!((sun_k - 0.015 * 2600.0 / 9.0).abs() < 1e-9, "{sun_k}");
        // The curve is read at 0 + 4.33 °C: 60 − 2 K/K · 4.33 = 51.33 °C.
        let p = plan_substation(
            &curve(),
            &SubstationInput {
                outdoor_c: Some(0.0),
                sun_k,
                coldest_room_c: Some(TARGET_ROOM_C),
                target_room_c: TARGET_ROOM_C,
                limits_c: (25.0, 95.0),
                trim_k: 0.0,
            },
            0.25,
        )
        .unwrap();
        assert!((p.setpoint_c - (60.0 - 2.0 * sun_k)).abs() < 1e-9, "{p:?}");
        // The trim is what it was: the sun is not folded into it.
        assert_eq!(p.trim_k, 0.0);
        // The forecast's outdoor temperature is not read: the curve takes
        // the measured one.
        let evening = forecast(&[(0.0, 0.0), (-4.0, 0.0), (-4.0, 0.0)]);
        assert_eq!(sun_ahead_k(&evening, 0), 0.0);
        // Night, no forecast (the sun is not measured), bad numbers: no sun.
        assert_eq!(sun_ahead_k(&forecast(&[(-5.0, 0.0); 3]), 0), 0.0);
        assert_eq!(sun_ahead_k(&[], 0), 0.0);
        assert_eq!(
            sun_ahead_k(&forecast(&[(0.0, f64::NAN), (0.0, -50.0), (0.0, 0.0)]), 0),
            0.0
        );
        // A blinding forecast counts for 10 K at most.
        assert_eq!(sun_ahead_k(&forecast(&[(0.0, 5000.0); 4]), 0), MAX_SUN_K);
        // A forecast that ended at noon (its feed stopped) leaves no sun a
        // day later, and counts only the samples it reaches: at 3 h, only
        // the one at 3 h of the nine over the next 2 h (its last point is at
        // 2 h, taken 1 h on).
        let noon = forecast(&[(0.0, 400.0); 3]);
        assert_eq!(sun_ahead_k(&noon, 26 * 3_600_000), 0.0);
        let late = sun_ahead_k(&noon, 3 * 3_600_000);
        assert!((late - 0.015 * 400.0 * 1.0 / 9.0).abs() < 1e-9, "{late}");
    }

    #[test]
    fn trim_is_bounded_and_does_not_wind_up_at_limits() {
        let mut trim = 0.0;
        for _ in 0..100 {
            let p = plan_substation(
                &curve(),
                &SubstationInput {
                    outdoor_c: Some(-10.0),
                    sun_k: 0.0,
                    coldest_room_c: Some(10.0),
                    target_room_c: TARGET_ROOM_C,
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
