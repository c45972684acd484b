use super::*;

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn plant(makeup: f64, supply: f64, ret: f64, ps: f64, pr: f64) -> Vec<Reading> {
    vec![
        Reading::new(Metric::MakeupFlowKgS, makeup),
        Reading::new(Metric::FlowKgS, supply),
        Reading::new(Metric::ReturnFlowKgS, ret),
        Reading::new(Metric::SupplyPressurePa, ps),
        Reading::new(Metric::ReturnPressurePa, pr),
    ]
}

fn sub(ps: f64, pr: f64) -> Vec<Reading> {
    vec![
        Reading::new(Metric::SupplyPressurePa, ps),
        Reading::new(Metric::ReturnPressurePa, pr),
    ]
}

/// The ring: chp-north at j-north, boiler-south at j-south, r1 j-east,
/// r2 j-south-east, r3 j-west, r4 j-centre.
fn ring() -> Layout {
    Layout::of(&Network::sample("ring").unwrap())
}

#[test]
fn the_ring_layout_places_plants_and_substations() {
    let l = ring();
    assert_eq!(l.pipe_count(), 7);
    assert_eq!(l.junctions[l.node_at[&id("r2")]], "j-south-east");
    assert_eq!(l.junctions[l.node_at[&id("chp-north")]], "j-north");
    let demo = Layout::of(&Network::sample("demo").unwrap());
    assert!(demo.pipes.iter().any(|p| p.0 == "s01.pipe"));
}

#[test]
fn locate_picks_the_junction_with_the_largest_deficit_and_its_worst_neighbour() {
    let l = ring();
    // r2 (j-south-east) lost 900 Pa, r4 (j-centre) 600, r1 (j-east) 400,
    // boiler-south (j-south) 100.
    let d: BTreeMap<NodeId, f64> = [
        ("r2", 900.0),
        ("r4", 600.0),
        ("r1", 400.0),
        ("boiler-south", 100.0),
    ]
    .into_iter()
    .map(|(n, v)| (id(n), v))
    .collect();
    let s = l.locate(&d, 4.8).unwrap();
    assert_eq!(s.junction, "j-south-east");
    // p-c-se (j-centre – j-south-east) beats p-e-se (400) and p-se-s (100).
    assert_eq!(s.pipe_id, "p-c-se");
    assert_eq!(
        (s.from_junction.as_str(), s.to_junction.as_str()),
        ("j-centre", "j-south-east")
    );
    assert_eq!(
        s.alternatives,
        vec!["p-e-se".to_string(), "p-se-s".to_string()]
    );
    assert_eq!(s.nodes, vec!["r2".to_string(), "r4".to_string()]);
    assert_eq!(s.deficit_pa, 900.0);
    assert_eq!(s.leak_kg_s, 4.8);
    assert!(l.locate(&BTreeMap::new(), 1.0).is_none());
}

/// Feeds one minute of network time: both plants, then every substation.
fn minute(
    det: &mut LeakDetector,
    t: i64,
    makeup: f64,
    deficit: &dyn Fn(&str) -> f64,
) -> Vec<LeakEvent> {
    let mut ev = Vec::new();
    for (n, kind) in [
        ("r1", NodeKind::Substation),
        ("r2", NodeKind::Substation),
        ("r3", NodeKind::Substation),
        ("r4", NodeKind::Substation),
    ] {
        ev.extend(det.observe(&id(n), kind, t, &sub(6.0e5 - deficit(n), 2.5e5)));
    }
    ev.extend(det.observe(
        &id("chp-north"),
        NodeKind::Plant,
        t,
        &plant(
            makeup,
            100.0,
            100.0 - makeup,
            6.5e5 - deficit("chp-north"),
            2.5e5,
        ),
    ));
    ev.extend(det.observe(
        &id("boiler-south"),
        NodeKind::Plant,
        t,
        &[
            Reading::new(Metric::FlowKgS, 60.0),
            Reading::new(Metric::ReturnFlowKgS, 60.0),
            Reading::new(Metric::SupplyPressurePa, 6.4e5 - deficit("boiler-south")),
            Reading::new(Metric::ReturnPressurePa, 2.5e5),
        ],
    ));
    ev
}

#[test]
fn a_leak_is_raised_after_confirmation_located_and_cleared() {
    let mut det = LeakDetector::new(LeakConfig::default(), Some(ring()));
    let t0 = 1_800_000_000_000;
    let none = |_: &str| 0.0;
    // 30 quiet minutes: baseline make-up 0.1 kg/s.
    for k in 0..30 {
        assert!(minute(&mut det, t0 + k * 60_000, 0.1, &none).is_empty());
    }
    // A 3 kg/s leak near j-west (r3): r3 loses 800 Pa, boiler-south
    // (j-south) 500, chp-north (j-north) 300, everyone else 200.
    let leak = |n: &str| match n {
        "r3" => 800.0,
        "boiler-south" => 500.0,
        "chp-north" => 300.0,
        _ => 200.0,
    };
    let t1 = t0 + 30 * 60_000;
    // First sample above the threshold: pending, not raised.
    assert!(minute(&mut det, t1, 3.1, &leak).is_empty());
    assert!(!det.raised());
    // One minute later: raised, with the excess over the baseline (3.0 kg/s).
    let ev = minute(&mut det, t1 + 60_000, 3.1, &leak);
    let [
        LeakEvent::Raise {
            network_ms,
            leak_kg_s,
            section: Some(s),
        },
    ] = ev.as_slice()
    else {
        panic!("expected one raise, got {ev:?}");
    };
    assert_eq!(*network_ms, t1 + 60_000);
    assert!((leak_kg_s - 3.0).abs() < 1e-6, "{leak_kg_s}");
    assert_eq!(s.junction, "j-west");
    // Deficits above the (upper) median of the six nodes, 300 Pa: r3 500,
    // boiler-south 200, chp-north 0, the rest -100.
    assert_eq!(s.deficit_pa, 500.0);
    assert_eq!(s.pipe_id, "p-s-w");
    assert_eq!(s.alternatives, vec!["p-w-n".to_string()]);
    // Still leaking: nothing new.
    assert!(minute(&mut det, t1 + 120_000, 3.1, &leak).is_empty());
    // Repaired: make-up back to 0.1; cleared after one more minute below.
    assert!(minute(&mut det, t1 + 180_000, 0.1, &none).is_empty());
    assert!(det.raised());
    let ev = minute(&mut det, t1 + 240_000, 0.1, &none);
    assert_eq!(
        ev,
        vec![LeakEvent::Clear {
            network_ms: t1 + 240_000
        }]
    );
    assert!(!det.raised());
}

#[test]
fn a_single_spike_is_not_a_leak_and_a_mass_balance_alone_raises() {
    let mut det = LeakDetector::new(LeakConfig::default(), None);
    let t0 = 1_800_000_000_000;
    let p = |det: &mut LeakDetector, t: i64, supply: f64, ret: f64| {
        det.observe(
            &id("plant-a"),
            NodeKind::Plant,
            t,
            &[
                Reading::new(Metric::FlowKgS, supply),
                Reading::new(Metric::ReturnFlowKgS, ret),
            ],
        )
    };
    for k in 0..10 {
        assert_eq!(p(&mut det, t0 + k * 60_000, 50.0, 50.0), None);
    }
    // A spike of one sample: pending, then back to quiet.
    assert_eq!(p(&mut det, t0 + 600_000, 52.0, 50.0), None);
    assert_eq!(p(&mut det, t0 + 660_000, 50.0, 50.0), None);
    assert_eq!(p(&mut det, t0 + 720_000, 50.0, 50.0), None);
    // A lasting imbalance of 2 kg/s: raised without a location.
    assert_eq!(p(&mut det, t0 + 780_000, 52.0, 50.0), None);
    let ev = p(&mut det, t0 + 840_000, 52.0, 50.0);
    assert_eq!(
        ev,
        Some(LeakEvent::Raise {
            network_ms: t0 + 840_000,
            leak_kg_s: 2.0,
            section: None
        })
    );
}

fn plant_readings(heat_w: f64, supply_c: f64, setpoint_c: f64, running: f64) -> Vec<Reading> {
    vec![
        Reading::new(Metric::HeatW, heat_w),
        Reading::new(Metric::SupplyTempC, supply_c),
        Reading::new(Metric::SetpointC, setpoint_c),
        Reading::new(Metric::PumpRunning, running),
    ]
}

#[test]
fn pump_trips_raise_once_and_clear() {
    let mut det = TripDetector::new(60_000);
    let n = id("s01");
    let stopped = [Reading::new(Metric::PumpRunning, 0.0)];
    let running = [Reading::new(Metric::PumpRunning, 1.0)];
    assert!(
        det.observe(&n, NodeKind::Substation, 1, &running, true)
            .is_empty()
    );
    let ev = det.observe(&n, NodeKind::Substation, 2, &stopped, true);
    assert!(matches!(
        &ev[..],
        [TripEvent::Raise {
            kind: PUMP_TRIP,
            network_ms: 2,
            ..
        }]
    ));
    assert!(
        det.observe(&n, NodeKind::Substation, 3, &stopped, true)
            .is_empty()
    );
    let ev = det.observe(&n, NodeKind::Substation, 4, &running, true);
    assert_eq!(
        ev,
        vec![TripEvent::Clear {
            kind: PUMP_TRIP,
            node: n.clone(),
            network_ms: 4
        }]
    );
    // A pump commanded off is not tripped.
    assert!(
        det.observe(&n, NodeKind::Substation, 5, &stopped, false)
            .is_empty()
    );
}

#[test]
fn a_plant_whose_heat_collapses_while_its_pump_runs_trips() {
    let mut det = TripDetector::new(60_000);
    let n = id("plant-a");
    let t0 = 1_800_000_000_000;
    for k in 0..30 {
        let ev = det.observe(
            &n,
            NodeKind::Plant,
            t0 + k * 60_000,
            &plant_readings(10.0e6, 90.0, 90.0, 1.0),
            true,
        );
        assert!(ev.is_empty());
    }
    // Heat at 4 MW (< 7 MW, 70 % of 10), supply 80 °C against 90: collapsed.
    let t1 = t0 + 30 * 60_000;
    assert!(
        det.observe(
            &n,
            NodeKind::Plant,
            t1,
            &plant_readings(4.0e6, 80.0, 90.0, 1.0),
            true
        )
        .is_empty()
    );
    let ev = det.observe(
        &n,
        NodeKind::Plant,
        t1 + 60_000,
        &plant_readings(3.0e6, 78.0, 90.0, 1.0),
        true,
    );
    assert!(
        matches!(&ev[..], [TripEvent::Raise { kind: PLANT_TRIP, network_ms, .. }] if *network_ms == t1 + 60_000),
        "{ev:?}"
    );
    // Heat at 8 MW (< 8.5 MW, 85 %) with the supply 12 K short: collapsed too.
    let mut fast = TripDetector::new(60_000);
    for k in 0..30 {
        fast.observe(
            &n,
            NodeKind::Plant,
            t0 + k * 60_000,
            &plant_readings(10.0e6, 90.0, 90.0, 1.0),
            true,
        );
    }
    assert!(
        fast.observe(
            &n,
            NodeKind::Plant,
            t1,
            &plant_readings(8.0e6, 78.0, 90.0, 1.0),
            true
        )
        .is_empty()
    );
    let ev = fast.observe(
        &n,
        NodeKind::Plant,
        t1 + 60_000,
        &plant_readings(8.0e6, 78.0, 90.0, 1.0),
        true,
    );
    assert!(
        matches!(
            &ev[..],
            [TripEvent::Raise {
                kind: PLANT_TRIP,
                ..
            }]
        ),
        "{ev:?}"
    );
    // 8 MW with the supply 8 K short is neither.
    let mut not = TripDetector::new(60_000);
    for k in 0..30 {
        not.observe(
            &n,
            NodeKind::Plant,
            t0 + k * 60_000,
            &plant_readings(10.0e6, 90.0, 90.0, 1.0),
            true,
        );
    }
    for k in 0..3 {
        let ev = not.observe(
            &n,
            NodeKind::Plant,
            t1 + k * 60_000,
            &plant_readings(8.0e6, 82.0, 90.0, 1.0),
            true,
        );
        assert!(ev.is_empty(), "{ev:?}");
    }
    // A lower setpoint is not a trip: heat low but supply at its setpoint.
    let mut other = TripDetector::new(60_000);
    for k in 0..30 {
        other.observe(
            &n,
            NodeKind::Plant,
            t0 + k * 60_000,
            &plant_readings(10.0e6, 90.0, 90.0, 1.0),
            true,
        );
    }
    for k in 0..5 {
        let ev = other.observe(
            &n,
            NodeKind::Plant,
            t1 + k * 60_000,
            &plant_readings(4.0e6, 70.0, 70.0, 1.0),
            true,
        );
        assert!(ev.is_empty(), "{ev:?}");
    }
    // 7.5 MW at 86 °C is not yet recovered (< 9 MW, 90 % of 10, and 4 K
    // short); 9 MW at 88 °C is (2 K short): cleared.
    assert!(
        det.observe(
            &n,
            NodeKind::Plant,
            t1 + 90_000,
            &plant_readings(7.5e6, 86.0, 90.0, 1.0),
            true
        )
        .is_empty()
    );
    let ev = det.observe(
        &n,
        NodeKind::Plant,
        t1 + 120_000,
        &plant_readings(9.0e6, 88.0, 90.0, 1.0),
        true,
    );
    assert_eq!(
        ev,
        vec![TripEvent::Clear {
            kind: PLANT_TRIP,
            node: n,
            network_ms: t1 + 120_000
        }]
    );
}

#[test]
fn trips_active_before_a_restart_clear_when_the_node_recovers() {
    let mut det = TripDetector::new(60_000);
    let (s, p) = (id("s01"), id("plant-a"));
    det.resume(PUMP_TRIP, &s);
    det.resume(PLANT_TRIP, &p);
    let running = [Reading::new(Metric::PumpRunning, 1.0)];
    assert_eq!(
        det.observe(&s, NodeKind::Substation, 10, &running, true),
        vec![TripEvent::Clear {
            kind: PUMP_TRIP,
            node: s.clone(),
            network_ms: 10
        }]
    );
    // Nothing learned since the restart: 2 MW of output is recovery.
    assert_eq!(
        det.observe(
            &p,
            NodeKind::Plant,
            10,
            &plant_readings(2.0e6, 80.0, 80.0, 1.0),
            true
        ),
        vec![TripEvent::Clear {
            kind: PLANT_TRIP,
            node: p,
            network_ms: 10
        }]
    );
}

#[test]
fn the_city_layout_has_every_node_on_a_junction_and_locates_quickly() {
    let net = model::generate::city(400, model::generate::CITY_SEED).unwrap();
    let l = Layout::of(&net);
    assert_eq!(l.pipe_count(), net.pipes.len());
    assert_eq!(l.node_at.len(), net.plants.len() + net.substations.len());
    // One substation lost 500 Pa, every other node 0: its junction is named.
    let target = &net.substations[123];
    let d: BTreeMap<NodeId, f64> = net
        .substations
        .iter()
        .map(|s| (s.id.clone(), if s.id == target.id { 500.0 } else { 0.0 }))
        .collect();
    let s = l.locate(&d, 2.0).unwrap();
    assert_eq!(
        Some(s.junction.as_str()),
        target.junction.as_ref().map(|j| j.as_str())
    );
    assert!(s.from_junction == s.junction || s.to_junction == s.junction);
}

#[test]
fn a_plant_ramping_up_is_measured_against_its_recent_peak() {
    let mut det = TripDetector::new(60_000);
    let n = id("plant-a");
    let t0 = 1_800_000_000_000;
    // 2 MW for an hour, then 4 MW for 10 minutes: the 30-minute mean lags
    // near 2.6 MW, the recent peak is 4 MW.
    for k in 0..60 {
        det.observe(
            &n,
            NodeKind::Plant,
            t0 + k * 60_000,
            &plant_readings(2.0e6, 90.0, 90.0, 1.0),
            true,
        );
    }
    for k in 60..70 {
        det.observe(
            &n,
            NodeKind::Plant,
            t0 + k * 60_000,
            &plant_readings(4.0e6, 90.0, 90.0, 1.0),
            true,
        );
    }
    // 3.2 MW (< 3.4 MW, 85 % of the peak; above 85 % of the mean) with the
    // supply 12 K short: a trip.
    let t1 = t0 + 70 * 60_000;
    assert!(
        det.observe(
            &n,
            NodeKind::Plant,
            t1,
            &plant_readings(3.2e6, 78.0, 90.0, 1.0),
            true
        )
        .is_empty()
    );
    let ev = det.observe(
        &n,
        NodeKind::Plant,
        t1 + 60_000,
        &plant_readings(3.2e6, 78.0, 90.0, 1.0),
        true,
    );
    assert!(
        matches!(
            &ev[..],
            [TripEvent::Raise {
                kind: PLANT_TRIP,
                ..
            }]
        ),
        "{ev:?}"
    );
}

#[test]
fn a_plant_turned_down_by_the_dispatch_has_not_tripped() {
    // Learn 50 MW over an hour, then the heat falls to 5 MW with the supply
    // 15 K short for 10 min: a trip, unless the dispatch ordered 5 MW.
    let run = |order: Option<f64>| {
        let mut det = TripDetector::new(60_000);
        let n = id("boiler-south");
        if let Some(o) = order {
            det.set_orders([(n.clone(), o)]);
        }
        let mut raised = false;
        for k in 0..60 {
            let r = plant_readings(50.0e6, 90.0, 90.0, 1.0);
            det.observe(&n, NodeKind::Plant, k * 60_000, &r, true);
        }
        for k in 60..70 {
            let r = plant_readings(5.0e6, 75.0, 90.0, 1.0);
            raised |= det
                .observe(&n, NodeKind::Plant, k * 60_000, &r, true)
                .iter()
                .any(|e| {
                    matches!(
                        e,
                        TripEvent::Raise {
                            kind: PLANT_TRIP,
                            ..
                        }
                    )
                });
        }
        raised
    };
    assert!(run(None), "a collapse without an order is a trip");
    assert!(!run(Some(5.0e6)), "an ordered turn-down is not");
}
