//! The gateway process: scan loop, link, health server, graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use control::{Actors, LinkState, TickInput};
use hardware::{Driver, Hardware, LockstepClock, ModbusHardware, SimHardware};
use model::{ActorSnapshot, NodeId};
use proto::{EdgeAlarm, EdgeAlarmKind};
use store::{Store, StoreConfig, StoreError};

use crate::config::{ClockConfig, GatewayConfig, HardwareConfig};
use crate::link::{Link, LinkShared};
use crate::outbox::{CONDENSE_RUN, Outbox, OutboxError, OutboxInfo, OutboxLimits};

/// Unchanged actuator values are written again after this many scans anyway
/// (hardware that restarted, or was written by someone else, is corrected).
const REWRITE_EVERY_SCANS: u32 = 30;

fn outbox_limits(cfg: &GatewayConfig) -> OutboxLimits {
    OutboxLimits {
        max_batches: cfg.limits.max_outbox_batches,
        budget_bytes: cfg.limits.outbox_budget_bytes,
        protect: cfg.limits.max_in_flight as u64,
    }
}

fn store_config(cfg: &GatewayConfig) -> StoreConfig {
    StoreConfig {
        kind: "gateway".into(),
        identity: cfg.gateway_id.to_string(),
        cache_bytes: cfg.limits.cache_bytes,
        min_free_bytes: cfg.limits.min_free_mib << 20,
    }
}

/// What the outbox of a stopped gateway holds (reads its data directory).
pub fn inspect(cfg: &GatewayConfig) -> anyhow::Result<OutboxInfo> {
    let store = Store::open(&cfg.data_dir, &store_config(cfg))?;
    Ok(Outbox::open(&store, outbox_limits(cfg))?.info()?)
}

/// Runs the gateway until `shutdown` resolves.
pub async fn run(
    cfg: GatewayConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    let store = Store::open(&cfg.data_dir, &store_config(&cfg))?;
    let outbox = Outbox::open(&store, outbox_limits(&cfg))?;
    let s = store.clone();
    observe::gauge_fn(
        "heatnet.store.size_bytes",
        "size of the sled store on disk, bytes",
        move || Some(s.size_on_disk() as f64),
    );
    let info = outbox.info()?;
    tracing::info!(gateway_id = %cfg.gateway_id, next_seq = info.next_seq, pending = info.pending, "gateway starting");
    let actors = Arc::new(Actors::start(&cfg.gateway_id, cfg.actors.clone(), &store).await?);
    let hw = match &cfg.hardware {
        HardwareConfig::Simulator { address } => Driver::Sim(SimHardware::new(address)?),
        HardwareConfig::Modbus { address, units } => {
            let units = cfg
                .actors
                .iter()
                .filter_map(|a| units.get(&a.id).map(|u| (a.id.clone(), (*u, a.kind))))
                .collect();
            Driver::Modbus(ModbusHardware::new(*address, units))
        }
    };

    let (reporter, health, reflection) = observe::grpc::health_and_reflection()?;
    reporter
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    let listener = tokio::net::TcpListener::bind(cfg.health_listen)
        .await
        .with_context(|| format!("binding the health endpoint {}", cfg.health_listen))?;
    let health_server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .add_service(reflection)
            .serve_with_incoming(observe::grpc::incoming(listener)),
    );

    let shared = Arc::new(LinkShared::default());
    let instance_id = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
    let link = tokio::spawn(
        Link {
            cfg: cfg.clone(),
            outbox: outbox.clone(),
            actors: actors.clone(),
            shared: shared.clone(),
            instance_id,
        }
        .run(),
    );

    let ids: Vec<NodeId> = actors.actors().keys().cloned().collect();
    let fallback_after = Duration::from_millis(cfg.limits.fallback_after_ms);
    let scan_period = Duration::from_millis(cfg.limits.scan_period_ms);
    let mut scans = tokio::time::interval(scan_period);
    scans.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let lockstep = match &cfg.clock {
        ClockConfig::Interval => None,
        ClockConfig::Lockstep {
            simulator,
            max_unacked_batches,
            ack_wait_ms,
        } => {
            tracing::info!(simulator = %simulator, max_unacked_batches, "scans paced by the simulator's lockstep clock");
            Some((
                LockstepClock::new(simulator, &cfg.gateway_id)?,
                *max_unacked_batches,
                Duration::from_millis(*ack_wait_ms),
            ))
        }
    };
    let mut lockstep_ok = true;
    // Lockstep: the step being scanned, and the report of the last one, sent
    // once the step's telemetry is durable and the optimizer has caught up
    // with all but the last `max_unacked_batches` batches.
    let mut step = 0u64;
    let mut next_step: Option<tokio::task::JoinHandle<Result<u64, hardware::HardwareError>>> = None;
    let mut hardware_ok = None::<bool>;
    let scans_done = observe::counter("heatnet.gateway.scans", "hardware scans completed");
    let scan_failures = observe::counter(
        "heatnet.gateway.scan_failures",
        "hardware scans that failed",
    );
    let batches_written = observe::counter(
        "heatnet.gateway.batches_written",
        "telemetry batches written to the outbox",
    );
    let mut control = crate::metrics::ControlMetrics::new();
    let mut skipped_full = 0u64;
    let mut last_writes: std::collections::BTreeMap<NodeId, (Vec<model::ActuatorWrite>, u32)> =
        std::collections::BTreeMap::new();
    let scanning = async {
        loop {
            match lockstep.as_ref() {
                None => {
                    scans.tick().await;
                }
                Some((clock, _, _)) => match match next_step.take() {
                    Some(h) => h.await.unwrap_or_else(|e| {
                        Err(hardware::HardwareError::Refused(format!(
                            "lockstep wait: {e}"
                        )))
                    }),
                    None => clock.clone().next(step).await,
                } {
                    Ok(s) => {
                        step = s;
                        lockstep_ok = true;
                    }
                    Err(e) => {
                        if lockstep_ok {
                            tracing::error!(error = %e, "lockstep clock unreachable: retrying every scan period");
                            lockstep_ok = false;
                        }
                        tokio::time::sleep(scan_period).await;
                        continue;
                    }
                },
            }
            if !actors.is_running() {
                anyhow::bail!("the actor supervisor stopped after repeated failures");
            }
            let scan = match hw.scan(&ids).await {
                Ok(s) => {
                    if hardware_ok != Some(true) {
                        tracing::info!("hardware reachable");
                        reporter
                            .set_service_status("", tonic_health::ServingStatus::Serving)
                            .await;
                        hardware_ok = Some(true);
                    }
                    scans_done.add(1, &[]);
                    s
                }
                Err(e) => {
                    scan_failures.add(1, &[]);
                    if hardware_ok != Some(false) {
                        tracing::error!(error = %e, "hardware scan failed: actuators hold their last values");
                        reporter
                            .set_service_status("", tonic_health::ServingStatus::NotServing)
                            .await;
                        hardware_ok = Some(false);
                    }
                    continue;
                }
            };
            let link = LinkState {
                optimizer_recent: shared.optimizer_recent(fallback_after),
            };
            let mut snapshots = Vec::with_capacity(ids.len());
            let mut edge_alarms = Vec::new();
            // The scan's changed actuator values, written together once every
            // actor has ticked (each from the same scan).
            let mut to_write = Vec::new();
            for id in &ids {
                let input = TickInput {
                    time_ms: scan.time_ms,
                    readings: scan.devices.get(id).cloned(),
                    link,
                };
                let out = match actors.tick(id, input).await {
                    Ok(o) => o,
                    Err(e) => {
                        tracing::warn!(actor_id = %id, error = %e, "actor skipped this scan");
                        continue;
                    }
                };
                edge_alarms.extend(out.implausible.iter().map(|f| EdgeAlarm {
                    kind: EdgeAlarmKind::SensorImplausible,
                    node_id: id.clone(),
                    metric: Some(f.metric),
                    message: format!("{id}: {}", f.reason),
                }));
                if let Some(f) = &out.valve_fault {
                    edge_alarms.push(EdgeAlarm {
                        kind: EdgeAlarmKind::ValveStuck,
                        node_id: id.clone(),
                        metric: None,
                        message: format!("{id}: {}", f.describe()),
                    });
                }
                // Unchanged values are not written again for a while: fewer
                // requests to the hardware (the simulator, a PLC over Modbus).
                let unchanged = last_writes
                    .get(id)
                    .is_some_and(|(w, age)| *w == out.writes && *age < REWRITE_EVERY_SCANS);
                if unchanged {
                    if let Some((_, age)) = last_writes.get_mut(id) {
                        *age += 1;
                    }
                } else if out.writes.is_empty() {
                    last_writes.remove(id);
                } else {
                    to_write.push((id.clone(), out.writes.clone()));
                }
                control.record(&out.readings);
                snapshots.push(ActorSnapshot {
                    actor_id: id.clone(),
                    time_ms: scan.time_ms,
                    mode: out.mode,
                    readings: out.readings,
                });
            }
            control.end_scan();
            let written = hw.write_many(&to_write).await;
            for ((id, writes), result) in to_write.into_iter().zip(written) {
                match result {
                    Ok(()) => {
                        last_writes.insert(id, (writes, 0));
                    }
                    Err(e) => {
                        last_writes.remove(&id);
                        tracing::warn!(actor_id = %id, error = %e, "actuator write failed");
                    }
                }
            }
            if snapshots.is_empty() {
                if let Some((clock, _, _)) = &lockstep {
                    next_step = Some(tokio::spawn(clock.clone().next(step)));
                }
                continue;
            }
            let appended = outbox.append(snapshots).await;
            if let Some((clock, max_unacked, ack_wait)) = &lockstep {
                let clock = clock.clone();
                let wait_for = match &appended {
                    Ok(seq) => seq.checked_sub(*max_unacked).filter(|s| *s > 0),
                    Err(_) => None,
                };
                let (shared, ack_wait) = (shared.clone(), *ack_wait);
                shared.new_data.notify_one();
                next_step = Some(tokio::spawn(async move {
                    if let Some(seq) = wait_for {
                        shared.wait_acked(seq, ack_wait).await;
                    }
                    clock.next(step).await
                }));
            }
            match outbox.info() {
                Ok(info) if info.holds_condensed() => edge_alarms.push(EdgeAlarm {
                    kind: EdgeAlarmKind::OutboxCondensed,
                    node_id: cfg.gateway_id.clone(),
                    metric: None,
                    message: format!(
                        "outbox of {} reached its disk budget of {} bytes: the oldest data is condensed {CONDENSE_RUN}:1 into averages ({} batches folded so far)",
                        cfg.gateway_id, cfg.limits.outbox_budget_bytes, info.condensed_batches
                    ),
                }),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the outbox state"),
            }
            if let Err(OutboxError::Store(StoreError::DiskLow {
                path,
                min_free_bytes,
                ..
            })) = &appended
            {
                edge_alarms.push(EdgeAlarm {
                    kind: EdgeAlarmKind::DiskLow,
                    node_id: cfg.gateway_id.clone(),
                    metric: None,
                    message: format!(
                        "disk of gateway {} nearly full (under {} MiB free at {}): its scans are not recorded and its actors' state and commands not saved; they control on",
                        cfg.gateway_id,
                        min_free_bytes >> 20,
                        path.display()
                    ),
                });
            }
            edge_alarms.sort();
            shared.alarms.send_if_modified(|current| {
                if current.as_ref() == Some(&edge_alarms) {
                    false
                } else {
                    *current = Some(edge_alarms);
                    true
                }
            });
            match appended {
                Ok(_) => {
                    batches_written.add(1, &[]);
                    if skipped_full > 0 {
                        tracing::warn!(skipped_scans = skipped_full, "outbox has room again");
                        skipped_full = 0;
                    }
                    shared.new_data.notify_one();
                }
                Err(OutboxError::Full { pending, bytes }) => {
                    skipped_full += 1;
                    if skipped_full == 1 || skipped_full.is_multiple_of(600) {
                        tracing::error!(
                            pending,
                            bytes,
                            skipped_scans = skipped_full,
                            "outbox full: scans are not recorded until the optimizer acknowledges"
                        );
                    }
                }
                // The disk is nearly full: control goes on, scans are not
                // recorded until there is room (nothing half-written).
                Err(OutboxError::Store(e)) if e.is_disk_low() => {
                    skipped_full += 1;
                    if skipped_full == 1 || skipped_full.is_multiple_of(600) {
                        tracing::error!(error = %e, skipped_scans = skipped_full, "scan not recorded");
                    }
                }
                Err(e) => return Err(anyhow::Error::from(e).context("storing telemetry")),
            }
        }
    };
    let result = tokio::select! {
        r = scanning => r,
        _ = shutdown => Ok(()),
    };
    link.abort();
    health_server.abort();
    actors.stop().await;
    store.flush_async().await?;
    tracing::info!(gateway_id = %cfg.gateway_id, "gateway stopped");
    result
}
