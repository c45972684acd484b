//! Every heatnet process's Prometheus endpoint, scraped by a real Prometheus
//! server (Debian's `prometheus` package), checked through Prometheus's HTTP API.

mod common;
#[path = "support/http.rs"]
mod http;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use http::{encode, http, http_raw};
use serde_json::Value;

type Series = [(Value, f64)];

const PROMETHEUS: &str = "/usr/bin/prometheus";

fn poll<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// An instant query; the result vector as (labels, value).
fn query(prom: &str, q: &str) -> Option<Vec<(Value, f64)>> {
    let (code, v) = http(
        prom,
        "GET",
        &format!("/api/v1/query?query={}", encode(q)),
        None,
    )
    .ok()?;
    if code != 200 || v["status"] != "success" {
        return None;
    }
    Some(
        v["data"]["result"]
            .as_array()?
            .iter()
            .filter_map(|r| {
                let val: f64 = r["value"][1].as_str()?.parse().ok()?;
                Some((r["metric"].clone(), val))
            })
            .collect(),
    )
}

#[test]
fn prometheus_scrapes_every_heatnet_process() {
    assert!(
        Path::new(PROMETHEUS).exists(),
        "{PROMETHEUS} is missing: install Debian's Prometheus with \
         `sudo apt-get install -y prometheus` (.ci/run does this)"
    );
    let dir = TempDir::new("metrics");
    let data = dir.0.join("data");
    let base = free_port_block(30);
    let mut up = Proc::heatnet_up(
        &dir.0,
        &data,
        base,
        &[
            "--network",
            "demo",
            "--dashboard-port",
            &free_port_block(1).to_string(),
        ],
    );
    // up.json names every process's metrics endpoint.
    let endpoints: Vec<(String, String)> = poll(Duration::from_secs(60), "up.json", || {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(data.join("up.json")).ok()?).ok()?;
        let m = v["metrics"].as_object()?;
        let list: Vec<(String, String)> = m
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        (list.len() >= 10).then_some(list)
    });
    // 1 simulator + 1 optimizer + 1 dashboard + 7 gateways.
    assert_eq!(endpoints.len(), 10, "metrics endpoints: {endpoints:?}");
    for (name, addr) in &endpoints {
        let (code, body) = poll(
            Duration::from_secs(60),
            &format!("{name}'s /metrics"),
            || http_raw(addr, "GET", "/metrics", None).ok(),
        );
        assert_eq!(code, 200, "{name} at {addr}");
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("# TYPE heatnet_process_uptime_seconds gauge"),
            "{name}: {text}"
        );
    }

    let prom_port = free_port_block(1);
    let prom = format!("127.0.0.1:{prom_port}");
    let targets = endpoints
        .iter()
        .map(|(_, a)| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let config = dir.0.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: heatnet\n    static_configs:\n      - targets: [{targets}]\n"
        ),
    )
    .expect("prometheus config");
    let mut prometheus = Proc::start(
        &dir.0,
        "prometheus",
        Path::new(PROMETHEUS),
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.0.join("prom-data").display()),
            format!("--web.listen-address={prom}"),
        ],
    );

    // Every target up, as Prometheus sees it.
    poll(
        Duration::from_secs(60),
        "all 10 targets up in Prometheus",
        || {
            let r = query(&prom, "up{job=\"heatnet\"} == 1")?;
            (r.len() == endpoints.len()).then_some(())
        },
    );
    // The expected series, from the right processes.
    let expect = |q: &str, what: &str, ok: &dyn Fn(&Series) -> bool| {
        let r = poll(Duration::from_secs(60), what, || {
            query(&prom, q).filter(|r| ok(r))
        });
        println!("{q}: {} series, e.g. {:?}", r.len(), r.first());
    };
    expect(
        "rate(heatnet_telemetry_samples_stored_total{service=\"heatnet-optimizer\"}[10s])",
        "a positive telemetry ingest rate at the optimizer",
        &|r| r.len() == 1 && r[0].1 > 0.0,
    );
    expect(
        "heatnet_optimizer_sessions_open",
        "7 open gateway sessions",
        &|r| r.len() == 1 && r[0].1 == 7.0,
    );
    expect(
        "heatnet_optimizer_cycle_seconds_count",
        "optimizer cycles counted",
        &|r| r.len() == 1 && r[0].1 > 0.0,
    );
    expect(
        "heatnet_store_size_bytes > 0",
        "sled sizes of the simulator, the optimizer and 7 gateways",
        &|r| r.len() == 9,
    );
    expect(
        "heatnet_gateway_scans_total > 0",
        "scans counted on every gateway",
        &|r| r.len() == 7,
    );
    expect(
        "heatnet_gateway_control_samples_total > 0",
        "control error samples on the 6 substation gateways",
        &|r| r.len() == 6,
    );
    expect(
        "heatnet_gateway_control_error_max_k",
        "the control error gauge on the substation gateways",
        &|r| r.len() >= 6 && r.iter().all(|(_, v)| v.is_finite() && *v >= 0.0),
    );
    expect(
        "heatnet_process_resident_memory_bytes{service=\"heatnet-dashboard\"}",
        "the dashboard's own metrics",
        &|r| r.len() == 1 && r[0].1 > 0.0,
    );

    prometheus.terminate(Duration::from_secs(10));
    assert!(
        up.terminate(Duration::from_secs(30)),
        "heatnet up did not stop on SIGTERM:\n{}",
        up.log_tail()
    );
}
