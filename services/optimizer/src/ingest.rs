//! Durable telemetry ingest, deduplicated by (gateway, sequence number).
//!
//! One writer task owns the telemetry table. It takes every request waiting in
//! its queue, writes them in one sled batch together with each gateway's
//! last stored sequence number, flushes once, and only then answers: group
//! commit, so durability costs one flush per round, not per batch.
//!
//! Keys: `b/{gateway}/{seq:be64}` → encoded batch; `l/{gateway}` → last stored seq.

use std::collections::HashMap;

use model::{NodeId, TelemetryBatch};
use store::{Batch, Store, StoreError, Table, seq_key, seq_of_key};

use crate::retention::{self, HourRow, Retention};
use tokio::sync::{mpsc, oneshot};

/// Requests waiting for the writer, at most.
pub const QUEUE_DEPTH: usize = 4096;
/// Requests written in one flush, at most.
pub const MAX_GROUP: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored; acknowledge up to `last_stored`.
    Stored { last_stored: u64 },
    /// Already stored before: acknowledge again, store nothing.
    Duplicate { last_stored: u64 },
    /// Stored, but sequence numbers were skipped (the gateway lost data).
    StoredAfterGap { last_stored: u64, missing_from: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("telemetry storage failed: {0}")]
    Store(#[from] StoreError),
    #[error("telemetry writer is not running")]
    Stopped,
    /// The group's write failed (a nearly full disk, a storage error):
    /// nothing of it was acknowledged, the gateways send it again.
    #[error("telemetry not stored: {0}")]
    NotStored(String),
}

struct Request {
    gateway: NodeId,
    batch: TelemetryBatch,
    reply: oneshot::Sender<Result<Outcome, String>>,
}

fn batch_prefix(gw: &NodeId) -> Vec<u8> {
    format!("b/{gw}/").into_bytes()
}

fn last_key(gw: &NodeId) -> Vec<u8> {
    format!("l/{gw}").into_bytes()
}

/// Handle to the writer task.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Request>,
    table: Table,
    writer: std::sync::Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Ingest {
    /// Starts the writer on the store's `telemetry` table, with the default
    /// [`Retention`].
    pub fn start(store: &Store) -> Result<Self, IngestError> {
        Self::start_with(store, Retention::default())
    }

    /// Starts the writer, keeping telemetry as `retention` says.
    pub fn start_with(store: &Store, retention: Retention) -> Result<Self, IngestError> {
        let table = store.table("telemetry")?;
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let handle = tokio::spawn(writer(store.clone(), table.clone(), rx, retention));
        Ok(Self {
            tx,
            table,
            writer: std::sync::Arc::new(std::sync::Mutex::new(Some(handle))),
        })
    }

    /// Waits until the writer has finished what was queued and released the
    /// store. Call on the last handle, after every other clone is dropped.
    pub async fn close(self) {
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        drop(self.tx);
        if let Some(h) = handle {
            let _ = h.await;
        }
    }

    /// Stores a batch durably (or recognizes it as a duplicate).
    pub async fn store(
        &self,
        gateway: NodeId,
        batch: TelemetryBatch,
    ) -> Result<Outcome, IngestError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                gateway,
                batch,
                reply,
            })
            .await
            .map_err(|_| IngestError::Stopped)?;
        match rx.await {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(e)) => Err(IngestError::NotStored(e)),
            Err(_) => Err(IngestError::Stopped),
        }
    }

    /// Highest sequence number stored for a gateway (0: none).
    pub fn last_stored(&self, gateway: &NodeId) -> Result<u64, StoreError> {
        Ok(self
            .table
            .get(last_key(gateway))?
            .and_then(|v| v.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// Stored batches of a gateway from `from_seq`, at most `limit`.
    pub fn read(
        &self,
        gateway: &NodeId,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, TelemetryBatch)>, StoreError> {
        let prefix = batch_prefix(gateway);
        let mut out = Vec::new();
        for entry in self
            .table
            .scan_from(&prefix, &seq_key(&prefix, from_seq))
            .take(limit)
        {
            let (k, v) = entry?;
            let seq = seq_of_key(&k).unwrap_or(0);
            let b = proto::decode_batch(&v).map_err(|e| StoreError::Corrupt {
                key: format!("b/{gateway}/{seq}"),
                reason: e.to_string(),
            })?;
            out.push((seq, b));
        }
        Ok(out)
    }

    /// Number of stored batches of a gateway.
    pub fn count(&self, gateway: &NodeId) -> usize {
        self.table.scan_prefix(&batch_prefix(gateway)).count()
    }

    /// A node's hourly aggregates (what the raw batches older than the
    /// retention held) with hours in `[from_ms, to_ms)`.
    pub fn hours(
        &self,
        node: &NodeId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, HourRow)>, StoreError> {
        retention::read_hours(&self.table, node.as_str(), from_ms, to_ms)
    }
}

/// Runs a retention pass off the async threads; logs what it did.
async fn retention_pass(table: &Table, now_ms: i64, cfg: Retention) -> bool {
    let t = table.clone();
    match tokio::task::spawn_blocking(move || retention::pass(&t, now_ms, &cfg)).await {
        Ok(Ok(stats)) => {
            if stats.batches_folded > 0 || stats.hours_dropped > 0 {
                tracing::info!(
                    batches_folded = stats.batches_folded,
                    hours_written = stats.hours_written,
                    hours_dropped = stats.hours_dropped,
                    undecodable = stats.undecodable,
                    more = stats.more,
                    "old telemetry folded into hourly aggregates"
                );
            }
            stats.more
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "telemetry retention pass failed: raw batches kept");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "telemetry retention pass panicked: raw batches kept");
            false
        }
    }
}

async fn writer(store: Store, table: Table, mut rx: mpsc::Receiver<Request>, retention: Retention) {
    let mut last: HashMap<NodeId, u64> = HashMap::new();
    // Newest network time stored, and when (in it) retention last ran.
    let mut newest_ms: Option<i64> = None;
    let mut retained_at_ms: Option<i64> = None;
    let mut retention_more = false;
    let batches_stored = observe::counter(
        "heatnet.telemetry.batches_stored",
        "telemetry batches stored durably",
    );
    let samples_stored = observe::counter(
        "heatnet.telemetry.samples_stored",
        "telemetry samples stored durably",
    );
    let duplicates = observe::counter(
        "heatnet.telemetry.duplicates",
        "telemetry batches received again and not stored twice",
    );
    let flushes = observe::counter(
        "heatnet.telemetry.flushes",
        "group-commit flushes of the telemetry store",
    );
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        let mut batch = Batch::default();
        let mut outcomes = Vec::with_capacity(group.len());
        let mut failed = None;
        for r in &group {
            let prev = match last.get(&r.gateway) {
                Some(&s) => s,
                None => {
                    let s = table.get(last_key(&r.gateway)).map(|v| {
                        v.and_then(|v| v.try_into().ok())
                            .map(u64::from_be_bytes)
                            .unwrap_or(0)
                    });
                    match s {
                        Ok(s) => s,
                        Err(e) => {
                            failed = Some(e.to_string());
                            break;
                        }
                    }
                }
            };
            let seq = r.batch.seq;
            let outcome = if seq <= prev {
                Outcome::Duplicate { last_stored: prev }
            } else {
                batch.insert(
                    seq_key(&batch_prefix(&r.gateway), seq),
                    proto::encode_batch(&r.batch),
                );
                batch.insert(last_key(&r.gateway), seq.to_be_bytes());
                last.insert(r.gateway.clone(), seq);
                if seq == prev + 1 {
                    Outcome::Stored { last_stored: seq }
                } else {
                    Outcome::StoredAfterGap {
                        last_stored: seq,
                        missing_from: prev + 1,
                    }
                }
            };
            outcomes.push(outcome);
        }
        let result = match failed {
            Some(e) => Err(e),
            None => match table.apply(batch) {
                Ok(()) => store
                    .flush_async()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
        };
        match result {
            Ok(()) => {
                flushes.add(1, &[]);
                for (r, o) in group.into_iter().zip(outcomes) {
                    match o {
                        Outcome::Duplicate { .. } => duplicates.add(1, &[]),
                        _ => {
                            batches_stored.add(1, &[]);
                            samples_stored.add(r.batch.sample_count() as u64, &[]);
                            let t = r.batch.snapshots.iter().map(|s| s.time_ms).max();
                            newest_ms = newest_ms.max(t);
                        }
                    }
                    let _ = r.reply.send(Ok(o));
                }
                // Once a network hour (sooner while a backlog is worked off),
                // after the answers: the pass's own writes are made durable
                // by the next group's flush, atomically.
                if let Some(now) = newest_ms
                    && (retention_more
                        || retained_at_ms.is_none_or(|t| now - t >= 3_600_000 || now < t))
                {
                    retained_at_ms = Some(now);
                    retention_more = retention_pass(&table, now, retention).await;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "telemetry write failed: nothing acknowledged");
                // Forget what we believed stored; re-read from disk next time.
                last.clear();
                for r in group {
                    let _ = r.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use model::{ActorSnapshot, Metric, Mode, Reading};

    use super::*;

    fn batch(seq: u64) -> TelemetryBatch {
        TelemetryBatch {
            seq,
            snapshots: vec![ActorSnapshot {
                actor_id: NodeId::new("s01").unwrap(),
                time_ms: 1_000 + seq as i64,
                mode: Mode::Optimizer,
                readings: vec![Reading::new(Metric::HeatW, seq as f64)],
            }],
        }
    }

    /// Raw batches past the raw keep become hourly aggregates (checked by
    /// hand: count, mean, min, max), aggregates past theirs go, the newest
    /// batch of a gateway stays whatever its age, and a backlog is worked
    /// off a bounded number of batches at a time.
    #[tokio::test]
    async fn old_telemetry_is_folded_into_hourly_aggregates_and_bounded() {
        let dir = crate::testing::scratch_dir("ingest-retention");
        let store = Store::open(&dir, &crate::testing::store_config()).unwrap();
        const H: i64 = 3_600_000;
        let retention = Retention {
            raw_keep_ms: 3 * H,
            hourly_keep_ms: 10 * H,
            max_batches_per_pass: 10,
        };
        let ingest = Ingest::start_with(&store, retention).unwrap();
        let (g1, g2) = (NodeId::new("g1").unwrap(), NodeId::new("g2").unwrap());
        let t0 = 1_000 * H;
        // g1: a batch every 15 minutes for 14 h, heat = minutes since t0;
        // g2: two batches in the first hour, then silence.
        let at = |seq: u64, node: &str, t: i64, v: f64| TelemetryBatch {
            seq,
            snapshots: vec![ActorSnapshot {
                actor_id: NodeId::new(node).unwrap(),
                time_ms: t,
                mode: Mode::Optimizer,
                readings: vec![Reading::new(Metric::HeatW, v)],
            }],
        };
        ingest
            .store(g2.clone(), at(1, "s2", t0, 1.0))
            .await
            .unwrap();
        ingest
            .store(g2.clone(), at(2, "s2", t0 + H / 2, 3.0))
            .await
            .unwrap();
        for k in 0..=(14 * 4) {
            let t = t0 + k * 15 * 60_000;
            ingest
                .store(g1.clone(), at(k as u64 + 1, "s1", t, (k * 15) as f64))
                .await
                .unwrap();
        }
        // The writer runs its pass after answering: done once it has closed.
        ingest.close().await;
        let ingest = Ingest::start_with(&store, retention).unwrap();
        // A pass once a network hour: the last at 14:00 kept raw batches
        // from 11:00 on and aggregates of the hours from 04:00 on.
        let kept: Vec<i64> = ingest
            .read(&g1, 0, 1_000)
            .unwrap()
            .iter()
            .map(|(_, b)| (b.snapshots[0].time_ms - t0) / 60_000)
            .collect();
        assert_eq!(kept.first(), Some(&(11 * 60)), "{kept:?}");
        assert_eq!(kept.len(), 13, "{kept:?}");
        let hours = ingest
            .hours(&NodeId::new("s1").unwrap(), t0, t0 + 24 * H)
            .unwrap();
        let starts: Vec<i64> = hours.iter().map(|(h, _)| (h - t0) / H).collect();
        assert_eq!(starts, (4..=10).collect::<Vec<i64>>());
        // Hour 4: minutes 240, 255, 270, 285.
        let h4 = hours[0].1[&Metric::HeatW];
        assert_eq!((h4.count, h4.min, h4.max), (4, 240.0, 285.0));
        assert!((h4.mean - 262.5).abs() < 1e-9);
        assert_eq!(hours[6].1[&Metric::HeatW].count, 4);
        // g2's newest batch stays; its older one went (its hour past the keep).
        let g2_left: Vec<u64> = ingest
            .read(&g2, 0, 10)
            .unwrap()
            .iter()
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(g2_left, vec![2]);
        assert_eq!(ingest.last_stored(&g2).unwrap(), 2);
        ingest.close().await;
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A store kept without retention (an older optimizer) is worked off
    /// a bounded number of batches per pass, one pass after each group.
    #[tokio::test]
    async fn a_backlog_of_old_telemetry_is_folded_a_bounded_number_at_a_time() {
        let dir = crate::testing::scratch_dir("ingest-backlog");
        let store = Store::open(&dir, &crate::testing::store_config()).unwrap();
        const H: i64 = 3_600_000;
        let gw = NodeId::new("g1").unwrap();
        let at = |seq: u64, t: i64| TelemetryBatch {
            seq,
            snapshots: vec![ActorSnapshot {
                actor_id: NodeId::new("s1").unwrap(),
                time_ms: t,
                mode: Mode::Optimizer,
                readings: vec![Reading::new(Metric::HeatW, 1.0)],
            }],
        };
        let keep_all = Retention {
            raw_keep_ms: 1_000 * H,
            ..Retention::default()
        };
        let ingest = Ingest::start_with(&store, keep_all).unwrap();
        for k in 0..40 {
            ingest
                .store(gw.clone(), at(k + 1, 1_000 * H + k as i64 * 15 * 60_000))
                .await
                .unwrap();
        }
        ingest.close().await;
        assert_eq!(Ingest::start_with(&store, keep_all).unwrap().count(&gw), 40);
        let bounded = Retention {
            raw_keep_ms: H,
            hourly_keep_ms: 1_000 * H,
            max_batches_per_pass: 10,
        };
        let ingest = Ingest::start_with(&store, bounded).unwrap();
        ingest.store(gw.clone(), at(41, 1_020 * H)).await.unwrap();
        ingest
            .store(gw.clone(), at(42, 1_020 * H + 60_000))
            .await
            .unwrap();
        ingest.close().await;
        // Two passes of 10: 20 of the 40 old ones left, and the 2 new ones.
        let ingest = Ingest::start_with(&store, bounded).unwrap();
        assert_eq!(ingest.count(&gw), 22);
        let hours = ingest
            .hours(&NodeId::new("s1").unwrap(), 0, i64::MAX)
            .unwrap();
        let folded: u64 = hours.iter().map(|(_, r)| r[&Metric::HeatW].count).sum();
        assert_eq!(folded, 20);
        ingest.close().await;
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A nearly full disk: nothing is stored or acknowledged, the writer
    /// keeps running, and the batch sent again is stored once there is room.
    #[tokio::test]
    async fn a_full_disk_stores_nothing_and_the_batch_sent_again_is_stored() {
        let dir = crate::testing::scratch_dir("ingest-full");
        let store = Store::open(&dir, &crate::testing::store_config()).unwrap();
        let ingest = Ingest::start(&store).unwrap();
        let gw = NodeId::new("g1").unwrap();
        store.set_min_free_bytes(u64::MAX);
        let e = ingest.store(gw.clone(), batch(1)).await.unwrap_err();
        assert!(
            matches!(&e, IngestError::NotStored(m) if m.contains("disk nearly full")),
            "{e}"
        );
        assert_eq!(ingest.last_stored(&gw).unwrap(), 0);
        store.set_min_free_bytes(0);
        assert_eq!(
            ingest.store(gw.clone(), batch(1)).await.unwrap(),
            Outcome::Stored { last_stored: 1 }
        );
        assert_eq!(ingest.last_stored(&gw).unwrap(), 1);
        ingest.close().await;
    }

    #[tokio::test]
    async fn deduplicates_counts_gaps_and_survives_reopen() {
        let dir = crate::testing::scratch_dir("ingest");
        let cfg = crate::testing::store_config();
        let gw = NodeId::new("s01").unwrap();
        {
            let store = Store::open(&dir, &cfg).unwrap();
            let ingest = Ingest::start(&store).unwrap();
            assert_eq!(
                ingest.store(gw.clone(), batch(1)).await.unwrap(),
                Outcome::Stored { last_stored: 1 }
            );
            assert_eq!(
                ingest.store(gw.clone(), batch(2)).await.unwrap(),
                Outcome::Stored { last_stored: 2 }
            );
            assert_eq!(
                ingest.store(gw.clone(), batch(2)).await.unwrap(),
                Outcome::Duplicate { last_stored: 2 }
            );
            assert_eq!(
                ingest.store(gw.clone(), batch(5)).await.unwrap(),
                Outcome::StoredAfterGap {
                    last_stored: 5,
                    missing_from: 3
                }
            );
            ingest.close().await;
        }
        let store = Store::open(&dir, &cfg).unwrap();
        let ingest = Ingest::start(&store).unwrap();
        assert_eq!(ingest.last_stored(&gw).unwrap(), 5);
        assert_eq!(
            ingest.store(gw.clone(), batch(4)).await.unwrap(),
            Outcome::Duplicate { last_stored: 5 }
        );
        let seqs: Vec<u64> = ingest
            .read(&gw, 0, 100)
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(seqs, vec![1, 2, 5]);
        assert_eq!(ingest.read(&gw, 2, 1).unwrap()[0].1, batch(2));
        assert_eq!(ingest.count(&gw), 3);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_gateways_are_grouped_and_all_stored() {
        let dir = crate::testing::scratch_dir("ingest-conc");
        let cfg = crate::testing::store_config();
        let store = Store::open(&dir, &cfg).unwrap();
        let ingest = Ingest::start(&store).unwrap();
        let mut tasks = Vec::new();
        for g in 0..8 {
            let ingest = ingest.clone();
            tasks.push(tokio::spawn(async move {
                let gw = NodeId::new(format!("g{g}")).unwrap();
                for seq in 1..=50 {
                    let o = ingest.store(gw.clone(), batch(seq)).await.unwrap();
                    assert_eq!(o, Outcome::Stored { last_stored: seq });
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        for g in 0..8 {
            assert_eq!(ingest.count(&NodeId::new(format!("g{g}")).unwrap()), 50);
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
