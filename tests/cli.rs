//! The `heatnet` command line as a planner uses it: design calculations and
//! the refusals of bad input, through the real binary.

mod common;

use std::process::Command;

use common::*;

fn heatnet(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin("heatnet"))
        .args(args)
        .output()
        .expect("run heatnet");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sim_steady_prints_every_junction_and_pipe_and_closes_the_balances() {
    for network in ["demo", "ring"] {
        let (ok, out, err) = heatnet(&["sim", "steady", "--network", network, "--json"]);
        assert!(ok, "{network}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        let net = model::Network::sample(network).expect("sample");
        let junctions = v["junctions"].as_array().expect("junctions");
        let pipes = v["pipes"].as_array().expect("pipes");
        if net.is_star() {
            assert_eq!(junctions.len(), net.plants.len() + net.substations.len());
            assert_eq!(pipes.len(), net.substations.len());
        } else {
            assert_eq!(junctions.len(), net.junctions.len());
            assert_eq!(pipes.len(), net.pipes.len());
        }
        for j in junctions {
            for k in [
                "supply_pressure_pa",
                "return_pressure_pa",
                "supply_temp_c",
                "return_temp_c",
            ] {
                assert!(j[k].is_f64(), "{network}: junction {} lacks {k}", j["id"]);
            }
        }
        for p in pipes {
            for k in [
                "supply_flow_kg_s",
                "supply_outlet_temp_c",
                "return_flow_kg_s",
                "return_outlet_temp_c",
            ] {
                assert!(p[k].is_f64(), "{network}: pipe {} lacks {k}", p["id"]);
            }
        }
        assert!(v["energy_balance_error"].as_f64().expect("balance").abs() < 1e-3);
        assert!(v["mass_balance_error_kg_s"].as_f64().expect("mass") < 1e-6);
    }
}

#[test]
fn design_conditions_from_a_file_are_applied() {
    let dir = TempDir::new("cli-conditions");
    let path = dir.0.join("conditions.toml");
    std::fs::write(
        &path,
        "[plants.plant-a]\nsupply_temp_c = 95.0\n\n[substations.s01]\nheat_w = 1.5e6\nflow_kg_s = 9.0\n\n[substations.s02]\nheat_w = 1.0e6\nreturn_temp_c = 50.0\n",
    )
    .expect("write");
    let (ok, out, err) = heatnet(&[
        "sim",
        "steady",
        "--network",
        "demo",
        "--json",
        "--conditions",
        path.to_str().expect("path"),
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let sub = |id: &str| {
        v["substations"]
            .as_array()
            .expect("subs")
            .iter()
            .find(|s| s["id"] == id)
            .cloned()
            .expect("sub")
    };
    assert_eq!(sub("s01")["flow_kg_s"], 9.0);
    assert!((sub("s01")["heat_w"].as_f64().expect("heat") - 1.5e6).abs() < 1.0);
    assert_eq!(sub("s02")["return_temp_c"], 50.0);
    assert_eq!(v["plants"][0]["supply_temp_c"], 95.0);
}

#[test]
fn bad_input_is_refused_with_the_element_and_the_problem() {
    let dir = TempDir::new("cli-bad-input");
    let bad = dir.0.join("bad.toml");
    let text = model::network::RING_TOML.replacen("to = \"j-east\"", "to = \"j-nowhere\"", 1);
    std::fs::write(&bad, text).expect("write");
    let (ok, _, err) = heatnet(&["sim", "steady", "--network", bad.to_str().expect("path")]);
    assert!(!ok);
    assert!(
        err.contains("pipe p-n-e: junction j-nowhere does not exist (a dangling pipe)"),
        "{err}"
    );

    let (ok, _, err) = heatnet(&["sim", "steady", "--network", "nosuch"]);
    assert!(!ok);
    assert!(err.contains("unknown sample network \"nosuch\""), "{err}");

    let cond = dir.0.join("cond.toml");
    std::fs::write(&cond, "[substations.s42]\nheat_w = 1.0\nflow_kg_s = 1.0\n").expect("write");
    let (ok, _, err) = heatnet(&[
        "sim",
        "steady",
        "--conditions",
        cond.to_str().expect("path"),
    ]);
    assert!(!ok);
    assert!(
        err.contains("conditions name substation s42, which the network does not have"),
        "{err}"
    );

    // A scenario with a fault on a pipe the network lacks is refused before
    // anything starts, by `up` and by `sim season`, naming the event.
    let scenario = dir.0.join("bad-scenario.toml");
    std::fs::write(
        &scenario,
        "[[events]]\nat_h = 1.0\ninject = { kind = \"supply_leak\", device = \"p-nowhere\", magnitude = 100.0 }\n",
    )
    .expect("write scenario");
    let data = dir.0.join("data");
    for args in [
        vec!["up", "--data-dir", data.to_str().expect("path")],
        vec!["sim", "season", "--days", "1"],
    ] {
        let mut args = args;
        args.extend([
            "--network",
            "ring",
            "--scenario",
            scenario.to_str().expect("path"),
        ]);
        let (ok, _, err) = heatnet(&args);
        assert!(!ok, "{args:?} accepted a broken scenario");
        assert!(
            err.contains("event 0 (at_h 1)") && err.contains("pipe p-nowhere does not exist"),
            "{args:?}: {err}"
        );
    }
    assert!(
        !data.join("up.json").exists(),
        "up started processes for a broken scenario"
    );
}

#[test]
fn up_refuses_ports_another_run_holds_before_starting_anything() {
    let dir = TempDir::new("cli-port-taken");
    let base = free_port_block(400);
    // Someone else's simulator on the base port.
    let _other = std::net::TcpListener::bind(("127.0.0.1", base)).expect("bind");
    let data = dir.0.join("data");
    let (ok, _, err) = heatnet(&[
        "up",
        "--network",
        "demo",
        "--data-dir",
        data.to_str().expect("path"),
        "--base-port",
        &base.to_string(),
    ]);
    assert!(!ok, "up started on a taken port");
    assert!(
        err.contains(&format!("the simulator's port 127.0.0.1:{base} is taken"))
            && err.contains("another --base-port"),
        "{err}"
    );
    assert!(!data.join("up.json").exists(), "up started processes");
}
