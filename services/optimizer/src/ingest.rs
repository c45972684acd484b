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
    /// Starts the writer on the store's `telemetry` table.
    pub fn start(store: &Store) -> Result<Self, IngestError> {
        let table = store.table("telemetry")?;
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let handle = tokio::spawn(writer(store.clone(), table.clone(), rx));
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
            Ok(Err(e)) => Err(IngestError::Store(StoreError::Corrupt {
                key: "telemetry".into(),
                reason: e,
            })),
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
}

async fn writer(store: Store, table: Table, mut rx: mpsc::Receiver<Request>) {
    let mut last: HashMap<NodeId, u64> = HashMap::new();
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
                        }
                    }
                    let _ = r.reply.send(Ok(o));
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
