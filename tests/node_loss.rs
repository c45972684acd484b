//! Node loss across real processes: `kill -9` of a gateway and of the optimizer.
//!
//! Each test starts the simulator, the optimizer and the seven gateways of the
//! `demo` network as separate OS processes on loopback ports, and checks what
//! the mission promises: loss is detected, homes keep their valve positions,
//! control goes on, and every stored sample reaches the optimizer exactly once.

mod common;

use std::time::{Duration, Instant};

use common::*;
use proto::v1;
use rand::Rng as _;

const SUBSTATIONS: [&str; 6] = ["s01", "s02", "s03", "s04", "s05", "s06"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_kill9_is_detected_and_its_data_arrives_without_gap_or_duplicate() {
    let mut rng = seeded_rng("gateway_kill9");
    let mut sys = System::start("gateway-kill9", 60.0, 30_000).await;
    sys.wait_all_live(Duration::from_secs(60)).await;
    let victim = SUBSTATIONS[rng.random_range(0..SUBSTATIONS.len())];
    let stream_for = Duration::from_millis(rng.random_range(2000..5000));
    eprintln!("victim {victim}, killed after {stream_for:?} of streaming");
    tokio::time::sleep(stream_for).await;

    let killed_at = Instant::now();
    sys.gateway(victim).2.kill9();

    // The optimizer marks it lost and raises an alarm within 5 s.
    let opt = sys.opt_addr.clone();
    let detected = wait_for(
        Duration::from_secs(5),
        "gateway marked lost with an alarm",
        || {
            let opt = opt.clone();
            async move {
                let s = network_state(&opt).await?;
                let lost = s
                    .gateways
                    .iter()
                    .any(|g| g.gateway_id == victim && !g.online);
                let nodes_lost = s
                    .nodes
                    .iter()
                    .filter(|n| n.gateway_id == victim)
                    .all(|n| !n.online);
                let alarm = alarms(&opt).await.into_iter().any(|a| {
                    a.kind == "gateway_lost"
                        && a.node_id == victim
                        && a.state == v1::AlarmState::Raised as i32
                });
                (lost && nodes_lost && alarm).then_some(killed_at.elapsed())
            }
        },
    )
    .await;
    eprintln!("loss of {victim} detected after {detected:?}");

    // The homes behind it keep their last valve positions while the network runs on.
    let mut devices = vec![victim.to_string()];
    devices.extend((1..=10).map(|i| format!("{victim}-b{i:02}")));
    let mut held = Vec::new();
    for d in &devices {
        held.push(actuators(&sys.sim_addr, d).await);
    }
    let mut sim = simulator(&sys.sim_addr).await.expect("simulator");
    let steps_before = sim
        .get_clock(v1::GetClockRequest {})
        .await
        .expect("clock")
        .into_inner()
        .steps;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (d, before) in devices.iter().zip(&held) {
        assert_eq!(
            &actuators(&sys.sim_addr, d).await,
            before,
            "{d}: actuators moved while its gateway was dead"
        );
    }
    let steps_after = sim
        .get_clock(v1::GetClockRequest {})
        .await
        .expect("clock")
        .into_inner()
        .steps;
    assert!(steps_after > steps_before, "the simulation stopped");

    // What the dead gateway had stored locally.
    let config = sys.gateway(victim).1.clone();
    let (next_seq, acked_seq, pending) = inspect(&config);
    let last_written = next_seq - 1;
    eprintln!(
        "{victim} outbox at death: last written {last_written}, acked {acked_seq}, pending {pending}"
    );
    assert!(last_written > 0, "the gateway had stored nothing");

    // Restart: it re-registers, restores from sled and delivers everything.
    sys.gateway(victim).2.restart();
    let opt = sys.opt_addr.clone();
    let g = wait_for(
        Duration::from_secs(30),
        "restarted gateway online and caught up",
        || {
            let opt = opt.clone();
            async move {
                let s = network_state(&opt).await?;
                let g = s.gateways.into_iter().find(|g| g.gateway_id == victim)?;
                (g.online && g.last_stored_seq > last_written).then_some(g)
            }
        },
    )
    .await;
    assert_eq!(
        g.registrations, 2,
        "the gateway should have registered exactly twice"
    );
    assert_eq!(g.sequence_gaps, 0);
    let seqs = stored_seqs(&sys.opt_addr, victim).await;
    assert_contiguous(victim, &seqs);
    assert!(
        seqs.len() as u64 > last_written,
        "stored {} batches, the gateway had written {last_written}",
        seqs.len()
    );

    let cleared = alarms(&sys.opt_addr).await.into_iter().any(|a| {
        a.kind == "gateway_lost" && a.node_id == victim && a.state == v1::AlarmState::Cleared as i32
    });
    assert!(cleared, "the gateway_lost alarm was not cleared on return");

    // More kills at seeded random moments, some before the gateway has even
    // re-registered: still exactly once, in order.
    for round in 0..5 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..2500))).await;
        sys.gateway(victim).2.kill9();
        let (next_seq, _, pending) = inspect(&config);
        eprintln!(
            "round {round}: killed with last written {}, pending {pending}",
            next_seq - 1
        );
        sys.gateway(victim).2.restart();
        let opt = sys.opt_addr.clone();
        wait_for(
            Duration::from_secs(30),
            "gateway caught up after a kill",
            || {
                let opt = opt.clone();
                async move {
                    let s = network_state(&opt).await?;
                    let g = s.gateways.into_iter().find(|g| g.gateway_id == victim)?;
                    (g.online && g.last_stored_seq >= next_seq - 1).then_some(())
                }
            },
        )
        .await;
        assert_contiguous(victim, &stored_seqs(&sys.opt_addr, victim).await);
    }

    // The other gateways never noticed.
    for other in SUBSTATIONS.iter().filter(|s| **s != victim) {
        assert_contiguous(other, &stored_seqs(&sys.opt_addr, other).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimizer_kill9_gateways_keep_control_and_deliver_everything_after() {
    let _rng = seeded_rng("optimizer_kill9");
    let mut sys = System::start("optimizer-kill9", 60.0, 3_000).await;
    sys.wait_all_live(Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut sim = simulator(&sys.sim_addr).await.expect("simulator");
    let t_kill = sim
        .get_clock(v1::GetClockRequest {})
        .await
        .expect("clock")
        .into_inner()
        .time_ms;
    sys.optimizer.kill9();
    let mut valves_before = Vec::new();
    for s in SUBSTATIONS {
        valves_before.push(actuators(&sys.sim_addr, s).await[0].1);
    }
    // A warm spell while the optimizer is away: the gateways fall back on their
    // curves (after 3 s of silence) and close their valves on their own.
    sim.set_weather(v1::SetWeatherRequest {
        outdoor_offset_k: 12.0,
    })
    .await
    .expect("weather");
    let sim_addr = sys.sim_addr.clone();
    let before = valves_before.clone();
    wait_for(
        Duration::from_secs(60),
        "every substation closing its primary valve on its own while the optimizer is down",
        || {
            let (sim_addr, before) = (sim_addr.clone(), before.clone());
            async move {
                let mut all = true;
                for (s, b) in SUBSTATIONS.iter().zip(&before) {
                    let after = actuators(&sim_addr, s).await[0].1;
                    all &= after < b - 0.05;
                }
                all.then_some(())
            }
        },
    )
    .await;
    // Keep the outage going a little, so there is buffered data to deliver.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let t_restart = sim
        .get_clock(v1::GetClockRequest {})
        .await
        .expect("clock")
        .into_inner()
        .time_ms;

    sys.optimizer.restart();
    sys.wait_all_live(Duration::from_secs(60)).await;
    let opt = sys.opt_addr.clone();
    for (gw, _, _) in &sys.gateways {
        let gw = gw.clone();
        let opt = opt.clone();
        wait_for(
            Duration::from_secs(30),
            "gateway caught up after the optimizer restart",
            || {
                let (gw, opt) = (gw.clone(), opt.clone());
                async move {
                    let batches = stored_batches(&opt, &gw).await;
                    batches
                        .last()
                        .is_some_and(|b| b.1 > t_restart)
                        .then_some(())
                }
            },
        )
        .await;
        let batches = stored_batches(&opt, &gw).await;
        let seqs: Vec<u64> = batches.iter().map(|b| b.0).collect();
        assert_contiguous(&gw, &seqs);
        let during = batches
            .iter()
            .filter(|b| b.1 > t_kill && b.1 < t_restart)
            .count();
        assert!(
            during >= 5,
            "{gw}: only {during} batches from the outage arrived"
        );
    }
    let s = network_state(&sys.opt_addr).await.expect("state");
    for g in &s.gateways {
        assert_eq!(g.sequence_gaps, 0, "{}: gaps", g.gateway_id);
    }
}
