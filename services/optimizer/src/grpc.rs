//! The optimizer's gRPC edge: `AgentService` for gateways, `ControlRoomService`
//! for people and tools. Wire types are converted here and go no further.

use std::sync::Arc;

use model::{CommandResult, NodeId, NodeKind, TelemetryBatch};
use proto::v1;
use proto::v1::agent_service_server::AgentService;
use proto::v1::control_room_service_server::ControlRoomService;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument as _;

use crate::alarms::{Alarm, AlarmState, Severity};
use crate::audit::{self, AuditEntry};
use crate::core::{ActorInfo, Core, CoreError, GatewayRecord, SESSION_QUEUE};
use crate::curves::CurveVersion;

/// Most stored batches one ReadTelemetry call returns.
pub const MAX_READ_BATCHES: u32 = 10_000;
/// Longest span of hours one `ReadTelemetryHours` reads, ms (400 days).
pub const MAX_READ_HOURS_SPAN_MS: i64 = 400 * 86_400_000;
/// Most batches one `ReadTelemetrySnapshots` call returns (keeps answers to a few MB).
pub const MAX_SNAPSHOT_BATCHES: u32 = 500;
/// Longest look ahead `GetForecast` answers, hours.
pub const MAX_FORECAST_HORIZON_H: u32 = 24 * 366;
/// Most audit entries one `AuditHistory` call returns.
pub const MAX_AUDIT_ENTRIES_PER_CALL: u32 = audit::MAX_AUDIT_ENTRIES as u32;

fn status(e: CoreError) -> Status {
    match e {
        CoreError::InvalidArgument(m) => Status::invalid_argument(m),
        CoreError::NotFound(m) => Status::not_found(m),
        CoreError::FailedPrecondition(m) => Status::failed_precondition(m),
        CoreError::Unavailable(m) => Status::unavailable(m),
        CoreError::ResourceExhausted(m) => {
            tracing::error!(error = %m, "write refused: disk nearly full");
            Status::resource_exhausted(m)
        }
        CoreError::Internal(m) => {
            tracing::error!(error = %m, "internal error answered to a client");
            Status::internal(m)
        }
    }
}

#[derive(Clone)]
pub struct Grpc {
    pub core: Arc<Core>,
}

fn actor_info(i: usize, a: &v1::ActorDescriptor) -> Result<ActorInfo, Status> {
    let field = |f: &str| format!("actors[{i}].{f}");
    let kind = proto::convert::node_kind(&field("kind"), a.kind)?;
    let parent = if a.parent_id.is_empty() {
        None
    } else {
        Some(proto::convert::node_id(&field("parent_id"), &a.parent_id)?)
    };
    let default_limits = match kind {
        NodeKind::Plant => model::network::PLANT_SUPPLY_LIMITS_C,
        _ => model::network::SECONDARY_SUPPLY_LIMITS_C,
    };
    let (lo, hi) = (a.min_supply_temp_c, a.max_supply_temp_c);
    let limits_c = if kind == NodeKind::Building {
        default_limits
    } else {
        proto::convert::in_range(&field("min_supply_temp_c"), lo, default_limits)?;
        proto::convert::in_range(&field("max_supply_temp_c"), hi, default_limits)?;
        if lo >= hi {
            return Err(Status::invalid_argument(format!(
                "{}: {lo} must be below max_supply_temp_c {hi}",
                field("min_supply_temp_c")
            )));
        }
        (lo, hi)
    };
    let default_curve = match &a.default_curve {
        None => None,
        Some(c) => Some(proto::convert::supply_curve(
            &field("default_curve"),
            Some(c),
            limits_c,
        )?),
    };
    let group = match (kind, a.group.is_empty()) {
        (NodeKind::Substation, true) => {
            return Err(Status::invalid_argument(format!(
                "{}: missing",
                field("group")
            )));
        }
        (NodeKind::Substation, false) => Some(a.group.clone()),
        _ => None,
    };
    Ok(ActorInfo {
        id: proto::convert::node_id(&field("actor_id"), &a.actor_id)?,
        kind,
        parent,
        group,
        limits_c,
        default_curve,
    })
}

#[tonic::async_trait]
impl AgentService for Grpc {
    async fn register(
        &self,
        req: Request<v1::RegisterRequest>,
    ) -> Result<Response<v1::RegisterResponse>, Status> {
        let span = tracing::info_span!("register", gateway_id = %req.get_ref().gateway_id);
        observe::grpc::follow_remote_parent(&span, req.metadata());
        async {
            let r = req.into_inner();
            let gateway_id = proto::convert::node_id("gateway_id", &r.gateway_id)?;
            if r.instance_id.is_empty() {
                return Err(Status::invalid_argument("instance_id: missing"));
            }
            if r.actors.len() > 10_000 {
                return Err(Status::invalid_argument("actors: more than 10000"));
            }
            let actors = r
                .actors
                .iter()
                .enumerate()
                .map(|(i, a)| actor_info(i, a))
                .collect::<Result<Vec<_>, _>>()?;
            let reg = self
                .core
                .register(GatewayRecord {
                    gateway_id: gateway_id.clone(),
                    instance_id: r.instance_id.clone(),
                    actors,
                    registrations: 0,
                })
                .await
                .map_err(status)?;
            tracing::info!(instance_id = %r.instance_id, last_stored_seq = reg.last_stored_seq, "gateway registered");
            Ok(Response::new(v1::RegisterResponse {
                session_id: reg.session_id,
                last_stored_seq: reg.last_stored_seq,
                heartbeat_interval_ms: reg.heartbeat_interval_ms,
            }))
        }
        .instrument(span)
        .await
    }

    type SessionStream = ReceiverStream<Result<v1::OptimizerMessage, Status>>;

    async fn session(
        &self,
        req: Request<Streaming<v1::GatewayMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let parent = tracing::info_span!("session");
        observe::grpc::follow_remote_parent(&parent, req.metadata());
        let mut inbound = req.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("session: closed before SessionOpen"))?;
        let Some(v1::gateway_message::Body::Open(open)) = first.body else {
            return Err(Status::invalid_argument(
                "session: the first message must be SessionOpen",
            ));
        };
        let gateway = proto::convert::node_id("open.gateway_id", &open.gateway_id)?;
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let seq = self
            .core
            .open_session(&gateway, &open.session_id, tx.clone())
            .map_err(status)?;
        let core = self.core.clone();
        let span = tracing::info_span!(parent: &parent, "session_stream", gateway_id = %gateway, session = seq);
        tokio::spawn(
            async move {
                let why = loop {
                    let msg = match inbound.message().await {
                        Ok(Some(m)) => m,
                        Ok(None) => break "gateway closed the session".to_string(),
                        Err(e) => break format!("stream broke: {}", e.message()),
                    };
                    core.touch(&gateway);
                    match msg.body {
                        Some(v1::gateway_message::Body::Batch(b)) => {
                            let batch = match TelemetryBatch::try_from(&b).and_then(|batch| {
                                proto::check_known_actors(&batch, |id| core.hosts(&gateway, id)).map(|_| batch)
                            }) {
                                Ok(batch) => batch,
                                Err(e) => {
                                    tracing::error!(seq = b.seq, error = %e, "telemetry batch refused");
                                    let _ = tx.send(Err(Status::invalid_argument(format!("batch {}: {e}", b.seq)))).await;
                                    break format!("refused batch {}: {e}", b.seq);
                                }
                            };
                            match core.ingest_batch(&gateway, batch).await {
                                Ok(ack) => {
                                    let ack = v1::OptimizerMessage {
                                        body: Some(v1::optimizer_message::Body::Ack(v1::BatchAck { seq: ack })),
                                    };
                                    if tx.send(Ok(ack)).await.is_err() {
                                        break "session closed".to_string();
                                    }
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "telemetry not stored: ending session");
                                    let _ = tx.send(Err(status(e))).await;
                                    break "storage failure".to_string();
                                }
                            }
                        }
                        Some(v1::gateway_message::Body::CommandResult(r)) => match CommandResult::try_from(&r) {
                            Ok(r) => core.command_result(&gateway, r),
                            Err(e) => tracing::warn!(error = %e, "malformed command result ignored"),
                        },
                        Some(v1::gateway_message::Body::EdgeAlarms(set)) => match proto::edge_alarms(&set) {
                            Ok(set) => core.edge_alarms(&gateway, set),
                            Err(e) => tracing::warn!(error = %e, "malformed edge alarms ignored"),
                        },
                        Some(v1::gateway_message::Body::Heartbeat(_)) => {}
                        Some(v1::gateway_message::Body::Open(_)) => {
                            tracing::warn!("second SessionOpen on one stream ignored");
                        }
                        None => tracing::warn!("empty message ignored"),
                    }
                };
                core.session_ended(&gateway, seq, &why);
            }
            .instrument(span),
        );
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

fn severity(s: Severity) -> v1::Severity {
    match s {
        Severity::Info => v1::Severity::Info,
        Severity::Warning => v1::Severity::Warning,
        Severity::Critical => v1::Severity::Critical,
    }
}

fn alarm(a: &Alarm) -> v1::Alarm {
    v1::Alarm {
        alarm_id: a.id,
        kind: a.kind.clone(),
        node_id: a.node_id.clone(),
        severity: severity(a.severity) as i32,
        state: match a.state {
            AlarmState::Raised => v1::AlarmState::Raised,
            AlarmState::Acknowledged => v1::AlarmState::Acknowledged,
            AlarmState::Cleared => v1::AlarmState::Cleared,
        } as i32,
        message: a.message.clone(),
        raised_at_ms: a.raised_at_ms,
        acknowledged_at_ms: a.acknowledged_at_ms.unwrap_or(0),
        acknowledged_by: a.acknowledged_by.clone().unwrap_or_default(),
        cleared_at_ms: a.cleared_at_ms.unwrap_or(0),
        metric: a.metric.clone().unwrap_or_default(),
        raised_network_ms: a.raised_network_ms.unwrap_or(0),
        cleared_network_ms: a.cleared_network_ms.unwrap_or(0),
        leak: a.leak.as_ref().map(|l| v1::LeakSection {
            pipe_id: l.pipe_id.clone(),
            from_junction: l.from_junction.clone(),
            to_junction: l.to_junction.clone(),
            junction: l.junction.clone(),
            nodes: l.nodes.clone(),
            alternatives: l.alternatives.clone(),
            leak_kg_s: l.leak_kg_s,
            deficit_pa: l.deficit_pa,
        }),
    }
}

fn curve_version(c: &CurveVersion) -> v1::CurveVersion {
    v1::CurveVersion {
        group: c.group.clone(),
        version: c.version,
        curve: Some((&c.curve).into()),
        author: c.author.clone(),
        reason: c.reason.clone(),
        created_at_ms: c.created_at_ms,
    }
}

#[tonic::async_trait]
impl ControlRoomService for Grpc {
    async fn get_network_state(
        &self,
        _req: Request<v1::GetNetworkStateRequest>,
    ) -> Result<Response<v1::NetworkState>, Status> {
        let view = self.core.network().map_err(status)?;
        Ok(Response::new(v1::NetworkState {
            now_ms: crate::core::wall_ms(),
            gateways: view
                .gateways
                .iter()
                .map(|g| v1::GatewayState {
                    gateway_id: g.gateway_id.to_string(),
                    online: g.online,
                    instance_id: g.instance_id.clone(),
                    last_seen_ms: g.last_seen_ms,
                    last_stored_seq: g.stats.last_stored_seq,
                    batches_stored: g.stats.batches_stored,
                    samples_stored: g.stats.samples_stored,
                    duplicates_dropped: g.stats.duplicates_dropped,
                    sequence_gaps: g.stats.sequence_gaps,
                    registrations: g.registrations,
                })
                .collect(),
            nodes: view
                .nodes
                .iter()
                .map(|n| v1::NodeState {
                    node_id: n.info.id.to_string(),
                    kind: v1::NodeKind::from(n.info.kind) as i32,
                    parent_id: n
                        .info
                        .parent
                        .as_ref()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    gateway_id: n.gateway.to_string(),
                    online: n.online,
                    mode: n.mode.map_or(v1::Mode::Unspecified, v1::Mode::from) as i32,
                    reading_time_ms: n.time_ms,
                    readings: n.readings.iter().map(|r| v1::Reading::from(*r)).collect(),
                    commanded_setpoint_c: n.commanded_c,
                    group: n.info.group.clone().unwrap_or_default(),
                })
                .collect(),
            active_alarms: view.active_alarms as u32,
        }))
    }

    async fn list_alarms(
        &self,
        req: Request<v1::ListAlarmsRequest>,
    ) -> Result<Response<v1::ListAlarmsResponse>, Status> {
        let alarms = self
            .core
            .alarms(req.get_ref().include_cleared)
            .map_err(status)?;
        Ok(Response::new(v1::ListAlarmsResponse {
            alarms: alarms.iter().map(alarm).collect(),
        }))
    }

    async fn ack_alarm(
        &self,
        req: Request<v1::AckAlarmRequest>,
    ) -> Result<Response<v1::Alarm>, Status> {
        let r = req.into_inner();
        let res = self
            .core
            .ack_alarm(r.alarm_id, &r.user)
            .await
            .map_err(status);
        let what = self.request(
            &r.user,
            audit::Action::AlarmAck,
            r.alarm_id.to_string(),
            String::new(),
            String::new(),
        );
        let a = self.audited(what, res).await?;
        Ok(Response::new(alarm(&a)))
    }

    async fn get_curve(
        &self,
        req: Request<v1::GetCurveRequest>,
    ) -> Result<Response<v1::CurveVersion>, Status> {
        let c = self.core.curve(&req.get_ref().group).map_err(status)?;
        Ok(Response::new(curve_version(&c)))
    }

    async fn set_curve(
        &self,
        req: Request<v1::SetCurveRequest>,
    ) -> Result<Response<v1::CurveVersion>, Status> {
        let r = req.into_inner();
        let res = self
            .core
            .set_curve(&r.group, r.curve.as_ref(), &r.author, &r.reason)
            .await
            .map_err(status);
        let what = self.request(
            &r.author,
            audit::Action::CurveSet,
            r.group.clone(),
            curve_detail(r.curve.as_ref()),
            r.reason.clone(),
        );
        let c = self.audited(what, res).await?;
        Ok(Response::new(curve_version(&c)))
    }

    async fn curve_history(
        &self,
        req: Request<v1::CurveHistoryRequest>,
    ) -> Result<Response<v1::CurveHistoryResponse>, Status> {
        let h = self
            .core
            .curve_history(&req.get_ref().group)
            .map_err(status)?;
        Ok(Response::new(v1::CurveHistoryResponse {
            versions: h.iter().map(curve_version).collect(),
        }))
    }

    async fn set_override(
        &self,
        req: Request<v1::SetOverrideRequest>,
    ) -> Result<Response<v1::SetOverrideResponse>, Status> {
        let r = req.into_inner();
        let res = self
            .core
            .set_override(&r.node_id, Some(r.supply_temp_c), r.duration_s, &r.author)
            .map_err(status);
        let what = self.request(
            &r.author,
            audit::Action::OverrideSet,
            r.node_id.clone(),
            format!("supply_temp_c {} for {} s", r.supply_temp_c, r.duration_s),
            r.reason.clone(),
        );
        let id = self.audited(what, res).await?;
        Ok(Response::new(v1::SetOverrideResponse { command_id: id }))
    }

    async fn clear_override(
        &self,
        req: Request<v1::ClearOverrideRequest>,
    ) -> Result<Response<v1::SetOverrideResponse>, Status> {
        let r = req.into_inner();
        let res = self
            .core
            .set_override(&r.node_id, None, 0, &r.author)
            .map_err(status);
        let what = self.request(
            &r.author,
            audit::Action::OverrideClear,
            r.node_id.clone(),
            String::new(),
            r.reason.clone(),
        );
        let id = self.audited(what, res).await?;
        Ok(Response::new(v1::SetOverrideResponse { command_id: id }))
    }

    async fn read_telemetry_hours(
        &self,
        req: Request<v1::ReadTelemetryHoursRequest>,
    ) -> Result<Response<v1::ReadTelemetryHoursResponse>, Status> {
        let r = req.into_inner();
        let node: NodeId = proto::convert::node_id("node_id", &r.node_id)?;
        if r.from_ms >= r.to_ms {
            return Err(Status::invalid_argument(format!(
                "from_ms: {} is not before to_ms {}",
                r.from_ms, r.to_ms
            )));
        }
        if r.to_ms.saturating_sub(r.from_ms) > MAX_READ_HOURS_SPAN_MS {
            return Err(Status::invalid_argument(format!(
                "to_ms: {} ms after from_ms is more than the {} days one call reads",
                r.to_ms.saturating_sub(r.from_ms),
                MAX_READ_HOURS_SPAN_MS / 86_400_000
            )));
        }
        let hours = self
            .core
            .ingest()
            .hours(&node, r.from_ms, r.to_ms)
            .map_err(|e| status(CoreError::from(e)))?;
        Ok(Response::new(v1::ReadTelemetryHoursResponse {
            hours: hours
                .into_iter()
                .map(|(hour, row)| v1::TelemetryHour {
                    hour_start_ms: hour,
                    metrics: row
                        .into_iter()
                        .map(|(m, a)| v1::HourAggregate {
                            metric: v1::Metric::from(m) as i32,
                            count: a.count,
                            mean: a.mean,
                            min: a.min,
                            max: a.max,
                        })
                        .collect(),
                })
                .collect(),
        }))
    }

    async fn read_telemetry(
        &self,
        req: Request<v1::ReadTelemetryRequest>,
    ) -> Result<Response<v1::ReadTelemetryResponse>, Status> {
        let r = req.into_inner();
        let gw: NodeId = proto::convert::node_id("gateway_id", &r.gateway_id)?;
        let limit = if r.limit == 0 {
            1000
        } else {
            r.limit.min(MAX_READ_BATCHES)
        };
        let batches = self
            .core
            .ingest()
            .read(&gw, r.from_seq, limit as usize)
            .map_err(|e| status(CoreError::from(e)))?;
        Ok(Response::new(v1::ReadTelemetryResponse {
            batches: batches
                .iter()
                .map(|(seq, b)| v1::StoredBatch {
                    seq: *seq,
                    samples: b.sample_count() as u32,
                    first_time_ms: b.snapshots.first().map_or(0, |s| s.time_ms),
                })
                .collect(),
        }))
    }

    async fn get_plan(
        &self,
        _req: Request<v1::GetPlanRequest>,
    ) -> Result<Response<v1::Plan>, Status> {
        let Some(p) = self.core.plan_view().map_err(status)? else {
            return Ok(Response::new(v1::Plan {
                mode: self.core.mode().name().into(),
                note: "no plan yet: the optimizer has had no telemetry to plan from".into(),
                ..Default::default()
            }));
        };
        Ok(Response::new(v1::Plan {
            planned_at_ms: p.planned_at_ms,
            mode: p.mode,
            step_ms: p.step_ms,
            plants: p
                .plants
                .into_iter()
                .map(|pl| v1::PlantPlan {
                    plant_id: pl.id.to_string(),
                    kind: pl.kind,
                    available: pl.available,
                    lead: pl.lead,
                    delay_s: pl.delay_s,
                    price_yuan_per_gj: pl.price_yuan_per_gj,
                    heat_w: pl.heat_w,
                    supply_temp_c: pl.supply_temp_c,
                })
                .collect(),
            demand_w: p.demand_w,
            unserved_w: p.unserved_w,
            loss_share: p.loss_share,
            cost_yuan: p.cost_yuan,
            critical_substation_id: p
                .critical_substation
                .map(|id| id.to_string())
                .unwrap_or_default(),
            critical_diff_pressure_pa: p.critical_diff_pressure_pa,
            diff_pressure_target_pa: p.diff_pressure_target_pa,
            lead_plant_id: p.lead_plant.map(|id| id.to_string()).unwrap_or_default(),
            head_setpoint_pa: p.head_setpoint_pa,
            demand_models: p
                .demand_models
                .into_iter()
                .map(|d| v1::DemandModelState {
                    substation_id: d.substation.to_string(),
                    samples: d.samples,
                    mae_next_w: d.mae_next_w,
                    mae_day_w: d.mae_day_w,
                })
                .collect(),
            weather_forecast: p.weather_forecast,
            note: p.note,
            room_target_c: p.room_target_c,
            curve_sun_k: p.curve_sun_k,
        }))
    }

    async fn read_telemetry_snapshots(
        &self,
        req: Request<v1::ReadTelemetryRequest>,
    ) -> Result<Response<v1::ReadTelemetrySnapshotsResponse>, Status> {
        let r = req.into_inner();
        let gw: NodeId = proto::convert::node_id("gateway_id", &r.gateway_id)?;
        let limit = if r.limit == 0 {
            MAX_SNAPSHOT_BATCHES
        } else {
            r.limit.min(MAX_SNAPSHOT_BATCHES)
        };
        let batches = self
            .core
            .ingest()
            .read(&gw, r.from_seq, limit as usize)
            .map_err(|e| status(CoreError::from(e)))?;
        Ok(Response::new(v1::ReadTelemetrySnapshotsResponse {
            batches: batches
                .iter()
                .map(|(seq, b)| v1::StoredSnapshots {
                    seq: *seq,
                    snapshots: b.snapshots.iter().map(v1::ActorSnapshot::from).collect(),
                })
                .collect(),
        }))
    }

    async fn load_forecast(
        &self,
        req: Request<v1::LoadForecastRequest>,
    ) -> Result<Response<v1::LoadForecastResponse>, Status> {
        let r = req.into_inner();
        let res = self.load(&r).await;
        let detail = match (r.points.first(), r.points.last()) {
            (Some(a), Some(b)) => format!(
                "{} points {}..{} ms, issued at {} ms",
                r.points.len(),
                a.time_ms,
                b.time_ms,
                r.issued_at_ms
            ),
            _ => format!("no points, issued at {} ms", r.issued_at_ms),
        };
        let what = self.request(
            &r.author,
            audit::Action::ForecastLoad,
            r.source.clone(),
            detail,
            String::new(),
        );
        let (points, issues_kept) = self.audited(what, res).await?;
        Ok(Response::new(v1::LoadForecastResponse {
            points,
            issues_kept,
        }))
    }

    async fn get_forecast(
        &self,
        req: Request<v1::GetForecastRequest>,
    ) -> Result<Response<v1::Forecast>, Status> {
        let r = req.into_inner();
        let horizon_h = match r.horizon_h {
            0 => 72,
            h if h <= MAX_FORECAST_HORIZON_H => h,
            h => {
                return Err(Status::invalid_argument(format!(
                    "horizon_h: {h} is out of range: allowed 1..{MAX_FORECAST_HORIZON_H} (0: 72)"
                )));
            }
        };
        let from_ms = if r.from_ms > 0 {
            r.from_ms
        } else if r.from_ms == 0 {
            self.core.network_time_ms()
        } else {
            return Err(Status::invalid_argument(format!(
                "from_ms: {} is not a time (Unix ms; 0: network time)",
                r.from_ms
            )));
        };
        // Without telemetry yet, from the newest issue's own time.
        let from_ms = match from_ms {
            0 => self
                .core
                .forecasts()
                .latest(i64::MIN, 0)
                .map_or(0, |a| a.issued_at_ms),
            t => t,
        };
        let a = self
            .core
            .forecasts()
            .latest(from_ms, i64::from(horizon_h) * 3_600_000)
            .ok_or_else(|| Status::not_found("no forecast has been loaded"))?;
        Ok(Response::new(v1::Forecast {
            source: a.source,
            issued_at_ms: a.issued_at_ms,
            points: a
                .points
                .iter()
                .map(|p| proto::convert::forecast::forecast_point(p, a.has_solar))
                .collect(),
            loaded_at_ms: a.loaded_at_ms,
            from_ms,
        }))
    }

    async fn forecast_score(
        &self,
        _req: Request<v1::ForecastScoreRequest>,
    ) -> Result<Response<v1::ForecastScoreResponse>, Status> {
        let s = self.core.forecasts().score();
        Ok(Response::new(v1::ForecastScoreResponse {
            buckets: s
                .buckets
                .iter()
                .map(|b| v1::LeadBucket {
                    from_h: b.from_h,
                    to_h: b.to_h,
                    count: b.count,
                    mae_k: b.mae_k,
                    bias_k: b.bias_k,
                })
                .collect(),
            issues: s.issues as u32,
            observed_hours: s.observed_hours as u32,
        }))
    }

    async fn audit_history(
        &self,
        req: Request<v1::AuditHistoryRequest>,
    ) -> Result<Response<v1::AuditHistoryResponse>, Status> {
        let limit = match req.get_ref().limit {
            0 => 200,
            n => n.min(MAX_AUDIT_ENTRIES_PER_CALL),
        };
        let r = req.get_ref();
        let action = if r.action.is_empty() {
            None
        } else {
            Some(audit::Action::from_name(&r.action).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "action: unknown {:?}; one of {}",
                    r.action,
                    audit::Action::ALL.map(audit::Action::name).join(", ")
                ))
            })?)
        };
        Ok(Response::new(v1::AuditHistoryResponse {
            entries: self
                .core
                .audit_log()
                .recent(limit as usize, action)
                .iter()
                .map(audit_entry)
                .collect(),
        }))
    }

    async fn get_ledger(
        &self,
        req: Request<v1::GetLedgerRequest>,
    ) -> Result<Response<v1::GetLedgerResponse>, Status> {
        use crate::ledger::{self, MAX_DAYS};
        let r = req.into_inner();
        let day = |field: &str, raw: &str| -> Result<Option<i64>, Status> {
            if raw.is_empty() {
                return Ok(None);
            }
            ledger::parse_day(raw)
                .map(Some)
                .map_err(|e| Status::invalid_argument(format!("{field}: {e}")))
        };
        let from = day("from_day", &r.from_day)?;
        let to = day("to_day", &r.to_day)?;
        if let (Some(f), Some(t)) = (from, to) {
            if t < f {
                return Err(Status::invalid_argument(format!(
                    "to_day: {} is before from_day {}",
                    r.to_day, r.from_day
                )));
            }
            if t - f >= MAX_DAYS {
                return Err(Status::invalid_argument(format!(
                    "to_day: at most {MAX_DAYS} days per call; {} .. {} is {} days",
                    r.from_day,
                    r.to_day,
                    t - f + 1
                )));
            }
        }
        if r.building_prefix.len() > 128 {
            return Err(Status::invalid_argument(
                "building_prefix: longer than 128 bytes",
            ));
        }
        let mut rows = self
            .core
            .ledger(from, to, &r.building_prefix)
            .map_err(status)?;
        let truncated = rows.len() > crate::core::MAX_LEDGER_ROWS;
        rows.truncate(crate::core::MAX_LEDGER_ROWS);
        let h = |ms: i64| ms as f64 / 3.6e6;
        Ok(Response::new(v1::GetLedgerResponse {
            days: rows
                .iter()
                .map(|d| v1::LedgerDay {
                    building_id: d.building_id.clone(),
                    day: ledger::format_day(d.day),
                    cold_hours: h(d.entry.cold_ms),
                    known_hours: h(d.entry.known_ms),
                    unknown_hours: h(d.entry.unknown_ms),
                    min_room_temp_c: d.entry.min_room_temp_c.unwrap_or(f64::NAN),
                })
                .collect(),
            gap_limit_s: (ledger::GAP_LIMIT_MS / 1000) as u32,
            truncated,
        }))
    }
}

impl Grpc {
    fn request(
        &self,
        user: &str,
        action: audit::Action,
        target: String,
        detail: String,
        reason: String,
    ) -> audit::Request {
        audit::Request {
            wall_ms: crate::core::wall_ms(),
            network_ms: self.core.network_time_ms(),
            user: user.to_string(),
            action,
            target,
            detail,
            reason,
        }
    }

    /// Records a control-room write and its outcome in the audit log, flushed,
    /// then passes the outcome on. A failed audit write is logged, not answered:
    /// the change itself has been made (or refused) already.
    async fn audited<T>(&self, req: audit::Request, res: Result<T, Status>) -> Result<T, Status> {
        let outcome = match &res {
            Ok(_) => audit::Outcome::Accepted,
            Err(s) => audit::Outcome::Refused {
                code: format!("{:?}", s.code()),
                message: s.message().to_string(),
            },
        };
        let action = req.action.name();
        match self.core.audit_log().record(req, outcome) {
            Ok(e) => {
                if let Err(err) = self.core.store().flush_async().await {
                    tracing::error!(audit_id = e.id, error = %err, "audit entry not flushed");
                }
                tracing::info!(
                    audit_id = e.id,
                    action,
                    user = %e.user,
                    target = %e.target,
                    accepted = e.outcome == audit::Outcome::Accepted,
                    "control-room write audited"
                );
            }
            Err(err) => tracing::error!(action, error = %err, "audit entry not stored"),
        }
        res
    }

    /// Validates and stores a forecast; returns (points, issues kept).
    async fn load(&self, r: &v1::LoadForecastRequest) -> Result<(u32, u32), Status> {
        if r.author.trim().is_empty() {
            return Err(Status::invalid_argument(
                "author: missing; say who loads the forecast",
            ));
        }
        let f = model::Forecast::try_from(r)?;
        let n = f.points.len() as u32;
        let kept = self
            .core
            .forecasts()
            .insert(f, crate::core::wall_ms())
            .map_err(|e| status(CoreError::from(e)))?;
        self.core
            .store()
            .flush_async()
            .await
            .map_err(|e| status(CoreError::from(e)))?;
        tracing::info!(source = %r.source, points = n, issued_at_ms = r.issued_at_ms, "forecast loaded");
        Ok((n, kept as u32))
    }
}

/// A short description of a requested curve for the audit log (as sent, even if invalid).
fn curve_detail(c: Option<&v1::SupplyCurve>) -> String {
    let Some(c) = c else {
        return "no curve".into();
    };
    let pts: Vec<String> = c
        .points
        .iter()
        .take(20)
        .map(|p| format!("{}:{}", p.outdoor_temp_c, p.supply_temp_c))
        .collect();
    format!(
        "points {}{}; min {} max {} °C",
        pts.join(","),
        if c.points.len() > 20 { ",…" } else { "" },
        c.min_supply_temp_c,
        c.max_supply_temp_c
    )
}

fn audit_entry(e: &AuditEntry) -> v1::AuditEntry {
    let (accepted, error_code, error) = match &e.outcome {
        audit::Outcome::Accepted => (true, String::new(), String::new()),
        audit::Outcome::Refused { code, message } => (false, code.clone(), message.clone()),
    };
    v1::AuditEntry {
        id: e.id,
        wall_ms: e.wall_ms,
        network_ms: e.network_ms,
        user: e.user.clone(),
        action: e.action.name().to_string(),
        target: e.target.clone(),
        detail: e.detail.clone(),
        reason: e.reason.clone(),
        accepted,
        error_code,
        error,
    }
}

#[cfg(test)]
mod tests {
    use model::{ActorSnapshot, Metric, Mode, Reading};
    use store::Store;

    use super::*;
    use crate::core::CoreConfig;
    use crate::ingest::Ingest;
    use crate::retention::Retention;

    /// The hourly aggregates of old telemetry through the control-room API,
    /// and its refusals naming the field.
    #[tokio::test]
    async fn old_telemetry_is_read_as_hourly_aggregates_and_bad_ranges_are_refused() {
        const H: i64 = 3_600_000;
        let dir = crate::testing::scratch_dir("grpc-hours");
        let store = Store::open(&dir, &crate::testing::store_config()).unwrap();
        let retention = Retention {
            raw_keep_ms: 2 * H,
            ..Retention::default()
        };
        let ingest = Ingest::start_with(&store, retention).unwrap();
        let gw = NodeId::new("g1").unwrap();
        let t0 = 500_000 * H;
        for k in 0..=8i64 {
            let batch = TelemetryBatch {
                seq: k as u64 + 1,
                snapshots: vec![ActorSnapshot {
                    actor_id: NodeId::new("s1").unwrap(),
                    time_ms: t0 + k * H / 2,
                    mode: Mode::Optimizer,
                    readings: vec![Reading::new(Metric::SupplyTempC, 60.0 + k as f64)],
                }],
            };
            ingest.store(gw.clone(), batch).await.unwrap();
        }
        ingest.close().await;
        let ingest = Ingest::start_with(&store, retention).unwrap();
        let core = Core::open(&store, ingest, CoreConfig::default()).unwrap();
        let grpc = Grpc {
            core: Arc::new(core),
        };
        let read = |node: &str, from_ms: i64, to_ms: i64| {
            grpc.read_telemetry_hours(Request::new(v1::ReadTelemetryHoursRequest {
                node_id: node.into(),
                from_ms,
                to_ms,
            }))
        };
        // Newest 04:00: the hours before 02:00 are aggregates.
        let hours = read("s1", t0, t0 + 24 * H)
            .await
            .unwrap()
            .into_inner()
            .hours;
        assert_eq!(hours.len(), 2, "{hours:?}");
        assert_eq!(hours[0].hour_start_ms, t0);
        let m = &hours[1].metrics[0];
        assert_eq!(m.metric, v1::Metric::from(Metric::SupplyTempC) as i32);
        // 01:00 and 01:30: 62 and 63 °C.
        assert_eq!((m.count, m.min, m.max, m.mean), (2, 62.0, 63.0, 62.5));
        for (node, from, to, field) in [
            ("", t0, t0 + H, "node_id"),
            ("s1", t0 + H, t0, "from_ms"),
            ("s1", t0, t0 + 401 * 86_400_000, "to_ms"),
        ] {
            let e = read(node, from, to).await.unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
            assert!(e.message().contains(field), "{field}: {e:?}");
        }
        drop(grpc);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
