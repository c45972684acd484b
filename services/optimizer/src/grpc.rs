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
use crate::core::{ActorInfo, Core, CoreError, GatewayRecord, SESSION_QUEUE};
use crate::curves::CurveVersion;

/// Most stored batches one ReadTelemetry call returns.
pub const MAX_READ_BATCHES: u32 = 10_000;
/// Most batches one `ReadTelemetrySnapshots` call returns (keeps answers to a few MB).
pub const MAX_SNAPSHOT_BATCHES: u32 = 500;

fn status(e: CoreError) -> Status {
    match e {
        CoreError::InvalidArgument(m) => Status::invalid_argument(m),
        CoreError::NotFound(m) => Status::not_found(m),
        CoreError::FailedPrecondition(m) => Status::failed_precondition(m),
        CoreError::Unavailable(m) => Status::unavailable(m),
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
        let a = self
            .core
            .ack_alarm(r.alarm_id, &r.user)
            .await
            .map_err(status)?;
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
        let c = self
            .core
            .set_curve(&r.group, r.curve.as_ref(), &r.author, &r.reason)
            .await
            .map_err(status)?;
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
        let id = self
            .core
            .set_override(&r.node_id, Some(r.supply_temp_c), r.duration_s, &r.author)
            .map_err(status)?;
        Ok(Response::new(v1::SetOverrideResponse { command_id: id }))
    }

    async fn clear_override(
        &self,
        req: Request<v1::ClearOverrideRequest>,
    ) -> Result<Response<v1::SetOverrideResponse>, Status> {
        let r = req.into_inner();
        let id = self
            .core
            .set_override(&r.node_id, None, 0, &r.author)
            .map_err(status)?;
        Ok(Response::new(v1::SetOverrideResponse { command_id: id }))
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
