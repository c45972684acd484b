//! The gateway's link to the optimizer: register, open the session stream,
//! replay the outbox from what the optimizer already holds, stream new batches,
//! answer commands, and reconnect with backoff when anything breaks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use control::Actors;
use model::{Command, CommandOutcome, CommandResult, NodeKind};
use proto::EdgeAlarm;
use proto::v1;
use proto::v1::agent_service_client::AgentServiceClient;
use tokio::sync::{Notify, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument as _;

use crate::config::GatewayConfig;
use crate::outbox::{Outbox, OutboxError};

/// Shared view of the link, read by the scan loop.
pub struct LinkShared {
    started: Instant,
    /// Milliseconds since `started` of the last message from the optimizer; -1: never.
    last_contact_ms: AtomicI64,
    connected: AtomicBool,
    /// Wakes the link when the outbox has something new.
    pub new_data: Notify,
    /// The highest sequence number the optimizer acknowledged (0: none yet).
    pub acked: watch::Sender<u64>,
    /// The gateway's active edge alarms (complete set, sorted), set by the scan
    /// loop; `None` until its first scan (an empty set would clear the
    /// optimizer's alarms of a gateway that just restarted).
    pub alarms: watch::Sender<Option<Vec<EdgeAlarm>>>,
}

impl Default for LinkShared {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            last_contact_ms: AtomicI64::new(-1),
            connected: AtomicBool::new(false),
            new_data: Notify::new(),
            acked: watch::Sender::new(0),
            alarms: watch::Sender::new(None),
        }
    }
}

impl LinkShared {
    fn touch(&self) {
        self.last_contact_ms
            .store(self.started.elapsed().as_millis() as i64, Ordering::Relaxed);
    }

    /// The optimizer has been heard from within `window`.
    pub fn optimizer_recent(&self, window: Duration) -> bool {
        let last = self.last_contact_ms.load(Ordering::Relaxed);
        last >= 0 && (self.started.elapsed().as_millis() as i64 - last) < window.as_millis() as i64
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Waits until the optimizer has acknowledged `seq`, or the link is down,
    /// or `limit` passed. True when acknowledged.
    pub async fn wait_acked(&self, seq: u64, limit: Duration) -> bool {
        let mut acked = self.acked.subscribe();
        let wait = async {
            loop {
                if *acked.borrow_and_update() >= seq {
                    return true;
                }
                if !self.connected() {
                    return false;
                }
                // Woken by every acknowledgement; the link going down is
                // seen within the poll period.
                let woken = tokio::time::timeout(Duration::from_millis(200), acked.changed()).await;
                if let Ok(Err(_)) = woken {
                    return false;
                }
            }
        };
        tokio::time::timeout(limit, wait).await.unwrap_or(false)
    }
}

pub struct Link {
    pub cfg: GatewayConfig,
    pub outbox: Outbox,
    pub actors: Arc<Actors>,
    pub shared: Arc<LinkShared>,
    pub instance_id: String,
}

const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Link {
    /// Keeps a session up until the task is dropped.
    pub async fn run(self) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let began = Instant::now();
            let span = tracing::info_span!("optimizer_session", gateway_id = %self.cfg.gateway_id);
            let result = self.session().instrument(span).await;
            self.shared.connected.store(false, Ordering::Relaxed);
            match result {
                Ok(()) => tracing::info!("optimizer session ended"),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "optimizer link down; retrying")
                }
            }
            if began.elapsed() > Duration::from_secs(10) {
                backoff = BACKOFF_MIN;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Frees what the optimizer has stored. On a nearly full disk the
    /// outbox keeps it (the session goes on, and the edge alarms with it):
    /// a batch sent again is recognized by the optimizer as a duplicate.
    fn acknowledge(&self, seq: u64) -> Result<(), OutboxError> {
        match self.outbox.acknowledge(seq) {
            Err(OutboxError::Store(e)) if e.is_disk_low() => {
                tracing::debug!(seq, error = %e, "acknowledgement not recorded");
                Ok(())
            }
            r => r,
        }
    }

    fn descriptors(&self) -> Vec<v1::ActorDescriptor> {
        self.cfg
            .actors
            .iter()
            .map(|a| v1::ActorDescriptor {
                actor_id: a.id.to_string(),
                kind: v1::NodeKind::from(a.kind) as i32,
                parent_id: a.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
                group: a.group.clone().unwrap_or_default(),
                min_supply_temp_c: a
                    .supply_limits_c
                    .map(|l| l.0)
                    .unwrap_or(default_limits(a.kind).0),
                max_supply_temp_c: a
                    .supply_limits_c
                    .map(|l| l.1)
                    .unwrap_or(default_limits(a.kind).1),
                default_curve: a.fallback_curve.as_ref().map(v1::SupplyCurve::from),
            })
            .collect()
    }

    async fn session(&self) -> anyhow::Result<()> {
        let channel = observe::grpc::endpoint(&self.cfg.optimizer)?
            .connect()
            .await
            .with_context(|| format!("connecting to the optimizer at {}", self.cfg.optimizer))?;
        let mut client =
            AgentServiceClient::with_interceptor(channel, observe::grpc::TracePropagation);
        let reg = client
            .register(v1::RegisterRequest {
                gateway_id: self.cfg.gateway_id.to_string(),
                instance_id: self.instance_id.clone(),
                actors: self.descriptors(),
                software_version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .instrument(tracing::info_span!("register_with_optimizer"))
            .await
            .context("registering with the optimizer")?
            .into_inner();
        self.shared.touch();
        let stored = reg.last_stored_seq;
        self.acknowledge(stored)?;
        self.shared.acked.send_if_modified(|a| {
            let newer = stored > *a;
            *a = (*a).max(stored);
            newer
        });
        if self.outbox.skip_to_after(stored).await? {
            tracing::warn!(
                last_stored_seq = stored,
                "optimizer holds batches beyond our outbox numbering (local state was reset?): continuing after them"
            );
        }
        let info = self.outbox.info()?;
        tracing::info!(
            last_stored_seq = stored,
            pending = info.pending,
            next_seq = info.next_seq,
            "registered with the optimizer"
        );

        let (tx, rx) = mpsc::channel::<v1::GatewayMessage>(256);
        let send = |body| v1::GatewayMessage { body: Some(body) };
        tx.send(send(v1::gateway_message::Body::Open(v1::SessionOpen {
            gateway_id: self.cfg.gateway_id.to_string(),
            session_id: reg.session_id.clone(),
        })))
        .await?;
        let mut inbound = client
            .session(ReceiverStream::new(rx))
            .await
            .context("opening the session stream")?
            .into_inner();
        self.shared.connected.store(true, Ordering::Relaxed);
        // The complete set of edge alarms now, then again whenever it changes.
        let mut alarms = self.shared.alarms.subscribe();
        let edge_alarms = |set: &Option<Vec<EdgeAlarm>>| {
            set.as_ref().map(|set| {
                send(v1::gateway_message::Body::EdgeAlarms(v1::EdgeAlarms {
                    alarms: set.iter().map(v1::EdgeAlarm::from).collect(),
                }))
            })
        };
        let first = edge_alarms(&alarms.borrow_and_update());
        if let Some(first) = first {
            tx.send(first).await.context("session stream closed")?;
        }

        let mut next_to_send = stored + 1;
        let mut acked = stored;
        let hb_ms =
            u64::from(reg.heartbeat_interval_ms).clamp(100, self.cfg.limits.heartbeat_ms.max(100));
        let mut heartbeat = tokio::time::interval(Duration::from_millis(hb_ms));
        let max_in_flight = self.cfg.limits.max_in_flight as u64;
        loop {
            // Fill the window from the outbox.
            let in_flight = next_to_send.saturating_sub(acked + 1);
            if in_flight < max_in_flight {
                let room = (max_in_flight - in_flight) as usize;
                for batch in self.outbox.pending_from(next_to_send, room)? {
                    next_to_send = batch.seq + 1;
                    tx.send(send(v1::gateway_message::Body::Batch((&batch).into())))
                        .await
                        .context("session stream closed")?;
                }
            }
            tokio::select! {
                msg = inbound.message() => {
                    let Some(msg) = msg.context("session stream failed")? else {
                        anyhow::bail!("optimizer closed the session");
                    };
                    self.shared.touch();
                    match msg.body {
                        Some(v1::optimizer_message::Body::Ack(a)) => {
                            if a.seq > acked {
                                acked = a.seq;
                                self.acknowledge(a.seq)?;
                                self.shared.acked.send_if_modified(|s| {
                                    let newer = acked > *s;
                                    *s = (*s).max(acked);
                                    newer
                                });
                            }
                        }
                        Some(v1::optimizer_message::Body::Command(c)) => {
                            let result = self.handle_command(&c).await;
                            tx.send(send(v1::gateway_message::Body::CommandResult((&result).into())))
                                .await
                                .context("session stream closed")?;
                        }
                        None => tracing::warn!("empty message from the optimizer ignored"),
                    }
                }
                _ = self.shared.new_data.notified() => {}
                Ok(()) = alarms.changed() => {
                    let msg = edge_alarms(&alarms.borrow_and_update());
                    if let Some(msg) = msg {
                        tx.send(msg).await.context("session stream closed")?;
                    }
                }
                _ = heartbeat.tick() => {
                    tx.send(send(v1::gateway_message::Body::Heartbeat(v1::Heartbeat {
                        time_ms: 0,
                    })))
                    .await
                    .context("session stream closed")?;
                }
            }
        }
    }

    async fn handle_command(&self, wire: &v1::Command) -> CommandResult {
        let outcome = match Command::try_from(wire) {
            Err(e) => {
                tracing::warn!(command_id = %wire.command_id, error = %e, "malformed command refused");
                CommandOutcome::Rejected {
                    reason: e.to_string(),
                }
            }
            Ok(cmd) => self.actors.command(cmd).await,
        };
        CommandResult {
            command_id: wire.command_id.clone(),
            outcome,
        }
    }
}

fn default_limits(kind: NodeKind) -> (f64, f64) {
    match kind {
        NodeKind::Plant => model::network::PLANT_SUPPLY_LIMITS_C,
        _ => model::network::SECONDARY_SUPPLY_LIMITS_C,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_step_waits_for_the_acknowledgement_while_connected() {
        let shared = Arc::new(LinkShared::default());
        shared.connected.store(true, Ordering::Relaxed);
        let s = shared.clone();
        let acker = tokio::spawn(async move {
            for seq in 1..=5 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                s.acked.send_replace(seq);
            }
        });
        assert!(shared.wait_acked(5, Duration::from_secs(10)).await);
        assert_eq!(*shared.acked.borrow(), 5);
        acker.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_step_does_not_wait_when_the_link_is_down_or_too_long() {
        let shared = LinkShared::default();
        let began = tokio::time::Instant::now();
        assert!(!shared.wait_acked(1, Duration::from_secs(10)).await);
        assert!(
            began.elapsed() < Duration::from_secs(1),
            "waited on a link that is down"
        );
        shared.connected.store(true, Ordering::Relaxed);
        assert!(!shared.wait_acked(1, Duration::from_secs(2)).await);
        assert!(began.elapsed() >= Duration::from_secs(2));
        shared.acked.send_replace(3);
        assert!(shared.wait_acked(2, Duration::from_secs(2)).await);
    }
}
