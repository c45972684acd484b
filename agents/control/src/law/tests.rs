use model::{CurvePoint, NodeId};

use super::*;

const T0: i64 = 1_796_054_400_000;

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

fn substation() -> Controller {
    Controller::new(&NodeConfig {
        id: NodeId::new("s01").unwrap(),
        kind: NodeKind::Substation,
        parent: None,
        group: Some("radiator".into()),
        supply_limits_c: Some((30.0, 90.0)),
        fallback_curve: Some(curve()),
        max_setpoint_rate_k_per_min: 2.0,
        return_limit_c: None,
        pump_dp_setpoint_pa: None,
    })
    .unwrap()
}

fn cmd(version: u64, action: Action) -> Command {
    Command {
        command_id: format!("c{version}"),
        actor_id: NodeId::new("s01").unwrap(),
        version,
        action,
    }
}

fn input(t_ms: i64, outdoor: f64, t_sup: Option<f64>, online: bool) -> TickInput {
    let mut r = vec![Reading::new(Metric::OutdoorTempC, outdoor)];
    if let Some(t) = t_sup {
        r.push(Reading::new(Metric::SecondarySupplyTempC, t));
    }
    TickInput {
        time_ms: t_ms,
        readings: Some(r),
        link: LinkState {
            optimizer_recent: online,
        },
    }
}

fn setpoint(out: &TickOutput) -> f64 {
    out.readings
        .iter()
        .find(|r| r.metric == Metric::SetpointC)
        .unwrap()
        .value
}

#[test]
fn pi_does_not_wind_up_while_saturated() {
    let mut pi = Pi::new(0.02, 100.0, 0.0, 1.0, 0.5);
    // A long, large positive error saturates the output at 1.
    for _ in 0..1000 {
        assert!(pi.step(80.0, 20.0, 10.0) <= 1.0);
    }
    assert!(pi.integral <= 1.0);
    // As soon as the error turns negative, the output leaves saturation.
    let out = pi.step(80.0, 85.0, 10.0);
    assert!(out < 1.0, "{out}");
}

#[test]
fn ramp_is_bounded() {
    assert_eq!(ramp(50.0, 60.0, 2.0 / 60.0, 60.0), 52.0);
    assert_eq!(ramp(50.0, 49.5, 2.0 / 60.0, 60.0), 49.5);
}

#[test]
fn falls_back_to_the_curve_then_follows_the_optimizer_without_a_bump() {
    let mut c = substation();
    let out = c.tick(&input(T0, 0.0, Some(55.0), false));
    assert_eq!(out.mode, Mode::Fallback);
    assert_eq!(setpoint(&out), 60.0); // curve at 0 °C
    c.command(&cmd(
        1,
        Action::SetSupplyTemp {
            supply_temp_c: 70.0,
        },
    ))
    .unwrap();
    let out = c.tick(&input(T0 + 60_000, 0.0, Some(58.0), true));
    assert_eq!(out.mode, Mode::Optimizer);
    // Ramp: at most 2 K in the minute since the last tick.
    assert!((setpoint(&out) - 62.0).abs() < 1e-9, "{}", setpoint(&out));
    // Link lost: back to the curve, again ramped.
    let out = c.tick(&input(T0 + 120_000, 0.0, Some(60.0), false));
    assert_eq!(out.mode, Mode::Fallback);
    assert!((setpoint(&out) - 60.0).abs() < 1e-9);
}

#[test]
fn override_wins_until_it_expires() {
    let mut c = substation();
    c.tick(&input(T0, 0.0, Some(55.0), true));
    c.command(&cmd(
        1,
        Action::SetSupplyTemp {
            supply_temp_c: 60.0,
        },
    ))
    .unwrap();
    c.command(&cmd(
        2,
        Action::SetOverride {
            supply_temp_c: 61.0,
            expires_at_ms: T0 + 120_000,
        },
    ))
    .unwrap();
    let out = c.tick(&input(T0 + 60_000, 0.0, Some(55.0), true));
    assert_eq!(out.mode, Mode::Override);
    let out = c.tick(&input(T0 + 120_000, 0.0, Some(55.0), true));
    assert_eq!(out.mode, Mode::Optimizer);
}

#[test]
fn a_failed_supply_sensor_puts_the_valve_at_its_safe_opening() {
    let mut c = substation();
    let out = c.tick(&input(T0, 0.0, None, true));
    assert_eq!(out.mode, Mode::Safe);
    assert_eq!(
        out.writes[0],
        ActuatorWrite {
            actuator: Actuator::PrimaryValve,
            value: 0.5
        }
    );
}

#[test]
fn bad_commands_are_refused_whole_and_change_nothing() {
    let mut c = substation();
    c.tick(&input(T0, 0.0, Some(55.0), true));
    c.command(&cmd(
        5,
        Action::SetSupplyTemp {
            supply_temp_c: 60.0,
        },
    ))
    .unwrap();
    let before = c.clone();
    let nan_curve = || {
        // A curve that passed the wire's wide limits but not this node's.
        SupplyCurve::new(
            vec![
                CurvePoint {
                    outdoor_temp_c: -10.0,
                    supply_temp_c: 94.0,
                },
                CurvePoint {
                    outdoor_temp_c: 10.0,
                    supply_temp_c: 40.0,
                },
            ],
            30.0,
            95.0,
            (25.0, 95.0),
        )
        .unwrap()
    };
    let cases = vec![
        (
            cmd(
                6,
                Action::SetSupplyTemp {
                    supply_temp_c: 95.0,
                },
            ),
            "supply_temp_c 95 °C is outside this node's limits 30..90 °C",
        ),
        (
            cmd(
                6,
                Action::SetSupplyTemp {
                    supply_temp_c: f64::NAN,
                },
            ),
            "supply_temp_c NaN °C is outside this node's limits 30..90 °C",
        ),
        (
            cmd(
                5,
                Action::SetSupplyTemp {
                    supply_temp_c: 50.0,
                },
            ),
            "stale command: version 5 is not newer than the last applied version 5",
        ),
        (
            cmd(
                6,
                Action::SetCurve {
                    curve: nan_curve(),
                    curve_version: 2,
                },
            ),
            "curve: limits: min_supply_temp_c 30 and max_supply_temp_c 95 must be finite, with min < max, inside 30..90 °C",
        ),
        (
            cmd(
                6,
                Action::SetOverride {
                    supply_temp_c: 60.0,
                    expires_at_ms: T0,
                },
            ),
            "override expires at 1796054400000 ms, which is not after the node's current time 1796054400000 ms",
        ),
        (
            cmd(
                6,
                Action::SetOverride {
                    supply_temp_c: 60.0,
                    expires_at_ms: T0 + 8 * 24 * 3_600_000,
                },
            ),
            "override lasts 192 h; at most 168 h",
        ),
    ];
    for (command, want) in cases {
        assert_eq!(c.command(&command).unwrap_err(), want);
        assert_eq!(c, before, "a refused command changed the controller");
    }
}

/// Building s01-b01 of substation s01.
fn building() -> Controller {
    Controller::new(&NodeConfig {
        id: NodeId::new("s01-b01").unwrap(),
        kind: NodeKind::Building,
        parent: Some(NodeId::new("s01").unwrap()),
        group: None,
        supply_limits_c: None,
        fallback_curve: None,
        max_setpoint_rate_k_per_min: 2.0,
        return_limit_c: None,
        pump_dp_setpoint_pa: None,
    })
    .unwrap()
}

#[test]
fn buildings_refuse_supply_commands_and_throttle_when_warm() {
    let mut b = building();
    let err = b
        .command(&cmd(
            1,
            Action::SetSupplyTemp {
                supply_temp_c: 60.0,
            },
        ))
        .unwrap_err();
    assert!(err.contains("takes no set_supply_temp command"), "{err}");
    let warm = |t| TickInput {
        time_ms: t,
        readings: Some(vec![Reading::new(Metric::RoomTempC, 23.0)]),
        link: LinkState {
            optimizer_recent: true,
        },
    };
    b.tick(&warm(T0));
    let out = b.tick(&warm(T0 + 600_000));
    // Target at 23 °C: 1 − 0.4·2 = 0.2 → clamped to 0.3; reached within a full stroke.
    assert!((out.writes[0].value - 0.3).abs() < 1e-9, "{:?}", out.writes);
}

fn valve(out: &TickOutput) -> f64 {
    out.writes
        .iter()
        .find(|w| w.actuator == Actuator::PrimaryValve)
        .unwrap()
        .value
}

#[test]
fn implausible_supply_readings_raise_findings_and_do_not_drive_the_loop() {
    // (what, the supply reading of the second tick, a minute after 55 °C)
    let cases = [
        ("out of range", 160.0),
        ("not a number", f64::NAN),
        ("below freezing", -5.0),
    ];
    for (what, bad) in cases {
        let mut c = substation();
        c.tick(&input(T0, 0.0, Some(55.0), true));
        let out = c.tick(&input(T0 + 60_000, 0.0, Some(bad), true));
        assert_eq!(out.mode, Mode::Safe, "{what}");
        assert_eq!(valve(&out), 0.5, "{what}: valve not at its safe opening");
        assert_eq!(out.implausible.len(), 1, "{what}");
        assert_eq!(out.implausible[0].metric, Metric::SecondarySupplyTempC);
        assert!(
            !out.readings
                .iter()
                .any(|r| r.metric == Metric::SecondarySupplyTempC),
            "{what}: the implausible reading was reported as telemetry"
        );
    }
    // A spike: one second later, 20 K hotter.
    let mut c = substation();
    c.tick(&input(T0, 0.0, Some(55.0), true));
    let out = c.tick(&input(T0 + 1_000, 0.0, Some(75.0), true));
    assert_eq!(out.mode, Mode::Safe);
    assert!(out.implausible[0].reason.contains("faster than"));
    // A frozen sensor: exactly the same value for 30 minutes.
    let mut c = substation();
    let mut out = c.tick(&input(T0, 0.0, Some(52.25), true));
    for i in 1..=30 {
        out = c.tick(&input(T0 + i * 60_000, 0.0, Some(52.25), true));
    }
    assert_eq!(out.mode, Mode::Safe);
    assert!(
        out.implausible[0].reason.contains("stuck"),
        "{:?}",
        out.implausible
    );
}

#[test]
fn an_implausible_outdoor_reading_holds_the_fallback_setpoint() {
    let mut c = substation();
    let out = c.tick(&input(T0, 0.0, Some(55.0), false));
    assert_eq!(setpoint(&out), 60.0);
    // Outdoor jumps to −45 °C within a minute: refused, setpoint held.
    let out = c.tick(&input(T0 + 60_000, -45.0, Some(55.5), false));
    assert_eq!(out.implausible.len(), 1);
    assert_eq!(out.implausible[0].metric, Metric::OutdoorTempC);
    assert_eq!(setpoint(&out), 60.0);
    assert_eq!(out.mode, Mode::Fallback);
}

#[test]
fn leaving_safe_mode_is_bumpless() {
    let mut c = substation();
    c.tick(&input(T0, 0.0, Some(40.0), false));
    // Drive the valve to full opening: cold supply for a while.
    let mut out = c.tick(&input(T0 + 60_000, 0.0, Some(40.0), false));
    for i in 2..20 {
        out = c.tick(&input(
            T0 + i * 60_000,
            0.0,
            Some(40.0 + 0.1 * i as f64),
            false,
        ));
    }
    assert!(valve(&out) > 0.9, "{}", valve(&out));
    // Sensor lost: safe opening.
    let out = c.tick(&input(T0 + 20 * 60_000, 0.0, None, false));
    assert_eq!((out.mode, valve(&out)), (Mode::Safe, 0.5));
    // Sensor back, 5 K below setpoint: the loop starts from the safe opening,
    // not from where its integral was before.
    let out = c.tick(&input(T0 + 21 * 60_000, 0.0, Some(55.0), false));
    assert_eq!(out.mode, Mode::Fallback);
    let step = (valve(&out) - 0.5).abs();
    assert!(step < 0.1, "valve jumped by {step} on leaving safe mode");
}

fn with_return_limit(limit: Option<f64>) -> Controller {
    Controller::new(&NodeConfig {
        id: NodeId::new("s01").unwrap(),
        kind: NodeKind::Substation,
        parent: None,
        group: Some("radiator".into()),
        supply_limits_c: Some((30.0, 90.0)),
        fallback_curve: Some(curve()),
        max_setpoint_rate_k_per_min: 2.0,
        return_limit_c: limit,
        pump_dp_setpoint_pa: None,
    })
    .unwrap()
}

fn input_ret(t_ms: i64, t_sup: f64, t_ret: f64) -> TickInput {
    input_ret_flow(t_ms, t_sup, t_ret, 5.0)
}

fn input_ret_flow(t_ms: i64, t_sup: f64, t_ret: f64, flow: f64) -> TickInput {
    let mut i = input(t_ms, 0.0, Some(t_sup), false);
    if let Some(r) = i.readings.as_mut() {
        r.push(Reading::new(Metric::ReturnTempC, t_ret));
        r.push(Reading::new(Metric::FlowKgS, flow));
    }
    i
}

#[test]
fn the_return_limiter_closes_the_valve_only_above_its_limit() {
    // Secondary supply 5 K under its setpoint (60 °C): the supply loop opens.
    let run = |limit: Option<f64>, t_ret: f64| {
        let mut c = with_return_limit(limit);
        let mut v = Vec::new();
        for i in 0..30 {
            let out = c.tick(&input_ret(T0 + i * 60_000, 55.0, t_ret));
            v.push(valve(&out));
        }
        v
    };
    let free = run(None, 75.0);
    // Below the limit the limiter changes nothing.
    assert_eq!(run(Some(70.0), 65.0), free);
    // 5 K above the limit: the valve closes, although the supply is too cold.
    let limited = run(Some(70.0), 75.0);
    assert!(limited[1] < free[1], "{} vs {}", limited[1], free[1]);
    // ...and keeps closing while the return stays high (a slow PI, by design).
    assert!(limited[29] < 0.5 && limited[29] < limited[5], "{limited:?}");
    // Never fully closed: water keeps flowing past the return sensor.
    assert!(
        limited.iter().all(|v| *v >= RETURN_LIMIT_MIN_VALVE),
        "{limited:?}"
    );
    assert!(free[29] > 0.9, "{}", free[29]);
    // Without primary flow the return reading means nothing (stagnant water at
    // supply temperature): the limiter ignores it instead of locking the valve shut.
    let mut c = with_return_limit(Some(70.0));
    let mut v = Vec::new();
    for i in 0..30 {
        let out = c.tick(&input_ret_flow(T0 + i * 60_000, 55.0, 110.0, 0.0));
        v.push(valve(&out));
    }
    assert_eq!(v, free);
    // The limit is checked as configuration.
    let bad = Controller::new(&NodeConfig {
        return_limit_c: Some(f64::NAN),
        pump_dp_setpoint_pa: None,
        ..match_cfg()
    });
    assert!(bad.unwrap_err().contains("return_limit_c"));
}

/// Found in a 120-day city season: after the first cold spell put the return
/// limiter in charge, the supply loop never took the valve back. Its tracking
/// set the integral with the loop's nominal gain while its steps used the
/// scheduled one (low flow, long lockstep scans), so it always asked for an
/// almost open valve and the limiter kept holding the return at its limit:
/// secondary supply 80 °C against a setpoint of 50, rooms at 23 °C, for 70
/// days.
#[test]
fn a_supply_far_too_hot_takes_the_valve_back_from_the_return_limiter() {
    let mut c = with_return_limit(Some(60.0));
    let tick = |c: &mut Controller, i: i64, t_sup: f64, t_ret: f64, secondary_flow: f64| {
        let mut inp = input_ret_flow(T0 + i * 300_000, t_sup, t_ret, 25.0);
        if let Some(r) = inp.readings.as_mut() {
            r.push(Reading::new(Metric::SecondaryFlowKgS, secondary_flow));
        }
        c.tick(&inp)
    };
    // Cold spell: the supply is short and the return above its limit, the
    // limiter is in charge; full secondary flow.
    let mut i = 0;
    for _ in 0..20 {
        tick(&mut c, i, 55.0, 62.0, 100.0);
        i += 1;
    }
    // Milder: the buildings throttle (a sixth of the flow) and the supply
    // warms to 20 K above its setpoint (1 K a scan, plausibly), while the
    // return hovers at the limit.
    for k in 0..25 {
        tick(&mut c, i, 55.0 + k as f64, 60.0, 16.0);
        i += 1;
    }
    let mut valves = Vec::new();
    for k in 0..200 {
        let (t_sup, t_ret) = if k % 2 == 0 {
            (80.1, 60.2)
        } else {
            (79.9, 59.8)
        };
        let out = tick(&mut c, i, t_sup, t_ret, 16.0);
        valves.push(valve(&out));
        i += 1;
    }
    let sp = setpoint(&tick(&mut c, i, 80.0, 60.0, 16.0));
    assert!(
        sp < 70.0,
        "setpoint {sp}: the test needs a supply far too hot"
    );
    assert!(
        valves[199] < valves[0] - 0.3 && valves[199] <= 0.2,
        "the valve stayed near {:.2} (first {:.2}): {valves:?}",
        valves[199],
        valves[0]
    );
}

fn match_cfg() -> NodeConfig {
    NodeConfig {
        id: NodeId::new("s01").unwrap(),
        kind: NodeKind::Substation,
        parent: None,
        group: Some("radiator".into()),
        supply_limits_c: Some((30.0, 90.0)),
        fallback_curve: Some(curve()),
        max_setpoint_rate_k_per_min: 2.0,
        return_limit_c: None,
        pump_dp_setpoint_pa: None,
    }
}

#[test]
fn a_building_with_an_implausible_room_sensor_holds_its_valve() {
    let mut b = building();
    let room = |t, v| TickInput {
        time_ms: t,
        readings: Some(vec![Reading::new(Metric::RoomTempC, v)]),
        link: LinkState {
            optimizer_recent: true,
        },
    };
    b.tick(&room(T0, 20.0));
    // A room sensor reading 45 °C would close the valve; it is refused.
    let out = b.tick(&room(T0 + 600_000, 45.0));
    assert_eq!(out.writes[0].value, 1.0);
    assert_eq!(out.implausible[0].metric, Metric::RoomTempC);
}

#[test]
fn the_loop_gain_falls_with_the_secondary_flow() {
    // The same error, at full flow and at a quarter of it: a quarter of the action.
    let first_move = |flow: f64| {
        let mut c = substation();
        let mut i = input(T0, 0.0, Some(60.0), false);
        if let Some(r) = i.readings.as_mut() {
            r.push(Reading::new(Metric::SecondaryFlowKgS, 20.0));
        }
        let v0 = valve(&c.tick(&i));
        let mut i = input(T0 + 60_000, 0.0, Some(50.0), false);
        if let Some(r) = i.readings.as_mut() {
            r.push(Reading::new(Metric::SecondaryFlowKgS, flow));
        }
        valve(&c.tick(&i)) - v0
    };
    let full = first_move(20.0);
    let quarter = first_move(5.0);
    assert!(full > 0.0);
    assert!((quarter / full - 0.25).abs() < 0.05, "{quarter} vs {full}");
    // Never below the floor of the schedule.
    let tiny = first_move(0.01);
    assert!(
        (tiny / full - MIN_GAIN_SCALE).abs() < 0.05,
        "{tiny} vs {full}"
    );
}

#[test]
fn a_stopped_secondary_pump_puts_the_loop_in_safe_mode_and_back_without_a_bump() {
    let with_pump = |t_ms: i64, t_sup: f64, running: f64| {
        let mut i = input(t_ms, 0.0, Some(t_sup), false);
        if let Some(r) = i.readings.as_mut() {
            r.push(Reading::new(Metric::PumpRunning, running));
        }
        i
    };
    let mut c = substation();
    c.tick(&with_pump(T0, 58.0, 1.0));
    // Pump tripped: the stagnant secondary cools, but the valve does not chase it.
    let mut out = c.tick(&with_pump(T0 + 60_000, 50.0, 0.0));
    for i in 2..30 {
        out = c.tick(&with_pump(T0 + i * 60_000, 40.0, 0.0));
        assert_eq!((out.mode, valve(&out)), (Mode::Safe, 0.5));
    }
    // The pump is still commanded on, to restart.
    assert!(
        out.writes
            .iter()
            .any(|w| w.actuator == Actuator::SecondaryPump && w.value == 1.0)
    );
    // Running again, far below setpoint: the loop starts from the safe opening.
    let out = c.tick(&with_pump(T0 + 30 * 60_000, 40.5, 1.0));
    assert_eq!(out.mode, Mode::Fallback);
    assert!(
        (valve(&out) - 0.5).abs() < 0.15,
        "valve jumped to {}",
        valve(&out)
    );
}

fn pump_speed(out: &TickOutput, actuator: Actuator) -> Option<f64> {
    out.writes
        .iter()
        .find(|w| w.actuator == actuator)
        .map(|w| w.value)
}

#[test]
fn the_secondary_pump_holds_its_differential_pressure_and_runs_rated_without_a_reading() {
    let mut cfg = match_cfg();
    cfg.kind = NodeKind::Substation;
    cfg.pump_dp_setpoint_pa = Some(50_000.0);
    let mut c = Controller::new(&cfg).unwrap();
    let tick = |c: &mut Controller, t_ms: i64, dp: Option<f64>| {
        let mut r = vec![
            Reading::new(Metric::OutdoorTempC, 0.0),
            Reading::new(Metric::SecondarySupplyTempC, 60.0),
            Reading::new(Metric::PumpRunning, 1.0),
        ];
        if let Some(dp) = dp {
            r.push(Reading::new(Metric::SecondaryDiffPressurePa, dp));
        }
        let out = c.tick(&TickInput {
            time_ms: t_ms,
            readings: Some(r),
            link: LinkState {
                optimizer_recent: false,
            },
        });
        pump_speed(&out, Actuator::SecondaryPumpSpeed).expect("a pump speed write")
    };
    let mut speed = tick(&mut c, 0, Some(50_000.0));
    assert!((speed - 1.0).abs() < 1e-9, "{speed}");
    // Buildings throttle: the pressure rises above the setpoint, the pump slows.
    for k in 1..=30 {
        let next = tick(&mut c, k * 60_000, Some(65_000.0));
        assert!(next <= speed + 1e-12, "{next} after {speed}");
        speed = next;
    }
    assert!((MIN_PUMP_SPEED..0.8).contains(&speed), "{speed}");
    // The sensor fails: rated speed, and no jump back when it returns.
    assert_eq!(tick(&mut c, 31 * 60_000, None), 1.0);
    let back = tick(&mut c, 32 * 60_000, Some(50_000.0));
    assert!((back - 1.0).abs() < 1e-9, "{back}");
    // Without a setpoint the pump is left at its rated speed (no write).
    let out = substation().tick(&input(0, 0.0, Some(60.0), false));
    assert_eq!(pump_speed(&out, Actuator::SecondaryPumpSpeed), None);
    // Buildings have no pump.
    let mut bad = match_cfg();
    bad.kind = NodeKind::Building;
    bad.pump_dp_setpoint_pa = Some(50_000.0);
    let err = Controller::new(&bad).unwrap_err();
    assert!(err.contains("pump_dp_setpoint_pa"), "{err}");
    let mut bad = match_cfg();
    bad.pump_dp_setpoint_pa = Some(f64::NAN);
    assert!(Controller::new(&bad).is_err());
}

fn plant_ctl() -> Controller {
    Controller::new(&NodeConfig {
        id: NodeId::new("chp").unwrap(),
        kind: NodeKind::Plant,
        parent: None,
        group: None,
        supply_limits_c: None,
        fallback_curve: Some(
            SupplyCurve::new(
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
                model::network::PLANT_SUPPLY_LIMITS_C,
            )
            .unwrap(),
        ),
        max_setpoint_rate_k_per_min: 2.0,
        return_limit_c: None,
        pump_dp_setpoint_pa: None,
    })
    .unwrap()
}

fn plant_tick(
    c: &mut Controller,
    t_ms: i64,
    heat_w: f64,
    head_pa: f64,
    online: bool,
) -> TickOutput {
    plant_tick_at(c, t_ms, heat_w, head_pa, online, 100.0)
}

/// A plant tick with its supply at `supply_c` (its setpoint at 0 °C
/// outdoors is 93.5 °C).
fn plant_tick_at(
    c: &mut Controller,
    t_ms: i64,
    heat_w: f64,
    head_pa: f64,
    online: bool,
    supply_c: f64,
) -> TickOutput {
    c.tick(&TickInput {
        time_ms: t_ms,
        readings: Some(vec![
            Reading::new(Metric::OutdoorTempC, 0.0),
            Reading::new(Metric::SupplyTempC, supply_c),
            Reading::new(Metric::ReturnTempC, 45.0),
            Reading::new(Metric::FlowKgS, 40.0),
            Reading::new(Metric::HeatW, heat_w),
            Reading::new(Metric::DiffPressurePa, head_pa),
            Reading::new(Metric::PumpRunning, 1.0),
        ]),
        link: LinkState {
            optimizer_recent: online,
        },
    })
}

#[test]
fn a_dispatched_plant_tracks_its_heat_output_with_its_pump_speed() {
    let mut c = plant_ctl();
    // Before any dispatch: rated speed, no speed write (as before).
    let out = plant_tick(&mut c, T0, 5.0e6, 4.0e5, true);
    assert_eq!(pump_speed(&out, Actuator::PlantPumpSpeed), None);
    c.command(&cmd(1, Action::SetHeatOutput { heat_w: 8.0e6 }))
        .unwrap();
    // Bumpless: the first speed is the rated one plus only the P part:
    // 0.2/8 MW · 3 MW = 0.075.
    let out = plant_tick(&mut c, T0 + 1_000, 5.0e6, 4.0e5, true);
    let first = pump_speed(&out, Actuator::PlantPumpSpeed).unwrap();
    assert!((first - 1.075).abs() < 1e-3, "{first}");
    // Heat stays short: the speed rises to its limit and stays there.
    let mut speed = first;
    for k in 2..2000 {
        let out = plant_tick(&mut c, T0 + k * 10_000, 5.0e6, 4.0e5, true);
        let next = pump_speed(&out, Actuator::PlantPumpSpeed).unwrap();
        assert!(next >= speed - 1e-12);
        speed = next;
    }
    assert!(
        (speed - model::hardware::PUMP_SPEED_LIMITS.1).abs() < 1e-3,
        "{speed}"
    );
    // Too much heat: the speed falls.
    let out = plant_tick(&mut c, T0 + 20_010_000, 10.0e6, 4.0e5, true);
    assert!(pump_speed(&out, Actuator::PlantPumpSpeed).unwrap() < speed);
    // Not committed: the pump stops.
    c.command(&cmd(2, Action::SetHeatOutput { heat_w: 0.0 }))
        .unwrap();
    let out = plant_tick(&mut c, T0 + 20_020_000, 10.0e6, 4.0e5, true);
    assert_eq!(pump_speed(&out, Actuator::PlantPump), Some(0.0));
    // The optimizer falls silent: the pump runs again, at rated speed.
    let out = plant_tick(&mut c, T0 + 20_030_000, 0.0, 4.0e5, false);
    assert_eq!(pump_speed(&out, Actuator::PlantPump), Some(1.0));
    assert_eq!(pump_speed(&out, Actuator::PlantPumpSpeed), Some(1.0));
}

/// A plant tick with its outlet at its 45 °C return (no heat put in),
/// carrying `flow_kg_s`.
fn cold_outlet(c: &mut Controller, t_ms: i64, flow_kg_s: f64, heat_w: f64) -> TickOutput {
    c.tick(&TickInput {
        time_ms: t_ms,
        readings: Some(vec![
            Reading::new(Metric::OutdoorTempC, 0.0),
            Reading::new(Metric::SupplyTempC, 45.0),
            Reading::new(Metric::ReturnTempC, 45.0),
            Reading::new(Metric::FlowKgS, flow_kg_s),
            Reading::new(Metric::HeatW, heat_w),
            Reading::new(Metric::DiffPressurePa, 4.0e5),
            Reading::new(Metric::PumpRunning, 1.0),
        ]),
        link: LinkState {
            optimizer_recent: true,
        },
    })
}

#[test]
fn a_plant_whose_heat_source_is_at_its_limit_does_not_speed_its_pump_up() {
    let mut c = plant_ctl();
    c.command(&cmd(1, Action::SetHeatOutput { heat_w: 8.0e6 }))
        .unwrap();
    // Let the setpoint ramp (2 K/min) to the curve's 93.5 °C.
    let mut t = T0;
    for _ in 0..40 {
        t += 60_000;
        plant_tick(&mut c, t, 8.0e6, 4.0e5, true);
    }
    let speed_at = |out: &TickOutput| pump_speed(out, Actuator::PlantPumpSpeed).unwrap();
    let before = speed_at(&plant_tick(&mut c, t + 1_000, 8.0e6, 4.0e5, true));
    // Heat short by 3 MW with the supply 3.5 K and more under its setpoint:
    // the source is at its limit; the speed never rises.
    for (k, supply_c) in [(1, 90.0), (2, 85.0), (3, 80.0)] {
        for j in 0..100 {
            let out = plant_tick_at(
                &mut c,
                t + k * 1_000_000 + j * 10_000,
                5.0e6,
                4.0e5,
                true,
                supply_c,
            );
            assert!(speed_at(&out) <= before + 1e-12, "supply {supply_c} °C");
        }
    }
    // Too much heat at the limit: the speed still falls (once the smoothed
    // reading has seen it: ten minutes).
    let mut out = plant_tick_at(&mut c, t + 4_000_000, 10.0e6, 4.0e5, true, 85.0);
    for j in 1..=10 {
        out = plant_tick_at(
            &mut c,
            t + 4_000_000 + j * 60_000,
            10.0e6,
            4.0e5,
            true,
            85.0,
        );
    }
    assert!(speed_at(&out) < before);
    let low = speed_at(&out);
    // A source that puts no heat in (a trip: the outlet at the return)
    // while its plant carries water: the speed never rises.
    let mut speed = low;
    for j in 0..60 {
        let out = cold_outlet(&mut c, t + 5_000_000 + j * 60_000, 40.0, 0.1e6);
        let next = speed_at(&out);
        assert!(
            next <= speed + 1e-12,
            "scan {j}: {speed} -> {next} {:?}",
            out.implausible
        );
        speed = next;
    }
    // A plant carrying next to no water (another plant's pump overpowers
    // its own) reads a stagnant outlet: its loop speeds the pump up.
    let out = cold_outlet(&mut c, t + 5_000_000 + 60 * 60_000, 0.5, 0.0);
    assert!(speed_at(&out) > speed);
    // Within 3 K of its setpoint the loop speeds the pump up again.
    let out = plant_tick_at(&mut c, t + 20_000_000, 5.0e6, 4.0e5, true, 91.0);
    assert!(speed_at(&out) > speed);
}

#[test]
fn a_heat_reading_swinging_from_step_to_step_moves_the_pump_little() {
    // Two plants joined by open ties take the flow from each other: the
    // reading swings between nothing and twice the 100 MW order at 300 s
    // steps. Smoothed, the loop sees a quarter of the swing and moves the
    // speed by 0.12 a step at most; on the raw reading its P part alone moved
    // it by 0.4.
    let mut c = plant_ctl();
    c.command(&cmd(1, Action::SetHeatOutput { heat_w: 100.0e6 }))
        .unwrap();
    let speed_at = |out: &TickOutput| pump_speed(out, Actuator::PlantPumpSpeed).unwrap();
    let mut t = T0;
    for _ in 0..10 {
        t += 300_000;
        plant_tick(&mut c, t, 100.0e6, 4.0e5, true);
    }
    let mut speed = speed_at(&plant_tick(&mut c, t + 1_000, 100.0e6, 4.0e5, true));
    t += 1_000;
    for k in 0..20 {
        t += 300_000;
        let heat_w = if k % 2 == 0 { 0.0 } else { 200.0e6 };
        let next = speed_at(&plant_tick(&mut c, t, heat_w, 4.0e5, true));
        assert!(
            (next - speed).abs() <= 0.12,
            "step {k}: {heat_w} W read, speed {speed} -> {next}"
        );
        speed = next;
    }
}

#[test]
fn the_heat_loop_gain_follows_the_order_not_the_first_one() {
    // Made for a 24 MW order (a boiler at its minimum load), then ordered
    // 150 MW with 100 MW made, at 300 s scans: 10 % of the operating point
    // moves the speed by 2 % (P: 0.2 · 96/150 = 0.13 on the first scan, the
    // smoothed reading then at 54 MW; I: a third of that a scan), not by
    // 12 % as a gain fixed at 24 MW would.
    let mut c = plant_ctl();
    c.command(&cmd(1, Action::SetHeatOutput { heat_w: 24.0e6 }))
        .unwrap();
    let speed_at = |out: &TickOutput| pump_speed(out, Actuator::PlantPumpSpeed).unwrap();
    let mut t = T0;
    let mut speed = 0.0;
    for _ in 0..10 {
        t += 300_000;
        speed = speed_at(&plant_tick(&mut c, t, 24.0e6, 4.0e5, true));
    }
    c.command(&cmd(2, Action::SetHeatOutput { heat_w: 150.0e6 }))
        .unwrap();
    let start = speed;
    for k in 0..4 {
        t += 300_000;
        let next = speed_at(&plant_tick(&mut c, t, 100.0e6, 4.0e5, true));
        let step = next - speed;
        let limit = if k == 0 { 0.2 } else { 0.03 };
        // Up at the first scan; then near the 1.2 limit, the P part gives
        // back a little as the smoothed reading climbs to 100 MW.
        assert!(
            step.abs() <= limit && (k > 0 || step > 0.0),
            "scan {k}: {speed} -> {next}"
        );
        speed = next;
    }
    assert!(speed > start + 0.1, "{start} -> {speed}");
    // Far too much heat: the speed falls, by its P part turned round and a
    // scan of I (0.067 + 0.121 + 0.04), not to its minimum.
    t += 300_000;
    let next = speed_at(&plant_tick(&mut c, t, 380.0e6, 4.0e5, true));
    assert!(next < speed && speed - next <= 0.25, "{speed} -> {next}");
}

#[test]
fn the_lead_plant_holds_the_pump_head_it_is_given() {
    let mut c = plant_ctl();
    c.command(&cmd(1, Action::SetPumpHead { head_pa: 4.0e5 }))
        .unwrap();
    let mut speed = 1.0;
    // Head above its setpoint: the pump slows, not below its minimum.
    for k in 1..100 {
        let out = plant_tick(&mut c, T0 + k * 60_000, 5.0e6, 5.0e5, true);
        let next = pump_speed(&out, Actuator::PlantPumpSpeed).unwrap();
        assert!(next <= speed + 1e-12);
        speed = next;
    }
    assert!((MIN_PUMP_SPEED..0.4).contains(&speed), "{speed}");
    // A later head only moves the setpoint (the loop keeps its state).
    c.command(&cmd(2, Action::SetPumpHead { head_pa: 6.0e5 }))
        .unwrap();
    let out = plant_tick(&mut c, T0 + 100 * 60_000, 5.0e6, 5.0e5, true);
    assert!(pump_speed(&out, Actuator::PlantPumpSpeed).unwrap() > speed);
    // Refusals name the field; stale versions and substations are refused.
    let err = c
        .command(&cmd(3, Action::SetPumpHead { head_pa: f64::NAN }))
        .unwrap_err();
    assert!(err.contains("head_pa"), "{err}");
    let err = c
        .command(&cmd(2, Action::SetHeatOutput { heat_w: 1.0e6 }))
        .unwrap_err();
    assert!(err.contains("stale"), "{err}");
    let err = substation()
        .command(&cmd(1, Action::SetHeatOutput { heat_w: 1.0e6 }))
        .unwrap_err();
    assert!(err.contains("set_heat_output is for plants"), "{err}");
}

/// The substation's supply loop against a process that settles within a
/// long scan (a radiator circuit behind a heat exchanger seen every `dt_s`):
/// secondary supply = 18 °C + 100 K × valve position, the valve moving at
/// the simulator's stroke speed (60 s). Returns the valve positions.
fn static_process_run(pi: &mut Pi, dt_s: f64, scans: usize) -> Vec<f64> {
    let mut valve = 0.5;
    (0..scans)
        .map(|_| {
            let t_sup = 18.0 + 100.0 * valve;
            let command = pi.step(70.0, t_sup, dt_s);
            let travel = dt_s / 60.0;
            valve += (command - valve).clamp(-travel, travel);
            valve
        })
        .collect()
}

#[test]
fn a_long_scan_does_not_bang_the_valve() {
    // The substation loop's tuning (law.rs: kp 0.015/K, Ti 180 s).
    // Scans of a minute and less are covered by the control-loop tests
    // against the simulator (tests/control_loop.rs).
    for dt_s in [120.0, 300.0, 600.0, 1800.0] {
        let mut pi = Pi::new(0.015, 180.0, 0.0, 1.0, 0.5);
        let openings = static_process_run(&mut pi, dt_s, 200);
        let tail = &openings[150..];
        let (lo, hi) = tail
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        // Settled at 0.52 (70 °C), not cycling between the stops.
        assert!(
            (lo - 0.52).abs() < 0.02 && (hi - 0.52).abs() < 0.02,
            "dt {dt_s} s: valve cycles over {lo:.3}..{hi:.3}"
        );
    }
    // Without the long-scan scaling the same loop bangs between the stops at
    // 300 s scans: what a lockstep season run showed before.
    let mut pi = Pi::new(0.015, 180.0, 0.0, 1.0, 0.5).with_max_dt_s(f64::INFINITY);
    let openings = static_process_run(&mut pi, 300.0, 200);
    let tail = &openings[150..];
    assert!(
        tail.iter().any(|&v| v < 0.05) && tail.iter().any(|&v| v > 0.7),
        "{tail:?}"
    );
}

#[test]
fn a_pi_state_saved_before_max_dt_existed_still_loads() {
    let old = r#"{"kp":0.015,"ti_s":180.0,"out_min":0.0,"out_max":1.0,"integral":0.4}"#;
    let pi: Pi = serde_json::from_str(old).unwrap();
    assert_eq!(pi.max_dt_s, SAMPLED_MAX_DT_S);
}

#[test]
fn a_substation_whose_valve_does_not_follow_reports_it_and_one_that_follows_does_not() {
    // 300 s scans, the supply 15 K short of its setpoint at -5 °C outside:
    // the loop opens the valve. `position` gives the valve's reading at scan k
    // from the valve written at the scan before.
    let run = |stuck_at: Option<f64>| {
        let mut c = substation();
        let mut last_valve = None::<f64>;
        let mut faults = Vec::new();
        for k in 0..12 {
            // (A reading that never changes would be withheld as frozen.)
            let t_sup = 50.0 + 0.1 * (k % 2) as f64;
            let mut inp = input(T0 + k * 300_000, -5.0, Some(t_sup), false);
            let position = stuck_at.or(last_valve).unwrap_or(0.5);
            if let Some(r) = inp.readings.as_mut() {
                r.push(Reading::new(Metric::ValvePosition, position));
            }
            let out = c.tick(&inp);
            last_valve = Some(valve(&out));
            faults.push(out.valve_fault);
        }
        (faults, last_valve)
    };
    let (faults, last) = run(None);
    assert!(faults.iter().all(Option::is_none), "{faults:?}");
    assert!(
        last.is_some_and(|v| v > 0.9),
        "the loop must open the valve: {last:?}"
    );
    // Stuck at 20 %: the gap is seen once the command has left 25 %, and
    // reported ten minutes (two scans) after.
    let (faults, _) = run(Some(0.2));
    let first = faults.iter().position(Option::is_some).expect("a fault");
    assert!(first <= 3, "found at scan {first}: {faults:?}");
    assert!(faults[first..].iter().all(Option::is_some), "{faults:?}");
    let f = faults[first].as_ref().expect("fault");
    assert_eq!(f.position, 0.2);
    assert_eq!(f.found_ms - f.since_ms, 600_000);
}

#[test]
fn a_building_whose_balancing_valve_does_not_close_reports_it() {
    let mut b = building();
    // A warm room (valve sent to 0.3) whose valve stays wide open.
    let tick = |b: &mut Controller, k: i64| {
        b.tick(&TickInput {
            time_ms: T0 + k * 300_000,
            readings: Some(vec![
                Reading::new(Metric::RoomTempC, 23.0),
                Reading::new(Metric::ValvePosition, 1.0),
            ]),
            link: LinkState {
                optimizer_recent: true,
            },
        })
    };
    let found: Vec<bool> = (0..6)
        .map(|k| tick(&mut b, k).valve_fault.is_some())
        .collect();
    // Scan 1 sends 0.5, scan 2 sees the gap, scan 4 reports it.
    assert_eq!(found, [false, false, false, false, true, true]);
}
