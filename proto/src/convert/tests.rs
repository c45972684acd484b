//! Bad messages are refused with the field and the reason; good ones round-trip.

use super::*;

fn snapshot(actor: &str) -> v1::ActorSnapshot {
    v1::ActorSnapshot {
        actor_id: actor.into(),
        time_ms: 1_796_054_400_000,
        mode: v1::Mode::Optimizer as i32,
        readings: vec![
            v1::Reading {
                metric: v1::Metric::RoomTempC as i32,
                value: 19.5,
            },
            v1::Reading {
                metric: v1::Metric::HeatW as i32,
                value: 120_000.0,
            },
        ],
    }
}

fn batch() -> v1::TelemetryBatch {
    v1::TelemetryBatch {
        seq: 7,
        snapshots: vec![snapshot("s01"), snapshot("s01-b01")],
    }
}

fn command(action: Option<v1::command::Action>) -> v1::Command {
    v1::Command {
        command_id: "c-1".into(),
        actor_id: "s01".into(),
        version: 3,
        action,
    }
}

fn curve(points: &[(f64, f64)], min: f64, max: f64) -> v1::SupplyCurve {
    v1::SupplyCurve {
        points: points
            .iter()
            .map(|&(o, s)| v1::CurvePoint {
                outdoor_temp_c: o,
                supply_temp_c: s,
            })
            .collect(),
        min_supply_temp_c: min,
        max_supply_temp_c: max,
    }
}

#[test]
fn a_good_batch_round_trips_through_storage_encoding() {
    let domain = TelemetryBatch::try_from(&batch()).unwrap();
    assert_eq!(domain.seq, 7);
    assert_eq!(domain.sample_count(), 4);
    let bytes = encode_batch(&domain);
    assert_eq!(decode_batch(&bytes).unwrap(), domain);
    assert!(matches!(
        decode_batch(&[0xff, 0xff, 0xff]),
        Err(ConversionError::Decode(_))
    ));
}

#[test]
fn bad_batches_name_the_field_and_reason() {
    type Edit = fn(&mut v1::TelemetryBatch);
    let cases: Vec<(Edit, &str)> = vec![
        (
            |b| b.seq = 0,
            "batch.seq: 0 is out of range: sequence numbers start at 1",
        ),
        (
            |b| b.snapshots[1].actor_id.clear(),
            "batch.snapshots[1].actor_id: missing",
        ),
        (
            |b| b.snapshots[0].actor_id = "S 1".into(),
            "batch.snapshots[0].actor_id: id \"S 1\" has character 'S': use a-z, 0-9, '-', '_' and '.', starting with a letter or digit",
        ),
        (
            |b| b.snapshots[0].mode = 0,
            "batch.snapshots[0].mode: unspecified; give one of the enum's values",
        ),
        (
            |b| b.snapshots[0].mode = 99,
            "batch.snapshots[0].mode: unknown enum value 99",
        ),
        (
            |b| b.snapshots[0].time_ms = -5,
            "batch.snapshots[0].time_ms: -5 is out of range: must be a positive Unix time in milliseconds",
        ),
        (
            |b| b.snapshots[0].readings[0].metric = 0,
            "batch.snapshots[0].readings[0].metric: unspecified; give one of the enum's values",
        ),
        (
            |b| b.snapshots[0].readings[1].metric = 1234,
            "batch.snapshots[0].readings[1].metric: unknown enum value 1234",
        ),
        (
            |b| b.snapshots[1].readings[0].value = f64::NAN,
            "batch.snapshots[1].readings[0].value: NaN is out of range: not a finite number",
        ),
        (
            |b| b.snapshots[1].readings[0].value = 95.0,
            "batch.snapshots[1].readings[0].value: 95 is out of range: allowed -60..70",
        ),
    ];
    for (edit, want) in cases {
        let mut b = batch();
        edit(&mut b);
        let err = TelemetryBatch::try_from(&b).unwrap_err();
        assert_eq!(err.to_string(), want);
        let status = tonic::Status::from(err);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), want);
    }
}

#[test]
fn unknown_actors_are_refused() {
    let b = TelemetryBatch::try_from(&batch()).unwrap();
    let hosted = ["s01", "s01-b01"];
    assert!(check_known_actors(&b, |id| hosted.contains(&id.as_str())).is_ok());
    let err = check_known_actors(&b, |id| id.as_str() == "s01").unwrap_err();
    assert_eq!(
        err.to_string(),
        "batch.snapshots[1].actor_id: unknown node s01-b01"
    );
}

#[test]
fn commands_round_trip() {
    use v1::command::Action as A;
    let wire = [
        command(Some(A::SetSupplyTemp(v1::SetSupplyTemp {
            supply_temp_c: 62.5,
        }))),
        command(Some(A::SetCurve(v1::SetCurve {
            curve: Some(curve(&[(-10.0, 80.0), (10.0, 40.0)], 30.0, 85.0)),
            curve_version: 4,
        }))),
        command(Some(A::SetOverride(v1::SetOverride {
            supply_temp_c: 70.0,
            expires_at_ms: 1_796_054_400_000,
        }))),
        command(Some(A::ClearOverride(v1::ClearOverride {}))),
        command(Some(A::SetHeatOutput(v1::SetHeatOutput { heat_w: 8.5e6 }))),
        command(Some(A::SetHeatOutput(v1::SetHeatOutput { heat_w: 0.0 }))),
        command(Some(A::SetPumpHead(v1::SetPumpHead { head_pa: 4.5e5 }))),
    ];
    for w in wire {
        let domain = Command::try_from(&w).unwrap();
        assert_eq!(v1::Command::from(&domain), w);
    }
}

#[test]
fn bad_commands_name_the_field_and_reason() {
    use v1::command::Action as A;
    let set = |t: f64| {
        command(Some(A::SetSupplyTemp(v1::SetSupplyTemp {
            supply_temp_c: t,
        })))
    };
    let mut no_id = set(60.0);
    no_id.actor_id.clear();
    let mut v0 = set(60.0);
    v0.version = 0;
    let cases = vec![
        (command(None), "command.action: missing".to_string()),
        (no_id, "command.actor_id: missing".into()),
        (v0, "command.version: 0 is out of range: versions start at 1".into()),
        (
            set(f64::NAN),
            "command.set_supply_temp.supply_temp_c: NaN is out of range: not a finite number".into(),
        ),
        (
            set(180.0),
            "command.set_supply_temp.supply_temp_c: 180 is out of range: allowed 25..130".into(),
        ),
        (
            command(Some(A::SetHeatOutput(v1::SetHeatOutput { heat_w: -1.0 }))),
            "command.set_heat_output.heat_w: -1 is out of range: allowed 0..10000000000".into(),
        ),
        (
            command(Some(A::SetPumpHead(v1::SetPumpHead { head_pa: 10.0 }))),
            "command.set_pump_head.head_pa: 10 is out of range: allowed 1000..3000000".into(),
        ),
        (
            command(Some(A::SetCurve(v1::SetCurve {
                curve: None,
                curve_version: 1,
            }))),
            "command.set_curve.curve: missing".into(),
        ),
        (
            command(Some(A::SetCurve(v1::SetCurve {
                curve: Some(curve(&[(-10.0, 80.0), (-12.0, 40.0)], 30.0, 85.0)),
                curve_version: 1,
            }))),
            "command.set_curve.curve: point 1: outdoor_temp_c -12 must be greater than the previous point's".into(),
        ),
        (
            command(Some(A::SetOverride(v1::SetOverride {
                supply_temp_c: 60.0,
                expires_at_ms: 0,
            }))),
            "command.set_override.expires_at_ms: 0 is out of range: must be a positive Unix time in milliseconds".into(),
        ),
    ];
    for (w, want) in cases {
        assert_eq!(Command::try_from(&w).unwrap_err().to_string(), want);
    }
}

#[test]
fn command_results_need_a_reason_when_rejected() {
    let ok = v1::CommandResult {
        command_id: "c".into(),
        accepted: true,
        reason: String::new(),
    };
    assert_eq!(
        CommandResult::try_from(&ok).unwrap().outcome,
        CommandOutcome::Accepted
    );
    let bad = v1::CommandResult {
        accepted: false,
        ..ok.clone()
    };
    assert_eq!(
        CommandResult::try_from(&bad).unwrap_err().to_string(),
        "command_result.reason: missing"
    );
}

#[test]
fn every_metric_maps_both_ways() {
    for m in Metric::ALL {
        let raw = v1::Metric::from(m) as i32;
        assert_eq!(metric("m", raw).unwrap(), m);
    }
    for k in [NodeKind::Plant, NodeKind::Substation, NodeKind::Building] {
        assert_eq!(node_kind("k", v1::NodeKind::from(k) as i32).unwrap(), k);
    }
    for md in [Mode::Optimizer, Mode::Fallback, Mode::Override, Mode::Safe] {
        assert_eq!(mode("m", v1::Mode::from(md) as i32).unwrap(), md);
    }
}

#[test]
fn an_empty_batch_is_a_condensed_placeholder() {
    let wire = v1::TelemetryBatch {
        seq: 7,
        snapshots: vec![],
    };
    let b = TelemetryBatch::try_from(&wire).unwrap();
    assert_eq!((b.seq, b.snapshots.len()), (7, 0));
    assert_eq!(decode_batch(&encode_batch(&b)).unwrap(), b);
}

#[test]
fn edge_alarms_round_trip_and_bad_ones_are_named() {
    let a = EdgeAlarm {
        kind: EdgeAlarmKind::SensorImplausible,
        node_id: NodeId::new("s01").unwrap(),
        metric: Some(Metric::SecondarySupplyTempC),
        message: "stuck".into(),
    };
    let set = v1::EdgeAlarms {
        alarms: vec![(&a).into()],
    };
    assert_eq!(edge_alarms(&set).unwrap(), vec![a.clone()]);
    // A stuck valve is about the node, not a metric: one sent with a metric
    // comes back without.
    let stuck = EdgeAlarm {
        kind: EdgeAlarmKind::ValveStuck,
        node_id: NodeId::new("s01").unwrap(),
        metric: None,
        message: "valve at 20 % while commanded 90 % for 10 min".into(),
    };
    let mut wire = v1::EdgeAlarm::from(&stuck);
    assert_eq!(wire.kind, "valve_stuck");
    wire.metric = 3;
    assert_eq!(
        edge_alarms(&v1::EdgeAlarms { alarms: vec![wire] }).unwrap(),
        vec![stuck]
    );
    type Edit = fn(&mut v1::EdgeAlarm);
    let cases: Vec<(Edit, &str)> = vec![
        (
            |w| w.kind = "fire".into(),
            "edge_alarms.alarms[0].kind: unknown edge alarm kind \"fire\": one of sensor_implausible, outbox_condensed, valve_stuck, disk_low",
        ),
        (
            |w| w.metric = 0,
            "edge_alarms.alarms[0].metric: unspecified; give one of the enum's values",
        ),
        (
            |w| w.node_id.clear(),
            "edge_alarms.alarms[0].node_id: missing",
        ),
    ];
    for (edit, want) in cases {
        let mut w = v1::EdgeAlarm::from(&a);
        edit(&mut w);
        let err = edge_alarms(&v1::EdgeAlarms { alarms: vec![w] }).unwrap_err();
        assert_eq!(err.to_string(), want);
    }
}
