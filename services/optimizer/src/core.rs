//! The optimizer's state and behaviour behind its gRPC edge: gateway registry,
//! sessions and liveness, live network state from telemetry, alarms, curves,
//! planning and command fan-out.
//!
//! One `std::sync::Mutex` guards the in-memory state; it is never held across
//! an `.await`. Commands reach a gateway through its session's bounded queue.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use model::{
    Action, Command, CommandOutcome, CommandResult, Metric, Mode, Network, NodeId, NodeKind,
    Reading, SupplyCurve, TelemetryBatch,
};
use proto::v1;
use serde::{Deserialize, Serialize};
use store::{Store, StoreError, Table};
use tokio::sync::mpsc;

use crate::ahead::WeatherAhead;
use crate::alarms::{AckError, Alarm, AlarmBook, Severity};
use crate::audit::AuditLog;
use crate::curves::{CurveBook, CurveVersion};
use crate::forecast::ForecastBook;
use crate::ingest::{Ingest, Outcome};
use crate::planner::{self, SubstationInput};
pub use crate::schedule::PlanMode;
use crate::schedule::{PlanState, PlanView, PlantObs, SubstationObs};

/// Room temperature below which a building raises an alarm, °C.
pub const ROOM_ALARM_C: f64 = model::COMFORT_MIN_ROOM_TEMP_C;
/// The room alarm is raised this far below [`ROOM_ALARM_C`], K ...
pub const ROOM_ALARM_RAISE_BELOW_K: f64 = 0.1;
/// ... and cleared this far above it, K: a room hovering at 18 °C, read
/// through a sensor's noise, would otherwise raise and clear its alarm every
/// few scans (4,373 alarms in a week of `city` with 0.05 K sensor noise).
pub const ROOM_ALARM_CLEAR_ABOVE_K: f64 = 0.2;

/// Whether a room reading raises (`Some(true)`) or clears (`Some(false)`)
/// its building's alarm; `None` inside the deadband: as it was.
pub fn room_alarm_edge(room_c: f64) -> Option<bool> {
    if room_c < ROOM_ALARM_C - ROOM_ALARM_RAISE_BELOW_K {
        Some(true)
    } else if room_c >= ROOM_ALARM_C + ROOM_ALARM_CLEAR_ABOVE_K {
        Some(false)
    } else {
        None
    }
}
/// Most rows one ledger query returns (about 1.2 MB on the wire).
pub const MAX_LEDGER_ROWS: usize = 20_000;
/// Commands queued for one gateway, at most.
pub const SESSION_QUEUE: usize = 1024;
/// How far ahead each planning round reads the newest forecast, ms.
pub const FORECAST_HORIZON_MS: i64 = 48 * 3_600_000;
/// Margin added to the persisted command version at start-up (covers versions
/// handed out but not yet flushed before a crash).
const VERSION_RESTART_MARGIN: u64 = 100_000;

/// How often [`Core::check_liveness`] is meant to run.
pub const LIVENESS_PERIOD: Duration = Duration::from_millis(250);

/// How much later than `period` after `last_check` the check runs at `now`.
fn own_stall(last_check: Option<Instant>, now: Instant, period: Duration) -> Duration {
    last_check.map_or(Duration::ZERO, |t| {
        now.saturating_duration_since(t).saturating_sub(period)
    })
}

/// A gateway last heard at `last_seen`, with the optimizer's own `stall`
/// taken off its silence (never later than `now`).
fn held(last_seen: Instant, stall: Duration, now: Instant) -> Instant {
    (last_seen + stall).min(now)
}

pub type SessionTx = mpsc::Sender<Result<v1::OptimizerMessage, tonic::Status>>;

#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// A gateway silent this long (real time) is lost.
    pub heartbeat_timeout: Duration,
    /// Heartbeat period asked of gateways, ms.
    pub heartbeat_interval_ms: u32,
    /// Network time between two planning rounds, ms.
    pub plan_interval_ms: i64,
    /// Optimizing, or the fixed-curve baseline.
    pub mode: PlanMode,
    /// The network description (plant capacities, prices, ramps; pipes for
    /// transport delays). Without it there is no dispatch.
    pub network: Option<Arc<Network>>,
    /// Differential pressure to hold at the critical substation, Pa.
    pub dp_target_pa: f64,
    /// The utility's network layout (junctions, pipes, where nodes hang):
    /// lets the leak detector name a section.
    pub layout: Option<crate::detect::Layout>,
}

impl Default for CoreConfig {
    fn default() -> Self {
        Self {
            heartbeat_timeout: Duration::from_secs(3),
            heartbeat_interval_ms: 1000,
            plan_interval_ms: 5 * 60_000,
            mode: PlanMode::Optimizing,
            network: None,
            dp_target_pa: crate::ahead::DEFAULT_DP_TARGET_PA,
            layout: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unavailable(String),
    /// The optimizer's disk is nearly full: nothing was written.
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        if e.is_disk_low() {
            CoreError::ResourceExhausted(format!("local storage: {e}"))
        } else {
            CoreError::Internal(format!("local storage: {e}"))
        }
    }
}

impl From<proto::ConversionError> for CoreError {
    fn from(e: proto::ConversionError) -> Self {
        CoreError::InvalidArgument(e.to_string())
    }
}

/// What a gateway said about one of its actors when it registered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActorInfo {
    pub id: NodeId,
    pub kind: NodeKind,
    pub parent: Option<NodeId>,
    pub group: Option<String>,
    pub limits_c: (f64, f64),
    pub default_curve: Option<SupplyCurve>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GatewayRecord {
    pub gateway_id: NodeId,
    pub instance_id: String,
    pub actors: Vec<ActorInfo>,
    pub registrations: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestStats {
    pub batches_stored: u64,
    pub samples_stored: u64,
    pub duplicates_dropped: u64,
    pub sequence_gaps: u64,
    pub last_stored_seq: u64,
}

struct GatewayLive {
    record: GatewayRecord,
    online: bool,
    last_seen: Option<Instant>,
    last_seen_wall_ms: i64,
    session_id: Option<String>,
    /// Which session is current (older sessions' endings are ignored).
    session_seq: u64,
    tx: Option<SessionTx>,
    stats: IngestStats,
}

struct NodeLive {
    info: ActorInfo,
    gateway: NodeId,
    mode: Option<Mode>,
    readings: Vec<Reading>,
    time_ms: i64,
    commanded_c: Option<f64>,
    trim_k: f64,
    /// Since when (network ms) a node first seen on its local curve has
    /// waited for its first setpoint ([`fallback_step`]).
    fallback_since_ms: Option<i64>,
}

/// How long a node first seen on its local curve may wait for the
/// optimizer's first setpoint before `local_fallback` is raised, network ms:
/// six planning rounds. A gateway that has just started runs its local curve
/// until then; that is no fallback (found in every season run: all 127 of
/// the city's nodes raised and cleared the alarm at the start). A node gets
/// its first setpoint in the first round after its first outdoor reading is
/// stored, and shows it in its next report: on the city in lockstep that
/// took three rounds for a third of the nodes, so 15 min raised 57 alarms.
pub const FALLBACK_START_GRACE_MS: i64 = 30 * 60_000;

/// What a node's reported mode does to its `local_fallback` alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FallbackStep {
    /// Clear the active alarm first (escalation to safe mode, or recovery).
    clear: bool,
    raise: Option<Severity>,
    /// The node's start-up wait, carried to the next report.
    since_ms: Option<i64>,
}

/// The `local_fallback` alarm's rule, from the node's previous mode (`None`:
/// first report since it registered), its reported mode, its start-up wait
/// and the report's network time. Safe mode is critical at once. Falling
/// back from the optimizer's control is raised at once; a node that has not
/// been under it yet is raised only once it has waited
/// [`FALLBACK_START_GRACE_MS`]. Back under control clears it.
fn fallback_step(
    prev: Option<Mode>,
    mode: Mode,
    since_ms: Option<i64>,
    time_ms: i64,
) -> FallbackStep {
    let none = FallbackStep {
        clear: false,
        raise: None,
        since_ms: None,
    };
    match mode {
        Mode::Safe if prev != Some(Mode::Safe) => FallbackStep {
            // Escalate: an active info-level fallback alarm becomes critical.
            clear: true,
            raise: Some(Severity::Critical),
            ..none
        },
        Mode::Safe => none,
        Mode::Fallback => match (prev, since_ms) {
            // Registered and waiting for its first setpoint.
            (None, _) => FallbackStep {
                since_ms: Some(time_ms),
                ..none
            },
            (Some(Mode::Fallback), Some(t)) if time_ms - t >= FALLBACK_START_GRACE_MS => {
                FallbackStep {
                    raise: Some(Severity::Info),
                    ..none
                }
            }
            (Some(Mode::Fallback), since) => FallbackStep {
                since_ms: since,
                ..none
            },
            // Fell back from the optimizer's control, an override or safe mode.
            (Some(_), _) => FallbackStep {
                raise: Some(Severity::Info),
                ..none
            },
        },
        Mode::Optimizer | Mode::Override if prev != Some(mode) => FallbackStep {
            clear: true,
            ..none
        },
        Mode::Optimizer | Mode::Override => none,
    }
}

impl NodeLive {
    fn get(&self, m: Metric) -> Option<f64> {
        self.readings
            .iter()
            .find(|r| r.metric == m)
            .map(|r| r.value)
    }
}

struct Inner {
    gateways: BTreeMap<NodeId, GatewayLive>,
    nodes: BTreeMap<NodeId, NodeLive>,
    alarms: AlarmBook,
    curves: CurveBook,
    next_version: u64,
    last_plan_ms: Option<i64>,
    replan: bool,
    next_session_seq: u64,
    schedule: PlanState,
    watch: crate::watch::Watch,
    /// When the liveness check last ran (its own stalls are not the gateways' silence).
    last_liveness_check: Option<Instant>,
    /// Commands sent and not yet answered: id → (version, gateway). Bounded
    /// by [`MAX_PENDING_COMMANDS`] (the oldest forgotten first); a gateway's
    /// are forgotten when its session ends.
    pending: BTreeMap<String, (u64, NodeId)>,
    /// The last round's decisions saved by an earlier optimizer, applied at
    /// this one's first round (if recent enough).
    recent_saved: Option<RecentMemory>,
    /// When the planner's learned memory was last saved, network ms.
    learned_saved_ms: Option<i64>,
    /// When the leak detector's memory was last saved, network ms.
    leak_saved_ms: Option<i64>,
}

/// The planner's memory keys in the `meta` table.
const LEARNED_KEY: &str = "plan/learned";
const RECENT_KEY: &str = "plan/recent";
/// The learned memory (demand models) is saved this often, network ms: a
/// restart loses at most this much learning.
const LEARNED_SAVE_EVERY_MS: i64 = 3_600_000;
/// The leak detector's memory in the `meta` table: saved every
/// [`LEAK_SAVE_EVERY_MS`] of network time and when the optimizer stops, given
/// back to the detector at start.
const LEAK_KEY: &str = "watch/leak";
/// How often the leak detector's memory is saved, network ms (some hundred
/// kilobytes on the city: pressure histories of every node).
const LEAK_SAVE_EVERY_MS: i64 = 3_600_000;

/// A memory saved in the `meta` table under `key`, logged as restored; a
/// damaged one is no reason not to start (what it held is learned again).
fn load_memory<T: serde::de::DeserializeOwned>(meta: &Table, key: &str, what: &str) -> Option<T> {
    match meta.get_json::<T>(key) {
        Ok(m) => {
            if m.is_some() {
                tracing::info!(key, "{what} restored");
            }
            m
        }
        Err(e) => {
            tracing::warn!(key, error = %e, "{what} unreadable: learning afresh");
            None
        }
    }
}

/// What the last round decided, saved after every round so that a restarted
/// optimizer carries on: the dispatch memory and each substation's room
/// feedback trim.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct RecentMemory {
    /// Network time of the round, Unix ms.
    saved_at_ms: i64,
    dispatch: crate::schedule::DispatchMemory,
    trims_k: BTreeMap<NodeId, f64>,
}

/// Most commands [`Core`] keeps waiting for an answer to.
pub const MAX_PENDING_COMMANDS: usize = 16_384;

pub struct Core {
    cfg: CoreConfig,
    store: Store,
    ingest: Ingest,
    registry: Table,
    meta: Table,
    inner: Mutex<Inner>,
    /// Weather forecasts and observed outdoor temperature (own lock).
    forecasts: ForecastBook,
    /// Every control-room write, accepted or refused (own lock).
    audit: AuditLog,
    /// Woken when a command is answered or a session ends.
    answered: tokio::sync::Notify,
}

/// Wall-clock now, Unix ms (audit timestamps; control uses network time from telemetry).
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub struct Registered {
    pub session_id: String,
    pub last_stored_seq: u64,
    pub heartbeat_interval_ms: u32,
}

/// A point-in-time view of the network for the control room.
pub struct NetworkView {
    pub gateways: Vec<GatewayView>,
    pub nodes: Vec<NodeView>,
    pub active_alarms: usize,
}

pub struct GatewayView {
    pub gateway_id: NodeId,
    pub online: bool,
    pub instance_id: String,
    pub last_seen_ms: i64,
    pub registrations: u32,
    pub stats: IngestStats,
}

pub struct NodeView {
    pub info: ActorInfo,
    pub gateway: NodeId,
    pub online: bool,
    pub mode: Option<Mode>,
    pub time_ms: i64,
    pub readings: Vec<Reading>,
    pub commanded_c: Option<f64>,
}

impl Core {
    pub fn open(store: &Store, ingest: Ingest, cfg: CoreConfig) -> Result<Self, CoreError> {
        let registry = store.table("registry")?;
        let meta = store.table("meta")?;
        let alarms = AlarmBook::load(store.table("alarms")?)?;
        let ledger = crate::ledger::Ledger::load(store.table("ledger")?, ROOM_ALARM_C)?;
        let mut watch = crate::watch::Watch::new(cfg.layout.clone(), ledger, &alarms);
        if let Some(m) = load_memory(&meta, LEAK_KEY, "leak detector's memory") {
            watch.restore_leak(m);
        }
        let curves = CurveBook::load(store.table("curves")?)?;
        let forecasts = ForecastBook::load(store.table("forecasts")?)?;
        let audit = AuditLog::load(store.table("audit")?)?;
        let mut gateways = BTreeMap::new();
        let mut nodes = BTreeMap::new();
        for entry in registry.scan_prefix(b"g/") {
            let (_, v) = entry?;
            let record: GatewayRecord = serde_json::from_slice(&v)
                .map_err(|e| CoreError::Internal(format!("registry entry is corrupt: {e}")))?;
            let last_stored = ingest.last_stored(&record.gateway_id)?;
            let batches = ingest.count(&record.gateway_id) as u64;
            for a in &record.actors {
                nodes.insert(
                    a.id.clone(),
                    NodeLive::new(a.clone(), record.gateway_id.clone()),
                );
            }
            // Each node's mode as last stored: a node that was under control
            // before this restart and reports its local curve now has fallen
            // back, and is no node waiting for its first setpoint.
            if last_stored > 0 {
                match ingest.read(&record.gateway_id, last_stored, 1) {
                    Ok(last) => {
                        for snap in last.into_iter().flat_map(|(_, b)| b.snapshots) {
                            if let Some(n) = nodes.get_mut(&snap.actor_id) {
                                n.mode = Some(snap.mode);
                                // Still waiting: its grace runs from then (an
                                // alarm already raised is not raised twice).
                                n.fallback_since_ms =
                                    (snap.mode == Mode::Fallback).then_some(snap.time_ms);
                            }
                        }
                    }
                    Err(e) => tracing::warn!(
                        gateway_id = %record.gateway_id,
                        error = %e,
                        "last stored batch unreadable: its nodes' modes start unknown"
                    ),
                }
            }
            gateways.insert(
                record.gateway_id.clone(),
                GatewayLive::offline(
                    record,
                    IngestStats {
                        batches_stored: batches,
                        last_stored_seq: last_stored,
                        ..Default::default()
                    },
                ),
            );
        }
        let stored_version = meta
            .get(b"next_version")?
            .and_then(|v| v.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        let next_version = stored_version + VERSION_RESTART_MARGIN;
        meta.insert(b"next_version", next_version.to_be_bytes())?;
        store.flush()?;
        tracing::info!(
            gateways = gateways.len(),
            nodes = nodes.len(),
            "optimizer state loaded"
        );
        let mut schedule = PlanState::new(cfg.network.clone(), cfg.dp_target_pa);
        if let Some(m) = load_memory(&meta, LEARNED_KEY, "planner's learned memory") {
            schedule.restore_learned(m);
        }
        let recent_saved = match meta.get_json::<RecentMemory>(RECENT_KEY) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "planner's last decisions unreadable: dispatching afresh");
                None
            }
        };
        Ok(Self {
            cfg,
            store: store.clone(),
            ingest,
            registry,
            meta,
            inner: Mutex::new(Inner {
                gateways,
                nodes,
                alarms,
                curves,
                next_version,
                last_plan_ms: None,
                replan: true,
                next_session_seq: 1,
                schedule,
                watch,
                last_liveness_check: None,
                pending: BTreeMap::new(),
                recent_saved,
                learned_saved_ms: None,
                leak_saved_ms: None,
            }),
            forecasts,
            audit,
            answered: tokio::sync::Notify::new(),
        })
    }

    /// Weather forecasts: the planner's look ahead (`ahead`) and their score.
    pub fn forecasts(&self) -> &ForecastBook {
        &self.forecasts
    }

    /// The audit log of control-room writes.
    pub fn audit_log(&self) -> &AuditLog {
        &self.audit
    }

    /// The store, for callers that write through the books above and must flush.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The network time: the newest reading of any node (0: none yet), Unix ms.
    pub fn network_time_ms(&self) -> i64 {
        self.lock()
            .map(|i| i.nodes.values().map(|n| n.time_ms).max().unwrap_or(0))
            .unwrap_or(0)
    }

    pub fn ingest(&self) -> &Ingest {
        &self.ingest
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, CoreError> {
        self.inner.lock().map_err(|_| {
            CoreError::Internal(
                "optimizer state poisoned by an earlier panic; restart the optimizer".into(),
            )
        })
    }

    /// Registers (or re-registers) a gateway and its actors.
    pub async fn register(&self, record: GatewayRecord) -> Result<Registered, CoreError> {
        if record.actors.is_empty() {
            return Err(CoreError::InvalidArgument(
                "actors: a gateway must host at least one actor".into(),
            ));
        }
        let session_id = format!(
            "{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let last_stored_seq = {
            let mut inner = self.lock()?;
            for a in &record.actors {
                if let Some(n) = inner.nodes.get(&a.id)
                    && n.gateway != record.gateway_id
                {
                    return Err(CoreError::FailedPrecondition(format!(
                        "actor {} is hosted by gateway {}; gateway {} cannot register it",
                        a.id, n.gateway, record.gateway_id
                    )));
                }
            }
            let registrations = inner
                .gateways
                .get(&record.gateway_id)
                .map_or(0, |g| g.record.registrations)
                + 1;
            let record = GatewayRecord {
                registrations,
                ..record
            };
            self.registry
                .put_json(format!("g/{}", record.gateway_id), &record)?;
            // Actors the gateway no longer hosts are forgotten: those of its
            // last record (its nodes, always) not in this one. Not a scan of
            // every node: 3,323 gateways with 20 buildings each took 12.7 s
            // to register that way.
            let gw = record.gateway_id.clone();
            let hosted: BTreeSet<&NodeId> = record.actors.iter().map(|a| &a.id).collect();
            let gone: Vec<NodeId> = inner.gateways.get(&gw).map_or_else(Vec::new, |g| {
                g.record
                    .actors
                    .iter()
                    .map(|a| a.id.clone())
                    .filter(|id| !hosted.contains(id))
                    .collect()
            });
            for id in gone {
                if inner.nodes.get(&id).is_some_and(|n| n.gateway == gw) {
                    inner.nodes.remove(&id);
                }
            }
            for a in &record.actors {
                match inner.nodes.get_mut(&a.id) {
                    Some(n) => n.info = a.clone(),
                    None => {
                        inner
                            .nodes
                            .insert(a.id.clone(), NodeLive::new(a.clone(), gw.clone()));
                    }
                }
                // A group without a curve starts from the first registrant's configured curve.
                if let (Some(group), Some(curve)) = (&a.group, &a.default_curve)
                    && inner.curves.current(group).is_none()
                {
                    let cv = inner.curves.set(
                        group,
                        curve.clone(),
                        "system",
                        &format!("initial curve from the configuration of gateway {gw}"),
                        wall_ms(),
                    )?;
                    tracing::info!(group = %group, version = cv.version, "supply curve initialised");
                }
            }
            let last_stored = self.ingest.last_stored(&gw)?;
            let entry = inner
                .gateways
                .entry(gw.clone())
                .or_insert_with(|| GatewayLive::offline(record.clone(), IngestStats::default()));
            entry.record = record;
            entry.session_id = Some(session_id.clone());
            entry.stats.last_stored_seq = last_stored;
            entry.last_seen = Some(Instant::now());
            entry.last_seen_wall_ms = wall_ms();
            inner.replan = true;
            last_stored
        };
        self.store.flush_async().await?;
        Ok(Registered {
            session_id,
            last_stored_seq,
            heartbeat_interval_ms: self.cfg.heartbeat_interval_ms,
        })
    }

    /// Attaches a session stream; returns its sequence number.
    pub fn open_session(
        &self,
        gateway: &NodeId,
        session_id: &str,
        tx: SessionTx,
    ) -> Result<u64, CoreError> {
        let mut inner = self.lock()?;
        let seq = inner.next_session_seq;
        inner.next_session_seq += 1;
        let g = inner.gateways.get_mut(gateway).ok_or_else(|| {
            CoreError::FailedPrecondition(format!(
                "gateway {gateway} has not registered: call Register first"
            ))
        })?;
        if g.session_id.as_deref() != Some(session_id) {
            return Err(CoreError::FailedPrecondition(format!(
                "session {session_id:?} is not the current registration of gateway {gateway}: register again"
            )));
        }
        g.online = true;
        g.tx = Some(tx);
        g.session_seq = seq;
        g.last_seen = Some(Instant::now());
        g.last_seen_wall_ms = wall_ms();
        // Commands sent on an earlier session are answered there or never.
        inner.pending.retain(|_, (_, gw)| gw != gateway);
        self.answered.notify_waiters();
        let now = wall_ms();
        if let Some(a) = inner.alarms.clear("gateway_lost", gateway.as_str(), now)? {
            tracing::info!(gateway_id = %gateway, alarm_id = a.id, "gateway back online");
        }
        // Bring the gateway's actors to the desired state: curves, then setpoints.
        let actors: Vec<ActorInfo> = inner.gateways[gateway].record.actors.clone();
        for a in actors {
            if let Some(group) = &a.group
                && let Some(cv) = inner.curves.current(group).cloned()
            {
                send_command(
                    &mut inner,
                    gateway,
                    &a.id,
                    Action::SetCurve {
                        curve: cv.curve,
                        curve_version: cv.version,
                    },
                )?;
            }
            if let Some(sp) = inner.nodes.get(&a.id).and_then(|n| n.commanded_c) {
                send_command(
                    &mut inner,
                    gateway,
                    &a.id,
                    Action::SetSupplyTemp { supply_temp_c: sp },
                )?;
            }
        }
        self.persist_version(&inner)?;
        tracing::info!(gateway_id = %gateway, session = seq, "session open");
        Ok(seq)
    }

    /// Saves the round's decisions, and now and then what was learned (the
    /// next flush makes them durable).
    fn save_plan_memory(&self, inner: &mut Inner, now: i64) -> Result<(), CoreError> {
        let recent = RecentMemory {
            saved_at_ms: now,
            dispatch: inner.schedule.dispatch_memory(),
            trims_k: inner
                .nodes
                .values()
                .filter(|n| n.trim_k != 0.0)
                .map(|n| (n.info.id.clone(), n.trim_k))
                .collect(),
        };
        self.meta.put_json(RECENT_KEY, &recent)?;
        if inner
            .learned_saved_ms
            .is_none_or(|t| now - t >= LEARNED_SAVE_EVERY_MS || now < t)
        {
            self.meta.put_json(LEARNED_KEY, &inner.schedule.learned())?;
            inner.learned_saved_ms = Some(now);
        }
        Ok(())
    }

    fn persist_version(&self, inner: &Inner) -> Result<(), CoreError> {
        self.meta
            .insert(b"next_version", inner.next_version.to_be_bytes())?;
        Ok(())
    }

    pub fn touch(&self, gateway: &NodeId) {
        if let Ok(mut inner) = self.lock()
            && let Some(g) = inner.gateways.get_mut(gateway)
        {
            g.last_seen = Some(Instant::now());
            g.last_seen_wall_ms = wall_ms();
        }
    }

    /// True if the actor is registered to this gateway.
    pub fn hosts(&self, gateway: &NodeId, actor: &NodeId) -> bool {
        self.lock()
            .map(|inner| {
                inner
                    .nodes
                    .get(actor)
                    .is_some_and(|n| &n.gateway == gateway)
            })
            .unwrap_or(false)
    }

    /// Stores a batch durably, then updates the live state. Returns the sequence to acknowledge.
    pub async fn ingest_batch(
        &self,
        gateway: &NodeId,
        batch: TelemetryBatch,
    ) -> Result<u64, CoreError> {
        let samples = batch.sample_count() as u64;
        let outcome = self
            .ingest
            .store(gateway.clone(), batch.clone())
            .await
            .map_err(|e| CoreError::Unavailable(e.to_string()))?;
        let mut inner = self.lock()?;
        let now = wall_ms();
        let last = match outcome {
            Outcome::Duplicate { last_stored } => {
                if let Some(g) = inner.gateways.get_mut(gateway) {
                    g.stats.duplicates_dropped += 1;
                }
                return Ok(last_stored);
            }
            Outcome::Stored { last_stored } => last_stored,
            Outcome::StoredAfterGap {
                last_stored,
                missing_from,
            } => {
                tracing::error!(gateway_id = %gateway, missing_from, got = last_stored, "telemetry sequence gap");
                if let Some(g) = inner.gateways.get_mut(gateway) {
                    g.stats.sequence_gaps += 1;
                }
                inner.alarms.raise(
                    "telemetry_gap",
                    gateway.as_str(),
                    Severity::Warning,
                    format!(
                        "gateway {gateway} skipped batches {missing_from}..{}",
                        last_stored - 1
                    ),
                    now,
                )?;
                last_stored
            }
        };
        if let Err(e) = self.forecasts.observe(&batch) {
            tracing::warn!(gateway_id = %gateway, error = %e, "outdoor temperature not kept for forecast scoring");
        }
        if let Some(g) = inner.gateways.get_mut(gateway) {
            g.stats.batches_stored += 1;
            g.stats.samples_stored += samples;
            g.stats.last_stored_seq = last;
            g.last_seen = Some(Instant::now());
            g.last_seen_wall_ms = now;
        }
        let newest_ms = batch.snapshots.iter().map(|s| s.time_ms).max();
        for snap in batch.snapshots {
            let Some(node) = inner.nodes.get(&snap.actor_id) else {
                continue;
            };
            let (kind, live) = (node.info.kind, snap.time_ms >= node.time_ms);
            let Inner { watch, alarms, .. } = &mut *inner;
            watch.observe(alarms, kind, &snap, live, now)?;
            let Some(node) = inner.nodes.get_mut(&snap.actor_id) else {
                continue;
            };
            if !live {
                continue; // replayed older data: stored, but not the live state
            }
            let kind = node.info.kind;
            let prev_mode = node.mode;
            node.mode = Some(snap.mode);
            node.time_ms = snap.time_ms;
            node.readings = snap.readings;
            let room = node.get(Metric::RoomTempC);
            let id = snap.actor_id.to_string();
            if kind == NodeKind::Building {
                match room.and_then(room_alarm_edge) {
                    Some(true) => {
                        let t = room.unwrap_or(f64::NAN);
                        inner.alarms.raise(
                            "room_below_18c",
                            &id,
                            Severity::Warning,
                            format!("room at {t:.1} °C in building {id}"),
                            now,
                        )?;
                    }
                    Some(false) => {
                        inner.alarms.clear("room_below_18c", &id, now)?;
                    }
                    None => {}
                }
            } else {
                let since = node.fallback_since_ms;
                let step = fallback_step(prev_mode, snap.mode, since, snap.time_ms);
                node.fallback_since_ms = step.since_ms;
                if step.clear {
                    inner.alarms.clear("local_fallback", &id, now)?;
                }
                if let Some(severity) = step.raise {
                    inner.alarms.raise(
                        "local_fallback",
                        &id,
                        severity,
                        format!("{id} runs in {:?} mode", snap.mode),
                        now,
                    )?;
                }
            }
        }
        inner.watch.persist()?;
        if let Some(t) = newest_ms
            && inner
                .leak_saved_ms
                .is_none_or(|s| t - s >= LEAK_SAVE_EVERY_MS || t < s)
        {
            self.meta.put_json(LEAK_KEY, &inner.watch.leak_memory())?;
            inner.leak_saved_ms = Some(t);
        }
        Ok(last)
    }

    /// Saves what must outlive this process and is not saved as it goes
    /// (the leak detector's memory), for a clean stop; the caller flushes.
    pub fn save_on_stop(&self) -> Result<(), CoreError> {
        let inner = self.lock()?;
        self.meta.put_json(LEAK_KEY, &inner.watch.leak_memory())?;
        Ok(())
    }

    /// The ledger of hours below 18 °C: days `from..=to` (local day numbers,
    /// either open) of buildings whose id starts with `prefix`; at most
    /// `MAX_LEDGER_ROWS + 1` rows (one more than an answer holds, to tell
    /// that it was truncated).
    pub fn ledger(
        &self,
        from: Option<i64>,
        to: Option<i64>,
        prefix: &str,
    ) -> Result<Vec<crate::ledger::LedgerDay>, CoreError> {
        Ok(self
            .lock()?
            .watch
            .ledger
            .query(from, to, prefix, MAX_LEDGER_ROWS + 1))
    }

    pub fn command_result(&self, gateway: &NodeId, result: CommandResult) {
        if let Ok(mut inner) = self.lock()
            && inner
                .pending
                .get(&result.command_id)
                .is_some_and(|(_, gw)| gw == gateway)
        {
            inner.pending.remove(&result.command_id);
        }
        self.answered.notify_waiters();
        match &result.outcome {
            CommandOutcome::Accepted => {
                tracing::debug!(gateway_id = %gateway, command_id = %result.command_id, "command accepted")
            }
            CommandOutcome::Rejected { reason } => {
                tracing::warn!(gateway_id = %gateway, command_id = %result.command_id, %reason, "command rejected by gateway");
                if let Ok(mut inner) = self.lock() {
                    let _ = inner.alarms.raise(
                        "command_rejected",
                        gateway.as_str(),
                        Severity::Warning,
                        format!("command {} rejected: {reason}", result.command_id),
                        wall_ms(),
                    );
                }
            }
        }
    }

    /// A gateway's complete set of edge alarms: raises what is new, clears what
    /// is gone, for this gateway and its nodes. Alarms about nodes the gateway
    /// does not host are ignored (logged).
    pub fn edge_alarms(&self, gateway: &NodeId, set: Vec<proto::EdgeAlarm>) {
        let Ok(mut inner) = self.lock() else { return };
        let now = wall_ms();
        let own = |inner: &Inner, node: &str| {
            node == gateway.as_str()
                || NodeId::new(node)
                    .ok()
                    .and_then(|id| inner.nodes.get(&id))
                    .is_some_and(|n| &n.gateway == gateway)
        };
        let mut wanted = Vec::new();
        for a in set {
            if !own(&inner, a.node_id.as_str()) {
                tracing::warn!(gateway_id = %gateway, node_id = %a.node_id, kind = a.kind.name(),
                    "edge alarm about a node this gateway does not host ignored");
                continue;
            }
            wanted.push((
                a.kind.name(),
                a.node_id.to_string(),
                a.metric.map(|m| m.name().to_string()),
                a.message,
            ));
        }
        for kind in proto::EdgeAlarmKind::ALL {
            let kind = kind.name();
            for (node, metric) in inner.alarms.active_of_kind(kind) {
                let still = wanted
                    .iter()
                    .any(|(k, n, m, _)| *k == kind && *n == node && *m == metric);
                if !still && own(&inner, &node) {
                    tracing::info!(gateway_id = %gateway, node_id = %node, kind, metric = metric.as_deref().unwrap_or(""), "edge alarm cleared");
                    if let Err(e) = inner.alarms.clear_on(kind, &node, metric.as_deref(), now) {
                        tracing::error!(error = %e, "cannot store an alarm");
                    }
                }
            }
        }
        for (kind, node, metric, message) in wanted {
            let severity = if kind == "outbox_condensed" {
                Severity::Warning
            } else {
                Severity::Critical
            };
            match inner
                .alarms
                .raise_on(kind, &node, metric.as_deref(), severity, message, now)
            {
                Ok(Some(a)) => {
                    tracing::warn!(gateway_id = %gateway, node_id = %node, kind, metric = metric.as_deref().unwrap_or(""), message = %a.message, "edge alarm raised")
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "cannot store an alarm"),
            }
        }
    }

    /// A session stream ended; the gateway is lost unless a newer session replaced it.
    pub fn session_ended(&self, gateway: &NodeId, session_seq: u64, why: &str) {
        let Ok(mut inner) = self.lock() else { return };
        let Some(g) = inner.gateways.get_mut(gateway) else {
            return;
        };
        if g.session_seq != session_seq || !g.online {
            return;
        }
        g.online = false;
        g.tx = None;
        // Its commands in flight will not be answered on this session.
        inner.pending.retain(|_, (_, gw)| gw != gateway);
        self.answered.notify_waiters();
        let msg = format!("gateway {gateway} lost: {why}");
        tracing::error!(gateway_id = %gateway, reason = why, "gateway lost");
        let _ = inner.alarms.raise(
            "gateway_lost",
            gateway.as_str(),
            Severity::Critical,
            msg,
            wall_ms(),
        );
    }

    /// Marks gateways silent for longer than the timeout as lost. Meant to
    /// run every [`LIVENESS_PERIOD`]: when it ran late (a long planning
    /// round, a starved machine), the optimizer was not reading its sessions
    /// either, so the delay is not held against the gateways.
    pub fn check_liveness(&self) {
        let now = Instant::now();
        let lost: Vec<(NodeId, u64)> = match self.lock() {
            Ok(mut inner) => {
                let stall = own_stall(inner.last_liveness_check, now, LIVENESS_PERIOD);
                inner.last_liveness_check = Some(now);
                if !stall.is_zero() {
                    for g in inner.gateways.values_mut().filter(|g| g.online) {
                        g.last_seen = g.last_seen.map(|t| held(t, stall, now));
                    }
                    if stall > self.cfg.heartbeat_timeout / 4 {
                        tracing::warn!(
                            stall_ms = stall.as_millis() as u64,
                            "optimizer stalled: gateways' silence during the stall not counted"
                        );
                    }
                }
                inner
                    .gateways
                    .values()
                    .filter(|g| {
                        g.online
                            && g.last_seen.is_none_or(|t| {
                                now.saturating_duration_since(t) > self.cfg.heartbeat_timeout
                            })
                    })
                    .map(|g| (g.record.gateway_id.clone(), g.session_seq))
                    .collect()
            }
            Err(_) => return,
        };
        for (gw, seq) in lost {
            self.session_ended(&gw, seq, "no message within the heartbeat timeout");
        }
    }

    /// Runs a planning round if network time (the newest reading of any
    /// node) has advanced by an interval (or a curve changed), and sends the
    /// setpoints that moved.
    pub fn plan(&self) -> Result<usize, CoreError> {
        let now = self.network_time_ms();
        if now <= 0 {
            return Ok(0);
        }
        self.plan_at(now)
    }

    /// The version the next command will carry: [`Core::commands_answered`]
    /// waits for the commands from this one on.
    pub fn next_command_version(&self) -> u64 {
        self.lock().map(|i| i.next_version).unwrap_or(0)
    }

    /// Commands from `version` on sent and not answered yet.
    pub fn pending_commands(&self, version: u64) -> usize {
        self.lock()
            .map(|i| i.pending.values().filter(|(v, _)| *v >= version).count())
            .unwrap_or(0)
    }

    /// Waits until every command from `version` on is answered (accepted or
    /// rejected) or its gateway's session has ended, at most `limit` (real
    /// time). Returns how many are still unanswered.
    pub async fn commands_answered(&self, version: u64, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let answered = self.answered.notified();
            tokio::pin!(answered);
            // Registered before the check: an answer in between is not missed.
            answered.as_mut().enable();
            let left = self.pending_commands(version);
            if left == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, answered).await.is_err() {
                return self.pending_commands(version);
            }
        }
    }

    /// Runs a planning round at network time `now` (Unix ms) if an interval
    /// has passed since the last one (or a curve changed), and sends the
    /// setpoints that moved. On the lockstep clock `now` is the step's time.
    pub fn plan_at(&self, now: i64) -> Result<usize, CoreError> {
        let mut inner = self.lock()?;
        let due = match inner.last_plan_ms {
            None => true,
            Some(t) => now - t >= self.cfg.plan_interval_ms || inner.replan,
        };
        if !due {
            return Ok(0);
        }
        let dt_h = inner
            .last_plan_ms
            .map_or(0.0, |t| ((now - t) as f64 / 3.6e6).clamp(0.0, 1.0));
        inner.last_plan_ms = Some(now);
        inner.replan = false;
        // The newest forecast loaded (over the gRPC API or from a file) is the
        // weather ahead; without one the schedule persists the measured outdoor
        // temperature.
        let forecast: Vec<WeatherAhead> = self
            .forecasts
            .ahead(now, FORECAST_HORIZON_MS)
            .iter()
            .map(|p| WeatherAhead {
                time_ms: p.time_ms,
                outdoor_c: p.outdoor_c,
                solar_w_m2: p.solar_w_m2,
            })
            .collect();
        if !forecast.is_empty() {
            inner.schedule.set_forecast(forecast);
        }
        if let Some(m) = inner.recent_saved.take() {
            let age_ms = now - m.saved_at_ms;
            if age_ms.abs() <= crate::schedule::RESTORE_DISPATCH_WITHIN_MS {
                inner.schedule.restore_dispatch(m.dispatch);
                for (id, trim_k) in m.trims_k {
                    if let Some(n) = inner.nodes.get_mut(&id)
                        && trim_k.is_finite()
                    {
                        n.trim_k = trim_k;
                    }
                }
                tracing::info!(age_ms, "planner carries on from the last round saved");
            } else {
                tracing::info!(
                    age_ms,
                    "planner's last round saved is too old: dispatching afresh"
                );
            }
        }

        // Coldest monitored room per substation.
        let mut coldest: BTreeMap<NodeId, f64> = BTreeMap::new();
        for n in inner.nodes.values() {
            if let (Some(parent), Some(t)) = (&n.info.parent, n.get(Metric::RoomTempC)) {
                let e = coldest.entry(parent.clone()).or_insert(f64::INFINITY);
                *e = e.min(t);
            }
        }
        let fixed = self.cfg.mode == PlanMode::FixedCurve;
        // Raised ahead of a shortage the last round foresaw.
        let room_target_c = inner.schedule.room_target_c();
        // The baseline's curve knows no sun.
        let sun_k = if fixed {
            0.0
        } else {
            inner.schedule.sun_ahead_k(now)
        };
        let mut plans: Vec<(NodeId, NodeId, f64, f64)> = Vec::new();
        let mut sub_obs: Vec<SubstationObs> = Vec::new();
        for n in inner
            .nodes
            .values()
            .filter(|n| n.info.kind == NodeKind::Substation)
        {
            let cv = n.info.group.as_ref().and_then(|g| inner.curves.current(g));
            let input = SubstationInput {
                outdoor_c: n.get(Metric::OutdoorTempC),
                sun_k,
                // The baseline has no room feedback and no trims.
                coldest_room_c: if fixed {
                    None
                } else {
                    coldest.get(&n.info.id).copied()
                },
                target_room_c: room_target_c,
                limits_c: n.info.limits_c,
                trim_k: if fixed { 0.0 } else { n.trim_k },
            };
            let plan = cv.and_then(|cv| planner::plan_substation(&cv.curve, &input, dt_h));
            if let Some(p) = &plan {
                plans.push((n.gateway.clone(), n.info.id.clone(), p.setpoint_c, p.trim_k));
            }
            sub_obs.push(SubstationObs {
                id: n.info.id.clone(),
                outdoor_c: n.get(Metric::OutdoorTempC),
                heat_w: n.get(Metric::HeatW),
                flow_kg_s: n.get(Metric::FlowKgS),
                diff_pressure_pa: n.get(Metric::DiffPressurePa),
                valve_position: n.get(Metric::ValvePosition),
                setpoint: plan
                    .as_ref()
                    .zip(cv)
                    .map(|(p, cv)| (p.setpoint_c, cv.curve.clone())),
            });
        }
        let tripped_alarms: Vec<String> = inner
            .alarms
            .active_of_kind("plant_trip")
            .into_iter()
            .map(|(node, _)| node)
            .collect();
        let plant_obs: Vec<(NodeId, PlantObs)> = inner
            .nodes
            .values()
            .filter(|n| n.info.kind == NodeKind::Plant)
            .map(|n| {
                (
                    n.gateway.clone(),
                    PlantObs {
                        id: n.info.id.clone(),
                        online: inner.gateways.get(&n.gateway).is_some_and(|g| g.online),
                        outdoor_c: n.get(Metric::OutdoorTempC),
                        heat_w: n.get(Metric::HeatW),
                        head_pa: n.get(Metric::DiffPressurePa),
                        supply_temp_c: n.get(Metric::SupplyTempC),
                        return_temp_c: n.get(Metric::ReturnTempC),
                        flow_kg_s: n.get(Metric::FlowKgS),
                        supply_setpoint_c: n.get(Metric::SetpointC),
                        pump_running: n.get(Metric::PumpRunning).map(|r| r >= 0.5),
                        trip_alarm: tripped_alarms.iter().any(|t| t == n.info.id.as_str()),
                        curve: n.info.default_curve.clone(),
                        limits_c: n.info.limits_c,
                    },
                )
            })
            .collect();
        let gateway_of: BTreeMap<NodeId, NodeId> = plant_obs
            .iter()
            .map(|(gw, p)| (p.id.clone(), gw.clone()))
            .collect();
        let plant_obs: Vec<PlantObs> = plant_obs.into_iter().map(|(_, p)| p).collect();
        let mut plant_actions: Vec<(NodeId, NodeId, Action)> = Vec::new();
        if fixed {
            for o in inner.schedule.fixed_curve(now, &plant_obs) {
                if let Some(gw) = gateway_of.get(&o.plant) {
                    plans.push((gw.clone(), o.plant, o.supply_temp_c, 0.0));
                }
            }
        } else {
            let out = inner
                .schedule
                .round(now, self.cfg.plan_interval_ms, &sub_obs, &plant_obs);
            for o in out.orders {
                let Some(gw) = gateway_of.get(&o.plant) else {
                    continue;
                };
                if let Some(a) = o.dispatch {
                    plant_actions.push((gw.clone(), o.plant.clone(), a));
                }
                plans.push((gw.clone(), o.plant, o.supply_temp_c, 0.0));
            }
            if out.max_unserved_w > 0.0 {
                inner.alarms.raise(
                    "supply_short",
                    "optimizer",
                    Severity::Critical,
                    format!(
                        "the available plants cannot make the forecast load: {:.1} MW short at worst over the horizon",
                        out.max_unserved_w / 1.0e6
                    ),
                    now,
                )?;
            } else {
                inner.alarms.clear("supply_short", "optimizer", now)?;
            }
        }
        for (gw, actor, action) in plant_actions {
            if !inner.gateways.get(&gw).is_some_and(|g| g.online) {
                continue;
            }
            match send_command(&mut inner, &gw, &actor, action.clone()) {
                // The trip detectors judge the plant against the order in
                // force: turned down or stopped on purpose is no trip.
                Ok(_) => inner.watch.dispatched(&actor, &action, now),
                Err(e) => tracing::warn!(actor_id = %actor, error = %e, "dispatch not sent"),
            }
        }
        let mut sent = 0;
        for (gw, actor, sp, trim) in plans {
            let Some(node) = inner.nodes.get_mut(&actor) else {
                continue;
            };
            node.trim_k = trim;
            let changed = node.commanded_c.is_none_or(|c| (c - sp).abs() >= 0.1);
            if !changed {
                continue;
            }
            let online = inner.gateways.get(&gw).is_some_and(|g| g.online);
            if !online {
                continue;
            }
            match send_command(
                &mut inner,
                &gw,
                &actor,
                Action::SetSupplyTemp { supply_temp_c: sp },
            ) {
                Ok(_) => {
                    if let Some(node) = inner.nodes.get_mut(&actor) {
                        node.commanded_c = Some(sp);
                    }
                    sent += 1;
                }
                Err(e) => tracing::warn!(actor_id = %actor, error = %e, "setpoint not sent"),
            }
        }
        self.persist_version(&inner)?;
        if !fixed {
            self.save_plan_memory(&mut inner, now)?;
        }
        if sent > 0 {
            tracing::info!(network_time_ms = now, setpoints = sent, "planning round");
        }
        Ok(sent)
    }

    // ---- control room -------------------------------------------------

    /// The weather forecast the planner uses from the next round on (replaces
    /// the previous one; without one it persists the measured outdoor temperature).
    pub fn set_weather_ahead(&self, points: Vec<WeatherAhead>) -> Result<(), CoreError> {
        let mut inner = self.lock()?;
        inner.schedule.set_forecast(points);
        inner.replan = true;
        Ok(())
    }

    /// The latest plan over the horizon (none before the first planning round).
    pub fn plan_view(&self) -> Result<Option<PlanView>, CoreError> {
        Ok(self.lock()?.schedule.view().cloned())
    }

    /// The planning mode.
    pub fn mode(&self) -> PlanMode {
        self.cfg.mode
    }

    pub fn network(&self) -> Result<NetworkView, CoreError> {
        let inner = self.lock()?;
        let gateways = inner
            .gateways
            .values()
            .map(|g| GatewayView {
                gateway_id: g.record.gateway_id.clone(),
                online: g.online,
                instance_id: g.record.instance_id.clone(),
                last_seen_ms: g.last_seen_wall_ms,
                registrations: g.record.registrations,
                stats: g.stats.clone(),
            })
            .collect();
        let nodes = inner
            .nodes
            .values()
            .map(|n| NodeView {
                info: n.info.clone(),
                gateway: n.gateway.clone(),
                online: inner.gateways.get(&n.gateway).is_some_and(|g| g.online),
                mode: n.mode,
                time_ms: n.time_ms,
                readings: n.readings.clone(),
                commanded_c: n.commanded_c,
            })
            .collect();
        Ok(NetworkView {
            gateways,
            nodes,
            active_alarms: inner.alarms.active_count(),
        })
    }

    pub fn alarms(&self, include_cleared: bool) -> Result<Vec<Alarm>, CoreError> {
        Ok(self.lock()?.alarms.list(include_cleared))
    }

    pub async fn ack_alarm(&self, id: u64, user: &str) -> Result<Alarm, CoreError> {
        if user.trim().is_empty() {
            return Err(CoreError::InvalidArgument(
                "user: missing; say who acknowledges".into(),
            ));
        }
        let a = self
            .lock()?
            .alarms
            .acknowledge(id, user, wall_ms())
            .map_err(|e| match e {
                AckError::Unknown(_) => CoreError::NotFound(e.to_string()),
                AckError::Cleared(_) => CoreError::FailedPrecondition(e.to_string()),
                AckError::Store(s) => CoreError::from(s),
            })?;
        self.store.flush_async().await?;
        Ok(a)
    }

    /// Limits every substation of a group accepts (their intersection).
    fn group_limits(inner: &Inner, group: &str) -> Option<(f64, f64)> {
        inner
            .nodes
            .values()
            .filter(|n| n.info.group.as_deref() == Some(group))
            .map(|n| n.info.limits_c)
            .reduce(|a, b| (a.0.max(b.0), a.1.min(b.1)))
    }

    pub fn curve(&self, group: &str) -> Result<CurveVersion, CoreError> {
        self.lock()?.curves.current(group).cloned().ok_or_else(|| {
            CoreError::NotFound(format!("group {group:?} has no curve (unknown group?)"))
        })
    }

    pub fn curve_history(&self, group: &str) -> Result<Vec<CurveVersion>, CoreError> {
        let h = self.lock()?.curves.history(group);
        if h.is_empty() {
            return Err(CoreError::NotFound(format!(
                "group {group:?} has no curve (unknown group?)"
            )));
        }
        Ok(h)
    }

    /// Validates and stores a new curve version, then sends it to the group's substations.
    pub async fn set_curve(
        &self,
        group: &str,
        curve: Option<&v1::SupplyCurve>,
        author: &str,
        reason: &str,
    ) -> Result<CurveVersion, CoreError> {
        if author.trim().is_empty() {
            return Err(CoreError::InvalidArgument(
                "author: missing; say who changes the curve".into(),
            ));
        }
        if reason.trim().is_empty() {
            return Err(CoreError::InvalidArgument(
                "reason: missing; say why the curve changes".into(),
            ));
        }
        let cv = {
            let mut inner = self.lock()?;
            let limits = Self::group_limits(&inner, group)
                .ok_or_else(|| CoreError::NotFound(format!("group {group:?} has no substation")))?;
            let curve = proto::convert::supply_curve("curve", curve, limits)?;
            let cv = inner.curves.set(group, curve, author, reason, wall_ms())?;
            inner.replan = true;
            cv
        };
        // The new version is durable before any actor runs it: a crash now
        // cannot leave actors on a curve the history does not hold.
        self.store.flush_async().await?;
        {
            let mut inner = self.lock()?;
            // The group's current curve, not necessarily this call's: of two
            // changes racing here, both send the later one, so every actor
            // ends on the newest version whatever order they finish in.
            if let Some(current) = inner.curves.current(group).cloned() {
                let targets: Vec<(NodeId, NodeId)> = inner
                    .nodes
                    .values()
                    .filter(|n| n.info.group.as_deref() == Some(group))
                    .map(|n| (n.gateway.clone(), n.info.id.clone()))
                    .collect();
                for (gw, actor) in targets {
                    if inner.gateways.get(&gw).is_some_and(|g| g.online)
                        && let Err(e) = send_command(
                            &mut inner,
                            &gw,
                            &actor,
                            Action::SetCurve {
                                curve: current.curve.clone(),
                                curve_version: current.version,
                            },
                        )
                    {
                        tracing::warn!(actor_id = %actor, error = %e, "curve not sent; it will be on reconnect");
                    }
                }
            }
            self.persist_version(&inner)?;
        }
        tracing::info!(
            group,
            version = cv.version,
            author,
            reason,
            "supply curve changed"
        );
        Ok(cv)
    }

    /// Sends a manual override (or its removal) to a plant or substation actor.
    pub fn set_override(
        &self,
        node: &str,
        supply_temp_c: Option<f64>,
        duration_s: u32,
        author: &str,
    ) -> Result<String, CoreError> {
        if author.trim().is_empty() {
            return Err(CoreError::InvalidArgument(
                "author: missing; say who overrides".into(),
            ));
        }
        let node_id = proto::convert::node_id("node_id", node)?;
        let mut inner = self.lock()?;
        let n = inner
            .nodes
            .get(&node_id)
            .ok_or_else(|| CoreError::NotFound(format!("node {node} is not registered")))?;
        if n.info.kind == NodeKind::Building {
            return Err(CoreError::InvalidArgument(format!(
                "node_id: {node} is a building; override its substation"
            )));
        }
        let gw = n.gateway.clone();
        let action = match supply_temp_c {
            None => Action::ClearOverride,
            Some(t) => {
                let t = proto::convert::in_range("supply_temp_c", t, n.info.limits_c)?;
                if !(60..=7 * 24 * 3600).contains(&duration_s) {
                    return Err(CoreError::InvalidArgument(format!(
                        "duration_s: {duration_s} is out of range: allowed 60..604800 s"
                    )));
                }
                if n.time_ms <= 0 {
                    return Err(CoreError::Unavailable(format!(
                        "node {node} has sent no telemetry yet; its network time is unknown"
                    )));
                }
                Action::SetOverride {
                    supply_temp_c: t,
                    expires_at_ms: n.time_ms + i64::from(duration_s) * 1000,
                }
            }
        };
        if !inner.gateways.get(&gw).is_some_and(|g| g.online) {
            return Err(CoreError::Unavailable(format!(
                "gateway {gw} of node {node} is offline; override not sent"
            )));
        }
        let id = send_command(&mut inner, &gw, &node_id, action)?;
        self.persist_version(&inner)?;
        tracing::info!(node_id = %node_id, command_id = %id, author, "override sent");
        Ok(id)
    }
}

impl GatewayLive {
    /// A known gateway without a session.
    fn offline(record: GatewayRecord, stats: IngestStats) -> Self {
        Self {
            record,
            online: false,
            last_seen: None,
            last_seen_wall_ms: 0,
            session_id: None,
            session_seq: 0,
            tx: None,
            stats,
        }
    }
}

impl NodeLive {
    fn new(info: ActorInfo, gateway: NodeId) -> Self {
        Self {
            info,
            gateway,
            mode: None,
            readings: Vec::new(),
            time_ms: 0,
            commanded_c: None,
            trim_k: 0.0,
            fallback_since_ms: None,
        }
    }
}

/// Queues a command on a gateway's session. Fails if the gateway is offline or its queue is full.
fn send_command(
    inner: &mut Inner,
    gateway: &NodeId,
    actor: &NodeId,
    action: Action,
) -> Result<String, CoreError> {
    let g = inner
        .gateways
        .get(gateway)
        .ok_or_else(|| CoreError::NotFound(format!("gateway {gateway} is not registered")))?;
    let tx =
        g.tx.as_ref()
            .ok_or_else(|| CoreError::Unavailable(format!("gateway {gateway} is offline")))?;
    let version = inner.next_version;
    let command_id = format!("{gateway}-{version}");
    let cmd = Command {
        command_id: command_id.clone(),
        actor_id: actor.clone(),
        version,
        action,
    };
    let msg = v1::OptimizerMessage {
        body: Some(v1::optimizer_message::Body::Command((&cmd).into())),
    };
    tx.try_send(Ok(msg)).map_err(|_| {
        CoreError::Unavailable(format!(
            "gateway {gateway} is not keeping up: its command queue is full"
        ))
    })?;
    inner.next_version += 1;
    if inner.pending.len() >= MAX_PENDING_COMMANDS
        && let Some(oldest) = inner
            .pending
            .iter()
            .min_by_key(|(_, (v, _))| *v)
            .map(|(id, _)| id.clone())
    {
        inner.pending.remove(&oldest);
    }
    inner
        .pending
        .insert(command_id.clone(), (version, gateway.clone()));
    Ok(command_id)
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn a_node_waiting_for_its_first_setpoint_is_no_fallback_until_the_grace_is_over() {
        let min = 60_000;
        // A node that registers on its local curve waits...
        let s = fallback_step(None, Mode::Fallback, None, 0);
        assert_eq!((s.clear, s.raise, s.since_ms), (false, None, Some(0)));
        let s = fallback_step(Some(Mode::Fallback), Mode::Fallback, s.since_ms, 10 * min);
        assert_eq!((s.raise, s.since_ms), (None, Some(0)));
        // ...and is taken over in time: cleared (nothing raised), no wait left.
        let t = fallback_step(Some(Mode::Fallback), Mode::Optimizer, s.since_ms, 11 * min);
        assert_eq!((t.clear, t.raise, t.since_ms), (true, None, None));
        // Not taken over within the grace: raised once, then not again.
        let late = fallback_step(
            Some(Mode::Fallback),
            Mode::Fallback,
            s.since_ms,
            FALLBACK_START_GRACE_MS,
        );
        assert_eq!((late.raise, late.since_ms), (Some(Severity::Info), None));
        let after = fallback_step(Some(Mode::Fallback), Mode::Fallback, None, 60 * min);
        assert_eq!(after.raise, None);
        // Falling back from the optimizer's control is raised at once.
        let fell = fallback_step(Some(Mode::Optimizer), Mode::Fallback, None, 0);
        assert_eq!(fell.raise, Some(Severity::Info));
        assert_eq!(
            fallback_step(Some(Mode::Override), Mode::Fallback, None, 0).raise,
            Some(Severity::Info)
        );
        // Safe mode is critical at once, from the start too, and only once.
        for prev in [None, Some(Mode::Optimizer), Some(Mode::Fallback)] {
            let s = fallback_step(prev, Mode::Safe, Some(0), 0);
            assert_eq!(
                (s.clear, s.raise),
                (true, Some(Severity::Critical)),
                "{prev:?}"
            );
        }
        assert_eq!(
            fallback_step(Some(Mode::Safe), Mode::Safe, None, 0).raise,
            None
        );
        // Under control from the first report: nothing to do.
        let s = fallback_step(None, Mode::Optimizer, None, 0);
        assert_eq!((s.clear, s.raise), (true, None));
        let s = fallback_step(Some(Mode::Optimizer), Mode::Optimizer, None, 0);
        assert_eq!((s.clear, s.raise), (false, None));
    }

    fn actor(id: &str, kind: NodeKind) -> ActorInfo {
        ActorInfo {
            id: NodeId::new(id).unwrap(),
            kind,
            parent: None,
            group: None,
            limits_c: (20.0, 95.0),
            default_curve: None,
        }
    }

    fn record(gw: &str, actors: &[&str]) -> GatewayRecord {
        GatewayRecord {
            gateway_id: NodeId::new(gw).unwrap(),
            instance_id: "test".into(),
            actors: actors
                .iter()
                .map(|a| actor(a, NodeKind::Building))
                .collect(),
            registrations: 0,
        }
    }

    /// A core on `store` with its own ingest writer and the default config.
    fn open_core(store: &Store) -> Core {
        Core::open(store, Ingest::start(store).unwrap(), CoreConfig::default()).unwrap()
    }

    fn node_ids(core: &Core) -> Vec<(String, String)> {
        core.network()
            .unwrap()
            .nodes
            .iter()
            .map(|n| (n.info.id.to_string(), n.gateway.to_string()))
            .collect()
    }

    /// What a lockstep step waits for: the commands of its round, answered
    /// or with their session gone; not older ones, never longer than asked.
    #[tokio::test]
    async fn a_round_waits_for_its_own_commands_to_be_answered() {
        let dir = crate::testing::scratch_dir("core-answered");
        let store = Store::open(&dir, &crate::testing::store_config()).unwrap();
        let core = open_core(&store);
        let gw = NodeId::new("g1").unwrap();
        let reg = core
            .register(GatewayRecord {
                actors: vec![actor("s1", NodeKind::Substation)],
                ..record("g1", &[])
            })
            .await
            .unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        core.open_session(&gw, &reg.session_id, tx).unwrap();
        let snapshot = model::ActorSnapshot {
            actor_id: NodeId::new("s1").unwrap(),
            time_ms: 1_000_000_000,
            mode: Mode::Fallback,
            readings: Vec::new(),
        };
        core.ingest_batch(
            &gw,
            TelemetryBatch {
                seq: 1,
                snapshots: vec![snapshot],
            },
        )
        .await
        .unwrap();
        let answer = |id: String| CommandResult {
            command_id: id,
            outcome: CommandOutcome::Accepted,
        };
        let limit = Duration::from_millis(50);

        let old = core.set_override("s1", Some(70.0), 600, "test").unwrap();
        let from = core.next_command_version();
        let new = core.set_override("s1", Some(71.0), 600, "test").unwrap();
        assert_eq!(core.pending_commands(from), 1);
        // Unanswered: the wait gives up after its limit and says how many.
        let t0 = tokio::time::Instant::now();
        assert_eq!(core.commands_answered(from, limit).await, 1);
        assert!(t0.elapsed() >= limit);
        // Answered: at once, whatever older command is still out.
        let waiting = {
            let core = Arc::new(core);
            let c = core.clone();
            (
                tokio::spawn(async move { c.commands_answered(from, limit).await }),
                core,
            )
        };
        let (waiting, core) = waiting;
        core.command_result(&gw, answer(new));
        assert_eq!(waiting.await.unwrap(), 0);
        assert_eq!(core.pending_commands(0), 1, "the older one is still out");
        // An answer from another gateway does not count.
        let other = NodeId::new("g2").unwrap();
        core.command_result(&other, answer(old.clone()));
        assert_eq!(core.pending_commands(0), 1);
        // Its session ending settles it.
        let from = core.next_command_version();
        core.set_override("s1", None, 0, "test").unwrap();
        core.session_ended(&gw, 1, "test");
        assert_eq!(core.pending_commands(0), 0);
        assert_eq!(core.commands_answered(from, limit).await, 0);
        while rx.try_recv().is_ok() {}
        drop(core);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_gateway_registering_again_drops_only_the_actors_it_no_longer_hosts() {
        let dir = crate::testing::scratch_dir("core-reg");
        let cfg = crate::testing::store_config();
        let pair = |a: &str, g: &str| (a.to_string(), g.to_string());
        let store = Store::open(&dir, &cfg).unwrap();
        let core = open_core(&store);
        core.register(record("g1", &["a1", "a2", "a3"]))
            .await
            .unwrap();
        core.register(record("g2", &["b1"])).await.unwrap();
        // g1 now hosts a1 and a4: a2 and a3 are forgotten, g2's b1 stays.
        core.register(record("g1", &["a4", "a1"])).await.unwrap();
        let want = vec![pair("a1", "g1"), pair("a4", "g1"), pair("b1", "g2")];
        assert_eq!(node_ids(&core), want);
        // Another gateway cannot take over an actor g1 hosts.
        assert!(matches!(
            core.register(record("g2", &["b1", "a1"])).await,
            Err(CoreError::FailedPrecondition(_))
        ));
        assert_eq!(node_ids(&core), want);
        drop(core);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_restarted_optimizer_raises_a_fallback_at_once_for_a_node_it_controlled() {
        let dir = crate::testing::scratch_dir("core-fallback");
        let cfg = crate::testing::store_config();
        let gw = NodeId::new("g1").unwrap();
        let reg = || GatewayRecord {
            actors: vec![
                actor("s1", NodeKind::Substation),
                actor("s2", NodeKind::Substation),
            ],
            ..record("g1", &[])
        };
        let batch = |seq: u64, time_ms: i64, modes: [Mode; 2]| TelemetryBatch {
            seq,
            snapshots: ["s1", "s2"]
                .iter()
                .zip(modes)
                .map(|(id, mode)| model::ActorSnapshot {
                    actor_id: NodeId::new(*id).unwrap(),
                    time_ms,
                    mode,
                    readings: Vec::new(),
                })
                .collect(),
        };
        let fallbacks = |core: &Core| -> Vec<String> {
            core.alarms(false)
                .unwrap()
                .into_iter()
                .filter(|a| a.kind == "local_fallback")
                .map(|a| a.node_id)
                .collect()
        };
        let t0 = 1_000_000_000;
        {
            let store = Store::open(&dir, &cfg).unwrap();
            let ingest = Ingest::start(&store).unwrap();
            let core = Core::open(&store, ingest.clone(), CoreConfig::default()).unwrap();
            core.register(reg()).await.unwrap();
            // Both start on their local curves: no alarm yet; s1 is taken
            // over, s2 never is.
            core.ingest_batch(&gw, batch(1, t0, [Mode::Fallback; 2]))
                .await
                .unwrap();
            core.ingest_batch(
                &gw,
                batch(2, t0 + 60_000, [Mode::Optimizer, Mode::Fallback]),
            )
            .await
            .unwrap();
            assert!(fallbacks(&core).is_empty(), "{:?}", fallbacks(&core));
            drop(core);
            drop(store);
            ingest.close().await;
        }
        // Restarted: s1 reports its local curve again. It was under control
        // before the restart, so that is a fallback at once; s2 is still
        // only waiting (its grace not over).
        let store = Store::open(&dir, &cfg).unwrap();
        let core = open_core(&store);
        core.register(reg()).await.unwrap();
        core.ingest_batch(&gw, batch(3, t0 + 120_000, [Mode::Fallback; 2]))
            .await
            .unwrap();
        assert_eq!(fallbacks(&core), vec!["s1".to_string()]);
        // s2's grace runs out.
        core.ingest_batch(
            &gw,
            batch(
                4,
                t0 + 120_000 + FALLBACK_START_GRACE_MS,
                [Mode::Fallback; 2],
            ),
        )
        .await
        .unwrap();
        let mut got = fallbacks(&core);
        got.sort();
        assert_eq!(got, vec!["s1".to_string(), "s2".to_string()]);
        drop(core);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The leak detector's memory is saved every network hour as telemetry
    /// comes, so that even a crash (no clean stop) loses at most an hour.
    #[tokio::test]
    async fn the_leak_detectors_memory_is_saved_every_network_hour() {
        let dir = crate::testing::scratch_dir("core-leak-memory");
        let store = Store::open(&dir, &crate::testing::store_config()).unwrap();
        let core = open_core(&store);
        let gw = NodeId::new("g1").unwrap();
        core.register(GatewayRecord {
            actors: vec![actor("p1", NodeKind::Plant)],
            ..record("g1", &[])
        })
        .await
        .unwrap();
        let t0 = 1_800_000_000_000;
        let saved_plant_ms = |core: &Core| -> Option<i64> {
            let m: serde_json::Value = core.meta.get_json(LEAK_KEY).unwrap()?;
            m["plants"]["p1"]["time_ms"].as_i64()
        };
        for k in 0..=150_i64 {
            let time_ms = t0 + k * 60_000;
            core.ingest_batch(
                &gw,
                TelemetryBatch {
                    seq: k as u64 + 1,
                    snapshots: vec![model::ActorSnapshot {
                        actor_id: NodeId::new("p1").unwrap(),
                        time_ms,
                        mode: Mode::Optimizer,
                        readings: vec![
                            model::Reading::new(Metric::MakeupFlowKgS, 0.1),
                            model::Reading::new(Metric::FlowKgS, 100.0),
                            model::Reading::new(Metric::ReturnFlowKgS, 99.9),
                        ],
                    }],
                },
            )
            .await
            .unwrap();
            // Saved with the first batch, then once a network hour.
            let want = t0 + (k / 60) * 3_600_000;
            assert_eq!(saved_plant_ms(&core), Some(want), "minute {k}");
        }
        // A clean stop saves the newest.
        core.save_on_stop().unwrap();
        assert_eq!(saved_plant_ms(&core), Some(t0 + 150 * 60_000));
        drop(core);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_room_hovering_at_18_c_raises_its_alarm_once() {
        // A room at 17.98 °C read through 0.05 K of noise (a fixed sequence
        // of standard normal values): raised once, never cleared, until it
        // warms past the deadband.
        let noise = [
            0.3, -1.2, 0.8, 1.9, -0.4, 2.4, -2.1, 0.1, 1.1, -0.9, 2.6, -1.7,
        ];
        let (mut active, mut edges) = (false, 0);
        for n in noise {
            if let Some(raise) = room_alarm_edge(17.98 + 0.05 * n) {
                edges += usize::from(raise != active);
                active = raise;
            }
        }
        assert_eq!((active, edges), (true, 1));
        assert_eq!(room_alarm_edge(17.85), Some(true));
        assert_eq!(room_alarm_edge(18.15), None);
        assert_eq!(room_alarm_edge(18.2), Some(false));
    }

    #[test]
    fn a_late_liveness_check_measures_its_own_stall() {
        let t0 = Instant::now();
        let period = Duration::from_millis(250);
        assert_eq!(own_stall(None, t0, period), Duration::ZERO);
        // On time, or early: no stall.
        assert_eq!(own_stall(Some(t0), t0 + period, period), Duration::ZERO);
        assert_eq!(
            own_stall(Some(t0 + period), t0, period),
            Duration::ZERO,
            "a clock read out of order is no stall"
        );
        // A 20 s planning round between two checks: 19.75 s of stall.
        assert_eq!(
            own_stall(Some(t0), t0 + Duration::from_secs(20), period),
            Duration::from_millis(19_750)
        );
    }

    #[test]
    fn the_optimizers_stall_is_taken_off_a_gateways_silence() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(15);
        let now = t0 + Duration::from_secs(30);
        // Heard 30 s ago, of which the optimizer stalled 20 s: 10 s of silence.
        let last = held(t0, Duration::from_secs(20), now);
        assert_eq!(now - last, Duration::from_secs(10));
        assert!(now - last <= timeout);
        // Stalled 5 s of 30: 25 s of silence, lost.
        let last = held(t0, Duration::from_secs(5), now);
        assert!(now - last > timeout);
        // Never later than now.
        assert_eq!(held(now, Duration::from_secs(60), now), now);
    }
}
