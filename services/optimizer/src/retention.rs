//! Bounded telemetry retention: raw batches are kept for
//! [`Retention::raw_keep_ms`] of network time; older ones are folded into
//! hourly aggregates per node and metric (count, mean, min, max), which are
//! kept for [`Retention::hourly_keep_ms`]. Run by the ingest writer (the
//! telemetry table's only writer) once per network hour, a bounded number of
//! batches per pass, each pass one atomic sled batch.
//!
//! Keys: `h/{node}/{hour_start_ms:be64}` → JSON map metric → [`HourAgg`].
//! The newest batch of every gateway is kept whatever its age: a restarted
//! optimizer reads each node's last mode from it.

use std::collections::BTreeMap;

use model::{Metric, NodeId, TelemetryBatch};
use serde::{Deserialize, Serialize};
use store::{Batch, StoreError, Table, seq_of_key};

const HOUR_MS: i64 = 3_600_000;

/// How long telemetry is kept, network ms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retention {
    /// Raw batches, as the gateways sent them (the detectors, the demand
    /// models and the control room's raw reads look back days, not weeks).
    pub raw_keep_ms: i64,
    /// Hourly aggregates of what the raw batches held.
    pub hourly_keep_ms: i64,
    /// Raw batches folded in one pass, at most (a long backlog is worked
    /// off over several passes, without stalling the ingest).
    pub max_batches_per_pass: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            raw_keep_ms: 14 * 86_400_000,
            hourly_keep_ms: 400 * 86_400_000,
            max_batches_per_pass: 5_000,
        }
    }
}

/// One metric of one node over one hour.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HourAgg {
    pub count: u64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

impl HourAgg {
    fn one(v: f64) -> Self {
        HourAgg {
            count: 1,
            mean: v,
            min: v,
            max: v,
        }
    }

    fn merge(&mut self, o: &HourAgg) {
        let n = self.count + o.count;
        if n == 0 {
            return;
        }
        self.mean = (self.mean * self.count as f64 + o.mean * o.count as f64) / n as f64;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.count = n;
    }
}

pub type HourRow = BTreeMap<Metric, HourAgg>;

fn hour_prefix(node: &str) -> Vec<u8> {
    format!("h/{node}/").into_bytes()
}

fn hour_key(node: &str, hour_ms: i64) -> Vec<u8> {
    let mut k = hour_prefix(node);
    k.extend_from_slice(&hour_ms.to_be_bytes());
    k
}

fn hour_of_key(key: &[u8]) -> Option<i64> {
    let b: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(i64::from_be_bytes(b))
}

/// Folds a batch's finite readings into hourly aggregates.
pub fn fold(batch: &TelemetryBatch, into: &mut BTreeMap<(NodeId, i64), HourRow>) {
    for snap in &batch.snapshots {
        let hour = snap.time_ms.div_euclid(HOUR_MS) * HOUR_MS;
        let row = into.entry((snap.actor_id.clone(), hour)).or_default();
        for r in snap.readings.iter().filter(|r| r.value.is_finite()) {
            row.entry(r.metric)
                .and_modify(|a| a.merge(&HourAgg::one(r.value)))
                .or_insert_with(|| HourAgg::one(r.value));
        }
    }
}

/// What a pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassStats {
    pub batches_folded: usize,
    pub hours_written: usize,
    pub hours_dropped: usize,
    /// Raw batches that did not decode (deleted with the others).
    pub undecodable: usize,
    /// The pass stopped at its bound with more to fold.
    pub more: bool,
}

/// Folds every raw batch older than `now_ms - raw_keep_ms` into the hourly
/// aggregates and deletes it; deletes aggregates older than
/// `now_ms - hourly_keep_ms`. Each gateway's newest batch is kept.
pub fn pass(table: &Table, now_ms: i64, cfg: &Retention) -> Result<PassStats, StoreError> {
    // Every gateway that ever stored: `l/{gateway}` → its newest seq.
    let mut gateways: Vec<(Vec<u8>, u64)> = Vec::new();
    for entry in table.scan_prefix(b"l/") {
        let (k, v) = entry?;
        let newest = v.try_into().map(u64::from_be_bytes).unwrap_or(0);
        let mut prefix = b"b/".to_vec();
        prefix.extend_from_slice(&k[2..]);
        prefix.push(b'/');
        gateways.push((prefix, newest));
    }
    let raw_cutoff = now_ms - cfg.raw_keep_ms;
    let hourly_cutoff = now_ms - cfg.hourly_keep_ms;
    let mut stats = PassStats::default();
    let mut batch = Batch::default();
    let mut hours: BTreeMap<(NodeId, i64), HourRow> = BTreeMap::new();
    'gateways: for (prefix, newest) in &gateways {
        for entry in table.scan_prefix(prefix) {
            let (k, v) = entry?;
            let seq = seq_of_key(&k).unwrap_or(0);
            if seq >= *newest {
                break;
            }
            match proto::decode_batch(&v) {
                Ok(b) => {
                    // Batches come in sequence, near enough in time: the
                    // first young one ends this gateway's old ones.
                    if b.snapshots.iter().any(|s| s.time_ms >= raw_cutoff) {
                        break;
                    }
                    fold(&b, &mut hours);
                }
                // Unreadable, so never read again: counted and let go, or it
                // would hold the gateway's older batches for ever.
                Err(_) => stats.undecodable += 1,
            }
            batch.remove(&k);
            stats.batches_folded += 1;
            if stats.batches_folded >= cfg.max_batches_per_pass {
                stats.more = true;
                break 'gateways;
            }
        }
    }
    let nodes: std::collections::BTreeSet<NodeId> = hours.keys().map(|(n, _)| n.clone()).collect();
    for ((node, hour), row) in hours {
        if hour < hourly_cutoff {
            continue;
        }
        let key = hour_key(node.as_str(), hour);
        let mut merged: HourRow = table.get_json(&key)?.unwrap_or_default();
        for (m, a) in row {
            merged.entry(m).and_modify(|x| x.merge(&a)).or_insert(a);
        }
        batch.insert_json(&key, &merged);
        stats.hours_written += 1;
    }
    // Aggregates past their keep, of the nodes that still report (those
    // that stopped keep theirs: a bounded amount), each node's oldest first.
    for node in nodes {
        let prefix = hour_prefix(node.as_str());
        for entry in table.scan_prefix(&prefix) {
            let (k, _) = entry?;
            if hour_of_key(&k).is_none_or(|h| h >= hourly_cutoff) {
                break;
            }
            batch.remove(&k);
            stats.hours_dropped += 1;
        }
    }
    table.apply(batch)?;
    Ok(stats)
}

/// A node's hourly aggregates with hours in `[from_ms, to_ms)`.
pub fn read_hours(
    table: &Table,
    node: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<(i64, HourRow)>, StoreError> {
    let prefix = hour_prefix(node);
    let mut out = Vec::new();
    for entry in table.scan_from(
        &prefix,
        &hour_key(node, from_ms.div_euclid(HOUR_MS) * HOUR_MS),
    ) {
        let (k, v) = entry?;
        let Some(hour) = hour_of_key(&k) else {
            continue;
        };
        if hour >= to_ms {
            break;
        }
        let row: HourRow = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
            key: String::from_utf8_lossy(&k).into_owned(),
            reason: e.to_string(),
        })?;
        out.push((hour, row));
    }
    Ok(out)
}
