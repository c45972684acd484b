//! Alarms with a lifecycle: raised → acknowledged → cleared, persisted in sled.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use store::{StoreError, Table, seq_key};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    Raised,
    Acknowledged,
    Cleared,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    pub id: u64,
    pub kind: String,
    pub node_id: String,
    pub severity: Severity,
    pub state: AlarmState,
    pub message: String,
    pub raised_at_ms: i64,
    pub acknowledged_at_ms: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub cleared_at_ms: Option<i64>,
    /// `sensor_implausible`: the metric's name; `None` for alarms about a whole node.
    #[serde(default)]
    pub metric: Option<String>,
    /// Network time (Unix ms, from telemetry) at which the alarm was raised:
    /// the detector's own time for the optimizer's detectors, else the latest
    /// network time the optimizer had seen. `None` before any telemetry.
    #[serde(default)]
    pub raised_network_ms: Option<i64>,
    /// Network time at which the alarm was cleared, as above.
    #[serde(default)]
    pub cleared_network_ms: Option<i64>,
    /// `leak_suspected`: where and how much.
    #[serde(default)]
    pub leak: Option<LeakSection>,
}

/// Where a suspected leak is, as the utility's network layout names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeakSection {
    /// The pipe section (pipe id) most likely leaking.
    pub pipe_id: String,
    pub from_junction: String,
    pub to_junction: String,
    /// The junction whose neighbourhood lost the most pressure.
    pub junction: String,
    /// Plants and substations attached to the section's ends.
    pub nodes: Vec<String>,
    /// Other pipes meeting at `junction` (a hole near a junction cannot be
    /// told apart between them).
    pub alternatives: Vec<String>,
    /// Estimated leak, kg/s (make-up water above its baseline, or the mass
    /// balance of the plants, whichever is larger).
    pub leak_kg_s: f64,
    /// Supply pressure deficit at `junction` against the learned values, Pa.
    pub deficit_pa: f64,
}

/// What to raise: everything but the lifecycle.
#[derive(Clone, Debug, PartialEq)]
pub struct NewAlarm<'a> {
    pub kind: &'a str,
    pub node: &'a str,
    pub metric: Option<&'a str>,
    pub severity: Severity,
    pub message: String,
    /// Network time of the detection; `None`: the latest seen.
    pub network_ms: Option<i64>,
    pub leak: Option<LeakSection>,
}

/// Most alarms kept (cleared ones beyond this are forgotten, oldest first).
pub const MAX_ALARMS: usize = 100_000;

pub struct AlarmBook {
    table: Table,
    alarms: BTreeMap<u64, Alarm>,
    /// The ids of each node's alarms not cleared, in id order: what is
    /// active is looked up here, not by a scan of every alarm kept (up to
    /// [`MAX_ALARMS`]; on the city the scan was the optimizer's main cost
    /// once a season had raised and cleared some thousands).
    active: BTreeMap<String, Vec<u64>>,
    next_id: u64,
    /// Latest network time seen in telemetry, Unix ms.
    network_ms: Option<i64>,
}

impl AlarmBook {
    pub fn load(table: Table) -> Result<Self, StoreError> {
        let mut alarms = BTreeMap::new();
        for entry in table.scan_prefix(b"a/") {
            let (_, v) = entry?;
            let a: Alarm = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: "alarm".into(),
                reason: e.to_string(),
            })?;
            alarms.insert(a.id, a);
        }
        let next_id = alarms.keys().next_back().map_or(1, |id| id + 1);
        let mut active: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for a in alarms.values().filter(|a| a.state != AlarmState::Cleared) {
            active.entry(a.node_id.clone()).or_default().push(a.id);
        }
        Ok(Self {
            table,
            alarms,
            active,
            next_id,
            network_ms: None,
        })
    }

    /// Advances the network clock alarms are stamped with (never backwards).
    pub fn observe_network_time(&mut self, ms: i64) {
        if ms > 0 && self.network_ms.is_none_or(|t| ms > t) {
            self.network_ms = Some(ms);
        }
    }

    /// Latest network time seen, Unix ms.
    pub fn network_ms(&self) -> Option<i64> {
        self.network_ms
    }

    fn save(&self, a: &Alarm) -> Result<(), StoreError> {
        self.table.put_json(seq_key(b"a/", a.id), a)
    }

    fn active_on(&self, kind: &str, node: &str, metric: Option<&str>) -> Option<u64> {
        self.active
            .get(node)?
            .iter()
            .rev()
            .filter_map(|id| self.alarms.get(id))
            .find(|a| {
                a.kind == kind && a.metric.as_deref() == metric && a.state != AlarmState::Cleared
            })
            .map(|a| a.id)
    }

    /// Kept in id order (a moved alarm may be older than those it joins).
    fn index_add(&mut self, node: &str, id: u64) {
        let ids = self.active.entry(node.to_string()).or_default();
        if let Err(at) = ids.binary_search(&id) {
            ids.insert(at, id);
        }
    }

    fn index_remove(&mut self, node: &str, id: u64) {
        if let Some(ids) = self.active.get_mut(node) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.active.remove(node);
            }
        }
    }

    /// The alarms not cleared, in id order.
    fn active_alarms(&self) -> impl Iterator<Item = &Alarm> {
        let mut ids: Vec<u64> = self.active.values().flatten().copied().collect();
        ids.sort_unstable();
        ids.into_iter().filter_map(|id| self.alarms.get(&id))
    }

    /// Active alarms of one kind: (node, metric) of each.
    pub fn active_of_kind(&self, kind: &str) -> Vec<(String, Option<String>)> {
        self.active_alarms()
            .filter(|a| a.kind == kind)
            .map(|a| (a.node_id.clone(), a.metric.clone()))
            .collect()
    }

    /// Raises an alarm unless one of the same kind is already active for the node.
    /// Returns the new alarm, if any.
    pub fn raise(
        &mut self,
        kind: &str,
        node: &str,
        severity: Severity,
        message: String,
        now_ms: i64,
    ) -> Result<Option<Alarm>, StoreError> {
        self.raise_on(kind, node, None, severity, message, now_ms)
    }

    /// Raises an alarm about one metric of a node (or the whole node with
    /// `metric: None`) unless the same one is already active.
    pub fn raise_on(
        &mut self,
        kind: &str,
        node: &str,
        metric: Option<&str>,
        severity: Severity,
        message: String,
        now_ms: i64,
    ) -> Result<Option<Alarm>, StoreError> {
        self.raise_new(
            NewAlarm {
                kind,
                node,
                metric,
                severity,
                message,
                network_ms: None,
                leak: None,
            },
            now_ms,
        )
    }

    /// Raises an alarm unless the same (kind, node, metric) is already active.
    pub fn raise_new(
        &mut self,
        new: NewAlarm<'_>,
        now_ms: i64,
    ) -> Result<Option<Alarm>, StoreError> {
        if self.active_on(new.kind, new.node, new.metric).is_some() {
            return Ok(None);
        }
        let a = Alarm {
            id: self.next_id,
            kind: new.kind.to_string(),
            node_id: new.node.to_string(),
            severity: new.severity,
            state: AlarmState::Raised,
            message: new.message,
            raised_at_ms: now_ms,
            acknowledged_at_ms: None,
            acknowledged_by: None,
            cleared_at_ms: None,
            metric: new.metric.map(str::to_string),
            raised_network_ms: new.network_ms.or(self.network_ms),
            cleared_network_ms: None,
            leak: new.leak,
        };
        self.next_id += 1;
        self.save(&a)?;
        self.alarms.insert(a.id, a.clone());
        self.index_add(&a.node_id, a.id);
        self.trim()?;
        Ok(Some(a))
    }

    /// Moves the active alarm of this kind on `node` to `new_node` with a new
    /// message and leak section, keeping its id, state and raise times: a
    /// leak raised before its pressure readings were in, located once they
    /// are. `None` if no such alarm is active.
    ///
    /// If `new_node` already has an active alarm of this kind, the two become
    /// one: the older, on `new_node`, takes the new message and section, and
    /// the moving one is cleared at `now_ms` (one node, one active alarm of a
    /// kind, as [`AlarmBook::raise`] keeps it).
    pub fn relocate(
        &mut self,
        kind: &str,
        node: &str,
        new_node: &str,
        message: String,
        leak: Option<LeakSection>,
        now_ms: i64,
    ) -> Result<Option<Alarm>, StoreError> {
        let Some(id) = self.active_on(kind, node, None) else {
            return Ok(None);
        };
        if node != new_node
            && let Some(there) = self.active_on(kind, new_node, None)
        {
            self.clear_at(kind, node, None, now_ms, None)?;
            let Some(a) = self.alarms.get_mut(&there) else {
                return Ok(None);
            };
            a.message = message;
            a.leak = leak;
            let a = a.clone();
            self.save(&a)?;
            return Ok(Some(a));
        }
        let Some(a) = self.alarms.get_mut(&id) else {
            return Ok(None);
        };
        a.node_id = new_node.to_string();
        a.message = message;
        a.leak = leak;
        let a = a.clone();
        self.save(&a)?;
        self.index_remove(node, id);
        self.index_add(new_node, id);
        Ok(Some(a))
    }

    /// Clears the active alarm of this kind on the node, if any.
    pub fn clear(
        &mut self,
        kind: &str,
        node: &str,
        now_ms: i64,
    ) -> Result<Option<Alarm>, StoreError> {
        self.clear_on(kind, node, None, now_ms)
    }

    /// Clears the active alarm of this kind on this metric of the node, if any.
    pub fn clear_on(
        &mut self,
        kind: &str,
        node: &str,
        metric: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<Alarm>, StoreError> {
        self.clear_at(kind, node, metric, now_ms, None)
    }

    /// Clears the active alarm of this kind on this metric of the node, if
    /// any, at network time `network_ms` (`None`: the latest seen).
    pub fn clear_at(
        &mut self,
        kind: &str,
        node: &str,
        metric: Option<&str>,
        now_ms: i64,
        network_ms: Option<i64>,
    ) -> Result<Option<Alarm>, StoreError> {
        let Some(id) = self.active_on(kind, node, metric) else {
            return Ok(None);
        };
        let network_ms = network_ms.or(self.network_ms);
        let a = self.alarms.get_mut(&id).map(|a| {
            a.state = AlarmState::Cleared;
            a.cleared_at_ms = Some(now_ms);
            a.cleared_network_ms = network_ms;
            a.clone()
        });
        if let Some(a) = &a {
            self.save(a)?;
        }
        self.index_remove(node, id);
        Ok(a)
    }

    pub fn acknowledge(&mut self, id: u64, user: &str, now_ms: i64) -> Result<Alarm, AckError> {
        let a = self.alarms.get_mut(&id).ok_or(AckError::Unknown(id))?;
        match a.state {
            AlarmState::Cleared => return Err(AckError::Cleared(id)),
            AlarmState::Acknowledged => return Ok(a.clone()),
            AlarmState::Raised => {
                a.state = AlarmState::Acknowledged;
                a.acknowledged_at_ms = Some(now_ms);
                a.acknowledged_by = Some(user.to_string());
            }
        }
        let a = a.clone();
        self.save(&a)?;
        Ok(a)
    }

    pub fn list(&self, include_cleared: bool) -> Vec<Alarm> {
        if include_cleared {
            self.alarms.values().cloned().collect()
        } else {
            self.active_alarms().cloned().collect()
        }
    }

    pub fn active_count(&self) -> usize {
        self.active.values().map(Vec::len).sum()
    }

    fn trim(&mut self) -> Result<(), StoreError> {
        while self.alarms.len() > MAX_ALARMS {
            let Some(id) = self
                .alarms
                .values()
                .find(|a| a.state == AlarmState::Cleared)
                .map(|a| a.id)
            else {
                break;
            };
            self.alarms.remove(&id);
            self.table.remove(seq_key(b"a/", id))?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error("alarm {0} does not exist")]
    Unknown(u64),
    #[error("alarm {0} is already cleared")]
    Cleared(u64),
    #[error("storing the acknowledgement: {0}")]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use store::Store;

    use super::*;

    #[test]
    fn a_leak_located_later_moves_its_alarm_and_keeps_its_id() {
        let dir = crate::testing::scratch_dir("alarms-relocate");
        let cfg = crate::testing::store_config();
        let section = LeakSection {
            pipe_id: "p0040".into(),
            from_junction: "j0065".into(),
            to_junction: "j0080".into(),
            junction: "j0080".into(),
            nodes: vec!["c0080".into()],
            alternatives: vec!["p0101".into()],
            leak_kg_s: 10.8,
            deficit_pa: 9_000.0,
        };
        let id = {
            let store = Store::open(&dir, &cfg).unwrap();
            let mut book = AlarmBook::load(store.table("alarms").unwrap()).unwrap();
            let a = book
                .raise(
                    "leak_suspected",
                    "network",
                    Severity::Critical,
                    "locating".into(),
                    1,
                )
                .unwrap()
                .unwrap();
            let moved = book
                .relocate(
                    "leak_suspected",
                    "network",
                    "p0040",
                    "on p0040".into(),
                    Some(section.clone()),
                    2,
                )
                .unwrap()
                .unwrap();
            assert_eq!((moved.id, moved.raised_at_ms), (a.id, 1));
            assert_eq!(moved.node_id, "p0040");
            // Nothing left on `network`, nothing to move twice.
            assert!(
                book.relocate("leak_suspected", "network", "p0041", "x".into(), None, 3)
                    .unwrap()
                    .is_none()
            );
            store.flush().unwrap();
            a.id
        };
        let store = Store::open(&dir, &cfg).unwrap();
        let book = AlarmBook::load(store.table("alarms").unwrap()).unwrap();
        let a = book.list(false).into_iter().find(|a| a.id == id).unwrap();
        assert_eq!(
            (a.node_id.as_str(), a.message.as_str(), a.leak.as_ref()),
            ("p0040", "on p0040", Some(&section))
        );
    }

    /// The index of active alarms against a scan of every alarm, over a
    /// seeded random sequence of raises, clears, moves and acknowledgements,
    /// and after a reload.
    #[test]
    fn the_active_index_agrees_with_a_scan_of_every_alarm() {
        let seed: u64 = std::env::var("HEATNET_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed_a1a7);
        let mut x = seed | 1;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let dir = crate::testing::scratch_dir("alarms-index");
        let store = Store::open(&dir, &crate::testing::store_config()).unwrap();
        let mut book = AlarmBook::load(store.table("alarms").unwrap()).unwrap();
        let kinds = ["room_below_18c", "gateway_lost", "leak_suspected"];
        let nodes = ["s01", "s01-b01", "s02", "network", "p0040"];
        let metrics = [None, Some("room_temp_c")];
        let scan = |b: &AlarmBook, kind: &str, node: &str, metric: Option<&str>| {
            b.alarms
                .values()
                .rev()
                .find(|a| {
                    a.kind == kind
                        && a.node_id == node
                        && a.metric.as_deref() == metric
                        && a.state != AlarmState::Cleared
                })
                .map(|a| a.id)
        };
        for step in 0..2_000i64 {
            let kind = kinds[next(3) as usize];
            let node = nodes[next(5) as usize];
            let metric = metrics[next(2) as usize];
            match next(4) {
                0 | 1 => {
                    book.raise_on(kind, node, metric, Severity::Warning, "m".into(), step)
                        .unwrap();
                }
                2 => {
                    book.clear_on(kind, node, metric, step).unwrap();
                }
                _ => {
                    let to = nodes[next(5) as usize];
                    if next(2) == 0 {
                        book.relocate(kind, node, to, "moved".into(), None, step)
                            .unwrap();
                    } else if let Some(id) = book.active_on(kind, node, metric) {
                        book.acknowledge(id, "op", step).unwrap();
                    }
                }
            }
            for k in kinds {
                for n in nodes {
                    for m in metrics {
                        assert_eq!(
                            book.active_on(k, n, m),
                            scan(&book, k, n, m),
                            "seed {seed} step {step}: {k} {n} {m:?}"
                        );
                    }
                }
            }
        }
        let active: Vec<u64> = book
            .alarms
            .values()
            .filter(|a| a.state != AlarmState::Cleared)
            .map(|a| a.id)
            .collect();
        let listed: Vec<u64> = book.list(false).iter().map(|a| a.id).collect();
        assert_eq!(listed, active, "seed {seed}");
        assert_eq!(book.active_count(), active.len(), "seed {seed}");
        let again = AlarmBook::load(store.table("alarms").unwrap()).unwrap();
        assert_eq!(again.active, book.active, "seed {seed}");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_leak_located_onto_a_section_that_already_has_one_leaves_one_alarm_there() {
        let dir = crate::testing::scratch_dir("alarms-merge");
        let cfg = crate::testing::store_config();
        let store = Store::open(&dir, &cfg).unwrap();
        let mut book = AlarmBook::load(store.table("alarms").unwrap()).unwrap();
        let kind = "leak_suspected";
        let older = book
            .raise(kind, "p0040", Severity::Critical, "on p0040".into(), 1)
            .unwrap()
            .unwrap();
        let moving = book
            .raise(kind, "network", Severity::Critical, "locating".into(), 5)
            .unwrap()
            .unwrap();
        let kept = book
            .relocate(kind, "network", "p0040", "again on p0040".into(), None, 9)
            .unwrap()
            .unwrap();
        assert_eq!((kept.id, kept.raised_at_ms), (older.id, 1));
        assert_eq!(kept.message, "again on p0040");
        let active: Vec<Alarm> = book.list(false);
        assert_eq!(active.len(), 1, "{active:?}");
        assert_eq!(active[0].id, older.id);
        let cleared = book
            .list(true)
            .into_iter()
            .find(|a| a.id == moving.id)
            .unwrap();
        assert_eq!(
            (cleared.state, cleared.cleared_at_ms),
            (AlarmState::Cleared, Some(9))
        );
        // As stored.
        let again = AlarmBook::load(store.table("alarms").unwrap()).unwrap();
        assert_eq!(again.list(false).len(), 1);
        assert_eq!(again.list(false)[0].message, "again on p0040");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lifecycle_dedups_and_persists() {
        let dir = crate::testing::scratch_dir("alarms");
        let cfg = crate::testing::store_config();
        {
            let store = Store::open(&dir, &cfg).unwrap();
            let mut book = AlarmBook::load(store.table("alarms").unwrap()).unwrap();
            let a = book
                .raise("gateway_lost", "s01", Severity::Critical, "lost".into(), 1)
                .unwrap()
                .unwrap();
            assert!(
                book.raise("gateway_lost", "s01", Severity::Critical, "again".into(), 2)
                    .unwrap()
                    .is_none()
            );
            let acked = book.acknowledge(a.id, "alice", 3).unwrap();
            assert_eq!(acked.state, AlarmState::Acknowledged);
            assert_eq!(acked.acknowledged_by.as_deref(), Some("alice"));
            book.raise(
                "room_below_18c",
                "s01-b01",
                Severity::Warning,
                "cold".into(),
                4,
            )
            .unwrap();
            assert_eq!(book.active_count(), 2);
            book.clear("gateway_lost", "s01", 5).unwrap().unwrap();
            assert!(matches!(
                book.acknowledge(a.id, "bob", 6),
                Err(AckError::Cleared(_))
            ));
            assert!(matches!(
                book.acknowledge(99, "bob", 6),
                Err(AckError::Unknown(99))
            ));
            store.flush().unwrap();
        }
        let store = Store::open(&dir, &cfg).unwrap();
        let mut book = AlarmBook::load(store.table("alarms").unwrap()).unwrap();
        assert_eq!(book.list(true).len(), 2);
        assert_eq!(book.list(false).len(), 1);
        // A new alarm after a cleared one gets a fresh id.
        let b = book
            .raise(
                "gateway_lost",
                "s01",
                Severity::Critical,
                "lost again".into(),
                7,
            )
            .unwrap()
            .unwrap();
        assert_eq!(b.id, 3);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn alarms_about_metrics_are_kept_apart() {
        let dir = crate::testing::scratch_dir("alarms-m");
        let store = Store::open(&dir, &crate::testing::store_config()).unwrap();
        let mut book = AlarmBook::load(store.table("alarms").unwrap()).unwrap();
        let k = "sensor_implausible";
        let sup = Some("secondary_supply_temp_c");
        let out = Some("outdoor_temp_c");
        assert!(
            book.raise_on(k, "s01", sup, Severity::Critical, "a".into(), 1)
                .unwrap()
                .is_some()
        );
        assert!(
            book.raise_on(k, "s01", out, Severity::Critical, "b".into(), 1)
                .unwrap()
                .is_some()
        );
        assert!(
            book.raise_on(k, "s01", sup, Severity::Critical, "c".into(), 2)
                .unwrap()
                .is_none()
        );
        assert_eq!(book.active_of_kind(k).len(), 2);
        book.clear_on(k, "s01", sup, 3).unwrap().unwrap();
        assert_eq!(
            book.active_of_kind(k),
            vec![("s01".to_string(), Some("outdoor_temp_c".to_string()))]
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn alarms_carry_the_network_time_of_raising_and_clearing() {
        let dir = crate::testing::scratch_dir("alarms-n");
        let store = Store::open(&dir, &crate::testing::store_config()).unwrap();
        let mut book = AlarmBook::load(store.table("alarms").unwrap()).unwrap();
        // Before any telemetry: no network time.
        let a = book
            .raise("gateway_lost", "s01", Severity::Critical, "x".into(), 5)
            .unwrap()
            .unwrap();
        assert_eq!(a.raised_network_ms, None);
        book.observe_network_time(1_000);
        book.observe_network_time(900); // never backwards
        let a = book
            .raise("telemetry_gap", "s01", Severity::Warning, "y".into(), 6)
            .unwrap()
            .unwrap();
        assert_eq!((a.raised_at_ms, a.raised_network_ms), (6, Some(1_000)));
        // A detector's own time wins over the latest seen.
        let l = book
            .raise_new(
                NewAlarm {
                    kind: "leak_suspected",
                    node: "p-e-se",
                    metric: None,
                    severity: Severity::Critical,
                    message: "leak".into(),
                    network_ms: Some(800),
                    leak: None,
                },
                7,
            )
            .unwrap()
            .unwrap();
        assert_eq!(l.raised_network_ms, Some(800));
        let c = book
            .clear_at("leak_suspected", "p-e-se", None, 8, Some(1_200))
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.cleared_at_ms, c.cleared_network_ms),
            (Some(8), Some(1_200))
        );
        let c = book.clear("telemetry_gap", "s01", 9).unwrap().unwrap();
        assert_eq!(c.cleared_network_ms, Some(1_000));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
