//! Bounded telemetry retention: raw batches are kept for
//! [`Retention::raw_keep_ms`] of network time; older ones are folded into
//! hourly aggregates per node and metric (count, mean, min, max), which are
//! kept for [`Retention::hourly_keep_ms`]. Run by the ingest writer (the
//! telemetry table's only writer) once per network hour, a bounded number of
//! batches per pass, each pass one atomic sled batch.
//!
//! Keys: `h/{node}/{hour_start_ms:be64}` → the hour's [`HourRow`] in the
//! compact form of [`encode_row`] (17 bytes a metric; rows written as JSON
//! by earlier versions, about 70 bytes a metric, are still read).
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

/// First byte of a row in the compact form, version 1. (A JSON row starts
/// with `{`.)
const ROW_V1: u8 = 1;
/// Bytes of one metric in a version 1 row.
const AGG_BYTES: usize = 17;

/// A metric's code in stored rows: its place in [`Metric::ALL`], which only
/// ever grows at its end (pinned by a test).
fn metric_code(m: Metric) -> u8 {
    Metric::ALL
        .iter()
        .position(|x| *x == m)
        .unwrap_or(u8::MAX as usize) as u8
}

/// The stored form of a row: a version byte, then per metric its code (1
/// byte), count (u32), mean, min and max (f32, about 7 significant digits:
/// 0.01 W of a 100 kW substation, 0.06 Pa of 10 bar), little-endian.
/// Near four times smaller than the JSON earlier versions wrote (564 bytes a
/// node-hour on the city, about 14 GB over the 400 days kept).
pub fn encode_row(row: &HourRow) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + row.len() * AGG_BYTES);
    out.push(ROW_V1);
    for (m, a) in row {
        out.push(metric_code(*m));
        out.extend_from_slice(&(a.count.min(u64::from(u32::MAX)) as u32).to_le_bytes());
        for v in [a.mean, a.min, a.max] {
            out.extend_from_slice(&(v as f32).to_le_bytes());
        }
    }
    out
}

/// A stored row, in either form; what is wrong with it otherwise.
pub fn decode_row(bytes: &[u8]) -> Result<HourRow, String> {
    match bytes.first() {
        Some(b'{') => serde_json::from_slice(bytes).map_err(|e| format!("JSON row: {e}")),
        Some(&ROW_V1) => {
            let body = &bytes[1..];
            if !body.len().is_multiple_of(AGG_BYTES) {
                return Err(format!(
                    "{} bytes after the version, not a whole number of {AGG_BYTES}-byte aggregates",
                    body.len()
                ));
            }
            let f = |c: &[u8], at: usize| {
                f64::from(f32::from_le_bytes([c[at], c[at + 1], c[at + 2], c[at + 3]]))
            };
            body.chunks_exact(AGG_BYTES)
                .map(|c| {
                    let m = *Metric::ALL
                        .get(usize::from(c[0]))
                        .ok_or_else(|| format!("unknown metric code {}", c[0]))?;
                    let agg = HourAgg {
                        count: u64::from(u32::from_le_bytes([c[1], c[2], c[3], c[4]])),
                        mean: f(c, 5),
                        min: f(c, 9),
                        max: f(c, 13),
                    };
                    Ok((m, agg))
                })
                .collect()
        }
        Some(v) => Err(format!("unknown row version {v}")),
        None => Err("empty row".into()),
    }
}

fn corrupt(key: &[u8], reason: String) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    }
}

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
        let mut merged: HourRow = match table.get(&key)? {
            Some(v) => decode_row(&v).map_err(|e| corrupt(&key, e))?,
            None => HourRow::new(),
        };
        for (m, a) in row {
            merged.entry(m).and_modify(|x| x.merge(&a)).or_insert(a);
        }
        batch.insert(&key, encode_row(&merged));
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
        let row = decode_row(&v).map_err(|e| corrupt(&k, e))?;
        out.push((hour, row));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_codes_never_move() {
        // Stored rows name metrics by their place in `Metric::ALL`: a new
        // metric goes at its end, never between.
        let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(
            names,
            [
                "supply_temp_c",
                "return_temp_c",
                "flow_kg_s",
                "heat_w",
                "secondary_supply_temp_c",
                "secondary_return_temp_c",
                "secondary_flow_kg_s",
                "room_temp_c",
                "outdoor_temp_c",
                "valve_position",
                "setpoint_c",
                "diff_pressure_pa",
                "pump_running",
                "building_flow_kg_s",
                "building_return_temp_c",
                "secondary_diff_pressure_pa",
                "return_flow_kg_s",
                "supply_pressure_pa",
                "return_pressure_pa",
                "makeup_flow_kg_s",
                "holding_pressure_pa",
                "tank_temp_c",
                "collector_heat_w",
            ]
        );
    }

    fn substation_hour() -> HourRow {
        let agg = |count, mean, min, max| HourAgg {
            count,
            mean,
            min,
            max,
        };
        [
            (Metric::SupplyTempC, agg(12, 92.418_3, 91.9, 93.07)),
            (Metric::ReturnTempC, agg(12, 48.25, 47.5, 49.0)),
            (Metric::FlowKgS, agg(12, 3.172_59, 2.9, 3.3)),
            (
                Metric::HeatW,
                agg(12, 1_234_567.8, 1_100_000.0, 1_300_000.0),
            ),
            (Metric::ValvePosition, agg(12, 0.625, 0.5, 0.75)),
            (
                Metric::SupplyPressurePa,
                agg(12, 612_345.6, 600_000.0, 650_000.0),
            ),
            (Metric::SetpointC, agg(12, 55.0, 55.0, 55.0)),
            (Metric::CollectorHeatW, agg(3_600, -0.0, -1.5, 1.0e-3)),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn a_row_round_trips_within_f32_and_is_near_four_times_smaller_than_json() {
        let row = substation_hour();
        let bytes = encode_row(&row);
        assert_eq!(bytes.len(), 1 + 8 * AGG_BYTES);
        let json = serde_json::to_vec(&row).unwrap();
        assert!(
            json.len() * 10 > 35 * bytes.len(),
            "json {} against {}",
            json.len(),
            bytes.len()
        );
        let back = decode_row(&bytes).unwrap();
        assert_eq!(back.len(), row.len());
        for (m, a) in &row {
            let b = back[m];
            assert_eq!(b.count, a.count, "{m:?}");
            for (x, y) in [(a.mean, b.mean), (a.min, b.min), (a.max, b.max)] {
                assert!(
                    (x - y).abs() <= 1e-7 * x.abs().max(1e-30),
                    "{m:?}: {x} against {y}"
                );
            }
        }
        // Values f32 holds exactly come back exactly.
        assert_eq!(back[&Metric::ValvePosition], row[&Metric::ValvePosition]);
    }

    #[test]
    fn rows_earlier_versions_wrote_as_json_are_read() {
        let row: HourRow = [(
            Metric::HeatW,
            HourAgg {
                count: 4,
                mean: 262.5,
                min: 240.0,
                max: 285.0,
            },
        )]
        .into_iter()
        .collect();
        let json = serde_json::to_vec(&row).unwrap();
        assert_eq!(decode_row(&json).unwrap(), row);
    }

    #[test]
    fn damaged_rows_are_refused_with_what_is_wrong() {
        let bytes = encode_row(&substation_hour());
        let cases: [(Vec<u8>, &str); 5] = [
            (vec![], "empty row"),
            (vec![7, 0], "unknown row version 7"),
            (
                bytes[..bytes.len() - 1].to_vec(),
                "not a whole number of 17-byte aggregates",
            ),
            (
                [&[ROW_V1, 200][..], &[0; 16]].concat(),
                "unknown metric code 200",
            ),
            (b"{\"heat_w\": 1}".to_vec(), "JSON row"),
        ];
        for (bytes, want) in cases {
            let err = decode_row(&bytes).unwrap_err();
            assert!(err.contains(want), "{err} lacks {want}");
        }
    }
}
