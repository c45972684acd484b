//! Scenario files: faults and weather changes at given network times, so a
//! run (or two runs to compare) meets the same trouble at the same moment.
//!
//! ```toml
//! name = "cold snap with a leak"
//!
//! [[events]]
//! at_h = 6.0                 # hours after the network's start time
//! inject = { kind = "supply_leak", device = "p-e-se", magnitude = 200.0 }
//! label = "leak"             # to clear it later
//!
//! [[events]]
//! at_h = 30.0
//! clear = "leak"
//!
//! [[events]]
//! at_h = 48.0
//! weather_offset_k = -8.0    # a cold snap: 8 K below the weather until changed
//!
//! [[events]]
//! at_h = 60.0
//! crash_gateway = "s03"      # kill -9 of that gateway (by `heatnet season`)
//! ```
//!
//! Fault kinds and their `magnitude` are those of the simulator API
//! ([`crate::world::FaultKind`], in snake_case); sensor faults also name a
//! `metric`. Devices and pipes are checked against the network when the
//! scenario is loaded, so a typo is refused before the run starts.

use serde::{Deserialize, Serialize};

use crate::world::{Fault, World, WorldError};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub events: Vec<Event>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Hours after the network's start time.
    pub at_h: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject: Option<Fault>,
    /// Name of an injected fault, for a later `clear`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Label of the fault to clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear: Option<String>,
    /// New weather offset, K (negative: colder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weather_offset_k: Option<f64>,
    /// `kill -9` of the gateway process of this plant or substation: done by
    /// the season runner (`heatnet season`), which watches the clock; a
    /// simulator on its own only logs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash_gateway: Option<model::NodeId>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("scenario is not valid TOML: {0}")]
    Toml(String),
    #[error("scenario event {index} (at_h {at_h}): {problem}")]
    Invalid {
        index: usize,
        at_h: f64,
        problem: String,
    },
}

/// Where a running scenario stands (kept in the simulator's snapshot).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Events applied so far (they are applied in order).
    pub applied: usize,
    /// Fault id of each label injected so far.
    pub labels: Vec<(String, u64)>,
}

impl Scenario {
    pub fn load(path: &std::path::Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    pub fn from_toml(text: &str) -> Result<Self, ScenarioError> {
        let mut s: Scenario =
            toml::from_str(text).map_err(|e| ScenarioError::Toml(e.to_string()))?;
        // Stable sort: events at the same time keep the file's order.
        s.events.sort_by(|a, b| a.at_h.total_cmp(&b.at_h));
        Ok(s)
    }

    /// Checks every event against the world it will run in: one action each,
    /// times in range, labels unique and defined before they are cleared, and
    /// each fault accepted by a scratch copy of the world.
    pub fn validate(&self, world: &World) -> Result<(), ScenarioError> {
        let mut scratch = world.clone();
        let mut labels = std::collections::HashSet::new();
        for (index, e) in self.events.iter().enumerate() {
            let bad = |problem: String| ScenarioError::Invalid {
                index,
                at_h: e.at_h,
                problem,
            };
            if !(e.at_h.is_finite() && (0.0..=24.0 * 366.0).contains(&e.at_h)) {
                return Err(bad("at_h must be within 0..8784 hours".into()));
            }
            let actions = [
                e.inject.is_some(),
                e.clear.is_some(),
                e.weather_offset_k.is_some(),
                e.crash_gateway.is_some(),
            ];
            if actions.iter().filter(|a| **a).count() != 1 {
                return Err(bad(
                    "give exactly one of inject, clear, weather_offset_k or crash_gateway".into(),
                ));
            }
            if let Some(g) = &e.crash_gateway {
                let net = world.network();
                let known = net.plants.iter().any(|p| &p.id == g)
                    || net.substations.iter().any(|s| &s.id == g);
                if !known {
                    return Err(bad(format!(
                        "crash_gateway {g}: no plant or substation of that id (gateways are named after them)"
                    )));
                }
            }
            if let Some(f) = &e.inject {
                scratch
                    .inject_fault(f.clone())
                    .map_err(|err| bad(err.to_string()))?;
                if let Some(l) = &e.label
                    && !labels.insert(l.clone())
                {
                    return Err(bad(format!("label {l:?} is used twice")));
                }
            } else if e.label.is_some() {
                return Err(bad("label belongs to an inject event".into()));
            }
            if let Some(l) = &e.clear
                && !labels.contains(l)
            {
                return Err(bad(format!(
                    "clear {l:?} names no fault injected (with that label) before it"
                )));
            }
            if let Some(k) = e.weather_offset_k
                && !(k.is_finite() && (-30.0..=30.0).contains(&k))
            {
                return Err(bad("weather_offset_k must be within -30..30 K".into()));
            }
        }
        Ok(())
    }

    /// Applies every event due at the world's current time, in order.
    /// Returns what was done, for the log.
    pub fn apply_due(
        &self,
        world: &mut World,
        start_ms: i64,
        progress: &mut Progress,
    ) -> Vec<Result<String, WorldError>> {
        let mut done = Vec::new();
        while let Some(e) = self.events.get(progress.applied) {
            let due_ms = start_ms + (e.at_h * 3_600_000.0).round() as i64;
            if world.time_ms() < due_ms {
                break;
            }
            progress.applied += 1;
            if let Some(f) = &e.inject {
                done.push(world.inject_fault(f.clone()).map(|rec| {
                    if let Some(l) = &e.label {
                        progress.labels.push((l.clone(), rec.id));
                    }
                    format!("injected {:?} on {} (fault {})", f.kind, f.device, rec.id)
                }));
            } else if let Some(l) = &e.clear {
                let id = progress
                    .labels
                    .iter()
                    .find(|(name, _)| name == l)
                    .map(|(_, id)| *id);
                if let Some(id) = id {
                    done.push(
                        world
                            .clear_fault(id)
                            .map(|_| format!("cleared {l} (fault {id})")),
                    );
                }
            } else if let Some(k) = e.weather_offset_k {
                world.set_weather_offset_k(k);
                done.push(Ok(format!("weather offset {k:+} K")));
            } else if let Some(g) = &e.crash_gateway {
                done.push(Ok(format!(
                    "crash of gateway {g} is due (done by the season runner, if one runs)"
                )));
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::Network;

    const SCENARIO: &str = r#"
name = "test"
[[events]]
at_h = 2.0
clear = "leak"
[[events]]
at_h = 1.0
inject = { kind = "supply_leak", device = "p-e-se", magnitude = 200.0 }
label = "leak"
[[events]]
at_h = 3.0
weather_offset_k = -8.0
"#;

    #[test]
    fn events_happen_in_time_order_and_clear_by_label() {
        let net = Network::sample("ring").unwrap();
        let start = net.start_time_ms;
        let mut w = World::new(net);
        let s = Scenario::from_toml(SCENARIO).unwrap();
        s.validate(&w).unwrap();
        let mut p = Progress::default();
        let mut log = Vec::new();
        for _ in 0..(4 * 60) {
            w.step(60.0).unwrap();
            for r in s.apply_due(&mut w, start, &mut p) {
                log.push((w.time_ms() - start, r.unwrap()));
            }
            let t_h = (w.time_ms() - start) as f64 / 3.6e6;
            let leaking = w.state().balance.leak_kg_s > 0.0;
            if t_h > 1.05 && t_h < 1.95 {
                assert!(leaking, "no leak at {t_h} h");
            }
            if t_h > 2.05 {
                assert!(!leaking, "still leaking at {t_h} h");
            }
        }
        assert_eq!(log.len(), 3, "{log:?}");
        assert_eq!(log[0].0, 3_600_000);
        assert!(log[1].1.starts_with("cleared leak"));
        assert_eq!(w.weather_offset_k(), -8.0);
        assert_eq!(p.applied, 3);
    }

    #[test]
    fn the_shipped_city_scenario_is_valid_for_the_city() {
        let w = World::new(Network::sample("city").unwrap());
        let s = Scenario::from_toml(include_str!("../scenarios/city-winter.toml")).unwrap();
        s.validate(&w).unwrap();
        assert!(s.events.len() >= 10);
    }

    #[test]
    fn mistakes_are_refused_before_the_run_naming_the_event() {
        let w = World::new(Network::sample("ring").unwrap());
        let err = |text: &str| {
            Scenario::from_toml(text)
                .and_then(|s| s.validate(&w))
                .unwrap_err()
                .to_string()
        };
        let e = err(
            "[[events]]\nat_h = 1\ninject = { kind = \"supply_leak\", device = \"p-nowhere\", magnitude = 1.0 }",
        );
        assert!(
            e.contains("event 0") && e.contains("pipe p-nowhere does not exist"),
            "{e}"
        );
        let e = err("[[events]]\nat_h = 1\nclear = \"x\"");
        assert!(e.contains("names no fault"), "{e}");
        let e = err("[[events]]\nat_h = 1\nweather_offset_k = -8.0\nclear = \"x\"");
        assert!(e.contains("exactly one"), "{e}");
        let e = err("[[events]]\nat_h = -1\nweather_offset_k = -8.0");
        assert!(e.contains("at_h"), "{e}");
        let e = err("[[events]]\nat_h = 1\nwhoops = 1");
        assert!(e.contains("whoops"), "{e}");
        let e = err(
            "[[events]]\nat_h = 1\ninject = { kind = \"illegal_draining\", device = \"r1\", magnitude = 1.0 }",
        );
        assert!(e.contains("does not apply"), "{e}");
    }
}
