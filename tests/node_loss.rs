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
    // Every substation follows the optimizer before it dies.
    let opt = sys.opt_addr.clone();
    wait_for(
        Duration::from_secs(60),
        "every substation in optimizer mode",
        || {
            let opt = opt.clone();
            async move {
                let s = network_state(&opt).await?;
                SUBSTATIONS
                    .iter()
                    .all(|id| {
                        s.nodes
                            .iter()
                            .any(|n| n.node_id == *id && n.mode == v1::Mode::Optimizer as i32)
                    })
                    .then_some(())
            }
        },
    )
    .await;
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

    let restarted_wall_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
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
    // The outage shows in the alarms too: the buffered telemetry carried every
    // substation's change to its local curve, raised as `local_fallback` by the
    // restarted optimizer (not the start-up ones from before the outage).
    let a = alarms(&sys.opt_addr).await;
    for s in SUBSTATIONS {
        assert!(
            a.iter().any(|x| x.kind == "local_fallback"
                && x.node_id == s
                && x.raised_at_ms >= restarted_wall_ms),
            "{s}: no local_fallback alarm from the outage"
        );
    }
}

/// (seq, samples, first snapshot time) of every batch the optimizer stored for a gateway.
async fn stored_triples(addr: &str, gateway: &str) -> Vec<(u64, u32, i64)> {
    stored_telemetry(addr, gateway)
        .await
        .iter()
        .map(|b| (b.seq, b.samples, b.first_time_ms))
        .collect()
}

/// What a dead gateway's outbox holds: (seq, samples, first snapshot time) of
/// every batch it stored and the optimizer has not acknowledged, and the
/// highest sequence number it ever wrote.
fn outbox_at_death(config: &std::path::Path) -> (Vec<(u64, u32, i64)>, u64) {
    let cfg = gateway::GatewayConfig::load(config).expect("gateway config");
    let store = store::Store::open(
        &cfg.data_dir,
        &store::StoreConfig {
            kind: "gateway".into(),
            identity: cfg.gateway_id.to_string(),
            cache_bytes: 1 << 20,
            ..Default::default()
        },
    )
    .expect("open the dead gateway's store");
    let ob = gateway::outbox::Outbox::open(
        &store,
        gateway::outbox::OutboxLimits {
            max_batches: u64::MAX,
            budget_bytes: u64::MAX,
            protect: u64::MAX,
        },
    )
    .expect("outbox");
    let info = ob.info().expect("outbox info");
    let pending = ob
        .pending_from(0, usize::MAX)
        .expect("pending batches")
        .into_iter()
        .map(|b| {
            let first = b.snapshots.first().map_or(0, |s| s.time_ms);
            (b.seq, b.sample_count() as u32, first)
        })
        .collect();
    (pending, info.next_seq - 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_killed_100_times_while_streaming_loses_and_duplicates_nothing() {
    const KILLS: usize = 100;
    let mut rng = seeded_rng("gateway_kill9_x100");
    let mut sys = System::start("gateway-kill9-x100", 60.0, 30_000).await;
    sys.wait_all_live(Duration::from_secs(60)).await;
    let victim = SUBSTATIONS[rng.random_range(0..SUBSTATIONS.len())];
    // The victim scans ten times a second, so that every life of the process,
    // however short, has batches to store and stream.
    sys.gateway(victim).2.kill9();
    let config = sys.gateway(victim).1.clone();
    let mut cfg = gateway::GatewayConfig::load(&config).expect("config");
    cfg.limits.scan_period_ms = 100;
    std::fs::write(&config, cfg.to_toml()).expect("write config");
    sys.gateway(victim).2.restart();

    // Every batch the gateway was seen holding at a death: seq → (samples, time).
    let mut held = std::collections::BTreeMap::new();
    let mut max_written = 0u64;
    let mut lives_with_data = 0;
    for round in 0..KILLS {
        // A random moment: while starting, registering, replaying or streaming.
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..1200))).await;
        sys.gateway(victim).2.kill9();
        let (pending, written) = outbox_at_death(&config);
        if written > max_written {
            lives_with_data += 1;
        }
        for (seq, samples, t) in pending {
            if let Some(prev) = held.insert(seq, (samples, t)) {
                assert_eq!(
                    prev,
                    (samples, t),
                    "round {round}: batch {seq} changed in the outbox"
                );
            }
        }
        assert!(
            written >= max_written,
            "round {round}: numbering went back from {max_written} to {written}"
        );
        max_written = written;
        sys.gateway(victim).2.restart();
    }
    eprintln!(
        "{KILLS} kills of {victim}: {max_written} batches written, {lives_with_data} lives stored new batches, {} batches seen pending at a death",
        held.len()
    );
    assert!(
        lives_with_data >= KILLS / 2,
        "the gateway stored data in only {lives_with_data} of {KILLS} lives"
    );

    let opt = sys.opt_addr.clone();
    let g = wait_for(
        Duration::from_secs(60),
        "gateway caught up after the last kill",
        || {
            let opt = opt.clone();
            async move {
                let s = network_state(&opt).await?;
                let g = s.gateways.into_iter().find(|g| g.gateway_id == victim)?;
                (g.online && g.last_stored_seq >= max_written).then_some(g)
            }
        },
    )
    .await;
    let stored = stored_triples(&sys.opt_addr, victim).await;
    let seqs: Vec<u64> = stored.iter().map(|b| b.0).collect();
    // Exactly once and in order: 1, 2, …, n, and n covers everything written.
    assert_contiguous(victim, &seqs);
    assert!(seqs.len() as u64 >= max_written);
    assert_eq!(g.sequence_gaps, 0, "{victim}: sequence gaps");
    // Every batch seen in the outbox at a death is stored with the same content.
    for (seq, (samples, t)) in &held {
        let s = &stored[(*seq - 1) as usize];
        assert_eq!(
            (s.1, s.2),
            (*samples, *t),
            "batch {seq}: the optimizer holds other data than the gateway stored"
        );
    }
    // In order of time, too: numbering follows the scans.
    for w in stored.windows(2) {
        assert!(
            w[0].2 <= w[1].2,
            "batches {} and {} out of time order",
            w[0].0,
            w[1].0
        );
    }
    eprintln!(
        "optimizer: {} batches stored, {} duplicates dropped, {} registrations",
        g.batches_stored, g.duplicates_dropped, g.registrations
    );
}
