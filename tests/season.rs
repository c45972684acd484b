//! `heatnet season` end to end on the demo network: two short runs (optimizer
//! and fixed curve) through the whole stack on the lockstep clock, a scenario
//! with a leak and a gateway crash, and the report they leave.

mod common;

use std::process::Command;

use common::{TempDir, bin, free_port_block};

const SCENARIO: &str = r#"
name = "test: leak and crash"
[[events]]
at_h = 3.0
inject = { kind = "supply_leak", device = "s03.pipe", magnitude = 100.0 }
label = "leak"
[[events]]
at_h = 9.0
clear = "leak"
[[events]]
at_h = 12.0
crash_gateway = "s05"
"#;

#[test]
fn two_runs_through_the_stack_leave_a_report_with_both() {
    let dir = TempDir::new("season");
    let scenario = dir.0.join("scenario.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let out = dir.0.join("out");
    let base = free_port_block(256);
    let run = Command::new(bin("heatnet"))
        .args([
            "season",
            "--network",
            "demo",
            "--days",
            "1",
            "--step-s",
            "300",
        ])
        .arg("--scenario")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .args(["--base-port", &base.to_string()])
        .output()
        .expect("run heatnet season");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "heatnet season failed:\n{stdout}\n{stderr}\n(logs under {})",
        out.display()
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    for mode in ["optimizer", "baseline"] {
        let r = &report["runs"][mode];
        let days = r["network_days"].as_f64().unwrap();
        assert!((days - 1.0).abs() < 0.01, "{mode}: {days} days");
        let comfort = r["comfort_share"].as_f64().unwrap();
        assert!(comfort > 0.0 && comfort <= 1.0, "{mode}: comfort {comfort}");
        assert!(r["heat_produced_gj"].as_f64().unwrap() > 0.0, "{mode}");
        assert!(r["heat_cost_yuan"].as_f64().unwrap() > 0.0, "{mode}");
        let faults = r["faults"].as_array().unwrap();
        assert!(
            faults.iter().any(|f| f["kind"] == "supply_leak"),
            "{mode}: {faults:?}"
        );
        // The crash happened, and the optimizer noticed the lost gateway.
        let crash = faults
            .iter()
            .find(|f| f["kind"] == "gateway_crash")
            .unwrap_or_else(|| panic!("{mode}: no crash in {faults:?}"));
        assert_eq!(crash["device"], "s05");
        assert_eq!(crash["detected_by"], "gateway_lost", "{mode}: {crash}");
        assert!(!r["days"].as_array().unwrap().is_empty());
    }
    assert!(report["comparison"]["heat_saving_share"].is_number());
    for f in ["report.md", "heat.svg", "cost.svg", "comfort.svg"] {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(
            text.contains("optimizer") && text.contains("baseline"),
            "{f}"
        );
    }
}
