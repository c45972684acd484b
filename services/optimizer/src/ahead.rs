//! Planning ahead: the weather over the horizon, plant supply temperatures
//! set ahead of the transport delay, and the lead plant's pump head trimmed
//! from the critical substation. Pure: no IO.

use model::{NodeId, SupplyCurve};

use crate::planner;

/// Weather at one time ahead: what the planner takes as its forecast.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeatherAhead {
    /// Network time, Unix ms.
    pub time_ms: i64,
    pub outdoor_c: f64,
    /// Global horizontal irradiance, W/m².
    pub solar_w_m2: f64,
}

/// Differential pressure to keep at the critical substation, Pa.
pub const DEFAULT_DP_TARGET_PA: f64 = 50_000.0;
/// Head trim gain: Pa of head per Pa of shortfall at the critical substation, per round.
pub const HEAD_TRIM_GAIN: f64 = 0.5;
/// Largest head rise in one round, Pa.
pub const MAX_HEAD_STEP_PA: f64 = 50_000.0;
/// Largest head fall in one round, Pa: slower than the rise, so that the
/// trim and the substation valves do not chase each other.
pub const MAX_HEAD_FALL_PA: f64 = 10_000.0;
/// Pump heads the trim stays within, Pa.
pub const HEAD_LIMITS_PA: (f64, f64) = (1.0e5, 2.0e6);

/// The weather at `time_ms`: interpolated from the forecast points (sorted by
/// time; the nearest end point beyond them), or, without a forecast,
/// persistence of the measured outdoor temperature and no sun.
pub fn weather_at(forecast: &[WeatherAhead], measured_c: f64, time_ms: i64) -> WeatherAhead {
    let persist = WeatherAhead {
        time_ms,
        outdoor_c: measured_c,
        solar_w_m2: 0.0,
    };
    let (Some(first), Some(last)) = (forecast.first(), forecast.last()) else {
        return persist;
    };
    let at = |w: &WeatherAhead| WeatherAhead { time_ms, ..*w };
    if time_ms <= first.time_ms {
        return at(first);
    }
    if time_ms >= last.time_ms {
        return at(last);
    }
    let k = forecast.partition_point(|w| w.time_ms <= time_ms);
    let (a, b) = (&forecast[k - 1], &forecast[k]);
    let f = (time_ms - a.time_ms) as f64 / (b.time_ms - a.time_ms).max(1) as f64;
    WeatherAhead {
        time_ms,
        outdoor_c: a.outdoor_c + f * (b.outdoor_c - a.outdoor_c),
        solar_w_m2: a.solar_w_m2 + f * (b.solar_w_m2 - a.solar_w_m2),
    }
}

/// Only usable points, sorted by time: finite values, plausible ranges.
pub fn clean_forecast(mut points: Vec<WeatherAhead>) -> Vec<WeatherAhead> {
    points.retain(|w| {
        w.outdoor_c.is_finite()
            && (-60.0..=60.0).contains(&w.outdoor_c)
            && w.solar_w_m2.is_finite()
            && (0.0..=1500.0).contains(&w.solar_w_m2)
    });
    points.sort_by_key(|w| w.time_ms);
    points.dedup_by_key(|w| w.time_ms);
    points
}

/// A plant's supply temperature for the time its water leaves now: enough for
/// the substations at the time it arrives, `delay_s` later. The substations'
/// setpoints now are moved by what their curve does between now and then
/// (forecast cold raises them ahead), the hottest wins (plus the exchanger
/// margin), and the plant's own curve at that time is the floor.
pub fn plant_supply_ahead(
    plant_curve: &SupplyCurve,
    plant_limits_c: (f64, f64),
    substations: &[(&SupplyCurve, f64)],
    outdoor_now_c: f64,
    outdoor_then_c: f64,
) -> f64 {
    let ahead: Vec<f64> = substations
        .iter()
        .map(|(curve, sp)| {
            let shift = curve.supply_temp_c(outdoor_then_c) - curve.supply_temp_c(outdoor_now_c);
            (sp + shift).clamp(curve.min_supply_temp_c(), curve.max_supply_temp_c())
        })
        .collect();
    planner::plan_plant(plant_curve, Some(outdoor_then_c), &ahead, plant_limits_c)
}

/// The critical substation: the lowest measured differential pressure.
pub fn critical<'a>(dps: impl IntoIterator<Item = (&'a NodeId, f64)>) -> Option<(&'a NodeId, f64)> {
    dps.into_iter()
        .filter(|(_, dp)| dp.is_finite())
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// A substation valve this open asks for more head, whatever the pressure.
pub const VALVE_WIDE_OPEN: f64 = 0.98;
/// The head is lowered only while every valve is below this opening.
pub const VALVE_ROOM: f64 = 0.9;

/// The lead plant's next head: moved toward holding `target_pa` at the
/// critical substation (integral action, one step per planning round),
/// bounded per round and overall. The most open substation valve has the
/// last word: a valve nearly wide open means its substation needs more
/// pressure than the target gives (raise), and the head is lowered only while
/// every valve has room to open.
pub fn trim_head(
    head_pa: f64,
    critical_dp_pa: f64,
    target_pa: f64,
    most_open_valve: Option<f64>,
) -> f64 {
    let toward_target = HEAD_TRIM_GAIN * (target_pa - critical_dp_pa);
    let valve = most_open_valve.unwrap_or(0.0);
    let step = if valve >= VALVE_WIDE_OPEN {
        toward_target.max(MAX_HEAD_STEP_PA / 2.0)
    } else if toward_target < 0.0 && valve >= VALVE_ROOM {
        0.0
    } else {
        toward_target
    };
    (head_pa + step.clamp(-MAX_HEAD_FALL_PA, MAX_HEAD_STEP_PA))
        .clamp(HEAD_LIMITS_PA.0, HEAD_LIMITS_PA.1)
}

#[cfg(test)]
mod tests {
    use model::CurvePoint;

    use super::*;

    fn w(h: i64, t: f64, sun: f64) -> WeatherAhead {
        WeatherAhead {
            time_ms: h * 3_600_000,
            outdoor_c: t,
            solar_w_m2: sun,
        }
    }

    #[test]
    fn weather_is_interpolated_held_at_the_ends_or_persisted() {
        let f = vec![w(0, 0.0, 0.0), w(2, -4.0, 200.0)];
        let mid = weather_at(&f, 5.0, 3_600_000);
        assert_eq!((mid.outdoor_c, mid.solar_w_m2), (-2.0, 100.0));
        assert_eq!(weather_at(&f, 5.0, 10 * 3_600_000).outdoor_c, -4.0);
        assert_eq!(weather_at(&f, 5.0, -3_600_000).outdoor_c, 0.0);
        let p = weather_at(&[], 5.0, 3_600_000);
        assert_eq!((p.outdoor_c, p.solar_w_m2), (5.0, 0.0));
        let cleaned = clean_forecast(vec![
            w(2, 1.0, 0.0),
            w(1, f64::NAN, 0.0),
            w(0, 2.0, 9000.0),
            w(1, 3.0, 0.0),
        ]);
        assert_eq!(cleaned, vec![w(1, 3.0, 0.0), w(2, 1.0, 0.0)]);
    }

    fn curve(cold: f64, mild: f64, lo: f64, hi: f64, limits: (f64, f64)) -> SupplyCurve {
        SupplyCurve::new(
            vec![
                CurvePoint {
                    outdoor_temp_c: -10.0,
                    supply_temp_c: cold,
                },
                CurvePoint {
                    outdoor_temp_c: 10.0,
                    supply_temp_c: mild,
                },
            ],
            lo,
            hi,
            limits,
        )
        .unwrap()
    }

    #[test]
    fn the_plant_heats_ahead_for_the_cold_its_water_will_meet() {
        let sub = curve(80.0, 40.0, 35.0, 85.0, (25.0, 95.0));
        let plant = curve(110.0, 70.0, 70.0, 120.0, (50.0, 130.0));
        // Now 0 °C, the substation at 62 (curve 60 + 2 trim). By the time the
        // water arrives it is −4 °C: the curve says 68 there, so 70 + 30 = 100
        // (the plant curve at −4 °C gives only 98).
        let sp = plant_supply_ahead(&plant, (50.0, 130.0), &[(&sub, 62.0)], 0.0, -4.0);
        assert!((sp - 100.0).abs() < 1e-9, "{sp}");
        // No change ahead: the hottest substation + margin, as today.
        let sp = plant_supply_ahead(&plant, (50.0, 130.0), &[(&sub, 62.0)], 0.0, 0.0);
        assert!((sp - 92.0).abs() < 1e-9, "{sp}");
    }

    #[test]
    fn the_head_rises_while_the_critical_substation_is_short_and_is_bounded() {
        let a = NodeId::new("a").unwrap();
        let b = NodeId::new("b").unwrap();
        let (id, dp) = critical([(&a, 80_000.0), (&b, 30_000.0), (&a, f64::NAN)]).unwrap();
        assert_eq!((id, dp), (&b, 30_000.0));
        // 20 kPa short: +10 kPa.
        assert_eq!(
            trim_head(400_000.0, 30_000.0, 50_000.0, Some(0.5)),
            410_000.0
        );
        // 200 kPa above: −10 kPa at most (it falls slower than it rises).
        assert_eq!(
            trim_head(400_000.0, 250_000.0, 50_000.0, Some(0.5)),
            390_000.0
        );
        assert_eq!(trim_head(1.99e6, 0.0, 50_000.0, None), 2.0e6);
        assert_eq!(trim_head(1.0e5, 500_000.0, 50_000.0, None), 1.0e5);
        // A valve nearly wide open: up by half a step although the pressure is ample.
        assert_eq!(
            trim_head(400_000.0, 250_000.0, 50_000.0, Some(0.99)),
            425_000.0
        );
        // A valve with little room left: the head holds.
        assert_eq!(
            trim_head(400_000.0, 250_000.0, 50_000.0, Some(0.95)),
            400_000.0
        );
    }
}
