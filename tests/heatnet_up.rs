//! `heatnet up` as a user runs it: everything starts, homes warm up, a killed
//! child is reported and restarted, Ctrl-C stops everything.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand::Rng as _;

fn status_json(data_dir: &std::path::Path) -> Option<serde_json::Value> {
    let out = Command::new(bin("heatnet"))
        .args(["status", "--json", "--data-dir"])
        .arg(data_dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn up_json(data_dir: &std::path::Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(data_dir.join("up.json")).ok()?).ok()
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

/// `heatnet status --json` shows `count` nodes, every one online with readings.
fn all_nodes_live(s: &serde_json::Value, count: usize) -> bool {
    s["nodes"].as_array().is_some_and(|nodes| {
        nodes.len() == count
            && nodes.iter().all(|n| {
                n["status"] == "online" && n["readings"].as_object().is_some_and(|r| !r.is_empty())
            })
    })
}

/// `kill -9` of the child `name` of the `heatnet up` writing into `data`;
/// its pid.
fn kill_child(data: &std::path::Path, name: &str) -> i32 {
    let pid = up_json(data).expect("up.json")["pids"][name]
        .as_u64()
        .expect("child pid") as i32;
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill -9");
    pid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_the_demo_warms_homes_and_restarts_a_killed_gateway() {
    let mut rng = seeded_rng("heatnet_up");
    let dir = TempDir::new("heatnet-up");
    let data = dir.0.join("data");
    let base = free_port_block(30);
    let mut up = Proc::heatnet_up(&dir.0, &data, base, &["--speed", "120"]);
    let started = Instant::now();

    // Within 60 s: every node online with live readings.
    let d = data.clone();
    let status = wait_for(
        Duration::from_secs(60),
        "every node online with readings in `heatnet status --json`",
        || {
            let d = d.clone();
            async move {
                let s = status_json(&d)?;
                all_nodes_live(&s, 67).then_some(s)
            }
        },
    )
    .await;
    eprintln!(
        "all 67 nodes online with readings after {:?}",
        started.elapsed()
    );
    for n in status["nodes"].as_array().expect("nodes") {
        let r = &n["readings"];
        match n["kind"].as_str() {
            Some("building") => assert!(r["room_temp_c"].is_f64(), "{n}"),
            Some("substation") => {
                for k in [
                    "supply_temp_c",
                    "return_temp_c",
                    "flow_kg_s",
                    "heat_w",
                    "secondary_supply_temp_c",
                ] {
                    assert!(r[k].is_f64(), "{} lacks {k}", n["node_id"]);
                }
                assert!(n["setpoint_c"].is_f64());
            }
            _ => {}
        }
    }

    // Rooms head to 18 °C and hold there.
    let min_room = |s: &serde_json::Value| {
        s["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["kind"] == "building")
            .filter_map(|n| n["readings"]["room_temp_c"].as_f64())
            .fold(f64::INFINITY, f64::min)
    };
    let d = data.clone();
    wait_for(
        Duration::from_secs(90),
        "every room at or above 18 °C",
        || {
            let d = d.clone();
            async move { status_json(&d).filter(|s| min_room(s) >= 18.0).map(|_| ()) }
        },
    )
    .await;
    eprintln!("every room ≥ 18 °C after {:?}", started.elapsed());
    // The secondary pumps hold their differential pressure (50 kPa) by speed
    // while buildings throttle.
    let d = data.clone();
    wait_for(
        Duration::from_secs(60),
        "every substation's secondary differential pressure within 10 % of 50 kPa",
        || {
            let d = d.clone();
            async move {
                let s = status_json(&d)?;
                let held = s["nodes"]
                    .as_array()?
                    .iter()
                    .filter(|n| n["kind"] == "substation")
                    .all(|n| {
                        n["readings"]["secondary_diff_pressure_pa"]
                            .as_f64()
                            .is_some_and(|dp| (dp - 50_000.0).abs() < 5_000.0)
                    });
                held.then_some(())
            }
        },
    )
    .await;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = status_json(&data).expect("status");
        let t = min_room(&s);
        assert!(t >= 18.0, "a room fell back to {t:.2} °C");
    }

    // kill -9 one gateway child: reported lost, then restarted by `heatnet up`.
    let victim = format!("s0{}", rng.random_range(1..=6));
    let pid = kill_child(&data, &format!("gateway-{victim}"));
    let d = data.clone();
    let v = victim.clone();
    wait_for(
        Duration::from_secs(5),
        "killed gateway shown lost with an alarm",
        || {
            let (d, v) = (d.clone(), v.clone());
            async move {
                let s = status_json(&d)?;
                let lost = s["gateways"]
                    .as_array()?
                    .iter()
                    .any(|g| g["gateway_id"] == v.as_str() && g["status"] == "lost");
                let alarm = s["alarms"]
                    .as_array()?
                    .iter()
                    .any(|a| a["kind"] == "gateway_lost" && a["node_id"] == v.as_str());
                // A quick restart may already have brought it back: the restart count tells.
                let restarted =
                    up_json(&d)?["restarts"][format!("gateway-{v}")].as_u64() == Some(1);
                ((lost && alarm) || restarted).then_some(())
            }
        },
    )
    .await;
    let d = data.clone();
    let v = victim.clone();
    wait_for(
        Duration::from_secs(20),
        "killed gateway restarted and online again",
        || {
            let (d, v) = (d.clone(), v.clone());
            async move {
                let up = up_json(&d)?;
                let restarted = up["restarts"][format!("gateway-{v}")].as_u64() == Some(1);
                let new_pid = up["pids"][format!("gateway-{v}")].as_u64()? as i32;
                let s = status_json(&d)?;
                let online = s["gateways"]
                    .as_array()?
                    .iter()
                    .any(|g| g["gateway_id"] == v.as_str() && g["status"] == "online");
                (restarted && new_pid != pid && online).then_some(())
            }
        },
    )
    .await;

    // Ctrl-C stops every process.
    let pids: Vec<i32> = up_json(&data).expect("up.json")["pids"]
        .as_object()
        .expect("pids")
        .values()
        .filter_map(|p| p.as_u64().map(|p| p as i32))
        .collect();
    // simulator, optimizer, dashboard and 7 gateways
    assert_eq!(pids.len(), 10, "{pids:?}");
    kill(Pid::from_raw(up.pid() as i32), Signal::SIGINT).expect("SIGINT");
    let stopped_cleanly = up.terminate(Duration::from_secs(20));
    assert!(
        stopped_cleanly,
        "heatnet up did not stop on Ctrl-C:\n{}",
        up.log_tail()
    );
    for p in pids {
        assert!(!alive(p), "process {p} outlived heatnet up");
    }
    assert!(!data.join("up.json").exists(), "up.json left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_the_meshed_ring_and_a_scenario_trips_one_plant_while_the_other_carries_on() {
    let dir = TempDir::new("heatnet-up-ring");
    let data = dir.0.join("data");
    let base = free_port_block(30);
    // Network time runs 600× real time: the trip at 2 h comes after ~12 s.
    let scenario = dir.0.join("trip.toml");
    std::fs::write(
        &scenario,
        "[[events]]\nat_h = 2.0\ninject = { kind = \"plant_trip\", device = \"boiler-south\" }\n",
    )
    .expect("write scenario");
    let mut up = Proc::heatnet_up(
        &dir.0,
        &data,
        base,
        &[
            "--network",
            "ring",
            "--speed",
            "600",
            "--scenario",
            &scenario.display().to_string(),
        ],
    );
    let heat = |s: &serde_json::Value, id: &str| {
        s["nodes"].as_array()?.iter().find(|n| n["node_id"] == id)?["readings"]["heat_w"].as_f64()
    };
    let d = data.clone();
    let before = wait_for(
        Duration::from_secs(60),
        "both ring plants online and heating",
        || {
            let d = d.clone();
            async move {
                let s = status_json(&d)?;
                let ok = heat(&s, "chp-north")? > 1.0e5 && heat(&s, "boiler-south")? > 1.0e5;
                ok.then_some(s)
            }
        },
    )
    .await;
    let north_before = heat(&before, "chp-north").expect("north heat");
    let d = data.clone();
    let after = wait_for(
        Duration::from_secs(90),
        "boiler-south tripped by the scenario, chp-north picking up its load",
        || {
            let d = d.clone();
            async move {
                let s = status_json(&d)?;
                let ok = heat(&s, "boiler-south")? < 0.2 * heat(&s, "chp-north")?
                    && heat(&s, "chp-north")? > north_before;
                ok.then_some(s)
            }
        },
    )
    .await;
    for sub in ["r1", "r2", "r3", "r4"] {
        assert!(
            heat(&after, sub).is_some_and(|h| h > 0.0),
            "{sub} gets no heat"
        );
    }
    // The optimizer publishes its plan: the ring's plants with their kinds,
    // heat and supply over the horizon, the CHP plant leading, the tripped
    // boiler (seen from its telemetry: its pump runs, its water is not
    // heated) out of the dispatch, and the critical substation named.
    let opt_addr = format!("127.0.0.1:{}", base + 1);
    let plan = wait_for(
        Duration::from_secs(60),
        "a plan that has seen the boiler trip",
        || {
            let addr = opt_addr.clone();
            async move {
                let mut c = control_room(&addr).await?;
                let p = c
                    .get_plan(proto::v1::GetPlanRequest {})
                    .await
                    .ok()?
                    .into_inner();
                let tripped = p
                    .plants
                    .iter()
                    .any(|pl| pl.plant_id == "boiler-south" && !pl.available);
                (p.plants.len() == 2 && tripped).then_some(p)
            }
        },
    )
    .await;
    assert_eq!(plan.mode, "optimizing");
    assert_eq!(plan.lead_plant_id, "chp-north", "{plan:?}");
    assert!(!plan.critical_substation_id.is_empty(), "{plan:?}");
    let chp = plan
        .plants
        .iter()
        .find(|pl| pl.plant_id == "chp-north")
        .expect("chp-north planned");
    assert_eq!(chp.kind, "chp");
    assert_eq!(chp.heat_w.len(), 24);
    assert_eq!(chp.supply_temp_c.len(), 24);
    assert!(chp.heat_w[0] > 0.0 && chp.delay_s.is_some(), "{chp:?}");
    let boiler = plan
        .plants
        .iter()
        .find(|pl| pl.plant_id == "boiler-south")
        .expect("boiler-south planned");
    assert_eq!(boiler.kind, "gas_boiler");
    assert_eq!(boiler.heat_w[0], 0.0, "{plan:?}");
    eprintln!("plan: {plan:?}");
    // Ctrl-C, and wait for everything to stop before the directory goes.
    kill(Pid::from_raw(up.pid() as i32), Signal::SIGINT).expect("SIGINT");
    assert!(
        up.terminate(Duration::from_secs(20)),
        "heatnet up did not stop on Ctrl-C:\n{}",
        up.log_tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_the_fixed_curve_baseline_sends_plain_curves_and_dispatches_nothing() {
    let dir = TempDir::new("heatnet-up-fixed");
    let data = dir.0.join("data");
    let base = free_port_block(30);
    let mut up = Proc::heatnet_up(
        &dir.0,
        &data,
        base,
        &[
            "--network",
            "ring",
            "--speed",
            "600",
            "--optimizer-mode",
            "fixed-curve",
        ],
    );
    let opt_addr = format!("127.0.0.1:{}", base + 1);
    let plan = wait_for(Duration::from_secs(60), "a fixed-curve plan", || {
        let addr = opt_addr.clone();
        async move {
            let mut c = control_room(&addr).await?;
            let p = c
                .get_plan(proto::v1::GetPlanRequest {})
                .await
                .ok()?
                .into_inner();
            (p.planned_at_ms > 0 && p.plants.len() == 2).then_some(p)
        }
    })
    .await;
    assert_eq!(plan.mode, "fixed_curve");
    assert!(plan.lead_plant_id.is_empty(), "{plan:?}");
    assert!(plan.plants.iter().all(|p| p.heat_w.is_empty()), "{plan:?}");
    // An hour of network time later both plants still run on their curves:
    // the baseline stops none.
    let first = plan.planned_at_ms;
    wait_for(Duration::from_secs(60), "an hour of baseline plans", || {
        let addr = opt_addr.clone();
        async move {
            let mut c = control_room(&addr).await?;
            let p = c
                .get_plan(proto::v1::GetPlanRequest {})
                .await
                .ok()?
                .into_inner();
            (p.planned_at_ms >= first + 3_600_000).then_some(())
        }
    })
    .await;
    let d = data.clone();
    wait_for(
        Duration::from_secs(60),
        "both plants heating under the baseline",
        || {
            let d = d.clone();
            async move {
                let s = status_json(&d)?;
                let heat = |id: &str| -> Option<f64> {
                    s["nodes"].as_array()?.iter().find(|n| n["node_id"] == id)?["readings"]
                        ["heat_w"]
                        .as_f64()
                };
                (heat("chp-north")? > 1.0e5 && heat("boiler-south")? > 1.0e5).then_some(())
            }
        },
    )
    .await;
    kill(Pid::from_raw(up.pid() as i32), Signal::SIGINT).expect("SIGINT");
    assert!(
        up.terminate(Duration::from_secs(20)),
        "heatnet up did not stop on Ctrl-C:\n{}",
        up.log_tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_three_substations_a_gateway_runs_every_node_and_restarts_a_killed_one() {
    let _rng = seeded_rng("sites_per_gateway");
    let dir = TempDir::new("heatnet-up-sites");
    let data = dir.0.join("data");
    let base = free_port_block(30);
    let mut up = Proc::heatnet_up(
        &dir.0,
        &data,
        base,
        &["--speed", "120", "--sites-per-gateway", "3"],
    );
    // The demo's plant on its own gateway, its six substations on two.
    let d = data.clone();
    let status = wait_for(
        Duration::from_secs(60),
        "67 nodes on 3 gateways online with readings and setpoints",
        || {
            let d = d.clone();
            async move {
                let s = status_json(&d)?;
                let gateways: Vec<&str> = s["gateways"]
                    .as_array()?
                    .iter()
                    .filter(|g| g["status"] == "online")
                    .filter_map(|g| g["gateway_id"].as_str())
                    .collect();
                let ok = gateways.len() == 3
                    && all_nodes_live(&s, 67)
                    && s["nodes"]
                        .as_array()?
                        .iter()
                        .all(|n| n["kind"] != "substation" || n["setpoint_c"].is_f64());
                ok.then_some(s)
            }
        },
    )
    .await;
    let mut ids: Vec<&str> = status["gateways"]
        .as_array()
        .expect("gateways")
        .iter()
        .filter_map(|g| g["gateway_id"].as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, ["edge-s01-s03", "edge-s04-s06", "plant-a"], "{status}");

    // kill -9 the gateway of s04..s06: lost, restarted, online again.
    let name = "gateway-edge-s04-s06";
    let _ = kill_child(&data, name);
    let d = data.clone();
    wait_for(
        Duration::from_secs(30),
        "the killed gateway restarted and its substations online again",
        || {
            let d = d.clone();
            async move {
                let up = up_json(&d)?;
                let restarted = up["restarts"][name].as_u64() == Some(1);
                let s = status_json(&d)?;
                let online = s["nodes"]
                    .as_array()?
                    .iter()
                    .all(|n| n["status"] == "online");
                (restarted && online).then_some(())
            }
        },
    )
    .await;
    kill(Pid::from_raw(up.pid() as i32), Signal::SIGINT).expect("SIGINT");
    assert!(up.terminate(Duration::from_secs(20)), "{}", up.log_tail());
}
