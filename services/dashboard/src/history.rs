//! Trends: every node's readings as the dashboard saw them, one sample per new
//! reading time, capped per node (pure).

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;

use crate::view::Snapshot;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    /// Network time of the readings, Unix ms.
    pub t_ms: i64,
    pub mode: &'static str,
    pub setpoint_c: Option<f64>,
    pub readings: BTreeMap<String, f64>,
}

pub struct History {
    cap: usize,
    nodes: HashMap<String, VecDeque<Sample>>,
}

impl History {
    pub fn new(cap_per_node: usize) -> Self {
        Self {
            cap: cap_per_node.max(1),
            nodes: HashMap::new(),
        }
    }

    /// Appends every node's readings whose time moved forward.
    pub fn record(&mut self, snap: &Snapshot) {
        for n in &snap.nodes {
            if n.reading_time_ms <= 0 {
                continue;
            }
            let q = self.nodes.entry(n.node_id.clone()).or_default();
            if q.back().is_some_and(|s| s.t_ms >= n.reading_time_ms) {
                continue;
            }
            q.push_back(Sample {
                t_ms: n.reading_time_ms,
                mode: n.mode,
                setpoint_c: n.commanded_setpoint_c,
                readings: n.readings.clone(),
            });
            while q.len() > self.cap {
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
        for (node, old) in by_node {
            let q = self.nodes.entry(node).or_default();
            // Live samples first: the stable sort keeps them ahead of stored
            // ones of the same time, and dedup keeps the first.
            let mut all: Vec<Sample> = q.drain(..).collect();
            all.extend(old);
            all.sort_by_key(|s| s.t_ms);
            all.dedup_by_key(|s| s.t_ms);
            let skip = all.len().saturating_sub(self.cap);
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
        let mut h = History::new(3);
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
        assert_eq!(s[2].readings["supply_temp_c"], 75.0);
        assert!(h.node("s02").is_empty());
    }

    #[test]
    fn backfill_goes_under_live_samples_without_duplicates() {
        let mut h = History::new(4);
        h.record(&snap(5000, 75.0));
        let old = |t: i64| {
            (
                "s01".to_string(),
                Sample {
                    t_ms: t,
                    mode: "fallback",
                    setpoint_c: None,
                    readings: BTreeMap::new(),
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
