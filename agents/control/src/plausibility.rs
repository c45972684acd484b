//! Sensor plausibility: range, rate of change and stuck value. Pure.
//!
//! Every reading an actor gets is checked before a control law sees it. An
//! implausible reading is withheld from the law (which then treats the sensor as
//! missing: safe output for a loop's controlled variable, hold for the others)
//! and from the telemetry, and reported as a finding that the gateway raises as
//! a `sensor_implausible` alarm for the node and metric.

use model::{Metric, Reading};
use serde::{Deserialize, Serialize};

/// What a plausible sensor of one metric does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SensorSpec {
    /// Physically possible values, inclusive.
    pub range: (f64, f64),
    /// Fastest change per second of network time a real process shows.
    pub max_rate_per_s: f64,
    /// A reading that has not changed by a single bit for this long is stuck, s.
    pub stuck_after_s: f64,
}

/// The plausibility limits of each metric the laws use; other metrics are only
/// checked for being finite.
pub fn spec(metric: Metric) -> Option<SensorSpec> {
    let water = |hi: f64, stuck_after_s: f64| SensorSpec {
        range: (1.0, hi),
        max_rate_per_s: 2.0,
        stuck_after_s,
    };
    Some(match metric {
        // The controlled variable of the substation loop: frozen for 30 min is a
        // fault. The secondary side is bounded by the primary supply, not by its
        // own design: behind a heat-exchanger valve failed open it runs at the
        // primary's temperature (a season's stuck valve: 110.6 °C, true, and the
        // reading the loop and the control room most need).
        Metric::SecondarySupplyTempC => water(150.0, 1_800.0),
        Metric::SecondaryReturnTempC | Metric::BuildingReturnTempC => water(150.0, 4.0 * 3_600.0),
        Metric::SupplyTempC | Metric::ReturnTempC => water(150.0, 4.0 * 3_600.0),
        Metric::RoomTempC => SensorSpec {
            range: (-10.0, 40.0),
            max_rate_per_s: 0.02,
            stuck_after_s: 12.0 * 3_600.0,
        },
        Metric::OutdoorTempC => SensorSpec {
            range: (-50.0, 50.0),
            max_rate_per_s: 0.05,
            stuck_after_s: 12.0 * 3_600.0,
        },
        _ => return None,
    })
}

/// Why a reading was refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub metric: Metric,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Track {
    metric: Metric,
    /// Last raw reading and its time.
    value: f64,
    time_ms: i64,
    /// Since when the raw reading has had exactly this value.
    unchanged_since_ms: i64,
}

/// Per-actor memory of the last readings, kept in the actor's saved state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SensorGuard {
    tracks: Vec<Track>,
    /// Findings of the last check (the active `sensor_implausible` alarms).
    #[serde(default)]
    pub findings: Vec<Finding>,
}

impl SensorGuard {
    /// Checks one scan's readings at network time `time_ms`; returns the
    /// plausible ones. The implausible ones are in [`Self::findings`] until a
    /// later scan finds them plausible again.
    pub fn check(&mut self, time_ms: i64, readings: Vec<Reading>) -> Vec<Reading> {
        let mut findings = Vec::new();
        let mut ok = Vec::with_capacity(readings.len());
        for r in readings {
            match self.check_one(time_ms, r) {
                Ok(r) => ok.push(r),
                Err(reason) => {
                    if !self.findings.iter().any(|f| f.metric == r.metric) {
                        tracing::warn!(metric = r.metric.name(), value = r.value, %reason,
                            "implausible sensor reading withheld from control");
                    }
                    findings.push(Finding {
                        metric: r.metric,
                        reason,
                    });
                }
            }
        }
        for f in &self.findings {
            if !findings.iter().any(|n| n.metric == f.metric) {
                tracing::info!(metric = f.metric.name(), "sensor plausible again");
            }
        }
        self.findings = findings;
        ok
    }

    fn check_one(&mut self, time_ms: i64, r: Reading) -> Result<Reading, String> {
        let v = r.value;
        if !v.is_finite() {
            return Err(format!("{} is {v}", r.metric.name()));
        }
        let Some(spec) = spec(r.metric) else {
            return Ok(r);
        };
        let prev = self.tracks.iter().position(|t| t.metric == r.metric);
        let track = match prev {
            Some(i) => &mut self.tracks[i],
            None => {
                self.tracks.push(Track {
                    metric: r.metric,
                    value: v,
                    time_ms,
                    unchanged_since_ms: time_ms,
                });
                let last = self.tracks.len() - 1;
                &mut self.tracks[last]
            }
        };
        // Rate against the previous raw reading, stuck against its history.
        let rate = if time_ms > track.time_ms {
            Some((v - track.value).abs() / ((time_ms - track.time_ms) as f64 / 1000.0))
        } else {
            None
        };
        if v.to_bits() != track.value.to_bits() {
            track.unchanged_since_ms = time_ms;
        }
        let unchanged_s = (time_ms - track.unchanged_since_ms) as f64 / 1000.0;
        if time_ms >= track.time_ms {
            track.value = v;
            track.time_ms = time_ms;
        }
        let (lo, hi) = spec.range;
        if !(lo..=hi).contains(&v) {
            return Err(format!(
                "{} {v} is outside the plausible range {lo}..{hi}",
                r.metric.name()
            ));
        }
        if let Some(rate) = rate
            && rate > spec.max_rate_per_s
        {
            return Err(format!(
                "{} changed at {rate:.3}/s, faster than the plausible {}/s",
                r.metric.name(),
                spec.max_rate_per_s
            ));
        }
        if unchanged_s >= spec.stuck_after_s {
            return Err(format!(
                "{} stuck at {v} for {:.0} s",
                r.metric.name(),
                unchanged_s
            ));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_796_054_400_000;

    /// (what, metric, series of (seconds, value), findings expected at the last reading)
    type Case = (&'static str, Metric, Vec<(i64, f64)>, Option<&'static str>);

    fn cases() -> Vec<Case> {
        let s = Metric::SecondarySupplyTempC;
        let room = Metric::RoomTempC;
        let steady = |n: i64, dt: i64, v0: f64, dv: f64| -> Vec<(i64, f64)> {
            (0..n).map(|i| (i * dt, v0 + dv * i as f64)).collect()
        };
        vec![
            ("normal supply", s, steady(10, 60, 60.0, 0.3), None),
            (
                "supply too hot",
                s,
                vec![(0, 60.0), (60, 160.0)],
                Some("outside the plausible range"),
            ),
            (
                "supply at the primary's temperature behind a valve failed open",
                s,
                vec![(0, 60.0), (60, 110.6), (120, 125.0)],
                None,
            ),
            (
                "supply below freezing",
                s,
                vec![(0, -3.0)],
                Some("outside the plausible range"),
            ),
            ("nan", s, vec![(0, 60.0), (60, f64::NAN)], Some("is NaN")),
            (
                "infinite room",
                room,
                vec![(0, f64::INFINITY)],
                Some("is inf"),
            ),
            (
                "supply spike",
                s,
                vec![(0, 60.0), (1, 70.0)],
                Some("faster than the plausible"),
            ),
            (
                "fast but real supply change",
                s,
                vec![(0, 60.0), (60, 70.0)],
                None,
            ),
            (
                "room jump",
                room,
                vec![(0, 20.0), (60, 25.0)],
                Some("faster than the plausible"),
            ),
            ("room slow drift", room, steady(60, 60, 18.0, 0.05), None),
            (
                "frozen supply 30 min",
                s,
                steady(31, 60, 61.5, 0.0),
                Some("stuck at 61.5"),
            ),
            ("frozen supply 29 min", s, steady(30, 60, 61.5, 0.0), None),
            (
                "room constant 6 h is fine",
                room,
                steady(361, 60, 20.0, 0.0),
                None,
            ),
            (
                "room frozen 12 h",
                room,
                steady(721, 60, 20.0, 0.0),
                Some("stuck at 20"),
            ),
            (
                "valve position is not checked",
                Metric::ValvePosition,
                vec![(0, 0.5), (1, 0.5)],
                None,
            ),
        ]
    }

    #[test]
    fn plausibility_cases() {
        for (what, metric, series, want) in cases() {
            let mut g = SensorGuard::default();
            let mut last_ok = Vec::new();
            for (t_s, v) in &series {
                last_ok = g.check(T0 + t_s * 1000, vec![Reading::new(metric, *v)]);
            }
            match want {
                None => {
                    assert!(g.findings.is_empty(), "{what}: {:?}", g.findings);
                    assert_eq!(last_ok.len(), 1, "{what}");
                }
                Some(text) => {
                    assert_eq!(g.findings.len(), 1, "{what}");
                    assert_eq!(g.findings[0].metric, metric, "{what}");
                    assert!(
                        g.findings[0].reason.contains(text),
                        "{what}: {}",
                        g.findings[0].reason
                    );
                    assert!(
                        last_ok.is_empty(),
                        "{what}: an implausible reading got through"
                    );
                }
            }
        }
    }

    #[test]
    fn a_finding_clears_when_the_sensor_moves_again() {
        let mut g = SensorGuard::default();
        for i in 0..=31 {
            g.check(
                T0 + i * 60_000,
                vec![Reading::new(Metric::SecondarySupplyTempC, 55.0)],
            );
        }
        assert_eq!(g.findings.len(), 1);
        let ok = g.check(
            T0 + 32 * 60_000,
            vec![Reading::new(Metric::SecondarySupplyTempC, 55.2)],
        );
        assert_eq!(ok.len(), 1);
        assert!(g.findings.is_empty());
    }
}
