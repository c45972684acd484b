//! The ledger of hours below 18 °C: per building and network-time day (China
//! Standard Time, UTC+8), how long its room was below
//! [`crate::core::ROOM_ALARM_C`], how long it was known, and how long it was
//! unknown. Persisted in sled, bounded to [`MAX_DAYS`] days.
//!
//! Time weighting: between two consecutive room readings the temperature is
//! taken to move linearly, and the share of the interval below 18 °C is
//! counted as cold (17 °C then 19 °C an hour later: half an hour cold).
//! Intervals are split at local midnight. An interval longer than
//! [`GAP_LIMIT_MS`] is unknown, neither cold nor warm. A reading at or before
//! the building's last one (a duplicate or a replay) changes nothing, so no
//! interval is counted twice.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use store::{Batch, StoreError, Table};

/// Readings further apart than this leave the time between them unknown, ms.
pub const GAP_LIMIT_MS: i64 = 15 * 60_000;
/// Days kept; older days are forgotten.
pub const MAX_DAYS: i64 = 400;
/// Local time: China Standard Time, UTC+8.
pub const LOCAL_OFFSET_MS: i64 = 8 * 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// One building's day.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DayEntry {
    pub cold_ms: i64,
    pub known_ms: i64,
    pub unknown_ms: i64,
    /// Lowest reading of the day, °C.
    pub min_room_temp_c: Option<f64>,
}

/// A day of the ledger as the control room sees it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LedgerDay {
    pub building_id: String,
    /// Days since 1970-01-01 in local time.
    pub day: i64,
    pub entry: DayEntry,
}

/// The local day (days since 1970-01-01, UTC+8) of a network time.
pub fn local_day(time_ms: i64) -> i64 {
    (time_ms + LOCAL_OFFSET_MS).div_euclid(DAY_MS)
}

/// Network time (Unix ms) at which a local day starts.
pub fn day_start_ms(day: i64) -> i64 {
    day * DAY_MS - LOCAL_OFFSET_MS
}

/// "YYYY-MM-DD" of a day number (proleptic Gregorian).
pub fn format_day(day: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day number of "YYYY-MM-DD"; `Err` says what is wrong.
pub fn parse_day(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not a date YYYY-MM-DD");
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let y: i64 = y.parse().map_err(|_| bad())?;
    let m: i64 = m.parse().map_err(|_| bad())?;
    let d: i64 = d.parse().map_err(|_| bad())?;
    if !(1..=12).contains(&m) || d < 1 {
        return Err(bad());
    }
    // days_from_civil
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let day = era * 146_097 + doe - 719_468;
    if format_day(day) != s {
        return Err(format!("{s:?} is not a day of the calendar"));
    }
    Ok(day)
}

/// The last reading of a building.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Last {
    time_ms: i64,
    room_c: f64,
}

pub struct Ledger {
    table: Table,
    threshold_c: f64,
    last: BTreeMap<String, Last>,
    days: BTreeMap<(String, i64), DayEntry>,
    dirty_last: BTreeSet<String>,
    dirty_days: BTreeSet<(String, i64)>,
    newest_day: Option<i64>,
    /// Days older than [`MAX_DAYS`] may be held: set when the newest day
    /// moves on or an older one is written, so that [`Ledger::persist`]
    /// scans all the days once a network day, not on every batch (it did:
    /// on the city 2,493 buildings × the days so far per batch, the
    /// optimizer's main cost by day 20 of a season).
    prune_due: bool,
}

fn day_key(building: &str, day: i64) -> Vec<u8> {
    let mut k = b"d/".to_vec();
    k.extend_from_slice(building.as_bytes());
    k.push(0);
    k.extend_from_slice(&day.to_be_bytes());
    k
}

fn last_key(building: &str) -> Vec<u8> {
    let mut k = b"l/".to_vec();
    k.extend_from_slice(building.as_bytes());
    k
}

impl Ledger {
    /// Loads the ledger from its table; `threshold_c`: what counts as cold.
    pub fn load(table: Table, threshold_c: f64) -> Result<Self, StoreError> {
        let corrupt = |what: &str, e: String| StoreError::Corrupt {
            key: what.into(),
            reason: e,
        };
        let mut days = BTreeMap::new();
        for entry in table.scan_prefix(b"d/") {
            let (k, v) = entry?;
            let rest = &k[2..];
            let Some(split) = rest.iter().position(|b| *b == 0) else {
                return Err(corrupt("ledger day", "key without a separator".into()));
            };
            let building = String::from_utf8(rest[..split].to_vec())
                .map_err(|e| corrupt("ledger day", e.to_string()))?;
            let day_bytes: [u8; 8] = rest[split + 1..]
                .try_into()
                .map_err(|_| corrupt("ledger day", "day is not 8 bytes".into()))?;
            let e: DayEntry =
                serde_json::from_slice(&v).map_err(|e| corrupt("ledger day", e.to_string()))?;
            days.insert((building, i64::from_be_bytes(day_bytes)), e);
        }
        let mut last = BTreeMap::new();
        for entry in table.scan_prefix(b"l/") {
            let (k, v) = entry?;
            let building = String::from_utf8(k[2..].to_vec())
                .map_err(|e| corrupt("ledger last", e.to_string()))?;
            let l: Last =
                serde_json::from_slice(&v).map_err(|e| corrupt("ledger last", e.to_string()))?;
            last.insert(building, l);
        }
        let newest_day = days.keys().map(|(_, d)| *d).max();
        Ok(Self {
            table,
            threshold_c,
            last,
            days,
            dirty_last: BTreeSet::new(),
            dirty_days: BTreeSet::new(),
            newest_day,
            prune_due: true,
        })
    }

    /// Takes one room reading of a building at network time `time_ms`.
    /// Returns false if it was at or before the building's last reading
    /// (ignored).
    pub fn record(&mut self, building: &str, time_ms: i64, room_c: f64) -> bool {
        if !room_c.is_finite() {
            return false;
        }
        let prev = self.last.get(building).copied();
        if prev.is_some_and(|p| time_ms <= p.time_ms) {
            return false;
        }
        self.last
            .insert(building.to_string(), Last { time_ms, room_c });
        self.dirty_last.insert(building.to_string());
        let day = local_day(time_ms);
        {
            let e = self.entry(building, day);
            e.min_room_temp_c = Some(e.min_room_temp_c.map_or(room_c, |m| m.min(room_c)));
        }
        let Some(p) = prev else {
            return true;
        };
        let gap = time_ms - p.time_ms > GAP_LIMIT_MS;
        // Split the interval at local midnights (a gap longer than the days
        // kept only fills the days kept).
        let mut a = p
            .time_ms
            .max(day_start_ms(local_day(time_ms) - MAX_DAYS + 1));
        while a < time_ms {
            let b = day_start_ms(local_day(a) + 1).min(time_ms);
            let span = b - a;
            let d = local_day(a);
            if gap {
                self.entry(building, d).unknown_ms += span;
            } else {
                let total = (time_ms - p.time_ms) as f64;
                let at = |t: i64| p.room_c + (room_c - p.room_c) * (t - p.time_ms) as f64 / total;
                let cold = cold_share(at(a), at(b), self.threshold_c);
                let e = self.entry(building, d);
                e.known_ms += span;
                e.cold_ms += (cold * span as f64).round() as i64;
            }
            a = b;
        }
        true
    }

    fn entry(&mut self, building: &str, day: i64) -> &mut DayEntry {
        match self.newest_day {
            Some(n) if day <= n => self.prune_due |= day < n - MAX_DAYS + 1,
            _ => {
                self.newest_day = Some(day);
                self.prune_due = true;
            }
        }
        self.dirty_days.insert((building.to_string(), day));
        self.days.entry((building.to_string(), day)).or_default()
    }

    /// Writes what changed (and forgets days older than [`MAX_DAYS`]) in one
    /// atomic batch; the caller flushes the store.
    pub fn persist(&mut self) -> Result<(), StoreError> {
        if self.dirty_days.is_empty() && self.dirty_last.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::default();
        if let Some(newest) = self.newest_day.filter(|_| self.prune_due) {
            self.prune_due = false;
            let oldest_kept = newest - MAX_DAYS + 1;
            let old: Vec<(String, i64)> = self
                .days
                .keys()
                .filter(|(_, d)| *d < oldest_kept)
                .cloned()
                .collect();
            for k in old {
                self.days.remove(&k);
                self.dirty_days.remove(&k);
                batch.remove(day_key(&k.0, k.1));
            }
        }
        for k in std::mem::take(&mut self.dirty_days) {
            if let Some(e) = self.days.get(&k) {
                batch.insert_json(day_key(&k.0, k.1), e);
            }
        }
        for b in std::mem::take(&mut self.dirty_last) {
            if let Some(l) = self.last.get(&b) {
                batch.insert_json(last_key(&b), l);
            }
        }
        self.table.apply(batch)
    }

    /// Days `from..=to` (either open), buildings whose id starts with `prefix`,
    /// ordered by building then day; at most `limit` rows.
    pub fn query(
        &self,
        from: Option<i64>,
        to: Option<i64>,
        prefix: &str,
        limit: usize,
    ) -> Vec<LedgerDay> {
        self.days
            .iter()
            .filter(|((b, d), _)| {
                b.starts_with(prefix) && from.is_none_or(|f| *d >= f) && to.is_none_or(|t| *d <= t)
            })
            .take(limit)
            .map(|((b, d), e)| LedgerDay {
                building_id: b.clone(),
                day: *d,
                entry: e.clone(),
            })
            .collect()
    }
}

/// Share of a linear segment from `a` to `b` that lies below `threshold`.
fn cold_share(a: f64, b: f64, threshold: f64) -> f64 {
    match (a < threshold, b < threshold) {
        (true, true) => 1.0,
        (false, false) => 0.0,
        _ => {
            // The crossing point, as a share of the segment from `a`.
            let x = (threshold - a) / (b - a);
            if a < threshold { x } else { 1.0 - x }
        }
    }
}

#[cfg(test)]
mod tests {
    use store::Store;

    use super::*;

    const H: i64 = 3_600_000;

    fn open(tag: &str) -> (std::path::PathBuf, Store) {
        let dir = crate::testing::scratch_dir(&format!("ledger-{tag}"));
        let store = Store::open(&dir, &crate::testing::store_config()).unwrap();
        (dir, store)
    }

    #[test]
    fn days_format_and_parse() {
        assert_eq!(format_day(0), "1970-01-01");
        assert_eq!(parse_day("1970-01-01"), Ok(0));
        assert_eq!(parse_day("2026-11-23"), Ok(20_780));
        assert_eq!(format_day(20_780), "2026-11-23");
        assert_eq!(
            parse_day("2024-02-29").map(format_day),
            Ok("2024-02-29".into())
        );
        assert!(parse_day("2025-02-29").is_err());
        assert!(parse_day("2025-13-01").is_err());
        assert!(parse_day("25-1-1").is_err());
        // Local midnight is 16:00 UTC the day before.
        assert_eq!(day_start_ms(20_780), 20_780 * 86_400_000 - 8 * H);
        assert_eq!(local_day(day_start_ms(20_780)), 20_780);
        assert_eq!(local_day(day_start_ms(20_780) - 1), 20_779);
    }

    #[test]
    fn cold_time_is_weighted_linearly_between_readings() {
        assert_eq!(cold_share(17.0, 17.5, 18.0), 1.0);
        assert_eq!(cold_share(19.0, 18.0, 18.0), 0.0);
        assert_eq!(cold_share(17.0, 19.0, 18.0), 0.5);
        assert!((cold_share(20.0, 17.0, 18.0) - 1.0 / 3.0).abs() < 1e-12);
        let (dir, store) = open("weights");
        let mut l = Ledger::load(store.table("ledger").unwrap(), 18.0).unwrap();
        let d = 20_780;
        let t0 = day_start_ms(d) + 6 * H;
        // 17 °C at 06:00, 19 °C at 06:12: 6 minutes cold. Then 19 → 16 over
        // 06:12–06:24 (1/3 above 18): 8 minutes cold.
        let m = 60_000;
        assert!(l.record("b1", t0, 17.0));
        assert!(l.record("b1", t0 + 12 * m, 19.0));
        assert!(l.record("b1", t0 + 24 * m, 16.0));
        let e = &l.query(None, None, "", 10)[0].entry;
        assert_eq!(e.cold_ms, 14 * m);
        assert_eq!(e.known_ms, 24 * m);
        assert_eq!(e.unknown_ms, 0);
        assert_eq!(e.min_room_temp_c, Some(16.0));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn duplicates_and_replays_count_once_and_gaps_are_unknown() {
        let (dir, store) = open("dups");
        let mut l = Ledger::load(store.table("ledger").unwrap(), 18.0).unwrap();
        let d = 20_780;
        let t0 = day_start_ms(d) + 6 * H;
        assert!(l.record("b1", t0, 17.0));
        assert!(l.record("b1", t0 + 10 * 60_000, 17.0));
        // The same batch again, and an older one: ignored.
        assert!(!l.record("b1", t0 + 10 * 60_000, 17.0));
        assert!(!l.record("b1", t0 + 5 * 60_000, 17.0));
        // A 20-minute gap (over the 15-minute limit): unknown, not cold.
        assert!(l.record("b1", t0 + 30 * 60_000, 17.0));
        let e = &l.query(Some(d), Some(d), "b", 10)[0].entry;
        assert_eq!(e.cold_ms, 10 * 60_000);
        assert_eq!(e.known_ms, 10 * 60_000);
        assert_eq!(e.unknown_ms, 20 * 60_000);
        assert!(!l.record("b1", t0 + 31 * 60_000, f64::NAN));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn intervals_split_at_local_midnight_persist_and_old_days_go() {
        let (dir, store) = open("midnight");
        let d = 20_780;
        let midnight = day_start_ms(d + 1);
        {
            let mut l = Ledger::load(store.table("ledger").unwrap(), 18.0).unwrap();
            // 23:54 → 00:06 at 17 °C: 6 minutes on each day.
            l.record("s01-b01", midnight - 6 * 60_000, 17.0);
            l.record("s01-b01", midnight + 6 * 60_000, 17.0);
            l.record("s02-b01", midnight + 6 * 60_000, 20.0);
            l.persist().unwrap();
            store.flush().unwrap();
        }
        let mut l = Ledger::load(store.table("ledger").unwrap(), 18.0).unwrap();
        let rows = l.query(None, None, "s01", 10);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].day, rows[0].entry.cold_ms), (d, 6 * 60_000));
        assert_eq!((rows[1].day, rows[1].entry.cold_ms), (d + 1, 6 * 60_000));
        assert_eq!(l.query(Some(d + 1), None, "", 10).len(), 2);
        // The last reading survived the restart: the next interval continues it.
        assert!(!l.record("s01-b01", midnight + 6 * 60_000, 17.0));
        assert!(l.record("s01-b01", midnight + 12 * 60_000, 17.0));
        assert_eq!(
            l.query(Some(d + 1), None, "s01", 10)[0].entry.cold_ms,
            12 * 60_000
        );
        // 400 days later, the first day is forgotten.
        l.record("s02-b01", day_start_ms(d + MAX_DAYS) + H, 20.0);
        l.persist().unwrap();
        assert!(l.query(Some(d), Some(d), "", 10).is_empty());
        let again = Ledger::load(store.table("ledger").unwrap(), 18.0).unwrap();
        assert!(again.query(Some(d), Some(d), "", 10).is_empty());
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The days are scanned for old ones once a network day, not on every
    /// batch (on the city that scan was the optimizer's main cost by day 20).
    #[test]
    fn old_days_are_looked_for_only_when_the_newest_day_moves_on() {
        let (dir, store) = open("prune");
        let mut l = Ledger::load(store.table("ledger").unwrap(), 18.0).unwrap();
        let t0 = day_start_ms(20_780) + H;
        l.record("b1", t0, 19.0);
        l.persist().unwrap();
        assert!(!l.prune_due);
        // The same day: nothing to look for.
        for k in 1..=12 {
            l.record("b1", t0 + k * 5 * 60_000, 19.0);
            assert!(!l.prune_due);
            l.persist().unwrap();
        }
        // The next day.
        l.record("b1", day_start_ms(20_781) + H, 19.0);
        assert!(l.prune_due);
        l.persist().unwrap();
        assert!(!l.prune_due);
        // A building far behind writes a day already past the kept ones: it
        // goes at the next persist.
        l.record("b2", day_start_ms(20_781 - MAX_DAYS) + H, 19.0);
        assert!(l.prune_due);
        l.persist().unwrap();
        assert!(l.query(None, Some(20_781 - MAX_DAYS), "b2", 10).is_empty());
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
