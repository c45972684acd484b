//! Weather forecasts: every issue loaded through `LoadForecast` (bounded
//! history), the outdoor temperature observed in telemetry (hourly means), the
//! planner's look ahead ([`ForecastBook::ahead`]) and the forecast's error by
//! lead time ([`score`]).
//!
//! The book has its own lock; it never takes the core's, so the core may call
//! it while holding its own.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use model::forecast::{Forecast, ForecastPoint};
use model::{Metric, TelemetryBatch};
use serde::{Deserialize, Serialize};
use store::{StoreError, Table, seq_key, seq_of_key};

const HOUR_MS: i64 = 3_600_000;
/// Issues older than this (before the newest issue) are dropped, ms.
pub const HISTORY_MS: i64 = 14 * 24 * HOUR_MS;
/// Most issues kept.
pub const MAX_ISSUES: usize = 2000;
/// Most points kept over all issues (memory bound: a few tens of MB).
pub const MAX_TOTAL_POINTS: usize = 500_000;
/// Observed hours kept, back from the newest.
pub const OBS_HISTORY_MS: i64 = 30 * 24 * HOUR_MS;
/// Lead-time buckets of the score, hours `[from, to)`; `to = 0`: no upper bound.
pub const LEAD_BUCKETS_H: [(u32, u32); 5] = [(0, 6), (6, 24), (24, 48), (48, 72), (72, 0)];

/// A forecast issue as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredForecast {
    pub forecast: Forecast,
    /// Wall-clock Unix ms when it was loaded.
    pub loaded_at_ms: i64,
}

/// Observed outdoor temperature of one hour: readings within ±30 min of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HourObs {
    pub sum_c: f64,
    pub count: u32,
}

impl HourObs {
    pub fn mean_c(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_c / f64::from(self.count))
    }
}

/// Error of the forecasts in one lead-time bucket (forecast − observed).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeadScore {
    pub from_h: u32,
    /// 0: no upper bound.
    pub to_h: u32,
    pub count: u32,
    pub mae_k: f64,
    pub bias_k: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    pub buckets: Vec<LeadScore>,
    pub issues: usize,
    pub observed_hours: usize,
}

/// The newest issue's points from a time over a horizon.
#[derive(Clone, Debug, PartialEq)]
pub struct Ahead {
    pub source: String,
    pub issued_at_ms: i64,
    pub loaded_at_ms: i64,
    pub has_solar: bool,
    pub points: Vec<ForecastPoint>,
}

struct Inner {
    /// By load sequence.
    issues: BTreeMap<u64, StoredForecast>,
    next_seq: u64,
    /// Hour (Unix ms on the hour) → observed outdoor temperature.
    obs: BTreeMap<i64, HourObs>,
}

pub struct ForecastBook {
    table: Table,
    inner: Mutex<Inner>,
}

const ISSUE_PREFIX: &[u8] = b"f/";
const OBS_PREFIX: &[u8] = b"o/";

fn obs_key(hour_ms: i64) -> Vec<u8> {
    // Offset so negative times still sort (and never occur in practice).
    seq_key(OBS_PREFIX, (hour_ms as u64) ^ (1 << 63))
}

fn corrupt(what: &str, e: impl ToString) -> StoreError {
    StoreError::Corrupt {
        key: what.into(),
        reason: e.to_string(),
    }
}

/// The hour a reading at `time_ms` counts for: the nearest one.
pub fn nearest_hour(time_ms: i64) -> i64 {
    (time_ms + HOUR_MS / 2).div_euclid(HOUR_MS) * HOUR_MS
}

impl ForecastBook {
    pub fn load(table: Table) -> Result<Self, StoreError> {
        let mut issues = BTreeMap::new();
        for entry in table.scan_prefix(ISSUE_PREFIX) {
            let (k, v) = entry?;
            let seq = seq_of_key(&k).ok_or_else(|| corrupt("forecast key", "too short"))?;
            let f: StoredForecast =
                serde_json::from_slice(&v).map_err(|e| corrupt("forecast", e))?;
            issues.insert(seq, f);
        }
        let mut obs = BTreeMap::new();
        for entry in table.scan_prefix(OBS_PREFIX) {
            let (k, v) = entry?;
            let hour = seq_of_key(&k).ok_or_else(|| corrupt("observation key", "too short"))?;
            let o: HourObs = serde_json::from_slice(&v).map_err(|e| corrupt("observation", e))?;
            obs.insert((hour ^ (1 << 63)) as i64, o);
        }
        let next_seq = issues.keys().next_back().map_or(1, |s| s + 1);
        Ok(Self {
            table,
            inner: Mutex::new(Inner {
                issues,
                next_seq,
                obs,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The maps stay consistent whatever panicked: keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores an issue (the caller flushes before answering) and drops what
    /// falls out of the history. Returns the number of issues kept.
    pub fn insert(&self, forecast: Forecast, loaded_at_ms: i64) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let seq = inner.next_seq;
        let stored = StoredForecast {
            forecast,
            loaded_at_ms,
        };
        self.table.put_json(seq_key(ISSUE_PREFIX, seq), &stored)?;
        inner.issues.insert(seq, stored);
        inner.next_seq += 1;
        let newest = inner
            .issues
            .values()
            .map(|s| s.forecast.issued_at_ms)
            .max()
            .unwrap_or(0);
        let mut total: usize = inner.issues.values().map(|s| s.forecast.points.len()).sum();
        let drop: Vec<u64> = {
            // Oldest issues first (by issue time, then load order); never the newest.
            let mut by_age: Vec<(i64, u64, usize)> = inner
                .issues
                .iter()
                .map(|(k, s)| (s.forecast.issued_at_ms, *k, s.forecast.points.len()))
                .collect();
            by_age.sort();
            let mut count = by_age.len();
            let mut drop = Vec::new();
            for (issued, k, n) in by_age.iter().take(by_age.len().saturating_sub(1)) {
                if *issued < newest - HISTORY_MS || count > MAX_ISSUES || total > MAX_TOTAL_POINTS {
                    drop.push(*k);
                    count -= 1;
                    total -= n;
                }
            }
            drop
        };
        for k in drop {
            self.table.remove(seq_key(ISSUE_PREFIX, k))?;
            inner.issues.remove(&k);
        }
        Ok(inner.issues.len())
    }

    /// Adds the outdoor temperatures of a stored telemetry batch to the hourly
    /// observations (the caller stores each batch once, so none counts twice).
    pub fn observe(&self, batch: &TelemetryBatch) -> Result<(), StoreError> {
        let mut touched: BTreeMap<i64, HourObs> = BTreeMap::new();
        for s in &batch.snapshots {
            for r in s
                .readings
                .iter()
                .filter(|r| r.metric == Metric::OutdoorTempC)
            {
                if r.value.is_finite() && s.time_ms > 0 {
                    let o = touched.entry(nearest_hour(s.time_ms)).or_default();
                    o.sum_c += r.value;
                    o.count += 1;
                }
            }
        }
        if touched.is_empty() {
            return Ok(());
        }
        let mut inner = self.lock();
        for (hour, add) in touched {
            let o = inner.obs.entry(hour).or_default();
            o.sum_c += add.sum_c;
            o.count = o.count.saturating_add(add.count);
            let o = *o;
            self.table.put_json(obs_key(hour), &o)?;
        }
        let newest = inner.obs.keys().next_back().copied().unwrap_or(0);
        while let Some((&oldest, _)) = inner.obs.first_key_value() {
            if oldest >= newest - OBS_HISTORY_MS {
                break;
            }
            inner.obs.remove(&oldest);
            self.table.remove(obs_key(oldest))?;
        }
        Ok(())
    }

    /// The points of the newest issue known at `from_ms` (issued at or before
    /// it; if none was, the first issued after it: a feed's clock may run a
    /// little ahead of the telemetry's) from `from_ms` over `horizon_ms`:
    /// the last point at or before `from_ms` (to interpolate from), then every
    /// point up to `from_ms + horizon_ms`. `None` without any forecast.
    pub fn latest(&self, from_ms: i64, horizon_ms: i64) -> Option<Ahead> {
        let inner = self.lock();
        let known = inner
            .issues
            .iter()
            .filter(|(_, s)| s.forecast.issued_at_ms <= from_ms)
            .max_by_key(|(k, s)| (s.forecast.issued_at_ms, **k));
        let first_after = || {
            inner
                .issues
                .iter()
                .min_by_key(|(k, s)| (s.forecast.issued_at_ms, std::cmp::Reverse(**k)))
        };
        let newest = known.or_else(first_after).map(|(_, s)| s)?;
        let pts = &newest.forecast.points;
        let start = pts
            .partition_point(|p| p.time_ms <= from_ms)
            .saturating_sub(1);
        let end = from_ms.saturating_add(horizon_ms.max(0));
        let points = pts[start..]
            .iter()
            .take_while(|p| p.time_ms <= end)
            .copied()
            .collect();
        Some(Ahead {
            source: newest.forecast.source.clone(),
            issued_at_ms: newest.forecast.issued_at_ms,
            loaded_at_ms: newest.loaded_at_ms,
            has_solar: newest.forecast.has_solar,
            points,
        })
    }

    /// For the planner: the hourly points of the newest forecast issued by
    /// `from_ms` (network time), from `from_ms` over `horizon_ms` (see
    /// [`ForecastBook::latest`]); empty without a forecast.
    pub fn ahead(&self, from_ms: i64, horizon_ms: i64) -> Vec<ForecastPoint> {
        self.latest(from_ms, horizon_ms)
            .map(|a| a.points)
            .unwrap_or_default()
    }

    /// The error of every stored issue against the observations.
    pub fn score(&self) -> Score {
        let inner = self.lock();
        let issues: Vec<&Forecast> = inner.issues.values().map(|s| &s.forecast).collect();
        score(&issues, &inner.obs)
    }
}

/// Forecast error (forecast − observed) by lead-time bucket, over every point
/// of every issue whose hour has an observation. Points before their issue are
/// not forecasts and are left out; a point counts for its nearest hour.
pub fn score(issues: &[&Forecast], obs: &BTreeMap<i64, HourObs>) -> Score {
    let mut acc = [(0u32, 0.0f64, 0.0f64); LEAD_BUCKETS_H.len()];
    for f in issues {
        for p in &f.points {
            let lead_ms = p.time_ms - f.issued_at_ms;
            if lead_ms < 0 {
                continue;
            }
            let Some(seen) = obs.get(&nearest_hour(p.time_ms)).and_then(HourObs::mean_c) else {
                continue;
            };
            let lead_h = lead_ms as f64 / HOUR_MS as f64;
            let Some(b) = LEAD_BUCKETS_H.iter().position(|&(lo, hi)| {
                lead_h >= f64::from(lo) && (hi == 0 || lead_h < f64::from(hi))
            }) else {
                continue;
            };
            let e = p.outdoor_c - seen;
            acc[b].0 += 1;
            acc[b].1 += e.abs();
            acc[b].2 += e;
        }
    }
    Score {
        buckets: LEAD_BUCKETS_H
            .iter()
            .zip(acc)
            .map(|(&(from_h, to_h), (count, abs, sum))| {
                let n = f64::from(count.max(1));
                LeadScore {
                    from_h,
                    to_h,
                    count,
                    mae_k: if count == 0 { 0.0 } else { abs / n },
                    bias_k: if count == 0 { 0.0 } else { sum / n },
                }
            })
            .collect(),
        issues: issues.len(),
        observed_hours: obs.values().filter(|o| o.count > 0).count(),
    }
}

#[cfg(test)]
mod tests;
