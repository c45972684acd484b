//! `heatnet season` end to end on the demo network: two short runs (optimizer
//! and fixed curve) through the whole stack on the lockstep clock, a scenario
//! with a leak and a gateway crash, and the report they leave.

mod common;

use std::process::Command;

use common::{TempDir, bin, free_port_block, seeded_rng};
use rand::Rng as _;

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

/// One optimizer run of `heatnet season` on the demo network; its report.
fn optimizer_run(
    dir: &std::path::Path,
    name: &str,
    scenario: &std::path::Path,
) -> serde_json::Value {
    let out = dir.join(name);
    let base = free_port_block(256);
    let run = Command::new(bin("heatnet"))
        .args([
            "season",
            "--network",
            "demo",
            "--days",
            "0.5",
            "--step-s",
            "300",
            "--runs",
            "optimizer",
        ])
        .arg("--scenario")
        .arg(scenario)
        .arg("--out")
        .arg(&out)
        .args(["--base-port", &base.to_string()])
        .output()
        .expect("run heatnet season");
    assert!(
        run.status.success(),
        "heatnet season failed:\n{}\n{}\n(logs under {})",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
        out.display()
    );
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("report.json")).expect("the run wrote report.json"),
    )
    .expect("report.json is JSON");
    let mut r = report["runs"]["optimizer"].clone();
    // How fast the machine was is not part of the run.
    let o = r.as_object_mut().expect("a run is an object");
    o.remove("wall_s");
    o.remove("realtime_factor");
    r
}

/// On the lockstep clock the optimizer plans on every step after every
/// gateway and the weather feed, and the step waits for its commands: the
/// whole stack replays a run from its seed, to the bit. (Before, the
/// optimizer planned on a wall-clock timer on whatever telemetry had
/// arrived: two runs of this test differed by 0.3 % in heat.)
#[test]
fn the_whole_stack_on_the_lockstep_clock_replays_a_run_to_the_bit() {
    let mut rng = seeded_rng("the_whole_stack_on_the_lockstep_clock_replays_a_run_to_the_bit");
    let dir = TempDir::new("season-replay");
    let at_h: f64 = rng.random_range(1.0..4.0);
    let magnitude: f64 = rng.random_range(50.0..150.0);
    let scenario = dir.0.join("scenario.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"name = "test: replay"
[[events]]
at_h = {at_h}
inject = {{ kind = "supply_leak", device = "s03.pipe", magnitude = {magnitude} }}
label = "leak"
[[events]]
at_h = {}
clear = "leak"
"#,
            at_h + 2.0
        ),
    )
    .unwrap();
    let first = optimizer_run(&dir.0, "first", &scenario);
    let second = optimizer_run(&dir.0, "second", &scenario);
    assert!(first["heat_produced_gj"].as_f64().unwrap() > 0.0);
    let differ: Vec<String> = first
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, v)| second.get(k.as_str()) != Some(v))
        .map(|(k, v)| format!("{k}: {v} then {}", second[k.as_str()]))
        .collect();
    assert!(
        differ.is_empty(),
        "two runs of one seed differ:\n{}",
        differ.join("\n")
    );
}

/// `heatnet season` with its arguments on the demo network; its output.
fn season(out: &std::path::Path, scenario: &std::path::Path, extra: &[&str]) -> (bool, String) {
    let base = free_port_block(256);
    let run = Command::new(bin("heatnet"))
        .args(["season", "--network", "demo", "--step-s", "300"])
        .args(["--runs", "optimizer"])
        .arg("--scenario")
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .args(["--base-port", &base.to_string()])
        .args(extra)
        .output()
        .expect("run heatnet season");
    (
        run.status.success(),
        format!(
            "{}\n{}\n(logs under {})",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr),
            out.display()
        ),
    )
}

/// A season too long for one sitting: `--until-day` ends the sitting with
/// every process's state saved, `--resume` continues it (the scenario's crash
/// after the break still happens, the scorecard covers the whole season), a
/// finished run is kept, and other settings are refused.
#[test]
fn a_season_ended_at_until_day_resumes_where_it_stopped() {
    let dir = TempDir::new("season-resume");
    let scenario = dir.0.join("scenario.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let out = dir.0.join("out");
    let run_dir = out.join("runs/optimizer");

    let (ok, log) = season(&out, &scenario, &["--days", "0.75", "--until-day", "0.3"]);
    assert!(ok, "first sitting failed:\n{log}");
    assert!(log.contains("sitting ended at day 0.3 of 0.75"), "{log}");
    assert!(
        !out.join("report.json").exists(),
        "a report after one sitting"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("driver.json")).unwrap()).unwrap();
    assert_eq!(state["sittings_ended"], 1, "{state}");
    assert_eq!(state["finished"], false, "{state}");
    // The run's report so far, and no paired one: no whole day yet.
    let so_far: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("optimizer.so-far.json")).unwrap()).unwrap();
    let days = so_far["network_days"].as_f64().unwrap();
    assert!((days - 0.3).abs() < 0.01, "{days} days so far:\n{log}");
    assert!(
        so_far["heat_produced_gj"].as_f64().unwrap() > 0.0,
        "{so_far}"
    );
    assert!(
        log.contains("no whole day that every run has covered yet"),
        "{log}"
    );
    assert!(!out.join("so-far").exists());
    assert!(state["crashes"].as_array().unwrap().is_empty(), "{state}");

    // Other settings are refused, and nothing is cleared.
    let (ok, log) = season(&out, &scenario, &["--days", "1", "--resume"]);
    assert!(!ok, "resumed with another --days:\n{log}");
    assert!(
        log.contains("--days") && log.contains("without --resume"),
        "{log}"
    );
    assert!(run_dir.join("driver.json").exists());

    let (ok, log) = season(&out, &scenario, &["--days", "0.75", "--resume"]);
    assert!(ok, "second sitting failed:\n{log}");
    assert!(log.contains("resuming the run"), "{log}");
    let sim_log = std::fs::read_to_string(run_dir.join("logs/sim.log")).unwrap();
    assert!(
        sim_log.contains("simulation resumed from saved state"),
        "the simulator started afresh:\n{log}"
    );
    assert!(
        !out.join("optimizer.so-far.json").exists(),
        "the report so far outlived the whole run"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let r = &report["runs"]["optimizer"];
    let days = r["network_days"].as_f64().unwrap();
    assert!((days - 0.75).abs() < 0.01, "{days} days:\n{log}");
    // 0.75 days of 300 s steps, each taken once.
    assert_eq!(r["steps"].as_u64().unwrap(), 216, "{r}");
    let faults = r["faults"].as_array().unwrap();
    assert!(
        faults.iter().any(|f| f["kind"] == "supply_leak"),
        "{faults:?}"
    );
    let crash = faults
        .iter()
        .find(|f| f["kind"] == "gateway_crash")
        .unwrap_or_else(|| panic!("no crash after the resume: {faults:?}\n{log}"));
    assert_eq!(crash["detected_by"], "gateway_lost", "{crash}");
    // The same season in one sitting: every process carried on from its
    // saved state (the optimizer's planner too: without its memory the
    // resumed run made 4.3 % less heat than this).
    let straight_out = dir.0.join("straight");
    let (ok, straight_log) = season(&straight_out, &scenario, &["--days", "0.75"]);
    assert!(ok, "the run in one sitting failed:\n{straight_log}");
    let straight: serde_json::Value =
        serde_json::from_slice(&std::fs::read(straight_out.join("report.json")).unwrap()).unwrap();
    let s = &straight["runs"]["optimizer"];
    let (heat, heat_straight) = (
        r["heat_produced_gj"].as_f64().unwrap(),
        s["heat_produced_gj"].as_f64().unwrap(),
    );
    assert!(
        (heat / heat_straight - 1.0).abs() < 0.01,
        "heat {heat:.1} GJ over two sittings, {heat_straight:.1} GJ in one:\n{log}"
    );
    let (comfort, comfort_straight) = (
        r["comfort_share"].as_f64().unwrap(),
        s["comfort_share"].as_f64().unwrap(),
    );
    assert!(
        (comfort - comfort_straight).abs() < 0.005,
        "comfort {comfort} over two sittings, {comfort_straight} in one:\n{log}"
    );

    // A finished run is kept, not run again.
    let (ok, log) = season(&out, &scenario, &["--days", "0.75", "--resume"]);
    assert!(ok, "{log}");
    assert!(log.contains("finished in an earlier sitting"), "{log}");
}

/// `heatnet season` stopped by SIGTERM to its own process (a service
/// manager, `pkill`) stops the run it drives, the way a sitting ends: no
/// process of the stack is left holding the ports, and the run is kept for
/// `--resume` (a season killed this way once left its run going, and the next
/// one found the simulator's port taken).
#[test]
fn a_season_terminated_stops_its_whole_stack_and_keeps_the_run() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    use std::time::{Duration, Instant};

    let dir = TempDir::new("season-term");
    let scenario = dir.0.join("scenario.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let out = dir.0.join("out");
    let base = free_port_block(256);
    let mut season = Command::new(bin("heatnet"))
        .args(["season", "--network", "demo", "--step-s", "300"])
        .args(["--runs", "optimizer", "--days", "30"])
        .arg("--scenario")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .args(["--base-port", &base.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start heatnet season");
    let driver = out.join("runs/optimizer/driver.json");
    let ports = [base, base + 1, base + 100];
    let taken = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_err();
    let began = Instant::now();
    // Running: its simulator, optimizer and dashboard listen, its driver
    // has saved.
    while !(driver.exists() && ports.into_iter().all(taken)) {
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "the season did not start in 120 s (logs under {})",
            out.display()
        );
        assert!(
            season.try_wait().unwrap().is_none(),
            "the season ended early"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    kill(Pid::from_raw(season.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let ended = season.wait_with_output().expect("wait for the season");
    let log = format!(
        "{}\n{}\n(logs under {})",
        String::from_utf8_lossy(&ended.stdout),
        String::from_utf8_lossy(&ended.stderr),
        out.display()
    );
    assert!(
        !ended.status.success(),
        "a terminated season succeeded:\n{log}"
    );
    assert!(log.contains("continue it with --resume"), "{log}");
    // Every port of the stack is free again: the simulator's, the
    // optimizer's and the dashboard's.
    for port in ports {
        assert!(
            !taken(port),
            "port {port} still held after the season ended:\n{log}"
        );
    }
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&driver).unwrap()).unwrap();
    assert_eq!(state["finished"], false, "{state}");
}

/// A sitting that ends as a leak begins (the leak of the city's season at
/// day 20.0, its sittings ending at day 20): the optimizer of the next
/// sitting carries its leak detector's memory over the restart, and still
/// finds the leak within 10 minutes (a detector started afresh took the
/// leaking make-up water for its baseline and raised nothing).
#[test]
fn a_leak_that_begins_as_a_sitting_ends_is_found_after_the_resume() {
    let dir = TempDir::new("season-leak-boundary");
    let scenario = dir.0.join("scenario.toml");
    std::fs::write(
        &scenario,
        r#"
name = "test: a leak at the sitting's end"
[[events]]
at_h = 3.0
inject = { kind = "supply_leak", device = "s03.pipe", magnitude = 100.0 }
label = "leak"
"#,
    )
    .unwrap();
    let out = dir.0.join("out");
    let (ok, log) = season(&out, &scenario, &["--days", "0.25", "--until-day", "0.125"]);
    assert!(ok, "first sitting failed:\n{log}");
    let (ok, log) = season(&out, &scenario, &["--days", "0.25", "--resume"]);
    assert!(ok, "second sitting failed:\n{log}");
    let opt_log = std::fs::read_to_string(out.join("runs/optimizer/logs/optimizer.log")).unwrap();
    assert!(
        opt_log.contains("leak detector's memory restored"),
        "the resumed optimizer started its leak detector afresh:\n{log}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let faults = report["runs"]["optimizer"]["faults"].as_array().unwrap();
    let leak = faults
        .iter()
        .find(|f| f["kind"] == "supply_leak")
        .unwrap_or_else(|| panic!("no leak in {faults:?}\n{log}"));
    assert_eq!(leak["detected_by"], "leak_suspected", "{leak}\n{log}");
    let after_min = leak["detected_after_min"].as_f64().unwrap();
    assert!(after_min <= 10.0, "found after {after_min} min: {leak}");
}
