//! Alarms the gateways raise themselves, across real processes: implausible
//! sensor readings (`sensor_implausible`), a valve that does not follow its
//! commands (`valve_stuck`) and an outbox that reached its disk budget
//! (`outbox_condensed`).

mod common;

use std::time::Duration;

use common::*;
use proto::v1;

fn active(alarms: &[v1::Alarm], kind: &str, node: &str, metric: &str) -> bool {
    alarms.iter().any(|a| {
        a.kind == kind
            && a.node_id == node
            && a.metric == metric
            && a.state != v1::AlarmState::Cleared as i32
    })
}

fn cleared(alarms: &[v1::Alarm], kind: &str, node: &str, metric: &str) -> bool {
    alarms.iter().any(|a| {
        a.kind == kind
            && a.node_id == node
            && a.metric == metric
            && a.state == v1::AlarmState::Cleared as i32
    })
}

async fn node_mode(addr: &str, node: &str) -> Option<i32> {
    let s = network_state(addr).await?;
    s.nodes
        .into_iter()
        .find(|n| n.node_id == node)
        .map(|n| n.mode)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implausible_supply_sensors_raise_alarms_and_put_the_loop_in_safe_mode() {
    let _rng = seeded_rng("sensor_implausible");
    let sys = System::start("sensor-implausible", 60.0, 30_000).await;
    sys.wait_all_live(Duration::from_secs(60)).await;
    let mut sim = simulator(&sys.sim_addr).await.expect("simulator");
    let metric = v1::Metric::SecondarySupplyTempC as i32;
    let inject = |device: &str, kind: v1::FaultKind, magnitude: f64| v1::InjectFaultRequest {
        fault: Some(v1::Fault {
            kind: kind as i32,
            device_id: device.into(),
            metric,
            magnitude,
        }),
    };
    // s02: the sensor reads 120 K high (out of range, above the primary's
    // 150 °C); s04: it freezes.
    let offset = sim
        .inject_fault(inject("s02", v1::FaultKind::SensorOffset, 120.0))
        .await
        .expect("inject offset")
        .into_inner();
    sim.inject_fault(inject("s04", v1::FaultKind::SensorFrozen, 0.0))
        .await
        .expect("inject frozen");
    // s06: its secondary pump trips (loss of water): no process to control.
    sim.inject_fault(v1::InjectFaultRequest {
        fault: Some(v1::Fault {
            kind: v1::FaultKind::PumpTrip as i32,
            device_id: "s06".into(),
            metric: 0,
            magnitude: 0.0,
        }),
    })
    .await
    .expect("inject pump trip");
    let opt = sys.opt_addr.clone();
    let name = "secondary_supply_temp_c";
    wait_for(
        Duration::from_secs(120),
        "sensor_implausible alarms for s02 and s04; s02, s04 and s06 in safe mode",
        || {
            let opt = opt.clone();
            async move {
                let a = alarms(&opt).await;
                let raised = active(&a, "sensor_implausible", "s02", name)
                    && active(&a, "sensor_implausible", "s04", name);
                let mut safe = true;
                for s in ["s02", "s04", "s06"] {
                    safe &= node_mode(&opt, s).await == Some(v1::Mode::Safe as i32);
                }
                // Safe mode is raised as a critical local_fallback alarm.
                let critical = ["s02", "s04", "s06"].iter().all(|s| {
                    a.iter().any(|x| {
                        x.kind == "local_fallback"
                            && x.node_id == *s
                            && x.severity == v1::Severity::Critical as i32
                    })
                });
                let safe = safe && critical;
                (raised && safe).then_some(())
            }
        },
    )
    .await;
    // The valve of a loop without a plausible measurement sits at its safe opening.
    for s in ["s02", "s06"] {
        let valve = actuators(&sys.sim_addr, s).await[0].1;
        assert!((valve - 0.5).abs() < 1e-9, "{s} valve at {valve}");
    }
    // The other substations never noticed.
    let a = alarms(&sys.opt_addr).await;
    for s in ["s01", "s03", "s05"] {
        assert!(
            !a.iter()
                .any(|x| x.kind == "sensor_implausible" && x.node_id == s),
            "{s}: alarm without a fault"
        );
    }
    // The offset goes away: the alarm clears and the loop takes over again.
    sim.clear_fault(v1::ClearFaultRequest {
        fault_id: offset.fault_id,
    })
    .await
    .expect("clear fault");
    wait_for(
        Duration::from_secs(60),
        "s02 alarm cleared and its loop out of safe mode",
        || {
            let opt = opt.clone();
            async move {
                let a = alarms(&opt).await;
                let ok = cleared(&a, "sensor_implausible", "s02", name)
                    && !active(&a, "sensor_implausible", "s02", name)
                    && node_mode(&opt, "s02").await != Some(v1::Mode::Safe as i32);
                ok.then_some(())
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_at_its_budget_condenses_raises_an_alarm_and_delivers_without_gaps() {
    let _rng = seeded_rng("outbox_condensed");
    let mut sys = System::start("outbox-condensed", 60.0, 30_000).await;
    sys.wait_all_live(Duration::from_secs(60)).await;
    let victim = "s05";
    // A small disk budget and fast scans, so that an outage fills it in seconds.
    sys.gateway(victim).2.kill9();
    let config = sys.gateway(victim).1.clone();
    let mut cfg = gateway::GatewayConfig::load(&config).expect("config");
    cfg.limits.scan_period_ms = 100;
    cfg.limits.max_in_flight = 4;
    cfg.limits.outbox_budget_bytes = 64 << 10;
    std::fs::write(&config, cfg.to_toml()).expect("write config");
    sys.gateway(victim).2.restart();
    sys.wait_all_live(Duration::from_secs(60)).await;

    // The optimizer goes away; the gateway keeps scanning into its outbox.
    sys.optimizer.kill9();
    let log = sys.dir.0.join(format!("gateway-{victim}.log"));
    wait_for(
        Duration::from_secs(60),
        "the outbox condensing its oldest data",
        || {
            let log = log.clone();
            async move {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                text.contains("oldest batches condensed").then_some(())
            }
        },
    )
    .await;
    // Keep the outage going so that several runs are condensed.
    tokio::time::sleep(Duration::from_secs(3)).await;

    sys.optimizer.restart();
    let opt = sys.opt_addr.clone();
    wait_for(
        Duration::from_secs(60),
        "outbox_condensed raised for the gateway",
        || {
            let opt = opt.clone();
            async move {
                // Raised; it may already have cleared if the outbox drained
                // between two polls.
                let a = alarms(&opt).await;
                (active(&a, "outbox_condensed", victim, "")
                    || cleared(&a, "outbox_condensed", victim, ""))
                .then_some(())
            }
        },
    )
    .await;
    // Everything is delivered, condensed runs included, numbered without a gap;
    // then the alarm clears.
    wait_for(
        Duration::from_secs(60),
        "outbox drained and outbox_condensed cleared",
        || {
            let opt = opt.clone();
            async move {
                let a = alarms(&opt).await;
                (cleared(&a, "outbox_condensed", victim, "")
                    && !active(&a, "outbox_condensed", victim, ""))
                .then_some(())
            }
        },
    )
    .await;
    let stored = stored_telemetry(&sys.opt_addr, victim).await;
    let seqs: Vec<u64> = stored.iter().map(|b| b.seq).collect();
    assert_contiguous(victim, &seqs);
    let placeholders = stored.iter().filter(|b| b.samples == 0).count();
    assert!(
        placeholders >= 15,
        "only {placeholders} condensed placeholders arrived"
    );
    let s = network_state(&sys.opt_addr).await.expect("state");
    let g = s
        .gateways
        .iter()
        .find(|g| g.gateway_id == victim)
        .expect("gateway");
    assert_eq!(g.sequence_gaps, 0);
    eprintln!(
        "{victim}: {} batches stored, {placeholders} of them condensed placeholders",
        stored.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_valve_raises_valve_stuck_and_clears_once_it_moves_again() {
    let _rng = seeded_rng("valve_stuck");
    // ×60: ten minutes of network time are ten seconds.
    let sys = System::start("valve-stuck", 60.0, 30_000).await;
    sys.wait_all_live(Duration::from_secs(60)).await;
    let victim = "s03";
    let mut sim = simulator(&sys.sim_addr).await.expect("simulator");
    let stuck = sim
        .inject_fault(v1::InjectFaultRequest {
            fault: Some(v1::Fault {
                kind: v1::FaultKind::StuckValve as i32,
                device_id: victim.into(),
                metric: 0,
                magnitude: 0.0,
            }),
        })
        .await
        .expect("inject stuck valve")
        .into_inner();
    // Send its loop far from where the valve stuck: an override of the
    // supply setpoint drives the valve to one end.
    let valve = actuators(&sys.sim_addr, victim)
        .await
        .into_iter()
        .find(|(a, _)| *a == v1::Actuator::PrimaryValve as i32)
        .expect("primary valve")
        .1;
    let supply_temp_c = if valve > 0.5 { 30.0 } else { 84.0 };
    let mut cr = control_room(&sys.opt_addr).await.expect("control room");
    cr.set_override(v1::SetOverrideRequest {
        node_id: victim.into(),
        supply_temp_c,
        duration_s: 7_200,
        author: "test".into(),
        reason: format!("move the loop of the valve stuck at {valve:.2}"),
    })
    .await
    .expect("override");
    let opt = sys.opt_addr.clone();
    let alarm = wait_for(
        Duration::from_secs(120),
        "valve_stuck raised for s03",
        || {
            let opt = opt.clone();
            async move {
                alarms(&opt).await.into_iter().find(|a| {
                    a.kind == "valve_stuck"
                        && a.node_id == victim
                        && a.state != v1::AlarmState::Cleared as i32
                })
            }
        },
    )
    .await;
    assert_eq!(alarm.severity, v1::Severity::Critical as i32);
    assert!(
        alarm.message.contains("stuck valve or failed actuator"),
        "{}",
        alarm.message
    );
    // Only the stuck one: every other valve follows its commands.
    let others: Vec<_> = alarms(&sys.opt_addr)
        .await
        .into_iter()
        .filter(|a| a.kind == "valve_stuck" && a.node_id != victim)
        .map(|a| a.node_id)
        .collect();
    assert!(others.is_empty(), "valve_stuck without a fault: {others:?}");
    // Freed, the valve reaches its command within a stroke: the alarm clears.
    sim.clear_fault(v1::ClearFaultRequest {
        fault_id: stuck.fault_id,
    })
    .await
    .expect("clear fault");
    wait_for(Duration::from_secs(60), "valve_stuck cleared", || {
        let opt = opt.clone();
        async move {
            let a = alarms(&opt).await;
            (cleared(&a, "valve_stuck", victim, "") && !active(&a, "valve_stuck", victim, ""))
                .then_some(())
        }
    })
    .await;
}

/// A gateway whose disk is nearly full (here: one told to keep 1 TiB free)
/// records no scans and raises `disk_low`, and keeps running its actors;
/// with room again its data flows and the alarm clears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_on_a_nearly_full_disk_raises_disk_low_and_runs_on() {
    let _rng = seeded_rng("disk_low");
    let mut sys = System::start("disk-low", 60.0, 30_000).await;
    sys.wait_all_live(Duration::from_secs(60)).await;
    let victim = "s03";
    let config = sys.gateway(victim).1.clone();
    let set_min_free_mib = |mib: u64| {
        let mut cfg = gateway::GatewayConfig::load(&config).expect("config");
        cfg.limits.min_free_mib = mib;
        std::fs::write(&config, cfg.to_toml()).expect("write config");
    };
    sys.gateway(victim).2.kill9();
    set_min_free_mib(1 << 20);
    sys.gateway(victim).2.restart();
    let opt = sys.opt_addr.clone();
    wait_for(
        Duration::from_secs(60),
        "disk_low raised for the gateway",
        || {
            let opt = opt.clone();
            async move { active(&alarms(&opt).await, "disk_low", victim, "").then_some(()) }
        },
    )
    .await;
    let before = stored_seqs(&opt, victim).await.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        stored_seqs(&opt, victim).await.len(),
        before,
        "scans recorded on a full disk"
    );
    assert!(
        sys.gateway(victim).2.running(),
        "the gateway stopped: {}",
        sys.gateway(victim).2.log_tail()
    );

    sys.gateway(victim).2.kill9();
    set_min_free_mib(0);
    sys.gateway(victim).2.restart();
    wait_for(
        Duration::from_secs(60),
        "disk_low cleared and the gateway's data stored again",
        || {
            let opt = opt.clone();
            async move {
                let a = alarms(&opt).await;
                (cleared(&a, "disk_low", victim, "")
                    && !active(&a, "disk_low", victim, "")
                    && stored_seqs(&opt, victim).await.len() > before)
                    .then_some(())
            }
        },
    )
    .await;
}
