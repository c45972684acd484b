use model::forecast::RawPoint;
use model::{ActorSnapshot, Mode, NodeId, Reading};
use store::Store;

use super::*;

/// 2026-12-01T00:00:00+08:00.
const T0: i64 = 1_796_054_400_000;
const H: i64 = HOUR_MS;

fn issue(issued_at_ms: i64, pts: &[(i64, f64)]) -> Forecast {
    let raw: Vec<RawPoint> = pts
        .iter()
        .map(|&(t, c)| RawPoint {
            time_ms: t,
            outdoor_temp_c: c,
            solar_w_m2: None,
        })
        .collect();
    Forecast::new("test", issued_at_ms, &raw).expect("valid")
}

fn obs(pairs: &[(i64, f64)]) -> BTreeMap<i64, HourObs> {
    pairs
        .iter()
        .map(|&(t, c)| (t, HourObs { sum_c: c, count: 1 }))
        .collect()
}

fn bucket(s: &Score, from_h: u32) -> LeadScore {
    *s.buckets
        .iter()
        .find(|b| b.from_h == from_h)
        .expect("bucket")
}

#[test]
fn score_by_lead_time_matches_hand_numbers() {
    // Issue A at T0: a point before its issue (left out), leads 1 h, 7 h, 30 h.
    let a = issue(
        T0,
        &[
            (T0 - H, 5.0),
            (T0 + H, 1.0),
            (T0 + 7 * H, 3.0),
            (T0 + 30 * H, -2.0),
        ],
    );
    // Issue B at T0 + 6 h: lead 1 h, and an hour nobody observed.
    let b = issue(T0 + 6 * H, &[(T0 + 7 * H, 4.5), (T0 + 8 * H, 0.0)]);
    let seen = obs(&[
        (T0 - H, 0.0),
        (T0 + H, 0.0),
        (T0 + 7 * H, 4.0),
        (T0 + 30 * H, 0.0),
    ]);
    let s = score(&[&a, &b], &seen);
    assert_eq!(s.issues, 2);
    assert_eq!(s.observed_hours, 4);
    // 0–6 h: A +1 (1 − 0), B +0.5 (4.5 − 4): MAE 0.75, bias 0.75.
    let b0 = bucket(&s, 0);
    assert_eq!((b0.count, b0.mae_k, b0.bias_k), (2, 0.75, 0.75));
    // 6–24 h: A 3 − 4 = −1.
    let b6 = bucket(&s, 6);
    assert_eq!((b6.count, b6.mae_k, b6.bias_k), (1, 1.0, -1.0));
    // 24–48 h: A −2 − 0 = −2.
    let b24 = bucket(&s, 24);
    assert_eq!((b24.count, b24.mae_k, b24.bias_k), (1, 2.0, -2.0));
    let b48 = bucket(&s, 48);
    assert_eq!((b48.count, b48.mae_k, b48.bias_k), (0, 0.0, 0.0));
    assert_eq!(bucket(&s, 72).to_h, 0);
}

fn store(name: &str) -> (std::path::PathBuf, Store) {
    let dir = crate::testing::scratch_dir(name);
    let cfg = crate::testing::store_config();
    let s = Store::open(&dir, &cfg).expect("store");
    (dir, s)
}

fn batch(readings: &[(i64, f64)]) -> TelemetryBatch {
    TelemetryBatch {
        seq: 1,
        snapshots: readings
            .iter()
            .map(|&(t, c)| ActorSnapshot {
                actor_id: NodeId::new("s01").expect("id"),
                time_ms: t,
                mode: Mode::Optimizer,
                readings: vec![
                    Reading::new(Metric::OutdoorTempC, c),
                    Reading::new(Metric::RoomTempC, 21.0),
                ],
            })
            .collect(),
    }
}

#[test]
fn observations_and_issues_persist_and_the_newest_issue_looks_ahead() {
    let (dir, s) = store("forecast-book");
    {
        let book = ForecastBook::load(s.table("forecasts").expect("table")).expect("load");
        assert!(book.ahead(T0, 6 * H).is_empty());
        // Two readings within ±30 min of T0 + 1 h average to 0; one 31 min
        // after counts for T0 + 2 h.
        book.observe(&batch(&[
            (T0 + H - 10 * 60_000, 0.5),
            (T0 + H + 20 * 60_000, -0.5),
            (T0 + H + 31 * 60_000, 7.0),
        ]))
        .expect("observe");
        book.insert(issue(T0, &[(T0 + H, 1.0), (T0 + 2 * H, 8.0)]), 1)
            .expect("insert");
        // An older issue loaded later is not the newest.
        book.insert(issue(T0 - H, &[(T0 + H, 9.0), (T0 + 2 * H, 9.0)]), 2)
            .expect("insert");
    }
    let book = ForecastBook::load(s.table("forecasts").expect("table")).expect("reload");
    let sc = book.score();
    assert_eq!(sc.issues, 2);
    assert_eq!(sc.observed_hours, 2);
    // Newest (T0): +1 at lead 1 h, +1 at lead 2 h; older: +9 at 2 h, +2 at 3 h.
    let b0 = bucket(&sc, 0);
    assert_eq!((b0.count, b0.mae_k, b0.bias_k), (4, 3.25, 3.25));

    let a = book.latest(T0 + H + 1, 30 * 60_000).expect("forecast");
    assert_eq!(a.issued_at_ms, T0);
    assert_eq!(a.loaded_at_ms, 1);
    // The point at or before `from`, then nothing more within 30 min.
    assert_eq!(a.points.len(), 1);
    assert_eq!(a.points[0].time_ms, T0 + H);
    let pts = book.ahead(T0, 2 * H);
    assert_eq!(
        pts.iter().map(|p| p.outdoor_c).collect::<Vec<_>>(),
        vec![1.0, 8.0]
    );
    // At T0 − 30 min only the older issue was known; before any issue, the
    // first issued after.
    let a = book.latest(T0 - H / 2, 3 * H).expect("forecast");
    assert_eq!(a.issued_at_ms, T0 - H);
    assert_eq!(
        a.points.iter().map(|p| p.outdoor_c).collect::<Vec<_>>(),
        vec![9.0, 9.0]
    );
    assert_eq!(
        book.latest(T0 - 5 * H, H).expect("forecast").issued_at_ms,
        T0 - H
    );
    drop(book);
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn history_is_bounded_by_age_and_keeps_the_newest() {
    let (dir, s) = store("forecast-history");
    let book = ForecastBook::load(s.table("forecasts").expect("table")).expect("load");
    book.insert(issue(T0, &[(T0, 0.0)]), 0).expect("insert");
    book.insert(issue(T0 + H, &[(T0 + H, 0.0)]), 0)
        .expect("insert");
    let kept = book
        .insert(
            issue(T0 + HISTORY_MS + 30 * 60_000, &[(T0 + HISTORY_MS + H, 0.0)]),
            0,
        )
        .expect("insert");
    // The issue at T0 is more than 14 days older than the newest; T0 + 1 h is not.
    assert_eq!(kept, 2);
    assert_eq!(book.score().issues, 2);
    drop(book);
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}
