//! The durable telemetry outbox.
//!
//! Batches are numbered 1, 2, 3, … per gateway. A batch and the next sequence
//! number are written in one atomic sled batch and flushed before the batch
//! counts as stored. Batches leave the outbox only when the optimizer has
//! acknowledged them (it acknowledges only what it has stored durably).
//!
//! ## When the outbox reaches its disk budget
//!
//! The outbox holds at most `budget_bytes` of encoded batches (sled's own space
//! amplification comes on top). When a new batch would not fit, the oldest run
//! of [`CONDENSE_RUN`] batches not yet condensed is **condensed**: their
//! snapshots become one snapshot per actor (readings averaged per metric, the
//! time of the run's first snapshot, the mode at the run's end) stored under the
//! run's first sequence number; the other numbers of the run stay, as empty
//! placeholder batches, so the numbering the optimizer checks stays gap-free.
//! The first `protect` pending batches (possibly in flight, possibly stored by
//! the optimizer but not yet acknowledged) are never condensed. Every condensed
//! batch is counted (`condensed_batches`, kept in sled) and, while condensed
//! data waits in the outbox, the gateway raises an `outbox_condensed` alarm.
//! Only when nothing is left to condense is a new scan refused; that too is
//! counted and logged ([`OutboxError::Full`]). Nothing is dropped silently.

use std::collections::BTreeMap;

use model::{ActorSnapshot, Metric, NodeId, Reading, TelemetryBatch};
use store::{Batch, Store, StoreError, Table, seq_key, seq_of_key};

const BATCH_PREFIX: &[u8] = b"b/";
const NEXT_SEQ: &[u8] = b"m/next_seq";
const ACKED_SEQ: &[u8] = b"m/acked_seq";
const BYTES: &[u8] = b"m/bytes";
const CONDENSED_TO: &[u8] = b"m/condensed_to";
const CONDENSED: &[u8] = b"m/condensed";

/// Batches merged into one when the outbox condenses.
pub const CONDENSE_RUN: u64 = 16;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox storage: {0}")]
    Store(#[from] StoreError),
    #[error("outbox holds an undecodable batch at seq {seq}: {reason}")]
    Corrupt { seq: u64, reason: String },
    #[error(
        "outbox is full ({pending} batches, {bytes} bytes waiting for the optimizer) and nothing is left to condense"
    )]
    Full { pending: u64, bytes: u64 },
}

/// How much an outbox may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Batches kept at most (placeholders included).
    pub max_batches: u64,
    /// Encoded bytes of pending batches at most.
    pub budget_bytes: u64,
    /// The oldest pending batches never condensed (the in-flight window).
    pub protect: u64,
}

#[derive(Clone)]
pub struct Outbox {
    store: Store,
    table: Table,
    limits: OutboxLimits,
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
    /// Encoded bytes of the pending batches.
    #[serde(default)]
    pub bytes: u64,
    /// Batches whose snapshots were folded into an earlier batch, ever.
    #[serde(default)]
    pub condensed_batches: u64,
    /// Highest sequence number condensed so far (0: none).
    #[serde(default)]
    pub condensed_to: u64,
}

impl OutboxInfo {
    /// Condensed data is still waiting to be delivered.
    pub fn holds_condensed(&self) -> bool {
        self.first_pending
            .is_some_and(|first| self.condensed_to >= first)
    }
}

fn read_u64(table: &Table, key: &[u8]) -> Result<Option<u64>, StoreError> {
    Ok(table
        .get(key)?
        .and_then(|v| v.try_into().ok())
        .map(u64::from_be_bytes))
}

/// One snapshot per actor for a run of snapshots: readings averaged per metric,
/// the first time, the last mode. Actors keep their first-seen order.
pub fn condense(snapshots: &[ActorSnapshot]) -> Vec<ActorSnapshot> {
    let mut order: Vec<NodeId> = Vec::new();
    /// Per metric: sum of the values and their count.
    type Sums = BTreeMap<Metric, (f64, u32)>;
    let mut per: BTreeMap<NodeId, (ActorSnapshot, Sums)> = BTreeMap::new();
    for s in snapshots {
        let e = per.entry(s.actor_id.clone()).or_insert_with(|| {
            order.push(s.actor_id.clone());
            (s.clone(), BTreeMap::new())
        });
        e.0.mode = s.mode;
        e.0.time_ms = e.0.time_ms.min(s.time_ms);
        for r in &s.readings {
            let acc = e.1.entry(r.metric).or_insert((0.0, 0));
            acc.0 += r.value;
            acc.1 += 1;
        }
    }
    order
        .into_iter()
        .filter_map(|id| per.remove(&id))
        .map(|(mut snap, sums)| {
            snap.readings = sums
                .into_iter()
                .map(|(m, (sum, n))| Reading::new(m, sum / f64::from(n)))
                .collect();
            snap
        })
        .collect()
}

impl Outbox {
    pub fn open(store: &Store, limits: OutboxLimits) -> Result<Self, OutboxError> {
        let ob = Self {
            store: store.clone(),
            table: store.table("outbox")?,
            limits,
        };
        // Outboxes written before byte accounting: count once.
        if read_u64(&ob.table, BYTES)?.is_none() {
            let mut bytes = 0u64;
            for entry in ob.table.scan_prefix(BATCH_PREFIX) {
                bytes += entry?.1.len() as u64;
            }
            ob.table.insert(BYTES, bytes.to_be_bytes())?;
        }
        Ok(ob)
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
            bytes: read_u64(&self.table, BYTES)?.unwrap_or(0),
            condensed_batches: read_u64(&self.table, CONDENSED)?.unwrap_or(0),
            condensed_to: read_u64(&self.table, CONDENSED_TO)?.unwrap_or(0),
        })
    }

    /// Appends a batch and makes it durable; returns its sequence number.
    /// Condenses the oldest data first if the batch would not fit the budget.
    pub async fn append(&self, snapshots: Vec<ActorSnapshot>) -> Result<u64, OutboxError> {
        let mut info = self.info()?;
        let seq = info.next_seq;
        let batch = TelemetryBatch { seq, snapshots };
        let encoded = proto::encode_batch(&batch);
        let size = encoded.len() as u64;
        while info.bytes + size > self.limits.budget_bytes {
            if !self.condense_oldest(&info)? {
                return Err(OutboxError::Full {
                    pending: info.pending,
                    bytes: info.bytes,
                });
            }
            info = self.info()?;
        }
        if info.pending >= self.limits.max_batches {
            return Err(OutboxError::Full {
                pending: info.pending,
                bytes: info.bytes,
            });
        }
        let mut b = Batch::default();
        b.insert(seq_key(BATCH_PREFIX, seq), encoded);
        b.insert(NEXT_SEQ, (seq + 1).to_be_bytes());
        b.insert(BYTES, (info.bytes + size).to_be_bytes());
        self.table.apply(b)?;
        self.store.flush_async().await?;
        Ok(seq)
    }

    /// Condenses the oldest run of [`CONDENSE_RUN`] batches not yet condensed
    /// and outside the protected window. Returns false if there is none.
    fn condense_oldest(&self, info: &OutboxInfo) -> Result<bool, OutboxError> {
        let Some(first) = info.first_pending else {
            return Ok(false);
        };
        let from = (first + self.limits.protect).max(info.condensed_to + 1);
        let run = self.pending_from(from, CONDENSE_RUN as usize)?;
        if (run.len() as u64) < CONDENSE_RUN || run[run.len() - 1].seq != from + CONDENSE_RUN - 1 {
            return Ok(false);
        }
        let all: Vec<ActorSnapshot> = run.iter().flat_map(|b| b.snapshots.clone()).collect();
        let old_bytes: u64 = run
            .iter()
            .map(|b| proto::encode_batch(b).len() as u64)
            .sum();
        let mut b = Batch::default();
        let mut new_bytes = 0u64;
        for (i, old) in run.iter().enumerate() {
            let snapshots = if i == 0 { condense(&all) } else { Vec::new() };
            let enc = proto::encode_batch(&TelemetryBatch {
                seq: old.seq,
                snapshots,
            });
            new_bytes += enc.len() as u64;
            b.insert(seq_key(BATCH_PREFIX, old.seq), enc);
        }
        let last = from + CONDENSE_RUN - 1;
        let bytes = (info.bytes + new_bytes).saturating_sub(old_bytes);
        b.insert(BYTES, bytes.to_be_bytes());
        b.insert(CONDENSED_TO, last.to_be_bytes());
        b.insert(
            CONDENSED,
            (info.condensed_batches + CONDENSE_RUN - 1).to_be_bytes(),
        );
        self.table.apply(b)?;
        tracing::warn!(
            from_seq = from,
            to_seq = last,
            bytes_before = info.bytes,
            bytes_after = bytes,
            condensed_batches = info.condensed_batches + CONDENSE_RUN - 1,
            "outbox at its disk budget: oldest batches condensed into averages"
        );
        Ok(true)
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
        let mut freed = 0u64;
        for entry in self.table.scan_prefix(BATCH_PREFIX) {
            let (k, v) = entry?;
            match seq_of_key(&k) {
                Some(s) if s <= seq => {
                    freed += v.len() as u64;
                    b.remove(k);
                    any = true;
                }
                _ => break,
            }
        }
        if freed > 0 {
            let bytes = read_u64(&self.table, BYTES)?.unwrap_or(0);
            b.insert(BYTES, bytes.saturating_sub(freed).to_be_bytes());
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

    fn gateway_store(dir: &std::path::Path) -> Store {
        Store::open(
            dir,
            &StoreConfig {
                kind: "gateway".into(),
                identity: "s01".into(),
                cache_bytes: 1 << 20,
                ..Default::default()
            },
        )
        .unwrap()
    }

    fn open(dir: &std::path::Path, max: u64) -> (Store, Outbox) {
        let store = gateway_store(dir);
        let ob = Outbox::open(
            &store,
            OutboxLimits {
                max_batches: max,
                budget_bytes: u64::MAX,
                protect: 4,
            },
        )
        .unwrap();
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
                last_pending: Some(5),
                bytes: info.bytes,
                condensed_batches: 0,
                condensed_to: 0,
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
            Err(OutboxError::Full { pending: 10, .. })
        ));
        ob.acknowledge(3).unwrap();
        assert_eq!(ob.append(snap(1)).await.unwrap(), 11);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn snap2(t: i64, v: f64) -> Vec<ActorSnapshot> {
        ["s01", "s01-b01"]
            .iter()
            .map(|id| ActorSnapshot {
                actor_id: NodeId::new(*id).unwrap(),
                time_ms: t,
                mode: if t < 1_100 {
                    Mode::Optimizer
                } else {
                    Mode::Fallback
                },
                readings: vec![
                    Reading::new(Metric::HeatW, v),
                    Reading::new(Metric::RoomTempC, 20.0 + v / 100.0),
                ],
            })
            .collect()
    }

    #[test]
    fn condensing_averages_per_actor_and_metric() {
        let all: Vec<ActorSnapshot> = (0..4).flat_map(|i| snap2(1_000 + i, i as f64)).collect();
        let c = condense(&all);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].actor_id.as_str(), "s01");
        assert_eq!(c[0].time_ms, 1_000);
        assert_eq!(
            c[0].readings,
            vec![
                Reading::new(Metric::HeatW, 1.5),
                Reading::new(Metric::RoomTempC, 20.015)
            ]
        );
    }

    #[tokio::test]
    async fn at_its_budget_the_outbox_condenses_the_oldest_data_and_counts_it() {
        let dir =
            std::env::temp_dir().join(format!("heatnet-outbox-budget-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = gateway_store(&dir);
        let one = proto::encode_batch(&TelemetryBatch {
            seq: 1,
            snapshots: snap2(1_000, 1.0),
        })
        .len() as u64;
        let budget = 100 * one;
        let limits = OutboxLimits {
            max_batches: 100_000,
            budget_bytes: budget,
            protect: 8,
        };
        let ob = Outbox::open(&store, limits).unwrap();
        // The optimizer is away: 400 scans, four times the budget.
        let n = 400u64;
        for i in 0..n {
            let seq = ob.append(snap2(1_000 + i as i64, i as f64)).await.unwrap();
            assert_eq!(seq, i + 1, "numbering");
        }
        let info = ob.info().unwrap();
        assert!(
            info.bytes <= budget,
            "{} bytes over a {budget} budget",
            info.bytes
        );
        assert!(info.condensed_batches > 0);
        assert_eq!(info.condensed_batches % (CONDENSE_RUN - 1), 0);
        assert!(info.holds_condensed());
        // Every number is still there, in order; nothing was dropped.
        let all = ob.pending_from(1, usize::MAX).unwrap();
        let seqs: Vec<u64> = all.iter().map(|b| b.seq).collect();
        assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
        // The protected window is untouched.
        for b in &all[..8] {
            assert_eq!(
                b.snapshots,
                snap2(1_000 + b.seq as i64 - 1, (b.seq - 1) as f64)
            );
        }
        // Each condensed run: one averaged snapshot per actor, then placeholders.
        let runs = info.condensed_batches / (CONDENSE_RUN - 1);
        assert_eq!(info.condensed_to, 8 + runs * CONDENSE_RUN);
        for r in 0..runs {
            let first = 9 + r * CONDENSE_RUN;
            let head = &all[(first - 1) as usize];
            assert_eq!(head.snapshots.len(), 2);
            let mean = (first - 1) as f64 + (CONDENSE_RUN - 1) as f64 / 2.0;
            let heat = head.snapshots[0].readings[0].value;
            assert!((heat - mean).abs() < 1e-9, "run {r}: {heat} vs {mean}");
            assert_eq!(head.snapshots[0].time_ms, 1_000 + first as i64 - 1);
            for k in 1..CONDENSE_RUN {
                assert!(all[(first - 1 + k) as usize].snapshots.is_empty());
            }
        }
        // Samples after the condensed region are intact.
        let tail = &all[(info.condensed_to) as usize..];
        assert!(
            tail.iter()
                .all(|b| b.snapshots.len() == 2 && b.snapshots[0].readings.len() == 2)
        );
        // Delivered: the alarm condition ends, the bytes are freed.
        ob.acknowledge(n).unwrap();
        let info = ob.info().unwrap();
        assert!(!info.holds_condensed());
        assert_eq!(info.bytes, 0);
        drop(ob);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn with_nothing_left_to_condense_a_scan_is_refused_not_dropped_silently() {
        let dir = std::env::temp_dir().join(format!("heatnet-outbox-tiny-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = gateway_store(&dir);
        let one = proto::encode_batch(&TelemetryBatch {
            seq: 1,
            snapshots: snap2(1_000, 1.0),
        })
        .len() as u64;
        let ob = Outbox::open(
            &store,
            OutboxLimits {
                max_batches: 100_000,
                budget_bytes: 20 * one,
                protect: 16,
            },
        )
        .unwrap();
        let mut refused = 0;
        for i in 0..40 {
            match ob.append(snap2(1_000 + i, 1.0)).await {
                Ok(_) => {}
                Err(OutboxError::Full { .. }) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(refused > 0);
        let info = ob.info().unwrap();
        assert_eq!(info.next_seq - 1, info.pending, "numbering has no hole");
        drop(ob);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
