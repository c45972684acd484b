//! The durable telemetry outbox.
//!
//! Batches are numbered 1, 2, 3, … per gateway. A batch and the next sequence
//! number are written in one atomic sled batch and flushed before the batch
//! counts as stored. Batches leave the outbox only when the optimizer has
//! acknowledged them (it acknowledges only what it has stored durably).

use model::{ActorSnapshot, TelemetryBatch};
use store::{Batch, Store, StoreError, Table, seq_key, seq_of_key};

const BATCH_PREFIX: &[u8] = b"b/";
const NEXT_SEQ: &[u8] = b"m/next_seq";
const ACKED_SEQ: &[u8] = b"m/acked_seq";

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox storage: {0}")]
    Store(#[from] StoreError),
    #[error("outbox holds an undecodable batch at seq {seq}: {reason}")]
    Corrupt { seq: u64, reason: String },
    #[error("outbox is full ({pending} batches waiting for the optimizer)")]
    Full { pending: u64 },
}

#[derive(Clone)]
pub struct Outbox {
    store: Store,
    table: Table,
    max_batches: u64,
}

/// What an outbox holds, for operators and tests (`heatnet-gateway inspect`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutboxInfo {
    /// The next batch will get this number.
    pub next_seq: u64,
    /// Highest sequence number the optimizer acknowledged.
    pub acked_seq: u64,
    pub pending: u64,
    pub first_pending: Option<u64>,
    pub last_pending: Option<u64>,
}

fn read_u64(table: &Table, key: &[u8]) -> Result<Option<u64>, StoreError> {
    Ok(table
        .get(key)?
        .and_then(|v| v.try_into().ok())
        .map(u64::from_be_bytes))
}

impl Outbox {
    pub fn open(store: &Store, max_batches: u64) -> Result<Self, OutboxError> {
        Ok(Self {
            store: store.clone(),
            table: store.table("outbox")?,
            max_batches,
        })
    }

    pub fn info(&self) -> Result<OutboxInfo, OutboxError> {
        let next_seq = read_u64(&self.table, NEXT_SEQ)?.unwrap_or(1);
        let acked_seq = read_u64(&self.table, ACKED_SEQ)?.unwrap_or(0);
        let first = self.table.scan_prefix(BATCH_PREFIX).next().transpose()?;
        let last = self.table.last_with_prefix(BATCH_PREFIX)?;
        let first_pending = first.and_then(|(k, _)| seq_of_key(&k));
        let last_pending = last.and_then(|(k, _)| seq_of_key(&k));
        let pending = match (first_pending, last_pending) {
            (Some(a), Some(b)) => b - a + 1,
            _ => 0,
        };
        Ok(OutboxInfo {
            next_seq,
            acked_seq,
            pending,
            first_pending,
            last_pending,
        })
    }

    /// Appends a batch and makes it durable; returns its sequence number.
    pub async fn append(&self, snapshots: Vec<ActorSnapshot>) -> Result<u64, OutboxError> {
        let info = self.info()?;
        if info.pending >= self.max_batches {
            return Err(OutboxError::Full {
                pending: info.pending,
            });
        }
        let seq = info.next_seq;
        let batch = TelemetryBatch { seq, snapshots };
        let mut b = Batch::default();
        b.insert(seq_key(BATCH_PREFIX, seq), proto::encode_batch(&batch));
        b.insert(NEXT_SEQ, (seq + 1).to_be_bytes());
        self.table.apply(b)?;
        self.store.flush_async().await?;
        Ok(seq)
    }

    /// Batches with `seq >= from`, in order, at most `limit`.
    pub fn pending_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<TelemetryBatch>, OutboxError> {
        let mut out = Vec::new();
        for entry in self
            .table
            .scan_from(BATCH_PREFIX, &seq_key(BATCH_PREFIX, from))
            .take(limit)
        {
            let (k, v) = entry?;
            let seq = seq_of_key(&k).unwrap_or(0);
            let batch = proto::decode_batch(&v).map_err(|e| OutboxError::Corrupt {
                seq,
                reason: e.to_string(),
            })?;
            out.push(batch);
        }
        Ok(out)
    }

    /// The optimizer stored everything up to `seq`: forget it.
    pub fn acknowledge(&self, seq: u64) -> Result<(), OutboxError> {
        let mut b = Batch::default();
        let mut any = false;
        for entry in self.table.scan_prefix(BATCH_PREFIX) {
            let (k, _) = entry?;
            match seq_of_key(&k) {
                Some(s) if s <= seq => {
                    b.remove(k);
                    any = true;
                }
                _ => break,
            }
        }
        let acked = read_u64(&self.table, ACKED_SEQ)?.unwrap_or(0);
        if seq > acked {
            b.insert(ACKED_SEQ, seq.to_be_bytes());
            any = true;
        }
        if any {
            self.table.apply(b)?;
        }
        Ok(())
    }

    /// The optimizer has stored up to `seq` but our numbering is behind it (our
    /// local state was lost or replaced): continue after it, so new batches are
    /// not mistaken for duplicates. Returns true if the numbering moved.
    pub async fn skip_to_after(&self, seq: u64) -> Result<bool, OutboxError> {
        let info = self.info()?;
        if info.next_seq > seq {
            return Ok(false);
        }
        let mut b = Batch::default();
        b.insert(NEXT_SEQ, (seq + 1).to_be_bytes());
        self.table.apply(b)?;
        self.store.flush_async().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use model::{Metric, Mode, NodeId, Reading};
    use store::StoreConfig;

    use super::*;

    fn snap(t: i64) -> Vec<ActorSnapshot> {
        vec![ActorSnapshot {
            actor_id: NodeId::new("s01").unwrap(),
            time_ms: t,
            mode: Mode::Fallback,
            readings: vec![Reading::new(Metric::HeatW, 1.0)],
        }]
    }

    fn open(dir: &std::path::Path, max: u64) -> (Store, Outbox) {
        let store = Store::open(
            dir,
            &StoreConfig {
                kind: "gateway".into(),
                identity: "s01".into(),
                cache_bytes: 1 << 20,
            },
        )
        .unwrap();
        let ob = Outbox::open(&store, max).unwrap();
        (store, ob)
    }

    #[tokio::test]
    async fn numbers_without_gaps_survives_reopen_and_forgets_only_acked() {
        let dir = std::env::temp_dir().join(format!("heatnet-outbox-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let (_s, ob) = open(&dir, 100);
            for i in 1..=5 {
                assert_eq!(ob.append(snap(1000 + i)).await.unwrap(), i as u64);
            }
            ob.acknowledge(2).unwrap();
        }
        let (_s, ob) = open(&dir, 100);
        let info = ob.info().unwrap();
        assert_eq!(
            info,
            OutboxInfo {
                next_seq: 6,
                acked_seq: 2,
                pending: 3,
                first_pending: Some(3),
                last_pending: Some(5)
            }
        );
        let seqs: Vec<u64> = ob
            .pending_from(4, 10)
            .unwrap()
            .iter()
            .map(|b| b.seq)
            .collect();
        assert_eq!(seqs, vec![4, 5]);
        assert_eq!(ob.append(snap(2000)).await.unwrap(), 6);
        // A stale acknowledgement does not move the acked mark back.
        ob.acknowledge(1).unwrap();
        assert_eq!(ob.info().unwrap().acked_seq, 2);
        // Numbering jumps past what the optimizer already holds.
        assert!(ob.skip_to_after(40).await.unwrap());
        assert_eq!(ob.append(snap(3000)).await.unwrap(), 41);
        assert!(!ob.skip_to_after(10).await.unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn refuses_to_grow_past_its_limit() {
        let dir = std::env::temp_dir().join(format!("heatnet-outbox-full-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (_s, ob) = open(&dir, 10);
        for _ in 0..10 {
            ob.append(snap(1)).await.unwrap();
        }
        assert!(matches!(
            ob.append(snap(1)).await,
            Err(OutboxError::Full { pending: 10 })
        ));
        ob.acknowledge(3).unwrap();
        assert_eq!(ob.append(snap(1)).await.unwrap(), 11);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
