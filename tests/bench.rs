//! `heatnet bench fanout` and `heatnet bench ingest`, tiny, through the real
//! binary and a real optimizer process: every session opens, every curve
//! change reaches every substation, and every acknowledged batch is stored.
//! No timing thresholds: the numbers are for docs/benchmarks.md.

mod common;

use std::process::Command;

use common::*;

fn bench(args: &[String]) -> serde_json::Value {
    let out = Command::new(bin("heatnet"))
        .arg("bench")
        .args(args)
        .output()
        .expect("run heatnet bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "heatnet bench {args:?} failed:\n{stderr}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[test]
fn fanout_reaches_every_substation_of_the_changed_group() {
    let dir = TempDir::new("bench-fanout");
    let port = free_port_block(1).to_string();
    let data = dir.0.display().to_string();
    let r = bench(&strings(&[
        "fanout",
        "--substations",
        "20",
        "--groups",
        "2",
        "--changes",
        "3",
        "--pause-ms",
        "200",
        "--port",
        &port,
        "--data-dir",
        &data,
        "--json",
    ]));
    assert_eq!(r["sessions_open"], 20, "{r:#}");
    assert_eq!(r["sessions_failed"], 0, "{r:#}");
    assert_eq!(r["connections"], 20);
    let changes = r["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 3);
    for (i, c) in changes.iter().enumerate() {
        // Changes alternate between the two groups of 10 substations each.
        assert_eq!(c["group"], format!("bench-g{}", i % 2 + 1), "{c:#}");
        assert_eq!(c["targets"], 10, "{c:#}");
        assert_eq!(c["acked"], 10, "{c:#}");
        assert!(c["curve_version"].as_u64().unwrap() >= 2, "{c:#}");
        let (p50, p99, max) = (
            c["ack_p50_ms"].as_f64().unwrap(),
            c["ack_p99_ms"].as_f64().unwrap(),
            c["ack_max_ms"].as_f64().unwrap(),
        );
        assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{c:#}");
    }
}

#[test]
fn ingest_counts_only_batches_the_optimizer_stored() {
    let dir = TempDir::new("bench-ingest");
    let port = free_port_block(1).to_string();
    let data = dir.0.display().to_string();
    let r = bench(&strings(&[
        "ingest",
        "--gateways",
        "4",
        "--buildings",
        "5",
        "--in-flight",
        "4",
        "--duration-s",
        "0.5",
        "--warmup-s",
        "0.2",
        "--reps",
        "1",
        "--port",
        &port,
        "--data-dir",
        &data,
        "--json",
    ]));
    let rows = r["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{r:#}");
    assert_eq!(rows[0]["path"], "grpc");
    assert_eq!(rows[1]["path"], "in-process");
    for row in rows {
        // One scan of a substation (13 readings) and 5 buildings (4 each).
        assert_eq!(row["samples_per_batch"], 13 + 5 * 4, "{row:#}");
        let rep = &row["reps"][0];
        assert!(rep["batches"].as_u64().unwrap() > 0, "{row:#}");
    }
    // Every batch acknowledged in the window was stored by the optimizer.
    let rep = &rows[0]["reps"][0];
    let stored = rep["optimizer_samples_stored"].as_u64().expect("stored");
    assert!(stored >= rep["batches"].as_u64().unwrap() * 33, "{rep:#}");
}
