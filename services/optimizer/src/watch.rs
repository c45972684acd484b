//! What the optimizer watches in every telemetry snapshot besides the live
//! state: the leak, pump-trip and plant-trip detectors (`detect`) and the
//! ledger of hours below 18 °C (`ledger`). The core calls [`Watch::observe`]
//! for each stored snapshot and [`Watch::persist`] once per batch.

use model::{Action, ActorSnapshot, Metric, NodeId, NodeKind};
use store::StoreError;

use crate::alarms::{AlarmBook, LeakSection, NewAlarm, Severity};
use crate::detect::{
    Layout, LeakConfig, LeakDetector, LeakEvent, LeakMemory, MarkUnit, PLANT_TRIP, PUMP_TRIP,
    PlantOrder, TripDetector, TripEvent, Withheld,
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
    /// A dispatch order sent to a plant at network time `network_ms`; it is
    /// in force until the next. Other actions are ignored.
    pub fn dispatched(&mut self, plant: &NodeId, action: &Action, network_ms: i64) {
        let order = match action {
            Action::SetHeatOutput { heat_w } => PlantOrder::Heat { heat_w: *heat_w },
            Action::SetPumpHead { .. } => PlantOrder::Head,
            _ => return,
        };
        self.trips.order(plant, order, network_ms);
    }

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
        let mut trips = TripDetector::new(confirm_ms).with_capacities(
            layout
                .as_ref()
                .map(|l| l.plant_capacities_w().clone())
                .unwrap_or_default(),
        );
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
                withheld,
                locating,
            }) => {
                let (node, message) =
                    leak_message(leak_kg_s, &section, withheld.as_deref(), locating);
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
            Some(LeakEvent::Located {
                network_ms,
                leak_kg_s,
                section,
                withheld,
            }) => {
                let (node, message) = leak_message(leak_kg_s, &section, withheld.as_deref(), None);
                if let Some(old) = self.leak_node.take()
                    && let Some(a) =
                        alarms.relocate(LEAK_SUSPECTED, &old, &node, message, section, wall_ms)?
                {
                    tracing::error!(node_id = %node, leak_kg_s, network_time_ms = network_ms, alarm_id = a.id, message = %a.message, "leak located");
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

    /// The leak detector's memory, to be saved for a restart.
    pub fn leak_memory(&self) -> LeakMemory {
        self.leak.memory()
    }

    /// Carries the leak detector on from a memory saved before a restart.
    pub fn restore_leak(&mut self, m: LeakMemory) {
        self.leak.restore(m);
    }
}

/// A leak alarm's node and message: the located section's pipe, or
/// `network` with why there is no location (withheld, being surveyed, no
/// layout).
fn leak_message(
    leak_kg_s: f64,
    section: &Option<LeakSection>,
    withheld: Option<&Withheld>,
    locating: Option<(usize, usize)>,
) -> (String, String) {
    let suspected = format!(
        "leak of about {leak_kg_s:.1} kg/s suspected (make-up water or mass balance above baseline)"
    );
    match section {
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
            match (withheld, locating) {
                (Some(w), _) => {
                    let floor = match w.unit {
                        MarkUnit::Pa => format!(
                            "the pressures swing by up to {:.0} Pa between quiet readings",
                            w.noise
                        ),
                        MarkUnit::Sigma => format!(
                            "between quiet readings the nodes stray by up to {:.1} σ of their own noise from what the plants' pressures explain",
                            w.noise
                        ),
                    };
                    let pair = w.pair.map_or(String::new(), |(mark, floor)| {
                        format!(
                            ", {mark:.1} σ with a neighbour against {floor:.1} σ for any two between quiet readings"
                        )
                    });
                    match &w.guess {
                        Some(g) => format!(
                            "{suspected}; location withheld: {floor}, the leak's mark is {:.1} {}{pair} (best guess {} near {})",
                            w.mark,
                            w.unit.as_str(),
                            g.pipe_id,
                            g.junction
                        ),
                        None => format!(
                            "{suspected}; location withheld: too few nodes read in step with the others across the onset ({floor})"
                        ),
                    }
                }
                (None, Some((covered, known))) => format!(
                    "{suspected}; locating: the pressure readings across the onset are in from {covered} of {known} nodes"
                ),
                (None, None) => format!("{suspected}; no location"),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use model::{ActorSnapshot, Mode, Network, NodeId, Reading};
    use store::Store;

    use super::*;
    use crate::alarms::AlarmState;

    fn snap(id: &str, time_ms: i64, readings: Vec<Reading>) -> ActorSnapshot {
        ActorSnapshot {
            actor_id: NodeId::new(id).unwrap(),
            time_ms,
            mode: Mode::Optimizer,
            readings,
        }
    }

    #[test]
    fn detections_become_alarms_with_network_times_and_rooms_reach_the_ledger() {
        let dir = crate::testing::scratch_dir("watch");
        let store = Store::open(&dir, &crate::testing::store_config()).unwrap();
        let mut alarms = AlarmBook::load(store.table("alarms").unwrap()).unwrap();
        let ledger = Ledger::load(store.table("ledger").unwrap(), 18.0).unwrap();
        let layout = Layout::of(&Network::sample("ring").unwrap());
        let mut w = Watch::new(Some(layout), ledger, &alarms);
        let t0 = 1_800_000_000_000;
        let minute = |w: &mut Watch, alarms: &mut AlarmBook, k: i64, makeup: f64, r2_pa: f64| {
            let t = t0 + k * 60_000;
            for (id, p) in [("r1", 6.0e5), ("r2", r2_pa), ("r3", 6.0e5), ("r4", 6.0e5)] {
                let s = snap(
                    id,
                    t,
                    vec![
                        Reading::new(Metric::SupplyPressurePa, p),
                        Reading::new(Metric::ReturnPressurePa, 2.5e5),
                        Reading::new(Metric::PumpRunning, 1.0),
                    ],
                );
                w.observe(alarms, NodeKind::Substation, &s, true, 1)
                    .unwrap();
            }
            let plant = snap(
                "chp-north",
                t,
                vec![
                    Reading::new(Metric::MakeupFlowKgS, makeup),
                    Reading::new(Metric::SupplyPressurePa, 6.5e5),
                    Reading::new(Metric::ReturnPressurePa, 2.5e5),
                ],
            );
            w.observe(alarms, NodeKind::Plant, &plant, true, 2).unwrap();
            let room = snap("r2-b01", t, vec![Reading::new(Metric::RoomTempC, 17.0)]);
            w.observe(alarms, NodeKind::Building, &room, true, 3)
                .unwrap();
        };
        for k in 0..10 {
            minute(&mut w, &mut alarms, k, 0.0, 6.0e5);
        }
        assert!(alarms.list(true).is_empty());
        // A 4 kg/s leak; r2 (j-south-east) loses 800 Pa.
        minute(&mut w, &mut alarms, 10, 4.0, 5.992e5);
        minute(&mut w, &mut alarms, 11, 4.0, 5.992e5);
        let a = alarms.list(false);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].kind, LEAK_SUSPECTED);
        assert_eq!(a[0].raised_network_ms, Some(t0 + 11 * 60_000));
        let leak = a[0].leak.as_ref().unwrap();
        assert_eq!(leak.junction, "j-south-east");
        assert_eq!(a[0].node_id, leak.pipe_id);
        assert_eq!(leak.leak_kg_s, 4.0);
        // Repaired: cleared two quiet minutes later, at that network time.
        minute(&mut w, &mut alarms, 12, 0.0, 6.0e5);
        minute(&mut w, &mut alarms, 13, 0.0, 6.0e5);
        let a = &alarms.list(true)[0];
        assert_eq!(a.state, AlarmState::Cleared);
        assert_eq!(a.cleared_network_ms, Some(t0 + 13 * 60_000));
        // A secondary pump stops: pump_trip, a warning, at its network time.
        let stopped = snap(
            "r3",
            t0 + 14 * 60_000,
            vec![Reading::new(Metric::PumpRunning, 0.0)],
        );
        w.observe(&mut alarms, NodeKind::Substation, &stopped, true, 4)
            .unwrap();
        let trip = alarms.list(false);
        assert_eq!(trip.len(), 1);
        assert_eq!(
            (trip[0].kind.as_str(), trip[0].node_id.as_str()),
            ("pump_trip", "r3")
        );
        assert_eq!(trip[0].severity, Severity::Warning);
        assert_eq!(trip[0].raised_network_ms, Some(t0 + 14 * 60_000));
        // A replayed (not live) snapshot reaches the ledger only.
        let old = snap("r3", t0, vec![Reading::new(Metric::PumpRunning, 1.0)]);
        w.observe(&mut alarms, NodeKind::Substation, &old, false, 5)
            .unwrap();
        assert_eq!(alarms.list(false).len(), 1);
        // 13 minutes at 17 °C in the ledger.
        w.persist().unwrap();
        let rows = w.ledger.query(None, None, "r2", 10);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].entry.cold_ms, 13 * 60_000);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
