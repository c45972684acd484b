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

/// Share of its minimum load under which the lead is taken as overpowered.
pub const LEAD_OVERPOWERED_SHARE: f64 = 0.5;

/// The lead's next head, kept up while the lead carries almost no water: a
/// running plant makes at least its minimum load, so a lead measuring less
/// than [`LEAD_OVERPOWERED_SHARE`] of it has its pump overpowered by the
/// other plants' (their heat loops deliver more than their orders, or the
/// network joins them closely) and holds no pressure anywhere. Its head then
/// rises by half a step a round whatever the critical substation reads
/// (found on the interconnected city: the others' pumps held the pressure,
/// `chp-west`'s head trimmed down to 100 kPa, its flow stopped, and its
/// ramp-limited restart looked like a trip), and at once to half a step over
/// the pressure the others put across its pump (`measured_head_pa`): a pump
/// ordered less than that stays shut behind its check valve (found on the
/// city with the gas boiler standing by, its ties joining the two CHPs:
/// `chp-east` started again and pushed 800 kPa across `chp-west`, whose order
/// climbed from 100 kPa by 25 kPa a round and carried no water for two hours;
/// its restart then ended the standby).
pub fn hold_lead_flow(
    next_pa: f64,
    head_pa: f64,
    lead_heat_w: Option<f64>,
    measured_head_pa: Option<f64>,
    min_load_w: f64,
) -> f64 {
    match lead_heat_w {
        Some(q) if min_load_w > 0.0 && q < LEAD_OVERPOWERED_SHARE * min_load_w => {
            let across_pa = measured_head_pa
                .filter(|h| h.is_finite())
                .map_or(f64::NEG_INFINITY, |h| h + MAX_HEAD_STEP_PA / 2.0);
            next_pa
                .max(head_pa + MAX_HEAD_STEP_PA / 2.0)
                .max(across_pa)
                .min(HEAD_LIMITS_PA.1)
        }
        _ => next_pa,
    }
}

/// What a region of the network (the substations one plant serves) asks of
/// its plant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionNeed {
    /// Its critical substation is below the target, or a valve is wide open.
    More,
    /// Every substation has pressure to spare and every valve room to open.
    Less,
    Hold,
}

/// Differential pressure (as a multiple of the target) at which a substation
/// has pressure to spare: a region whose critical substation is above it, with
/// every valve below [`VALVE_ROOM`], can do with less. Where a substation's
/// design flow is not known, a valve wide open above it is also taken as not
/// short of pressure (see [`counted_valve`]).
pub const PRESSURE_AMPLE: f64 = 2.0;

/// Share of its design flow at which a substation's valve has what pressure
/// can give it: wide open there, more head would not warm it (its setpoint is
/// out of reach for other reasons: the exchanger, the supply temperature).
pub const DESIGN_FLOW_REACHED: f64 = 0.9;

/// How many times its design heat a building asks for at `outdoor_c`, never
/// less than 1: its losses grow with the indoor–outdoor difference, and below
/// the network's design outdoor temperature they pass the design load the
/// valves were sized for (found on the city in a cold wave at −20 °C:
/// substations passing their design flow with their valves wide open were
/// not counted, so the lead's head fell from 1,400 to 460 kPa while 45 of its
/// substations sat 8 K under their setpoints and it had 130 MW to spare).
/// Unknown outdoor temperature: 1.
pub fn design_load_ratio(outdoor_c: Option<f64>, outdoor_design_c: f64) -> f64 {
    let span_k = model::DESIGN_ROOM_TEMP_C - outdoor_design_c;
    match outdoor_c.filter(|t| t.is_finite()) {
        Some(t) if span_k > 0.0 => ((model::DESIGN_ROOM_TEMP_C - t) / span_k).max(1.0),
        _ => 1.0,
    }
}

/// The opening of a substation's valve as the pressure loops count it. A
/// valve wide open asks for more pressure while it passes less than
/// [`DESIGN_FLOW_REACHED`] of its design flow (`flow_share`: measured over
/// design flow, scaled by [`design_load_ratio`] below the design outdoor
/// temperature), whatever its differential pressure reads: each valve is sized
/// for the pressure the design calculation finds at its substation, several
/// bar near a plant (found on the city: 32 substations of the boiler's
/// district sat at 40–55 % of their design flow with their valves wide open
/// at 100–300 kPa, twice the target, and were not counted, so the boiler's
/// floor never rose and their rooms hung at 18–19 °C). One passing its design
/// flow is not counted (found on the city: such a valve held the lead at full
/// head and the boiler's floor at its nameplate). Without a design flow, the
/// valve counts only where the substation is not [`PRESSURE_AMPLE`].
pub fn counted_valve(
    valve: Option<f64>,
    dp_pa: Option<f64>,
    flow_share: Option<f64>,
    target_pa: f64,
) -> Option<f64> {
    let satisfied = match flow_share.filter(|f| f.is_finite()) {
        Some(share) => share >= DESIGN_FLOW_REACHED,
        None => dp_pa.is_some_and(|dp| dp >= PRESSURE_AMPLE * target_pa),
    };
    valve.filter(|v| v.is_finite() && !satisfied)
}

/// What a region needs, from its critical (lowest) differential pressure and
/// its most open [`counted_valve`].
pub fn region_need(
    critical_dp_pa: Option<f64>,
    most_open: Option<f64>,
    target_pa: f64,
) -> RegionNeed {
    let valve = most_open.unwrap_or(0.0);
    match critical_dp_pa {
        _ if valve >= VALVE_WIDE_OPEN => RegionNeed::More,
        Some(dp) if dp < target_pa => RegionNeed::More,
        Some(dp) if dp > PRESSURE_AMPLE * target_pa && valve < VALVE_ROOM => RegionNeed::Less,
        _ => RegionNeed::Hold,
    }
}

/// Share of its nameplate a plant's regional floor rises by a round.
pub const FLOOR_RISE_SHARE: f64 = 0.05;
/// Share of its nameplate a plant's regional floor falls by a round.
pub const FLOOR_FALL_SHARE: f64 = 0.02;
/// A floor rises again only once the plant delivers this share of it.
pub const FLOOR_REACHED: f64 = 0.9;

/// Share of what its own district needs below which a running plant is
/// never dispatched: the mesh carries little heat from one district into
/// another.
pub const DISTRICT_NEED_SHARE: f64 = 0.9;

/// The least a running plant is dispatched whatever its pressures say:
/// [`DISTRICT_NEED_SHARE`] of what its own district needs now (`need_w`:
/// the substations' forecasts for the hour at hand, or what they draw if
/// more, losses included), capped by what it can deliver. The pressure
/// ratchet ([`next_floor`]) alone let a dear plant's dispatch fall by 2 % of
/// its nameplate a round for as long as its district showed pressure to
/// spare, which lasts while the pump still coasts on its last speed (found
/// on the city in a cold spell: the boiler's floor fell from 151 to 23 MW
/// in 2.5 h, its district's pressure then collapsed, and the rooms of 30
/// substations fell under 18 °C for the 4 h the ratchet took to climb back).
pub fn district_floor(need_w: Option<f64>, deliverable_w: f64) -> Option<f64> {
    need_w
        .filter(|q| q.is_finite() && *q > 0.0)
        .map(|q| (DISTRICT_NEED_SHARE * q).min(deliverable_w))
}

/// A non-lead plant's regional floor: the least heat it is dispatched, so
/// that its pump (which tracks its heat order) pushes enough water into the
/// region it serves. Economic dispatch alone would leave a dear plant's region
/// to be fed through the mesh from the cheap ones, which a meshed network
/// cannot carry far (found on the city: the boiler's district starved while
/// the CHPs ran at full head). The floor rises by a step while the region
/// needs more and the plant has delivered the last step, falls slowly while
/// the region has pressure to spare, and is capped by what the plant can
/// deliver. `None`: no floor.
pub fn next_floor(
    floor_w: Option<f64>,
    delivered_w: Option<f64>,
    need: RegionNeed,
    nameplate_w: f64,
    deliverable_w: f64,
) -> Option<f64> {
    let next = match (need, floor_w) {
        (RegionNeed::More, None) => delivered_w.unwrap_or(0.0) + FLOOR_RISE_SHARE * nameplate_w,
        (RegionNeed::More, Some(f)) => {
            if delivered_w.is_some_and(|q| q >= FLOOR_REACHED * f) {
                f.max(delivered_w.unwrap_or(0.0)) + FLOOR_RISE_SHARE * nameplate_w
            } else {
                f
            }
        }
        (RegionNeed::Less, Some(f)) => f - FLOOR_FALL_SHARE * nameplate_w,
        (RegionNeed::Less, None) => return None,
        (RegionNeed::Hold, f) => f?,
    };
    (next > 0.0).then(|| next.min(deliverable_w))
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
    fn an_overpowered_lead_raises_its_head_whatever_the_pressure() {
        // Trimmed down to 300 kPa (the critical substation has plenty), the
        // lead carries 10 MW against its 160 MW minimum: half a step up.
        assert_eq!(
            hold_lead_flow(300.0e3, 310.0e3, Some(10.0e6), None, 160.0e6),
            335.0e3
        );
        // The others put 800 kPa across its pump: it is ordered half a step
        // over that at once, not 25 kPa a round.
        assert_eq!(
            hold_lead_flow(300.0e3, 310.0e3, Some(0.0), Some(800.0e3), 160.0e6),
            825.0e3
        );
        // Less across it than its order: the half step stands.
        assert_eq!(
            hold_lead_flow(300.0e3, 310.0e3, Some(0.0), Some(200.0e3), 160.0e6),
            335.0e3
        );
        // Carrying its minimum (or more) or no reading: the trim stands.
        assert_eq!(
            hold_lead_flow(300.0e3, 310.0e3, Some(160.0e6), Some(800.0e3), 160.0e6),
            300.0e3
        );
        assert_eq!(
            hold_lead_flow(300.0e3, 310.0e3, None, Some(800.0e3), 160.0e6),
            300.0e3
        );
        // A trim already raising faster is kept; the limit holds, whatever
        // is measured.
        assert_eq!(
            hold_lead_flow(400.0e3, 310.0e3, Some(0.0), None, 160.0e6),
            400.0e3
        );
        assert_eq!(
            hold_lead_flow(
                HEAD_LIMITS_PA.1,
                HEAD_LIMITS_PA.1,
                Some(0.0),
                Some(3.0e6),
                160.0e6
            ),
            HEAD_LIMITS_PA.1
        );
        assert_eq!(
            hold_lead_flow(300.0e3, 310.0e3, Some(0.0), Some(f64::NAN), 160.0e6),
            335.0e3
        );
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

    #[test]
    fn a_region_asks_for_more_when_short_or_a_valve_is_wide_open() {
        use RegionNeed::*;
        let t = 50_000.0;
        let cases = [
            (Some(40_000.0), Some(0.5), More),
            (Some(60_000.0), Some(0.99), More),
            (None, Some(0.99), More),
            (Some(60_000.0), Some(0.5), Hold),
            (Some(80_000.0), Some(0.95), Hold),
            (Some(80_000.0), Some(0.5), Hold),
            (Some(120_000.0), Some(0.5), Less),
            (None, None, Hold),
        ];
        for (dp, valve, want) in cases {
            assert_eq!(region_need(dp, valve, t), want, "{dp:?} {valve:?}");
        }
    }

    #[test]
    fn a_district_floor_is_most_of_its_need_within_what_the_plant_delivers() {
        assert_eq!(district_floor(Some(100.0e6), 237.0e6), Some(90.0e6));
        assert_eq!(district_floor(Some(300.0e6), 237.0e6), Some(237.0e6));
        for none in [None, Some(0.0), Some(-1.0), Some(f64::NAN)] {
            assert_eq!(district_floor(none, 237.0e6), None, "{none:?}");
        }
    }

    #[test]
    fn a_floor_steps_up_once_delivered_falls_slowly_and_is_capped() {
        let cap = 100.0e6;
        let up = FLOOR_RISE_SHARE * cap;
        let down = FLOOR_FALL_SHARE * cap;
        // First step: from what it makes.
        assert_eq!(
            next_floor(None, Some(20.0e6), RegionNeed::More, cap, cap),
            Some(20.0e6 + up)
        );
        // Not delivered: held.
        assert_eq!(
            next_floor(Some(40.0e6), Some(30.0e6), RegionNeed::More, cap, cap),
            Some(40.0e6)
        );
        // Delivered: up again.
        assert_eq!(
            next_floor(Some(40.0e6), Some(39.0e6), RegionNeed::More, cap, cap),
            Some(40.0e6 + up)
        );
        // Capped by what it can deliver.
        assert_eq!(
            next_floor(Some(40.0e6), Some(40.0e6), RegionNeed::More, cap, 42.0e6),
            Some(42.0e6)
        );
        assert_eq!(
            next_floor(Some(40.0e6), None, RegionNeed::Hold, cap, cap),
            Some(40.0e6)
        );
        assert_eq!(
            next_floor(Some(40.0e6), None, RegionNeed::Less, cap, cap),
            Some(40.0e6 - down)
        );
        assert_eq!(
            next_floor(Some(1.0e6), None, RegionNeed::Less, cap, cap),
            None
        );
        assert_eq!(next_floor(None, None, RegionNeed::Less, cap, cap), None);
        assert_eq!(next_floor(None, None, RegionNeed::Hold, cap, cap), None);
    }

    #[test]
    fn buildings_ask_for_more_than_their_design_load_only_below_the_design_temperature() {
        // Design −9 °C for 20 °C indoors: a 29 K span.
        assert_eq!(design_load_ratio(Some(0.0), -9.0), 1.0);
        assert_eq!(design_load_ratio(Some(-9.0), -9.0), 1.0);
        assert!((design_load_ratio(Some(-20.0), -9.0) - 40.0 / 29.0).abs() < 1e-12);
        assert_eq!(design_load_ratio(None, -9.0), 1.0);
        assert_eq!(design_load_ratio(Some(f64::NAN), -9.0), 1.0);
        // A design temperature at or above the indoor one means nothing.
        assert_eq!(design_load_ratio(Some(-20.0), 25.0), 1.0);
    }

    #[test]
    fn a_wide_open_valve_counts_while_it_passes_less_than_its_design_flow() {
        let t = 50_000.0;
        // Without a design flow: by pressure.
        assert_eq!(counted_valve(Some(1.0), Some(40_000.0), None, t), Some(1.0));
        assert_eq!(counted_valve(Some(1.0), Some(99_000.0), None, t), Some(1.0));
        assert_eq!(counted_valve(Some(1.0), Some(100_000.0), None, t), None);
        assert_eq!(counted_valve(Some(1.0), None, None, t), Some(1.0));
        assert_eq!(counted_valve(Some(f64::NAN), None, None, t), None);
        // With one: by flow, whatever the pressure (the boiler's district on
        // the city: wide open at 130 kPa and half its design flow).
        assert_eq!(
            counted_valve(Some(1.0), Some(130_000.0), Some(0.5), t),
            Some(1.0)
        );
        assert_eq!(
            counted_valve(Some(1.0), Some(600_000.0), Some(0.89), t),
            Some(1.0)
        );
        assert_eq!(counted_valve(Some(1.0), Some(40_000.0), Some(0.9), t), None);
        assert_eq!(
            counted_valve(Some(1.0), Some(130_000.0), Some(1.3), t),
            None
        );
        assert_eq!(
            counted_valve(Some(1.0), Some(130_000.0), Some(f64::NAN), t),
            None
        );
        assert_eq!(
            counted_valve(Some(1.0), Some(40_000.0), Some(f64::NAN), t),
            Some(1.0)
        );
    }
}
