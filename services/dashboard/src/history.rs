//! Trends: every node's readings as the dashboard saw them, one sample per new
//! reading time, capped per node and in total (pure).
//!
//! Readings are kept compactly (metric index and `f32`, 8 bytes each): the
//! 124-substation city has well over a thousand nodes.

use std::collections::{BTreeMap, HashMap, VecDeque};

use model::Metric;
use serde::ser::SerializeMap as _;
use serde::{Serialize, Serializer};

use crate::view::Snapshot;

/// Readings of one sample: (index into `Metric::ALL`, value).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Readings(Vec<(u8, f32)>);

impl Readings {
    /// From readings by metric name; unknown names are left out.
    pub fn from_map(map: &BTreeMap<String, f64>) -> Self {
        Self(
            map.iter()
                .filter_map(|(name, v)| {
                    let i = Metric::ALL.iter().position(|m| m.name() == name)?;
                    Some((u8::try_from(i).ok()?, *v as f32))
                })
                .collect(),
        )
    }

    pub fn get(&self, m: Metric) -> Option<f64> {
        let i = Metric::ALL.iter().position(|x| *x == m)?;
        self.0
            .iter()
            .find(|(k, _)| usize::from(*k) == i)
            .map(|(_, v)| f64::from(*v))
    }
}

/// As a JSON object by metric name, like the live readings.
impl Serialize for Readings {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (i, v) in &self.0 {
            if let Some(m) = Metric::ALL.get(usize::from(*i)) {
                map.serialize_entry(m.name(), &f64::from(*v))?;
            }
        }
        map.end()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    /// Network time of the readings, Unix ms.
    pub t_ms: i64,
    pub mode: &'static str,
    /// The optimizer's last setpoint for the node when the sample was taken live.
    pub setpoint_c: Option<f32>,
    pub readings: Readings,
}

pub struct History {
    cap_per_node: usize,
    total_samples: usize,
    nodes: HashMap<String, VecDeque<Sample>>,
}

impl History {
    /// Keeps at most `cap_per_node` samples per node and about `total_samples` in all.
    pub fn new(cap_per_node: usize, total_samples: usize) -> Self {
        Self {
            cap_per_node: cap_per_node.max(1),
            total_samples: total_samples.max(1),
            nodes: HashMap::new(),
        }
    }

    /// Samples kept per node now: the total shared among the nodes seen.
    pub fn cap(&self) -> usize {
        (self.total_samples / self.nodes.len().max(1)).clamp(1, self.cap_per_node)
    }

    /// Appends every node's readings whose time moved forward.
    pub fn record(&mut self, snap: &Snapshot) {
        for n in &snap.nodes {
            if n.reading_time_ms <= 0 {
                continue;
            }
            if !self.nodes.contains_key(&n.node_id) {
                self.nodes.insert(n.node_id.clone(), VecDeque::new());
            }
            let cap = self.cap();
            let Some(q) = self.nodes.get_mut(&n.node_id) else {
                continue;
            };
            if q.back().is_some_and(|s| s.t_ms >= n.reading_time_ms) {
                continue;
            }
            q.push_back(Sample {
                t_ms: n.reading_time_ms,
                mode: n.mode,
                setpoint_c: n.commanded_setpoint_c.map(|v| v as f32),
                readings: Readings::from_map(&n.readings),
            });
            while q.len() > cap {
                q.pop_front();
            }
        }
    }

    /// Merges older samples (from stored telemetry) under the live ones:
    /// ordered by time, one per time, the newest `cap` kept.
    pub fn backfill(&mut self, samples: Vec<(String, Sample)>) {
        let mut by_node: HashMap<String, Vec<Sample>> = HashMap::new();
        for (node, s) in samples {
            by_node.entry(node).or_default().push(s);
        }
        for node in by_node.keys() {
            if !self.nodes.contains_key(node) {
                self.nodes.insert(node.clone(), VecDeque::new());
            }
        }
        let cap = self.cap();
        for (node, old) in by_node {
            let q = self.nodes.entry(node).or_default();
            // Live samples first: the stable sort keeps them ahead of stored
            // ones of the same time, and dedup keeps the first.
            let mut all: Vec<Sample> = q.drain(..).collect();
            all.extend(old);
            all.sort_by_key(|s| s.t_ms);
            all.dedup_by_key(|s| s.t_ms);
            let skip = all.len().saturating_sub(cap);
            q.extend(all.into_iter().skip(skip));
        }
    }

    pub fn node(&self, id: &str) -> Vec<Sample> {
        self.nodes
            .get(id)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::NodeView;

    fn snap(t_ms: i64, supply: f64) -> Snapshot {
        Snapshot {
            now_ms: t_ms,
            active_alarms: 0,
            gateways: vec![],
            nodes: vec![NodeView {
                node_id: "s01".into(),
                kind: "substation",
                parent_id: None,
                gateway_id: "s01".into(),
                group: None,
                online: true,
                mode: "optimizer",
                reading_time_ms: t_ms,
                readings: [("supply_temp_c".to_string(), supply)].into(),
                commanded_setpoint_c: Some(60.0),
            }],
        }
    }

    #[test]
    fn keeps_one_sample_per_new_reading_time_up_to_the_cap() {
        let mut h = History::new(3, 1000);
        h.record(&snap(1000, 70.0));
        h.record(&snap(1000, 71.0)); // same reading time: not a new sample
        h.record(&snap(0, 1.0)); // no readings yet
        for t in 2..=5 {
            h.record(&snap(t * 1000, 70.0 + t as f64));
        }
        let s = h.node("s01");
        assert_eq!(
            s.iter().map(|s| s.t_ms).collect::<Vec<_>>(),
            vec![3000, 4000, 5000]
        );
        assert_eq!(s[2].readings.get(Metric::SupplyTempC), Some(75.0));
        assert_eq!(
            serde_json::to_value(&s[2].readings).expect("json"),
            serde_json::json!({ "supply_temp_c": 75.0 })
        );
        assert!(h.node("s02").is_empty());
    }

    #[test]
    fn the_total_is_shared_among_the_nodes() {
        let mut h = History::new(100, 10);
        let mut s = snap(1000, 70.0);
        let mut second = s.nodes[0].clone();
        second.node_id = "s02".into();
        s.nodes.push(second);
        for t in 1..=20 {
            for n in &mut s.nodes {
                n.reading_time_ms = t * 1000;
            }
            h.record(&s);
        }
        assert_eq!(h.cap(), 5);
        assert_eq!(h.node("s01").len(), 5);
        assert_eq!(h.node("s02").len(), 5);
        assert_eq!(h.node("s02").last().map(|s| s.t_ms), Some(20_000));
    }

    #[test]
    fn backfill_goes_under_live_samples_without_duplicates() {
        let mut h = History::new(4, 1000);
        h.record(&snap(5000, 75.0));
        let old = |t: i64| {
            (
                "s01".to_string(),
                Sample {
                    t_ms: t,
                    mode: "fallback",
                    setpoint_c: None,
                    readings: Readings::default(),
                },
            )
        };
        h.backfill(vec![old(1000), old(2000), old(3000), old(4000), old(5000)]);
        let s = h.node("s01");
        assert_eq!(
            s.iter().map(|s| s.t_ms).collect::<Vec<_>>(),
            vec![2000, 3000, 4000, 5000]
        );
        // The live sample at 5000 wins over the stored one.
        assert_eq!(s[3].mode, "optimizer");
        assert_eq!(s[2].mode, "fallback");
    }
}
