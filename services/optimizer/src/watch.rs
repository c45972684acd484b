//! What the optimizer watches in every telemetry snapshot besides the live
//! state: the leak, pump-trip and plant-trip detectors (`detect`) and the
//! ledger of hours below 18 °C (`ledger`). The core calls [`Watch::observe`]
//! for each stored snapshot and [`Watch::persist`] once per batch.

use model::{ActorSnapshot, Metric, NodeKind};
use store::StoreError;

use crate::alarms::{AlarmBook, NewAlarm, Severity};
use crate::detect::{
    Layout, LeakConfig, LeakDetector, LeakEvent, PLANT_TRIP, PUMP_TRIP, TripDetector, TripEvent,
};
use crate::ledger::Ledger;

/// Alarm kind of a suspected leak.
pub const LEAK_SUSPECTED: &str = "leak_suspected";
/// Node id of a leak alarm without a located section.
pub const NETWORK_NODE: &str = "network";

pub struct Watch {
    leak: LeakDetector,
    trips: TripDetector,
    pub ledger: Ledger,
    /// Node id the active leak alarm was raised on.
    leak_node: Option<String>,
}

impl Watch {
    pub fn new(layout: Option<Layout>, ledger: Ledger, alarms: &AlarmBook) -> Self {
        let cfg = LeakConfig::default();
        let confirm_ms = cfg.confirm_ms;
        // An active leak alarm from before a restart is cleared by the first
        // quiet evaluation after the baselines are learned again.
        let leak_node = alarms
            .active_of_kind(LEAK_SUSPECTED)
            .into_iter()
            .next()
            .map(|(n, _)| n);
        let mut trips = TripDetector::new(confirm_ms);
        for kind in [PUMP_TRIP, PLANT_TRIP] {
            for (node, _) in alarms.active_of_kind(kind) {
                if let Ok(node) = model::NodeId::new(node) {
                    trips.resume(kind, &node);
                }
            }
        }
        Self {
            leak: LeakDetector::new(cfg, layout),
            trips,
            ledger,
            leak_node,
        }
    }

    /// Takes one stored snapshot of a node of `kind`. `live`: it is the
    /// node's newest (not a replay of older data).
    pub fn observe(
        &mut self,
        alarms: &mut AlarmBook,
        kind: NodeKind,
        snap: &ActorSnapshot,
        live: bool,
        wall_ms: i64,
    ) -> Result<(), StoreError> {
        alarms.observe_network_time(snap.time_ms);
        if kind == NodeKind::Building
            && let Some(t) = snap.get(Metric::RoomTempC)
        {
            self.ledger.record(snap.actor_id.as_str(), snap.time_ms, t);
        }
        if !live {
            return Ok(());
        }
        // The control laws always command plant and secondary pumps on.
        for ev in self
            .trips
            .observe(&snap.actor_id, kind, snap.time_ms, &snap.readings, true)
        {
            match ev {
                TripEvent::Raise {
                    kind: k,
                    node,
                    network_ms,
                    message,
                } => {
                    let severity = if k == PLANT_TRIP || kind == NodeKind::Plant {
                        Severity::Critical
                    } else {
                        Severity::Warning
                    };
                    if let Some(a) = alarms.raise_new(
                        NewAlarm {
                            kind: k,
                            node: node.as_str(),
                            metric: None,
                            severity,
                            message,
                            network_ms: Some(network_ms),
                            leak: None,
                        },
                        wall_ms,
                    )? {
                        tracing::warn!(node_id = %node, kind = k, network_time_ms = network_ms, alarm_id = a.id, "trip detected");
                    }
                }
                TripEvent::Clear {
                    kind: k,
                    node,
                    network_ms,
                } => {
                    if alarms
                        .clear_at(k, node.as_str(), None, wall_ms, Some(network_ms))?
                        .is_some()
                    {
                        tracing::info!(node_id = %node, kind = k, network_time_ms = network_ms, "trip cleared");
                    }
                }
            }
        }
        match self
            .leak
            .observe(&snap.actor_id, kind, snap.time_ms, &snap.readings)
        {
            Some(LeakEvent::Raise {
                network_ms,
                leak_kg_s,
                section,
            }) => {
                let (node, message) = match &section {
                    Some(s) => (
                        s.pipe_id.clone(),
                        format!(
                            "leak of about {leak_kg_s:.1} kg/s suspected on section {} ({} – {}), nearest {} (lost {:.0} Pa){}",
                            s.pipe_id,
                            s.from_junction,
                            s.to_junction,
                            s.junction,
                            s.deficit_pa,
                            if s.alternatives.is_empty() {
                                String::new()
                            } else {
                                format!("; or {}", s.alternatives.join(", "))
                            }
                        ),
                    ),
                    None => (
                        NETWORK_NODE.to_string(),
                        format!(
                            "leak of about {leak_kg_s:.1} kg/s suspected (make-up water or mass balance above baseline); no location"
                        ),
                    ),
                };
                if let Some(a) = alarms.raise_new(
                    NewAlarm {
                        kind: LEAK_SUSPECTED,
                        node: &node,
                        metric: None,
                        severity: Severity::Critical,
                        message,
                        network_ms: Some(network_ms),
                        leak: section,
                    },
                    wall_ms,
                )? {
                    tracing::error!(node_id = %node, leak_kg_s, network_time_ms = network_ms, alarm_id = a.id, message = %a.message, "leak suspected");
                }
                self.leak_node = Some(node);
            }
            Some(LeakEvent::Clear { network_ms }) => {
                if let Some(node) = self.leak_node.take() {
                    alarms.clear_at(LEAK_SUSPECTED, &node, None, wall_ms, Some(network_ms))?;
                    tracing::info!(node_id = %node, network_time_ms = network_ms, "leak alarm cleared: make-up back to baseline");
                }
            }
            None => {
                // A leak alarm left from before a restart clears once the
                // detector has learned a quiet baseline again.
                if !self.leak.raised()
                    && kind == NodeKind::Plant
                    && let Some(node) = self.leak_node.take()
                {
                    alarms.clear_at(LEAK_SUSPECTED, &node, None, wall_ms, Some(snap.time_ms))?;
                }
            }
        }
        Ok(())
    }

    /// Writes the ledger's changes (the caller's flush makes them durable).
    pub fn persist(&mut self) -> Result<(), StoreError> {
        self.ledger.persist()
    }
}
